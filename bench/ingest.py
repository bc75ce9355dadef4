"""Ingest benchmark: forensics ingest vs a raw DuckDB CREATE TABLE AS, same file, same run.

Generates (once, cached in bench/out/) a postmortem-2025 simulation of N rows,
then times in separate processes, so that each one's peak memory is its own:

  (a) raw:       CREATE TABLE requests AS SELECT * FROM read_parquet(file)
  (b) forensics: forensics.open(db).ingest(file)   (validation, signals, quarantine)
                 and the cube refresh that follows it

and prints seconds, the ratio b/a and peak RSS. With ``--before DIR`` it also times
(c), forensics ingest with the ``forensics`` package of another checkout (e.g. the
commit before a change, from ``git archive``), interleaved with (a) and (b) so that
load from elsewhere hits all three alike. Usage:

    python bench/ingest.py [--rows 10000000] [--repeat 3] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cache import OUT, simulation_dir  # bench/cache.py

CHILD = r"""
import json, resource, sys, time
mode, path, db = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode == "raw":
    import duckdb
    con = duckdb.connect(db)
    con.execute("CREATE TABLE requests AS SELECT * FROM read_parquet($p)", {"p": path})
    con.close()
    seconds = {"load": time.perf_counter() - t0}
else:
    import forensics
    from forensics.ingest import ingest_files
    from forensics.queries import refresh_cubes
    wb = forensics.open(db)
    ingest_files(wb.db, [path], progress=False)
    t1 = time.perf_counter()
    refresh_cubes(wb.db)
    wb.close()
    seconds = {"load": t1 - t0, "cube": time.perf_counter() - t1}
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def _fresh(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)


def _run(mode: str, data: Path, db: Path, code: Path | None = None) -> dict:
    _fresh(db)
    env = None
    if code is not None:
        env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(data), str(db)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--before", type=Path, default=None, help="A checkout whose forensics is timed too."
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    sim = simulation_dir("postmortem-2025", args.seed, args.rows)
    data = sim / "requests.parquet"
    if not data.exists():
        from forensics.simulate import simulate

        t = time.perf_counter()
        simulate("postmortem-2025", rows=args.rows, seed=args.seed, out=sim)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s -> {data}")
    size_mb = data.stat().st_size / 1e6
    raw, ours, cube, before = [], [], [], []
    cpu_ours, cpu_before = [], []
    rss_raw, rss_ours = [], []
    for i in range(args.repeat):
        a = _run("raw", data, OUT / "raw.duckdb")
        b = _run("forensics", data, OUT / "forensics.duckdb")
        cpu_ours.append(b["cpu"])
        if args.before is not None:
            c = _run("forensics", data, OUT / "before.duckdb", code=args.before)
            before.append(c["seconds"]["load"])
            cpu_before.append(c["cpu"])
            print(
                f"run {i + 1}: ingest with {args.before}: {before[-1]:.2f} s "
                f"(+ cube; CPU {cpu_before[-1]:.1f} s)"
            )
        raw.append(a["seconds"]["load"])
        ours.append(b["seconds"]["load"])
        cube.append(b["seconds"]["cube"])
        rss_raw.append(a["peak_rss_mb"])
        rss_ours.append(b["peak_rss_mb"])
        print(
            f"run {i + 1}: raw CTAS {raw[-1]:.2f} s ({rss_raw[-1]:.0f} MB), forensics ingest "
            f"{ours[-1]:.2f} s + cube {cube[-1]:.2f} s ({rss_ours[-1]:.0f} MB; CPU of ingest + "
            f"cube {cpu_ours[-1]:.1f} s)"
        )
    m_raw, m_ours, m_cube = statistics.median(raw), statistics.median(ours), statistics.median(cube)
    print(f"\nfile: {data} ({args.rows:,} rows, {size_mb:.0f} MB)")
    print(f"median raw CTAS           {m_raw:7.2f} s   peak RSS {max(rss_raw):6.0f} MB")
    print(f"median forensics ingest   {m_ours:7.2f} s   peak RSS {max(rss_ours):6.0f} MB")
    print(f"median cube refresh       {m_cube:7.2f} s")
    print(f"ratio ingest / raw        {m_ours / m_raw:7.2f}   (target <= 1.5)")
    print(f"ratio (ingest+cube) / raw {(m_ours + m_cube) / m_raw:7.2f}")
    if before:
        m_before = statistics.median(before)
        print(
            f"median ingest, {args.before}: {m_before:.2f} s (ratio to raw {m_before / m_raw:.2f})"
        )
    print(f"peak RSS target <= 2048 MB: {'met' if max(rss_ours) <= 2048 else 'MISSED'}")


if __name__ == "__main__":
    main()
