"""The requests behind the selection: a sample, each with the evidence of its signals marked.

Read from ``requests`` (``samples.sample_requests``) when the tab is open:
the selected requests (or, without a selection, those under the filters), the
ones with the signal first, each with its time, id, slice, signals and the
response with the foreign-script run, the failing code line or the argmax rank
marked. In privacy mode: hashed ids and signals only.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import polars as pl

from forensics.queries import Where
from forensics.samples import SAMPLE_SIZE, evidence_html, sample_requests

from .data import key
from .panel import Actions, Frame, Panel

__all__ = ["Requests"]

TEXT_CHARS = 4000
"""Characters of a response shown (the rest is cut, the evidence kept when it lies beyond)."""


class Requests(Panel):
    """A sample of the selected requests with their evidence."""

    name = "requests"

    def __init__(self, data: Any, actions: Actions) -> None:
        super().__init__(data, actions)
        self.visible = False
        """Whether the tab is shown (a sample is read only then)."""
        self.seed = 0
        self.size = widgets.Dropdown(
            options=[10, 20, 50],
            value=SAMPLE_SIZE,
            description="requests",
            layout=widgets.Layout(width="160px"),
        )
        self.another = widgets.Button(
            description="another sample", icon="refresh", layout=widgets.Layout(width="150px")
        )
        self.another.on_click(lambda _b: self._next())
        self.size.observe(lambda _c: self._again(), names="value")
        self.caption = widgets.HTML()
        self.table = widgets.HTML(
            "<span class='fx-muted'>Open this tab to read a sample of the selected requests.</span>"
        )
        self.sample: pl.DataFrame | None = None
        """The sample shown (``samples.sample_requests``' frame)."""
        self._frame: Frame | None = None
        self.widget = widgets.VBox(
            [widgets.HBox([self.size, self.another, self.caption]), self.table]
        ).add_class("forensics-requests")

    def show(self, visible: bool) -> None:
        """The tab was opened (or left): read a sample if the one shown is out of date."""
        self.visible = visible
        if visible and self._frame is not None:
            self.update(self._frame)

    def _next(self) -> None:
        self.seed += 1
        self._again()

    def _again(self) -> None:
        self.drawn = None
        if self._frame is not None:
            self.update(self._frame)

    def where(self, frame: Frame) -> Where:
        """The requests sampled: the selection's, else those under the filters."""
        return frame.selection.where(frame.scope) if frame.selection else frame.scope

    def key(self, frame: Frame) -> Any:
        """What the drawing depends on."""
        self._frame = frame
        if not self.visible:
            return self.drawn or "hidden"  # nothing to do until the tab is opened
        return key(frame.state.signal, self.where(frame).to_dict(), self.seed, self.size.value)

    def refresh(self, frame: Frame) -> bool:
        """Recompute and redraw."""
        if not self.visible:
            return False
        where = self.where(frame)
        signal = frame.state.signal
        self.sample = sample_requests(
            self.data.db, where, limit=self.size.value, signal=signal, seed=self.seed
        )
        what = frame.selection.describe() if frame.selection else "the filters and dates"
        flagged = int(self.sample[signal].sum()) if self.sample.height else 0
        self.caption.value = (
            f"<span class='fx-muted'>{self.sample.height} requests of {html.escape(what)}, "
            f"{flagged} with {html.escape(signal)} first (sample {self.seed + 1})</span>"
        )
        self.table.value = self._table(self.sample, signal)
        return True

    def _table(self, sample: pl.DataFrame, signal: str) -> str:
        if sample.height == 0:
            return "<span class='fx-muted'>No request in the selection.</span>"
        signals = [s for s in self.data.signals if s in sample.columns]
        private = "response_text" not in sample.columns
        dims = [] if private else [d for d in self.data.dims if d in sample.columns]
        rows = []
        for r in sample.iter_rows(named=True):
            badges = "".join(
                f"<span class='fx-badge'>{html.escape(s)}</span>" for s in signals if r[s]
            )
            if private:
                rows.append(
                    f"<tr><td>{r['ts']:%Y-%m-%d %H:%M:%S}</td><td><code>{html.escape(r['request_id'])}"
                    f"</code></td><td>{badges}</td></tr>"
                )
                continue
            chips = "".join(
                f"<span class='fx-chip'>{html.escape(d)}={html.escape(str(r[d]))}</span>"
                for d in dims
                if r[d] is not None
            )
            evidence = r["evidence"] or []
            notes = "".join(
                f"<div class='fx-muted'>{html.escape(e['signal'])}: {html.escape(e['detail'])}</div>"
                for e in evidence
                if e["start"] is None
            )
            text = r["response_text"]
            shown = evidence_html(
                text[:TEXT_CHARS] if text else text,
                [e for e in evidence if e["end"] is not None and e["end"] <= TEXT_CHARS],
            )
            if text and len(text) > TEXT_CHARS:
                shown += "<span class='fx-muted'> …</span>"
            rows.append(
                f"<tr class='forensics-request'><td>{r['ts']:%Y-%m-%d %H:%M:%S}<br>"
                f"<code>{html.escape(str(r['request_id']))}</code></td>"
                f"<td>{badges}{notes}<div>{chips}</div></td>"
                f"<td><div class='fx-text'>{shown or '<i>(no text)</i>'}</div></td></tr>"
            )
        head = (
            "<tr><th>time (UTC), id</th><th>signals</th></tr>"
            if private
            else "<tr><th>time (UTC), id</th><th>signals, slice</th><th>response (evidence "
            "marked)</th></tr>"
        )
        note = (
            "<div class='fx-muted'>privacy mode: ids hashed, no text stored; signals only</div>"
            if private
            else ""
        )
        return f"{note}<table class='fx-table forensics-sample'>{head}{''.join(rows)}</table>"
