"""Watch benchmark: detection delay per bug, false alarms on bug-free data, cost of a cycle.

Three measures, each its own subcommand:

``delay``: a scenario replayed hour by hour as files arriving in a folder
(``requests.parquet`` cut into one Parquet file per UTC hour, copied into the
watched folder one at a time, one ``forensics.watch.run_cycle`` after each,
with a JSON-lines sink). Per true bug: the first alert whose signature covers
at least half of the bug's requests so far and names one of its symptoms; the
detection delay (hours from the bug's onset to the end of the newest hour the
alert had seen); and the bug's size at that moment: its requests so far, the
alert's excess requests, and its share of the traffic of its model (or of its
first condition's value) over the 24 hours before the alert.

    python bench/watch.py delay --scenario postmortem-2025 --rows 10000000 --seed 1
    python bench/watch.py delay --scenario postmortem-2025 --rows 400000 --fast   # no files

``null``: bug-free data replayed hour by hour through the same detection and
alerting (``engine.detect`` then ``alerts.advance``, as a cycle runs them), on
a database ingested once: every ``new`` alert is a false alarm. Datasets:
the tuning library's null scenarios and the ``random`` family's bug-free
seeds, on seeds the calibration did not use, and the field family's ``null``
kind (never used for tuning). Prints false alarms per 30 simulated days with
a 95% Poisson upper bound, per set and overall.

    python bench/watch.py null --rows 1000000 --library-seeds 2001-2004 --field-seeds 101-105

``cost``: a 10M-rows-per-week stream (one simulated week of bug-free traffic,
repeated with shifted times and ids to make the history longer): the wall
time of one watch cycle that reads one new hour (60k rows), after 1, 2 and 4
weeks of history already ingested.

    python bench/watch.py cost --weeks 1 2 4

Caches (simulations, hourly files, databases) live in bench/out/watch/, keyed
by the code that made them (bench/cache.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cache import OUT, data_key, simulation_dir  # bench/cache.py

WATCH = OUT / "watch"


def poisson_upper(count: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean from ``count`` events.

    >>> round(poisson_upper(0), 3)
    2.996
    """
    from scipy import stats

    return float(stats.chi2.ppf(level, 2 * (count + 1)) / 2)


# -- data -----------------------------------------------------------------------------


def simulation(scenario: str, seed: int, rows: int | None) -> Path:
    """A simulation of the tuning library, cached."""
    from forensics.simulate import simulate

    folder = simulation_dir(scenario, seed, rows, under="watch")
    if not (folder / "truth.json").exists():
        simulate(scenario, rows=rows, seed=seed, out=folder)
    return folder


def field_simulation(seed: int, rows: int | None) -> Path:
    """A run of the field family's ``null`` kind (never used for tuning), cached."""
    from cache import field_key

    from forensics.simulate.field import simulate_field

    folder = WATCH / f"field-null-{rows or 'default'}-{seed}-sim-{field_key()}"
    if not (folder / "truth.json").exists():
        simulate_field("null", seed=seed, rows=rows, out=folder)
    return folder


def database(folder: Path, name: str) -> Path:
    """The simulation ingested at once (with its mapping and events), cached."""
    import forensics

    db = WATCH / f"{name}-db-{data_key()}.duckdb"
    if not db.exists():
        tmp = db.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        mapping = folder / "mapping.toml"
        with forensics.open(tmp) as wb:
            wb.ingest(
                folder / "requests.parquet",
                mapping=mapping if mapping.exists() else None,
                progress=False,
            )
            wb.ingest_events(folder / "events.csv")
        tmp.rename(db)
    return db


def hourly_files(folder: Path) -> list[Path]:
    """``requests.parquet`` cut into one file per UTC hour (cached beside it)."""
    import polars as pl

    out = folder / "hours"
    if not (out / "done").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        frame = pl.read_parquet(folder / "requests.parquet").with_columns(
            pl.col("ts").dt.truncate("1h").alias("_hour")
        )
        for (hour,), part in frame.group_by("_hour", maintain_order=True):
            part.drop("_hour").write_parquet(out / f"{hour:%Y%m%dT%H}.parquet")
        (out / "done").write_text("")
    return sorted(out.glob("*.parquet"))


# -- delay ----------------------------------------------------------------------------


