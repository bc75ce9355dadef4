"""Every column's role: a possible cause, a measured effect, or neither.

A column of ``requests`` is one of

``dimension``
    a possible cause: allowed in predicates, cubes, dashboard filters and the
    separation's slices;
``outcome``
    measured, never in a predicate: a bug changes it, so slicing by it would take
    an effect for a cause (blank answers have ``output_tokens`` 0, a stuck replica
    has a long ``latency_ms``);
``id``, ``time``, ``identity``
    the request id, its time, the person or session behind it;
``signal``
    a signal's boolean column (a built-in detector, the user's own, ``degraded``);
``internal``
    forensics' own columns (``_source_file_id``, ``_source_row``);
``count``
    on a counted table (``[counts]`` in the mapping), the column saying how many
    requests a row stands for: a weight, never a dimension.

How a column gets its role, first rule that applies (``why`` in ``column_roles``;
the count column of a counted table is always ``count``, why ``counts``):

1. ``mapping``: ``[roles]`` in a mapping file (``dimension`` or ``outcome``); an
   explicit role always wins over a default;
2. ``canonical``: the canonical schema's role (``schema.Column.role``) for ids,
   time, identities and the columns that describe the response (``output_tokens``,
   ``max_token_rank``, ``user_feedback``, ``eval_score``, ``response_text``);
   ``signal`` / ``internal`` for signal and provenance columns;
3. ``signal input``: a column a user-declared signal reads is an outcome
   (slicing ``slow`` by ``latency_ms`` would restate the signal's definition);
   an expression's every column counts (``signal_definitions.inputs``);
4. ``canonical``: the other canonical columns describe the request and are
   dimensions, even where a built-in detector reads them (a bug can hit Thai
   prompts only, or greedy requests only);
5. ``name rule``: one of the user's columns whose name says it is measured
   (``outcome_by_name``: latency, duration, status, finish reason, error...);
6. ``default``: any other column of the user's is a dimension.

Ingest records the roles in the ``column_roles`` table (``record_roles``) so that
every reader (queries, separation, dashboard, report, CLI) sees the same roles
whoever wrote the rows; an explicit role given to a later ingest updates it, and
an explicit role for a column no file has yet is kept until one does. A reader of
a database that has no row for a column (written before roles were recorded)
gets the default for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import polars as pl

from forensics.db import Database
from forensics.errors import ConfigError
from forensics.schema import INTERNAL_PREFIX, SETTABLE_ROLES, column

if TYPE_CHECKING:  # the query layer imports this module
    from forensics.queries.engine import Engine

__all__ = [
    "COUNTS_META",
    "OUTCOME_NAMES",
    "ROLES",
    "SETTING_WORDS",
    "ColumnRole",
    "check_explicit_roles",
    "column_roles",
    "columns_with_role",
    "default_role",
    "name_words",
    "outcome_by_name",
    "record_roles",
    "resolve_roles",
]

RoleName = Literal["id", "time", "identity", "dimension", "outcome", "signal", "internal", "count"]

ROLES: tuple[RoleName, ...] = (
    "id",
    "time",
    "identity",
    "dimension",
    "outcome",
    "signal",
    "internal",
    "count",
)
"""Every role a column of ``requests`` can have."""

Why = Literal[
    "mapping", "canonical", "signal input", "name rule", "default", "signal", "internal", "counts"
]

COUNTS_META = "counts"
"""``forensics_meta`` key holding a counted table's count column (absent: one row per request)."""

OUTCOME_NAMES: tuple[tuple[str, ...], ...] = (
    # latency
    ("latency",), ("latencies",), ("ttft",), ("tpot",), ("itl",),
    ("time", "to", "first", "token"), ("response", "time"),
    # duration
    ("duration",), ("elapsed",),
    # status
    ("status", "code"), ("http", "status"), ("grpc", "status"), ("response", "status"),
    ("request", "status"), ("http", "code"),
    # finish reason
    ("finish", "reason"), ("finish", "reasons"), ("stop", "reason"), ("done", "reason"),
    # errors
    ("error",), ("errors",), ("exception",), ("failure",), ("failed",),
    # the response's length
    ("output", "tokens"), ("completion", "tokens"), ("response", "tokens"),
    ("generated", "tokens"), ("response", "length"),
)  # fmt: skip
"""Word sequences that make one of the user's columns an outcome when its name holds one
(``latency_ms``, ``ttftMs``, ``http.status_code``, ``gen_ai.response.finish_reasons``,
``error_type``...). A column named just ``status`` is an outcome too."""

SETTING_WORDS = frozenset(
    {
        "max", "min", "maximum", "minimum", "limit", "budget", "target", "slo", "sla",
        "timeout", "deadline", "expected", "requested", "class", "tier", "priority",
    }
)  # fmt: skip
"""Words that make a name a setting chosen before the request ran (``max_output_tokens``,
``latency_slo_ms``, ``error_budget``, ``latency_class``): the name rule leaves it a dimension."""

