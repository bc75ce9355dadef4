"""Series storage: counts per time bucket read from the workspace, remembered, scaled.

``SeriesStore.series(signal, predicate, by)`` answers the question every move
asks: the predicate's observed, expected and defined counts per bucket, and one
row per value of each dimension in ``by``, in units of the signal's dispersion
(quasi-Poisson). One workspace query answers it; the result is remembered until
the signal's model is refitted or rows are explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forensics.db import Database
from forensics.separation import workspace
from forensics.separation.predicate import Predicate, Space
from forensics.separation.statistic import Series, Window

__all__ = ["Extra", "Read", "SeriesStore", "minus", "scaled"]

Extra = tuple[str, dict[str, Any]] | None
"""A further SQL condition on the workspace and its parameters (None: none)."""

Read = tuple[Series, dict[str, tuple[list[Any], Series]]]
"""A slice's series and, per dimension, its values and one series row per value."""


@dataclass
class SeriesStore:
    """Reads series of live workspace rows and remembers them."""

    db: Database
    space: Space
    columns: dict[str, str]
    """Workspace column -> type (see ``workspace.columns``)."""
    first: int
    """First time bucket (in buckets since the epoch)."""
    buckets: int
    """Time buckets in the data."""
    hours: int
    """Ticks per bucket (1 or 24 on hour-grained data)."""
    dispersion: dict[str, float] = field(default_factory=dict)
    """Per signal, the factor counts are divided by (see ``baseline.dispersion``)."""
    _series: dict[tuple[Any, ...], Read] = field(default_factory=dict)
    """Series already read, per signal; forgotten when the signal's model or live rows change."""
    _views: dict[tuple[Any, ...], tuple[float, Read]] = field(default_factory=dict)
    """The same in units of the dispersion they were last asked in (see ``series``)."""

    def condition(
        self, predicate: Predicate, window: Window | None = None
    ) -> tuple[str, dict[str, Any]]:
        """SQL over the workspace for a predicate (and a window in buckets), with parameters."""
        params: dict[str, Any] = {}
        sql = workspace.where_sql(self.space.where(predicate), self.columns, params)
        if window is not None:
            sql += " AND _tick >= $h0 AND _tick < $h1"
            params["h0"] = (self.first + window.start) * self.hours
            params["h1"] = (self.first + window.stop) * self.hours
        return sql, params

    @staticmethod
    def key(signal: str, predicate: Predicate, by: Sequence[str], extra: Extra) -> tuple[Any, ...]:
        """What a series is remembered by."""
        if extra == ("true", {}):
            extra = None
        return (signal, frozenset(predicate.items()), tuple(by), repr(extra))

    def forget(self, signal: str) -> None:
        """Drop the remembered series of a signal (its model or its live rows changed)."""
        self._series = {k: v for k, v in self._series.items() if k[0] != signal}
        self._views = {k: v for k, v in self._views.items() if k[0] != signal}

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
        or rows are explained.
        """
        key = self.key(signal, predicate, by, extra)
        phi = self.dispersion.get(signal, 1.0)
        view = self._views.get(key)
        if view is None or view[0] != phi:
            total, out = self.raw(signal, predicate, by, extra)
            parts = {name: (v, scaled(s, phi)) for name, (v, s) in out.items()}
            view = (phi, (scaled(total, phi), parts))
            self._views[key] = view
        return view[1]

    def raw(
        self,
        signal: str,
        predicate: Predicate,
        by: Sequence[str],
        extra: Extra = None,
    ) -> Read:
        """``series`` in requests, not in units of the dispersion; remembered."""
        key = self.key(signal, predicate, by, extra)
        if key not in self._series:
            self._series[key] = self.read(signal, predicate, by, extra)
        return self._series[key]

    def remember(self, signal: str, predicate: Predicate, by: Sequence[str], read: Read) -> None:
        """Store a series computed otherwise (``explain`` subtracts instead of reading)."""
        self._series[self.key(signal, predicate, by, None)] = read

    def remembered(self, signal: str, predicate: Predicate, by: Sequence[str]) -> Read | None:
        """A raw series already read, or None."""
        return self._series.get(self.key(signal, predicate, by, None))

    def read(
        self,
        signal: str,
        predicate: Predicate,
        by: Sequence[str],
        extra: Extra,
    ) -> Read:
        """Counts of live rows (not scaled by the dispersion) from one query."""
        condition, params = self.condition(predicate)
        if extra is not None:
            condition = f"({condition}) AND ({extra[0]})"
            params = {**params, **extra[1]}
        keys = [
            workspace.bucket_index_name(name) if self.space.is_numeric(name) else name
            for name in by
        ]
        frame = workspace.series(
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


def scaled(s: Series, phi: float) -> Series:
    """Counts in units of the dispersion ``phi`` (defined counts stay requests)."""
    return s if phi == 1.0 else Series(s.o / phi, s.e / phi, s.n)


def minus(whole: Read, part: Read) -> Read:
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
