"""The field family (forensics/simulate/field/): generator, truth and texts, checked on the data.

These test the generator only: that its files are reproducible, that its truth
says what the written data shows (measured after a real ingest, with DuckDB),
and that its texts make the detectors fire where it says and nowhere else.
How well the separation does on this family is measured by bench/field.py,
never asserted here.
"""

from __future__ import annotations

import ast
import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import forensics
from forensics.evaluate import evaluate
from forensics.schema import quote_identifier
from forensics.signals import detect
from forensics.simulate.field import KINDS, simulate_field
from forensics.simulate.field.fleet import DAY_MS, HOUR_MS, draw_fleet
from forensics.simulate.field.kinds import BATCH_EDGES, MIN_EXCESS, MIN_POPULATION, PROMPT_EDGES
from forensics.simulate.field.phrases import BREAKS, FOREIGN_RUNS, LANGUAGES, PYTHON_SNIPPETS
from forensics.simulate.field.responses import draw_responses, outcome_columns
from forensics.simulate.field.text import Pools, break_python, foreign_run, shows_run
from forensics.simulate.field.traffic import draw_traffic

ROWS = 60_000
"""Rows of the runs the slow tests simulate and ingest."""

SEED = 3
"""Their seed (the benchmark's seeds start at 101)."""

BUG_KINDS = [k for k in KINDS if k != "null"]


# -- helpers --------------------------------------------------------------------------


def _where(predicate: dict[str, Any], start: str | None, end: str | None) -> tuple[str, dict]:
    """SQL for a truth predicate and window, values bound."""
    parts, params = [], {}
    for i, (column, spec) in enumerate(predicate.items()):
        q = quote_identifier(column)
        if isinstance(spec, dict):
            if spec.get("gte") is not None:
                parts.append(f"{q} >= $gte{i}")
                params[f"gte{i}"] = spec["gte"]
            if spec.get("lt") is not None:
                parts.append(f"{q} < $lt{i}")
                params[f"lt{i}"] = spec["lt"]
        else:
            parts.append(f"list_contains($values{i}, {q})")
            params[f"values{i}"] = list(spec)
    if start is not None:
        parts.append("ts >= $start::TIMESTAMPTZ")
        params["start"] = start
    if end is not None:
        parts.append("ts < $end::TIMESTAMPTZ")
        params["end"] = end
    return " AND ".join(parts) or "true", params


def _measure(wb: forensics.Workbench, signal: str, predicate: dict, start: str | None,
             end: str | None) -> tuple[int, int, int]:  # fmt: skip
    """(rows, rows where the signal is defined, rows where it is true)."""
    where, params = _where(predicate, start, end)
    s = quote_identifier(signal)
    row = wb.sql(
        f"SELECT count(*), count({s}), count(*) FILTER (WHERE {s}) FROM requests WHERE {where}",
        params,
    ).row(0)
    return int(row[0]), int(row[1]), int(row[2])


def _power_of_two(x: float) -> bool:
    return x >= 1 and float(x).is_integer() and (int(x) & (int(x) - 1)) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict, Any]]:
    """Each kind simulated once (seed SEED, ROWS rows) and ingested with its mapping and events."""
    out: dict[str, tuple[Path, dict, Any]] = {}
    root = tmp_path_factory.mktemp("field")
    for kind in KINDS:
        folder = root / kind
        truth = simulate_field(kind, seed=SEED, rows=ROWS, out=folder)
        with forensics.open(root / f"{kind}.duckdb") as wb:
            summary = wb.ingest(
                folder / "requests.parquet", mapping=folder / "mapping.toml", progress=False
            )
            events = wb.ingest_events(folder / "events.csv")
        out[kind] = (folder, truth, (summary, events))
    return out


# -- reproducibility ------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_the_same_bytes_and_another_seed_other_data(tmp_path: Path) -> None:
    files = ("requests.parquet", "events.csv", "truth.json", "mapping.toml")
    simulate_field("overlap", seed=4, rows=ROWS, out=tmp_path / "a")
    simulate_field("overlap", seed=4, rows=ROWS, out=tmp_path / "b")
    simulate_field("overlap", seed=5, rows=ROWS, out=tmp_path / "c")
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in ("requests.parquet", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_an_unknown_kind_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="new-value"):
        simulate_field("no-such-kind", seed=1, rows=1000, out=tmp_path)


