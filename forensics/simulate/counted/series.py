"""Per-minute counts of a counted case: requests and bad requests per leaf and minute.

Requests per leaf and minute are Poisson around the leaf's expected volume
(``Cube.expected``: daily cycles of the whole cube and of each value). The
bad rate follows its daily cycle and varies from minute to minute beyond the
binomial (a gamma factor per leaf and minute); the plan's causes multiply it
from the onset, a precursor before it, a blip earlier. Only leaves and
minutes with requests become rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from forensics.simulate.counted.anomalies import Plan
from forensics.simulate.counted.cube import Cube, minutes_of_day
from forensics.simulate.counted.params import CaseParams

__all__ = ["draw_counts"]


def _rates(rng: np.random.Generator, cube: Cube, plan: Plan, base: np.ndarray) -> np.ndarray:
    """Bad rate per minute (rows) and leaf (columns), noise and anomalies included."""
    rate = base.copy()
    if cube.overdispersion > 0:
        shape = 1.0 / cube.overdispersion**2
        rate *= rng.gamma(shape, 1.0 / shape, size=rate.shape)
    noisy = rate.copy()
    for cause in plan.causes:
        inside = cube.mask(cause.element)
        lift = (cause.ratio - 1.0) * cause.uneven[inside]
        rate[plan.onset : plan.end, inside] = noisy[plan.onset : plan.end, inside] * (1.0 + lift)
        if cause.precursor_minutes:
            start = max(0, plan.onset - cause.precursor_minutes)
            rate[start : plan.onset, inside] = noisy[start : plan.onset, inside] * (
                1.0 + cause.precursor_level * lift
            )
    if plan.blip is not None:
        inside = cube.mask(plan.blip.element)
        stop = plan.blip.start + plan.blip.minutes
        rate[plan.blip.start : stop, inside] *= plan.blip.ratio
    return rate


def draw_counts(
    rng: np.random.Generator, cube: Cube, plan: Plan, start: datetime, params: CaseParams
) -> pl.DataFrame:
    """The case's rows: ``minute`` (UTC), one column per attribute, ``requests``, ``bad``."""
    volume, base = cube.expected(minutes_of_day(start, plan.minutes))
    rate = np.minimum(_rates(rng, cube, plan, base), params.max_rate)
    requests = rng.poisson(volume)
    bad = rng.binomial(requests, rate)
    minute, leaf = np.nonzero(requests)
    times = pl.Series(
        "minute",
        [start + timedelta(minutes=int(m)) for m in range(plan.minutes)],
        dtype=pl.Datetime("us", "UTC"),
    )
    data = {"minute": times.gather(minute)}
    for d, name in enumerate(cube.attributes):
        values = pl.Series(name, cube.values[d], dtype=pl.String)
        data[name] = values.gather(cube.codes[leaf, d])
    data["requests"] = pl.Series("requests", requests[minute, leaf], dtype=pl.Int64)
    data["bad"] = pl.Series("bad", bad[minute, leaf], dtype=pl.Int64)
    return pl.DataFrame(data)