def replay_files(
    folder: Path, work: Path, *, threshold: float | None, limit: int | None = None
) -> dict[str, Any]:
    """Feed the hourly files into a watched folder one at a time; a cycle after each."""
    from forensics.watch import FolderSource, WatchParams, parse_sink, run_cycle

    shutil.rmtree(work, ignore_errors=True)
    feed = work / "feed"
    feed.mkdir(parents=True)
    db = work / "watch.duckdb"
    sink = parse_sink(f"jsonl:{work / 'alerts.jsonl'}")
    params = WatchParams() if threshold is None else WatchParams(threshold=threshold)
    source = FolderSource(str(feed), settle=0.0)
    cycles = []
    files = hourly_files(folder)[:limit]
    for i, f in enumerate(files):
        shutil.copy(f, feed / f.name)
        r = run_cycle(
            db, source, sinks={sink.name: sink}, params=params, events=folder / "events.csv"
        )
        cycles.append(
            {"file": f.name, "seconds": r.seconds, "alerts": len(r.alerts), "error": r.error}
        )
        for a in r.alerts:
            s = a.signature
            print(
                f"  {f.name} {a.kind:8} {a.problem} {s['predicate']} {s['signal']} "
                f"onset {s['start']} requests {s['requests']} excess {s['excess_requests']:.0f}",
                flush=True,
            )
        if r.error:
            print(f"  {f.name} error: {r.error}", flush=True)
        if i % 100 == 0:
            total = sum(r.seconds.values())
            print(f"  cycle {i}/{len(files)} {f.name} {total:.2f} s {r.seconds}", flush=True)
    alerts = (
        [json.loads(x) for x in (work / "alerts.jsonl").read_text().splitlines()]
        if (work / "alerts.jsonl").exists()
        else []
    )
    return {"db": db, "alerts": alerts, "cycles": cycles}


def _count(db: Any, predicate: dict, start: datetime, end: datetime) -> int:
    from forensics.queries import Where, where_sql

    params: dict[str, Any] = {}
    cond = where_sql(
        Where.parse({**predicate, "ts": (start, end)}),
        columns=db.columns("requests"),
        params=params,
    )
    return int(db.scalar(f"SELECT count(*) FROM requests WHERE {cond}", params))


def _overlap(db: Any, a: dict, b: dict, start: datetime, end: datetime) -> int:
    from forensics.queries import Where, where_sql

    params: dict[str, Any] = {}
    cols = db.columns("requests")
    ca = where_sql(Where.parse({**a, "ts": (start, end)}), columns=cols, params=params)
    cb = where_sql(Where.parse(b), columns=cols, params=params)
    return int(db.scalar(f"SELECT count(*) FROM requests WHERE ({ca}) AND ({cb})", params))


