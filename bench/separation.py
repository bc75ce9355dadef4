"""Separation benchmark: recover the injected bugs of every scenario, over many seeds.

For each scenario of the simulator's library and each seed: simulate and ingest
into a DuckDB file (both cached in bench/out/separation/, keyed by the code that
made them: bench/cache.py), run the signature search, and score the signatures
against the scenario's truth with ``forensics.evaluate``
(a bug is recovered when a signature covers the same requests, Jaccard >= 0.8).
Prints one row per run and a table per scenario: mean precision, recall and F1
with a 95% interval over seeds (t), mean absolute onset error, and seconds.

    python bench/separation.py [--seeds 10] [--scenario NAME ...] [--rows N] [--groups]

``--groups`` also scores the root causes (``wb.root_causes``) against the
truth's ``group`` of each bug, over pairs of signatures matched to true bugs:
precision (of the pairs grouped together, the share whose bugs share a group)
and recall (of the pairs whose bugs share a group, the share grouped), pooled
over the runs of each scenario, with the pair counts behind them.

``--speed ROWS`` instead times the search on the postmortem database of
bench/queries.py with ROWS rows (generated once in bench/out/), against one
DuckDB pass over the same table (GROUP BY UTC day, by epoch arithmetic, and
every categorical dimension: reading the data once, the floor), scores it
against the truth, and reports both times; then it times the CLI command
itself (``forensics signatures --db FILE --json OUT``, a new process each
run: imports, opening the database and writing the JSON included).

    python bench/separation.py --speed 10000000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cache import OUT, database_path, simulation_dir  # bench/cache.py
from intervals import t_interval  # bench/intervals.py


def run(scenario: str, seed: int, rows: int | None) -> dict:
    import forensics
    from forensics.evaluate import evaluate, score_grouping
    from forensics.signature import signatures_to_json
    from forensics.simulate import simulate

    folder = simulation_dir(scenario, seed, rows, under="separation")
    if not (folder / "truth.json").exists():
        simulate(scenario, rows=rows, seed=seed, out=folder)
    db = database_path(scenario, seed, rows, under="separation")
    if not db.exists():
        with forensics.open(db.with_suffix(".tmp")) as wb:
            wb.ingest(folder / "requests.parquet", progress=False)
            wb.ingest_events(folder / "events.csv")
        db.with_suffix(".tmp").rename(db)
    truth = json.loads((folder / "truth.json").read_text())
    with forensics.open(db, read_only=True) as wb:
        t = time.perf_counter()
        found = wb.signatures()
        seconds = time.perf_counter() - t
        result = evaluate(wb.db, truth, json.loads(signatures_to_json(found))["signatures"])
        causes = wb.root_causes(found)
    pairs = score_grouping(truth, result, [c.signatures for c in causes])
    onsets = [abs(x) for x in result.matches["onset_error_hours"].to_list() if x is not None]
    return {
        "scenario": scenario,
        "seed": seed,
        "true": result.true,
        "found": result.found,
        "matched": result.matched,
        "precision": result.precision,
        "recall": result.recall,
        "f1": result.f1,
        "onset_hours": max(onsets) if onsets else None,
        "seconds": seconds,
        "groups": len({b.get("group", b["name"]) for b in truth["bugs"]}),
        "causes": len(causes),
        "pairs": pairs,
    }


def speed(rows: int, repeat: int) -> None:
    import forensics
    from forensics.schema import quote_identifier

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from queries import _database  # bench/queries.py: the same cached database

    db = _database(rows, 1)
    truth = json.loads((simulation_dir("postmortem-2025", 1, rows) / "truth.json").read_text())
    with forensics.open(db, read_only=True) as wb:
        dims = [quote_identifier(d.name) for d in wb.dimensions() if d.kind != "numeric"]
        signals = [quote_identifier(s) for s in wb.signals()]
        floor_sql = (
            f"SELECT epoch_us(ts) // 86400000000 AS day, {', '.join(dims)}, count(*), "
            + ", ".join(f"count(*) FILTER (WHERE {s})" for s in signals)
            + " FROM requests GROUP BY ALL"
        )
        floors, searches = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            groups = wb.sql(f"SELECT count(*) FROM ({floor_sql})").item()
            floors.append(time.perf_counter() - t)
            t = time.perf_counter()
            found = wb.signatures()
            searches.append(time.perf_counter() - t)
        result = wb.evaluate(truth, found)
    commands = []  # the command the issue names, from process start to exit
    command = [sys.executable, "-m", "forensics.cli", "signatures", "--db", str(db)]
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([*command, "--json", str(OUT / "speed.json")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        commands.append(time.perf_counter() - t)
    floor, search = statistics.median(floors), statistics.median(searches)
    print(f"rows {rows:,}; median of {repeat} runs each")
    print(
        f"  one DuckDB pass (GROUP BY day x {len(dims)} categorical dimensions, {groups:,} groups): "
        f"{floor:.2f} s"
    )
    print(
        f"  wb.signatures(): {search:.2f} s  ({search / floor:.1f}x the pass); "
        f"runs: {', '.join(f'{x:.1f}' for x in searches)} s"
    )
    cli = statistics.median(commands)
    from forensics.signature import signatures_to_json

    written = json.loads((OUT / "speed.json").read_text())["signatures"]
    same = [x["predicate"] for x in written] == [
        x["predicate"] for x in json.loads(signatures_to_json(found))["signatures"]
    ]
    print(
        f"  forensics signatures --db FILE --json OUT: {cli:.2f} s wall, process start to exit; "
        f"runs: {', '.join(f'{x:.1f}' for x in commands)} s; "
        f"{len(written)} signatures, {'the same' if same else 'NOT the same'} as in-process"
    )
    print(f"  {result.table().splitlines()[-1]}")


def main() -> None:
    from forensics.simulate import SCENARIOS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--scenario", action="append", help="Only these (repeatable).")
    parser.add_argument("--rows", type=int, default=None, help="Rows per run [scenario default].")
    parser.add_argument("--speed", type=int, metavar="ROWS", help="Time the search on ROWS rows.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of --speed [3].")
    parser.add_argument(
        "--groups", action="store_true", help="Also score the root causes (pairs grouped)."
    )
    args = parser.parse_args()
    if args.speed:
        speed(args.speed, args.repeat)
        return
    (OUT / "separation").mkdir(parents=True, exist_ok=True)
    scenarios = args.scenario or sorted(SCENARIOS)
    results = []
    for scenario in scenarios:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = run(scenario, seed, args.rows)
            results.append(r)
            onset = "-" if r["onset_hours"] is None else f"{r['onset_hours']:.0f} h"
            print(
                f"{scenario:28} seed {seed:3}  true {r['true']}  found {r['found']}  "
                f"matched {r['matched']}  F1 {r['f1']:.3f}  worst onset {onset:>6}  "
                f"{r['seconds']:.1f} s" + (f"  {_pairs_line(r)}" if args.groups else ""),
                flush=True,
            )
    print(
        f"\n{'scenario':28} {'runs':>4}  {'precision':24} {'recall':24} {'F1':24} "
        f"{'worst onset (h)':>15} {'seconds':>8}"
    )
    for scenario in scenarios:
        rows = [r for r in results if r["scenario"] == scenario]
        onsets = [r["onset_hours"] for r in rows if r["onset_hours"] is not None]
        onset = f"{max(onsets):.0f}" if onsets else "-"
        print(
            f"{scenario:28} {len(rows):4}  {t_interval([r['precision'] for r in rows]):24} "
            f"{t_interval([r['recall'] for r in rows]):24} {t_interval([r['f1'] for r in rows]):24} "
            f"{onset:>15} {statistics.fmean(r['seconds'] for r in rows):8.1f}"
        )
    overall = [r["f1"] for r in results]
    print(f"\nall runs: mean F1 {t_interval(overall)} over {len(overall)} runs")
    if args.groups:
        _groups_table(scenarios, results)


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pairs_line(r: dict) -> str:
    p = r["pairs"]
    return (
        f"groups {r['groups']} causes {r['causes']}  pairs together {p.together_right}+"
        f"{p.together_wrong} wrong, apart {p.apart_wrong} wrong + {p.apart_right} right"
    )


def _groups_table(scenarios: list[str], results: list[dict]) -> None:
    from forensics.evaluate import PairScore

    print(
        f"\n{'scenario':28} {'runs':>4} {'groups':>7} {'causes':>7} {'F1 (bugs)':>10} "
        f"{'together ok':>11} {'together wrong':>14} {'apart wrong':>11} {'apart ok':>8} "
        f"{'pair precision':>14} {'pair recall':>11}"
    )
    every = PairScore(0, 0, 0, 0)
    for scenario in scenarios:
        rows = [r for r in results if r["scenario"] == scenario]
        pooled = sum((r["pairs"] for r in rows), PairScore(0, 0, 0, 0))
        every = every + pooled
        print(
            f"{scenario:28} {len(rows):4} {statistics.fmean(r['groups'] for r in rows):7.1f} "
            f"{statistics.fmean(r['causes'] for r in rows):7.1f} "
            f"{statistics.fmean(r['f1'] for r in rows):10.3f} {pooled.together_right:11} "
            f"{pooled.together_wrong:14} {pooled.apart_wrong:11} {pooled.apart_right:8} "
            f"{_share(pooled.precision):>14} "
            f"{_share(pooled.recall):>11}"
        )
    print(
        f"\nall runs: pairs grouped together {every.together_right} right, "
        f"{every.together_wrong} wrong; pairs that belong together kept apart "
        f"{every.apart_wrong}; pairs rightly kept apart {every.apart_right}; "
        f"pair precision {_share(every.precision)}, "
        f"recall {_share(every.recall)}"
    )


if __name__ == "__main__":
    main()
