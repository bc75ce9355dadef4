"""Intervals the benchmarks print: a mean over seeds with its t interval, a share's upper bound.

>>> t_interval([1.0, 1.0])
'1.000 [1.000, 1.000]'
>>> round(clopper_pearson_upper(0, 100), 4)
0.0295
"""

from __future__ import annotations

import math
import statistics


def t_interval(values: list[float]) -> str:
    """Mean with its 95% t interval over seeds, clipped to [0, 1]."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:.3f} [{max(mean - half, 0):.3f}, {min(mean + half, 1):.3f}]"


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided upper bound of a binomial share: k of n (Clopper-Pearson)."""
    from scipy import stats

    return 1.0 if k >= n else float(stats.beta.ppf(level, k + 1, n - k))
