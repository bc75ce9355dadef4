"""Time grain: the finest time bucket the data support, one definition for every reader.

A grain is one step of ``GRAIN_LADDER`` (minute, 5 minutes, 15 minutes, hour,
day), named by ``GRAIN_NAMES`` (``"minute"``, ``"5min"``...; ``parse_grain``
also reads ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``). ``choose_grain`` picks it from
the timestamps: times that all sit on a grid (counted rows per minute, per
hour) give its step as the finest grain; then the finest step at or above it
whose buckets hold ``MIN_BUCKET_REQUESTS`` requests on average and number at
most ``MAX_BUCKETS``. ``explain`` works at that grain; the cubes, the signature
search, the timeline and the change points work at ``database_grain``: the same
choice, never coarser than the hour (hour was the finest grain before grains
followed the data, so data too sparse for a finer one behave as they always
did). The database keeps it with its cubes (``queries.database_grain``).

The signature search scans windows of whole ``search_step`` buckets (the finest
ladder step at or above the grain that cuts the data into fewer than
``SEARCH_MAX_BUCKETS``, else days) and places each edge down to the grain
(``separation.hourly``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from forensics.errors import QueryError

__all__ = [
    "GRAIN_LADDER",
    "GRAIN_NAMES",
    "HOUR",
    "MAX_BUCKETS",
    "MINUTE",
    "MIN_BUCKET_REQUESTS",
    "SEARCH_MAX_BUCKETS",
    "check_grain",
    "choose_grain",
    "database_grain",
    "grain_name",
    "grain_us",
    "parse_grain",
    "search_step",
]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

GRAIN_LADDER: tuple[timedelta, ...] = (
    MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 24 * HOUR,
)  # fmt: skip
"""The grains data may be read at, finest first."""

GRAIN_NAMES = {"minute": MINUTE, "5min": 5 * MINUTE, "15min": 15 * MINUTE, "hour": HOUR,
               "day": 24 * HOUR}  # fmt: skip
"""Names a grain can be given by (the names stored and shown)."""

_SPELLINGS = {
    "1m": "minute", "1min": "minute", "5m": "5min", "15m": "15min", "1h": "hour",
    "60m": "hour", "60min": "hour", "1d": "day", "24h": "day",
}  # fmt: skip
"""Other spellings ``parse_grain`` accepts."""

MIN_BUCKET_REQUESTS = 200
"""A grain is fine enough when its buckets hold this many requests on average..."""

MAX_BUCKETS = 5000
"""...and the data span at most this many of them."""

SEARCH_MAX_BUCKETS = 7 * 24
"""The search scans buckets of the finest step that cuts the data into fewer than this
many (hours for data shorter than a week, as before grains followed the data)."""


def grain_us(name: str) -> int:
    """Microseconds of a named grain."""
    return GRAIN_NAMES[name] // timedelta(microseconds=1)


def grain_name(step: timedelta) -> str:
    """The name of a ladder step (``QueryError`` for any other length)."""
    for name, value in GRAIN_NAMES.items():
        if value == step:
            return name
    raise QueryError(f"grain {step}: use one of {', '.join(GRAIN_NAMES)}")


def parse_grain(value: str | timedelta) -> str:
    """The name of a grain given by name, by a short spelling (``"5m"``) or as a timedelta.

    Examples
    --------
    >>> parse_grain("5m"), parse_grain("hour"), parse_grain(timedelta(minutes=15))
    ('5min', 'hour', '15min')
    """
    if isinstance(value, timedelta):
        return grain_name(value)
    text = str(value).strip().lower()
    text = _SPELLINGS.get(text, text)
    if text not in GRAIN_NAMES:
        raise QueryError(
            f"grain {value!r}: use one of {', '.join(GRAIN_NAMES)} (or 1m, 5m, 15m, 1h, 1d)"
        )
    return text


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


def database_grain(
    first: datetime, last: datetime, requests: int, aligned: timedelta | None
) -> str:
    """The grain cubes and the search work at: ``choose_grain``, never coarser than the hour.

    Examples
    --------
    >>> from datetime import UTC
    >>> t = datetime(2025, 1, 1, tzinfo=UTC)
    >>> database_grain(t, t + timedelta(days=3), 2_000_000, None)
    'minute'
    >>> database_grain(t, t + timedelta(days=2), 5_000, None)
    'hour'
    """
    return grain_name(min(choose_grain(first, last, requests, aligned), HOUR))


def check_grain(asked: str, aligned: timedelta | None) -> str:
    """``asked`` (a grain's name), refused when it is finer than the timestamps' own grid.

    ``aligned`` is the coarsest ladder step every time sits on (None: none, the
    times are not on a grid and any grain is allowed).

    Examples
    --------
    >>> check_grain("hour", timedelta(minutes=5))
    'hour'
    >>> check_grain("minute", timedelta(hours=1))
    Traceback (most recent call last):
    ...
    forensics.errors.QueryError: grain minute is finer than the data: every timestamp sits on a 1:00:00 grid (hour), so buckets of minute would be mostly empty; use --grain hour or coarser
    """
    if aligned is not None and GRAIN_NAMES[asked] < aligned:
        coarse = grain_name(aligned)
        raise QueryError(
            f"grain {asked} is finer than the data: every timestamp sits on a {aligned} grid "
            f"({coarse}), so buckets of {asked} would be mostly empty; use --grain {coarse} "
            "or coarser"
        )
    return asked


def search_step(grain: str, first_tick: int, last_tick: int) -> int:
    """Ticks (buckets of ``grain``) per bucket the search scans, for data over those ticks.

    The finest ladder step at or above the grain (and a whole number of its
    ticks) that cuts ``[first_tick, last_tick]`` into fewer than
    ``SEARCH_MAX_BUCKETS`` buckets aligned on the epoch; a day when none does.

    Examples
    --------
    >>> search_step("hour", 0, 24 * 7 - 2), search_step("hour", 0, 24 * 7 - 1)
    (1, 24)
    >>> search_step("minute", 0, 3 * 24 * 60 - 1), search_step("minute", 0, 600)
    (60, 5)
    """
    tick = GRAIN_NAMES[grain]
    steps = [s // tick for s in GRAIN_LADDER if s >= tick and s % tick == timedelta(0)]
    for ticks in steps:
        if last_tick // ticks - first_tick // ticks + 1 < SEARCH_MAX_BUCKETS:
            return ticks
    return steps[-1]
