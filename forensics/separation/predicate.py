"""What the search searches over: conditions, predicates, the dimensions' space, candidates.

A predicate is a conjunction of conditions, one per dimension: a set of values
of a categorical column, or a range of a numeric column's fine buckets (whose
edges ``moves.edges`` may later move to the data). Its description cost
(``Space.penalty``) is the log of the number of predicates of its shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from forensics.queries import Dimension, Where
from forensics.separation.statistic import Window

__all__ = ["Candidate", "Condition", "Predicate", "Space", "log_comb"]


@dataclass(frozen=True)
class Condition:
    """Values of a categorical column, or a range of bucket indices of a numeric one.

    A numeric range may carry refined edges (``gte``, ``lt``: raw values of the
    column, found by ``moves.edges``) with the ranges within which each
    edge lies; the bucket indices still say which buckets it spans.
    """

    values: frozenset[Any] = frozenset()
    low: int = 0
    high: int = -1
    gte: float | None = None
    """Refined lower edge (inclusive), instead of the lower bucket's edge."""
    lt: float | None = None
    """Refined upper edge (exclusive), instead of the next bucket's edge."""
    gte_range: tuple[float, float] | None = None
    """Where the lower edge lies (profile-likelihood range)."""
    lt_range: tuple[float, float] | None = None
    """Where the upper edge lies (profile-likelihood range)."""


Predicate = dict[str, Condition]


@dataclass
class Space:
    """The dimensions searched and their numeric bucket edges."""

    dims: dict[str, Dimension]
    edges: dict[str, tuple[float, ...]]

    def is_numeric(self, name: str) -> bool:
        """Whether a dimension is numeric (searched as ranges of buckets)."""
        return self.dims[name].kind == "numeric"

    def bounds(self, name: str, cond: Condition) -> tuple[float | None, float | None]:
        """A numeric condition's lower (inclusive) and upper (exclusive) values; None = open."""
        edges = self.edges[name]
        low = cond.gte if cond.gte is not None else (edges[cond.low] if cond.low > 0 else None)
        high = (
            cond.lt
            if cond.lt is not None
            else (edges[cond.high + 1] if cond.high + 1 < len(edges) else None)
        )
        return low, high

    def where(self, predicate: Predicate) -> Where:
        """The predicate as a filter (valid on the workspace and on ``requests``)."""
        mapping: dict[str, Any] = {}
        for name, cond in predicate.items():
            if self.is_numeric(name):
                low, high = self.bounds(name, cond)
                spec = {}
                if low is not None:
                    spec["gte"] = low
                if high is not None:
                    spec["lt"] = high
                mapping[name] = spec
            else:
                mapping[name] = sorted(cond.values, key=lambda v: (v is None, str(v)))
        return Where.parse(mapping)

    def public(self, predicate: Predicate) -> dict[str, Any]:
        """The JSON form: column -> values, or {"gte", "lt"}."""
        out = self.where(predicate).to_dict()
        return {name: out[name] for name in sorted(out)}

    def edge_ranges(self, predicate: Predicate) -> dict[str, dict[str, list[float]]]:
        """Per refined numeric condition, where each edge lies: {"gte": [lo, hi], "lt": ...}."""
        out: dict[str, dict[str, list[float]]] = {}
        for name in sorted(predicate):
            cond = predicate[name]
            ranges = {
                key: [float(r[0]), float(r[1])]
                for key, r in (("gte", cond.gte_range), ("lt", cond.lt_range))
                if r is not None
            }
            if ranges:
                out[name] = ranges
        return out

    def penalty(self, predicate: Predicate) -> float:
        """Log of the number of predicates of this shape the search could have chosen.

        Per condition: which dimension (log D) and which values (log C(V, m) for m
        of V values, log B(B + 1) / 2 for a range of B buckets). Maximising the
        statistic minus this cost keeps predicates minimal: a value or a
        condition stays only if it earns more than the freedom it adds, and a
        set of noisy values picked for their high ratios never does.
        """
        cost = 0.0
        dims = max(len(self.dims), 1)
        for name, cond in predicate.items():
            cost += math.log(dims)
            if self.is_numeric(name):
                b = len(self.edges[name])
                cost += math.log(max(b * (b + 1) // 2, 1))
            else:
                v = max(self.dims[name].cardinality + 1, len(cond.values))
                cost += log_comb(v, len(cond.values))
        return cost

    def single(self, name: str, value: Any) -> Condition | None:
        """The condition holding one value (a numeric bucket by its lower edge); None for null."""
        if not self.is_numeric(name):
            return Condition(values=frozenset([value]))
        if value is None:
            return None
        i = self.edges[name].index(float(value))
        return Condition(low=i, high=i)

    def rows(self, name: str, values: list[Any], cond: Condition) -> list[int]:
        """Rows of a dimension's series (one per value) that a condition keeps."""
        if not self.is_numeric(name):
            return [r for r, v in enumerate(values) if v in cond.values]
        edges = self.edges[name]
        return [
            r
            for r, v in enumerate(values)
            if v is not None and cond.low <= edges.index(float(v)) <= cond.high
        ]

    def state(self, predicate: Predicate) -> str:
        """A key telling predicates apart (their JSON form)."""
        return repr(sorted(self.public(predicate).items()))


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


def log_comb(n: int, k: int) -> float:
    """Log C(n, k).

    Examples
    --------
    >>> round(log_comb(300, 1), 3), log_comb(5, 5)
    (5.704, 0.0)
    """
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
