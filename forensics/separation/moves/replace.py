"""Replace: change one condition, swap it for one on another dimension, or drop it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.separation import values
from forensics.separation.moves.step import Proposal, Step
from forensics.separation.statistic import Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["replace"]


def replace(search: Search, step: Step) -> list[Proposal]:
    """For each condition: another on the same dimension, one on another (a swap), or none.

    A condition that holds something apart (``values.must_keep``: dropping it
    would merge another problem or let in many spared requests) may only be
    changed on its own dimension, never swapped or dropped.
    """
    out: list[Proposal] = []
    predicate, window = step.predicate, step.window
    for name in predicate:
        others = {k: v for k, v in predicate.items() if k != name}
        free = [n for n in search.space.dims if n not in others]
        base_total, base_by = search.series(step.signal, others, free)
        names, s = base_by[name]
        keep = values.must_keep(search, others, name, names, s, window)
        for other, (other_names, other_s) in base_by.items():
            if keep and other != name:
                continue  # the condition on ``name`` holds something apart: no swap
            out += [
                ({**others, other: c}, w, v)
                for c, w, v in values.options(search, others, other, other_names, other_s, window)
                if other != name or c != predicate[name]
            ]
        if others and not keep:
            start, stop, llr = search.scanner.best(base_total)
            out.append((others, Window(int(start[0]), int(stop[0])), float(llr[0])))
    return out
