"""Measuring a candidate: its window to the hour, symptoms, size, events, joint effects."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from forensics import queries, stats
from forensics.db import Database
from forensics.queries import Where
from forensics.scope import scope_conflicts
from forensics.separation import workspace
from forensics.separation.calibration import calibrated_log_p
from forensics.separation.hourly import hourly
from forensics.separation.params import SeparationParams
from forensics.separation.predicate import Candidate
from forensics.separation.search import Search
from forensics.separation.statistic import Window
from forensics.signature import Signature, SymptomRate, describe_predicate

__all__ = [
    "Counts",
    "Measured",
    "at_hour",
    "at_tick",
    "evidence",
    "hour_of",
    "joint_effects",
    "measure",
    "quasi_binomial_fit",
    "search_log_p",
    "split_counts",
    "tick_of",
]

logger = logging.getLogger("forensics")

GLM_MAX_ITERATIONS = 30
"""IRLS iterations of the joint GLM: a signature that holds a slice all of whose requests
are bad drives its coefficient to infinity slowly, and its interval is wide anyway."""

GLM_MAX_LEVELS = 64
"""Most dummy columns of the baseline's dimensions in the joint GLM."""

EVENT_HORIZON_HOURS = 72
"""Change events further than this from an onset or an end are not reported with it."""


def hour_of(t: datetime) -> int:
    """Hours since the epoch (workspace time) of a UTC time."""
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(hours=1))


def at_hour(h: int) -> datetime:
    """The UTC time of an hour since the epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=h)


def tick_of(t: datetime, tick_us: int) -> int:
    """Ticks of ``tick_us`` since the epoch (workspace time) of a UTC time."""
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=tick_us))


def at_tick(x: int, tick_us: int) -> datetime:
    """The UTC time of a workspace tick."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=x * tick_us)


# -- evidence -------------------------------------------------------------------------


Counts = dict[str, tuple[int, int]]
"""Per signal, (requests where it is defined, requests where it is true)."""


@dataclass(frozen=True)
class Measured:
    """A slice's symptoms against their baselines, and its primary signal's excess."""

    symptoms: tuple[SymptomRate, ...]
    """Every signal inside vs its baseline."""
    primary: SymptomRate
    """The signal the slice was found on."""
    excess: float
    """Requests with the primary signal above what its baseline rate predicts."""
    ci: tuple[float, float]
    """Newcombe interval of the primary signal's excess rate."""

    def signature_fields(self) -> dict[str, Any]:
        """The fields of a ``Signature`` these measurements give (its symptoms and excess)."""
        return {
            "signals": tuple(s.signal for s in self.symptoms if s.elevated),
            "symptoms": self.symptoms,
            "baseline": self.primary.baseline,
            "excess_rate": self.primary.rate_inside - self.primary.rate_baseline,
            "ci": self.ci,
            "excess_requests": self.excess,
        }


def measure(
    params: SeparationParams,
    signal: str,
    predicate: dict[str, Any],
    signals: Sequence[str],
    inside: Counts,
    outside: Counts,
    parents: dict[str, Counts],
) -> Measured:
    """Each signal inside a slice against its baseline, from counts.

    ``outside`` holds the same slice outside the window, ``parents`` per
    condition the slice without it in the window. Per signal, the baseline is
    the same slice outside the window when it has ``min_outside`` requests
    where the signal is defined (a sparse signal such as feedback may not),
    else, for traffic that exists only in the window, the rest of a parent
    slice in the window: its siblings. Of the parents whose rest has
    ``min_outside`` requests where ``signal`` is defined, the one where it is
    most frequent: a slice without a past must stand out against the siblings
    of each of its conditions (a new model version serving only long analysis
    prompts against other versions serving those, not against all traffic).
    With no such parent, the widest.
    """
    if parents:

        def rest(name: str) -> tuple[int, int]:
            n, k = parents[name][signal]
            return n - inside[signal][0], k - inside[signal][1]

        usable = [name for name in parents if rest(name)[0] >= params.min_outside]
        chosen = (
            max(usable, key=lambda name: rest(name)[1] / rest(name)[0])
            if usable
            else max(parents, key=lambda name: parents[name][signal][0])
        )
        parent = {k: v for k, v in predicate.items() if k != chosen}
        wider = parents[chosen]
    else:
        parent, wider = {}, inside
    rest_label = (
        f"other requests with {describe_predicate(parent)} in the window"
        if parent
        else "all other requests in the window"
    )
    symptoms = []
    for s in signals:
        n_out, k_out = outside[s]
        if n_out >= params.min_outside:
            label, n0, k0 = "the same slice outside the window", n_out, k_out
        else:
            label, n0, k0 = rest_label, wider[s][0] - inside[s][0], wider[s][1] - inside[s][1]
        symptoms.append(_symptom(s, *inside[s], label, n0, k0, params, len(signals)))
    primary = next(x for x in symptoms if x.signal == signal)
    excess = primary.k_inside - primary.n_inside * (
        primary.rate_baseline if primary.n_baseline else 0.0
    )
    low, high = stats.diff_interval(
        [primary.k_inside], [primary.n_inside], [primary.k_baseline], [primary.n_baseline],
        alpha=params.alpha,
    )  # fmt: skip
    return Measured(tuple(symptoms), primary, float(excess), (float(low[0]), float(high[0])))


