"""The detection threshold for a target false-alarm rate, and a firing's calibrated p-value.

Measured offline (``bench/calibrate_watch.py``) by replaying the tuning
library's bug-free scenarios hour by hour through the detector: every cycle's
largest statistic, and for each threshold of a grid the number of false-alarm
episodes (firings, whatever the slice or signal, that follow each other by
less than a day count once) per 30 simulated days with its 95% upper bound.
``threshold(rate)`` is the smallest threshold of the grid whose upper bound is
at most ``STRICTNESS`` times the rate asked for: stricter than the target, so
that the bound measured on other bug-free data holds it too. Beyond the grid
the rate is extrapolated along the exponential tail of the cycles' largest
statistics.

The table (``null_table.json``) is written by ``bench/calibrate_watch.py --write``;
the field family is never part of it.
"""

from __future__ import annotations

import json
import logging
import math
from functools import cache
from pathlib import Path
from typing import Any

from forensics.errors import ConfigError

__all__ = ["STRICTNESS", "TABLE", "cycle_p_value", "threshold"]

logger = logging.getLogger("forensics")

TABLE = Path(__file__).with_name("null_table.json")
"""The shipped table."""

STRICTNESS = 0.5
"""The threshold holds the calibration set's 95% upper bound to this share of the target."""


@cache
def _table(path: Path = TABLE) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: the watch's calibration table is missing (a broken installation?); "
            "make it with `python bench/calibrate_watch.py --write`, or give the threshold "
            "yourself (forensics watch --threshold X)"
        ) from None
    return data


def threshold(per_30_days: float, *, table: dict[str, Any] | None = None) -> float:
    """The smallest threshold whose false alarms per 30 days stay within the target.

    Examples
    --------
    >>> threshold(1.0) <= threshold(0.1)
    True
    """
    data = table or _table()
    if per_30_days <= 0:
        raise ValueError("the false-alarm target must be positive")
    goal = STRICTNESS * per_30_days
    grid = sorted(data["thresholds"], key=lambda r: r["h"])
    for row in grid:
        if row["upper95"] <= goal:
            return float(row["h"])
    # Beyond the grid: the upper bound shrinks as the cycles' tail does.
    last = grid[-1]
    rate = float(data["tail"]["rate"])
    extra = math.log(last["upper95"] / goal) / rate
    logger.info("watch threshold extrapolated %.1f beyond the calibration grid", extra)
    return float(last["h"]) + extra


def cycle_p_value(statistic: float, *, table: dict[str, Any] | None = None) -> float:
    """The share of bug-free cycles whose largest statistic is at least ``statistic``.

    Read from the cycles' tail (``tail``: the statistics of the top share of
    cycles), extrapolated exponentially beyond the largest seen.
    """
    data = table or _table()
    tail = data["tail"]
    cycles = int(data["cycles"])
    values = sorted(tail["values"])
    above = sum(v >= statistic for v in values)
    if above >= 5:
        return above / cycles
    top = values[-5] if len(values) >= 5 else float(tail["h0"])
    return min(1.0, 5 / cycles * math.exp(-float(tail["rate"]) * (statistic - top)))
