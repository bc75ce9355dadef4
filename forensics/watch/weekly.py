"""The weekly cycle of the watch's baselines: a day-of-week factor, measured across weeks.

The daily model (``model``) is fitted on the last ``fit_days`` in day blocks,
in which each weekday appears once: a day-of-week factor fitted there would be
that one day's rate, and a one-day incident would become next week's
expectation. So the weekly cycle is measured apart, on the ``weekly_weeks``
before the fit, with weeks as the blocks, and only once those weeks hold at
least ``weekly_min_days`` days of every weekday, each with requests in at
least ``DAY_MIN_HOURS`` of its hours (``eligible``):

- **Residuals** (``residuals``). Per weekday and week, the signal's observed
  count and its expectation under the daily model.
- **Choice** (``p_value``). The weekday's effect on observed / expected must be
  significant (p < ``MODEL_P``) against its own wobble from week to week: a
  quasi-Poisson F test whose dispersion is the weekday x week interaction per
  degree of freedom (at least 1). A bug on one Monday shows in one week only:
  it is mostly interaction, and inflates the dispersion as much as the effect,
  so it does not make a weekly cycle.
- **Fit** (``factors``). Each weekday's factor is its observed / expected pooled
  over the weeks left after setting aside the week where it is highest and the
  one where it is lowest (``WEEK_TRIM``): with three weeks, the middle one, so
  a bad day, even a bad weekday in a model with a true weekly cycle, never
  enters. The factors are scaled to an expectation-weighted mean of 1.

``model`` then fits the daily model again with the weekday factors as a known
offset (``separation.baseline.main_effects``), so that its factors and base
are not pulled by the weekly swing (its day blocks are trimmed for outliers
of the days, not for the weekend), and stores both: the day of week becomes
one more dimension of the stored model (``store.DAY_OF_WEEK``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from forensics.db import Database
from forensics.separation.baseline import MainEffects, trimmed_ratio
from forensics.separation.statistic import xlogx_ratio
from forensics.watch.store import HOUR_US, hour_start

__all__ = ["DAY_MIN_HOURS", "WEEK_TRIM", "eligible", "factors", "offset", "p_value", "residuals"]

DAY_US = 24 * HOUR_US
"""Microseconds in a day."""

DAY_MIN_HOURS = 12
"""A day counts towards ``weekly_min_days`` when this many of its hours hold requests
(the first, partial day of a stream does not)."""

WEEK_TRIM = 1
"""Weeks set aside at each end when a weekday's factor is estimated."""


def weekday(day: np.ndarray | int) -> np.ndarray | int:
    """ISO day of the week (1 Monday .. 7 Sunday) of epoch days (day 0 was a Thursday).

    Examples
    --------
    >>> weekday(0), weekday(4)
    (4, 1)
    """
    return (day + 3) % 7 + 1


def eligible(db: Database, *, last_day: int, weeks: int, min_days: int) -> bool:
    """Whether the ``weeks`` before epoch day ``last_day`` hold ``min_days`` days of each weekday.

    A day counts when ``DAY_MIN_HOURS`` of its hours hold requests. One
    time-pruned statement over those weeks' timestamps.
    """
    if weeks <= 0 or min_days > weeks:
        return False
    rows = db.execute(
        f"SELECT day, count(DISTINCT hour) FROM (SELECT epoch_us(ts) // {DAY_US} AS day, "
        f"epoch_us(ts) // {HOUR_US} AS hour FROM requests WHERE ts >= $lo AND ts < $hi) "
        "GROUP BY day",
        {"lo": hour_start((last_day - 7 * weeks) * 24), "hi": hour_start(last_day * 24)},
    )
    days = Counter(int(weekday(int(day))) for day, hours in rows if hours >= DAY_MIN_HOURS)
    return all(days[d] >= min_days for d in range(1, 8))


