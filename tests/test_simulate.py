"""The simulator: determinism, the shipped sample, the postmortem's rates, red herrings, the library.

Symptoms are recomputed here from the columns with small reference checks
(``_code_broken``, ``_foreign_run``) that are independent of forensics' own
detectors, so these tests say what the generator wrote, not what a detector saw.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import forensics
from forensics.errors import ConfigError
from forensics.schema import CANONICAL_COLUMNS, quote_identifier
from forensics.signals import detect
from forensics.simulate import SCENARIOS, load_scenario, simulate
from forensics.simulate.spec import merge_base, parse_scenario
from forensics.simulate.text import (
    break_json,
    break_python,
    build_pools,
    foreign_run,
    insert_foreign_run,
    load_library,
    parses,
)
from tests.conftest import REPO

SAMPLE = REPO / "data_samples" / "postmortem-2025"
CANONICAL = [c.name for c in CANONICAL_COLUMNS]
WRITTEN = [c for c in CANONICAL if c not in ("max_tokens", "finish_reason", "prompt_text")]
"""Canonical columns every scenario writes (max_tokens and finish_reason come with a
max_tokens column; prompt_text is never simulated)."""
LATIN = ["en", "de", "fr", "es"]
MISROUTED = (
    (pl.col("model") == "sonnet-4")
    & (pl.col("routing_pool") == "long-context-1m")
    & (pl.col("prompt_tokens") < 200_000)
)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _between(start: datetime, end: datetime) -> pl.Expr:
    return (pl.col("ts") >= start) & (pl.col("ts") < end)


# -- reference symptom checks (independent of forensics.signals) -------------------------

_FENCE = re.compile(r"```(python|json|)\n(.*?)\n```", re.S)
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|«[^»\n]*»|`[^`\n]*`')
_THAI_HAN = re.compile(r"[\u0e00-\u0e7f\u4e00-\u9fff]")


def _code_broken(text: str) -> bool | None:
    """True if a code block fails to parse, None without code (as the signal is defined)."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return None
    return any(not parses(code, "json" if kind == "json" else "python") for kind, code in blocks)


def _foreign_run(text: str) -> bool:
    """A Thai/Han character in the prose of a Latin-script answer, outside quotes and code."""
    prose = _QUOTED.sub("", _FENCE.sub("", text))
    return bool(_THAI_HAN.search(prose))


def _with_symptoms(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("response_text").map_elements(_code_broken, return_dtype=pl.Boolean).alias("broken"),
        pl.col("response_text")
        .map_elements(_foreign_run, return_dtype=pl.Boolean)
        .alias("foreign"),
        ((pl.col("temperature") == 0) & (pl.col("max_token_rank") > 1)).alias("argmax"),
    )


