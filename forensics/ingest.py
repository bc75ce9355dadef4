"""Readers, validation and quarantine: request logs and change events into DuckDB.

Each file goes in atomically:

1. its content hash is looked up in ``ingested_files``: a file seen before adds nothing;
2. Parquet is read by DuckDB directly; CSV and JSON lines are split into rows in
   Python (exact line numbers, bad UTF-8 and malformed lines caught per row) and
   staged as text in a temporary table, before the file's transaction begins
   (DuckDB keeps what a transaction inserted in memory its limit does not
   count, so staging inside it grew with the file);
3. in one transaction, the columns are renamed by the mapping and checked: a file missing a
   required column is refused and nothing from it is written;
4. one SQL statement types every canonical column, finds each row's first
   problem (``REASONS``), computes the signals and inserts the good rows; bad
   rows go to ``rejected_rows`` with their reason and raw content;
5. a request_id seen twice is settled: the same content is an exact duplicate
   (skipped, counted), different content is rejected as ``duplicate_conflict``.
   With ``duplicate_horizon`` (``forensics watch`` sets 7 days), only stored rows
   whose time is at most that long before the file's earliest row are compared,
   so a file's cost does not grow with the history already stored.

Counted rows (``[counts]`` in the mapping: a row stands for many requests) keep
their count column under its own name (role ``count``) and each signal as the
count of the row's requests showing it (a BIGINT named after the signal), both
non-negative integers, a signal's count at most the row's (else ``out_of_range``).
They need no ``request_id``, and duplicates are not looked for by id (a file seen
before still adds nothing). No built-in detector runs on them, and ``degraded``
is there only when ``[counts] degraded`` names its count. A database holds
counted rows or request rows, never both.

After the files, every column's role (dimension, outcome...) is resolved and
recorded in ``column_roles`` (``forensics.roles``), the mapping's ``[roles]`` first.

For every file: rows read = accepted + rejected + duplicates.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
from tqdm.auto import tqdm

from forensics.db import Database
from forensics.errors import (
    ConfigError,
    DiskFullError,
    ExpressionError,
    ForensicsError,
    IngestError,
    InternalError,
    MissingColumnError,
    SchemaError,
)
from forensics.otlp import otlp_roles
from forensics.privacy import DROPPED_COLUMNS, Privacy, privacy_settings, treatment
from forensics.readers import (
    FORMATS,
    Format,
    PrivateFile,
    Redaction,
    Source,
    check_parquet,
    detect_format,
    file_sha256,
    open_csv,
    open_json,
    open_parquet,
    resolve_paths,
)
from forensics.roles import COUNTS_META, check_explicit_roles, record_roles
from forensics.schema import (
    CANONICAL_COLUMNS,
    EVENT_COLUMNS,
    INTERNAL_PREFIX,
    REQUIRED_COLUMNS,
    Column,
    Counts,
    EventMapping,
    Mapping,
    UserSignal,
    quote_identifier,
)
from forensics.signals import (
    DEGRADED,
    DETECTORS,
    ReadableColumns,
    SignalParams,
    degraded_expression,
    readable_columns,
    register_functions,
    signal_expressions,
    signals_relation,
    user_signal_parameters,
)
from forensics.signals.user import Coercion, compile_signal

__all__ = [
    "FORMATS",
    "REASONS",
    "FileSummary",
    "IngestSummary",
    "detect_format",
    "ingest_events",
    "ingest_files",
    "resolve_paths",
]

logger = logging.getLogger("forensics")

PRIVATE_TEXT_COLUMNS = tuple(c.name for c in CANONICAL_COLUMNS if c.long_text)
"""Free text (prompt, response) that privacy mode drops once the signals are computed."""

REASONS: dict[str, str] = {
    "invalid_utf8": "the line is not valid UTF-8",
    "malformed_json": "the line is not valid JSON",
    "not_a_json_object": "the line is JSON but not an object",
    "duplicate_key": "the JSON object has a key twice: which value is meant?",
    "wrong_field_count": "the CSV row has more or fewer fields than the header",
    "missing_required": "a required column is null or empty",
    "bad_timestamp": "ts is neither ISO-8601 nor an epoch number",
    "wrong_type": "a value does not have the column's type",
    "out_of_range": "a value is outside the column's valid range",
    "duplicate_conflict": "the request_id (counted rows: the [counts] key) was seen before "
    "with different content",
}
"""Every reason a row can be quarantined for, in the order rows are checked."""

TS_VALID_FROM = "1990-01-01"
"""Timestamps before this are rejected as out of range (usually a wrong epoch unit)."""
TS_VALID_TO = "2100-01-01"
"""Timestamps from this on are rejected as out of range."""

_PROVENANCE = ("_source_file_id", "_source_row")
_EPOCH_MICROS: dict[str, int | None] = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}
"""Microseconds per unit of an epoch timestamp (a nanosecond is a thousandth of one)."""


# -- results ------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSummary:
    """What happened to one input file."""

    path: str
    """The file as given (resolved)."""
    format: str
    """parquet, jsonl, json, csv or otlp (OTLP JSON traces)."""
    status: Literal["ingested", "already ingested", "refused", "empty", "failed"]
    """ingested; already ingested (same content hash; nothing added); refused (a
    file-level problem, nothing written); empty (no rows); failed (a bug in
    forensics, nothing written; the run ends with ``InternalError``)."""
    rows_read: int = 0
    """Data rows (or non-blank lines; OTLP: spans) read from the file: accepted + rejected
    + duplicates + skipped."""
    accepted: int = 0
    """Rows written to ``requests``."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Rows written to ``rejected_rows``, by reason code."""
    duplicates: int = 0
    """Exact duplicates skipped (same request_id, same content)."""
    skipped: int = 0
    """Records that are not requests: OTLP spans that are not GenAI inferences (HTTP,
    database, tool calls...)."""
    sha256: str = ""
    """Content hash of the file."""
    message: str | None = None
    """Why it was refused or skipped."""
    notes: tuple[str, ...] = ()
    """Things the user should know (renamed columns, widened types...)."""

    @property
    def rejected_total(self) -> int:
        """Number of rows rejected, all reasons together."""
        return sum(self.rejected.values())


