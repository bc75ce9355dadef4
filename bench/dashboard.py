"""Dashboard benchmark: latency of the update path per interaction, cubes vs the raw table.

Opens the dashboard (forensics.widgets.Dashboard) on the cached 10M-row
postmortem database of bench/queries.py (generated once in bench/out/), then
plays a seeded sequence of realistic interactions, setting the widgets the way
a click does (each assignment runs the one update path, Dashboard.update):

  filter     choose values of a cubed dimension, or clear them
  range      a numeric filter over bucket edges
  dates      narrow or widen the date range (whole days)
  group_by   another group-by dimension (or none)
  grain      day <-> hour
  signal     another signal
  window     drag a window on the timeline (snapped to the grain)

and times each one. The baseline, in the same run, answers the same
interactions with every count read from the raw `requests` table (the query
helpers' cube lookup switched off), through the same code. Also reported: the
time to JSON-encode the chart specifications an update sends to the browser
(no kernel here, so nothing is sent; this is what serialising it would add).

    python bench/dashboard.py [--rows 10000000] [--rounds 40] [--baseline-rounds 3] [--project-catalog-cache]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from queries import _database, _percentile  # the cached 10M database

TARGET_P95_MS = 150.0


def _interactions(dash, rng: random.Random):
    """One round of interactions: (kind, a function that performs it)."""
    cube_dims = set(dash._cubes[0].dims) if dash._cubes else set()
    categorical = [n for n, c in dash.filters.items() if hasattr(c, "rows") and n in cube_dims]
    numeric = [n for n, c in dash.filters.items() if not hasattr(c, "rows") and n in cube_dims]
    groupable = [v for _, v in dash.group_picker.options if v is None or v in cube_dims]
    steps = []

    def choose_values():
        name = rng.choice(categorical)
        options = [v for _, v in dash.filters[name].options]
        dash.filters[name].value = tuple(rng.sample(options, k=max(1, len(options) // 2)))

    def clear_values():
        chosen = [n for n in categorical if dash.filters[n].value]
        if chosen:
            dash.filters[rng.choice(chosen)].value = ()
        else:
            choose_values()

    def numeric_range():
        control = dash.filters[rng.choice(numeric)]
        top = len(control.options) - 1
        i = rng.randrange(0, top)
        control.index = (
            (i, rng.randrange(i + 1, top + 1)) if control.index == (0, top) else (0, top)
        )

    def dates():
        days = len(dash._days)
        if dash.date_range.index == (0, days - 1):
            start = rng.randrange(0, days // 2)
            dash.date_range.index = (start, rng.randrange(start + 7, days))
        else:
            dash.date_range.index = (0, days - 1)

    def group_by():
        dash.group_picker.value = rng.choice([g for g in groupable if g != dash.group_picker.value])

    def grain():
        dash.grain_picker.value = "hour" if dash.grain_picker.value == "day" else "day"

    def signal():
        dash.signal_picker.value = rng.choice(
            [s for s in dash.signal_picker.options if s != dash.signal_picker.value]
        )

    def window():
        state = dash.state()
        span = (state.end - state.start).days
        start = state.start + timedelta(
            days=rng.randrange(1, max(2, span - 3)), hours=rng.randrange(24)
        )
        end = start + timedelta(days=rng.randrange(1, 4), hours=rng.randrange(24))
        ms = [int(t.timestamp() * 1000) for t in (start, end)]
        dash.timeline_view._vl_selections = {"window": {"value": {"ts": ms}, "store": []}}

    steps += [("filter", choose_values), ("group_by", group_by), ("window", window)]
    steps += [("grain", grain), ("signal", signal), ("filter", clear_values)]
    if numeric:
        steps.append(("range", numeric_range))
    steps += [("dates", dates), ("grain", grain), ("window", window)]
    return steps


def _views(dash):
    return [dash.timeline_view, dash.heatmap_view, dash.compare_view, dash.exposure_view]


def _play(dash, rounds: int, seed: int):
    """Play the interactions; per interaction: (kind, ms, encode_ms, panels)."""
    rng = random.Random(seed)
    results = []
    for _ in range(rounds):
        for kind, act in _interactions(dash, rng):
            specs = [id(v.spec) for v in _views(dash)]
            t = time.perf_counter()
            act()
            ms = (time.perf_counter() - t) * 1000
            changed = [
                v.spec
                for v, before in zip(_views(dash), specs, strict=True)
                if id(v.spec) != before
            ]
            t = time.perf_counter()
            for spec in changed:
                json.dumps(spec)
            encode = (time.perf_counter() - t) * 1000
            results.append((kind, ms, encode, dict(dash.last_update.panels)))
    return results


@contextmanager
def _raw_table_only():
    """Every count query reads `requests` (the same questions, without cubes)."""
    from forensics import queries

    original = queries._source

    def raw(db, needed, grain, signal, where, *, times=(), catalog=None):
        return queries._Source("requests", None, db.columns("requests"))

    queries._source = raw
    try:
        yield
    finally:
        queries._source = original


@contextmanager
def _catalog_cached(db):
    """A projection, not the shipped code: the catalog lookups every count query repeats
    (tables, columns, dimensions, cubes, signal names, time range) answered from memory,
    as a cache in db.py/queries.py invalidated on ingest would."""
    from forensics import analysis, queries

    memo = {
        "_catalog": queries._catalog(db),
        "dimensions": queries.dimensions(db),
        "cubes": queries.cubes(db),
        "signal_names": queries.signal_names(db),
        "time_range": queries.time_range(db),
    }
    tables = db.tables()
    columns = {t: db.columns(t) for t in tables}
    saved = [(m, n, getattr(m, n)) for m in (queries, analysis) for n in memo if hasattr(m, n)]
    for module, name, _ in saved:
        setattr(module, name, lambda *a, _v=memo[name], **k: _v)
    db.tables, db.columns = (lambda: tables), (lambda t: columns.get(t) or {})
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)
        del db.tables, db.columns


def _summary(name: str, results) -> float:
    by_kind = defaultdict(list)
    for kind, ms, _, _ in results:
        by_kind[kind].append(ms)
    everything = [ms for _, ms, _, _ in results]
    print(f"\n{name}: {len(everything)} interactions")
    print(f"  {'interaction':12} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind, values in sorted(by_kind.items()):
        print(
            f"  {kind:12} {len(values):4d} {statistics.median(values):8.1f} "
            f"{_percentile(values, 0.95):8.1f} {max(values):8.1f}"
        )
    p95 = _percentile(everything, 0.95)
    print(
        f"  {'all':12} {len(everything):4d} {statistics.median(everything):8.1f} {p95:8.1f} {max(everything):8.1f}"
    )
    return p95


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=40, help="rounds of ~10 interactions")
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--project-catalog-cache",
        action="store_true",
        help="also time the same interactions with catalog lookups cached (a projection)",
    )
    args = parser.parse_args()
    db_path = _database(args.rows, args.seed)

    import forensics

    wb = forensics.open(db_path, read_only=True)
    t = time.perf_counter()
    dash = wb.dashboard()
    opened = time.perf_counter() - t
    rows = wb.counts()["requests"]
    print(
        f"{rows:,} requests; cubes: "
        + ", ".join(f"{c.name} {c.rows:,} rows {c.dims}" for c in wb.cubes())
    )
    print(f"dashboard opened in {opened:.1f} s (first update {dash.last_update.total_ms:.0f} ms)")
    _play(dash, 1, args.seed + 1000)  # warm up caches
    results = _play(dash, args.rounds, args.seed)
    p95 = _summary("cubes (the dashboard as shipped)", results)
    panels = defaultdict(list)
    for _, _, _, parts in results:
        for panel, ms in parts.items():
            panels[panel].append(ms)
    print(
        "  per panel, when recomputed: "
        + ", ".join(
            f"{p} p50 {statistics.median(v):.0f} / p95 {_percentile(v, 0.95):.0f} ms"
            for p, v in sorted(panels.items())
        )
    )
    encode = [e for _, _, e, _ in results]
    with_encode = [ms + e for _, ms, e, _ in results]
    print(
        f"  JSON-encoding the changed specs: p50 {statistics.median(encode):.1f} ms, "
        f"p95 {_percentile(encode, 0.95):.1f} ms; update + encoding p95 "
        f"{_percentile(with_encode, 0.95):.1f} ms"
    )

    if args.project_catalog_cache:
        with _catalog_cached(wb.db):
            cached = _play(wb.dashboard(), args.rounds, args.seed)
        _summary("projection: the same, with the catalog lookups cached (not shipped)", cached)

    with _raw_table_only():
        base_dash = wb.dashboard()
        baseline = _play(base_dash, args.baseline_rounds, args.seed)
    base_p95 = _summary("baseline: the same interactions from the raw table", baseline)
    print(f"\np95 ratio raw table / cubes: {base_p95 / p95:.1f}")
    verdict = "met" if p95 <= TARGET_P95_MS else "MISSED"
    print(f"p95 target <= {TARGET_P95_MS:.0f} ms per interaction: {verdict} ({p95:.1f} ms)")
    wb.close()


if __name__ == "__main__":
    main()
