import errno
import json
import subprocess
import sys

import duckdb
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from tests.conftest import BAD_INPUTS, request_row


def _run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_ingest_prints_per_file_summary(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(request_row(i)) + "\n" for i in range(5)) + "{bad\n")
    result = _run("ingest", path, "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["file", "status", "read", "accepted", "rejected", "duplicates"]
    assert lines[2].split()[1:] == ["ingested", "6", "5", "1", "0"]
    assert "malformed_json 1" in result.output


def test_info_shows_the_first_rejected_row_of_each_reason_by_line(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [request_row(i) for i in range(4)]
    rows[2]["temperature"] = "hot"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{bad\n")
    db = tmp_path / "x.duckdb"
    ingested = _run("ingest", path, "--db", db)
    assert ingested.exit_code == 0, ingested.output
    assert "forensics info --db" in ingested.output
    result = _run("info", "--db", db)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("malformed_json 1" in line and "line 5: '{bad'" in line for line in lines)
    assert any("wrong_type 1" in line and "line 3, temperature = 'hot'" in line for line in lines)


def test_missing_column_exits_2_with_one_clear_line(tmp_path):
    result = _run("ingest", BAD_INPUTS / "missing_column.csv", "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "missing required column(s) routing_pool, ts" in errors[0]
    # said once, on one line (its TOML example included), naming the file once
    assert result.output.count("missing required column") == 1
    assert 'routing_pool = "<your column>" and ts = "<your column>"' in errors[0]
    name = str(BAD_INPUTS / "missing_column.csv")
    assert errors[0].startswith(f"error: {name}: missing required")
    assert f"{name}: {name}:" not in result.output
    # the table still has the file's line
    assert any(line.split()[:2] == [name, "refused"] for line in result.output.splitlines())


def test_unreadable_mapping_exits_2(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text("[columns]\nnot_canonical = 'x'\n")
    result = _run("ingest", BAD_INPUTS / "bom.csv", "--db", tmp_path / "x.duckdb", "--mapping", bad)
    assert result.exit_code == 2
    assert "not a canonical column" in result.output


def test_ingest_events_and_info(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("ts,kind,description\n2025-08-05T00:00:00Z,deploy,x\n")
    db = tmp_path / "x.duckdb"
    assert _run("ingest-events", events, "--db", db).exit_code == 0
    result = _run("info", "--db", db)
    assert result.exit_code == 0
    assert "events" in result.output
    assert " 1" in result.output


def test_info_on_a_missing_database_is_a_clear_error(tmp_path):
    result = _run("info", "--db", tmp_path / "absent.duckdb")
    assert result.exit_code == 2
    assert "no such database" in result.output


def test_schema_markdown():
    result = _run("schema", "--markdown")
    assert result.output.startswith("| column | type | required | meaning |")


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_internal_inconsistency_exits_1_and_asks_for_a_bug_report(tmp_path, miscount):
    path = _write_rows(tmp_path / "in.jsonl", [request_row(i) for i in range(3)])
    result = _run("ingest", path, "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "internal count mismatch" in errors[0]
    assert "this is a bug in forensics, please report it" in errors[0]
    assert "Traceback" not in result.output


def test_a_full_disk_exits_2_and_says_so(tmp_path, fail_statements):
    first = _write_rows(tmp_path / "a.jsonl", [request_row(i) for i in range(3)])
    second = _write_rows(tmp_path / "b.jsonl", [request_row(i) for i in range(3, 6)])
    db = tmp_path / "x.duckdb"
    assert _run("ingest", first, "--db", db).exit_code == 0
    fail_statements(
        "INSERT INTO requests",
        duckdb.IOException('Could not write file "x.duckdb": No space left on device'),
    )
    result = _run("ingest", second, "--db", db)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "no space left on the disk" in errors[0]
    assert "Traceback" not in result.output


def test_a_full_disk_when_writing_a_report_exits_2(tmp_path, monkeypatch, sample_db):
    from forensics.report import Investigation

    def full(self, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Investigation, "save", full)
    monkeypatch.setattr(Investigation, "default", classmethod(lambda cls, wb, **kw: cls(wb)))
    result = _run("report", "--db", sample_db, "--out", tmp_path / "r.html")
    assert result.exit_code == 2, result.output
    assert "r.html: no space left on the disk" in result.output


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB tmpfs (needs root and mount; skipped where they are not available)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_really_full_disk_exits_2_and_keeps_the_files_before(tmp_path, tiny_disk):
    small = _write_rows(tmp_path / "a.jsonl", [request_row(i) for i in range(3)])
    rows = [request_row(i, response_text=f"{i} " + "x" * 300) for i in range(10, 60_010)]
    large = _write_rows(tmp_path / "b.jsonl", rows)
    db = tiny_disk / "x.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "forensics.cli", "ingest", str(small), str(large), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "no space left on the disk" in result.stderr
    assert "Traceback" not in result.stderr
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(db.read_bytes())
    wal = db.with_name(db.name + ".wal")
    if wal.exists():
        copy.with_name(copy.name + ".wal").write_bytes(wal.read_bytes())
    with forensics.open(copy, read_only=True) as wb:
        assert wb.counts()["requests"] == 3
        assert wb.files()["path"].to_list() == [str(small)]


_SIGNAL_ROWS = [
    request_row(i, latency_ms=[10, 5000][i % 2], region_code=["east-1", "west-2"][i % 2])
    for i in range(4)
]


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        ('column = "latency_ms"\nop = ">"\nvalue = inf', "value = inf is not a finite number"),
        ('column = "latency_ms"\nop = ">"\nvalue = nan', "value = nan is not a finite number"),
        ('column = "latency_ms"\nop = ">"\nvalue = "abc"', "value = 'abc' is not a finite"),
        ('column = "slow"\nop = ">"\nvalue = 1', "the signal is named like its column 'slow'"),
        (
            'column = "region_code"',
            "column = 'region_code' is read as true/false (it has no op and value), but "
            "{path} line 1 has 'east-1'",
        ),
        (
            'column = "region_code"\nop = ">"\nvalue = 1',
            "column = 'region_code' is compared as a number (> 1), but {path} line 1 has 'east-1'",
        ),
    ],
    ids=["inf", "nan", "text-value", "own-column", "boolean-on-text", "number-on-text"],
)
def test_mapping_mistakes_exit_2_naming_file_signal_and_key(tmp_path, signal, message):
    path = _write_rows(tmp_path / "in.jsonl", _SIGNAL_ROWS)
    mapping = tmp_path / "m.toml"
    mapping.write_text(f"[signals.slow]\n{signal}\n")
    db = tmp_path / "x.duckdb"
    result = _run("ingest", path, "--db", db, "--mapping", mapping)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{mapping}: [signals.slow] " in errors[0]
    assert message.format(path=path) in errors[0]


def test_a_signal_named_like_a_built_in_one_in_any_case_exits_2(tmp_path):
    path = _write_rows(tmp_path / "in.jsonl", _SIGNAL_ROWS)
    mapping = tmp_path / "m.toml"
    mapping.write_text('[signals.Degraded]\ncolumn = "latency_ms"\nop = ">"\nvalue = 1\n')
    result = _run("ingest", path, "--db", tmp_path / "x.duckdb", "--mapping", mapping)
    assert result.exit_code == 2, result.output
    assert f"{mapping}: [signals.Degraded] the name is taken by a canonical column" in result.output


def test_ingest_events_takes_the_mapping_its_error_asks_for(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("when,change_type,what\n1754049600,deploy,routing change\n")
    db = tmp_path / "x.duckdb"
    refused = _run("ingest-events", events, "--db", db)
    assert refused.exit_code == 2
    assert 'map them in a file given with --mapping FILE.toml: under [columns], write kind = "' in (
        refused.output
    )
    mapping = tmp_path / "events.toml"
    mapping.write_text(
        '[columns]\nts = "when"\nkind = "change_type"\ndescription = "what"\n'
        '[timestamps]\nepoch_unit = "s"\n'
    )
    result = _run("ingest-events", events, "--db", db, "--mapping", mapping)
    assert result.exit_code == 0, result.output
    assert "loaded 1" in result.output
    with forensics.open(db, read_only=True) as wb:
        (event,) = wb.events().to_dicts()
    assert (event["ts"].isoformat(), event["kind"], event["description"]) == (
        "2025-08-01T12:00:00+00:00",
        "deploy",
        "routing change",
    )


def test_an_events_mapping_naming_an_absent_column_says_so(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("when,change_type\n2025-08-01T00:00:00Z,deploy\n")
    mapping = tmp_path / "events.toml"
    mapping.write_text('[columns]\nts = "when"\nkind = "type"\n')
    result = _run("ingest-events", events, "--db", tmp_path / "x.duckdb", "--mapping", mapping)
    assert result.exit_code == 2
    assert "The mapping names kind = 'type', which the file does not have" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[columns]\nrequest_id = "id"\n')
    result = _run("ingest-events", events, "--db", tmp_path / "x.duckdb", "--mapping", bad)
    assert result.exit_code == 2
    assert f"{bad}: [columns] key 'request_id' is not an event column" in result.output


@pytest.mark.parametrize(
    "given",
    [["absent.csv"], [str(BAD_INPUTS / "missing_column.csv")], [str(BAD_INPUTS / "empty.jsonl")]],
    ids=["missing-file", "refused-file", "empty-file"],
)
def test_a_first_ingest_that_writes_nothing_leaves_no_database(tmp_path, given):
    db = tmp_path / "new.duckdb"
    result = _run("ingest", *given, "--db", db)
    assert not db.exists(), result.output
    assert not db.with_name("new.duckdb.wal").exists()
    info = _run("info", "--db", db)
    assert info.exit_code == 2
    assert "no such database" in info.output


def test_a_failed_ingest_into_an_existing_database_keeps_it(tmp_path):
    db = tmp_path / "x.duckdb"
    path = _write_rows(tmp_path / "in.jsonl", [request_row(i) for i in range(2)])
    assert _run("ingest", path, "--db", db).exit_code == 0
    assert _run("ingest", "absent.csv", "--db", db).exit_code == 2
    assert _run("ingest", BAD_INPUTS / "missing_column.csv", "--db", db).exit_code == 2
    with forensics.open(db, read_only=True) as wb:
        assert wb.counts()["requests"] == 2


def test_events_that_cannot_be_loaded_leave_no_database(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("when,what\n2025-08-01T00:00:00Z,deploy\n")
    db = tmp_path / "new.duckdb"
    assert _run("ingest-events", events, "--db", db).exit_code == 2
    assert not db.exists()
