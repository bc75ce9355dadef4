"""Bugs of the field family: what one is (slice, window, share hit, effects) and applying it.

A bug selects its population (a conjunction over request columns and a time
window), hits each request of it with probability ``intensity`` and applies
its effects to the hit ones. Effects edit the response latents
(``responses.Responses``); each names the signals it raises (``EFFECT_SYMPTOMS``)
and the logged columns it changes (``EFFECT_OUTCOMES``), which the truth lists.
Whether an effect shows depends on the request: a run of letters only in a
language it is foreign to, broken code only where there is a block to check,
an argmax violation only on greedy requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forensics.simulate.field.fleet import Event
from forensics.simulate.field.responses import Responses
from forensics.simulate.field.text import Pools
from forensics.simulate.field.traffic import Traffic

__all__ = [
    "EFFECT_OUTCOMES",
    "EFFECT_SYMPTOMS",
    "SIBLING_MIN_ROWS",
    "Bug",
    "apply_bug",
    "population",
    "sibling_rates",
]

SIBLING_MIN_ROWS = 100
"""A sibling value counts when its symptom is defined on at least this many rows."""

EFFECT_SYMPTOMS: dict[str, tuple[str, ...]] = {
    "quality": ("low_eval", "negative_feedback"),
    "script": ("script_mix",),
    "code": ("code_syntax_error",),
    "argmax": ("argmax_violation",),
    "loop": ("length_limit", "slow", "low_eval", "negative_feedback"),
    "blank": ("low_eval", "negative_feedback"),
    "slow": ("slow",),
}
"""Signals each effect raises."""

EFFECT_OUTCOMES: dict[str, tuple[str, ...]] = {
    "quality": ("eval_score", "user_feedback"),
    "script": ("response_text",),
    "code": ("response_text",),
    "argmax": ("max_token_rank",),
    "loop": ("output_tokens", "finish_reason", "truncated", "latency_ms", "response_text",
             "eval_score", "user_feedback"),
    "blank": ("output_tokens", "response_text", "latency_ms", "max_token_rank", "eval_score",
              "user_feedback"),
    "slow": ("latency_ms", "status_code", "output_tokens", "finish_reason", "truncated",
             "response_text", "max_token_rank", "eval_score", "user_feedback"),
}  # fmt: skip
"""Logged columns each effect changes."""


@dataclass(frozen=True)
class Bug:
    """One injected bug."""

    name: str
    """Unique within a run."""
    kind: str
    """The family kind it belongs to."""
    where: dict[str, tuple[str, ...]]
    """Categorical conditions: column -> values."""
    start: int
    """Onset (epoch ms)."""
    end: int | None
    """End (exclusive); None = active at the end of the data."""
    intensity: float
    """Share of the population hit."""
    effects: tuple[str, ...]
    """Keys of ``EFFECT_SYMPTOMS``."""
    description: str
    """What happened, in a sentence or two."""
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """Numeric conditions: column -> (gte, lt)."""
    scripts: tuple[str, ...] = ("Han",)
    """Scripts of the runs the ``script`` effect inserts."""
    timeout_share: float = 0.0
    """For ``slow``: share of hit requests that time out (status 504)."""
    siblings: str | None = None
    """For a new value: the column whose other values are its siblings."""
    siblings_within: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """...counted among the requests of this parent (its client's releases, its model's
    snapshots); empty: every other value of the column."""
    events: tuple[Event, ...] = ()
    """Change events it leaves (a deploy at its onset, a rollback at its end)."""
    group: str = ""
    """Bugs sharing a cause share a group (default: the name)."""

    @property
    def symptoms(self) -> tuple[str, ...]:
        """Signals it raises, in a fixed order."""
        seen: list[str] = []
        for effect in self.effects:
            seen.extend(s for s in EFFECT_SYMPTOMS[effect] if s not in seen)
        return tuple(seen)

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Logged columns it changes (never a cause: a predicate must not use them)."""
        seen: list[str] = []
        for effect in self.effects:
            seen.extend(c for c in EFFECT_OUTCOMES[effect] if c not in seen)
        return tuple(seen)

    def predicate(self) -> dict[str, object]:
        """The truth's predicate: column -> list of values, or {"gte": x, "lt": y}."""
        out: dict[str, object] = {c: list(v) for c, v in self.where.items()}
        for column, (gte, lt) in self.ranges.items():
            bound: dict[str, float] = {}
            if gte is not None:
                bound["gte"] = gte
            if lt is not None:
                bound["lt"] = lt
            out[column] = bound
        return out


