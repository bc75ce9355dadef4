import json

from click.testing import CliRunner

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
    # the summary table names the file once, not "path: path: ..."
    name = str(BAD_INPUTS / "missing_column.csv")
    assert f"{name}: {name}:" not in result.output
    assert any(line.startswith(f"{name}: missing required") for line in result.output.splitlines())


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
