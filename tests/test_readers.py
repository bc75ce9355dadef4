"""Readers: what each file format's bad bytes become (refusals and row-level reasons)."""

import errno
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

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
