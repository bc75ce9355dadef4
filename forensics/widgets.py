"""The investigator's dashboard: ipywidgets controls and Altair charts over one Workbench.

Layout and events only. Every number comes from a ``Workbench`` question
(``timeline``, ``compare``, ``exposure``, ``signatures``; the headline rate
sums the timeline's counts, which is what ``rates`` returns for the same
filter) and every picture from ``charts``; this module decides what to ask
when a control changes and where to show the answer.

One update path, ``Dashboard.update()``, runs after every change of a control
(and is what ``bench/dashboard.py`` times). It recomputes only the panels whose
inputs changed: a new group-by redraws the timeline and heatmap but not the
comparison; a new incident window redraws the comparison only. The filters are
built so that the count queries can read a cube: dates snap to whole days,
numeric filters are ranges over the dimension's bucket edges, and a selected
incident window snaps to the timeline's grain. User exposure (per-user
sequences, which no cube holds) and the signature search take seconds on large
data, so they run when asked (a button), never on every change.

Charts are ``altair.JupyterChart`` widgets whose JavaScript is bundled offline
(vl-convert), so the dashboard needs no internet access; the bundle is built
once per Altair/vl-convert version and cached under ``~/.cache/forensics``.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import altair as alt
import ipywidgets as widgets
import polars as pl
from altair.utils.schemapi import debug_mode

from forensics import charts, stats
from forensics.db import Database
from forensics.errors import ForensicsError
from forensics.findings import View
from forensics.queries import Dimension, bucket_label, dimension_values, time_range
from forensics.stats import format_p_value

if TYPE_CHECKING:
    from forensics.analysis import Timeline
    from forensics.signature import Signature
    from forensics.workbench import Workbench

__all__ = [
    "BRUSH_DEBOUNCE_MS",
    "COMPARE_TOP",
    "PROGRESS_EVERY_S",
    "Dashboard",
    "DashboardState",
    "UpdateTimings",
    "show",
]

COMPARE_TOP = 15
"""Dimension values shown in the comparison chart."""

BRUSH_DEBOUNCE_MS = 350
"""The browser reports a dragged window this long after the drag stops (not while dragging)."""

PROGRESS_EVERY_S = 1.0
"""A running signature search redraws its progress line this often (seconds)."""

_CACHE = Path.home() / ".cache" / "forensics"


class Investigation(Protocol):
    """What the dashboard pins views to (``report.Investigation`` has it)."""

    def add_view(self, view: View) -> Any:
        """Keep a pinned view as a finding."""


# -- state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardState:
    """Everything the panels depend on, read from the controls."""

    signal: str
    """The signal whose rate is shown."""
    by: str | None
    """Group-by dimension of the timeline and heatmap (None: one overall series)."""
    grain: str
    """Time bucket: hour or day."""
    start: datetime
    """Start of the date range (a UTC midnight)."""
    end: datetime
    """End of the date range, exclusive (a UTC midnight)."""
    values: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """Categorical filters: (dimension, allowed values)."""
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    """Numeric filters: (dimension, gte, lt), bounds on bucket edges."""
    incident: tuple[datetime, datetime] | None = None
    """The incident window chosen by the investigator (None: found from change points)."""
    all_dimensions: bool = False
    """Compare on every dimension, including those no cube holds (reads raw rows)."""

    def where(self) -> dict[str, Any]:
        """The filter in the mapping form ``Workbench`` methods accept (JSON-friendly)."""
        out: dict[str, Any] = {c: list(v) for c, v in self.values}
        for c, gte, lt in self.ranges:
            out[c] = {k: v for k, v in (("gte", gte), ("lt", lt)) if v is not None}
        out["ts"] = [self.start.isoformat(), self.end.isoformat()]
        return out


@dataclass(frozen=True)
class UpdateTimings:
    """How long one update took, per panel (milliseconds)."""

    total_ms: float
    """The whole update, queries and charts."""
    panels: dict[str, float] = field(default_factory=dict)
    """Milliseconds per panel recomputed (``headline``, ``timeline``, ``compare``, ``charts``)."""


# -- offline charts -------------------------------------------------------------------


def _offline_bundle() -> str:
    """JupyterChart's JavaScript with Vega bundled in, cached on disk (built once, ~6 s)."""
    from importlib.metadata import version

    import vl_convert as vlc
    from altair.jupyter.jupyter_chart import load_js_src
    from altair.utils._importers import vl_version_for_vl_convert

    source = load_js_src()
    key = hashlib.sha256(
        f"{version('altair')} {version('vl-convert-python')} {vl_version_for_vl_convert()} "
        f"{source}".encode()
    ).hexdigest()[:16]
    path = _CACHE / f"jupyterchart-{key}.js"
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8")
    lines = source.split("\n")
    while lines and (not lines[0].strip() or lines[0].startswith(("import", "//"))):
        lines.pop(0)
    bundle: str = vlc.javascript_bundle("\n".join(lines), vl_version=vl_version_for_vl_convert())
    with contextlib.suppress(OSError):
        _CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(bundle, encoding="utf-8")
        tmp.replace(path)
    return bundle


_chart_class: type[alt.JupyterChart] | None = None


def _chart_widget(chart: Any, **kwargs: Any) -> alt.JupyterChart:
    """A JupyterChart whose JavaScript needs no network."""
    global _chart_class
    if _chart_class is None:
        _chart_class = type(
            "ForensicsChart",
            (alt.JupyterChart,),
            {"_esm": _offline_bundle(), "__module__": __name__},
        )
    return _chart_class(chart, **kwargs)


