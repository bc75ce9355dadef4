"""Dashboard benchmark: action to redraw, in the kernel and in a real browser.

Two parts, on the same database:

``kernel`` opens ``wb.dashboard()`` in this process and plays a seeded
sequence of an investigator's actions through the dashboard's own controls and
actions (each runs the one update path, ``Dashboard.update``), timing each:

  filter     choose values of a cubed dimension, or clear them
  group_by   another group-by dimension (or none)
  grain      day <-> hour
  signal     another signal
  dates      narrow or widen the date range (whole days)
  window     a window dragged on the timeline (``Dashboard.brushed``)
  region     a rectangle brushed on the heatmap: values x hours (``select_region``)
  click      a value clicked (or shift-clicked) in a chart (``filter_value``)
  signature  a signature picked: exact thresholds, its window, exposure over it
  sample     the request sample of the selection (the requests tab opened)

It prints p50/p95 per action and per panel, each panel judged against its
target: the views the cubes answer (headline, timeline + volume, heatmap,
filter counts) p95 <= 150 ms; the views that must read requests (the
comparison's long-tail values, the request sample, exposure, a signature's
exact thresholds) p95 <= 1 s.

``browser`` serves a notebook opening the same dashboard with Voilà on
loopback and drives Debian's headless Chromium (every request leaving the
machine refused, ``tests/browser.py``): choose a filter value, change the
group-by, toggle the grain, drag a window on the timeline, brush a heatmap
region, click a comparison bar, ask for another request sample, pick each
signature. Per action: milliseconds from the input event to the last change
of the dashboard's DOM (the redraw, found by a MutationObserver, then 600 ms
of quiet), next to the kernel's own time for that update (its status line).
The window brush includes the widget's 350 ms debounce (the browser sends a
dragged window only once the drag stops).

    python bench/dashboard.py [--rows N] [--rounds 3] [--part kernel|browser|both]
        [--baseline-rounds 0]

``--baseline-rounds N`` also plays the kernel's actions with every count read
from the raw ``requests`` table (the query helpers' cube lookup switched off).

By default the database is the shipped sample's demo database (~400k
requests); ``--rows N`` uses the cached postmortem simulation of
bench/queries.py (10M rows: generated once, minutes; not for a shared machine).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from queries import _database, _percentile  # noqa: E402  (the cached simulated databases)

CUBE_TARGET_MS = 150.0
RAW_TARGET_MS = 1000.0
READS_REQUESTS = {"compare", "requests", "exposure", "signature", "sample"}
"""Panels and actions that may read requests (long-tail values, samples, exact thresholds,
exposure); every other panel and action is answered by the cubes."""
QUIET_MS = 600
"""The DOM is taken as redrawn after this long without a change."""
ACTION_MS = 120_000


def _target(name: str) -> float:
    return RAW_TARGET_MS if name in READS_REQUESTS else CUBE_TARGET_MS


def _table(title: str, rows: dict[str, list[float]], *, judge: bool) -> None:
    print(f"\n{title}")
    head = f"  {'':12} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
    print(head + ("  target" if judge else ""))
    for name, values in sorted(rows.items()):
        p95 = _percentile(values, 0.95)
        line = (
            f"  {name:12} {len(values):4d} {statistics.median(values):8.1f} {p95:8.1f} "
            f"{max(values):8.1f}"
        )
        if judge:
            target = _target(name)
            line += f"  <= {target:.0f}: {'met' if p95 <= target else 'MISSED'}"
        print(line)


# -- kernel side ------------------------------------------------------------------------


@contextmanager
def _raw_table_only() -> Iterator[None]:
    """Every count query reads ``requests`` (the same questions, without cubes)."""
    from forensics.queries import counts, evidence

    original = counts._source

    def raw(db: Any, needed: Any, grain: Any, signal: Any, where: Any, **_: Any) -> Any:
        return counts._Source("requests", None, db.columns("requests"))

    counts._source = raw
    evidence._source = raw
    try:
        yield
    finally:
        counts._source = original
        evidence._source = original


def _actions(dash: Any, rng: random.Random) -> list[tuple[str, Callable[[], None]]]:
    """One round of actions: (kind, a function that performs it)."""
    cubed = {d for c in dash.data.cubes for d in c.dims}
    filters = dash.filter_panel.controls
    categorical = [n for n, c in filters.items() if hasattr(c, "select") and n in cubed]
    groupable = [v for _, v in dash.controls.group.options if v is None or v in cubed]

    def choose() -> None:
        control = filters[rng.choice(categorical)]
        control.select.value = tuple(rng.sample(control.order, k=max(1, len(control.order) // 2)))

    def clear() -> None:
        chosen = [n for n in categorical if filters[n].select.value]
        if chosen:
            filters[rng.choice(chosen)].select.value = ()
        else:
            choose()

    def group_by() -> None:
        dash.controls.group.value = rng.choice(
            [g for g in groupable if g != dash.controls.group.value]
        )

    def grain() -> None:
        dash.controls.grain.value = "hour" if dash.controls.grain.value == "day" else "day"

    def signal() -> None:
        options = [s for s in dash.controls.signal.options if s != dash.controls.signal.value]
        dash.controls.signal.value = rng.choice(options)

    def dates() -> None:
        days = len(dash.data.days)
        if dash.controls.dates.index == (0, days - 1):
            start = rng.randrange(0, days // 2)
            dash.controls.dates.index = (start, rng.randrange(min(start + 7, days - 1), days))
        else:
            dash.controls.dates.index = (0, days - 1)

    def _window() -> tuple[Any, Any]:
        state = dash.state()
        span = max(2, (state.end - state.start).days)
        start = state.start + timedelta(days=rng.randrange(0, span - 1), hours=rng.randrange(24))
        return start, start + timedelta(hours=rng.randrange(6, 72))

    def window() -> None:
        dash.brushed(_window())

    def region() -> None:
        by = dash.controls.group.value or rng.choice(categorical)
        values = filters[by].order if by in filters else []
        dash.select_region(by, tuple(rng.sample(values, k=min(2, len(values)))), _window())

    def click() -> None:
        name = rng.choice(categorical)
        dash.filter_value(name, rng.choice(filters[name].order), exclude=rng.random() < 0.3)

    steps = [("filter", choose), ("group_by", group_by), ("window", window)]
    steps += [("region", region), ("grain", grain), ("click", click), ("signal", signal)]
    steps += [("filter", clear), ("dates", dates), ("window", window), ("filter", clear)]
    return steps


def _kernel(db_path: Path, rounds: int, seed: int, *, baseline_rounds: int = 0) -> None:
    import forensics

    wb = forensics.open(db_path, read_only=True)
    t = time.perf_counter()
    dash = wb.dashboard()
    print(f"dashboard opened in {time.perf_counter() - t:.1f} s on {db_path}")
    t = time.perf_counter()
    found = dash.find_signatures()
    print(f"signature search: {len(found)} in {time.perf_counter() - t:.1f} s (not an action)")
    dash.filter_panel.accordion.selected_index = 0  # open: the lists count cross-filtered
    rng = random.Random(seed)
    actions: dict[str, list[float]] = defaultdict(list)
    cube_part: dict[str, list[float]] = defaultdict(list)
    panels: dict[str, list[float]] = defaultdict(list)
    for _kind, act in _actions(dash, rng):  # a warm-up round, not counted
        act()
    for _ in range(rounds):
        plays = _actions(dash, rng)
        plays += [("signature", (lambda s=s: dash.choose_signature(s.id))) for s in found]
        for kind, act in plays:
            t = time.perf_counter()
            act()
            actions[kind].append((time.perf_counter() - t) * 1000)
            done = dash.last_update.panels
            cube_part[kind].append(sum(ms for p, ms in done.items() if p not in READS_REQUESTS))
            for panel, ms in done.items():
                panels[panel].append(ms)
        dash.reset_filters()
        dash.tabs.selected_index = 1  # the requests tab: a sample of the selection
        t = time.perf_counter()
        dash.requests.another.click()  # another sample (the one shown is remembered)
        actions["sample"].append((time.perf_counter() - t) * 1000)
        dash.tabs.selected_index = 0
    _table("kernel: action -> update done, every panel (ms)", actions, judge=False)
    _table(
        "kernel: the same actions, the panels the cubes answer only (ms)",
        {k: v for k, v in cube_part.items() if k not in READS_REQUESTS},
        judge=True,
    )
    _table("kernel: per panel, when recomputed (ms)", panels, judge=True)
    if baseline_rounds:
        with _raw_table_only():
            raw = wb.dashboard()
            raw.filter_panel.accordion.selected_index = 0
            timed: dict[str, list[float]] = defaultdict(list)
            rng = random.Random(seed)
            for _ in range(baseline_rounds):
                for kind, act in _actions(raw, rng):
                    t = time.perf_counter()
                    act()
                    timed[kind].append((time.perf_counter() - t) * 1000)
        _table(
            "baseline: the same actions, every count from the raw table (ms)", timed, judge=False
        )
    wb.close()


# -- in the browser ---------------------------------------------------------------------

_RECORD = """() => {
    const root = document.querySelector('.forensics-dashboard');
    const status = root.querySelector('.forensics-status');
    window.__fx = {t0: performance.now(), last: 0, status: status ? status.innerText : ''};
    window.__fx.observer = new MutationObserver(() => { window.__fx.last = performance.now(); });
    window.__fx.observer.observe(root, {childList: true, subtree: true, characterData: true,
                                        attributes: true});
}"""
_DONE = """quiet => new Promise(done => {
    const check = () => {
        const fx = window.__fx;
        if (fx.last && performance.now() - fx.last >= quiet) {
            fx.observer.disconnect();
            const s = document.querySelector('.forensics-dashboard .forensics-status');
            done({ms: fx.last - fx.t0, status: s ? s.innerText : ''});
        } else { setTimeout(check, 50); }
    };
    check();
})"""


def _timed(page: Any, act: Callable[[], None], changed: str, arg: Any = None) -> tuple[float, str]:
    """Browser ms from the action to the last DOM change, and the status line then."""
    page.evaluate(_RECORD)
    act()
    page.wait_for_function(changed, arg=arg, timeout=ACTION_MS)
    result = page.evaluate(_DONE, QUIET_MS)
    return result["ms"], result["status"]


def _kernel_times(status: str) -> tuple[float, float] | None:
    """The kernel's whole update and its cube-answered panels, from the status line.

    >>> _kernel_times("updated in 212 ms (headline 20, timeline 31, compare 150, filters 9)")
    (212.0, 60.0)
    """
    total = re.search(r"updated in (\d+) ms \(([^)]*)\)", status)
    if total is None:
        return None
    parts = re.findall(r"(\w+) (\d+)", total.group(2))
    cube = sum(float(ms) for panel, ms in parts if panel not in READS_REQUESTS)
    return float(total.group(1)), cube


_STATUS_CHANGED = (
    "() => document.querySelector('.forensics-dashboard .forensics-status').innerText"
    " !== window.__fx.status"
)


def _browser(db_path: Path, rounds: int, seed: int) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser import drag, launch, notebook, offline_page, serve

    rng = random.Random(seed)
    browser_ms: dict[str, list[float]] = defaultdict(list)
    kernel_ms: dict[str, list[float]] = defaultdict(list)
    cube_ms: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        nb = notebook(
            Path(tmp) / "dash.ipynb",
            [
                "import forensics\n"
                f"wb = forensics.open({str(db_path)!r}, read_only=True)\n"
                "dash = wb.dashboard()\n"
                "dash"
            ],
        )
        env = {"PYTHONPATH": str(REPO)}
        with (
            serve("voila", nb, env=env, log=Path(tmp) / "voila.log", cwd=REPO) as server,
            sync_playwright() as p,
        ):
            browser = launch(p)
            try:
                page, console = offline_page(
                    browser, server.port, viewport={"width": 1400, "height": 3000}
                )
                t = time.perf_counter()
                page.goto(server.url, timeout=ACTION_MS)
                dash = page.locator(".forensics-dashboard")
                page.wait_for_function(
                    "() => document.querySelectorAll('.forensics-dashboard svg.marks').length >= 4",
                    timeout=300_000,
                )
                print(f"\nbrowser: dashboard drawn {time.perf_counter() - t:.1f} s after opening")
                charts = dash.locator(".vega-embed svg.marks")
                dash.locator(".forensics-filters .jupyter-widget-Collapse-header").click()
                first = dash.locator(".forensics-filter select").first
                first.wait_for(state="visible", timeout=30_000)

                def record(
                    kind: str, act: Callable[[], None], changed: str = _STATUS_CHANGED, arg=None
                ) -> None:
                    ms, status = _timed(page, act, changed, arg)
                    browser_ms[kind].append(ms)
                    kernel = _kernel_times(status) if changed is _STATUS_CHANGED else None
                    if kernel is not None:
                        kernel_ms[kind].append(kernel[0])
                        if kind not in READS_REQUESTS:
                            cube_ms[kind].append(kernel[1])

                group = dash.get_by_role("combobox", name="group by")
                groups = group.evaluate("s => Array.from(s.options).map(o => o.value)")
                for _ in range(rounds):
                    unchosen = first.evaluate(
                        "s => Array.from(s.options).flatMap((o, i) => o.selected ? [] : [i])"
                    )
                    index = rng.choice(unchosen)
                    record("filter", lambda i=index: first.select_option(index=i))
                    # another group-by, then back to the first cubed one (never the same twice)
                    now = group.input_value()
                    other = rng.choice([g for g in groups if g not in (now, groups[1])])
                    record("group_by", lambda g=other: group.select_option(g))
                    record("group_by", lambda: group.select_option(groups[1]))
                    for grain in ("hour", "day"):
                        record(
                            "grain",
                            lambda g=grain: dash.get_by_role("button", name=g, exact=True).click(),
                        )
                    box = charts.first.bounding_box()
                    a = rng.uniform(0.3, 0.6)
                    record("window", lambda b=box, a=a: drag(page, b, (a, 0.6), (a + 0.1, 0.6)))
                    cells = charts.nth(2).locator("g.heatmap_cells_marks").bounding_box()
                    record("region", lambda c=cells, a=a: drag(page, c, (a, 0.05), (a + 0.1, 0.4)))
                    bar = (
                        dash.locator(".vega-embed")
                        .nth(3)
                        .locator("path[aria-roledescription='bar']")
                    )
                    pick = bar.nth(rng.randrange(min(3, bar.count())))
                    record("click", pick.click)
                    record(
                        "reset",
                        lambda: dash.get_by_role("button", name="reset filters").click(),
                    )
                # the request sample: open the tab, then ask for others
                dash.locator(".lm-TabBar-tab", has_text="requests").click()
                page.locator(".forensics-sample").wait_for(timeout=ACTION_MS)
                caption = "b => document.querySelector('.forensics-requests').innerText !== b"
                another = dash.get_by_role("button", name="another sample")
                for _ in range(rounds):
                    before = page.evaluate(
                        "() => document.querySelector('.forensics-requests').innerText"
                    )
                    record("sample", another.click, caption, before)
                # the signatures: search in the background, then pick each one
                dash.locator(".lm-TabBar-tab", has_text="signatures").click()
                dash.get_by_role("button", name="find signatures").click()
                page.wait_for_function(
                    "() => /signatures? in \\d|No significant signature/.test("
                    "document.querySelector('.forensics-dashboard').innerText)",
                    timeout=600_000,
                )
                picker = dash.locator(".forensics-signature-picker select")
                count = picker.evaluate("s => s.options.length")
                for _ in range(rounds):
                    for i in range(1, count):
                        record("signature", lambda i=i: picker.select_option(index=i))
                warnings = console.vega_warnings()
                print(
                    f"page errors: {len(console.errors)}, Vega warnings: {len(warnings)}, "
                    f"requests refused: {len(console.refused)}"
                )
            finally:
                browser.close()
    _table("browser: action -> last redraw in the page (ms)", browser_ms, judge=False)
    _table("kernel side of the same updates, every panel (status line, ms)", kernel_ms, judge=False)
    _table("kernel side, the panels the cubes answer only (ms)", cube_ms, judge=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=None, help="the simulated database instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part", choices=["kernel", "browser", "both"], default="both")
    parser.add_argument(
        "--baseline-rounds", type=int, default=0, help="kernel: also without the cubes"
    )
    parser.add_argument(
        "--db", type=Path, help="this database instead (e.g. a Spark cache, bench/spark.py --keep)"
    )
    args = parser.parse_args()
    if args.db is not None:
        db_path = args.db
    elif args.rows:
        db_path = _database(args.rows, args.seed)
    else:
        import forensics

        db_path = forensics.demo_database(out=REPO / "bench" / "out" / "demo.duckdb")
    if args.part in ("kernel", "both"):
        _kernel(db_path, args.rounds, args.seed, baseline_rounds=args.baseline_rounds)
    if args.part in ("browser", "both"):
        _browser(db_path, args.rounds, args.seed)


if __name__ == "__main__":
    main()
