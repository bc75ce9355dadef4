"""Shared fixtures: tiny databases and input files built in tmp_path."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import settings

import forensics

REPO = Path(__file__).resolve().parent.parent
BAD_INPUTS = Path(__file__).resolve().parent / "bad_inputs"


settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
"""Property tests draw new cases on every run on a developer's machine (``make fuzz``
draws more); in CI (``CI`` set, as ``.ci/run`` does) they draw a fixed sequence, so that
a red run is a regression, reproducible from the same commit, not a new draw."""


SALT = "pepper-and-salt-for-tests"
"""A privacy-mode salt long enough to be accepted (16 characters at least)."""


SEARCH_FLOAT_REL = 1e-9
"""Two runs of the same search agree on every float to this relative tolerance, not to
the bit: DuckDB sums the expected counts (DOUBLE) in parallel, in an order that
depends on thread timing, and the GLM fitted on them inherits the last-bit noise."""


def same_signatures(a: Any, b: Any) -> bool:
    """Whether two signature lists (as ``to_dict()`` gives them) are the same search result.

    Everything must be equal except floats, which may differ by ``SEARCH_FLOAT_REL``.
    """
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=SEARCH_FLOAT_REL, abs=0.0, nan_ok=True)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_signatures(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_signatures(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def request_row(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid request row; override any field."""
    row: dict[str, Any] = {
        "request_id": f"r{i:05d}",
        "ts": f"2025-08-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
        "model": ["m-a", "m-b"][i % 2],
        "platform": ["tpu", "gpu", "trainium"][i % 3],
        "routing_pool": "standard",
        "prompt_tokens": 100 + i,
        "temperature": 0.0 if i % 4 == 0 else 0.7,
        "max_token_rank": 1 + (i % 7 == 0),
        "eval_score": 0.9,
    }
    row.update(overrides)
    return row


@pytest.fixture
def wb(tmp_path: Path) -> Iterator[forensics.Workbench]:
    """A fresh workbench on a real DuckDB file in tmp_path."""
    bench = forensics.open(tmp_path / "test.duckdb")
    yield bench
    bench.close()


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def write(rows: list[dict[str, Any]], name: str = "in.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_parquet(tmp_path: Path) -> Callable[..., Path]:
    def write(rows: list[dict[str, Any]] | pl.DataFrame, name: str = "in.parquet") -> Path:
        path = tmp_path / name
        frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
        frame.write_parquet(path)
        return path

    return write


@pytest.fixture
def miscount(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ingest count one row more than a JSON file holds (a bug, injected)."""
    from forensics import ingest

    original = ingest.open_json

    def one_row_too_many(*args: Any, **kwargs: Any) -> Any:
        source = original(*args, **kwargs)
        source.rows_read += 1
        return source

    monkeypatch.setattr(ingest, "open_json", one_row_too_many)


class _FailingConnection:
    """A DuckDB connection whose statements starting with ``prefix`` raise ``error``."""

    def __init__(self, con: Any, prefix: str, error: Exception) -> None:
        self._con, self._prefix, self._error = con, prefix, error

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.lstrip().startswith(self._prefix):
            raise self._error
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@pytest.fixture
def fail_statements(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Exception], None]:
    """``fail_statements(prefix, error)``: connections opened from now on raise ``error``
    (as DuckDB would) on statements starting with ``prefix``: a failure injected at the
    DuckDB boundary, for failures a test cannot cause for real (out of memory, ...)."""

    def install(prefix: str, error: Exception) -> None:
        connect = duckdb.connect
        monkeypatch.setattr(
            duckdb, "connect", lambda *a, **k: _FailingConnection(connect(*a, **k), prefix, error)
        )

    return install


SAMPLE = REPO / "data_samples" / "postmortem-2025"


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped sample (requests and events) loaded once per test session, as the demo does."""
    return forensics.demo_database(out=tmp_path_factory.mktemp("sample") / "sample.duckdb")


@pytest.fixture(scope="session")
def sample_truth() -> dict[str, Any]:
    """The ground truth of the shipped sample."""
    return json.loads((SAMPLE / "truth.json").read_text())
