"""The reference scenario (the shipped sample): what each step finds against the truth.

The simulator knows what it injected; these tests check that the signals, the
query helpers and the separation engine see it, on the 400,000-row sample.
"""

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import forensics
from forensics.queries import Where, counts_by
from forensics.simulate import load_scenario
from forensics.stats import wilson_interval

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wb(sample_db):
    bench = forensics.open(sample_db, read_only=True)
    yield bench
    bench.close()


def _bug(truth, name):
    return next(b for b in truth["bugs"] if b["name"] == name)


def _window(bug):
    return datetime.fromisoformat(bug["start"]), (
        datetime.fromisoformat(bug["end"]) if bug["end"] else None
    )


# -- signals: rates inside and outside each bug's window ------------------------------


def _signal_cases(truth):
    return [
        (bug["name"], signal)
        for bug in truth["bugs"]
        for signal, injected in bug["injected"]["signals"].items()
        if injected["defined_rows"] >= 30
    ]


def test_each_signal_rate_inside_each_bug_matches_what_was_injected(wb, sample_truth):
    failures = []
    for name, signal in _signal_cases(sample_truth):
        bug = _bug(sample_truth, name)
        injected = bug["injected"]["signals"][signal]
        start, end = _window(bug)
        n, k = counts_by(
            wb.db, by=[], signal=signal, where=Where.parse({**bug["predicate"], "ts": (start, end)})
        ).row(0)
        # The generator's own tally of the same requests: the detectors must agree with it
        # within sampling error of their own (99% Wilson interval of what they measured).
        low, high = wilson_interval([k], [n], alpha=0.01)
        rate = injected["observed"] / injected["defined_rows"]
        if not (low[0] <= rate <= high[0]):
            failures.append((name, signal, n, k, injected))
    assert not failures


@pytest.mark.parametrize("signal", ["script_mix", "code_syntax_error", "argmax_violation"])
def test_outside_every_window_a_signal_stays_at_its_baseline(wb, sample_truth, signal):
    # All requests outside every bug window that the signal covers: the rate must be
    # the scenario's baseline (the injected baselines are per model; take their range).
    windows = [_window(b) for b in sample_truth["bugs"] if signal in b["injected"]["signals"]]
    first = min(s for s, _ in windows) - timedelta(days=1)
    n, k = counts_by(wb.db, by=[], signal=signal, where=Where.parse({"ts": (None, first)})).row(0)
    baselines = [
        b["injected"]["signals"][signal]["rate_baseline"]
        for b in sample_truth["bugs"]
        if signal in b["injected"]["signals"]
    ]
    low, high = wilson_interval([k], [n], alpha=0.01)
    # Detectors may add their own rare false alarms on top of the injected baseline.
    assert low[0] <= max(baselines) * 1.5 + 0.0005
    assert high[0] >= min(baselines) * 0.5


# -- query helpers -----------------------------------------------------------------------


def test_compare_over_the_corruption_window_ranks_tpu_and_the_affected_models_first(
    wb, sample_truth
):
    bug = _bug(sample_truth, "tpu-output-corruption-sonnet")
    start, end = _window(bug)
    frame = wb.compare("script_mix", incident=(start, end), baseline=(None, start))
    top = frame.head(6)
    ranked = list(zip(top["dimension"], top["value"], strict=True))
    assert ("platform", "tpu") in ranked[:2]
    affected = {"sonnet-4", "opus-4.1", "opus-4"}
    models = frame.filter(frame["dimension"] == "model")
    assert set(models["value"].to_list()[:3]) == affected
    # exactly the affected models rose significantly; the others explain nothing
    rising = models.filter((pl.col("p_adjusted") < 0.05) & (pl.col("diff") > 0))
    assert set(rising["value"].to_list()) == affected
    assert (models.filter(~pl.col("value").is_in(list(affected)))["explains"] < 0.01).all()


def _primary(bug):
    """The bug's sharpest symptom: the largest ratio of observed to baseline counts."""
    signals = bug["injected"]["signals"].items()
    return max(signals, key=lambda kv: kv[1]["observed"] / max(kv[1]["baseline_expected"], 1e-9))[0]


@pytest.mark.parametrize(
    "name",
    [
        "tpu-output-corruption-opus",
        "tpu-output-corruption-sonnet",
        "approx-topk-miscompilation-haiku",
        "approx-topk-miscompilation-opus-3",
    ],
)
def test_change_points_find_each_onset_within_a_day_in_its_slice(wb, sample_truth, name):
    bug = _bug(sample_truth, name)
    start, _ = _window(bug)
    found = wb.change_points(_primary(bug), where=bug["predicate"], grain="hour")
    ups = found.filter(found["direction"] == "up")["ts"].to_list()
    assert ups, f"no rise found for {name}"
    assert min(abs((t - start).total_seconds()) for t in ups) <= 24 * 3600


def test_misrouting_onsets_in_the_pool_it_lands_in(wb, sample_truth):
    # Misrouted requests are all alike inside their own predicate (it only exists while
    # the bug lasts): the rate changes in the pool they land in. The first phase is weak
    # (0.8% of sonnet-4 requests): by the hour nothing is significant, by the day the
    # onset's 95% range holds the true onset (the point estimate falls a day early on
    # this sample, where Aug 4 happens to run high). The Aug 29 load-balancing change
    # that raised it to 16% is found within a day, by the hour.
    bug = _bug(sample_truth, "context-window-misrouting")
    start, _ = _window(bug)
    pool = {k: v for k, v in bug["predicate"].items() if k != "prompt_tokens"}
    daily = wb.change_points("low_eval", where=pool, grain="day").filter(
        pl.col("direction") == "up"
    )
    first = daily.row(0, named=True)
    assert first["ci_low"] <= start < first["ci_high"] + timedelta(days=1)
    assert abs((first["ts"] - start).total_seconds()) <= 48 * 3600
    step = datetime.fromisoformat("2025-08-29T17:00:00+00:00")
    hourly = wb.change_points("low_eval", where=pool, grain="hour")
    ups = hourly.filter(pl.col("direction") == "up")["ts"].to_list()
    assert min(abs((t - step).total_seconds()) for t in ups) <= 24 * 3600


# -- separation --------------------------------------------------------------------------


def test_separation_recovers_every_bug_of_the_reference_and_nothing_else(wb, sample_truth):
    from forensics.evaluate import evaluate
    from forensics.signature import signatures_to_json

    found = wb.signatures()
    result = evaluate(wb.db, sample_truth, json.loads(signatures_to_json(found))["signatures"])
    assert result.f1 == 1.0, result.table()
    onsets = result.matches["onset_error_hours"].to_list()
    assert max(abs(x) for x in onsets) <= 24, result.table()
    # The red herrings stay silent: no signature on task (the code surge) and none
    # starting within a day of the benign deploy.
    assert not any("task" in s.predicate for s in found)
    scenario = load_scenario(sample_truth["scenario"], seed=sample_truth["seed"])
    benign = [rh.event for rh in scenario.red_herrings if rh.kind == "event" and rh.event]
    assert benign
    for event in benign:
        at = datetime.fromtimestamp(event.ts / 1e6, UTC)
        near = [s.id for s in found if abs(s.start - at) <= timedelta(hours=24)]
        assert near == [], f"signatures {near} start near the benign {event.description!r}"
