"""Isolate: when a slice's rise comes from values that appeared with it, restrict to them.

A new release, model version or replica bad from its first request raises its
whole client's, model's or pool's rate. The coarse slice has a past to be
measured against, the new value has none and is held to its siblings' level by
the level prior, so the statistic prefers the coarse slice: its own past makes
the new value's excess count in full. But the coarse slice describes the
problem wrongly when every value hit is new and the values with a past are not
hit: the problem is the new values. The restriction is taken whatever the
statistic says, like ``exclude``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.separation import values
from forensics.separation.moves.step import Forced, Step
from forensics.separation.predicate import Condition, Predicate
from forensics.separation.statistic import Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["isolate"]


def isolate(search: Search, step: Step) -> Forced:
    """Restrict to the new values a dimension's rise comes from (see module)."""
    if len(step.predicate) >= search.params.max_conditions:
        return None
    best: tuple[float, Predicate, Window] | None = None
    for name, (names, s) in step.by.items():
        rows = values.isolated(search, step.predicate, name, names, s, step.window)
        if rows is None or rows.size == 0:
            continue
        cond = Condition(values=frozenset(names[i] for i in rows))
        ((cond, w, llr),) = values.evaluate(search, [(cond, [int(r) for r in rows])], s)
        trial = {**step.predicate, name: cond}
        value = search.score(trial, llr)
        if best is None or value > best[0]:
            best = (value, trial, w)
    return None if best is None else (best[1], best[2])
