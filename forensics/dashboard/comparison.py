"""The comparison, BubbleUp's way: every dimension, the selection against a baseline.

The selection is a signature's slice and window, a window dragged on the
timeline, a rectangle dragged on the heatmap, or (until one is chosen) the
strongest detected rise. The baseline is everything else under the filters (by
default without the rows of the other signatures found, so that an already bad
period does not pollute it), a window dragged on the timeline, or the same
hours a week earlier. Each dimension's values are two bars: their share of the
selection's bad requests and of the baseline's (``contrast.contrast``); click a
bar to filter to its value, shift-click to leave it out.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import polars as pl

from forensics import charts
from forensics.contrast import contrast

from .data import key
from .offline import chart_widget, draw, stub, unvalidated
from .panel import Actions, Frame, Panel, point_values
from .state import BASELINES

__all__ = ["Comparison"]


class Comparison(Panel):
    """Selection vs baseline, every dimension; its baseline controls."""

    name = "compare"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.selection_text = widgets.HTML()
        self.automatic = widgets.Button(
            description="automatic window",
            icon="magic",
            tooltip="Forget the chosen selection; use the strongest detected rise",
            layout=widgets.Layout(width="160px"),
        )
        self.baseline = widgets.ToggleButtons(
            options=[(text, name) for name, text in BASELINES.items()],
            value="rest",
            description="baseline",
            style={"button_width": "190px", "description_width": "60px"},
        )
        self.brush_target = widgets.ToggleButtons(
            options=[
                ("drag sets the selection", "selection"),
                ("drag sets the baseline", "baseline"),
            ],
            value="selection",
            style={"button_width": "170px"},
            layout=widgets.Layout(display="none"),
        )
        self.leave_out = widgets.Checkbox(
            value=True,
            description="leave the other signatures' rows out of the baseline",
            indent=False,
            disabled=True,
            layout=widgets.Layout(width="420px"),
        )
        self.all_dimensions = widgets.Checkbox(
            value=True,
            description="every dimension (those no cube holds read the requests)",
            indent=False,
            layout=widgets.Layout(width="420px"),
        )
        self.view = chart_widget(stub(points=[charts.PICK, charts.DROP]))
        self.view.observe(self._on_click, names="_vl_selections")
        for control in (self.baseline, self.leave_out, self.all_dimensions):
            control.observe(actions.changed, names="value")
        self.baseline.observe(self._show_target, names="value")
        self.frame: pl.DataFrame | None = None
        """The last comparison shown (``contrast.contrast``'s frame)."""
        self.call: str | None = None
        """The library call that reproduces it."""
        self.chart: Any = None
        """The last chart drawn."""
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [self.automatic, self.selection_text],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.baseline,
                self.brush_target,
                widgets.HBox([self.leave_out, self.all_dimensions]),
                self.view,
            ]
        )

    def _show_target(self, change: Any) -> None:
        self.brush_target.layout.display = "" if change["new"] == "brushed" else "none"
        if change["new"] == "brushed":
            self.brush_target.value = "baseline"

    def state_fields(self) -> Mapping[str, Any]:
        """The state this panel's controls hold."""
        return {
            "baseline": self.baseline.value,
            "leave_out": self.leave_out.value,
            "all_dimensions": self.all_dimensions.value,
        }

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        s = frame.state
        base = frame.baseline
        return key(
            s.signal,
            frame.where,
            frame.selection,
            None if base is None else (base.description, base.where, base.empty_reason),
            s.all_dimensions,
        )

    def _dims(self, all_dimensions: bool) -> list[str] | None:
        if all_dimensions:
            return None
        cubed = {d for c in self.data.cubes for d in c.dims}
        return [d for d in self.data.dims if d in cubed]

    def refresh(self, frame: Frame) -> None:
        """Recompute and redraw."""
        others = self.data.others(frame.state)
        self.leave_out.disabled = not others
        self.leave_out.description = (
            f"leave the rows of {', '.join(i for i, _ in others)} (other signatures) out of "
            "the baseline"
            if others
            else "leave the other signatures' rows out of the baseline (none found yet)"
        )
        selection, baseline = frame.selection, frame.baseline
        self.frame = self.call = None
        if selection is None or baseline is None:
            self.selection_text.value = "<span class='fx-muted'>selection: none</span>"
            return self._message(
                "No rise detected in this range: drag across the timeline to select a window, "
                "or a rectangle on the heatmap, or choose a signature."
            )
        self.selection_text.value = (
            "<span class='fx-head forensics-selection'>selection: "
            f"{html.escape(selection.describe())}</span>"
        )
        if baseline.empty_reason is not None:
            return self._message(baseline.empty_reason)
        state = frame.state
        chosen = selection.where(frame.scope)
        args: dict[str, Any] = {
            "selection": chosen,
            "scope": frame.scope,
            "baseline": baseline.where,
            "leave_out": list(baseline.leave_out),
            "dims": self._dims(state.all_dimensions),
        }
        result = contrast(self.data.db, state.signal, **args)
        self.call = (
            f"wb.contrast({state.signal!r}, selection={chosen.to_dict()!r}, "
            f"scope={frame.scope.to_dict()!r}, "
            f"baseline={None if baseline.where is None else baseline.where.to_dict()!r}, "
            f"leave_out={[w.to_dict() for w in baseline.leave_out]!r}, dims={args['dims']!r})"
        )
        if result.height:
            first = result["dimension"][0]
            part = result.filter(pl.col("dimension") == first)
            for side, what in (("selection", "selection"), ("baseline", "baseline")):
                if part[f"k_{side}"].sum() == 0:
                    return self._message(
                        f"The {what} holds no {state.signal} requests: there is nothing to "
                        f"compare. Choose another {what} or signal."
                    )
        self.frame = result
        self.chart = charts.contrast_chart(
            result,
            signal=state.signal,
            selection=selection.describe() + f" · {charts.describe_where(frame.where)}",
            baseline=baseline.description,
        )
        with unvalidated():
            draw(self.view, self.chart)

    def _message(self, text: str) -> None:
        self.chart = None
        draw(self.view, charts.message_chart(text))

    def _on_click(self, change: Any) -> None:
        for name, exclude in ((charts.PICK, False), (charts.DROP, True)):
            for point in point_values(change, name)[:1]:
                dimension, label = point.get("dimension"), point.get("value")
                if dimension not in self.data.dims or label is None:
                    continue
                try:
                    value = self.data.value_of(dimension, str(label))
                except (KeyError, StopIteration):
                    continue  # "other (N values)"
                self.actions.filter_value(dimension, value, exclude=exclude)
