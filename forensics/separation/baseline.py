"""The baseline model's pieces: which dimensions enter it, robust factors, dispersion.

The baseline says how often each request would show a symptom if nothing were
wrong: a multiplicative main-effects model over the dimensions whose effect is
stable in time, fitted robustly (see ``main_effects``), plus a dispersion
factor for counts that vary more than Poisson. ``model.fit_model``
puts them together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from forensics.separation.statistic import PRIOR_EVENTS, Series, xlogx_ratio

__all__ = [
    "NULL_KEY",
    "MainEffects",
    "dispersion",
    "heterogeneity",
    "main_effects",
    "stability",
    "swings",
    "trimmed_ratio",
]

MODEL_P = 1e-3
"""Significance a dimension's effect needs to enter the baseline model, and that its
interaction with time must not reach."""

MODEL_TRIM = 2
"""Time blocks trimmed at each end when a value's factor is estimated."""

MODEL_MIN_PRESENCE = 0.6
"""A dimension enters the baseline model only if its effect shows in this share of the
time blocks; a value present in fewer of them gets no factor of its own."""

BLOCK_SWING = 2.0
"""A signal whose block rates differ by this factor (significantly) is problem-dominated."""

BLOCK_P = 0.01
"""Significance of a dimension's effect within one time block."""

DISPERSION_MIN_EVENTS = 10.0
"""Expected events a bucket needs to count in the dispersion estimate."""

CHI2_1_MEDIAN = float(scipy_stats.chi2.ppf(0.5, 1))
"""Median of chi-square with one degree of freedom (0.455)."""

MODEL_FLOOR = 0.2
"""Smallest expected probability of a cell, as a share of the signal's overall rate."""

MODEL_BLOCKS = 8
"""Time blocks the stability of a dimension's effect is checked over."""


def dispersion(series: Sequence[Series]) -> float:
    """How much more than Poisson symptom counts vary from bucket to bucket (at least 1).

    Requests are not independent (a user's session repeats a kind of prompt), so
    counts wobble more than Poisson; the search divides counts by this factor
    (quasi-Poisson), or a common symptom's day-to-day wobble would pass for a
    problem. Estimated robustly, so that the problems themselves do not inflate
    it: per single-value slice, the median squared Pearson residual over its
    buckets with at least ``DISPERSION_MIN_EVENTS`` expected events, about the
    slice's median ratio, divided by the median of chi-square(1) (0.455); then
    the median over slices.
    """
    estimates = []
    for s in series:
        for o, e in zip(s.o, s.e, strict=True):
            busy = e >= DISPERSION_MIN_EVENTS
            if busy.sum() < 5:
                continue
            level = float(np.median(o[busy] / e[busy]))
            if level <= 0:
                continue
            mean = level * e[busy]
            residual = (o[busy] - mean) ** 2 / mean
            estimates.append(float(np.median(residual)) / CHI2_1_MEDIAN)
    return max(1.0, float(np.median(estimates))) if estimates else 1.0


def stability(part: pl.DataFrame) -> tuple[float, int, float, int, float]:
    """How a dimension moves a rate, and whether it does so all the time.

    ``part`` holds ``value, block, n, k``. Returns the G statistic of the rate's
    dependence on the value and its degrees of freedom; the G statistic of its
    interaction with time (the deviance of the value-and-block main-effects fit
    of the value x block table) and its degrees of freedom; and the share of
    time blocks in which the dependence is significant on its own (p <
    ``BLOCK_P``).
    """
    values = sorted(set(part["value"].to_list()), key=lambda v: (v is None, str(v)))
    blocks = sorted(set(part["block"].to_list()))
    vi = {v: i for i, v in enumerate(values)}
    bi = {b: i for i, b in enumerate(blocks)}
    n = np.zeros((len(values), len(blocks)))
    k = np.zeros_like(n)
    for v, b, nn, kk in part.select("value", "block", "n", "k").iter_rows():
        n[vi[v], bi[b]] += nn
        k[vi[v], bi[b]] += kk
    main = heterogeneity(k.sum(axis=1), n.sum(axis=1))
    shown = sum(
        1
        for j in range(len(blocks))
        if (n[:, j] > 0).sum() > 1
        and scipy_stats.chi2.sf(heterogeneity(k[:, j], n[:, j]), (n[:, j] > 0).sum() - 1) < BLOCK_P
    )
    presence = shown / len(blocks) if blocks else 0.0
    total_n, total_k = n.sum(), k.sum()
    if total_n == 0 or total_k in (0, total_n):
        return main, len(values) - 1, 0.0, 0, presence
    p = np.full(n.shape, total_k / total_n)
    for _ in range(50):
        for axis in (0, 1):
            observed = k.sum(axis=1 - axis)
            expected = (n * p).sum(axis=1 - axis)
            factor = np.where(expected > 0, observed / np.where(expected > 0, expected, 1), 1.0)
            p = np.minimum(p * (factor[:, None] if axis == 0 else factor[None, :]), 0.999)
    mean = n * p
    interaction = float(2 * (xlogx_ratio(k, mean).sum() + xlogx_ratio(n - k, n - mean).sum()))
    return main, len(values) - 1, interaction, (len(values) - 1) * (len(blocks) - 1), presence


