"""A panel: one view of the dashboard, owning its controls, its widget and its redraw.

Every panel gets the shared ``Data`` and the dashboard's ``Actions`` (what a
panel may ask of the others: filter on a clicked value, select a window...).
On every update the dashboard hands each panel a ``Frame`` (the state and what
it selects); a panel recomputes and redraws only when what it depends on
changed, and says how long that took. A new view is a new module with a
``Panel`` subclass, listed in ``forensics.dashboard.PANELS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

import ipywidgets as widgets

from forensics.queries import Where

from .data import Data
from .state import Baseline, DashboardState, Selection

__all__ = ["Actions", "Frame", "Panel", "point_values", "timed"]


class Actions(Protocol):
    """What a panel may ask of the dashboard (the dashboard implements it)."""

    def filter_value(self, dimension: str, value: Any, *, exclude: bool = False) -> None:
        """Add a value to a dimension's filter (or, with ``exclude``, keep every other)."""

    def brushed(self, window: tuple[Any, Any] | None) -> None:
        """A window was dragged on the timeline (selection or baseline, as the user chose)."""

    def select_region(
        self, dimension: str, values: tuple[Any, ...], window: tuple[Any, Any]
    ) -> None:
        """Rows of the heatmap and a window were selected."""

    def choose_signature(self, signature_id: str | None) -> None:
        """Set the filters, window and signal to a signature's."""

    def explain_moment(self, bucket: tuple[Any, Any] | None) -> object:
        """Explain the most anomalous moment of a timeline bucket (None: explain nothing)."""

    def set_filters(self, predicate: Mapping[str, Any]) -> None:
        """Set the filters to a predicate (column -> values, or {"gte", "lt"}); others cleared."""

    def changed(self, _change: Any = None) -> None:
        """A control changed: update, unless several controls are being set at once."""


@dataclass(frozen=True)
class Frame:
    """One update's inputs: the state, its filter, and what it selects."""

    state: DashboardState
    """The controls' values."""
    where: dict[str, Any]
    """The filters and date range in mapping form (``state.where()``)."""
    scope: Where
    """The same as a ``Where``."""
    selection: Selection | None
    """The selected requests (None: nothing selected and no rise detected)."""
    baseline: Baseline | None
    """What the selection is compared with (None without a selection)."""


class Panel:
    """One view: its widget, its controls and its redraw.

    Subclasses set ``name`` (its key in ``UpdateTimings.panels``), build
    ``widget`` in ``__init__`` and implement ``refresh``.
    """

    name: ClassVar[str] = "panel"
    """Key of the panel in the update timings."""

    def __init__(self, data: Data, actions: Actions) -> None:
        self.data = data
        self.actions = actions
        self.widget: widgets.Widget = widgets.VBox()
        """The panel's root widget."""
        self.drawn: Any = None
        """The key of what the panel last drew (it redraws when the key changes)."""

    def state_fields(self) -> Mapping[str, Any]:
        """The fields of ``DashboardState`` the panel's own controls hold."""
        return {}

    def key(self, frame: Frame) -> Any:
        """What the panel's picture depends on (None: draw on every update)."""
        return None

    def refresh(self, frame: Frame) -> bool | None:
        """Recompute and redraw; False when there was nothing to draw (e.g. hidden)."""
        return None

    def update(self, frame: Frame) -> float | None:
        """Redraw if what the panel depends on changed; milliseconds taken, else None."""
        key = self.key(frame)
        if key is not None and key == self.drawn:
            return None
        start = time.perf_counter()
        drew = self.refresh(frame)
        self.drawn = key
        return None if drew is False else (time.perf_counter() - start) * 1000


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``function``; its result and the milliseconds it took."""
    start = time.perf_counter()
    result = function()
    return result, (time.perf_counter() - start) * 1000


def point_values(change: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The points a click selection holds in a JupyterChart's ``_vl_selections`` change.

    Vega-Lite's point selection signal is ``{vlPoint: {or: [{field: value}]}}``
    (empty after every redraw, which is not a click).
    """
    value = ((change.get("new") or {}).get(name) or {}).get("value") or {}
    points = value.get("vlPoint", {}).get("or", []) if isinstance(value, Mapping) else []
    return [p for p in points if isinstance(p, Mapping)]


def interval_value(change: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The field -> bounds (or values) of an interval selection in a ``_vl_selections`` change."""
    value = ((change.get("new") or {}).get(name) or {}).get("value") or {}
    return value if isinstance(value, Mapping) else {}


def window_bounds(value: Mapping[str, Any], field: str = "ts") -> tuple[datetime, datetime] | None:
    """A time interval's bounds (epoch milliseconds) as UTC datetimes, else None."""
    from .state import utc

    bounds = value.get(field)
    if not bounds or len(bounds) != 2:
        return None
    return utc(bounds[0]), utc(bounds[1])
