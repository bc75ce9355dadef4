"""The ranked list: the chosen explanation first, then nested alternatives and the runners-up.

After the first candidate (``granularity.choose``) come, as whole sets:

- for each of its elements, the set with that element replaced by its
  strongest coarser parent (``coarser``) and by its child holding the most
  excess (``finer``);
- each other whole explanation of the first search and each other anomalous
  element, alone (``other``);
- when fewer than ``candidates`` exist, the elements with the most evidence.

They are ordered by score, except that a candidate comes after every
candidate coarser than it (each of its elements lies inside one of the
other's, and the two differ): coarse first. Then the last ``other`` places
from the fourth on (at most ``WIDER_SLOTS``) go to the first candidate plus
one more anomalous element disjoint from it (``wider``): a second cause much
smaller than the first is not chosen (under ``min_share`` of the excess) and
the first's own raised parts fill the list. Every number is measured over
the whole traffic at the moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from forensics.explain.granularity import Choice
from forensics.explain.lattice import Element, Lattice, parents
from forensics.explain.leaves import Leaves
from forensics.explain.params import ExplainParams
from forensics.explain.result import Candidate
from forensics.stats import wilson_interval

__all__ = ["rank_candidates"]

Elements = tuple[Element, ...]


def _inside(fine: Element, coarse: Element) -> bool:
    return set(coarse) <= set(fine)


def _coarser(a: Elements, b: Elements) -> bool:
    """Whether ``a`` is coarser than ``b``: every element of ``b`` lies inside one of ``a``."""
    return a != b and all(any(_inside(fb, ca) for ca in a) for fb in b)


def _key(elements: Sequence[Element]) -> Elements:
    return tuple(sorted(set(elements)))


def _value(values: tuple[Any, ...], code: int, edges: Sequence[float] | None) -> Any:
    value = values[code]
    if edges is None or value is None:
        return value
    ordered = sorted(float(x) for x in edges)
    lower = float(value)
    if lower not in ordered:
        return value
    i = ordered.index(lower)
    bounds: dict[str, float] = {}
    if i > 0:
        bounds["gte"] = lower
    if i + 1 < len(ordered):
        bounds["lt"] = ordered[i + 1]
    return bounds


def rank_candidates(
    choice: Choice,
    leaves: Leaves,
    dims: Sequence[str],
    values: Sequence[tuple[Any, ...]],
    params: ExplainParams,
    *,
    ranges: Mapping[str, Sequence[float]] | None = None,
) -> tuple[Candidate, ...]:
    """The candidates, best first (see the module docstring)."""
    lattice = choice.lattice
    assert lattice is not None
    ranges = ranges or {}
    first = _key(choice.elements) or _fallback(lattice)
    roles: dict[Elements, str] = {}
    for i, element in enumerate(first):
        if not element:
            continue
        rest = first[:i] + first[i + 1 :]
        up = [p for p in parents(element) if p and lattice.of(p).excess > 0]
        if up:
            best = max(up, key=lambda p: lattice.of(p).llr)
            roles.setdefault(_key((*rest, best)), "coarser")
        down: dict[Element, Any] = {}
        for d in range(leaves.codes.shape[1]):
            if all(d != dd for dd, _ in element):
                down.update(lattice.children(element, d))
        if down:
            best = max(down, key=lambda c: lattice.of(c).excess)
            roles.setdefault(_key((*rest, best)), "finer")
    singles = sorted(
        set(choice.whole) | set(lattice.anomalous_elements()),
        key=lambda el: -lattice.of(el).llr,
    )
    for element in singles:
        roles.setdefault((element,), "other")
    roles.pop(first, None)  # before topping up: the first must not count among the others
    if len(roles) + 1 < params.candidates:
        spare = sorted((el for el in lattice.stats if el), key=lambda el: -lattice.of(el).llr)
        for element in spare:
            if len(roles) + 1 >= params.candidates:
                break
            if (element,) != first:
                roles.setdefault((element,), "other")
    total = float((leaves.k - leaves.e).sum())
    score: dict[Elements, float] = {
        key: sum(lattice.of(el).llr for el in key) for key in [first, *roles]
    }
    nested = [key for key, role in roles.items() if role != "other"]
    alone = sorted((key for key in roles if roles[key] == "other"), key=lambda key: -score[key])
    pool = nested + alone[: max(params.candidates * 2 - len(nested), 0)]
    ordered = _coarse_first(sorted(pool, key=lambda key: -score[key]))
    keys = [first, *ordered][: max(params.candidates, 1)]
    keys = _with_another(keys, first, lattice, roles, params)
    for key in keys:
        score.setdefault(key, sum(lattice.of(el).llr for el in key))
    out = []
    for key in keys:
        st = lattice.union(key)
        excess = st.k - st.e
        outside = total - excess
        share = excess / (excess + max(outside, 0.0)) if excess > 0 else 0.0
        lo, hi = wilson_interval(st.k, st.n)
        elements = tuple(
            {dims[d]: _value(values[d], code, ranges.get(dims[d])) for d, code in element}
            for element in key
        )
        out.append(
            Candidate(
                elements=elements,
                share=float(share),
                rate=st.k / st.n if st.n else float("nan"),
                baseline_rate=st.e / st.n if st.n else float("nan"),
                ci=(float(lo[0]), float(hi[0])),
                score=float(score[key]),
                requests=round(st.n),
                signal_count=round(st.k),
                expected=float(st.e),
                role="explanation" if key == first else roles[key],
            )
        )
    return tuple(out)


WIDER_SLOTS = 2
"""At most this many of the last places go to the first candidate with one more element."""


def _disjoint(a: Element, b: Element) -> bool:
    """Whether no request lies in both: they name one column with different values."""
    values = dict(a)
    return any(d in values and values[d] != code for d, code in b)


def _with_another(
    keys: list[Elements],
    first: Elements,
    lattice: Lattice,
    roles: dict[Elements, str],
    params: ExplainParams,
) -> list[Elements]:
    """The list with its last ``other`` places (from the fourth on) given to wider sets.

    Each wider set is ``first`` plus one of the anomalous elements disjoint from it
    with the most evidence. A second cause much smaller than the first is not chosen (it holds less than
    ``min_share`` of the excess), and every other place goes to the first's nested
    alternatives and its own raised parts; this gives the smaller cause a place.
    """
    if not all(first):
        return keys
    extra = sorted(
        (el for el in lattice.anomalous_elements() if all(_disjoint(el, c) for c in first)),
        key=lambda el: -lattice.of(el).llr,
    )
    wider = [_key((*first, el)) for el in extra[:WIDER_SLOTS]]
    wider = [key for key in wider if key not in keys]
    places = [i for i in range(len(keys) - 1, 2, -1) if roles.get(keys[i]) == "other"]
    out = list(keys)
    for i, key in zip(sorted(places[: len(wider)]), wider, strict=False):
        out[i] = key
        roles[key] = "wider"
    return out


def _fallback(lattice: Lattice) -> Elements:
    """Nothing whole: the anomalous element with the most evidence, else the most evidence."""
    pool = lattice.anomalous_elements() or [el for el in lattice.stats if el]
    if not pool:
        return ((),)
    return (max(pool, key=lambda el: lattice.of(el).llr),)


def _coarse_first(keys: list[Elements]) -> list[Elements]:
    """Keep the order, except that no candidate comes before one coarser than it."""
    remaining = list(keys)
    out: list[Elements] = []
    while remaining:
        for i, key in enumerate(remaining):
            if not any(_coarser(other, key) for other in remaining if other is not key):
                out.append(remaining.pop(i))
                break
        else:  # a cycle cannot happen (coarser is a strict order); keep the rest as they are
            out.extend(remaining)
            break
    return out
