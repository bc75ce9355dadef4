"""Root causes: hand-built signatures and events -> the expected grouping; the shipped sample."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.rootcause import (
    RootCauseParams,
    group_root_causes,
    headline,
    onset_event,
    root_causes_frame,
)
from forensics.scope import scope_conflicts
from forensics.signature import Signature

T0 = datetime(2025, 8, 25, 16, tzinfo=UTC)


def _h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _sig(
    sid: str,
    predicate: dict,
    *,
    signal: str = "script_mix",
    signals: tuple[str, ...] = ("script_mix", "low_eval"),
    onset: tuple[float, float] = (0, 0),
    start: float | None = None,
    end: float | None = 100,
) -> Signature:
    return Signature(
        id=sid,
        predicate=predicate,
        start=_h(onset[1] if start is None else start),
        end=None if end is None else _h(end),
        signal=signal,
        signals=signals,
        symptoms=(),
        baseline="the same slice outside the window",
        excess_rate=0.05,
        ci=(0.04, 0.06),
        excess_requests=50.0,
        requests=1000,
        users=100,
        p_value=1e-12,
        log_likelihood_ratio=40.0,
        onset_range=(_h(onset[0]), _h(onset[1])),
        end_range=None if end is None else (_h(end), _h(end)),
        events=(),
    )


def _event(hours: float, scope: str | None, description: str = "a change", kind: str = "deploy"):
    return {"ts": _h(hours), "kind": kind, "description": description, "scope": scope}


TPU = {"platform": ["tpu"], "surface": ["first-party"]}
ARGMAX = {"signal": "argmax_violation", "signals": ("argmax_violation",)}

CASES = {
    "one change, two models on one platform, ends apart: one cause": (
        [
            _sig("S1", {**TPU, "model": ["sonnet-4"]}, end=194),
            _sig("S2", {**TPU, "model": ["opus-4"]}, onset=(-1, 1), end=78),
        ],
        [_event(0, "platform=tpu; surface=first-party")],
        [("S1", "S2")],
    ),
    "same start, same platform, different symptoms: two causes": (
        [
            _sig("S1", {"platform": ["gpu"], "model": ["atlas-medium"]}),
            _sig("S2", {"platform": ["gpu"], "model": ["atlas-small"]}, **ARGMAX),
        ],
        [_event(0, "platform=gpu")],
        [("S1",), ("S2",)],
    ),
    "same start, same symptoms, slices sharing no value: two causes": (
        [_sig("S1", {"model": ["a"]}), _sig("S2", {"region": ["eu-west"]})],
        [_event(0, None)],
        [("S1",), ("S2",)],
    ),
    "same hour, different platforms, no events at all: two causes": (
        [
            _sig("S1", {"platform": ["tpu"], "model": ["a"]}),
            _sig("S2", {"platform": ["gpu"], "model": ["a"]}),
        ],
        [],
        [("S1",), ("S2",)],
    ),
    "same hour, different platforms, each its own platform's event: two causes": (
        [
            _sig("S1", {"platform": ["tpu"], "model": ["a"]}),
            _sig("S2", {"platform": ["gpu"], "model": ["a"]}),
        ],
        [_event(0, "platform=tpu", "tpu deploy"), _event(0, "platform=gpu", "gpu deploy")],
        [("S1",), ("S2",)],
    ),
    "an event whose scope excludes both slices links nothing": (
        [
            _sig("S1", {"model": ["haiku-3.5"], "sampler": ["approx-topk"]}, **ARGMAX),
            _sig("S2", {"model": ["opus-3"], "sampler": ["approx-topk"]}, **ARGMAX),
        ],
        [_event(0, "model=sonnet-4")],
        [("S1",), ("S2",)],
    ),
    "an event long before the onset links nothing": (
        [_sig("S1", {**TPU, "model": ["a"]}), _sig("S2", {**TPU, "model": ["b"]})],
        [_event(-100, "platform=tpu")],
        [("S1",), ("S2",)],
    ),
    "an event after the onset did not cause it": (
        [_sig("S1", {**TPU, "model": ["a"]}), _sig("S2", {**TPU, "model": ["b"]})],
        [_event(5, "platform=tpu")],
        [("S1",), ("S2",)],
    ),
    "a late onset still matches the change hours before it": (
        [
            _sig("S1", {**TPU, "sampler": ["approx-topk"], "model": ["a"]}, **ARGMAX),
            _sig(
                "S2",
                {**TPU, "sampler": ["approx-topk"], "model": ["b"]},
                onset=(10, 19),
                **ARGMAX,
            ),
        ],
        [_event(-4, "platform=tpu"), _event(0, "platform=tpu; sampler=approx-topk")],
        [("S1", "S2")],
    ),
    "two changes in the onset range: the more specific one is the onset event": (
        [
            _sig("S1", {"sampler": ["approx-topk"], "model": ["a"]}, onset=(-4, 20), **ARGMAX),
            _sig("S2", {"sampler": ["approx-topk"], "model": ["b"]}, onset=(-1, 1), **ARGMAX),
            _sig("S3", {"platform": ["tpu"], "model": ["c"]}, onset=(-4, -4)),
        ],
        [_event(-4, "platform=tpu"), _event(0, "platform=tpu; sampler=approx-topk")],
        [("S1", "S2"), ("S3",)],
    ),
    "the event the slice names best wins over one closer in time": (
        [
            _sig("S1", {**TPU, "model": ["sonnet-4"]}),
            # its onset range ends at 3, an hour before the sampler deploy at 4 (inside the
            # lag); the sampler deploy names a column the slice leaves free: not its cause
            _sig("S2", {**TPU, "model": ["opus-4"]}, onset=(2, 3)),
        ],
        [
            _event(0, "platform=tpu; surface=first-party"),
            _event(4, "platform=tpu; surface=first-party; sampler=approx-topk"),
        ],
        [("S1", "S2")],
    ),
    "a sampler deploy just after the onset range beats a wider one inside it": (
        [
            _sig(
                "S1",
                {"surface": ["first-party"], "sampler": ["approx-topk"], "model": ["a"]},
                onset=(0, 3),
                **ARGMAX,
            ),
            _sig(
                "S2",
                {"surface": ["first-party"], "sampler": ["approx-topk"], "model": ["b"]},
                onset=(-8, 18),
                **ARGMAX,
            ),
        ],
        [
            _event(0, "platform=tpu; surface=first-party"),
            _event(4, "platform=tpu; surface=first-party; sampler=approx-topk"),
        ],
        [("S1", "S2")],
    ),
    "linked through a third: one cause": (
        [
            _sig("S1", {"platform": ["tpu"], "model": ["a"]}),
            _sig("S2", {"platform": ["tpu"], "sampler": ["x"]}),
            _sig("S3", {"sampler": ["x"], "region": ["eu"]}),
        ],
        [_event(0, None)],
        [("S1", "S2", "S3")],
    ),
    "overlapping numeric ranges are a shared value": (
        [
            _sig("S1", {"batch_size": {"gte": 64}, "model": ["a"]}),
            _sig("S2", {"batch_size": {"gte": 128}, "model": ["b"]}),
        ],
        [_event(0, "batch_size>=64")],
        [("S1", "S2")],
    ),
    "found on different signals, each elevated in the other: one cause": (
        [
            _sig("S1", {**TPU, "model": ["a"]}, signals=("script_mix", "code_syntax_error")),
            _sig(
                "S2",
                {**TPU, "model": ["b"]},
                signal="code_syntax_error",
                signals=("code_syntax_error", "script_mix"),
            ),
        ],
        [_event(0, "platform=tpu")],
        [("S1", "S2")],
    ),
}


@pytest.mark.parametrize(("signatures", "events", "expected"), CASES.values(), ids=CASES.keys())
def test_signatures_are_grouped_by_the_rule(signatures, events, expected):
    causes = group_root_causes(signatures, events)
    assert [c.signatures for c in causes] == expected
    assert [c.id for c in causes] == [f"R{i}" for i in range(1, len(expected) + 1)]
    assert sorted(s for c in causes for s in c.signatures) == sorted(s.id for s in signatures)


def test_a_root_cause_shows_its_evidence():
    signatures, events, _ = CASES["one change, two models on one platform, ends apart: one cause"]
    (cause,) = group_root_causes(signatures, events)
    assert cause.shared == TPU
    assert cause.signals == ("script_mix", "low_eval")
    assert cause.event["scope"] == "platform=tpu; surface=first-party"
    assert (cause.start, cause.end) == (_h(0), _h(194))  # earliest onset, latest end
    (why,) = cause.why
    for part in ("S1 and S2", "2025-08-25 16:00", "script_mix", "platform in {tpu}"):
        assert part in why
    data = cause.to_dict()
    assert {"id", "signatures", "shared_conditions", "events", "why"} <= set(data)
    assert data["events"][0]["near"] == "onset"
    assert data["events"][0]["ts"] == "2025-08-25T16:00:00Z"
    assert data["events"][0]["signatures"] == ["S1", "S2"]
    json.dumps(data)


def test_a_signature_kept_apart_says_what_it_lacks():
    signatures, events, _ = CASES["same start, same platform, different symptoms: two causes"]
    first, second = group_root_causes(signatures, events)
    assert any("kept apart from S2" in w and "symptoms differ" in w for w in first.why)
    assert any("argmax_violation, not elevated in S1" in w for w in second.why)
    (lonely,) = group_root_causes(signatures[:1], [])
    assert "no change event" in lonely.why[0]


def test_a_cause_linked_through_a_third_names_no_shared_value():
    signatures, events, _ = CASES["linked through a third: one cause"]
    (cause,) = group_root_causes(signatures, events)
    assert cause.shared == {}
    assert root_causes_frame([cause])["shared"].to_list() == [None]
    assert len(cause.why) == 2  # S1-S2 on platform, S2-S3 on sampler


def test_the_onset_horizon_is_a_parameter():
    sig = _sig("S1", {"model": ["a"]})
    events = [_event(-100, None)]
    assert onset_event(sig, events) is None
    found = onset_event(sig, events, RootCauseParams(lead_hours=120))
    assert found is not None
    assert found["hours_before"] == 100


def test_the_frame_has_one_row_per_cause():
    signatures, events, _ = CASES[
        "two changes in the onset range: the more specific one is the onset event"
    ]
    frame = root_causes_frame(group_root_causes(signatures, events))
    assert frame["id"].to_list() == ["R1", "R2"]
    assert frame["signatures"].to_list() == ["S1, S2", "S3"]
    assert frame["event"].to_list() == ["deploy: a change", "deploy: a change"]
    assert headline(group_root_causes(signatures, events)) == "2 root causes affecting 3 slices"


# -- the shipped sample -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(sample_db, sample_truth):
    with forensics.open(sample_db, read_only=True) as wb:
        signatures = wb.signatures()
        yield wb, signatures, wb.root_causes(signatures)


def test_the_sample_has_three_root_causes_for_its_five_signatures(sample, sample_truth):
    wb, signatures, causes = sample
    assert len(signatures) == 5
    assert headline(causes) == "3 root causes affecting 5 slices"
    matches = wb.evaluate(sample_truth, signatures).matches
    group_of = {b["name"]: b["group"] for b in sample_truth["bugs"]}
    true = {}
    for row in matches.iter_rows(named=True):
        assert row["signature"] is not None, row
        true.setdefault(group_of[row["bug"]], set()).add(row["signature"])
    assert sorted(map(sorted, true.values())) == sorted(sorted(c.signatures) for c in causes)


def test_the_sample_matches_events_by_scope_as_well_as_time(sample):
    """The routing fix (model=sonnet-4) is no longer named as the end of the haiku top-k problem."""
    _, signatures, _ = sample
    for sig in signatures:
        for event in sig.events:
            assert scope_conflicts(sig.predicate, event["scope"]) == [], (sig.id, event)
    haiku = next(s for s in signatures if s.predicate.get("model") == ["haiku-3.5"])
    end = next(e for e in haiku.events if e["near"] == "end")
    assert end["description"] == "Approximate top-k rolled back for haiku-3.5"


def test_signatures_command_prints_and_writes_the_root_causes(sample_db, tmp_path):
    out = tmp_path / "sigs.json"
    result = CliRunner().invoke(
        main, ["signatures", "--db", str(sample_db), "--json", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "3 root causes affecting 5 slices:" in result.output
    data = json.loads(out.read_text())
    assert len(data["signatures"]) == 5
    causes = data["root_causes"]
    assert [c["id"] for c in causes] == ["R1", "R2", "R3"]
    assert sorted(s for c in causes for s in c["signatures"]) == ["S1", "S2", "S3", "S4", "S5"]
    for cause in causes:
        assert {"id", "signatures", "shared_conditions", "events", "why"} <= set(cause)
        assert cause["why"]
        assert cause["events"][0]["near"] == "onset"


def test_the_sample_report_leads_with_its_three_root_causes(sample, tmp_path):
    from forensics.report import Investigation

    wb, signatures, causes = sample
    inv = Investigation.default(wb, title="The sample", signatures=signatures)
    assert [c.signatures for c in inv.root_causes] == [c.signatures for c in causes]
    page = inv.to_html()
    summary = page.split('id="summary"', 1)[1]
    assert summary.index("3 root causes affecting 5 slices") < summary.index('href="#sig-S1"')
    assert "TPU server configuration change" in summary
    assert "XLA compiler update enabling approximate top-k on TPU" in summary
    assert "**3 root causes affecting 5 slices.**" in inv.save(tmp_path / "r.md").read_text()
    data = json.loads(inv.to_json())
    assert len(data["root_causes"]) == 3
    assert sum(len(c["signatures"]) for c in data["root_causes"]) == 5