def swings(margins: pl.DataFrame) -> bool:
    """Whether the signal's overall rate swings between time blocks (problems dominate it).

    Then an interaction test cannot tell a stable effect from one a problem
    makes (the blocks' own rates absorb the problem), and a dimension must show
    its effect in most blocks to enter the model. A swing is a significant
    (p < MODEL_P) block effect whose highest block rate is ``BLOCK_SWING`` times
    the lowest.
    """
    if margins.height == 0:
        return False
    first = margins["dimension"][0]
    by_block = (
        margins.filter(pl.col("dimension") == first)
        .group_by("block")
        .agg(pl.col("n").sum(), pl.col("k").sum())
    )
    n = by_block["n"].to_numpy().astype(float)
    k = by_block["k"].to_numpy().astype(float)
    if len(n) < 2 or scipy_stats.chi2.sf(heterogeneity(k, n), len(n) - 1) >= MODEL_P:
        return False
    rates = (k + PRIOR_EVENTS) / (n + 2 * PRIOR_EVENTS)
    return bool(rates.max() >= BLOCK_SWING * rates.min())


def heterogeneity(k: np.ndarray, n: np.ndarray) -> float:
    """G statistic of a rate varying across groups (0 when it cannot)."""
    total_n, total_k = n.sum(), k.sum()
    if total_n == 0 or total_k in (0, total_n):
        return 0.0
    p = total_k / total_n
    return float(2 * (xlogx_ratio(k, n * p).sum() + xlogx_ratio(n - k, n * (1 - p)).sum()))


NULL_KEY = "\x00null"
"""How a missing value is named among a dimension's values in ``MainEffects``."""


@dataclass(frozen=True)
class MainEffects:
    """A fitted multiplicative model: base rate times one factor per dimension value."""

    dims: tuple[str, ...]
    """The model's dimensions."""
    base: float
    """The rate of a request whose every factor is 1."""
    factors: tuple[dict[str, float], ...]
    """Per dimension, each value's factor (values as text; ``NULL_KEY`` for missing)."""
    siblings: tuple[float, ...]
    """Per dimension, the factor of a value the fit could not measure (new, or present
    only part of the time): the mean factor of the others, weighted by their requests."""
    floor: float
    """No request is expected below this probability."""

    def probabilities(self, combos: pl.DataFrame) -> np.ndarray:
        """Expected probability of each row of ``combos`` (holding ``dims``; any height)."""
        p = np.full(combos.height, self.base)
        for d, factors, default in zip(self.dims, self.factors, self.siblings, strict=True):
            column = combos[d].cast(pl.Utf8).fill_null(NULL_KEY).to_list()
            p = p * np.fromiter((factors.get(v, default) for v in column), float, len(column))
        return np.maximum(np.minimum(p, 0.999), self.floor)

    def predict(self, combos: pl.DataFrame) -> pl.DataFrame:
        """Expected probability of each row of ``combos`` (holding ``dims``): ``*dims, p``."""
        return combos.select(list(self.dims)).with_columns(
            pl.Series("p", self.probabilities(combos))
        )


