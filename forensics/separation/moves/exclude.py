"""Exclude: leave out the values of a dimension that are clearly spared, when they weigh."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.separation import values
from forensics.separation.moves.step import Forced, Step
from forensics.separation.predicate import Predicate
from forensics.separation.statistic import Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["exclude"]


def exclude(search: Search, step: Step) -> Forced:
    """Restrict a dimension whose unaffected values weigh, whatever the statistic says.

    A dimension whose unaffected values hold at least ``values.UNAFFECTED_SHARE``
    of the slice's requests in the window must be restricted to the others: a
    problem is not described by a slice a good part of which shows no sign of
    it. When several dimensions qualify (one often only reflects another's
    composition), the restriction that scores best goes first. Needs room for
    one more condition.
    """
    if len(step.predicate) >= search.params.max_conditions:
        return None
    best: tuple[float, Predicate, Window] | None = None
    window = step.window
    for name, (names, s) in step.by.items():
        found = values.roles(search, step.predicate, name, names, s, window)
        n_in = s.n[:, window.start : window.stop].sum(axis=1)
        total = float(n_in.sum())
        share = float(n_in[found == values.UNAFFECTED].sum()) / total if total else 0.0
        if share < values.UNAFFECTED_SHARE or not (found == values.AFFECTED).any():
            continue
        cond = values.keep(search, name, names, found, s, window)
        if cond is None or values.leaves_out_a_hit(search, name, names, s, cond, window):
            continue
        ((cond, w, llr),) = values.evaluate(
            search, [(cond, search.space.rows(name, names, cond))], s
        )
        trial = {**step.predicate, name: cond}
        value = search.score(trial, llr)
        if best is None or value > best[0]:
            best = (value, trial, w)
    return None if best is None else (best[1], best[2])