def residuals(
    cells: pl.DataFrame,
    fitted: MainEffects,
    *,
    last_day: int,
    weeks: int,
    pinned: Mapping[str, set[str]],
) -> tuple[np.ndarray, np.ndarray]:
    """Observed and expected (under ``fitted``) counts per weekday (rows) and week (columns).

    ``cells`` holds ``block`` (epoch day), the model's dimensions, ``n``, ``k``;
    week 0 is the last 7 days before ``last_day``. Rows of ``pinned`` values
    (values the daily fit left out as present only part of the time) are left
    out here too.
    """
    keep = np.ones(cells.height, dtype=bool)
    for d, values in pinned.items():
        if values and d in cells.columns:
            keep &= ~cells[d].cast(pl.Utf8).is_in(sorted(values)).to_numpy()
    part = cells.filter(pl.Series(keep))
    day = part["block"].to_numpy().astype(np.int64)
    week = (last_day - 1 - day) // 7
    inside = (week >= 0) & (week < weeks)
    row = np.asarray(weekday(day), dtype=np.int64) - 1
    o = np.zeros((7, weeks))
    e = np.zeros((7, weeks))
    n = part["n"].to_numpy().astype(float)
    np.add.at(o, (row[inside], week[inside]), part["k"].to_numpy().astype(float)[inside])
    np.add.at(e, (row[inside], week[inside]), (n * fitted.probabilities(part))[inside])
    return o, e


def p_value(o: np.ndarray, e: np.ndarray) -> float:
    """Significance of the weekday's effect on observed / expected, against the weeks' wobble.

    Quasi-Poisson: the G statistic of the weekday effect per degree of freedom,
    over the dispersion (the G statistic of the weekday x week interaction per
    degree of freedom, at least 1), against F. 1.0 when it cannot be judged
    (fewer than two weekdays or weeks with expectations).
    """
    rows = np.flatnonzero(e.sum(axis=1) > 0)
    cols = np.flatnonzero(e.sum(axis=0) > 0)
    o, e = o[np.ix_(rows, cols)], e[np.ix_(rows, cols)]
    cells = int((e > 0).sum())
    main_df = len(rows) - 1
    interaction_df = cells - len(rows) - len(cols) + 1
    if main_df < 1 or interaction_df < 1 or o.sum() == 0:
        return 1.0
    by_day_o, by_day_e = o.sum(axis=1), e.sum(axis=1)
    main = 2 * float(xlogx_ratio(by_day_o, by_day_e * o.sum() / e.sum()).sum())
    mu = e * o.sum() / e.sum()
    for _ in range(100):
        for axis in (1, 0):
            observed, expected = o.sum(axis=axis), mu.sum(axis=axis)
            step = np.where(expected > 0, observed / np.where(expected > 0, expected, 1), 1.0)
            mu = mu * (step[:, None] if axis == 1 else step[None, :])
    interaction = 2 * float((xlogx_ratio(o, mu) - (o - mu)).sum())
    dispersion = max(1.0, interaction / interaction_df)
    return float(scipy_stats.f.sf(main / main_df / dispersion, main_df, interaction_df))


def factors(o: np.ndarray, e: np.ndarray) -> dict[str, float]:
    """Each weekday's factor (``"1"`` Monday .. ``"7"``), robust across weeks, mean 1.

    Observed / expected pooled over the weeks left after setting aside the
    ``WEEK_TRIM`` highest and lowest (``separation.baseline.trimmed_ratio``).
    """
    ratio = trimmed_ratio(o, e, trim=WEEK_TRIM)
    weight = e.sum(axis=1)
    ratio = ratio / ((ratio * weight).sum() / weight.sum()) if weight.sum() > 0 else ratio
    return {str(d + 1): float(ratio[d]) for d in range(7)}


def offset(cells: pl.DataFrame, week: Mapping[str, float]) -> np.ndarray:
    """The weekday factor of each row of ``cells`` (``block``: epoch days)."""
    day = cells["block"].to_numpy().astype(np.int64)
    lookup = np.array([week[str(d)] for d in range(1, 8)])
    return lookup[np.asarray(weekday(day), dtype=np.int64) - 1]
