"""Split: set apart the values of a dimension that peak in another window."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from forensics.separation import values
from forensics.separation.moves.step import Forced, Step
from forensics.separation.predicate import Condition
from forensics.separation.statistic import Window

if TYPE_CHECKING:
    from forensics.separation.search import Search

__all__ = ["split"]


def split(search: Search, step: Step) -> Forced:
    """Set aside the values of the dimension that best separate another problem.

    Among dimensions with conflicting values (``values.conflicts``), the one
    whose split explains most: the other values on the window plus the
    set-aside ones on their own best window, net of the set-aside group's
    description cost. A dimension that only correlates with the real divide
    (tasks, when one of the models in them outlasts the rest) splits less
    cleanly than the divide itself. When the other values show no significant
    rise in the window, the ones set apart are the problem (a release bad to
    its end whose fading traffic made its client's window end early): the
    search moves to them, at their own window.
    """
    best: tuple[float, str, np.ndarray, float, Window] | None = None
    for name, (names, s) in step.by.items():
        apart_mask = values.conflicts(search, step.predicate, name, names, s, step.window)
        if not apart_mask.any():
            continue
        apart = np.flatnonzero(apart_mask)
        start, stop, own = search.scanner.best(s.total(apart))
        rest = float(search.scanner.at(s.total(np.flatnonzero(~apart_mask)), step.window)[0])
        group = {**step.predicate, name: Condition(values=frozenset(names[i] for i in apart))}
        value = rest + float(own[0]) - search.space.penalty(group)
        if best is None or value > best[0]:
            best = (value, name, apart_mask, rest, Window(int(start[0]), int(stop[0])))
    if best is None:
        return None
    _, name, apart_mask, rest, own_window = best
    names, _ = step.by[name]
    if search.significant(rest, len(names)):
        keep, window = ~apart_mask, step.window
    else:
        # The others are not hit in this window: the values set apart were the problem
        # all along (their excess made the window), so the search follows them.
        keep, window = apart_mask, own_window
    trial = {
        **step.predicate,
        name: Condition(values=frozenset(names[i] for i in np.flatnonzero(keep))),
    }
    if len(trial) > search.params.max_conditions:
        return None
    return trial, window
