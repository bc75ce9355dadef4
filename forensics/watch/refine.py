"""From a firing slice to a minimal predicate: a local search on recent requests.

A firing names one value of one dimension (or a range of a number). The
problem behind it usually lives in a narrower or a different slice (a model on
one platform behind one surface). ``refine`` searches, as the separation's
local search does but on the recent requests only, over conditions to add,
replace or drop, one at a time, scoring each predicate by the separation's
statistic (``window_llr``: the window against the same rows before it, with
the baseline model's expectations, scaled by the signal's dispersion) minus a
description cost, so that a condition stays only if it earns more than the
freedom it adds:

- a text condition keeps ``m`` of a dimension's ``M`` values: cost
  ``log(dimensions) + log(C(M, m))``; the candidate sets are the values ranked
  by their rise, each prefix of that ranking;
- a numeric condition keeps a range of power-of-two buckets: cost
  ``log(dimensions) + log(B (B + 1) / 2)``.

One statement per step reads the requests meeting all but at most one of the
current conditions, from ``refine_baseline_hours`` before the window to now,
counted per condition, window and value of every watched dimension (grouping
sets): enough to score every move of the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from forensics.db import Database
from forensics.queries import Where, where_sql
from forensics.schema import quote_identifier
from forensics.separation.statistic import window_llr
from forensics.watch.params import WatchParams
from forensics.watch.store import Watched, bucket_range, expected_sql, value_sql

__all__ = ["Refined", "refine"]


@dataclass(frozen=True)
class Refined:
    """The predicate a firing led to."""

    predicate: dict[str, Any]
    """Column -> list of values, or {"gte": x, "lt": y}."""
    statistic: float
    """Its statistic on the window (after dispersion)."""
    score: float
    """statistic minus its description cost."""


@dataclass(frozen=True)
class _Counts:
    """Observed and expected (scaled) inside and before the window."""

    o_in: float
    e_in: float
    o_out: float
    e_out: float

    def llr(self) -> float:
        return float(
            window_llr(
                np.array([self.o_in]),
                np.array([self.e_in]),
                np.array([self.o_out]),
                np.array([self.e_out]),
            )[0]
        )


def _counts_frame(
    db: Database,
    *,
    conditions: Mapping[str, Any],
    dims: Sequence[Watched],
    signal: str,
    model: Mapping[str, Any] | None,
    start: datetime,
    since: datetime,
    until: datetime,
) -> pl.DataFrame:
    """Counts of the rows meeting all conditions but at most one, per grouping set.

    Columns: ``inside`` (in the window), ``c0..`` (each condition held),
    ``v_<dim>`` and ``gv_<dim>`` (0 in that dimension's grouping set), ``n, k, e``.
    """
    columns = db.columns("requests")
    params: dict[str, Any] = {"start": start, "since": since, "until": until}
    flags = [
        "coalesce(" + where_sql(Where.parse({c: v}), columns=columns, params=params) + ", false)"
        for c, v in conditions.items()
    ]
    held = " + ".join(f"CAST({f} AS INTEGER)" for f in flags) if flags else "0"
    q = quote_identifier(signal)
    p = expected_sql(model, "m_", params) if model else "1.0"
    names = [quote_identifier("v_" + d.name) for d in dims]
    inner = ", ".join(
        [
            "ts >= $start AS inside",
            *(f"{f} AS c{i}" for i, f in enumerate(flags)),
            *(f"{value_sql(d.name, d.kind)} AS {n}" for d, n in zip(dims, names, strict=True)),
            f"{q} AS _s",
            f"CASE WHEN {q} IS NOT NULL THEN {p} END AS _p",
        ]
    )
    keys = ["inside", *(f"c{i}" for i in range(len(flags)))]
    sets = ", ".join(f"({', '.join([*keys, n])})" for n in names)
    grouping = [
        f"grouping({n}) AS {quote_identifier('gv_' + d.name)}"
        for d, n in zip(dims, names, strict=True)
    ]
    return db.frame(
        f"SELECT {', '.join([*keys, *names, *grouping])}, count(_s) AS n, "
        "count(*) FILTER (WHERE _s) AS k, coalesce(sum(_p), 0) AS e FROM ("
        f"SELECT {inner} FROM requests WHERE ts >= $since AND ts < $until "
        f"AND {held} >= {max(len(flags) - 1, 0)}) GROUP BY GROUPING SETS ({sets})",
        params,
    )


def _cost(kind: str, chosen: int, total: int, dims: int) -> float:
    """Description cost of a condition keeping ``chosen`` of ``total`` values or buckets."""
    where = math.log(max(dims, 1))
    if kind == "numeric":
        return where + math.log(max(total * (total + 1) / 2, 1))
    return (
        where + math.lgamma(total + 1) - math.lgamma(chosen + 1) - math.lgamma(total - chosen + 1)
    )


def _per_value(frame: pl.DataFrame, dim: str, scale: float) -> pl.DataFrame:
    """``value, o_in, e_in, o_out, e_out`` of one grouping set, scaled by the dispersion."""
    if frame.height == 0:
        return pl.DataFrame(
            schema={
                "value": pl.Utf8,
                "o_in": pl.Float64,
                "e_in": pl.Float64,
                "o_out": pl.Float64,
                "e_out": pl.Float64,
            }
        )
    return (
        frame.group_by(pl.col("v_" + dim).alias("value"))
        .agg(
            (pl.col("k").filter(pl.col("inside")).sum() / scale).alias("o_in"),
            (pl.col("e").filter(pl.col("inside")).sum() / scale).alias("e_in"),
            (pl.col("k").filter(~pl.col("inside")).sum() / scale).alias("o_out"),
            (pl.col("e").filter(~pl.col("inside")).sum() / scale).alias("e_out"),
        )
        .with_columns(pl.col(c).cast(pl.Float64) for c in ("o_in", "e_in", "o_out", "e_out"))
    )


def _total(values: pl.DataFrame) -> _Counts:
    return _Counts(*(float(values[c].sum()) for c in ("o_in", "e_in", "o_out", "e_out")))


def _best_restriction(
    values: pl.DataFrame, kind: str, dims: int
) -> tuple[float, Any, _Counts] | None:
    """The best condition on one dimension's values: (score, condition, counts), or None.

    Categorical: prefixes of the values ranked by their rise; numeric: ranges of
    consecutive buckets. A condition keeping every value is no condition.
    """
    if values.height < 2:
        return None
    best: tuple[float, Any, _Counts] | None = None
    if kind == "numeric":
        present = values.filter(pl.col("value").is_not_null())
        rows = sorted(present.iter_rows(named=True), key=lambda r: float(r["value"]))
        b = len(rows)
        for i in range(b):
            acc = _Counts(0, 0, 0, 0)
            for j in range(i, b):
                r = rows[j]
                acc = _Counts(
                    acc.o_in + r["o_in"],
                    acc.e_in + r["e_in"],
                    acc.o_out + r["o_out"],
                    acc.e_out + r["e_out"],
                )
                if i == 0 and j == b - 1 and values.height == b:
                    continue
                score = acc.llr() - _cost(kind, j - i + 1, b, dims)
                if best is None or score > best[0]:
                    condition = _range(
                        rows[i]["value"], rows[j]["value"], rows[0]["value"], rows[-1]["value"]
                    )
                    best = (score, condition, acc)
        return best
    ranked = values.with_columns(
        ((pl.col("o_in") + 0.5) / (pl.col("e_in") + 0.5)
         / ((pl.col("o_out") + 0.5) / (pl.col("e_out") + 0.5))).alias("rise")
    ).sort("rise", descending=True)  # fmt: skip
    m_total = ranked.height
    acc = _Counts(0, 0, 0, 0)
    kept: list[str | None] = []
    for r in ranked.iter_rows(named=True):
        if len(kept) == m_total - 1:
            break
        acc = _Counts(
            acc.o_in + r["o_in"],
            acc.e_in + r["e_in"],
            acc.o_out + r["o_out"],
            acc.e_out + r["e_out"],
        )
        kept.append(r["value"])
        score = acc.llr() - _cost(kind, len(kept), m_total, dims)
        if best is None or score > best[0]:
            best = (score, sorted(kept, key=lambda v: (v is None, str(v))), acc)
    return best


def _range(lo: str, hi: str, first: str, last: str) -> dict[str, float]:
    """The predicate of the buckets from ``lo`` to ``hi``; open where they reach the ends.

    Examples
    --------
    >>> _range("64", "128", "0", "128")
    {'gte': 64.0}
    >>> _range("0", "8", "0", "128")
    {'lt': 16.0}
    """
    out: dict[str, float] = {}
    if lo != first:
        out["gte"] = bucket_range(lo).get("gte", 0.0)
    if hi != last:
        out["lt"] = bucket_range(hi)["lt"]
    return out


def refine(
    db: Database,
    *,
    predicate: Mapping[str, Any],
    signal: str,
    start: datetime,
    until: datetime,
    dims: Sequence[Watched],
    model: Mapping[str, Any] | None,
    scale: float,
    params: WatchParams,
) -> Refined:
    """Search, from ``predicate``, for the minimal predicate that holds the rise best.

    ``start`` is the window's first hour and ``until`` the end of the newest; the
    rows compared with it start ``refine_baseline_hours`` before ``start``.
    ``scale`` is the signal's dispersion.
    """
    since = start - timedelta(hours=params.refine_baseline_hours)
    conditions = dict(predicate)
    current: tuple[float, float] | None = None
    for _ in range(2 * params.max_conditions + 2):
        frame = _counts_frame(
            db,
            conditions=conditions,
            dims=dims,
            signal=signal,
            model=model,
            start=start,
            since=since,
            until=until,
        )
        flags = [f"c{i}" for i in range(len(conditions))]
        every = pl.all_horizontal([pl.col(f) for f in flags]) if flags else pl.lit(True)
        some = next(iter(dims), None)
        if some is None:
            break
        base = frame.filter((pl.col("gv_" + some.name) == 0) & every)
        here = _total(_per_value(base, some.name, scale))
        cost_here = _conditions_cost(conditions, frame, dims)
        score_here = here.llr() - cost_here
        current = (here.llr(), score_here)
        moves: list[tuple[float, dict[str, Any]]] = []
        for d in dims:
            others = [f for f, c in zip(flags, conditions, strict=True) if c != d.name]
            rows = frame.filter(
                (pl.col("gv_" + d.name) == 0)
                & (pl.all_horizontal([pl.col(f) for f in others]) if others else pl.lit(True))
            )
            values = _per_value(rows, d.name, scale)
            rest = {c: v for c, v in conditions.items() if c != d.name}
            if len(rest) >= params.max_conditions:
                continue
            cost_rest = cost_here - (
                _condition_cost(d, conditions[d.name], frame, len(dims))
                if d.name in conditions
                else 0.0
            )
            if d.name in conditions and rest:
                dropped = _total(values).llr() - cost_rest
                moves.append((dropped, rest))
            found = _best_restriction(values, d.kind, len(dims))
            if found is not None:
                score, condition, _ = found
                if condition:
                    moves.append((score - cost_rest, {**rest, d.name: condition}))
        if not moves:
            break
        best_score, best_conditions = max(moves, key=lambda m: m[0])
        if best_score <= score_here + 1e-9 or best_conditions == conditions:
            break
        conditions = best_conditions
    statistic, score = current if current is not None else (0.0, 0.0)
    return Refined(_public(conditions), statistic, score)


def _condition_cost(d: Watched, condition: Any, frame: pl.DataFrame, dims: int) -> float:
    """The cost of the condition a predicate holds on ``d`` (values counted in ``frame``)."""
    total = frame.filter(pl.col("gv_" + d.name) == 0)["v_" + d.name].n_unique()
    if d.kind == "numeric":
        return _cost("numeric", 1, max(total, 1), dims)
    chosen = len(condition) if isinstance(condition, list) else 1
    return _cost("categorical", min(chosen, total), max(total, chosen), dims)


def _conditions_cost(
    conditions: Mapping[str, Any], frame: pl.DataFrame, dims: Sequence[Watched]
) -> float:
    by_name = {d.name: d for d in dims}
    return sum(
        _condition_cost(by_name[c], v, frame, len(dims))
        for c, v in conditions.items()
        if c in by_name
    )


def _public(conditions: Mapping[str, Any]) -> dict[str, Any]:
    """The predicate in the ``Signature`` form: columns in a stable order."""
    return {c: conditions[c] for c in sorted(conditions)}
