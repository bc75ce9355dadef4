"""Explain a moment: the ranked explanations of a bucket clicked on the timeline.

A click on the rate chart picks a bucket of the timeline's grain (an hour or a
day); the panel explains the most anomalous moment inside it at the data's own
grain (``forensics.explain``: each slice against its own recent past and the
rest of the traffic), for the signal shown and within the current filters.
The date range does not cut the recent past the baselines come from: only the
dimension filters apply. Each candidate is listed with its elements, the share
of the excess it explains, its rate with its 95% interval against its baseline
rate, its score and its role; a button per candidate applies it as the
dashboard's filter (one button per element when its elements cannot be said
as one filter), and "add to report" hands the explanation to the
investigation (``report.Investigation.add_explanation``).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import ipywidgets as widgets

from forensics.errors import ForensicsError
from forensics.explain import Candidate, Explanation
from forensics.explain.database import explain_moment
from forensics.explain.result import describe_grain, describe_where

from .data import key
from .panel import Actions, Frame, Panel
from .state import error, muted, pct

__all__ = ["HINT", "Explain", "candidate_filters", "explanation_html", "filter_scope"]

HINT = "Click a moment on the timeline to see which slices explain it."
"""What the panel says before a moment is clicked."""


def filter_scope(where: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's filter without its date range: what an explanation is read under.

    Examples
    --------
    >>> filter_scope({"model": ["a"], "ts": ["2025-01-01", "2025-01-08"]})
    {'model': ['a']}
    """
    return {c: v for c, v in where.items() if c != "ts"}


def candidate_filters(candidate: Candidate) -> list[dict[str, Any]]:
    """The dashboard filters that select a candidate's requests.

    One filter when the candidate can be said as one (one element, or single
    values of one column: ``region in {eu, us}``), else one per element (a
    filter is a conjunction; a candidate's elements are alternatives). The
    whole traffic (``{}``) is no filter.

    Examples
    --------
    >>> from forensics.explain import Candidate
    >>> def c(*elements):
    ...     return Candidate(elements, 1.0, 0.1, 0.01, (0.05, 0.2), 9.0, 100, 10, 1.0, "explanation")
    >>> candidate_filters(c({"region": "eu", "pool": "p7"}))
    [{'region': ['eu'], 'pool': ['p7']}]
    >>> candidate_filters(c({"region": "eu"}, {"region": "us"}))
    [{'region': ['eu', 'us']}]
    >>> candidate_filters(c({"region": "eu"}, {"batch": {"gte": 32.0, "lt": 64.0}}))
    [{'region': ['eu']}, {'batch': {'gte': 32.0, 'lt': 64.0}}]
    """
    elements = [e for e in candidate.elements if e]
    columns = {c for e in elements for c in e}
    if (
        len(elements) > 1
        and len(columns) == 1
        and all(len(e) == 1 and not isinstance(next(iter(e.values())), dict) for e in elements)
    ):
        (column,) = columns
        return [{column: [e[column] for e in elements]}]
    return [{c: (dict(v) if isinstance(v, dict) else [v]) for c, v in e.items()} for e in elements]


def _elements_html(candidate: Candidate) -> str:
    lines = [describe_where(dict(e)) or "(all requests)" for e in candidate.elements]
    return "<br>".join(f"<b>{html.escape(line)}</b>" for line in lines)


def explanation_html(explanation: Explanation, *, seconds: float | None = None) -> str:
    """The explanation as the panel shows it: the moment and baseline, then the ranked table."""
    e = explanation
    clicked = ""
    if e.within is not None:
        clicked = (
            f" · the most anomalous moment of {e.within[0]:%Y-%m-%d %H:%M} – {e.within[1]:%H:%M}"
        )
    scope = f" · requests with {describe_where(e.where)}" if e.where else ""
    rise = f", times the rest of the traffic's rise ×{e.factor:.2f}" if e.factor > 1 else ""
    took = f" · explained in {seconds * 1000:.0f} ms" if seconds is not None else ""
    head = (
        f"<div class='fx-section forensics-explained' data-at='{e.at.isoformat()}'>"
        f"{html.escape(e.signal or 'signal')} at {e.at:%Y-%m-%d %H:%M} UTC"
        f"{html.escape(clicked)}{html.escape(scope)}</div>"
        + muted(
            f"buckets of {describe_grain(e.grain)}; baseline: each slice's own "
            f"{e.baseline_buckets} buckets before{rise}{took}"
        )
    )
    if not e.items:
        return head + "<div>" + muted("No slice is raised above its baseline here.") + "</div>"
    rows = []
    for i, c in enumerate(e.items, start=1):
        elements = html.escape(json.dumps([dict(x) for x in c.elements], default=str), quote=True)
        rows.append(
            f"<tr class='forensics-candidate' data-rank='{i}' data-elements='{elements}'>"
            f"<td class='num'>{i}</td><td>{_elements_html(c)}</td>"
            f"<td class='num'>{pct(c.share, 0)}</td>"
            f"<td class='num'>{pct(c.rate)} [{pct(c.ci[0])} – {pct(c.ci[1])}]</td>"
            f"<td class='num'>{pct(c.baseline_rate)}</td>"
            f"<td class='num'>{c.signal_count:,} / {c.requests:,}</td>"
            f"<td class='num'>{c.score:.1f}</td><td>{html.escape(c.role)}</td></tr>"
        )
    return (
        head + "<table class='fx-table forensics-candidates'><tr><th>#</th><th>candidate</th>"
        "<th>share of the excess</th><th>rate [95% CI]</th><th>baseline rate</th>"
        "<th>signal / requests</th><th>score</th><th>role</th></tr>" + "".join(rows) + "</table>"
    )


