"""What an investigation collects: pinned dashboard views and notes.

These are plain values, so that the dashboard (``widgets``) can produce them
and the report (``report``) can render them without either importing the
other. A view keeps everything needed to redraw and to re-run it: its filters,
the chart's Vega-Lite specification with its data inlined, and the library
calls that reproduce every number in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Note", "View"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class View:
    """A dashboard view pinned as a finding.

    Examples
    --------
    >>> v = View(title="script_mix by model", signal="script_mix", where={"platform": ["tpu"]})
    >>> v.to_dict()["where"]
    {'platform': ['tpu']}
    """

    title: str
    """What the view shows, as the investigator named it."""
    signal: str
    """The signal whose rate it shows."""
    where: dict[str, Any] = field(default_factory=dict)
    """The filters, in the mapping form ``queries.Where.parse`` accepts (JSON-friendly)."""
    by: tuple[str, ...] = ()
    """Group-by dimensions."""
    grain: str = "day"
    """Time bucket of its timeline: hour or day."""
    incident: tuple[datetime, datetime] | None = None
    """The incident window of its comparison, if one was selected."""
    note: str = ""
    """The investigator's note, as typed."""
    chart: dict[str, Any] | None = None
    """Vega-Lite specification of its chart, data inlined (``chart.to_dict()``)."""
    calls: tuple[str, ...] = ()
    """Python calls on the workbench that reproduce every number shown."""
    created_at: datetime = field(default_factory=_now)
    """When it was pinned (UTC)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (times as ISO-8601 UTC)."""
        return {
            "kind": "view",
            "title": self.title,
            "signal": self.signal,
            "where": self.where,
            "by": list(self.by),
            "grain": self.grain,
            "incident": [t.isoformat() for t in self.incident] if self.incident else None,
            "note": self.note,
            "chart": self.chart,
            "calls": list(self.calls),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Note:
    """A free-text note of the investigator's.

    Examples
    --------
    >>> Note("Rollback at 14:00 fixed it.").to_dict()["text"]
    'Rollback at 14:00 fixed it.'
    """

    text: str
    """The note, as typed (it is escaped wherever it is shown)."""
    title: str = ""
    """An optional heading."""
    created_at: datetime = field(default_factory=_now)
    """When it was written (UTC)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary."""
        return {
            "kind": "note",
            "title": self.title,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
        }
