"""Operator granularity: the coarsest conjunctions that are whole explanations, chosen in turn.

An anomalous element ``S`` is **too coarse** when its anomaly sits in a part
of it and the rest of it is at baseline (``region = eu`` when only pool p7 of
eu fails). Along each other dimension, ``S``'s values are sorted by ratio
(observed / expected), highest first; a cut keeps the most raised values
``A`` and leaves out the rest ``R``. The cut is allowed when ``A`` holds at
least ``explained`` (80%) of ``S``'s excess and ``R`` at least
``whole_share`` of its requests. The evidence of a cut is how much more
likely ``R`` is at its baseline than raised by ``part_raise`` (a quarter) of
``A``'s raise, the least a part of one cause is taken to rise; ``S`` is too
coarse when the best cut over every other dimension has at least
``normal_llr`` nats and more than a whole ``S`` would show by chance: the
same best cut is taken on ``coarse_draws`` draws of ``S``'s counts with every
value at ``S``'s ratio (Poisson, widened by the overdispersion), and fewer
than a ``coarse_p`` share of them may reach it. (Sorting by ratio makes the
values left out the least raised, so the chance of a good-looking cut is far
from small when counts are small; the draws price that.) Values left out
that are raised too (clients hit less hard than others) fit more than a
quarter of the raise better than the baseline, so a finer subset that drops
them never wins; a coarse ``S`` whose cause is a small part of it (its own
ratio barely above 1) is still told apart, since its rest is compared with
the raise of the part that holds the excess, not with ``S``'s diluted one.

An element is a **whole explanation** when it is anomalous and not too
coarse, and no parent (the element without one condition; the whole traffic
for a single condition) is one: the rest of every parent is not raised the
way the element is, so the element is not a piece of a coarser whole. When
the whole traffic itself is raised alike (anomalous and not too coarse), no
slice explains the moment and the answer is the whole traffic, ``()``.

The first candidate takes, among the whole explanations, the one with the
most evidence (a large slice barely above its baseline holds much excess and
little evidence); its leaves are explained away and the search runs again on
the rest of the traffic; so on until no whole explanation is left (or
``max_elements``). An element found later that holds one chosen before
replaces it (what was left of a coarser whole after its most raised part). Several elements failing at once (two regions) thus make
one candidate with several elements. Then, when the traffic outside the
chosen elements sits above its own past (by ``normal_llr`` nats of
evidence), that rise (observed over expected) is put into every baseline
(``Leaves.scaled``) and the choice is made once more: what only rose with
everything else is not an explanation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from forensics.explain.lattice import Element, Lattice, parents
from forensics.explain.leaves import Leaves
from forensics.explain.params import ExplainParams
from forensics.explain.statistic import llr

__all__ = ["Choice", "choose", "robust_rise"]


@dataclass
class Choice:
    """The elements chosen in turn, and the first search's lattice for the alternatives."""

    leaves: Leaves
    """The leaves with the baselines the choice was made on."""
    elements: list[Element] = field(default_factory=list)
    """The first candidate's elements, in the order chosen."""
    whole: list[Element] = field(default_factory=list)
    """Every whole explanation of the first search (over all the traffic)."""
    lattice: Lattice | None = None
    """The first search (over all the traffic)."""


def _split_evidence(
    n: np.ndarray, k: np.ndarray, e: np.ndarray, params: ExplainParams
) -> np.ndarray:
    """Per row of counts ``k`` (draws x values), the best cut's evidence that the rest is at baseline.

    Values are sorted by ratio, highest first; a cut keeps a prefix ``A`` holding at
    least ``explained`` of the excess and leaves a rest holding at least ``whole_share``
    of the requests; the evidence is the log-likelihood of the rest at its baseline
    minus raised by ``part_raise`` of ``A``'s raise (-inf when no cut is allowed).
    """
    ratio = np.where(e > 0, k / np.maximum(e, 1e-300), np.inf)
    order = np.argsort(-ratio, axis=1, kind="stable")
    k = np.take_along_axis(k, order, axis=1)
    e = np.broadcast_to(e, k.shape)
    e = np.take_along_axis(e, order, axis=1)
    n = np.take_along_axis(np.broadcast_to(n, k.shape), order, axis=1)
    total_k, total_e, total_n = k.sum(axis=1), e.sum(axis=1), n.sum(axis=1)
    kept_k, kept_e = np.cumsum(k, axis=1)[:, :-1], np.cumsum(e, axis=1)[:, :-1]
    rest_n = total_n[:, None] - np.cumsum(n, axis=1)[:, :-1]
    rest_k, rest_e = total_k[:, None] - kept_k, total_e[:, None] - kept_e
    excess = (total_k - total_e)[:, None]
    allowed = (excess > 0) & (kept_k - kept_e >= params.explained * excess)
    allowed &= rest_n >= params.whole_share * total_n[:, None]
    kept_ratio = np.where(kept_e > 0, kept_k / np.maximum(kept_e, 1e-300), 1.0)
    allowed &= kept_ratio > 1.0
    lowest = 1.0 + params.part_raise * (kept_ratio - 1.0)
    evidence = _loglik(rest_k, rest_e, 1.0) - _loglik(rest_k, rest_e, lowest)
    return np.max(np.where(allowed, evidence, -np.inf), axis=1)


def _loglik(k: np.ndarray | float, e: np.ndarray | float, ratio: np.ndarray | float) -> np.ndarray:
    """Poisson log-likelihood of ``k`` at ``ratio`` times ``e``, up to a constant."""
    k, e, ratio = (np.asarray(x, dtype=float) for x in (k, e, ratio))
    return k * np.log(np.maximum(ratio, 1e-12)) - ratio * e


