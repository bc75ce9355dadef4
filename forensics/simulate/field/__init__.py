"""The field family: request logs written apart from the tuning library, to test the search on.

The simulator in ``forensics/simulate/`` and the separation search were
shaped together. This family is not: its own generator code, phrase banks and
bug kinds (nothing imported from ``engine``, ``spec``, ``text`` or the
scenario files), shaped like serving logs (regions in their time zones,
client release trains, model snapshots rolling out, replicas added, prompt
caching, batch sizes following load, eval scores on a sample of traffic,
baselines drifting by day, week and trend), and never used to tune any
parameter of the method.

One module per job: ``fleet`` (the world of a seed and its change events),
``traffic`` (the requests), ``phrases`` and ``text`` (answers), ``responses``
(baseline quality and the outcome columns), ``bugs`` (a bug and its effects),
``kinds`` (one planner per kind), ``truth`` and ``writer``.

``simulate_field(kind, seed=..., rows=..., out=...)`` writes
``requests.parquet``, ``events.csv``, ``truth.json`` and ``mapping.toml``
(the family's declared signals, to pass to ``ingest(..., mapping=...)``) and
returns the truth. Same kind, seed and rows: same bytes.

>>> sorted(KINDS)[:3]
['effect-columns', 'new-value', 'null']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forensics.simulate.field.bugs import apply_bug
from forensics.simulate.field.fleet import draw_fleet
from forensics.simulate.field.kinds import KINDS as _PLANNERS
from forensics.simulate.field.phrases import LANGUAGES
from forensics.simulate.field.responses import draw_responses, intended_signals, outcome_columns
from forensics.simulate.field.text import Pools, render_texts
from forensics.simulate.field.traffic import draw_traffic
from forensics.simulate.field.truth import bug_entry, truth_document
from forensics.simulate.field.writer import write_run

__all__ = ["DEFAULT_ROWS", "KINDS", "default_rows", "simulate_field"]

KINDS: tuple[str, ...] = tuple(_PLANNERS)
"""The kinds of run: new-value, numeric-edge, effect-columns, observable-subset, overlap, null."""

DEFAULT_ROWS = 250_000
"""Rows of a run unless told otherwise (``null`` runs: ``NULL_ROWS``)."""

NULL_ROWS = 150_000
"""Rows of a null run: cheap enough to run a hundred seeds."""


def default_rows(kind: str) -> int:
    """The default size of a run of ``kind``.

    Examples
    --------
    >>> default_rows("null"), default_rows("overlap")
    (150000, 250000)
    """
    return NULL_ROWS if kind == "null" else DEFAULT_ROWS


def simulate_field(kind: str, *, seed: int, rows: int | None = None, out: Path) -> dict[str, Any]:
    """Write one run of ``kind`` to ``out`` and return its truth (the ``truth.json`` document).

    Random streams are split by purpose (world, traffic, texts, responses, bugs),
    so the world of a seed is the same whatever the kind (null runs draw more
    benign changes).
    """
    if kind not in _PLANNERS:
        raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    rows = default_rows(kind) if rows is None else rows
    fleet = draw_fleet(np.random.default_rng([seed, 1]), null=kind == "null")
    traffic = draw_traffic(fleet, rows, np.random.default_rng([seed, 2]))
    pools = Pools(list(LANGUAGES), np.random.default_rng([seed, 3]))
    base = draw_responses(fleet, traffic, pools, np.random.default_rng([seed, 4]))
    plan_rng = np.random.default_rng([seed, 5, KINDS.index(kind)])
    bugs = _PLANNERS[kind](fleet, traffic, base, pools, plan_rng)

    responses = base.copy()
    hits = [apply_bug(bug, traffic, responses, pools, plan_rng) for bug in bugs]
    outcomes = outcome_columns(fleet, traffic, responses)
    before = intended_signals(traffic, base, outcome_columns(fleet, traffic, base), pools)
    after = intended_signals(traffic, responses, outcomes, pools)
    text = render_texts(
        pools,
        draft=responses.draft,
        language=traffic.columns["prompt_language"],
        run=responses.run,
        broken=responses.broken,
        blank=responses.blank,
        loop=responses.loop,
        failed=responses.status != 200,
        cut=outcomes["finish_reason"] == "length",
        rng=np.random.default_rng([seed, 6]),
    )
    truth = truth_document(
        kind,
        seed=seed,
        rows=rows,
        fleet=fleet,
        bugs=[bug_entry(b, traffic, h, before, after) for b, h in zip(bugs, hits, strict=True)],
    )
    events = list(fleet.events) + [e for b in bugs for e in b.events]
    write_run(
        Path(out),
        columns={**traffic.columns, **outcomes, "response_text": text},
        events=[e for e in events if fleet.start <= e.ts < fleet.end],
        truth=truth,
    )
    return truth
