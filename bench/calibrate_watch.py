"""Calibrate the watch's threshold on bug-free data of the tuning library.

For each bug-free dataset (the three null scenarios and the ``random``
family's bug-free draws, at several sizes), simulate and ingest once, then run
the detection hour by hour exactly as a watch cycle does
(``bench/watch.py``'s ``replay_fast``: ``engine.detect`` each hour, the
newest hour advancing), recording every cycle's largest statistic and every
firing at or above a floor. For each threshold of a grid, the firings at or
above it are grouped into *episodes* (firings of any slice or signal less than
24 hours apart count once: one false problem shows on many slices and for
many hours), and counted per 30 simulated days with a 95% Poisson upper bound.
``forensics/watch/calibration.py`` reads the table (``--write``): the
threshold for a target rate is the smallest whose upper bound is half the
target or less.

Never run on the field family (``bench/watch.py null --field-seeds``): that
family measures the calibrated detector; it must not shape it.

    python bench/calibrate_watch.py [--rows 1000000 4000000] [--null-seeds 1001 1002]
                                    [--random 6] [--write]
    python bench/calibrate_watch.py --from-log --write   # the table from the runs logged
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "forensics" / "watch" / "null_table.json"
NULL_SCENARIOS = ("null-mix-shift", "null-new-language", "null-benign-deploy")
FLOOR = 6.0
"""Firings below this statistic are not recorded."""
GRID = [FLOOR + 0.5 * i for i in range(0, 69)]
"""Thresholds the table reports (6 to 40)."""
EPISODE_GAP_HOURS = 24
TAIL_SHARE = 0.1
"""The table keeps the largest statistics of this share of cycles (for p-values)."""


def bug_free_random_seeds(start: int, count: int) -> list[int]:
    """The first ``count`` seeds from ``start`` on whose random scenario has no bug."""
    from forensics.simulate import load_scenario

    out, seed = [], start
    while len(out) < count:
        if not load_scenario("random", seed=seed).bugs:
            out.append(seed)
        seed += 1
    return out


def episodes(firings: list[dict], threshold: float) -> int:
    """Groups of firings at or above ``threshold`` whose hours are under a day apart."""
    hours = sorted({f["hour"] for f in firings if f["statistic"] >= threshold})
    count, last = 0, None
    for h in hours:
        if last is None or h - last >= EPISODE_GAP_HOURS:
            count += 1
        last = h
    return count


def table(results: list[dict]) -> dict:
    """The calibration table from the runs (see the module)."""
    from watch import poisson_upper  # bench/watch.py

    days = sum(r["hours"] for r in results) / 24
    cycles = sum(len(r["tops"]) for r in results)
    rows = []
    for h in GRID:
        n = sum(episodes(r["firings"], h) for r in results)
        rows.append(
            {
                "h": h,
                "episodes": n,
                "per_30_days": round(30 * n / days, 4),
                "upper95": round(30 * poisson_upper(n) / days, 4),
            }
        )
    tops = sorted((t for r in results for t in r["tops"]), reverse=True)
    kept = tops[: max(10, int(TAIL_SHARE * len(tops)))]
    h0 = kept[-1]
    excess = [t - h0 for t in kept if t > h0]
    rate = 1 / (sum(excess) / len(excess)) if excess and sum(excess) > 0 else 1.0
    return {
        "command": " ".join(["python bench/calibrate_watch.py", *sys.argv[1:]]),
        "days": round(days, 2),
        "cycles": cycles,
        "datasets": [
            {
                "scenario": r["scenario"],
                "seed": r["seed"],
                "rows": r["rows"],
                "days": r["hours"] / 24,
            }
            for r in results
        ],
        "thresholds": rows,
        "tail": {"h0": h0, "rate": round(rate, 4), "values": [round(t, 3) for t in kept]},
    }


def main() -> None:
    from watch import WATCH, database, replay_fast, simulation  # bench/watch.py

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--null-seeds", type=int, nargs="+", default=[1001, 1002])
    parser.add_argument("--random", type=int, default=6, help="Bug-free random draws [6].")
    parser.add_argument("--random-from", type=int, default=1000)
    parser.add_argument("--write", action="store_true", help=f"Write {TABLE.name}.")
    parser.add_argument("--from-log", action="store_true", help="Use the runs logged already.")
    args = parser.parse_args()
    WATCH.mkdir(parents=True, exist_ok=True)
    log = WATCH / "calibration.jsonl"
    results = []
    if args.from_log:
        results = [json.loads(x) for x in log.read_text().splitlines()]
    else:
        runs = [(s, seed) for seed in args.null_seeds for s in NULL_SCENARIOS]
        runs += [("random", seed) for seed in bug_free_random_seeds(args.random_from, args.random)]
        for i, (scenario, seed) in enumerate(runs):
            rows = args.rows[i % len(args.rows)]
            t = time.perf_counter()
            folder = simulation(scenario, seed, rows)
            db = database(folder, f"{scenario}-{rows}-{seed}")
            done = replay_fast(db, threshold=math.inf, alert=False, floor=FLOOR)
            r = {"scenario": scenario, "seed": seed, "rows": rows, **done}
            r.pop("alerts")
            results.append(r)
            with log.open("a") as f:
                f.write(json.dumps(r) + "\n")
            top = max(r["tops"]) if r["tops"] else 0.0
            print(
                f"{scenario:20} seed {seed:5} rows {rows:9,} {r['hours'] / 24:5.1f} days  "
                f"largest statistic {top:6.2f}  episodes at 10/15/20: "
                f"{episodes(r['firings'], 10)}/{episodes(r['firings'], 15)}/{episodes(r['firings'], 20)}"
                f"  {time.perf_counter() - t:.0f} s",
                flush=True,
            )
    summary = table(results)
    for row in summary["thresholds"][::4]:
        print(f"h {row['h']:5.1f}: {row['episodes']:3} episodes, {row['per_30_days']:.3f} per 30 days "
              f"(upper {row['upper95']:.3f})")  # fmt: skip
    print(f"{summary['days']} days, {summary['cycles']} cycles")
    if args.write:
        TABLE.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
