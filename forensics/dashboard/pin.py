"""Add to report: pin the current view as a finding of an investigation.

A pinned view keeps the filters, the charts, the note and the calls that
reproduce its numbers.
"""

from __future__ import annotations

import html
from typing import Any, Protocol

import ipywidgets as widgets

from forensics.findings import View

from .panel import Actions, Panel

__all__ = ["Investigation", "Pin"]


class Investigation(Protocol):
    """What the dashboard pins views to (``report.Investigation`` has it)."""

    def add_view(self, view: View) -> Any:
        """Keep a pinned view as a finding.

        An investigation with ``add_explanation(explanation)`` also takes the
        explanations added from the explanation panel.
        """


class Pin(Panel):
    """A note and the "add to report" button; the views pinned so far."""

    name = "pin"

    def __init__(self, data: Any, actions: Actions, *, on_pin: Any) -> None:
        super().__init__(data, actions)
        self.note = widgets.Text(
            placeholder="note for the report (what this view shows)",
            layout=widgets.Layout(width="420px"),
        )
        self.button = widgets.Button(
            description="add to report",
            icon="thumb-tack",
            button_style="primary",
            layout=widgets.Layout(width="150px"),
        )
        self.listed = widgets.HTML()
        self.button.on_click(lambda _b: on_pin())
        self.widget = widgets.HBox(
            [self.note, self.button, self.listed], layout=widgets.Layout(align_items="center")
        )

    def pinned(self, views: list[View]) -> None:
        """Show the last pinned views and clear the note."""
        self.note.value = ""
        items = "".join(
            f"<li>{html.escape(v.title)} <span class='fx-muted'>({v.created_at:%H:%M:%S})</span></li>"
            for v in views[-3:]
        )
        self.listed.value = f"<div class='fx-head fx-muted'>{len(views)} pinned<ul style='margin:0'>{items}</ul></div>"
