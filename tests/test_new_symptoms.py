"""The separation finds each of issue 19's symptom families end to end, on scenarios kept apart.

The scenarios under ``tests/new_symptom_scenarios/`` were written after the detectors'
and the separation's rules, on other slices than the library scenario those were
checked on (``degenerate-answers``), with a background of every new symptom; see the
README there. Each is simulated, ingested, searched and scored against its truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import forensics
from forensics.evaluate import evaluate
from forensics.signature import signatures_to_json
from forensics.simulate import simulate

SCENARIOS = Path(__file__).resolve().parent / "new_symptom_scenarios"

FAMILIES = {
    "repetition": ("repetition", 11),
    "empty_response": ("empty_response", 12),
    "truncated": ("truncated", 13),
    "wrong_language": ("wrong_language", 14),
}
"""Scenario file stem -> (the signal its bug must be found by, the seed)."""


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_separation_finds_a_bug_of_each_new_symptom_family(tmp_path, family):
    signal, seed = FAMILIES[family]
    out = tmp_path / "sim"
    simulate(str(SCENARIOS / f"{family}.toml"), seed=seed, out=out)
    truth = json.loads((out / "truth.json").read_text())
    with forensics.open(tmp_path / "h.duckdb") as wb:
        wb.ingest(out / "requests.parquet", progress=False)
        wb.ingest_events(out / "events.csv")
        found = wb.signatures()
        result = evaluate(wb.db, truth, json.loads(signatures_to_json(found))["signatures"])
    assert result.f1 == 1.0, result.table()
    (sig,) = found
    assert signal in sig.signals, sig.describe()
    (bug,) = truth["bugs"]
    assert sig.predicate.keys() == bug["predicate"].keys(), sig.describe()
    onsets = [abs(x) for x in result.matches["onset_error_hours"].to_list()]
    assert max(onsets) <= 24, result.table()
