"""Explain a moment of a database's ``requests``: grain, dimensions, the counts read, the answer.

The reads are aggregates: one pass for the span, volume and alignment of the
times (``queries.time_grid``), one ``GROUP BY`` bucket and dimension values
for ``n`` and ``k`` (``queries.moment_counts``), weighted by a count column
when rows stand for many requests. With ``at`` given only the ``baseline``
buckets before it and the ``span`` from it are read.

The grain follows the data (``forensics.grain.choose_grain``, the one
definition the cubes and the search use too): times that all sit on a grid
(counted rows per minute, per hour) give its step as the finest grain; then
the finest step of ``GRAIN_LADDER`` at or above it whose buckets hold
``MIN_BUCKET_REQUESTS`` requests on average and number at most
``MAX_BUCKETS``. ``grain=`` overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from forensics.db import Database
from forensics.errors import QueryError
from forensics.explain import ExplainParams, Explanation, explain_counts
from forensics.grain import GRAIN_LADDER, GRAIN_NAMES, choose_grain, parse_grain
from forensics.queries import (
    Engine,
    Where,
    as_utc,
    check_signal,
    dimension,
    dimensions,
    moment_counts,
    time_grid,
)
from forensics.roles import COUNTS_META

__all__ = ["GRAIN_LADDER", "GRAIN_NAMES", "choose_grain", "explain_moment"]


def _us(value: timedelta) -> int:
    return value // timedelta(microseconds=1)


def _floor(t: datetime, step: timedelta) -> datetime:
    """Start of the bucket of length ``step`` (counted from the Unix epoch) holding ``t``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def _grain_asked(grain: str | timedelta) -> timedelta:
    if isinstance(grain, timedelta):
        if grain <= timedelta(0):
            raise QueryError(f"grain {grain} must be positive")
        return grain
    return GRAIN_NAMES[parse_grain(grain)]


def explain_moment(
    db: Database,
    *,
    at: str | datetime | None = None,
    signal: str = "degraded",
    baseline: int | None = None,
    dims: Sequence[str] | None = None,
    grain: str | timedelta | None = None,
    weight: str | None = None,
    params: ExplainParams | None = None,
    where: Mapping[str, Any] | Where | None = None,
    within: tuple[str | datetime, str | datetime] | None = None,
    everything: Engine | None = None,
) -> Explanation:
    """Which slices explain the anomaly of ``signal`` at ``at`` (or at the most anomalous moment).

    Parameters
    ----------
    db
        The open database.
    at
        A time inside the data (ISO-8601 or datetime, naive means UTC); None finds
        the most anomalous moment.
    signal
        The signal explained.
    baseline
        Buckets of recent past compared with (default ``params.baseline``, 60).
    dims
        Dimensions to explain by (default: every dimension a cube can hold but the
        count column and those ``where`` holds to one value).
    grain
        ``"minute"``, ``"5min"``, ``"15min"``, ``"hour"``, ``"day"`` or a timedelta;
        default: from the data (see the module docstring).
    weight
        A column saying how many requests each row stands for (counted rows);
        default: the count column a ``[counts]`` mapping declared, if any.
    params
        The method's thresholds (``ExplainParams``).
    where
        Explain within these requests only (``Where.parse`` form, e.g.
        ``{"model": ["a"]}``); the grain still follows the whole data.
    within
        With no ``at``: the most anomalous moment inside this window (start, end),
        e.g. the bucket of a coarser timeline the investigator clicked.
    everything
        Where every request is, when ``db`` holds a sample of them (the cache of
        a Spark table): the time grid and the counts are read there; the
        dimensions and the signal registry from ``db``.

    Raises
    ------
    QueryError
        No requests, an unknown signal, dimension or count column, ``at`` not a time
        or outside the data, or too little past before it.
    """
    check_signal(db, signal)
    if weight is None:
        weight = db.meta(COUNTS_META)
    params = params or ExplainParams()
    if baseline is not None:
        if baseline < 1:
            raise QueryError(f"baseline={baseline}: give at least 1 bucket of recent past")
        params = ExplainParams(**{**params.__dict__, "baseline": int(baseline)})
    counts = everything if everything is not None else db
    grid = time_grid(counts, units_us=[_us(g) for g in GRAIN_LADDER], weight=weight)
    aligned = timedelta(microseconds=grid.aligned_us) if grid.aligned_us else None
    step = (
        _grain_asked(grain)
        if grain is not None
        else choose_grain(grid.first, grid.last, grid.requests, aligned)
    )
    scope = Where.parse(where)
    if dims is None:
        fixed = {c for c, values in scope.values if len(values) == 1}  # one value: no choice
        chosen = [
            d for d in dimensions(db) if d.cubable and d.name != weight and d.name not in fixed
        ]
    else:
        chosen = [dimension(db, name) for name in dims]
    if not chosen:
        raise QueryError(
            "the requests have no dimension to explain by; name some with dims=[...] "
            "(`forensics info` lists the columns and their roles)"
        )
    if at is not None and within is not None:
        raise QueryError("give either at= (a moment) or within= (a window to search), not both")
    start = end = None
    asked = as_utc(at, "at") if at is not None else None
    window = None
    if within is not None:
        lo, hi = as_utc(within[0], "within"), as_utc(within[1], "within")
        assert lo is not None
        assert hi is not None
        if hi <= lo:
            raise QueryError(f"within=({lo.isoformat()}, {hi.isoformat()}): the end must be later")
        window = (lo, hi)
        ahead = max(params.span, params.scan_span)
        start, end = _floor(lo, step) - params.baseline * step, _floor(hi, step) + ahead * step
    if asked is not None:
        bucket = _floor(asked, step)
        if not _floor(grid.first, step) <= bucket <= _floor(grid.last, step):
            raise QueryError(
                f"at={asked.isoformat()} is outside the data ({grid.first.isoformat()} to "
                f"{grid.last.isoformat()}); give a time inside it, or none to find the most "
                "anomalous moment"
            )
        start, end = bucket - params.baseline * step, bucket + params.span * step
    frame = moment_counts(
        counts,
        signal=signal,
        dims=chosen,
        grain_us=_us(step),
        start=start,
        end=end,
        weight=weight,
        where=scope if scope != Where() else None,
    )
    if frame.height == 0:
        around = asked or (window and window[0]) or "any time"
        raise QueryError(f"no request has {signal} defined around {around}")
    ranges = {d.name: d.edges for d in chosen if d.kind == "numeric"}
    result = explain_counts(
        frame,
        at=asked,
        dims=[d.name for d in chosen],
        signal=signal,
        params=params,
        ranges=ranges,
        grain=step,
        within=window,
    )
    if scope == Where():
        return result
    return dataclasses.replace(result, where=_where_mapping(scope))


def _where_mapping(where: Where) -> dict[str, Any]:
    """A ``Where`` in the mapping form ``Where.parse`` reads (JSON-friendly)."""
    out: dict[str, Any] = {c: list(v) for c, v in where.values}
    for c, gte, lt in where.ranges:
        out[c] = {k: v for k, v in (("gte", gte), ("lt", lt)) if v is not None}
    if where.start is not None or where.end is not None:
        out["ts"] = [t.isoformat() if t else None for t in (where.start, where.end)]
    return out
