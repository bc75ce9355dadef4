"""The dashboard: the panels, their layout, and the one update path that runs them.

``Dashboard.update()`` runs after every change of a control (and is what
``bench/dashboard.py`` times): it reads the state, resolves what it selects
and hands both to each panel, which redraws only if what it depends on
changed. The filters are built so that the count queries can read a cube:
dates snap to whole days, numeric filters are ranges over bucket edges (a
signature's exact thresholds excepted), and a selected window snaps to the
timeline's grain. What no cube holds (a signature's exact thresholds, the
long-tail dimensions of the comparison, the request sample, user exposure)
reads the requests.
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

import altair as alt
import ipywidgets as widgets
import polars as pl

from forensics import charts
from forensics.db import Database
from forensics.errors import ForensicsError
from forensics.explain import Explanation
from forensics.findings import View
from forensics.signature import Signature

from .comparison import Comparison
from .controls import Controls
from .data import Data
from .explain import Explain
from .exposure import Exposure
from .filters import Filters
from .headline import Headline
from .heatmap import Heatmap
from .panel import Frame, Panel
from .pin import Investigation, Pin
from .requests import Requests
from .signatures import Signatures
from .state import CSS, DashboardState, UpdateTimings, error, snap, utc
from .timeline import Timeline

__all__ = ["Dashboard"]

CONTEXT = (timedelta(days=2), timedelta(days=7))
"""A chosen signature's date range shows half its window's length before and after it,
at least the first and at most the second of these (clipped to the data)."""


class Dashboard:
    """Slice degradation by any dimension, select what is wrong, compare, read, pin findings.

    Parameters
    ----------
    source
        The database to read: a ``Database``, or anything holding one as ``db``
        (``forensics.open(path)``); a workbench over a Spark cache also lends its
        ``_everything``, so the searches count on every request.
    investigation
        Where "add to report" pins views: any object with ``add_view(view)``
        (``report.Investigation``). Pinned views are also kept in ``pinned``.
    signal
        Signal shown first (default ``degraded`` when present).
    by
        Group-by shown first (default ``""``: the first dimension of the
        smallest cube; None for one overall series).
    grain
        ``"day"``, ``"hour"``, or the data's grain when finer (``wb.grain``).

    Examples
    --------
    ``forensics.open("build/demo/demo.duckdb").dashboard()`` in a notebook cell.
    """

    def __init__(
        self,
        source: Database | Any,
        *,
        investigation: Investigation | None = None,
        signal: str | None = None,
        by: str | None = "",
        grain: str = "day",
    ) -> None:
        db = source if isinstance(source, Database) else source.db
        self.data = Data(db, everything=getattr(source, "_everything", None))
        """The database as the panels see it."""
        self.investigation = investigation
        self.pinned: list[View] = []
        """Views pinned with "add to report", oldest first."""
        self.explanations: list[Explanation] = []
        """Explanations added to the report from the explanation panel, oldest first."""
        self.last_update = UpdateTimings(0.0)
        """Timings of the most recent update."""
        self._hold = 0
        self._incident: tuple[datetime, datetime] | None = None
        self._region: tuple[str, tuple[Any, ...]] | None = None
        self._signature: str | None = None
        self._baseline_window: tuple[datetime, datetime] | None = None
        self.controls = Controls(self.data, self, signal=signal, by=by, grain=grain)
        self.filter_panel = Filters(self.data, self)
        self.headline_panel = Headline(self.data, self)
        self.timeline = Timeline(self.data, self)
        self.explain_panel = Explain(self.data, self, on_report=self.pin_explanation)
        self.heatmap = Heatmap(self.data, self)
        self.comparison = Comparison(self.data, self)
        self.requests = Requests(self.data, self)
        self.exposure = Exposure(self.data, self)
        self.signature_panel = Signatures(self.data, self)
        self.pin_panel = Pin(self.data, self, on_pin=self.pin)
        self.panels: list[Panel] = [
            self.headline_panel,
            self.timeline,
            self.explain_panel,
            self.heatmap,
            self.comparison,
            self.requests,
            self.exposure,
            self.filter_panel,
        ]
        """The panels the update path runs, in order."""
        self.controls.reset.on_click(lambda _b: self.reset_filters())
        self.comparison.automatic.on_click(lambda _b: self.select_window(None))
        self.status = widgets.HTML()
        self.header = widgets.HTML(self._header())
        self.tabs = widgets.Tab(
            children=[
                self.comparison.widget,
                self.requests.widget,
                self.exposure.widget,
                self.signature_panel.widget,
            ],
            titles=("selection vs baseline", "requests", "user exposure", "signatures"),
        )
        self.tabs.observe(self._on_tab, names="selected_index")
        self.widget = widgets.VBox(
            [
                self.header,
                self.controls.widget,
                self.filter_panel.widget,
                self.headline_panel.widget,
                self.pin_panel.widget,
                self.status,
                self.timeline.widget,
                self.explain_panel.widget,
                self.heatmap.widget,
                self.tabs,
            ],
            layout=widgets.Layout(width="100%"),
        ).add_class("forensics-dashboard")
        """The root widget (displaying the dashboard displays it)."""
        self.update()

    def _header(self) -> str:
        d = self.data
        requests = int(d.db.scalar("SELECT count(*) FROM requests"))
        return (
            f"{CSS}<div class='fx-head'><b>forensics</b> · <code>{html.escape(d.db.path)}</code> · "
            f"{requests:,} requests · {d.first_day:%Y-%m-%d} – "
            f"{d.last_day - timedelta(days=1):%Y-%m-%d} UTC · {len(d.dims)} dimensions</div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _on_tab(self, change: Any) -> None:
        self.requests.show(change["new"] == 1)

    # -- the state ------------------------------------------------------------------------

    def state(self) -> DashboardState:
        """The controls' current values as one immutable state."""
        fields: dict[str, Any] = {}
        for panel in (self.controls, self.filter_panel, self.comparison):
            fields.update(panel.state_fields())
        return DashboardState(
            **fields,
            incident=self._incident,
            region=self._region,
            signature=self._signature,
            baseline_window=self._baseline_window,
        )

    def where(self) -> dict[str, Any]:
        """The current filter in the mapping form (see ``DashboardState.where``)."""
        return self.state().where()

    def frame(self, state: DashboardState | None = None) -> Frame:
        """The state with what it selects and what that is compared with."""
        state = state or self.state()
        selection = self.data.selection(state)
        baseline = self.data.baseline(state, selection) if selection else None
        return Frame(state, state.where(), state.scope(), selection, baseline)

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

    def changed(self, _change: Any = None) -> None:
        """A control changed: update, unless several are being set at once."""
        if not self._hold:
            self.update()

    # -- the update path ------------------------------------------------------------------

    def update(self) -> UpdateTimings:
        """Recompute the panels whose inputs changed and redraw them.

        Returns
        -------
        UpdateTimings
            Milliseconds for the whole update and per panel (also shown in the
            status line and kept in ``last_update``).
        """
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        message = ""
        try:
            frame = self.frame()
            for panel in self.panels:
                ms = panel.update(frame)
                if ms is not None:
                    times[panel.name] = ms
        except ForensicsError as exc:
            message = error(f"error: {exc}")
        total = (time.perf_counter() - t0) * 1000
        self.last_update = UpdateTimings(total, times)
        detail = ", ".join(f"{k} {v:.0f}" for k, v in times.items())
        self.status.value = (
            f"<span class='fx-muted forensics-status'>updated in {total:.0f} ms "
            f"({detail or 'nothing changed'}){self._raw_hint()}</span> {message}"
        )
        return self.last_update

    def _raw_hint(self) -> str:
        state = self.state()
        needed = {c for c, _ in state.values} | {c for c, _, _ in state.ranges}
        if state.by:
            needed.add(state.by)
        if not needed or any(needed <= set(c.dims) for c in self.data.cubes):
            return ""
        dims = sorted(needed)
        return (
            f" · no cube holds {', '.join(dims)} together, so this read the raw rows; "
            f"<code>wb.cube({dims!r})</code> makes it fast"
        )

    # -- actions --------------------------------------------------------------------------

    def reset_filters(self) -> None:
        """Clear every filter and restore the full date range."""
        with self.holding():
            self.filter_panel.reset()
            self.controls.all_dates()

    def set_filters(self, predicate: Mapping[str, Any]) -> None:
        """Set the filters to a predicate (column -> values, or {"gte", "lt"}); others cleared.

        Numeric bounds on the bucket edges move the range; bounds between them
        (a signature's exact thresholds) are kept exactly, the range showing the
        buckets around them.
        """
        with self.holding():
            self.filter_panel.set_predicate(predicate)

    def filter_value(self, dimension: str, value: Any, *, exclude: bool = False) -> None:
        """Add a value to a dimension's filter (``exclude``: keep every value but it)."""
        with self.holding():
            self.filter_panel.add_value(dimension, value, exclude=exclude)

    def select_window(self, window: tuple[Any, Any] | None, *, grain: str = "hour") -> None:
        """Select a window (None: the strongest detected rise) for the comparison and sample.

        Bounds snap outwards to whole hours (or days with ``grain="day"``) so
        that the counts come from a cube. A window dragged on the timeline
        snaps to the timeline's grain.
        """
        self._incident = None if window is None else snap(window, grain)
        self._region = None
        self._signature = None
        self.signature_panel.describe(None)
        if not self._hold:
            self.update()

    def brushed(self, window: tuple[Any, Any] | None) -> None:
        """A window dragged on the timeline: the selection, or the baseline when asked."""
        grain = self.controls.grain.value
        if (
            window is not None
            and self.comparison.baseline.value == "brushed"
            and self.comparison.brush_target.value == "baseline"
        ):
            self._baseline_window = snap(window, grain)
            self.changed()
            return
        self.select_window(window, grain=grain)

    def explain_moment(self, bucket: tuple[Any, Any] | None) -> Explanation | None:
        """Explain the most anomalous moment of a timeline bucket (a click on the timeline).

        The explanation panel ranks the slices that explain it, for the signal
        shown and within the filters, at the data's grain (``forensics.explain``);
        None clears it. Returns the explanation shown.
        """
        self.explain_panel.choose(None if bucket is None else (utc(bucket[0]), utc(bucket[1])))
        self.changed()
        return self.explain_panel.explanation

    def pin_explanation(self, explanation: Explanation) -> Explanation:
        """Add an explanation to the report (``investigation.add_explanation``) and keep it."""
        self.explanations.append(explanation)
        add = getattr(self.investigation, "add_explanation", None)
        if add is not None:
            add(explanation)
        return explanation

    def select_region(
        self, dimension: str, values: tuple[Any, ...], window: tuple[Any, Any]
    ) -> None:
        """Select some values of a dimension over a window (a heatmap rectangle)."""
        self._incident = snap(window, self.controls.grain.value)
        self._region = (dimension, tuple(values))
        self._signature = None
        self.signature_panel.describe(None)
        self.changed()

    def choose_signature(self, signature_id: str | None) -> None:
        """Reproduce a signature exactly.

        Its slice becomes the filters (exact thresholds), its window the
        selection, its signal the signal; the date range shows its context;
        its symptoms are listed and its exposure computed over its window.
        """
        if signature_id is None:
            self._signature = None
            self.signature_panel.describe(None)
            return
        chosen = next(s for s in self.signatures if s.id == signature_id)
        end = chosen.end or self.data.last_day
        pad = min(max(CONTEXT[0], (end - chosen.start) / 2), CONTEXT[1])
        with self.holding():
            self.filter_panel.set_predicate(chosen.predicate)
            if chosen.signal in self.controls.signal.options:
                self.controls.signal.value = chosen.signal
            self.controls.dates.index = (
                self.data.day_index(chosen.start - pad),
                self.data.day_index(end + pad - timedelta(microseconds=1)),
            )
            self._incident = (utc(chosen.start), utc(end))
            self._region = None
            self._signature = chosen.id
        self.signature_panel.describe(chosen)
        self.exposure.show(
            chosen.signal,
            {**chosen.predicate, "ts": [chosen.start.isoformat(), end.isoformat()]},
            what=f"{chosen.id}: its slice over its window",
        )

    def show_exposure(self) -> None:
        """Compute and show user exposure under the current filter (reads raw rows)."""
        self.exposure.compute()

    def find_signatures(self) -> list[Signature]:
        """Search for the separate problems here and list them (see ``Signatures.find``)."""
        return self.signature_panel.find()

    def start_signature_search(self) -> Future[list[Signature]]:
        """Start the signature search in a background thread (see ``Signatures.start_search``)."""
        return self.signature_panel.start_search()

    @property
    def signatures(self) -> list[Signature]:
        """The signatures found (strongest first)."""
        return self.data.signatures

    @signatures.setter
    def signatures(self, found: list[Signature]) -> None:
        self.data.signatures = list(found)
        self.signature_panel.set_options()
        self.changed()

    # -- add to report --------------------------------------------------------------------

    def pin(self, note: str | None = None, *, title: str | None = None) -> View:
        """Pin the current view (filters, charts, note) as a finding of the investigation.

        Returns
        -------
        View
            Also appended to ``pinned`` and handed to ``investigation.add_view``.
        """
        frame = self.frame()
        state = frame.state
        text = self.pin_panel.note.value if note is None else note
        if title is None:
            grouped = f" by {state.by}" if state.by else ""
            title = f"{state.signal}{grouped}: {charts.describe_where(frame.where)}"
        parts = [self.timeline.chart(frame, selection=False)]
        compared = self.comparison.frame
        if compared is not None and frame.selection is not None and frame.baseline is not None:
            parts.append(
                charts.contrast_chart(
                    compared,
                    signal=state.signal,
                    selection=frame.selection.describe(),
                    baseline=frame.baseline.description,
                    click=False,
                )
            )
        chart = charts.style(alt.vconcat(*parts, spacing=30)).to_dict()
        by = [state.by] if state.by else []
        calls = [
            f"wb.rates(signal={state.signal!r}, where={frame.where!r})",
            f"wb.timeline({state.signal!r}, by={by!r}, grain={state.grain!r}, "
            f"where={frame.where!r})",
        ]
        if self.comparison.call is not None and compared is not None:
            calls.append(self.comparison.call)
        view = View(
            title=title,
            signal=state.signal,
            where=frame.where,
            by=tuple(by),
            grain=state.grain,
            incident=(frame.selection.start, frame.selection.end) if frame.selection else None,
            note=text,
            chart=chart,
            calls=tuple(calls),
        )
        self.pinned.append(view)
        if self.investigation is not None:
            self.investigation.add_view(view)
        self.pin_panel.pinned(self.pinned)
        return view

    # -- the widgets, by their old names ---------------------------------------------------

    @property
    def signal_picker(self) -> widgets.Dropdown:
        """The signal control."""
        return self.controls.signal

    @property
    def group_picker(self) -> widgets.Dropdown:
        """The group-by control."""
        return self.controls.group

    @property
    def grain_picker(self) -> widgets.ToggleButtons:
        """The grain control: day, hour, and the data's own grain when finer."""
        return self.controls.grain

    @property
    def date_range(self) -> widgets.SelectionRangeSlider:
        """The date range control."""
        return self.controls.dates

    @property
    def filters(self) -> dict[str, widgets.Widget]:
        """One control per dimension: a multi-select of values, or a range of buckets."""
        return self.filter_panel.widgets_by_dimension()

    @property
    def headline(self) -> widgets.HTML:
        """The overall rate of the signal under the current filter."""
        return self.headline_panel.view

    @property
    def timeline_view(self) -> Any:
        """The rate chart."""
        return self.timeline.view

    @property
    def volume_view(self) -> Any:
        """The request volume chart."""
        return self.timeline.volume

    @property
    def heatmap_view(self) -> Any:
        """The heatmap."""
        return self.heatmap.view

    @property
    def compare_view(self) -> Any:
        """The comparison chart."""
        return self.comparison.view

    @property
    def exposure_view(self) -> Any:
        """The exposure chart."""
        return self.exposure.view

    @property
    def exposure_text(self) -> widgets.HTML:
        """The line above the exposure chart."""
        return self.exposure.text

    @property
    def note(self) -> widgets.Text:
        """The note pinned with the next view."""
        return self.pin_panel.note

    @property
    def signature_table(self) -> widgets.HTML:
        """The signatures found, or the search's progress."""
        return self.signature_panel.table

    @property
    def signature_picker(self) -> widgets.Select:
        """The signature chooser."""
        return self.signature_panel.picker

    @property
    def find_button(self) -> widgets.Button:
        """The "find signatures" button."""
        return self.signature_panel.find_button

    @property
    def pinned_list(self) -> widgets.HTML:
        """The last views pinned."""
        return self.pin_panel.listed

    @property
    def roles_note(self) -> widgets.HTML:
        """The outcomes, under the filters."""
        return self.filter_panel.roles_note

    @property
    def compared(self) -> pl.DataFrame | None:
        """The comparison shown (``contrast.contrast``'s frame), None when there is none."""
        return self.comparison.frame
