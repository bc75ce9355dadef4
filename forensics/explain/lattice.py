"""Conjunctions of dimension values at a moment: their counts, baselines and evidence.

An element is a conjunction, one value per dimension it names, written as a
tuple of ``(dimension index, value code)`` sorted by dimension; ``()`` is the
whole traffic. ``Lattice`` holds the leaves a search may use (those not
explained away yet) and computes, remembers and tests elements:

- every combination of up to ``full_depth`` conditions present in the data is
  counted at once per cuboid (one ``bincount`` over the leaves);
- deeper conjunctions are counted only as children of *promising* elements:
  a positive excess holding at least ``expand_share`` of the largest excess
  of a single value and a log-likelihood ratio of at least ``expand_llr`` (the
  pruning by support and by anomaly), and never below an element that is
  already a whole explanation;
- an element is *anomalous* when its evidence passes the Bonferroni bound over
  every element examined (``false_alarm``) and its rate is at least
  ``min_ratio`` times its baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from forensics.explain.leaves import Leaves, leaf_ids
from forensics.explain.params import ExplainParams
from forensics.explain.statistic import llr, llr_threshold

__all__ = ["Element", "Lattice", "Stats", "parents"]

Element = tuple[tuple[int, int], ...]

MASKS_KEPT = 64
"""Leaf masks of elements remembered (children are counted several dimensions in a row)."""


@dataclass(frozen=True)
class Stats:
    """An element's counts now, its baseline and its evidence."""

    n: float
    """Requests."""
    k: float
    """...showing the signal."""
    e: float
    """Expected signal count (the baseline)."""
    llr: float
    """One-sided log-likelihood ratio of the rate against the baseline, over the dispersion."""
    dispersion: float
    """Variance over mean of the signal count (>= 1)."""

    @property
    def excess(self) -> float:
        """Signal count above the baseline."""
        return self.k - self.e

    @property
    def ratio(self) -> float:
        """Observed over expected signal count."""
        return self.k / self.e if self.e > 0 else (np.inf if self.k > 0 else 1.0)


def parents(element: Element) -> Iterator[Element]:
    """The element without one of its conditions each (the whole traffic for one condition)."""
    for i in range(len(element)):
        yield element[:i] + element[i + 1 :]