def _counts(
    search: Search,
    predicate: dict[str, Any],
    window: tuple[datetime, datetime | None],
    settle: tuple[datetime | None, datetime | None],
    signals: Sequence[str],
) -> tuple[Counts, Counts, dict[str, Counts]]:
    """Counts inside a slice, outside its window, and of each parent in the window.

    One scan of the requests (``queries.slice_counts``): the slice before,
    inside and after the window, and the slice without each of its conditions
    in the window (for traffic that exists only in the window). Outside does
    not count the hours the onset or the end may still lie in (``settle``):
    they are not clearly unaffected, and a value whose traffic begins with the
    problem has nothing else before its window.
    """
    frame = queries.slice_counts(search.counts_db, predicate, window, signals, settle=settle)
    return split_counts(frame, predicate, signals)


def split_counts(
    frame: pl.DataFrame, predicate: Mapping[str, Any], signals: Sequence[str]
) -> tuple[Counts, Counts, dict[str, Counts]]:
    """``queries.slice_counts``'s frame as counts inside, outside and of each parent inside."""
    flags = [f"c{i}" for i in range(len(predicate))]
    every = pl.all_horizontal([pl.col(f) for f in flags]) if flags else pl.lit(True)

    def count(rows: pl.Expr) -> Counts:
        part = frame.filter(rows)
        return {s: (int(part[f"n__{s}"].sum()), int(part[f"k__{s}"].sum())) for s in signals}

    parents = {
        name: count(
            pl.all_horizontal([pl.col(f) for f in flags if f != flag] or [pl.lit(True)])
            & (pl.col("period") == 1)
        )
        for name, flag in zip(predicate, flags, strict=True)
    }
    outside = every & pl.col("period").is_in([0, 2])
    return count(every & (pl.col("period") == 1)), count(outside), parents


def search_log_p(search: Search, cand: Candidate) -> float:
    """Log of a candidate's p-value, Bonferroni over everything the search could choose.

    The windows and signals scanned and the predicates of the candidate's shape
    (its description cost), on the statistic of the searched window and bucket
    grid: the hourly refinement and the numeric edges only place the edges of
    what the search found, and fitting them would add searches of their own.
    """
    return (
        float(scipy_stats.chi2.logsf(2 * cand.llr, 1))
        + math.log(search.scanner.windows * max(len(search.signals), 1))
        + search.space.penalty(cand.predicate)
    )


