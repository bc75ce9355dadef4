"""Statistics every number of forensics rests on: intervals, tests, change points.

Vectorised over arrays of counts (one entry per slice or time bucket), built
on statsmodels where it has the method:

- a rate: Wilson score interval (``proportion_confint(method="wilson")``);
- a difference of rates: Newcombe's hybrid score interval
  (``confint_proportions_2indep(method="newcomb")``);
- "is the rate higher here?": the score test for two independent
  proportions (``test_proportions_2indep(method="score")``);
- many slices tested at once: Benjamini-Hochberg (``multipletests("fdr_bh")``);
- when a rate changes: penalised likelihood segmentation of the counts
  (PELT, Killick et al. 2012, over cumulative sums; the penalty is the
  Bonferroni-corrected likelihood-ratio threshold), with a seasonal profile
  fitted jointly and the likelihood scaled by the overdispersion the fit
  leaves, so a daily traffic-mix cycle and extra-binomial noise do not
  become change points.

An undefined value (no requests, n = 0) is NaN, never an error.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

__all__ = [
    "ALPHA",
    "MIN_SEGMENT",
    "ChangePoint",
    "change_points",
    "diff_interval",
    "fdr_bh",
    "format_p_value",
    "homogeneity_pvalue",
    "rate_table",
    "two_proportion_pvalue",
    "wilson_interval",
]

ALPHA = 0.05
"""Default significance level; intervals are 1 - ALPHA (95%)."""

MIN_SEGMENT = 2
"""Fewest time buckets between two change points."""

MAX_FIT_ROUNDS = 5
"""Times the segmentation is redone with updated seasonal and dispersion estimates."""

SEASONAL_MIN_CYCLES = 3
"""A seasonal profile is fitted only over at least this many full cycles."""

SEASONAL_PRIOR_EVENTS = 5.0
"""Pseudo-events shrinking each seasonal factor towards 1."""

ArrayLike = Sequence[float] | np.ndarray


def _arrays(*values: ArrayLike | float) -> list[np.ndarray]:
    return [np.atleast_1d(np.asarray(v, dtype=float)) for v in values]


def wilson_interval(
    k: ArrayLike | float, n: ArrayLike | float, *, alpha: float = ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k successes in n trials, element-wise (NaN where n = 0).

    Examples
    --------
    >>> low, high = wilson_interval([0, 5, 10], [10, 10, 10])
    >>> [round(float(x), 4) for x in low], [round(float(x), 4) for x in high]
    ([0.0, 0.2366, 0.7225], [0.2775, 0.7634, 1.0])
    >>> wilson_interval([0], [0])
    (array([nan]), array([nan]))
    """
    k_arr, n_arr = _arrays(k, n)
    low = np.full(k_arr.shape, np.nan)
    high = np.full(k_arr.shape, np.nan)
    ok = n_arr > 0
    if ok.any():
        lo, hi = sm_proportion.proportion_confint(
            k_arr[ok], n_arr[ok], alpha=alpha, method="wilson"
        )
        # Exact at the extremes (the formula leaves rounding dust): 0 at k = 0, 1 at k = n.
        low[ok] = np.where(k_arr[ok] == 0, 0.0, np.clip(lo, 0.0, 1.0))
        high[ok] = np.where(k_arr[ok] == n_arr[ok], 1.0, np.clip(hi, 0.0, 1.0))
    return low, high


