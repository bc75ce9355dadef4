"""Extend: add a condition on one more dimension."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.separation import values
from forensics.separation.moves.step import Proposal, Step

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["extend"]


def extend(search: Search, step: Step) -> list[Proposal]:
    """The predicate with one more condition, for each condition worth trying.

    Never one that would leave out values hit too (``values.leaves_out_a_hit``);
    only while the predicate has room.
    """
    if len(step.predicate) >= search.params.max_conditions:
        return []
    out: list[Proposal] = []
    for name, (names, s) in step.by.items():
        out += [
            ({**step.predicate, name: c}, w, v)
            for c, w, v in values.options(search, step.predicate, name, names, s, step.window)
            if not values.leaves_out_a_hit(search, name, names, s, c, step.window)
        ]
    return out
