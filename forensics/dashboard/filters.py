"""The filters: one control per dimension, collapsed under the toolbar.

A categorical dimension gets a multi-select of its values, each with the
requests it holds under every *other* filter and the date range
(cross-filtering, ``queries.value_counts``), and a search box for long lists;
a numeric one a range over its bucket edges, or the exact bounds a signature
set (off the bucket grid). Values clicked in a chart arrive here
(``add_value``): a click adds the value, a shift-click keeps every value but it.
The counts are computed when the panel is open (it is collapsed by default).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import polars as pl

from forensics.queries import Dimension, value_counts

from .data import key, outcomes_note
from .panel import Actions, Frame, Panel
from .state import label

__all__ = ["CategoricalFilter", "Filters", "NumericFilter", "bounds_of"]

LIST_ROWS = 5
"""Rows a value list shows before it scrolls."""


def bounds_of(edges: Sequence[float], i: int, j: int) -> tuple[float | None, float | None]:
    """(gte, lt) of a range slider over bucket edges; position ``len(edges)`` is infinity.

    The first position means "from the lowest value" (values below the first
    edge share its bucket); equal positions select the one bucket starting there.

    Examples
    --------
    >>> bounds_of((0.0, 8.0, 64.0), 0, 3), bounds_of((0.0, 8.0, 64.0), 1, 2)
    ((None, None), (8.0, 64.0))
    >>> bounds_of((0.0, 8.0, 64.0), 2, 2)
    (64.0, None)
    """
    if j <= i:
        i, j = min(i, len(edges) - 1), min(i, len(edges) - 1) + 1
    return (None if i == 0 else edges[i]), (None if j >= len(edges) else edges[j])


class CategoricalFilter:
    """A searchable multi-select of a dimension's values, with cross-filtered counts."""

    def __init__(self, dimension: Dimension, values: pl.DataFrame, on_change: Any) -> None:
        self.name = dimension.name
        self.order: list[Any] = values["value"].to_list()
        """Every value, most requests first over the whole table (a fixed order)."""
        self.counts: dict[Any, int] = dict(
            zip(values["value"].to_list(), values["requests"].to_list(), strict=True)
        )
        self._quiet = 0
        self.select = widgets.SelectMultiple(
            options=self._options(""),
            value=(),
            rows=min(LIST_ROWS, max(len(self.order), 1)),
            layout=widgets.Layout(width="205px"),
        )
        self.search = widgets.Text(
            placeholder=f"search {len(self.order)} values",
            layout=widgets.Layout(
                width="205px", display="" if len(self.order) > LIST_ROWS else "none"
            ),
        )
        self.note = widgets.HTML()
        self.select.add_class("forensics-filter").add_class(f"forensics-filter-{self.name}")
        self.search.add_class("forensics-search").add_class(f"forensics-search-{self.name}")
        self.select.observe(self._on_select, names="value")
        self.search.observe(lambda _c: self._relabel(), names="value")
        self._on_change = on_change
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<span class='fx-muted'>{html.escape(self.name)}</span>"),
                self.search,
                self.select,
                self.note,
            ],
            layout=widgets.Layout(margin="0 6px 4px 0"),
        )

    def _options(self, text: str) -> list[tuple[str, Any]]:
        wanted = text.strip().lower()
        chosen = set(self.select.value) if hasattr(self, "select") else set()
        return [
            (f"{label(v)}  ({self.counts.get(v, 0):,})", v)
            for v in self.order
            if v in chosen or not wanted or wanted in label(v).lower()
        ]

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Change the control without telling the dashboard."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _on_select(self, change: Any) -> None:
        self._describe()
        if not self._quiet:
            self._on_change(change)

    def _relabel(self) -> None:
        """New options (counts, search) keeping the chosen values."""
        chosen = self.select.value
        with self.quiet():
            self.select.options = self._options(self.search.value)
            self.select.value = tuple(v for v in chosen if v in set(self.order))

    def set_counts(self, counts: Mapping[Any, int]) -> None:
        """Show these requests per value (0 for a value not in them)."""
        self.counts = dict(counts)
        self._relabel()

    def set_values(self, values: Sequence[Any]) -> None:
        """Choose exactly these values (others cleared), without telling the dashboard."""
        with self.quiet():
            allowed = set(self.order)
            self.select.value = ()
            self.search.value = ""
            self.select.options = self._options("")
            self.select.value = tuple(v for v in values if v in allowed)
        self._describe()

    def _describe(self) -> None:
        chosen = self.select.value
        if chosen and len(chosen) == len(self.order) - 1 and len(self.order) > 2:
            (left,) = set(self.order) - set(chosen)
            self.note.value = f"<span class='fx-muted'>all but {html.escape(label(left))}</span>"
        else:
            self.note.value = ""


