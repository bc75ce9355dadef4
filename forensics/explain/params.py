"""Every threshold of the explanation method, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExplainParams"]


@dataclass(frozen=True)
class ExplainParams:
    """The knobs of ``forensics.explain``; the defaults are the documented method."""

    baseline: int = 60
    """Buckets of recent past each slice is compared with (fewer when the data start later)."""
    span: int = 5
    """Buckets explained together, from the moment on (fewer at the end of the data)."""
    explained: float = 0.8
    """A finer conjunction replaces a coarser one only if it holds this share of its excess."""
    whole_share: float = 0.05
    """...and leaves out at least this share of its requests..."""
    part_raise: float = 0.25
    """...at baseline, rather than raised by this share of the raise of the part kept..."""
    normal_llr: float = 3.0
    """...more likely by this many nats..."""
    coarse_p: float = 0.01
    """...and by more than a whole coarser one shows by chance in this share of draws..."""
    coarse_draws: int = 400
    """...of its counts (how many draws)."""
    min_share: float = 0.02
    """An element joins an explanation only if it holds this share of the moment's excess."""
    false_alarm: float = 0.01
    """Chance, on data without anomaly, that any element examined looks anomalous."""
    min_ratio: float = 1.2
    """An anomalous element's rate is at least this many times its baseline."""
    expand_llr: float = 1.0
    """An element's children are examined when its log-likelihood ratio reaches this..."""
    expand_share: float = 0.02
    """...and its excess this share of the largest excess of a single value."""
    full_depth: int = 2
    """Every combination of up to this many conditions present in the data is examined."""
    max_depth: int = 4
    """Conjunctions hold at most this many conditions."""
    max_elements: int = 5
    """A candidate holds at most this many elements."""
    candidates: int = 5
    """At least this many candidates are returned (when the data hold as many elements)."""
    prior_events: float = 10.0
    """A leaf's own past rate is shrunk towards the rate its values predict by this many events."""
    min_history: int = 10
    """The most anomalous moment is looked for only where this many buckets precede it."""
    scan_span: int = 10
    """...with the evidence of this many buckets from it on (a sustained rise outweighs a
    blip); its onset is placed comparing ``span`` buckets on each side."""
