"""The investigator's questions, answered with intervals.

Rates, timelines, incident-vs-baseline comparison, user exposure and change
points. Each function composes a named query (``queries``) with the statistics
(``stats``) and returns a Polars DataFrame or a small frozen dataclass. Every
rate carries a Wilson 95% interval; every difference a Newcombe interval; every
ranking over many slices a Benjamini-Hochberg-adjusted p-value.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl

from forensics import stats
from forensics.db import Database
from forensics.errors import QueryError
from forensics.grain import GRAIN_NAMES
from forensics.queries import (
    Grain,
    Where,
    as_utc,
    bucket_label,
    check_signal,
    checked_grain,
    counts_by,
    counts_per_dimension,
    data_grain,
    dimensions,
    event_rows,
    groupable_columns,
    time_range,
    user_sequences,
)

__all__ = [
    "ALPHA",
    "HEAVY_USER_QUANTILE",
    "Exposure",
    "Timeline",
    "change_points",
    "compare",
    "exposure",
    "rates",
    "timeline",
]

ALPHA = 0.05
"""Significance level and 1 - confidence of every interval (95%)."""

HEAVY_USER_QUANTILE = 0.9
"""Users at or above this quantile of request count are 'heavy users'."""

SEGMENTATIONS_KEPT = 64
"""Change-point segmentations remembered (by the series' content) for repeated questions."""

_STEP = GRAIN_NAMES
_PERIOD = {"minute": 1440, "5min": 288, "15min": 96, "hour": 24, "day": 7}
"""Seasonal cycle per grain: the buckets of a day (hours, minutes...), the days of a week."""

WhereLike = Mapping[str, Any] | Where | None


def _grain(db: Database, grain: str | None) -> Grain:
    """A grain asked by name or spelling (``"5m"``), checked; None: the database's."""
    if grain is None:
        return data_grain(db)
    if grain in ("hour", "day"):
        return "hour" if grain == "hour" else "day"  # never finer than any data's grid
    return checked_grain(db, grain)


def _with_rates(frame: pl.DataFrame) -> pl.DataFrame:
    return stats.rate_table(frame, k="k", n="n", alpha=ALPHA)


def rates(
    db: Database,
    *,
    by: str | Sequence[str] = (),
    signal: str = "degraded",
    grain: Grain | None = None,
    where: WhereLike = None,
) -> pl.DataFrame:
    """Rate of a signal per group, with a Wilson 95% interval.

    Parameters
    ----------
    by
        Dimensions to group by (numeric ones are bucketed; the value is the
        bucket's lower edge). An outcome (``wb.roles()``, e.g. ``latency_ms``)
        may be grouped by too, by hand: it is read from the raw rows, bucketed
        as a numeric dimension would be; the separation never slices by one.
    signal
        A signal name (``forensics.open(db).signals()`` lists them).
    grain
        ``"hour"``, ``"day"``, a finer one (``"minute"``, ``"5min"``, ``"15min"``; see
        ``forensics.grain``), or None for no time grouping.
    where
        Filter, e.g. ``{"platform": ["tpu"], "ts": ("2024-03-10", "2024-03-14")}``.

    Returns
    -------
    pl.DataFrame
        ``[ts,] *by, n, k, rate, ci_low, ci_high``: ``n`` requests where the
        signal is defined, ``k`` where it is true.
    """
    by = [by] if isinstance(by, str) else list(by)
    frame = counts_by(db, by=by, signal=signal, grain=grain, where=Where.parse(where))
    return _with_rates(frame)


def _span(db: Database, where: Where) -> tuple[datetime | None, datetime | None]:
    """The filter's time range, the data's where it leaves an end open."""
    if where.start is not None and where.end is not None:
        return where.start, where.end
    first, last = time_range(db)
    return where.start or first, where.end or last


def _fill_time(
    frame: pl.DataFrame, by: Sequence[str], grain: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Add n = k = 0 rows for empty buckets so that series are continuous."""
    if frame.height == 0:
        return frame
    step = _STEP[grain]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + ((start - epoch) // step) * step  # the bucket holding start
    buckets = []
    t = first
    while t < end:
        buckets.append(t)
        t += step
    grid = pl.DataFrame({"ts": pl.Series(buckets, dtype=frame.schema["ts"])})
    if by:
        groups = frame.select(by).unique()
        grid = grid.join(groups, how="cross")
    filled = grid.join(frame, on=["ts", *by], how="left").with_columns(
        pl.col("n").fill_null(0), pl.col("k").fill_null(0)
    )
    return filled.sort(["ts", *by])


@dataclass(frozen=True)
class Timeline:
    """A rate series per group with intervals, and what changed along the way."""

    rates: pl.DataFrame
    """``ts, *by, n, k, rate, ci_low, ci_high`` with every time bucket present."""
    events: pl.DataFrame
    """Change events in the range: ``ts, kind, description, scope``."""
    change_points: pl.DataFrame
    """Change points of the overall (ungrouped) series; see ``change_points``."""
    signal: str
    """The signal plotted."""
    grain: str
    """The bucket: hour, day, or a finer grain (``forensics.grain``)."""
    by: tuple[str, ...]
    """Grouping dimensions."""


def timeline(
    db: Database,
    signal: str = "degraded",
    *,
    by: str | Sequence[str] = (),
    grain: Grain | None = "day",
    where: WhereLike = None,
) -> Timeline:
    """The rate series of a signal per group, with change events and change points.

    The change points are those of the overall series (``change_points``),
    whose counts are the sums of the groups' in each bucket. ``grain`` None
    is the database's own (``queries.data_grain``: the minute for minute-dense data).
    """
    by = [by] if isinstance(by, str) else list(by)
    grain = _grain(db, grain)
    parsed = Where.parse(where)
    frame = counts_by(db, by=by, signal=signal, grain=grain, where=parsed)
    overall = frame.group_by("ts").agg(pl.col("n").sum(), pl.col("k").sum()) if by else frame
    start, end = _span(db, parsed)
    if start is not None and end is not None:
        frame = _fill_time(frame, by, grain, start, end)
    return Timeline(
        rates=_with_rates(frame),
        events=event_rows(db, where=Where(start=start, end=end)),
        change_points=_change_points_of(overall, grain=grain, start=start, end=end),
        signal=signal,
        grain=grain,
        by=tuple(by),
    )


def _window(window: Sequence[Any] | None, what: str) -> tuple[datetime | None, datetime | None]:
    if window is None:
        return None, None
    if len(window) != 2:
        raise QueryError(f"{what} must be (start, end); use None for an open end")
    return as_utc(window[0], what), as_utc(window[1], what)


def compare(
    db: Database,
    signal: str = "degraded",
    *,
    incident: Sequence[Any],
    baseline: Sequence[Any] | None = None,
    dims: Sequence[str] | None = None,
    where: WhereLike = None,
    alpha: float = ALPHA,
) -> pl.DataFrame:
    """What is different about the bad requests: every dimension value, incident vs baseline.

    Parameters
    ----------
    incident, baseline
        ``(start, end)`` windows (end exclusive; None for an open end). The
        baseline defaults to everything before the incident.
    dims
        Dimensions to compare (default: all of them); an outcome named here is
        compared too, read from the raw rows (see ``queries.describe_column``).
    where
        A filter applied to both windows.

    Returns
    -------
    pl.DataFrame
        One row per (dimension, value), ranked so that the values that explain
        the incident come first: significant rises (Benjamini-Hochberg) first,
        then by ``explains``, then by ``surprise``. Columns: ``dimension,
        value`` (numeric dimensions as bucket labels), ``n_incident,
        k_incident, rate_incident, ci_low, ci_high`` (Wilson), ``n_baseline,
        k_baseline`` (the value's own baseline counts), ``rate_baseline`` (the
        rate it is held to: its own in the baseline, or, for a value with no
        baseline traffic, the rest of its dimension's, i.e. every request in
        scope in the baseline window), ``rate_out`` (incident rate of the other
        values), ``lift`` (rate_incident / rate_out), ``share_of_bad_incident,
        share_of_bad_baseline`` (the value's share of the signal's true
        requests in each window), ``diff, diff_low, diff_high`` (rate
        incident - rate_baseline, Newcombe), ``excess`` (k_incident -
        n_incident x rate_baseline), ``explains`` (excess / the whole
        incident's excess; Adtributor's explanatory power), ``surprise``
        (Jensen-Shannon term between the two shares), ``p_value`` (one-sided
        score test against the counts behind rate_baseline, rate up),
        ``p_adjusted``. With no baseline traffic in scope at all, nothing can
        be tested: rate_baseline, diff and explains are null and p is 1.

    Examples
    --------
    ``compare(db, "script_mix", incident=("2024-03-10", "2024-03-14"))``
    """
    check_signal(db, signal)
    scope = Where.parse(where)
    inc_start, inc_end = _window(incident, "incident")
    if baseline is None:
        if inc_start is None:
            raise QueryError(
                "incident has no start, so there is no default baseline; pass baseline="
            )
        base_start: datetime | None = None
        base_end: datetime | None = inc_start
    else:
        base_start, base_end = _window(baseline, "baseline")
    known = {d.name: d for d in dimensions(db)} if dims is None else groupable_columns(db, dims)
    chosen = list(known)
    columns = [
        "dimension", "value", "n_incident", "k_incident", "rate_incident", "ci_low", "ci_high",
        "n_baseline", "k_baseline", "rate_baseline", "rate_out", "lift", "share_of_bad_incident",
        "share_of_bad_baseline", "diff", "diff_low", "diff_high", "excess", "explains",
        "surprise", "p_value", "p_adjusted",
    ]  # fmt: skip
    if not chosen:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.Float64))
    counts = counts_per_dimension(
        db,
        dims=chosen,
        signal=signal,
        windows={"incident": (inc_start, inc_end), "baseline": (base_start, base_end)},
        where=scope,
    )
    labels = []
    for name, *row in counts.select("dimension", *chosen).iter_rows():
        d = known[name]
        v = row[chosen.index(name)]
        if d.kind == "numeric":
            labels.append(bucket_label(d.edges, v))
        else:
            labels.append("(missing)" if v is None else str(v))
    frame = counts.select(
        "dimension",
        pl.Series("value", labels, dtype=pl.Utf8),
        "n_incident",
        "k_incident",
        "n_baseline",
        "k_baseline",
        *(
            pl.col(column).sum().over("dimension").alias(total)
            for column, total in (
                ("n_incident", "_n1"),
                ("k_incident", "_k1"),
                ("n_baseline", "_n0"),
                ("k_baseline", "_k0"),
            )
        ),
    )
    k1, n1, k0, n0, big_n1, big_k1, big_n0, big_k0 = (
        frame[c].to_numpy().astype(float)
        for c in (
            "k_incident",
            "n_incident",
            "k_baseline",
            "n_baseline",
            "_n1",
            "_k1",
            "_n0",
            "_k0",
        )
    )
    # A value with no baseline traffic of its own (a new pool, a new build) is held to
    # the rest of its dimension in the baseline, i.e. every request in scope then:
    # otherwise it could not be tested and would rank last, and it is often the cause.
    ref_k0 = np.where(n0 > 0, k0, big_k0)
    ref_n0 = np.where(n0 > 0, n0, big_n0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate1 = np.where(n1 > 0, k1 / n1, np.nan)
        rate0 = np.where(ref_n0 > 0, ref_k0 / ref_n0, np.nan)
        rate_out = np.where(big_n1 - n1 > 0, (big_k1 - k1) / (big_n1 - n1), np.nan)
        lift = np.where(rate_out > 0, rate1 / rate_out, np.nan)
        share1 = np.where(big_k1 > 0, k1 / big_k1, np.nan)
        share0 = np.where(big_k0 > 0, k0 / big_k0, np.nan)
        excess = k1 - n1 * rate0
        whole_excess = big_k1 - big_n1 * np.where(big_n0 > 0, big_k0 / big_n0, np.nan)
        explains = np.where(whole_excess > 0, excess / whole_excess, np.nan)
    low, high = stats.wilson_interval(k1, n1, alpha=alpha)
    d_low, d_high = stats.diff_interval(k1, n1, ref_k0, ref_n0, alpha=alpha)
    p = stats.two_proportion_pvalue(k1, n1, ref_k0, ref_n0, alternative="larger")
    result = frame.select(
        "dimension", "value", "n_incident", "k_incident", "n_baseline", "k_baseline"
    )
    values = {
        "rate_incident": rate1, "ci_low": low, "ci_high": high, "rate_baseline": rate0,
        "rate_out": rate_out, "lift": lift, "share_of_bad_incident": share1,
        "share_of_bad_baseline": share0, "diff": rate1 - rate0, "diff_low": d_low,
        "diff_high": d_high, "excess": excess, "explains": explains,
        "surprise": _surprise(share0, share1), "p_value": p, "p_adjusted": stats.fdr_bh(p),
    }  # fmt: skip
    result = result.with_columns(
        pl.Series(name, v, dtype=pl.Float64).fill_nan(None) for name, v in values.items()
    ).select(columns)
    rising = (pl.col("p_adjusted") < alpha) & (pl.col("diff") > 0)
    return result.sort(
        [rising.fill_null(False), pl.col("explains"), pl.col("surprise")],
        descending=[True, True, True],
        nulls_last=True,
        maintain_order=True,
    )


def _surprise(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence term of one value's share before and after (Adtributor).

    Examples
    --------
    >>> [round(float(x), 4) for x in _surprise(np.array([0.4, 0.5]), np.array([1.0, 0.5]))]
    [0.0664, 0.0]
    """
    p = np.nan_to_num(before)
    q = np.nan_to_num(after)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return np.asarray(0.5 * (left + right))


@dataclass(frozen=True)
class Exposure:
    """Who is hit: the user-level view of a signal, for sticky problems."""

    signal: str
    """The signal examined."""
    users: int
    """Users with at least one request where the signal is defined."""
    users_affected: int
    """Users with at least one request where it is true."""
    share_affected: tuple[float, float, float]
    """users_affected / users with a Wilson 95% interval (estimate, low, high)."""
    heavy_users: int
    """Users at or above the HEAVY_USER_QUANTILE of request count."""
    heavy_share_affected: tuple[float, float, float]
    """Share of heavy users affected, with interval."""
    per_user: pl.DataFrame
    """Distribution of true requests per affected user: ``k_bucket, users``."""
    repeat_rate: tuple[float, float, float]
    """P(true | the user's previous request was true), with interval."""
    fresh_rate: tuple[float, float, float]
    """P(true | the user's previous request was not true), with interval."""
    base_rate: tuple[float, float, float]
    """P(true) over all requests in scope, with interval."""

    @property
    def repeat_ratio(self) -> float:
        """repeat_rate / base_rate: 1 for independent requests, far above 1 when sticky."""
        return self.repeat_rate[0] / self.base_rate[0] if self.base_rate[0] else float("nan")

    def summary(self) -> pl.DataFrame:
        """The headline numbers as a table: ``measure, estimate, ci_low, ci_high``."""
        rows = [
            ("users affected (share)", *self.share_affected),
            ("heavy users affected (share)", *self.heavy_share_affected),
            ("P(true | previous true)", *self.repeat_rate),
            ("P(true | previous not true)", *self.fresh_rate),
            ("P(true)", *self.base_rate),
        ]
        return pl.DataFrame(rows, schema=["measure", "estimate", "ci_low", "ci_high"], orient="row")

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m)}</td><td>{e:.3f}</td><td>[{lo:.3f}, {hi:.3f}]</td></tr>"
            for m, e, lo, hi in self.summary().iter_rows()
        )
        return (
            f"<div><b>exposure to {html.escape(self.signal)}</b>: {self.users_affected:,} of "
            f"{self.users:,} users<table>{rows}</table></div>"
        )


