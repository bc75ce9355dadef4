"""Each signal's baseline model for the watch: which dimensions, fitted robustly, stored.

The separation's pieces (``separation.baseline``: ``stability``, ``swings``,
``main_effects``) on the recent past: once per UTC day, for every signal, the
dimensions whose effect on its rate is significant and stable across the days
of the last ``fit_days`` (the hour of day among them: the daily cycle) enter a
multiplicative main-effects model, fitted with the days where a value stands
out most trimmed away (a bug of a day or two does not teach the baseline to
expect itself). A value present on too few days (a new release) takes its
siblings' level, so a new slice is compared with its siblings; time-derived
values never do. Once the last ``weekly_weeks`` hold ``weekly_min_days`` of
every weekday, the weekly cycle is measured across those weeks and, where it
is significant against their wobble, enters as a day-of-week factor
(``weekly``). The models are stored in ``watch_models`` and every hour's
expectation is computed with the model in force when the hour was counted
(``store.update_series``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from forensics.db import Database
from forensics.schema import quote_identifier
from forensics.separation import baseline
from forensics.separation.baseline import MODEL_MIN_PRESENCE, MODEL_P
from forensics.watch import weekly
from forensics.watch.params import WatchParams
from forensics.watch.store import (
    DAY_OF_WEEK,
    DERIVED,
    HOUR_OF_DAY,
    HOUR_US,
    Watched,
    hour_start,
    value_sql,
)

__all__ = ["fit_models", "load_models"]

MODELS = "watch_models"


def _candidates(dims: Sequence[Watched], params: WatchParams) -> list[tuple[str, str]]:
    """(name, kind) of the daily model's candidates: few values, numeric buckets, the hour."""
    out = [
        (d.name, d.kind)
        for d in dims
        if d.kind == "numeric" or 1 < d.cardinality <= params.model_max_levels
    ]
    return [*out, (HOUR_OF_DAY, "derived")]  # the day of week is measured across weeks


