"""Time grain benchmark: the signature search at the minute vs at the hour, same data.

Generates request rows with numpy (no text, so ingest is quick): ``--rows``
requests over ``--days`` days, uniform seconds, four dimensions (region,
pool, client, model), one signal column with a per-slice base rate and one
12-minute incident (region ap, pool p3, 14:23-14:35 on the second day, at 25%).
At the default 1,000,000 rows over 3 days that is about 230 requests a minute,
so the database's grain is the minute (``forensics.grain``). Ingests once into
``bench/out/grain/``, then times ``wb.signatures()`` at the database's grain and
with ``grain="hour"``, alternating, ``--repeat`` times each, and prints the
median seconds, the ratio and the window each found.

    nice timeout 900 python bench/grain.py [--rows 1000000] [--days 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

import forensics

OUT = Path(__file__).parent / "out" / "grain"
T0 = datetime(2025, 3, 3, tzinfo=UTC)
ONSET = T0 + timedelta(days=1, hours=14, minutes=23)
END = ONSET + timedelta(minutes=12)
REGIONS, POOLS = ("eu", "us", "ap", "sa"), ("p1", "p2", "p3")
CLIENTS, MODELS = ("ios", "web"), ("m1", "m2", "m3")


def requests(rows: int, days: int, seed: int = 11) -> pl.DataFrame:
    """Request rows with one 12-minute incident (see the module docstring)."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, days * 86_400, rows))
    region = rng.integers(0, len(REGIONS), rows)
    pool = rng.integers(0, len(POOLS), rows)
    client = rng.integers(0, len(CLIENTS), rows)
    model = rng.integers(0, len(MODELS), rows)
    base = 0.005 + 0.003 * pool + 0.002 * client
    ts = np.datetime64(T0.replace(tzinfo=None), "ms") + (seconds * 1000).astype("timedelta64[ms]")
    onset = np.datetime64(ONSET.replace(tzinfo=None), "ms")
    end = np.datetime64(END.replace(tzinfo=None), "ms")
    hit = (region == 2) & (pool == 2) & (ts >= onset) & (ts < end)
    bad = rng.random(rows) < np.where(hit, 0.25, base)
    return pl.DataFrame(
        {
            "request_id": np.char.add("r", np.arange(rows).astype(str)),
            "ts": ts,
            "model": np.array(MODELS)[model],
            "platform": "gpu",
            "routing_pool": np.array(POOLS)[pool],
            "region": np.array(REGIONS)[region],
            "client": np.array(CLIENTS)[client],
            "errors_flag": bad,
        }
    )


def database(rows: int, days: int) -> Path:
    """The benchmark's database, built once per size."""
    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / f"grain-{rows}-{days}d.duckdb"
    if db.exists():
        return db
    data, mapping = OUT / f"grain-{rows}-{days}d.parquet", OUT / "mapping.toml"
    requests(rows, days).with_columns(pl.col("ts").dt.replace_time_zone("UTC")).write_parquet(data)
    mapping.write_text('[signals.errors]\ncolumn = "errors_flag"\n')
    with forensics.open(db) as wb:
        wb.ingest(data, mapping=mapping, progress=False)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clock = time.perf_counter()
    db = database(args.rows, args.days)
    print(f"database {db} ready in {time.perf_counter() - clock:.1f} s")
    times: dict[str, list[float]] = {"data": [], "hour": []}
    windows: dict[str, str] = {}
    with forensics.open(db, read_only=True) as wb:
        print(f"rows {args.rows:,} over {args.days} days; database grain: {wb.grain}")
        for _ in range(args.repeat):
            for label, grain in (("data", None), ("hour", "hour")):
                start = time.perf_counter()
                found = wb.signatures(signals=["errors"], grain=grain)
                times[label].append(time.perf_counter() - start)
                windows[label] = "; ".join(
                    f"{s.describe()} [{s.start:%m-%d %H:%M} -> "
                    f"{'end' if s.end is None else f'{s.end:%H:%M}'}]"
                    for s in found
                )
        data_grain = wb.grain
    fine, coarse = statistics.median(times["data"]), statistics.median(times["hour"])
    print(f"truth: region=ap & routing_pool=p3, {ONSET:%m-%d %H:%M} -> {END:%H:%M}")
    print(f"{data_grain:>6}: median {fine:.2f} s over {times['data']} -> {windows['data']}")
    print(f"{'hour':>6}: median {coarse:.2f} s over {times['hour']} -> {windows['hour']}")
    print(f"ratio {data_grain}/hour: {fine / coarse:.2f}")


if __name__ == "__main__":
    main()
