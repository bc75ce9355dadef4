"""The canonical request-log schema, in one place.

One row per request. The required columns identify a request and say when it
came (``request_id``, ``ts``); the optional ones are used when present, and the
dimensions are whichever the data has (a span export has no ``platform`` or
``routing_pool``); any other column is kept as it comes.
The README's schema table is generated from ``CANONICAL_COLUMNS`` (``forensics
schema --markdown``) and a test keeps the two in sync.

Every column has a role. The two that matter for slicing are *dimension* (a
possible cause: allowed in predicates, cubes, dashboard filters and the
separation) and *outcome* (measured, never in a predicate). A canonical column's
role is fixed here (``Column.role``: the columns that describe the response are
outcomes); the user's own columns are dimensions unless their name says they are
measured (latency, duration, status, finish reason, error...) or a user-declared
signal reads them; ``[roles]`` in a mapping file overrides any of that (see
``forensics.roles``, which resolves and records them).

A mapping file (TOML) renames a user's columns to canonical names::

    [columns]
    request_id = "req_uuid"      # canonical = "name in your files"
    ts = "timestamp_ms"

    [timestamps]
    epoch_unit = "ms"            # s, ms, us or ns, for numeric timestamps

    [signals.slow]               # a signal of yours: an expression over your columns
    expr = "latency_ms > 30000"  # (or column = "latency_ms", op = ">", value = 30000)

    [roles]                      # column = "dimension" or "outcome"; always wins
    latency_ms = "outcome"
    queue_depth = "dimension"

Counted rows (one row stands for many requests: metrics counted per minute and
per attribute combination) declare the count, and each signal as a count::

    [counts]
    requests = "cnt"             # how many requests the row stands for
    degraded = "bad"             # optional: how many are degraded (else no degraded)
    key = ["minute", "region"]   # optional: the columns that make a row unique

    [signals.stalled]
    count = "value"              # how many of the row's requests show the signal

A counted row needs no ``request_id`` (duplicates are not looked for by id).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from forensics.errors import ConfigError, ExpressionError
from forensics.expression import Compare, Expr, Name, names, parse_expression, render
from forensics.expression import Literal as Constant

__all__ = [
    "CANONICAL_COLUMNS",
    "DIMENSION_COLUMNS",
    "EPOCH_UNITS",
    "EVENT_COLUMNS",
    "FIXED_ROLES",
    "IDENTITY_COLUMNS",
    "INTERNAL_PREFIX",
    "NUMERIC_DIMENSIONS",
    "OUTCOME_COLUMNS",
    "REQUIRED_COLUMNS",
    "SETTABLE_ROLES",
    "Column",
    "Counts",
    "EventMapping",
    "Mapping",
    "UserSignal",
    "column",
    "quote_identifier",
    "schema_markdown",
]

Role = Literal["id", "time", "identity", "dimension", "outcome"]
"""A canonical column's role: an id, the time, an identity (a person), a dimension (a
possible cause, sliced by) or an outcome (measured, never in a predicate)."""

SETTABLE_ROLES: tuple[Role, ...] = ("dimension", "outcome")
"""The roles ``[roles]`` in a mapping file may give a column."""

FIXED_ROLES: tuple[Role, ...] = ("id", "time", "identity")
"""Roles no mapping can change."""

INTERNAL_PREFIX = "_"
"""Columns whose name starts with this are forensics' own (provenance), not dimensions."""