def rate_table(
    frame: pl.DataFrame, *, k: str = "k", n: str = "n", alpha: float = ALPHA
) -> pl.DataFrame:
    """Add ``rate``, ``ci_low``, ``ci_high`` (Wilson) to a frame of counts; null where n = 0.

    Examples
    --------
    >>> out = rate_table(pl.DataFrame({"n": [10, 0], "k": [5, 0]}))
    >>> out.columns
    ['n', 'k', 'rate', 'ci_low', 'ci_high']
    >>> [round(x, 4) for x in out.row(0)[2:]], out.row(1)[2:]
    ([0.5, 0.2366, 0.7634], (None, None, None))
    """
    counts_k = frame[k].to_numpy().astype(float) if frame.height else np.array([])
    counts_n = frame[n].to_numpy().astype(float) if frame.height else np.array([])
    low, high = wilson_interval(counts_k, counts_n, alpha=alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(counts_n > 0, counts_k / np.where(counts_n > 0, counts_n, 1), np.nan)
    return frame.with_columns(
        pl.Series(name, values, dtype=pl.Float64).fill_nan(None)
        for name, values in (("rate", rate), ("ci_low", low), ("ci_high", high))
    )


def diff_interval(
    k1: ArrayLike | float,
    n1: ArrayLike | float,
    k0: ArrayLike | float,
    n0: ArrayLike | float,
    *,
    alpha: float = ALPHA,
) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe interval of the difference k1/n1 - k0/n0, element-wise (NaN where a side is empty).

    Examples
    --------
    >>> low, high = diff_interval([5], [100], [2], [200])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (0.0016, 0.1022)
    """
    a1, b1, a0, b0 = _arrays(k1, n1, k0, n0)
    low = np.full(a1.shape, np.nan)
    high = np.full(a1.shape, np.nan)
    ok = (b1 > 0) & (b0 > 0)
    if ok.any():
        lo, hi = sm_proportion.confint_proportions_2indep(
            a1[ok], b1[ok], a0[ok], b0[ok], method="newcomb", compare="diff", alpha=alpha
        )
        low[ok], high[ok] = lo, hi
    return low, high


def two_proportion_pvalue(
    k1: ArrayLike | float,
    n1: ArrayLike | float,
    k0: ArrayLike | float,
    n0: ArrayLike | float,
    *,
    alternative: Literal["two-sided", "larger", "smaller"] = "two-sided",
) -> np.ndarray:
    """Score test that rate 1 differs from (``larger``: exceeds) rate 0, element-wise.

    1.0 where it cannot be tested (an empty side, or no successes on either side).

    Examples
    --------
    >>> p = two_proportion_pvalue([30, 1, 0], [100, 100, 50], [10, 1, 0], [100, 100, 50],
    ...                           alternative="larger")
    >>> bool(p[0] < 0.001), round(float(p[1]), 2), float(p[2])
    (True, 0.5, 1.0)
    """
    a1, b1, a0, b0 = _arrays(k1, n1, k0, n0)
    out = np.ones(a1.shape)
    pooled_k = a1 + a0
    pooled_n = b1 + b0
    ok = (b1 > 0) & (b0 > 0) & (pooled_k > 0) & (pooled_k < pooled_n)
    if ok.any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = sm_proportion.test_proportions_2indep(
                a1[ok], b1[ok], a0[ok], b0[ok], method="score", alternative=alternative
            )
        p = np.asarray(result.pvalue, dtype=float)
        out[ok] = np.where(np.isnan(p), 1.0, p)
    return out


P_VALUE_FLOOR = 1e-300
"""Smaller p-values are shown as "< 1e-300": a double underflows to 0 near here, and
0 would read as certainty."""


def format_p_value(p: float | None) -> str:
    """A p-value as every output shows it: two digits, "< 1e-300" below the floor, "–" if none.

    Examples
    --------
    >>> format_p_value(0.0), format_p_value(2.7e-122), format_p_value(0.031)
    ('< 1e-300', '2.7e-122', '0.031')
    >>> format_p_value(None), format_p_value(float("nan"))
    ('–', '–')
    """
    if p is None or not isinstance(p, int | float) or math.isnan(p):
        return "–"
    return f"< {P_VALUE_FLOOR:.0e}" if p < P_VALUE_FLOOR else f"{p:.2g}"


def fdr_bh(pvalues: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN entries stay NaN and are not counted).

    Examples
    --------
    >>> [round(float(x), 3) for x in fdr_bh([0.01, 0.04, 0.03, float("nan")])]
    [0.03, 0.04, 0.04, nan]
    """
    (p,) = _arrays(pvalues)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return out


def homogeneity_pvalue(first: ArrayLike, second: ArrayLike) -> float:
    """Chi-square test that two samples spread over the same categories alike.

    ``first[i]`` and ``second[i]`` count category ``i`` in each sample;
    categories empty in both are dropped. NaN when there is nothing to test
    (fewer than two categories, or an empty sample).

    Examples
    --------
    >>> round(homogeneity_pvalue([90, 10], [10, 90]), 6), round(homogeneity_pvalue([5, 5], [50, 50]), 3)
    (0.0, 1.0)
    >>> homogeneity_pvalue([3, 0], [4, 0])
    nan
    """
    a, b = _arrays(first, second)
    keep = (a + b) > 0
    table = np.vstack([a[keep], b[keep]])
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return float("nan")
    return float(scipy_stats.chi2_contingency(table, correction=False).pvalue)


# -- change points --------------------------------------------------------------------


def _poisson_ll(k: float | np.ndarray, e: float | np.ndarray) -> Any:
    """Log-likelihood of counts k with expectations lambda * e at the best lambda = k / e.

    Without the terms that do not depend on the segmentation; element-wise.
    """
    k = np.asarray(k, dtype=float)
    e = np.asarray(e, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((k > 0) & (e > 0), k * np.log(k / np.where(e > 0, e, 1)) - k, 0.0)


@dataclass(frozen=True)
class ChangePoint:
    """A time where a rate series changes."""

    index: int
    """Position of the first bucket after the change."""
    time: datetime | int
    """Start of that bucket (or the index, when no times were given)."""
    direction: Literal["up", "down"]
    """Whether the rate rises or falls."""
    rate_before: float
    """Rate of the segment before (since the previous change), k / n."""
    rate_after: float
    """Rate of the segment after (until the next change), k / n."""
    ci_low: datetime | int
    """Earliest bucket start in the ``1 - alpha`` (95%) profile-likelihood range of the
    change's time."""
    ci_high: datetime | int
    """Latest bucket start in that range."""
    p_value: float
    """Likelihood-ratio test of the split against its neighbours as one segment,
    Bonferroni-corrected for the unknown position (conservative)."""
    dispersion: float
    """Overdispersion factor the likelihood was divided by (1 = none)."""


def _segment(k: np.ndarray, e: np.ndarray, dispersion: float, penalty: float) -> list[int]:
    """PELT over cumulative sums: the optimal segmentation under a per-change penalty.

    The cost of a segment is its -2 log-likelihood divided by the dispersion.
    Returns the segment ends (the last is ``len(k)``).
    """
    size = k.size
    ck = np.concatenate([[0.0], np.cumsum(k)])
    ce = np.concatenate([[0.0], np.cumsum(e)])
    best = np.full(size + 1, np.inf)
    best[0] = -penalty
    previous = np.zeros(size + 1, dtype=np.int64)
    candidates = np.array([0], dtype=np.int64)
    for end in range(MIN_SEGMENT, size + 1):
        cost = -2.0 * _poisson_ll(ck[end] - ck[candidates], ce[end] - ce[candidates]) / dispersion
        total = best[candidates] + cost + penalty
        i = int(np.argmin(total))
        best[end], previous[end] = total[i], candidates[i]
        # PELT pruning: a start already worse than the optimum stays worse.
        candidates = candidates[total - penalty <= best[end]]
        if end + 1 - MIN_SEGMENT >= MIN_SEGMENT:
            candidates = np.append(candidates, end + 1 - MIN_SEGMENT)
    bounds = [size]
    while previous[bounds[-1]] > 0:
        bounds.append(int(previous[bounds[-1]]))
    return bounds[::-1]


def _levels(k: np.ndarray, e: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """Each bucket's fitted rate ratio: its segment's total k / total e."""
    out = np.zeros(k.size)
    start = 0
    for end in bounds:
        total = e[start:end].sum()
        out[start:end] = k[start:end].sum() / total if total else 0.0
        start = end
    return out


def _seasonal(k: np.ndarray, n: np.ndarray, level: np.ndarray, period: int) -> np.ndarray:
    """Multiplicative profile per position in the period (mean 1), given segment levels.

    Shrunk towards 1 by ``SEASONAL_PRIOR_EVENTS`` pseudo-events per position.
    """
    phase = np.arange(k.size) % period
    observed = np.bincount(phase, weights=k, minlength=period)
    expected = np.bincount(phase, weights=level * n, minlength=period)
    factor = (observed + SEASONAL_PRIOR_EVENTS) / (expected + SEASONAL_PRIOR_EVENTS)
    weight = np.bincount(phase, weights=level * n, minlength=period)
    mean = float((factor * weight).sum() / weight.sum()) if weight.sum() else 1.0
    return np.asarray(factor / mean)


def _dispersion(k: np.ndarray, fitted: np.ndarray) -> float:
    """Pearson chi-square over degrees of freedom of fitted counts (at least 1)."""
    mask = fitted > 0
    used = int(mask.sum())
    if used <= 1:
        return 1.0
    chi2 = float(((k[mask] - fitted[mask]) ** 2 / fitted[mask]).sum())
    return max(1.0, chi2 / (used - 1))


def change_points(
    k: ArrayLike,
    n: ArrayLike,
    *,
    times: Sequence[datetime] | None = None,
    period: int | None = None,
    alpha: float = ALPHA,
    overdispersion: bool = True,
) -> list[ChangePoint]:
    """Where a rate series (k of n per bucket) changes level.

    Penalised likelihood segmentation (PELT) of the counts, each modelled as
    Poisson with mean level x n (x the seasonal factor when ``period`` is
    given): a change must raise the log-likelihood by more than the
    likelihood-ratio threshold at level ``alpha``, Bonferroni-corrected over
    the candidate positions. With ``period`` (24 for hours, 7 for days), a
    multiplicative profile over the period is fitted jointly, so a daily
    cycle of the traffic mix is not taken for changes. With
    ``overdispersion``, the likelihood is divided by the Pearson dispersion
    left by the fit, and the search repeated until it settles, so noise beyond
    Poisson does not turn into changes either. The Poisson likelihood is the
    binomial one for rare symptoms and conservative for common ones.

    Parameters
    ----------
    k, n
        Successes and trials per time bucket, consecutive and in time order
        (buckets with n = 0 are allowed and carry no information).
    times
        Start of each bucket; reported instead of indices when given.
    period
        Length of a seasonal cycle in buckets; ignored unless the series
        holds at least ``SEASONAL_MIN_CYCLES`` of them.
    alpha
        Level of the test a change must pass, and of its time range
        (``ci_low``, ``ci_high``: a ``1 - alpha`` profile-likelihood range).

    Returns
    -------
    list[ChangePoint]
        In time order; empty when the rate does not change.

    Examples
    --------
    >>> k = [1, 0, 1, 1, 0, 1, 9, 11, 10, 9, 10, 11]
    >>> found = change_points(k, [100] * 12)
    >>> [(c.index, c.direction) for c in found]
    [(6, 'up')]
    >>> round(found[0].rate_before, 3), round(found[0].rate_after, 3)
    (0.007, 0.1)
    >>> change_points([1, 0, 1, 1, 0, 1, 1, 0], [100] * 8)
    []
    """
    k_arr, n_arr = _arrays(k, n)
    if k_arr.shape != n_arr.shape:
        raise ValueError(f"k and n differ in length ({k_arr.size} vs {n_arr.size})")
    if times is not None and len(times) != k_arr.size:
        raise ValueError(f"times has {len(times)} entries for {k_arr.size} buckets")
    size = k_arr.size
    if size < 2 * MIN_SEGMENT or k_arr.sum() == 0 or k_arr.sum() == n_arr.sum():
        return []
    seasonal = period is not None and period > 1 and size >= SEASONAL_MIN_CYCLES * period
    penalty = float(scipy_stats.chi2.isf(alpha / max(size - 1, 1), 1))
    expected = n_arr.copy()
    dispersion = 1.0
    # Start from one segment: levels fitted first would absorb the cycle.
    bounds = [size] if seasonal else _segment(k_arr, expected, dispersion, penalty)
    for _ in range(MAX_FIT_ROUNDS):
        if seasonal:
            assert period is not None
            profile = _seasonal(k_arr, n_arr, _levels(k_arr, expected, bounds), period)
            expected = n_arr * profile[np.arange(size) % period]
        updated = (
            _dispersion(k_arr, _levels(k_arr, expected, bounds) * expected)
            if overdispersion
            else 1.0
        )
        again = _segment(k_arr, expected, updated, penalty)
        settled = again == bounds and math.isclose(updated, dispersion, rel_tol=0.02)
        bounds, dispersion = again, updated
        if settled or not (seasonal or overdispersion):
            break
    return _describe(k_arr, n_arr, expected, bounds, times, dispersion, alpha=alpha)


def _describe(
    k: np.ndarray,
    n: np.ndarray,
    expected: np.ndarray,
    bounds: Sequence[int],
    times: Sequence[datetime] | None,
    dispersion: float,
    *,
    alpha: float,
) -> list[ChangePoint]:
    edges = [0, *bounds]
    ck = np.concatenate([[0.0], np.cumsum(k)])
    cn = np.concatenate([[0.0], np.cumsum(n)])
    ce = np.concatenate([[0.0], np.cumsum(expected)])

    def rate(a: int, b: int) -> float:
        total = cn[b] - cn[a]
        return float((ck[b] - ck[a]) / total) if total else float("nan")

    def ll(a: int | np.ndarray, b: int | np.ndarray) -> Any:
        return _poisson_ll(ck[b] - ck[a], ce[b] - ce[a]) / dispersion

    def at(i: int) -> datetime | int:
        return times[i] if times is not None else i

    threshold = float(scipy_stats.chi2.ppf(1 - alpha, 1))
    out = []
    for j in range(1, len(edges) - 1):
        left, cut, right = edges[j - 1], edges[j], edges[j + 1]
        candidates = np.arange(left + MIN_SEGMENT, right - MIN_SEGMENT + 1)
        split = ll(left, candidates) + ll(candidates, right)
        inside = candidates[2.0 * (split.max() - split) <= threshold]
        statistic = 2.0 * (float(split[candidates == cut][0]) - float(ll(left, right)))
        p_value = min(1.0, float(scipy_stats.chi2.sf(statistic, 1)) * len(candidates))
        level_before = (ck[cut] - ck[left]) / max(ce[cut] - ce[left], 1e-300)
        level_after = (ck[right] - ck[cut]) / max(ce[right] - ce[cut], 1e-300)
        out.append(
            ChangePoint(
                index=cut,
                time=at(cut),
                direction="up" if level_after > level_before else "down",
                rate_before=rate(left, cut),
                rate_after=rate(cut, right),
                ci_low=at(int(inside.min())),
                ci_high=at(int(inside.max())),
                p_value=p_value,
                dispersion=dispersion,
            )
        )
    return out
