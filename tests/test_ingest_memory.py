"""Peak memory of an ingest on the text path: the configured limit + 500 MB at most.

DuckDB keeps to ``FORENSICS_MEMORY_LIMIT``; what it does not count (Python, the
reader's own DuckDB, Arrow batches, the interpreter and its libraries) must stay
within 500 MB more whatever the file's size. Each ingest runs in a child
process, so that its peak resident set is its own: ``VmHWM`` of
``/proc/self/status``, not ``ru_maxrss``, which Linux carries over ``exec`` from
the forking process (a pytest process grown by earlier tests would be counted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO

LIMIT_MB = 100
"""A small limit, so that a file of modest size is many times larger than it."""

HEADROOM_MB = 500
"""What the target allows beyond the limit."""

_CHILD = r"""
import json, resource, sys
import forensics
with forensics.open(sys.argv[2]) as wb:
    (f,) = wb.ingest(sys.argv[1]).files
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"accepted": f.accepted, "peak_mb": peak}))
"""

_ROWS = """
SELECT
    'r' || lpad(i::VARCHAR, 7, '0') AS request_id,
    strftime(TIMESTAMP '2025-08-01' + to_seconds(i * 7), '%Y-%m-%dT%H:%M:%SZ') AS ts,
    ['m-a', 'm-b', 'm-c'][i % 3 + 1] AS model,
    ['tpu', 'gpu'][i % 2 + 1] AS platform,
    'pool-' || (i % 5)::VARCHAR AS routing_pool,
    'user-' || (i % 997)::VARCHAR AS user_id,
    100 + i % 50 AS prompt_tokens,
    'Answer ' || i::VARCHAR || ': ' || repeat('plain words in a sentence. ', 50) AS response_text
FROM range($n) AS t(i)
"""


def _write(path: Path, fmt: str, rows: int) -> Path:
    options = "(FORMAT json)" if fmt == "jsonl" else "(FORMAT csv, HEADER)"
    con = duckdb.connect()
    con.execute(f"COPY ({_ROWS}) TO '{path}' {options}", {"n": rows})
    con.close()
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_text_file_many_times_the_memory_limit_peaks_within_it_plus_500_mb(tmp_path, fmt):
    rows = 150_000
    path = _write(tmp_path / f"in.{fmt}", fmt, rows)
    assert path.stat().st_size > 2 * LIMIT_MB * 1e6
    env = {**os.environ, "FORENSICS_MEMORY_LIMIT": f"{LIMIT_MB}MB", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(tmp_path / "t.duckdb")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["accepted"] == rows
    assert got["peak_mb"] <= LIMIT_MB + HEADROOM_MB, got
