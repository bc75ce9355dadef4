"""Readers: what each file format's bad bytes become (refusals and row-level reasons)."""

import errno
import gzip
import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensics
from forensics.errors import InternalError
from tests.conftest import request_row


def _parquet(tmp_path, n=2000, name="in.parquet"):
    path = tmp_path / name
    pl.DataFrame([request_row(i) for i in range(n)]).write_parquet(path, compression="snappy")
    return path


# -- Parquet: refuse bad bytes, and only bad bytes ------------------------------------


def test_a_corrupt_parquet_page_refuses_the_file(wb, tmp_path):
    """The footer is fine (the file opens, rows are counted); a data page is not."""
    path = _parquet(tmp_path)
    offset = pq.ParquetFile(path).metadata.row_group(0).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset + 40 : offset + 56] = b"\xa5" * 16
    path.write_bytes(bytes(data))
    (f,) = wb.ingest(path, errors="collect").files
    assert f.status == "refused", f.message
    assert "cannot read as Parquet" in f.message
    assert "complete Parquet file" in f.message
    assert wb.counts()["requests"] == wb.counts()["ingested_files"] == 0


def test_out_of_memory_is_not_called_a_corrupt_file(tmp_path, fail_statements):
    path = _parquet(tmp_path)
    fail_statements("DESCRIBE SELECT * FROM read_parquet", duckdb.OutOfMemoryException("oom"))
    bench = forensics.open(tmp_path / "oom.duckdb")
    with pytest.raises(InternalError, match="OutOfMemoryException: oom") as info:
        bench.ingest(path)
    (f,) = info.value.summary.files
    assert f.status == "failed"
    assert "Parquet" not in f.message.replace(str(path), "")
    bench.close()


def test_a_file_that_cannot_be_read_is_refused_with_the_reason(wb, tmp_path, monkeypatch):
    """Permissions cannot deny root, so the OSError is injected where the file is opened."""
    path = _parquet(tmp_path)
    original = Path.open

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    (f,) = wb.ingest(path, errors="collect").files
    assert f.status == "refused"
    assert f.message == (
        f"{path}: cannot read the file (Permission denied); nothing from this file was "
        "written. Check that it exists and that you may read it."
    )


# -- CSV: a stray quote never swallows the rows after it ------------------------------

_ROWS = 1000


def _csv_lines(delimiter, multiline=False):
    """Header + 1,000 rows; every 50th quotes its pool (which holds the delimiter)."""
    lines = [delimiter.join(["request_id", "ts", "model", "platform", "routing_pool"])]
    for i in range(_ROWS):
        pool = f'"pool{delimiter} {i}"' if i % 50 == 7 else "p"
        if multiline and i == 10:
            pool = '"a pool\nover two lines"'
        lines.append(delimiter.join([f"r{i}", "2025-08-01T00:00:00Z", "m", "gpu", pool]))
    return lines


def _write_csv(path, lines):
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


_SUFFIXES = [".csv", ".tsv", ".csv.gz", ".tsv.gz"]


@pytest.mark.parametrize("suffix", _SUFFIXES)
def test_well_quoted_csv_reads_every_record(wb, tmp_path, suffix):
    delimiter = "\t" if ".tsv" in suffix else ","
    path = _write_csv(tmp_path / f"in{suffix}", _csv_lines(delimiter, multiline=True))
    (f,) = wb.ingest(path).files
    assert (f.rows_read, f.accepted) == (_ROWS, _ROWS)
    pools = wb.sql("SELECT routing_pool FROM requests WHERE request_id = 'r10'")["routing_pool"]
    assert pools.to_list() == ["a pool\nover two lines"]


@pytest.mark.parametrize("suffix", _SUFFIXES)
@pytest.mark.parametrize(
    ("line", "field"),
    [(3, 0), (3, 1), (3, 4), (4, 2), (500, 3), (_ROWS + 1, 4), (1, 2)],
    ids=["l3-first", "l3-ts", "l3-last", "l4-model", "l500", "last-line", "header"],
)
def test_a_stray_quote_refuses_the_file_at_its_line(wb, tmp_path, suffix, line, field):
    """One unbalanced opening quote: the file is refused naming the line, never half-read."""
    delimiter = "\t" if ".tsv" in suffix else ","
    lines = _csv_lines(delimiter)
    fields = lines[line - 1].split(delimiter)
    fields[field] = '"' + fields[field]
    lines[line - 1] = delimiter.join(fields)
    path = _write_csv(tmp_path / f"in{suffix}", lines)
    (f,) = wb.ingest(path, errors="collect").files
    assert f.status == "refused", (f.rows_read, f.accepted, f.rejected)
    assert f"{path}: line {line}" in f.message
    assert "unbalanced quote" in f.message
    assert f"Fix the quoting on line {line}" in f.message
    assert wb.counts()["requests"] == wb.counts()["rejected_rows"] == 0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    line=st.integers(1, 61),
    field=st.integers(0, 4),
    delimiter=st.sampled_from([",", "\t", ";", "|"]),
)
def test_a_stray_quote_anywhere_refuses_the_file(tmp_path_factory, line, field, delimiter):
    """Any line, any field, any delimiter: refused at the stray quote's line, nothing kept."""
    lines = _csv_lines(delimiter, multiline=False)[:61]
    fields = lines[line - 1].split(delimiter)
    fields[field] = '"' + fields[field]
    lines[line - 1] = delimiter.join(fields)
    tmp = tmp_path_factory.mktemp("quote")
    path = _write_csv(tmp / "in.csv", lines)
    with forensics.open(":memory:") as bench:
        (f,) = bench.ingest(path, errors="collect").files
        assert f.status == "refused", (lines[line - 1], f.rows_read, f.accepted, f.rejected)
        assert f"{path}: line {line}" in f.message
        assert bench.counts()["requests"] == 0


