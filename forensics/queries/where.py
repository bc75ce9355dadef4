"""Filters on requests: ``Where`` (values, numeric ranges, a time range) compiled to SQL.

``where_sql`` turns a ``Where`` into a condition over any relation whose
columns it is given (``requests``, a cube, the separation's workspace), with
every value a bound parameter (``$w<i>``) and every identifier quoted by
``schema.quote_identifier``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from forensics.errors import QueryError, UnknownNameError
from forensics.schema import quote_identifier

__all__ = ["TimeLike", "Where", "as_utc", "where_sql"]

TimeLike = str | datetime | date


_NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL",
}  # fmt: skip


def _is_numeric_type(dtype: str) -> bool:
    upper = dtype.upper()
    return upper in _NUMERIC_TYPES or upper.startswith("DECIMAL")


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
