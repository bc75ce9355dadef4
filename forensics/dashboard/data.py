"""What every panel reads, and the answers several panels share.

The database's dimensions, values, colours and time span; the timeline and
the selection, each computed once per state.

Panels take what they need from here and from the query, analysis and
separation layers (``queries``, ``analysis``, ``contrast``, ``samples``,
``separation``), never from the ``Workbench`` facade: the dashboard is built
from a ``Database``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import polars as pl

from forensics import analysis, charts
from forensics.analysis import Timeline
from forensics.db import Database
from forensics.errors import ForensicsError
from forensics.grain import GRAIN_NAMES
from forensics.queries import (
    Dimension,
    Engine,
    Grain,
    Where,
    bucket_label,
    cubes,
    data_grain,
    dimension_values,
    dimensions,
    signal_names,
    time_range,
)
from forensics.roles import column_roles
from forensics.signature import Signature

from .state import Baseline, DashboardState, Selection, baseline_of, ceil, floor, utc

__all__ = ["Data"]


class Data:
    """The database as the dashboard sees it, and the answers shared between panels.

    Parameters
    ----------
    db
        The open database.
    everything
        Gives the engine holding every request when ``db`` is a cache holding a sample
        of them (``Workbench._everything``), started when first asked.
    """

    def __init__(
        self, db: Database, *, everything: Callable[[], Engine | None] | None = None
    ) -> None:
        self.db = db
        self._everything = everything
        self.signals = signal_names(db)
        """The signals (built-in, the user's, ``degraded``)."""
        if not self.signals:
            raise ForensicsError(
                f"{db.path} holds no requests yet; load some with `forensics ingest FILE "
                f"--db {db.path}` (or `forensics demo`) before opening the dashboard"
            )
        self.dims: dict[str, Dimension] = {d.name: d for d in dimensions(db)}
        """The dimensions, by name."""
        self.cubes = cubes(db)
        """The cubes, smallest first."""
        self.values = {name: dimension_values(db, name) for name in self.dims}
        """Per dimension, its values with their requests (most first)."""
        self.colors = {name: self._value_colors(name) for name in self.dims}
        """Per dimension, a colour per value label (``charts.value_colors``)."""
        self.roles = column_roles(db)
        """Every column's role (the outcomes are listed under the filters)."""
        first, last = time_range(db)
        if first is None or last is None:
            raise ForensicsError(f"{db.path} holds no requests with a time")
        self.first = first
        """The first request's time."""
        self.first_day = floor(first, "day")
        """The first day of data (UTC midnight)."""
        self.last_day = ceil(last, "day")
        """The end of the last day of data, exclusive."""
        days = []
        t = self.first_day
        while t < self.last_day:
            days.append(t)
            t += timedelta(days=1)
        self.days = days
        """Every day of data (the date range's positions)."""
        finest = data_grain(db)
        self.grains = ["day", "hour"] + (
            [finest] if GRAIN_NAMES[finest] < GRAIN_NAMES["hour"] else []
        )
        """The timeline's grains: day, hour and the data's own when finer (minute counts)."""
        self.signatures: list[Signature] = []
        """The signatures found by the signatures panel (strongest first)."""
        self._timeline: tuple[Any, Timeline] | None = None

    def everything(self) -> Engine | None:
        """The engine holding every request when ``db`` is a cache of a sample (Spark), else None.

        The searches (signatures, explanations) count on it; a ``ConfigError`` names what
        to set when the cache needs Spark and none is configured.
        """
        return self._everything() if self._everything is not None else None

    # -- labels and values ----------------------------------------------------------------

    def _value_colors(self, name: str) -> dict[str, str]:
        d = self.dims[name]
        values = self.values[name]["value"].to_list()
        if d.kind == "numeric":
            values = sorted(v for v in values if v is not None)
            return charts.value_colors([bucket_label(d.edges, v) for v in values])
        return charts.value_colors(values)

    def edges(self) -> dict[str, tuple[float, ...]]:
        """Bucket edges of the numeric dimensions."""
        return {n: d.edges for n, d in self.dims.items() if d.kind == "numeric"}

    def value_of(self, dimension: str, label: str) -> Any:
        """The value a chart's label stands for (a numeric bucket's lower edge).

        Raises StopIteration for a label that is no value of it ("other ...").
        """
        d = self.dims[dimension]
        values = self.values[dimension]["value"].to_list()
        if d.kind == "numeric":
            return next(v for v in values if bucket_label(d.edges, v) == label)
        return next(v for v in values if ("(missing)" if v is None else str(v)) == label)

    def day_index(self, t: datetime) -> int:
        """The date range's position of the day holding ``t``."""
        day = floor(utc(t), "day")
        return max(0, min(len(self.days) - 1, (day - self.first_day).days))

    # -- shared answers -------------------------------------------------------------------

    def timeline(self, state: DashboardState) -> Timeline:
        """The rate series of the state's signal, grouping and filter (remembered per state)."""
        key = (state.signal, state.by, state.grain, _key(state.where()))
        if self._timeline is None or self._timeline[0] != key:
            series = analysis.timeline(
                self.db,
                state.signal,
                by=[state.by] if state.by else [],
                grain=cast(Grain, state.grain),
                where=state.where(),
            )
            self._timeline = (key, series)
        return self._timeline[1]

    def timeline_changed(self, state: DashboardState) -> bool:
        """Whether ``timeline(state)`` would compute a new series."""
        key = (state.signal, state.by, state.grain, _key(state.where()))
        return self._timeline is None or self._timeline[0] != key

    def selection(self, state: DashboardState) -> Selection | None:
        """The selected requests; None when nothing is selected and nothing rose.

        The chosen window (or region, or signature) within the date range, else
        the strongest detected rise.
        """
        if state.incident is not None:
            start, end = state.incident
            kind = "signature" if state.signature else "region" if state.region else "window"
        else:
            detected = detected_window(self.timeline(state).change_points, state)
            if detected is None:
                return None
            (start, end), kind = detected, "detected"
        start, end = max(start, state.start), min(end, state.end)
        if end <= start:
            return None
        return Selection(
            start,
            end,
            kind,  # type: ignore[arg-type]
            region=state.region if kind == "region" else None,
            signature=state.signature if kind == "signature" else None,
        )

    def others(self, state: DashboardState) -> list[tuple[str, Where]]:
        """(id, rows) of the signatures found, but the selected one."""
        return [(s.id, s.where) for s in self.signatures if s.id != state.signature]

    def baseline(self, state: DashboardState, selection: Selection) -> Baseline:
        """What the selection is compared with (``state.baseline_of``)."""
        return baseline_of(state, selection, others=self.others(state), first=self.first)


def _key(where: dict[str, Any]) -> str:
    return json.dumps(where, sort_keys=True, default=str)


def key(*parts: Any) -> str:
    """A comparable key of JSON-able parts (panels remember what they drew by it)."""
    return json.dumps(parts, sort_keys=True, default=str)


def detected_window(
    change_points: pl.DataFrame, state: DashboardState
) -> tuple[datetime, datetime] | None:
    """From the strongest upward change point to the next downward one (or the end)."""
    if change_points.height == 0:
        return None
    ups = change_points.filter(pl.col("direction") == "up")
    if ups.height == 0:
        return None
    ratio = (pl.col("rate_after") / pl.col("rate_before")).fill_nan(None)
    strongest = ups.sort(ratio, descending=True, nulls_last=True).row(0, named=True)
    start = strongest["ts"]
    downs = change_points.filter((pl.col("direction") == "down") & (pl.col("ts") > start))
    end = downs["ts"].min() if downs.height else state.end
    return utc(start), utc(end)


def outcomes_note(roles: pl.DataFrame) -> str:
    """The line under the filters naming the outcomes, with the rule behind each on hover."""
    import html

    outcomes = roles.filter(pl.col("role") == "outcome")
    if outcomes.height == 0:
        return "<span class='fx-muted'>outcomes (never slices): none</span>"
    names = ", ".join(
        f"<span title='{html.escape(f'outcome: {why}', quote=True)}'>{html.escape(name)}</span>"
        for name, why in outcomes.select("column", "why").iter_rows()
    )
    return (
        f"<span class='fx-muted forensics-outcomes'>outcomes (never slices): {names} · "
        "look at one with <code>wb.rates(by=...)</code>; "
        "<code>[roles]</code> in a mapping file changes them</span>"
    )


def signature_text(s: Signature) -> str:
    """A signature in one line: id, slice, window, symptoms."""
    end = "still active" if s.end is None else f"{s.end:%m-%d %H:%M}"
    return (
        f"{s.id}: {predicate_text(s.predicate)} · {s.start:%m-%d %H:%M} → {end} · "
        f"{', '.join(s.signals)}"
    )


def predicate_text(predicate: dict[str, Any]) -> str:
    """A predicate as the filters would say it."""
    parts = []
    for column, spec in predicate.items():
        if isinstance(spec, dict):
            parts.append(charts.describe_where({column: spec}))
        else:
            values: Sequence[Any] = [spec] if isinstance(spec, str) else list(spec)
            parts.append(charts.describe_where({column: values}))
    return " · ".join(parts) or "all requests"
