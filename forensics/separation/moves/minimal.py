"""Minimal: drop the conditions whose removal does not lower the net statistic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.separation import values
from forensics.separation.predicate import Predicate
from forensics.separation.statistic import Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["minimal"]


def minimal(
    search: Search, signal: str, predicate: Predicate, window: Window
) -> tuple[Predicate, Window]:
    """Drop, one at a time, the condition whose removal scores best, while none loses.

    A condition that holds something apart (``values.must_keep``) stays.
    """
    while len(predicate) > 1:
        total, _ = search.series(signal, predicate, [])
        current = search.score(predicate, float(search.scanner.at(total, window)[0]))
        choices = []
        for name in predicate:
            others = {k: v for k, v in predicate.items() if k != name}
            sub, sub_by = search.series(signal, others, [name])
            names, s = sub_by[name]
            if values.must_keep(search, others, name, names, s, window):
                continue
            start, stop, llr = search.scanner.best(sub)
            w = Window(int(start[0]), int(stop[0]))
            choices.append((search.score(others, float(llr[0])), others, w))
        if not choices:
            break
        value, others, w = max(choices, key=lambda o: o[0])
        if value < current:
            break
        predicate, window = others, w
    return predicate, window