def _sample(db: Database, first: int, last: int, target: int) -> tuple[str, dict[str, Any]]:
    """The rows of hours [first, last] to fit on: all, or a hash-chosen share of about ``target``."""
    rows = int(
        db.scalar(
            "SELECT count(*) FROM requests WHERE ts >= $lo AND ts < $hi",
            {"lo": hour_start(first), "hi": hour_start(last + 1)},
        )
    )
    every = max(1, -(-rows // max(target, 1)))
    condition = "ts >= $lo AND ts < $hi"
    if every > 1:
        condition += " AND hash(_source_file_id, _source_row) % $every = 0"
    return condition, {"lo": hour_start(first), "hi": hour_start(last + 1), "every": every}


def fit_models(
    db: Database,
    *,
    dims: Sequence[Watched],
    signals: Sequence[str],
    until_hour: int,
    params: WatchParams,
) -> dict[str, dict[str, Any]]:
    """Fit every signal's model on the ``fit_days`` before ``until_hour``, store and return them.

    One statement counts each candidate dimension's values per day and signal
    (to choose the dimensions), then one per signal counts the cells of its
    chosen dimensions per day; both on a hash-chosen sample of about
    ``fit_rows`` requests when the days hold more. When the ``weekly_weeks``
    before ``until_hour`` hold enough days of each weekday (``weekly.eligible``),
    each signal's weekly cycle is measured on a sample of those weeks and,
    where it is significant across them, fitted robustly and made a known
    offset of the daily fit (``weekly``); with less history the models are the
    daily ones alone.
    """
    first = until_hour - params.fit_days * 24
    condition, bound = _sample(db, first, until_hour - 1, params.fit_rows)
    candidates = _candidates(dims, params)
    last_day = until_hour // 24
    weeks = params.weekly_weeks
    week_sample = None
    if weekly.eligible(db, last_day=last_day, weeks=weeks, min_days=params.weekly_min_days):
        week_sample = _sample(db, (last_day - 7 * weeks) * 24, last_day * 24 - 1, params.fit_rows)
    margins = _margins(db, candidates, signals, condition, bound)
    models = {}
    for s in signals:
        part = margins.filter(pl.col("signal") == s).drop("signal")
        chosen = _choose(part, [c for c, _ in candidates], params.model_dims)
        kinds = dict(candidates)
        days = part["block"].n_unique() if part.height else 0
        transient = {
            name: set(
                part.filter((pl.col("dimension") == name) & (pl.col("n") > 0))
                .group_by("value")
                .agg(pl.len().alias("blocks"))
                .filter(pl.col("blocks") < MODEL_MIN_PRESENCE * days)["value"]
                .to_list()
            )
            for name in chosen
            if name not in DERIVED
        }
        cells = _cells(db, s, [(c, kinds[c]) for c in chosen], condition, bound)
        if cells.height == 0:
            cells = pl.DataFrame({"block": [0], "n": [0], "k": [0]})
        fitted = baseline.main_effects(cells, chosen, fixed=transient)
        week: dict[str, float] = {}
        summary: dict[str, Any] | None = None
        if week_sample is not None:
            spread = _cells(db, s, [(c, kinds[c]) for c in chosen], *week_sample)
            o, e = weekly.residuals(
                spread, fitted, last_day=last_day, weeks=weeks, pinned=transient
            )
            p = weekly.p_value(o, e)
            summary = {"weeks": weeks, "p": p, "used": p < MODEL_P}
            if p < MODEL_P:
                week = weekly.factors(o, e)
                fitted = baseline.main_effects(
                    cells,
                    chosen[: params.model_dims - 1],
                    fixed=transient,
                    offset=weekly.offset(cells, week),
                )
        models[s] = {
            "signal": s,
            "dims": [*fitted.dims, *([DAY_OF_WEEK] if week else [])],
            "kinds": [*(kinds[c] for c in fitted.dims), *(["derived"] if week else [])],
            "base": fitted.base,
            "factors": [*(dict(f) for f in fitted.factors), *([week] if week else [])],
            "siblings": [*fitted.siblings, *([1.0] if week else [])],
            "floor": fitted.floor,
            "until_hour": until_hour,
            "fit_hours": [first, until_hour],
            "weekly": summary,
        }
    _store(db, models)
    return models


def _margins(
    db: Database,
    candidates: Sequence[tuple[str, str]],
    signals: Sequence[str],
    condition: str,
    bound: dict[str, Any],
) -> pl.DataFrame:
    """``signal, dimension, value, block, n, k``: each candidate's values per day."""
    if not candidates or not signals:
        return pl.DataFrame(
            schema={
                "signal": pl.Utf8,
                "dimension": pl.Utf8,
                "value": pl.Utf8,
                "block": pl.Int64,
                "n": pl.Float64,
                "k": pl.Float64,
            }
        )
    keys = [f"{value_sql(c, kind)} AS {quote_identifier('v_' + c)}" for c, kind in candidates]
    measures = []
    for s in signals:
        q = quote_identifier(s)
        measures += [
            f"count({q}) AS {quote_identifier('n__' + s)}",
            f"count(*) FILTER (WHERE {q}) AS {quote_identifier('k__' + s)}",
        ]
    sets = ", ".join(f"(block, {quote_identifier('v_' + c)})" for c, _ in candidates)
    cols = [quote_identifier("v_" + c) for c, _ in candidates]
    grouped = [
        f"grouping({quote_identifier('v_' + c)}) AS {quote_identifier('gv_' + c)}"
        for c, _ in candidates
    ]
    frame = db.frame(
        f"SELECT block, {', '.join([*cols, *grouped, *measures])} FROM (SELECT epoch_us(ts) // "
        f"{24 * HOUR_US} AS block, {', '.join(['*', *keys])} FROM requests WHERE {condition}) "
        f"GROUP BY GROUPING SETS ({sets})",
        bound,
    )
    parts = []
    for c, _ in candidates:
        mine = frame.filter(pl.col("gv_" + c) == 0)
        for s in signals:
            parts.append(
                mine.select(
                    pl.lit(s).alias("signal"),
                    pl.lit(c).alias("dimension"),
                    pl.col("v_" + c).fill_null(baseline.NULL_KEY).alias("value"),
                    pl.col("block").cast(pl.Int64),
                    pl.col("n__" + s).cast(pl.Float64).alias("n"),
                    pl.col("k__" + s).cast(pl.Float64).alias("k"),
                )
            )
    return pl.concat(parts)


def _cells(
    db: Database,
    signal: str,
    dims: Sequence[tuple[str, str]],
    condition: str,
    bound: dict[str, Any],
) -> pl.DataFrame:
    """``block, *dims, n, k`` of one signal over the fit's rows (dimension values as text)."""
    q = quote_identifier(signal)
    keys = [
        f"coalesce({value_sql(c, kind)}, $_null_key) AS {quote_identifier(c)}" for c, kind in dims
    ]
    return db.frame(
        f"SELECT epoch_us(ts) // {24 * HOUR_US} AS block, {', '.join([*keys, ''])}"
        f"count({q}) AS n, count(*) FILTER (WHERE {q}) AS k FROM requests "
        f"WHERE {condition} GROUP BY ALL",
        {**bound, "_null_key": baseline.NULL_KEY},
    )


def _choose(margins: pl.DataFrame, candidates: Sequence[str], most: int) -> list[str]:
    """The dimensions whose effect is significant and persistent, strongest first.

    As the separation chooses them (``separation.model``): a significant main
    effect (p < ``MODEL_P``) that shows on most days or does not interact with
    the day (unless the days' rates swing, when a problem may dominate them).
    """
    if margins.height == 0:
        return []
    swings = baseline.swings(margins)
    strength = []
    for name in candidates:
        part = margins.filter(pl.col("dimension") == name)
        if part.height == 0:
            continue
        main, main_df, interaction, interaction_df, presence = baseline.stability(part)
        steady = interaction_df == 0 or scipy_stats.chi2.sf(interaction, interaction_df) >= MODEL_P
        stable = presence >= MODEL_MIN_PRESENCE or (not swings and steady)
        if main_df > 0 and scipy_stats.chi2.sf(main, main_df) < MODEL_P and stable:
            strength.append((main, name))
    return [name for _, name in sorted(strength, reverse=True)[:most]]


def _store(db: Database, models: dict[str, dict[str, Any]]) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {MODELS} (signal VARCHAR PRIMARY KEY, model VARCHAR)")
    for s, m in models.items():
        db.execute(
            f"INSERT OR REPLACE INTO {MODELS} VALUES ($s, $m)",
            {"s": s, "m": json.dumps(m, default=_plain)},
        )


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON: {type(x)}")


def load_models(db: Database) -> dict[str, dict[str, Any]]:
    """The stored models by signal ({} before the first fit)."""
    if MODELS not in db.tables():
        return {}
    return {s: json.loads(m) for s, m in db.execute(f"SELECT signal, model FROM {MODELS}")}


FIT_EVERY = timedelta(days=1)
"""Models are refitted when the newest data enters a new UTC day."""
