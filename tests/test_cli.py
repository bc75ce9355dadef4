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