@dataclass(frozen=True)
class IngestSummary:
    """The result of one ingest run, file by file."""

    files: tuple[FileSummary, ...]
    """One entry per file, in the order they were read."""
    db: str
    """The database written to."""
    notes: tuple[str, ...] = ()
    """Things the user should know about the whole run (roles that changed...)."""

    @property
    def rows_read(self) -> int:
        """Rows read over all files."""
        return sum(f.rows_read for f in self.files)

    @property
    def accepted(self) -> int:
        """Rows accepted over all files."""
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        """Rows rejected over all files."""
        return sum(f.rejected_total for f in self.files)

    @property
    def duplicates(self) -> int:
        """Exact duplicates skipped over all files."""
        return sum(f.duplicates for f in self.files)

    @property
    def skipped(self) -> int:
        """Spans that are not GenAI inferences, over all files (OTLP input)."""
        return sum(f.skipped for f in self.files)

    @property
    def refused(self) -> tuple[FileSummary, ...]:
        """Files refused as a whole."""
        return tuple(f for f in self.files if f.status == "refused")

    def table(self, *, problems: bool = True) -> str:
        """A plain-text table of the per-file counts, for terminals and logs.

        Under it: rejected rows by reason, notes, and why a file was skipped;
        ``problems=False`` leaves out why files were refused or failed (the CLI
        prints those as ``error:`` lines, once).
        """
        spans = any(f.format == "otlp" for f in self.files)
        header: tuple[str, ...] = ("file", "status", "read", "accepted", "rejected", "duplicates")
        header += ("skipped",) if spans else ()
        rows = [header]
        for f in self.files:
            counts = [f.rows_read, f.accepted, f.rejected_total, f.duplicates]
            counts += [f.skipped] if spans else []
            rows.append((f.path, f.status, *map(str, counts)))
        if len(self.files) > 1:
            counts = [self.rows_read, self.accepted, self.rejected, self.duplicates]
            counts += [self.skipped] if spans else []
            rows.append(("total", "", *map(str, counts)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = []
        for i, r in enumerate(rows):
            cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
            cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        for f in self.files:
            if f.rejected:
                reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(f.rejected.items()))
                lines.append(f"{f.path}: rejected by reason: {reasons}")
            if f.message and (problems or f.status not in ("refused", "failed")):
                # A refusal's message names the file itself (it is also the error text).
                named = f.message.startswith(f"{f.path}: ")
                lines.append(f.message if named else f"{f.path}: {f.message}")
            for note in f.notes:
                lines.append(f"{f.path}: note: {note}")
        if spans:
            lines.append(
                "read = accepted + rejected + duplicates + skipped; skipped: OTLP spans that "
                "are not GenAI inferences (HTTP, database, tool calls...), counted, not loaded"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


# -- column plan --------------------------------------------------------------------


_NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL",
)  # fmt: skip
_INTEGER_TYPES = _NUMERIC_TYPES[:10]


def _is_numeric(dtype: str) -> bool:
    return dtype.upper().startswith(_NUMERIC_TYPES) or dtype.upper().startswith("DECIMAL")


def _is_integer(dtype: str) -> bool:
    return dtype.upper() in _INTEGER_TYPES


def _is_text(dtype: str) -> bool:
    return dtype.upper() in ("VARCHAR", "JSON") or dtype.upper().startswith("VARCHAR")


def _is_nested(dtype: str) -> bool:
    upper = dtype.upper()
    return upper.endswith("]") or upper.startswith(("STRUCT", "MAP", "UNION", "LIST"))


@dataclass
class _Check:
    condition: str
    reason: str
    column: str
    bad_value: str


@dataclass
class _Plan:
    """How each source column becomes a typed column of ``requests``."""

    values: dict[str, str] = field(default_factory=dict)
    """Target column -> SQL producing its typed value."""
    checks: list[_Check] = field(default_factory=list)
    """Row checks, in order; the first failing one is the row's reason."""
    extras: dict[str, str] = field(default_factory=dict)
    """User's extra column -> DuckDB type in ``requests``."""
    notes: list[str] = field(default_factory=list)
    """Things to tell the user."""
    renamed: dict[str, str] = field(default_factory=dict)
    """User's column -> the name it is kept under, when its own clashes with forensics'."""
    typed: dict[str, str] = field(default_factory=dict)
    """Canonical column -> the name its typed value has in ``_typed_relation``."""


TRIMMED_SPACES = "[\\x{20}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{202F}\\x{205F}\\x{3000}]"
"""RE2 class of the characters DuckDB's ``trim()`` removes (Unicode space separators);
tests/test_ingest.py checks it against ``trim()`` on every code point."""


def _text_value(src: str, *, long_text: bool = False) -> str:
    """SQL: a text value without surrounding spaces; null when empty, but for free text.

    A blank prompt or response is a fact (an answer of nothing is the symptom
    ``empty_response`` looks for), so free text (``long_text``) keeps it as ``''``;
    a missing one stays null. Ids, names and codes that are blank are missing.

    ``trim()`` decodes every character of its input: on long texts (responses)
    that costs more than the rest of the typing, so for them two anchored regexes
    look at the first and last character and ``trim()`` runs only where it changes
    something. Short values (ids, names) are cheaper to trim than to test.

    Examples
    --------
    >>> import duckdb
    >>> texts = (" a\N{IDEOGRAPHIC SPACE}", "a b", "  ", "")
    >>> for long_text in (False, True):
    ...     sql = f"SELECT {_text_value('$t', long_text=long_text)}"
    ...     print([duckdb.execute(sql, {"t": t}).fetchall()[0][0] for t in texts])
    ['a', 'a b', None, None]
    ['a', 'a b', '', '']
    """
    text = f"CAST({src} AS VARCHAR)"
    if not long_text:
        return f"NULLIF(trim({text}), '')"
    edge = f"regexp_matches({text}, '^{TRIMMED_SPACES}') OR regexp_matches({text}, '{TRIMMED_SPACES}$')"
    return f"CASE WHEN {edge} THEN trim({text}) ELSE {text} END"


_NUMBER = "[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?"
"""RE2: text that is a decimal number (an epoch timestamp when it stands for ts)."""
_INTEGER_20 = "[+-]?[0-9]{1,20}"
"""RE2: an integer of at most 20 digits: exact as HUGEINT even times 10^6."""
_EXACT_DOUBLE = 2.0**53
"""Integers at least this large are not all exact as DOUBLE."""


@dataclass(frozen=True)
class _Typed:
    """How one source column becomes a typed value, and how it can fail."""

    value: str
    """SQL: the typed value; null when the input is absent or bad."""
    wrong: str
    """SQL: the input is there but is not of the type (wrong_type, bad_timestamp)."""
    out_of_range: str
    """SQL: the input is a number the column's type cannot hold (too large or small)."""


def _epoch_bounds() -> tuple[int, int]:
    """Microseconds since 1970 of ``TS_VALID_FROM`` and ``TS_VALID_TO``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return tuple(  # type: ignore[return-value]
        (datetime.fromisoformat(d).replace(tzinfo=UTC) - epoch) // timedelta(microseconds=1)
        for d in (TS_VALID_FROM, TS_VALID_TO)
    )


_BAD_OFFSET = (
    "[0-9]:[0-9]{2}(:[0-9]{2}([.,][0-9]*)?)? ?[+-]"
    "((2[4-9]|[3-9][0-9])(:?[0-9]{2})?|[0-9]{2}:?[6-9][0-9])$"
)
"""RE2: a time with a UTC offset of 24 hours or more, or of 60 minutes or more.

DuckDB accepts ``+25:00`` (shifting the time by a day); RFC 3339 allows hours
00-23 and minutes 00-59, so such a time is a ``bad_timestamp``."""


def _iso_timestamp(text: str) -> str:
    """SQL: ISO-8601 / RFC 3339 text as TIMESTAMPTZ, null when it is not one.

    RFC 3339 allows a lowercase ``t`` and ``z``, which DuckDB does not read;
    an offset out of range is refused (``_BAD_OFFSET``).

    Examples
    --------
    >>> import duckdb
    >>> sql = f"SELECT CAST({_iso_timestamp('$t')} AS VARCHAR)"
    >>> con = duckdb.connect()
    >>> _ = con.execute("SET TimeZone = 'UTC'")
    >>> for t in ("2025-08-01t12:00:00z", "2025-08-01T12:00:00+25:00", "2025-08-01T12:00:00+0230"):
    ...     print(con.execute(sql, {"t": t}).fetchall()[0][0])
    2025-08-01 12:00:00+00
    None
    2025-08-01 09:30:00+00
    """
    upper = (
        f"regexp_replace(regexp_replace({text}, '^([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})t', '\\1T'), "
        "'z$', 'Z')"
    )
    return (
        f"CASE WHEN regexp_matches({text}, '{_BAD_OFFSET}') THEN NULL "
        f"ELSE try_cast({upper} AS TIMESTAMPTZ) END"
    )


def _epoch_value(micros: str, exact: bool) -> str:
    """SQL: the timestamp of ``micros`` since 1970 when in the valid range, else null."""
    low, high = _epoch_bounds()
    bigint = f"CAST({micros} AS BIGINT)" if exact else f"CAST(round({micros}) AS BIGINT)"
    return f"CASE WHEN {micros} >= {low} AND {micros} < {high} THEN make_timestamptz({bigint}) END"


def _epoch_integer(h: str, unit: str) -> str:
    """SQL: ``h`` (a HUGEINT of at most 20 digits) in ``unit`` as whole microseconds."""
    if unit == "ns":
        return f"(({h} + 500) // 1000)"
    return f"({h} * {_EPOCH_MICROS[unit]})"


def _plan_timestamp(src: str, dtype: str, epoch_unit: str, v: str | None = None) -> _Typed:
    """The ``ts`` column: ISO-8601 text or an epoch number in ``epoch_unit``.

    An epoch number that falls outside ``TS_VALID_FROM``..``TS_VALID_TO`` (a
    wrong unit, a corrupt value, 1e300) is ``out_of_range``; any size of number
    is handled without overflow: integers exactly, as HUGEINT, others as DOUBLE.
    ``v`` names a column holding the value already (so conditions do not
    compute it again); by default they repeat the value's SQL.
    """
    upper = dtype.upper()
    factor = float(_EPOCH_MICROS[epoch_unit] or 1e-3)
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return _Typed(f"CAST({src} AS TIMESTAMPTZ)", "false", "false")
    if _is_integer(dtype):
        h = f"try_cast({src} AS HUGEINT)"
        micros = f"CASE WHEN abs({h}) <= 1e20 THEN {_epoch_integer(h, epoch_unit)} END"
        value = _epoch_value(micros, exact=True)
        return _Typed(value, "false", f"{v or f'({value})'} IS NULL AND {src} IS NOT NULL")
    if _is_numeric(dtype):
        d = f"CAST({src} AS DOUBLE)"
        value = (
            f"CASE WHEN isfinite({d}) THEN {_epoch_value(f'({d} * {factor!r})', exact=False)} END"
        )
        ref = v or f"({value})"
        return _Typed(
            value,
            f"{ref} IS NULL AND {src} IS NOT NULL AND NOT isfinite({d})",
            f"{ref} IS NULL AND isfinite({d})",
        )
    if _is_text(dtype):
        text = _text_value(src)
        h = f"CAST({text} AS HUGEINT)"
        d = f"try_cast({text} AS DOUBLE)"
        value = (
            f"CASE WHEN regexp_full_match({text}, '{_INTEGER_20}') "
            f"THEN {_epoch_value(_epoch_integer(h, epoch_unit), exact=True)} "
            f"WHEN regexp_full_match({text}, '{_NUMBER}') "
            f"THEN {_epoch_value(f'({d} * {factor!r})', exact=False)} "
            f"ELSE {_iso_timestamp(text)} END"
        )
        ref = v or f"({value})"
        number = f"regexp_full_match({text}, '{_NUMBER}')"
        return _Typed(
            value,
            f"{ref} IS NULL AND {text} IS NOT NULL AND NOT {number}",
            f"{ref} IS NULL AND {number}",
        )
    return _Typed("CAST(NULL AS TIMESTAMPTZ)", f"{src} IS NOT NULL", "false")


def _plan_integer(src: str, dtype: str, v: str | None = None) -> _Typed:
    """A BIGINT column: exact integers.

    A fraction or a non-number is ``wrong_type``; an integer (or infinity) that
    BIGINT cannot hold is ``out_of_range``. ``v``: see ``_plan_timestamp``.
    """
    if _is_integer(dtype):
        value = f"try_cast({src} AS BIGINT)"
        return _Typed(value, "false", f"{v or value} IS NULL AND {src} IS NOT NULL")
    if _is_numeric(dtype):
        d = f"CAST({src} AS DOUBLE)"
        value = f"CASE WHEN isfinite({d}) AND {d} = floor({d}) THEN try_cast({d} AS BIGINT) END"
        ref = v or f"({value})"
        fraction = f"(isnan({d}) OR (isfinite({d}) AND {d} <> floor({d})))"
        return _Typed(
            value,
            f"{ref} IS NULL AND {src} IS NOT NULL AND {fraction}",
            f"{ref} IS NULL AND {src} IS NOT NULL AND NOT {fraction}",
        )
    if _is_text(dtype):
        text = _text_value(src)
        d = f"try_cast({text} AS DOUBLE)"
        integer = f"regexp_full_match({text}, '[+-]?[0-9]+')"
        # Digits alone are cast exactly; other numbers ("1.0", "2e3") only while exact as DOUBLE.
        whole = f"isfinite({d}) AND {d} = floor({d}) AND abs({d}) < {_EXACT_DOUBLE!r}"
        value = (
            f"CASE WHEN {integer} THEN try_cast({text} AS BIGINT) "
            f"WHEN {whole} THEN CAST({d} AS BIGINT) END"
        )
        ref = v or f"({value})"
        not_a_whole = f"(NOT {integer} AND ({d} IS NULL OR isnan({d}) OR (isfinite({d}) AND {d} <> floor({d}))))"
        return _Typed(
            value,
            f"{ref} IS NULL AND {text} IS NOT NULL AND {not_a_whole}",
            f"{ref} IS NULL AND {text} IS NOT NULL AND NOT {not_a_whole}",
        )
    return _Typed("CAST(NULL AS BIGINT)", f"{src} IS NOT NULL", "false")


def _plan_double(src: str, dtype: str, v: str | None = None) -> _Typed:
    """A DOUBLE column: NaN or a non-number is ``wrong_type``, infinity ``out_of_range``.

    ``v``: see ``_plan_timestamp``.
    """
    if _is_numeric(dtype):
        d = f"CAST({src} AS DOUBLE)"
    elif _is_text(dtype):
        d = f"try_cast({_text_value(src)} AS DOUBLE)"
    else:
        return _Typed("CAST(NULL AS DOUBLE)", f"{src} IS NOT NULL", "false")
    value = f"CASE WHEN isfinite({d}) THEN {d} END"
    ref = v or f"({value})"
    present = f"{src} IS NOT NULL" if _is_numeric(dtype) else f"{_text_value(src)} IS NOT NULL"
    return _Typed(
        value,
        f"{ref} IS NULL AND {present} AND ({d} IS NULL OR isnan({d}))",
        f"{ref} IS NULL AND {present} AND isinf({d})",
    )


def _range_condition(col: Column, value: str) -> str | None:
    parts = []
    if col.minimum is not None:
        parts.append(f"{value} < {float(col.minimum)!r}")
    if col.maximum is not None:
        parts.append(f"{value} > {float(col.maximum)!r}")
    if col.allowed is not None:
        parts.append(f"{value} NOT IN ({', '.join(str(int(a)) for a in col.allowed)})")
    if not parts:
        return None
    return f"{value} IS NOT NULL AND ({' OR '.join(parts)})"


def _plan_columns(
    path: Path,
    source: Source,
    mapping: Mapping,
    reserved: set[str],
    privacy: Privacy | None = None,
) -> tuple[_Plan, dict[str, str]]:
    """Map source columns to canonical ones and plan typing and checks.

    In privacy mode a rejected value of a hashed column is kept hashed, of a
    dropped one not at all, and a column of the file that privacy mode hashes or
    drops but that is not the canonical one (the mapping names another) is not kept.
    Returns the plan and canonical name -> source column name.
    """
    plan = _Plan()
    renames = mapping.renames
    canonical_names = {c.name for c in CANONICAL_COLUMNS}
    lower_canonical = {c.lower(): c for c in canonical_names}
    canonical_src: dict[str, str] = {}
    extra_src: dict[str, str] = {}
    counted = _count_columns(mapping.counts, mapping.signals)
    absent = [(col.name, src) for col, src in counted if src not in source.columns]
    if absent:
        name, src = absent[0]
        raise SchemaError(
            f"{path}: the count column {src!r} ({_count_key(mapping.counts, name)} in "
            f"{mapping.source or 'the mapping'}) is not in the file; columns found: "
            f"{', '.join(source.columns) or '(none)'}; name the column in the mapping"
        )
    count_src = {src for _, src in counted}
    for name in source.columns:
        if name in count_src:
            continue
        target = renames.get(name)
        if target is None and name in canonical_names and name not in mapping.columns:
            target = name
        if target is None and name.lower() in lower_canonical and name not in renames:
            candidate = lower_canonical[name.lower()]
            if candidate not in mapping.columns and candidate not in source.columns:
                target = candidate
                plan.notes.append(f"column {name!r} read as {candidate!r}")
        if target is not None:
            if target in canonical_src:
                raise SchemaError(
                    f"{path}: both {canonical_src[target]!r} and {name!r} map to {target!r}; "
                    "keep one, or map the other to a different name in the mapping file"
                )
            canonical_src[target] = name
        else:
            extra_src[name] = name
    required = REQUIRED_COLUMNS if not counted else _COUNTED_REQUIRED
    missing = [c for c in required if c not in canonical_src]
    if missing:
        raise MissingColumnError.for_file(
            str(path), missing, list(source.columns), mapped=mapping.columns
        )

    taken_lower = {c.lower() for c in source.columns}
    typed_columns = [
        (c, canonical_src[c.name]) for c in CANONICAL_COLUMNS if c.name in canonical_src
    ]
    for col, src_name in [*typed_columns, *counted]:
        src = quote_identifier(src_name)
        dtype = source.columns[src_name]
        if (
            col.dtype == "VARCHAR"
            and dtype.upper() == "VARCHAR[]"
            and treatment(src_name, mapping) is None
        ):
            # A list of texts (a span's finish reasons, one per choice), joined. Not
            # an identity or a text privacy mode hashes or drops: the reader has made
            # those text already, in either mode they stay one value or wrong_type.
            src, dtype = f"array_to_string({src}, ',')", "VARCHAR"
        bad = _bad_value(src_name, mapping, privacy)
        # The typed value is computed once, in a projection under this name (see
        # _typed_relation); the checks read it there rather than computing it again.
        alias = "_typed_" + col.name
        while alias.lower() in taken_lower:
            alias = "_" + alias
        v = quote_identifier(alias)
        if _is_nested(dtype):
            plan.values[col.name] = f"CAST(NULL AS {col.dtype})"
            plan.checks.append(_Check(f"{src} IS NOT NULL", "wrong_type", col.name, bad))
            if col.required:
                plan.checks.append(_Check(f"{src} IS NULL", "missing_required", col.name, bad))
            continue
        if col.dtype == "TIMESTAMPTZ":
            typed = _plan_timestamp(src, dtype, mapping.epoch_unit, v)
            value = typed.value
            if col.required:
                presence = _text_value(src) if _is_text(dtype) else src
                plan.checks.append(_Check(f"{presence} IS NULL", "missing_required", col.name, bad))
            plan.checks.append(_Check(typed.wrong, "bad_timestamp", col.name, bad))
            plan.checks.append(_Check(typed.out_of_range, "out_of_range", col.name, bad))
            plan.checks.append(
                _Check(
                    f"{v} < TIMESTAMPTZ '{TS_VALID_FROM}' OR {v} >= TIMESTAMPTZ '{TS_VALID_TO}'",
                    "out_of_range",
                    col.name,
                    bad,
                )
            )
        elif col.dtype in ("BIGINT", "DOUBLE"):
            typed = (_plan_integer if col.dtype == "BIGINT" else _plan_double)(src, dtype, v)
            value = typed.value
            if col.required:
                presence = _text_value(src) if _is_text(dtype) else src
                plan.checks.append(_Check(f"{presence} IS NULL", "missing_required", col.name, bad))
            plan.checks.append(_Check(typed.wrong, "wrong_type", col.name, bad))
            plan.checks.append(_Check(typed.out_of_range, "out_of_range", col.name, bad))
        else:
            value = _text_value(src, long_text=col.long_text)
            if col.required:
                plan.checks.append(_Check(f"{v} IS NULL", "missing_required", col.name, bad))
            # A JSON object, array or boolean is not text, nor is a typed boolean.
            not_text = source.not_text.get(src_name)
            if not_text is None and dtype.upper() == "BOOLEAN":
                not_text = f"{src} IS NOT NULL"
            if not_text is not None:
                plan.checks.append(_Check(not_text, "wrong_type", col.name, bad))
        range_check = _range_condition(col, v)
        if range_check is not None:
            plan.checks.append(_Check(range_check, "out_of_range", col.name, bad))
        plan.values[col.name] = value
        plan.typed[col.name] = alias
    if counted:
        total = quote_identifier(plan.typed[counted[0][0].name])
        for col, src_name in counted[1:]:
            # A row cannot show a signal in more requests than it stands for.
            plan.checks.append(
                _Check(
                    f"{quote_identifier(plan.typed[col.name])} > {total}",
                    "out_of_range",
                    col.name,
                    f"CAST({quote_identifier(src_name)} AS VARCHAR)",
                )
            )
        plan.extras.update({col.name: "BIGINT" for col, _ in counted})
        in_file = {col.name: src for col, src in counted}
        plan.checks = [
            _Check(c.condition, c.reason, in_file.get(c.column, c.column), c.bad_value)
            for c in plan.checks
        ]

    clashing = {n.lower() for n in (*reserved, *canonical_names)}
    taken = clashing | {n.lower() for n in source.columns}
    for name in extra_src:
        if privacy is not None and treatment(name, mapping) is not None:
            plan.notes.append(
                f"column {name!r} is not the {mapping.renames.get(name, name).lower()} the "
                "mapping names; privacy mode keeps nothing of it"
            )
            continue
        dtype = source.columns[name]
        target = name
        if name.lower() in clashing or name.startswith(INTERNAL_PREFIX):
            target = _kept_name(name, taken)
            taken.add(target.lower())
            plan.renamed[name] = target
            plan.notes.append(
                f"column {name!r} clashes with a forensics column; kept as {target!r}"
            )
        src = quote_identifier(name)
        if _is_nested(dtype):
            plan.values[target] = f"CAST(to_json({src}) AS VARCHAR)"
            plan.extras[target] = "VARCHAR"
        else:
            plan.values[target] = src
            plan.extras[target] = dtype
    # Move required-field checks first: a row missing request_id is reported as that.
    plan.checks.sort(key=lambda c: 0 if c.reason == "missing_required" else 1)
    return plan, canonical_src


def _bad_value(name: str, mapping: Mapping, privacy: Privacy | None) -> str:
    """SQL: the value of column ``name`` kept with a rejected row.

    In privacy mode the reader hashed the value already, or dropped it: then none is kept.
    """
    if privacy is not None and treatment(name, mapping) == "drop":
        return "CAST(NULL AS VARCHAR)"
    return f"CAST({quote_identifier(name)} AS VARCHAR)"


_COUNTED_REQUIRED = ("ts",)
"""Required columns of counted rows: a time (with the counts); no ``request_id`` (a row is
many requests), and no serving columns forced on data that lacks them."""


def _count_columns(
    counts: Counts | None, signals: Sequence[UserSignal]
) -> list[tuple[Column, str]]:
    """Counted rows' count columns, typed as canonical ones: (column as stored, name in the file).

    The request count first (kept under its own name), then ``degraded`` when
    declared, then each signal's count (stored under the signal's name).
    """
    if counts is None:
        return []
    out = [
        (
            Column(counts.requests, "BIGINT", True, "outcome", "requests", minimum=0),
            counts.requests,
        )
    ]
    if counts.degraded is not None:
        out.append(
            (Column(DEGRADED, "BIGINT", False, "outcome", DEGRADED, minimum=0), counts.degraded)
        )
    for signal in signals:
        if signal.count is not None:
            out.append(
                (
                    Column(signal.name, "BIGINT", False, "outcome", signal.name, minimum=0),
                    signal.count,
                )
            )
    return out


def _key_columns(
    path: Path, mapping: Mapping, canonical_src: dict[str, str], plan: _Plan
) -> list[str]:
    """The stored names of ``[counts] key``'s columns; ``SchemaError`` for one not in the file."""
    assert mapping.counts is not None
    stored = {src: canonical for canonical, src in canonical_src.items()}
    out = []
    for name in mapping.counts.key:
        target = (
            stored.get(name) or plan.renamed.get(name) or (name if name in plan.extras else None)
        )
        if target is None:
            raise SchemaError(
                f"{path}: [counts] key names {name!r} ({mapping.source or 'the mapping'}), which "
                f"is not a column of the file; columns found: {', '.join(plan.extras) or '(none)'}"
                "; list the columns that make a row unique"
            )
        out.append(target)
    return out