_HUMPS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^0-9a-z]+")


def name_words(name: str) -> tuple[str, ...]:
    """The lower-case words of a column name: split at any non-alphanumeric and camelCase humps.

    Examples
    --------
    >>> name_words("gen_ai.response.finishReasons")
    ('gen', 'ai', 'response', 'finish', 'reasons')
    >>> name_words("HTTPStatusCode")
    ('http', 'status', 'code')
    """
    return tuple(w for w in _SEPARATORS.split(_HUMPS.sub("_", name).lower()) if w)


def outcome_by_name(name: str) -> bool:
    """Whether a column's name says it is measured on the response (the name rule).

    True when the name's words hold one of ``OUTCOME_NAMES`` in order (or the name
    is just ``status``) and none of ``SETTING_WORDS``.

    Examples
    --------
    >>> outcome_by_name("latency_ms"), outcome_by_name("finishReason")
    (True, True)
    >>> outcome_by_name("latency_slo_ms"), outcome_by_name("queue_depth")
    (False, False)
    """
    words = name_words(name)
    if words == ("status",):
        return True
    if SETTING_WORDS.intersection(words):
        return False
    return any(
        words[i : i + len(phrase)] == phrase
        for phrase in OUTCOME_NAMES
        for i in range(len(words) - len(phrase) + 1)
    )


@dataclass(frozen=True)
class ColumnRole:
    """One column's role and the rule that gave it."""

    column: str
    """Column name in ``requests``."""
    role: RoleName
    """dimension, outcome, id, time, identity, signal or internal."""
    why: Why
    """The rule: mapping, canonical, signal input, name rule, default, signal or internal."""


def default_role(
    name: str,
    *,
    signals: Iterable[str] = (),
    signal_inputs: Iterable[str] = (),
    counts: str | None = None,
) -> ColumnRole:
    """A column's role when no mapping sets it (rules 2-6 of the module docstring).

    Examples
    --------
    >>> default_role("output_tokens").role, default_role("temperature").role
    ('outcome', 'dimension')
    >>> default_role("queue_depth", signal_inputs=["queue_depth"]).why
    'signal input'
    >>> default_role("cnt", counts="cnt").role
    'count'
    """
    if counts is not None and name.lower() == counts.lower():
        return ColumnRole(name, "count", "counts")
    canonical = column(name)
    if canonical is not None and canonical.role != "dimension":
        return ColumnRole(name, canonical.role, "canonical")
    if name in set(signals):
        return ColumnRole(name, "signal", "signal")
    if name.startswith(INTERNAL_PREFIX):
        return ColumnRole(name, "internal", "internal")
    if name.lower() in {c.lower() for c in signal_inputs}:
        return ColumnRole(name, "outcome", "signal input")
    if canonical is not None:
        return ColumnRole(name, "dimension", "canonical")
    if outcome_by_name(name):
        return ColumnRole(name, "outcome", "name rule")
    return ColumnRole(name, "dimension", "default")


def resolve_roles(
    columns: Sequence[str],
    *,
    explicit: Mapping[str, str] | None = None,
    signals: Iterable[str] = (),
    signal_inputs: Iterable[str] = (),
    counts: str | None = None,
) -> list[ColumnRole]:
    """The role of each column, in order: an explicit one where given, else the default.

    Explicit roles are matched to columns case-insensitively (as DuckDB names are);
    they never change an id, time, identity, signal or internal column.

    Examples
    --------
    >>> [r.role for r in resolve_roles(["latency_ms", "region"], explicit={"LATENCY_MS": "dimension"})]
    ['dimension', 'dimension']
    """
    chosen = {k.lower(): v for k, v in (explicit or {}).items()}
    signals, signal_inputs = set(signals), {c.lower() for c in signal_inputs}
    out = []
    for name in columns:
        role = default_role(name, signals=signals, signal_inputs=signal_inputs, counts=counts)
        wanted = chosen.get(name.lower())
        if wanted in SETTABLE_ROLES and role.role in ("dimension", "outcome"):
            role = ColumnRole(name, wanted, "mapping")
        out.append(role)
    return out


# -- the column_roles table ----------------------------------------------------------


def _signals(db: Engine) -> tuple[set[str], set[str]]:
    """Signal column names, and every column the user's signals read (``inputs``).

    An expression reads several columns, all recorded in ``inputs``; a database
    written before expressions has only ``source_column``.
    """
    if "signal_definitions" not in db.tables():
        return set(), set()
    has_inputs = "inputs" in db.columns("signal_definitions")
    inputs = "inputs" if has_inputs else "CAST([] AS VARCHAR[])"
    rows = db.execute(f"SELECT name, kind, source_column, {inputs} FROM signal_definitions")
    read: set[str] = set()
    for _name, kind, source, columns in rows:
        if kind != "user":
            continue
        read.update(c for c in [source, *(columns or [])] if c is not None)
    return {r[0] for r in rows}, read


