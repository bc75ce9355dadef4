"""The Spark engine against the DuckDB path: same verdicts, cubes and signatures; clear failures.

PySpark in local mode (``local[2]``), one session for the whole test run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.errors import ConfigError
from forensics.spark import SparkTable, ingest_with_spark
from forensics.spark.cache import fill_cache
from tests.conftest import REPO, same_signatures

pytestmark = pytest.mark.spark

SAMPLE = REPO / "data_samples" / "postmortem-2025"
BAD = REPO / "tests" / "bad_inputs"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if shutil.which("java") is None and not os.environ.get("CI"):
        pytest.skip("no Java runtime: `make test` installs openjdk-17-jre-headless")
    from forensics.spark import SparkSettings, spark_session

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = spark_session(
        SparkSettings(
            "local[2]",
            {"spark.sql.shuffle.partitions": "2", "spark.sql.warehouse.dir": str(warehouse)},
        )
    )
    yield session
    session.stop()


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _same_table(a: Path, b: Path, table: str, *, leave_out: tuple[str, ...] = ()) -> None:
    """Both databases' tables hold the same rows (as multisets), compared by column name."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        cols_a = [r[0] for r in con.execute(f"DESCRIBE a.{table}").fetchall()]
        cols_b = [r[0] for r in con.execute(f"DESCRIBE b.{table}").fetchall()]
        assert sorted(cols_a) == sorted(cols_b)
        cols = ", ".join(f'"{c}"' for c in sorted(cols_a) if c not in leave_out)
        for x, y in (("a", "b"), ("b", "a")):
            only = con.execute(
                f"SELECT {cols} FROM {x}.{table} EXCEPT ALL SELECT {cols} FROM {y}.{table}"
            ).fetchall()
            assert only == [], f"{table}: rows only in {x}: {only[:3]}"
        n = con.execute(f"SELECT count(*) FROM a.{table}").fetchone()
        assert n is not None
        assert n[0] > 0
    finally:
        con.close()


def _summary(files: Any) -> list[tuple[Any, ...]]:
    return [
        (Path(f.path).name, f.status, f.rows_read, f.accepted, dict(f.rejected), f.duplicates)
        for f in files
    ]


# -- the shipped sample -----------------------------------------------------------------


def _both_ways(
    spark: Any, files: list[Path], events: Path, folder: Path, table: str
) -> dict[str, Any]:
    """The files ingested into DuckDB and into Spark (and its cache), each searched."""
    duck, cache = folder / "duck.duckdb", folder / "cache.duckdb"
    with forensics.open(duck) as wb:
        duck_summary = wb.ingest(*files, errors="collect")
        wb.ingest_events(events)
        duck_signatures = [s.to_dict() for s in wb.signatures()]
    summary, filled = ingest_with_spark(files, table=table, cache=cache, spark=spark)
    with forensics.open(cache) as wb:
        wb.ingest_events(events)
    with forensics.open(cache, spark=spark) as wb:
        spark_signatures = [s.to_dict() for s in wb.signatures()]
    return {
        "duck": duck,
        "cache": cache,
        "duck_summary": duck_summary,
        "summary": summary,
        "filled": filled,
        "duck_signatures": duck_signatures,
        "spark_signatures": spark_signatures,
    }


