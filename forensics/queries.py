"""Every SQL statement behind the investigator's questions, each in a named function.

A function takes the ``Database`` and typed arguments and returns a Polars
DataFrame (or a few plain values). Values are always bound parameters;
identifiers are checked against the table and quoted by
``schema.quote_identifier``. Aggregation happens in DuckDB; only what a chart
or test needs comes back.

Time buckets are computed on integers (``epoch_us(ts) // bucket``), which
DuckDB groups about four times faster than ``date_trunc`` on a TIMESTAMPTZ.
True counts use ``count(*) FILTER (WHERE s)``: ``count_if`` of a group where
the signal is always null is null, not 0.

Cubes
    A cube is a table of counts per time bucket (the default cube's is the
    database's grain, ``data_grain``: the hour on hour-grained data; others an
    hour, a day or a grain asked for) and per combination of some
    dimensions' values: ``requests`` and, for each signal ``s``, ``n__s``
    (requests where ``s`` is defined) and ``k__s`` (where it is true). Numeric
    dimensions enter as buckets (the bucket's lower edge). ``cube_catalog``
    lists the cubes, each with the state of ``requests`` it was built from
    (ingested files, signal registry, row count, a checksum of the rows'
    provenance). A read uses only cubes built from ``requests`` as it is now:
    when they are stale (rows loaded by ``ingest.ingest_files``, a crash
    between an ingest's commit and the rebuild, the user's own SQL) a
    connection that may write rebuilds them first, a read-only one reads the
    raw table. ``Workbench.ingest`` rebuilds them at once. One default cube is
    chosen automatically (the dimensions in schema order that keep it under a
    row budget); ``build_cube(db, dims=...)`` adds others. A count query reads the
    smallest cube that holds every column it needs at a fine enough grain and
    whose time bounds fall on bucket edges, and the raw ``requests`` otherwise:
    the answer is the same, only the speed differs.

Dimensions and roles
    Only columns whose role is *dimension* (``forensics.roles``: a possible
    cause) are dimensions: ``dimensions()``, the cubes, the dashboard's filters
    and the separation's slices never hold an *outcome* (a measured effect such
    as ``output_tokens`` or ``latency_ms``). The dimensions recorded in
    ``cube_dimensions`` follow the roles: ``dimensions()`` leaves out a recorded
    column whose role is no longer dimension, and ``Workbench.ingest`` rebuilds
    the cubes (``refresh_cubes``) when an ingest changed a role, so a column
    that became an outcome leaves the default cube and a cube asked for with it
    is dropped, and a column that became a dimension is discovered. An outcome
    can still be looked at by hand: ``counts_by(by=[outcome])`` (hence
    ``wb.rates(by="latency_ms")``), ``counts_per_dimension`` with it named and a
    ``Where`` on it read the raw table, a numeric outcome bucketed as a numeric
    dimension would be (``describe_column``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from forensics.db import Database
from forensics.errors import QueryError, UnknownNameError
from forensics.grain import check_grain, database_grain, grain_us, parse_grain
from forensics.roles import COUNTS_META, columns_with_role
from forensics.schema import CANONICAL_COLUMNS, quote_identifier

__all__ = [
    "CUBE_MAX_ROWS",
    "CUBE_MAX_VALUES",
    "CUBE_MIN_ROWS",
    "CUBE_REDUCTION",
    "DIMENSION_MAX_VALUES",
    "GRAINS",
    "NUMERIC_DISTINCT_AS_VALUES",
    "NUMERIC_MAX_BUCKETS",
    "Cube",
    "Dimension",
    "Grain",
    "Subset",
    "TimeGrid",
    "Where",
    "bucket_label",
    "bucket_range",
    "bucket_sql",
    "build_cube",
    "check_signal",
    "checked_grain",
    "count_column",
    "counts_by",
    "counts_in_subsets",
    "counts_per_dimension",
    "cover_counts",
    "cubes",
    "data_grain",
    "describe_column",
    "dimension",
    "dimension_values",
    "dimensions",
    "discover_dimensions",
    "event_rows",
    "event_sources",
    "groupable_columns",
    "ingested_files",
    "moment_counts",
    "no_users_on_counted_rows",
    "overlap_counts",
    "power_of_two_edges",
    "refresh_cubes",
    "rejected_by_reason",
    "rejected_rows",
    "set_grain",
    "signal_names",
    "slice_counts",
    "stored_path",
    "table_counts",
    "time_grid",
    "time_range",
    "user_sequences",
    "value_counts",
    "where_sql",
]

Grain = Literal["minute", "5min", "15min", "hour", "day"]

GRAINS: tuple[Grain, ...] = ("minute", "5min", "15min", "hour", "day")
"""Time buckets (``forensics.grain``), counted from the Unix epoch: UTC hours and days."""

_BUCKET_US = {g: grain_us(g) for g in GRAINS}

GRAIN_META = "grain"
"""``forensics_meta`` key of a grain set by option (``set_grain``); absent: from the data."""

DIMENSION_MAX_VALUES = 2000
"""A text column with more distinct values than this is an identifier, not a dimension."""

CUBE_MAX_VALUES = 64
"""Categorical dimensions with at most this many values can go into a cube."""

NUMERIC_MAX_BUCKETS = 8
"""Numeric columns are cut into at most this many ranges (powers of two)."""

NUMERIC_DISTINCT_AS_VALUES = 12
"""A numeric column with at most this many distinct values is bucketed value by value."""

CUBE_MIN_ROWS = 50_000
"""The default cube may always hold this many rows."""

CUBE_MAX_ROWS = 500_000
"""...and never more than this many (a query over it stays well under 100 ms)."""

CUBE_REDUCTION = 10
"""...nor more than the raw row count divided by this."""

_CANONICAL_ORDER = {c.name: i for i, c in enumerate(CANONICAL_COLUMNS)}
_NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL",
}  # fmt: skip

TimeLike = str | datetime | date


# -- names ----------------------------------------------------------------------------


def signal_names(db: Database) -> list[str]:
    """Signals stored in this database: built-in first, the user's next, ``degraded`` last.

    Examples
    --------
    >>> signal_names(Database(":memory:"))
    []
    """
    tables = db.tables()
    if "signal_definitions" not in tables or "requests" not in tables:
        return []

    def lookup() -> list[str]:
        rows = db.execute(
            "SELECT name FROM signal_definitions ORDER BY CASE kind WHEN 'detector' THEN 0 "
            "WHEN 'user' THEN 1 WHEN 'count' THEN 1 ELSE 2 END, rowid"
        )
        present = db.columns("requests")
        return [r[0] for r in rows if r[0] in present]

    return list(db.memo(("signal_names",), lookup))


def count_column(db: Database) -> str | None:
    """The column saying how many requests a row stands for (counted rows), or None.

    Examples
    --------
    >>> count_column(Database(":memory:")) is None
    True
    """
    return db.memo(("count_column",), lambda: db.meta(COUNTS_META))


def _requests_sum(db: Database) -> str:
    """SQL aggregate of the requests a group of ``requests`` rows stands for."""
    weight = count_column(db)
    if weight is None:
        return "count(*)"
    return f"CAST(coalesce(sum({quote_identifier(weight)}), 0) AS BIGINT)"


def _requests_where(db: Database, condition: str) -> str:
    """SQL aggregate of the requests of the rows meeting ``condition``."""
    weight = count_column(db)
    if weight is None:
        return f"count(*) FILTER (WHERE {condition})"
    w = quote_identifier(weight)
    return f"CAST(coalesce(sum({w}) FILTER (WHERE {condition}), 0) AS BIGINT)"


def _signal_sums(db: Database, signal: str) -> tuple[str, str]:
    """SQL aggregates ``n`` (requests where ``signal`` is defined) and ``k`` (showing it).

    On counted rows a row weighs its count and the signal holds how many show it.
    """
    q = quote_identifier(signal)
    weight = count_column(db)
    if weight is None:
        return f"count({q})", f"count(*) FILTER (WHERE {q})"
    w = quote_identifier(weight)
    return (
        f"CAST(coalesce(sum({w}) FILTER (WHERE {q} IS NOT NULL), 0) AS BIGINT)",
        f"CAST(coalesce(sum({q}), 0) AS BIGINT)",
    )


def _signal_terms(db: Database, signal: str) -> tuple[str, str]:
    """Per-row SQL terms whose sums are ``n`` and ``k`` (see ``_signal_sums``)."""
    q = quote_identifier(signal)
    weight = count_column(db)
    if weight is None:
        return f"CAST({q} IS NOT NULL AS INTEGER)", f"CAST({q} IS TRUE AS INTEGER)"
    w = quote_identifier(weight)
    return f"CASE WHEN {q} IS NOT NULL THEN {w} ELSE 0 END", f"coalesce({q}, 0)"


def no_users_on_counted_rows(db: Database, what: str) -> None:
    """Raise ``QueryError`` when ``requests`` holds counted rows: they name no users."""
    weight = count_column(db)
    if weight is not None:
        raise QueryError(
            f"{what} is not available on counted rows: a row stands for {weight} requests "
            "of users it does not name, so distinct users cannot be counted; ask for "
            "request rates (wb.rates, wb.compare) instead"
        )


def check_signal(db: Database, signal: str) -> str:
    """Return ``signal`` if the database has it, else raise ``UnknownNameError`` listing them."""
    names = signal_names(db)
    if signal not in names:
        raise UnknownNameError.for_name("signal", signal, names)
    return signal


@dataclass(frozen=True)
class Dimension:
    """A column requests can be sliced by: one whose role is dimension (a possible cause).

    Outcomes (``forensics.roles``) are never dimensions; ``describe_column`` gives one
    the same description when it is grouped by hand.
    """

    name: str
    """Column name in ``requests``."""
    kind: Literal["categorical", "numeric"]
    """Categorical (values) or numeric (ranges)."""
    cardinality: int
    """Distinct non-null values (approximate for large tables)."""
    cubable: bool
    """Whether a cube can hold it (categorical with few values, or numeric as buckets)."""
    edges: tuple[float, ...] = ()
    """For numeric dimensions, the lower edges of the buckets, ascending."""

    @property
    def by_value(self) -> bool:
        """Numeric with so few values that each value is its own bucket."""
        return self.kind == "numeric" and self.cardinality <= NUMERIC_DISTINCT_AS_VALUES


def _is_numeric_type(dtype: str) -> bool:
    upper = dtype.upper()
    return upper in _NUMERIC_TYPES or upper.startswith("DECIMAL")


def _sliceable_type(dtype: str) -> bool:
    """Whether values of this type can be grouped (not times, blobs or lists)."""
    return not (
        dtype.upper().startswith(("TIMESTAMP", "DATE", "TIME", "BLOB")) or dtype.endswith("]")
    )


def _candidate_columns(db: Database) -> dict[str, str]:
    """Dimension-role columns of a type that can be sliced, name -> type."""
    types = db.columns("requests")
    return {n: types[n] for n in columns_with_role(db, "dimension") if _sliceable_type(types[n])}


def power_of_two_edges(
    lo: float, hi: float, *, max_buckets: int = NUMERIC_MAX_BUCKETS
) -> tuple[float, ...]:
    """Lower edges of buckets [0, 2^s), [2^s, 2^2s)... covering [lo, hi], at most ``max_buckets``.

    The step ``s`` grows until the buckets fit.

    Examples
    --------
    >>> power_of_two_edges(1, 64)
    (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    >>> power_of_two_edges(0, 900_000)
    (0.0, 8.0, 64.0, 512.0, 4096.0, 32768.0, 262144.0)
    """
    top = max(hi, 1.0)
    step = 1
    while True:
        edges = [0.0]
        exponent = step
        while 2.0**exponent <= top:
            edges.append(2.0**exponent)
            exponent += step
        if len(edges) <= max_buckets:
            return tuple(edges)
        step += 1


def bucket_sql(column: str, edges: Sequence[float]) -> str:
    """SQL mapping a numeric column to the lower edge of its bucket (a DOUBLE).

    Values below the first edge fall into the first bucket.

    Examples
    --------
    >>> bucket_sql("batch_size", (0.0, 8.0, 32.0))
    'CASE WHEN "batch_size" IS NULL THEN NULL WHEN "batch_size" >= 32.0 THEN 32.0::DOUBLE WHEN "batch_size" >= 8.0 THEN 8.0::DOUBLE ELSE 0.0::DOUBLE END'
    """
    q = quote_identifier(column)
    parts = [f"CASE WHEN {q} IS NULL THEN NULL"]
    for edge in reversed(edges[1:]):
        parts.append(f"WHEN {q} >= {float(edge)!r} THEN {float(edge)!r}::DOUBLE")
    parts.append(f"ELSE {float(edges[0])!r}::DOUBLE END" if edges else "ELSE NULL END")
    return " ".join(parts)


def bucket_index_sql(column: str, edges: Sequence[float]) -> str:
    """SQL mapping a numeric column to its bucket's position in ``edges`` (see bucket_sql).

    A binary search: about log2(len(edges)) comparisons per row.

    Examples
    --------
    >>> bucket_index_sql("batch_size", (0.0, 8.0, 32.0))
    'CASE WHEN "batch_size" IS NULL THEN NULL ELSE CASE WHEN "batch_size" >= 8.0 THEN CASE WHEN "batch_size" >= 32.0 THEN 2 ELSE 1 END ELSE 0 END END'
    """
    q = quote_identifier(column)

    def within(lo: int, hi: int) -> str:
        if lo >= hi:
            return str(lo)
        mid = (lo + hi + 1) // 2
        return f"CASE WHEN {q} >= {float(edges[mid])!r} THEN {within(mid, hi)} ELSE {within(lo, mid - 1)} END"

    return (
        f"CASE WHEN {q} IS NULL THEN NULL ELSE {within(0, len(edges) - 1) if edges else 'NULL'} END"
    )


def _numeric_edges(db: Database, column: str, distinct: int) -> tuple[float, ...]:
    """Bucket lower edges: every value when there are few, else powers of two."""
    q = quote_identifier(column)
    if distinct <= NUMERIC_DISTINCT_AS_VALUES:
        values = db.execute(
            f"SELECT DISTINCT CAST({q} AS DOUBLE) AS v FROM requests WHERE {q} IS NOT NULL "
            "ORDER BY v"
        )
        if len(values) <= NUMERIC_DISTINCT_AS_VALUES:
            return tuple(float(v[0]) for v in values)
    lo, hi = db.execute(f"SELECT min({q}), max({q}) FROM requests")[0]
    return power_of_two_edges(float(lo), float(hi))


def discover_dimensions(db: Database) -> list[Dimension]:
    """Scan ``requests`` for the columns it can be sliced by (one pass, approximate counts).

    Canonical dimensions come first in schema order, then the user's own
    columns by name. Text columns with more than ``DIMENSION_MAX_VALUES``
    values are identifiers, not dimensions.
    """
    if "requests" not in db.tables():
        return []
    candidates = _candidate_columns(db)
    if not candidates or not db.scalar("SELECT count(*) FROM requests"):
        return []
    names = sorted(candidates, key=lambda n: (_CANONICAL_ORDER.get(n, len(_CANONICAL_ORDER)), n))
    found = _describe(db, names, candidates)
    return [d for d in found if d is not None]


def _describe(
    db: Database, names: Sequence[str], types: Mapping[str, str]
) -> list[Dimension | None]:
    """Describe columns as dimensions (one scan); None for one without values or with too many."""
    items = ", ".join(f"approx_count_distinct({quote_identifier(n)})" for n in names)
    counts = db.execute(f"SELECT {items} FROM requests")[0]
    dims: list[Dimension | None] = []
    for name, approx in zip(names, counts, strict=True):
        count = int(approx or 0)
        if count == 0:
            dims.append(None)
            continue
        if count <= 2 * CUBE_MAX_VALUES:  # exact where it decides anything
            count = int(db.scalar(f"SELECT count(DISTINCT {quote_identifier(name)}) FROM requests"))
        if _is_numeric_type(types[name]):
            edges = _numeric_edges(db, name, count)
            dims.append(Dimension(name, "numeric", count, True, edges))
        elif count <= DIMENSION_MAX_VALUES:
            dims.append(Dimension(name, "categorical", count, count <= CUBE_MAX_VALUES))
        else:
            dims.append(None)
    return dims


def describe_column(db: Database, name: str) -> Dimension:
    """Describe an outcome column as a dimension would be, to group by it by hand.

    Numeric outcomes are bucketed as numeric dimensions are (every value when there
    are few, else powers of two); ``cubable`` is False since no cube holds an outcome.

    Raises
    ------
    QueryError
        When the column cannot be grouped by: no values, a time or list type, or
        more than ``DIMENSION_MAX_VALUES`` text values.
    """

    def lookup() -> Dimension:
        dtype = db.columns("requests")[name]
        described = _describe(db, [name], {name: dtype})[0] if _sliceable_type(dtype) else None
        if described is None:
            raise QueryError(
                f"cannot group by {name!r} ({dtype}): it has no values, too many distinct "
                f"values (more than {DIMENSION_MAX_VALUES}) or a type that has no groups; "
                f"filter on it with where={{{name!r}: ...}} instead"
            )
        return Dimension(name, described.kind, described.cardinality, False, described.edges)

    return db.memo(("describe_column", name), lookup)


def groupable_columns(
    db: Database, names: Sequence[str], *, known: Mapping[str, Dimension] | None = None
) -> dict[str, Dimension]:
    """The dimensions and outcomes named, described; a count can group by each of them.

    An outcome is described by ``describe_column`` (and read from the raw table);
    any other name raises ``UnknownNameError`` listing the dimensions. ``known``
    is the dimensions the caller already holds (``dimensions(db)`` when omitted).
    """
    dims = dict(known) if known is not None else {d.name: d for d in dimensions(db)}
    outcomes = set(columns_with_role(db, "outcome"))
    out = {}
    for name in names:
        if name in dims:
            out[name] = dims[name]
        elif name in outcomes:
            out[name] = describe_column(db, name)
        else:
            raise UnknownNameError.for_name("dimension", name, dims)
    return out


def dimensions(db: Database) -> list[Dimension]:
    """The dimensions of ``requests``, as recorded when the cubes were last built.

    Only columns whose role is still dimension (``forensics.roles``).
    Rediscovered when the record is missing or older than ``requests`` (see
    ``_catalog``).
    """
    return list(_catalog(db).dimensions)


def dimension(db: Database, name: str) -> Dimension:
    """One dimension by name, or ``UnknownNameError`` listing the valid ones."""
    dims = {d.name: d for d in dimensions(db)}
    if name not in dims:
        raise _not_a_dimension(db, name, dims)
    return dims[name]


def _not_a_dimension(db: Database, name: str, dims: Iterable[str]) -> UnknownNameError:
    """The error for a name that is no dimension; an outcome's says what it is instead."""
    if name not in columns_with_role(db, "outcome"):
        return UnknownNameError.for_name("dimension", name, dims)
    return UnknownNameError(
        f"{name!r} is an outcome (measured, never a slice), not a dimension; cubes and "
        f"filters hold dimensions only. Look at it by hand with wb.rates(by={name!r}) or "
        f"where={{{name!r}: ...}} (raw rows), or make it a dimension with [roles] "
        f'{name} = "dimension" in a mapping file',
        name=name,
        valid=sorted(dims),
    )


def dimension_values(db: Database, name: str, *, limit: int = DIMENSION_MAX_VALUES) -> pl.DataFrame:
    """The values of one dimension with their request counts, most requests first.

    Numeric dimensions give their buckets (``value`` is the lower edge). Reads
    a cube that holds the dimension when there is one.

    Returns
    -------
    pl.DataFrame
        ``value, requests``; a missing value is a null ``value``.
    """
    catalog = _catalog(db)
    dims = {d.name: d for d in catalog.dimensions}
    if name not in dims:
        raise UnknownNameError.for_name("dimension", name, dims)
    d = dims[name]
    cube = next((c for c in catalog.cubes if name in c.dims), None)
    q = quote_identifier(name)
    if cube is not None:
        sql = f"SELECT {q} AS value, sum(requests) AS requests FROM {quote_identifier(cube.name)}"
    else:
        key = bucket_sql(name, d.edges) if d.kind == "numeric" else q
        sql = f"SELECT {key} AS value, {_requests_sum(db)} AS requests FROM requests"
    frame = db.frame(
        f"{sql} GROUP BY 1 ORDER BY requests DESC, value NULLS LAST LIMIT $n", {"n": limit}
    )
    return frame.with_columns(pl.col("requests").cast(pl.Int64))


# -- where filters --------------------------------------------------------------------


def as_utc(value: TimeLike | None, what: str) -> datetime | None:
    """Parse a time bound to an aware UTC datetime (naive means UTC; None stays None).

    Examples
    --------
    >>> as_utc("2024-03-10", "start")
    datetime.datetime(2024, 3, 10, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(
                f"{what}: {value!r} is not an ISO-8601 time; use e.g. '2024-03-10' or "
                "'2024-03-10T06:00:00Z'"
            ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Where:
    """A structured filter: allowed values per column, numeric ranges and a time range.

    Built from a plain mapping so that notebooks can write
    ``where={"model": ["a", "b"], "batch_size": {"gte": 32}, "ts": ("2024-03-10", None)}``.
    A list may hold ``None`` to match missing values. Conditions combine with AND.

    Examples
    --------
    >>> w = Where.parse({"model": "a", "batch_size": {"gte": 32}, "ts": ("2024-03-10", None)})
    >>> w.columns == {"model", "batch_size"}, w.start.day
    (True, 10)
    """

    values: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """(column, allowed values) pairs."""
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    """(column, gte, lt) numeric ranges; either bound may be None."""
    start: datetime | None = None
    """Requests at or after this time."""
    end: datetime | None = None
    """Requests before this time."""

    @classmethod
    def parse(cls, where: Mapping[str, Any] | Where | None) -> Where:
        """Build a Where from the mapping form (or pass one through)."""
        if where is None:
            return cls()
        if isinstance(where, Where):
            return where
        if not isinstance(where, Mapping):
            raise QueryError(
                f"where must be a mapping such as {{'model': ['a']}}, not {type(where).__name__}"
            )
        values, ranges = [], []
        start = end = None
        for column, spec in where.items():
            if column == "ts":
                start, end = cls._parse_time(spec)
            elif isinstance(spec, Mapping):
                unknown = set(spec) - {"gte", "lt"}
                if unknown:
                    raise QueryError(
                        f"where[{column!r}]: unknown bound(s) {sorted(unknown)}; use 'gte' and 'lt'"
                    )
                try:
                    gte = None if spec.get("gte") is None else float(spec["gte"])
                    lt = None if spec.get("lt") is None else float(spec["lt"])
                except (TypeError, ValueError):
                    raise QueryError(
                        f"where[{column!r}]: bounds must be numbers, got {dict(spec)!r}"
                    ) from None
                ranges.append((column, gte, lt))
            elif isinstance(spec, str | int | float | bool) or spec is None:
                values.append((column, (spec,)))
            else:
                values.append((column, tuple(spec)))
        return cls(tuple(values), tuple(ranges), start, end)

    @staticmethod
    def _parse_time(spec: Any) -> tuple[datetime | None, datetime | None]:
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"gte", "lt"}
            if unknown:
                raise QueryError(
                    f"where['ts']: unknown bound(s) {sorted(unknown)}; use 'gte', 'lt'"
                )
            return as_utc(spec.get("gte"), "ts"), as_utc(spec.get("lt"), "ts")
        if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 2:
            return as_utc(spec[0], "ts"), as_utc(spec[1], "ts")
        raise QueryError("where['ts'] must be (start, end) or {'gte': ..., 'lt': ...}")

    @property
    def columns(self) -> set[str]:
        """Columns the filter touches (not counting ts)."""
        return {c for c, _ in self.values} | {c for c, _, _ in self.ranges}

    def merged(self, other: Where) -> Where:
        """Both filters at once (time ranges intersect)."""
        start = max((t for t in (self.start, other.start) if t is not None), default=None)
        end = min((t for t in (self.end, other.end) if t is not None), default=None)
        return Where(self.values + other.values, self.ranges + other.ranges, start, end)

    def between(self, start: datetime | None, end: datetime | None) -> Where:
        """Restrict the filter to [start, end) as well."""
        return self.merged(Where(start=start, end=end))

    def to_dict(self) -> dict[str, Any]:
        """The mapping form (JSON-friendly), as accepted by ``parse``."""
        out: dict[str, Any] = {c: list(v) for c, v in self.values}
        for c, gte, lt in self.ranges:
            out[c] = {k: v for k, v in (("gte", gte), ("lt", lt)) if v is not None}
        if self.start or self.end:
            out["ts"] = [
                self.start.isoformat() if self.start else None,
                self.end.isoformat() if self.end else None,
            ]
        return out


def _bind(params: dict[str, Any], value: Any) -> str:
    key = f"w{len(params)}"
    params[key] = value
    return f"${key}"


def where_sql(
    where: Where,
    *,
    columns: Mapping[str, str],
    params: dict[str, Any],
    time_column: str = "ts",
    time_unit_us: int | None = None,
) -> str:
    """Compile a Where to a SQL condition over a relation with ``columns``.

    Values are added to ``params`` and referenced as ``$w<i>``. With
    ``time_unit_us``, the time column holds integer bucket numbers (a cube)
    and the bounds are converted to bucket numbers (they must be aligned).

    Examples
    --------
    >>> params = {}
    >>> where_sql(Where.parse({"model": ["a", None]}), columns={"model": "VARCHAR"}, params=params)
    '(list_contains($w0, "model") OR "model" IS NULL)'
    >>> params
    {'w0': ['a']}
    """
    clauses = []
    for column, allowed in where.values:
        if column not in columns:
            raise UnknownNameError.for_name("column", column, columns)
        dtype = columns[column]
        q = quote_identifier(column)
        present = [v for v in allowed if v is not None]
        parts = []
        if present:
            if _is_numeric_type(dtype):
                try:
                    numbers = [float(v) for v in present]
                except (TypeError, ValueError):
                    raise QueryError(
                        f"where[{column!r}]: {column} is numeric; give numbers, got {present!r}"
                    ) from None
                parts.append(f"list_contains({_bind(params, numbers)}, CAST({q} AS DOUBLE))")
            elif dtype.upper() == "BOOLEAN":
                parts.append(f"list_contains({_bind(params, [bool(v) for v in present])}, {q})")
            elif dtype.upper() == "VARCHAR":
                parts.append(f"list_contains({_bind(params, [str(v) for v in present])}, {q})")
            else:
                texts = [str(v) for v in present]
                parts.append(f"list_contains({_bind(params, texts)}, CAST({q} AS VARCHAR))")
        if len(present) < len(allowed):
            parts.append(f"{q} IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")" if len(parts) > 1 else parts[0])
    for column, gte, lt in where.ranges:
        if column not in columns:
            raise UnknownNameError.for_name("column", column, columns)
        if not _is_numeric_type(columns[column]):
            raise QueryError(
                f"where[{column!r}]: a range needs a numeric column; {column} is {columns[column]}"
            )
        q = quote_identifier(column)
        if gte is not None:
            clauses.append(f"{q} >= {_bind(params, gte)}")
        if lt is not None:
            clauses.append(f"{q} < {_bind(params, lt)}")
    for bound, op in ((where.start, ">="), (where.end, "<")):
        if bound is None:
            continue
        if time_unit_us is None:
            clauses.append(f"{time_column} {op} {_bind(params, bound)}")
        else:
            number = _epoch_us(bound) // time_unit_us
            clauses.append(f"{time_column} {op} {_bind(params, number)}")
    return " AND ".join(clauses) if clauses else "true"


def _epoch_us(t: datetime) -> int:
    return round((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


# -- cubes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cube:
    """A materialised aggregate of ``requests``."""

    name: str
    """Its table."""
    dims: tuple[str, ...]
    """Dimensions it holds (numeric ones as buckets)."""
    grain: Grain
    """Time bucket."""
    rows: int
    """Rows in the cube."""
    source_rows: int
    """Rows of ``requests`` it was built from."""
    auto: bool
    """Chosen automatically (the default cube) rather than asked for."""


_CATALOG = """
    CREATE TABLE IF NOT EXISTS cube_catalog (
        name VARCHAR PRIMARY KEY, dims VARCHAR[], grain VARCHAR, rows BIGINT,
        source_rows BIGINT, auto BOOLEAN, built_at TIMESTAMPTZ, source_state VARCHAR
    )"""

_CATALOG_STATE = "ALTER TABLE cube_catalog ADD COLUMN IF NOT EXISTS source_state VARCHAR"
"""A catalog written before cubes recorded their source's state gets the column (null: stale)."""


@dataclass(frozen=True)
class _Recorded:
    """A row of ``cube_catalog``: the cube and the state of ``requests`` it summarises."""

    cube: Cube
    state: str | None


@dataclass(frozen=True)
class _Catalog:
    """What a read may use: the cubes that summarise ``requests`` as it is, and its dimensions."""

    cubes: tuple[Cube, ...]
    dimensions: tuple[Dimension, ...]


def _provenance_checksum(db: Database) -> int:
    """A checksum of which rows ``requests`` holds (their file and row; rowid without them).

    Unlike a row count it changes when rows are deleted and as many others
    inserted. It reads two columns of every row (about 30 ms on 10M rows), so it
    is remembered until this connection writes.
    """

    def compute() -> int:
        columns = db.columns("requests")
        keys = (
            "_source_file_id, _source_row"
            if {"_source_file_id", "_source_row"} <= set(columns)
            else "rowid"
        )
        return int(db.scalar(f"SELECT coalesce(sum(hash({keys})), 0) FROM requests"))

    return db.memo(("requests_checksum",), compute)


def _source_state(db: Database) -> tuple[str, dict[str, int]]:
    """The state of ``requests`` a cube must have been built from, and each table's size.

    The state joins what ingest commits with its rows (``ingested_files``: files,
    last id, rows accepted), the signal registry, the row count of ``requests``
    and a checksum of its rows' provenance (``_provenance_checksum``): a crash
    between an ingest's commit and the cube refresh, an ingest through
    ``ingest.ingest_files`` and a user's own DELETE or INSERT all change it. (A
    user's UPDATE of stored values in place does not; call ``refresh_cubes``
    after one.)

    All but the checksum come from table metadata and tiny tables in one
    statement (about 1.5 ms). A connection that may write runs it on every read,
    since another connection of this process may have written; when it differs
    from what this connection saw last, every remembered catalog lookup is
    forgotten. A read-only connection runs it once: while it is open, DuckDB's
    file lock lets no one write.

    Returns
    -------
    tuple[str, dict[str, int]]
        The state, and the estimated row count of every table (a cube's is exact).
    """

    def look() -> tuple[tuple[Any, ...], dict[str, int]]:
        tables = db.tables()
        parts = [
            "(SELECT count(*) FROM requests)",
            "(SELECT [count(*), coalesce(max(file_id), 0), coalesce(sum(accepted), 0)] "
            "FROM ingested_files)"
            if "ingested_files" in tables
            else "NULL",
            "(SELECT coalesce(sum(hash(name, kind, source_column, op, value"
            + (", expr" if "expr" in db.columns("signal_definitions") else "")
            + ")), 0) FROM signal_definitions)"
            if "signal_definitions" in tables
            else "NULL",
            "(SELECT list({'t': table_name, 'n': estimated_size}) FROM duckdb_tables() "
            "WHERE schema_name = 'main' AND database_name = current_database())",
        ]
        rows, files, signals, sizes = db.execute(f"SELECT {', '.join(parts)}")[0]
        seen = (int(rows), tuple(int(f) for f in files or ()), signals)
        return seen, {s["t"]: int(s["n"]) for s in sizes or ()}

    if db.read_only:
        seen, sizes = db.memo(("requests_state",), look)
    else:
        seen, sizes = look()
        if db.memo(("requests_state",), lambda: (seen, sizes))[0] != seen:
            db.forget()  # another connection wrote: tables, columns, signals may differ too
            db.memo(("requests_state",), lambda: (seen, sizes))
    rows, files, signals = seen
    files_text = "/".join(map(str, files)) or "-"
    state = f"rows={rows};files={files_text};signals={signals};check={_provenance_checksum(db)}"
    return state, sizes


def _recorded_cubes(db: Database) -> list[_Recorded]:
    """``cube_catalog`` as stored, smallest first (remembered until this connection writes)."""
    if "cube_catalog" not in db.tables():
        return []

    def lookup() -> list[_Recorded]:
        state = "source_state" if "source_state" in db.columns("cube_catalog") else "NULL"
        rows = db.execute(
            f"SELECT name, dims, grain, rows, source_rows, auto, {state} FROM cube_catalog "
            "ORDER BY rows, name"
        )
        return [
            _Recorded(Cube(r[0], tuple(r[1]), r[2], int(r[3]), int(r[4]), bool(r[5])), r[6])
            for r in rows
        ]

    return list(db.memo(("cubes",), lookup))


def _recorded_dimensions(db: Database) -> list[Dimension]:
    """``cube_dimensions`` as stored (remembered until this connection writes)."""
    if "cube_dimensions" not in db.tables():
        return []

    def lookup() -> list[Dimension]:
        rows = db.execute(
            "SELECT name, kind, cardinality, cubable, edges FROM cube_dimensions ORDER BY position"
        )
        allowed = set(columns_with_role(db, "dimension"))
        return [
            Dimension(r[0], r[1], int(r[2]), bool(r[3]), tuple(float(e) for e in (r[4] or ())))
            for r in rows
            if r[0] in allowed
        ]

    return list(db.memo(("dimensions",), lookup))


def _fresh(db: Database) -> tuple[list[Cube], bool, bool]:
    """The recorded cubes that summarise ``requests`` as it is now.

    Returns the fresh cubes, whether the recorded dimensions are fresh (they are
    written just before the default cube, by the same refresh) and whether
    every recorded cube is.
    """
    recorded = _recorded_cubes(db)
    state, sizes = _source_state(db)
    fresh = [r for r in recorded if r.state == state and sizes.get(r.cube.name) == r.cube.rows]
    dims_fresh = any(r.cube.auto for r in fresh) and "cube_dimensions" in db.tables()
    return [r.cube for r in fresh], dims_fresh, len(fresh) == len(recorded)


def _catalog(db: Database) -> _Catalog:
    """The cubes and dimensions a read may use, checked against ``requests`` as it is now.

    A cube built from another state of ``requests`` (rows ingested, deleted or
    added since, by any connection, or a refresh cut short by a crash) never
    answers: a connection that may write rebuilds the cubes first, a read-only
    one reads the raw table and discovers the dimensions by scanning it.
    """
    if "requests" not in db.tables():
        return _Catalog((), ())
    cubes_now, dims_fresh, complete = _fresh(db)
    if not (dims_fresh and complete) and not db.read_only:
        refresh_cubes(db)
        cubes_now, dims_fresh, _ = _fresh(db)
    if dims_fresh:
        dims = _recorded_dimensions(db)
    else:
        dims = db.memo(("dimensions", "discovered"), lambda: discover_dimensions(db))
    return _Catalog(tuple(cubes_now), tuple(dims))


def cubes(db: Database) -> list[Cube]:
    """The cubes this database keeps that summarise ``requests`` as it is, smallest first.

    Stale cubes are rebuilt first when the connection may write, and left out
    when it is read-only (see ``_catalog``).
    """
    return list(_catalog(db).cubes)


def _key_sql(d: Dimension) -> str:
    if d.kind == "numeric":
        return f"{bucket_sql(d.name, d.edges)} AS {quote_identifier(d.name)}"
    return quote_identifier(d.name)


def _default_cube_dims(
    db: Database, dims: Sequence[Dimension], source_rows: int, grain: Grain = "hour"
) -> list[str]:
    """Dimensions of the default cube: in schema order, each kept if the cube stays in budget.

    The budget is ``max(CUBE_MIN_ROWS, min(CUBE_MAX_ROWS, rows / CUBE_REDUCTION))``; cube
    sizes are estimated with approximate distinct counts, one scan per step.
    """
    budget = max(CUBE_MIN_ROWS, min(CUBE_MAX_ROWS, source_rows // CUBE_REDUCTION))
    hour = f"epoch_us(ts) // {_BUCKET_US[grain]}"
    chosen: list[Dimension] = []
    remaining = [d for d in dims if d.cubable]
    while remaining:
        keys = [hour, *(_key_sql(d).split(" AS ")[0] for d in chosen)]
        items = ", ".join(
            f"approx_count_distinct(hash({', '.join([*keys, _key_sql(d).split(' AS ')[0]])}))"
            for d in remaining
        )
        estimates = db.execute(f"SELECT {items} FROM requests")[0]
        # A dimension too big now stays too big once more are added.
        fitting = [d for d, e in zip(remaining, estimates, strict=True) if int(e) <= budget]
        if not fitting:
            break
        chosen.append(fitting[0])
        remaining = fitting[1:]
    return [d.name for d in chosen]


def build_cube(
    db: Database,
    *,
    dims: Sequence[str] | None = None,
    grain: Grain = "hour",
    name: str | None = None,
) -> Cube:
    """Build (or rebuild) a cube over ``dims`` and record it in ``cube_catalog``.

    Parameters
    ----------
    dims
        Dimensions to keep; None chooses the default cube's (see
        ``_default_cube_dims``).
    grain
        One of ``GRAINS`` (``"hour"``, ``"day"``, ``"minute"``...).
    name
        Table name; ``cube_<grain>_<n>`` when omitted (the default cube is ``cube_default``).
    """
    if grain not in GRAINS:
        raise QueryError(f"grain {grain!r}: use one of {', '.join(GRAINS)}")
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    if _BUCKET_US[grain] < _BUCKET_US["hour"]:
        grain = checked_grain(db, grain)  # no finer than the timestamps' own grid
    known = {d.name: d for d in dimensions(db)}
    if name is None:
        existing = {r.cube.name: r.cube for r in _recorded_cubes(db)}
        same = [
            c.name
            for c in existing.values()
            if dims is not None and c.dims == tuple(dims) and c.grain == grain and not c.auto
        ]
        if dims is None:
            name = "cube_default"
        elif same:
            name = same[0]
        else:
            number = 1
            while f"cube_{grain}_{number}" in existing:
                number += 1
            name = f"cube_{grain}_{number}"
    return _build_cube(db, known, dims=dims, grain=grain, name=name)


def _build_cube(
    db: Database,
    known: Mapping[str, Dimension],
    *,
    dims: Sequence[str] | None,
    grain: Grain,
    name: str,
) -> Cube:
    """Build one cube from ``known`` dimensions and record it with the state it summarises."""
    # The state is taken before the cube is built: rows another connection adds
    # in between make the cube look stale (rebuilt), never fresh with rows missing.
    state, _ = _source_state(db)
    source_rows = int(db.scalar("SELECT count(*) FROM requests"))
    auto = dims is None
    if dims is None:
        dims = _default_cube_dims(db, list(known.values()), source_rows, grain)
    for d in dims:
        if d not in known:
            raise _not_a_dimension(db, d, known)
        if not known[d].cubable:
            raise QueryError(
                f"dimension {d!r} has {known[d].cardinality} values, more than a cube holds "
                f"({CUBE_MAX_VALUES}); filter on it against the raw table instead"
            )
    db.execute(_CATALOG)
    db.execute(_CATALOG_STATE)
    signals = signal_names(db)
    keys = [_key_sql(known[d]) for d in dims]
    measures = [f"{_requests_sum(db)} AS requests"]
    for s in signals:
        n, k = _signal_sums(db, s)
        measures.append(f"{n} AS {quote_identifier('n__' + s)}")
        measures.append(f"{k} AS {quote_identifier('k__' + s)}")
    select = ", ".join([f"epoch_us(ts) // {_BUCKET_US[grain]} AS bucket", *keys, *measures])
    table = quote_identifier(name)
    db.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM requests GROUP BY ALL")
    rows = int(db.scalar(f"SELECT count(*) FROM {table}"))
    # Written after the table: a crash in between leaves the old state recorded (stale).
    db.execute(
        "INSERT OR REPLACE INTO cube_catalog "
        "(name, dims, grain, rows, source_rows, auto, built_at, source_state) "
        "VALUES ($n, $d, $g, $r, $s, $a, now(), $state)",
        {
            "n": name,
            "d": list(dims),
            "g": grain,
            "r": rows,
            "s": source_rows,
            "a": auto,
            "state": state,
        },
    )
    return Cube(name, tuple(dims), grain, rows, source_rows, auto)


def _record_dimensions(db: Database, dims: Sequence[Dimension]) -> None:
    db.execute(
        "CREATE OR REPLACE TABLE cube_dimensions (position INTEGER, name VARCHAR, kind VARCHAR, "
        "cardinality BIGINT, cubable BOOLEAN, edges DOUBLE[])"
    )
    for i, d in enumerate(dims):
        db.execute(
            "INSERT INTO cube_dimensions VALUES ($i, $n, $k, $c, $b, $e)",
            {
                "i": i,
                "n": d.name,
                "k": d.kind,
                "c": d.cardinality,
                "b": d.cubable,
                "e": list(d.edges),
            },
        )


def refresh_cubes(db: Database) -> list[Cube]:
    """Rediscover the dimensions and rebuild every cube from ``requests``.

    ``Workbench.ingest`` calls this after loading; any read through a cube
    calls it when the cubes no longer summarise ``requests`` as it is (see
    ``_catalog``). A cube asked for earlier whose dimensions no longer fit is
    dropped.
    """
    if "requests" not in db.tables():
        return []
    previous = _recorded_cubes(db)
    found = discover_dimensions(db)
    _record_dimensions(db, found)
    known = {d.name: d for d in found}
    grain = _chosen_grain(db)
    rebuilt = [_build_cube(db, known, dims=None, grain=grain, name="cube_default")]
    for entry in previous:
        cube = entry.cube
        if cube.auto:
            continue
        if all(d in known and known[d].cubable for d in cube.dims):
            rebuilt.append(_build_cube(db, known, dims=cube.dims, grain=cube.grain, name=cube.name))
        else:
            # The catalog row goes first: a crash in between leaves a table nothing reads.
            db.execute("DELETE FROM cube_catalog WHERE name = $n", {"n": cube.name})
            db.execute(f"DROP TABLE IF EXISTS {quote_identifier(cube.name)}")
    return rebuilt


def _chosen_grain(db: Database) -> Grain:
    """The grain set by option (``set_grain``), else the data's (``grain.database_grain``)."""
    asked = db.meta(GRAIN_META)
    if asked is not None:
        return parse_grain(asked)  # type: ignore[return-value]
    if "requests" not in db.tables() or not db.scalar("SELECT EXISTS (SELECT 1 FROM requests)"):
        return "hour"  # no times to choose from
    grid = time_grid(db, units_us=[grain_us(g) for g in GRAINS], weight=count_column(db))
    aligned = timedelta(microseconds=grid.aligned_us) if grid.aligned_us else None
    return database_grain(grid.first, grid.last, grid.requests, aligned)  # type: ignore[return-value]


def data_grain(db: Database) -> Grain:
    """The finest time grain of this database: what its default cube was built at.

    Chosen from the timestamps when the cubes are built (``grain.database_grain``)
    unless an option set it (``set_grain``), and stored with the default cube in
    ``cube_catalog``, so every reader agrees. A read-only connection whose cubes
    are stale chooses it the same way without storing it.
    """
    for cube in _catalog(db).cubes:
        if cube.auto:
            return cube.grain
    return _chosen_grain(db)


def set_grain(db: Database, grain: str | timedelta | None) -> Grain:
    """Set (or, with None, unset) the database's grain and rebuild the cubes at it.

    Raises ``QueryError`` when ``grain`` is finer than the timestamps' own grid
    (``grain.check_grain``).
    """
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    if grain is None:
        db.execute("DELETE FROM forensics_meta WHERE key = $k", {"k": GRAIN_META})
    else:
        db.set_meta(GRAIN_META, checked_grain(db, grain))
    refresh_cubes(db)
    return data_grain(db)


def checked_grain(db: Database, grain: str | timedelta) -> Grain:
    """The name of ``grain``, refused when finer than the timestamps' grid (``grain.check_grain``)."""
    grid = time_grid(db, units_us=[grain_us(g) for g in GRAINS], weight=count_column(db))
    aligned = timedelta(microseconds=grid.aligned_us) if grid.aligned_us else None
    return check_grain(parse_grain(grain), aligned)  # type: ignore[return-value]


# -- counting -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where a count query reads from: a cube or the raw table."""

    table: str
    cube: Cube | None
    columns: dict[str, str]


def _aligned(t: datetime | None, grain: Grain) -> bool:
    return t is None or _epoch_us(t) % _BUCKET_US[grain] == 0


def _fits(d: Dimension, where: Where) -> bool:
    """Whether a cube's bucket column answers the filter on this dimension exactly."""
    if d.kind != "numeric":
        return True
    edges = set(d.edges)
    for column, allowed in where.values:
        if column == d.name and not (
            d.by_value and all(v is None or float(v) in edges for v in allowed)
        ):
            return False
    for column, gte, lt in where.ranges:
        if column == d.name and any(b is not None and b not in edges for b in (gte, lt)):
            return False
    return True


def _source(
    db: Database,
    needed: set[str],
    grain: Grain | None,
    signal: str,
    where: Where,
    *,
    times: Sequence[datetime | None] = (),
    catalog: _Catalog | None = None,
) -> _Source:
    """The smallest fresh cube that answers exactly, else ``requests``.

    ``times`` are further time bounds the query uses (besides ``where``'s),
    which must fall on the cube's bucket edges too. A query touching a column
    that is not a dimension (an outcome) reads ``requests``. ``catalog`` is the
    one the caller checked (``_catalog(db)`` when omitted).
    """
    catalog = catalog or _catalog(db)
    dims = {d.name: d for d in catalog.dimensions}
    bounds = (where.start, where.end, *times)
    for cube in catalog.cubes if needed <= set(dims) else ():
        if grain is not None and _BUCKET_US[grain] % _BUCKET_US[cube.grain]:
            continue  # a cube answers grains its buckets add up to
        if not (needed <= set(cube.dims)):
            continue
        if not all(_aligned(t, cube.grain) for t in bounds):
            continue
        if not all(_fits(dims[c], where) for c in needed if c in dims):
            continue
        columns = db.columns(cube.name)
        if f"n__{signal}" not in columns:
            continue
        return _Source(cube.name, cube, columns)
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    return _Source("requests", None, db.columns("requests"))


def counts_by(
    db: Database,
    *,
    by: Sequence[str],
    signal: str,
    grain: Grain | None = None,
    where: Where | None = None,
    use_cubes: bool = True,
) -> pl.DataFrame:
    """Count requests where ``signal`` is defined (``n``) and true (``k``) per group.

    ``by`` holds dimensions, or outcomes looked at by hand (``describe_column``:
    always read from the raw table). Numeric columns in ``by`` are bucketed (the
    value is the bucket's lower edge). Reads a cube when one covers ``by`` and
    ``where``; ``use_cubes=False`` forces the raw table (same answer).

    Returns
    -------
    pl.DataFrame
        ``[ts,] *by, n, k`` sorted by the keys; ``ts`` is the bucket start
        (UTC) when ``grain`` is given. With no ``by`` and no ``grain``, one row
        (0, 0 when nothing matches).
    """
    check_signal(db, signal)
    if grain is not None and grain not in GRAINS:
        raise QueryError(f"grain {grain!r}: use one of {', '.join(GRAINS)} or None")
    where = where or Where()
    catalog = _catalog(db)
    dims = groupable_columns(db, by, known={d.name: d for d in catalog.dimensions})
    needed = set(by) | where.columns
    source = (
        _source(db, needed, grain, signal, where, catalog=catalog)
        if use_cubes
        else _Source("requests", None, db.columns("requests"))
    )
    params: dict[str, Any] = {}
    keys = []
    for column in by:
        d = dims[column]
        if source.cube is None and d.kind == "numeric":
            keys.append(_key_sql(d))
        else:
            keys.append(quote_identifier(column))
    if source.cube is None:
        condition = where_sql(where, columns=source.columns, params=params)
        n, k = _signal_sums(db, signal)
        measures = [f"{n} AS n", f"{k} AS k"]
        time_key = "epoch_us(ts)"
        unit = 1
    else:
        condition = where_sql(
            where,
            columns=source.columns,
            params=params,
            time_column="bucket",
            time_unit_us=_BUCKET_US[source.cube.grain],
        )
        measures = [
            f"CAST(coalesce(sum({quote_identifier('n__' + signal)}), 0) AS BIGINT) AS n",
            f"CAST(coalesce(sum({quote_identifier('k__' + signal)}), 0) AS BIGINT) AS k",
        ]
        time_key = "bucket"
        unit = _BUCKET_US[source.cube.grain]
    if grain is not None:
        keys.insert(0, f"{time_key} // {_BUCKET_US[grain] // unit} AS _bucket")
    select = ", ".join([*keys, *measures])
    group = " GROUP BY ALL" if keys else ""
    inner = f"SELECT {select} FROM {quote_identifier(source.table)} WHERE {condition}{group}"
    outer = ["*"]
    if grain is not None:
        outer = [
            f"make_timestamptz(_bucket * {_BUCKET_US[grain]}) AS ts",
            *(quote_identifier(c) for c in by),
            "n",
            "k",
        ]
    order = " ORDER BY ALL" if keys else ""
    frame = db.frame(f"SELECT {', '.join(outer)} FROM ({inner}){order}", params)
    return _typed_counts(frame, by, grain, dims)


def _typed_counts(
    frame: pl.DataFrame, by: Sequence[str], grain: Grain | None, dims: Mapping[str, Dimension]
) -> pl.DataFrame:
    schema: dict[str, Any] = {}
    if grain is not None:
        schema["ts"] = pl.Datetime("us", "UTC")
    for column in by:
        schema[column] = pl.Float64 if dims[column].kind == "numeric" else None
    if frame.height == 0:
        empty = {c: (t or pl.Utf8) for c, t in schema.items()}
        return pl.DataFrame(schema={**empty, "n": pl.Int64, "k": pl.Int64})
    casts = [pl.col("n").cast(pl.Int64), pl.col("k").cast(pl.Int64)]
    casts += [pl.col(c).cast(t) for c, t in schema.items() if t is not None]
    return frame.with_columns(casts)


def counts_per_dimension(
    db: Database,
    *,
    dims: Sequence[str],
    signal: str,
    windows: Mapping[str, tuple[datetime | None, datetime | None]],
    where: Where | None = None,
    use_cubes: bool = True,
) -> pl.DataFrame:
    """Count ``n`` and ``k`` per value of each dimension in several time windows at once.

    The numbers are those of ``counts_by(by=[d], where=where.between(*window))``
    for each dimension ``d`` and window, 0 where a value has no requests in a
    window, but each source (a cube, or ``requests``) is read once for every
    dimension and window it answers (``GROUP BY GROUPING SETS``), instead of
    once per dimension and window. Windows may overlap. ``counts_in_subsets``
    counts in sets of requests of any shape.

    Parameters
    ----------
    dims
        Dimensions, or outcomes named by hand (read from the raw table); numeric
        ones are bucketed (the value is the bucket's lower edge).
    windows
        Name -> ``(start, end)`` (end exclusive, None for an open end); the name
        goes into the count columns' names.
    where
        A filter applied in every window (its time range intersects each window).

    Returns
    -------
    pl.DataFrame
        ``dimension, *dims, n_<window>, k_<window>...``: one row per dimension and
        value with requests in any window, dimensions in the order given and
        values in ascending order, missing last. A row's value is in its
        dimension's column; the other dimensions' columns are null there.

    Examples
    --------
    >>> db = Database(":memory:")
    >>> _ = db.execute("INSERT INTO signal_definitions (name, kind) VALUES ('bad', 'user')")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'a', false), ('2025-01-02', 'b', true), ('2025-01-02', 'b', NULL)")
    >>> day2 = datetime(2025, 1, 2, tzinfo=UTC)
    >>> windows = {"before": (None, day2), "after": (day2, None)}
    >>> counts_per_dimension(db, dims=["model"], signal="bad", windows=windows).rows()
    [('model', 'a', 1, 1, 1, 0), ('model', 'b', 0, 0, 1, 1)]
    """
    where = where or Where()
    scope = Where(where.values, where.ranges)
    subsets = {}
    for name, window in windows.items():
        span = where.between(*window)
        times = Where(start=span.start, end=span.end)
        subsets[name] = Subset(within=(scope, times) if scope.columns else (times,))
    return counts_in_subsets(db, dims=dims, signal=signal, subsets=subsets, use_cubes=use_cubes)


@dataclass(frozen=True)
class Subset:
    """A set of requests: those meeting every filter of ``within`` and none of ``without``.

    A selection (a signature's slice and window, a brushed region) and the
    baseline it is compared with, e.g. everything else in the date range,
    without the rows of other signatures:
    ``Subset(within=(scope,), without=(selection, *others))``.

    Examples
    --------
    >>> s = Subset(within=(Where.parse({"model": "a"}),), without=(Where.parse({"region": "eu"}),))
    >>> sorted(s.columns)
    ['model', 'region']
    """

    within: tuple[Where, ...] = ()
    """Filters every request of the set meets (none: every request)."""
    without: tuple[Where, ...] = ()
    """Filters no request of the set meets (a request missing a value does not meet one)."""

    @property
    def columns(self) -> set[str]:
        """Columns its filters touch (not counting ts)."""
        return {c for w in (*self.within, *self.without) for c in w.columns}

    @property
    def times(self) -> list[datetime | None]:
        """The time bounds its filters use."""
        return [t for w in (*self.within, *self.without) for t in (w.start, w.end)]


def _subsets_source_filter(subsets: Iterable[Subset]) -> Where:
    """Every value and range condition of the subsets, for choosing a source that fits them."""
    wheres = [w for s in subsets for w in (*s.within, *s.without)]
    return Where(
        tuple(v for w in wheres for v in w.values), tuple(r for w in wheres for r in w.ranges)
    )


def counts_in_subsets(
    db: Database,
    *,
    dims: Sequence[str],
    signal: str,
    subsets: Mapping[str, Subset],
    use_cubes: bool = True,
    raw_true_only: bool = False,
) -> pl.DataFrame:
    """Count ``n`` and ``k`` per value of each dimension in several sets of requests at once.

    Each source (the smallest cube that answers every set exactly, or
    ``requests``) is read once for every dimension it answers, with one
    ``GROUP BY GROUPING SETS``; the sets may overlap.

    Parameters
    ----------
    dims
        Dimensions, or outcomes named by hand (read from the raw table); numeric
        ones are bucketed (the value is the bucket's lower edge).
    subsets
        Name -> ``Subset``; the name goes into the count columns' names.
    raw_true_only
        Dimensions no cube answers are counted over the requests where the
        signal is true only: their ``k`` is exact and their ``n`` null. Grouping
        every request by many dimensions takes seconds on 10M rows; the true
        ones are a small part of them.

    Returns
    -------
    pl.DataFrame
        ``dimension, *dims, n_<name>, k_<name>...``, shaped as
        ``counts_per_dimension``'s.

    Examples
    --------
    >>> db = Database(":memory:")
    >>> _ = db.execute("INSERT INTO signal_definitions (name, kind) VALUES ('bad', 'user')")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'a', false), ('2025-01-02', 'b', true), ('2025-01-03', 'b', false)")
    >>> day2 = Where.parse({"ts": ("2025-01-02", "2025-01-03")})
    >>> sets = {"day2": Subset(within=(day2,)), "rest": Subset(without=(day2,))}
    >>> counts_in_subsets(db, dims=["model"], signal="bad", subsets=sets).rows()
    [('model', 'a', 1, 0, 1, 1), ('model', 'b', 1, 1, 1, 0)]
    """
    check_signal(db, signal)
    catalog = _catalog(db)
    known = groupable_columns(db, dims, known={d.name: d for d in catalog.dimensions})
    fits = _subsets_source_filter(subsets.values())
    times = [t for s in subsets.values() for t in s.times]
    groups: dict[str, tuple[_Source, list[str]]] = {}
    for column in dict.fromkeys(dims):
        source = (
            _source(db, {column} | fits.columns, None, signal, fits, times=times, catalog=catalog)
            if use_cubes
            else _Source("requests", None, db.columns("requests"))
        )
        groups.setdefault(source.table, (source, []))[1].append(column)
    counts = [f"{m}_{name}" for name in subsets for m in ("n", "k")]
    frames = [
        _counts_per_dimension_from(
            db,
            source,
            [known[c] for c in columns],
            signal,
            subsets,
            true_only=raw_true_only and source.cube is None,
        )
        for source, columns in groups.values()
    ]
    schema: dict[str, Any] = {"dimension": pl.Utf8}
    schema |= {c: (pl.Float64 if known[c].kind == "numeric" else pl.Utf8) for c in dims}
    schema |= dict.fromkeys(counts, pl.Int64)
    frames = [f for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema=schema)
    frame = pl.concat(frames, how="diagonal_relaxed")
    # a source with no rows left its dimensions' columns out
    frame = frame.with_columns(
        pl.lit(None, dtype=schema[c]).alias(c) for c in dims if c not in frame.columns
    )
    order = {c: i for i, c in enumerate(dict.fromkeys(dims))}
    frame = frame.with_columns(
        pl.col("dimension").replace_strict(order, return_dtype=pl.Int64).alias("_order")
    ).sort(["_order", *order], nulls_last=True, maintain_order=True)
    return frame.select(
        "dimension",
        *(pl.col(c).cast(pl.Float64) if known[c].kind == "numeric" else pl.col(c) for c in order),
        *(pl.col(c).cast(pl.Int64) for c in counts),
    )


def _subset_sql(
    subset: Subset, shared: Sequence[Where], source: _Source, params: dict[str, Any]
) -> str:
    """SQL: whether a row of ``source`` is in ``subset`` (the ``shared`` filters left out)."""
    time: dict[str, Any] = {}
    if source.cube is not None:
        time = {"time_column": "bucket", "time_unit_us": _BUCKET_US[source.cube.grain]}
    parts = [
        f"coalesce({where_sql(w, columns=source.columns, params=params, **time)}, false)"
        for w in subset.within
        if w not in shared
    ]
    parts += [
        f"NOT coalesce({where_sql(w, columns=source.columns, params=params, **time)}, false)"
        for w in subset.without
    ]
    return "(" + " AND ".join(parts) + ")" if parts else "true"


def _counts_per_dimension_from(
    db: Database,
    source: _Source,
    dims: Sequence[Dimension],
    signal: str,
    subsets: Mapping[str, Subset],
    *,
    true_only: bool = False,
) -> pl.DataFrame:
    """One ``GROUPING SETS`` query of ``counts_in_subsets`` over one source."""
    params: dict[str, Any] = {}
    if source.cube is None:
        keys = [_key_sql(d) for d in dims]
        n, k = _signal_terms(db, signal)
        measures = [f"{n} AS _n", f"{k} AS _k"]
        time: dict[str, Any] = {}
    else:
        keys = [quote_identifier(d.name) for d in dims]
        measures = [
            f"{quote_identifier('n__' + signal)} AS _n",
            f"{quote_identifier('k__' + signal)} AS _k",
        ]
        time = {"time_column": "bucket", "time_unit_us": _BUCKET_US[source.cube.grain]}
    # Filters every set has are applied once, to the scan (they narrow it most).
    listed = list(subsets.values())
    shared = [w for w in listed[0].within if all(w in s.within for s in listed)] if listed else []
    flags = [_subset_sql(s, shared, source, params) for s in listed]
    condition = " AND ".join(
        [
            f"coalesce({where_sql(w, columns=source.columns, params=params, **time)}, false)"
            for w in shared
        ]
        + ([f"({_signal_terms(db, signal)[1]}) > 0"] if true_only else [])
    )
    inner = (
        f"SELECT {', '.join([*keys, *measures, *(f'{f} AS _w{i}' for i, f in enumerate(flags))])} "
        f"FROM {quote_identifier(source.table)} "
        f"WHERE {condition or 'true'} AND ({' OR '.join(flags) or 'false'})"
    )
    names = [quote_identifier(d.name) for d in dims]
    which = " ".join(
        f"WHEN grouping({n}) = 0 THEN {_bind(params, d.name)}"
        for n, d in zip(names, dims, strict=True)
    )
    sums = [
        f"CAST(NULL AS BIGINT) AS {quote_identifier(f'{m}_{w}')}"
        if true_only and m == "n"
        else f"CAST(coalesce(sum(_{m}) FILTER (WHERE _w{i}), 0) AS BIGINT) AS {quote_identifier(f'{m}_{w}')}"
        for i, w in enumerate(subsets)
        for m in ("n", "k")
    ]
    combos = inner
    if source.cube is not None:
        # Summed per combination of values and sets first: DuckDB's grouping sets
        # cost about twice as much over a cube's rows as over these few combinations
        # (a cube's dimensions have few values; the raw table's may have many).
        combos = (
            f"SELECT {', '.join([*names, *(f'_w{i}' for i in range(len(flags)))])}, "
            f"sum(_n) AS _n, sum(_k) AS _k FROM ({inner}) GROUP BY ALL"
        )
    sets = ", ".join(f"({n})" for n in names)
    return db.frame(
        f"SELECT CASE {which} END AS dimension, {', '.join([*names, *sums])} FROM ({combos}) "
        f"GROUP BY GROUPING SETS ({sets})",
        params,
    )


def value_counts(
    db: Database, *, dims: Sequence[str], where: Where | None = None, use_cubes: bool = True
) -> pl.DataFrame:
    """Requests per value of each dimension under every filter but the dimension's own.

    What a filter list shows beside each value (cross-filtering): the counts of
    ``model``'s values follow the filters on every other column and the time
    range, not the filter on ``model`` itself, so that the values not chosen
    still say how many requests choosing them would add. Each source (a cube
    holding the dimension and every filtered column, else ``requests``) is read
    once for all the dimensions it answers.

    Returns
    -------
    pl.DataFrame
        ``dimension, value, requests``: ``value`` as text (a numeric
        dimension's bucket lower edge written with ``%g``; null for a missing
        value), values with requests only, most requests first.

    Examples
    --------
    >>> db = Database(":memory:")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, region VARCHAR)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', 'eu'), "
    ...     "('2025-01-02', 'a', 'us'), ('2025-01-02', 'b', 'us')")
    >>> where = Where.parse({"model": ["a"], "region": ["us"]})
    >>> value_counts(db, dims=["model", "region"], where=where, use_cubes=False).rows()
    [('model', 'a', 1), ('model', 'b', 1), ('region', 'eu', 1), ('region', 'us', 1)]
    """
    where = where or Where()
    if not dims:
        return pl.DataFrame(schema={"dimension": pl.Utf8, "value": pl.Utf8, "requests": pl.Int64})
    catalog = _catalog(db) if use_cubes else None
    known = groupable_columns(
        db, dims, known={d.name: d for d in (catalog or _catalog(db)).dimensions}
    )
    signals = signal_names(db)
    groups: dict[str, tuple[_Source, list[str]]] = {}
    for column in dict.fromkeys(dims):
        source = _Source("requests", None, db.columns("requests"))
        if catalog is not None and signals:
            source = _source(
                db, {column} | where.columns, None, signals[-1], where, catalog=catalog
            )
        groups.setdefault(source.table, (source, []))[1].append(column)
    frames = [
        _value_counts_from(db, source, [known[c] for c in columns], where)
        for source, columns in groups.values()
    ]
    frame = pl.concat(frames) if frames else pl.DataFrame()
    return frame.filter(pl.col("requests") > 0).sort(
        ["dimension", "requests", "value"], descending=[False, True, False], nulls_last=True
    )


def _without(where: Where, column: str) -> Where:
    return Where(
        tuple(v for v in where.values if v[0] != column),
        tuple(r for r in where.ranges if r[0] != column),
        where.start,
        where.end,
    )


def _value_counts_from(
    db: Database, source: _Source, dims: Sequence[Dimension], where: Where
) -> pl.DataFrame:
    """One ``GROUPING SETS`` query of ``value_counts`` over one source."""
    params: dict[str, Any] = {}
    time: dict[str, Any] = {}
    if source.cube is not None:
        time = {"time_column": "bucket", "time_unit_us": _BUCKET_US[source.cube.grain]}
        keys = [quote_identifier(d.name) for d in dims]
        rows = "requests"
    else:
        keys = [_key_sql(d) for d in dims]
        rows = "1"
    # The time range and the filters on columns outside these dimensions hold for all.
    shared = Where(
        tuple(v for v in where.values if v[0] not in {d.name for d in dims}),
        tuple(r for r in where.ranges if r[0] not in {d.name for d in dims}),
        where.start,
        where.end,
    )
    flags = [
        f"coalesce({where_sql(_without(where, d.name), columns=source.columns, params=params, **time)}, false)"
        for d in dims
    ]
    condition = where_sql(shared, columns=source.columns, params=params, **time)
    inner = (
        f"SELECT {', '.join([*keys, f'{rows} AS _r', *(f'{f} AS _x{i}' for i, f in enumerate(flags))])} "
        f"FROM {quote_identifier(source.table)} WHERE {condition} AND ({' OR '.join(flags)})"
    )
    names = [quote_identifier(d.name) for d in dims]
    which = " ".join(
        f"WHEN grouping({n}) = 0 THEN {_bind(params, d.name)}"
        for n, d in zip(names, dims, strict=True)
    )
    values = " ".join(
        f"WHEN grouping({n}) = 0 THEN "
        + (f"printf('%g', {n})" if d.kind == "numeric" else f"CAST({n} AS VARCHAR)")
        for n, d in zip(names, dims, strict=True)
    )
    counts = " ".join(
        f"WHEN grouping({n}) = 0 THEN sum(_r) FILTER (WHERE _x{i})" for i, n in enumerate(names)
    )
    sets = ", ".join(f"({n})" for n in names)
    return db.frame(
        f"SELECT CASE {which} END AS dimension, CASE {values} END AS value, "
        f"CAST(coalesce(CASE {counts} END, 0) AS BIGINT) AS requests FROM ({inner}) "
        f"GROUP BY GROUPING SETS ({sets})",
        params,
    )


# -- everything else the workbench asks ----------------------------------------------


def time_range(db: Database) -> tuple[datetime | None, datetime | None]:
    """First request time and the end of the last hour that holds one (None, None if empty)."""
    if "requests" not in db.tables():
        return None, None

    def lookup() -> tuple[datetime | None, datetime | None]:
        first, last = db.execute(
            f"SELECT min(ts), make_timestamptz((max(epoch_us(ts)) // {_BUCKET_US['hour']} + 1) "
            f"* {_BUCKET_US['hour']}) FROM requests"
        )[0]
        if first is None:
            return None, None
        return first.astimezone(UTC), last.astimezone(UTC)

    return db.memo(("time_range",), lookup)


@dataclass(frozen=True)
class TimeGrid:
    """How the request times lie: their span, volume, and the coarsest grid they sit on."""

    first: datetime
    """First request time (UTC)."""
    last: datetime
    """Last request time (UTC)."""
    requests: int
    """Requests (rows, or the sum of the count column)."""
    aligned_us: int
    """The largest of the ``units_us`` asked that divides every time (0: none does)."""


def time_grid(db: Database, *, units_us: Sequence[int], weight: str | None = None) -> TimeGrid:
    """Span, volume and alignment of ``requests.ts`` in one pass.

    ``weight`` names a column holding how many requests a row stands for (rows
    count one each without it). Raises ``QueryError`` when there are no requests.
    """
    if "requests" not in db.tables():
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    amount = "count(*)" if weight is None else f"coalesce(sum({_weight_column(db, weight)}), 0)"
    misses = [
        f"count(*) FILTER (WHERE epoch_us(ts) % {int(u)} <> 0) AS miss_{i}"
        for i, u in enumerate(units_us)
    ]
    row = db.execute(f"SELECT min(ts), max(ts), {amount}, {', '.join(misses)} FROM requests")[0]
    if row[0] is None:
        raise QueryError("the database holds no requests yet; run `forensics ingest FILE` first")
    aligned = [int(u) for u, miss in zip(units_us, row[3:], strict=True) if miss == 0]
    return TimeGrid(
        first=row[0].astimezone(UTC),
        last=row[1].astimezone(UTC),
        requests=int(row[2]),
        aligned_us=max(aligned, default=0),
    )


def _weight_column(db: Database, weight: str) -> str:
    """The quoted count column, checked to exist and hold numbers."""
    columns = db.columns("requests")
    if weight not in columns:
        raise UnknownNameError.for_name("count column", weight, columns)
    if not _is_numeric_type(columns[weight]):
        raise QueryError(
            f"count column {weight!r} holds {columns[weight]}, not numbers; name the column "
            "that says how many requests a row stands for"
        )
    return quote_identifier(weight)


def moment_counts(
    db: Database,
    *,
    signal: str,
    dims: Sequence[Dimension],
    grain_us: int,
    start: datetime | None = None,
    end: datetime | None = None,
    weight: str | None = None,
) -> pl.DataFrame:
    """Requests (``n``) and those showing ``signal`` (``k``) per time bucket and slice.

    Reads the raw ``requests`` (cubes hold hours; an explanation works at the data's
    own grain). A boolean signal counts the rows where it is defined and true; with
    ``weight``, each row counts as that many requests. A signal held as a number is
    already a count of requests showing it (then ``n`` is the sum of ``weight``).
    Numeric dimensions enter as buckets (their lower edge).

    Returns
    -------
    pl.DataFrame
        ``t`` (bucket start, UTC), one column per dimension, ``n``, ``k`` (Int64).
    """
    check_signal(db, signal)
    columns = db.columns("requests")
    q = quote_identifier(signal)
    w = "1" if weight is None else _weight_column(db, weight)
    if columns[signal].upper() == "BOOLEAN":
        n = f"sum({w}) FILTER (WHERE {q} IS NOT NULL)"
        k = f"sum({w}) FILTER (WHERE {q})"
    else:
        n = f"sum({w}) FILTER (WHERE {q} IS NOT NULL)"
        k = f"sum({q})"
    params: dict[str, Any] = {"grain": int(grain_us)}
    conditions = ["TRUE"]
    if start is not None:
        conditions.append("ts >= $start")
        params["start"] = start
    if end is not None:
        conditions.append("ts < $end")
        params["end"] = end
    keys = [_key_sql(d) for d in dims]
    sql = (
        f"SELECT make_timestamptz(epoch_us(ts) // $grain * $grain) AS t, "
        f"{''.join(key + ', ' for key in keys)}"
        f"CAST(coalesce({n}, 0) AS BIGINT) AS n, CAST(coalesce({k}, 0) AS BIGINT) AS k "
        f"FROM requests WHERE {' AND '.join(conditions)} GROUP BY ALL HAVING n > 0"
    )
    frame = db.frame(sql, params)
    return frame.with_columns(pl.col("t").dt.convert_time_zone("UTC"))


def event_rows(db: Database, *, where: Where | None = None) -> pl.DataFrame:
    """Change events within the filter's time range: ``ts, kind, description, scope``."""
    where = where or Where(start=None, end=None)
    params: dict[str, Any] = {}
    condition = where_sql(
        Where(start=where.start, end=where.end), columns={"ts": "TIMESTAMPTZ"}, params=params
    )
    return db.frame(
        f"SELECT ts, kind, description, scope FROM events WHERE {condition} ORDER BY ts", params
    )


def event_sources(db: Database) -> pl.DataFrame:
    """The files change events were loaded from, in load order: ``source_file, events``.

    ``source_file`` is absolute (``stored_path``), null for events added
    otherwise (the user's own SQL).
    """
    if "events" not in db.tables():
        return pl.DataFrame(schema={"source_file": pl.Utf8, "events": pl.Int64})
    frame = db.frame(
        "SELECT source_file, count(*)::BIGINT AS events FROM events "
        "GROUP BY source_file ORDER BY min(rowid)"
    )
    files = [stored_path(db, p) for p in frame["source_file"].to_list()]
    return frame.with_columns(pl.Series("source_file", files, dtype=pl.Utf8))


def user_sequences(db: Database, *, signal: str, where: Where | None = None) -> pl.DataFrame:
    """Per user: requests with the signal defined, how many were true, and consecutive pairs.

    Returns
    -------
    pl.DataFrame
        ``user_id, n, k, pairs, after_true, true_after_true, true_after_false``:
        ``pairs`` counts consecutive (previous, current) requests of the user
        where both are defined; ``after_true`` those whose previous was true.
    """
    check_signal(db, signal)
    no_users_on_counted_rows(db, "user exposure")
    columns = db.columns("requests")
    if "user_id" not in columns or not db.scalar(
        "SELECT count(*) FROM requests WHERE user_id IS NOT NULL"
    ):
        raise QueryError(
            "requests has no user_id values; user exposure needs the user_id column "
            '(map yours with [columns] user_id = "..." in a --mapping file)'
        )
    params: dict[str, Any] = {}
    condition = where_sql(where or Where(), columns=columns, params=params)
    s = quote_identifier(signal)
    sql = (
        "SELECT user_id, count(*) AS n, count(*) FILTER (WHERE cur) AS k, "
        "count(prev) AS pairs, count(*) FILTER (WHERE prev) AS after_true, "
        "count(*) FILTER (WHERE prev AND cur) AS true_after_true, "
        "count(*) FILTER (WHERE NOT prev AND cur) AS true_after_false FROM ("
        f"SELECT user_id, {s} AS cur, "
        f"lag({s}) OVER (PARTITION BY user_id ORDER BY ts, request_id) AS prev "
        f"FROM requests WHERE {condition} AND user_id IS NOT NULL AND {s} IS NOT NULL"
        ") GROUP BY user_id ORDER BY user_id"
    )
    return db.frame(sql, params)


def overlap_counts(
    db: Database, reference: Where, candidates: Sequence[Where], *, defined: Sequence[str]
) -> tuple[int, list[tuple[int, int]]]:
    """How many requests a reference filter and each candidate cover, and both.

    Counted on requests where at least one of the ``defined`` signals is not
    null (on counted rows, the requests they stand for). Returns (reference size, [(candidate size, overlap) per candidate]).
    """
    columns = db.columns("requests")
    params: dict[str, Any] = {}
    ref = where_sql(reference, columns=columns, params=params)
    items = [_requests_where(db, ref)]
    for c in candidates:
        sql = where_sql(c, columns=columns, params=params)
        items += [_requests_where(db, sql), _requests_where(db, f"({ref}) AND ({sql})")]
    scope = " OR ".join(f"{quote_identifier(s)} IS NOT NULL" for s in defined) or "true"
    row = db.execute(f"SELECT {', '.join(items)} FROM requests WHERE {scope}", params)[0]
    pairs = [(int(row[1 + 2 * i]), int(row[2 + 2 * i])) for i in range(len(candidates))]
    return int(row[0]), pairs


def table_counts(db: Database) -> dict[str, int]:
    """Rows in requests, rejected_rows, events and ingested_files (0 when absent)."""
    tables = db.tables()
    return {
        t: int(db.scalar(f"SELECT count(*) FROM {t}")) if t in tables else 0
        for t in ("requests", "rejected_rows", "events", "ingested_files")
    }


def ingested_files(db: Database) -> pl.DataFrame:
    """The files ingested so far, with content hashes and row counts; ``path`` absolute.

    A relative ``path`` (stored by an older version, relative to where that
    ingest ran) is resolved by ``stored_path``.
    """
    frame = db.frame("SELECT * FROM ingested_files ORDER BY file_id")
    return frame.with_columns(
        pl.Series("path", [stored_path(db, p) for p in frame["path"].to_list()], dtype=pl.Utf8)
    )


def stored_path(db: Database, path: str | None) -> str | None:
    """A file path the database stored, as an absolute path.

    Ingest stores absolute paths. A database made by an older version may hold
    one relative to the folder that ingest ran in, which nothing recorded: it is
    taken relative to the database's folder, or to the nearest folder above it
    where the file exists (a database in ``build/demo/`` made from the
    repository root names ``data_samples/...``); else to the database's folder.

    Examples
    --------
    >>> stored_path(Database(":memory:"), "/data/logs.parquet")
    '/data/logs.parquet'
    """
    if path is None or Path(path).is_absolute():
        return path
    home = Path.cwd() if db.path == ":memory:" else Path(os.path.abspath(db.path)).parent
    for folder in (home, *home.parents):
        if (folder / path).exists():
            return os.path.normpath(folder / path)
    return os.path.normpath(home / path)


def rejected_rows(
    db: Database,
    *,
    reason: str | None = None,
    source_file: str | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Quarantined rows (optionally of one reason code, one file), in the order they were found."""
    return db.frame(
        "SELECT * FROM rejected_rows WHERE ($reason IS NULL OR reason = $reason) "
        "AND ($file IS NULL OR source_file = $file) "
        "ORDER BY ingested_at, source_file, row_number LIMIT $n",
        {"reason": reason, "file": source_file, "n": limit},
    )


def rejected_by_reason(db: Database) -> pl.DataFrame:
    """Rejected rows counted per file and reason: ``source_file, reason, rows``."""
    return db.frame(
        "SELECT source_file, reason, count(*) AS rows FROM rejected_rows "
        "GROUP BY ALL ORDER BY source_file, rows DESC, reason"
    )


def bucket_label(edges: Sequence[float], lower: float | None) -> str:
    """Human label for the bucket starting at ``lower``.

    Examples
    --------
    >>> bucket_label((0.0, 8.0, 32.0), 8.0)
    '[8, 32)'
    >>> bucket_label((0.0, 8.0, 32.0), 32.0)
    '>= 32'
    >>> bucket_label((0.0, 8.0), None)
    '(missing)'
    """
    if lower is None or (isinstance(lower, float) and math.isnan(lower)):
        return "(missing)"
    ordered = sorted(edges)
    if lower not in ordered:
        return f"{lower:g}"
    i = ordered.index(lower)
    if i + 1 < len(ordered):
        return f"[{lower:g}, {ordered[i + 1]:g})"
    return f">= {lower:g}"


def bucket_range(edges: Sequence[float], lower: float) -> tuple[float | None, float | None]:
    """(gte, lt) of the bucket starting at ``lower``: None for an open end.

    Examples
    --------
    >>> bucket_range((0.0, 8.0, 32.0), 0.0), bucket_range((0.0, 8.0, 32.0), 32.0)
    ((None, 8.0), (32.0, None))
    """
    ordered = sorted(edges)
    i = ordered.index(lower)
    gte = None if i == 0 else lower
    return gte, (ordered[i + 1] if i + 1 < len(ordered) else None)


def slice_counts(
    db: Database,
    predicate: Mapping[str, Any],
    window: tuple[datetime, datetime | None],
    signals: Sequence[str],
    *,
    settle: tuple[datetime | None, datetime | None] = (None, None),
    use_cubes: bool = True,
) -> pl.DataFrame:
    """A slice and its parents before, inside and after a window, in one scan.

    ``predicate`` is the mapping form of ``Where`` (one condition per column).
    Rows meeting all conditions but at most one are counted per flag of each
    condition (``c0``, ``c1``... in the predicate's order) and ``period`` (0
    before the window, 1 inside, 2 after; with ``settle``, the earliest onset
    and latest end the window's edges may have, 3 between the earliest onset
    and the start and 4 between the end and the latest end, neither inside nor
    clearly outside); the slice is where every flag holds,
    its parent without a condition where the others do. Reads an hourly cube
    when one holds every condition's column and every signal and the window
    falls on its hours; ``use_cubes=False`` forces ``requests`` (same answer).

    Returns ``c0.., period, requests, n__<signal>, k__<signal>...``.

    Examples
    --------
    >>> from forensics.db import Database
    >>> db = Database(":memory:")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'b', NULL), ('2025-01-03', 'a', false)")
    >>> day2 = datetime(2025, 1, 2, tzinfo=UTC)
    >>> slice_counts(db, {"model": ["a"]}, (day2, None), ["bad"]).rows()
    [(False, 1, 1, 0, 0), (True, 0, 1, 1, 1), (True, 1, 1, 1, 0)]
    """
    columns = db.columns("requests")
    for signal in signals:
        if signal not in columns:
            raise UnknownNameError.for_name("signal", signal, signal_names(db))
    source = _Source("requests", None, columns)
    catalog = _catalog(db) if use_cubes and signals else None
    if catalog is not None and catalog.cubes:
        found = _source(
            db,
            set(predicate),
            "hour",
            signals[0],
            Where.parse(dict(predicate)),
            times=window,
            catalog=catalog,
        )
        if all(f"n__{s}" in found.columns for s in signals):
            source = found
    params: dict[str, Any] = {}
    if source.cube is None:
        time, unit = "ts", None
        measures = [f"{_requests_sum(db)} AS requests"]
        for signal in signals:
            n, k = _signal_sums(db, signal)
            measures.append(f"{n} AS {quote_identifier('n__' + signal)}")
            measures.append(f"{k} AS {quote_identifier('k__' + signal)}")
    else:
        time, unit = "bucket", _BUCKET_US[source.cube.grain]
        measures = ["CAST(sum(requests) AS BIGINT) AS requests"]
        for signal in signals:
            for part in ("n__", "k__"):
                q = quote_identifier(part + signal)
                measures.append(f"CAST(sum({q}) AS BIGINT) AS {q}")
    flags = [
        "coalesce("
        + where_sql(
            Where.parse({c: v}),
            columns=source.columns,
            params=params,
            time_column=time,
            time_unit_us=unit,
        )
        + ", false)"
        for c, v in predicate.items()
    ]
    period = _period_sql(time, unit, window, settle, params)
    keys = [f"{f} AS c{i}" for i, f in enumerate(flags)]
    held = " + ".join(f"CAST({f} AS INTEGER)" for f in flags) if flags else "0"
    sql = (
        f"SELECT {', '.join([*keys, f'{period} AS period', *measures])} "
        f"FROM {quote_identifier(source.table)} "
        f"WHERE {held} >= {max(len(flags) - 1, 0)} GROUP BY ALL ORDER BY ALL"
    )
    return db.frame(sql, params)


def _period_sql(
    time: str,
    unit: int | None,
    window: tuple[datetime, datetime | None],
    settle: tuple[datetime | None, datetime | None],
    params: dict[str, Any],
) -> str:
    """0 before, 1 inside, 2 after a window; 3 and 4 in its settling ranges (see slice_counts)."""

    def at(t: datetime) -> str:
        return _bind(params, t if unit is None else _epoch_us(t) // unit)

    (start, end), (early, late) = window, settle
    parts = []
    if early is not None and early < start:
        parts.append(f"WHEN {time} < {at(early)} THEN 0")
    parts.append(f"WHEN {time} < {at(start)} THEN {3 if parts else 0}")
    if end is None:
        return f"CASE {' '.join(parts)} ELSE 1 END"
    parts.append(f"WHEN {time} < {at(end)} THEN 1")
    if late is not None and late > end:
        parts.append(f"WHEN {time} < {at(late)} THEN 4")
    return f"CASE {' '.join(parts)} ELSE 2 END"


def requests_and_users(db: Database, where: Where) -> tuple[int, int | None]:
    """Requests matching a filter and their distinct users.

    0 users without a user_id column; None on counted rows (which name no users).
    """
    columns = db.columns("requests")
    params: dict[str, Any] = {}
    condition = where_sql(where, columns=columns, params=params)
    counted = count_column(db) is not None
    users = "count(DISTINCT user_id)" if "user_id" in columns and not counted else "0"
    row = db.execute(
        f"SELECT {_requests_sum(db)}, {users} FROM requests WHERE {condition}", params
    )[0]
    return int(row[0]), None if counted else int(row[1])


def cover_counts(
    db: Database,
    slices: Sequence[
        tuple[
            Mapping[str, Any],
            tuple[datetime, datetime | None],
            tuple[datetime | None, datetime | None],
        ]
    ],
    signals: Sequence[str],
) -> pl.DataFrame:
    """Several slices with their windows, counted together in one scan of ``requests``.

    Slice ``i`` is (predicate, window, settle) as ``slice_counts`` takes them:
    its conditions (the mapping form of ``Where``, one per column) give flags
    ``c<i>_<j>`` and its window ``p<i>`` (0 before, 1 inside, 2 after, 3 and 4
    in the settling ranges); rows are counted per combination of every flag and period, so that
    any slice, its parents, its window and any other slice's rows can be added
    up or left out afterwards. Only rows meeting all conditions but at most one
    of some slice are read.

    Returns ``c<i>_<j>..., p<i>..., n__<signal>, k__<signal>...``.

    Examples
    --------
    >>> from forensics.db import Database
    >>> db = Database(":memory:")
    >>> _ = db.execute("CREATE TABLE requests (ts TIMESTAMPTZ, model VARCHAR, bad BOOLEAN)")
    >>> _ = db.execute("INSERT INTO requests VALUES ('2025-01-01', 'a', true), "
    ...     "('2025-01-02', 'b', NULL), ('2025-01-03', 'a', false)")
    >>> day2 = datetime(2025, 1, 2, tzinfo=UTC)
    >>> slices = [({"model": ["a"]}, (day2, None), (None, None))]
    >>> cover_counts(db, slices, ["bad"]).sort(["p0", "c0_0"]).rows()
    [(True, 0, 1, 1), (False, 1, 0, 0), (True, 1, 1, 0)]
    """
    columns = db.columns("requests")
    for signal in signals:
        if signal not in columns:
            raise UnknownNameError.for_name("signal", signal, signal_names(db))
    params: dict[str, Any] = {}
    keys, near = [], []
    for i, (predicate, window, settle) in enumerate(slices):
        flags = [
            "coalesce("
            + where_sql(Where.parse({c: v}), columns=columns, params=params)
            + ", false)"
            for c, v in predicate.items()
        ]
        keys += [f"{f} AS c{i}_{j}" for j, f in enumerate(flags)]
        keys.append(f"{_period_sql('ts', None, window, settle, params)} AS p{i}")
        held = " + ".join(f"CAST({f} AS INTEGER)" for f in flags) if flags else "0"
        near.append(f"{held} >= {max(len(flags) - 1, 0)}")
    measures = []
    for signal in signals:
        n, k = _signal_sums(db, signal)
        measures.append(f"{n} AS {quote_identifier('n__' + signal)}")
        measures.append(f"{k} AS {quote_identifier('k__' + signal)}")
    sql = (
        f"SELECT {', '.join(keys + measures)} FROM requests "
        f"WHERE {' OR '.join(near) or 'true'} GROUP BY ALL"
    )
    return db.frame(sql, params)