def _settle_counted_keys(
    db: Database, checked: str, params: dict[str, Any], keys: Sequence[str], content: Sequence[str]
) -> tuple[int, list[tuple[int, str]]]:
    """Counted rows whose ``[counts] key`` was seen before, in this file or stored.

    A row repeating an earlier row's key (stored first, else the file's first row
    with it) with the same counts is an exact duplicate; with other counts a
    conflict. Leaves their verdicts in ``_key_verdicts`` (``_row``, ``verdict``,
    ``key_text``). Returns the number of duplicates and the conflicts as (row, key).
    """
    k = [quote_identifier(c) for c in keys]
    counts = f"list_value({', '.join(quote_identifier(c) for c in content)})"
    same_key = " AND ".join(f"n.{c} IS NOT DISTINCT FROM s.{c}" for c in k)
    key_text = (
        "concat_ws(', ', " + ", ".join(f"coalesce(CAST(n.{c} AS VARCHAR), 'null')" for c in k) + ")"
    )
    db.execute(
        "CREATE OR REPLACE TEMP TABLE _key_verdicts AS SELECT _row, verdict, key_text FROM ("
        "SELECT n._row, "
        "CASE WHEN s._c IS NOT NULL THEN CASE WHEN s._c IS NOT DISTINCT FROM n._c "
        "THEN 'duplicate' ELSE 'conflict' END "
        "WHEN n._first <> n._row THEN CASE WHEN n._first_c IS NOT DISTINCT FROM n._c "
        f"THEN 'duplicate' ELSE 'conflict' END END AS verdict, {key_text} AS key_text "
        f"FROM (SELECT _row, {', '.join(k)}, {counts} AS _c, "
        "first_value(_row) OVER w AS _first, first_value("
        f"{counts}) OVER w AS _first_c FROM ({checked}) WHERE _problem IS NULL "
        f"WINDOW w AS (PARTITION BY {', '.join(k)} ORDER BY _row)) n "
        f"LEFT JOIN (SELECT DISTINCT ON ({', '.join(k)}) {', '.join(k)}, {counts} AS _c "
        f"FROM requests) s ON {same_key}) WHERE verdict IS NOT NULL",
        params,
    )
    duplicates = int(db.scalar("SELECT count(*) FROM _key_verdicts WHERE verdict = 'duplicate'"))
    rows = db.execute(
        "SELECT _row, key_text FROM _key_verdicts WHERE verdict = 'conflict' ORDER BY _row"
    )
    return duplicates, [(int(r), str(t)) for r, t in rows]


