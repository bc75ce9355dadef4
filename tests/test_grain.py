"""Time resolution from the data (issue 17, item 2): the grain, and the search at it.

The scenario is written here for these tests and never used to tune anything:
three days of per-minute counted traffic (regions x pools, daily cycle, noise),
where one region's pool fails for 12 minutes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import forensics
from forensics import grain as grains
from forensics.errors import QueryError
from forensics.schema import Mapping
from forensics.separation.hourly import _stages

T0 = datetime(2025, 3, 3, tzinfo=UTC)
DAYS = 3
REGIONS, POOLS = ("eu", "us", "ap", "sa"), ("p1", "p2", "p3")
ONSET = T0 + timedelta(days=1, hours=14, minutes=23)
END = ONSET + timedelta(minutes=12)
MAPPING = '[counts]\nrequests = "cnt"\n[signals.errors]\ncount = "bad"\n'


def _minutes(seed: int = 5, days: int = DAYS) -> pl.DataFrame:
    """Counted rows per minute, region and pool; errors at 25% in ap & p3 for 12 minutes."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(days * 24 * 60)
    hour = (minutes // 60) % 24
    cycle = 0.6 + 0.4 * np.sin((hour - 6) / 24 * 2 * np.pi)
    t = np.array([T0 + timedelta(minutes=int(m)) for m in minutes])
    stamps = [x.strftime("%Y-%m-%dT%H:%M:%SZ") for x in t]
    frames = []
    for region in REGIONS:
        for pool in POOLS:
            volume = rng.poisson(rng.uniform(15, 45) * cycle)
            base = rng.uniform(0.005, 0.02)
            hit = (region == "ap") & (pool == "p3") & (t >= ONSET) & (t < END)
            bad = rng.binomial(volume, np.where(hit, 0.25, base))
            frames.append(
                pl.DataFrame(
                    {
                        "ts": stamps,
                        "region": region,
                        "pool": pool,
                        "cnt": volume,
                        "bad": bad,
                    }
                )
            )
    return pl.concat(frames)


def _hours() -> pl.DataFrame:
    """The same traffic counted per hour (times on the hour)."""
    return (
        _minutes()
        .with_columns(pl.col("ts").str.slice(0, 14) + "00:00Z")
        .group_by("ts", "region", "pool")
        .agg(pl.col("cnt").sum(), pl.col("bad").sum())
    )


def _ingest(tmp: Path, frame: pl.DataFrame, name: str, **options: object) -> Path:
    data, mapping, db = tmp / f"{name}.parquet", tmp / f"{name}.toml", tmp / f"{name}.duckdb"
    frame.write_parquet(data)
    mapping.write_text(MAPPING)
    with forensics.open(db) as wb:
        wb.ingest(data, mapping=Mapping.load(mapping), progress=False, **options)
    return db


@pytest.fixture(scope="module")
def minute_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _ingest(tmp_path_factory.mktemp("grain"), _minutes(), "minutes")


def test_the_grain_follows_the_timestamps_and_is_stored_with_the_cubes(minute_db):
    with forensics.open(minute_db, read_only=True) as wb:
        assert wb.grain == "minute"
        default = [c for c in wb.cubes() if c.auto]
        assert [c.grain for c in default] == ["minute"]
        stored = wb.sql("SELECT grain FROM cube_catalog WHERE auto")["grain"].to_list()
    assert stored == ["minute"]


def test_a_twelve_minute_incident_is_found_to_the_minute(minute_db):
    with forensics.open(minute_db, read_only=True) as wb:
        found = wb.signatures()
    assert found, "the incident was not found"
    sig = found[0]
    assert sig.predicate == {"region": ["ap"], "pool": ["p3"]}
    assert sig.end is not None
    assert abs(sig.start - ONSET) <= timedelta(minutes=2), sig.start
    assert abs(sig.end - END) <= timedelta(minutes=2), sig.end
    assert sig.onset_range[0] <= ONSET + timedelta(minutes=2)
    assert sig.onset_range[1] >= ONSET - timedelta(minutes=2)


def test_over_more_than_a_week_the_edges_go_down_from_days_to_the_minute(tmp_path):
    # Longer than a week, the search scans days; the edges are placed in three stages.
    # Eight days of minutes are more buckets than a grain may have (MAX_BUCKETS): the
    # database is 5-minute-grained, and the minute can still be asked for.
    db = _ingest(tmp_path, _minutes(seed=8, days=8), "week")
    with forensics.open(db, read_only=True) as wb:
        assert wb.grain == "5min"
        found = {grain: wb.signatures(grain=grain) for grain in ("minute", None)}
    for grain, slack in (("minute", timedelta(minutes=2)), (None, timedelta(minutes=5))):
        assert found[grain], grain
        sig = found[grain][0]
        assert sig.predicate == {"region": ["ap"], "pool": ["p3"]}
        assert sig.end is not None
        assert abs(sig.start - ONSET) <= slack, (grain, sig.start)
        assert abs(sig.end - END) <= slack, (grain, sig.end)


def test_at_the_hour_the_same_incident_collapses_into_its_hour(minute_db):
    with forensics.open(minute_db, read_only=True) as wb:
        found = wb.signatures(grain="1h")
    assert found
    sig = found[0]
    assert sig.start == ONSET.replace(minute=0)
    assert sig.end == ONSET.replace(minute=0) + timedelta(hours=1)


def test_timeline_and_change_points_at_the_data_grain(minute_db):
    with forensics.open(minute_db, read_only=True) as wb:
        line = wb.timeline("errors", grain=None, where={"region": ["ap"], "pool": ["p3"]})
        points = wb.change_points("errors", where={"region": ["ap"], "pool": ["p3"]})
        hourly = wb.change_points("errors", where={"region": ["ap"], "pool": ["p3"]}, grain="hour")
    assert line.grain == "minute"
    assert line.rates.height == DAYS * 24 * 60
    steps = line.rates["ts"].diff().drop_nulls().unique().to_list()
    assert steps == [timedelta(minutes=1)]
    ups = points.filter(pl.col("direction") == "up")["ts"].to_list()
    downs = points.filter(pl.col("direction") == "down")["ts"].to_list()
    assert any(abs(t - ONSET) <= timedelta(minutes=2) for t in ups), points
    assert any(abs(t - END) <= timedelta(minutes=2) for t in downs), points
    assert all(t.minute == 0 for t in hourly["ts"].to_list())


def test_a_grain_set_by_option_is_stored_and_read_by_every_reader(tmp_path):
    db = _ingest(tmp_path, _minutes(), "five", grain="5m")
    with forensics.open(db, read_only=True) as wb:
        assert wb.grain == "5min"
        assert [c.grain for c in wb.cubes() if c.auto] == ["5min"]
        assert wb.timeline("errors", grain=None).grain == "5min"
    with forensics.open(db) as wb:
        assert wb.set_grain(None) == "minute"


def test_a_grain_finer_than_the_data_says_so(tmp_path):
    hours = _hours()
    db = _ingest(tmp_path, hours, "hours")
    with forensics.open(db) as wb:
        assert wb.grain == "hour"
        with pytest.raises(QueryError, match=r"grain minute is finer than the data.*1:00:00"):
            wb.set_grain("minute")
        with pytest.raises(QueryError, match="finer than the data"):
            wb.signatures(grain="5m")
        with pytest.raises(QueryError, match="finer than the data"):
            wb.timeline("errors", grain="15min")
        with pytest.raises(QueryError, match=r"grain '7m': use one of minute"):
            wb.set_grain("7m")
        assert wb.grain == "hour"


def test_sparse_or_hourly_data_stay_at_the_hour():
    t = datetime(2025, 1, 1, tzinfo=UTC)
    # A few weeks of a few hundred thousand requests: as before grains followed the data.
    assert grains.database_grain(t, t + timedelta(days=28), 200_000, None) == "hour"
    assert grains.database_grain(t, t + timedelta(days=2), 2_000, None) == "hour"
    assert grains.database_grain(t, t + timedelta(days=3), 10**9, timedelta(hours=1)) == "hour"
    # The search's buckets and refinement on hour-grained data are those of before.
    assert grains.search_step("hour", 0, 7 * 24 - 2) == 1
    assert grains.search_step("hour", 0, 7 * 24 - 1) == 24
    assert _stages(1, 1) == [1]
    assert _stages(24, 1) == [24, 1]
    # Finer data go down in stages: day, hour, minute.
    assert _stages(24 * 60, 60) == [24 * 60, 60, 1]


def test_the_command_line_sets_shows_and_refuses_a_grain(tmp_path):
    from click.testing import CliRunner

    from forensics.cli import main

    hours = _hours()
    data, mapping, db = tmp_path / "h.parquet", tmp_path / "h.toml", tmp_path / "h.duckdb"
    hours.write_parquet(data)
    mapping.write_text(MAPPING)
    args = ["ingest", str(data), "--db", str(db), "--mapping", str(mapping)]
    refused = CliRunner().invoke(main, [*args, "--grain", "1m"])
    assert refused.exit_code == 2, refused.output
    assert "grain minute is finer than the data" in refused.output
    assert "Traceback" not in refused.output
    info = CliRunner().invoke(main, ["info", "--db", str(db)])
    assert "time grain: hour" in info.output
    found = CliRunner().invoke(main, ["signatures", "--db", str(db), "--grain", "5m", "-q"])
    assert found.exit_code == 2
    assert "finer than the data" in found.output


def test_the_report_shows_a_short_incident_at_the_data_grain(minute_db):
    # The figure's view, asked of the database as the report asks it. (A whole report
    # on counted rows stops earlier, at its example requests: counted rows have none.)
    from forensics.report.evidence import _timeline_view

    with forensics.open(minute_db, read_only=True) as wb:
        sig = wb.signatures()[0]
        grain, where, words = _timeline_view(wb.db, sig)
        shown = wb.timeline(sig.signal, grain=grain, where=where).rates
        # A signature a day long keeps the day-by-day figure.
        long = replace(sig, end=sig.start + timedelta(days=1))
        assert _timeline_view(wb.db, long)[0] == "day"
    assert (grain, words) == ("minute", "per minute around its window")
    assert shown["ts"].min() <= sig.start - timedelta(hours=5)
    assert shown["ts"].max() >= sig.end + timedelta(hours=5)
    peak = shown.sort("rate", descending=True)["ts"][0]
    assert sig.start <= peak < sig.end


def test_request_rows_dense_enough_are_minute_grained_and_placed_to_the_minute(tmp_path):
    # One row per request at any second: about 210 a minute over a day.
    rng = np.random.default_rng(23)
    rows, day = 300_000, T0 + timedelta(days=1)
    seconds = rng.integers(0, 86_400, rows)
    region = np.array(REGIONS)[rng.integers(0, len(REGIONS), rows)]
    pool = np.array(POOLS)[rng.integers(0, len(POOLS), rows)]
    ts = [day + timedelta(seconds=int(x)) for x in seconds]
    onset, end = day + timedelta(hours=9, minutes=41), day + timedelta(hours=9, minutes=53)
    hit = (region == "eu") & (pool == "p1") & np.array([onset <= t < end for t in ts])
    frame = pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(rows)],
            "ts": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in ts],
            "model": "m",
            "platform": "gpu",
            "region": region,
            "routing_pool": pool,
            "errors_flag": rng.random(rows) < np.where(hit, 0.25, 0.01),
        }
    )
    data, mapping, db = tmp_path / "r.parquet", tmp_path / "r.toml", tmp_path / "r.duckdb"
    frame.write_parquet(data)
    mapping.write_text('[signals.errors]\ncolumn = "errors_flag"\n')
    with forensics.open(db) as wb:
        wb.ingest(data, mapping=Mapping.load(mapping), progress=False)
        assert wb.grain == "minute"
        found = wb.signatures(signals=["errors"])
    assert found
    sig = found[0]
    assert sig.predicate == {"region": ["eu"], "routing_pool": ["p1"]}
    assert sig.end is not None
    assert abs(sig.start - onset) <= timedelta(minutes=2), sig.start
    assert abs(sig.end - end) <= timedelta(minutes=2), sig.end
