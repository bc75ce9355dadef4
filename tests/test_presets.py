"""Mapping presets: ``--preset otel-genai`` reads flattened GenAI span tables, and
``forensics schema --preset`` prints the same mapping file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.errors import ConfigError
from forensics.presets import PRESETS, load_preset, preset_text
from forensics.schema import Mapping
from forensics.simulate.otlp import genai_attributes

START = datetime(2025, 8, 1, 9, 30, tzinfo=UTC)


def _span(i: int) -> dict[str, Any]:
    """One span flattened as a warehouse holds it: a column per attribute name."""
    row = genai_attributes(
        {
            "request_id": f"resp-{i}",
            "model": ["m-a", "m-b"][i % 2],
            "region": "eu",
            "session_id": f"conv-{i % 4}",
            "temperature": 0.7,
            "max_tokens": 128,
            "prompt_tokens": 20 + i,
            "output_tokens": 128 if i % 3 == 0 else 40,
            "finish_reason": "length" if i % 3 == 0 else "stop",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.cache_read.input_tokens": i % 2,
            "error.type": "timeout" if i == 4 else None,
        }
    )
    row["start_time"] = int((START + timedelta(minutes=i)).timestamp()) * 1_000_000_000
    row["service.name"] = "chat-api"
    return row


def _run(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_schema_prints_the_preset_as_a_mapping_file_that_loads(tmp_path):
    result = _run("schema", "--preset", "otel-genai")
    assert result.exit_code == 0, result.output
    assert result.output == preset_text("otel-genai")
    path = tmp_path / "mapping.toml"
    path.write_text(result.output)
    copied, shipped = Mapping.load(path), load_preset("otel-genai")
    assert (copied.columns, copied.roles, copied.epoch_unit) == (
        shipped.columns,
        shipped.roles,
        shipped.epoch_unit,
    )


def test_every_preset_loads_and_an_unknown_one_is_named():
    for name in PRESETS:
        assert load_preset(name).columns
    with pytest.raises(ConfigError, match="otel-genai"):
        load_preset("otel")


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_flattened_span_table_is_read_with_the_preset(tmp_path, suffix):
    frame = pl.DataFrame([_span(i) for i in range(9)])
    path = tmp_path / f"spans.{suffix}"
    if suffix == "csv":  # a CSV export holds the list as text
        frame = frame.with_columns(pl.col("gen_ai.response.finish_reasons").list.join(","))
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    db = tmp_path / "x.duckdb"
    result = _run("ingest", path, "--db", db, "--preset", "otel-genai")
    assert result.exit_code == 0, result.output
    with forensics.open(db, read_only=True) as wb:
        rows = wb.sql("SELECT * FROM requests ORDER BY ts").to_dicts()
        roles = {r["column"]: r["role"] for r in wb.roles().to_dicts()}
    assert [r["request_id"] for r in rows] == [f"resp-{i}" for i in range(9)]
    assert rows[1]["ts"] == START + timedelta(minutes=1)
    assert [r["finish_reason"] for r in rows[:2]] == ["length", "stop"]
    assert [r["truncated"] for r in rows[:2]] == [True, False]
    assert rows[4]["model"] == "m-a"
    assert rows[4]["session_id"] == "conv-0"
    assert rows[4]["region"] == "eu"
    assert rows[4]["error.type"] == "timeout"
    assert roles["error.type"] == roles["gen_ai.usage.cache_read.input_tokens"] == "outcome"
    assert roles["service.name"] == roles["gen_ai.provider.name"] == "dimension"
    assert roles["gen_ai.request.model"] == roles["gen_ai.operation.name"] == "dimension"
    assert roles["finish_reason"] == roles["output_tokens"] == "outcome"


def test_mapping_and_preset_together_are_refused_saying_how_to_adapt(tmp_path):
    path = tmp_path / "spans.parquet"
    pl.DataFrame([_span(0)]).write_parquet(path)
    mapping = tmp_path / "m.toml"
    mapping.write_text("[columns]\n")
    result = _run("ingest", path, "--preset", "otel-genai", "--mapping", mapping)
    assert result.exit_code == 2
    assert "forensics schema --preset otel-genai > mapping.toml" in result.output
