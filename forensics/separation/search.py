"""The predicate search: seeds, moves, forced splits and exclusions, windows to the hour.

``Search`` holds one run's state over the workspace (``queries.create_workspace``):
the dimensions searched, each signal's baseline model, and the local search
that turns a seed (one value, one window) into a minimal predicate and window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from forensics import queries
from forensics.db import Database
from forensics.queries import Dimension, Where
from forensics.separation import baseline
from forensics.separation.baseline import MODEL_BLOCKS, MODEL_MIN_PRESENCE, MODEL_P
from forensics.separation.params import SeparationParams
from forensics.separation.statistic import (
    CHI2_GAIN,
    WINDOW_TIE,
    Scanner,
    Series,
    Window,
    level_prior_strength,
    span,
)

__all__ = ["Candidate", "Condition", "Predicate", "Search", "Space"]

MASK_SEEDS = 12
"""Strongest single-value windows considered for leaving out of the baseline fit."""

MASK_MAX_SHARE = 0.75
"""Windows longer than this share of the data are not left out of the baseline fit."""

SPLIT_MIN_EVENTS = 3.0
"""Excess events a value needs outside a problem's window to be a problem of its own."""

WINDOW_MIN_SHIFT = 2
"""Buckets (days, or hours for short data) by which windows must differ to be apart."""

UNAFFECTED_FRACTION = 0.25
"""A value is unaffected only if its excess rate is under this share of the affected
values' (a value hit half as hard is still hit)."""

UNAFFECTED_SHARE = 0.1
"""A dimension whose clearly unaffected values hold this share of a slice's requests in
its window must be restricted (see ``Search._exclude``)."""

AFFECTED, UNAFFECTED, AMBIGUOUS, CONFLICT, EMPTY = 1, 2, 3, 4, 5
"""Roles of a dimension's values in a problem (see ``Search._roles``)."""

MAX_MOVES = 16
"""Most moves of the local search from one seed."""


# -- predicates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """Values of a categorical column, or a range of bucket indices of a numeric one."""

    values: frozenset[Any] = frozenset()
    low: int = 0
    high: int = -1


Predicate = dict[str, Condition]

Extra = tuple[str, dict[str, Any]] | None
"""A further SQL condition on the workspace and its parameters (None: none)."""

Read = tuple[Series, dict[str, tuple[list[Any], Series]]]
"""A slice's series and, per dimension, its values and one series row per value."""


@dataclass
class Space:
    """The dimensions searched and their numeric bucket edges."""

    dims: dict[str, Dimension]
    edges: dict[str, tuple[float, ...]]

    def is_numeric(self, name: str) -> bool:
        """Whether a dimension is numeric (searched as ranges of buckets)."""
        return self.dims[name].kind == "numeric"

    def where(self, predicate: Predicate) -> Where:
        """The predicate as a filter (valid on the workspace and on ``requests``)."""
        mapping: dict[str, Any] = {}
        for name, cond in predicate.items():
            if self.is_numeric(name):
                edges = self.edges[name]
                spec = {}
                if cond.low > 0:
                    spec["gte"] = edges[cond.low]
                if cond.high + 1 < len(edges):
                    spec["lt"] = edges[cond.high + 1]
                mapping[name] = spec
            else:
                mapping[name] = sorted(cond.values, key=lambda v: (v is None, str(v)))
        return Where.parse(mapping)

    def public(self, predicate: Predicate) -> dict[str, Any]:
        """The JSON form: column -> values, or {"gte", "lt"}."""
        out = self.where(predicate).to_dict()
        return {name: out[name] for name in sorted(out)}


# -- the search -------------------------------------------------------------------------


@dataclass
class Candidate:
    """A (predicate, window) the search is considering, with its statistic."""

    signal: str
    """The signal it was found on."""
    predicate: Predicate
    """Conditions per dimension."""
    window: Window
    """Its window, in buckets."""
    llr: float
    """The scan statistic."""


