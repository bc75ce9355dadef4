"""Calibrate the separation's p-values on data with no bug: the search's maximum statistic.

For each null dataset (the tuning library's bug-free scenarios: the `random`
family's draws without a bug, over random dimensions, and the three null
scenarios), at several sizes: simulate, ingest, and run the search's first round
exactly as ``find_signatures`` does (seeds of every signal, the strongest
refined), recording the smallest Bonferroni p-value any refined candidate gets
(``evidence.search_log_p``): the search's maximum statistic. Under no bug, the
share of runs whose maximum beats a level is the false-alarm rate a search at
that level would have. The table written (``--write``) is what
``forensics/separation/calibration.py`` reads: per size class, how far the
Bonferroni bound is from the observed null distribution.

Never run on the field family (bench/field.py): that family measures the
calibrated search; it must not shape it.

    python bench/calibrate_null.py [--rows 60000 200000 600000] [--runs 24] [--extra 0 8] [--write]
    python bench/calibrate_null.py --from-log --write   # the table from the runs logged
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from cache import OUT, database_path, simulation_dir  # bench/cache.py

TABLE = Path(__file__).resolve().parent.parent / "forensics" / "separation" / "null_table.json"
NULL_SCENARIOS = ("null-mix-shift", "null-new-language", "null-benign-deploy")
QUANTILES = (0.1, 0.2, 0.5)
"""Quantiles of the null maximum the gap is read at."""


def null_datasets(runs: int) -> list[tuple[str, int]]:
    """(scenario, seed) pairs with no bug: random draws without one, then the null scenarios."""
    from forensics.simulate import load_scenario

    out: list[tuple[str, int]] = []
    seed = 1000
    while len(out) < runs - len(NULL_SCENARIOS):
        seed += 1
        if not load_scenario("random", seed=seed).bugs:
            out.append(("random", seed))
    out += [(name, 1000 + i) for i, name in enumerate(NULL_SCENARIOS)]
    return out


def maximum_statistic(db_path: Path) -> dict:
    """The first round of the search on one database: its smallest Bonferroni log p.

    Among the refined candidates that would pass the other checks of a signature
    (its signal elevated against its baseline, ``min_excess`` requests), as
    ``evidence`` measures them; the log p is not clipped at 0 (a bound above 1
    says how far from significance the best candidate was).
    """
    import forensics
    from forensics import queries
    from forensics.separation import SeparationParams, _prepare, workspace
    from forensics.separation.evidence import _counts, at_hour, measure, search_log_p
    from forensics.separation.hourly import hourly
    from forensics.separation.moves.seed import seeds

    params = SeparationParams()
    with forensics.open(db_path, read_only=True) as wb:
        signals = [s for s in queries.signal_names(wb.db) if s != "degraded"]
        t = time.perf_counter()
        search = _prepare(wb.db, params, signals)
        pool = sorted((c for s in signals for c in seeds(search, s)), key=lambda c: -c.llr)
        best = math.inf
        attempts: dict[str, int] = {}
        for seed in pool:
            if attempts.get(seed.signal, 0) >= params.seeds_per_signal:
                continue
            attempts[seed.signal] = attempts.get(seed.signal, 0) + 1
            cand = search.refine(seed)
            if not cand.predicate and cand.window.stop - cand.window.start == search.buckets:
                continue
            h0, h1, _, onset, end_range = hourly(search, cand.signal, cand.predicate, cand.window)
            window = (at_hour(h0), None if h1 is None else at_hour(h1))
            settle = (at_hour(onset[0]), None if end_range is None else at_hour(end_range[1]))
            predicate = search.space.public(cand.predicate)
            counts = _counts(search, predicate, window, settle, signals)
            found = measure(params, cand.signal, predicate, signals, *counts)
            if found.primary.elevated and found.excess >= params.min_excess:
                best = min(best, search_log_p(search, cand))
        dims, windows, rows = len(search.space.dims), search.scanner.windows, search.rows
        workspace.drop(wb.db)
        found_now = wb.signatures()
        return {
            "log10_p": best / math.log(10) if math.isfinite(best) else None,
            "rows": rows,
            "dims": dims,
            "windows": windows,
            "signals": len(signals),
            "found": len(found_now),
            "seconds": time.perf_counter() - t,
        }


def run(scenario: str, seed: int, rows: int, extra: int) -> dict:
    """One null dataset, with ``extra`` columns of noise (2 to 40 values each) added."""
    import numpy as np
    import polars as pl

    import forensics
    from forensics.simulate import simulate

    folder = simulation_dir(scenario, seed, rows, under="null")
    if not (folder / "truth.json").exists():
        simulate(scenario, rows=rows, seed=seed, out=folder)
    db = database_path(f"{scenario}-x{extra}", seed, rows, under="null")
    if not db.exists():
        source = folder / "requests.parquet"
        if extra:
            rng = np.random.default_rng(seed)
            frame = pl.read_parquet(source)
            for i in range(extra):
                size = int(rng.integers(2, 41))
                weights = rng.dirichlet(np.ones(size))
                frame = frame.with_columns(
                    pl.Series(f"noise_{i}", rng.choice(size, frame.height, p=weights)).cast(pl.Utf8)
                )
            source = db.with_suffix(".parquet")
            frame.write_parquet(source)
        with forensics.open(db.with_suffix(".tmp")) as wb:
            wb.ingest(source, progress=False)
            wb.ingest_events(folder / "events.csv")
        db.with_suffix(".tmp").rename(db)
    stats = maximum_statistic(db)
    return {"scenario": scenario, "seed": seed, "size": rows, "extra": extra, **stats}


def table(results: list[dict]) -> dict:
    """Per size class, the observed null quantiles of the maximum and the Bonferroni gap.

    A run whose best candidate would not pass a signature's other checks counts
    as having no candidate at all (an infinite bound). If the bound were exact,
    the q-quantile of the smallest bound would be q; ``gap`` is the smallest of
    (q-quantile - log10 q) over q in ``QUANTILES``, in decades: how much the
    bound overstates the null p-value, read where the table is least generous.
    """
    classes = []
    for size in sorted({r["size"] for r in results}):
        runs = [r for r in results if r["size"] == size]
        values = sorted(math.inf if r["log10_p"] is None else r["log10_p"] for r in runs)
        n = len(values)
        quantiles = {q: values[max(math.ceil(q * n) - 1, 0)] for q in QUANTILES}
        gap = min(v - math.log10(q) for q, v in quantiles.items())
        classes.append(
            {
                "rows": size,
                "runs": n,
                "dims": sorted({r["dims"] for r in runs}),
                "windows": sorted({r["windows"] for r in runs}),
                "quantiles": {str(q): round(v, 3) for q, v in quantiles.items()},
                "gap": round(gap, 3) if math.isfinite(gap) else 0.0,
                "false_alarms": sum(r["found"] > 0 for r in runs),
            }
        )
    return {"classes": classes, "command": "python bench/calibrate_null.py --write"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[60_000, 200_000, 600_000])
    parser.add_argument("--runs", type=int, default=24, help="Null datasets per size [24].")
    parser.add_argument(
        "--extra", type=int, nargs="+", default=[0, 8], help="Noise columns added [0 8]."
    )
    parser.add_argument("--write", action="store_true", help=f"Write {TABLE.name}.")
    parser.add_argument(
        "--from-log", action="store_true", help="Build the table from the runs logged already."
    )
    args = parser.parse_args()
    (OUT / "null").mkdir(parents=True, exist_ok=True)
    results = []
    log = OUT / "null" / "results.jsonl"
    if args.from_log:
        results = [json.loads(line) for line in log.read_text().splitlines()]
    for rows in [] if args.from_log else args.rows:
        for scenario, seed in null_datasets(args.runs):
            r = run(scenario, seed, rows, args.extra[(seed + rows // 1000) % len(args.extra)])
            results.append(r)
            with log.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(
                f"{scenario:20} seed {seed:5} rows {rows:8,}  best log10 p {r['log10_p']}  "
                f"dims {r['dims']:3}  found {r['found']}  {r['seconds']:.1f} s",
                flush=True,
            )
    summary = table(results)
    print(json.dumps(summary, indent=2))
    if args.write:
        TABLE.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