@contextlib.contextmanager
def _unvalidated() -> Iterator[None]:
    """Build charts without Altair's per-object schema validation (see ``_show``)."""
    with debug_mode(False):
        yield


def _show(view: alt.JupyterChart, chart: Any) -> None:
    """Send a chart to its widget as an unvalidated Vega-Lite dict.

    Setting ``view.chart`` would validate the whole specification against the
    Vega-Lite schema on every update, which costs more than the queries (25-50
    ms per chart, measured on the timeline). The builders' output is validated
    by the tests instead. The widget's selection names were registered when it
    was created from a chart with the same params.
    """
    with _unvalidated():
        spec = chart.to_dict(validate=False)
    spec["config"] = charts.CONFIG
    view.spec = spec


def show(chart: Any) -> alt.JupyterChart:
    """Display a chart (e.g. from ``charts``) styled, with tooltips, and without internet access.

    Examples
    --------
    ``show(charts.timeline_chart(wb.timeline("degraded").rates, signal="degraded"))``
    """
    return _chart_widget(charts.style(chart))


def _selection_stub() -> Any:
    """The smallest chart declaring the timeline's selection, to register its name."""
    brush = alt.selection_interval(name=charts.SELECTION, encodings=["x"])
    return (
        alt.Chart(alt.InlineData(values=[{"t": 0}]))
        .mark_point(opacity=0)
        .encode(x="t:Q")
        .add_params(brush)
    )


def _empty_chart(message: str) -> Any:
    return (
        alt.Chart(alt.InlineData(values=[{"m": message}]))
        .mark_text(align="left", fontSize=13, color="#666")
        .encode(text="m:N", x=alt.value(0), y=alt.value(12))
        .properties(width=400, height=24)
    )


# -- helpers --------------------------------------------------------------------------


def _utc(t: Any) -> datetime:
    if isinstance(t, datetime):
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    if isinstance(t, int | float):
        return datetime.fromtimestamp(t / 1000, tz=UTC)
    return datetime.fromisoformat(str(t).replace("Z", "+00:00")).astimezone(UTC)


def _floor(t: datetime, grain: str) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if grain == "day" else t


def _ceil(t: datetime, grain: str) -> datetime:
    floor = _floor(t, grain)
    step = timedelta(days=1) if grain == "day" else timedelta(hours=1)
    return floor if floor == t else floor + step


def _bounds(edges: Sequence[float], i: int, j: int) -> tuple[float | None, float | None]:
    """(gte, lt) of a range slider over bucket edges; position ``len(edges)`` is infinity.

    The first position means "from the lowest value" (values below the first
    edge share its bucket); equal positions select the one bucket starting there.

    Examples
    --------
    >>> _bounds((0.0, 8.0, 64.0), 0, 3), _bounds((0.0, 8.0, 64.0), 1, 2), _bounds((0.0, 8.0, 64.0), 2, 2)
    ((None, None), (8.0, 64.0), (64.0, None))
    """
    if j <= i:
        i, j = min(i, len(edges) - 1), min(i, len(edges) - 1) + 1
    return (None if i == 0 else edges[i]), (None if j >= len(edges) else edges[j])


def _pct(x: float | None, digits: int = 2) -> str:
    if x is None or x != x:
        return "–"
    return f"{100 * x:.{digits}f}%"


def _label(value: Any) -> str:
    return "(missing)" if value is None else str(value)


_CSS = """
<style>
.fx-head { font: 14px/1.4 Inter, 'Helvetica Neue', Arial, sans-serif; color: #222; }
.fx-head b { font-weight: 600; }
.fx-muted { color: #666; font-size: 12px; }
.fx-rate { font-size: 26px; font-weight: 600; color: #b2182b; margin-right: 6px; }
.fx-ci { color: #444; margin-right: 14px; }
.fx-table { border-collapse: collapse; font: 12px Inter, 'Helvetica Neue', Arial, sans-serif; }
.fx-table th { text-align: left; border-bottom: 1px solid #bbb; padding: 3px 8px; }
.fx-table td { border-bottom: 1px solid #eee; padding: 3px 8px; vertical-align: top; }
.fx-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.fx-section { font: 600 13px Inter, 'Helvetica Neue', Arial, sans-serif; margin: 8px 0 2px; }
</style>
"""


def _roles_note(roles: pl.DataFrame) -> str:
    """The line under the filters naming the outcomes, with the rule behind each on hover."""
    outcomes = roles.filter(pl.col("role") == "outcome")
    if outcomes.height == 0:
        return "<span class='fx-muted'>outcomes (never slices): none</span>"
    names = ", ".join(
        f"<span title='{html.escape(f'outcome: {why}', quote=True)}'>{html.escape(name)}</span>"
        for name, why in outcomes.select("column", "why").iter_rows()
    )
    return (
        f"<span class='fx-muted forensics-outcomes'>outcomes (never slices): {names} · "
        "look at one with <code>wb.rates(by=...)</code>; "
        "<code>[roles]</code> in a mapping file changes them</span>"
    )


class _Progress:
    """A running search in an HTML widget: seconds so far and its latest message.

    Called with each message the search reports; a timer thread also redraws
    it every ``PROGRESS_EVERY_S`` so that a long step without messages still
    shows the search is alive (widget changes reach the browser from any
    thread).
    """

    def __init__(self, view: widgets.HTML) -> None:
        self.view = view
        self.message = "preparing the workspace"
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="forensics-progress", daemon=True)

    def __call__(self, message: str) -> None:
        self.message = message
        self._draw()

    def _draw(self) -> None:
        seconds = time.perf_counter() - self.started
        self.view.value = (
            f"<span class='fx-muted forensics-searching'>searching… {seconds:.0f} s · "
            f"{html.escape(self.message)}</span>"
        )

    def _tick(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY_S):
            self._draw()

    def __enter__(self) -> _Progress:
        self._draw()
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join()