# -- the written data and its truth ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_ingest_accepts_every_row_and_every_event(
    runs: dict[str, tuple[Path, dict, Any]], kind: str
) -> None:
    folder, truth, (summary, events) = runs[kind]
    assert summary.rows_read == truth["rows"] == ROWS
    assert summary.accepted == ROWS
    assert summary.rejected == 0
    assert summary.duplicates == 0
    with (folder / "events.csv").open(encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert events.rows_read == events.accepted == len(lines) > 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", BUG_KINDS)
def test_truth_says_what_the_data_shows(runs: dict[str, tuple[Path, dict, Any]], kind: str) -> None:
    folder, truth, _ = runs[kind]
    assert truth["bugs"], kind
    with forensics.open(folder.parent / f"{kind}.duckdb", read_only=True) as wb:
        for bug in truth["bugs"]:
            assert bug["kind"] == kind
            assert not set(bug["predicate"]) & set(bug["outcomes"]), "an effect taken for a cause"
            injected = bug["injected"]
            assert injected["population_rows"] >= MIN_POPULATION
            for signal, told in injected["signals"].items():
                rows, defined, true = _measure(
                    wb, signal, bug["predicate"], bug["start"], bug["end"]
                )
                assert rows == injected["population_rows"]
                # the detectors read the written texts and columns as the generator says
                assert (defined, true) == (told["defined_rows"], told["observed"]), signal
                assert told["rate_inside"] == pytest.approx(true / defined, abs=1e-6)
            main = injected["signals"][injected["main_symptom"]]
            assert main["excess"] >= MIN_EXCESS
            assert main["rate_inside"] > 1.5 * main["rate_without_bug"]
            for moment in (bug["start"], bug["end"]):
                if moment is not None:  # onsets and ends are never on the hour
                    assert datetime.fromisoformat(moment).minute != 0, moment
            # forensics.evaluate takes the truth: a signature equal to the bug is found
            as_signature = {"id": "T", "predicate": bug["predicate"], "start": bug["start"],
                            "end": bug["end"]}  # fmt: skip
            scored = evaluate(wb.db, {"bugs": [bug]}, [as_signature])
            assert scored.f1 == 1.0
            assert scored.matches["jaccard"][0] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_new_value_is_new_and_worse_than_its_siblings(
    runs: dict[str, tuple[Path, dict, Any]],
) -> None:
    folder, truth, _ = runs["new-value"]
    (bug,) = truth["bugs"]
    siblings = bug["siblings"]
    column, symptom = siblings["column"], siblings["symptom"]
    value = bug["predicate"][column]
    with forensics.open(folder.parent / "new-value.duckdb", read_only=True) as wb:
        rows_before, _, _ = _measure(wb, symptom, {column: value}, None, None)
        rows_before -= _measure(wb, symptom, {column: value}, bug["start"], None)[0]
        assert rows_before == 0, "the value existed before the bug"
        assert siblings["values"]
        for sibling, told in siblings["values"].items():
            scope = {**siblings["within"], column: [sibling]}
            _, defined, true = _measure(wb, symptom, scope, bug["start"], bug["end"])
            assert (defined, true) == (told["defined_rows"], told["observed"]), sibling
            assert siblings["min"] <= round(true / defined, 6) <= siblings["max"]
    assert bug["injected"]["signals"][symptom]["rate_inside"] > siblings["max"]


@pytest.mark.slow
def test_numeric_edges_are_off_the_power_of_two_grid(
    runs: dict[str, tuple[Path, dict, Any]],
) -> None:
    folder, truth, _ = runs["numeric-edge"]
    (bug,) = truth["bugs"]
    ((column, edge),) = bug["edges"].items()
    assert bug["predicate"][column] == edge
    assert not _power_of_two(edge["gte"])
    scope = {c: v for c, v in bug["predicate"].items() if c != column}
    with forensics.open(folder.parent / "numeric-edge.duckdb", read_only=True) as wb:
        below = _measure(
            wb, "degraded", {**scope, column: {"lt": edge["gte"]}}, bug["start"], bug["end"]
        )
        assert below[0] > 0, "nothing below the edge: the edge would not be located"


def test_edges_drawn_are_never_powers_of_two() -> None:
    assert not [e for e in BATCH_EDGES + PROMPT_EDGES if _power_of_two(e)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 7])
def test_null_runs_have_no_bug_but_benign_changes(tmp_path: Path, seed: int) -> None:
    truth = simulate_field("null", seed=seed, rows=30_000, out=tmp_path)
    assert truth["bugs"] == []
    assert truth["red_herrings"]
    with (tmp_path / "events.csv").open(encoding="utf-8") as f:
        kinds = {row["kind"] for row in csv.DictReader(f)}
    assert "release" in kinds
    assert kinds & {"deploy", "config"}


# -- texts ----------------------------------------------------------------------------


def test_every_snippet_parses_and_every_break_fails() -> None:
    rng = np.random.default_rng(0)
    for source in PYTHON_SNIPPETS:
        ast.parse(source)
        for _ in range(len(BREAKS)):
            with pytest.raises(SyntaxError):
                ast.parse(break_python(source, rng))


