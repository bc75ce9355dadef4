"""Explain a moment of a database's ``requests``: grain, dimensions, the counts read, the answer.

The reads are aggregates: one pass for the span, volume and alignment of the
times (``queries.time_grid``), one ``GROUP BY`` bucket and dimension values
for ``n`` and ``k`` (``queries.moment_counts``), weighted by a count column
when rows stand for many requests. With ``at`` given only the ``baseline``
buckets before it and the ``span`` from it are read.

The grain follows the data: times that all sit on a grid (counted rows per
minute, per hour) give its step as the finest grain; then the finest step of
``GRAIN_LADDER`` at or above it whose buckets hold ``MIN_BUCKET_REQUESTS``
requests on average and number at most ``MAX_BUCKETS``. ``grain=`` overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from forensics.db import Database
from forensics.errors import QueryError
from forensics.explain import ExplainParams, Explanation, explain_counts
from forensics.queries import as_utc, check_signal, dimension, dimensions, moment_counts, time_grid

__all__ = ["GRAIN_LADDER", "GRAIN_NAMES", "choose_grain", "explain_moment"]

MINUTE = timedelta(minutes=1)

GRAIN_LADDER: tuple[timedelta, ...] = (
    MINUTE, 5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 24 * 60 * MINUTE,
)  # fmt: skip
"""The grains an explanation may work at, finest first."""

GRAIN_NAMES = {"minute": MINUTE, "5min": 5 * MINUTE, "15min": 15 * MINUTE, "hour": 60 * MINUTE,
               "day": 24 * 60 * MINUTE}  # fmt: skip
"""Names a grain can be given by."""

MIN_BUCKET_REQUESTS = 200
"""A grain is fine enough when its buckets hold this many requests on average..."""

MAX_BUCKETS = 5000
"""...and the data span at most this many of them."""


def _us(value: timedelta) -> int:
    return value // timedelta(microseconds=1)


def choose_grain(
    first: datetime, last: datetime, requests: int, aligned: timedelta | None
) -> timedelta:
    """The finest grain of ``GRAIN_LADDER`` the data allow (see the module docstring).

    Examples
    --------
    >>> from datetime import UTC
    >>> t = datetime(2025, 1, 1, tzinfo=UTC)
    >>> choose_grain(t, t + timedelta(hours=3), 1_000_000, MINUTE)
    datetime.timedelta(seconds=60)
    >>> choose_grain(t, t + timedelta(days=14), 200_000, None)
    datetime.timedelta(seconds=3600)
    >>> choose_grain(t, t + timedelta(days=3), 10**9, timedelta(hours=1))
    datetime.timedelta(seconds=3600)
    """
    floor = aligned or GRAIN_LADDER[0]
    for grain in GRAIN_LADDER:
        if grain < floor:
            continue
        buckets = (last - first) // grain + 1
        if requests / buckets >= MIN_BUCKET_REQUESTS and buckets <= MAX_BUCKETS:
            return grain
    return max(GRAIN_LADDER[-1], floor)


def _floor(t: datetime, step: timedelta) -> datetime:
    """Start of the bucket of length ``step`` (counted from the Unix epoch) holding ``t``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def _grain_asked(grain: str | timedelta) -> timedelta:
    if isinstance(grain, timedelta):
        if grain <= timedelta(0):
            raise QueryError(f"grain {grain} must be positive")
        return grain
    if grain not in GRAIN_NAMES:
        raise QueryError(f"grain {grain!r}: use one of {', '.join(GRAIN_NAMES)}")
    return GRAIN_NAMES[grain]


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
        count column).
    grain
        ``"minute"``, ``"5min"``, ``"15min"``, ``"hour"``, ``"day"`` or a timedelta;
        default: from the data (see the module docstring).
    weight
        A column saying how many requests each row stands for (counted rows).
    params
        The method's thresholds (``ExplainParams``).

    Raises
    ------
    QueryError
        No requests, an unknown signal, dimension or count column, ``at`` not a time
        or outside the data, or too little past before it.
    """
    check_signal(db, signal)
    params = params or ExplainParams()
    if baseline is not None:
        if baseline < 1:
            raise QueryError(f"baseline={baseline}: give at least 1 bucket of recent past")
        params = ExplainParams(**{**params.__dict__, "baseline": int(baseline)})
    grid = time_grid(db, units_us=[_us(g) for g in GRAIN_LADDER], weight=weight)
    aligned = timedelta(microseconds=grid.aligned_us) if grid.aligned_us else None
    step = (
        _grain_asked(grain)
        if grain is not None
        else choose_grain(grid.first, grid.last, grid.requests, aligned)
    )
    if dims is None:
        chosen = [d for d in dimensions(db) if d.cubable and d.name != weight]
    else:
        chosen = [dimension(db, name) for name in dims]
    if not chosen:
        raise QueryError(
            "the requests have no dimension to explain by; name some with dims=[...] "
            "(`forensics info` lists the columns and their roles)"
        )
    start = end = None
    asked = as_utc(at, "at") if at is not None else None
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
        db, signal=signal, dims=chosen, grain_us=_us(step), start=start, end=end, weight=weight
    )
    if frame.height == 0:
        raise QueryError(f"no request has {signal} defined around {asked or 'any time'}")
    ranges = {d.name: d.edges for d in chosen if d.kind == "numeric"}
    return explain_counts(
        frame,
        at=asked,
        dims=[d.name for d in chosen],
        signal=signal,
        params=params,
        ranges=ranges,
        grain=step,
    )
