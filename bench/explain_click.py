"""Dashboard explanation benchmark: a moment clicked on the timeline, to the panel filled.

Opens ``wb.dashboard()`` on a database and clicks moments the way the browser
reports them (``Dashboard.explain_moment`` with the clicked bucket, the path a
click on the rate chart takes): hours and days drawn at random from the data
(seeded), at the hourly and daily grain, with no filter and with a filter on
one value of the first dimension. Prints, per case, the median and worst
milliseconds of the whole update (wall clock) and the process's CPU time:
on a shared machine the CPU time is what the explanation costs, the wall clock
what the investigator waited.

    python bench/explain_click.py [--db FILE] [--rows N] [--clicks 6] [--seed 1]

Default database: the shipped sample's demo database (~400k requests);
``--rows N`` uses the cached postmortem simulation of bench/queries.py.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--clicks", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import forensics

    if args.db is not None:
        path = args.db
    elif args.rows is not None:
        from queries import _database

        path = _database(args.rows, 1)
    else:
        path = forensics.demo_database()
    rng = random.Random(args.seed)
    with forensics.open(path, read_only=True) as wb:
        rows = wb.db.scalar("SELECT count(*) FROM requests")
        dash = wb.dashboard(signal="degraded", by=None)
        days = dash.data.days[2:]  # a clicked moment has some past before it
        first_dim = next(iter(dash.filters))
        value = dash.filter_panel.controls[first_dim].order[0]
        print(f"{path}: {rows:,} requests; clicks per case: {args.clicks}")
        for grain in ("hour", "day"):
            dash.grain_picker.value = grain
            for label, filtered in (("no filter", False), (f"{first_dim} = {value}", True)):
                dash.reset_filters()
                if filtered:
                    dash.filters[first_dim].value = (value,)
                walls, cpus, grains = [], [], set()
                for _ in range(args.clicks):
                    start = rng.choice(days)
                    if grain == "hour":
                        start += timedelta(hours=rng.randrange(24))
                    t0, c0 = time.perf_counter(), time.process_time()
                    shown = dash.explain_moment((start, start + STEPS[grain]))
                    walls.append((time.perf_counter() - t0) * 1000)
                    cpus.append((time.process_time() - c0) * 1000)
                    if shown is not None:
                        grains.add(str(shown.grain))
                print(
                    f"  click a {grain:4s} ({label:28s}): wall median {statistics.median(walls):6.0f}"
                    f" ms, max {max(walls):6.0f} ms; CPU median {statistics.median(cpus):6.0f} ms,"
                    f" max {max(cpus):6.0f} ms; explained at grain {', '.join(sorted(grains))}"
                )


if __name__ == "__main__":
    main()
