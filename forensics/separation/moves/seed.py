"""Seeds: the best window of every single-value slice, and of all requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.separation.predicate import Candidate
from forensics.separation.statistic import Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["seeds"]


def seeds(search: Search, signal: str) -> list[Candidate]:
    """The best window of every single-value slice (and of all requests), strongest first.

    Strength is the statistic net of the slice's description cost.
    """
    total, by = search.series(signal, {}, list(search.space.dims))
    out = []
    start, stop, llr = search.scanner.best(total)
    if llr[0] > 0:
        out.append(Candidate(signal, {}, Window(int(start[0]), int(stop[0])), float(llr[0])))
    for name, (values, s) in by.items():
        starts, stops, llrs = search.scanner.best(s)
        for i, value in enumerate(values):
            if llrs[i] <= 0:
                continue
            cond = search.space.single(name, value)
            if cond is None:
                continue
            out.append(
                Candidate(
                    signal, {name: cond}, Window(int(starts[i]), int(stops[i])), float(llrs[i])
                )
            )
    out.sort(key=lambda c: -search.score(c.predicate, c.llr))
    return out
