"""The shipped OTLP sample (``data_samples/otel-genai/``): made by its script, and the
demo path on it finds the signatures the canonical sample's same rows give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest

import forensics
from tests.conftest import REPO, SAMPLE, same_signatures

pytest.importorskip("opentelemetry.sdk")

OTEL = REPO / "data_samples" / "otel-genai"


def _script():
    spec = importlib.util.spec_from_file_location("make_otel_sample", OTEL / "make.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _demo(requests: Path, db: Path) -> tuple[forensics.IngestSummary, list[dict]]:
    """What the demo does: the requests and the change events in, then the signatures."""
    with forensics.open(db) as wb:
        summary = wb.ingest(requests)
        wb.ingest_events(SAMPLE / "events.csv")
        return summary, [s.to_dict() for s in wb.signatures()]


@pytest.mark.slow
def test_the_otlp_sample_gives_the_signatures_of_the_same_canonical_rows(tmp_path):
    script = _script()
    rows = pl.read_parquet(SAMPLE / "requests.parquet").filter(
        (pl.col("ts") >= script.FROM) & (pl.col("ts") < script.TO)
    )
    same = tmp_path / "same.parquet"
    rows.write_parquet(same)
    spans, from_spans = _demo(OTEL / "traces.jsonl.gz", tmp_path / "otlp.duckdb")
    (f,) = spans.files
    assert (f.format, f.accepted, f.rejected_total, f.duplicates) == ("otlp", rows.height, 0, 0)
    assert f.skipped == -(-rows.height // script.HTTP_EVERY)  # the HTTP parents
    _, from_rows = _demo(same, tmp_path / "canonical.duckdb")
    assert from_rows, "the TPU corruption's onset is in these days"
    # Everything agrees but the p-value's Bonferroni bound, which counts the dimensions
    # searched: the span table has more (service_name, span_name, ...).
    for found in (from_spans, from_rows):
        for signature in found:
            del signature["p_value"]
    assert same_signatures(from_spans, from_rows)


@pytest.mark.slow
def test_the_sample_script_gives_the_same_bytes(tmp_path):
    out = tmp_path / "traces.jsonl.gz"
    _script().main(out)
    assert out.read_bytes() == (OTEL / "traces.jsonl.gz").read_bytes()
