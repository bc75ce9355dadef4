"""The heatmap: the group-by dimension's values x time, coloured by rate.

Drag a rectangle across it to select some values over some hours: the
comparison, the request sample and the exposure then look at that region.
"""

from __future__ import annotations

from typing import Any

from forensics import charts
from forensics.queries import bucket_label

from .data import key
from .offline import chart_widget, draw, stub, unvalidated
from .panel import Actions, Frame, Panel, interval_value, window_bounds
from .timeline import BRUSH_DEBOUNCE_MS

__all__ = ["Heatmap"]


class Heatmap(Panel):
    """Where the signal concentrates, and a two-dimensional brush."""

    name = "heatmap"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.view = chart_widget(
            stub(intervals=[(charts.REGION, ["x", "y"])]),
            debounce_wait=BRUSH_DEBOUNCE_MS,
            max_wait=False,
        )
        self.view.observe(self._on_region, names="_vl_selections")
        self.widget = self.view
        self._by: str | None = None

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        sel = frame.selection
        shown = (sel.start, sel.end, sel.region) if sel else None
        s = frame.state
        return key(s.signal, s.by, s.grain, frame.where, shown)

    def refresh(self, frame: Frame) -> None:
        """Recompute and redraw."""
        state = frame.state
        self._by = state.by
        if not state.by:
            draw(
                self.view,
                charts.message_chart(
                    "Choose a group-by dimension to see where the signal concentrates."
                ),
            )
            return
        sel = frame.selection
        rows = None
        if sel is not None and sel.region is not None and sel.region[0] == state.by:
            rows = [self._label(v) for v in sel.region[1]]
        with unvalidated():
            draw(
                self.view,
                charts.heatmap_chart(
                    self.data.timeline(state).rates,
                    signal=state.signal,
                    by=[state.by],
                    grain=state.grain,
                    edges=self.data.edges(),
                    order=list(self.data.colors.get(state.by, {})),
                    highlight=(sel.start, sel.end) if sel else None,
                    highlight_groups=rows,
                    where=frame.where,
                    selection=True,
                ),
            )

    def _label(self, value: Any) -> str:
        assert self._by is not None
        d = self.data.dims[self._by]
        if d.kind == "numeric":
            return bucket_label(d.edges, value)
        return "(missing)" if value is None else str(value)

    def _on_region(self, change: Any) -> None:
        value = interval_value(change, charts.REGION)
        bounds = window_bounds(value)
        groups = value.get("group") or []
        if bounds is None or not groups or self._by is None:
            return
        values = []
        for group in groups:
            try:
                values.append(self.data.value_of(self._by, str(group)))
            except (KeyError, StopIteration):
                continue
        if values:
            self.actions.select_region(self._by, tuple(values), bounds)
