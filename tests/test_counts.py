"""Counted input: ``[counts]`` mappings, their ingest, and counts weighing the answers."""

from __future__ import annotations

import re

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.errors import ConfigError
from forensics.schema import Mapping

COUNTED_MAPPING = '[counts]\nrequests = "cnt"\n[signals.stalled]\ncount = "value"\n'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[signals.stalled]\ncount = "value"\n',
            "[signals.stalled] count = 'value' needs the number of requests each row stands "
            'for: add [counts] requests = "COLUMN"',
        ),
        (
            '[counts]\nrequests = "cnt"\n[signals.slow]\nexpr = "latency_ms > 5"\n',
            "[signals.slow] the rows are counted ([counts]), so a signal is a count",
        ),
        ("[counts]\n", '[counts] needs requests = "COLUMN"'),
        ("[counts]\nrequests = 3\n", "[counts] requests must name a column of your files"),
        ('[counts]\nrequests = "cnt"\nwindow = 5\n', "[counts] unknown key(s) window; valid"),
        ('counts = "cnt"\n', "[counts] must be a table"),
        (
            '[counts]\nrequests = "cnt"\n[signals.s]\ncount = "v"\nexpr = "v > 1"\n',
            "[signals.s] give count alone",
        ),
        (
            '[counts]\nrequests = "cnt"\n[columns]\nregion = "cnt"\n',
            "[counts] requests = 'cnt' is also mapped in [columns]",
        ),
        (
            '[counts]\nrequests = "cnt"\n[roles]\ncnt = "dimension"\n',
            "[roles] cnt: a count column's role is fixed (count)",
        ),
        (
            '[counts]\nrequests = "cnt"\n[signals.cnt]\ncount = "v"\n',
            "[signals.cnt] is named like the count column 'cnt'",
        ),
    ],
)
def test_counts_mistakes_name_file_and_key(tmp_path, toml, message):
    path = tmp_path / "m.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        Mapping.load(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_a_counted_mapping_reads_counts_and_signal_counts(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(COUNTED_MAPPING)
    mapping = Mapping.load(path)
    assert mapping.counts is not None
    assert mapping.counts.requests == "cnt"
    assert mapping.counts.degraded is None
    assert [(s.name, s.count) for s in mapping.signals] == [("stalled", "value")]


CSV = """ts,model,platform,routing_pool,region,cnt,value
2025-08-29T14:00:00Z,m,gpu,p1,eu,10,2
2025-08-29T14:01:00Z,m,gpu,p1,eu,5,0
2025-08-29T14:01:00Z,m,gpu,p1,us,5,6
2025-08-29T14:02:00Z,m,gpu,p1,us,-1,0
2025-08-29T14:02:00Z,m,gpu,p1,us,2.5,0
2025-08-29T14:02:00Z,m,gpu,p1,us,,0
2025-08-29T14:03:00Z,m,gpu,p1,us,4,
2025-08-29T14:03:00Z,m,gpu,p1,us,4,x
2025-08-29T14:00:00Z,m,gpu,p1,eu,10,2
"""


def _counted_db(tmp_path, csv=CSV, toml=COUNTED_MAPPING):
    data, mapping = tmp_path / "c.csv", tmp_path / "m.toml"
    data.write_text(csv)
    mapping.write_text(toml)
    db = tmp_path / "c.duckdb"
    with forensics.open(db) as wb:
        summary = wb.ingest(data, mapping=Mapping.load(mapping), progress=False, errors="collect")
    return db, summary, data, mapping


def test_counted_rows_are_stored_with_counts_and_bad_counts_quarantined(tmp_path):
    db, summary, _, _ = _counted_db(tmp_path)
    (file,) = summary.files
    assert file.rows_read == file.accepted + file.rejected_total + file.duplicates == 9
    # The last row repeats the first: counted rows are not told apart by request id.
    assert (file.accepted, file.duplicates) == (4, 0)
    assert file.rejected == {"out_of_range": 2, "wrong_type": 2, "missing_required": 1}
    with forensics.open(db, read_only=True) as wb:
        rows = wb.db.frame("SELECT cnt, stalled, request_id FROM requests ORDER BY _source_row")
        rejected = wb.db.frame(
            'SELECT row_number, "column", reason, bad_value FROM rejected_rows ORDER BY row_number'
        )
        roles = dict(wb.roles().select("column", "role").iter_rows())
        columns = wb.db.columns("requests")
        signals = wb.db.execute("SELECT name, kind FROM signal_definitions")
    assert rows["cnt"].to_list() == [10, 5, 4, 10]
    assert rows["stalled"].to_list() == [2, 0, None, 2]
    assert rows["request_id"].null_count() == 4
    assert rejected.rows() == [
        (4, "value", "out_of_range", "6"),
        (5, "cnt", "out_of_range", "-1"),
        (6, "cnt", "wrong_type", "2.5"),
        (7, "cnt", "missing_required", None),
        (9, "value", "wrong_type", "x"),
    ]
    assert roles["cnt"] == "count"
    assert roles["stalled"] == "signal"
    assert "value" not in columns
    # No detector reads text here, and degraded has no count: neither is a signal.
    assert signals == [("stalled", "count")]
    assert "degraded" not in columns