class Lattice:
    """Elements over the leaves still in play, counted on demand and remembered."""

    def __init__(self, leaves: Leaves, params: ExplainParams, active: np.ndarray) -> None:
        self.leaves = leaves
        self.params = params
        self.active = active
        self.stats: dict[Element, Stats] = {}
        self.threshold = np.inf
        self.weights = np.column_stack([leaves.n, leaves.k, leaves.e, leaves.e**2])
        self._masks: dict[Element, np.ndarray] = {}

    # -- counting -----------------------------------------------------------------

    def mask(self, element: Element) -> np.ndarray:
        """Leaves in play inside ``element`` (the last few asked are remembered)."""
        found = self._masks.get(element)
        if found is None:
            found = self.active.copy()
            for d, code in element:
                found &= self.leaves.codes[:, d] == code
            if len(self._masks) >= MASKS_KEPT:
                self._masks.pop(next(iter(self._masks)))
            self._masks[element] = found
        return found

    def _make(self, n: float, k: float, e: float, e2: float) -> Stats:
        return self._batch(*(np.array([x]) for x in (n, k, e, e2)))[0]

    def _batch(self, n: np.ndarray, k: np.ndarray, e: np.ndarray, e2: np.ndarray) -> list[Stats]:
        """Stats of many elements from their sums, computed together."""
        with np.errstate(divide="ignore", invalid="ignore"):
            dispersion = np.where(e > 0, 1.0 + self.leaves.kappa * e2 / (e * self.leaves.span), 1.0)
        evidence = llr(k, n, e) / dispersion
        return [
            Stats(float(a), float(b), float(c), float(d), float(f))
            for a, b, c, d, f in zip(n, k, e, evidence, dispersion, strict=True)
        ]

    def of(self, element: Element) -> Stats:
        """An element's stats (counted now if not yet)."""
        found = self.stats.get(element)
        if found is None:
            found = self._make(*self.weights[self.mask(element)].sum(axis=0))
            self.stats[element] = found
        return found

    def children(self, element: Element, d: int) -> dict[Element, Stats]:
        """The element's children along dimension ``d`` that hold requests, counted at once."""
        inside = self.mask(element)
        size = self.leaves.cardinalities[d]
        codes = self.leaves.codes[inside, d]
        weights = self.weights[inside]
        sums = [np.bincount(codes, weights=weights[:, j], minlength=size) for j in range(4)]
        present = np.nonzero(sums[0])[0]
        made = self._batch(*(s[present] for s in sums))
        out = {}
        for code, st in zip(present, made, strict=True):
            child = tuple(sorted((*element, (d, int(code)))))
            out[child] = self.stats.setdefault(child, st)
        return out

    def children_along(self, element: Element, dims: list[int]) -> dict[Element, Stats]:
        """The element's children along each of ``dims`` that hold requests, counted at once.

        The same children, sums and order as ``children`` one dimension after the
        other, in one ``bincount`` per sum (a dimension's codes offset past the
        previous dimensions').
        """
        if not dims:
            return {}
        inside = self.mask(element)
        sizes = np.array([self.leaves.cardinalities[d] for d in dims], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        ids = (self.leaves.codes[inside][:, dims] + offsets).ravel()
        weights = np.repeat(self.weights[inside], len(dims), axis=0)
        total = int(sizes.sum())
        sums = [np.bincount(ids, weights=weights[:, j], minlength=total) for j in range(4)]
        present = np.nonzero(sums[0])[0]
        which = np.searchsorted(offsets, present, side="right") - 1
        made = self._batch(*(s[present] for s in sums))
        out = {}
        for position, code, st in zip(which, present - offsets[which], made, strict=True):
            child = tuple(sorted((*element, (dims[position], int(code)))))
            out[child] = self.stats.setdefault(child, st)
        return out

    def _cuboid(self, dims: tuple[int, ...]) -> None:
        """Count every element over ``dims`` at once."""
        lv = self.leaves
        codes = lv.codes[self.active][:, dims]
        cards = tuple(lv.cardinalities[d] for d in dims)
        ids, first = leaf_ids(codes, cards)
        weights = self.weights[self.active]
        sums = [np.bincount(ids, weights=weights[:, j], minlength=len(first)) for j in range(4)]
        made = self._batch(*sums)
        for row, st in zip(first, made, strict=True):
            element = tuple((d, int(codes[row, j])) for j, d in enumerate(dims))
            self.stats[element] = st

    # -- searching ----------------------------------------------------------------

    def search(self, is_whole: Callable[[Element], bool]) -> None:
        """Count the full layers, then expand promising elements that are not whole.

        ``is_whole(element)`` says whether an anomalous element needs no finer
        conjunction; the threshold is set from the number of elements examined.
        """
        dims = range(self.leaves.codes.shape[1])
        self.of(())
        depth = min(self.params.full_depth, len(dims))
        for size in range(1, depth + 1):
            for cuboid in combinations(dims, size):
                self._cuboid(cuboid)
        self._set_threshold()
        singles = [s.excess for el, s in self.stats.items() if len(el) == 1]
        floor = self.params.expand_share * max(max(singles, default=0.0), 0.0)
        frontier = [el for el in self.stats if len(el) == depth]
        for _ in range(depth, min(self.params.max_depth, len(dims))):
            nxt: set[Element] = set()
            for element in frontier:
                st = self.stats[element]
                if st.excess <= floor or st.llr < self.params.expand_llr:
                    continue
                if self.anomalous(element) and is_whole(element):
                    continue
                used = {d for d, _ in element}
                nxt.update(self.children_along(element, [d for d in dims if d not in used]))
            self._set_threshold()
            frontier = sorted(nxt)

    def _set_threshold(self) -> None:
        self.threshold = llr_threshold(len(self.stats), self.params.false_alarm)

    def anomalous(self, element: Element) -> bool:
        """Evidence past the threshold and a rate at least ``min_ratio`` times the baseline."""
        st = self.of(element)
        return st.llr >= self.threshold and st.ratio >= self.params.min_ratio

    def anomalous_elements(self) -> list[Element]:
        """Every anomalous element counted so far (not the whole traffic)."""
        return [el for el in self.stats if el and self.anomalous(el)]

    def union(self, elements: Iterable[Element]) -> Stats:
        """Stats of the leaves in play inside any of ``elements``."""
        inside = np.zeros_like(self.active)
        for element in elements:
            inside |= self.mask(element)
        return self._make(*self.weights[inside].sum(axis=0))
