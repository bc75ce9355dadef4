"""A problem's evidence as a ``Signature``: symptoms against baselines, size, events.

The same measures as the separation's signatures (``separation.evidence.measure``:
each signal's rate inside the slice and window against the same slice before
it, or, for traffic that only exists in the window, against the siblings of a
condition; Wilson and Newcombe intervals; excess requests), counted by one
statement over the requests from ``baseline_hours`` before the onset on, so
that its cost follows the problem's length, not the history's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from forensics import queries
from forensics.db import Database
from forensics.queries import Where
from forensics.separation.evidence import Counts, measure, split_counts
from forensics.separation.params import SeparationParams
from forensics.signature import Signature
from forensics.watch.params import WatchParams

__all__ = ["BASELINE_HOURS", "EVENT_HORIZON_HOURS", "measure_problem", "nearest_events"]

BASELINE_HOURS = 7 * 24
"""Hours before a problem's earliest onset its rates are compared with."""

EVENT_HORIZON_HOURS = 72
"""Change events further than this from an onset or an end are not reported with it."""


def _counts(
    db: Database,
    predicate: Mapping[str, Any],
    window: tuple[datetime, datetime | None],
    settle: tuple[datetime | None, datetime | None],
    signals: Sequence[str],
    since: datetime,
) -> tuple[Counts, Counts, dict[str, Counts]]:
    """Counts inside the slice and window, outside the window, and of each parent inside."""
    frame = queries.slice_counts(
        db, predicate, window, signals, settle=settle, use_cubes=False, since=since
    )
    return split_counts(frame, predicate, signals)


def measure_problem(
    db: Database,
    *,
    key: str,
    predicate: Mapping[str, Any],
    signal: str,
    start: datetime,
    onset_range: tuple[datetime, datetime],
    end: datetime | None,
    signals: Sequence[str],
    statistic: float,
    p_value: float,
    params: WatchParams,
) -> Signature | None:
    """The signature of a problem, None when its rise is not (or no longer) shown.

    Its id is the problem key. ``end`` is None while the problem is active.
    """
    separation = SeparationParams(
        alpha=params.alpha, min_ratio=params.min_ratio, min_excess=params.min_excess
    )
    since = onset_range[0] - timedelta(hours=BASELINE_HOURS)
    inside, outside, parents = _counts(
        db, predicate, (start, end), (onset_range[0], None), signals, since
    )
    found = measure(separation, signal, dict(predicate), signals, inside, outside, parents)
    primary = found.primary
    if primary.n_inside == 0:
        return None
    requests, users = queries.requests_and_users(db, Where.parse({**predicate, "ts": (start, end)}))
    return Signature(
        id=key,
        predicate=dict(predicate),
        start=start,
        end=end,
        signal=signal,
        **found.signature_fields(),
        requests=requests,
        users=users,
        p_value=p_value,
        log_likelihood_ratio=statistic,
        onset_range=onset_range,
        end_range=None if end is None else (end, end),
        events=nearest_events(db, start, end),
    )


def nearest_events(
    db: Database, start: datetime, end: datetime | None
) -> tuple[dict[str, Any], ...]:
    """The change events nearest the onset and the end, within ``EVENT_HORIZON_HOURS``."""
    horizon = timedelta(hours=EVENT_HORIZON_HOURS)
    last = end or start
    frame = queries.event_rows(db, where=Where(start=start - horizon, end=last + horizon))
    if frame.height == 0:
        return ()
    times = frame["ts"].to_list()
    out = []
    for label, t in (("onset", start), ("end", end)):
        if t is None:
            continue
        gaps = [abs((e - t).total_seconds()) for e in times]
        nearest = int(np.argmin(gaps))
        if gaps[nearest] > horizon.total_seconds():
            continue
        row = frame.row(nearest, named=True)
        out.append(
            {"near": label, "hours_away": round((row["ts"] - t).total_seconds() / 3600, 1), **row}
        )
    return tuple(out)
