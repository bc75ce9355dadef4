"""The watch's own tables and every statement on them: slices, their hourly series, state.

``watch_series`` holds, per hour and per slice (one value of one watched
dimension, or every request: dimension ``""``), the requests, and per signal
``s`` the requests where it is defined (``n__s``), true (``k__s``) and
expected true under the baseline model (``e__s``). A cycle recounts the hours
its new rows touch (``update_series``, reading those hours of ``requests``
only) and reads back a fixed horizon (``read_series``): neither grows with the
history.

Numeric dimensions are watched in power-of-two buckets of fixed edges (``[0,
1)``, ``[1, 2)``, ``[2, 4)``...): no value ever moves them, so a slice's history
keeps its meaning.

``watch_state`` is a key/value table: the newest data seen, the day the
models were fitted. ``watch_files`` remembers the source files already read
(path, size, modification time), so a cycle hashes only new or changed files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from forensics import queries
from forensics.db import Database
from forensics.schema import quote_identifier
from forensics.separation.baseline import NULL_KEY

__all__ = [
    "ALL",
    "DAY_OF_WEEK",
    "DERIVED",
    "HOUR_OF_DAY",
    "HOUR_US",
    "Watched",
    "bucket_range",
    "epoch_hour",
    "hour_start",
    "read_series",
    "series_hours",
    "set_state",
    "state",
    "update_series",
    "value_sql",
    "watched_dimensions",
]

HOUR_US = 3_600_000_000
"""Microseconds in an hour."""

ALL = ""
"""The dimension (and value) of the slice holding every request."""

HOUR_OF_DAY = "_hour_of_day"
"""The daily cycle's derived dimension: the UTC hour, ``0`` to ``23``."""

DAY_OF_WEEK = "_day_of_week"
"""The weekly cycle's derived dimension: the UTC day of the week, ``1`` (Monday) to ``7``."""

DERIVED = {
    HOUR_OF_DAY: f"CAST((epoch_us(ts) // {HOUR_US}) % 24 AS VARCHAR)",
    # epoch day 0 (1970-01-01) was a Thursday, ISO day 4
    DAY_OF_WEEK: f"CAST((epoch_us(ts) // {24 * HOUR_US} + 3) % 7 + 1 AS VARCHAR)",
}
"""Time-derived dimensions the baseline model may use (never slices, never new values):
the daily and the weekly cycle. Computed from the epoch, so in UTC whatever the session's
time zone."""

SERIES = "watch_series"
STATE = "watch_state"


@dataclass(frozen=True)
class Watched:
    """A dimension the watch slices by."""

    name: str
    """Column of ``requests``."""
    kind: Literal["categorical", "numeric"]
    """Text values, or power-of-two buckets of a number."""
    cardinality: int
    """Distinct values when last counted."""