class _Judge:
    """Remembers which elements of one lattice are too coarse or whole explanations."""

    def __init__(self, lattice: Lattice, params: ExplainParams) -> None:
        self.lattice = lattice
        self.params = params
        self.coarse: dict[Element, bool] = {}

    def too_coarse(self, element: Element) -> bool:
        found = self.coarse.get(element)
        if found is None:
            found = self._too_coarse(element)
            self.coarse[element] = found
        return found

    def _too_coarse(self, element: Element) -> bool:
        lattice, params = self.lattice, self.params
        st = lattice.of(element)
        if st.excess <= 0 or st.e <= 0:
            return False
        used = {d for d, _ in element}
        splits = []
        for d in range(lattice.leaves.codes.shape[1]):
            if d in used:
                continue
            kids = list(lattice.children(element, d).values())
            if len(kids) >= 2:
                splits.append(
                    (
                        np.array([c.n for c in kids]),
                        np.array([c.k for c in kids]),
                        np.array([c.e for c in kids]),
                        np.array([c.dispersion for c in kids]),
                    )
                )
        if not splits:
            return False
        observed = max(float(_split_evidence(n, k[None, :], e, params)[0]) for n, k, e, _ in splits)
        if observed < params.normal_llr:
            return False
        rng = np.random.default_rng(zlib.crc32(repr(element).encode()))
        null = np.full(params.coarse_draws, -np.inf)
        for n, _, e, dispersion in splits:
            mean = np.broadcast_to(e * st.ratio, (params.coarse_draws, len(e)))
            spread = np.maximum(dispersion - 1.0, 1e-9)
            rate = np.where(dispersion > 1.0 + 1e-9, rng.gamma(mean / spread, spread), mean)
            draws = rng.poisson(rate).astype(float)
            null = np.maximum(null, _split_evidence(n, draws, e, params))
        p_value = (1 + int((null >= observed).sum())) / (params.coarse_draws + 1)
        return p_value <= params.coarse_p

    def whole(self, element: Element) -> bool:
        """Anomalous and not too coarse."""
        return self.lattice.anomalous(element) and not self.too_coarse(element)

    def explanation(self, element: Element) -> bool:
        """A whole explanation: whole, and no parent is whole."""
        if any(self.whole(p) for p in parents(element)):
            return False
        return self.whole(element)


def _choose_once(leaves: Leaves, params: ExplainParams) -> Choice:
    active = np.ones(leaves.n.shape[0], dtype=bool)
    choice = Choice(leaves)
    floor = params.min_share * max(float((leaves.k - leaves.e).sum()), 0.0)
    for _ in range(params.max_elements):
        lattice = Lattice(leaves, params, active)
        judge = _Judge(lattice, params)
        lattice.search(judge.whole)
        found = [
            el
            for el in lattice.anomalous_elements()
            if lattice.of(el).excess >= floor and judge.explanation(el)
        ]
        if not found and not choice.elements and judge.whole(()):
            found = [()]  # the whole traffic is raised alike: no slice stands out
        if choice.lattice is None:
            choice.lattice, choice.whole = lattice, found
        if not found:
            break
        best = max(found, key=lambda el: (lattice.of(el).llr, -len(el)))
        # A coarser element found later holds the finer ones chosen before: it replaces them.
        choice.elements = [el for el in choice.elements if not set(best) <= set(el)]
        choice.elements.append(best)
        active = active & ~lattice.mask(best)
        if not active.any():
            break
    return choice


def robust_rise(leaves: Leaves) -> float:
    """How far the bulk of the traffic sits above its past (at least 1).

    The least, over the dimensions, of the weighted lower median (weights: expected counts) of observed / expected over
    their values; never below 1. One slice rising far more than the rest moves it little.
    """
    rises = []
    for d, size in enumerate(leaves.cardinalities):
        k = np.bincount(leaves.codes[:, d], weights=leaves.k, minlength=size)
        e = np.bincount(leaves.codes[:, d], weights=leaves.e, minlength=size)
        seen = e > 0
        if not seen.any():
            continue
        ratio, weight = k[seen] / e[seen], e[seen]
        order = np.argsort(ratio)
        cumulative = np.cumsum(weight[order])
        rises.append(float(ratio[order][np.searchsorted(cumulative, cumulative[-1] / 2)]))
    return max(min(rises, default=1.0), 1.0)


def choose(leaves: Leaves, params: ExplainParams) -> Choice:
    """Choose the first candidate's elements (see the module docstring)."""
    choice = _choose_once(leaves, params)
    lattice = choice.lattice
    assert lattice is not None
    if choice.elements == [()]:
        # The whole traffic rose: what rose more than its bulk, if anything, is the answer.
        factor = robust_rise(leaves)
        if factor > 1.0:
            again = _choose_once(leaves.scaled(factor), params)
            if again.elements and again.elements != [()]:
                return again
        return choice
    outside = np.ones(leaves.n.shape[0], dtype=bool)
    for element in choice.elements:
        outside &= ~lattice.mask(element)
    observed, expected = float(leaves.k[outside].sum()), float(leaves.e[outside].sum())
    if expected <= 0 or observed <= expected:
        return choice
    rise = float(llr(observed, float(leaves.n[outside].sum()), expected))
    if rise / leaves.dispersion(outside) < params.normal_llr:
        return choice  # the rest of the traffic is where its past says: nothing to put in
    factor = observed / expected
    return _choose_once(leaves.scaled(factor), params)