def _count_key(counts: Counts | None, stored: str) -> str:
    """The mapping key that declared a count column stored as ``stored``."""
    if counts is not None and stored == counts.requests:
        return "[counts] requests"
    if stored == DEGRADED:
        return "[counts] degraded"
    return f"[signals.{stored}] count"


def _typed_relation(source: Source, plan: _Plan) -> str:
    """The source with every canonical column's typed value computed once, under its alias.

    The row checks (``_problem_sql``) and the typed columns read these; without
    the projection DuckDB would compute a value once per check that uses it.
    """
    items = ", ".join(
        f"{plan.values[name]} AS {quote_identifier(alias)}" for name, alias in plan.typed.items()
    )
    return f"(SELECT *, {items} FROM {source.relation})"


def _kept_name(name: str, taken: set[str]) -> str:
    """The name a user's column that clashes with forensics' own is kept under.

    ``<name without leading underscores>_input``, then ``_input_2``, ``_input_3``...
    until no column has it (names compared as DuckDB does, ignoring case).

    Examples
    --------
    >>> _kept_name("_row", {"_row"})
    'row_input'
    >>> _kept_name("degraded", {"degraded", "degraded_input"})
    'degraded_input_2'
    >>> _kept_name("_", set())
    'column_input'
    """
    base = f"{name.lstrip(INTERNAL_PREFIX) or 'column'}_input"
    target, k = base, 1
    while target.lower() in taken:
        k += 1
        target = f"{base}_{k}"
    return target


def _infer_text_types(db: Database, source: Source, names: Sequence[str]) -> dict[str, str]:
    """For staged text columns, the narrowest type every value fits: BIGINT, DOUBLE, BOOLEAN or VARCHAR."""
    if not names:
        return {}
    parts = []
    for i, name in enumerate(names):
        t = f"NULLIF(trim({quote_identifier(name)}), '')"
        parts.append(
            f"bool_and({t} IS NULL OR regexp_full_match({t}, '[+-]?[0-9]{{1,18}}')) AS i{i}, "
            f"bool_and({t} IS NULL OR try_cast({t} AS DOUBLE) IS NOT NULL) AS d{i}, "
            f"bool_and({t} IS NULL OR lower({t}) IN ('true', 'false')) AS b{i}, "
            f"count({t}) AS n{i}"
        )
    where = f" WHERE {source.error_expr} IS NULL" if source.error_expr else ""
    row = db.execute(f"SELECT {', '.join(parts)} FROM {source.relation}{where}", source.params)[0]
    out = {}
    for i, name in enumerate(names):
        is_int, is_double, is_bool, count = row[4 * i : 4 * i + 4]
        if not count:
            out[name] = "VARCHAR"
        elif is_int:
            out[name] = "BIGINT"
        elif is_double:
            out[name] = "DOUBLE"
        elif is_bool:
            out[name] = "BOOLEAN"
        else:
            out[name] = "VARCHAR"
    return out


# -- the requests table -------------------------------------------------------------


def _signal_names(db: Database) -> list[str]:
    """Signal columns stored in this database (built-in, then the user's), without degraded."""
    rows = db.execute("SELECT name FROM signal_definitions WHERE kind = 'user' ORDER BY name")
    return [d.name for d in DETECTORS] + [r[0] for r in rows]


def _user_signals(db: Database) -> list[UserSignal]:
    rows = db.execute(
        "SELECT name, source_column, op, value, description, expr FROM signal_definitions "
        "WHERE kind = 'user' ORDER BY name"
    )
    return [
        UserSignal(
            name=r[0],
            column=r[1] if r[5] is None else None,
            op=r[2] if r[5] is None else None,
            value=r[3] if r[5] is None else None,
            description=r[4] or "",
            expr=r[5],
        )
        for r in rows
    ]


def _ensure_requests(db: Database, counts: Counts | None = None) -> None:
    """Create ``requests``, or add the canonical and signal columns a newer version brought.

    With ``counts`` (counted rows), a new table has no built-in detectors (they read
    a request's text) and ``degraded`` only as the declared count; the count
    columns are added from the file's plan.
    """
    if counts is not None or db.meta(COUNTS_META) is not None:
        if "requests" not in db.tables():
            cols = [f"{quote_identifier(c.name)} {c.dtype}" for c in CANONICAL_COLUMNS]
            cols += ["_source_file_id INTEGER", "_source_row BIGINT"]
            db.execute(f"CREATE TABLE requests ({', '.join(cols)})")
        if counts is not None:
            # There from the start: every count-based query reads it, even with no rows.
            db.execute(
                f"ALTER TABLE requests ADD COLUMN IF NOT EXISTS "
                f"{quote_identifier(counts.requests)} BIGINT"
            )
        if counts is not None and counts.degraded is not None:
            db.execute(
                "INSERT OR IGNORE INTO signal_definitions (name, description, kind, "
                "source_column) VALUES ($n, $d, 'combined', $c)",
                {"n": DEGRADED, "d": "Requests counted as degraded", "c": counts.degraded},
            )
        return
    if "requests" not in db.tables():
        cols = [f"{quote_identifier(c.name)} {c.dtype}" for c in CANONICAL_COLUMNS]
        cols += [f"{quote_identifier(d.name)} BOOLEAN" for d in DETECTORS]
        cols.append(f"{quote_identifier(DEGRADED)} BOOLEAN")
        cols += ["_source_file_id INTEGER", "_source_row BIGINT"]
        db.execute(f"CREATE TABLE requests ({', '.join(cols)})")
    else:
        existing = {c.lower() for c in db.columns("requests")}
        wanted = [(c.name, c.dtype) for c in CANONICAL_COLUMNS]
        wanted += [(d.name, "BOOLEAN") for d in DETECTORS]
        for name, dtype in wanted:
            if name.lower() not in existing:  # rows stored before hold null there
                db.execute(f"ALTER TABLE requests ADD COLUMN {quote_identifier(name)} {dtype}")
    for d in DETECTORS:
        db.execute(
            "INSERT OR IGNORE INTO signal_definitions (name, description, kind) "
            "VALUES ($n, $d, 'detector')",
            {"n": d.name, "d": d.description},
        )
    db.execute(
        "INSERT OR IGNORE INTO signal_definitions (name, description, kind) "
        "VALUES ($n, $d, 'combined')",
        {"n": DEGRADED, "d": "Any signal true"},
    )


def _check_counted(db: Database, mapping: Mapping) -> None:
    """A database holds counted rows or request rows, never both; record which.

    Counted rows go into a new database (or one holding counted rows with the same
    count column); a ``ConfigError`` says what to do otherwise.
    """
    stored = db.meta(COUNTS_META)
    has_rows = "requests" in db.tables() and bool(db.scalar("SELECT count(*) FROM requests"))
    where = mapping.source or "the mapping"
    if stored is not None and not has_rows:
        # Set up for counted rows but none came in (every file refused): start afresh.
        db.execute("DROP TABLE IF EXISTS requests")
        db.execute("DELETE FROM signal_definitions WHERE kind IN ('count', 'combined')")
        db.execute(
            "DELETE FROM forensics_meta WHERE key IN ($a, $b, $c)",
            {"a": COUNTS_META, "b": COUNTS_META + ".degraded", "c": COUNTS_META + ".key"},
        )
        stored = None
    if mapping.counts is None:
        if stored is not None:
            raise ConfigError(
                f"{db.path} holds counted rows (count column {stored!r}); ingest with the "
                "mapping that declares [counts], or use another database for request rows"
            )
        return
    if stored is None and has_rows:
        raise ConfigError(
            f"{where}: [counts] declares counted rows, but {db.path} holds one row per "
            "request; ingest counted rows into a database of their own"
        )
    if stored is not None and stored != mapping.counts.requests:
        raise ConfigError(
            f"{where}: [counts] requests = {mapping.counts.requests!r}, but {db.path} counts "
            f"requests in {stored!r}; use the same count column, or another database"
        )
    declared = "yes" if mapping.counts.degraded is not None else "no"
    if has_rows and db.meta(COUNTS_META + ".degraded") not in (None, declared):
        raise ConfigError(
            f"{where}: [counts] degraded is {'set' if declared == 'yes' else 'not set'} but "
            f"was {'not ' if declared == 'yes' else ''}for the rows in {db.path}; declare it "
            "as before, or use another database"
        )
    key = ", ".join(mapping.counts.key)
    if has_rows and db.meta(COUNTS_META + ".key") not in (None, key):
        raise ConfigError(
            f"{where}: [counts] key = [{key}], but the rows in {db.path} were told apart by "
            f"[{db.meta(COUNTS_META + '.key')}]; use the same key, or another database"
        )
    db.set_meta(COUNTS_META + ".key", key)
    if stored is None:
        if "requests" in db.tables():
            # An empty table made for request rows: make it again for counted rows.
            db.execute("DROP TABLE requests")
            db.execute("DELETE FROM signal_definitions WHERE kind IN ('detector', 'combined')")
        db.set_meta(COUNTS_META, mapping.counts.requests)
        db.set_meta(COUNTS_META + ".degraded", declared)