def _z(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-proportion z statistic (pooled)."""
    p = (k1 + k0) / (n1 + n0)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0)) or 1e-12
    return (k1 / n1 - k0 / n0) / se


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return pl.read_parquet(SAMPLE / "requests.parquet")


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLE / "truth.json").read_text())


@pytest.fixture(scope="module")
def sample_symptoms(sample: pl.DataFrame) -> pl.DataFrame:
    return _with_symptoms(sample)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """A 2M-row postmortem run: enough traffic per hour and per surface to check the issue's numbers."""
    out = tmp_path_factory.mktemp("big")
    simulate("postmortem-2025", rows=2_000_000, seed=11, out=out)
    return pl.read_parquet(out / "requests.parquet")


# -- determinism and the shipped sample -----------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate("postmortem-2025", rows=20_000, seed=seed, out=tmp_path / name)
        runs[name] = {
            f: _sha(tmp_path / name / f) for f in ("requests.parquet", "events.csv", "truth.json")
        }
    assert runs["a"] == runs["b"]
    assert runs["a"]["requests.parquet"] != runs["c"]["requests.parquet"]
    assert runs["a"]["truth.json"] != runs["c"]["truth.json"]


def test_readme_documents_the_exact_command():
    readme = (REPO / "data_samples" / "README.md").read_text()
    command = (
        "forensics simulate --scenario postmortem-2025 --seed 7 --out data_samples/postmortem-2025"
    )
    assert command in readme


def test_shipped_sample_is_what_the_documented_command_makes(tmp_path):
    readme = (REPO / "data_samples" / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("forensics simulate"))
    args = shlex.split(line)
    scenario, seed = args[args.index("--scenario") + 1], int(args[args.index("--seed") + 1])
    assert "--rows" not in args, "the sample uses the scenario's default rows"
    simulate(scenario, seed=seed, out=tmp_path)
    for name in ("events.csv", "truth.json"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), (
            f"{name} drifted from the code: run `make sample` and commit data_samples/"
        )
    shipped, fresh = SAMPLE / "requests.parquet", tmp_path / "requests.parquet"
    if shipped.read_bytes() != fresh.read_bytes():
        # Only a different Parquet writer (a pyarrow upgrade) may change the bytes;
        # the rows must still be identical.
        writers = {pq.ParquetFile(p).metadata.created_by for p in (shipped, fresh)}
        assert len(writers) == 2, "requests.parquet drifted from the code: run `make sample`"
        assert pq.read_table(shipped).equals(pq.read_table(fresh))


def test_sample_is_small():
    # "A few hundred thousand rows at most, a few MB."
    size = sum(f.stat().st_size for f in SAMPLE.iterdir())
    assert size < 8_000_000


@pytest.mark.slow
def test_sample_ingests_with_zero_rejected(tmp_path):
    wb = forensics.open(tmp_path / "sample.duckdb")
    try:
        summary = wb.ingest(SAMPLE / "requests.parquet", progress=False)
        assert summary.rejected == 0
        assert (
            summary.accepted
            == pl.scan_parquet(SAMPLE / "requests.parquet").select(pl.len()).collect().item()
        )
        events = wb.ingest_events(SAMPLE / "events.csv")
        assert events.accepted == len((SAMPLE / "events.csv").read_text().splitlines()) - 1
    finally:
        wb.close()


# -- truth ------------------------------------------------------------------------------------


def _population(frame: pl.DataFrame, bug: dict) -> pl.DataFrame:
    cond = pl.col("ts") >= datetime.fromisoformat(bug["start"])
    if bug["end"] is not None:
        cond &= pl.col("ts") < datetime.fromisoformat(bug["end"])
    for column, spec in bug["predicate"].items():
        if isinstance(spec, dict):
            if "gte" in spec:
                cond &= pl.col(column) >= spec["gte"]
            if "lt" in spec:
                cond &= pl.col(column) < spec["lt"]
        else:
            cond &= pl.col(column).is_in(spec)
    return frame.filter(cond)


def test_requests_hold_every_canonical_column_and_no_truth(sample):
    assert sample.columns == WRITTEN
    assert str(sample.schema["ts"]) == "Datetime(time_unit='ms', time_zone='UTC')"
    assert sample["request_id"].n_unique() == sample.height
    assert sample["user_feedback"].drop_nulls().is_in([-1, 0, 1]).all()
    assert sample["eval_score"].is_between(0, 1).all()


def test_truth_describes_each_bug(sample, truth):
    assert truth["scenario"] == "postmortem-2025"
    assert truth["seed"] == 7
    assert truth["rows"] == sample.height
    names = [b["name"] for b in truth["bugs"]]
    assert names == [
        "context-window-misrouting",
        "tpu-output-corruption-opus",
        "tpu-output-corruption-sonnet",
        "approx-topk-miscompilation-haiku",
        "approx-topk-miscompilation-opus-3",
    ]
    for bug in truth["bugs"]:
        assert set(bug) >= {
            "name",
            "predicate",
            "start",
            "end",
            "symptoms",
            "injected",
            "description",
        }
        population = _population(sample, bug)
        assert population.height == bug["injected"]["population_rows"] > 0
        for column, spec in bug["predicate"].items():
            assert column in sample.columns
            if isinstance(spec, list):
                assert set(spec) <= set(sample[column].unique().to_list())
    assert {h["name"] for h in truth["red_herrings"]} == {"code-task-surge", "benign-gpu-deploy"}


def test_misrouting_truth_is_exactly_the_rerouted_requests(sample, truth):
    bug = truth["bugs"][0]
    assert bug["injected"]["hit_rows"] == bug["injected"]["population_rows"]
    pool = sample.filter(pl.col("routing_pool") == "long-context-1m")
    assert (pool["model"] == "sonnet-4").all()
    legit = pool.filter(pl.col("prompt_tokens") >= 200_000)
    misrouted = pool.filter(pl.col("prompt_tokens") < 200_000)
    assert misrouted.height == bug["injected"]["population_rows"]
    assert sample.filter(
        (pl.col("routing_pool") == "standard") & (pl.col("prompt_tokens") >= 200_000)
    ).is_empty()
    window = _between(_utc(2025, 8, 5, 16), _utc(2025, 9, 18, 18))
    assert misrouted.filter(~window).is_empty()
    # Misrouted answers are worse; legitimate long-context ones are not.
    low_mis = (misrouted["eval_score"] < 0.5).mean()
    low_legit = (legit["eval_score"] < 0.5).mean()
    low_rest = (sample["eval_score"] < 0.5).mean()
    assert low_mis > 4 * low_rest
    assert abs(low_legit - low_rest) < 0.03
    neg = (misrouted["user_feedback"] == -1).sum() / misrouted["user_feedback"].drop_nulls().len()
    neg_rest = (sample["user_feedback"] == -1).sum() / sample["user_feedback"].drop_nulls().len()
    assert neg > 2 * neg_rest


def test_misrouting_starts_at_about_0_8_percent_and_spares_vertex(sample):
    early = sample.filter(
        (pl.col("model") == "sonnet-4") & _between(_utc(2025, 8, 6), _utc(2025, 8, 29))
    )
    first_party = early.filter(pl.col("surface") == "first-party")
    share = first_party.select(MISROUTED.mean()).item()
    assert 0.005 < share < 0.012
    vertex = sample.filter((pl.col("surface") == "vertex") & MISROUTED)
    assert vertex.height <= 2  # 1e-5 of ~25k requests


@pytest.mark.slow
def test_misrouting_peaks_on_aug_31_near_16_percent(big):
    s4 = big.filter(pl.col("model") == "sonnet-4")
    hourly = (
        s4.filter(pl.col("surface") == "first-party")
        .group_by(pl.col("ts").dt.truncate("1h"))
        .agg(MISROUTED.mean().alias("share"), pl.len().alias("n"))
        .filter(pl.col("n") >= 100)
        .sort("share", descending=True)
    )
    worst = hourly.row(0, named=True)
    assert _utc(2025, 8, 30) <= worst["ts"] < _utc(2025, 9, 2)
    assert 0.12 <= worst["share"] <= 0.24
    early = s4.filter(
        (pl.col("surface") == "first-party") & _between(_utc(2025, 8, 6), _utc(2025, 8, 29))
    )
    assert early.select(MISROUTED.mean()).item() == pytest.approx(0.008, rel=0.25)
    bedrock = s4.filter(pl.col("surface") == "bedrock")
    peak_week = bedrock.filter(_between(_utc(2025, 8, 29, 17), _utc(2025, 9, 4, 18)))
    # The schedule averages 0.14% over that week and peaks at 0.18%.
    assert 0.0007 < peak_week.select(MISROUTED.mean()).item() < 0.003
    assert bedrock.filter(MISROUTED & (pl.col("ts") >= _utc(2025, 9, 18, 18))).is_empty()
    assert big.filter((pl.col("surface") == "vertex") & MISROUTED).height <= 5


@pytest.mark.slow
def test_about_a_third_of_heavy_users_are_misrouted_at_least_once(big):
    eligible = big.filter(
        (pl.col("model") == "sonnet-4")
        & (pl.col("surface") == "first-party")
        & (pl.col("prompt_tokens") < 200_000)
        & _between(_utc(2025, 8, 5, 16), _utc(2025, 9, 16, 18))
    )
    users = eligible.group_by("user_id").agg(pl.len().alias("n"), MISROUTED.any().alias("hit"))
    heavy = users.filter(pl.col("n") >= 50)
    assert heavy.height > 300
    assert 0.25 <= heavy["hit"].mean() <= 0.42
    # Sticky: hit users are hit again far more often than chance would give.
    hit_users = users.filter(pl.col("hit"))
    repeat = eligible.join(hit_users.select("user_id"), on="user_id").select(MISROUTED.sum()).item()
    assert repeat / hit_users.height > 3


def _corruption_slices():
    tpu_fp = (pl.col("platform") == "tpu") & (pl.col("surface") == "first-party")
    opus = (
        tpu_fp
        & pl.col("model").is_in(["opus-4.1", "opus-4"])
        & _between(_utc(2025, 8, 25, 16), _utc(2025, 8, 28, 22))
    )
    sonnet = (
        tpu_fp
        & (pl.col("model") == "sonnet-4")
        & _between(_utc(2025, 8, 25, 16), _utc(2025, 9, 2, 18))
    )
    return opus, sonnet


def test_corruption_only_on_tpu_first_party_in_its_windows(sample_symptoms):
    latin = sample_symptoms.filter(pl.col("prompt_language").is_in(LATIN))
    opus, sonnet = _corruption_slices()
    outside = latin.filter(~(opus | sonnet))
    base_rate = outside["foreign"].mean()
    assert base_rate < 0.001  # the baseline: 1-4 per 10 000
    for slice_, models in ((opus, ["opus-4.1", "opus-4"]), (sonnet, ["sonnet-4"])):
        inside = latin.filter(slice_)
        assert inside["foreign"].mean() > 20 * base_rate
        # Broken code against the same models elsewhere (baselines differ per model).
        broken = inside["broken"].drop_nulls()
        rest = outside.filter(pl.col("model").is_in(models))["broken"].drop_nulls()
        assert _z(int(broken.sum()), broken.len(), int(rest.sum()), rest.len()) > 4
    # Same platform and window, other models: not corrupted.
    other = latin.filter(
        (pl.col("platform") == "tpu")
        & (pl.col("surface") == "first-party")
        & pl.col("model").is_in(["haiku-3.5", "opus-3", "sonnet-3.7"])
        & _between(_utc(2025, 8, 25, 16), _utc(2025, 9, 2, 18))
    )
    assert other["foreign"].sum() <= 3
    # Other surfaces on tpu, same models and window: not corrupted either.
    vertex = latin.filter(
        (pl.col("platform") == "tpu") & (pl.col("surface") == "vertex") & pl.col("model").is_in(["sonnet-4"])
        & _between(_utc(2025, 8, 25, 16), _utc(2025, 9, 2, 18))
    )  # fmt: skip
    assert vertex["foreign"].sum() <= 3


def test_non_english_answers_are_in_their_own_script(sample):
    thai = sample.filter(pl.col("prompt_language") == "th")["response_text"]
    zh = sample.filter(pl.col("prompt_language") == "zh-Hans")["response_text"]
    assert thai.str.contains(r"[\u0e00-\u0e7f]").mean() > 0.99
    assert zh.str.contains(r"[\u4e00-\u9fff]").mean() > 0.99


def test_argmax_violations_only_for_approx_topk_greedy_requests(sample_symptoms):
    greedy = sample_symptoms.filter(pl.col("temperature") == 0)
    topk = (
        (pl.col("platform") == "tpu")
        & (pl.col("surface") == "first-party")
        & (pl.col("sampler") == "approx-topk")
    )
    haiku = (
        topk
        & (pl.col("model") == "haiku-3.5")
        & _between(_utc(2025, 8, 25, 20), _utc(2025, 9, 4, 19))
    )
    opus3 = (
        topk
        & (pl.col("model") == "opus-3")
        & _between(_utc(2025, 8, 25, 20), _utc(2025, 9, 12, 17))
    )
    outside = greedy.filter(~(haiku | opus3))
    assert outside["argmax"].mean() < 0.001
    for inside in (greedy.filter(haiku), greedy.filter(opus3)):
        k, n = int(inside["argmax"].sum()), inside.height
        assert k >= 5
        assert _z(k, n, int(outside["argmax"].sum()), outside.height) > 4
    # Sampled requests have ranks above 1 as a matter of course; greedy ones do not.
    assert (sample_symptoms.filter(pl.col("temperature") > 0)["max_token_rank"] > 1).mean() > 0.3


@pytest.mark.slow
def test_argmax_violations_grow_with_batch_size(big):
    inside = big.filter(
        (pl.col("platform") == "tpu")
        & (pl.col("surface") == "first-party")
        & (pl.col("sampler") == "approx-topk")
        & (pl.col("model") == "haiku-3.5")
        & (pl.col("temperature") == 0)
        & _between(_utc(2025, 8, 25, 20), _utc(2025, 9, 4, 19))
    ).with_columns((pl.col("max_token_rank") > 1).alias("argmax"))
    large = inside.filter(pl.col("batch_size") >= 64)["argmax"]
    small = inside.filter(pl.col("batch_size") < 64)["argmax"]
    assert _z(int(large.sum()), large.len(), int(small.sum()), small.len()) > 4


def test_code_task_surge_raises_raw_rates_but_not_per_task_rates(sample_symptoms):
    # Windows free of every bug acting on code blocks (corruption: tpu first-party).
    calm = ~((pl.col("platform") == "tpu") & (pl.col("surface") == "first-party"))
    before = sample_symptoms.filter(calm & _between(_utc(2025, 8, 1), _utc(2025, 8, 25)))
    surge = sample_symptoms.filter(calm & _between(_utc(2025, 9, 9), _utc(2025, 9, 14)))
    assert (surge["task"] == "code").mean() > 1.6 * (before["task"] == "code").mean()
    raw_before, raw_surge = before["broken"].fill_null(False), surge["broken"].fill_null(False)
    assert _z(int(raw_surge.sum()), surge.height, int(raw_before.sum()), before.height) > 3
    for task in ("code", "analysis"):
        b = before.filter(pl.col("task") == task)["broken"].drop_nulls()
        s = surge.filter(pl.col("task") == task)["broken"].drop_nulls()
        assert abs(_z(int(s.sum()), s.len(), int(b.sum()), b.len())) < 3, task


def test_benign_deploy_changes_nothing(sample_symptoms):
    gpu = sample_symptoms.filter((pl.col("platform") == "gpu") & (pl.col("model") != "sonnet-4"))
    before = gpu.filter(_between(_utc(2025, 8, 12, 15), _utc(2025, 8, 19, 15)))
    after = gpu.filter(_between(_utc(2025, 8, 19, 15), _utc(2025, 8, 25, 15)))
    for column in ("foreign", "argmax"):
        assert (
            abs(
                _z(int(after[column].sum()), after.height, int(before[column].sum()), before.height)
            )
            < 3
        )
    low_b, low_a = before["eval_score"] < 0.5, after["eval_score"] < 0.5
    assert abs(_z(int(low_a.sum()), low_a.len(), int(low_b.sum()), low_b.len())) < 3


def test_realistic_traffic(sample):
    per_user = sample.group_by("user_id").len()["len"]
    assert per_user.quantile(0.99) > 10 * per_user.median()
    per_session = sample.group_by("session_id").agg(
        pl.len(), pl.col("user_id").n_unique().alias("users")
    )
    assert (per_session["users"] == 1).all()
    assert 3 < per_session["len"].mean() < 7
    by_hour = sample.group_by(pl.col("ts").dt.hour()).len()["len"]
    assert by_hour.max() > 2 * by_hour.min()
    by_day = sample.group_by(pl.col("ts").dt.weekday()).len().sort("ts")["len"].to_list()
    assert max(by_day[5:]) < min(by_day[:5])
    assert 0.3 < (sample["temperature"] == 0).mean() < 0.5
    assert sample["server_id"].n_unique() > 50
    assert sample["batch_size"].n_unique() == 9


# -- texts --------------------------------------------------------------------------------------


def test_library_code_parses_and_clean_texts_are_clean():
    lib = load_library()
    for code in lib.python:
        ast.parse(code)
    for code in lib.json:
        json.loads(code)
    pools = build_pools(lib, list(lib.languages), list(lib.tasks))
    for template in pools.templates:
        for kind, code in template.parts:
            if kind != "prose":
                assert parses(code, kind), code
    for i, text in enumerate(pools.texts):
        language = list(lib.languages)[i // (len(lib.tasks) * lib.pool_size)]
        prose = _QUOTED.sub("", _FENCE.sub("", text))
        native = set(lib.languages[language].scripts)
        for script in set(lib.scripts) - native:
            assert not set(prose) & set(lib.scripts[script]), (language, script, text)


def test_clean_texts_never_loop_are_never_blank_and_are_in_their_own_language():
    """The pools are the baseline of every scenario: the new detectors must stay quiet on them."""
    lib = load_library()
    languages = list(lib.languages)
    pools = build_pools(lib, languages, list(lib.tasks))
    per_language = len(lib.tasks) * lib.pool_size
    tags = [languages[i // per_language] for i in range(len(pools.texts))]
    out = detect(
        pl.DataFrame({"response_text": list(pools.texts), "prompt_language": tags}),
    )
    for signal in ("repetition", "empty_response", "wrong_language"):
        fired = [(tags[i], pools.texts[i][:80]) for i, v in enumerate(out[signal]) if v]
        assert fired == [], signal


def test_the_degenerate_answers_scenario_writes_what_its_truth_says(tmp_path):
    """Each bug's symptoms, counted by the detectors after ingest, are the engine's tally."""
    result = simulate("degenerate-answers", rows=30_000, seed=3, out=tmp_path / "sim")
    truth = json.loads(result.truth.read_text())
    frame = pl.read_parquet(result.requests)
    assert {"max_tokens", "finish_reason"} <= set(frame.columns)
    assert (frame["output_tokens"] <= frame["max_tokens"]).all()
    assert frame.filter(pl.col("response_text") == "")["output_tokens"].to_list() == [0] * int(
        (frame["response_text"] == "").sum()
    )
    with forensics.open(tmp_path / "d.duckdb") as wb:
        wb.ingest(result.requests, progress=False)
        for bug in truth["bugs"]:
            where, params = [], {"start": bug["start"], "end": bug["end"]}
            for i, (column, values) in enumerate(bug["predicate"].items()):
                if isinstance(values, list):
                    where.append(f"list_contains($v{i}, {quote_identifier(column)})")
                    params[f"v{i}"] = values
                else:
                    where.append(f"{quote_identifier(column)} >= $v{i}")
                    params[f"v{i}"] = values["gte"]
            for signal, told in bug["injected"]["signals"].items():
                counted = wb.sql(
                    f"SELECT count({quote_identifier(signal)}) AS n, "
                    f"count(*) FILTER (WHERE {quote_identifier(signal)}) AS k FROM requests "
                    f"WHERE {' AND '.join(where)} AND ts >= $start AND ts < $end",
                    params,
                ).rows()
                assert counted == [(told["defined_rows"], told["observed"])], (bug["name"], signal)
                if signal in ("repetition", "empty_response", "truncated", "wrong_language"):
                    assert told["observed"] > told["baseline_expected"] + 20, (bug["name"], signal)


@pytest.mark.parametrize("seed", range(20))
def test_broken_code_really_fails_to_parse(seed):
    rng = np.random.Generator(np.random.PCG64(seed))
    lib = load_library()
    for code in lib.python:
        for alphabet in (None, lib.scripts["thai"], lib.scripts["han"]):
            assert not parses(break_python(code, rng, alphabet), "python")
    for code in lib.json:
        for alphabet in (None, lib.scripts["han"]):
            assert not parses(break_json(code, rng, alphabet), "json")


@pytest.mark.parametrize("seed", range(20))
def test_foreign_runs_are_unquoted_and_1_to_20_long(seed):
    rng = np.random.Generator(np.random.PCG64(seed))
    text = 'The word "สวัสดี" means hello, and `x = "你好"` is code.'
    run = foreign_run(load_library().scripts["thai"], rng)
    assert 1 <= len(run) <= 20
    out = insert_foreign_run(text, run, rng)
    assert run in _QUOTED.sub("", out)
    assert _QUOTED.findall(out) == _QUOTED.findall(text)


# -- the library ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_generates_with_a_valid_truth(name, tmp_path):
    seeds = (1, 2, 3) if name == "random" else (7,)
    for seed in seeds:
        result = simulate(name, rows=20_000, seed=seed, out=tmp_path / str(seed))
        frame = pl.read_parquet(result.requests)
        truth = json.loads(result.truth.read_text())
        assert frame.height == truth["rows"] == 20_000
        limits = "max_tokens" in frame.columns
        expected = [c for c in CANONICAL if c in WRITTEN or (limits and c != "prompt_text")]
        assert frame.columns[: len(expected)] == expected
        for bug in truth["bugs"]:
            for column, spec in bug["predicate"].items():
                assert column in frame.columns, (name, bug["name"], column)
                if isinstance(spec, list):
                    assert set(spec) <= set(load_scenario(name, seed=seed).levels(column)), (
                        name,
                        column,
                    )
            assert _population(frame, bug).height == bug["injected"]["population_rows"]
        if name.startswith("null-"):
            assert truth["bugs"] == []
            assert truth["red_herrings"]


def test_default_rows_per_scenario():
    for entry in SCENARIOS.values():
        assert 50_000 <= entry.rows <= 400_000
        assert entry.description


def test_random_family_differs_per_seed_and_has_an_extra_column():
    a, b = load_scenario("random", seed=1), load_scenario("random", seed=2)
    assert a != b
    assert load_scenario("random", seed=1) == a
    for seed in range(1, 30):
        s = load_scenario("random", seed=seed)
        extras = [c.name for c in s.columns if c.name not in CANONICAL]
        assert len(extras) == 1
        assert len(s.bugs) <= 3
        for bug in s.bugs:
            assert 1 <= len(bug.where.conditions) <= 3


def test_kernel_build_bug_is_keyed_on_the_extra_column(tmp_path):
    result = simulate("kernel-build-bug", rows=20_000, out=tmp_path)
    truth = json.loads(result.truth.read_text())
    assert list(truth["bugs"][0]["predicate"]) == ["kernel_build"]
    assert "kernel_build" in pl.read_parquet(result.requests).columns


def test_no_postmortem_names_in_python_code():
    names = ("sonnet", "opus", "haiku", "long-context-1m", "approx-topk")
    for path in (REPO / "forensics").rglob("*.py"):
        text = path.read_text().lower()
        for name in names:
            assert name not in text, (
                f"{path}: mentions {name!r}; keep scenario names in scenario files"
            )
    for path in (REPO / "forensics" / "simulate").rglob("*.py"):
        assert "2025-0" not in path.read_text(), f"{path}: scenario dates belong in scenario files"


# -- scenario checking ---------------------------------------------------------------------------


def _postmortem() -> dict:
    return dict(SCENARIOS["postmortem-2025"].data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["bug"][0].update(where={"modle": ["sonnet-4"]}), "modle"),
        (lambda d: d["bug"][0].update(where={"model": ["sonnet-5"]}), "sonnet-5"),
        (lambda d: d.update(column=[c for c in d["column"] if c["name"] != "region"]), "region"),
        (lambda d: d["bug"][0].update(effects={}), "at least one effect"),
        (lambda d: d["bug"][0].update(effects={"explode": 1.0}), "explode"),
        (lambda d: d["bug"][0].update(end=d["bug"][0]["start"]), "after start"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["traffic"].update(diurnal=[1.0] * 23), "24"),
        (
            lambda d: d["bug"][0].update(effects={"repetition": 1.0}),
            "define an int column max_tokens",
        ),
        (lambda d: d["baseline"].update(truncated=0.1), "define an int column max_tokens"),
        (lambda d: d["baseline"].update(wrong_language=0.01), "baseline.wrong_language"),
        (
            lambda d: d["baseline"].update(
                rule=[{"where": {"model": ["sonnet-4"]}, "set": {"wrong_language": 0.1}}]
            ),
            "baseline.rule[0].set.wrong_language",
        ),
        (lambda d: d["bug"][0].update(answer_language="de"), "answer_language"),
        (
            lambda d: d["bug"][0].update(effects={"wrong_language": 1.0}, answer_language=3),
            "answer_language",
        ),
    ],
)
def test_bad_scenarios_are_refused_with_the_key(change, message):
    data = json.loads(json.dumps(_postmortem(), default=str))
    change(data)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_scenario(data, source="test.toml")


def test_an_answer_language_the_text_library_lacks_is_named_with_its_bug(tmp_path):
    data = json.loads(json.dumps(dict(SCENARIOS["degenerate-answers"].data), default=str))
    bug = next(b for b in data["bug"] if "wrong_language" in b["effects"])
    bug["answer_language"] = "tlh"
    scenario = parse_scenario(data, source="mine.toml")
    with pytest.raises(ConfigError) as caught:
        simulate(scenario, rows=2_000, seed=1, out=tmp_path / "out")
    message = str(caught.value)
    assert f"bug {bug['name']!r}: answer_language" in message
    assert "tlh" in message
    assert "en, de" in message


def test_finish_reason_says_length_exactly_where_the_limit_was_reached(tmp_path):
    result = simulate("degenerate-answers", rows=20_000, seed=5, out=tmp_path / "sim")
    frame = pl.read_parquet(result.requests)
    at_limit = frame["output_tokens"] >= frame["max_tokens"]
    assert at_limit.sum() > 100
    assert (frame["finish_reason"] == "length").to_list() == at_limit.to_list()
    assert frame.filter(~at_limit)["finish_reason"].unique().to_list() == ["stop"]


def test_merge_base_replaces_columns_by_name():
    merged = merge_base(
        {"column": [{"name": "a"}, {"name": "b"}]}, {"column": [{"name": "a", "x": 1}]}
    )
    assert merged["column"] == [{"name": "a", "x": 1}, {"name": "b"}]


def test_unknown_scenario_names_the_choices():
    with pytest.raises(ConfigError, match="postmortem-2025"):
        load_scenario("no-such-scenario")


def test_a_scenario_file_of_ones_own_can_build_on_the_library(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'base = "_fleet.toml"\nname = "mine"\ndescription = "one bug"\nrows = 5000\n'
        '[[bug]]\nname = "x"\nwhere = { model = ["atlas-small"] }\n'
        "start = 2024-03-10T00:00:00Z\nintensity = 0.1\neffects = { script_mix = 0.5 }\n"
    )
    result = simulate(path, out=tmp_path / "out")
    assert result.rows == 5000
    truth = json.loads(result.truth.read_text())
    assert truth["bugs"][0]["end"] is None
    assert truth["bugs"][0]["injected"]["signals"]["script_mix"]["observed"] > 10