class Explain(Panel):
    """The ranked explanations of the clicked moment; buttons apply a candidate as the filter."""

    name = "explain"

    def __init__(
        self,
        data: Any,
        actions: Actions,
        *,
        on_report: Callable[[Explanation], Any] | None = None,
    ) -> None:
        super().__init__(data, actions)
        self.view = widgets.HTML(muted(HINT, css="forensics-explain-hint"))
        """The moment, its baseline and the ranked candidates."""
        self.apply = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        """One button per candidate filter."""
        self.report_button = widgets.Button(
            description="add to report",
            icon="thumb-tack",
            layout=widgets.Layout(width="140px", display="none"),
        )
        self.bucket: tuple[datetime, datetime] | None = None
        """The timeline bucket clicked (None: nothing to explain)."""
        self.explanation: Explanation | None = None
        """The explanation shown."""
        self.seconds: float | None = None
        """How long it took."""
        self._on_report = on_report
        self.report_button.on_click(lambda _b: self.add_to_report())
        self.widget = widgets.VBox(
            [self.view, widgets.HBox([self.apply, self.report_button])]
        ).add_class("forensics-explain")

    def choose(self, bucket: tuple[datetime, datetime] | None) -> None:
        """The bucket to explain on the next update (None: none)."""
        self.bucket = bucket

    def key(self, frame: Frame) -> Any:
        """What the explanation depends on: the signal, the filters, the bucket."""
        return key(frame.state.signal, filter_scope(frame.where), self.bucket)

    def refresh(self, frame: Frame) -> bool | None:
        """Explain the bucket (or say how to choose one)."""
        self.explanation, self.seconds = None, None
        self._buttons([])
        if self.bucket is None:
            self.view.value = muted(HINT, css="forensics-explain-hint")
            return False
        scope = filter_scope(frame.where)
        start = time.perf_counter()
        try:
            found = explain_moment(
                self.data.db,
                signal=frame.state.signal,
                where=scope or None,
                within=self.bucket,
                everything=self.data.everything(),
            )
        except ForensicsError as exc:
            self.view.value = error(f"no explanation for {self.bucket[0]:%Y-%m-%d %H:%M}: {exc}")
            return None
        self.explanation, self.seconds = found, time.perf_counter() - start
        self.view.value = explanation_html(found, seconds=self.seconds)
        self._buttons(found.items)
        return None

    def _buttons(self, items: tuple[Candidate, ...] | list[Candidate]) -> None:
        buttons = []
        for i, c in enumerate(items, start=1):
            filters = candidate_filters(c)
            for j, predicate in enumerate(filters):
                label = f"filter #{i}" + (chr(ord("a") + j) if len(filters) > 1 else "")
                button = widgets.Button(
                    description=label,
                    tooltip=describe_where(predicate),
                    layout=widgets.Layout(width="auto"),
                ).add_class("forensics-explain-apply")
                button.on_click(lambda _b, p=predicate: self.apply_filter(p))
                buttons.append(button)
        self.apply.children = tuple(buttons)
        self.report_button.description = "add to report"
        shown = bool(items) and self._on_report is not None
        self.report_button.layout.display = None if shown else "none"

    def apply_filter(self, predicate: dict[str, Any]) -> None:
        """Make a candidate's filter the dashboard's, on top of the filters it was found under."""
        scope = self.explanation.where if self.explanation and self.explanation.where else {}
        self.actions.set_filters({**scope, **predicate})

    def add_to_report(self) -> Explanation | None:
        """Hand the explanation shown to the investigation (None when nothing is shown)."""
        if self.explanation is None or self._on_report is None:
            return None
        self._on_report(self.explanation)
        self.report_button.description = "added"
        return self.explanation
