"""Counted rows answer as the requests they stand for (issue 17: the proof).

A few hundred thousand requests are drawn with numpy, aggregated per minute and
attribute combination with polars, and both kinds ingested into real DuckDB
files; every count-based answer must be the same on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import forensics
from forensics.errors import QueryError
from forensics.schema import Mapping

T0 = datetime(2025, 8, 28, 0, 0, tzinfo=UTC)
HOURS = 24
ONSET = 15
REGIONS, POOLS, CLIENTS = ("eu", "us", "ap", "sa"), ("p1", "p2", "p3", "p4"), ("ios", "web", "cli")
REQUESTS = 300_000
DIMS = ["routing_pool", "region", "client"]


def _requests(seed: int = 17) -> pl.DataFrame:
    """One row per request; ``stalled`` rises in eu & p2 from ONSET, unmeasured in some cells."""
    rng = np.random.default_rng(seed)
    minute = rng.integers(0, HOURS * 60, REQUESTS)
    region = rng.integers(0, len(REGIONS), REQUESTS)
    pool = rng.integers(0, len(POOLS), REQUESTS)
    client = rng.integers(0, len(CLIENTS), REQUESTS)
    raised = (minute >= ONSET * 60) & (region == 0) & (pool == 1)
    p = np.where(raised, 0.25, 0.02 + 0.01 * client)
    stalled = rng.random(REQUESTS) < p
    # Not measured for whole (minute, attribute) cells: a counted row's count is null there.
    unmeasured = (client == 2) & (minute % 7 == 0)
    seconds = minute * 60 + rng.integers(0, 60, REQUESTS)
    ts = np.datetime64(T0.replace(tzinfo=None), "ms") + (seconds * 1000).astype("timedelta64[ms]")
    return pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(REQUESTS)],
            "ts": ts,
            "model": "m",
            "platform": "gpu",
            "routing_pool": np.array(POOLS)[pool],
            "region": np.array(REGIONS)[region],
            "client": np.array(CLIENTS)[client],
            "stalled_flag": pl.Series(stalled).set(pl.Series(unmeasured), None),
        }
    )


def _counted(rows: pl.DataFrame) -> pl.DataFrame:
    return (
        rows.with_columns(pl.col("ts").dt.truncate("1m"))
        .group_by("ts", "model", "platform", "routing_pool", "region", "client")
        .agg(
            cnt=pl.len(),
            value=pl.when(pl.col("stalled_flag").is_null().all())
            .then(None)
            .otherwise(pl.col("stalled_flag").cast(pl.Int64).sum()),
        )
        .sort("ts", "platform", "routing_pool", "region", "client")
    )


def _ingest(tmp: Path, frame: pl.DataFrame, name: str, toml: str) -> Path:
    data, mapping, db = tmp / f"{name}.parquet", tmp / f"{name}.toml", tmp / f"{name}.duckdb"
    frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_parquet(data)
    mapping.write_text(toml)
    with forensics.open(db) as wb:
        summary = wb.ingest(data, mapping=Mapping.load(mapping), progress=False)
    assert summary.files[0].accepted == frame.height
    return db


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("counts")
    rows = _requests()
    counted = _counted(rows)
    assert counted.height < rows.height / 3
    expanded = _ingest(tmp, rows, "rows", '[signals.stalled]\ncolumn = "stalled_flag"\n')
    counts = _ingest(
        tmp, counted, "counts", '[counts]\nrequests = "cnt"\n[signals.stalled]\ncount = "value"\n'
    )
    return expanded, counts


def _both(pair, ask, *, read_only=True):
    answers = []
    for path in pair:
        with forensics.open(path, read_only=read_only) as wb:
            answers.append(ask(wb))
    return answers


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"by": "routing_pool"},
        {"by": ["region", "client"], "grain": "hour"},
        {"by": "client", "grain": "day", "where": {"region": ["eu"]}},
        {"by": "routing_pool", "where": {"ts": (T0 + timedelta(hours=ONSET), None)}},
    ],
)
def test_rates_and_intervals_are_the_requests(pair, options):
    rows, counts = _both(pair, lambda wb: wb.rates(signal="stalled", **options))
    assert rows["n"].sum() > 50_000
    assert_frame_equal(rows, counts)


def test_cubes_hold_the_requests(pair):
    def cube(wb):
        built = wb.cube(dims=DIMS)
        # The request rows' cube also holds the built-in detectors (no text here: n = 0).
        columns = ", ".join(["bucket", *DIMS, "requests", "n__stalled", "k__stalled"])
        return wb.sql(f'SELECT {columns} FROM "{built.name}" ORDER BY ALL')

    rows, counts = _both(pair, cube, read_only=False)
    assert rows.height > 1000
    assert_frame_equal(rows, counts)


def test_raw_and_cube_reads_agree_on_counted_rows(pair):
    from forensics.queries import counts_by

    with forensics.open(pair[1]) as wb:
        wb.cube(dims=DIMS)
        raw = counts_by(wb.db, by=["region"], signal="stalled", grain="hour", use_cubes=False)
        cubed = counts_by(wb.db, by=["region"], signal="stalled", grain="hour")
    assert_frame_equal(raw, cubed)


def test_comparisons_are_the_requests(pair):
    incident = (T0 + timedelta(hours=ONSET), T0 + timedelta(hours=ONSET + 6))
    rows, counts = _both(pair, lambda wb: wb.compare("stalled", incident=incident))
    assert rows.row(0, named=True)["dimension"] in ("region", "routing_pool")
    assert_frame_equal(rows, counts)


def test_change_points_are_the_requests(pair):
    rows, counts = _both(pair, lambda wb: wb.change_points("stalled"))
    assert rows.height >= 1
    assert_frame_equal(rows, counts)


def test_distinct_users_are_not_available_on_counted_rows(pair):
    with (
        forensics.open(pair[1], read_only=True) as wb,
        pytest.raises(QueryError, match="not available on counted rows"),
    ):
        wb.exposure("stalled")


def test_signatures_n_and_k_are_the_requests(pair):
    """The separation weighs counted rows: same slices, windows, n and k (no users counted)."""

    def found(wb):
        return [
            (
                s.predicate,
                s.start,
                s.end,
                s.requests,
                s.excess_requests,
                s.p_value,
                # The request rows also carry the built-in detectors (no text: n = 0).
                [
                    (r.n_inside, r.k_inside, r.n_baseline, r.k_baseline, r.p_value)
                    for r in s.symptoms
                    if r.signal == "stalled"
                ],
            )
            for s in wb.signatures(signals=["stalled"])
        ]

    rows, counts = _both(pair, found)
    assert rows
    assert rows[0][0] == {"region": ["eu"], "routing_pool": ["p2"]}
    assert rows == counts


def test_signatures_on_counted_rows_know_no_users(pair):
    from click.testing import CliRunner

    from forensics.cli import main

    with forensics.open(pair[1], read_only=True) as wb:
        found = wb.signatures(signals=["stalled"])
    assert found
    assert all(s.users is None for s in found)
    assert found[0].to_dict()["users"] is None
    result = CliRunner().invoke(main, ["signatures", "--db", str(pair[1]), "--signal", "stalled"])
    assert result.exit_code == 0, result.output
    assert "users not known (counted rows)" in result.output


def test_the_search_workspace_counts_the_requests(pair):
    """What the signature search reads (its workspace) weighs counted rows too."""
    from forensics.separation import workspace

    def read(wb):
        dims = [d for d in wb.dimensions() if d.name in DIMS]
        workspace.create(wb.db, dims=dims, edges={}, signals=["stalled"])
        try:
            cells = workspace.cells(wb.db, signal="stalled", dims=DIMS, block_hours=6)
            margins = workspace.margins(wb.db, signal="stalled", dims=DIMS, block_hours=6)
            flags = workspace.flags(
                wb.db, signal="stalled", dims=["client"], conditions=["region = 'eu'"], params={}
            )
        finally:
            workspace.drop(wb.db)
        return [f.sort(pl.all()) for f in (cells, margins, flags)]

    rows, counts = _both(pair, read)
    assert rows[0]["n"].sum() > 200_000
    for expected, got in zip(rows, counts, strict=True):
        assert_frame_equal(expected, got)


def test_overlaps_count_the_requests(pair):
    from forensics.queries import Where, overlap_counts

    reference = Where.parse({"region": ["eu"]})
    candidates = [Where.parse({"routing_pool": ["p2"]}), Where.parse({"client": ["ios", "web"]})]
    rows, counts = _both(
        pair, lambda wb: overlap_counts(wb.db, reference, candidates, defined=["stalled"])
    )
    assert rows[0] > 50_000
    assert rows == counts


def test_a_sample_of_counted_rows_thins_their_counts(pair):
    """Above search_rows the search reads a binomial thinning of the counts: a request sample."""
    from forensics.separation import workspace
    from forensics.separation.params import SeparationParams

    def thinned(wb):
        dims = [d for d in wb.dimensions() if d.name in DIMS]
        requests = workspace.create(wb.db, dims=dims, edges={}, signals=["stalled"], fraction=0.1)
        try:
            frame = wb.db.frame(
                f"SELECT _source_file_id, _source_row, {workspace.WEIGHT} AS w, stalled "
                f"FROM {workspace.WORKSPACE} ORDER BY ALL"
            )
        finally:
            workspace.drop(wb.db)
        return requests, frame

    with forensics.open(pair[1], read_only=True) as wb:
        (requests, frame), (again, same) = thinned(wb), thinned(wb)
        stored = wb.db.frame(
            "SELECT sum(cnt)::BIGINT AS n, sum(stalled)::BIGINT AS k FROM requests"
        ).row(0)
        found = wb.signatures(signals=["stalled"], params=SeparationParams(search_rows=30_000))
    assert (requests, frame.rows()) == (again, same.rows())
    assert requests == frame["w"].sum()
    assert abs(requests - 0.1 * stored[0]) < 4 * (stored[0] * 0.1 * 0.9) ** 0.5
    assert abs(frame["stalled"].sum() - 0.1 * stored[1]) < 4 * (stored[1] * 0.1 * 0.9) ** 0.5
    assert frame.filter(pl.col("stalled") > pl.col("w")).height == 0
    assert frame["w"].min() > 0
    assert frame["stalled"].null_count() > 0
    assert found[0].predicate == {"region": ["eu"], "routing_pool": ["p2"]}


def test_the_search_sizes_its_calibration_by_requests(pair):
    """The p-value's calibration reads the workspace's size: requests, not counted rows."""
    from forensics.separation import _prepare, workspace
    from forensics.separation.params import SeparationParams

    def sizes(wb):
        search = _prepare(wb.db, SeparationParams(), ["stalled"])
        workspace.drop(wb.db)
        return search.rows, search.total_rows

    rows, counts = _both(pair, sizes)
    assert rows == (REQUESTS, REQUESTS)
    assert rows == counts


def test_timelines_are_the_requests(pair):
    def timeline(wb):
        found = wb.timeline("stalled", by="routing_pool", grain="hour")
        return found.rates, found.change_points

    rows, counts = _both(pair, timeline)
    assert rows[0].height == 4 * HOURS
    for expected, got in zip(rows, counts, strict=True):
        assert_frame_equal(expected, got)
