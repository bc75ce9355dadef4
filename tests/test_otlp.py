"""OTLP JSON traces in: spans made by the real OpenTelemetry SDK, encoded by the OTLP
protobuf encoder, written from the protobuf message, ingested, every span accounted for."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.errors import IngestError
from forensics.otlp import readable_name
from forensics.simulate.otlp import write_otlp

pytest.importorskip("opentelemetry.sdk")

START = datetime(2025, 8, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _request(i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": f"chatcmpl-{i:04d}",
        "ts": START + timedelta(minutes=i),
        "model": ["m-a", "m-b"][i % 2],
        "region": ["eu-west", "us-east"][i % 2],
        "session_id": f"conv-{i % 3}",
        "temperature": 0.5 if i % 2 else 0.0,
        "max_tokens": 256,
        "prompt_tokens": 10 + i,
        "output_tokens": 5 + i,
        "finish_reason": "length" if i % 4 == 0 else "stop",
        "prompt_text": f"Question {i}?",
        "response_text": f"Answer number {i} is here.",
        "error.type": None if i % 5 else "timeout",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.cache_read.input_tokens": i % 3,
        "routing_pool": None,
    }
    row.update(overrides)
    return row


REQUESTS = [_request(i) for i in range(12)]


def _ingest(path: Path, db: Path, **kwargs: Any) -> forensics.IngestSummary:
    with forensics.open(db) as wb:
        return wb.ingest(path, **kwargs)


def _rows(db: Path) -> dict[str, dict[str, Any]]:
    with forensics.open(db, read_only=True) as wb:
        frame = wb.sql("SELECT * FROM requests ORDER BY request_id")
    return {r["request_id"]: r for r in frame.to_dicts()}


@pytest.mark.parametrize(
    ("style", "name"),
    [("collector", "traces.jsonl"), ("protobuf", "traces.json"), ("collector", "traces.json.gz")],
)
def test_every_span_is_accounted_for_and_values_are_those_set(tmp_path, style, name):
    path = tmp_path / name
    written = write_otlp(REQUESTS, path, style=style, http_every=3)
    assert written == len(REQUESTS) + 4  # one HTTP parent span every third request
    (f,) = _ingest(path, tmp_path / "x.duckdb").files
    assert f.format == "otlp"
    assert (f.rows_read, f.accepted, f.rejected_total, f.duplicates, f.skipped) == (16, 12, 0, 0, 4)
    rows = _rows(tmp_path / "x.duckdb")
    assert set(rows) == {r["request_id"] for r in REQUESTS}
    for want in REQUESTS:
        got = rows[want["request_id"]]
        assert got["ts"] == want["ts"]
        for column in (
            "model",
            "region",
            "session_id",
            "temperature",
            "max_tokens",
            "prompt_tokens",
            "output_tokens",
            "finish_reason",
            "prompt_text",
            "response_text",
        ):
            assert got[column] == want[column], column
        assert got["error_type"] == want["error.type"]
        assert got["gen_ai_provider_name"] == "openai"
        assert (
            got["gen_ai_usage_cache_read_input_tokens"]
            == want["gen_ai.usage.cache_read.input_tokens"]
        )
        assert got["service_name"] == "llm-gateway"
        assert got["span_kind"] == "client"
        assert got["gen_ai_operation_name"] == "chat"
        assert len(got["trace_id"]) == 32
        assert len(got["span_id"]) == 16
        assert got["duration_ms"] == pytest.approx(200 + 20 * want["output_tokens"])
        assert got["platform"] is None
        assert got["routing_pool"] is None
    # the truncated detector reads the finish reasons
    assert {r["request_id"] for r in rows.values() if r["truncated"]} == {
        r["request_id"] for r in REQUESTS if r["finish_reason"] == "length"
    }


def test_collector_and_protobuf_layouts_give_the_same_rows(tmp_path):
    write_otlp(REQUESTS, tmp_path / "a.jsonl", style="collector")
    write_otlp(REQUESTS, tmp_path / "b.json", style="protobuf")
    text = (tmp_path / "a.jsonl").read_text()
    assert '"traceId":"' in text
    assert '"kind":3' in text
    b = (tmp_path / "b.json").read_text()
    assert '"kind":"SPAN_KIND_CLIENT"' in b
    assert "==" in b
    _ingest(tmp_path / "a.jsonl", tmp_path / "a.duckdb")
    _ingest(tmp_path / "b.json", tmp_path / "b.duckdb")
    a_rows, b_rows = _rows(tmp_path / "a.duckdb"), _rows(tmp_path / "b.duckdb")
    drop = ("_source_file_id",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in a_rows.values()] == [
        {k: v for k, v in r.items() if k not in drop} for r in b_rows.values()
    ]


def test_snake_case_field_names_and_one_pretty_printed_object_are_read(tmp_path):
    write_otlp(REQUESTS[:3], tmp_path / "a.json", style="protobuf")
    data = json.loads((tmp_path / "a.json").read_text())

    def snake(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                "".join("_" + c.lower() if c.isupper() else c for c in k): snake(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [snake(v) for v in node]
        return node

    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(snake(data), indent=2))
    (f,) = _ingest(pretty, tmp_path / "x.duckdb").files
    assert (f.format, f.accepted, f.rows_read) == ("otlp", 3, 3)
    assert _rows(tmp_path / "x.duckdb")["chatcmpl-0001"]["response_text"] == (
        "Answer number 1 is here."
    )


def test_a_span_without_a_response_id_is_named_by_its_span_id(tmp_path):
    path = tmp_path / "t.jsonl"
    write_otlp([_request(1, request_id=None)], path)
    span_id = json.loads(path.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0][
        "spanId"
    ]
    _ingest(path, tmp_path / "x.duckdb")
    assert list(_rows(tmp_path / "x.duckdb")) == [span_id]


def test_a_file_of_only_non_genai_spans_says_so(tmp_path):
    path = tmp_path / "t.jsonl"
    write_otlp(REQUESTS[:4], path, http_every=1)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:  # keep the HTTP spans only
        scope = line["resourceSpans"][0]["scopeSpans"][0]
        scope["spans"] = [s for s in scope["spans"] if s["kind"] == 2]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (f,) = _ingest(path, tmp_path / "x.duckdb").files
    assert (f.status, f.rows_read, f.skipped, f.accepted) == ("empty", 4, 4, 0)
    assert "none of its 4 spans is a GenAI inference" in (f.message or "")


def test_a_bad_value_in_one_span_is_quarantined_and_counted(tmp_path):
    path = tmp_path / "t.jsonl"
    write_otlp(REQUESTS[:3], path)
    text = path.read_text().replace('"intValue":"6"', '"intValue":"six"', 1)
    path.write_text(text)
    (f,) = _ingest(path, tmp_path / "x.duckdb").files
    assert (f.rows_read, f.accepted, f.rejected) == (3, 2, {"wrong_type": 1})
    with forensics.open(tmp_path / "x.duckdb", read_only=True) as wb:
        rejected = wb.rejected().to_dicts()
    assert [(r["row_number"], r["column"], r["bad_value"]) for r in rejected] == [
        (2, "output_tokens", "six")
    ]


def _otlp_lines(tmp_path: Path) -> list[str]:
    write_otlp(REQUESTS[:2], tmp_path / "good.jsonl")
    line = (tmp_path / "good.jsonl").read_text().splitlines()[0]
    return [line, line.replace("chatcmpl-", "other-")]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda line: line[:-20],
            r"line 2: not OTLP JSON traces: the object starting here is not valid JSON",
        ),
        (
            lambda line: line.replace('"spans":[', '"spans":[7,', 1),
            r"line 2: .*resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]: an object was expected",
        ),
        (
            lambda line: line.replace('{"stringValue":"chat"}', '{"weirdValue":1}', 1),
            r"line 2: .*spans\[0\]\.attributes\[0\] \(gen_ai.operation.name\): a value of no "
            r"known type",
        ),
        (
            lambda line: line.replace('"scopeSpans":[', '"scopeSpans":"oops","x":[', 1),
            r"line 2: .*resourceSpans\[0\]\.scopeSpans: a list was expected, found str",
        ),
    ],
)
def test_malformed_otlp_is_refused_naming_the_line_and_place(tmp_path, damage, message):
    first, second = _otlp_lines(tmp_path)
    path = tmp_path / "bad.jsonl"
    path.write_text(first + "\n" + damage(second) + "\n")
    with forensics.open(tmp_path / "x.duckdb") as wb:
        with pytest.raises(IngestError, match=message):
            wb.ingest(path)
        assert wb.counts()["requests"] == 0
    result = CliRunner().invoke(main, ["ingest", str(path), "--db", str(tmp_path / "y.duckdb")])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert str(path) in errors[0]
    assert "Export the traces again" in errors[0]


def test_otlp_logs_are_refused_saying_to_export_traces(tmp_path):
    path = tmp_path / "logs.json"
    path.write_text('{"resourceLogs": []}\n')
    with forensics.open(tmp_path / "x.duckdb") as wb, pytest.raises(IngestError, match="traces"):
        wb.ingest(path)


def test_span_columns_take_the_presets_roles(tmp_path):
    write_otlp(REQUESTS, tmp_path / "t.jsonl")
    with forensics.open(tmp_path / "x.duckdb") as wb:
        wb.ingest(tmp_path / "t.jsonl")
        roles = {r["column"]: r["role"] for r in wb.roles().to_dicts()}
    assert roles["error_type"] == roles["gen_ai_usage_cache_read_input_tokens"] == "outcome"
    assert roles["finish_reason"] == roles["output_tokens"] == roles["duration_ms"] == "outcome"
    assert roles["service_name"] == roles["gen_ai_provider_name"] == "dimension"
    assert roles["model"] == roles["region"] == roles["gen_ai_request_model"] == "dimension"


def test_the_cli_summary_counts_skipped_spans(tmp_path):
    path = tmp_path / "t.jsonl"
    write_otlp(REQUESTS[:6], path, http_every=2)
    result = CliRunner().invoke(main, ["ingest", str(path), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 0, result.output
    header, _, row = result.output.splitlines()[:3]
    assert header.split()[-1] == "skipped"
    assert row.split()[1:] == ["ingested", "9", "6", "0", "0", "3"]
    assert "read = accepted + rejected + duplicates + skipped" in result.output


def test_privacy_mode_hashes_conversations_and_keeps_no_message_text(tmp_path):
    marker_id, marker_text = "Conv-Leak-Id", "Quokka-Leak-Text"
    requests = [
        _request(i, session_id=f"{marker_id}-{i % 2}", response_text=f"{marker_text} {i}")
        for i in range(8)
    ]
    path = tmp_path / "t.jsonl.gz"
    write_otlp(requests, path, http_every=4)
    with gzip.open(path, "rt") as fh:
        assert marker_id in fh.read()
    db = tmp_path / "p.duckdb"
    summary = _ingest(path, db, privacy=True, salt="pepper-and-salt-for-tests")
    assert (summary.accepted, summary.skipped) == (8, 2)
    for file in (db, Path(f"{db}.wal")):
        if file.exists():
            data = file.read_bytes()
            assert marker_id.encode() not in data
            assert marker_text.encode() not in data
    rows = _rows(db)
    sessions = {r["session_id"] for r in rows.values()}
    assert len(sessions) == 2
    assert not any(marker_id in s for s in sessions)
    assert all(r["response_text"] is None for r in rows.values())
    # the signals were computed from the text before it was dropped: as without privacy
    plain = tmp_path / "plain.duckdb"
    _ingest(path, plain)
    assert {k: r["truncated"] for k, r in rows.items()} == {
        k: r["truncated"] for k, r in _rows(plain).items()
    }


def test_readable_names_keep_dots_readable():
    assert readable_name("deployment.environment.name") == "deployment_environment_name"


def test_ids_are_hex_whether_written_as_hex_or_base64(tmp_path):
    write_otlp(REQUESTS[:1], tmp_path / "a.json", style="protobuf")
    span = json.loads((tmp_path / "a.json").read_text())["resourceSpans"][0]["scopeSpans"][0][
        "spans"
    ][0]
    _ingest(tmp_path / "a.json", tmp_path / "x.duckdb")
    (row,) = _rows(tmp_path / "x.duckdb").values()
    assert row["trace_id"] == base64.b64decode(span["traceId"]).hex()


def test_a_truncated_gzip_is_refused_saying_to_copy_it_again(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    write_otlp(REQUESTS, path)
    path.write_bytes(path.read_bytes()[:-40])
    with forensics.open(tmp_path / "x.duckdb") as wb, pytest.raises(IngestError, match="again"):
        wb.ingest(path)


def test_the_reports_data_quality_counts_the_skipped_spans(tmp_path):
    path = tmp_path / "t.jsonl"
    write_otlp(REQUESTS, path, http_every=4)
    with forensics.open(tmp_path / "x.duckdb") as wb:
        wb.ingest(path)
        wb.report("spans", signatures=[]).save(tmp_path / "r.md")
    text = " ".join((tmp_path / "r.md").read_text().split())
    assert (
        "15 rows read = 12 accepted + 0 rejected + 0 exact duplicates skipped + 3 OTLP spans"
        in (text)
    )