def population(traffic: Traffic, bug: Bug) -> np.ndarray:
    """Requests inside the bug's slice and window (every status)."""
    c = traffic.columns
    mask = c["ts"] >= bug.start
    if bug.end is not None:
        mask &= c["ts"] < bug.end
    for column, values in bug.where.items():
        mask &= np.isin(c[column], list(values))
    for column, (gte, lt) in bug.ranges.items():
        if gte is not None:
            mask &= c[column] >= gte
        if lt is not None:
            mask &= c[column] < lt
    return mask


def apply_bug(
    bug: Bug, traffic: Traffic, r: Responses, pools: Pools, rng: np.random.Generator
) -> np.ndarray:
    """Apply the bug to ``r`` in place; return the requests it hit."""
    n = traffic.rows
    hit = population(traffic, bug) & (r.status == 200) & (rng.random(n) < bug.intensity)
    draws = rng.random(n)
    for effect in bug.effects:
        if effect == "quality":
            r.bad |= hit
        elif effect == "script":
            where = hit & pools.insertable[r.draft] & ~r.loop & ~r.blank
            scripts = np.array(bug.scripts, dtype=object)
            r.run[where] = scripts[(draws[where] * len(scripts)).astype(int)]
        elif effect == "code":
            r.broken |= hit & pools.checked[r.draft]
        elif effect == "argmax":
            r.argmax |= hit & (traffic.columns["temperature"] == 0)
        elif effect == "loop":
            r.loop |= hit
            r.bad |= hit
        elif effect == "blank":
            r.blank |= hit
            r.bad |= hit
        elif effect == "slow":
            r.slow[hit] *= 3 + 3 * draws[hit]
            r.status[hit & (draws < bug.timeout_share)] = 504
        else:
            raise ValueError(f"unknown effect {effect!r}")
    return hit


def _tally(values: np.ndarray) -> dict[str, Any]:
    defined = ~np.isnan(values)
    n = int(defined.sum())
    k = int(np.nansum(values))
    return {"defined_rows": n, "observed": k, "rate": round(k / n, 6) if n else None}


def sibling_rates(
    bug: Bug, traffic: Traffic, signals: dict[str, np.ndarray], symptom: str
) -> dict[str, Any]:
    """A new value's siblings over the bug's window, each with its rate of ``symptom``.

    Siblings are the other values of its column (within its parent); ``signals`` holds
    1.0 / 0.0 / NaN per request.
    """
    assert bug.siblings is not None
    c = traffic.columns
    column = c[bug.siblings]
    scope = c["ts"] >= bug.start
    if bug.end is not None:
        scope &= c["ts"] < bug.end
    for parent, values in bug.siblings_within.items():
        scope &= np.isin(c[parent], list(values))
    own = set(bug.where[bug.siblings])
    rates: dict[str, dict[str, Any]] = {}
    for value in sorted(set(column[scope].astype(str)) - own):
        tally = _tally(signals[symptom][scope & (column == value)])
        if tally["defined_rows"] >= SIBLING_MIN_ROWS:
            rates[value] = tally
    found = [t["rate"] for t in rates.values()]
    return {
        "column": bug.siblings,
        "within": {k: list(v) for k, v in bug.siblings_within.items()},
        "symptom": symptom,
        "min_defined_rows": SIBLING_MIN_ROWS,
        "min": min(found) if found else None,
        "max": max(found) if found else None,
        "values": rates,
    }