def _define_count_signals(db: Database, mapping: Mapping) -> None:
    """Register a counted table's signals: each the count of a row's requests showing it."""
    where = mapping.source or "mapping"
    taken = {c.name.lower() for c in CANONICAL_COLUMNS} | {d.name.lower() for d in DETECTORS}
    taken |= {DEGRADED, *_PROVENANCE}
    for signal in mapping.signals:
        if signal.name.lower() in taken:
            raise ConfigError(
                f"{where}: [signals.{signal.name}] the name is taken by a canonical column or a "
                "built-in signal; choose another name"
            )
        db.execute(
            "INSERT OR REPLACE INTO signal_definitions (name, description, kind, source_column) "
            "VALUES ($n, $d, 'count', $c)",
            {"n": signal.name, "d": signal.description, "c": signal.count},
        )


def _stored_columns(db: Database, signals: Sequence[UserSignal]) -> ReadableColumns:
    """What user signals can read in ``requests`` as stored."""
    names = [s.name for s in (*_user_signals(db), *signals)]
    return readable_columns(db.columns("requests"), signals=names)


def define_user_signals(
    db: Database, signals: Sequence[UserSignal], *, source: str | None = None
) -> list[str]:
    """Register the user's signals, add their columns and compute new ones on stored rows.

    A signal whose definition is unchanged is left as it is. Returns notes for
    the user; recomputes ``degraded`` when a definition changed. ``source`` (the
    mapping file) is named in errors. The columns each signal reads are recorded
    (``signal_definitions.inputs``): they are outcomes (``forensics.roles``).
    """
    notes = []
    existing = {c.lower(): c for c in db.columns("requests")}
    taken = {c.name.lower() for c in CANONICAL_COLUMNS} | {d.name.lower() for d in DETECTORS}
    taken |= {DEGRADED, *_PROVENANCE}
    user = {s.name.lower() for s in _user_signals(db)}
    where = source or "mapping"
    columns = _stored_columns(db, signals)
    changed = False
    for signal in signals:
        key = signal.name.lower()
        if key in taken:
            raise ConfigError(
                f"{where}: [signals.{signal.name}] the name is taken by a canonical column or a "
                "built-in signal; choose another name"
            )
        if key in existing and key not in user:
            raise ConfigError(
                f"{where}: [signals.{signal.name}] the name is already a column of requests "
                "(from an earlier file); choose another name"
            )
        before = db.execute(
            "SELECT description, source_column, op, value, expr FROM signal_definitions "
            "WHERE name = $n",
            {"n": signal.name},
        )
        definition = (signal.description, signal.column, signal.op, signal.value, signal.expr)
        if before and tuple(before[0]) == definition:
            continue
        compiled = compile_signal(signal, columns, where=where)
        for coercion in compiled.coerced:
            _check_coercion(
                db, "requests", {}, signal, coercion, row_sql="NULL", where=where,
                found_in=f"{db.path} (table requests)",
            )  # fmt: skip
        inputs = list(compiled.inputs) or list(compiled.missing)
        db.execute(
            "INSERT OR REPLACE INTO signal_definitions "
            "(name, description, kind, source_column, op, value, expr, inputs) "
            "VALUES ($n, $d, 'user', $c, $o, $v, $e, $i)",
            dict(zip("ndcove", (signal.name, *definition), strict=True)) | {"i": inputs},
        )
        if key not in existing:
            db.execute(f"ALTER TABLE requests ADD COLUMN {quote_identifier(signal.name)} BOOLEAN")
        if not compiled.missing:
            sql = f"UPDATE requests SET {quote_identifier(signal.name)} = {compiled.sql}"
            db.execute(sql, compiled.params)
        else:
            missing = ", ".join(repr(m) for m in compiled.missing)
            notes.append(
                f"signal {signal.name!r}: column{'s' if len(compiled.missing) > 1 else ''} "
                f"{missing} {'are' if len(compiled.missing) > 1 else 'is'} not in the data yet; "
                "it will be computed for files that have "
                f"{'them' if len(compiled.missing) > 1 else 'it'}"
            )
        changed = True
    if changed:
        db.execute(f"UPDATE requests SET {DEGRADED} = {degraded_expression(_signal_names(db))}")
    return notes


def _check_coercion(
    db: Database,
    relation: str,
    params: dict[str, Any],
    signal: UserSignal,
    coercion: Coercion,
    *,
    row_sql: str,
    where: str,
    found_in: str,
    unit: str = "row",
) -> None:
    """Refuse a signal that reads a text column as numbers or true/false its values are not.

    ``relation`` holds the column; the first value that does not convert is named,
    with its row (line) when ``row_sql`` gives one.
    """
    q = quote_identifier(coercion.column)
    wanted = "BOOLEAN" if coercion.wanted == "boolean" else "DOUBLE"
    bad = db.execute(
        f"SELECT {row_sql}, CAST({q} AS VARCHAR) FROM {relation} WHERE {q} IS NOT NULL "
        f"AND try_cast({q} AS {wanted}) IS NULL LIMIT 1",
        params,
    )
    if not bad:
        return
    row, value = bad[0]
    at = f"{found_in} {unit} {row}" if row is not None else found_in
    if signal.expr is None and signal.op is None:
        raise ConfigError(
            f"{where}: [signals.{signal.name}] column = {signal.column!r} is read as true/false "
            f"(it has no op and value), but {at} has {value[:100]!r}; point column at a "
            "true/false column, or give op and value to compare a number"
        )
    if signal.expr is None:
        raise ConfigError(
            f"{where}: [signals.{signal.name}] column = {signal.column!r} is compared as a "
            f"number ({signal.op} {signal.value:g}), but {at} has {value[:100]!r}; point column "
            "at a numeric column, or leave out op and value for a true/false one"
        )
    what = "a number" if coercion.wanted == "number" else "true/false"
    raise ExpressionError.at(
        where, signal.name, signal.expression, coercion.name.pos,
        f"{coercion.name.name} is read as {what} here, but {at} has {value[:100]!r}; "
        "compare it with a 'text' value instead, or read a column that holds "
        f"{'numbers' if coercion.wanted == 'number' else 'true/false'}",
    )  # fmt: skip


def _file_columns(
    plan: _Plan, present: Sequence[str], table_types: dict[str, str], signals: Sequence[str]
) -> ReadableColumns:
    """What user signals can read in a file's checked rows: its columns, typed as stored."""
    types = {}
    for name in present:
        canonical = next((c for c in CANONICAL_COLUMNS if c.name == name), None)
        types[name] = (
            canonical.dtype
            if canonical is not None
            else table_types.get(name) or plan.extras.get(name, "VARCHAR")
        )
    kept = {src.lower(): target for src, target in plan.renamed.items()}
    return readable_columns(types, kept=kept, signals=signals)


def _compile_file_signals(
    db: Database,
    path: Path,
    fmt: Format,
    checked: str,
    params: dict[str, Any],
    columns: ReadableColumns,
    mapping: Mapping,
) -> None:
    """Refuse the file if a signal in force cannot read its columns or their values.

    The signals in force are those stored (from earlier mappings), replaced by
    the mapping's own of the same name. A name of the mapping's own signals that
    is not a column but is close to one is an error; a stored signal whose columns
    this file lacks is null for it. Only rows that pass every check count.
    """
    in_force = {
        s.name: (s, "the signal registry (an earlier --mapping)", False) for s in _user_signals(db)
    }
    in_force |= {s.name: (s, mapping.source or "mapping", True) for s in mapping.signals}
    unit = "line" if fmt in ("csv", "jsonl") else "row"
    good = f"(SELECT * FROM ({checked}) WHERE _problem IS NULL)"
    for signal, where, suggest in in_force.values():
        compiled = compile_signal(signal, columns, where=where, suggest=suggest)
        for coercion in compiled.coerced:
            _check_coercion(
                db, good, params, signal, coercion, row_sql="_row", where=where,
                found_in=str(path), unit=unit,
            )  # fmt: skip


def _ensure_extra_columns(db: Database, plan: _Plan) -> None:
    """Add the user's new columns to ``requests``; widen a column whose types disagree."""
    existing = db.columns("requests")
    lower_existing = {k.lower(): k for k in existing}
    for name, dtype in plan.extras.items():
        current = lower_existing.get(name.lower())
        if current is None:
            db.execute(f"ALTER TABLE requests ADD COLUMN {quote_identifier(name)} {dtype}")
        elif existing[current] != dtype and existing[current] != "VARCHAR":
            db.execute(
                f"ALTER TABLE requests ALTER COLUMN {quote_identifier(current)} TYPE VARCHAR"
            )
            plan.notes.append(
                f"column {current!r} was {existing[current]} but this file has {dtype}; "
                "the column is now VARCHAR"
            )


# -- the ingest itself --------------------------------------------------------------


def _next_file_id(db: Database) -> int:
    return int(db.scalar("SELECT coalesce(max(file_id), 0) + 1 FROM ingested_files"))


def _problem_sql(checks: Sequence[_Check], error_expr: str | None) -> str:
    whens = []
    if error_expr is not None:
        whens.append(
            f"WHEN {error_expr} IS NOT NULL THEN struct_pack(reason := {error_expr}, "
            "col := CAST(NULL AS VARCHAR), bad := CAST(NULL AS VARCHAR))"
        )
    for check in checks:
        whens.append(
            f"WHEN coalesce({check.condition}, false) THEN struct_pack(reason := "
            f"'{check.reason}', col := '{check.column}', bad := left({check.bad_value}, 1000))"
        )
    if not whens:
        return "CAST(NULL AS STRUCT(reason VARCHAR, col VARCHAR, bad VARCHAR))"
    return "CASE " + " ".join(whens) + " END"


def _raw_sql(source: Source, privacy: Privacy | None, mapping: Mapping) -> str:
    """SQL for the raw content kept with a rejected row (redacted in privacy mode).

    A row the reader could not parse keeps the text it read (the reader keeps
    none in privacy mode); the others, their values as a JSON object (in privacy
    mode as the reader hashed them, without the dropped columns).
    """
    parts = []
    for name in source.columns:
        if privacy is not None and treatment(name, mapping) == "drop":
            continue
        key = name.replace("'", "''")
        parts.append(f"'{key}', {quote_identifier(name)}")
    from_columns = f"CAST(json_object({', '.join(parts)}) AS VARCHAR)" if parts else "NULL"
    if source.raw_expr is None:
        return from_columns
    return f"coalesce({source.raw_expr}, {from_columns})"


def _column_for(canonical: str, names: Iterable[str], mapping: Mapping) -> str | None:
    """The file's column that stands for ``canonical``, as ``_plan_columns`` finds it."""
    names = list(names)
    if canonical in mapping.columns:
        mapped = mapping.columns[canonical]
        return mapped if mapped in names else None
    if canonical in names:
        return canonical
    return next((n for n in names if n.lower() == canonical and n not in mapping.renames), None)


