"""A chart of the report, with the calls that reproduce its numbers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, eq=False)
class Figure:
    """A chart of the report, with the calls that reproduce its numbers.

    Examples
    --------
    >>> import altair as alt
    >>> f = Figure.of(alt.Chart().mark_point(), title="t", calls=["wb.rates()"])
    >>> f.to_dict()["calls"], "config" in f.chart
    (['wb.rates()'], True)
    """

    title: str
    """What it shows."""
    chart: dict[str, Any]
    """Vega-Lite specification, data inlined, styled (``charts.CONFIG``)."""
    calls: tuple[str, ...] = ()
    """Python calls on the workbench (``wb``) that return every number drawn."""
    caption: str = ""
    """How to read it."""

    @classmethod
    def of(
        cls,
        chart: Any,
        *,
        title: str,
        calls: Iterable[str] = (),
        caption: str = "",
    ) -> Figure:
        """A figure from an Altair chart or a Vega-Lite dictionary (styled when it is not)."""
        from forensics import charts

        spec = dict(chart) if isinstance(chart, Mapping) else chart.to_dict()
        spec.setdefault("config", charts.CONFIG)
        return cls(title=title, chart=spec, calls=tuple(calls), caption=caption)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary."""
        return {
            "kind": "chart",
            "title": self.title,
            "caption": self.caption,
            "calls": list(self.calls),
            "chart": self.chart,
        }
