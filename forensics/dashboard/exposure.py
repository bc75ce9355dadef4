"""User exposure: whether some users are hit again and again.

Computed when asked (it reads every request of the slice: per-user sequences
are in no cube), or for a chosen signature, over its slice and window.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from forensics import analysis, charts
from forensics.errors import ForensicsError

from .data import key
from .offline import chart_widget, draw, unvalidated
from .panel import Actions, Frame, Panel
from .state import error, utc

__all__ = ["Exposure"]


class Exposure(Panel):
    """Who is hit, for the filters or for a signature's rows."""

    name = "exposure"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.button = widgets.Button(
            description="compute exposure", icon="users", layout=widgets.Layout(width="170px")
        )
        self.text = widgets.HTML(
            "<span class='fx-muted'>Per-user sequences are not in the cubes, so exposure "
            "is computed when asked.</span>"
        )
        self.view = chart_widget(charts.message_chart("press “compute exposure”"))
        self.button.on_click(lambda _b: self.compute())
        self.widget = widgets.VBox([self.button, self.text, self.view])
        self._frame: Frame | None = None
        self._computed: Any = None

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        self._frame = frame
        return key(frame.state.signal, frame.where)

    def refresh(self, frame: Frame) -> bool:
        """Recompute and redraw."""
        if self._computed is not None and self._computed != self.key(frame):
            self.text.value = (
                "<span class='fx-muted'>The filters changed since this was computed; "
                "press the button to recompute.</span>"
            )
        return False  # computed when asked, not on every change

    def compute(self) -> None:
        """Exposure under the current filter."""
        if self._frame is None:
            return
        self.show(self._frame.state.signal, self._frame.where)
        self._computed = self.key(self._frame)

    def show(self, signal: str, where: Mapping[str, Any], *, what: str | None = None) -> None:
        """Compute and draw exposure to ``signal`` of the requests ``where`` selects."""
        start = time.perf_counter()
        try:
            result = analysis.exposure(self.data.db, signal, where=where)
        except ForensicsError as exc:
            self.text.value = error(str(exc))
            return
        with unvalidated():
            draw(self.view, charts.exposure_chart(result, where=where))
        start_t, end_t = (None if t is None else utc(t) for t in where.get("ts") or (None, None))
        window = charts.describe_window(start_t, end_t)
        if what:
            self._computed = "signature"  # any change of the filters makes it stale
        self.text.value = (
            f"<span class='fx-muted forensics-exposure'>computed in "
            f"{(time.perf_counter() - start) * 1000:.0f} ms for "
            f"{html.escape(what or charts.describe_where(where))} · {html.escape(window)}</span>"
        )