EPOCH_UNITS = ("s", "ms", "us", "ns")
"""Units a numeric ``ts`` may be given in; milliseconds unless the mapping says otherwise."""


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, type, role and the values it may take."""

    name: str
    """Canonical name; other tools rely on it."""
    dtype: str
    """DuckDB type in the ``requests`` table."""
    required: bool
    """A file lacking this column is refused; a row with a null here is rejected."""
    role: Role
    """How forensics uses it: a dimension to slice by, an outcome it measures, an identity..."""
    description: str
    """One line for the README and ``forensics schema``."""
    minimum: float | None = None
    """Smallest valid value (inclusive), for numbers."""
    maximum: float | None = None
    """Largest valid value (inclusive), for numbers."""
    allowed: tuple[int, ...] | None = None
    """The only valid values, for small integer codes."""
    long_text: bool = False
    """Free text that can be long (a response), typed with a cheaper trim."""


CANONICAL_COLUMNS: tuple[Column, ...] = (
    Column("request_id", "VARCHAR", True, "id", "Unique id of the request."),
    Column(
        "ts",
        "TIMESTAMPTZ",
        True,
        "time",
        "Request time: ISO-8601 with Z or offset (naive means UTC), or epoch "
        "milliseconds (other units via the mapping). Stored as UTC.",
    ),
    Column("model", "VARCHAR", False, "dimension", "Model that served the request."),
    Column(
        "platform", "VARCHAR", False, "dimension", "Hardware platform, e.g. tpu, gpu, trainium."
    ),
    Column("routing_pool", "VARCHAR", False, "dimension", "Server pool the router chose."),
    Column(
        "surface", "VARCHAR", False, "dimension", "API surface, e.g. first-party, bedrock, vertex."
    ),
    Column("region", "VARCHAR", False, "dimension", "Serving region."),
    Column("server_id", "VARCHAR", False, "dimension", "Replica or host that served it."),
    Column("user_id", "VARCHAR", False, "identity", "Who sent it (hashed in privacy mode)."),
    Column(
        "session_id",
        "VARCHAR",
        False,
        "identity",
        "Conversation or session (hashed in privacy mode).",
    ),
    Column("task", "VARCHAR", False, "dimension", "Kind of task, e.g. code, chat, summarise."),
    Column("sampler", "VARCHAR", False, "dimension", "Sampling implementation used."),
    Column(
        "prompt_language",
        "VARCHAR",
        False,
        "dimension",
        "Language of the prompt (BCP-47, e.g. en, th, zh-Hans).",
    ),
    Column("prompt_tokens", "BIGINT", False, "dimension", "Prompt length in tokens.", minimum=0),
    Column("output_tokens", "BIGINT", False, "outcome", "Response length in tokens.", minimum=0),
    Column("batch_size", "BIGINT", False, "dimension", "Batch size the request ran in.", minimum=1),
    Column(
        "max_tokens",
        "BIGINT",
        False,
        "dimension",
        "Most output tokens the request allowed (its max_tokens setting).",
        minimum=1,
    ),
    Column(
        "temperature",
        "DOUBLE",
        False,
        "dimension",
        "Sampling temperature; 0 means greedy.",
        minimum=0,
    ),
    Column(
        "prompt_text",
        "VARCHAR",
        False,
        "dimension",
        "The prompt (dropped after signals are computed in privacy mode).",
        long_text=True,
    ),
    Column(
        "response_text",
        "VARCHAR",
        False,
        "outcome",
        "The response (dropped after signals are computed in privacy mode).",
        long_text=True,
    ),
    Column(
        "finish_reason",
        "VARCHAR",
        False,
        "outcome",
        "Why generation stopped, e.g. stop, length (the max_tokens limit), tool_calls.",
    ),
    Column(
        "max_token_rank",
        "BIGINT",
        False,
        "outcome",
        "Largest rank among the sampled tokens; 1 = every token was the most probable.",
        minimum=1,
    ),
    Column(
        "user_feedback", "BIGINT", False, "outcome", "Thumbs: -1, 0, 1 or null.", allowed=(-1, 0, 1)
    ),
    Column(
        "eval_score",
        "DOUBLE",
        False,
        "outcome",
        "Automatic quality score in [0, 1].",
        minimum=0,
        maximum=1,
    ),
)

_BY_NAME = {c.name: c for c in CANONICAL_COLUMNS}

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in CANONICAL_COLUMNS if c.required)
"""Columns every input file must have (after mapping)."""

DIMENSION_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in CANONICAL_COLUMNS if c.role == "dimension" and c.dtype == "VARCHAR"
)
"""Canonical categorical dimensions; extra columns of the user's can be dimensions too."""

NUMERIC_DIMENSIONS: tuple[str, ...] = tuple(
    c.name for c in CANONICAL_COLUMNS if c.role == "dimension" and c.dtype != "VARCHAR"
)
"""Canonical numeric dimensions, sliced as ranges."""

OUTCOME_COLUMNS: tuple[str, ...] = tuple(c.name for c in CANONICAL_COLUMNS if c.role == "outcome")
"""Canonical columns that describe the response: measured, never a slice."""