def _redaction(privacy: Privacy, mapping: Mapping, params: SignalParams) -> Redaction:
    """What the readers do to a file's values in privacy mode, before any is staged.

    Identities are hashed and the response text dropped; the signals that read
    the text are computed from it first, batch by batch, with the SQL ingest
    uses (``signals_relation``), and stored in its place.
    """
    reading = [d.name for d in DETECTORS if any(c in DROPPED_COLUMNS for c in d.requires)]

    def derive(relation: str, columns: dict[str, str]) -> tuple[str, dict[str, str]]:
        text = _column_for("response_text", columns, mapping)
        if text is None or not reading:
            return relation, {}
        language = _column_for("prompt_language", columns, mapping)
        lang_sql = (
            _text_value(quote_identifier(columns[language]))
            if language is not None
            else "CAST(NULL AS VARCHAR)"
        )
        inner = (
            f"(SELECT *, {_text_value(quote_identifier(columns[text]), long_text=True)} AS "
            f"response_text, {lang_sql} AS prompt_language FROM {relation})"
        )
        sql = signals_relation(inner, ["response_text", "prompt_language"], params=params)
        return f"({sql})", dict.fromkeys(reading, "BOOLEAN")

    return Redaction(
        treatment=lambda name: treatment(name, mapping),
        hash_sql=privacy.hash_sql,
        derive=derive,
        params={**privacy.params, **params.as_parameters()},
        setup=register_functions,
    )


def _seen(db: Database, path: Path, fmt: Format, sha: str) -> FileSummary | None:
    """The summary of a file whose content was ingested before, or None."""
    seen = db.execute(
        "SELECT file_id, ingested_at FROM ingested_files WHERE sha256 = $sha ORDER BY file_id LIMIT 1",
        {"sha": sha},
    )
    if not seen:
        return None
    return FileSummary(
        path=str(path),
        format=fmt,
        status="already ingested",
        sha256=sha,
        message=f"same content as file #{seen[0][0]} ingested {seen[0][1]:%Y-%m-%d %H:%M} UTC; nothing added",
    )


def _stage_one(
    db: Database,
    path: Path,
    fmt: Format,
    *,
    mapping: Mapping,
    privacy: Privacy | None,
    params: SignalParams,
    stage: str,
) -> FileSummary | tuple[str, Source]:
    """Hash the file and stage it (temp tables only): its sha256 and Source, or why not.

    Runs outside the file's transaction: DuckDB holds what a transaction inserted
    in memory it does not count against its limit, so a file staged batch by
    batch inside one grew the process by the size of the file (see
    ``tests/test_ingest_memory.py``). Staging writes only temp tables, which a
    rollback need not undo (``_drop_staging`` removes them).
    """
    if privacy is not None:
        # Read by a child process: this one never holds a raw value (see PrivateFile).
        redact = functools.partial(_redaction, privacy, mapping, params)
        with PrivateFile(path, fmt, redact, db.config) as private:
            sha = private.sha256()
            seen = _seen(db, path, fmt, sha)
            if seen is not None:
                return seen
            source = private.open(db, stage)
    else:
        sha = file_sha256(path)
        seen = _seen(db, path, fmt, sha)
        if seen is not None:
            return seen
        if fmt == "parquet":
            source = open_parquet(db, path, stage)
        elif fmt == "csv":
            source = open_csv(db, path, stage)
        else:
            source = open_json(db, path, fmt, stage)
    return sha, source


def _ingest_one(
    db: Database,
    path: Path,
    fmt: Format,
    sha: str,
    source: Source,
    *,
    mapping: Mapping,
    privacy: Privacy | None,
    params: SignalParams,
    duplicate_horizon: timedelta | None = None,
) -> FileSummary:
    """Validate a staged file and write it: rows, rejects, its ``ingested_files`` row."""
    if source.otlp:
        fmt = "otlp"
    if source.rows_read == 0 and not source.columns:
        if source.skipped:
            return FileSummary(
                path=str(path),
                format=fmt,
                status="empty",
                rows_read=source.skipped,
                skipped=source.skipped,
                sha256=sha,
                message=f"none of its {source.skipped} spans is a GenAI inference (a span "
                "with gen_ai.operation.name chat, text_completion or generate_content); "
                "nothing loaded",
            )
        return FileSummary(
            path=str(path), format=fmt, status="empty", sha256=sha, message="the file holds no rows"
        )

    if not source.columns:
        # Rows were read but none parsed (every line malformed): quarantine them all.
        return _reject_unparsed(db, path, fmt, sha, source, privacy=privacy is not None)

    reserved = {d.name for d in DETECTORS} | {DEGRADED} | set(_PROVENANCE)
    reserved |= set(_signal_names(db)) | {s.name for s in mapping.signals}
    if fmt != "parquet":
        canonical_names = {c.name for c in CANONICAL_COLUMNS}
        count_src = {src for _, src in _count_columns(mapping.counts, mapping.signals)}
        text_like = [
            n
            for n in source.columns
            if n not in mapping.renames and n not in canonical_names and n not in count_src
        ]
        source.columns.update({n: "VARCHAR" for n in source.columns})
        inferred = _infer_text_types(db, source, text_like)
    else:
        inferred = {}
    plan, canonical_src = _plan_columns(path, source, mapping, reserved, privacy)
    if source.rows_read == 0:
        return FileSummary(
            path=str(path), format=fmt, status="empty", sha256=sha, message="the file holds no rows"
        )
    for name, dtype in inferred.items():
        target = next((t for t, sql in plan.values.items() if sql == quote_identifier(name)), None)
        if target is None:  # not kept (privacy mode)
            continue
        if dtype != "VARCHAR":
            if dtype == "BOOLEAN":
                plan.values[target] = f"CAST(lower(trim({quote_identifier(name)})) AS BOOLEAN)"
            else:
                plan.values[target] = f"CAST(NULLIF(trim({quote_identifier(name)}), '') AS {dtype})"
        plan.extras[target] = dtype

    _ensure_requests(db, mapping.counts)
    _ensure_extra_columns(db, plan)
    table_types = db.columns("requests")
    for name in plan.extras:
        if table_types.get(name) == "VARCHAR" and plan.extras[name] != "VARCHAR":
            plan.values[name] = f"CAST({plan.values[name]} AS VARCHAR)"

    file_id = _next_file_id(db)
    sql_params: dict[str, Any] = dict(source.params)

    typed = ", ".join(
        f"{quote_identifier(plan.typed[name]) if name in plan.typed else sql} "
        f"AS {quote_identifier(name)}"
        for name, sql in plan.values.items()
    )
    derived = "".join(
        f", {column} AS {quote_identifier('_derived_' + name)}"
        for name, column in source.derived.items()
    )
    checked = (
        f"SELECT {source.row_expr} AS _row, {typed}{derived}, "
        f"{_problem_sql(plan.checks, source.error_expr)} AS _problem "
        f"FROM {_typed_relation(source, plan)}"
    )
    present = [*canonical_src, *plan.extras]
    signal_names = [s.name for s in (*_user_signals(db), *mapping.signals)]
    columns = _file_columns(plan, present, table_types, signal_names)
    if mapping.counts is not None:
        _define_count_signals(db, mapping)
    else:
        _compile_file_signals(db, path, fmt, checked, sql_params, columns, mapping)
        if mapping.signals:
            plan.notes.extend(define_user_signals(db, mapping.signals, source=mapping.source))

    # Request_ids that may be seen twice, in this file or already stored: found by hash
    # in one scan of the ids alone. A hash shared by different ids only costs those
    # rows a closer look in _settle_duplicates, which compares the ids themselves.
    request_id = plan.values.get("request_id", "NULL")
    recent, horizon = _stored_within(db, checked, sql_params, duplicate_horizon)
    db.execute(
        "CREATE OR REPLACE TEMP TABLE _dup_hashes AS WITH new AS MATERIALIZED "
        f"(SELECT hash({request_id}) AS h FROM {source.relation} WHERE ({request_id}) IS NOT NULL) "
        "SELECT h FROM new GROUP BY h HAVING count(*) > 1 "
        f"UNION SELECT h FROM new WHERE h IN (SELECT hash(request_id) FROM requests {recent})",
        {**sql_params, **horizon},
    )
    # Counted rows are not told apart by request id (see the module docstring).
    may_repeat = mapping.counts is None and bool(db.scalar("SELECT count(*) FROM _dup_hashes"))
    keep_rows, duplicates, conflicts = (
        _settle_duplicates(db, checked, sql_params, plan, privacy is not None, recent, horizon)
        if may_repeat
        else ([], 0, [])
    )
    conflict_column = "request_id"
    keyed = mapping.counts is not None and bool(mapping.counts.key)
    if keyed:
        assert mapping.counts is not None
        keys = _key_columns(path, mapping, canonical_src, plan)
        conflict_column = ", ".join(mapping.counts.key)
        content = [col.name for col, _ in _count_columns(mapping.counts, mapping.signals)]
        duplicates, conflicts = _settle_counted_keys(db, checked, sql_params, keys, content)
    db.execute("CREATE OR REPLACE TEMP TABLE _keep_rows (_row BIGINT)")
    if keep_rows:
        db.con.register("_keep_batch", pa.table({"_row": pa.array(keep_rows, pa.int64())}))
        try:
            db.execute("INSERT INTO _keep_rows SELECT _row FROM _keep_batch")
        finally:
            db.con.unregister("_keep_batch")

    # The main statement: type, compute signals, insert.
    user_signals = _user_signals(db)
    signals = (
        signal_expressions(present, params=params, user_signals=user_signals, columns=columns)
        if mapping.counts is None
        else []
    )
    all_signals = [name for name, _ in signals]
    stored = []
    for name in plan.values:
        q = quote_identifier(name)
        if privacy is not None and name in DROPPED_COLUMNS:
            continue
        stored.append(q)
    stored += [quote_identifier(n) for n in all_signals]
    if mapping.counts is None:
        stored.append(f"{degraded_expression(all_signals)} AS {DEGRADED}")
    stored += [f"{int(file_id)} AS _source_file_id", "_row AS _source_row"]
    good = f"(SELECT * FROM ({checked}) WHERE _problem IS NULL)"
    if keyed:
        good = (
            f"(SELECT * FROM ({checked}) WHERE _problem IS NULL AND "
            "_row NOT IN (SELECT _row FROM _key_verdicts))"
        )
    if may_repeat:
        good = (
            f"(SELECT * FROM ({checked}) WHERE _problem IS NULL AND (hash(request_id) NOT IN "
            "(SELECT h FROM _dup_hashes) OR _row IN (SELECT _row FROM _keep_rows)))"
        )
    # Signals that read a column the reader dropped (privacy mode) were computed
    # before it was: they replace the ones computed here, without it. Counted rows
    # carry their signals as counts: no detector runs on them.
    readable = [c for c in present if not (source.derived and c in DROPPED_COLUMNS)]
    with_signals = (
        signals_relation(good, readable, params=params, user_signals=user_signals, columns=columns)
        if mapping.counts is None
        else good
    )
    if source.derived:
        replaced = ", ".join(
            f"{quote_identifier('_derived_' + n)} AS {quote_identifier(n)}" for n in source.derived
        )
        with_signals = f"SELECT * REPLACE ({replaced}) FROM ({with_signals})"
    insert = f"INSERT INTO requests BY NAME SELECT {', '.join(stored)} FROM ({with_signals})"
    sql = insert
    db.execute(
        sql,
        {
            **sql_params,
            **params.as_parameters(sql),
            **user_signal_parameters(user_signals, columns, sql),
        },
    )
    accepted = int(
        db.scalar("SELECT count(*) FROM requests WHERE _source_file_id = $f", {"f": file_id})
    )

    rejected: Counter[str] = Counter()
    now = datetime.now(UTC)
    if accepted + duplicates + len(conflicts) != source.rows_read:
        raw = _raw_sql(source, privacy, mapping)
        db.execute(
            "INSERT INTO rejected_rows SELECT $file, $fid, _row_out, _problem.col, _problem.reason, "
            "_problem.bad, _raw_out, $now FROM "
            f"(SELECT {_problem_sql(plan.checks, source.error_expr)} AS _problem, "
            f"{source.row_expr} AS _row_out, {raw} AS _raw_out "
            f"FROM {_typed_relation(source, plan)}) "
            "WHERE _problem IS NOT NULL",
            {**sql_params, "file": str(path), "fid": file_id, "now": now},
        )
        for reason, col, n in db.execute(
            'SELECT reason, "column", count(*) FROM rejected_rows WHERE file_id = $f GROUP BY ALL',
            {"f": file_id},
        ):
            rejected[reason] += int(n)
            if reason == "out_of_range" and col == "ts":
                plan.notes.append(_epoch_hint(db, file_id, int(n), mapping.epoch_unit))
    if conflicts:
        raw = _raw_sql(source, privacy, mapping)
        db.con.register(
            "_conflicts",
            pa.table(
                {
                    "_row": pa.array([c[0] for c in conflicts], pa.int64()),
                    "request_id": pa.array([c[1] for c in conflicts], pa.string()),
                }
            ),
        )
        try:
            db.execute(
                "INSERT INTO rejected_rows SELECT $file, $fid, s._row_out, $column, "
                "'duplicate_conflict', c.request_id, s._raw_out, $now FROM "
                f"(SELECT {source.row_expr} AS _row_out, {raw} AS _raw_out FROM {source.relation}) s "
                "JOIN _conflicts c ON c._row = s._row_out",
                {
                    **sql_params,
                    "file": str(path),
                    "fid": file_id,
                    "now": now,
                    "column": conflict_column,
                },
            )
        finally:
            db.con.unregister("_conflicts")
        rejected["duplicate_conflict"] += len(conflicts)

    total = accepted + sum(rejected.values()) + duplicates
    if total != source.rows_read:
        raise InternalError(
            f"{path}: internal count mismatch (read {source.rows_read}, accepted {accepted}, "
            f"rejected {sum(rejected.values())}, duplicates {duplicates})",
            path=str(path),
        )
    _record_file(
        db,
        file_id,
        path,
        sha,
        fmt,
        (source.rows_read + source.skipped, accepted, sum(rejected.values()), duplicates),
        now,
        mapping.source,
        privacy is not None,
        skipped=source.skipped,
    )
    return FileSummary(
        path=str(path),
        format=fmt,
        status="ingested",
        rows_read=source.rows_read + source.skipped,
        accepted=accepted,
        rejected=dict(rejected),
        duplicates=duplicates,
        skipped=source.skipped,
        sha256=sha,
        notes=tuple(plan.notes),
    )


