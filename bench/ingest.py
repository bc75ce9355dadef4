"""Ingest benchmark: forensics ingest vs a raw DuckDB CREATE TABLE AS, same file, same run.

Generates (once, cached in bench/out/) a postmortem-2025 simulation of N rows
and, for the text formats, the same rows as JSON lines and CSV (written by
DuckDB from the Parquet file). Then, per format, times in separate processes,
so that each one's peak memory (``VmHWM`` of that process; ``ru_maxrss`` would carry
over the forking process's peak across ``exec``) is its own:

  (a) raw:       CREATE TABLE requests AS SELECT * FROM read_parquet / read_json / read_csv
  (b) forensics: forensics.open(db).ingest(file)   (validation, signals, quarantine)
                 and the cube refresh that follows it

and prints seconds, the CPU time of (b)'s process (ingest and cube, user + system, every
thread: steadier than seconds on a shared machine), peak RSS, the ratio b/a, and whether
the peak RSS of (b) is within the memory target: DuckDB's memory limit
(FORENSICS_MEMORY_LIMIT, default 1500MB) + 500 MB.

Format ``otlp`` is the same rows as OTLP JSON traces (one GenAI span per request,
made by the OpenTelemetry SDK, ``forensics.simulate.otlp``; written once, slowly:
about a millisecond per span); it has no raw baseline (DuckDB has no OTLP reader),
so it is compared with forensics' own Parquet ingest of the same rows (run
``--formats parquet,otlp``). Usage:

    python bench/ingest.py [--rows 1000000] [--formats parquet,jsonl,csv,otlp] [--repeat 1]
                           [--code CHECKOUT]

``--code`` imports forensics from another checkout (e.g. a worktree of the
commit before a change) for a before/after comparison on the same files.
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

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
mode, fmt, path, db = sys.argv[1:5]
t0 = time.perf_counter()
if mode == "raw":
    import duckdb
    con = duckdb.connect(db)
    reader = {"parquet": "read_parquet", "jsonl": "read_json", "csv": "read_csv"}[fmt]
    con.execute(f"CREATE TABLE requests AS SELECT * FROM {reader}($p)", {"p": path})
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
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
usage = resource.getrusage(resource.RUSAGE_SELF)
seconds["cpu"] = usage.ru_utime + usage.ru_stime
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "forensics": sys.modules.get("forensics").__file__ if "forensics" in sys.modules else None}))
"""

SUFFIX = {"parquet": "parquet", "jsonl": "jsonl", "csv": "csv", "otlp": "otlp.jsonl"}
COPY = {"jsonl": "(FORMAT json)", "csv": "(FORMAT csv, HEADER)"}


def _limit_mb() -> float:
    """DuckDB's memory limit the ingest runs under, in MB (decimal, as DuckDB reads 'MB')."""
    text = os.environ.get("FORENSICS_MEMORY_LIMIT", "1500MB").strip().upper()
    units = {"KB": 1e-3, "MB": 1.0, "GB": 1e3, "KIB": 1.024e-3, "MIB": 1.048576, "GIB": 1073.741824}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text) / 1e6


def _fresh(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)


def _input(sim: Path, fmt: str) -> Path:
    """The simulation's requests in ``fmt``, written from its Parquet file once."""
    path = sim / f"requests.{SUFFIX[fmt]}"
    if not path.exists() and fmt == "otlp":
        import pyarrow.parquet as pq

        from forensics.simulate.otlp import write_otlp

        t = time.perf_counter()
        parquet = pq.ParquetFile(sim / "requests.parquet")
        rows = (row for batch in parquet.iter_batches(65_536) for row in batch.to_pylist())
        partial = path.with_name(path.name + ".partial")
        spans = write_otlp(rows, partial)
        partial.replace(path)
        print(f"wrote {spans:,} spans to {path} in {time.perf_counter() - t:.1f} s")
    if not path.exists():
        import duckdb

        t = time.perf_counter()
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute(
            f"COPY (SELECT * FROM read_parquet($src)) TO '{path}' {COPY[fmt]}",
            {"src": str(sim / "requests.parquet")},
        )
        con.close()
        print(f"wrote {path} in {time.perf_counter() - t:.1f} s")
    return path


def _run(mode: str, fmt: str, data: Path, db: Path, code: Path) -> dict:
    _fresh(db)
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, fmt, str(data), str(db)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=code,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--formats", default="parquet,jsonl,csv")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to import forensics from")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw DuckDB baseline")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    sim = simulation_dir("postmortem-2025", args.seed, args.rows)
    if not (sim / "requests.parquet").exists():
        from forensics.simulate import simulate

        t = time.perf_counter()
        simulate("postmortem-2025", rows=args.rows, seed=args.seed, out=sim)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s -> {sim}")
    target = _limit_mb() + 500
    print(f"forensics from {args.code.resolve()}; memory limit {_limit_mb():.0f} MB")
    lines = []
    medians: dict[str, tuple[float, float]] = {}
    for fmt in args.formats.split(","):
        data = _input(sim, fmt)
        raw, ours, cube, cpu, rss_raw, rss_ours = [], [], [], [], [], []
        for i in range(args.repeat):
            if not args.no_raw and fmt != "otlp":
                a = _run("raw", fmt, data, OUT / "raw.duckdb", args.code)
                raw.append(a["seconds"]["load"])
                rss_raw.append(a["peak_rss_mb"])
            b = _run("forensics", fmt, data, OUT / "forensics.duckdb", args.code)
            ours.append(b["seconds"]["load"])
            cube.append(b["seconds"]["cube"])
            cpu.append(b["seconds"]["cpu"])
            rss_ours.append(b["peak_rss_mb"])
            print(
                f"{fmt} run {i + 1}: "
                + (f"raw {raw[-1]:.2f} s ({rss_raw[-1]:.0f} MB), " if raw else "")
                + f"forensics ingest {ours[-1]:.2f} s + cube {cube[-1]:.2f} s "
                f"({rss_ours[-1]:.0f} MB, CPU {cpu[-1]:.1f} s); load average {os.getloadavg()[0]:.2f}"
            )
        m_ours, peak = statistics.median(ours), max(rss_ours)
        size_mb = data.stat().st_size / 1e6
        line = (
            f"{fmt:8} {size_mb:6.0f} MB  ingest {m_ours:7.2f} s  cube {statistics.median(cube):5.2f} s"
            f"  CPU {statistics.median(cpu):6.1f} s"
            f"  peak RSS {peak:6.0f} MB ({'within' if peak <= target else 'OVER'} {target:.0f})"
        )
        if raw:
            m_raw = statistics.median(raw)
            line += f"  raw {m_raw:6.2f} s {max(rss_raw):5.0f} MB  ratio {m_ours / m_raw:5.2f}"
        lines.append(line)
        medians[fmt] = (m_ours, peak)
    if "otlp" in medians and "parquet" in medians:
        (t_otlp, m_otlp), (t_pq, m_pq) = medians["otlp"], medians["parquet"]
        lines.append(
            f"otlp vs parquet, same rows: ingest {t_otlp / t_pq:.2f}x the time, "
            f"peak RSS {m_otlp:.0f} vs {m_pq:.0f} MB"
        )
    print(f"\n{args.rows:,} rows (medians of {args.repeat}):")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
