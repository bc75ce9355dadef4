"""The most anomalous moment, when none is given: where a slice rises most against its past.

Every slice of one or two conditions present in the data is a series of
counts per bucket. At each bucket with at least ``min_history`` buckets
before it, a slice's evidence is the one-sided two-sample log-likelihood
ratio that its rate over the ``scan_span`` buckets from there on exceeds its
rate over the ``baseline`` buckets before (both estimated, so a short past
weighs less), divided by the slice's overdispersion (the median squared
Pearson residual of its series against its own mean rate, over the median of
a chi-square with one degree of freedom, at least 1). The most anomalous
moment is the bucket and slice with the largest evidence.

The window is long (10 buckets) so that a sustained rise outweighs a short
blip. Buckets just after the onset score almost as high (their past holds
only a little of the anomaly), so the onset is then placed where the
slice's rate steps up most sharply, comparing the ``span`` buckets after
each nearby start with the ``span`` buckets before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from forensics.errors import QueryError
from forensics.explain.leaves import leaf_ids
from forensics.explain.params import ExplainParams
from forensics.explain.statistic import two_sample_llr
from forensics.explain.table import CountsTable

__all__ = ["Moment", "find_moment"]

SCAN_DEPTH = 2
"""Slices of at most this many conditions are scanned for the moment."""

SCAN_CELLS = 2_000_000
"""Slices of a cuboid are scanned in groups of at most this many slice x bucket cells
(memory: about ten float arrays of that size at once)."""

CHI2_MEDIAN = 0.4549364231195724
"""Median of a chi-square with one degree of freedom."""


@dataclass(frozen=True)
class Moment:
    """Where the anomaly is, found from the data."""

    onset: int
    """The bucket the rise starts in (the moment explained)."""
    peak: int
    """The bucket with the largest evidence."""
    evidence: float
    """That evidence (log-likelihood ratio over the dispersion, nats)."""
    slice: tuple[tuple[int, int], ...]
    """The slice that showed it, as (dimension index, code) pairs."""


def _windows(cumulative: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return cumulative[:, hi] - cumulative[:, lo]


def find_moment(
    table: CountsTable, params: ExplainParams, *, within: tuple[int, int] | None = None
) -> Moment:
    """Find the most anomalous bucket and the onset of its rise (see the module docstring).

    ``within`` (first bucket, bucket after the last) keeps the peak and the onset
    among those buckets: the most anomalous moment of a window the investigator
    chose (a bucket of a coarser timeline); the buckets around it still give the
    past and the window ahead.

    Raises
    ------
    QueryError
        Fewer than ``min_history + 1`` buckets: no moment has a past to compare with.
    """
    count = table.buckets
    first = min(params.min_history, max(count - 1, 1))
    if count < 2:
        raise QueryError(
            "the data hold a single time bucket: there is no past to compare a moment with"
        )
    b = np.arange(count)
    past_lo = np.maximum(0, b - params.baseline)
    ahead = np.minimum(count, b + params.scan_span)
    best = np.full(count, -1.0)
    best_slice: list[tuple[tuple[int, int], ...]] = [()] * count
    cards = tuple(len(v) for v in table.values)
    dims = range(len(table.dims))
    cuboids: list[tuple[int, ...]] = [()]
    for size in range(1, min(SCAN_DEPTH, len(table.dims)) + 1):
        cuboids.extend(combinations(dims, size))
    for cuboid in cuboids:
        if cuboid:
            ids, first_row = leaf_ids(table.codes[:, cuboid], tuple(cards[d] for d in cuboid))
        else:
            ids, first_row = np.zeros(len(table.n), dtype=np.int64), np.zeros(1, dtype=np.int64)
        slices = len(first_row)
        step = max(1, SCAN_CELLS // max(count, 1))
        for lo in range(0, slices, step):
            hi = min(slices, lo + step)
            rows: np.ndarray | slice = (
                (ids >= lo) & (ids < hi) if (lo, hi) != (0, slices) else slice(None)
            )
            evidence = _evidence(
                ids[rows] - lo, table.bucket[rows], table.n[rows], table.k[rows], hi - lo,
                count, past_lo, ahead, b,
            )  # fmt: skip
            evidence[:, :first] = -1.0
            if within is not None:
                evidence[:, : within[0]] = -1.0
                evidence[:, within[1] :] = -1.0
            top = evidence.argmax(axis=0)
            value = evidence[top, b]
            better = value > best
            best = np.where(better, value, best)
            for i in np.nonzero(better)[0]:
                row = first_row[lo + top[i]]
                best_slice[i] = tuple((d, int(table.codes[row, d])) for d in cuboid)
    if within is not None:
        lo, hi = max(within[0], 0), min(within[1], count)
        if hi <= lo:
            raise QueryError("the window asked holds no time bucket of the data")
        peak = lo + int(best[lo:hi].argmax())
    else:
        peak = int(best.argmax())
    where = best_slice[peak]
    onset = _onset(table, where, peak, params)
    if within is not None:
        onset = min(max(onset, lo), hi - 1)
    return Moment(onset=onset, peak=peak, evidence=float(best[peak]), slice=where)


def _evidence(
    ids: np.ndarray,
    bucket: np.ndarray,
    n_rows: np.ndarray,
    k_rows: np.ndarray,
    slices: int,
    count: int,
    past_lo: np.ndarray,
    ahead: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    """Slices x buckets: the evidence of the window from each bucket on against its past."""
    cell = ids * count + bucket
    n = np.bincount(cell, weights=n_rows, minlength=slices * count).reshape(slices, count)
    k = np.bincount(cell, weights=k_rows, minlength=slices * count).reshape(slices, count)
    cn = np.concatenate([np.zeros((slices, 1)), np.cumsum(n, axis=1)], axis=1)
    ck = np.concatenate([np.zeros((slices, 1)), np.cumsum(k, axis=1)], axis=1)
    n_past, k_past = _windows(cn, past_lo, b), _windows(ck, past_lo, b)
    n_ahead, k_ahead = _windows(cn, b, ahead), _windows(ck, b, ahead)
    return two_sample_llr(k_ahead, n_ahead, k_past, n_past) / _dispersion(n, k)[:, None]


def _dispersion(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per slice, the median squared Pearson residual over a chi-square's median, at least 1."""
    rate = k.sum(axis=1) / np.maximum(n.sum(axis=1), 1e-300)
    mean = n * rate[:, None]
    var = mean * (1 - rate[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.where(var > 0, (k - mean) ** 2 / var, np.nan)
    seen = ~np.all(np.isnan(residual), axis=1)
    out = np.ones(len(n))
    out[seen] = np.nanmedian(residual[seen], axis=1) / CHI2_MEDIAN
    return np.maximum(out, 1.0)


def _onset(
    table: CountsTable, where: tuple[tuple[int, int], ...], peak: int, params: ExplainParams
) -> int:
    """The bucket near ``peak`` where the slice's rate steps up most sharply.

    For each candidate start ``s`` from ``scan_span`` buckets before the peak to
    ``span`` after, the ``span`` buckets from ``s`` on are compared with the ``span``
    buckets before it (the same two-sample evidence); the start with the most
    evidence is the onset. A start inside the rise has raised buckets on
    both sides and one before it has normal buckets in its window: only the onset
    itself has the whole step between its two sides.
    """
    inside = np.ones(len(table.n), dtype=bool)
    for d, code in where:
        inside &= table.codes[:, d] == code
    n = np.bincount(table.bucket[inside], weights=table.n[inside], minlength=table.buckets)
    k = np.bincount(table.bucket[inside], weights=table.k[inside], minlength=table.buckets)
    cn, ck = np.concatenate([[0.0], np.cumsum(n)]), np.concatenate([[0.0], np.cumsum(k)])
    width = max(params.span, 1)
    starts = np.arange(max(1, peak - params.scan_span), min(table.buckets - 1, peak + width) + 1)
    if not starts.size:
        return peak
    before = np.maximum(starts - width, 0)
    after = np.minimum(starts + width, table.buckets)
    evidence = two_sample_llr(
        ck[after] - ck[starts],
        cn[after] - cn[starts],
        ck[starts] - ck[before],
        cn[starts] - cn[before],
    )
    if not np.any(evidence > 0):
        return peak
    return int(starts[int(np.argmax(evidence))])
