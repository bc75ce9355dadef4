"""The statistics of an explanation: the evidence that counts exceed a baseline.

For ``k`` signal requests among ``n`` against an expected count ``e`` (a
baseline rate ``e / n``), the evidence is the one-sided binomial
log-likelihood ratio, in nats, of the observed rate against the baseline
(0 when the count is at or below it), divided by the overdispersion the
data show (``dispersion``). The same ratio with one rate fitted to a whole
group is what a conjunction "explains" (see ``forensics.explain``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats
from scipy.special import xlogy

__all__ = ["llr", "llr_threshold", "poisson_llr", "two_sample_llr"]

RATE_CAP = 1.0 - 1e-9
"""Baseline rates are kept just below 1 (a log-likelihood needs 1 - p > 0)."""


def llr(k: np.ndarray | float, n: np.ndarray | float, e: np.ndarray | float) -> np.ndarray:
    """One-sided binomial log-likelihood ratio of ``k`` in ``n`` against ``e`` expected (nats).

    Examples
    --------
    >>> float(llr(20, 100, 10).round(3)), float(llr(5, 100, 10))
    (4.44, 0.0)
    """
    k, n, e = (np.asarray(x, dtype=float) for x in (k, n, e))
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.clip(np.where(n > 0, e / n, 0.0), 1e-12, RATE_CAP)
        p1 = np.where(n > 0, k / n, 0.0)
        value = (
            xlogy(k, np.maximum(p1, 1e-300)) - k * np.log(p0)
            + xlogy(n - k, np.maximum(1 - p1, 1e-300)) - (n - k) * np.log1p(-p0)
        )  # fmt: skip
    return np.where((n > 0) & (k > e), np.maximum(value, 0.0), 0.0)


def _binomial_ll(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, RATE_CAP)
    return xlogy(k, p) + xlogy(n - k, 1 - p)


def two_sample_llr(
    k1: np.ndarray | float, n1: np.ndarray | float, k0: np.ndarray | float, n0: np.ndarray | float
) -> np.ndarray:
    """One-sided log-likelihood ratio that rate ``k1/n1`` exceeds rate ``k0/n0`` (nats).

    Both rates are estimated (unlike ``llr``, whose baseline is taken as known), so a
    short or small reference weighs less.

    Examples
    --------
    >>> float(two_sample_llr(20, 100, 10, 100).round(3)), float(two_sample_llr(10, 100, 20, 100))
    (1.993, 0.0)
    """
    k1, n1, k0, n0 = (np.asarray(x, dtype=float) for x in (k1, n1, k0, n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = np.where(n1 > 0, k1 / n1, 0.0)
        p0 = np.where(n0 > 0, k0 / n0, 0.0)
        pooled = np.where(n1 + n0 > 0, (k1 + k0) / (n1 + n0), 0.0)
        value = (
            _binomial_ll(k1, n1, p1) + _binomial_ll(k0, n0, p0)
            - _binomial_ll(k1, n1, pooled) - _binomial_ll(k0, n0, pooled)
        )  # fmt: skip
    return np.where((n1 > 0) & (n0 > 0) & (p1 > p0), np.maximum(value, 0.0), 0.0)


def poisson_llr(
    k: np.ndarray | float, e: np.ndarray | float, ratio: np.ndarray | float
) -> np.ndarray:
    """Log-likelihood of ``k`` events at ``ratio`` times ``e`` expected, minus at ``e`` (nats).

    Positive when the count fits the raised rate better, negative when it fits the baseline.

    Examples
    --------
    >>> float(poisson_llr(10, 10, 3.0).round(3)), float(poisson_llr(30, 10, 3.0).round(3))
    (-9.014, 12.958)
    """
    k, e, ratio = (np.asarray(x, dtype=float) for x in (k, e, ratio))
    return k * np.log(np.maximum(ratio, 1e-12)) - (ratio - 1.0) * e


def llr_threshold(tests: int, false_alarm: float) -> float:
    """The log-likelihood ratio that ``tests`` one-sided tests all stay under with ``1 - false_alarm``.

    Bonferroni over the tests; twice the ratio is a half chi-square with one
    degree of freedom under the null.

    Examples
    --------
    >>> round(llr_threshold(1, 0.05), 3), round(llr_threshold(1000, 0.01), 2)
    (1.353, 9.09)
    """
    alpha = false_alarm / max(tests, 1)
    return float(scipy_stats.chi2.isf(2 * alpha, 1)) / 2.0
