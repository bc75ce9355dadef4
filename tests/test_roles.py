"""Every column's role: the defaults, [roles] in a mapping, the recorded table, and the
separation never taking an effect for a cause."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import forensics
from forensics import queries
from forensics.errors import ConfigError
from forensics.roles import ColumnRole, default_role, outcome_by_name, record_roles
from forensics.schema import CANONICAL_COLUMNS
from tests.conftest import request_row

# -- the name rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "latency_ms", "latencyMs", "e2e_latency", "ttft_ms", "TTFT", "tpot_ms",
        "time_to_first_token_ms", "response_time_ms", "duration", "duration_s", "durationMs",
        "elapsed_ms", "status", "status_code", "http_status", "HTTPStatus", "http.status_code",
        "grpc_status", "openai_finish_reason", "finishReason", "gen_ai.response.finish_reasons",
        "stop_reason", "error", "errors", "error_type", "error.type", "errorCode", "exception",
        "completion_tokens", "gen_ai_usage_output_tokens", "generated_tokens",
    ],
)  # fmt: skip
def test_names_that_say_measured_are_outcomes(name):
    assert outcome_by_name(name)
    assert default_role(name).role == "outcome"
    assert default_role(name).why == "name rule"


@pytest.mark.parametrize(
    "name",
    [
        "queue_depth", "kernel_build", "replica", "max_output_tokens", "max_new_tokens",
        "latency_slo_ms", "latency_budget_ms", "latency_class", "timeout_ms", "error_budget",
        "max_duration_s", "account_status", "status_page", "terror_level", "input_tokens",
        "reasoning_effort", "client_version", "prompt_chars", "cache_hit",
    ],
)  # fmt: skip
def test_names_of_settings_and_request_attributes_stay_dimensions(name):
    assert not outcome_by_name(name)
    assert default_role(name) == ColumnRole(name, "dimension", "default")


# -- canonical columns ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "role"),
    [
        ("output_tokens", "outcome"),
        ("max_token_rank", "outcome"),
        ("user_feedback", "outcome"),
        ("eval_score", "outcome"),
        ("response_text", "outcome"),
        ("finish_reason", "outcome"),  # why generation stopped: the response's
        # request-side, even where a built-in detector reads them
        ("max_tokens", "dimension"),  # truncated
        ("prompt_text", "dimension"),  # wrong_language, repetition
        ("prompt_language", "dimension"),  # script_mix
        ("temperature", "dimension"),  # argmax_violation
        ("prompt_tokens", "dimension"),
        ("batch_size", "dimension"),
        ("model", "dimension"),
        ("platform", "dimension"),
        ("routing_pool", "dimension"),
        ("region", "dimension"),
        ("server_id", "dimension"),
        ("request_id", "id"),
        ("ts", "time"),
        ("user_id", "identity"),
        ("session_id", "identity"),
    ],
)
def test_canonical_roles(column, role):
    assert default_role(column).role == role
    assert default_role(column).why == "canonical"


def test_every_canonical_column_has_one_of_the_roles():
    assert {c.role for c in CANONICAL_COLUMNS} == {"id", "time", "identity", "dimension", "outcome"}


# -- roles recorded by ingest --------------------------------------------------------


def _rows(n=24, **extra):
    return [
        request_row(
            i,
            output_tokens=10 * i,
            latency_ms=100 * i,
            finish_reason=["stop", "length"][i % 2],
            queue_depth=i % 4,
            kernel=f"k{i % 3}",
            slow_src=i % 5,
            **extra,
        )
        for i in range(n)
    ]


SIGNALS = {
    "slow": {"column": "slow_src", "op": ">", "value": 3},
    "long_prompt": {"column": "prompt_tokens", "op": ">", "value": 110},
}


@pytest.fixture
def ingested(tmp_path, write_jsonl):
    wb = forensics.open(tmp_path / "roles.duckdb")
    wb.ingest(write_jsonl(_rows()), mapping=forensics.Mapping.from_dict({"signals": SIGNALS}))
    yield wb
    wb.close()


@pytest.mark.parametrize(
    ("column", "role", "why"),
    [
        ("latency_ms", "outcome", "name rule"),
        ("finish_reason", "outcome", "canonical"),
        ("output_tokens", "outcome", "canonical"),
        ("eval_score", "outcome", "canonical"),
        ("slow_src", "outcome", "signal input"),
        ("prompt_tokens", "outcome", "signal input"),  # a user's signal reads it
        ("queue_depth", "dimension", "default"),
        ("kernel", "dimension", "default"),
        ("temperature", "dimension", "canonical"),  # a built-in detector reads it
        ("prompt_language", "dimension", "canonical"),
        ("model", "dimension", "canonical"),
        ("request_id", "id", "canonical"),
        ("user_id", "identity", "canonical"),
        ("slow", "signal", "signal"),
        ("degraded", "signal", "signal"),
        ("_source_row", "internal", "internal"),
    ],
)
def test_ingest_records_each_columns_role(ingested, column, role, why):
    recorded = ingested.sql(
        'SELECT role, why FROM column_roles WHERE "column" = $c', {"c": column}
    ).rows()
    assert recorded == [(role, why)]
    assert ingested.roles().filter(pl.col("column") == column).rows() == [(column, role, why)]


def test_every_column_of_requests_has_a_recorded_role(ingested):
    assert ingested.roles()["column"].to_list() == list(ingested.db.columns("requests"))
    recorded = ingested.sql('SELECT "column", role, why FROM column_roles').sort("column")
    assert recorded.equals(ingested.roles().sort("column"))


def test_dimensions_are_the_dimension_role_columns_only(ingested):
    names = {d.name for d in ingested.dimensions()}
    outcomes = set(ingested.roles().filter(pl.col("role") == "outcome")["column"])
    assert not names & outcomes
    assert {"model", "platform", "temperature", "queue_depth", "kernel"} <= names
    assert {"latency_ms", "output_tokens", "finish_reason", "slow_src", "prompt_tokens"} <= outcomes


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ({"latency_ms": "dimension"}, ("latency_ms", "dimension")),  # over the name rule
        ({"queue_depth": "outcome"}, ("queue_depth", "outcome")),  # over the default
        ({"slow_src": "dimension"}, ("slow_src", "dimension")),  # over the signal input
        ({"output_tokens": "dimension"}, ("output_tokens", "dimension")),  # over canonical
        ({"temperature": "outcome"}, ("temperature", "outcome")),
        ({"LATENCY_MS": "dimension"}, ("latency_ms", "dimension")),  # DuckDB names: any case
    ],
)
def test_an_explicit_role_wins_both_ways(tmp_path, write_jsonl, roles, expected):
    mapping = forensics.Mapping.from_dict({"signals": SIGNALS, "roles": roles})
    with forensics.open(tmp_path / "r.duckdb") as wb:
        wb.ingest(write_jsonl(_rows()), mapping=mapping)
        column, role = expected
        assert wb.roles().filter(pl.col("column") == column).rows() == [(column, role, "mapping")]
        assert (column in {d.name for d in wb.dimensions()}) == (role == "dimension")


def test_a_later_ingest_with_a_role_updates_it_and_the_cubes_follow(tmp_path, write_jsonl):
    path = write_jsonl(_rows())
    with forensics.open(tmp_path / "r.duckdb") as wb:
        wb.ingest(path)
        wb.cube(["queue_depth", "model"])
        assert "queue_depth" in {d.name for d in wb.dimensions()}
        again = wb.ingest(
            path,
            mapping=forensics.Mapping.from_dict(
                {"roles": {"queue_depth": "outcome", "latency_ms": "dimension"}}
            ),
        )
        assert again.accepted == 0  # nothing new: only the roles changed
        assert "role of queue_depth: dimension -> outcome (mapping)" in again.notes
        assert "note: role of latency_ms: outcome -> dimension (mapping)" in again.table()
        dims = {d.name for d in wb.dimensions()}
        assert "queue_depth" not in dims
        assert "latency_ms" in dims
        recorded = set(wb.sql("SELECT name FROM cube_dimensions")["name"])
        assert "queue_depth" not in recorded
        assert "latency_ms" in recorded
        assert all("queue_depth" not in c.dims for c in wb.cubes())  # the cube asked for is gone
        # a later ingest without a mapping keeps the explicit roles
        wb.ingest(write_jsonl(_rows(n=30)[24:], name="more.jsonl"))
        assert wb.roles().filter(pl.col("why") == "mapping")["column"].sort().to_list() == [
            "latency_ms",
            "queue_depth",
        ]


def test_a_role_for_a_column_no_file_has_yet_waits_for_it(tmp_path, write_jsonl):
    mapping = forensics.Mapping.from_dict({"roles": {"gpu_temp": "outcome"}})
    with forensics.open(tmp_path / "r.duckdb") as wb:
        summary = wb.ingest(write_jsonl(_rows()), mapping=mapping)
        assert any(
            "gpu_temp" in note and "no file has that column yet" in note for note in summary.notes
        )
        assert "gpu_temp" not in wb.roles()["column"].to_list()
        wb.ingest(write_jsonl(_rows(n=30, gpu_temp=70)[24:], name="hot.jsonl"))
        assert wb.roles().filter(pl.col("column") == "gpu_temp").rows() == [
            ("gpu_temp", "outcome", "mapping")
        ]


def test_every_column_an_expression_signal_reads_is_an_outcome(tmp_path, write_jsonl):
    wb = forensics.open(tmp_path / "expr.duckdb")
    signals = {"odd": {"expr": "queue_depth > 2 and contains(kernel, '1') or batch_size is null"}}
    wb.ingest(write_jsonl(_rows()), mapping=forensics.Mapping.from_dict({"signals": signals}))
    roles = {
        r[0]: (r[1], r[2]) for r in wb.sql('SELECT "column", role, why FROM column_roles').rows()
    }
    for name in ("queue_depth", "kernel", "batch_size"):
        assert roles[name] == ("outcome", "signal input"), name
    assert roles["latency_ms"] == ("outcome", "name rule")
    assert roles["model"] == ("dimension", "canonical")
    assert "queue_depth" not in [d.name for d in queries.dimensions(wb.db)]
    wb.close()


def test_a_role_for_a_stored_signal_is_refused_before_anything_is_written(ingested, write_jsonl):
    mapping = forensics.Mapping.from_dict({"roles": {"slow": "dimension"}}, source="m.toml")
    before = ingested.counts()["requests"]
    with pytest.raises(ConfigError, match=r"m\.toml: \[roles\] slow: slow is a signal column"):
        ingested.ingest(write_jsonl(_rows(n=30)[24:], name="more.jsonl"), mapping=mapping)
    assert ingested.counts()["requests"] == before


def test_dimensions_follow_the_roles_even_before_the_cubes_are_rebuilt(ingested):
    assert "kernel" in {d.name for d in ingested.dimensions()}
    record_roles(ingested.db, {"kernel": "outcome"})  # as another writer would, no refresh
    assert "kernel" in set(ingested.sql("SELECT name FROM cube_dimensions")["name"])
    assert "kernel" not in {d.name for d in ingested.dimensions()}


def test_a_database_without_recorded_roles_gets_the_defaults(ingested):
    ingested.sql("DELETE FROM column_roles")
    roles = ingested.roles()
    assert roles.filter(pl.col("column") == "latency_ms").rows() == [
        ("latency_ms", "outcome", "name rule")
    ]
    assert "latency_ms" not in {d.name for d in queries.discover_dimensions(ingested.db)}


# -- the separation never slices by an outcome ---------------------------------------


def _replica_incident(seed: int = 5) -> pl.DataFrame:
    """A week of requests over eight replicas; from day 4 replica r3 is stuck: its
    requests take 60 s, and the ones it answers blank (output_tokens 0) get a thumbs down."""
    rng = np.random.default_rng(seed)
    n = 30_000
    start = datetime(2025, 3, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, 7 * 24 * 3600, n))
    ts = [start + timedelta(seconds=int(s)) for s in offsets]
    server = rng.choice([f"r{i}" for i in range(8)], n)
    model = rng.choice(["m-a", "m-b"], n)
    output = np.maximum(1, rng.lognormal(np.log(300), 0.6, n)).astype(np.int64)
    latency = 400 + 3 * output + rng.integers(0, 200, n)
    feedback = np.where(rng.random(n) < 0.03, -1, 0)
    stuck = (server == "r3") & (offsets >= int(3.5 * 24 * 3600))
    blank = stuck & (rng.random(n) < 0.4)
    latency = np.where(stuck, 60_000 + rng.integers(0, 500, n), latency)
    output = np.where(blank, 0, output)
    feedback = np.where(blank, -1, feedback)
    return pl.DataFrame(
        {
            "request_id": [f"q{i}" for i in range(n)],
            "ts": pl.Series(ts, dtype=pl.Datetime("ms", "UTC")),
            "model": model,
            "platform": rng.choice(["tpu", "gpu"], n),
            "routing_pool": rng.choice(["p1", "p2"], n),
            "server_id": server,
            "output_tokens": output,
            "latency_ms": latency,
            "user_feedback": feedback,
        }
    )


def test_a_bugs_effects_are_never_taken_for_its_cause(tmp_path, write_parquet):
    with forensics.open(tmp_path / "replica.duckdb") as wb:
        wb.ingest(write_parquet(_replica_incident()))
        found = [s for s in wb.signatures() if s.signal == "negative_feedback"]
    assert found, "the stuck replica must be found"
    for sig in found:
        assert not set(sig.predicate) & {"latency_ms", "output_tokens"}, sig.predicate
    assert any(sig.predicate.get("server_id") == ["r3"] for sig in found), [
        s.predicate for s in found
    ]
