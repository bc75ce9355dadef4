"""Dimensions: the columns requests can be sliced by, found by scanning ``requests``.

Only columns whose role is *dimension* (``forensics.roles``: a possible
cause) are dimensions; an outcome is described the same way by
``describe_column`` when it is grouped by hand. Numeric columns are cut into
buckets (every value when there are few, else powers of two): ``bucket_sql``
maps a value to its bucket's lower edge, ``bucket_label`` names a bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from forensics.errors import QueryError, UnknownNameError
from forensics.queries.engine import Engine
from forensics.queries.where import _is_numeric_type
from forensics.roles import columns_with_role
from forensics.schema import CANONICAL_COLUMNS, quote_identifier

__all__ = [
    "CUBE_MAX_VALUES",
    "DIMENSION_MAX_VALUES",
    "NUMERIC_DISTINCT_AS_VALUES",
    "NUMERIC_MAX_BUCKETS",
    "Dimension",
    "bucket_index_sql",
    "bucket_label",
    "bucket_range",
    "bucket_sql",
    "describe_column",
    "discover_dimensions",
    "power_of_two_edges",
]

DIMENSION_MAX_VALUES = 2000
"""A text column with more distinct values than this is an identifier, not a dimension."""

CUBE_MAX_VALUES = 64
"""Categorical dimensions with at most this many values can go into a cube."""

NUMERIC_MAX_BUCKETS = 8
"""Numeric columns are cut into at most this many ranges (powers of two)."""

NUMERIC_DISTINCT_AS_VALUES = 12
"""A numeric column with at most this many distinct values is bucketed value by value."""

_CANONICAL_ORDER = {c.name: i for i, c in enumerate(CANONICAL_COLUMNS)}


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


def _sliceable_type(dtype: str) -> bool:
    """Whether values of this type can be grouped (not times, blobs or lists)."""
    return not (
        dtype.upper().startswith(("TIMESTAMP", "DATE", "TIME", "BLOB")) or dtype.endswith("]")
    )


def _candidate_columns(db: Engine) -> dict[str, str]:
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


def _numeric_edges(
    values: Sequence[float] | None, distinct: int, lo: float, hi: float
) -> tuple[float, ...]:
    """Bucket lower edges: every value when there are few, else powers of two."""
    if (
        distinct <= NUMERIC_DISTINCT_AS_VALUES
        and values is not None
        and len(values) <= NUMERIC_DISTINCT_AS_VALUES
    ):
        return tuple(sorted(float(v) for v in values))
    return power_of_two_edges(float(lo), float(hi))


def discover_dimensions(db: Engine) -> list[Dimension]:
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


def _describe(db: Engine, names: Sequence[str], types: Mapping[str, str]) -> list[Dimension | None]:
    """Describe columns as dimensions; None for one without values or with too many.

    Two scans whatever the number of columns (an engine such as Spark pays for
    each statement): approximate distinct counts of every column, then, in one
    statement, the exact count of each column that has at most
    ``2 * CUBE_MAX_VALUES`` (where the count decides anything), each numeric
    column's range, and the values of the numeric ones that few.
    """
    items = ", ".join(f"approx_count_distinct({quote_identifier(n)})" for n in names)
    approx = {
        n: int(c or 0)
        for n, c in zip(names, db.execute(f"SELECT {items} FROM requests")[0], strict=True)
    }
    present = [n for n in names if approx[n]]
    exact = [n for n in present if approx[n] <= 2 * CUBE_MAX_VALUES]
    numeric = [n for n in present if _is_numeric_type(types[n])]
    listed = [n for n in exact if n in numeric]
    parts: list[tuple[str, str, str]] = []  # (kind, column, SQL)
    for n in exact:
        parts.append(("count", n, f"count(DISTINCT {quote_identifier(n)})"))
    for n in numeric:
        q = quote_identifier(n)
        parts += [("min", n, f"min({q})"), ("max", n, f"max({q})")]
    for n in listed:
        q = quote_identifier(n)
        parts.append(
            ("values", n, f"list(DISTINCT CAST({q} AS DOUBLE)) FILTER (WHERE {q} IS NOT NULL)")
        )
    found: dict[tuple[str, str], Any] = {}
    if parts:
        row = db.execute(f"SELECT {', '.join(sql for _, _, sql in parts)} FROM requests")[0]
        found = {(kind, n): v for (kind, n, _), v in zip(parts, row, strict=True)}
    dims: list[Dimension | None] = []
    for name in names:
        count = int(found.get(("count", name), approx[name]) or 0)
        if count == 0:
            dims.append(None)
            continue
        if name in numeric:
            values = found.get(("values", name))
            edges = _numeric_edges(values, count, found[("min", name)], found[("max", name)])
            dims.append(Dimension(name, "numeric", count, True, edges))
        elif count <= DIMENSION_MAX_VALUES:
            dims.append(Dimension(name, "categorical", count, count <= CUBE_MAX_VALUES))
        else:
            dims.append(None)
    return dims


def describe_column(db: Engine, name: str) -> Dimension:
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


def _not_a_dimension(db: Engine, name: str, dims: Iterable[str]) -> UnknownNameError:
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


def _key_sql(d: Dimension) -> str:
    if d.kind == "numeric":
        return f"{bucket_sql(d.name, d.edges)} AS {quote_identifier(d.name)}"
    return quote_identifier(d.name)


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
