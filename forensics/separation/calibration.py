"""A signature's p-value, calibrated on the search's maximum statistic over data with no bug.

``evidence.search_log_p`` bounds a candidate's p-value by Bonferroni over every
window, signal and predicate of its shape the search could have chosen: valid
after the search, whatever it tried, but conservative, since those hypotheses
overlap heavily (neighbouring windows, nested slices). How conservative was
measured offline (``bench/calibrate_null.py``): the search's first round run on
bug-free data of the tuning library at several sizes, its smallest bound per
run recorded. If the bound were exact, a share q of runs would have a smallest
bound below q; it is lower, and the gap (in decades) is the table's ``gap``,
read at the lower quantiles (the most conservative of them). The calibrated
p-value is the bound divided by ``10 ** gap``: the share of bug-free runs
whose best candidate would look at least as strong. Sizes between the table's
classes interpolate the gap in log rows; outside, the nearest class holds.
"""

from __future__ import annotations

import json
import math
from functools import cache
from itertools import pairwise
from pathlib import Path

__all__ = ["TABLE", "calibrated_log_p", "gap"]

TABLE = Path(__file__).with_name("null_table.json")
"""The shipped table (written by ``bench/calibrate_null.py --write``)."""


@cache
def _classes() -> tuple[tuple[int, float], ...]:
    data = json.loads(TABLE.read_text(encoding="utf-8"))
    return tuple(sorted((int(c["rows"]), float(c["gap"])) for c in data["classes"]))


def gap(rows: int) -> float:
    """Decades by which the Bonferroni bound overstates the null p-value at ``rows``.

    Examples
    --------
    >>> gap(10**9) == gap(max(r for r, _ in _classes()))
    True
    """
    classes = _classes()
    if rows <= classes[0][0]:
        return classes[0][1]
    for (r0, g0), (r1, g1) in pairwise(classes):
        if rows <= r1:
            w = (math.log(rows) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return g0 + w * (g1 - g0)
    return classes[-1][1]


def calibrated_log_p(bound: float, rows: int) -> float:
    """Natural log of the calibrated p-value from the log of its Bonferroni bound.

    Examples
    --------
    >>> calibrated_log_p(0.0, 200_000) <= 0.0
    True
    """
    return min(0.0, bound - gap(rows) * math.log(10))
