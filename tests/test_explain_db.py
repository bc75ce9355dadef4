"""Tests of ``Workbench.explain`` and ``forensics explain`` on real DuckDB files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.errors import ForensicsError, QueryError, UnknownNameError

T0 = datetime(2025, 8, 29, 13, 0, tzinfo=UTC)
ONSET = 70
AT = T0 + timedelta(minutes=ONSET, seconds=25)
MODELS, PLATFORMS, POOLS = ("m-a", "m-b"), ("tpu", "gpu", "trainium"), ("p1", "p2", "p3")


def _low(minute: int, platform: str, pool: str) -> float:
    raised = minute >= ONSET and platform == "gpu" and pool == "p2"
    return 0.3 if raised else 0.02


def request_rows(minutes: int = 90, per_minute: int = 300, seed: int = 0) -> pl.DataFrame:
    """One row per request, at random seconds, low_eval raised in gpu & p2 from ONSET."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(minutes):
        for _ in range(per_minute):
            model, platform, pool = (str(rng.choice(v)) for v in (MODELS, PLATFORMS, POOLS))
            bad = rng.random() < _low(m, platform, pool)
            ts = T0 + timedelta(minutes=m, seconds=float(rng.uniform(0, 60)))
            rows.append((ts, model, platform, pool, 0.1 if bad else 0.9))
    frame = pl.DataFrame(
        rows, schema=["ts", "model", "platform", "routing_pool", "eval_score"], orient="row"
    )
    return frame.with_columns(request_id=pl.format("r{}", pl.int_range(pl.len())))


def _db(tmp_path: Path, frame: pl.DataFrame, name: str) -> Path:
    path = tmp_path / f"{name}.parquet"
    frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")).write_parquet(path)
    db = tmp_path / f"{name}.duckdb"
    with forensics.open(db) as wb:
        wb.ingest(path, progress=False)
    return db


@pytest.fixture(scope="module")
def request_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _db(tmp_path_factory.mktemp("explain"), request_rows(), "requests")


def test_explain_at_a_minute(request_db):
    with forensics.open(request_db, read_only=True) as wb:
        result = wb.explain(AT, signal="low_eval")
    assert result.grain == timedelta(minutes=1)
    assert result.at == T0 + timedelta(minutes=ONSET)
    assert result.items[0].elements == ({"platform": "gpu", "routing_pool": "p2"},)
    assert len(result.items) >= 5


def test_explain_finds_the_moment(request_db):
    with forensics.open(request_db, read_only=True) as wb:
        result = wb.explain(signal="low_eval")
    assert result.found
    assert abs((result.at - T0) / timedelta(minutes=1) - ONSET) <= 1
    assert result.items[0].elements == ({"platform": "gpu", "routing_pool": "p2"},)


def test_counted_rows_weigh_as_the_requests_they_stand_for(tmp_path, request_db):
    """Rows per minute, slice and outcome with a count give the answer of one row per request."""
    expanded = request_rows()
    counted = (
        expanded.with_columns(pl.col("ts").dt.truncate("1m"))
        .group_by("ts", "model", "platform", "routing_pool", "eval_score")
        .agg(cnt=pl.len())
        .sort("ts", "model", "platform", "routing_pool", "eval_score")
        .with_columns(request_id=pl.format("c{}", pl.int_range(pl.len())))
    )
    db = _db(tmp_path, counted, "counted")
    with forensics.open(db, read_only=True) as wb:
        weighed = wb.explain(AT, signal="low_eval", weight="cnt")
        unweighed = wb.explain(AT, signal="low_eval")
    with forensics.open(request_db, read_only=True) as wb:
        rows = wb.explain(AT, signal="low_eval", grain="minute")
    assert weighed.grain == timedelta(minutes=1)
    assert [c.elements for c in weighed.items] == [c.elements for c in rows.items]
    assert [c.requests for c in weighed.items] == [c.requests for c in rows.items]
    assert [c.signal_count for c in weighed.items] == [c.signal_count for c in rows.items]
    # without the weight a counted row counts once: fewer requests than there were
    assert unweighed.items[0].requests < weighed.items[0].requests


def test_explain_options(request_db):
    with forensics.open(request_db, read_only=True) as wb:
        short = wb.explain(AT, signal="low_eval", baseline=20, dims=["platform", "routing_pool"])
        coarse = wb.explain(AT, signal="low_eval", grain="5min")
    assert short.baseline_buckets == 20
    assert all(set(e) <= {"platform", "routing_pool"} for c in short.items for e in c.elements)
    assert coarse.grain == timedelta(minutes=5)
    assert coarse.at == T0 + timedelta(minutes=70)