def _interval(k: float, n: float) -> tuple[float, float, float]:
    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    low, high = stats.wilson_interval(np.array([k]), np.array([n]), alpha=ALPHA)
    return float(k / n), float(low[0]), float(high[0])


_K_BUCKETS = ((1, 1, "1"), (2, 2, "2"), (3, 5, "3-5"), (6, 10, "6-10"), (11, None, "11+"))


def exposure(db: Database, signal: str = "degraded", *, where: WhereLike = None) -> Exposure:
    """The user-level view of a signal: how many users, how concentrated, how sticky."""
    frame = user_sequences(db, signal=signal, where=Where.parse(where))
    users = frame.height
    affected = frame.filter(pl.col("k") > 0)
    if users:
        threshold = float(frame["n"].quantile(HEAVY_USER_QUANTILE, "lower") or 0)
        heavy = frame.filter(pl.col("n") >= threshold)
    else:
        heavy = frame
    buckets = []
    for lo, hi, label in _K_BUCKETS:
        mask = pl.col("k") >= lo if hi is None else pl.col("k").is_between(lo, hi)
        buckets.append((label, affected.filter(mask).height))
    totals = (
        frame.select(pl.col("^.*$").exclude("user_id").sum()).row(0, named=True) if users else {}
    )
    n = float(totals.get("n", 0) or 0)
    k = float(totals.get("k", 0) or 0)
    after_true = float(totals.get("after_true", 0) or 0)
    pairs = float(totals.get("pairs", 0) or 0)
    return Exposure(
        signal=signal,
        users=users,
        users_affected=affected.height,
        share_affected=_interval(affected.height, users),
        heavy_users=heavy.height,
        heavy_share_affected=_interval(heavy.filter(pl.col("k") > 0).height, heavy.height),
        per_user=pl.DataFrame(buckets, schema=["k_bucket", "users"], orient="row"),
        repeat_rate=_interval(float(totals.get("true_after_true", 0) or 0), after_true),
        fresh_rate=_interval(float(totals.get("true_after_false", 0) or 0), pairs - after_true),
        base_rate=_interval(k, n),
    )