class NumericFilter:
    """A range over a numeric dimension's bucket edges, or exact bounds set by a signature."""

    def __init__(self, dimension: Dimension, on_change: Any) -> None:
        self.name = dimension.name
        self.edges = dimension.edges
        self.exact: tuple[float | None, float | None] | None = None
        """Bounds off the bucket grid (a signature's); the slider shows the buckets around them."""
        self._quiet = 0
        self.slider = widgets.SelectionRangeSlider(
            options=[*((f"{e:g}", i) for i, e in enumerate(self.edges)), ("∞", len(self.edges))],
            index=(0, len(self.edges)),
            continuous_update=False,
            layout=widgets.Layout(width="205px"),
        )
        self.note = widgets.HTML()
        self.slider.add_class("forensics-filter").add_class(f"forensics-filter-{self.name}")
        self.slider.observe(self._on_slide, names="value")
        self._on_change = on_change
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<span class='fx-muted'>{html.escape(self.name)}</span>"),
                self.slider,
                self.note,
            ],
            layout=widgets.Layout(margin="0 6px 4px 0"),
        )

    def _on_slide(self, change: Any) -> None:
        if self._quiet:
            return
        self.exact = None  # moved by hand: the buckets rule again
        self.note.value = ""
        self._on_change(change)

    def bounds(self) -> tuple[float | None, float | None]:
        """(gte, lt): the exact bounds, else those of the slider's buckets."""
        return self.exact if self.exact is not None else bounds_of(self.edges, *self.slider.index)

    def set_bounds(self, gte: float | None, lt: float | None) -> None:
        """Filter to [gte, lt) (None: open); bounds off the edges are kept exactly."""
        i = 0 if gte is None else max([0, *(k for k, e in enumerate(self.edges) if e <= gte)])
        j = len(self.edges)
        if lt is not None:
            j = min([len(self.edges), *(k for k, e in enumerate(self.edges) if e >= lt)])
        self._quiet += 1
        try:
            self.slider.index = (i, max(i + 1, j))
        finally:
            self._quiet -= 1
        on_grid = bounds_of(self.edges, *self.slider.index) == (gte, lt)
        self.exact = None if on_grid or (gte is None and lt is None) else (gte, lt)
        self.note.value = (
            ""
            if self.exact is None
            else "<span class='fx-muted forensics-exact'>exactly "
            + html.escape(" and ".join(_bound_text(gte, lt)))
            + "</span>"
        )

    def reset(self) -> None:
        """No filter."""
        self.set_bounds(None, None)


def _bound_text(gte: float | None, lt: float | None) -> list[str]:
    return [f"{op} {v:g}" for op, v in ((">=", gte), ("<", lt)) if v is not None]


