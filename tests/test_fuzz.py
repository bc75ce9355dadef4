"""Fuzzing: mapping files and input rows a user could write never make forensics crash.

For any mapping file and any rows (JSON lines, a JSON array, CSV, Parquet), an
ingest either succeeds with exact accounting (read = accepted + rejected +
duplicates, and the tables hold exactly that) or raises a ``ForensicsError``
saying what to fix. Anything else (``InternalError``, a DuckDB error, a Python
exception) is a bug. Slow (about 3 minutes); ``FUZZ_SCALE`` scales the
number of examples.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensics
from forensics.schema import CANONICAL_COLUMNS, Mapping

pytestmark = pytest.mark.slow

CANONICAL = [c.name for c in CANONICAL_COLUMNS]
NAMES = [
    *CANONICAL,
    "TS",
    "Model",
    "latency_ms",
    "flag",
    "slow",
    "degraded",
    "script_mix",
    "_row",
    "_error",
    "_raw",
    "_types",
    "_problem",
    "_source_row",
    "file_row_number",
    "row_input",
    'we"ird',
    "spa ce",
    "ünï",
]
"""Column names drawn from: canonical, clashing with forensics' own, odd."""

FUZZ_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
"""Multiplies the number of examples (e.g. 10 for a long hunt, 0.1 for a quick look)."""
INGEST_CASES = max(1, int(1000 * FUZZ_SCALE))
"""Ingests tried (about 0.15 s each on 2 cores)."""
MAPPING_CASES = max(1, int(3000 * FUZZ_SCALE))

pytestmark = pytest.mark.timeout(max(900, int(900 * FUZZ_SCALE)))
"""The suite's per-test limit, scaled with the cases: pytest-timeout's alarm would land
inside a DuckDB statement and read as a bug ("Query interrupted")."""
"""Mapping files read."""

_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12
) | st.sampled_from(
    [
        "2025-08-01T12:00:00Z",
        "2025-08-01t12:00:00z",
        "2025-08-01T12:00:00+25:00",
        "1754049600",
        "1754049600000",
        "1754049600000000000",
        "1e300",
        "-0",
        "NaN",
        "inf",
        "true",
        "yes",
        "",
        " ",
        '"',
        '""',
        "a,b",
        "line\nbreak",
        "18446744073709551615",
    ]
)
_number = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 2**64 - 1, 1e30, 1754049600000])
)
_scalar = st.none() | st.booleans() | _number | _text
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=5,
)


def _good_row(i: int) -> dict[str, Any]:
    return {
        "request_id": f"r{i}",
        "ts": "2025-08-01T12:00:00Z",
        "model": "m",
        "platform": "gpu",
        "routing_pool": "p",
    }


