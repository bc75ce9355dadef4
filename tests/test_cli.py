import errno
import json
import subprocess
import sys

import duckdb
import polars as pl
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
    assert "missing required column(s) ts" in errors[0]
    # said once, on one line (its TOML example included), naming the file once
    assert result.output.count("missing required column") == 1
    assert 'write ts = "<your column>"' in errors[0]
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


def test_info_lists_the_columns_of_each_role(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [request_row(i, latency_ms=10 * i, queue_depth=i, output_tokens=i) for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = tmp_path / "m.toml"
    mapping.write_text('[roles]\nqueue_depth = "outcome"\n')
    db = tmp_path / "x.duckdb"
    assert _run("ingest", path, "--db", db, "--mapping", mapping).exit_code == 0
    result = _run("info", "--db", db)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    assert lines["dimension"].startswith("  dimension  model, platform, routing_pool, ")
    assert "latency_ms" not in lines["dimension"]
    assert "output_tokens" in lines["outcome"]
    assert "latency_ms (name rule)" in lines["outcome"]
    assert "queue_depth (mapping)" in lines["outcome"]
    assert lines["id"] == "  id         request_id"
    assert lines["time"] == "  time       ts"


def test_a_bad_role_in_a_mapping_exits_2_naming_file_key_and_allowed_values(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('[roles]\nlatency_ms = "effect"\n')
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(request_row(0)) + "\n")
    result = _run("ingest", path, "--db", tmp_path / "x.duckdb", "--mapping", mapping)
    assert result.exit_code == 2
    assert (
        f"{mapping}: [roles] latency_ms = 'effect' is not a role; "
        'allowed values: "dimension", "outcome"'
    ) in result.output
    ts = tmp_path / "t.toml"
    ts.write_text('[roles]\nts = "dimension"\n')
    result = _run("ingest", path, "--db", tmp_path / "x.duckdb", "--mapping", ts)
    assert result.exit_code == 2
    assert (
        f"{ts}: [roles] ts: ts is the request's time column, whose role is fixed" in result.output
    )


def _signature(p_value):
    from datetime import UTC, datetime

    from forensics.signature import Signature

    t = datetime(2025, 8, 3, tzinfo=UTC)
    return Signature(
        id="S1", predicate={"routing_pool": ["p-new"]}, start=t, end=None, signal="low_eval",
        signals=("low_eval",), symptoms=(), baseline="the rest of the pool", excess_rate=0.9,
        ci=(0.85, 0.95), excess_requests=211.7, requests=216, users=40, p_value=p_value,
        log_likelihood_ratio=900.0, onset_range=(t, t), end_range=None, events=(),
    )  # fmt: skip


def test_an_underflowing_p_value_reads_as_in_the_report():
    """The report shows `< 1e-300` (stats.format_p_value); the CLI printed `p = 0`."""
    from forensics.cli import _signature_block

    block = _signature_block(_signature(0.0))
    assert "p = < 1e-300" in block
    assert "p = 0" not in block
    assert "p = < 1e-300" in _signature(0.0)._repr_html_()
    assert "p = 3.1e-05" in _signature_block(_signature(3.1e-5))


def test_an_evaluation_shows_precision_recall_and_f1():
    import polars as pl

    from forensics.evaluate import MATCH_SCHEMA, Evaluation

    matches = pl.DataFrame(
        [
            ("bug-<a>", "S1", 0.93, 2.0, -1.0),
            ("bug-b", "S2", 0.85, 0.0, None),
            ("bug-c", None, 0.1, None, None),
        ],
        schema=MATCH_SCHEMA,
        orient="row",
    )
    result = Evaluation(matches=matches, found=3, true=3, matched=2)
    printed = str(result)
    assert "precision 0.667, recall 0.667, F1 0.667" in printed
    assert printed.splitlines()[0].split()[:4] == ["bug-<a>", "S1", "jaccard", "0.930"]
    shown = result._repr_html_()
    assert "precision 0.667, recall 0.667, F1 0.667" in shown
    assert "bug-&lt;a&gt;" in shown
    assert "bug-<a>" not in shown
    assert "<td>+2.0</td><td>-1.0</td>" in shown


# -- end to end: the real command in a process of its own ------------------------------


def _forensics(*args, cwd):
    """Run `forensics ARGS` as a user would (this tree's package, a fresh process)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("FORENSICS_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "forensics.cli", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """simulate -> ingest -> ingest-events -> signatures --json -> evaluate, from the CLI."""
    root = tmp_path_factory.mktemp("cli")
    steps = {
        "simulate": _forensics(
            "simulate", "--scenario", "bad-replica", "--rows", 60_000, "--seed", 2, "--out", "sim",
            cwd=root,
        ),
        "ingest": _forensics("ingest", "sim/requests.parquet", "--db", "x.duckdb", cwd=root),
        "events": _forensics("ingest-events", "sim/events.csv", "--db", "x.duckdb", cwd=root),
        "signatures": _forensics(
            "signatures", "--db", "x.duckdb", "--json", "out/sigs.json", "-q", cwd=root
        ),
        "evaluate": _forensics(
            "evaluate", "--truth", "sim/truth.json", "--signatures", "out/sigs.json",
            "--db", "x.duckdb", cwd=root,
        ),
    }  # fmt: skip
    return root, steps


def test_the_subprocess_runs_this_tree(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run(
        [sys.executable, "-c", "import forensics.cli; print(forensics.cli.__file__)"],
        cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(REPO / "forensics" / "cli.py")


@pytest.mark.slow
def test_simulate_writes_the_scenario_and_its_truth(pipeline):
    root, steps = pipeline
    done = steps["simulate"]
    assert done.returncode == 0, done.stderr
    assert "wrote 60,000 requests to sim (scenario bad-replica, seed 2)" in done.stdout
    truth = json.loads((root / "sim" / "truth.json").read_text())
    assert (truth["scenario"], truth["seed"], truth["rows"]) == ("bad-replica", 2, 60_000)
    assert [b["predicate"] for b in truth["bugs"]] == [{"server_id": ["gpu-us-east-05"]}]
    assert pl.scan_parquet(root / "sim" / "requests.parquet").select(pl.len()).collect().item() == (
        60_000
    )


@pytest.mark.slow
def test_ingest_loads_every_row_and_the_events(pipeline):
    _, steps = pipeline
    assert steps["ingest"].returncode == 0, steps["ingest"].stderr
    row = next(line for line in steps["ingest"].stdout.splitlines() if "requests.parquet" in line)
    assert row.split()[1:] == ["ingested", "60000", "60000", "0", "0"]
    assert steps["events"].returncode == 0, steps["events"].stderr
    assert "read 1, loaded 1, rejected 0" in steps["events"].stdout


@pytest.mark.slow
def test_signatures_json_has_the_documented_shape(pipeline):
    root, steps = pipeline
    done = steps["signatures"]
    assert done.returncode == 0, done.stderr
    data = json.loads((root / "out" / "sigs.json").read_text())
    assert list(data) == ["signatures", "root_causes"]
    sig = data["signatures"][0]  # the strongest; weaker ones may follow
    covered = sorted(s for cause in data["root_causes"] for s in cause["signatures"])
    assert covered == sorted(s["id"] for s in data["signatures"])
    for key in ("id", "predicate", "start", "end", "signals", "excess_rate", "ci",
                "requests", "users", "p_value", "events"):  # fmt: skip
        assert key in sig, key
    assert sig["id"] == "S1"
    assert sig["predicate"] == {"server_id": ["gpu-us-east-05"]}
    assert sig["start"].endswith("Z")
    assert sig["end"].endswith("Z")
    assert sig["signal"] in sig["signals"]
    low, high = sig["ci"]
    assert low <= sig["excess_rate"] <= high
    assert 0 < sig["p_value"] < 0.05
    assert 0 < sig["users"] <= sig["requests"]
    assert "wrote out/sigs.json" in done.stdout
    assert "S1  server_id in {gpu-us-east-05}" in done.stdout


@pytest.mark.slow
def test_evaluate_prints_each_match_and_f1(pipeline):
    _, steps = pipeline
    done = steps["evaluate"]
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == [
        "bad-replica-gpu-us-east-05",
        "S1",
        "jaccard",
        lines[0].split()[3],
    ]
    assert float(lines[0].split()[3]) >= 0.8
    assert lines[-1] == "found 1, true 1, matched 1: precision 1.000, recall 1.000, F1 1.000"


@pytest.mark.slow
def test_errors_a_user_can_fix_exit_2_with_one_line(pipeline):
    root, _ = pipeline
    (root / "broken.json").write_text("{")
    (root / "no_bugs.json").write_text('{"x": 1}')
    cases = [
        (("signatures", "--db", "absent.duckdb"), "absent.duckdb: no such database"),
        (("evaluate", "--truth", "broken.json", "--signatures", "out/sigs.json",
          "--db", "x.duckdb"), "broken.json: not a readable JSON file"),
        (("evaluate", "--truth", "no_bugs.json", "--signatures", "out/sigs.json",
          "--db", "x.duckdb"), 'no_bugs.json: expected a JSON object with a "bugs" list'),
        (("evaluate", "--truth", "sim/truth.json", "--signatures", "out/sigs.json",
          "--db", "absent.duckdb"), "absent.duckdb: no such database"),
        (("simulate", "--scenario", "no-such-scenario", "--out", "s"), "unknown scenario"),
    ]  # fmt: skip
    for args, message in cases:
        done = _forensics(*args, cwd=root)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        errors = [
            line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")
        ]
        assert len(errors) == 1, (args, done.stdout, done.stderr)
        assert message in errors[0], errors


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


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("latency_ms >", 'expr "latency_ms >": position 13: expected a value'),
        ("latncy_ms > 1", "position 1: latncy_ms is not a column; close: latency_ms"),
        ("latency_ms > 'slow'", "position 14: > compares column latency_ms (a number) with 'slow'"),
        (
            "region_code > 1",
            "position 1: region_code is read as a number here, but {path} line 1 has 'east-1'",
        ),
    ],
    ids=["syntax", "typo", "kinds", "values"],
)
def test_expression_mistakes_exit_2_naming_file_signal_and_position(tmp_path, expr, message):
    path = _write_rows(tmp_path / "in.jsonl", _SIGNAL_ROWS)
    mapping = tmp_path / "m.toml"
    mapping.write_text(f"[signals.slow]\nexpr = {json.dumps(expr)}\n")
    result = _run("ingest", path, "--db", tmp_path / "x.duckdb", "--mapping", mapping)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{mapping}: [signals.slow] expr " in errors[0]
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


def test_spark_settings_on_an_ordinary_database_never_import_pyspark(tmp_path):
    # --spark-master is accepted by the read commands, and used only for the cache of
    # a Spark table: on an ordinary database nothing of Spark (not even pyspark) loads.
    from tests.conftest import REPO

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(request_row(i)) + "\n" for i in range(50)))
    db = tmp_path / "x.duckdb"
    assert _run("ingest", path, "--db", db).exit_code == 0
    script = f"""
import sys
from click.testing import CliRunner
from forensics.cli import main
import forensics
for args in (["info"], ["signatures", "-q"], ["explain"]):
    done = CliRunner().invoke(main, [*args, "--db", {str(db)!r}, "--spark-master", "local[2]"])
    assert done.exit_code in (0, 2) and "Spark" not in done.output, (args, done.output)
    assert "No such option" not in done.output, done.output
with forensics.open({str(db)!r}, read_only=True) as wb:
    wb.signatures()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO),
             "FORENSICS_SPARK_MASTER": "local[2]"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_lab_passes_the_spark_settings_to_the_kernel(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("FORENSICS_SPARK_MASTER", raising=False)
    monkeypatch.delenv("FORENSICS_SPARK_CONF", raising=False)
    db = tmp_path / "x.duckdb"
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(request_row(0)) + "\n")
    assert _run("ingest", path, "--db", db).exit_code == 0
    conf = tmp_path / "spark.conf"
    conf.write_text("spark.sql.shuffle.partitions 4\n")
    monkeypatch.chdir(tmp_path)
    result = _run(
        "lab", "--db", db, "--dry-run", "--notebooks", tmp_path,
        "--spark-master", "spark://host:7077", "--spark-conf", "spark.conf",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "FORENSICS_SPARK_MASTER=spark://host:7077" in result.output
    assert f"FORENSICS_SPARK_CONF={conf.resolve()}" in result.output
    # Set for the command's run only.
    assert "FORENSICS_SPARK_MASTER" not in os.environ