def evidence(
    search: Search, cand: Candidate, signals: Sequence[str], number: int
) -> Signature | None:
    """Measure a candidate; None when it is not a significant, large enough problem."""
    params = search.params
    if not cand.predicate and cand.window == Window(0, search.buckets):
        return None
    llr = cand.llr
    p_value = math.exp(calibrated_log_p(search_log_p(search, cand), search.rows))
    if llr <= 0 or p_value >= params.false_alarm:
        return None
    h_start, h_end, _, onset, end_range = hourly(search, cand.signal, cand.predicate, cand.window)
    tick = search.tick_us
    start = at_tick(h_start, tick)
    end = None if h_end is None else at_tick(h_end, tick)
    predicate = search.space.public(cand.predicate)
    settle = (at_tick(onset[0], tick), None if end_range is None else at_tick(end_range[1], tick))
    inside, outside, parents = _counts(search, predicate, (start, end), settle, signals)
    found = measure(params, cand.signal, predicate, signals, inside, outside, parents)
    primary = found.primary
    if not primary.elevated or found.excess < params.min_excess:
        return None
    requests, users = queries.requests_and_users(
        search.counts_db, Where.parse({**predicate, "ts": (start, end)})
    )
    return Signature(
        id=f"S{number}",
        predicate=predicate,
        start=start,
        end=end,
        signal=cand.signal,
        **found.signature_fields(),
        requests=requests,
        users=users,
        p_value=p_value,
        log_likelihood_ratio=llr,
        onset_range=(at_tick(onset[0], tick), at_tick(onset[1], tick)),
        end_range=(
            None
            if end_range is None
            else (at_tick(end_range[0], tick), at_tick(end_range[1], tick))
        ),
        events=_nearest_events(search.db, start, end, predicate),
        edge_ranges=search.space.edge_ranges(cand.predicate),
    )


def odds_ratio(inside: float, baseline: float) -> float:
    """The odds of ``inside`` over those of ``baseline`` (inf when either makes it so).

    The size a rise must have: for rare symptoms it is the rate ratio, and unlike
    it, it still tells a large rise on a symptom that is already frequent (60% ->
    85% is an odds ratio of 3.8 and a rate ratio of only 1.4; no rate of 60% can
    be multiplied by 1.7).

    >>> round(odds_ratio(0.85, 0.6), 2), round(odds_ratio(0.015, 0.01), 2)
    (3.78, 1.51)
    """
    if baseline <= 0 or inside >= 1:
        return math.inf
    return (inside / (1 - inside)) / (baseline / (1 - baseline))


def _symptom(
    signal: str,
    n1: int,
    k1: int,
    baseline: str,
    n0: int,
    k0: int,
    params: SeparationParams,
    tests: int,
) -> SymptomRate:
    lo1, hi1 = stats.wilson_interval([k1], [n1], alpha=params.alpha)
    lo0, hi0 = stats.wilson_interval([k0], [n0], alpha=params.alpha)
    p = float(stats.two_proportion_pvalue([k1], [n1], [k0], [n0], alternative="larger")[0])
    r1 = k1 / n1 if n1 else float("nan")
    r0 = k0 / n0 if n0 else float("nan")
    rises = n1 > 0 and n0 > 0 and r1 > 0 and odds_ratio(r1, r0) >= params.min_ratio
    return SymptomRate(
        signal=signal,
        n_inside=n1,
        k_inside=k1,
        rate_inside=r1,
        ci_inside=(float(lo1[0]), float(hi1[0])),
        n_baseline=n0,
        k_baseline=k0,
        rate_baseline=r0,
        ci_baseline=(float(lo0[0]), float(hi0[0])),
        p_value=p,
        elevated=bool(rises and p < params.alpha / max(tests, 1)),
        baseline=baseline,
    )


