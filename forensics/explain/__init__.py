"""Explain a moment: which conjunctions of dimension values explain an anomaly at a time.

The core reads a Polars frame of counts per time bucket and combination of
values (``t``, the dimensions, ``n`` requests, ``k`` requests showing the
signal; ``table``) and answers, for a moment ``at`` (or, with none, the onset
of the most anomalous moment it finds: ``moment``), a ranked list of
candidate explanations. It needs no database: ``Workbench.explain`` builds
the frame with ``forensics.queries.explain_counts`` and passes it here.

The method (written after reading Adtributor, iDice, HotSpot, Squeeze,
PSqueeze, AutoRoot, RiskLoc and BALANCE; their ideas, not their code):

1. **Baseline** (``leaves``). Each leaf (a combination of values present at
   the moment) expects its own recent-past rate (the ``baseline`` buckets
   before, 60 by default), shrunk towards what its values predict, times the
   rise of the rest of the traffic at that moment (observed / expected
   outside the first answer; when that answer is the whole traffic, the
   least over the dimensions of the weighted median of observed / expected
   over their values; never below 1). So an element is anomalous against both its
   own past *and* the rest of the traffic: a slice that merely rose with
   everything is not, a slice that is always worse but did not change is
   not, and a slice already bad before the alert that got worse is (it rose
   against its own past, bad part included). Baselines add up over leaves,
   so excesses of disjoint elements add up too. (HotSpot's and Squeeze's
   forecasts per leaf, iDice's change against the past.)
2. **Evidence** (``statistic``, ``lattice``). An element's score is the
   one-sided binomial log-likelihood ratio of its rate against its baseline
   (nats), divided by the overdispersion measured on the past; it is
   anomalous past a Bonferroni bound over every element examined and at least
   ``min_ratio`` times its baseline. Every conjunction of up to two conditions
   present is counted at once per cuboid; deeper ones only under promising
   parents (pruning by support and by anomaly, as iDice and HotSpot prune).
3. **Granularity** (``granularity``). The first candidate is made of whole
   explanations: anomalous conjunctions that are not too coarse (no part of
   them at baseline while their most raised part holds ``explained``, 80%, of
   their excess) and whose parents are not (the rest of each parent is not
   raised the way they are). This is Squeeze's generalized ripple effect
   (the elements of a root cause deviate alike) turned into a test, with
   operator granularity: the coarsest conjunction explaining most of the
   excess, never a finer subset that drops raised values. Chosen by excess,
   explained away and searched again (RiskLoc's and Adtributor's iteration),
   several failing elements form one candidate.
4. **Ranking** (``candidates``): nested alternatives (coarser and finer),
   other explanations, coarse before fine; each with the share of the excess
   it explains, its rate with a Wilson interval, its baseline rate, its score
   (``result``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import polars as pl

from forensics.errors import QueryError
from forensics.explain.candidates import rank_candidates
from forensics.explain.granularity import choose
from forensics.explain.leaves import moment_leaves
from forensics.explain.moment import find_moment
from forensics.explain.params import ExplainParams
from forensics.explain.result import Candidate, Explanation
from forensics.explain.table import CountsTable, encode_counts
from forensics.queries import as_utc

__all__ = ["Candidate", "ExplainParams", "Explanation", "explain_counts"]


def explain_counts(
    frame: pl.DataFrame,
    *,
    at: str | datetime | None = None,
    dims: Sequence[str] | None = None,
    signal: str | None = None,
    params: ExplainParams | None = None,
    ranges: Mapping[str, Sequence[float]] | None = None,
    grain: timedelta | None = None,
    within: tuple[str | datetime, str | datetime] | None = None,
) -> Explanation:
    """Explain the anomaly at ``at`` (or at the most anomalous moment) in a counts frame.

    Parameters
    ----------
    frame
        ``t`` (bucket start), the dimensions, ``n`` (requests), ``k`` (requests
        showing the signal); see ``forensics.explain.table``.
    at
        A time inside a bucket (ISO-8601 or datetime; naive means UTC). None:
        the onset of the most anomalous moment (``forensics.explain.moment``).
    dims
        The dimension columns (default: every column but ``t``, ``n``, ``k``).
    signal
        The signal's name, for the result.
    params
        Every threshold (``ExplainParams``); ``baseline`` is the number of
        past buckets compared with.
    ranges
        For numeric dimensions whose values are bucket lower edges: the edges,
        so that elements read as ``{"gte": x, "lt": y}``.
    grain
        The bucket length, when known (default: the smallest gap between times).
    within
        With no ``at``: look for the most anomalous moment only in this window
        (start, end; e.g. a bucket of a coarser timeline the investigator clicked).

    Examples
    --------
    >>> from datetime import UTC, timedelta
    >>> t0 = datetime(2025, 1, 1, tzinfo=UTC)
    >>> rows = [
    ...     {"t": t0 + timedelta(minutes=m), "region": r, "pool": p, "n": 1000,
    ...      "k": 200 if (m == 30 and r == "eu" and p == "p1") else 10}
    ...     for m in range(31) for r in ("eu", "us") for p in ("p1", "p2")
    ... ]
    >>> result = explain_counts(pl.DataFrame(rows))
    >>> result.at.minute, result.items[0].elements
    (30, ({'region': 'eu', 'pool': 'p1'},))
    """
    params = params or ExplainParams()
    table = encode_counts(frame, dims, grain=grain)
    evidence = None
    if at is not None and within is not None:
        raise QueryError("give either at= (a moment) or within= (a window to search), not both")
    if at is None:
        window = None if within is None else _bucket_range(table, within)
        moment = find_moment(table, params, within=window)
        index, evidence = moment.onset, moment.evidence
    else:
        asked = as_utc(at, "at")
        assert asked is not None
        index = table.index_of(asked)
    leaves = moment_leaves(table, index, params)
    choice = choose(leaves, params)
    leaves = choice.leaves
    items = rank_candidates(choice, leaves, table.dims, table.values, params, ranges=ranges)
    return Explanation(
        at=table.time(index),
        signal=signal,
        items=items,
        grain=table.grain,
        baseline_buckets=leaves.past_buckets,
        found=at is None,
        evidence=evidence,
        factor=leaves.factor,
        within=None if within is None else (_as_utc(within[0]), _as_utc(within[1])),
    )


def _as_utc(t: str | datetime) -> datetime:
    out = as_utc(t, "within")
    assert out is not None
    return out


def _bucket_range(
    table: CountsTable, within: tuple[str | datetime, str | datetime]
) -> tuple[int, int]:
    """The buckets overlapping a window: (first, one past the last); a ``QueryError`` if none."""
    start, end = _as_utc(within[0]), _as_utc(within[1])
    if end <= start:
        raise QueryError(f"within=({start.isoformat()}, {end.isoformat()}): the end must be later")
    lo = max(0, (start - table.start) // table.grain)
    hi = min(table.buckets, (end - timedelta(microseconds=1) - table.start) // table.grain + 1)
    if hi <= lo:
        raise QueryError(
            f"within=({start.isoformat()}, {end.isoformat()}) holds no time of the data "
            f"({table.start.isoformat()} to {table.time(table.buckets).isoformat()})"
        )
    return int(lo), int(hi)
