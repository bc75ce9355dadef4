"""Write ``traces.jsonl.gz``: three days of the reference sample as OTLP JSON traces.

The requests of ``data_samples/postmortem-2025/requests.parquet`` from 2025-08-24
00:00 to 2025-08-27 00:00 UTC (the days around the TPU bugs' onset), each as one
GenAI span made by the OpenTelemetry SDK (``forensics.simulate.otlp.write_otlp``:
the attributes the ``otel-genai`` preset reads, the canonical columns with no
GenAI attribute under their own names), encoded by the OTLP protobuf encoder and
written as the collector's file exporter writes (one request of 512 spans per
line, hex ids, integer enums), with an HTTP server span (not GenAI: skipped at
ingest) as the parent of every 25th request. Same input, same bytes.

Run from the repository root (needs the dev extra: ``pip install -e '.[dev]'``)::

    python data_samples/otel-genai/make.py
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from forensics.simulate.otlp import write_otlp

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "postmortem-2025" / "requests.parquet"
OUT = HERE / "traces.jsonl.gz"
FROM = datetime(2025, 8, 24, tzinfo=UTC)
TO = datetime(2025, 8, 27, tzinfo=UTC)
HTTP_EVERY = 25


def main(out: Path = OUT) -> None:
    """Write the sample to ``out`` (default: ``traces.jsonl.gz`` beside this script)."""
    rows = (
        pl.read_parquet(SOURCE)
        .filter((pl.col("ts") >= FROM) & (pl.col("ts") < TO))
        .sort("ts", "request_id")
    )
    plain = out.with_name(out.name.removesuffix(".gz"))
    spans = write_otlp(rows.iter_rows(named=True), plain, seed=7, http_every=HTTP_EVERY)
    # gzip without a name or time in its header: the same input gives the same bytes
    with (
        plain.open("rb") as src,
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        while chunk := src.read(1 << 20):
            gz.write(chunk)
    plain.unlink()
    print(
        f"wrote {spans:,} spans ({rows.height:,} requests) to {out} ({out.stat().st_size:,} bytes)"
    )


if __name__ == "__main__":
    main()