@dataclass
class Search:
    """State of one separation run."""

    db: Database
    params: SeparationParams
    space: Space
    signals: list[str]
    hours: int
    first: int
    buckets: int
    scanner: Scanner
    model_dims: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0
    """Requests in the workspace (a sample when fewer than total_rows)."""
    total_rows: int = 0
    """Requests in the database."""
    dispersion: dict[str, float] = field(default_factory=dict)
    tests: int = 0
    tried: set[tuple[str, str]] = field(default_factory=set)
    _series: dict[tuple[Any, ...], Read] = field(default_factory=dict)
    """Series already read, per signal; forgotten when the signal's model or live rows change."""
    columns: dict[str, str] = field(default_factory=dict)
    """Workspace column -> type (see ``queries.workspace_columns``)."""
    _views: dict[tuple[Any, ...], tuple[float, Read]] = field(default_factory=dict)
    """The same in units of the dispersion they were last asked in (see ``series``)."""

    # description cost -----------------------------------------------------------------

    def penalty(self, predicate: Predicate) -> float:
        """Log of the number of predicates of this shape the search could have chosen.

        Per condition: which dimension (log D) and which values (log C(V, m) for m
        of V values, log B(B + 1) / 2 for a range of B buckets). Maximising the
        statistic minus this cost keeps predicates minimal: a value or a
        condition stays only if it earns more than the freedom it adds, and a
        set of noisy values picked for their high ratios never does.
        """
        cost = 0.0
        dims = max(len(self.space.dims), 1)
        for name, cond in predicate.items():
            cost += math.log(dims)
            if self.space.is_numeric(name):
                b = len(self.space.edges[name])
                cost += math.log(max(b * (b + 1) // 2, 1))
            else:
                v = max(self.space.dims[name].cardinality + 1, len(cond.values))
                cost += log_comb(v, len(cond.values))
        return cost

    def score(self, predicate: Predicate, llr: float) -> float:
        """The statistic net of the predicate's description cost."""
        return llr - self.penalty(predicate)

    # the baseline model ---------------------------------------------------------------

    def fit_model(self, signal: str) -> None:
        """Fit the baseline model of ``signal`` on quiet live rows and store expectations.

        Fitted once on every live row; the single-value windows that then stand
        out, significant over the whole seed search and shorter than
        ``MASK_MAX_SHARE`` of the data (longer ones are how a slice always is, not
        a problem), are set aside and the model is fitted again without them, so
        that a long problem does not teach the baseline to expect itself. Only
        those: leaving out a chance excursion would fit the baseline to the rest
        and make the excursion look real. Shorter problems are handled by the
        robust factors (see ``main_effects``).
        """
        self._fit(signal, "true", {})
        masks = self._masks(signal)
        if masks is not None:
            self._fit(signal, *masks)

    def _masks(self, signal: str) -> Extra:
        """The condition leaving out the windows that stand out (see ``fit_model``)."""
        slices = 1 + sum(
            len(self.space.edges[n]) if d.kind == "numeric" else d.cardinality + 1
            for n, d in self.space.dims.items()
        )
        masks = [
            c
            for c in self.seeds(signal)[:MASK_SEEDS]
            if c.predicate
            and self.significant(c.llr, slices)
            and c.window.stop - c.window.start <= MASK_MAX_SHARE * self.buckets
        ]
        if not masks:
            return None
        params: dict[str, Any] = {}
        parts = []
        for i, c in enumerate(masks):
            condition, found = self._condition(c.predicate, c.window)
            parts.append(f"({_renamed(condition, found, f'm{i}_', params)})")
        return f"NOT ({' OR '.join(parts)})", params

    def _fit(self, signal: str, condition: str, params: dict[str, Any]) -> None:
        """Choose the model's dimensions on live rows matching ``condition``, fit, store.

        A dimension enters when its values' rates differ (G test, p < MODEL_P) and
        the differences are stable over time: their interaction with time blocks
        is not significant. A difference that comes and goes is what the search
        looks for, not what the baseline should absorb.
        """
        levels = {
            name: (len(self.space.edges[name]) if d.kind == "numeric" else d.cardinality)
            for name, d in self.space.dims.items()
        }
        candidates = [n for n, v in levels.items() if 1 < v <= self.params.model_max_levels]
        block_hours = max(self.buckets * self.hours // MODEL_BLOCKS, 1)
        margins = queries.workspace_margins(
            self.db,
            signal=signal,
            dims=candidates,
            block_hours=block_hours,
            condition=condition,
            params=params,
        )
        swings = baseline.swings(margins)
        strength = []
        for name in candidates:
            part = margins.filter(pl.col("dimension") == name)
            main, main_df, interaction, interaction_df, presence = baseline.stability(part)
            stable = (
                presence >= MODEL_MIN_PRESENCE
                if swings
                else interaction_df == 0
                or scipy_stats.chi2.sf(interaction, interaction_df) >= MODEL_P
            )
            if main_df > 0 and scipy_stats.chi2.sf(main, main_df) < MODEL_P and stable:
                strength.append((main, name))
        chosen = [name for _, name in sorted(strength, reverse=True)[: self.params.model_dims]]
        blocks = margins["block"].n_unique() if margins.height else 0
        transient = {
            name: set(
                margins.filter((pl.col("dimension") == name) & (pl.col("n") > 0))
                .group_by("value")
                .agg(pl.len().alias("blocks"))
                .filter(pl.col("blocks") < MODEL_MIN_PRESENCE * blocks)["value"]
                .to_list()
            )
            for name in chosen
        }
        cells = queries.workspace_cells(
            self.db,
            signal=signal,
            dims=chosen,
            block_hours=block_hours,
            condition=condition,
            params=params,
        )
        if cells.height == 0:
            cells = pl.DataFrame({"block": [0], "n": [0], "k": [0]})
        fitted = baseline.main_effects(cells, chosen, fixed=transient)
        queries.set_expected(self.db, signal=signal, dims=chosen, cells=fitted)
        self._forget(signal)
        self.model_dims[signal] = chosen
        # The dispersion of the fitted counts: from the raw (unscaled) series.
        _, by = self._raw(signal, {}, list(self.space.dims), (condition, params))
        self.dispersion[signal] = baseline.dispersion([s for _, s in by.values()])

    def _forget(self, signal: str) -> None:
        """Drop the remembered series of a signal (its model or its live rows changed)."""
        self._series = {k: v for k, v in self._series.items() if k[0] != signal}
        self._views = {k: v for k, v in self._views.items() if k[0] != signal}

    # series ---------------------------------------------------------------------------

    def _condition(
        self, predicate: Predicate, window: Window | None = None
    ) -> tuple[str, dict[str, Any]]:
        where = self.space.where(predicate)
        params: dict[str, Any] = {}
        sql = queries.where_sql(where, columns=self.columns, params=params)
        if window is not None:
            sql += " AND _hour >= $h0 AND _hour < $h1"
            params["h0"] = (self.first + window.start) * self.hours
            params["h1"] = (self.first + window.stop) * self.hours
        return sql, params

    @staticmethod
    def _key(
        signal: str,
        predicate: Predicate,
        by: Sequence[str],
        extra: Extra,
    ) -> tuple[Any, ...]:
        if extra == ("true", {}):
            extra = None
        return (signal, frozenset(predicate.items()), tuple(by), repr(extra))

    def series(
        self,
        signal: str,
        predicate: Predicate,
        by: Sequence[str],
        *,
        extra: Extra = None,
    ) -> Read:
        """The predicate's own series and, per dimension of ``by``, one row per value.

        ``extra`` is a further SQL condition and its parameters. Counts are in
        units of the signal's dispersion (quasi-Poisson, see
        ``baseline.dispersion``). Remembered until the signal's model is refitted
        (``_fit``) or rows are explained (``explain``).
        """
        key = self._key(signal, predicate, by, extra)
        phi = self.dispersion.get(signal, 1.0)
        view = self._views.get(key)
        if view is None or view[0] != phi:
            total, out = self._raw(signal, predicate, by, extra)
            scaled = {name: (v, _scaled(s, phi)) for name, (v, s) in out.items()}
            view = (phi, (_scaled(total, phi), scaled))
            self._views[key] = view
        return view[1]

    def _raw(
        self,
        signal: str,
        predicate: Predicate,
        by: Sequence[str],
        extra: Extra = None,
    ) -> Read:
        """``series`` in requests, not in units of the dispersion; remembered."""
        key = self._key(signal, predicate, by, extra)
        if key not in self._series:
            self._series[key] = self._read_series(signal, predicate, by, extra)
        return self._series[key]

    def _read_series(
        self,
        signal: str,
        predicate: Predicate,
        by: Sequence[str],
        extra: Extra,
    ) -> Read:
        """Counts of live rows (not scaled by the dispersion) from one query."""
        condition, params = self._condition(predicate)
        if extra is not None:
            condition = f"({condition}) AND ({extra[0]})"
            params = {**params, **extra[1]}
        keys = [
            queries.bucket_index_name(name) if self.space.is_numeric(name) else name for name in by
        ]
        frame = queries.workspace_series(
            self.db, signal=signal, by=keys, condition=condition, params=params, hours=self.hours
        )
        t = frame["t"].to_numpy().astype(np.int64) - self.first
        o = frame["o"].to_numpy().astype(float)
        e = frame["e"].fill_null(0.0).to_numpy().astype(float)
        n = frame["n"].to_numpy().astype(float)
        grouped = frame["grouped"]
        out: dict[str, tuple[list[Any], Series]] = {}
        total_mask = grouped.is_null().to_numpy()
        total = self._pack(
            np.zeros(total_mask.sum(), dtype=np.int64), t[total_mask], o, e, n, total_mask, 1
        )
        for name, key in zip(by, keys, strict=True):
            picked = (grouped == key).fill_null(False)
            mask = picked.to_numpy()
            values = frame[key].filter(picked).to_list()
            if key != name:  # a bucket index: its lower edge, as conditions use it
                edges = self.space.edges[name]
                values = [None if v is None else edges[v] for v in values]
            uniques = sorted(
                set(values), key=lambda v: (v is None, v if not isinstance(v, str) else 0, str(v))
            )
            index = {v: i for i, v in enumerate(uniques)}
            rows = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
            out[name] = (uniques, self._pack(rows, t[mask], o, e, n, mask, len(uniques)))
        return total, out

    def _pack(
        self,
        rows: np.ndarray,
        t: np.ndarray,
        o: np.ndarray,
        e: np.ndarray,
        n: np.ndarray,
        mask: np.ndarray,
        size: int,
    ) -> Series:
        flat = rows * self.buckets + t
        length = size * self.buckets

        def grid(x: np.ndarray) -> np.ndarray:
            return np.bincount(flat, weights=x[mask], minlength=length).reshape(size, self.buckets)

        return Series(grid(o), grid(e), grid(n))

    # seeds ------------------------------------------------------------------------------

    def seeds(self, signal: str) -> list[Candidate]:
        """The best window of every single-value slice (and of all requests), strongest first."""
        total, by = self.series(signal, {}, list(self.space.dims))
        out = []
        start, stop, llr = self.scanner.best(total)
        self.tests += self.scanner.windows
        if llr[0] > 0:
            out.append(Candidate(signal, {}, Window(int(start[0]), int(stop[0])), float(llr[0])))
        for name, (values, s) in by.items():
            starts, stops, llrs = self.scanner.best(s)
            self.tests += len(values) * self.scanner.windows
            for i, value in enumerate(values):
                if llrs[i] <= 0:
                    continue
                cond = self._single(name, value)
                if cond is None:
                    continue
                out.append(
                    Candidate(
                        signal, {name: cond}, Window(int(starts[i]), int(stops[i])), float(llrs[i])
                    )
                )
        out.sort(key=lambda c: -self.score(c.predicate, c.llr))
        return out

    def _single(self, name: str, value: Any) -> Condition | None:
        if not self.space.is_numeric(name):
            return Condition(values=frozenset([value]))
        if value is None:
            return None
        i = self.space.edges[name].index(float(value))
        return Condition(low=i, high=i)

    # refinement -------------------------------------------------------------------------

    def refine(self, seed: Candidate) -> Candidate:
        """Local search over (predicate, window) maximising the net statistic.

        Stops when no move helps, after ``MAX_MOVES``, or on returning to a state
        already visited (forced moves can undo each other).
        """
        predicate, window = dict(seed.predicate), seed.window
        seen = {self._state(predicate, window)}
        for _ in range(MAX_MOVES):
            move = self._best_move(seed.signal, predicate, window)
            if move is None or self._state(*move) in seen:
                break
            predicate, window = move
            seen.add(self._state(predicate, window))
        predicate, window = self._minimal(seed.signal, predicate, window)
        total, _ = self.series(seed.signal, predicate, [])
        return Candidate(seed.signal, predicate, window, float(self.scanner.at(total, window)[0]))

    def _leaves_out_a_hit(self, name: str, values: list[Any], s: Series, cond: Condition) -> bool:
        """Whether a restriction to ``cond`` would leave out requests that are hit too.

        The values it leaves out must not, together, show a significant rise of
        their own: concentrating a problem in its worst part (large batches when
        small ones are hit less) would describe it wrongly, however much the
        statistic likes the concentration.
        """
        kept = set(self._rows(name, values, cond))
        rest = [r for r in range(len(values)) if r not in kept]
        if not rest:
            return False
        _, _, llr = self.scanner.best(s.total(rest))
        return bool(self.significant(float(llr[0]), len(values)))

    def _state(self, predicate: Predicate, window: Window) -> tuple[str, Window]:
        return repr(sorted(self.space.public(predicate).items())), window

    def significant(self, llr: float | np.ndarray, values: int) -> np.ndarray:
        """Whether a single value's best window is a finding on its own.

        Bonferroni over the windows and the dimension's values.
        """
        log_p = scipy_stats.chi2.logsf(2 * np.asarray(llr, dtype=float), 1)
        bound = math.log(self.params.alpha) - math.log(self.scanner.windows * max(values, 1))
        return np.asarray((np.asarray(llr) > 0) & (log_p < bound))

    def _best_move(
        self, signal: str, predicate: Predicate, window: Window
    ) -> tuple[Predicate, Window] | None:
        """The best restriction, widening or removal of one condition, or a forced split.

        A dimension whose values peak in windows that disagree with this one holds
        separate problems: the predicate must then choose among its agreeing values
        (or move to the strongest disagreeing one), whatever the statistic says.
        """
        outside = [n for n in self.space.dims if n not in predicate]
        total, by = self.series(signal, predicate, outside)
        current = self.score(predicate, float(self.scanner.at(total, window)[0]))
        room = len(predicate) < self.params.max_conditions
        forced = (self._exclude(predicate, window, by) if room else None) or self._split(
            predicate, window, by
        )
        if forced is not None and len(forced[0]) <= self.params.max_conditions:
            return forced
        best: tuple[float, Predicate, Window] | None = None

        def consider(options: list[tuple[Predicate, Window, float]]) -> None:
            nonlocal best
            for trial, w, llr in options:
                value = self.score(trial, llr)
                if value > current + 1e-9 and (best is None or value > best[0]):
                    best = (value, trial, w)

        if len(predicate) < self.params.max_conditions:
            for name, (values, s) in by.items():
                consider(
                    [
                        ({**predicate, name: c}, w, v)
                        for c, w, v in self._options(predicate, name, values, s, window)
                        if not self._leaves_out_a_hit(name, values, s, c)
                    ]
                )
        for name in predicate:
            # Replace the condition on ``name``: by another on it, by one on another
            # dimension (a swap: sampler for platform, say), or by nothing.
            others = {k: v for k, v in predicate.items() if k != name}
            free = [n for n in self.space.dims if n not in others]
            base_total, base_by = self.series(signal, others, free)
            values, s = base_by[name]
            keep = self._must_keep(others, name, values, s, window)
            for other, (other_values, other_s) in base_by.items():
                if keep and other != name:
                    continue  # the condition on ``name`` holds something apart: no swap
                consider(
                    [
                        ({**others, other: c}, w, v)
                        for c, w, v in self._options(others, other, other_values, other_s, window)
                        if other != name or c != predicate[name]
                    ]
                )
            if others and not keep:
                start, stop, llr = self.scanner.best(base_total)
                consider([(others, Window(int(start[0]), int(stop[0])), float(llr[0]))])
        return None if best is None else (best[1], best[2])

    def _conflicts(
        self, predicate: Predicate, name: str, values: list[Any], s: Series, window: Window
    ) -> np.ndarray:
        """Values of a categorical dimension that form a separate problem in another window.

        A value's own best window (trimmed to its traffic) must differ from
        ``window`` by at least ``WINDOW_MIN_SHIFT`` buckets at one end, and the value
        must behave differently from the dimension's other values there: affected
        where they are not (its count in its own window but outside ``window`` is
        significantly above its expectation plus their excess rate, by at least
        ``SPLIT_MIN_EVENTS``), or not
        affected where they are (its count in ``window`` but outside its own is
        significantly below its expectation plus their excess rate), each by a
        material share of the rate. Comparing with the other values, not with the
        model alone, keeps noise that all values share (a detector's occasional
        false alarm) from splitting a problem. Tests are Bonferroni-corrected over
        the values, and for excess outside ``window`` also over the extensions of
        ``window`` it could have been found in (a few stray events would otherwise
        make a new problem).
        """
        none = np.zeros(len(values), dtype=bool)
        if self.space.is_numeric(name) or len(values) < 2:
            return none
        starts, stops, own = self.scanner.best(s)
        # An excess outside ``window`` is an extension of it at one end: 2T candidates.
        level = self.params.alpha / (len(values) * 2 * self.buckets)
        gap_level = self.params.alpha / (len(values) * len(self.space.dims))
        whole = s.total()
        affected = self.significant(self.scanner.at(s, window), len(values))
        out = none.copy()
        for i in (int(x) for x in np.flatnonzero(self.significant(own, len(values)))):
            a, b = int(starts[i]), int(stops[i])
            if abs(a - window.start) < WINDOW_MIN_SHIFT and abs(b - window.stop) < WINDOW_MIN_SHIFT:
                continue
            o, e, n = span(s, i, a, b)
            rate = (o - e) / max(n, 1.0)
            if rate <= 0:
                continue
            extra = [(a, min(b, window.start)), (max(a, window.stop), b)]
            gap = [(window.start, min(window.stop, a)), (max(window.start, b), window.stop)]
            # Where the value may be hit when the others are not, compare it with all of
            # them; where it may be spared while they are hit, with those hit in ``window``.
            peers = [int(r) for r in np.flatnonzero(affected) if r != i]
            hit = s.total(peers) if peers else None
            for lo, hi, affected_here in [(*x, True) for x in extra] + [(*x, False) for x in gap]:
                ov, ev, nv = span(s, i, lo, hi)
                if affected_here or hit is None:
                    ot, et, nt = span(whole, 0, lo, hi)
                    o_r, e_r, n_r = ot - ov, et - ev, nt - nv
                else:
                    o_r, e_r, n_r = span(hit, 0, lo, hi)
                if nv == 0 or n_r == 0:
                    continue
                rest_rate = max((o_r - e_r) / n_r, 0.0)
                mean = ev + rest_rate * nv
                if affected_here:
                    material = (ov - ev) / nv >= UNAFFECTED_FRACTION * rate and (
                        ov - mean >= SPLIT_MIN_EVENTS
                    )
                    odd = scipy_stats.poisson.sf(ov - 1, max(mean, 1e-12)) < level
                else:
                    material = (ov - ev) / nv < UNAFFECTED_FRACTION * rest_rate
                    odd = scipy_stats.poisson.cdf(ov, max(mean, 1e-12)) < gap_level
                if material and odd:
                    out[i] = True
        return none if out.all() else out

    def _must_keep(
        self, others: Predicate, name: str, values: list[Any], s: Series, window: Window
    ) -> bool:
        """Whether dropping the condition on ``name`` is not allowed.

        It is not when that would merge another problem (see ``_conflicts``) or let
        in a weighty share of unaffected requests (see ``_exclude``).
        """
        if self._conflicts(others, name, values, s, window).any():
            return True
        roles = self._roles(others, name, values, s, window)
        n_in = s.n[:, window.start : window.stop].sum(axis=1)
        total = float(n_in.sum())
        return bool(total and n_in[roles == UNAFFECTED].sum() / total >= UNAFFECTED_SHARE)

    def _split(
        self, predicate: Predicate, window: Window, by: dict[str, tuple[list[Any], Series]]
    ) -> tuple[Predicate, Window] | None:
        """Set aside the values of the dimension that best separate another problem.

        Among dimensions with conflicting values, the one whose split explains
        most: the other values on ``window`` plus the set-aside ones on their own
        best window, net of the set-aside group's description cost. A dimension
        that only correlates with the real divide (tasks, when one of the models
        in them outlasts the rest) splits less cleanly than the divide itself.
        """
        best: tuple[float, str, np.ndarray] | None = None
        for name, (values, s) in by.items():
            conflicts = self._conflicts(predicate, name, values, s, window)
            if not conflicts.any():
                continue
            apart = np.flatnonzero(conflicts)
            _, _, own = self.scanner.best(s.total(apart))
            rest = float(self.scanner.at(s.total(np.flatnonzero(~conflicts)), window)[0])
            group = {**predicate, name: Condition(values=frozenset(values[i] for i in apart))}
            value = rest + float(own[0]) - self.penalty(group)
            if best is None or value > best[0]:
                best = (value, name, conflicts)
        if best is None:
            return None
        _, name, conflicts = best
        values, _ = by[name]
        rest_values = frozenset(values[i] for i in np.flatnonzero(~conflicts))
        return {**predicate, name: Condition(values=rest_values)}, window

    def _roles(
        self, context: Predicate, name: str, values: list[Any], s: Series, window: Window
    ) -> np.ndarray:
        """What each value of a dimension is to the problem at ``window``.

        AFFECTED: its rate rises significantly in the window (Bonferroni over the
        values). CONFLICT: it is a separate problem in another window (see
        ``_conflicts``). UNAFFECTED: not affected, its count in the window is
        significantly below its expectation plus the affected values' excess rate
        per request (an absolute rate: a bug corrupts a share of requests), and its
        own excess is under ``UNAFFECTED_FRACTION`` of that.
        AMBIGUOUS: too little data to tell. EMPTY: no live traffic in the window
        (none at all, or all explained by signatures found already). Tests are Bonferroni-corrected over the
        values and the dimensions (every dimension is checked at every step).
        """
        at = self.scanner.at(s, window)
        roles = np.full(len(values), AMBIGUOUS, dtype=np.int8)
        affected = self.significant(at, len(values))
        roles[affected] = AFFECTED
        conflicts = self._conflicts(context, name, values, s, window)
        roles[conflicts] = CONFLICT
        hit = np.flatnonzero(roles == AFFECTED)
        if hit.size == 0:
            return roles
        inside = slice(window.start, window.stop)
        o_in, e_in, n_in = (
            s.o[:, inside].sum(axis=1),
            s.e[:, inside].sum(axis=1),
            s.n[:, inside].sum(axis=1),
        )
        excess = max((o_in[hit].sum() - e_in[hit].sum()) / max(n_in[hit].sum(), 1.0), 0.0)
        mean = e_in + excess * n_in
        level = self.params.alpha / (len(values) * len(self.space.dims))
        below = scipy_stats.poisson.cdf(o_in, np.maximum(mean, 1e-12)) < level
        small = (o_in - e_in) < UNAFFECTED_FRACTION * excess * n_in
        roles[(roles == AMBIGUOUS) & below & small & (n_in > 0)] = UNAFFECTED
        roles[(roles == AMBIGUOUS) & (n_in == 0)] = EMPTY
        return roles

    def _exclude(
        self, predicate: Predicate, window: Window, by: dict[str, tuple[list[Any], Series]]
    ) -> tuple[Predicate, Window] | None:
        """Leave out the values that are clearly not affected, when they weigh.

        A dimension whose unaffected values hold at least ``UNAFFECTED_SHARE`` of the
        slice's requests in the window must be restricted to the others, whatever the
        statistic says: a problem is not described by a slice a good part of which
        shows no sign of it. When several dimensions qualify (one often only
        reflects another's composition), the restriction that scores best goes first.
        """
        best: tuple[float, Predicate, Window] | None = None
        for name, (values, s) in by.items():
            roles = self._roles(predicate, name, values, s, window)
            n_in = s.n[:, window.start : window.stop].sum(axis=1)
            total = float(n_in.sum())
            share = float(n_in[roles == UNAFFECTED].sum()) / total if total else 0.0
            if share < UNAFFECTED_SHARE or not (roles == AFFECTED).any():
                continue
            keep = self._keep(name, values, roles)
            if keep is None or self._leaves_out_a_hit(name, values, s, keep):
                continue
            ((cond, w, llr),) = self._evaluate([(keep, self._rows(name, values, keep))], s)
            trial = {**predicate, name: cond}
            value = self.score(trial, llr)
            if best is None or value > best[0]:
                best = (value, trial, w)
        return None if best is None else (best[1], best[2])

    def _rows(self, name: str, values: list[Any], cond: Condition) -> list[int]:
        """Rows of a dimension's series that a condition keeps."""
        if not self.space.is_numeric(name):
            return [r for r, v in enumerate(values) if v in cond.values]
        edges = self.space.edges[name]
        return [
            r
            for r, v in enumerate(values)
            if v is not None and cond.low <= edges.index(float(v)) <= cond.high
        ]

    def _keep(self, name: str, values: list[Any], roles: np.ndarray) -> Condition | None:
        """The condition holding the affected values and, where they fit, the ambiguous ones.

        Categorical: affected and ambiguous values (not the empty ones: a value whose
        requests in the window are all explained already belongs to another
        signature). Numeric: the range of affected buckets, widened over ambiguous
        and empty neighbours.
        """
        if not self.space.is_numeric(name):
            chosen = [v for v, r in zip(values, roles, strict=True) if r in (AFFECTED, AMBIGUOUS)]
            if not chosen or len(chosen) == len(values):
                return None
            return Condition(values=frozenset(chosen))
        edges = self.space.edges[name]
        role_of = {
            edges.index(float(v)): r for v, r in zip(values, roles, strict=True) if v is not None
        }
        hits = [b for b, r in role_of.items() if r == AFFECTED]
        if not hits:
            return None
        lo, hi = min(hits), max(hits)
        while lo > 0 and role_of.get(lo - 1, EMPTY) in (AMBIGUOUS, EMPTY):
            lo -= 1
        while hi < len(edges) - 1 and role_of.get(hi + 1, EMPTY) in (AMBIGUOUS, EMPTY):
            hi += 1
        if lo == 0 and hi == len(edges) - 1:
            return None
        return Condition(low=lo, high=hi)

    def _options(
        self, context: Predicate, name: str, values: list[Any], s: Series, window: Window
    ) -> list[tuple[Condition, Window, float]]:
        """Conditions on one dimension worth trying, each at its own best window.

        Categorical: the affected values, and the affected with the ambiguous.
        Numeric: the smallest range of buckets holding the affected ones, widened
        over neighbouring ambiguous buckets (so a range reaches the data's edge
        unless the data say otherwise).
        """
        roles = self._roles(context, name, values, s, window)
        if not (roles == AFFECTED).any():
            return []
        conditions = []
        wide = self._keep(name, values, roles)
        if wide is not None:
            conditions.append(wide)
        if not self.space.is_numeric(name):
            narrow = frozenset(v for v, r in zip(values, roles, strict=True) if r == AFFECTED)
            if len(narrow) < len(values) and (wide is None or narrow != wide.values):
                conditions.append(Condition(values=narrow))
        options = [(cond, self._rows(name, values, cond)) for cond in conditions]
        return self._evaluate(options, s)

    def _evaluate(
        self, options: list[tuple[Condition, list[int]]], s: Series
    ) -> list[tuple[Condition, Window, float]]:
        if not options:
            return []
        sums = Series(
            np.vstack([s.o[r].sum(axis=0) for _, r in options]),
            np.vstack([s.e[r].sum(axis=0) for _, r in options]),
            np.vstack([s.n[r].sum(axis=0) for _, r in options]),
        )
        starts, stops, llr = self.scanner.best(sums)
        return [
            (cond, Window(int(a), int(b)), float(v))
            for (cond, _), a, b, v in zip(options, starts, stops, llr, strict=True)
        ]

    def _minimal(
        self, signal: str, predicate: Predicate, window: Window
    ) -> tuple[Predicate, Window]:
        """Drop conditions whose removal does not lower the net statistic."""
        while len(predicate) > 1:
            total, _ = self.series(signal, predicate, [])
            current = self.score(predicate, float(self.scanner.at(total, window)[0]))
            options = []
            for name in predicate:
                others = {k: v for k, v in predicate.items() if k != name}
                sub, sub_by = self.series(signal, others, [name])
                values, s = sub_by[name]
                if self._must_keep(others, name, values, s, window):
                    continue
                start, stop, llr = self.scanner.best(sub)
                w = Window(int(start[0]), int(stop[0]))
                options.append((self.score(others, float(llr[0])), others, w))
            if not options:
                break
            value, others, w = max(options, key=lambda o: o[0])
            if value < current:
                break
            predicate, window = others, w
        return predicate, window

    # hours ------------------------------------------------------------------------------

    def hourly(
        self, signal: str, predicate: Predicate, window: Window
    ) -> tuple[int, int | None, float, tuple[int, int], tuple[int, int] | None]:
        """Onset and end to the hour near the window's day edges, with profile ranges.

        Returns absolute hours: start, end (None = still active), statistic, onset
        range, end range.
        """
        if self.hours == 1:
            hour_first = self.first
            h_start, h_stop = window.start, window.stop
            hours_total = self.buckets
        else:
            hour_first = self.first * self.hours
            h_start, h_stop = window.start * self.hours, window.stop * self.hours
            hours_total = self.buckets * self.hours
        condition, params = self._condition(predicate)
        frame = queries.workspace_series(
            self.db, signal=signal, by=[], condition=condition, params=params, hours=1
        )
        t = frame["t"].to_numpy().astype(np.int64) - hour_first
        keep = (t >= 0) & (t < hours_total)

        phi = self.dispersion.get(signal, 1.0)

        def grid(column: str) -> np.ndarray:
            x = frame[column].fill_null(0.0).to_numpy().astype(float)
            if column != "n":
                x = x / phi
            return np.bincount(t[keep], weights=x[keep], minlength=hours_total)[None, :]

        s = Series(grid("o"), grid("e"), grid("n"))
        margin = self.params.hourly_margin_hours if self.hours > 1 else 0
        starts = np.arange(max(0, h_start - margin), min(hours_total, h_start + margin + 1))
        last = h_stop >= hours_total
        stops = (
            np.array([hours_total])
            if last
            else np.arange(max(1, h_stop - margin), min(hours_total, h_stop + margin) + 1)
        )
        a, b = np.meshgrid(starts, stops, indexing="ij")
        valid = b > a
        scanner = Scanner(hours_total, self.params)
        # One level prior for every candidate edge: the day window's (see Scanner.best).
        e_in = s.e[0, h_start:h_stop].sum()
        c = level_prior_strength(s.e[0].sum() - e_in)
        llr = scanner._stats(s, a[valid], b[valid], np.array([[c]]))[0]
        full = np.full(a.shape, -np.inf)
        full[valid] = llr
        best = float(full.max())
        # The shortest window within WINDOW_TIE of the best (see Scanner.best).
        length = np.where(full >= best - WINDOW_TIE, (b - a).astype(float), np.inf)
        i, j = (int(x) for x in np.unravel_index(int(np.argmin(length)), length.shape))
        busy = np.flatnonzero(s.n[0, int(starts[i]) : int(stops[j])] > 0)
        if busy.size:  # trim to the hours with traffic (see Scanner.best)
            first_busy, last_busy = int(starts[i]) + busy[0], int(starts[i]) + busy[-1] + 1
            i = int(np.searchsorted(starts, first_busy)) if first_busy in starts else i
            if int(stops[j]) < hours_total and last_busy in stops:
                j = int(np.searchsorted(stops, last_busy))
        onset_ok = starts[full[:, j] >= best - CHI2_GAIN]
        end_ok = stops[full[i, :] >= best - CHI2_GAIN]
        start = int(starts[i]) + hour_first
        onset = (int(onset_ok.min()) + hour_first, int(onset_ok.max()) + hour_first)
        if int(stops[j]) >= hours_total:
            return start, None, best, onset, None
        end = int(stops[j]) + hour_first
        return (
            start,
            end,
            best,
            onset,
            (int(end_ok.min()) + hour_first, int(end_ok.max()) + hour_first),
        )

    def explain(
        self, signals: Sequence[str], predicate: Predicate, start: int, end: int | None
    ) -> None:
        """Set the signature's rows aside for ``signals``.

        The signals' expected-rate models are not refitted: a refit cost about a
        third of the search and did not change what the scenario library finds
        (bench/separation.py, 130 runs: mean F1 0.984 without it). So the series
        of all live rows, which the next seeds need, is the old one minus the
        rows set aside: reading those is cheaper than reading all live rows.
        """
        condition, params = self._condition(predicate)
        condition += " AND _hour >= $x0"
        params["x0"] = start
        if end is not None:
            condition += " AND _hour < $x1"
            params["x1"] = end
        everything = list(self.space.dims)
        kept = {
            s: self._series[key]
            for s in signals
            if (key := self._key(s, {}, everything, None)) in self._series
        }
        gone = {s: self._read_series(s, {}, everything, (condition, params)) for s in kept}
        queries.mark_explained(self.db, signals=signals, condition=condition, params=params)
        for s in signals:
            self._forget(s)
            if s in kept:
                self._series[self._key(s, {}, everything, None)] = _minus(kept[s], gone[s])


def _scaled(s: Series, phi: float) -> Series:
    """Counts in units of the dispersion ``phi`` (defined counts stay requests)."""
    return s if phi == 1.0 else Series(s.o / phi, s.e / phi, s.n)


def _minus(
    whole: Read,
    part: Read,
) -> Read:
    """Series of ``whole``'s rows without ``part``'s (a subset of them).

    Values left without requests go, as a fresh query would not see them, and
    buckets left without requests expect exactly nothing (no rounding residue).
    """

    def sub(a: Series, b: Series) -> Series:
        n = a.n - b.n
        empty = n == 0
        return Series(
            np.where(empty, 0.0, a.o - b.o),
            np.where(empty, 0.0, a.e - b.e),
            np.where(empty, 0.0, n),
        )

    total = sub(whole[0], part[0])
    out: dict[str, tuple[list[Any], Series]] = {}
    for name, (values, s) in whole[1].items():
        removed_values, removed = part[1].get(name, ([], None))
        if removed is not None:
            index = {v: i for i, v in enumerate(values)}
            rows = np.array([index[v] for v in removed_values], dtype=np.int64)
            aligned = Series(*(np.zeros_like(x) for x in (s.o, s.e, s.n)))
            for x, y in ((aligned.o, removed.o), (aligned.e, removed.e), (aligned.n, removed.n)):
                x[rows] = y
            s = sub(s, aligned)
        alive = np.flatnonzero(s.n.sum(axis=1) > 0)
        out[name] = (
            [values[i] for i in alive],
            Series(s.o[alive], s.e[alive], s.n[alive]),
        )
    return total, out


def _renamed(condition: str, params: dict[str, Any], prefix: str, into: dict[str, Any]) -> str:
    """``condition`` with its parameters renamed ``prefix + name``, added to ``into``.

    Examples
    --------
    >>> into = {}
    >>> _renamed("a = $w1 AND b = $w10", {"w1": 1, "w10": 2}, "m0_", into)
    'a = $m0_w1 AND b = $m0_w10'
    >>> into
    {'m0_w1': 1, 'm0_w10': 2}
    """
    for key, value in params.items():
        condition = re.sub(rf"\${re.escape(key)}\b", f"${prefix}{key}", condition)
        into[prefix + key] = value
    return condition


def log_comb(n: int, k: int) -> float:
    """Log C(n, k).

    Examples
    --------
    >>> round(log_comb(300, 1), 3), log_comb(5, 5)
    (5.704, 0.0)
    """
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