def epoch_hour(t: datetime) -> int:
    """Hours since the epoch of a UTC time."""
    return int(t.timestamp() // 3600)


def hour_start(h: int) -> datetime:
    """The UTC start of an epoch hour."""
    return datetime.fromtimestamp(h * 3600, UTC)


def watched_dimensions(db: Database, *, max_values: int) -> list[Watched]:
    """The dimensions to slice by: numeric ones, and text ones with at most ``max_values``.

    From the dimensions the cubes recorded (``queries.recorded_dimensions``).
    """
    return [
        Watched(d.name, d.kind, d.cardinality)
        for d in queries.recorded_dimensions(db)
        if d.kind == "numeric" or d.cardinality <= max_values
    ]


def value_sql(name: str, kind: str) -> str:
    """SQL of a watched value as text: the value, or its bucket's lower edge; NULL if missing.

    Examples
    --------
    >>> value_sql("model", "categorical")
    'CAST("model" AS VARCHAR)'
    """
    if name in DERIVED:
        return DERIVED[name]
    q = quote_identifier(name)
    if kind == "numeric":
        return (
            f"CASE WHEN {q} IS NULL THEN NULL WHEN {q} < 1 THEN '0' "
            f"ELSE CAST(CAST(pow(2, floor(log2({q}))) AS BIGINT) AS VARCHAR) END"
        )
    return f"CAST({q} AS VARCHAR)"


def bucket_range(value: str) -> dict[str, float]:
    """The range a numeric bucket's text value stands for, as a predicate.

    Examples
    --------
    >>> bucket_range("0"), bucket_range("64")
    ({'lt': 1.0}, {'gte': 64.0, 'lt': 128.0})
    """
    lower = float(value)
    if lower < 1:
        return {"lt": 1.0}
    return {"gte": lower, "lt": 2 * lower}


def _ensure_series(db: Database, signals: Sequence[str]) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {SERIES} (hour BIGINT NOT NULL, dim VARCHAR NOT NULL, "
        "value VARCHAR, requests BIGINT NOT NULL)"
    )
    have = db.columns(SERIES)
    for s in signals:
        for part, dtype in (("n__", "BIGINT"), ("k__", "BIGINT"), ("e__", "DOUBLE")):
            if part + s not in have:
                db.execute(
                    f"ALTER TABLE {SERIES} ADD COLUMN {quote_identifier(part + s)} {dtype} DEFAULT 0"
                )


def expected_sql(model: Mapping[str, Any], prefix: str, params: dict[str, Any]) -> str:
    """SQL of a request's expected probability of a signal under a stored model.

    ``model`` is the stored form (``model.Model.to_dict``): base rate, one factor per
    value of each dimension (``siblings`` for a value it has none for), a floor.
    The factors are bound as two lists per dimension (values, factors).
    """
    params[f"{prefix}base"] = float(model["base"])
    params[f"{prefix}floor"] = float(model["floor"])
    params["_null_key"] = NULL_KEY
    terms = [f"${prefix}base"]
    for j, (name, kind) in enumerate(zip(model["dims"], model["kinds"], strict=True)):
        factors = model["factors"][j]
        params[f"{prefix}k{j}"] = list(factors)
        params[f"{prefix}v{j}"] = [float(v) for v in factors.values()]
        params[f"{prefix}s{j}"] = float(model["siblings"][j])
        key = f"coalesce({value_sql(name, kind)}, $_null_key)"
        terms.append(f"coalesce(MAP(${prefix}k{j}, ${prefix}v{j})[{key}], ${prefix}s{j})")
    return f"greatest(least({' * '.join(terms)}, 0.999), ${prefix}floor)"


def update_series(
    db: Database,
    *,
    hours: Sequence[int],
    dims: Sequence[Watched],
    signals: Sequence[str],
    models: Mapping[str, Mapping[str, Any]],
) -> int:
    """Recount the series of ``hours`` (epoch hours) from ``requests``; rows written.

    One statement reads those hours' requests once (grouping sets: every request,
    then each dimension's values) and replaces their rows of ``watch_series``. A
    signal without a model yet gets no expectation (0).
    """
    _ensure_series(db, signals)
    if not hours:
        return 0
    params: dict[str, Any] = {
        "b": sorted(set(hours)),
        "first": min(hours),
        "last": max(hours),
        "lo": hour_start(min(hours)),
        "hi": hour_start(max(hours) + 1),
    }
    keys = [f"{value_sql(d.name, d.kind)} AS {quote_identifier('v_' + d.name)}" for d in dims]
    measures = ["count(*) AS requests"]
    for i, s in enumerate(signals):
        q = quote_identifier(s)
        measures.append(f"count({q}) AS {quote_identifier('n__' + s)}")
        measures.append(f"count(*) FILTER (WHERE {q}) AS {quote_identifier('k__' + s)}")
        if s in models:
            p = expected_sql(models[s], f"m{i}_", params)
            measures.append(
                f"coalesce(sum(CASE WHEN {q} IS NOT NULL THEN {p} END), 0) "
                f"AS {quote_identifier('e__' + s)}"
            )
        else:
            measures.append(f"0.0 AS {quote_identifier('e__' + s)}")
    sets = ["(hour)", *(f"(hour, {quote_identifier('v_' + d.name)})" for d in dims)]
    which = [f"WHEN {quote_identifier('gv_' + d.name)} = 0 THEN $d{i}" for i, d in enumerate(dims)]
    flags = [
        f"grouping({quote_identifier('v_' + d.name)}) AS {quote_identifier('gv_' + d.name)}"
        for d in dims
    ]
    for i, d in enumerate(dims):
        params[f"d{i}"] = d.name
    dim_sql = f"CASE {' '.join(which)} ELSE '' END" if dims else "''"
    value = (
        "coalesce(" + ", ".join(quote_identifier("v_" + d.name) for d in dims) + ")"
        if dims
        else "NULL"
    )
    names = ["requests", *(f"{p}{s}" for s in signals for p in ("n__", "k__", "e__"))]
    select = ", ".join(quote_identifier(n) for n in names)
    grouped = (
        f"SELECT hour, {dim_sql} AS dim, {value} AS value, {select} FROM ("
        f"SELECT hour, {', '.join([*(quote_identifier('v_' + d.name) for d in dims), *flags, *measures])} "
        f"FROM (SELECT epoch_us(ts) // {HOUR_US} AS hour, {', '.join(['*', *keys])} FROM requests "
        f"WHERE ts >= $lo AND ts < $hi AND list_contains($b, epoch_us(ts) // {HOUR_US})) "
        f"GROUP BY GROUPING SETS ({', '.join(sets)}))"
    )
    db.execute(
        f"DELETE FROM {SERIES} WHERE hour BETWEEN $first AND $last AND list_contains($b, hour)",
        params,
    )
    db.execute(f"INSERT INTO {SERIES} BY NAME {grouped}", params)
    return int(
        db.scalar(f"SELECT count(*) FROM {SERIES} WHERE hour BETWEEN $first AND $last", params)
    )


def read_series(
    db: Database, *, first_hour: int, last_hour: int, signals: Sequence[str]
) -> pl.DataFrame:
    """The series of hours [first_hour, last_hour]: ``hour, dim, value, requests, n__/k__/e__``.

    Signals the table does not hold yet read as 0.
    """
    if SERIES not in db.tables():
        return pl.DataFrame()
    have = db.columns(SERIES)
    items = ["hour", "dim", "value", "requests"]
    for s in signals:
        for part in ("n__", "k__", "e__"):
            name = quote_identifier(part + s)
            items.append(f"coalesce({name}, 0) AS {name}" if part + s in have else f"0 AS {name}")
    return db.frame(
        f"SELECT {', '.join(items)} FROM {SERIES} WHERE hour BETWEEN $a AND $b",
        {"a": first_hour, "b": last_hour},
    )


def series_hours(db: Database) -> tuple[int | None, int | None]:
    """The first and last hour ``watch_series`` holds (None, None when empty)."""
    if SERIES not in db.tables():
        return None, None
    first, last = db.execute(f"SELECT min(hour), max(hour) FROM {SERIES} WHERE dim = ''")[0]
    return (None if first is None else int(first)), (None if last is None else int(last))


def state(db: Database, key: str) -> Any:
    """A value of ``watch_state`` (JSON), None when unset."""
    if STATE not in db.tables():
        return None
    text = db.scalar(f"SELECT value FROM {STATE} WHERE key = $k", {"k": key})
    return None if text is None else json.loads(text)


def set_state(db: Database, key: str, value: Any) -> None:
    """Set a value of ``watch_state`` (stored as JSON)."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {STATE} (key VARCHAR PRIMARY KEY, value VARCHAR)")
    db.execute(
        f"INSERT OR REPLACE INTO {STATE} VALUES ($k, $v)", {"k": key, "v": json.dumps(value)}
    )