def change_points(
    db: Database,
    signal: str = "degraded",
    *,
    where: WhereLike = None,
    grain: Grain | None = None,
) -> pl.DataFrame:
    """Times where the rate of a signal changes, from a binomial segmentation.

    At ``grain``, default the database's own (``queries.data_grain``: the hour, or
    finer for minute-dense data).

    Returns
    -------
    pl.DataFrame
        One row per change: ``ts, direction`` (up/down), ``rate_before``,
        ``rate_after``, ``ci_low``, ``ci_high`` (a 95% range for the time of
        the change), ``p_value``. Empty when the rate never changes.
    """
    grain = _grain(db, grain)
    parsed = Where.parse(where)
    frame = counts_by(db, by=[], signal=signal, grain=grain, where=parsed)
    start, end = _span(db, parsed)
    return _change_points_of(frame, grain=grain, start=start, end=end)


_NO_CHANGE_POINTS: dict[str, Any] = {
    "ts": pl.Datetime("us", "UTC"),
    "direction": pl.Utf8,
    "rate_before": pl.Float64,
    "rate_after": pl.Float64,
    "ci_low": pl.Datetime("us", "UTC"),
    "ci_high": pl.Datetime("us", "UTC"),
    "p_value": pl.Float64,
}


def _change_points_of(
    frame: pl.DataFrame, *, grain: str, start: datetime | None, end: datetime | None
) -> pl.DataFrame:
    """Change points of a counts series (``ts, n, k``, buckets with requests) over [start, end)."""
    empty = pl.DataFrame(schema=_NO_CHANGE_POINTS)
    if frame.height < 4:
        return empty
    if start is not None and end is not None:
        frame = _fill_time(frame, [], grain, start, end)
    else:
        frame = frame.sort("ts")
    found = _segmented(
        frame["k"].cast(pl.Int64).to_numpy().tobytes(),
        frame["n"].cast(pl.Int64).to_numpy().tobytes(),
        frame["ts"].dt.epoch("us").to_numpy().tobytes(),
        _PERIOD[grain],
    )
    if not found:
        return empty
    return pl.DataFrame(
        {
            "ts": [c.time for c in found],
            "direction": [c.direction for c in found],
            "rate_before": [c.rate_before for c in found],
            "rate_after": [c.rate_after for c in found],
            "ci_low": [c.ci_low for c in found],
            "ci_high": [c.ci_high for c in found],
            "p_value": [c.p_value for c in found],
        },
        schema=_NO_CHANGE_POINTS,
    )


@lru_cache(maxsize=SEGMENTATIONS_KEPT)
def _segmented(k: bytes, n: bytes, times: bytes, period: int) -> tuple[stats.ChangePoint, ...]:
    """``stats.change_points`` of one series, remembered by its content.

    The dashboard asks for the same series again when only the grouping or the
    window changes, or when the investigator goes back to a view; the
    segmentation (PELT, tens of ms at hourly grain) is a pure function of the
    counts, so the answer is kept rather than recomputed. The series is passed
    as the bytes of its int64 arrays so that it can be a cache key.
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    times_us = np.frombuffer(times, dtype=np.int64)
    return tuple(
        stats.change_points(
            np.frombuffer(k, dtype=np.int64),
            np.frombuffer(n, dtype=np.int64),
            times=[epoch + timedelta(microseconds=int(t)) for t in times_us],
            period=period,
            alpha=ALPHA,
        )
    )
