"""One separation run: its state, and the local search from a seed to a minimal predicate.

``Search`` holds what a run knows: the dimensions searched (``Space``), the
time buckets, the series store over the workspace (``SeriesStore``), each
signal's baseline model (``model.fit_model``), and the candidates tried. Its
``refine`` turns a seed (one value, one window) into a minimal predicate and
window by the moves of ``moves``: forced moves first, then the best-scoring
one, until none helps; then ``moves.minimal`` drops what does not earn its
place and ``moves.edges`` places numeric edges on the data. ``explain`` sets a signature's rows aside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from forensics.db import Database
from forensics.queries.engine import Engine
from forensics.separation import workspace
from forensics.separation.moves import FORCED, SCORED, Step
from forensics.separation.moves.edges import refine_edges
from forensics.separation.moves.minimal import minimal
from forensics.separation.params import SeparationParams
from forensics.separation.predicate import Candidate, Predicate, Space
from forensics.separation.series import Extra, Read, SeriesStore, minus
from forensics.separation.statistic import Scanner, Window

__all__ = ["MAX_MOVES", "Search"]

MAX_MOVES = 16
"""Most moves of the local search from one seed."""


@dataclass
class Search:
    """State of one separation run."""

    db: Database
    params: SeparationParams
    space: Space
    signals: list[str]
    hours: int
    """Ticks per time bucket (``grain.search_step``; on hour-grained data 24, or 1 for data
    shorter than a week)."""
    first: int
    """First time bucket, in buckets since the epoch."""
    buckets: int
    """Time buckets in the data."""
    scanner: Scanner
    store: SeriesStore
    model_dims: dict[str, list[str]] = field(default_factory=dict)
    """Per signal, the dimensions of its baseline model."""
    model_transient: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """Per signal and model dimension, the values present only part of the time."""
    rows: int = 0
    """Requests in the workspace (a sample when fewer than total_rows)."""
    total_rows: int = 0
    """Requests in the database."""
    tried: set[tuple[str, str]] = field(default_factory=set)
    """(signal, predicate) pairs already refined."""
    tick_us: int = workspace.HOUR_US
    """Microseconds per tick, the workspace's time unit (the grain; an hour by default)."""
    everything: Engine | None = None
    """Where a signature's final counts are read when not ``db`` (all requests in Spark)."""

    @property
    def counts_db(self) -> Engine:
        """The engine a signature's final counts (slice, requests, users) are read from."""
        return self.everything if self.everything is not None else self.db

    @property
    def columns(self) -> dict[str, str]:
        """Workspace column -> type."""
        return self.store.columns

    @property
    def dispersion(self) -> dict[str, float]:
        """Per signal, the factor counts are divided by."""
        return self.store.dispersion

    def series(
        self, signal: str, predicate: Predicate, by: Sequence[str], *, extra: Extra = None
    ) -> Read:
        """See ``SeriesStore.series``."""
        return self.store.series(signal, predicate, by, extra=extra)

    def score(self, predicate: Predicate, llr: float) -> float:
        """The statistic net of the predicate's description cost."""
        return llr - self.space.penalty(predicate)

    def significant(self, llr: float | np.ndarray, values: int) -> np.ndarray:
        """Whether a single value's best window is a finding on its own.

        Bonferroni over the windows and the dimension's values.
        """
        log_p = scipy_stats.chi2.logsf(2 * np.asarray(llr, dtype=float), 1)
        bound = math.log(self.params.alpha) - math.log(self.scanner.windows * max(values, 1))
        return np.asarray((np.asarray(llr) > 0) & (log_p < bound))

    # the local search -------------------------------------------------------------------

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
        predicate, window = minimal(self, seed.signal, predicate, window)
        # The statistic on the bucket grid the search chose from (its p-value's family);
        # the edges placed on the data only describe where the problem's range ends.
        total, _ = self.series(seed.signal, predicate, [])
        llr = float(self.scanner.at(total, window)[0])
        return Candidate(
            seed.signal, refine_edges(self, seed.signal, predicate, window), window, llr
        )

    def _state(self, predicate: Predicate, window: Window) -> tuple[str, Window]:
        return self.space.state(predicate), window

    def _best_move(
        self, signal: str, predicate: Predicate, window: Window
    ) -> tuple[Predicate, Window] | None:
        """The first forced move that applies, else the scored move that gains most."""
        outside = [n for n in self.space.dims if n not in predicate]
        total, by = self.series(signal, predicate, outside)
        current = self.score(predicate, float(self.scanner.at(total, window)[0]))
        step = Step(signal, predicate, window, by, current)
        for forced in FORCED:
            move = forced(self, step)
            if move is not None:
                return move
        best: tuple[float, Predicate, Window] | None = None
        for scored in SCORED:
            for trial, w, llr in scored(self, step):
                value = self.score(trial, llr)
                if value > current + 1e-9 and (best is None or value > best[0]):
                    best = (value, trial, w)
        return None if best is None else (best[1], best[2])

    # explaining away --------------------------------------------------------------------

    def explain(
        self, signals: Sequence[str], predicate: Predicate, start: int, end: int | None
    ) -> None:
        """Set the signature's rows aside for ``signals`` (``start``, ``end`` in ticks).

        The signals' expected-rate models are not refitted: a refit cost about a
        third of the search and did not change what the scenario library finds
        (bench/separation.py, 130 runs: mean F1 0.984 without it). So the series
        of all live rows, which the next seeds need, is the old one minus the
        rows set aside: reading those is cheaper than reading all live rows.
        """
        condition, params = self.store.condition(predicate)
        condition += " AND _tick >= $x0"
        params["x0"] = start
        if end is not None:
            condition += " AND _tick < $x1"
            params["x1"] = end
        everything = list(self.space.dims)
        kept = {
            s: read
            for s in signals
            if (read := self.store.remembered(s, {}, everything)) is not None
        }
        gone = {s: self.store.read(s, {}, everything, (condition, params)) for s in kept}
        workspace.mark_explained(self.db, signals=signals, condition=condition, params=params)
        for s in signals:
            self.store.forget(s)
            if s in kept:
                self.store.remember(s, {}, everything, minus(kept[s], gone[s]))
