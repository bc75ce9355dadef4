"""Edges: move a numeric condition's edges from the bucket grid to the data.

The search cuts numeric columns into power-of-two buckets, so a bug at
``batch_size >= 96`` is first found as ``>= 64`` or ``>= 128``. Here each edge
of a numeric range is placed by the profile likelihood of a step in the rate:
among the rows of the rest of the predicate in the window, whose values lie in
the two buckets around the edge, the rate is one level (relative to the
baseline model) below a threshold and another above it; the threshold that
maximises the likelihood is the edge, and every threshold whose profile log
likelihood is within ``CHI2_GAIN`` (chi-square(1) at 95%, halved) of the best
is in its range. Values are read as they are when they are few in the region
(integers), else on a grid of about ``GRID_POINTS`` steps of a round size; the
reported edge is the roundest number in the range (a configuration's 100000
rather than the 100037 the data happen to split at).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from forensics.separation import workspace
from forensics.separation.predicate import Predicate
from forensics.separation.statistic import CHI2_GAIN, PRIOR_EVENTS, Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["GRID_POINTS", "profile_edge", "refine_edges", "roundest"]

GRID_POINTS = 2000
"""Most distinct thresholds tried for one edge; values are gridded beyond that."""

MIN_EVENTS = 5.0
"""Observed events a region needs before its edge is moved at all."""


def refine_edges(search: Search, signal: str, predicate: Predicate, window: Window) -> Predicate:
    """The predicate with each numeric range's edges placed on the data, with ranges."""
    out = dict(predicate)
    for name, cond in predicate.items():
        dim = search.space.dims[name]
        if dim.kind != "numeric" or dim.by_value:
            continue
        edges = search.space.edges[name]
        others = {k: v for k, v in out.items() if k != name}
        if cond.low > 0:
            lo, hi = edges[cond.low - 1], edges[min(cond.low + 1, cond.high + 1, len(edges) - 1)]
            if cond.low + 1 >= len(edges):
                hi = math.inf
            found = _place(search, signal, others, name, window, lo, hi, upper=False)
            if found is not None:
                cond = replace(cond, gte=found[0], gte_range=found[1])
        if cond.high + 1 < len(edges):
            lo = edges[max(cond.high, cond.low)]
            hi = edges[cond.high + 2] if cond.high + 2 < len(edges) else math.inf
            if cond.gte is not None:
                lo = max(lo, cond.gte)
            found = _place(search, signal, others, name, window, lo, hi, upper=True)
            if found is not None:
                cond = replace(cond, lt=found[0], lt_range=found[1])
        out[name] = cond
    return out


def _place(
    search: Search,
    signal: str,
    others: Predicate,
    name: str,
    window: Window,
    lo: float,
    hi: float,
    *,
    upper: bool,
) -> tuple[float, tuple[float, float]] | None:
    """The edge within [lo, hi) and its range, or None when the data cannot place it."""
    condition, params = search.store.condition(others, window)
    frame = workspace.value_counts(
        search.db,
        signal=signal,
        column=name,
        low=lo,
        high=hi,
        points=GRID_POINTS,
        condition=condition,
        params=params,
    )
    if frame.height < 2:
        return None
    phi = search.store.dispersion.get(signal, 1.0)
    v = frame["v"].to_numpy().astype(float)
    o = frame["o"].to_numpy().astype(float) / phi
    e = frame["e"].fill_null(0.0).to_numpy().astype(float) / phi
    if o.sum() < MIN_EVENTS:
        return None
    step = float(frame["step"][0])
    placed = profile_edge(v, o, e, upper=upper)
    if placed is None:
        return None
    first, last = placed
    # Thresholds v[j] (inside: v >= v[j], or v < v[j] for an upper edge) are equally
    # supported from v[first] to v[last]; an edge between two values splits as the
    # higher one does, so the range reaches back to just above the value before.
    gridded = step > 0
    before = v[first - 1] if first > 0 else v[first] - (step or 1.0)
    low = (v[first] - step) if gridded else before
    high = (v[last] + step) if gridded else v[last]
    if not gridded and float(before).is_integer() and float(v[first]).is_integer():
        low = before + 1
    edge = roundest(low, high, prefer=v[(first + last) // 2])
    return edge, (float(low), float(high))


def profile_edge(
    v: np.ndarray, o: np.ndarray, e: np.ndarray, *, upper: bool
) -> tuple[int, int] | None:
    """Indices of the first and last threshold in the profile-likelihood 95% set.

    ``v`` ascending values, ``o`` and ``e`` observed and expected counts at each.
    Threshold ``j`` puts ``v[j:]`` inside (``v[:j]`` for an upper edge), at one
    level of ``o / e`` against another outside; only thresholds where inside is
    the higher level count. None when no threshold raises the inside.

    Examples
    --------
    >>> v = np.arange(10.0)
    >>> o = np.array([1, 1, 1, 1, 1, 9, 9, 9, 9, 9.0])
    >>> profile_edge(v, o, np.ones(10), upper=False)
    (5, 5)
    """
    co = np.concatenate([[0.0], np.cumsum(o)])
    ce = np.concatenate([[0.0], np.cumsum(e)])
    j = np.arange(1, len(v))
    below_o, below_e = co[j], ce[j]
    above_o, above_e = co[-1] - below_o, ce[-1] - below_e
    if upper:
        inside_o, inside_e, outside_o, outside_e = below_o, below_e, above_o, above_e
    else:
        inside_o, inside_e, outside_o, outside_e = above_o, above_e, below_o, below_e
    rate_in = (inside_o + PRIOR_EVENTS) / (inside_e + PRIOR_EVENTS)
    rate_out = (outside_o + PRIOR_EVENTS) / (outside_e + PRIOR_EVENTS)
    loglik = _poisson(inside_o, inside_e) + _poisson(outside_o, outside_e)
    loglik = np.where(rate_in > rate_out, loglik, -np.inf)
    if not np.isfinite(loglik).any():
        return None
    ok = np.flatnonzero(loglik >= loglik.max() - CHI2_GAIN)
    return int(j[ok.min()]), int(j[ok.max()])


def _poisson(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Profile Poisson log likelihood of counts ``o`` at one free level times ``e``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(e > 0, o / np.where(e > 0, e, 1.0), 0.0)
        return np.where(o > 0, o * np.log(np.where(level > 0, level, 1.0)), 0.0) - level * e


def roundest(low: float, high: float, *, prefer: float) -> float:
    """The number in [low, high] with the fewest significant digits (nearest ``prefer``).

    Examples
    --------
    >>> roundest(99_950, 100_120, prefer=100_020)
    100000.0
    >>> roundest(96, 96, prefer=96)
    96.0
    >>> roundest(81, 96, prefer=90)
    90.0
    """
    if high < low:
        low, high = high, low
    span = max(abs(high), abs(low), 1e-12)
    for digits in range(1, 16):
        unit = 10.0 ** (math.floor(math.log10(span)) - digits + 1)
        first = math.ceil(low / unit)
        last = math.floor(high / unit)
        if first <= last:
            candidates = np.arange(first, last + 1) * unit
            return float(candidates[np.argmin(np.abs(candidates - prefer))])
    return float(prefer)