@st.composite
def _rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows that are mostly valid, with some columns and values drawn from anything."""
    n = draw(st.integers(0, 12))
    extra = draw(st.lists(st.sampled_from(NAMES), max_size=4, unique_by=str.lower))
    rows = []
    for i in range(n):
        row = _good_row(draw(st.integers(0, 6)) if draw(st.booleans()) else i)
        for name in extra:
            row[name] = draw(_value)
        if draw(st.integers(0, 3)) == 0:
            row[draw(st.sampled_from(CANONICAL))] = draw(_value)
        rows.append(row)
    return rows


_column_signal = st.fixed_dictionaries(
    {"column": st.sampled_from(NAMES) | _text},
    optional={
        "op": st.sampled_from([">", ">=", "<", "<=", "==", "!=", "~", ""]),
        "value": _number | st.booleans() | _text,
        "description": _text | _number,
    },
)
_EXPR_PARTS = [
    *NAMES, "`spa ce`", "`we\"ird`", "==", "!=", "<", ">=", "and", "or", "not", "is", "null",
    "in", "[", "]", ",", "(", ")", "between", "+", "*", "/", "len(", "lower(", "contains(",
    "'x'", "'east-1'", "1", "1e3", "-2.5", "true", "1e999", "'",
]  # fmt: skip
_expr_signal = st.fixed_dictionaries(
    {"expr": st.lists(st.sampled_from(_EXPR_PARTS), min_size=1, max_size=9).map(" ".join) | _text},
    optional={"description": _text, "column": st.sampled_from(NAMES)},
)
_signal = _column_signal | _expr_signal
_mappings = st.fixed_dictionaries(
    {},
    optional={
        "columns": st.dictionaries(
            st.sampled_from(CANONICAL) | _text, st.sampled_from(NAMES) | _text, max_size=3
        ),
        "timestamps": st.fixed_dictionaries(
            {}, optional={"epoch_unit": st.sampled_from(["s", "ms", "us", "ns", "minutes"])}
        ),
        "signals": st.dictionaries(st.sampled_from(NAMES) | _text, _signal, max_size=3),
    },
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**63 else json.dumps(str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _toml(mapping: dict[str, Any]) -> str:
    """A TOML file for a mapping dict (tables of scalars, and [signals.NAME] tables)."""
    lines = []
    for section, table in mapping.items():
        if section == "signals":
            for name, spec in table.items():
                lines.append(f"[signals.{json.dumps(name, ensure_ascii=False)}]")
                lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in spec.items()]
        else:
            lines.append(f"[{section}]")
            lines += [
                f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(v)}" for k, v in table.items()
            ]
    return "\n".join(lines) + "\n"


def _write(path: Path, fmt: str, rows: list[dict[str, Any]]) -> int:
    """Write ``rows`` in ``fmt``; return the number of records the file holds."""
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False))
    elif fmt == "csv":
        names = list(dict.fromkeys(k for r in rows for k in r)) or ["request_id"]
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for r in rows:
                writer.writerow(["" if r.get(n) is None else _csv_text(r.get(n)) for n in names])
        return sum(1 for r in rows if any(_csv_text(v).strip() for v in r.values()))
    else:
        names = list(dict.fromkeys(k for r in rows for k in r))
        columns = {n: _arrow_column([r.get(n) for r in rows]) for n in names}
        pq.write_table(
            pa.table(columns) if columns else pa.table({"x": pa.array([], pa.int64())}), path
        )
    return len(rows)


def _csv_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _arrow_column(values: list[Any]) -> pa.Array:
    """One typed Parquet column: the values' common type, else their JSON text."""
    present = [v for v in values if v is not None]
    for kind, arrow in (
        (bool, pa.bool_()),
        (int, pa.int64()),
        (float, pa.float64()),
        (str, pa.string()),
    ):
        if present and all(type(v) is kind for v in present):
            if arrow == pa.int64() and not all(-(2**63) <= v < 2**63 for v in present):
                break
            return pa.array(values, arrow)
    return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())


def _ingest_holds(tmp: Path, fmt: str, rows: list[dict[str, Any]], mapping: Any) -> None:
    path = tmp / f"in.{fmt}"
    records = _write(path, fmt, rows)
    bench = forensics.open(":memory:")
    try:
        try:
            summary = bench.ingest(path, mapping=mapping, errors="collect")
        except forensics.ForensicsError:
            return  # said what to fix: fine
        (f,) = summary.files
        assert f.status in ("ingested", "empty", "refused"), f
        assert f.rows_read == f.accepted + f.rejected_total + f.duplicates
        counts = bench.counts()
        assert counts["requests"] == f.accepted
        assert counts["rejected_rows"] == f.rejected_total
        if f.status == "ingested" and fmt != "parquet":
            assert f.rows_read == records, (f.rows_read, records)
    finally:
        bench.close()


@settings(
    max_examples=INGEST_CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fmt=st.sampled_from(["jsonl", "json", "csv", "parquet"]),
    rows=_rows(),
    mapping=st.none() | _mappings,
)
def test_any_rows_and_mapping_ingest_or_say_what_to_fix(tmp_path_factory, fmt, rows, mapping):
    tmp = tmp_path_factory.mktemp("fuzz")
    loaded = None
    if mapping is not None:
        toml = tmp / "m.toml"
        toml.write_text(_toml(mapping), encoding="utf-8")
        try:
            loaded = Mapping.load(toml)
        except forensics.ForensicsError:
            return
    _ingest_holds(tmp, fmt, rows, loaded)


@settings(max_examples=MAPPING_CASES, deadline=None)
@given(text=st.text(max_size=200) | _mappings.map(_toml))
def test_any_mapping_file_loads_or_says_what_is_wrong(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "m.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        mapping = Mapping.load(path)
    except forensics.ForensicsError as exc:
        error = str(exc)
    else:
        error = None
    if error is not None:
        assert error.startswith(f"{path}: "), error  # names the file
        return
    for signal in mapping.signals:
        assert signal.value is None or math.isfinite(signal.value)
