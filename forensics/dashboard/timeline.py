"""The timeline: the rate per group and the request volume per group under it.

The rate chart has its bands, change events and detected change points.

Drag across the rate chart to select a window (or, when the comparison asks
for one, a baseline window); click a moment on it to explain that bucket (the
explanation panel, ``explain.py``); click a legend value to filter to it; click
a volume bar to filter to its group, shift-click to leave it out.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from forensics import charts

from .data import key
from .offline import chart_widget, draw, stub, unvalidated
from .panel import Actions, Frame, Panel, interval_value, point_values, window_bounds
from .state import STEPS, utc

__all__ = ["BRUSH_DEBOUNCE_MS", "Timeline"]

BRUSH_DEBOUNCE_MS = 350
"""The browser reports a dragged window this long after the drag stops (not while dragging)."""


class Timeline(Panel):
    """Rate and volume over time, per group."""

    name = "timeline"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.view = chart_widget(
            stub(intervals=[(charts.SELECTION, ["x"])], points=[charts.PICK, charts.MOMENT]),
            debounce_wait=BRUSH_DEBOUNCE_MS,
            max_wait=False,
        )
        """The rate chart (its brush selects a window)."""
        self.volume = chart_widget(stub(points=[charts.PICK, charts.DROP]))
        """The request volume chart (its bars filter)."""
        self.view.observe(self._on_rates, names="_vl_selections")
        self.volume.observe(self._on_volume, names="_vl_selections")
        self.widget = widgets.VBox([self.view, self.volume])
        self._by: str | None = None
        self._grain = "day"
        self._clicked: Any = None

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        window = (frame.selection.start, frame.selection.end) if frame.selection else None
        s = frame.state
        return key(s.signal, s.by, s.grain, frame.where, window)

    def chart(self, frame: Frame, *, selection: bool = True) -> Any:
        """The rate chart of this frame (``selection=False``: without the brush, for a report)."""
        state = frame.state
        series = self.data.timeline(state)
        window = (frame.selection.start, frame.selection.end) if frame.selection else None
        return charts.timeline_chart(
            series.rates,
            signal=state.signal,
            by=[state.by] if state.by else [],
            grain=state.grain,
            events=series.events,
            change_points=series.change_points,
            colors=self.data.colors.get(state.by or "", {}),
            edges=self.data.edges(),
            highlight=window,
            where=frame.where,
            selection=selection,
        )

    def refresh(self, frame: Frame) -> None:
        """Recompute and redraw."""
        state = frame.state
        self._by = state.by
        self._grain = state.grain
        self._clicked = None  # a redraw clears the chart's selections
        series = self.data.timeline(state)
        with unvalidated():
            draw(self.view, self.chart(frame))
            draw(
                self.volume,
                charts.volume_chart(
                    series.rates,
                    signal=state.signal,
                    by=[state.by] if state.by else [],
                    grain=state.grain,
                    colors=self.data.colors.get(state.by or "", {}),
                    edges=self.data.edges(),
                    where=frame.where,
                ),
            )

    def _on_rates(self, change: Any) -> None:
        bounds = window_bounds(interval_value(change, charts.SELECTION))
        if bounds is not None:
            self.actions.brushed(bounds)
            return
        for point in point_values(change, charts.PICK)[:1]:
            self._filter(point.get("group"), exclude=False)
        moments = point_values(change, charts.MOMENT)[:1]
        clicked = moments[0].get("ts") if moments else None
        if clicked is not None and clicked != self._clicked:
            # every change carries every selection: a moment is explained once per click
            self._clicked = clicked
            start = utc(clicked)
            self.actions.explain_moment((start, start + STEPS[self._grain]))

    def _on_volume(self, change: Any) -> None:
        for name, exclude in ((charts.PICK, False), (charts.DROP, True)):
            for point in point_values(change, name)[:1]:
                self._filter(point.get("group"), exclude=exclude)

    def _filter(self, group: Any, *, exclude: bool) -> None:
        if self._by is None or group is None:
            return
        try:
            value = self.data.value_of(self._by, str(group))
        except (KeyError, StopIteration):
            return  # "(other groups)": no one value
        self.actions.filter_value(self._by, value, exclude=exclude)
