"""The moment's leaves and their baseline: what each combination of values should show now.

A leaf is one combination of dimension values present at the moment. Its
baseline combines the two comparisons an explanation makes:

- **its own recent past**: the leaf's signal rate over the ``baseline``
  buckets before the moment, shrunk towards the rate its values predict (the
  past rate of the whole traffic times each value's past ratio to it) by
  ``prior_events`` events, so that a leaf with little past borrows from its
  values and one with much past keeps its own;
- **the rest of the traffic at that moment**: ``scaled(factor)`` multiplies
  every baseline by how far the traffic outside the explanation sits above
  its own past right now (``granularity.choose`` measures it once a first
  explanation is known, and searches again): a rise everywhere (a daily
  cycle, a global shift) raises every baseline by it, so only what rises
  more than the rest of the traffic is anomalous.

A slice's expected count is the sum of its leaves': baselines add up, so the
excess of a set of disjoint slices is the sum of theirs. The overdispersion
(``kappa``) is estimated on the past rows (variance = mean + kappa mean²
per leaf and bucket) and widens every test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from forensics.errors import QueryError
from forensics.explain.params import ExplainParams
from forensics.explain.table import CountsTable

__all__ = ["Leaves", "leaf_ids", "moment_leaves"]

KEY_LIMIT = 2**62
"""Mixed-radix leaf keys are re-densified before they would pass this."""

DENSE_KEYS_PER_ROW = 4
"""Leaf ids come from a count per possible key (no sort) when there are at most this many
possible keys per row..."""

DENSE_KEYS_MIN = 1 << 20
"""...or at most this many."""


@dataclass(frozen=True)
class Leaves:
    """The leaves at a moment: their codes, counts now, baseline and past counts."""

    codes: np.ndarray
    """Leaves x dimensions: value codes."""
    cardinalities: tuple[int, ...]
    """Per dimension, how many codes it has."""
    n: np.ndarray
    """Requests now (over the ``span`` buckets of the moment)."""
    k: np.ndarray
    """...showing the signal."""
    e: np.ndarray
    """Expected signal count now (the baseline; see the module docstring)."""
    past_n: np.ndarray
    """Requests over the baseline buckets."""
    past_k: np.ndarray
    """...showing the signal."""
    factor: float
    """The rest of the traffic's rise at the moment that every baseline includes (>= 1)."""
    kappa: float
    """Overdispersion: variance = mean + kappa mean² per leaf and bucket."""
    span: int
    """Buckets the counts now add up."""
    past_buckets: int
    """Buckets the past counts add up."""

    def scaled(self, factor: float) -> Leaves:
        """The same leaves with every baseline times ``factor`` (the rest of the traffic's rise)."""
        return replace(self, e=np.minimum(self.e * factor, self.n * 0.999), factor=factor)

    def dispersion(self, inside: np.ndarray | None = None) -> float:
        """Variance over mean of the signal count of the leaves ``inside`` (all when None)."""
        e = self.e if inside is None else self.e[inside]
        total = float(e.sum())
        if total <= 0:
            return 1.0
        return 1.0 + self.kappa * float((e**2).sum()) / (total * self.span)