# -- the user's columns never collide with forensics' own ----------------------------

_INTERNAL_LOOKING = {
    # a column of the user's -> where its values are kept in requests
    "_row": "row_input_2",
    "_error": "error_input",
    "_raw": "raw_input",
    "_problem": "problem_input",
    "_row_out": "row_out_input",
    "_v": "v_input",
    "file_row_number": "file_row_number",
    "row_input": "row_input",
    "degraded": "degraded_input",
}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_columns_named_like_forensics_own_keep_their_values(wb, tmp_path, fmt):
    rows = [request_row(i, **{name: f"{name}-{i}" for name in _INTERNAL_LOOKING}) for i in range(5)]
    rows[2]["ts"] = "not a time"  # one rejected row, to take the quarantine path too
    frame = pl.DataFrame(rows)
    path = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (f,) = wb.ingest(path).files
    assert (f.rows_read, f.accepted, f.rejected) == (5, 4, {"bad_timestamp": 1})
    kept = wb.sql(
        "SELECT request_id, "
        + ", ".join(f'"{c}"' for c in _INTERNAL_LOOKING.values())
        + " FROM requests ORDER BY request_id"
    )
    for name, target in _INTERNAL_LOOKING.items():
        assert kept[target].to_list() == [f"{name}-{i}" for i in (0, 1, 3, 4)], name
    (rejected,) = wb.rejected().to_dicts()
    line = 3 if fmt == "parquet" else 4 if fmt == "csv" else 3
    assert (rejected["row_number"], rejected["column"]) == (line, "ts")
    raw = json.loads(rejected["raw"])
    assert {name: raw[name] for name in _INTERNAL_LOOKING} == {
        name: f"{name}-2" for name in _INTERNAL_LOOKING
    }
    renamed = [n for n in f.notes if "clashes with a forensics column" in n]
    assert len(renamed) == len([n for n, t in _INTERNAL_LOOKING.items() if n != t])


# -- JSON arrays ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '[{"request_id": "a", "deep": ' + "[" * 5000 + "]" * 5000 + "}]",
    ],
    ids=["array-depth-100000", "one-value-depth-5000"],
)
def test_a_deeply_nested_json_array_is_refused_clearly(wb, tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    (f,) = wb.ingest(path, errors="collect").files
    assert f.status == "refused"
    assert f.message.startswith(f"{path}: the JSON array is nested too deeply to read")
    assert "(.jsonl)" in f.message


# -- batches -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_file_read_in_many_batches_is_read_as_one(wb, tmp_path, monkeypatch, fmt):
    """Keys first seen in a later batch, even one named like forensics' own, keep their values."""
    from forensics import readers

    monkeypatch.setattr(readers, "_BATCH_ROWS", 2)
    rows = [request_row(i) for i in range(7)]
    rows[3]["late"] = "late-3"
    rows[5]["_row"] = "own-5"
    rows[6]["ts"] = "not a time"
    path = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        pl.DataFrame(rows).write_csv(path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (f,) = wb.ingest(path).files
    assert (f.rows_read, f.accepted, f.rejected) == (7, 6, {"bad_timestamp": 1})
    got = wb.sql("SELECT _source_row, late, row_input FROM requests ORDER BY _source_row").rows()
    first = 1 if fmt == "jsonl" else 2
    assert got == [
        (first + i, "late-3" if i == 3 else None, "own-5" if i == 5 else None) for i in range(6)
    ]
    (rejected,) = wb.rejected().to_dicts()
    assert rejected["row_number"] == first + 6


def test_a_json_array_is_read_element_by_element(tmp_path, monkeypatch):
    """Read through a window smaller than one element, an array reads as its JSON lines do."""
    from forensics import readers

    monkeypatch.setattr(readers, "_ARRAY_CHUNK", 16)
    rows = [request_row(i, note="x" * 40, nested={"a": [1, "]"]}) for i in range(5)]
    rows[2]["ts"] = "not a time"
    array = tmp_path / "in.json"
    array.write_text(" [\n" + " ,\n".join(json.dumps(r) for r in rows) + "\n] \n")
    lines = tmp_path / "in.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = []
    for path in (array, lines):
        with forensics.open(tmp_path / f"{path.suffix}.duckdb") as bench:
            (f,) = bench.ingest(path).files
            assert (f.rows_read, f.accepted, f.rejected) == (5, 4, {"bad_timestamp": 1})
            got.append(bench.sql("SELECT request_id, note, nested FROM requests ORDER BY 1").rows())
    assert got[0] == got[1]
    assert len(got[0]) == 4


def test_a_json_array_broken_late_is_refused_whole(wb, tmp_path, monkeypatch):
    from forensics import readers

    monkeypatch.setattr(readers, "_ARRAY_CHUNK", 16)
    path = tmp_path / "in.json"
    path.write_text("[" + ", ".join(json.dumps(request_row(i)) for i in range(4)) + ", {oops}]")
    (f,) = wb.ingest(path, errors="collect").files
    assert f.status == "refused"
    assert f.message.startswith(f"{path}: not a valid JSON array (element 5: ")
    assert wb.db.meta("privacy") is None
    assert "requests" not in wb.db.tables() or wb.counts()["requests"] == 0
