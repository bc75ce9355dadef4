"""Writing a field-family run: requests.parquet, events.csv, truth.json, mapping.toml.

Byte for byte the same for the same kind, seed and rows (fixed column order,
fixed Parquet settings, JSON with sorted-free but fixed key order).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forensics.simulate.field.fleet import Event, iso
from forensics.simulate.field.responses import SLOW_MS

__all__ = ["COLUMNS", "MAPPING_TOML", "write_run"]

COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("request_id", pa.string()),
    ("ts", pa.timestamp("ms", tz="UTC")),
    ("model", pa.string()),
    ("model_version", pa.string()),
    ("platform", pa.string()),
    ("routing_pool", pa.string()),
    ("surface", pa.string()),
    ("region", pa.string()),
    ("server_id", pa.string()),
    ("user_id", pa.string()),
    ("session_id", pa.string()),
    ("client", pa.string()),
    ("client_version", pa.string()),
    ("customer_tier", pa.string()),
    ("org_id", pa.string()),
    ("task", pa.string()),
    ("prompt_language", pa.string()),
    ("prompt_tokens", pa.int64()),
    ("cached_tokens", pa.int64()),
    ("batch_size", pa.int64()),
    ("temperature", pa.float64()),
    ("max_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("finish_reason", pa.string()),
    ("truncated", pa.bool_()),
    ("latency_ms", pa.int64()),
    ("status_code", pa.int64()),
    ("max_token_rank", pa.int64()),
    ("user_feedback", pa.int64()),
    ("eval_score", pa.float64()),
    ("response_text", pa.string()),
)
"""The columns of requests.parquet, in order, with their types."""

ROW_GROUP = 65_536

MAPPING_TOML = f"""\
# Signals of the field family's logs (see the README, "Mapping files").
# The current ops compare numbers, so the length limit reads the boolean
# column `truncated` (finish_reason = 'length') rather than finish_reason.

[signals.length_limit]
column = "truncated"
description = "The answer stopped at max_tokens (finish_reason = length)."

[signals.slow]
column = "latency_ms"
op = ">"
value = {SLOW_MS}
description = "The request took more than {SLOW_MS // 1000} s."
"""
"""mapping.toml written beside every run."""


def _array(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    if pa.types.is_string(dtype):
        return pa.array(values, type=dtype)
    if pa.types.is_timestamp(dtype):
        return pa.array(values.astype(np.int64), type=pa.int64()).cast(dtype)
    floats = np.asarray(values, dtype=float) if values.dtype.kind == "f" else None
    if floats is not None and (pa.types.is_integer(dtype) or pa.types.is_boolean(dtype)):
        mask = np.isnan(floats)
        filled = np.where(mask, 0, floats)
        typed = filled.astype(bool) if pa.types.is_boolean(dtype) else filled.astype(np.int64)
        return pa.array(typed, type=dtype, mask=mask)
    if pa.types.is_floating(dtype):
        data = np.asarray(values, dtype=float)
        return pa.array(data, type=dtype, mask=np.isnan(data))
    return pa.array(values, type=dtype)


def _write_parquet(path: Path, columns: Mapping[str, np.ndarray]) -> int:
    table = pa.table({name: _array(columns[name], dtype) for name, dtype in COLUMNS})
    pq.write_table(
        table,
        path,
        row_group_size=ROW_GROUP,
        compression="zstd",
        compression_level=3,
        use_dictionary=[
            n
            for n, t in COLUMNS
            if pa.types.is_string(t) and n not in ("request_id", "session_id", "response_text")
        ],
        store_schema=False,
        write_statistics=True,
    )
    return table.num_rows


def _events_csv(events: Iterable[Event]) -> str:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["ts", "kind", "description", "scope"])
    for e in sorted(events, key=lambda e: (e.ts, e.kind, e.scope, e.description)):
        out.writerow([iso(e.ts), e.kind, e.description, e.scope])
    return buffer.getvalue()


def write_run(
    out: Path,
    *,
    columns: Mapping[str, np.ndarray],
    events: Iterable[Event],
    truth: Mapping[str, Any],
) -> None:
    """Write the four files of a run into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet(out / "requests.parquet", columns)
    (out / "events.csv").write_text(_events_csv(events), encoding="utf-8")
    (out / "truth.json").write_text(
        json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "mapping.toml").write_text(MAPPING_TOML, encoding="utf-8")