@pytest.fixture(scope="module")
def sample_pair(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pair")
    return _both_ways(spark, [SAMPLE / "requests.parquet"], SAMPLE / "events.csv", folder, "sample")


def test_the_sample_is_accepted_and_rejected_alike(sample_pair: dict[str, Any]) -> None:
    assert _summary(sample_pair["summary"].files) == _summary(sample_pair["duck_summary"].files)
    assert sample_pair["filled"]["requests"] == 400_000
    # Under search_rows, the cache's sample is every request.
    assert sample_pair["filled"]["sampled"] == 400_000


def test_the_sample_has_the_same_rows_and_signal_values_row_by_row(
    sample_pair: dict[str, Any],
) -> None:
    _same_table(sample_pair["duck"], sample_pair["cache"], "requests")
    _same_table(sample_pair["duck"], sample_pair["cache"], "signal_definitions")
    _same_table(sample_pair["duck"], sample_pair["cache"], "column_roles")


def _same_cubes(duck: Path, cache: Path) -> None:
    """The same cube catalogue, default cube and dimensions in both databases."""
    sql = "SELECT name, dims, grain, rows, source_rows, auto FROM cube_catalog ORDER BY name"
    assert _rows(cache, sql) == _rows(duck, sql)
    _same_table(duck, cache, "cube_default")
    # Cardinalities above 2 * CUBE_MAX_VALUES are approximate, by each engine's own sketch.
    dims = (
        "SELECT position, name, kind, cubable, edges, least(cardinality, 129) FROM cube_dimensions"
    )
    assert _rows(cache, dims + " ORDER BY position") == _rows(duck, dims + " ORDER BY position")


def test_the_sample_has_the_same_cubes(sample_pair: dict[str, Any]) -> None:
    _same_cubes(sample_pair["duck"], sample_pair["cache"])


def test_the_sample_gives_the_same_signatures(sample_pair: dict[str, Any]) -> None:
    duck, spark = sample_pair["duck_signatures"], sample_pair["spark_signatures"]
    assert len(duck) >= 3
    assert same_signatures(json.loads(json.dumps(spark)), json.loads(json.dumps(duck)))


def test_the_cache_is_read_as_a_database_with_its_cubes(sample_pair: dict[str, Any]) -> None:
    with forensics.open(sample_pair["cache"], read_only=True) as wb:
        assert [c.name for c in wb.cubes()] == ["cube_default"]
        assert wb.db.meta("spark.table") == "sample"


# -- a cache holding a sample: what reads every request runs in Spark ---------------------

SAMPLED_ROWS = 200_000
"""search_rows of the sampled cache: half of the sample's 400,000 requests."""


@pytest.fixture(scope="module")
def sampled_cache(
    spark: Any, sample_pair: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The sample's Spark table cached with half of its requests (the cubes count them all)."""
    cache = tmp_path_factory.mktemp("sampled") / "sampled.duckdb"
    filled = fill_cache(spark, SparkTable.under(spark, "sample"), cache, search_rows=SAMPLED_ROWS)
    assert 0 < filled["sampled"] < filled["requests"] == 400_000
    with forensics.open(cache) as wb:
        wb.ingest_events(SAMPLE / "events.csv")
    return cache


def _counted_on_every_request(found: list[dict[str, Any]], duck: Path) -> None:
    """Each signature's requests and users are the DuckDB database's count of all requests.

    The search on a sampled cache sees half the requests, so it may place a window
    or choose a slice differently from the search on every request; what must not
    differ is what a signature says about its slice: counted on every request.
    """
    from datetime import datetime

    from forensics.db import Database
    from forensics.queries import Where, requests_and_users

    def when(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))

    assert len(found) >= 3
    db = Database(duck, read_only=True)
    try:
        for sig in found:
            where = Where.parse({**sig["predicate"], "ts": (when(sig["start"]), when(sig["end"]))})
            assert (sig["requests"], sig["users"]) == requests_and_users(db, where), sig["id"]
    finally:
        db.close()


@pytest.fixture
def no_spark_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORENSICS_SPARK_MASTER", raising=False)
    monkeypatch.delenv("FORENSICS_SPARK_CONF", raising=False)


@pytest.mark.usefixtures("no_spark_settings")
def test_a_sampled_cache_without_spark_says_what_to_set(sampled_cache: Path) -> None:
    with forensics.open(sampled_cache, read_only=True) as wb:
        assert wb.counts()["requests"] < 400_000  # the cubes and the sample need no Spark
        with pytest.raises(ConfigError, match=r"set FORENSICS_SPARK_MASTER .*--spark-master"):
            wb.signatures()
    result = CliRunner().invoke(main, ["signatures", "--db", str(sampled_cache), "-q"])
    assert result.exit_code == 2, result.output
    assert "FORENSICS_SPARK_MASTER" in result.output
    info = CliRunner().invoke(main, ["info", "--db", str(sampled_cache)])
    assert info.exit_code == 0, info.output
    assert "Spark table sample" in info.output
    assert "400,000; this cache holds a sample of them" in info.output


def test_a_cache_holding_every_request_needs_no_spark(
    sample_pair: dict[str, Any], no_spark_settings: None
) -> None:
    with forensics.open(sample_pair["cache"], read_only=True) as wb:
        found = [s.to_dict() for s in wb.signatures()]
        assert wb.everything is None
    assert same_signatures(found, sample_pair["duck_signatures"])


def test_a_sampled_cache_counts_on_spark_from_the_environment(
    sampled_cache: Path, sample_pair: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The settings are the test session's (local[2]), so Spark reuses its session.
    monkeypatch.setenv("FORENSICS_SPARK_MASTER", "local[2]")
    with forensics.open(sampled_cache, read_only=True) as wb:
        assert wb.everything is None  # opening reads no request: no Spark yet
        found = [s.to_dict() for s in wb.signatures()]
        assert wb.everything is not None
    _counted_on_every_request(json.loads(json.dumps(found)), sample_pair["duck"])


def test_explain_on_a_sampled_cache_counts_every_request(
    spark: Any, sampled_cache: Path, sample_pair: dict[str, Any]
) -> None:
    with forensics.open(sample_pair["duck"], read_only=True) as wb:
        expected = json.loads(wb.explain(signal="degraded").to_json())
    with forensics.open(sampled_cache, read_only=True, spark=spark) as wb:
        got = json.loads(wb.explain(signal="degraded").to_json())
    assert got["at"] == expected["at"]
    assert got == expected


def test_the_report_counts_a_sampled_cache_on_spark(
    spark: Any, sampled_cache: Path, sample_pair: dict[str, Any]
) -> None:
    from forensics.report import Investigation

    with forensics.open(sampled_cache, read_only=True, spark=spark) as wb:
        found = [s.to_dict() for s in Investigation.default(wb).signatures]
    _counted_on_every_request(json.loads(json.dumps(found)), sample_pair["duck"])


def test_the_dashboards_searches_count_a_sampled_cache_on_spark(
    spark: Any, sampled_cache: Path, sample_pair: dict[str, Any]
) -> None:
    """The dashboard's "find signatures" and its click-to-explain, not only ``wb``'s."""
    with forensics.open(sample_pair["duck"], read_only=True) as wb:
        expected = json.loads(wb.explain(signal="degraded").to_json())
    with forensics.open(sampled_cache, read_only=True, spark=spark) as wb:
        dash = wb.dashboard(signal="degraded", grain="hour", by=None)
        found = [s.to_dict() for s in dash.signature_panel.find()]
        at = datetime.fromisoformat(expected["at"].replace("Z", "+00:00"))
        hour = at.replace(minute=0, second=0, microsecond=0)
        shown = dash.explain_moment((hour, hour + timedelta(hours=1)))
    _counted_on_every_request(json.loads(json.dumps(found)), sample_pair["duck"])
    assert shown is not None
    assert json.loads(shown.to_json())["candidates"] == expected["candidates"]


def test_cli_signatures_on_a_sampled_cache_run_in_spark(
    sampled_cache: Path, sample_pair: dict[str, Any], tmp_path: Path
) -> None:
    # One fresh process, as a user runs it: the master from the environment.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "FORENSICS_SPARK_MASTER": "local[1]",
    }
    env.pop("FORENSICS_SPARK_CONF", None)
    out = tmp_path / "sigs.json"
    done = subprocess.run(
        [sys.executable, "-m", "forensics.cli", "signatures", "--db", str(sampled_cache),
         "--json", str(out), "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(out.read_text())["signatures"]
    _counted_on_every_request(found, sample_pair["duck"])


def test_cli_spark_failures_on_a_cache_exit_2(
    spark: Any, sampled_cache: Path, tmp_path: Path, no_spark_settings: None
) -> None:
    unreachable = CliRunner().invoke(
        main,
        ["signatures", "--db", str(sampled_cache), "-q", "--spark-master", "spark://127.0.0.1:9"],
    )
    assert unreachable.exit_code == 2, unreachable.output
    assert "spark://127.0.0.1:9 is not reachable" in unreachable.output
    assert "FORENSICS_SPARK_MASTER" not in os.environ  # the option's setting was put back
    moved = tmp_path / "moved.duckdb"
    shutil.copy(sampled_cache, moved)
    con = duckdb.connect(str(moved))
    try:
        con.execute(
            "UPDATE forensics_meta SET value = $v WHERE key = 'spark.location'",
            {"v": str(tmp_path / "nowhere")},
        )
    finally:
        con.close()
    # local[2], as the test session's: Spark reuses it.
    for command in (["signatures", "-q"], ["explain"], ["report", "--out", str(tmp_path / "r.md")]):
        missing = CliRunner().invoke(
            main, [*command, "--db", str(moved), "--spark-master", "local[2]"]
        )
        assert missing.exit_code == 2, (command, missing.output)
        assert "Spark table 'sample' is missing" in missing.output


# -- bad rows, duplicates, re-ingest ------------------------------------------------------


def test_bad_rows_and_duplicates_across_files_are_settled_alike(spark: Any, tmp_path: Path) -> None:
    # A second file repeating ids of the first: one row equal to its first occurrence
    # (a duplicate), one different (a conflict).
    lines = (BAD / "duplicates.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    changed = json.loads(lines[1]) | {"model": "m9"}
    later = tmp_path / "later.jsonl"
    later.write_text("\n".join(json.dumps(r) for r in (first, changed)) + "\n")
    files = [BAD / "row_problems.jsonl", BAD / "duplicates.jsonl", BAD / "timestamps.csv", later]
    duck, cache = tmp_path / "duck.duckdb", tmp_path / "cache.duckdb"
    with forensics.open(duck) as wb:
        expected = wb.ingest(*files, errors="collect")
    summary, _ = ingest_with_spark(files, table="bad", cache=cache, spark=spark)
    assert _summary(summary.files) == _summary(expected.files)
    assert any(f.rejected.get("duplicate_conflict") for f in summary.files)
    _same_table(duck, cache, "requests")
    # The raw line of a conflict found across files is not kept yet (see the README).
    _same_table(duck, cache, "rejected_rows", leave_out=("ingested_at", "raw"))
    reasons = "SELECT reason, count(*) FROM rejected_rows GROUP BY ALL ORDER BY ALL"
    assert _rows(cache, reasons) == _rows(duck, reasons)

    # Idempotent: the same files again add nothing.
    again, filled = ingest_with_spark(files, table="bad", cache=cache, spark=spark)
    assert {f.status for f in again.files if f.status != "refused"} == {"already ingested"}
    _same_table(duck, cache, "requests")
    assert filled["requests"] == _rows(duck, "SELECT count(*) FROM requests")[0][0]


def test_data_finer_than_the_hour_get_the_same_grain_and_cubes(spark: Any, tmp_path: Path) -> None:
    """30,000 requests in four hours: both engines choose the 5-minute grain from the times.

    The cache fill once built its cube per hour whatever the data, so at 1M rows of the
    benchmark (15-minute grain) the two engines searched different cubes.
    """
    import random

    rng = random.Random(5)
    start = datetime(2025, 8, 1, 6, tzinfo=UTC)
    rows = [
        {
            "request_id": f"r{i}",
            "ts": (start + timedelta(seconds=rng.uniform(0, 4 * 3600))).isoformat(),
            "model": rng.choice(["a", "b", "c"]),
            "platform": rng.choice(["x", "y"]),
            "routing_pool": rng.choice(["p", "q"]),
            "eval_score": rng.random(),
        }
        for i in range(30_000)
    ]
    data = tmp_path / "dense.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    duck, cache = tmp_path / "duck.duckdb", tmp_path / "cache.duckdb"
    with forensics.open(duck) as wb:
        wb.ingest(data)
        assert wb.grain == "5min"
    ingest_with_spark([data], table="dense", cache=cache, spark=spark)
    _same_cubes(duck, cache)


# -- failures -------------------------------------------------------------------------------


def test_an_unreachable_master_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "ingest", str(BAD / "duplicates.jsonl"), "--engine", "spark", "--table", "t",
            "--db", str(tmp_path / "c.duckdb"), "--spark-master", "spark://127.0.0.1:9",
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "not reachable" in result.output
    assert "FORENSICS_SPARK_MASTER" in result.output


def test_no_master_at_all_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORENSICS_SPARK_MASTER", raising=False)
    monkeypatch.delenv("FORENSICS_SPARK_CONF", raising=False)
    result = CliRunner().invoke(
        main,
        ["ingest", str(BAD / "duplicates.jsonl"), "--engine", "spark", "--table", "t",
         "--db", str(tmp_path / "c.duckdb")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "FORENSICS_SPARK_MASTER" in result.output


def test_a_missing_table_is_a_clear_error(spark: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache.duckdb"
    ingest_with_spark([BAD / "duplicates.jsonl"], table="gone", cache=cache, spark=spark)
    table = SparkTable.under(spark, "gone")
    shutil.rmtree(table.location)
    with pytest.raises(ConfigError, match="Spark table 'gone' is missing"):
        forensics.open(cache, spark=spark)


def test_counted_rows_are_refused_before_spark_starts(tmp_path: Path) -> None:
    import tomllib

    from forensics.schema import Mapping

    text = '[counts]\nrequests = "cnt"\n[signals.stalled]\ncount = "value"\n'
    mapping = Mapping.from_dict(tomllib.loads(text))
    with pytest.raises(ConfigError, match="counted rows"):
        ingest_with_spark(
            [BAD / "duplicates.jsonl"],
            table="t",
            cache=tmp_path / "c.duckdb",
            master="spark://127.0.0.1:9",
            mapping=mapping,
        )


# -- the reference scenario at a few hundred thousand rows -------------------------------

REFERENCE_ROWS = 200_000
"""Rows simulated of the reference scenario (postmortem-2025, another seed than the sample's)."""
REFERENCE_SEARCH_ROWS = 80_000
"""A ``search_rows`` under the scenario's size: the sampled path of the search and the cache."""


def _damaged_halves(source: Path, folder: Path) -> list[Path]:
    """The scenario as two files, with row problems, duplicates and conflicts in and across them.

    First half: every 1000th row has an out-of-range ``eval_score``, the next a null
    ``ts``. Second half: 400 exact repeats and 200 changed repeats of first-half
    rows (duplicates and conflicts across files), and 100 exact and 50 changed
    repeats of its own rows (within the file).
    """
    import polars as pl

    frame = pl.read_parquet(source).with_row_index("_i")
    half = frame.height // 2
    first = frame.head(half).with_columns(
        pl.when(pl.col("_i") % 1000 == 0)
        .then(1.7)
        .otherwise(pl.col("eval_score"))
        .alias("eval_score"),
        pl.when(pl.col("_i") % 1000 == 1).then(None).otherwise(pl.col("ts")).alias("ts"),
    )
    good = first.filter(pl.col("_i") % 1000 > 1)
    second = frame.slice(half)
    changed = pl.col("temperature") + 0.25
    second = pl.concat(
        [
            second,
            good.gather_every(300).head(400),
            good.gather_every(301, offset=7).head(200).with_columns(changed),
            second.gather_every(700).head(100),
            second.gather_every(701, offset=3).head(50).with_columns(changed),
        ]
    )
    paths = [folder / "first.parquet", folder / "second.parquet"]
    for path, part in zip(paths, (first, second), strict=True):
        part.drop("_i").write_parquet(path)
    return paths


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from forensics.simulate import simulate

    folder = tmp_path_factory.mktemp("reference")
    simulate("postmortem-2025", rows=REFERENCE_ROWS, seed=11, out=folder / "sim")
    files = _damaged_halves(folder / "sim" / "requests.parquet", folder)
    return {"folder": folder, "files": files, "events": folder / "sim" / "events.csv"}


@pytest.fixture(scope="module")
def reference_pair(spark: Any, reference_files: dict[str, Any]) -> dict[str, Any]:
    folder, files, events = (reference_files[k] for k in ("folder", "files", "events"))
    return _both_ways(spark, files, events, folder, "reference")


def test_the_reference_is_accepted_and_rejected_alike(reference_pair: dict[str, Any]) -> None:
    summary, duck = reference_pair["summary"], reference_pair["duck_summary"]
    assert _summary(summary.files) == _summary(duck.files)
    reasons = {r for f in summary.files for r in f.rejected}
    assert {"out_of_range", "missing_required", "duplicate_conflict"} <= reasons
    assert all(f.duplicates > 0 for f in summary.files[1:])
    cache = reference_pair["cache"]
    by_reason = 'SELECT reason, "column", count(*) FROM rejected_rows GROUP BY ALL ORDER BY ALL'
    assert _rows(cache, by_reason) == _rows(reference_pair["duck"], by_reason)
    # The raw line of a conflict found across files is not kept yet (see the README).
    _same_table(reference_pair["duck"], cache, "rejected_rows", leave_out=("ingested_at", "raw"))
    accepted = sum(f.accepted for f in summary.files)
    assert reference_pair["filled"]["requests"] == accepted
    assert reference_pair["filled"]["sampled"] == accepted  # under search_rows: all of them


def _signal_names(path: Path) -> list[str]:
    return [r[0] for r in _rows(path, "SELECT name FROM signal_definitions ORDER BY name")]


def test_the_reference_has_the_same_signal_values_row_by_row(
    reference_pair: dict[str, Any],
) -> None:
    duck, cache = reference_pair["duck"], reference_pair["cache"]
    signals = _signal_names(duck)
    assert signals == _signal_names(cache)
    assert len(signals) >= 5
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{duck}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{cache}' AS b (READ_ONLY)")
        columns = sorted(r[0] for r in con.execute("DESCRIBE a.requests").fetchall())
        assert columns == sorted(r[0] for r in con.execute("DESCRIBE b.requests").fetchall())
        # An order-free digest of every row: of its signals, and of all its columns.
        for chosen in (signals, columns):
            row = ", ".join(f'"{c}"' for c in ["request_id", *chosen])
            digest = f"SELECT count(*), sum(hash({row})::HUGEINT) FROM {{}}.requests"
            a, b = (con.execute(digest.format(x)).fetchone() for x in ("a", "b"))
            assert a == b
        # Joined on request_id: no request on one side only, no signal value that differs.
        differs = " OR ".join(f'x."{s}" IS DISTINCT FROM y."{s}"' for s in signals)
        mismatches = con.execute(
            "SELECT count(*) FILTER (WHERE x.request_id IS NULL OR y.request_id IS NULL), "
            f"count(*) FILTER (WHERE {differs}), count(*) "
            "FROM a.requests x FULL JOIN b.requests y USING (request_id)"
        ).fetchone()
        assert mismatches is not None
        assert mismatches[:2] == (0, 0)
        assert mismatches[2] == reference_pair["filled"]["requests"]
        # Signals fire: the digest compares values, not only nulls.
        fired = ", ".join(f'count(*) FILTER (WHERE "{s}")' for s in signals)
        counts = con.execute(f"SELECT {fired} FROM a.requests").fetchone()
        assert counts is not None
        assert sum(1 for n in counts if n) >= 5
    finally:
        con.close()


def test_the_reference_has_the_same_cubes(reference_pair: dict[str, Any]) -> None:
    _same_cubes(reference_pair["duck"], reference_pair["cache"])


def test_the_reference_gives_the_same_signatures(reference_pair: dict[str, Any]) -> None:
    duck, spark = reference_pair["duck_signatures"], reference_pair["spark_signatures"]
    assert len(duck) >= 3
    assert same_signatures(json.loads(json.dumps(spark)), json.loads(json.dumps(duck)))


@pytest.mark.xfail(
    strict=True,
    reason="the two engines sample different requests: DuckDB's workspace keeps "
    "hash(_source_file_id, _source_row) % 1e6 < fraction (separation/workspace.py create), "
    "the Spark cache md5(request_id) (spark/cache.py sample_condition), and the cache's "
    "numeric edges come from the sample's min/max; see the report on issue 20",
)
def test_a_sampled_search_gives_the_same_signatures(
    spark: Any, reference_pair: dict[str, Any], reference_files: dict[str, Any]
) -> None:
    # search_rows under the scenario: the cache holds a sample, the search runs on it and
    # a signature's numbers are counted in Spark on every request; DuckDB samples its own.
    from forensics.separation import SeparationParams
    from forensics.spark.cache import fill_cache

    small = SeparationParams(search_rows=REFERENCE_SEARCH_ROWS)
    with forensics.open(reference_pair["duck"], read_only=True) as wb:
        duck = [s.to_dict() for s in wb.signatures(params=small)]
    sampled = reference_files["folder"] / "sampled.duckdb"
    table = SparkTable.under(spark, "reference")
    filled = fill_cache(spark, table, sampled, search_rows=small.search_rows)
    assert filled["sampled"] < filled["requests"]
    with forensics.open(sampled) as wb:
        wb.ingest_events(reference_files["events"])
    with forensics.open(sampled, spark=spark) as wb:
        found = [s.to_dict() for s in wb.signatures(params=small)]
    assert len(duck) >= 3
    assert same_signatures(json.loads(json.dumps(found)), json.loads(json.dumps(duck)))


# -- privacy mode ---------------------------------------------------------------------------

ID_MARK = "Ident1ty-Leak"
"""Marker in every raw user and session id of the privacy test (hashes are hex: never there)."""
TEXT_MARK = "Zebra-Quokka-Answer"
"""Marker in every raw response text of the privacy test."""


def _private_input(folder: Path) -> Path:
    """3,000 simulated requests whose ids and texts hold the markers; one row out of range."""
    import polars as pl

    from forensics.simulate import simulate

    simulate("postmortem-2025", rows=3_000, seed=13, out=folder / "sim")
    frame = pl.read_parquet(folder / "sim" / "requests.parquet").with_columns(
        (pl.lit(f"{ID_MARK}-") + pl.col("user_id")).alias("user_id"),
        (pl.lit(f"{ID_MARK}-") + pl.col("session_id")).alias("session_id"),
        (pl.col("response_text") + pl.lit(f" {TEXT_MARK}")).alias("response_text"),
        pl.when(pl.int_range(pl.len()) == 5)
        .then(1.7)
        .otherwise(pl.col("eval_score"))
        .alias("eval_score"),
    )
    path = folder / "private.parquet"
    frame.write_parquet(path)
    return path


def _marks_in_table(location: str) -> set[str]:
    """Markers in the bytes, or in the decoded values, of every file of a Spark table."""
    import pyarrow.parquet as pq

    found: set[str] = set()
    files = [p for p in Path(location).rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        found |= {m for m in (ID_MARK, TEXT_MARK) if m.encode() in data}
        if path.suffix == ".parquet":
            text = str(pq.read_table(path).to_pylist())
            found |= {m for m in (ID_MARK, TEXT_MARK) if m in text}
    return found


def test_privacy_mode_gives_the_same_rows_and_writes_no_raw_id_or_text(
    spark: Any, tmp_path: Path
) -> None:
    from forensics.privacy import DROPPED_COLUMNS, HASH_CHARS
    from tests.conftest import SALT

    source = _private_input(tmp_path)
    duck, cache = tmp_path / "duck.duckdb", tmp_path / "cache.duckdb"
    with forensics.open(duck) as wb:
        expected = wb.ingest(source, privacy=True, salt=SALT, errors="collect")
    # Uncompressed, so the byte scan below reads every value as written.
    codec = spark.conf.get("spark.sql.parquet.compression.codec")
    spark.conf.set("spark.sql.parquet.compression.codec", "uncompressed")
    try:
        summary, _ = ingest_with_spark(
            [source], table="private", cache=cache, spark=spark, privacy=True, salt=SALT
        )
        ingest_with_spark([source], table="public", cache=tmp_path / "public.duckdb", spark=spark)
    finally:
        spark.conf.set("spark.sql.parquet.compression.codec", codec)
    assert _summary(summary.files) == _summary(expected.files)
    assert sum(sum(f.rejected.values()) for f in summary.files) == 1

    # The same rows and signals; the ids hashed (each database draws its own nonce, so
    # the hashes differ between the two, but they pair one to one, as the raw ids do).
    hashed = ("user_id", "session_id")
    _same_table(duck, cache, "requests", leave_out=hashed)
    _same_table(duck, cache, "signal_definitions")
    texts = ", ".join(f'count("{c}")' for c in DROPPED_COLUMNS)
    assert _rows(cache, f"SELECT {texts} FROM requests") == [(0,) * len(DROPPED_COLUMNS)]
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{duck}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{cache}' AS b (READ_ONLY)")
        con.execute(f"CREATE TABLE raw AS SELECT * FROM read_parquet('{source}')")
        for c in hashed:
            pairs = con.execute(
                f'SELECT count(DISTINCT r."{c}"), count(DISTINCT x."{c}"), '
                f'count(DISTINCT y."{c}"), count(DISTINCT (r."{c}", x."{c}", y."{c}")), '
                f'count(*) FILTER (WHERE length(y."{c}") <> {HASH_CHARS}) '
                "FROM raw r JOIN a.requests x USING (request_id) "
                "JOIN b.requests y USING (request_id)"
            ).fetchone()
            assert pairs is not None
            assert pairs[0] == pairs[1] == pairs[2] == pairs[3] > 1, (c, pairs)
            assert pairs[4] == 0
    finally:
        con.close()

    # Nothing the Spark table wrote holds a raw id or text; without privacy mode the same
    # scan finds both (so it is not blind), and no staging folder is left beside them.
    private, public = (SparkTable.under(spark, t).location for t in ("private", "public"))
    assert _marks_in_table(private) == set()
    assert _marks_in_table(public) == {ID_MARK, TEXT_MARK}
    assert [p.name for p in Path(private).parent.glob("private*")] == ["private"]
    for path in (cache, Path(f"{cache}.wal")):
        data = path.read_bytes() if path.exists() else b""
        assert ID_MARK.encode() not in data
        assert TEXT_MARK.encode() not in data
