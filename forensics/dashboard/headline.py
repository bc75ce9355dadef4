"""The headline: the signal's rate under the filters, with its interval and counts."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets
import polars as pl

from forensics import charts, stats

from .data import key
from .panel import Frame, Panel
from .state import pct

__all__ = ["Headline"]


class Headline(Panel):
    """The overall rate of the signal under the current filter, with its 95% interval.

    The timeline's buckets partition the filtered requests: their sums are the
    counts ``wb.rates(where=...)`` returns, without another query.
    """

    name = "headline"

    def __init__(self, data: Any, actions: Any) -> None:
        super().__init__(data, actions)
        self.view = widgets.HTML()
        self.widget = self.view

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        return key(frame.state.signal, frame.where)

    def refresh(self, frame: Frame) -> None:
        """Recompute and redraw."""
        state = frame.state
        rates = self.data.timeline(state).rates
        totals = rates.select(pl.col("n").sum(), pl.col("k").sum())
        overall = stats.rate_table(totals).row(0, named=True)
        where = html.escape(json.dumps(frame.where, sort_keys=True, default=str), quote=True)
        self.view.value = (
            f"<div class='fx-head forensics-headline' data-where='{where}'>"
            f"<span class='fx-rate forensics-rate'>{pct(overall['rate'])}</span>"
            f"<span class='fx-ci'>{html.escape(state.signal)} · 95% CI "
            f"[{pct(overall['ci_low'])} – {pct(overall['ci_high'])}]</span>"
            f"<span class='forensics-counts'><b>{overall['k']:,}</b> of <b>{overall['n']:,}</b> "
            "requests</span><br>"
            f"<span class='fx-muted'>{html.escape(charts.describe_where(frame.where))} · "
            f"{html.escape(charts.describe_window(state.start, state.end))}</span></div>"
        )