class Filters(Panel):
    """Every dimension's filter, the outcomes under them, collapsed by default."""

    name = "filters"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.controls: dict[str, CategoricalFilter | NumericFilter] = {}
        """The filter of each dimension."""
        for d in data.dims.values():
            if d.kind == "numeric":
                if len(d.edges) >= 2:
                    self.controls[d.name] = NumericFilter(d, actions.changed)
            else:
                self.controls[d.name] = CategoricalFilter(d, data.values[d.name], actions.changed)
        self.roles_note = widgets.HTML(outcomes_note(data.roles))
        """The outcome columns (measured, never filters or slices), under the filters."""
        self.counts_note = widgets.HTML()
        grid = widgets.GridBox(
            [c.widget for c in self.controls.values()],
            layout=widgets.Layout(grid_template_columns="repeat(auto-fill, 215px)"),
        )
        self.accordion = widgets.Accordion(
            children=[widgets.VBox([self.counts_note, grid, self.roles_note])],
            titles=(
                "filters (ctrl/cmd-click to choose several values; counts follow the "
                "other filters)",
            ),
        )
        self.accordion.selected_index = None  # collapsed: the charts come first
        self.accordion.add_class("forensics-filters")
        self.accordion.observe(lambda _c: self._opened(), names="selected_index")
        self.widget = self.accordion
        self._frame: Frame | None = None

    @property
    def open(self) -> bool:
        """Whether the filters are shown."""
        return self.accordion.selected_index == 0

    def _opened(self) -> None:
        if self.open and self._frame is not None:
            self.update(self._frame)

    def widgets_by_dimension(self) -> dict[str, widgets.Widget]:
        """The control of each dimension: a multi-select, or a range slider."""
        return {
            n: c.select if isinstance(c, CategoricalFilter) else c.slider
            for n, c in self.controls.items()
        }

    def state_fields(self) -> Mapping[str, Any]:
        """The state this panel's controls hold."""
        values, ranges = [], []
        for name, control in self.controls.items():
            if isinstance(control, CategoricalFilter):
                if control.select.value:
                    values.append((name, tuple(control.select.value)))
                continue
            gte, lt = control.bounds()
            if gte is not None or lt is not None:
                ranges.append((name, gte, lt))
        return {"values": tuple(values), "ranges": tuple(ranges)}

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        self._frame = frame
        # counts are only worth computing when someone can see them
        return key(frame.where) if self.open else "closed"

    def refresh(self, frame: Frame) -> bool:
        """Recompute and redraw."""
        if not self.open:
            return False
        dims = [n for n, c in self.controls.items() if isinstance(c, CategoricalFilter)]
        counts = value_counts(self.data.db, dims=dims, where=frame.scope)
        for name in dims:
            control = self.controls[name]
            assert isinstance(control, CategoricalFilter)
            part = counts.filter(pl.col("dimension") == name)
            by_label = dict(zip(part["value"].to_list(), part["requests"].to_list(), strict=True))
            control.set_counts(
                {v: by_label.get(None if v is None else str(v), 0) for v in control.order}
            )
        self.counts_note.value = (
            "<span class='fx-muted'>requests per value under the other filters and the dates</span>"
        )
        return True

    # -- setting filters ------------------------------------------------------------------

    def set_predicate(self, predicate: Mapping[str, Any]) -> None:
        """Set the filters to a predicate (column -> values, or {"gte", "lt"}); others cleared."""
        for name, control in self.controls.items():
            spec = predicate.get(name)
            if isinstance(control, CategoricalFilter):
                wanted = [] if spec is None else [spec] if isinstance(spec, str) else list(spec)
                control.set_values(wanted)
            elif isinstance(spec, Mapping):
                control.set_bounds(spec.get("gte"), spec.get("lt"))
            else:
                control.reset()

    def add_value(self, name: str, value: Any, *, exclude: bool = False) -> bool:
        """Filter on a value clicked in a chart; False when the dimension has no filter here."""
        control = self.controls.get(name)
        if control is None:
            return False
        if isinstance(control, NumericFilter):
            edges = control.edges
            if value not in edges or exclude:  # a range cannot leave out a middle bucket
                return False
            i = edges.index(value)
            upper = edges[i + 1] if i + 1 < len(edges) else None
            control.set_bounds(None if i == 0 else value, upper)
            return True
        if exclude:
            control.set_values([v for v in control.order if v != value])
        else:
            chosen = list(control.select.value)
            control.set_values([*chosen, value] if value not in chosen else chosen)
        return True

    def reset(self) -> None:
        """Clear every filter."""
        self.set_predicate({})