def bug_delays(db_path: Path, truth: dict, alerts: list[dict]) -> list[dict]:
    """Per true bug, its first alert and how big it was then (see the module)."""
    import forensics

    out = []
    with forensics.open(db_path, read_only=True) as wb:
        db = wb.db
        for bug in truth["bugs"]:
            onset = datetime.fromisoformat(bug["start"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(bug["end"].replace("Z", "+00:00")) if bug["end"] else None
            found = None
            for a in alerts:
                at = datetime.fromisoformat(a["at"].replace("Z", "+00:00"))
                if at <= onset or (end is not None and at > end + timedelta(days=2)):
                    continue
                sig = a["signature"]
                if (
                    not set(sig["signals"]) & set(bug["symptoms"])
                    and sig["signal"] not in bug["symptoms"]
                ):
                    continue
                upto = min(at, end) if end else at
                rows = _count(db, bug["predicate"], onset, upto)
                covered = _overlap(db, bug["predicate"], sig["predicate"], onset, upto)
                if rows and covered >= 0.5 * rows:
                    found = (a, at, rows)
                    break
            entry: dict[str, Any] = {"bug": bug["name"], "onset": bug["start"]}
            if found is None:
                entry.update(delay_hours=None)
            else:
                a, at, rows = found
                first = next(iter(bug["predicate"]))
                column = "model" if "model" in bug["predicate"] else first
                context = {column: bug["predicate"][column]}
                day = at - timedelta(hours=24)
                share = _count(db, bug["predicate"], max(day, onset), at) / max(
                    _count(db, context, day, at), 1
                )
                entry.update(
                    delay_hours=(at - onset).total_seconds() / 3600,
                    alert=a["problem"],
                    kind=a["kind"],
                    predicate=a["signature"]["predicate"],
                    requests_so_far=rows,
                    alert_excess=a["signature"]["excess_requests"],
                    share_of=column,
                    share_last_24h=share,
                )
            out.append(entry)
    return out


def run_delay(args: argparse.Namespace) -> None:
    folder = simulation(args.scenario, args.seed, args.rows)
    truth = json.loads((folder / "truth.json").read_text())
    work = WATCH / f"delay-{args.scenario}-{args.rows}-{args.seed}"
    t = time.perf_counter()
    if args.fast:
        # the same detection and alerting hour by hour, on the data ingested at once
        from forensics.watch import calibration

        threshold = args.threshold or calibration.threshold(args.false_alarms)
        db = database(folder, f"{args.scenario}-{args.rows}-{args.seed}")
        fast = replay_fast(db, threshold=threshold, alert=True)
        done = {"db": db, "alerts": fast["alerts"], "cycles": []}
        work.mkdir(parents=True, exist_ok=True)
    else:
        done = replay_files(folder, work, threshold=args.threshold, limit=args.limit)
    wall = time.perf_counter() - t
    delays = bug_delays(done["db"], truth, done["alerts"])
    totals = [sum(c["seconds"].values()) for c in done["cycles"]] or [float("nan")]
    report = {
        "scenario": args.scenario,
        "rows": args.rows,
        "seed": args.seed,
        "cycles": len(totals),
        "cycle_seconds_median": statistics.median(totals),
        "cycle_seconds_p95": sorted(totals)[int(0.95 * (len(totals) - 1))],
        "wall_seconds": wall,
        "alerts": len(done["alerts"]),
        "new_alerts": sum(a["kind"] == "new" for a in done["alerts"]),
        "bugs": delays,
    }
    for d in delays:
        if d["delay_hours"] is None:
            print(f"{d['bug']:40} not alerted")
        else:
            print(
                f"{d['bug']:40} delay {d['delay_hours']:5.0f} h  requests so far "
                f"{d['requests_so_far']:7,}  alert excess {d['alert_excess']:7.0f}  "
                f"share of {d['share_of']} (24 h) {d['share_last_24h']:.3%}  {d['predicate']}"
            )
    print(json.dumps({k: v for k, v in report.items() if k != "bugs"}, indent=2))
    (work / "report.json").write_text(json.dumps(report, indent=2, default=str))


# -- null -----------------------------------------------------------------------------


def replay_fast(
    db_path: Path, *, threshold: float, alert: bool, floor: float = 6.0
) -> dict[str, Any]:
    """Detection (and alerting) hour by hour on a database ingested at once.

    The same steps a cycle runs after its ingest, each hour in its own
    transaction, the newest hour advancing one at a time. Returns the cycles'
    largest statistics, every firing at or above ``floor`` (for calibration),
    and the alerts (when ``alert``).
    """
    import forensics
    from forensics.watch import alerts as alerting
    from forensics.watch import calibration, store
    from forensics.watch.engine import detect, watched_signals
    from forensics.watch.model import load_models
    from forensics.watch.params import WatchParams

    params = WatchParams(threshold=threshold)
    work = db_path.with_name(db_path.stem + f"-replay-{threshold:g}-{int(alert)}.duckdb")
    work.unlink(missing_ok=True)
    shutil.copy(db_path, work)
    tops, firings, raised = [], [], []
    with forensics.open(work) as wb:
        db = wb.db
        first, last = db.execute(
            "SELECT min(epoch_us(ts)) // 3600000000, max(epoch_us(ts)) // 3600000000 FROM requests"
        )[0]
        store.set_state(db, "first_hour", int(first))
        for h in range(int(first), int(last) + 1):
            db.execute("BEGIN TRANSACTION")
            scan = detect(
                db, hours=[h], newest_hour=h, params=params, threshold=min(floor, threshold)
            )
            tops.append(scan.top)
            for f in scan.firings:
                firings.append(
                    {
                        "hour": h,
                        "statistic": f.statistic,
                        "signal": f.signal,
                        "slice": [f.slice.dim, f.slice.value, f.slice.side],
                        "start_hour": f.start_hour,
                    }
                )
            if alert:
                above = type(scan)(
                    scan.newest_hour,
                    tuple(f for f in scan.firings if f.statistic >= threshold),
                    scan.top,
                    scan.dispersion,
                )
                context = alerting.Context(
                    newest_hour=h,
                    signals=watched_signals(db),
                    dims=store.watched_dimensions(db, max_values=params.max_values),
                    models=load_models(db),
                    sinks=[],
                    p_value=calibration.cycle_p_value
                    if calibration.TABLE.exists()
                    else (lambda s: 1.0),
                )
                for a in alerting.advance(db, above, context, params):
                    raised.append(a.payload())
            db.execute("COMMIT")
    work.unlink(missing_ok=True)
    return {"hours": int(last) - int(first) + 1, "tops": tops, "firings": firings, "alerts": raised}


def null_sets(args: argparse.Namespace) -> list[tuple[str, str, Path]]:
    """(set, name, simulation folder) of the bug-free data to measure on."""
    from calibrate_watch import bug_free_random_seeds  # bench/calibrate_watch.py

    out = []
    for seed in args.library_seeds:
        for scenario in ("null-mix-shift", "null-new-language", "null-benign-deploy"):
            out.append(
                ("library", f"{scenario}-{args.rows}-{seed}", simulation(scenario, seed, args.rows))
            )
    for seed in bug_free_random_seeds(args.random_from, args.random_count):
        out.append(("random", f"random-{args.rows}-{seed}", simulation("random", seed, args.rows)))
    for seed in args.field_seeds:
        out.append(
            (
                "field",
                f"field-null-{args.field_rows}-{seed}",
                field_simulation(seed, args.field_rows),
            )
        )
    return out


def run_null(args: argparse.Namespace) -> None:
    from forensics.watch import calibration

    threshold = args.threshold or calibration.threshold(args.false_alarms)
    log = WATCH / f"null-{threshold:g}.jsonl"
    results = []
    for group, name, folder in null_sets(args):
        db = database(folder, name)
        t = time.perf_counter()
        done = replay_fast(db, threshold=threshold, alert=True)
        new = [a for a in done["alerts"] if a["kind"] == "new"]
        row = {
            "set": group,
            "name": name,
            "days": done["hours"] / 24,
            "false_alarms": len(new),
            "alerts": [
                {
                    "at": a["at"],
                    "predicate": a["signature"]["predicate"],
                    "signal": a["signature"]["signal"],
                }
                for a in new
            ],
            "seconds": time.perf_counter() - t,
        }
        results.append(row)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{group:8} {name:40} {row['days']:5.1f} days  false alarms {len(new)}  {row['seconds']:.0f} s",
            flush=True,
        )
    print(f"threshold {threshold:.2f}")
    for group in ("library", "random", "field", None):
        part = [r for r in results if group is None or r["set"] == group]
        if not part:
            continue
        days = sum(r["days"] for r in part)
        n = sum(r["false_alarms"] for r in part)
        print(
            f"{group or 'all':8} {days:7.1f} days  {n} false alarms  {30 * n / days:.3f} per 30 days "
            f"(95% upper bound {30 * poisson_upper(n) / days:.3f})"
        )


# -- cost -----------------------------------------------------------------------------

COST_SCENARIO = """\
base = "_fleet.toml"
name = "watch-cost-week"
description = "One week of bug-free fleet traffic (the cost benchmark's stream)"
start = 2024-03-04T00:00:00Z
end = 2024-03-11T00:00:00Z
"""


def cost_week(rows: int) -> Path:
    """One simulated week of bug-free traffic, cached."""
    from cache import simulation_key

    from forensics.simulate import simulate

    folder = WATCH / f"cost-week-{rows}-sim-{simulation_key()}"
    if not (folder / "truth.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / "scenario.toml"
        spec.write_text(COST_SCENARIO)
        simulate(spec, rows=rows, seed=1, out=folder)
    return folder


def shifted_week(folder: Path, week: int) -> Path:
    """The week's requests moved ``week`` weeks later, with ids of their own (cached)."""
    import polars as pl

    out = folder / f"week-{week}.parquet"
    if not out.exists():
        pl.scan_parquet(folder / "requests.parquet").with_columns(
            pl.col("ts") + pl.duration(days=7 * week),
            (pl.lit(f"w{week}-") + pl.col("request_id")).alias("request_id"),
        ).sink_parquet(out)
    return out


def run_cost(args: argparse.Namespace) -> None:
    import polars as pl

    import forensics
    from forensics.watch import FolderSource, WatchParams, run_cycle

    folder = cost_week(args.rows_per_week)
    params = WatchParams(threshold=args.threshold) if args.threshold else WatchParams()
    results = []
    for weeks in args.weeks:
        work = WATCH / f"cost-{args.rows_per_week}-{weeks}w"
        shutil.rmtree(work, ignore_errors=True)
        (work / "feed").mkdir(parents=True)
        db = work / "watch.duckdb"
        t = time.perf_counter()
        with forensics.open(db) as wb:
            wb.ingest(*(shifted_week(folder, w) for w in range(weeks)), progress=False)
        loaded = time.perf_counter() - t
        # the first cycle over this history fits the models and counts the horizon once
        run_cycle(db, FolderSource(str(work / "feed"), settle=0.0), sinks={}, params=params)
        nxt = pl.read_parquet(shifted_week(folder, weeks)).sort("ts")
        start = nxt["ts"][0]
        for i in range(args.hours):
            hour = nxt.filter(
                (pl.col("ts") >= start + timedelta(hours=i))
                & (pl.col("ts") < start + timedelta(hours=i + 1))
            )
            path = work / "feed" / f"next-{i:02d}.parquet"
            hour.write_parquet(path)
            t = time.perf_counter()
            r = run_cycle(db, FolderSource(str(work / "feed"), settle=0.0), sinks={}, params=params)
            wall = time.perf_counter() - t
            results.append(
                {"weeks": weeks, "hour": i, "rows": hour.height, "wall": wall, "steps": r.seconds,
                 "history_rows": weeks * args.rows_per_week, "load_seconds": loaded}
            )  # fmt: skip
            print(
                f"history {weeks} week(s) ({weeks * args.rows_per_week:,} rows), new hour {i}: "
                f"{hour.height:,} rows, cycle {wall:.2f} s  {r.seconds}",
                flush=True,
            )
        shutil.rmtree(work, ignore_errors=True)
    (WATCH / "cost.json").write_text(json.dumps(results, indent=2, default=str))
    for weeks in args.weeks:
        walls = [r["wall"] for r in results if r["weeks"] == weeks]
        print(
            f"history {weeks} week(s): median cycle {statistics.median(walls):.2f} s, max {max(walls):.2f} s"
        )


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("delay", help="Detection delay per bug, files arriving hour by hour.")
    d.add_argument("--scenario", default="postmortem-2025")
    d.add_argument("--rows", type=int, default=10_000_000)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--threshold", type=float, default=None, help="Instead of the calibrated one.")
    d.add_argument("--limit", type=int, default=None, help="Only the first N hours.")
    d.add_argument(
        "--fast",
        action="store_true",
        help="Detection and alerting hour by hour on the data ingested at once (no files).",
    )
    d.add_argument("--false-alarms", type=float, default=1.0, help="Target per 30 days.")
    n = sub.add_parser("null", help="False alarms on bug-free data.")
    n.add_argument("--rows", type=int, default=1_000_000, help="Rows of each library dataset.")
    n.add_argument("--library-seeds", type=_seeds, default=_seeds("2001-2002"))
    n.add_argument("--random-from", type=int, default=5000)
    n.add_argument("--random-count", type=int, default=3)
    n.add_argument("--field-seeds", type=_seeds, default=_seeds("101-105"))
    n.add_argument("--field-rows", type=int, default=1_000_000)
    n.add_argument("--false-alarms", type=float, default=1.0, help="Target per 30 days.")
    n.add_argument("--threshold", type=float, default=None)
    c = sub.add_parser("cost", help="Cost of one cycle for one new hour vs the history.")
    c.add_argument("--rows-per-week", type=int, default=10_000_000)
    c.add_argument("--weeks", type=int, nargs="+", default=[1, 2, 4])
    c.add_argument("--hours", type=int, default=3, help="New hours timed per history length.")
    c.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()
    WATCH.mkdir(parents=True, exist_ok=True)
    {"delay": run_delay, "null": run_null, "cost": run_cost}[args.command](args)


if __name__ == "__main__":
    main()
