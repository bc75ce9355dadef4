"""The toolbar: which signal, grouped by what, per day, hour or the data's finer grain, over which dates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import ipywidgets as widgets

from forensics.errors import QueryError
from forensics.grain import parse_grain

from .data import Data
from .panel import Actions, Panel

__all__ = ["Controls"]


class Controls(Panel):
    """Signal, group-by, grain and date range; every change redraws what depends on it."""

    name = "controls"

    def __init__(
        self, data: Data, actions: Actions, *, signal: str | None, by: str | None, grain: str
    ) -> None:
        super().__init__(data, actions)
        signals = data.signals
        self.signal = widgets.Dropdown(
            options=signals,
            value=signal or ("degraded" if "degraded" in signals else signals[0]),
            description="signal",
            layout=widgets.Layout(width="250px"),
        )
        groupable = [d.name for d in data.dims.values() if d.cubable]
        if by == "":
            in_cube = [d for c in data.cubes for d in c.dims if d in groupable]
            by = in_cube[0] if in_cube else (groupable[0] if groupable else None)
        self.group = widgets.Dropdown(
            options=[("(none)", None), *((g, g) for g in groupable)],
            value=by,
            description="group by",
            layout=widgets.Layout(width="250px"),
        )
        self.grain = widgets.ToggleButtons(
            options=data.grains,
            value=_offered(grain, data.grains),
            style={"button_width": "56px"},
        )
        self.dates = widgets.SelectionRangeSlider(
            options=[(d.strftime("%b %d"), d) for d in data.days],
            index=(0, len(data.days) - 1),
            description="dates (UTC)",
            continuous_update=False,
            layout=widgets.Layout(width="520px"),
            style={"description_width": "80px"},
        )
        self.reset = widgets.Button(
            description="reset filters", icon="undo", layout=widgets.Layout(width="120px")
        )
        for control in (self.signal, self.group, self.grain, self.dates):
            control.observe(actions.changed, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [self.signal, self.group, self.grain],
                    layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
                ),
                widgets.HBox([self.dates, self.reset], layout=widgets.Layout(align_items="center")),
            ]
        )

    def state_fields(self) -> Mapping[str, Any]:
        """The state this panel's controls hold."""
        first, last = self.dates.value
        return {
            "signal": self.signal.value,
            "by": self.group.value,
            "grain": self.grain.value,
            "start": first,
            "end": last + timedelta(days=1),
        }

    def all_dates(self) -> None:
        """The whole date range."""
        self.dates.index = (0, len(self.data.days) - 1)


def _offered(grain: str, grains: list[str]) -> str:
    """``grain`` by its stored name, if the timeline offers it; else a clear error."""
    name = parse_grain(grain)
    if name not in grains:
        raise QueryError(
            f"grain {grain!r}: this database's timeline offers {', '.join(grains)} "
            "(a grain finer than the hour needs data that fine, see wb.grain)"
        )
    return name