def test_degraded_with_its_own_count(tmp_path):
    csv = "ts,model,platform,routing_pool,cnt,value,bad\n2025-08-29T14:00:00Z,m,g,p,10,2,3\n"
    toml = COUNTED_MAPPING.replace('"cnt"\n', '"cnt"\ndegraded = "bad"\n', 1)
    db, summary, _, _ = _counted_db(tmp_path, csv, toml)
    assert summary.files[0].accepted == 1
    with forensics.open(db, read_only=True) as wb:
        assert wb.db.execute("SELECT cnt, stalled, degraded FROM requests") == [(10, 2, 3)]
        assert {r[0] for r in wb.db.execute("SELECT name FROM signal_definitions")} == {
            "stalled",
            "degraded",
        }


def test_counted_and_request_rows_never_share_a_database(tmp_path):
    db, _, data, mapping = _counted_db(tmp_path)
    with forensics.open(db) as wb:
        again = wb.ingest(data, mapping=Mapping.load(mapping), progress=False)
        assert again.files[0].status == "already ingested"
        with pytest.raises(ConfigError, match=r"holds counted rows \(count column 'cnt'\); ingest"):
            wb.ingest(data, progress=False)
    other = tmp_path / "other.toml"
    other.write_text(COUNTED_MAPPING.replace('"cnt"', '"n"'))
    result = CliRunner().invoke(
        main, ["ingest", str(data), "--db", str(db), "--mapping", str(other)]
    )
    assert result.exit_code == 2
    assert "[counts] requests = 'n', but" in result.output


def test_a_counted_file_without_its_count_column_is_refused(tmp_path):
    csv = "ts,model,platform,routing_pool,cnt\n2025-08-29T14:00:00Z,m,g,p,10\n"
    _, summary, _, mapping = _counted_db(tmp_path, csv)
    (file,) = summary.files
    assert file.status == "refused"
    assert (
        f"the count column 'value' ([signals.stalled] count in {mapping}) is not in the file"
        in file.message
    )