def main_effects(
    cells: pl.DataFrame,
    dims: Sequence[str],
    *,
    fixed: Mapping[str, set[str]] | None = None,
    offset: np.ndarray | None = None,
    iterations: int = 50,
) -> MainEffects:
    """A multiplicative model of a signal's rate over ``dims``, fitted robustly.

    ``cells`` holds ``block, *dims, n, k``. Iterative proportional fitting, made
    robust to problems: a value's factor is its observed over expected count
    pooled over the time blocks left after setting aside the ``MODEL_TRIM`` blocks
    where its ratio is highest and the ``MODEL_TRIM`` where it is lowest (a bug of
    a block or two is trimmed away, symmetrically, so noise is not biased). Each
    factor is shrunk by ``PRIOR_EVENTS`` pseudo-events. Values in ``fixed`` (per
    dimension, as text), present only part of the time, cannot show that their
    rate is their own: their rows are left out of the fit and they take their
    siblings' level (the mean factor of the dimension's other values, weighted
    by requests), as does any value the cells do not hold (a new release whose
    rows were left out of the fit). ``offset`` (one per row of ``cells``), when
    given, is a known factor of each cell's rate that the fit does not estimate
    (the watch's day of week, measured across weeks): the factors are fitted on
    top of it, and it is not part of the model returned. No
    combination is expected below ``MODEL_FLOOR`` times the overall rate, or a
    slice that has never shown a rare symptom would make its first events look
    impossible.
    """
    n = cells["n"].to_numpy().astype(float)
    k = cells["k"].to_numpy().astype(float)
    block = np.unique(cells["block"].to_numpy().astype(np.int64), return_inverse=True)[1].reshape(
        -1
    )
    blocks = int(block.max()) + 1 if block.size else 1
    codes, labels, free = [], [], []
    for d in dims:
        column = cells[d].cast(pl.Utf8).fill_null(NULL_KEY).to_list()
        levels = sorted(set(column))
        lookup = {v: i for i, v in enumerate(levels)}
        codes.append(np.fromiter((lookup[v] for v in column), dtype=np.int64, count=len(column)))
        labels.append(levels)
        pinned = (fixed or {}).get(d, set())
        free.append(np.array([v not in pinned for v in levels], dtype=bool))
    # Rows of pinned values teach the model nothing, neither their own level nor the
    # others' (a new release bad from its first request would raise every baseline).
    measured = np.logical_and.reduce([f[c] for f, c in zip(free, codes, strict=True)] or [n >= 0])
    if measured.any():
        n, k = np.where(measured, n, 0.0), np.where(measured, k, 0.0)
    total_n = n.sum()
    base = (k.sum() + PRIOR_EVENTS) / (total_n + 2 * PRIOR_EVENTS) if total_n else 0.0
    floor = MODEL_FLOOR * (k.sum() / total_n if total_n else 0.0)
    factors = [np.ones(len(levels)) for levels in labels]
    weights = [
        np.bincount(c, weights=n, minlength=len(levels))
        for c, levels in zip(codes, labels, strict=True)
    ]

    def sibling_level(j: int) -> float:
        w = weights[j] * free[j]
        return float((factors[j] * w).sum() / w.sum()) if w.sum() > 0 else 1.0

    known = np.ones(len(n)) if offset is None else np.asarray(offset, dtype=float)

    def predicted() -> np.ndarray:
        p = base * known
        for c, f in zip(codes, factors, strict=True):
            p = p * f[c]
        return np.minimum(p, 0.999)

    for _ in range(iterations):
        change = 0.0
        for j, c in enumerate(codes):
            size = len(labels[j])
            expected = n * predicted()
            flat = c * blocks + block
            o = np.bincount(flat, weights=k, minlength=size * blocks).reshape(size, blocks)
            e = np.bincount(flat, weights=expected, minlength=size * blocks).reshape(size, blocks)
            step = np.where(free[j], trimmed_ratio(o, e), 1.0)
            factors[j] = factors[j] * step
            factors[j][~free[j]] = sibling_level(j)
            change = max(change, float(np.abs(np.log(step)).max()) if step.size else 0.0)
        # Keep the overall level where the data put it.
        scale = (k.sum() + PRIOR_EVENTS) / ((n * predicted()).sum() + PRIOR_EVENTS)
        base *= scale
        if change < 1e-4 and abs(math.log(scale)) < 1e-4:
            break
    return MainEffects(
        dims=tuple(dims),
        base=float(base),
        factors=tuple(
            dict(zip(lv, f.tolist(), strict=True)) for lv, f in zip(labels, factors, strict=True)
        ),
        siblings=tuple(sibling_level(j) for j in range(len(dims))),
        floor=floor,
    )


def trimmed_ratio(o: np.ndarray, e: np.ndarray, *, trim: int = MODEL_TRIM) -> np.ndarray:
    """Per row, pooled observed / expected over the blocks left after trimming.

    The ``trim`` blocks where the ratio is highest and the ``trim`` where it is
    lowest are set aside. Blocks without expected events are ignored; with
    ``2 * trim`` blocks or fewer left, nothing is trimmed.
    """
    out = np.ones(o.shape[0])
    for r in range(o.shape[0]):
        live = np.flatnonzero(e[r] > 0)
        if live.size == 0:
            continue
        if live.size > 2 * trim:
            ratio = (o[r, live] + PRIOR_EVENTS) / (e[r, live] + PRIOR_EVENTS)
            order = live[np.argsort(ratio, kind="stable")]
            live = order[trim : live.size - trim]
        out[r] = (o[r, live].sum() + PRIOR_EVENTS) / (e[r, live].sum() + PRIOR_EVENTS)
    return out
