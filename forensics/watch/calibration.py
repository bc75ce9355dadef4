"""The detection threshold for a target false-alarm rate, and a firing's calibrated p-value.

Measured offline (``bench/calibrate_watch.py``) by replaying the tuning
library's bug-free scenarios hour by hour through the detector: every cycle's
largest statistic, and for each threshold of a grid the number of false-alarm
episodes (firings, whatever the slice or signal, that follow each other by
less than a day count once) per 30 simulated days with its 95% upper bound.
``threshold(rate)`` is the smallest threshold of the grid whose upper bound is
at most ``STRICTNESS`` times the rate asked for: stricter than the target, so
that the bound measured on other bug-free data holds it too. When none is
(with no episode at all the bound is set by the days replayed: 3 episodes
over them), the rate is read from the exponential tail of the cycles' largest
statistics, every cycle above a threshold counted as one episode, and the
threshold is the first one at which that rate is within the goal (never below
the last grid threshold that had an episode).

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

CYCLES_PER_30_DAYS = 30 * 24
"""Cycles (newest hours) in 30 days."""
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
    # No grid threshold's bound is low enough: with no episode above some threshold the
    # bound is set by the days replayed, not by the threshold. Read the rate from the
    # exponential tail of the cycles' largest statistics instead (each cycle counted as an
    # episode: conservative), and never below the last threshold with an episode.
    tail = data["tail"]
    share = len(tail["values"]) / int(data["cycles"])
    rate = float(tail["rate"])
    per_30 = CYCLES_PER_30_DAYS * share
    beyond = float(tail["h0"]) + max(math.log(per_30 / goal), 0.0) / rate
    seen = [float(r["h"]) for r in grid if r.get("episodes", 1) > 0]
    floor = (
        min((float(r["h"]) for r in grid if float(r["h"]) > max(seen)), default=0.0)
        if seen
        else 0.0
    )
    logger.info("watch threshold %.1f read from the tail beyond the calibration grid", beyond)
    return max(beyond, floor)


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
