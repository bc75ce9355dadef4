"""The online detector: the separation's scan statistic over every window ending now.

Per slice (every request; each value of each watched dimension; for numeric
dimensions each power-of-two bucket and each range above or below a bucket
edge) and per signal, the hourly series of observed (O) and expected (E, from
the baseline model) counts over the horizon are scaled by the signal's
dispersion (quasi-Poisson, ``separation.baseline.dispersion``) and every window
that ends at the newest hour, 1 to ``max_window_hours`` long, gets the
separation's statistic (``separation.statistic.window_llr``): the window's
count against the slice's own level over the rest of the horizon, a level held
to the model when the slice has little history (so a new slice is compared
with what its siblings would have). The best window of a slice and signal is
a generalised likelihood ratio test for a rise that began at any of those hours
and lasts until now: a sequential test, run again every cycle.

A slice *fires* when its statistic reaches the threshold (calibrated on
bug-free data for a target false-alarm rate, see ``calibration``) and its rate
in the window is at least ``min_ratio`` times its level with at least
``min_excess`` requests above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from forensics.separation.baseline import dispersion
from forensics.separation.statistic import (
    CHI2_GAIN,
    Series,
    level_prior_strength,
    window_llr,
)
from forensics.watch.params import WatchParams
from forensics.watch.store import ALL, bucket_range

__all__ = ["Firing", "Scan", "Slice", "scan"]

WINDOW_TIE = 0.5
"""Windows whose statistic is this close to the best count as tied; the shortest wins."""


@dataclass(frozen=True)
class Slice:
    """A slice of requests the detector watches."""

    dim: str
    """Its dimension; ``""`` for every request."""
    value: str | None
    """The value as text (a numeric bucket's lower edge); None for a missing value."""
    side: str = "="
    """``=`` one value or bucket; ``>=`` / ``<`` every bucket from / below the edge."""

    def predicate(self, kinds: Mapping[str, str]) -> dict[str, Any]:
        """The slice as a predicate (``Where`` mapping form).

        Examples
        --------
        >>> Slice("batch_size", "64", ">=").predicate({"batch_size": "numeric"})
        {'batch_size': {'gte': 64.0}}
        >>> Slice("model", "a").predicate({"model": "categorical"})
        {'model': ['a']}
        """
        if self.dim == ALL:
            return {}
        if kinds.get(self.dim) != "numeric" or self.value is None:
            return {self.dim: [self.value]}
        if self.side == ">=":
            return {self.dim: {"gte": float(self.value)}}
        if self.side == "<":
            return {self.dim: {"lt": float(self.value)}}
        return {self.dim: bucket_range(self.value)}


@dataclass(frozen=True)
class Firing:
    """A slice and signal whose rise, over a window ending now, passed the threshold."""

    slice: Slice
    """Where."""
    signal: str
    """Which symptom."""
    start_hour: int
    """First hour of the window (epoch hours); it ends with the newest hour."""
    onset_range: tuple[int, int]
    """First hours whose window's statistic is within ``CHI2_GAIN`` of the best."""
    statistic: float
    """The scan statistic of the window (after dispersion)."""
    observed: float
    """Requests with the signal in the window."""
    expected: float
    """...expected by the model times the slice's level outside the window."""
    ratio: float
    """observed / expected."""


@dataclass(frozen=True)
class Scan:
    """One cycle's scan."""

    newest_hour: int
    """The hour the windows end with."""
    firings: tuple[Firing, ...]
    """Slices at or above the threshold and the effect-size floors, strongest first."""
    top: float
    """The largest statistic of any slice passing the effect-size floors (0 if none):
    what calibration records."""
    dispersion: dict[str, float] = field(default_factory=dict)
    """Per signal, the dispersion factor used."""


def _matrices(
    frame: pl.DataFrame, first: int, hours: int, signals: Sequence[str], kinds: Mapping[str, str]
) -> tuple[list[Slice], np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], list[bool]]:
    """Slices, their requests per hour, per signal (O, E) per hour; whether each is a value.

    Tails of numeric dimensions are sums of their buckets.
    """
    keys = (
        frame.select("dim", "value")
        .unique()
        .sort(["dim", "value"], nulls_last=True)
        .with_row_index("_slice")
    )
    base: list[Slice] = [Slice(d, v) for d, v in keys.select("dim", "value").iter_rows()]
    located = frame.join(keys, on=["dim", "value"], how="left", nulls_equal=True)
    rows = located["_slice"].to_numpy().astype(int)
    cols = located["hour"].to_numpy().astype(int) - first

    def grid(column: str) -> np.ndarray:
        out = np.zeros((len(base), hours))
        out[rows, cols] = located[column].to_numpy().astype(float)  # one row per slice and hour
        return out

    requests = grid("requests")
    per = {s: (grid("k__" + s), grid("e__" + s)) for s in signals}
    slices, single = list(base), [s.dim != ALL for s in base]
    extra_rows: list[list[int]] = []
    for dim in sorted({s.dim for s in base if kinds.get(s.dim) == "numeric"}):
        buckets = sorted(
            (float(s.value), i) for i, s in enumerate(base) if s.dim == dim and s.value is not None
        )
        for j in range(1, len(buckets)):
            edge = base[buckets[j][1]].value
            slices.append(Slice(dim, edge, ">="))
            extra_rows.append([i for _, i in buckets[j:]])
            slices.append(Slice(dim, edge, "<"))
            extra_rows.append([i for _, i in buckets[:j]])
            single += [False, False]
    if extra_rows:

        def tails(x: np.ndarray) -> np.ndarray:
            return np.vstack([x, *(x[r].sum(axis=0, keepdims=True) for r in extra_rows)])

        requests = tails(requests)
        per = {s: (tails(o), tails(e)) for s, (o, e) in per.items()}
    return slices, requests, per, single


