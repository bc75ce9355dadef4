"""The truth of a field-family run: each bug's predicate, window, symptoms and what shows.

Same format as the tuning library's ``truth.json`` (``forensics.evaluate``
reads it): ``scenario``, ``seed``, ``rows``, ``start``, ``end``, ``bugs`` with
``name``, ``group``, ``predicate``, ``start``, ``end``, ``symptoms``,
``description``; plus per bug its ``kind``, ``outcomes`` (columns it changes,
never a cause), ``edges`` for numeric thresholds, ``injected`` (rows, hits,
and per symptom the rate inside with and without the bug, counted the way the
signals count: on the rows where each is defined) and, for a new value,
``siblings`` (the other values of its column over the same hours, within its
parent: its client's other releases, its model's other snapshots).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forensics.simulate.field.bugs import Bug, population, sibling_rates
from forensics.simulate.field.fleet import Fleet, iso
from forensics.simulate.field.traffic import Traffic

__all__ = ["bug_entry", "truth_document"]


def _rate(values: np.ndarray) -> dict[str, Any]:
    defined = ~np.isnan(values)
    n = int(defined.sum())
    k = int(np.nansum(values))
    return {"defined_rows": n, "observed": k, "rate": round(k / n, 6) if n else None}


def bug_entry(
    bug: Bug,
    traffic: Traffic,
    hit: np.ndarray,
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
) -> dict[str, Any]:
    """One bug of ``truth.json``: ``before``/``after`` are the intended signals without/with bugs."""
    inside = population(traffic, bug)
    signals = {}
    for s in bug.symptoms:
        now, then = _rate(after[s][inside]), _rate(before[s][inside])
        signals[s] = {
            "defined_rows": now["defined_rows"],
            "observed": now["observed"],
            "rate_inside": now["rate"],
            "without_bug": then["observed"],
            "rate_without_bug": then["rate"],
            "excess": now["observed"] - then["observed"],
        }
    main = max(bug.symptoms, key=lambda s: signals[s]["excess"])
    entry: dict[str, Any] = {
        "name": bug.name,
        "group": bug.group or bug.name,
        "kind": bug.kind,
        "predicate": bug.predicate(),
        "start": iso(bug.start),
        "end": None if bug.end is None else iso(bug.end),
        "symptoms": list(bug.symptoms),
        "outcomes": list(bug.outcomes),
        "description": bug.description,
        "injected": {
            "population_rows": int(inside.sum()),
            "hit_rows": int(hit.sum()),
            "users_hit": int(np.unique(traffic.columns["user_id"][hit].astype(str)).size),
            "intensity": round(bug.intensity, 4),
            "effects": list(bug.effects),
            "main_symptom": main,
            "signals": signals,
        },
    }
    if bug.ranges:
        entry["edges"] = {c: {"gte": gte} for c, (gte, _) in bug.ranges.items() if gte is not None}
    if bug.siblings:
        entry["siblings"] = sibling_rates(bug, traffic, after, main)
    return entry


def truth_document(
    kind: str,
    *,
    seed: int,
    rows: int,
    fleet: Fleet,
    bugs: list[dict[str, Any]],
) -> dict[str, Any]:
    """The whole ``truth.json`` document."""
    return {
        "scenario": f"field-{kind}",
        "family": "field",
        "kind": kind,
        "seed": seed,
        "rows": rows,
        "start": iso(fleet.start),
        "end": iso(fleet.end),
        "bugs": bugs,
        "red_herrings": [{"description": note} for note in fleet.notes],
        "declared_signals": ["length_limit", "slow"],
    }
