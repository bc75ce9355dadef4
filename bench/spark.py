"""Spark benchmark: ingest + cubes + signatures on Spark local[1] and local[2] beside DuckDB.

Generates (once, cached in bench/out/) a postmortem-2025 simulation of N rows,
split into PARTS Parquet files (the Spark path spreads files over its tasks),
then times, each in a process of its own, on the same files:

  duckdb:    forensics.open(db).ingest(files) and the cube refresh, then wb.signatures()
  local[c]:  forensics ingest --engine spark (the table, then the cache: registry,
             sample, dimensions and cubes counted by Spark), then
             forensics.open(cache, spark=session).signatures() (final counts in Spark)

and prints seconds per phase (Spark's include starting its JVM), rows per
second per core of ingest + cubes, and the size of the database or cache.
Usage:

    python bench/spark.py [--rows 1000000] [--parts 8] [--cores 1,2] [--no-duckdb] [--code DIR]
                          [--keep DIR]   # then bench/queries.py --db DIR/<file> on each

``--code DIR`` imports forensics from another checkout (e.g. ``git archive C forensics``
unpacked in DIR) for the Spark runs too: each Spark run is then made twice, this
checkout's and DIR's, alternating, on the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cache import simulation_dir  # bench/cache.py

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
from pathlib import Path
mode, out, *files = sys.argv[1:]
t0 = time.perf_counter()
import forensics
seconds = {}
if mode == "duckdb":
    from forensics.ingest import ingest_files
    from forensics.queries import refresh_cubes
    db = Path(out) / "duck.duckdb"
    with forensics.open(db) as wb:
        ingest_files(wb.db, files, progress=False)
        t1 = time.perf_counter()
        refresh_cubes(wb.db)
        t2 = time.perf_counter()
        found = wb.signatures()
        t3 = time.perf_counter()
    seconds = {"start": 0.0, "ingest": t1 - t0, "cubes": t2 - t1, "signatures": t3 - t2}
    size = db.stat().st_size
else:
    from forensics.spark import SparkSettings, ingest_with_spark, spark_session
    from forensics.spark import cache as cache_module
    from forensics.spark.ingest import SparkTable
    cores = int(mode)
    spark = spark_session(SparkSettings(f"local[{cores}]", {
        "spark.sql.shuffle.partitions": str(2 * cores),
        "spark.sql.warehouse.dir": str(Path(out) / "warehouse"),
        "spark.driver.memory": "2g",
    }))
    t1 = time.perf_counter()
    cache = Path(out) / "cache.duckdb"
    # The cache fill (registry, sample, dimensions, cubes) is timed apart from the table.
    fill = cache_module.fill_cache
    marks = {}
    def timed_fill(*a, **k):
        marks["table"] = time.perf_counter()
        return fill(*a, **k)
    import forensics.spark as package
    package.fill_cache = timed_fill
    ingest_with_spark(files, table="bench", cache=cache, spark=spark)
    t2 = time.perf_counter()
    with forensics.open(cache, spark=spark) as wb:
        found = wb.signatures()
    t3 = time.perf_counter()
    seconds = {"start": t1 - t0, "ingest": marks["table"] - t1, "cubes": t2 - marks["table"],
               "signatures": t3 - t2}
    size = cache.stat().st_size
    spark.stop()
print(json.dumps({"seconds": seconds, "size": size, "signatures": len(found),
                  "described": [s.describe() for s in found]}))
"""


def _parts(sim: Path, parts: int) -> list[Path]:
    """The simulation's requests split into ``parts`` Parquet files by row, written once."""
    folder = sim / f"parts-{parts}"
    files = [folder / f"part-{i:03d}.parquet" for i in range(parts)]
    if all(f.exists() for f in files):
        return files
    import duckdb

    folder.mkdir(exist_ok=True)
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(sim / "requests.parquet")})
    rows = n.fetchone()[0]
    per = -(-rows // parts)
    for i, f in enumerate(files):
        con.execute(
            f"COPY (SELECT * FROM read_parquet($p) LIMIT {per} OFFSET {i * per}) TO '{f}' "
            "(FORMAT parquet)",
            {"p": str(sim / "requests.parquet")},
        )
    return files


def _run(mode: str, files: list[Path], code: Path = ROOT, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as out:
        env = {**os.environ, "PYTHONPATH": str(code)}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, mode, out, *map(str, files)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            causes = [
                line for line in done.stderr.splitlines() if "Error" in line or "Exception" in line
            ]
            raise SystemExit(f"{mode} failed:\n" + "\n".join(causes[:20]) + done.stderr[-2000:])
        if keep is not None:  # the database or cache, for bench/queries.py and dashboard.py --db
            keep.mkdir(parents=True, exist_ok=True)
            made = "duck.duckdb" if mode == "duckdb" else "cache.duckdb"
            name = "duckdb.duckdb" if mode == "duckdb" else f"spark-local{mode}-cache.duckdb"
            shutil.copy(Path(out) / made, keep / name)
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument("--code", type=Path, help="also time the Spark runs with this checkout")
    parser.add_argument(
        "--keep", type=Path, help="copy each engine's database (DuckDB) or cache (Spark) here"
    )
    args = parser.parse_args()
    sim = simulation_dir("postmortem-2025", args.seed, args.rows)
    if not (sim / "requests.parquet").exists():
        from forensics.simulate import simulate

        t = time.perf_counter()
        simulate("postmortem-2025", rows=args.rows, seed=args.seed, out=sim)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s -> {sim}")
    files = _parts(sim, args.parts)
    codes = [("", ROOT)] + ([(f" {args.code.name}", args.code.resolve())] if args.code else [])
    modes = [("duckdb", "", ROOT)] if not args.no_duckdb else []
    modes += [(c, label, code) for c in args.cores.split(",") for label, code in codes]
    print(f"{args.rows:,} rows in {len(files)} files; load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'engine':10} {'start s':>8} {'ingest s':>9} {'cubes s':>8} {'sigs s':>7} "
        f"{'rows/s/core':>12} {'size MB':>8} sigs"
    )
    results = {}
    for mode, label, code in modes:
        r = _run(mode, files, code, keep=args.keep if not label else None)
        results[mode + label] = r
        s = r["seconds"]
        cores = (os.cpu_count() or 1) if mode == "duckdb" else int(mode)  # DuckDB: every core
        rate = args.rows / (s["ingest"] + s["cubes"]) / cores
        name = ("duckdb" if mode == "duckdb" else f"local[{mode}]") + label
        print(
            f"{name:10} {s['start']:8.1f} {s['ingest']:9.1f} {s['cubes']:8.1f} "
            f"{s['signatures']:7.1f} {rate:12,.0f} {r['size'] / 1e6:8.1f} {r['signatures']}"
        )
    described = {m: r["described"] for m, r in results.items()}
    same = len({json.dumps(d) for d in described.values()}) == 1
    print(f"same signatures (described) on every engine: {same}")


if __name__ == "__main__":
    main()