def scan(
    frame: pl.DataFrame,
    *,
    signals: Sequence[str],
    newest_hour: int,
    kinds: Mapping[str, str],
    params: WatchParams,
    threshold: float,
) -> Scan:
    """Scan every slice and signal of ``frame`` (``store.read_series``) over windows ending now.

    ``kinds`` maps each watched dimension to its kind (numeric ones get tails).
    """
    first = newest_hour - params.horizon_hours + 1
    if frame.height == 0:
        return Scan(newest_hour, (), 0.0)
    frame = frame.filter(pl.col("hour") >= first)
    slices, requests, per, single = _matrices(frame, first, params.horizon_hours, signals, kinds)
    longest = min(params.max_window_hours, params.horizon_hours - 1)
    firings: list[Firing] = []
    top = 0.0
    scales = {}
    for s in signals:
        o_raw, e_raw = per[s]
        if not e_raw.any():
            continue
        picked = np.flatnonzero(single)
        phi = dispersion([Series(o_raw[picked], e_raw[picked], requests[picked])])
        scales[s] = phi
        o, e = o_raw / phi, e_raw / phi
        # windows ending now: the last w hours, w = 1..longest
        o_in = np.cumsum(o[:, ::-1], axis=1)[:, :longest]
        e_in = np.cumsum(e[:, ::-1], axis=1)[:, :longest]
        o_out = o.sum(axis=1, keepdims=True) - o_in
        e_out = e.sum(axis=1, keepdims=True) - e_in
        llr = window_llr(o_in, e_in, o_out, e_out)
        c = level_prior_strength(e_out)
        level = (o_out + c - 1) / (e_out + c)
        expected_raw = np.cumsum(e_raw[:, ::-1], axis=1)[:, :longest] * level
        observed_raw = np.cumsum(o_raw[:, ::-1], axis=1)[:, :longest]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(expected_raw > 0, observed_raw / expected_raw, np.inf)
        big = (ratio >= params.min_ratio) & (observed_raw - expected_raw >= params.min_excess)
        llr = np.where(big, llr, 0.0)
        best = llr.max(axis=1)
        top = max(top, float(best.max(initial=0.0)))
        for r in np.flatnonzero(best >= threshold):
            near = np.flatnonzero(llr[r] >= best[r] - WINDOW_TIE)
            w = int(near.min())  # the shortest of the tied windows
            spread = np.flatnonzero(llr[r] >= best[r] - CHI2_GAIN)
            busy = np.flatnonzero(requests[r, params.horizon_hours - w - 1 :] > 0)
            start = newest_hour - w + (int(busy[0]) if busy.size else 0)
            firings.append(
                Firing(
                    slice=slices[r],
                    signal=s,
                    start_hour=start,
                    onset_range=(newest_hour - int(spread.max()), newest_hour - int(spread.min())),
                    statistic=float(llr[r, w]),
                    observed=float(observed_raw[r, w]),
                    expected=float(expected_raw[r, w]),
                    ratio=float(ratio[r, w]),
                )
            )
    firings.sort(key=lambda f: -f.statistic)
    return Scan(newest_hour, tuple(firings), top, scales)