IDENTITY_COLUMNS: tuple[str, ...] = tuple(c.name for c in CANONICAL_COLUMNS if c.role == "identity")
"""Columns that identify people; hashed in privacy mode, never used as dimensions."""


def column(name: str) -> Column | None:
    """Return the canonical column called ``name``, or None for a user's own column.

    Examples
    --------
    >>> column("ts").dtype
    'TIMESTAMPTZ'
    >>> column("gpu_temperature") is None
    True
    """
    return _BY_NAME.get(name)


def quote_identifier(name: str) -> str:
    """Quote a column or table name for DuckDB SQL.

    Examples
    --------
    >>> quote_identifier("routing_pool")
    '"routing_pool"'
    >>> print(quote_identifier('a"b'))
    "a""b"
    """
    return '"' + name.replace('"', '""') + '"'


_OPS = (">", ">=", "<", "<=", "==", "!=")

_COUNTS_KEYS = ("requests", "degraded", "key")
"""The keys of ``[counts]``."""


@dataclass(frozen=True)
class Counts:
    """``[counts]``: the columns saying how many requests a counted row stands for.

    Examples
    --------
    >>> Counts("cnt").requests
    'cnt'
    """

    requests: str
    """Column of your files holding how many requests the row stands for; kept under its
    own name in ``requests`` with the role ``count``."""
    degraded: str | None = None
    """Column holding how many of them are degraded; without it a counted table has no
    ``degraded`` signal."""
    key: tuple[str, ...] = ()
    """Columns of your files that make a row unique (e.g. the minute and the attributes): a
    second row with the same key is a duplicate (same counts) or a ``duplicate_conflict``
    (other counts). Empty: rows are not compared."""


_SECTIONS = ("columns", "timestamps", "signals", "roles", "counts")
"""The sections a mapping file may have."""


@dataclass(frozen=True)
class UserSignal:
    """A signal of the user's: an expression over the request's columns.

    Declared either as ``expr`` (see ``forensics.expression`` for the grammar)
    or, the older form, as one ``column`` compared with ``op`` and ``value`` (or
    read as true/false alone); both compile through the same path
    (``forensics.signals.user``).

    Examples
    --------
    >>> UserSignal("hit_limit", expr="finish_reason == 'length'").expression
    "finish_reason == 'length'"
    >>> UserSignal("slow", "latency_ms", ">", 30000).expression
    'latency_ms > 30000'
    """

    name: str
    """Name of the signal column in ``requests``."""
    column: str | None = None
    """Older form: the one column it reads (None for an expression)."""
    op: str | None = None
    """Older form: comparison for numeric columns (``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``); None for a boolean column."""
    value: float | None = None
    """Older form: right-hand side of the comparison."""
    description: str = ""
    """What it means, shown in the dashboard and reports."""
    expr: str | None = None
    """The expression, e.g. ``"finish_reason == 'length' or output_tokens >= max_tokens"``."""
    count: str | None = None
    """Counted rows: the column holding how many of the row's requests show the signal."""

    def __post_init__(self) -> None:
        problem = _signal_problem(
            self.name, self.column, self.op, self.value, self.description, self.expr, self.count
        )
        if problem is not None:
            raise ConfigError(f"signal {self.name!r}: {problem}")
        if self.expr is not None:
            parse_expression(self.expr, signal=self.name, where="signal")

    def tree(self, *, where: str = "mapping") -> Expr:
        """The syntax tree: the parsed ``expr``, or ``column op value`` (``column`` alone)."""
        if self.expr is not None:
            return parse_expression(self.expr, signal=self.name, where=where)
        if self.count is not None:
            return Name(1, len(self.count), self.count)
        assert self.column is not None
        name = Name(1, len(self.column), self.column)
        if self.op is None or self.value is None:
            return name
        return Compare(1, len(self.column), self.op, name, Constant(1, 1, float(self.value)), 1)

    @property
    def expression(self) -> str:
        """The expression as text (the older form written as one; a count as its column)."""
        return self.expr if self.expr is not None else render(self.tree())


