"""The thresholds of the signature search, in one place."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SeparationParams"]


@dataclass(frozen=True)
class SeparationParams:
    """Thresholds of the signature search."""

    alpha: float = 0.05
    """Level of the intervals (95%) and of the tests of each symptom and value."""
    false_alarm: float = 0.001
    """A signature needs a calibrated p-value below this (``calibration``): the share of
    searches on data with no bug that would report one. Far stricter than the 5% of
    bug-free runs with any signature that is the target: the table's tail is
    extrapolated from 24 runs per size, and after a bug is explained away its
    residue (edges, users it touched) is not quite bug-free data."""
    min_ratio: float = 1.5
    """A signature must at least multiply its baseline odds by this much (its rate, for
    a rare symptom; ``evidence.odds_ratio``)."""
    min_excess: float = 10.0
    """...and add at least this many requests with the signal."""
    min_outside: int = 30
    """Requests of a slice outside its window needed to use them as its baseline; with
    fewer (traffic that appears only in the window), the baseline is the rest of a
    wider slice in the window."""
    search_rows: int = 2_000_000
    """The search reads a uniform sample of at most this many requests (all of them
    when there are fewer); every signature's counts, symptoms and users are then
    measured on all requests. Its cost follows this number, not the table's size.
    A bug on a small share of traffic needs the sample's rows to show its whole
    window: on 10M rows of postmortem-2025 a 400,000-row sample found the routing
    bug only where it was at its strongest (bench/README.md, Separation)."""
    max_signatures: int = 20
    """Stop after this many signatures."""
    max_conditions: int = 4
    """Most conditions (columns) in one predicate."""
    model_dims: int = 6
    """Dimensions in the baseline model of each signal (those that move its rate most)."""
    model_max_levels: int = 64
    """A dimension with more values than this is searched, never modelled."""
    search_buckets: int = 24
    """Numeric columns are searched over at most this many power-of-two buckets."""
    seeds_per_signal: int = 2
    """Seeds of each signal refined per round before the round gives up on that signal:
    a signal whose strongest seeds are drift the model does not hold (latency over a
    threshold, say) must not keep the others' problems from being looked at."""
    hourly_margin_hours: int = 36
    """How far the hourly refinement may move a day boundary; on data finer than the hour,
    each finer stage moves an edge by the same share of its coarser bucket (90 minutes
    around an hour's edge)."""