def _nearest_events(
    db: Database, start: datetime, end: datetime | None, predicate: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    """The change events nearest the onset and the end whose scope the slice can hold.

    Only those within ``EVENT_HORIZON_HOURS``: a deploy a week away explains nothing;
    and only those whose scope does not exclude the slice (``forensics.scope``): a
    fix scoped ``model=a`` is not the end of a problem of ``model in {b}``.
    """
    frame = queries.event_rows(db)
    if frame.height:
        scopes = frame["scope"].to_list()
        frame = frame.filter(pl.Series([not scope_conflicts(predicate, s) for s in scopes]))
    if frame.height == 0:
        return ()
    times = frame["ts"].to_list()
    out = []
    for label, t in (("onset", start), ("end", end)):
        if t is None:
            continue
        gaps = [abs((e - t).total_seconds()) for e in times]
        nearest = int(np.argmin(gaps))
        if gaps[nearest] > EVENT_HORIZON_HOURS * 3600:
            continue
        row = frame.row(nearest, named=True)
        hours_away = round((row["ts"] - t).total_seconds() / 3600, 1)
        out.append({"near": label, "hours_away": hours_away, **row})
    return tuple(out)


# -- joint effects --------------------------------------------------------------------


def quasi_binomial_fit(
    k: np.ndarray, n: np.ndarray, x: np.ndarray, *, alpha: float, saturated: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """A binomial GLM of ``k`` of ``n`` on ``x`` whose intervals allow for overdispersion.

    Requests are not independent (the search models that with its dispersion), so
    the binomial's scale of 1 makes intervals too narrow. The scale is estimated
    from the fit (quasi-binomial: Pearson's chi-square over the residual degrees
    of freedom), at least 1; a saturated fit, with no residual degrees of
    freedom, takes ``saturated`` (the search's estimate).

    Returns
    -------
    tuple[np.ndarray, np.ndarray, float]
        The coefficients, their ``1 - alpha`` intervals (one row each) and the scale.
    """
    # The GLM alone: statsmodels.api would import every model (0.27 vs 0.11 s).
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    model = GLM(np.column_stack([k, n - k]), x, family=families.Binomial())
    fit = model.fit(maxiter=GLM_MAX_ITERATIONS)
    scale = fit.pearson_chi2 / fit.df_resid if fit.df_resid > 0 else saturated
    scale = max(1.0, float(scale))
    # The same coefficients; the covariance times the scale (no second fit).
    params = np.asarray(fit.params)
    half = scipy_stats.norm.ppf(1 - alpha / 2) * np.sqrt(np.diag(fit.cov_params()) * scale)
    return params, np.column_stack([params - half, params + half]), scale


def joint_effects(search: Search, found: list[Signature]) -> list[Signature]:
    """Odds ratio of each signature from one GLM per signal (main effects + indicators).

    The GLM is quasi-binomial, see ``quasi_binomial_fit``.
    """
    if not found:
        return found
    out = list(found)
    columns = search.columns
    for signal in sorted({s.signal for s in found}):
        members = [i for i, s in enumerate(found) if s.signal == signal]
        params: dict[str, Any] = {}
        conditions = []
        for i in members:
            sig = found[i]
            sql = workspace.where_sql(Where.parse(sig.predicate), columns, params)
            sql += f" AND _tick >= {tick_of(sig.start, search.tick_us)}"
            if sig.end is not None:
                sql += f" AND _tick < {tick_of(sig.end, search.tick_us)}"
            conditions.append(sql)
        dims = _glm_dims(search, search.model_dims.get(signal, []))
        frame = workspace.flags(
            search.db, signal=signal, dims=dims, conditions=conditions, params=params
        )
        if frame.height < 2:
            continue
        flags = frame.select([pl.col(f"f{j}").cast(pl.Float64) for j in range(len(members))])
        parts = [np.ones((frame.height, 1)), flags.to_numpy()]
        if dims:
            design = frame.select(
                [pl.col(d).cast(pl.Utf8).fill_null("(missing)") for d in dims]
            ).to_dummies(drop_first=True)
            parts.append(design.to_numpy().astype(float))
        x = np.column_stack(parts)
        k = frame["k"].to_numpy().astype(float)
        n = frame["n"].to_numpy().astype(float)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                coefs, ci, _ = quasi_binomial_fit(
                    k, n, x, alpha=search.params.alpha, saturated=search.dispersion.get(signal, 1.0)
                )
            for w in caught:
                logger.info("joint GLM for %s: %s", signal, w.message)
        except (ValueError, np.linalg.LinAlgError) as exc:
            logger.info("joint GLM for %s not estimable: %s", signal, exc)
            continue
        for j, i in enumerate(members):
            coef = float(coefs[1 + j])
            lo, hi = float(ci[1 + j][0]), float(ci[1 + j][1])
            out[i] = replace(out[i], odds_ratio=_exp(coef), odds_ratio_ci=(_exp(lo), _exp(hi)))
    return out


def _glm_dims(search: Search, dims: list[str]) -> list[str]:
    """The baseline model's dimensions the joint GLM holds, strongest first.

    While their values stay within ``GLM_MAX_LEVELS``: a least squares over every
    cell per IRLS iteration grows with the square of the columns.
    """
    out, levels = [], 0
    for name in dims:
        d = search.space.dims[name]
        size = len(search.space.edges[name]) if d.kind == "numeric" else d.cardinality + 1
        if levels + size > GLM_MAX_LEVELS:
            break
        out.append(name)
        levels += size
    return out


def _exp(x: float) -> float:
    return math.exp(min(x, 700.0))
