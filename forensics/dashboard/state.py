"""What the panels depend on: the controls' values as one immutable state, and what it selects.

``DashboardState`` is read from the controls before every update; the panels
compare the parts they depend on with what they last drew and redraw only when
those changed. ``Selection`` is the set of requests the comparison, the
request sample and the exposure look at (a signature's slice and window, a
brushed window or region, or the strongest detected rise), and ``Baseline``
what it is compared with.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from forensics import charts
from forensics.grain import GRAIN_NAMES, grain_us
from forensics.queries import Where

__all__ = [
    "BASELINES",
    "Baseline",
    "DashboardState",
    "Selection",
    "UpdateTimings",
]

BASELINES: dict[str, str] = {
    "rest": "everything else",
    "brushed": "a brushed window",
    "week": "the same hours a week earlier",
}
"""What a selection can be compared with (the comparison's baseline control)."""

WEEK = timedelta(days=7)

STEPS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
"""The length of a bucket of each timeline grain."""


@dataclass(frozen=True)
class DashboardState:
    """Everything the panels depend on, read from the controls."""

    signal: str
    """The signal whose rate is shown."""
    by: str | None
    """Group-by dimension of the timeline, volume and heatmap (None: one overall series)."""
    grain: str
    """Time bucket: day, hour, or the data's finer grain (``forensics.grain``)."""
    start: datetime
    """Start of the date range (a UTC midnight)."""
    end: datetime
    """End of the date range, exclusive (a UTC midnight)."""
    values: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """Categorical filters: (dimension, allowed values)."""
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    """Numeric filters: (dimension, gte, lt), on bucket edges or, from a signature, exact."""
    incident: tuple[datetime, datetime] | None = None
    """The selected window (None: the strongest detected rise)."""
    region: tuple[str, tuple[Any, ...]] | None = None
    """Rows of the heatmap selected with the window: (dimension, values)."""
    signature: str | None = None
    """The signature whose slice and window are selected (its id)."""
    baseline: str = "rest"
    """What the selection is compared with: a key of ``BASELINES``."""
    baseline_window: tuple[datetime, datetime] | None = None
    """The brushed baseline window (``baseline == "brushed"``)."""
    leave_out: bool = True
    """Leave the rows of the other signatures found out of the baseline."""
    all_dimensions: bool = True
    """Compare every dimension, also those no cube holds (long tails: reads requests)."""

    def scope(self) -> Where:
        """The filters and the date range as a ``Where``."""
        return Where(self.values, self.ranges, self.start, self.end)

    def where(self) -> dict[str, Any]:
        """The filter in the mapping form ``Workbench`` methods accept (JSON-friendly)."""
        out: dict[str, Any] = {c: list(v) for c, v in self.values}
        for c, gte, lt in self.ranges:
            out[c] = {k: v for k, v in (("gte", gte), ("lt", lt)) if v is not None}
        out["ts"] = [self.start.isoformat(), self.end.isoformat()]
        return out


@dataclass(frozen=True)
class UpdateTimings:
    """How long one update took, per panel (milliseconds)."""

    total_ms: float
    """The whole update, queries and charts."""
    panels: dict[str, float] = field(default_factory=dict)
    """Milliseconds per panel recomputed (``headline``, ``timeline``, ``compare``, ...)."""


@dataclass(frozen=True)
class Selection:
    """The requests selected: a window of the date range, maybe some rows of the heatmap."""

    start: datetime
    """Start of the window (UTC)."""
    end: datetime
    """End of the window, exclusive."""
    kind: Literal["detected", "window", "region", "signature"]
    """How it was chosen: the strongest detected rise, a brushed window or region, a signature."""
    region: tuple[str, tuple[Any, ...]] | None = None
    """(dimension, values) of a brushed heatmap region."""
    signature: str | None = None
    """The signature's id, for ``kind == "signature"``."""

    def where(self, scope: Where) -> Where:
        """The selected requests: ``scope`` within the window (and the region's values)."""
        out = scope.between(self.start, self.end)
        if self.region is not None:
            out = out.merged(Where(values=(self.region,)))
        return out

    def describe(self) -> str:
        """In words: what, and when."""
        when = charts.describe_window(self.start, self.end)
        if self.kind == "signature":
            return f"signature {self.signature} · {when}"
        if self.region is not None:
            column, values = self.region
            return f"{charts.describe_where({column: list(values)})} · {when}"
        prefix = "the strongest detected rise" if self.kind == "detected" else "brushed window"
        return f"{prefix} · {when}"


@dataclass(frozen=True)
class Baseline:
    """What a selection is compared with, resolved from the state."""

    where: Where | None
    """The baseline's requests; None: everything in scope outside the selection."""
    leave_out: tuple[Where, ...]
    """Rows kept out of it (the other signatures' slices and windows)."""
    description: str
    """In words, naming what was left out."""
    empty_reason: str | None = None
    """Why there is no baseline to compare with, when there is none."""


def baseline_of(
    state: DashboardState,
    selection: Selection,
    *,
    others: Sequence[tuple[str, Where]] = (),
    first: datetime | None = None,
) -> Baseline:
    """The baseline the state asks for, for this selection.

    ``others`` are (id, where) of the signatures other than the selected one;
    ``first`` the first request's time (to say why a week earlier is empty).
    """
    left_out = tuple(w for _, w in others) if state.leave_out else ()
    without = (
        f", without the rows of {', '.join(i for i, _ in others)} (other signatures)"
        if left_out
        else ""
    )
    filters = charts.describe_where(state.where())
    if state.baseline == "week":
        start, end = selection.start - WEEK, selection.end - WEEK
        if first is not None and end <= first:
            return Baseline(
                None,
                left_out,
                "",
                f"No requests a week before the selection: the data starts "
                f"{first:%Y-%m-%d %H:%M} UTC. Choose another baseline.",
            )
        where = Where(state.values, state.ranges, start, end)
        if selection.region is not None:
            where = where.merged(Where(values=(selection.region,)))
        return Baseline(
            where, left_out, f"the same requests a week earlier ({describe(start, end)}){without}"
        )
    if state.baseline == "brushed":
        if state.baseline_window is None:
            return Baseline(
                None,
                left_out,
                "",
                "No baseline window yet: choose “drag sets: baseline” and drag across the "
                "timeline.",
            )
        start, end = state.baseline_window
        where = Where(state.values, state.ranges, start, end)
        if selection.region is not None:
            where = where.merged(Where(values=(selection.region,)))
        return Baseline(where, left_out, f"{filters} · {describe(start, end)}{without}")
    return Baseline(
        None,
        left_out,
        f"everything else under the filters ({filters}) in "
        f"{describe(state.start, state.end)}{without}",
    )


def describe(start: datetime | None, end: datetime | None) -> str:
    """A window in words (``charts.describe_window``)."""
    return charts.describe_window(start, end)


# -- small helpers ----------------------------------------------------------------------


def utc(t: Any) -> datetime:
    """A time (datetime, epoch milliseconds, ISO text) as an aware UTC datetime."""
    if isinstance(t, datetime):
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    if isinstance(t, int | float):
        return datetime.fromtimestamp(t / 1000, tz=UTC)
    return datetime.fromisoformat(str(t).replace("Z", "+00:00")).astimezone(UTC)


def floor(t: datetime, grain: str) -> datetime:
    """The start of the bucket of ``grain`` (``forensics.grain``: day, hour, 15min...) holding ``t``.

    Buckets are whole multiples of the grain since the epoch (UTC midnight for days).

    Examples
    --------
    >>> floor(utc("2025-08-01T06:37:10Z"), "5min").isoformat()
    '2025-08-01T06:35:00+00:00'
    """
    step = grain_us(grain if grain in GRAIN_NAMES else "day")
    since = (t - _EPOCH) // timedelta(microseconds=1)
    return _EPOCH + timedelta(microseconds=since - since % step)


def ceil(t: datetime, grain: str) -> datetime:
    """The end of the bucket of ``grain`` holding ``t``; ``t`` itself when on an edge."""
    down = floor(t, grain)
    return down if down == t else down + _step(grain)


def snap(window: tuple[Any, Any], grain: str) -> tuple[datetime, datetime]:
    """A window snapped outwards to whole buckets of ``grain``, at least one long.

    Examples
    --------
    >>> snap(("2025-08-01T06:30:00Z", "2025-08-01T06:40:00Z"), "hour")[1].hour
    7
    >>> [t.minute for t in snap(("2025-08-01T06:31:00Z", "2025-08-01T06:31:00Z"), "minute")]
    [31, 32]
    """
    start, end = floor(utc(window[0]), grain), ceil(utc(window[1]), grain)
    if end <= start:
        end = start + _step(grain)
    return start, end


def _step(grain: str) -> timedelta:
    return GRAIN_NAMES.get(grain, GRAIN_NAMES["day"])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pct(x: float | None, digits: int = 2) -> str:
    """A share in percent, "–" when unknown."""
    if x is None or x != x:
        return "–"
    return f"{100 * x:.{digits}f}%"


def label(value: Any) -> str:
    """A dimension value as the filters show it."""
    return "(missing)" if value is None else str(value)


def muted(text: str, *, css: str = "") -> str:
    """A line of grey small print (escaped)."""
    return f"<span class='fx-muted {css}'>{html.escape(text)}</span>"


def error(text: str) -> str:
    """A line in red (escaped)."""
    return f"<span class='fx-error' style='color:#b2182b'>{html.escape(text)}</span>"


CSS = """
<style>
.fx-head { font: 14px/1.4 Inter, 'Helvetica Neue', Arial, sans-serif; color: #222; }
.fx-head b { font-weight: 600; }
.fx-muted { color: #666; font-size: 12px; }
.fx-rate { font-size: 26px; font-weight: 600; color: #b2182b; margin-right: 6px; }
.fx-ci { color: #444; margin-right: 14px; }
.fx-table { border-collapse: collapse; font: 12px Inter, 'Helvetica Neue', Arial, sans-serif; }
.fx-table th { text-align: left; border-bottom: 1px solid #bbb; padding: 3px 8px; }
.fx-table td { border-bottom: 1px solid #eee; padding: 3px 8px; vertical-align: top; }
.fx-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.fx-section { font: 600 13px Inter, 'Helvetica Neue', Arial, sans-serif; margin: 8px 0 2px; }
.fx-text { white-space: pre-wrap; max-height: 9em; overflow: auto; max-width: 620px;
  font: 12px/1.35 ui-monospace, Menlo, Consolas, monospace; }
.fx-evidence { background: #ffd54f; padding: 0 1px; border-radius: 2px; }
.fx-badge { display: inline-block; background: #fde0dd; color: #7a0177; border-radius: 3px;
  padding: 0 4px; margin: 0 3px 2px 0; font-size: 11px; }
.fx-chip { display: inline-block; color: #333; background: #f1f1f1; border-radius: 3px;
  padding: 0 4px; margin: 0 3px 2px 0; font-size: 11px; }
</style>
"""
"""The dashboard's look, in the header (every panel's HTML uses these classes)."""
