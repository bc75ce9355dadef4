"""The scan statistic: how strongly a slice's symptom count rises in a time window.

Series of observed (O), expected (E, from the baseline model) and defined (N)
counts per time bucket, one row per slice; ``Scanner`` evaluates the statistic
of every window of every row at once, from cumulative sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from forensics.separation.params import SeparationParams

__all__ = [
    "CHI2_GAIN",
    "PRIOR_EVENTS",
    "Scanner",
    "Series",
    "Window",
    "level_prior_strength",
    "span",
    "window_llr",
    "xlogx_ratio",
]

CHI2_GAIN = float(scipy_stats.chi2.ppf(0.95, 1) / 2)
"""Log-likelihood gain a condition must bring to stay in a predicate (1.92)."""

PRIOR_EVENTS = 0.5
"""Pseudo-events that keep rates and ratios of empty cells finite."""

LEVEL_PRIOR = 100.0
"""Shape and rate of the Gamma prior on the level, relative to the baseline model, of a
slice without history outside a window (mean 1, coefficient of variation 0.1)."""

LEVEL_PRIOR_HALF = 10.0
"""Expected events outside a window at which the level prior has halved its strength."""

WINDOW_TIE = 0.5
"""Windows whose statistic is this close to the best count as tied; the shortest wins."""


def xlogx_ratio(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``o * log(o / e)``, element-wise, 0 where either is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((o > 0) & (e > 0), o * np.log(o / np.where(e > 0, e, 1.0)), 0.0)


def level_prior_strength(e_out: np.ndarray | float) -> np.ndarray:
    """``c`` of the level prior given the expected events outside a window (see window_llr)."""
    return LEVEL_PRIOR / (1 + np.asarray(e_out, dtype=float) / LEVEL_PRIOR_HALF)


def window_llr(
    o_in: np.ndarray,
    e_in: np.ndarray,
    o_out: np.ndarray,
    e_out: np.ndarray,
    c: np.ndarray | None = None,
) -> np.ndarray:
    """The scan statistic of (slice, window) pairs, element-wise; 0 unless the rate rises.

    Counts are Poisson with mean ``level x E`` (E from the baseline model). The
    null hypothesis gives the slice one level throughout; the alternative one
    level outside the window and a free, higher rate inside. A slice's level has
    a Gamma(c, c) prior (mean 1): a slice that is always a bit worse than the
    model pays the same under both and is no problem, while a null that must
    absorb a large excess into the level pays for it, so diluting a slice with
    unaffected requests weakens it, and traffic that exists only inside the
    window is held to the model. The prior is strong (``c = LEVEL_PRIOR``) for a
    slice with little history outside the window and weakens as that history
    grows (``c = LEVEL_PRIOR / (1 + E_out / LEVEL_PRIOR_HALF)``): a slice with
    plenty of its own data is measured against itself, even when the model
    misses its usual level. Maximum a posteriori levels; the statistic is the
    log-posterior ratio.

    ``c`` fixes the prior's strength instead (one value per row, or broadcast):
    windows of one slice must be compared under one prior, or a window that
    swallows the slice's quiet edges gains from a stronger prior alone.
    """
    if c is None:
        c = level_prior_strength(e_out)
    # At the MAP level r = a / b (a = O + c - 1, b = E + c) the log posterior
    # O log r - r E + (c - 1) log r - c r is a log(a / b) - a: one log per term.
    a_null = o_in + o_out + c - 1
    a_out = o_out + c - 1
    b_out = e_out + c
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = (
            xlogx_ratio(o_in, e_in)
            - o_in
            + a_out * np.log(a_out / b_out)
            - a_out
            - a_null * np.log(a_null / (e_in + b_out))
            + a_null
        )
        keep = (e_in > 0) & (o_in * b_out > a_out * e_in) & np.isfinite(llr)
    return np.where(keep, np.maximum(llr, 0.0), 0.0)


BEST_MEMO_BYTES = 256 * 2**20
"""Bytes of series a scanner keeps alive to remember their best windows; past this it
forgets all of them (a wide dimension over hourly buckets is megabytes a series)."""


@dataclass(frozen=True)
class Series:
    """Observed, expected and defined counts per time bucket, one row per slice."""

    o: np.ndarray
    e: np.ndarray
    n: np.ndarray

    def total(self, rows: Sequence[int] | np.ndarray | None = None) -> Series:
        """The sum of some rows (all when None), as a one-row series."""
        pick = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        return Series(
            self.o[pick].sum(axis=0, keepdims=True),
            self.e[pick].sum(axis=0, keepdims=True),
            self.n[pick].sum(axis=0, keepdims=True),
        )


@dataclass(frozen=True)
class Window:
    """A time window in buckets, [start, stop)."""

    start: int
    """First bucket inside."""
    stop: int
    """First bucket after (exclusive)."""


class Scanner:
    """Window statistics over series of T buckets."""

    def __init__(self, buckets: int, params: SeparationParams) -> None:
        self.buckets = buckets
        self.params = params
        starts, stops = np.triu_indices(buckets + 1, k=1)
        # A window holding all the data is how a slice always is, not a change in time:
        # with nothing outside it to compare with, the level prior alone would judge
        # a slice the baseline model fits badly.
        whole = (starts == 0) & (stops == buckets)
        if buckets > 1:
            starts, stops = starts[~whole], stops[~whole]
        self.starts = starts
        self.stops = stops
        self._best: dict[int, tuple[Series, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._best_bytes = 0

    @staticmethod
    def stats(
        s: Series, starts: np.ndarray, stops: np.ndarray, c: np.ndarray | None = None
    ) -> np.ndarray:
        """Statistic of every row on each window [starts[j], stops[j]) (see ``window_llr``)."""

        def cum(x: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)

        co, ce = cum(s.o), cum(s.e)
        o_in = co[:, stops] - co[:, starts]
        e_in = ce[:, stops] - ce[:, starts]
        return window_llr(o_in, e_in, co[:, -1:] - o_in, ce[:, -1:] - e_in, c)

    def best(self, s: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best window of every row: starts, stops, statistics.

        Among windows whose statistic is within ``WINDOW_TIE`` of the best, the
        shortest wins (the least time that holds the evidence: a few unaffected
        requests at an edge barely change the statistic and should not move it),
        and it is trimmed to the buckets where the slice has requests. Windows
        are compared under one level prior per row: the one of the best window
        when each window has its own (``window_llr``'s ``c``).

        Remembered per series object (the search asks again about the series it
        holds); the arrays returned are read-only.
        """
        found = self._best.get(id(s))
        if found is not None and found[0] is s:
            return found[1]
        size = s.o.nbytes + s.e.nbytes + s.n.nbytes
        if self._best_bytes + size > BEST_MEMO_BYTES:
            self._best.clear()
            self._best_bytes = 0
        self._best_bytes += size
        result = self._best_of(s)
        for x in result:
            x.flags.writeable = False
        self._best[id(s)] = (s, result)
        return result

    def _best_of(self, s: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        llr = self.stats(s, self.starts, self.stops)
        rows = np.arange(llr.shape[0])
        first = np.argmax(llr, axis=1)
        e_total = s.e.sum(axis=1)
        ce = np.concatenate([np.zeros((s.e.shape[0], 1)), np.cumsum(s.e, axis=1)], axis=1)
        e_in = ce[rows, self.stops[first]] - ce[rows, self.starts[first]]
        c = level_prior_strength(e_total - e_in)[:, None]
        llr = self.stats(s, self.starts, self.stops, c)
        top = llr.max(axis=1, keepdims=True)
        length = (self.stops - self.starts).astype(float)
        near = llr >= top - WINDOW_TIE
        pick = np.argmin(np.where(near, length[None, :], np.inf), axis=1)
        starts, stops = self.starts[pick].copy(), self.stops[pick].copy()
        busy = s.n > 0
        for r in rows:
            inside = np.flatnonzero(busy[r, starts[r] : stops[r]])
            if inside.size:
                starts[r], stops[r] = starts[r] + inside[0], starts[r] + inside[-1] + 1
        # The statistic of the chosen window under its own prior, as ``at`` gives it.
        o_in = np.array([s.o[r, starts[r] : stops[r]].sum() for r in rows])
        e_in = ce[rows, stops] - ce[rows, starts]
        o_total = s.o.sum(axis=1)
        final = window_llr(o_in, e_in, o_total - o_in, e_total - e_in)
        return starts, stops, final

    def at(self, s: Series, window: Window) -> np.ndarray:
        """Statistic of every row on one window."""
        return self.stats(s, np.array([window.start]), np.array([window.stop]))[:, 0]

    @property
    def windows(self) -> int:
        """How many windows each series is scanned over."""
        return len(self.starts)


def span(s: Series, row: int, start: int, stop: int) -> tuple[float, float, float]:
    """Observed, expected and defined counts of one row of a series over [start, stop)."""
    if stop <= start:
        return 0.0, 0.0, 0.0
    return (
        float(s.o[row, start:stop].sum()),
        float(s.e[row, start:stop].sum()),
        float(s.n[row, start:stop].sum()),
    )
