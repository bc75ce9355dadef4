"""A signature's window to the grain, with profile ranges for its onset and end.

The search scans windows of whole buckets (days, for data longer than a week;
``grain.search_step``); ``hourly`` then places each edge to the hour within
``hourly_margin_hours`` of the day edge, under the day window's level prior,
and gives the range of onsets (and ends) whose statistic is within
``CHI2_GAIN`` of the best. On data finer than the hour (``forensics.grain``)
it goes on down in stages, day, hour, then the grain, each edge moving within
the same share of the coarser bucket (a day and a half of a day: an hour and a
half of an hour), so no stage scans more than a few thousand windows; the
profile ranges are the union of the stages'. A slice whose traffic begins
within the onset's range (a new release, a new replica) began with the
problem: its onset is its first request (and likewise its end its last
request when its traffic stops within the end's range).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from forensics.separation import workspace
from forensics.separation.predicate import Predicate
from forensics.separation.statistic import (
    CHI2_GAIN,
    WINDOW_TIE,
    Scanner,
    Series,
    Window,
    level_prior_strength,
)

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["hourly"]

Edges = tuple[int, int | None, float, tuple[int, int], tuple[int, int] | None]
"""Start, end (None = still active), statistic, onset range, end range."""


def _stages(step: int, hour: int) -> list[int]:
    """Bucket sizes in ticks, coarse to fine: the searched step, the hour if between, the tick."""
    sizes = [step]
    if 1 < hour < step and step % hour == 0:
        sizes.append(hour)
    if step > 1:
        sizes.append(1)
    return sizes


def hourly(search: Search, signal: str, predicate: Predicate, window: Window) -> Edges:
    """Onset and end to the tick near the window's edges, with profile ranges.

    Returns absolute ticks (hours on hour-grained data): start, end (None =
    still active), statistic, onset range, end range.
    """
    step = search.hours
    tick_first = search.first * step
    ticks_total = search.buckets * step
    condition, params = search.store.condition(predicate)
    frame = workspace.series(
        search.db, signal=signal, by=[], condition=condition, params=params, hours=1
    )
    t = frame["t"].to_numpy().astype(np.int64) - tick_first
    keep = (t >= 0) & (t < ticks_total)
    phi = search.store.dispersion.get(signal, 1.0)

    def per_tick(column: str) -> np.ndarray:
        x = frame[column].fill_null(0.0).to_numpy().astype(float)
        if column != "n":
            x = x / phi
        return np.bincount(t[keep], weights=x[keep], minlength=ticks_total)

    o, e, n = per_tick("o"), per_tick("e"), per_tick("n")
    sizes = _stages(step, max(workspace.HOUR_US // search.tick_us, 1))
    start = window.start * step
    stop: int | None = window.stop * step
    onset: tuple[int, int] | None = None
    end_range: tuple[int, int] | None = None
    best = 0.0
    for previous, size in list(itertools.pairwise(sizes)) or [(1, 1)]:
        margin = (
            math.ceil(search.params.hourly_margin_hours * previous / size / 24)
            if previous > size
            else 0
        )
        s = Series(*(x.reshape(-1, size).sum(axis=1)[None, :] for x in (o, e, n)))
        found = _place(s, start // size, None if stop is None else stop // size, margin)
        start = found[0] * size
        stop = None if found[1] is None else found[1] * size
        best = found[2]
        onset = _union(onset, (found[3][0] * size, found[3][1] * size))
        end_range = (
            None
            if found[4] is None
            else _union(end_range, (found[4][0] * size, found[4][1] * size))
        )
    assert onset is not None
    return (
        start + tick_first,
        None if stop is None else stop + tick_first,
        best,
        (onset[0] + tick_first, onset[1] + tick_first),
        None if end_range is None else (end_range[0] + tick_first, end_range[1] + tick_first),
    )


def _union(a: tuple[int, int] | None, b: tuple[int, int]) -> tuple[int, int]:
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))


def _place(s: Series, h_start: int, h_stop: int | None, margin: int) -> Edges:
    """One stage: each edge within ``margin`` buckets of ``s``, in buckets from its first.

    ``h_stop`` None: the window reaches the end of the data (still active).
    """
    hours_total = s.o.shape[1]
    if h_stop is None:
        h_stop = hours_total
    starts = np.arange(max(0, h_start - margin), min(hours_total, h_start + margin + 1))
    last = h_stop >= hours_total
    stops = (
        np.array([hours_total])
        if last
        else np.arange(max(1, h_stop - margin), min(hours_total, h_stop + margin) + 1)
    )
    a, b = np.meshgrid(starts, stops, indexing="ij")
    valid = b > a
    # One level prior for every candidate edge: the day window's (see Scanner.best).
    e_in = s.e[0, h_start:h_stop].sum()
    c = level_prior_strength(s.e[0].sum() - e_in)
    llr = Scanner.stats(s, a[valid], b[valid], np.array([[c]]))[0]
    full = np.full(a.shape, -np.inf)
    full[valid] = llr
    best = float(full.max())
    # The shortest window within WINDOW_TIE of the best (see Scanner.best).
    length = np.where(full >= best - WINDOW_TIE, (b - a).astype(float), np.inf)
    i, j = (int(x) for x in np.unravel_index(int(np.argmin(length)), length.shape))
    busy = np.flatnonzero(s.n[0, int(starts[i]) : int(stops[j])] > 0)
    if busy.size:  # trim to the hours with traffic (see Scanner.best)
        first_busy, last_busy = int(starts[i]) + busy[0], int(starts[i]) + busy[-1] + 1
        i = int(np.searchsorted(starts, first_busy)) if first_busy in starts else i
        if int(stops[j]) < hours_total and last_busy in stops:
            j = int(np.searchsorted(stops, last_busy))
    onset_ok = starts[full[:, j] >= best - CHI2_GAIN]
    end_ok = stops[full[i, :] >= best - CHI2_GAIN]
    # A slice whose traffic begins (or ends) within the onset's (end's) range began
    # (ended) with the problem: its first (last) request is the edge the data support.
    traffic = np.flatnonzero(s.n[0] > 0)
    if traffic.size:
        first_seen, last_seen = int(traffic[0]), int(traffic[-1]) + 1
        if onset_ok.min() <= first_seen < int(stops[j]) and first_seen in starts:
            i = int(np.searchsorted(starts, first_seen))
        if (
            int(stops[j]) < hours_total
            and int(starts[i]) < last_seen <= end_ok.max()
            and last_seen in stops
        ):
            j = int(np.searchsorted(stops, last_seen))
    start = int(starts[i])
    onset = (int(onset_ok.min()), int(onset_ok.max()))
    if int(stops[j]) >= hours_total:
        return start, None, best, onset, None
    end = int(stops[j])
    return (
        start,
        end,
        best,
        onset,
        (int(end_ok.min()), int(end_ok.max())),
    )
