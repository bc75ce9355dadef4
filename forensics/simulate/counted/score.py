"""Scoring explanations the way the root-cause-localisation literature does.

A case's truth is a set of elements (conjunctions attribute -> value); an
answer is a ranked list of candidates, each a set of elements. Per case:

- **exact match**: the first candidate's elements are exactly the true ones;
- **true/false positives, false negatives** of the first candidate, element by
  element (an element counts only when it is exactly a true element: a
  coarser or finer conjunction is a false positive and leaves a false
  negative), summed over cases into a **micro-F1** (as Squeeze, RiskLoc and
  PSqueeze report);
- **hit@k**: every true element is among the elements of the first ``k``
  candidates;
- **onset**: the moment found, in minutes from the true onset.

Nothing here knows how an answer was made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CaseScore", "Summary", "score_case", "summarize"]

Element = frozenset[tuple[str, Any]]


def element_key(element: Mapping[str, Any]) -> Element:
    """An element as a hashable set of (attribute, value) pairs."""
    return frozenset((str(k), v) for k, v in element.items())


@dataclass(frozen=True)
class CaseScore:
    """How one answer scores against one case's truth."""

    exact: bool
    """The first candidate is exactly the true set of elements."""
    tp: int
    """True elements in the first candidate."""
    fp: int
    """Other elements in the first candidate."""
    fn: int
    """True elements missing from the first candidate."""
    hit_rank: int | None
    """The smallest k such that every true element is among the first k candidates."""
    onset_error: int | None
    """Minutes from the true onset to the moment the answer names (None: not asked)."""

    def hit(self, k: int) -> bool:
        """Whether every true element is among the first ``k`` candidates."""
        return self.hit_rank is not None and self.hit_rank <= k


def score_case(
    truth: Iterable[Mapping[str, Any]],
    candidates: Sequence[Iterable[Mapping[str, Any]]],
    *,
    onset_error: int | None = None,
) -> CaseScore:
    """Score a ranked list of candidates (each an iterable of elements) against the truth.

    Examples
    --------
    >>> truth = [{"region": "eu", "pool": "p7"}]
    >>> s = score_case(truth, [[{"region": "eu"}], [{"region": "eu", "pool": "p7"}]])
    >>> s.exact, s.tp, s.fp, s.fn, s.hit_rank
    (False, 0, 1, 1, 2)
    """
    wanted = {element_key(e) for e in truth}
    ranked = [{element_key(e) for e in c} for c in candidates]
    first = ranked[0] if ranked else set()
    hit_rank = None
    seen: set[Element] = set()
    for rank, elements in enumerate(ranked, start=1):
        seen |= elements
        if wanted <= seen:
            hit_rank = rank
            break
    return CaseScore(
        exact=first == wanted,
        tp=len(first & wanted),
        fp=len(first - wanted),
        fn=len(wanted - first),
        hit_rank=hit_rank,
        onset_error=onset_error,
    )


@dataclass(frozen=True)
class Summary:
    """Scores over many cases."""

    cases: int
    """How many."""
    exact: float
    """Share of cases whose first candidate is exactly the truth."""
    precision: float
    """Micro precision of the first candidate's elements."""
    recall: float
    """Micro recall."""
    f1: float
    """Micro F1."""
    hit: dict[int, float]
    """k -> share of cases with every true element among the first k candidates."""
    onset_within: float | None
    """Share of cases whose onset error is at most ``tolerance`` minutes (None: not asked)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "cases": self.cases,
            "exact": self.exact,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "hit": {str(k): v for k, v in self.hit.items()},
            "onset_within": self.onset_within,
        }


def summarize(
    scores: Sequence[CaseScore], *, ks: Sequence[int] = (1, 3, 5), tolerance: int = 1
) -> Summary:
    """Micro-F1 of the first candidate, hit@k and onset accuracy over cases.

    Examples
    --------
    >>> a = score_case([{"a": 1}], [[{"a": 1}]], onset_error=0)
    >>> b = score_case([{"a": 1}, {"a": 2}], [[{"a": 1}], [{"a": 2}]], onset_error=3)
    >>> s = summarize([a, b])
    >>> round(s.f1, 3), s.hit, s.onset_within
    (0.8, {1: 0.5, 3: 1.0, 5: 1.0}, 0.5)
    """
    tp = sum(s.tp for s in scores)
    fp = sum(s.fp for s in scores)
    fn = sum(s.fn for s in scores)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    count = len(scores)
    timed = [s.onset_error for s in scores if s.onset_error is not None]
    return Summary(
        cases=count,
        exact=sum(s.exact for s in scores) / count if count else 0.0,
        precision=precision,
        recall=recall,
        f1=f1,
        hit={k: sum(s.hit(k) for s in scores) / count if count else 0.0 for k in ks},
        onset_within=sum(abs(e) <= tolerance for e in timed) / len(timed) if timed else None,
    )