_HINT_SAMPLE = 1000
"""Rejected timestamps looked at to guess their epoch unit."""


def _guess_epoch_unit(values: Iterable[str | None]) -> str | None:
    """The epoch unit that puts most of ``values`` in the valid time range, if any.

    The four units' valid ranges (1990..2100) do not overlap, so the size of a
    number tells its unit.

    Examples
    --------
    >>> _guess_epoch_unit(["1754049600000000000", "1754049600123456789"])
    'ns'
    >>> _guess_epoch_unit(["1754049600", "not a number"])
    's'
    >>> _guess_epoch_unit(["12"]) is None
    True
    """
    low, high = _epoch_bounds()
    votes: Counter[str] = Counter()
    for value in values:
        try:
            number = float(value or "")
        except ValueError:
            continue
        for unit, micros in _EPOCH_MICROS.items():
            if low <= number * (micros or 1e-3) < high:
                votes[unit] += 1
    return votes.most_common(1)[0][0] if votes else None


def _epoch_hint(db: Database, file_id: int, n: int, epoch_unit: str) -> str:
    """The note for timestamps out of range: the epoch unit they look like, if any."""
    sample = db.execute(
        "SELECT bad_value FROM rejected_rows WHERE file_id = $f AND reason = 'out_of_range' "
        "AND \"column\" = 'ts' LIMIT $n",
        {"f": file_id, "n": _HINT_SAMPLE},
    )
    unit = _guess_epoch_unit(r[0] for r in sample)
    outside = f"{n} timestamp(s) outside {TS_VALID_FROM}..{TS_VALID_TO}"
    if unit is not None and unit != epoch_unit:
        names = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
        return (
            f"{outside}: they look like epoch {names[unit]}; set [timestamps] "
            f'epoch_unit = "{unit}" in a --mapping file (now "{epoch_unit}")'
        )
    return (
        f"{outside}: if ts is epoch seconds (or us, ns), set [timestamps] epoch_unit "
        "in a --mapping file"
    )


def _record_file(
    db: Database,
    file_id: int,
    path: Path,
    sha: str,
    fmt: str,
    counts: tuple[int, int, int, int],
    now: datetime,
    mapping: str | None,
    privacy: bool,
    *,
    skipped: int = 0,
) -> None:
    read, accepted, rejected, duplicates = counts
    db.execute(
        "INSERT INTO ingested_files (file_id, path, sha256, format, bytes, rows_read, accepted, "
        "rejected, duplicates, ingested_at, mapping, privacy, skipped) VALUES ($fid, $path, "
        "$sha, $fmt, $bytes, $read, $acc, $rej, $dup, $now, $mapping, $privacy, $skipped)",
        {
            "fid": file_id,
            "path": str(path),
            "sha": sha,
            "fmt": fmt,
            "bytes": path.stat().st_size,
            "read": read,
            "acc": accepted,
            "rej": rejected,
            "dup": duplicates,
            "now": now,
            "mapping": mapping,
            "privacy": privacy,
            "skipped": skipped,
        },
    )


def _reject_unparsed(
    db: Database, path: Path, fmt: Format, sha: str, source: Source, *, privacy: bool
) -> FileSummary:
    """Quarantine every row of a file in which no row could be parsed.

    In privacy mode a row keeps no raw text: nothing in it says which part is an id.
    """
    file_id = _next_file_id(db)
    now = datetime.now(UTC)
    row, error = source.row_expr, source.error_expr
    raw = "CAST(NULL AS VARCHAR)" if privacy or source.raw_expr is None else source.raw_expr
    db.execute(
        f"INSERT INTO rejected_rows SELECT $file, $fid, {row}, NULL, {error}, NULL, {raw}, $now "
        f"FROM {source.relation}",
        {"file": str(path), "fid": file_id, "now": now},
    )
    rejected = dict(db.execute(f"SELECT {error}, count(*) FROM {source.relation} GROUP BY ALL"))
    _record_file(
        db, file_id, path, sha, fmt, (source.rows_read, 0, source.rows_read, 0), now, None, privacy
    )
    return FileSummary(
        path=str(path),
        format=fmt,
        status="ingested",
        rows_read=source.rows_read,
        rejected={str(k): int(v) for k, v in rejected.items()},
        sha256=sha,
        message="no row could be parsed; every row is in rejected_rows",
    )


def _stored_within(
    db: Database, checked: str, params: dict[str, Any], horizon: timedelta | None
) -> tuple[str, dict[str, Any]]:
    """The filter on stored rows a file's request_ids are compared with, and its parameters.

    Without a horizon, every stored row (``""``). With one, the rows whose time is
    at most ``horizon`` before the file's earliest good row: DuckDB skips the row
    groups of older data by their time statistics, so the check reads the recent
    rows only, however long the history. A request_id stored before that is not
    looked at: its repeat is accepted as a new row.
    """
    if horizon is None:
        return "", {}
    first = db.scalar(f"SELECT min(ts) FROM ({checked}) WHERE _problem IS NULL", params)
    if first is None:
        return "WHERE false", {}
    return "WHERE ts >= $_dup_from", {"_dup_from": first - horizon}


def _settle_duplicates(
    db: Database,
    checked: str,
    params: dict[str, Any],
    plan: _Plan,
    privacy: bool,
    recent: str = "",
    horizon: dict[str, Any] | None = None,
) -> tuple[list[int], int, list[tuple[int, str]]]:
    """Decide which rows of request_ids whose hash is in ``_dup_hashes`` to keep.

    ``recent`` and ``horizon`` limit the stored rows compared (``_stored_within``).
    In privacy mode identities are compared as the reader hashed them (as they
    are stored), without the dropped columns. Returns the rows to keep, the
    number of exact duplicates, and the conflicting rows as (row, request_id).
    """
    compared = [n for n in plan.values if n in db.columns("requests")]
    if privacy:
        compared = [n for n in compared if n not in DROPPED_COLUMNS]

    def content(prefix: str) -> str:
        items = [f"CAST({prefix}{quote_identifier(n)} AS VARCHAR)" for n in compared]
        return f"md5(CAST(to_json([{', '.join(items)}]) AS VARCHAR))"

    new_rows = db.execute(
        f"SELECT _row, request_id, {content('')} FROM ({checked}) "
        "WHERE _problem IS NULL AND hash(request_id) IN (SELECT h FROM _dup_hashes) ORDER BY _row",
        params,
    )
    within = f"AND {recent.removeprefix('WHERE ')}" if recent else ""
    old_rows = db.execute(
        f"SELECT request_id, {content('')} FROM requests "
        f"WHERE hash(request_id) IN (SELECT h FROM _dup_hashes) {within}",
        horizon or {},
    )
    first: dict[str, str] = {rid: h for rid, h in old_rows}
    keep: list[int] = []
    duplicates = 0
    conflicts: list[tuple[int, str]] = []
    for row, rid, digest in new_rows:
        if rid not in first:
            first[rid] = digest
            keep.append(row)
        elif first[rid] == digest:
            duplicates += 1
        else:
            conflicts.append((row, rid))
    return keep, duplicates, conflicts


def _absolute(path: Path) -> Path:
    """The path as stored: absolute, links kept.

    So that it reads the same from any working directory (a notebook runs in
    ``notebooks/``, the CLI where it was started).
    """
    return Path(os.path.abspath(path))