@pytest.mark.parametrize("seed", [1, 2])
def test_detectors_fire_on_changed_answers_and_not_on_clean_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pools = Pools(list(LANGUAGES), rng)
    rows = []
    for i, d in enumerate(pools.drafts):
        want_code = False if d.checked else None
        rows.append((d.language, d.text, False, want_code, "clean"))
        if d.checked:
            text = pools.render(i, broken=True, run=None, rng=rng)
            rows.append((d.language, text, False, True, "broken"))
        if d.lines:
            for script in FOREIGN_RUNS:
                text = pools.render(i, broken=False, run=foreign_run(script, rng), rng=rng)
                rows.append((d.language, text, shows_run(d.language, script), want_code, script))
    frame = pl.DataFrame(
        rows,
        schema=["prompt_language", "response_text", "want_mix", "want_code", "what"],
        orient="row",
        infer_schema_length=None,
    )
    got = detect(frame.select("prompt_language", "response_text"))
    frame = frame.with_columns(mix=got["script_mix"], code=got["code_syntax_error"])
    wrong = frame.filter(
        (pl.col("mix") != pl.col("want_mix"))
        | (pl.col("code").is_null() != pl.col("want_code").is_null())
        | (pl.col("code") != pl.col("want_code"))
    )
    assert wrong.height == 0, wrong.head(5).to_dicts()
    # native answers in non-Latin scripts are among the clean ones, and runs of their own
    # script stay silent while others fire
    clean = frame.filter(pl.col("what") == "clean")
    assert {"th", "zh-Hans", "ja", "ko", "hi"} <= set(clean["prompt_language"])

    def han_in(language: str) -> list[bool]:
        chosen = (pl.col("what") == "Han") & (pl.col("prompt_language") == language)
        return frame.filter(chosen)["mix"].to_list()

    assert han_in("zh-Hans")
    assert not any(han_in("zh-Hans"))
    assert han_in("th")
    assert all(han_in("th"))
    assert all(han_in("en"))


# -- traffic shape --------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> tuple[Any, Any, dict[str, np.ndarray]]:
    fleet = draw_fleet(np.random.default_rng([11, 1]))
    traffic = draw_traffic(fleet, 80_000, np.random.default_rng([11, 2]))
    pools = Pools(list(LANGUAGES), np.random.default_rng([11, 3]))
    responses = draw_responses(fleet, traffic, pools, np.random.default_rng([11, 4]))
    return fleet, traffic, outcome_columns(fleet, traffic, responses)


def test_releases_ramp_up_and_appear_only_once_released(world: Any) -> None:
    fleet, traffic, _ = world
    c = traffic.columns
    versions = {v for v in c["client_version"]}
    assert 10 <= len(versions) <= 40
    ramped = 0
    for client, releases in fleet.releases.items():
        for rel, after in zip(releases, [*releases[1:], None], strict=True):
            mine = (c["client"] == client) & (c["client_version"] == rel.version)
            assert not (mine & (c["ts"] < rel.at)).any(), rel
            alone = after is None or after.at > rel.at + 5 * DAY_MS  # not replaced yet by day 4
            if fleet.start < rel.at < fleet.end - 5 * DAY_MS and rel.ramp_days > 1 and alone:
                of_client = c["client"] == client
                share = [
                    mine[of_client & (c["ts"] >= t) & (c["ts"] < t + DAY_MS)].mean()
                    for t in (rel.at, rel.at + 4 * DAY_MS)
                ]
                assert share[0] < share[1]
                ramped += 1
    assert ramped >= 2


def test_load_follows_the_local_day_and_batches_follow_load(world: Any) -> None:
    fleet, traffic, _ = world
    c = traffic.columns
    for region in fleet.regions:
        mine = c["region"] == region.name
        local = ((c["ts"][mine] + int(region.offset_hours * HOUR_MS)) % DAY_MS) // HOUR_MS
        counts = np.bincount(local, minlength=24)
        assert 9 <= int(np.argmax(counts)) <= 23, region.name
        assert 0 <= int(np.argmin(counts)) <= 8, region.name
    busy = traffic.load > np.quantile(traffic.load, 0.75)
    quiet = traffic.load < np.quantile(traffic.load, 0.25)
    assert c["batch_size"][busy].mean() > 2 * c["batch_size"][quiet].mean()


def test_request_columns_are_plausible(world: Any) -> None:
    fleet, traffic, outcomes = world
    c = traffic.columns
    assert (c["cached_tokens"] <= c["prompt_tokens"]).all()
    assert (c["cached_tokens"] > 0).mean() > 0.1
    assert c["prompt_tokens"].max() > 200_000  # long-context traffic exists
    assert 0.05 < (c["temperature"] == 0).mean() < 0.5
    evaluated = ~np.isnan(outcomes["eval_score"])
    assert fleet.eval_share - 0.01 < evaluated.mean() < fleet.eval_share + 0.01
    assert 0.01 < (~np.isnan(outcomes["user_feedback"])).mean() < 0.1
    length = outcomes["finish_reason"] == "length"
    assert (outcomes["output_tokens"][length] == c["max_tokens"][length]).all()
    assert (outcomes["output_tokens"] <= c["max_tokens"]).all()
