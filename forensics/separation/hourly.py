"""A signature's window to the hour, with profile ranges for its onset and end.

The search scans windows of whole buckets (days, for data longer than a week);
``hourly`` then places each edge to the hour within ``hourly_margin_hours`` of
the day edge, under the day window's level prior, and gives the range of
onsets (and ends) whose statistic is within ``CHI2_GAIN`` of the best. A slice
whose traffic begins within the onset's range (a new release, a new replica)
began with the problem: its onset is its first request (and likewise its end
its last request when its traffic stops within the end's range).
"""

from __future__ import annotations

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


def hourly(
    search: Search, signal: str, predicate: Predicate, window: Window
) -> tuple[int, int | None, float, tuple[int, int], tuple[int, int] | None]:
    """Onset and end to the hour near the window's day edges, with profile ranges.

    Returns absolute hours: start, end (None = still active), statistic, onset
    range, end range.
    """
    if search.hours == 1:
        hour_first = search.first
        h_start, h_stop = window.start, window.stop
        hours_total = search.buckets
    else:
        hour_first = search.first * search.hours
        h_start, h_stop = window.start * search.hours, window.stop * search.hours
        hours_total = search.buckets * search.hours
    condition, params = search.store.condition(predicate)
    frame = workspace.series(
        search.db, signal=signal, by=[], condition=condition, params=params, hours=1
    )
    t = frame["t"].to_numpy().astype(np.int64) - hour_first
    keep = (t >= 0) & (t < hours_total)

    phi = search.store.dispersion.get(signal, 1.0)

    factor = search.store.time_factor.get(signal)

    def grid(column: str) -> np.ndarray:
        x = frame[column].fill_null(0.0).to_numpy().astype(float)
        if column == "e" and factor is not None:
            x = (
                x
                * factor[
                    np.clip(t // (search.hours if search.hours > 1 else 1), 0, search.buckets - 1)
                ]
            )
        if column != "n":
            x = x / phi
        return np.bincount(t[keep], weights=x[keep], minlength=hours_total)[None, :]

    s = Series(grid("o"), grid("e"), grid("n"))
    margin = search.params.hourly_margin_hours if search.hours > 1 else 0
    last = h_stop >= hours_total
    # An open window may not grow back to the data's first hour: it would hold all the
    # data, which the scanner never offers (see ``statistic.Scanner``).
    earliest = max(0 if not last or h_start == 0 else 1, h_start - margin)
    starts = np.arange(earliest, min(hours_total, h_start + margin + 1))
    stops = (
        np.array([hours_total])
        if last
        else np.arange(max(1, h_stop - margin), min(hours_total, h_stop + margin) + 1)
    )
    a, b = np.meshgrid(starts, stops, indexing="ij")
    valid = b > a
    scanner = Scanner(hours_total, search.params)
    # One level prior for every candidate edge: the day window's (see Scanner.best).
    e_in = s.e[0, h_start:h_stop].sum()
    c = level_prior_strength(s.e[0].sum() - e_in)
    llr = scanner.stats(s, a[valid], b[valid], np.array([[c]]))[0]
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
    start = int(starts[i]) + hour_first
    onset = (int(onset_ok.min()) + hour_first, int(onset_ok.max()) + hour_first)
    if int(stops[j]) >= hours_total:
        return start, None, best, onset, None
    end = int(stops[j]) + hour_first
    return (
        start,
        end,
        best,
        onset,
        (int(end_ok.min()) + hour_first, int(end_ok.max()) + hour_first),
    )