def ingest_files(
    db: Database,
    paths: Iterable[str | Path],
    *,
    mapping: Mapping | None = None,
    privacy: bool = False,
    salt: str | None = None,
    params: SignalParams | None = None,
    progress: bool = False,
    errors: Literal["raise", "collect"] = "raise",
    on_file: Callable[[FileSummary], None] | None = None,
    duplicate_horizon: timedelta | None = None,
) -> IngestSummary:
    """Validate request-log files and load their good rows into ``requests``.

    Parameters
    ----------
    db
        The database to write to.
    paths
        Files, directories (searched recursively) and glob patterns; Parquet,
        JSON lines, JSON arrays and CSV, text formats optionally gzip-compressed.
    mapping
        Renames the user's columns to canonical names, declares signals and sets
        roles; see ``schema.Mapping``.
    privacy
        Hash ``user_id``/``session_id`` with ``salt`` and keep no response text.
    salt
        Salt for privacy mode; falls back to ``FORENSICS_SALT``.
    params
        Detector thresholds.
    progress
        Draw a progress bar per file.
    errors
        ``"raise"``: after trying every file, raise one ``IngestError`` listing
        the refused files (its ``summary`` attribute holds the full result);
        ``"collect"``: return the summary with the refused files in it.
    on_file
        Called with each file's summary as soon as it is done.
    duplicate_horizon
        Compare a file's request_ids only with stored rows at most this long
        before its earliest row (None: with every stored row). A repeat of an
        older request_id is then accepted as a new row; the cost of a file no
        longer grows with the history stored (``forensics watch``: 7 days).

    Raises
    ------
    InternalError
        After trying every file, when one of them hit a bug in forensics (its
        status is ``failed``; nothing from it was written). In either mode.
    DiskFullError
        As soon as the disk fills up: the files before are in, the rest untried.

    Returns
    -------
    IngestSummary
        Per file: rows read, accepted, rejected by reason, duplicates.
    """
    mapping = mapping or Mapping()
    params = params or SignalParams()
    files = [_absolute(f) for f in resolve_paths(paths)]
    key = privacy_settings(db, privacy, salt or db.config.salt)
    register_functions(db.con)
    _check_counted(db, mapping)
    _ensure_requests(db, mapping.counts)
    check_explicit_roles(db, mapping.explicit_roles, source=mapping.source)
    summaries: list[FileSummary] = []
    failures: list[Exception] = []
    bar = tqdm(files, desc="ingest", unit="file", disable=not progress, leave=False)
    for i, path in enumerate(bar):
        bar.set_postfix_str(path.name)
        try:
            fmt = detect_format(path)
        except IngestError as exc:
            summaries.append(
                FileSummary(path=str(path), format="?", status="refused", message=str(exc))
            )
            continue
        try:
            staged = _stage_one(
                db, path, fmt, mapping=mapping, privacy=key, params=params, stage=f"_stage_{i}"
            )
            if isinstance(staged, FileSummary):
                summary = staged
            else:
                db.execute("BEGIN TRANSACTION")
                summary = _ingest_one(
                    db,
                    path,
                    fmt,
                    *staged,
                    mapping=mapping,
                    privacy=key,
                    params=params,
                    duplicate_horizon=duplicate_horizon,
                )
                db.execute("COMMIT")
        except DiskFullError as exc:
            # The database is unusable until reopened: stop here, saying which file.
            full = DiskFullError.while_writing(db.path, str(path))
            full.summary = IngestSummary(files=tuple(summaries), db=db.path)  # type: ignore[attr-defined]
            raise full from exc
        except ForensicsError as exc:
            _rollback(db)
            summary = FileSummary(path=str(path), format=fmt, status="refused", message=str(exc))
        except Exception as exc:
            # A corrupt Parquet page shows only when a statement reads it; anything
            # else is a bug (ours or DuckDB's): roll back, report it, try the others.
            _rollback(db)
            refusal = _parquet_refusal(db, path) if fmt == "parquet" else None
            if refusal is not None:
                summary = FileSummary(
                    path=str(path), format=fmt, status="refused", message=str(refusal)
                )
            else:
                logger.exception("ingest of %s failed", path)
                failures.append(exc)
                summary = _failed(path, fmt, exc)
        except BaseException:
            _rollback(db)
            raise
        finally:
            _drop_staging(db, i)
        summaries.append(summary)
        if on_file is not None:
            on_file(summary)
    explicit = mapping.explicit_roles
    if any(s.format == "otlp" and s.status == "ingested" for s in summaries):
        # OTLP columns take the otel-genai preset's roles; a mapping's own win.
        present = {c.lower() for c in db.columns("requests")}
        preset = {k: v for k, v in otlp_roles().items() if k.lower() in present}
        explicit = {**preset, **explicit}
    db.execute("BEGIN TRANSACTION")
    try:
        notes = record_roles(db, explicit)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    result = IngestSummary(files=tuple(summaries), db=db.path, notes=tuple(notes))
    if failures:
        bug = InternalError(
            "; ".join(f.message or f.path for f in result.files if f.status == "failed"),
            path=next(f.path for f in result.files if f.status == "failed"),
        )
        bug.summary = result  # type: ignore[attr-defined]
        raise bug from failures[0]
    if errors == "raise" and result.refused:
        error = IngestError(
            "refused: " + "; ".join(f.message or f.path for f in result.refused),
            path=result.refused[0].path,
        )
        error.summary = result  # type: ignore[attr-defined]
        raise error
    return result


def _rollback(db: Database) -> None:
    """Roll back the file's transaction; a connection DuckDB invalidated has none left."""
    try:
        db.execute("ROLLBACK")
    except (duckdb.Error, DiskFullError) as exc:
        logger.debug("rollback failed: %s", exc)


def _drop_staging(db: Database, i: int) -> None:
    for table in (f"_stage_{i}", f"_stage_{i}_lines", "_dup_hashes", "_keep_rows"):
        try:
            db.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(table)}")
        except (duckdb.Error, DiskFullError) as exc:
            logger.debug("dropping %s failed: %s", table, exc)


def _parquet_refusal(db: Database, path: Path) -> IngestError | None:
    """After a statement over a Parquet file failed: the refusal if the file's bytes are bad."""
    try:
        check_parquet(db, path)
    except IngestError as exc:
        return exc
    except (duckdb.Error, DiskFullError) as exc:
        logger.debug("re-reading %s failed: %s", path, exc)
    return None


def _failed(path: Path, fmt: str, exc: Exception) -> FileSummary:
    """The summary of a file whose ingest hit a bug: what broke, and that nothing was written."""
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return FileSummary(
        path=str(path),
        format=fmt,
        status="failed",
        message=f"{path}: {type(exc).__name__}: {first_line}; nothing from this file was "
        f"written; {InternalError.REPORT}",
    )


# -- change events ------------------------------------------------------------------


def ingest_events(
    db: Database, path: str | Path, *, mapping: EventMapping | None = None
) -> FileSummary:
    """Load change events (CSV, JSON lines or a JSON array) into ``events``.

    Needs ``ts`` and ``kind``; ``description`` and ``scope`` are optional.
    ``mapping`` names them when the file calls them otherwise, and gives the
    unit of numeric timestamps. Rows without a valid ts or kind are quarantined
    in ``rejected_rows``; an event already stored (same ts, kind, description,
    scope) is skipped as a duplicate, so loading a file twice adds nothing.
    """
    mapping = mapping or EventMapping()
    path = _absolute(Path(path))
    if not path.is_file():
        raise IngestError(f"{path}: no such file", path=str(path))
    fmt = detect_format(path)
    if fmt == "parquet":
        source = open_parquet(db, path, "_events_stage")
    elif fmt == "csv":
        source = open_csv(db, path, "_events_stage")
    else:
        source = open_json(db, path, fmt, "_events_stage")
    try:
        if not source.columns:
            return FileSummary(path=str(path), format=fmt, status="empty", message="no events")
        found = {c.lower(): c for c in source.columns}
        names = {c: found.get(mapping.columns.get(c, c).lower()) for c in EVENT_COLUMNS}
        missing = [c for c in ("ts", "kind") if names[c] is None]
        if missing:
            raise MissingColumnError.for_file(
                str(path), missing, list(source.columns), mapped=mapping.columns
            )
        cols = {c: quote_identifier(n) if n is not None else "NULL" for c, n in names.items()}
        ts_dtype = source.columns[names["ts"] or "ts"]
        ts = _plan_timestamp(cols["ts"], ts_dtype, mapping.epoch_unit)
        ts_value = ts.value
        kind = _text_value(cols["kind"])
        checks = [
            _Check(
                f"{_text_value(cols['ts'])} IS NULL",
                "missing_required",
                "ts",
                f"CAST({cols['ts']} AS VARCHAR)",
            ),
            _Check(f"{kind} IS NULL", "missing_required", "kind", "NULL"),
            _Check(ts.wrong, "bad_timestamp", "ts", f"CAST({cols['ts']} AS VARCHAR)"),
            _Check(ts.out_of_range, "out_of_range", "ts", f"CAST({cols['ts']} AS VARCHAR)"),
        ]
        text = {
            c: _text_value(cols[c]) if cols[c] != "NULL" else "CAST(NULL AS VARCHAR)"
            for c in ("description", "scope")
        }
        checked = (
            f"SELECT {source.row_expr} AS _row, {ts_value} AS ts, {kind} AS kind, "
            f"{text['description']} AS description, {text['scope']} AS scope, "
            f"{_problem_sql(checks, source.error_expr)} AS _problem, "
            f"{_raw_sql(source, None, Mapping())} AS _raw FROM {source.relation}"
        )
        db.execute("BEGIN TRANSACTION")
        try:
            before = int(db.scalar("SELECT count(*) FROM events"))
            db.execute(
                "INSERT INTO events SELECT DISTINCT ts, kind, description, scope, $file FROM "
                f"({checked}) c WHERE _problem IS NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE "
                "e.ts = c.ts AND e.kind = c.kind AND e.description IS NOT DISTINCT FROM c.description "
                "AND e.scope IS NOT DISTINCT FROM c.scope)",
                {**source.params, "file": str(path)},
            )
            accepted = int(db.scalar("SELECT count(*) FROM events")) - before
            rejected = dict(
                db.execute(
                    f"SELECT _problem.reason, count(*) FROM ({checked}) WHERE _problem IS NOT NULL GROUP BY 1",
                    source.params,
                )
            )
            db.execute(
                "INSERT INTO rejected_rows SELECT $file, NULL, _row, _problem.col, _problem.reason, "
                f"_problem.bad, _raw, $now FROM ({checked}) WHERE _problem IS NOT NULL",
                {**source.params, "file": str(path), "now": datetime.now(UTC)},
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.execute("DROP TABLE IF EXISTS temp._events_stage")
        db.execute("DROP TABLE IF EXISTS temp._events_stage_lines")
    rejected_total = sum(int(n) for n in rejected.values())
    return FileSummary(
        path=str(path),
        format=fmt,
        status="ingested",
        rows_read=source.rows_read,
        accepted=accepted,
        rejected={k: int(v) for k, v in rejected.items()},
        duplicates=source.rows_read - accepted - rejected_total,
    )
