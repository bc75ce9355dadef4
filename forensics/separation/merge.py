"""One problem, one signature: drop a signature that repeats another found before it.

The search sets a signature's rows aside only for the signals it raises, so
the same problem can come back on another signal cut down to the rows where
that signal can show (English prose for a foreign-script symptom, greedy
requests for an argmax violation), or as the same slice with a longer value
list and an overlapping window. Two signatures are one problem when their
windows mostly coincide (``WINDOW_OVERLAP``, the Jaccard of their time spans)
and so do their rows (``ROW_OVERLAP``, the Jaccard of the requests they cover,
counted where the later one's signal is defined: where it could have shown
at all). Of the two, the one covering more requests stays (a predicate must
not be restricted to where a symptom is observable unless the bug itself
is); its symptoms are then measured again (``symptoms.disentangle``), so the
other's signal shows among them when it rises in the kept rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from forensics.separation.symptoms import Cover
from forensics.signature import Signature

__all__ = ["ROW_OVERLAP", "WINDOW_OVERLAP", "duplicates"]

ROW_OVERLAP = 0.5
"""Jaccard of two signatures' requests above which they are one problem..."""

WINDOW_OVERLAP = 0.5
"""...when the Jaccard of their time windows is above this too."""


def duplicates(cover: Cover, found: Sequence[Signature], data_end: datetime) -> list[int]:
    """Positions of the signatures to keep, in order: one per problem."""
    dropped: set[int] = set()
    for b in range(len(found)):
        for a in range(b):
            if a in dropped or b in dropped:
                continue
            if _window_overlap(found[a], found[b], data_end) < WINDOW_OVERLAP:
                continue
            defined = cover.n[found[b].signal] > 0
            rows_a = cover.inside[a] & defined
            rows_b = cover.inside[b] & defined
            n = cover.n[found[b].signal]
            both = float(n[rows_a & rows_b].sum())
            size_a, size_b = float(n[rows_a].sum()), float(n[rows_b].sum())
            union = size_a + size_b - both
            if union <= 0 or both / union < ROW_OVERLAP:
                continue
            total_a = _requests(cover, a)
            total_b = _requests(cover, b)
            dropped.add(b if total_a >= total_b else a)
    return [i for i in range(len(found)) if i not in dropped]


def _requests(cover: Cover, i: int) -> float:
    """Requests a signature covers where any signal is defined."""
    counts = np.zeros_like(cover.inside[i], dtype=np.int64)
    for n in cover.n.values():
        counts = np.maximum(counts, n)
    return float(counts[cover.inside[i]].sum())


def _window_overlap(a: Signature, b: Signature, data_end: datetime) -> float:
    """Jaccard of two signatures' time windows (an open end is the end of the data)."""
    a_end, b_end = a.end or data_end, b.end or data_end
    both = (min(a_end, b_end) - max(a.start, b.start)).total_seconds()
    union = (max(a_end, b_end) - min(a.start, b.start)).total_seconds()
    return max(both, 0.0) / union if union > 0 else 0.0