@dataclass(frozen=True)
class Mapping:
    """How a user's files map onto the canonical schema."""

    columns: dict[str, str] = field(default_factory=dict)
    """canonical name -> the name in the user's files."""
    epoch_unit: str = "ms"
    """Unit of numeric timestamps: s, ms, us or ns."""
    signals: tuple[UserSignal, ...] = ()
    """Columns of the user's declared as signals."""
    source: str | None = None
    """The TOML file this came from, if any."""
    roles: dict[str, str] = field(default_factory=dict)
    """Column -> ``"dimension"`` or ``"outcome"``, overriding the default role (``[roles]``).
    A column is named as stored (canonical name, or your own column's name); the
    name in your files of a column mapped in ``columns`` works too."""
    counts: Counts | None = None
    """Counted rows (``[counts]``): each row stands for many requests; None for one row per
    request."""

    def __post_init__(self) -> None:
        if self.epoch_unit not in EPOCH_UNITS:
            raise ConfigError(
                f"{self.source or 'mapping'}: epoch_unit {self.epoch_unit!r} is not one of "
                f'{", ".join(EPOCH_UNITS)}; set [timestamps] epoch_unit = "ms" (or s, us, ns)'
            )
        sources = list(self.columns.values())
        doubled = sorted({s for s in sources if sources.count(s) > 1})
        if doubled:
            raise ConfigError(
                f"{self.source or 'mapping'}: column(s) {', '.join(doubled)} mapped to more "
                "than one canonical name; map each of your columns once"
            )
        self._check_roles()
        self._check_counts()

    def _check_counts(self) -> None:
        """Counted rows: every signal a count, count columns not mapped, names apart."""
        where = self.source or "mapping"
        for signal in self.signals:
            if signal.count is not None and self.counts is None:
                raise ConfigError(
                    f"{where}: [signals.{signal.name}] count = {signal.count!r} needs the "
                    'number of requests each row stands for: add [counts] requests = "COLUMN"'
                )
            if signal.count is None and self.counts is not None:
                raise ConfigError(
                    f"{where}: [signals.{signal.name}] the rows are counted ([counts]), so a "
                    'signal is a count: write count = "COLUMN" (how many of the row\'s '
                    "requests show it) instead of expr or column"
                )
        if self.counts is None:
            return
        named = {"[counts] requests": self.counts.requests}
        if self.counts.degraded is not None:
            named["[counts] degraded"] = self.counts.degraded
        named |= {f"[signals.{s.name}] count": s.count for s in self.signals if s.count}
        for key, name in named.items():
            if name in self.renames:
                raise ConfigError(
                    f"{where}: {key} = {name!r} is also mapped in [columns] (to "
                    f"{self.renames[name]!r}); a count column is read as a count only, "
                    "so remove it from [columns]"
                )
            if name in self.roles:
                raise ConfigError(
                    f"{where}: [roles] {name}: a count column's role is fixed (count); "
                    "remove it from [roles]"
                )
        in_key = sorted({s.count for s in self.signals if s.count} & set(self.counts.key))
        if in_key:
            raise ConfigError(
                f"{where}: [counts] key holds the signal count column(s) {', '.join(in_key)}; "
                "the key names the columns that say which minute and slice a row is"
            )
        taken = {self.counts.requests.lower()}
        for signal in self.signals:
            if signal.name.lower() in taken:
                raise ConfigError(
                    f"{where}: [signals.{signal.name}] is named like the count column "
                    f"{self.counts.requests!r} and both would be columns of requests; "
                    "rename the signal"
                )

    def _check_roles(self) -> None:
        """Refuse a role word other than dimension/outcome, and roles for fixed columns."""
        where = self.source or "mapping"
        allowed = ", ".join(f'"{r}"' for r in SETTABLE_ROLES)
        signals = {s.name for s in self.signals}
        for name, role in self.roles.items():
            stored = self.renames.get(name, name)
            if role not in SETTABLE_ROLES:
                raise ConfigError(
                    f"{where}: [roles] {name} = {role!r} is not a role; allowed values: {allowed}"
                )
            fixed = _BY_NAME[stored].role if stored in _BY_NAME else None
            if fixed in FIXED_ROLES:
                raise ConfigError(
                    f"{where}: [roles] {name}: {stored} is the request's {fixed} column, whose "
                    f"role is fixed; roles ({allowed}) can be set for the other columns only"
                )
            if stored.startswith(INTERNAL_PREFIX) or stored in signals:
                what = "a signal" if stored in signals else "forensics' own"
                raise ConfigError(
                    f"{where}: [roles] {name}: {stored} is {what} column, whose role is fixed; "
                    f"roles ({allowed}) can be set for your data's columns only"
                )

    @property
    def explicit_roles(self) -> dict[str, str]:
        """``roles`` keyed by the stored column name (canonical where mapped)."""
        return {self.renames.get(name, name): role for name, role in self.roles.items()}

    @property
    def renames(self) -> dict[str, str]:
        """The user's column name -> canonical name."""
        return {src: canonical for canonical, src in self.columns.items()}

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        """Read a mapping TOML file.

        Raises ``ConfigError`` naming the file and the offending key.
        """
        return cls.from_dict(_read_toml(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, object], *, source: str | None = None) -> Mapping:
        """Build a mapping from the parsed TOML structure.

        Examples
        --------
        >>> Mapping.from_dict({"columns": {"request_id": "id"}}).renames
        {'id': 'request_id'}
        """
        where = source or "mapping"
        unknown = sorted(set(data) - set(_SECTIONS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown section(s) {', '.join(unknown)}; "
                f"valid sections: {', '.join(_SECTIONS)}"
            )
        columns = data.get("columns", {})
        if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
            raise ConfigError(
                f'{where}: [columns] must map canonical names to strings, e.g. ts = "time"'
            )
        for canonical in columns:
            if canonical not in _BY_NAME:
                raise ConfigError(
                    f"{where}: [columns] key {canonical!r} is not a canonical column; valid: "
                    + ", ".join(_BY_NAME)
                )
        timestamps = data.get("timestamps", {})
        if not isinstance(timestamps, dict):
            raise ConfigError(f'{where}: [timestamps] must be a table, e.g. epoch_unit = "ms"')
        roles = data.get("roles", {})
        if not isinstance(roles, dict):
            raise ConfigError(f'{where}: [roles] must be a table, e.g. latency_ms = "outcome"')
        signals = []
        raw_signals = data.get("signals", {})
        if not isinstance(raw_signals, dict):
            raise ConfigError(f"{where}: [signals] must be a table of tables, e.g. [signals.slow]")
        for name, spec in raw_signals.items():
            if not isinstance(spec, dict) or not (
                "column" in spec or "expr" in spec or "count" in spec
            ):
                raise ConfigError(
                    f'{where}: [signals.{name}] needs column = "..." (and op/value for a '
                    f'numeric column) or expr = "...", e.g. expr = "latency_ms > 30000" '
                    '(counted rows: count = "COLUMN")'
                )
            extra = sorted(set(spec) - {"column", "op", "value", "description", "expr", "count"})
            if extra:
                raise ConfigError(
                    f"{where}: [signals.{name}] unknown key(s) {', '.join(extra)}; "
                    "valid: expr, column, op, value, description, count"
                )
            signals.append(_user_signal(where, name, spec))
        _check_signal_names(where, signals)
        return cls(
            columns=dict(columns),
            roles=dict(roles),
            epoch_unit=str(timestamps.get("epoch_unit", "ms")),
            signals=tuple(signals),
            source=source,
            counts=_counts(where, data.get("counts")),
        )


def _counts(where: str, raw: object) -> Counts | None:
    """``[counts]``, checked; errors name the file and the key."""
    if raw is None:
        return None
    example = '[counts] requests = "cnt"'
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [counts] must be a table, e.g. {example}")
    unknown = sorted(set(raw) - set(_COUNTS_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: [counts] unknown key(s) {', '.join(unknown)}; valid: "
            + ", ".join(_COUNTS_KEYS)
        )
    key = raw.get("key", [])
    if not isinstance(key, list) or not all(isinstance(k, str) and k.strip() for k in key):
        raise ConfigError(
            f"{where}: [counts] key must list the columns that make a row unique, e.g. "
            'key = ["minute", "region"]'
        )
    if len({k.lower() for k in key}) != len(key):
        raise ConfigError(f"{where}: [counts] key names a column twice; name each once")
    counted = {str(raw.get(k)) for k in ("requests", "degraded") if k in raw} & set(key)
    if counted:
        raise ConfigError(
            f"{where}: [counts] key holds the count column(s) {', '.join(sorted(counted))}; "
            "the key names the columns that say which minute and slice a row is"
        )
    for key_name in ("requests", "degraded"):
        value = raw.get(key_name)
        if key_name in raw and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(
                f"{where}: [counts] {key_name} must name a column of your files, e.g. "
                f'{key_name} = "{"cnt" if key_name == "requests" else "bad"}"'
            )
    if "requests" not in raw:
        raise ConfigError(
            f'{where}: [counts] needs requests = "COLUMN", the column saying how many '
            f"requests each row stands for, e.g. {example}"
        )
    degraded = raw.get("degraded")
    return Counts(
        requests=str(raw["requests"]),
        degraded=None if degraded is None else str(degraded),
        key=tuple(key),
    )


def _read_toml(path: str | Path) -> dict[str, object]:
    """A mapping file's TOML; ``ConfigError`` naming the file when absent or invalid."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: mapping file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); see README 'Mapping files'") from None


def _signal_problem(
    name: object,
    column: object,
    op: object,
    value: object,
    description: object,
    expr: object = None,
    count: object = None,
) -> str | None:
    """What is wrong with a signal's declaration, naming the key to fix; None if nothing.

    The expression itself is read by ``parse_expression``, which names the position.

    Examples
    --------
    >>> _signal_problem("slow", "latency_ms", ">", float("inf"), "")
    'value = inf is not a finite number; write e.g. value = 30000'
    >>> _signal_problem("latency_ms", "latency_ms", ">", 1.0, "")[:40]
    "the signal is named like its column 'lat"
    >>> _signal_problem("slow", "latency_ms", None, None, "", "latency_ms > 1")
    'give either expr or column (with op and value), not both'
    """
    if not isinstance(name, str) or not name.strip():
        return "the signal needs a name, e.g. [signals.slow]"
    if name.startswith(INTERNAL_PREFIX):
        return f"names starting with {INTERNAL_PREFIX!r} are forensics' own; rename the signal"
    if not isinstance(description, str):
        return 'description must be text, e.g. description = "slow answers"'
    if count is not None:
        if column is not None or op is not None or value is not None or expr is not None:
            return "give count alone (counted rows), not with expr, column, op or value"
        if not isinstance(count, str) or not count.strip():
            return 'count must name a column of your files, e.g. count = "value"'
        return None
    if expr is not None:
        if column is not None or op is not None or value is not None:
            return "give either expr or column (with op and value), not both"
        if not isinstance(expr, str):
            return 'expr must be text, e.g. expr = "latency_ms > 30000"'
        return None
    if not isinstance(column, str) or not column.strip():
        return 'column must name a column of your files, e.g. column = "latency_ms"'
    if column.lower() == name.lower():
        return (
            f"the signal is named like its column {column!r}, and both would be columns of "
            f"requests; rename the signal, e.g. [signals.{name}_flag]"
        )
    if (op is None) != (value is None):
        return "give both op and value (numeric column) or neither (boolean column)"
    if op is not None and op not in _OPS:
        return f"op {op!r} is not one of {', '.join(_OPS)}"
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        shown = str(value).lower() if isinstance(value, bool | float) else repr(value)
        return f"value = {shown} is not a finite number; write e.g. value = 30000"
    return None


def _user_signal(where: str, name: str, spec: dict[str, object]) -> UserSignal:
    """One ``[signals.NAME]`` table, checked; errors name the file, the table and the key."""
    column, op, value = spec.get("column"), spec.get("op"), spec.get("value")
    description, expr = spec.get("description", ""), spec.get("expr")
    problem = _signal_problem(name, column, op, value, description, expr, spec.get("count"))
    if problem is not None:
        raise ConfigError(f"{where}: [signals.{name}] {problem}")
    if spec.get("count") is not None:
        return UserSignal(name=name, description=str(description), count=str(spec["count"]))
    if expr is not None:
        tree = parse_expression(expr, signal=name, where=where)
        for read in names(tree):
            if read.name.lower() == name.lower():
                raise ExpressionError.at(
                    where, name, str(expr), read.pos,
                    f"the signal reads a column named like itself ({read.name}), and both would "
                    f"be columns of requests; rename the signal, e.g. [signals.{name}_flag]",
                )  # fmt: skip
        return UserSignal(name=name, description=str(description), expr=str(expr))
    return UserSignal(
        name=name,
        column=str(column),
        op=None if op is None else str(op),
        value=None if value is None else float(value),  # type: ignore[arg-type]
        description=str(description),
    )


def _check_signal_names(where: str, signals: Sequence[UserSignal]) -> None:
    """Signal names are columns of ``requests``: unique without case, and not another's input."""
    seen: dict[str, str] = {}
    for signal in signals:
        other = seen.setdefault(signal.name.lower(), signal.name)
        if other != signal.name:
            raise ConfigError(
                f"{where}: [signals.{other}] and [signals.{signal.name}] differ only in case, "
                "and column names do not; rename one"
            )
    for signal in signals:
        if signal.column is not None:
            if signal.column.lower() in seen:
                raise ConfigError(
                    f"{where}: [signals.{signal.name}] column = {signal.column!r} is the name of "
                    f"signal [signals.{seen[signal.column.lower()]}]; a signal reads a column of "
                    "your files, so rename that signal"
                )
            continue
        for read in names(signal.tree(where=where)):
            if read.name.lower() in seen:
                raise ExpressionError.at(
                    where, signal.name, signal.expression, read.pos,
                    f"{read.name} is the name of signal [signals.{seen[read.name.lower()]}]; a "
                    "signal reads the columns of your files, so rename that signal",
                )  # fmt: skip


def schema_markdown() -> str:
    """Render the canonical schema as a Markdown table (used in the README).

    Examples
    --------
    >>> schema_markdown().splitlines()[0]
    '| column | type | required | meaning |'
    """
    lines = ["| column | type | required | meaning |", "|---|---|---|---|"]
    for c in CANONICAL_COLUMNS:
        lines.append(
            f"| `{c.name}` | {c.dtype} | {'yes' if c.required else ''} | {c.description} |"
        )
    return "\n".join(lines)


EVENT_COLUMNS = ("ts", "kind", "description", "scope")
"""Columns of a change-events file; ``ts`` and ``kind`` are required."""


@dataclass(frozen=True)
class EventMapping:
    """How the columns of a change-events file map onto ``EVENT_COLUMNS``.

    Its TOML has the shape of a request mapping's, with the event columns::

        [columns]
        ts = "deployed_at"        # event column = "name in your file"
        kind = "change_type"

        [timestamps]
        epoch_unit = "s"
    """

    columns: dict[str, str] = field(default_factory=dict)
    """event column -> the name in the user's file."""
    epoch_unit: str = "ms"
    """Unit of numeric timestamps: s, ms, us or ns."""
    source: str | None = None
    """The TOML file this came from, if any."""

    @classmethod
    def load(cls, path: str | Path) -> EventMapping:
        """Read an events mapping TOML file; errors name the file and the key."""
        return cls.from_dict(_read_toml(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, object], *, source: str | None = None) -> EventMapping:
        """Build an events mapping from the parsed TOML structure.

        Examples
        --------
        >>> EventMapping.from_dict({"columns": {"kind": "type"}}).columns
        {'kind': 'type'}
        """
        where = source or "mapping"
        unknown = sorted(set(data) - {"columns", "timestamps"})
        if unknown:
            raise ConfigError(
                f"{where}: unknown section(s) {', '.join(unknown)} for an events file; "
                "valid sections: columns, timestamps"
            )
        columns = data.get("columns", {})
        if not isinstance(columns, dict) or not all(
            isinstance(v, str) and v for v in columns.values()
        ):
            raise ConfigError(
                f'{where}: [columns] must map event columns to names, e.g. kind = "type"'
            )
        for key in columns:
            if key not in EVENT_COLUMNS:
                raise ConfigError(
                    f"{where}: [columns] key {key!r} is not an event column; valid: "
                    + ", ".join(EVENT_COLUMNS)
                )
        names = [v.lower() for v in columns.values()]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: [columns] maps one of your columns twice; map each once")
        timestamps = data.get("timestamps", {})
        if not isinstance(timestamps, dict) or set(timestamps) - {"epoch_unit"}:
            raise ConfigError(f'{where}: [timestamps] takes only epoch_unit, e.g. epoch_unit = "s"')
        unit = timestamps.get("epoch_unit", "ms")
        if unit not in EPOCH_UNITS:
            raise ConfigError(
                f"{where}: [timestamps] epoch_unit = {unit!r} is not one of "
                f"{', '.join(EPOCH_UNITS)}"
            )
        return cls(columns=dict(columns), epoch_unit=str(unit), source=source)