def _stored(db: Engine) -> dict[str, tuple[str, str]]:
    if "column_roles" not in db.tables():
        return {}
    rows = db.execute('SELECT "column", role, why FROM column_roles')
    return {r[0]: (r[1], r[2]) for r in rows}


def check_explicit_roles(db: Database, explicit: Mapping[str, str], *, source: str | None) -> None:
    """Refuse an explicit role for a column that is a signal of this database.

    (``schema.Mapping`` already refuses unknown role words and roles for ids, time,
    identities, forensics' own columns and the mapping's own signals.)
    """
    if not explicit or "signal_definitions" not in db.tables():
        return
    signals, _ = _signals(db)
    lower = {s.lower(): s for s in signals}
    for name in explicit:
        if name.lower() in lower:
            raise ConfigError(
                f"{source or 'mapping'}: [roles] {name}: {lower[name.lower()]} is a signal "
                "column of this database, whose role is fixed; roles ("
                + ", ".join(f'"{r}"' for r in SETTABLE_ROLES)
                + ") can be set for your data's columns only"
            )


def record_roles(db: Database, explicit: Mapping[str, str] | None = None) -> list[str]:
    """Resolve every column's role and write them to ``column_roles`` (ingest calls this).

    Explicit roles recorded before are kept unless ``explicit`` sets the column
    again; an explicit role for a column not in ``requests`` yet is kept for when
    a file brings it. Returns notes for the user: roles that changed, roles
    waiting for their column.
    """
    stored = _stored(db)
    chosen = {n: r for n, (r, why) in stored.items() if why == "mapping"}
    for name, role in (explicit or {}).items():
        for old in [k for k in chosen if k.lower() == name.lower()]:
            del chosen[old]
        chosen[name] = role
    present = list(db.columns("requests"))
    signals, signal_inputs = _signals(db)
    resolved = resolve_roles(
        present,
        explicit=chosen,
        signals=signals,
        signal_inputs=signal_inputs,
        counts=db.meta(COUNTS_META),
    )
    lower = {c.lower() for c in present}
    waiting = [
        ColumnRole(n, cast(RoleName, r), "mapping")
        for n, r in chosen.items()
        if n.lower() not in lower
    ]
    notes = [
        f"role of {r.column}: {stored[r.column][0]} -> {r.role} ({r.why})"
        for r in resolved
        if r.column in stored and stored[r.column][0] != r.role
    ]
    later = [f"{r.column} ({r.role})" for r in waiting if r.column in (explicit or {})]
    if later:
        # One line for all of them: a preset names many columns a file may not have.
        notes.append(
            f"role{'s' if len(later) > 1 else ''} of {', '.join(later)} kept for later: "
            f"no file has {'these columns' if len(later) > 1 else 'that column'} yet"
        )
    rows = [*resolved, *waiting]
    db.execute("DELETE FROM column_roles")
    if rows:
        db.execute(
            "INSERT INTO column_roles SELECT unnest($c), unnest($r), unnest($w)",
            {
                "c": [r.column for r in rows],
                "r": [r.role for r in rows],
                "w": [r.why for r in rows],
            },
        )
    return notes


def column_roles(db: Engine) -> pl.DataFrame:
    """The role of every column of ``requests``, in table order, as recorded by ingest.

    A column with no recorded role (a database written before roles were
    recorded) gets its default.

    Returns
    -------
    pl.DataFrame
        ``column, role, why``.

    Examples
    --------
    >>> column_roles(Database(":memory:")).columns
    ['column', 'role', 'why']
    """

    def lookup() -> pl.DataFrame:
        schema = {"column": pl.Utf8, "role": pl.Utf8, "why": pl.Utf8}
        present = list(db.columns("requests"))
        if not present:
            return pl.DataFrame(schema=schema)
        stored = _stored(db)
        signals, signal_inputs = _signals(db)
        chosen = {n: r for n, (r, why) in stored.items() if why == "mapping"}
        defaults = resolve_roles(
            present,
            explicit=chosen,
            signals=signals,
            signal_inputs=signal_inputs,
            counts=db.meta(COUNTS_META),
        )
        rows = [
            (r.column, *stored[r.column]) if r.column in stored else (r.column, r.role, r.why)
            for r in defaults
        ]
        return pl.DataFrame(rows, schema=schema, orient="row")

    return db.memo(("column_roles",), lookup).clone()


def columns_with_role(db: Engine, role: RoleName) -> list[str]:
    """Columns of ``requests`` with this role, in table order."""
    roles = column_roles(db)
    return roles.filter(pl.col("role") == role)["column"].to_list()
