"""Each signature's own symptoms: measured once the other signatures' rows are set aside.

When two problems overlap in rows and time, the rows of one raise the
symptoms of the other: a misrouting signature would list the script_mix of a
corruption bug that hit part of its requests. ``disentangle`` measures every
signature's symptoms again with, for each signal, the rows of the *other*
signatures that own that signal left out (inside, outside the window and in
the parents alike), so that a symptom is listed only when it rises in the
signature's own rows, each with its own interval. A signature owns the signal
it was found on and, after a first pass, the signals elevated in its own rows.
For the signal a signature was found on, only the rows of signatures found
before it are left out, as the search left them out when it found it.

All counts come from one scan of ``requests`` (``Cover.read``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from forensics import queries
from forensics.db import Database
from forensics.separation.evidence import Counts, measure
from forensics.separation.params import SeparationParams
from forensics.signature import Signature

__all__ = ["Cover", "disentangle"]

PASSES = 2
"""First with each signature owning its primary signal, then its elevated ones too."""


def disentangle(
    cover: Cover,
    found: Sequence[Signature],
    signals: Sequence[str],
    params: SeparationParams,
) -> list[Signature]:
    """The signatures with their symptoms measured on their own rows (see module).

    ``cover`` holds the rows of ``found`` (``Cover.read``).
    """
    if len(found) < 2:
        return list(found)
    owners = [{sig.signal} for sig in found]
    out = list(found)
    for _ in range(PASSES):
        out = [_measured(cover, i, sig, owners, signals, params) for i, sig in enumerate(found)]
        owners = [{sig.signal, *new.signals} for sig, new in zip(found, out, strict=True)]
    return out


class Cover:
    """Boolean masks over the rows of ``queries.cover_counts`` for each signature's parts."""

    def __init__(
        self, frame: pl.DataFrame, found: Sequence[Signature], signals: Sequence[str]
    ) -> None:
        self.n = {s: frame[f"n__{s}"].to_numpy().astype(np.int64) for s in signals}
        self.k = {s: frame[f"k__{s}"].to_numpy().astype(np.int64) for s in signals}
        self.inside: list[np.ndarray] = []
        self.outside: list[np.ndarray] = []
        self.parents: list[dict[str, np.ndarray]] = []
        for i, sig in enumerate(found):
            flags = [frame[f"c{i}_{j}"].to_numpy() for j in range(len(sig.predicate))]
            period = frame[f"p{i}"].to_numpy()
            every = np.logical_and.reduce(flags) if flags else np.ones(frame.height, bool)
            self.inside.append(every & (period == 1))
            self.outside.append(every & ((period == 0) | (period == 2)))
            parents = {}
            for j, name in enumerate(sig.predicate):
                rest = [f for m, f in enumerate(flags) if m != j]
                held = np.logical_and.reduce(rest) if rest else np.ones(frame.height, bool)
                parents[name] = held & (period == 1)
            self.parents.append(parents)

    @classmethod
    def read(cls, db: Database, found: Sequence[Signature], signals: Sequence[str]) -> Cover:
        """Count the rows of every signature, its window and parents in one scan."""
        slices = [
            (
                sig.predicate,
                (sig.start, sig.end),
                (sig.onset_range[0], None if sig.end_range is None else sig.end_range[1]),
            )
            for sig in found
        ]
        return cls(queries.cover_counts(db, slices, signals), found, signals)

    def keep(self, kept: Sequence[int]) -> Cover:
        """The same rows, for the signatures at positions ``kept`` only."""
        out = object.__new__(Cover)
        out.n, out.k = self.n, self.k
        out.inside = [self.inside[i] for i in kept]
        out.outside = [self.outside[i] for i in kept]
        out.parents = [self.parents[i] for i in kept]
        return out

    def counts(
        self, rows: np.ndarray, signals: Sequence[str], away: dict[str, np.ndarray]
    ) -> Counts:
        """Per signal, (defined, true) over ``rows`` less the rows set ``away`` for it."""
        return {
            s: (int(self.n[s][rows & ~away[s]].sum()), int(self.k[s][rows & ~away[s]].sum()))
            for s in signals
        }


def _measured(
    cover: Cover,
    i: int,
    sig: Signature,
    owners: Sequence[set[str]],
    signals: Sequence[str],
    params: SeparationParams,
) -> Signature:
    """Signature ``i`` measured with the rows other signatures own left out, per signal."""
    none = np.zeros_like(cover.inside[i])
    away = {}
    for s in signals:
        others = [
            cover.inside[m]
            for m, owned in enumerate(owners)
            if m != i and s in owned and (s != sig.signal or m < i)
        ]
        away[s] = np.logical_or.reduce(others) if others else none
    found = measure(
        params,
        sig.signal,
        sig.predicate,
        signals,
        cover.counts(cover.inside[i], signals, away),
        cover.counts(cover.outside[i], signals, away),
        {name: cover.counts(rows, signals, away) for name, rows in cover.parents[i].items()},
    )
    return replace(
        sig,
        **found.signature_fields(),
    )