def test_within_finds_the_moment_inside_a_window(request_db):
    """A clicked hour: the most anomalous minute in it, never one outside it."""
    hour = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    before = (T0 + timedelta(minutes=30), T0 + timedelta(minutes=60))
    with forensics.open(request_db, read_only=True) as wb:
        inside = wb.explain(signal="low_eval", within=hour)
        earlier = wb.explain(signal="low_eval", within=before)
    assert inside.found
    assert inside.within == hour
    assert abs((inside.at - T0) / timedelta(minutes=1) - ONSET) <= 1
    assert inside.items[0].elements == ({"platform": "gpu", "routing_pool": "p2"},)
    assert before[0] <= earlier.at < before[1]  # the rise starts later: not looked for
    assert "most anomalous moment in 2025-08-29 13:30 – 2025-08-29 14:00" in earlier.describe()


def test_where_explains_within_the_filtered_requests(request_db):
    with forensics.open(request_db, read_only=True) as wb:
        pool = wb.explain(AT, signal="low_eval", where={"routing_pool": ["p2"]})
        others = wb.explain(AT, signal="low_eval", where={"platform": ["tpu", "trainium"]})
        whole = wb.explain(AT, signal="low_eval")
    assert pool.where == {"routing_pool": ["p2"]}
    # the pool is fixed by the filter: the explanation names the platform alone
    assert pool.items[0].elements == ({"platform": "gpu"},)
    assert all("routing_pool" not in e for c in pool.items for e in c.elements)
    first = whole.items[0]
    assert (pool.items[0].requests, pool.items[0].signal_count) == (
        first.requests,
        first.signal_count,
    )
    assert "requests with routing_pool = p2" in pool.describe()
    # without the failing platform nothing in it is the gpu & p2 rise
    assert all(e.get("platform") != "gpu" for c in others.items for e in c.elements)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"at": AT, "within": (T0, AT)}, QueryError, "either at="),
        ({"within": (AT, T0)}, QueryError, "the end must be later"),
        ({"where": {"nope": ["x"]}}, ForensicsError, "nope"),
        ({"at": "2024-01-01T00:00Z"}, QueryError, "outside the data"),
        ({"at": "soon"}, QueryError, "not an ISO-8601 time"),
        ({"signal": "nope"}, UnknownNameError, "unknown signal 'nope'"),
        ({"dims": ["nope"]}, ForensicsError, "nope"),
        ({"weight": "nope"}, UnknownNameError, "unknown count column"),
        ({"weight": "model"}, QueryError, "not numbers"),
        ({"baseline": 0}, QueryError, "at least 1"),
        ({"at": T0.isoformat()}, QueryError, "first bucket"),
    ],
)
def test_bad_input(request_db, options, error, message):
    options = {"signal": "low_eval", **options}
    with forensics.open(request_db, read_only=True) as wb, pytest.raises(error, match=message):
        wb.explain(**options)


def test_cli_explain_json(request_db):
    result = CliRunner().invoke(
        main,
        [
            "explain",
            "--db",
            str(request_db),
            "--at",
            AT.isoformat(),
            "--signal",
            "low_eval",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["at"] == "2025-08-29T14:10:00Z"
    assert doc["signal"] == "low_eval"
    assert doc["candidates"][0]["elements"] == [{"platform": "gpu", "routing_pool": "p2"}]
    assert set(doc["candidates"][0]) == {
        "elements",
        "share",
        "rate",
        "baseline_rate",
        "ci",
        "score",
    }


def test_cli_explain_text_finds_the_moment(request_db):
    result = CliRunner().invoke(main, ["explain", "--db", str(request_db), "--signal", "low_eval"])
    assert result.exit_code == 0, result.output
    assert "most anomalous moment found" in result.output
    assert "platform = gpu & routing_pool = p2" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "2030-01-01T00:00Z", "--signal", "low_eval"], "outside the data"),
        (["--signal", "nope"], "unknown signal"),
    ],
)
def test_cli_explain_bad_input_exits_2(request_db, args, message):
    result = CliRunner().invoke(main, ["explain", "--db", str(request_db), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_numeric_dimension_reads_as_a_range(tmp_path):
    frame = request_rows(minutes=80, per_minute=250, seed=2)
    rng = np.random.default_rng(5)
    batch = rng.integers(1, 128, frame.height)
    minute = ((frame["ts"] - T0).dt.total_seconds() // 60).to_numpy()
    raised = (minute >= ONSET) & (batch >= 32) & (batch < 64) & (rng.random(frame.height) < 0.3)
    frame = frame.with_columns(
        batch_size=pl.Series(batch),
        eval_score=pl.when(pl.Series(raised)).then(0.1).otherwise(pl.col("eval_score")),
    )
    db = _db(tmp_path, frame, "numeric")
    with forensics.open(db, read_only=True) as wb:
        result = wb.explain(AT, signal="low_eval")
    # request_rows raises gpu & p2 too: two causes at once, one candidate with both
    elements = sorted(result.items[0].elements, key=lambda e: list(e))
    assert elements == [
        {"batch_size": {"gte": 32.0, "lt": 64.0}},
        {"platform": "gpu", "routing_pool": "p2"},
    ]
    assert "batch_size >= 32 & batch_size < 64" in result.describe()
    assert "of 1 minute before" in result.describe()
