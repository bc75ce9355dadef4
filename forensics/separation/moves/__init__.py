"""The moves of the local search, one module each, assembled in tuples.

A search step (``Step``) holds the current predicate and window, their series
by every dimension outside the predicate, and their net statistic. Each
*forced* move may return a new (predicate, window) that must be taken whatever
the statistic says (a rise that comes from values new in the window is theirs;
a slice a good part of which is spared must be restricted; values that peak in
another window are a separate problem); the first in
``FORCED`` that returns one wins. Otherwise every *scored* move proposes
(predicate, window, statistic) triples and the best net gain wins
(``search.Search.refine``). ``seed`` starts the search, ``minimal`` and
``edges`` finish it.
"""

from __future__ import annotations

from collections.abc import Callable

from forensics.separation.moves import exclude, extend, isolate, replace, split
from forensics.separation.moves.step import Forced, Proposal, Step

__all__ = ["FORCED", "SCORED", "Forced", "Proposal", "Step"]

FORCED: tuple[Callable[..., Forced], ...] = (isolate.isolate, exclude.exclude, split.split)
"""Moves whose result is taken whatever the statistic says, in order."""

SCORED: tuple[Callable[..., list[Proposal]], ...] = (extend.extend, replace.replace)
"""Moves proposing alternatives that compete on the net statistic."""