def leaf_ids(codes: np.ndarray, cardinalities: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Dense leaf ids of rows of codes, and the row of the first occurrence of each id.

    Ids follow the order of the mixed-radix keys (as ``np.unique`` numbers them).

    Examples
    --------
    >>> ids, first = leaf_ids(np.array([[1, 0], [0, 2], [1, 0], [0, 1]]), (2, 3))
    >>> ids.tolist(), first.tolist()
    ([2, 1, 2, 0], [3, 1, 0])
    """
    key = np.zeros(codes.shape[0], dtype=np.int64)
    bound = 1
    for d, size in enumerate(cardinalities):
        if bound * size >= KEY_LIMIT:
            _, key = np.unique(key, return_inverse=True)
            key = key.astype(np.int64)
            bound = int(key.max()) + 1 if key.size else 1
        key = key * size + codes[:, d]
        bound *= size
    if bound <= max(DENSE_KEYS_PER_ROW * len(key), DENSE_KEYS_MIN):
        # Few possible keys: a count per key instead of a sort (same ids, same order).
        present = np.bincount(key, minlength=bound) > 0
        dense = np.cumsum(present) - 1
        ids = dense[key]
        first = np.empty(int(present.sum()), dtype=np.int64)
        rows = np.arange(len(key), dtype=np.int64)
        first[ids[::-1]] = rows[::-1]  # the last write is the first occurrence
        return ids, first
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.ravel(), first


def moment_leaves(table: CountsTable, moment: int, params: ExplainParams) -> Leaves:
    """The leaves of bucket ``moment`` (and the ``span - 1`` after it) with their baseline.

    Raises
    ------
    QueryError
        No bucket precedes the moment, or nothing happened in the past or now.
    """
    first = max(0, moment - params.baseline)
    if first == moment:
        raise QueryError(
            f"{table.time(moment).isoformat()} is the first bucket of the data: an "
            "explanation compares a moment with the buckets before it; choose a later moment"
        )
    stop = min(table.buckets, moment + params.span)
    rows = (table.bucket >= first) & (table.bucket < stop)
    now = table.bucket[rows] >= moment
    codes = table.codes[rows]
    n, k = table.n[rows], table.k[rows]
    cards = tuple(len(v) for v in table.values)
    ids, first_row = leaf_ids(codes, cards)
    count = len(first_row)

    def total(weights: np.ndarray) -> np.ndarray:
        return np.bincount(ids, weights=weights, minlength=count)

    n_now, k_now = total(np.where(now, n, 0.0)), total(np.where(now, k, 0.0))
    n_past, k_past = total(np.where(now, 0.0, n)), total(np.where(now, 0.0, k))
    if n_now.sum() <= 0:
        raise QueryError(f"no requests at {table.time(moment).isoformat()}: nothing to explain")
    if n_past.sum() <= 0:
        raise QueryError(
            f"no requests in the {moment - first} buckets before {table.time(moment).isoformat()}: "
            "no recent past to compare with"
        )
    leaf_codes = codes[first_row]
    p_all = (k_past.sum() + 0.5) / (n_past.sum() + 1.0)
    predicted = np.full(count, p_all)
    for d, size in enumerate(cards):
        nv = np.bincount(leaf_codes[:, d], weights=n_past, minlength=size)
        kv = np.bincount(leaf_codes[:, d], weights=k_past, minlength=size)
        effect = (kv + params.prior_events) / (nv * p_all + params.prior_events)
        predicted *= effect[leaf_codes[:, d]]
    predicted = np.clip(predicted, 1e-9, 0.999)
    prior = params.prior_events / predicted
    rate = np.clip((k_past + prior * predicted) / (n_past + prior), 1e-12, 0.999)
    e = n_now * rate
    kappa = _overdispersion(n[~now], k[~now], rate[ids[~now]])
    keep = n_now > 0
    return Leaves(
        codes=leaf_codes[keep],
        cardinalities=cards,
        n=n_now[keep],
        k=k_now[keep],
        e=np.minimum(e[keep], n_now[keep] * 0.999),
        past_n=n_past[keep],
        past_k=k_past[keep],
        factor=1.0,
        kappa=kappa,
        span=stop - moment,
        past_buckets=moment - first,
    )


def _overdispersion(n: np.ndarray, k: np.ndarray, rate: np.ndarray) -> float:
    """Method-of-moments kappa over past rows: sum((k - mu)² - mu(1 - p)) / sum(mu²), >= 0."""
    mu = n * rate
    scale = float((mu**2).sum())
    if scale <= 0:
        return 0.0
    return max(0.0, float(((k - mu) ** 2 - mu * (1 - rate)).sum()) / scale)