def test_cli_refuses_a_bad_counts_mapping_with_exit_2(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('[signals.stalled]\ncount = "value"\n')
    data = tmp_path / "c.csv"
    data.write_text(CSV)
    result = CliRunner().invoke(
        main, ["ingest", str(data), "--db", str(tmp_path / "x.duckdb"), "--mapping", str(mapping)]
    )
    assert result.exit_code == 2
    assert f"{mapping}: [signals.stalled] count = 'value' needs" in result.output
    assert "Traceback" not in result.output


def test_request_rows_still_need_a_request_id(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("ts,model,platform,routing_pool\n2025-08-29T14:00:00Z,m,g,p\n")
    with forensics.open(tmp_path / "r.duckdb") as wb:
        summary = wb.ingest(path, progress=False, errors="collect")
    assert summary.files[0].status == "refused"
    assert "request_id" in summary.files[0].message


def test_explain_weighs_by_the_declared_count_column(tmp_path):
    """With no ``weight``, explain counts a counted row as the requests it stands for."""
    from tests.test_explain_db import AT, _db, request_rows

    expanded = request_rows()
    counted = (
        expanded.with_columns(pl.col("ts").dt.truncate("1m"))
        .group_by("ts", "model", "platform", "routing_pool")
        .agg(cnt=pl.len(), low=(pl.col("eval_score") < 0.5).sum())
        .with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    )
    data, mapping = tmp_path / "c.parquet", tmp_path / "m.toml"
    counted.write_parquet(data)
    mapping.write_text('[counts]\nrequests = "cnt"\n[signals.low_eval_count]\ncount = "low"\n')
    db = tmp_path / "c.duckdb"
    with forensics.open(db) as wb:
        wb.ingest(data, mapping=Mapping.load(mapping), progress=False)
        weighed = wb.explain(AT, signal="low_eval_count")
    with forensics.open(_db(tmp_path, expanded, "rows"), read_only=True) as wb:
        rows = wb.explain(AT, signal="low_eval", grain="minute")
    assert [c.elements for c in weighed.items] == [c.elements for c in rows.items]
    assert [c.requests for c in weighed.items] == [c.requests for c in rows.items]
    assert [c.signal_count for c in weighed.items] == [c.signal_count for c in rows.items]


def test_counted_rows_need_a_time_and_counts_only(tmp_path):
    """No serving columns (model, platform, routing_pool) are forced on counted data."""
    csv = "ts,region,cnt,value\n2025-08-29T14:00:00Z,eu,10,2\n2025-08-29T15:00:00Z,us,5,1\n"
    db, summary, _, _ = _counted_db(tmp_path, csv)
    assert summary.files[0].accepted == 2
    with forensics.open(db, read_only=True) as wb:
        assert [d.name for d in wb.dimensions()] == ["region"]
        assert wb.rates(by="region", signal="stalled").select("n", "k").rows() == [(10, 2), (5, 1)]
    untimed = tmp_path / "untimed"
    untimed.mkdir()
    _, summary, _, _ = _counted_db(untimed, "region,cnt,value\neu,10,2\n")
    assert summary.files[0].status == "refused"
    assert "ts" in summary.files[0].message


KEYED_MAPPING = COUNTED_MAPPING.replace('"cnt"\n', '"cnt"\nkey = ["minute", "region"]\n', 1)
KEYED_MAPPING += '[columns]\nts = "minute"\n'


def test_a_counted_key_finds_duplicates_and_conflicts(tmp_path):
    csv = (
        "minute,region,cnt,value\n"
        "2025-08-29T14:00:00Z,eu,10,2\n"  # kept
        "2025-08-29T14:00:00Z,us,10,2\n"  # kept: another region
        "2025-08-29T14:00:00Z,eu,10,2\n"  # same key, same counts: a duplicate
        "2025-08-29T14:00:00Z,eu,10,3\n"  # same key, other counts: a conflict
        "2025-08-29T14:01:00Z,eu,-1,0\n"  # a bad count, not a key question
    )
    db, summary, _, mapping = _counted_db(tmp_path, csv, KEYED_MAPPING)
    (file,) = summary.files
    assert (file.rows_read, file.accepted, file.duplicates) == (5, 2, 1)
    assert file.rejected == {"duplicate_conflict": 1, "out_of_range": 1}
    later = tmp_path / "later.csv"
    later.write_text(
        "minute,region,cnt,value\n"
        "2025-08-29T14:00:00Z,us,10,2\n"  # stored already: a duplicate
        "2025-08-29T14:00:00Z,eu,9,2\n"  # stored with other counts: a conflict
        "2025-08-29T14:02:00Z,eu,4,1\n"  # new
    )
    with forensics.open(db) as wb:
        second = wb.ingest(later, mapping=Mapping.load(mapping), progress=False).files[0]
        conflicts = wb.db.execute(
            'SELECT row_number, "column", bad_value FROM rejected_rows '
            "WHERE reason = 'duplicate_conflict' ORDER BY file_id, row_number"
        )
        assert wb.db.scalar("SELECT sum(cnt) FROM requests") == 24
    assert (second.accepted, second.duplicates, second.rejected) == (
        1,
        1,
        {"duplicate_conflict": 1},
    )
    assert conflicts == [
        (5, "minute, region", "2025-08-29 14:00:00+00, eu"),
        (3, "minute, region", "2025-08-29 14:00:00+00, eu"),
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[counts]\nrequests = "cnt"\nkey = "minute"\n', "[counts] key must list the columns"),
        ('[counts]\nrequests = "cnt"\nkey = ["a", "A"]\n', "[counts] key names a column twice"),
        ('[counts]\nrequests = "cnt"\nkey = ["a", "cnt"]\n', "key holds the count column(s) cnt"),
        (
            '[counts]\nrequests = "cnt"\nkey = ["v"]\n[signals.s]\ncount = "v"\n',
            "key holds the signal count column(s) v",
        ),
    ],
)
def test_counted_key_mistakes(tmp_path, toml, message):
    path = tmp_path / "m.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Mapping.load(path)


def test_a_key_column_missing_from_the_file_is_refused(tmp_path):
    csv = "minute,cnt,value\n2025-08-29T14:00:00Z,10,2\n"
    _, summary, _, _ = _counted_db(tmp_path, csv, KEYED_MAPPING)
    assert summary.files[0].status == "refused"
    assert "[counts] key names 'region'" in summary.files[0].message


def test_a_database_whose_counted_files_were_all_refused_takes_request_rows(tmp_path):
    csv = "ts,model,platform,routing_pool,cnt\n2025-08-29T14:00:00Z,m,g,p,10\n"
    db, summary, _, _ = _counted_db(tmp_path, csv)
    assert summary.files[0].status == "refused"
    rows = tmp_path / "r.csv"
    rows.write_text("request_id,ts,model,platform,routing_pool\nr1,2025-08-29T14:00:00Z,m,g,p\n")
    with forensics.open(db) as wb:
        assert wb.ingest(rows, progress=False).files[0].accepted == 1
        assert "low_eval" in wb.signals()
        assert wb.roles().filter(pl.col("column") == "cnt").height == 0