# -- the dashboard --------------------------------------------------------------------


class Dashboard:
    """Slice degradation by any dimension, pick the incident window, compare and pin findings.

    Parameters
    ----------
    wb
        The workbench to read (``forensics.open(db)``).
    investigation
        Where "add to report" pins views: any object with ``add_view(view)``
        (``report.Investigation``). Pinned views are also kept in ``pinned``.
    signal
        Signal shown first (default ``degraded`` when present).
    by
        Group-by shown first (default: the first dimension of the smallest
        cube; None for one overall series).
    grain
        ``"day"`` or ``"hour"``.

    Examples
    --------
    ``forensics.open("build/demo/demo.duckdb").dashboard()`` in a notebook cell.
    """

    def __init__(
        self,
        wb: Workbench,
        *,
        investigation: Investigation | None = None,
        signal: str | None = None,
        by: str | None = "",
        grain: str = "day",
    ) -> None:
        self.wb = wb
        self.investigation = investigation
        self.pinned: list[View] = []
        """Views pinned with "add to report", oldest first."""
        self.signatures: list[Signature] = []
        """Signatures found with the "find signatures" button (``Workbench.signatures``)."""
        self._search: Future[list[Signature]] | None = None
        self.last_update = UpdateTimings(0.0)
        """Timings of the most recent update."""
        signals = wb.signals()
        if not signals:
            raise ForensicsError(
                f"{wb.path} holds no requests yet; load some with `forensics ingest FILE "
                f"--db {wb.path}` (or `forensics demo`) before opening the dashboard"
            )
        self._dims: dict[str, Dimension] = {d.name: d for d in wb.dimensions()}
        self._cubes = wb.cubes()
        self._values = {name: dimension_values(wb.db, name) for name in self._dims}
        self._colors = {name: self._value_colors(name) for name in self._dims}
        first, last = time_range(wb.db)
        if first is None or last is None:
            raise ForensicsError(f"{wb.path} holds no requests with a time")
        self._first_day = _floor(first, "day")
        self._last_day = _ceil(last, "day")
        self._hold = 0
        self._keys: dict[str, Any] = {}
        self._timeline: Timeline | None = None
        self._incident: tuple[datetime, datetime] | None = None
        self._window_used: tuple[datetime, datetime] | None = None
        self._baseline_used: tuple[datetime | None, datetime | None] | None = None
        self._compare: pl.DataFrame | None = None
        self._chosen_signature: str | None = None
        self._build_controls(signals, signal, by, grain)
        self._build_views()
        self.widget = self._layout()
        """The root widget (displaying the dashboard displays it)."""
        self.update()

    # -- construction ----------------------------------------------------------------

    def _value_colors(self, name: str) -> dict[str, str]:
        d = self._dims[name]
        values = self._values[name]["value"].to_list()
        if d.kind == "numeric":
            values = sorted(v for v in values if v is not None)
            return charts.value_colors([bucket_label(d.edges, v) for v in values])
        return charts.value_colors(values)

    def _build_controls(
        self, signals: list[str], signal: str | None, by: str | None, grain: str
    ) -> None:
        self.signal_picker = widgets.Dropdown(
            options=signals,
            value=signal or ("degraded" if "degraded" in signals else signals[0]),
            description="signal",
            layout=widgets.Layout(width="250px"),
        )
        groupable = [d.name for d in self._dims.values() if d.cubable]
        if by == "":
            in_cube = [d for c in self._cubes for d in c.dims if d in groupable]
            by = in_cube[0] if in_cube else (groupable[0] if groupable else None)
        self.group_picker = widgets.Dropdown(
            options=[("(none)", None), *((g, g) for g in groupable)],
            value=by,
            description="group by",
            layout=widgets.Layout(width="250px"),
        )
        self.grain_picker = widgets.ToggleButtons(
            options=["day", "hour"], value=grain, style={"button_width": "56px"}
        )
        days = []
        t = self._first_day
        while t < self._last_day:
            days.append(t)
            t += timedelta(days=1)
        self._days = days
        self.date_range = widgets.SelectionRangeSlider(
            options=[(d.strftime("%b %d"), d) for d in days],
            index=(0, len(days) - 1),
            description="dates (UTC)",
            continuous_update=False,
            layout=widgets.Layout(width="520px"),
            style={"description_width": "80px"},
        )
        self.filters: dict[str, widgets.Widget] = {}
        """One control per dimension: a multi-select of values, or a range of buckets."""
        for d in self._dims.values():
            if d.kind == "numeric":
                if len(d.edges) < 2:
                    continue
                self.filters[d.name] = widgets.SelectionRangeSlider(
                    options=[*((f"{e:g}", i) for i, e in enumerate(d.edges)), ("∞", len(d.edges))],
                    index=(0, len(d.edges)),
                    continuous_update=False,
                    layout=widgets.Layout(width="205px"),
                )
            else:
                frame = self._values[d.name]
                self.filters[d.name] = widgets.SelectMultiple(
                    options=[
                        (f"{_label(v)}  ({n:,})", v)
                        for v, n in zip(frame["value"], frame["requests"], strict=True)
                    ],
                    value=(),
                    rows=min(4, max(frame.height, 1)),
                    layout=widgets.Layout(width="205px"),
                )
        self.reset_button = widgets.Button(
            description="reset filters", icon="undo", layout=widgets.Layout(width="120px")
        )
        self.clear_window_button = widgets.Button(
            description="automatic window",
            icon="magic",
            tooltip="Forget the chosen incident window; use the strongest detected rise",
            layout=widgets.Layout(width="160px"),
        )
        self.compare_all = widgets.Checkbox(
            value=False,
            description="every dimension (reads raw rows: slower)",
            indent=False,
            layout=widgets.Layout(width="320px"),
        )
        self.exposure_button = widgets.Button(
            description="compute exposure", icon="users", layout=widgets.Layout(width="170px")
        )
        self.find_button = widgets.Button(
            description="find signatures", icon="search", layout=widgets.Layout(width="160px")
        )
        self.signature_picker = widgets.Select(
            options=[], rows=6, layout=widgets.Layout(width="100%")
        )
        self.note = widgets.Text(
            placeholder="note for the report (what this view shows)",
            layout=widgets.Layout(width="420px"),
        )
        self.pin_button = widgets.Button(
            description="add to report",
            icon="thumb-tack",
            button_style="primary",
            layout=widgets.Layout(width="150px"),
        )
        for name, control in self.filters.items():
            control.add_class("forensics-filter").add_class(f"forensics-filter-{name}")
        for control in (
            self.signal_picker,
            self.group_picker,
            self.grain_picker,
            self.date_range,
            self.compare_all,
            *self.filters.values(),
        ):
            control.observe(self._on_control, names="value")
        self.reset_button.on_click(lambda _b: self.reset_filters())
        self.clear_window_button.on_click(lambda _b: self.select_window(None))
        self.exposure_button.on_click(lambda _b: self.show_exposure())
        self.find_button.on_click(lambda _b: self.start_signature_search())
        self.pin_button.on_click(lambda _b: self.pin())
        self.signature_picker.observe(self._on_signature, names="value")

    def _build_views(self) -> None:
        self.header = widgets.HTML()
        self.headline = widgets.HTML()
        """The overall rate of the signal under the current filter, with its interval."""
        self.status = widgets.HTML()
        self.pinned_list = widgets.HTML()
        self.exposure_text = widgets.HTML(
            "<span class='fx-muted'>Per-user sequences are not in the cubes, so exposure "
            "is computed when asked.</span>"
        )
        self.signature_table = widgets.HTML(
            "<span class='fx-muted'>The search takes seconds; press the button.</span>"
        )
        self.roles_note = widgets.HTML(_roles_note(self.wb.roles()))
        """The outcome columns (measured, never filters or slices), under the filters."""
        self.timeline_view = _chart_widget(
            _selection_stub(), debounce_wait=BRUSH_DEBOUNCE_MS, max_wait=False
        )
        self.heatmap_view = _chart_widget(_empty_chart("loading…"))
        self.compare_view = _chart_widget(_empty_chart("loading…"))
        self.exposure_view = _chart_widget(_empty_chart("press “compute exposure”"))
        self.timeline_view.observe(self._on_brush, names="_vl_selections")
        self.header.value = (
            f"{_CSS}<div class='fx-head'><b>forensics</b> · "
            f"<code>{html.escape(self.wb.path)}</code> · {self.wb.counts()['requests']:,} "
            f"requests · {self._first_day:%Y-%m-%d} – "
            f"{self._last_day - timedelta(days=1):%Y-%m-%d} UTC · "
            f"{len(self._dims)} dimensions</div>"
        )

    def _layout(self) -> widgets.Widget:
        cells = []
        for name, control in self.filters.items():
            cells.append(
                widgets.VBox(
                    [widgets.HTML(f"<span class='fx-muted'>{html.escape(name)}</span>"), control],
                    layout=widgets.Layout(margin="0 6px 4px 0"),
                )
            )
        grid = widgets.GridBox(
            cells, layout=widgets.Layout(grid_template_columns="repeat(auto-fill, 215px)")
        )
        self.filter_panel = widgets.Accordion(
            children=[widgets.VBox([grid, self.roles_note])],
            titles=("filters (ctrl/cmd-click to choose several values)",),
        )
        self.filter_panel.selected_index = 0
        toolbar = widgets.HBox(
            [self.signal_picker, self.group_picker, self.grain_picker],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
        )
        dates = widgets.HBox(
            [self.date_range, self.reset_button], layout=widgets.Layout(align_items="center")
        )
        pin_row = widgets.HBox(
            [self.note, self.pin_button, self.pinned_list],
            layout=widgets.Layout(align_items="center"),
        )
        compare_box = widgets.VBox(
            [widgets.HBox([self.clear_window_button, self.compare_all]), self.compare_view]
        )
        exposure_box = widgets.VBox([self.exposure_button, self.exposure_text, self.exposure_view])
        signature_box = widgets.VBox(
            [self.find_button, self.signature_table, self.signature_picker]
        )
        self.tabs = widgets.Tab(
            children=[compare_box, exposure_box, signature_box],
            titles=("incident vs baseline", "user exposure", "signatures"),
        )
        return widgets.VBox(
            [
                self.header,
                toolbar,
                dates,
                self.filter_panel,
                self.headline,
                pin_row,
                self.status,
                self.timeline_view,
                self.heatmap_view,
                self.tabs,
            ],
            layout=widgets.Layout(width="100%"),
        ).add_class("forensics-dashboard")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- reading the controls ----------------------------------------------------------

    def state(self) -> DashboardState:
        """The controls' current values as one immutable state."""
        first, last = self.date_range.value
        values, ranges = [], []
        for name, control in self.filters.items():
            if isinstance(control, widgets.SelectMultiple):
                if control.value:
                    values.append((name, tuple(control.value)))
                continue
            gte, lt = _bounds(self._dims[name].edges, *control.index)
            if gte is not None or lt is not None:
                ranges.append((name, gte, lt))
        return DashboardState(
            signal=self.signal_picker.value,
            by=self.group_picker.value,
            grain=self.grain_picker.value,
            start=first,
            end=last + timedelta(days=1),
            values=tuple(values),
            ranges=tuple(ranges),
            incident=self._incident,
            all_dimensions=self.compare_all.value,
        )

    def where(self) -> dict[str, Any]:
        """The current filter in the mapping form (see ``DashboardState.where``)."""
        return self.state().where()

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Change several controls at once with one update at the end."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
        if not self._hold:
            self.update()

    def _on_control(self, _change: Any) -> None:
        if not self._hold:
            self.update()

    # -- the update path ---------------------------------------------------------------

    def update(self) -> UpdateTimings:
        """Recompute the panels whose inputs changed and redraw them.

        Returns
        -------
        UpdateTimings
            Milliseconds for the whole update and per panel (also shown in the
            status line and kept in ``last_update``).
        """
        t0 = time.perf_counter()
        panels: dict[str, float] = {}
        state = self.state()
        where = state.where()
        scope = json.dumps(where, sort_keys=True, default=str)
        try:
            timeline_changed = self._update_timeline(state, where, scope, panels)
            self._update_headline(state, where, scope, panels)
            window, baseline = self._windows(state)
            compare_changed = self._update_compare(state, where, scope, window, baseline, panels)
            t = time.perf_counter()
            if timeline_changed or window != self._window_used:
                # A dragged window is redrawn too: the shaded band shows it snapped to the
                # grain, and the shade of the previous window must go.
                self._draw_timeline(state, where, window)
            if compare_changed:
                self._draw_compare(state, where, window, baseline)
            self._window_used = window
            if self._keys.get("exposure") not in (None, (state.signal, scope)):
                self.exposure_text.value = (
                    "<span class='fx-muted'>The filters changed since this was computed; "
                    "press the button to recompute.</span>"
                )
            panels["charts"] = (time.perf_counter() - t) * 1000
            error = ""
        except ForensicsError as exc:
            error = f"<span style='color:#b2182b'>error: {html.escape(str(exc))}</span>"
        total = (time.perf_counter() - t0) * 1000
        self.last_update = UpdateTimings(total, panels)
        detail = ", ".join(f"{k} {v:.0f}" for k, v in panels.items())
        self.status.value = (
            f"<span class='fx-muted'>updated in {total:.0f} ms ({detail or 'nothing changed'})"
            f"{self._raw_hint(state)}</span> {error}"
        )
        return self.last_update

    def _update_headline(
        self, state: DashboardState, where: dict[str, Any], scope: str, panels: dict[str, float]
    ) -> None:
        key = (state.signal, scope)
        if self._keys.get("headline") == key:
            return
        t = time.perf_counter()
        # The timeline's buckets partition the filtered requests: their sums are the
        # counts wb.rates(where=...) would return, without another query.
        assert self._timeline is not None
        totals = self._timeline.rates.select(pl.col("n").sum(), pl.col("k").sum())
        overall = stats.rate_table(totals).row(0, named=True)
        n, k = overall["n"], overall["k"]
        filt = charts.describe_where(where)
        self.headline.value = (
            "<div class='fx-head'>"
            f"<span class='fx-rate forensics-rate'>{_pct(overall['rate'])}</span>"
            f"<span class='fx-ci'>{html.escape(state.signal)} · 95% CI "
            f"[{_pct(overall['ci_low'])} – {_pct(overall['ci_high'])}]</span>"
            f"<span class='forensics-counts'><b>{k:,}</b> of <b>{n:,}</b> requests</span><br>"
            f"<span class='fx-muted'>{html.escape(filt)} · "
            f"{html.escape(charts.describe_window(state.start, state.end))}</span></div>"
        )
        self._keys["headline"] = key
        panels["headline"] = (time.perf_counter() - t) * 1000

    def _update_timeline(
        self, state: DashboardState, where: dict[str, Any], scope: str, panels: dict[str, float]
    ) -> bool:
        key = (state.signal, state.by, state.grain, scope)
        if self._keys.get("timeline") == key:
            return False
        t = time.perf_counter()
        self._timeline = self.wb.timeline(
            state.signal,
            by=[state.by] if state.by else [],
            grain="hour" if state.grain == "hour" else "day",
            where=where,
        )
        self._keys["timeline"] = key
        panels["timeline"] = (time.perf_counter() - t) * 1000
        return True

    def _windows(
        self, state: DashboardState
    ) -> tuple[tuple[datetime, datetime] | None, tuple[datetime | None, datetime | None] | None]:
        """The incident window (chosen, else the strongest detected rise) and its baseline."""
        window = state.incident
        if window is None and self._timeline is not None:
            window = self._detected_window(self._timeline.change_points, state)
        if window is None:
            return None, None
        start = max(window[0], state.start)
        end = min(window[1], state.end)
        if end <= start:
            return None, None
        if start > state.start:
            return (start, end), (state.start, start)
        if end < state.end:
            return (start, end), (end, state.end)
        return (start, end), None

    @staticmethod
    def _detected_window(
        change_points: pl.DataFrame, state: DashboardState
    ) -> tuple[datetime, datetime] | None:
        """From the strongest upward change point to the next downward one (or the end)."""
        if change_points.height == 0:
            return None
        ups = change_points.filter(pl.col("direction") == "up")
        if ups.height == 0:
            return None
        ratio = (pl.col("rate_after") / pl.col("rate_before")).fill_nan(None)
        strongest = ups.sort(ratio, descending=True, nulls_last=True).row(0, named=True)
        start = strongest["ts"]
        downs = change_points.filter((pl.col("direction") == "down") & (pl.col("ts") > start))
        end = downs["ts"].min() if downs.height else state.end
        return _utc(start), _utc(end)

    def _compare_dims(self, state: DashboardState) -> list[str] | None:
        """Dimensions a cube can answer together with the filter (None: all of them)."""
        if state.all_dimensions:
            return None
        filtered = {c for c, _ in state.values} | {c for c, _, _ in state.ranges}
        single = {c for c, allowed in state.values if len(allowed) == 1}
        dims = []
        for name in self._dims:
            if name in single:  # filtered to one value: it cannot explain anything
                continue
            needed = filtered | {name}
            if any(needed <= set(c.dims) for c in self._cubes):
                dims.append(name)
        return dims

    def _update_compare(
        self,
        state: DashboardState,
        where: dict[str, Any],
        scope: str,
        window: tuple[datetime, datetime] | None,
        baseline: tuple[datetime | None, datetime | None] | None,
        panels: dict[str, float],
    ) -> bool:
        dims = self._compare_dims(state)
        key = (state.signal, scope, window, baseline, tuple(dims or ()), dims is None)
        if self._keys.get("compare") == key:
            return False
        self._keys["compare"] = key
        if window is None or baseline is None:
            self._compare = None
            return True
        t = time.perf_counter()
        scoped = {k: v for k, v in where.items() if k != "ts"}
        self._compare = self.wb.compare(
            state.signal, incident=window, baseline=baseline, dims=dims, where=scoped
        )
        self._baseline_used = baseline
        panels["compare"] = (time.perf_counter() - t) * 1000
        return True

    # -- drawing ----------------------------------------------------------------------

    def _edges(self) -> dict[str, tuple[float, ...]]:
        return {n: d.edges for n, d in self._dims.items() if d.kind == "numeric"}

    def _timeline_chart(
        self,
        state: DashboardState,
        where: Mapping[str, Any],
        window: tuple[datetime, datetime] | None,
        *,
        selection: bool = True,
    ) -> Any:
        assert self._timeline is not None
        by = [state.by] if state.by else []
        return charts.timeline_chart(
            self._timeline.rates,
            signal=state.signal,
            by=by,
            grain=state.grain,
            events=self._timeline.events,
            change_points=self._timeline.change_points,
            colors=self._colors.get(state.by or "", {}),
            edges=self._edges(),
            highlight=window,
            where=where,
            selection=selection,
        )

    def _draw_timeline(
        self,
        state: DashboardState,
        where: Mapping[str, Any],
        window: tuple[datetime, datetime] | None,
    ) -> None:
        if self._timeline is None:
            return
        with _unvalidated():
            _show(self.timeline_view, self._timeline_chart(state, where, window))
            if not state.by:
                _show(
                    self.heatmap_view,
                    _empty_chart(
                        "Choose a group-by dimension to see where the signal concentrates."
                    ),
                )
                return
            heatmap = charts.heatmap_chart(
                self._timeline.rates,
                signal=state.signal,
                by=[state.by],
                grain=state.grain,
                edges=self._edges(),
                order=list(self._colors.get(state.by, {})),
                highlight=window,
                where=where,
            )
            _show(self.heatmap_view, heatmap)

    def _draw_compare(
        self,
        state: DashboardState,
        where: Mapping[str, Any],
        window: tuple[datetime, datetime] | None,
        baseline: tuple[datetime | None, datetime | None] | None,
    ) -> None:
        if self._compare is None or window is None or baseline is None:
            message = (
                "No rise detected in this range: drag across the timeline to pick an incident "
                "window."
                if window is None
                else "The incident window covers the whole date range: widen the dates or pick "
                "a shorter window."
            )
            _show(self.compare_view, _empty_chart(message))
            return
        with _unvalidated():
            _show(self.compare_view, self._comparison_chart(state, where, window, baseline))

    def _comparison_chart(
        self,
        state: DashboardState,
        where: Mapping[str, Any],
        window: tuple[datetime, datetime],
        baseline: tuple[datetime | None, datetime | None],
    ) -> Any:
        assert self._compare is not None
        return charts.comparison_chart(
            self._compare,
            signal=state.signal,
            incident=window,
            baseline=baseline,
            top=COMPARE_TOP,
            where={k: v for k, v in where.items() if k != "ts"},
        )

    def _raw_hint(self, state: DashboardState) -> str:
        needed = {c for c, _ in state.values} | {c for c, _, _ in state.ranges}
        if state.by:
            needed.add(state.by)
        if not needed or any(needed <= set(c.dims) for c in self._cubes):
            return ""
        dims = sorted(needed)
        return (
            f" · no cube holds {', '.join(dims)} together, so this read the raw rows; "
            f"<code>wb.cube({dims!r})</code> makes it fast"
        )

    # -- actions ----------------------------------------------------------------------

    def reset_filters(self) -> None:
        """Clear every filter and restore the full date range."""
        with self.holding():
            for control in self.filters.values():
                if isinstance(control, widgets.SelectMultiple):
                    control.value = ()
                else:
                    control.index = (0, len(control.options) - 1)
            self.date_range.index = (0, len(self._days) - 1)

    def set_filters(self, predicate: Mapping[str, Any]) -> None:
        """Set the filters to a predicate (column -> values, or {"gte", "lt"}); others cleared.

        Numeric bounds that fall between bucket edges widen to the enclosing buckets.
        """
        with self.holding():
            for name, control in self.filters.items():
                spec = predicate.get(name)
                if isinstance(control, widgets.SelectMultiple):
                    allowed = {v for _, v in control.options}
                    wanted = [] if spec is None else [spec] if isinstance(spec, str) else list(spec)
                    control.value = tuple(v for v in wanted if v in allowed)
                    continue
                edges = self._dims[name].edges
                i, j = 0, len(edges)
                if isinstance(spec, Mapping):
                    if spec.get("gte") is not None:
                        i = max([0, *(k for k, e in enumerate(edges) if e <= spec["gte"])])
                    if spec.get("lt") is not None:
                        j = min([len(edges), *(k for k, e in enumerate(edges) if e >= spec["lt"])])
                control.index = (i, max(i + 1, j))

    def select_window(self, window: tuple[Any, Any] | None, *, grain: str = "hour") -> None:
        """Set the incident window of the comparison (None: the strongest detected rise).

        Bounds snap outwards to whole hours (or days with ``grain="day"``) so
        that the counts come from a cube. A window dragged on the timeline
        snaps to the timeline's grain.
        """
        if window is None:
            self._incident = None
        else:
            start, end = _floor(_utc(window[0]), grain), _ceil(_utc(window[1]), grain)
            if end <= start:
                end = start + (timedelta(days=1) if grain == "day" else timedelta(hours=1))
            self._incident = (start, end)
        if not self._hold:
            self.update()

    def _on_brush(self, change: Any) -> None:
        selection = (change["new"] or {}).get(charts.SELECTION) or {}
        value = selection.get("value") or {}
        bounds = value.get("ts") if isinstance(value, Mapping) else None
        if bounds and len(bounds) == 2:
            self.select_window((bounds[0], bounds[1]), grain=self.grain_picker.value)

    def show_exposure(self) -> None:
        """Compute and show user exposure under the current filter (reads raw rows)."""
        state = self.state()
        where = state.where()
        t = time.perf_counter()
        try:
            exposure = self.wb.exposure(state.signal, where=where)
        except ForensicsError as exc:
            self.exposure_text.value = f"<span style='color:#b2182b'>{html.escape(str(exc))}</span>"
            return
        with _unvalidated():
            _show(self.exposure_view, charts.exposure_chart(exposure, where=where))
        self._keys["exposure"] = (state.signal, json.dumps(where, sort_keys=True, default=str))
        self.exposure_text.value = (
            f"<span class='fx-muted'>computed in {(time.perf_counter() - t) * 1000:.0f} ms for "
            f"{html.escape(charts.describe_where(where))} · "
            f"{html.escape(charts.describe_window(state.start, state.end))}</span>"
        )

    def find_signatures(self) -> list[Signature]:
        """Search for the separate problems (``Workbench.signatures``) and list them.

        Runs here and returns when the search is done (seconds to tens of
        seconds on large data); the panel shows its progress meanwhile. The
        "find signatures" button runs ``start_signature_search`` instead, so
        that the other panels keep answering.
        """
        return self._search_and_show(self.wb)

    def start_signature_search(self) -> Future[list[Signature]]:
        """Start the signature search in a background thread and return its future.

        The search reads the database through a connection of its own (its
        working tables are that connection's), so the other panels keep
        updating on the dashboard's connection while it runs; the panel shows
        its progress and, when it ends, the signatures (``future.result()``
        gives them too). An in-memory database has no second connection: the
        search runs here. A search already running is not started again.
        """
        if self._search is not None and not self._search.done():
            return self._search
        future: Future[list[Signature]] = Future()
        self._search = future
        if self.wb.path == ":memory:":
            future.set_result(self.find_signatures())
            return future

        def search() -> None:
            from forensics.workbench import Workbench

            try:
                db = Database(
                    self.wb.path, read_only=self.wb.db.read_only, config=self.wb.db.config
                )
                with Workbench(db) as own:
                    future.set_result(self._search_and_show(own))
            except BaseException as exc:
                self._searching(False)
                failed = html.escape(repr(exc))
                self.signature_table.value = (
                    f"<span style='color:#b2182b'>the search failed: {failed}</span>"
                )
                future.set_exception(exc)

        self._searching(True)
        threading.Thread(target=search, name="forensics-signatures", daemon=True).start()
        return future

    def _searching(self, busy: bool) -> None:
        """The button while a search runs: disabled, with a spinning icon."""
        self.find_button.disabled = busy
        self.find_button.icon = "spinner spin" if busy else "search"
        self.find_button.description = "searching…" if busy else "find signatures"

    def _search_and_show(self, wb: Workbench) -> list[Signature]:
        self._searching(True)
        t = time.perf_counter()
        try:
            with _Progress(self.signature_table) as progress:
                found = wb.signatures(progress=progress)
        except ForensicsError as exc:
            self.signature_table.value = (
                f"<span style='color:#b2182b'>{html.escape(str(exc))}</span>"
            )
            return []
        finally:
            self._searching(False)
        self.signatures = list(found)
        self.signature_table.value = self._signature_html(time.perf_counter() - t)
        options: list[tuple[str, str | None]] = [("(none: keep the current filters)", None)]
        options += [(self._signature_line(s), s.id) for s in self.signatures]
        self.signature_picker.unobserve(self._on_signature, names="value")
        self.signature_picker.options = options
        self.signature_picker.value = None
        self.signature_picker.observe(self._on_signature, names="value")
        return self.signatures

    @staticmethod
    def _predicate_text(predicate: Mapping[str, Any]) -> str:
        parts = []
        for column, spec in predicate.items():
            if isinstance(spec, Mapping):
                parts.append(charts.describe_where({column: spec}))
            else:
                values = [spec] if isinstance(spec, str) else list(spec)
                parts.append(charts.describe_where({column: values}))
        return " · ".join(parts) or "all requests"

    def _signature_line(self, s: Signature) -> str:
        end = "still active" if s.end is None else f"{s.end:%m-%d %H:%M}"
        return (
            f"{s.id}: {self._predicate_text(s.predicate)} · {s.start:%m-%d %H:%M} → {end} · "
            f"{', '.join(s.signals)}"
        )

    def _signature_html(self, seconds: float) -> str:
        if not self.signatures:
            return (
                f"<span class='fx-muted'>No significant signature found ({seconds:.1f} s).</span>"
            )
        rows = []
        for s in self.signatures:
            end = "still active" if s.end is None else f"{s.end:%Y-%m-%d %H:%M}"
            rows.append(
                "<tr>"
                f"<td><b>{html.escape(s.id)}</b></td>"
                f"<td>{html.escape(self._predicate_text(s.predicate))}</td>"
                f"<td>{s.start:%Y-%m-%d %H:%M} → {html.escape(end)}</td>"
                f"<td>{html.escape(', '.join(s.signals))}</td>"
                f"<td class='num'>{_pct(s.excess_rate)} [{_pct(s.ci[0])} – {_pct(s.ci[1])}]</td>"
                f"<td class='num'>{s.requests:,}</td><td class='num'>{'n/a' if s.users is None else f'{s.users:,}'}</td>"
                f"<td class='num'>{format_p_value(s.p_value)}</td></tr>"
            )
        return (
            f"<div class='fx-muted'>{len(self.signatures)} signatures in {seconds:.1f} s; choose "
            "one below to set the filters to its slice and compare its window.</div>"
            "<table class='fx-table'><tr><th>id</th><th>slice</th><th>window (UTC)</th>"
            "<th>symptoms</th><th>excess rate [95% CI]</th><th>requests</th><th>users</th>"
            "<th>p (adjusted)</th></tr>" + "".join(rows) + "</table>"
        )

    def _on_signature(self, change: Any) -> None:
        self.choose_signature(change["new"])

    def choose_signature(self, signature_id: str | None) -> None:
        """Set the filters to a signature's slice, its window as the incident, and its signal."""
        self._chosen_signature = signature_id
        if signature_id is None:
            return
        chosen = next(s for s in self.signatures if s.id == signature_id)
        with self.holding():
            self.set_filters(chosen.predicate)
            if chosen.signal in self.signal_picker.options:
                self.signal_picker.value = chosen.signal
            end = chosen.end or self._last_day
            i = max(0, min(self.date_range.index[0], self._day_index(chosen.start)))
            j = max(self.date_range.index[1], self._day_index(end - timedelta(microseconds=1)))
            self.date_range.index = (i, min(j, len(self._days) - 1))
            self.select_window((chosen.start, end))

    def _day_index(self, t: datetime) -> int:
        day = _floor(_utc(t), "day")
        return max(0, min(len(self._days) - 1, (day - self._first_day).days))

    # -- add to report ----------------------------------------------------------------

    def pin(self, note: str | None = None, *, title: str | None = None) -> View:
        """Pin the current view (filters, charts, note) as a finding of the investigation.

        Returns
        -------
        View
            Also appended to ``pinned`` and handed to ``investigation.add_view``.
        """
        state = self.state()
        where = state.where()
        window, baseline = self._window_used, self._baseline_used
        text = self.note.value if note is None else note
        if title is None:
            by = f" by {state.by}" if state.by else ""
            title = f"{state.signal}{by}: {charts.describe_where(where)}"
        parts = [self._timeline_chart(state, where, window, selection=False)]
        if self._compare is not None and window is not None and baseline is not None:
            parts.append(self._comparison_chart(state, where, window, baseline))
        chart = charts.style(alt.vconcat(*parts, spacing=30)).to_dict()
        view = View(
            title=title,
            signal=state.signal,
            where=where,
            by=(state.by,) if state.by else (),
            grain=state.grain,
            incident=window,
            note=text,
            chart=chart,
            calls=self._calls(state, where, window, baseline, self._compare_dims(state)),
        )
        self.pinned.append(view)
        if self.investigation is not None:
            self.investigation.add_view(view)
        self.note.value = ""
        items = "".join(
            f"<li>{html.escape(v.title)} <span class='fx-muted'>({v.created_at:%H:%M:%S})</span></li>"
            for v in self.pinned[-3:]
        )
        self.pinned_list.value = (
            f"<div class='fx-head fx-muted'>{len(self.pinned)} pinned"
            f"<ul style='margin:0'>{items}</ul></div>"
        )
        return view

    @staticmethod
    def _calls(
        state: DashboardState,
        where: dict[str, Any],
        window: tuple[datetime, datetime] | None,
        baseline: tuple[datetime | None, datetime | None] | None,
        dims: list[str] | None = None,
    ) -> tuple[str, ...]:
        by = [state.by] if state.by else []
        calls = [
            f"wb.rates(signal={state.signal!r}, where={where!r})",
            f"wb.timeline({state.signal!r}, by={by!r}, grain={state.grain!r}, where={where!r})",
        ]
        if window is not None and baseline is not None:
            scoped = {k: v for k, v in where.items() if k != "ts"}
            iso = tuple(t.isoformat() for t in window)
            base = tuple(None if t is None else t.isoformat() for t in baseline)
            # the dimensions the panel compared: p_adjusted counts the tests made
            only = "" if dims is None else f"dims={dims!r}, "
            calls.append(
                f"wb.compare({state.signal!r}, incident={iso!r}, baseline={base!r}, "
                f"{only}where={scoped!r})"
            )
        return tuple(calls)
