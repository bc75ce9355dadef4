"""Explain benchmark: root-cause localisation on generated counted incidents.

For each case of ``forensics.simulate.counted`` (per-minute counts by 4-6
attributes, causes injected at one or several elements; written apart from the
method), ``forensics.explain.explain_counts`` answers twice: at the true onset
(``given``) and with no time (``found``: it must find the anomalous minute
itself). Each answer is scored as the root-cause-localisation literature does
(``forensics.simulate.counted.score``): exact set match of the first
candidate's elements, micro-F1 of those elements over cases, hit@k (every true
element among the first k candidates) and, when found, the onset within +-1
minute. A baseline in the same run: each element of one or two conditions
ranked by its excess over its own recent past (``k - n * past rate``, the
60 minutes before), one element per candidate (a naive ranking by excess,
in the spirit of a per-dimension drill-down).

    python bench/explain.py [--cases 100] [--first-seed 0] [--leaves 500 3000] [--json OUT]

``--speed ROWS`` instead times ``Workbench.explain`` on a DuckDB file holding a
``requests`` table of ROWS request rows (one row per request over two weeks, four
dimensions, a low_eval rise in one slice), with ``--at`` the onset and without.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl

from forensics.explain import explain_counts
from forensics.simulate.counted import CaseParams, generate_case, score_case, summarize

OUT = Path(__file__).parent / "out" / "explain"


def _frame(counts: pl.DataFrame) -> pl.DataFrame:
    return counts.rename({"minute": "t", "requests": "n", "bad": "k"})


def _minutes(a: datetime, b: str) -> int:
    truth = datetime.fromisoformat(b.replace("Z", "+00:00"))
    return round((a - truth) / timedelta(minutes=1))


def baseline_answer(
    frame: pl.DataFrame, attributes: list[str], onset: datetime
) -> list[list[dict]]:
    """Elements of one or two conditions ranked by excess over their own past hour."""
    now = frame.filter(pl.col("t").is_between(onset, onset + timedelta(minutes=4)))
    past = frame.filter(pl.col("t").is_between(onset - timedelta(minutes=60), onset, closed="left"))
    ranked = []
    for size in (1, 2):
        for dims in combinations(attributes, size):
            a = now.group_by(dims).agg(pl.col("n").sum(), pl.col("k").sum())
            b = past.group_by(dims).agg(pn=pl.col("n").sum(), pk=pl.col("k").sum())
            joined = a.join(b, on=list(dims), how="left").fill_null(0)
            joined = joined.with_columns(
                excess=pl.col("k") - pl.col("n") * (pl.col("pk") + 0.5) / (pl.col("pn") + 1)
            )
            for row in joined.sort("excess", descending=True).head(5).iter_rows(named=True):
                ranked.append((row["excess"], {d: row[d] for d in dims}))
    ranked.sort(key=lambda r: -r[0])
    return [[element] for _, element in ranked[:10]]


def run_cases(args: argparse.Namespace) -> dict:
    params = CaseParams(leaves=tuple(args.leaves))
    given, found, naive = [], [], []
    seconds_given, seconds_found, rows = [], [], []
    for seed in range(args.first_seed, args.first_seed + args.cases):
        case = generate_case(seed, params)
        frame = _frame(case.counts)
        onset = datetime.fromisoformat(case.truth["onset"].replace("Z", "+00:00"))
        truth = case.truth["elements"]
        t0 = time.perf_counter()
        at = explain_counts(frame, at=onset)
        t1 = time.perf_counter()
        free = explain_counts(frame)
        t2 = time.perf_counter()
        given.append(score_case(truth, [c.elements for c in at.items]))
        error = _minutes(free.at, case.truth["onset"])
        found.append(score_case(truth, [c.elements for c in free.items], onset_error=error))
        naive.append(score_case(truth, baseline_answer(frame, case.attributes, onset)))
        seconds_given.append(t1 - t0)
        seconds_found.append(t2 - t1)
        rows.append(frame.height)
        print(
            f"seed {seed:4d}  rows {frame.height:8,}  causes {len(truth)}  "
            f"given: exact {given[-1].exact!s:5} hit@{given[-1].hit_rank}  "
            f"found: exact {found[-1].exact!s:5} onset {error:+d}  "
            f"{t1 - t0:5.2f} s / {t2 - t1:5.2f} s",
            flush=True,
        )
    report = {
        "cases": args.cases,
        "first_seed": args.first_seed,
        "leaves": args.leaves,
        "given": summarize(given).to_dict(),
        "found": summarize(found).to_dict(),
        "baseline_given": summarize(naive).to_dict(),
        "seconds_given_median": float(np.median(seconds_given)),
        "seconds_found_median": float(np.median(seconds_found)),
        "seconds_found_max": float(np.max(seconds_found)),
        "rows_median": int(np.median(rows)),
    }
    return report


def _print(report: dict) -> None:
    print()
    print(
        f"{'':18} {'exact':>6} {'micro-F1':>8} {'hit@1':>6} {'hit@3':>6} {'hit@5':>6} {'onset±1':>8}"
    )
    for name in ("given", "found", "baseline_given"):
        s = report[name]
        onset = "" if s["onset_within"] is None else f"{s['onset_within']:.3f}"
        print(
            f"{name:18} {s['exact']:6.3f} {s['f1']:8.3f} {s['hit']['1']:6.3f} "
            f"{s['hit']['3']:6.3f} {s['hit']['5']:6.3f} {onset:>8}"
        )
    print(
        f"median rows {report['rows_median']:,}; seconds per case, median: at the onset "
        f"{report['seconds_given_median']:.2f}, finding it {report['seconds_found_median']:.2f} "
        f"(max {report['seconds_found_max']:.2f})"
    )


def requests_db(rows: int) -> Path:
    """A DuckDB file of ``rows`` request rows (built once into bench/out/explain/)."""
    import forensics

    path = OUT / f"requests-{rows}.duckdb"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    start = datetime(2025, 8, 15, tzinfo=UTC)
    seconds = np.sort(rng.uniform(0, 14 * 86400, size=rows))
    values = {
        "model": [f"model-{i}" for i in range(6)],
        "platform": ["tpu", "gpu", "trainium"],
        "routing_pool": [f"pool-{i}" for i in range(8)],
        "surface": ["web", "api", "mobile", "batch"],
    }
    picks = {name: rng.integers(len(v), size=rows) for name, v in values.items()}
    onset = 12 * 86400 + 14 * 3600
    raised = (seconds >= onset) & (picks["platform"] == 1) & (picks["routing_pool"] == 3)
    low = rng.random(rows) < np.where(raised, 0.2, 0.02)
    frame = pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(rows)],
            "ts": [start + timedelta(seconds=float(s)) for s in seconds],
            **{name: np.asarray(v)[picks[name]] for name, v in values.items()},
            "eval_score": np.where(low, 0.1, 0.9),
        }
    )
    parquet = OUT / f"requests-{rows}.parquet"
    frame.write_parquet(parquet)
    with forensics.open(path) as wb:
        wb.ingest(parquet, progress=False)
    return path


def run_speed(args: argparse.Namespace) -> None:
    import forensics

    path = requests_db(args.speed)
    at = "2025-08-27T14:00:00Z"
    with forensics.open(path, read_only=True) as wb:
        for label, options in (("--at onset", {"at": at}), ("no --at", {})):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = wb.explain(signal="low_eval", **options)
                times.append(time.perf_counter() - t0)
            print(
                f"{args.speed:,} rows, {label}: best {min(times):.2f} s of {args.repeat} "
                f"(grain {result.grain}, at {result.at:%Y-%m-%d %H:%M}, first: "
                f"{result.items[0].description})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--leaves", type=int, nargs=2, default=[500, 3000])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--speed", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.speed:
        run_speed(args)
        return
    report = run_cases(args)
    _print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
