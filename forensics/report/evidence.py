"""Gathering the evidence behind each signature, and the overview of every window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from forensics import analysis, queries
from forensics.analysis import Exposure
from forensics.db import Database
from forensics.errors import QueryError
from forensics.report.figure import Figure
from forensics.report.formatting import (
    _iso,
)
from forensics.samples import evidence_excerpt, sample_requests

if TYPE_CHECKING:
    from forensics.report.provenance import Provenance
    from forensics.signature import Signature


TOP_SLICES = 5
"""Rows of each signature's comparison shown as a table (the chart shows more)."""

COMPARE_CHART_ROWS = 12
"""Rows of each signature's comparison chart."""

EXAMPLES = 3
"""Requests shown per signature, with their evidence (none in privacy mode)."""

OVERVIEW_WIDTH = 600
"""Plotting width of the overview timeline (its row labels take as much again)."""


@dataclass(frozen=True, eq=False)
class Evidence:
    """What the report shows for one signature, each part with the calls behind it."""

    signature: Signature
    """The signature."""
    timeline: Figure
    """Rate of its signal in its slice over the whole range, its window shaded, with the
    change events and detected change points."""
    comparison: Figure | None
    """Incident (its window) vs baseline over every dimension value; None when the data
    has no time outside the window."""
    top_slices: pl.DataFrame
    """The comparison's first ``TOP_SLICES`` rows (``Workbench.compare``'s columns)."""
    exposure: Exposure | None
    """User exposure inside its slice and window; None without user ids."""
    exposure_figure: Figure | None
    """The exposure chart."""
    missing: tuple[str, ...] = ()
    """Why a part is absent."""
    examples: pl.DataFrame | None = None
    """A few of its requests with its signal: ``request_id, ts, signals, excerpt`` (the
    response around its evidence, ``samples.evidence_excerpt``); None in privacy mode."""
    examples_call: str = ""
    """The call that draws them again."""

    @property
    def calls(self) -> tuple[str, ...]:
        """Every call behind the evidence."""
        figures = (self.timeline, self.comparison, self.exposure_figure)
        return tuple(c for f in figures if f is not None for c in f.calls)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (figures with their specifications)."""
        exposure = None
        if self.exposure is not None:
            exposure = {
                "summary": self.exposure.summary().to_dicts(),
                "users": self.exposure.users,
                "users_affected": self.exposure.users_affected,
                "repeat_ratio": self.exposure.repeat_ratio,
                "per_user": self.exposure.per_user.to_dicts(),
            }
        return {
            "signature": self.signature.id,
            "top_slices": self.top_slices.to_dicts(),
            "exposure": exposure,
            "missing": list(self.missing),
            "examples": None if self.examples is None else self.examples.to_dicts(),
            "figures": [
                f.to_dict()
                for f in (self.timeline, self.comparison, self.exposure_figure)
                if f is not None
            ],
        }


# -- gathering the evidence (calls only; the numbers come from the analysis layer) ----


_QUESTIONS: dict[str, Any] = {
    "timeline": analysis.timeline,
    "compare": analysis.compare,
    "exposure": analysis.exposure,
}
"""The questions the evidence asks, by the name of the ``Workbench`` method that asks them
(each of those methods is this function on ``wb.db``)."""


def _call(db: Database, method: str, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Answer ``wb.<method>(*args, **kwargs)`` on ``db`` and return its result and the call as text.

    The text is built from the very arguments used, so pasting it (with
    ``wb = forensics.open(db)``) reproduces the result.
    """
    result = _QUESTIONS[method](db, *args, **kwargs)
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return result, f"wb.{method}({', '.join(shown)})"


FINE_CONTEXT = timedelta(hours=6)
"""On data finer than the hour, a signature shorter than a day is shown this long either side."""


def _timeline_view(db: Database, sig: Signature) -> tuple[str, dict[str, Any], str]:
    """Grain, filter and words of a signature's timeline figure.

    Day by day over all the data, as on hour-grained data; on data finer than
    the hour (``wb.grain``), a signature shorter than a day at the data's grain
    over its window and ``FINE_CONTEXT`` either side, where a day would hide it.
    """
    predicate: dict[str, Any] = dict(sig.predicate)
    grain = queries.data_grain(db)
    if grain in ("hour", "day") or sig.end is None or sig.end - sig.start >= timedelta(days=1):
        return "day", predicate, "day by day"
    around = (_iso(sig.start - FINE_CONTEXT), _iso(sig.end + FINE_CONTEXT))
    return grain, {**predicate, "ts": around}, f"per {grain} around its window"


def _evidence(db: Database, sig: Signature, prov: Provenance) -> Evidence:
    from forensics import charts

    predicate = dict(sig.predicate)
    start, end = _iso(sig.start), _iso(sig.end)
    missing: list[str] = []

    grain, shown, words = _timeline_view(db, sig)
    timeline, call = _call(db, "timeline", sig.signal, grain=grain, where=shown)
    timeline_figure = Figure.of(
        charts.timeline_chart(
            timeline.rates,
            signal=sig.signal,
            grain=grain,
            events=timeline.events,
            change_points=timeline.change_points,
            highlight=(sig.start, sig.end),
            where=predicate,
            selection=False,
        ),
        title=f"{sig.id}: {sig.signal} in its slice, {words}",
        calls=[call],
        caption=(
            f"The shaded band is {sig.id}'s window; dashed rules are change events, "
            "triangles the change points detected in this series."
        ),
    )

    comparison = None
    top = pl.DataFrame()
    baseline: tuple[str | None, str | None] | None = None
    if prov.first is not None and sig.start > prov.first:
        baseline = (None, start)
    elif sig.end is not None:
        baseline = (end, None)
    if baseline is None:
        missing.append("comparison: the window covers all the data, so there is no baseline")
    else:
        compared, call = _call(db, "compare", sig.signal, incident=(start, end), baseline=baseline)
        top = compared.head(TOP_SLICES)
        comparison = Figure.of(
            charts.comparison_chart(
                compared,
                signal=sig.signal,
                incident=(sig.start, sig.end),
                baseline=(_parse(baseline[0]), _parse(baseline[1])),
                top=COMPARE_CHART_ROWS,
            ),
            title=f"{sig.id}: what is different about its window, over all requests",
            calls=[call],
            caption=(
                f"Every dimension value's {sig.signal} rate in {sig.id}'s window against "
                "the baseline window; the values that explain the rise come first."
            ),
        )

    exposure = exposure_figure = None
    where = {**predicate, "ts": (start, end)}
    try:
        exposure, call = _call(db, "exposure", sig.signal, where=where)
    except QueryError as exc:
        missing.append(f"user exposure: {exc}")
    else:
        exposure_figure = Figure.of(
            charts.exposure_chart(exposure, where=predicate),
            title=f"{sig.id}: who is hit",
            calls=[call],
            caption=f"Users in {sig.id}'s slice during its window.",
        )
    examples, examples_call = None, ""
    if prov.privacy:
        missing.append("example requests: privacy mode (no response text is stored)")
    elif queries.count_column(db) is not None:
        missing.append("example requests: counted rows (a row stands for many requests)")
    else:
        examples, examples_call = _examples(db, sig, where)
    return Evidence(
        signature=sig,
        timeline=timeline_figure,
        comparison=comparison,
        top_slices=top,
        exposure=exposure,
        exposure_figure=exposure_figure,
        missing=tuple(missing),
        examples=examples,
        examples_call=examples_call,
    )


def _examples(db: Database, sig: Signature, where: dict[str, Any]) -> tuple[pl.DataFrame, str]:
    """Up to ``EXAMPLES`` requests of the signature's slice and window with its signal."""
    sample = sample_requests(db, where, limit=EXAMPLES, signal=sig.signal)
    sample = sample.filter(pl.col(sig.signal).fill_null(False))
    signals = [s for s in sig.signals if s in sample.columns]
    rows = [
        {
            "request_id": str(r["request_id"]),
            "ts": r["ts"],
            "signals": ", ".join(s for s in signals if r[s]),
            "excerpt": evidence_excerpt(
                r.get("response_text"), r.get("evidence") or [], signal=sig.signal
            ),
        }
        for r in sample.iter_rows(named=True)
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "request_id": pl.Utf8,
            "ts": sample.schema["ts"],
            "signals": pl.Utf8,
            "excerpt": pl.Utf8,
        },
    )
    call = f"wb.sample_requests({where!r}, signal={sig.signal!r}, limit={EXAMPLES})"
    return frame, call


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def numbered_events(events: pl.DataFrame) -> pl.DataFrame:
    """Change events in time order, each with a ``label``: E1, E2...

    The overview chart marks each event with its label and kind, and the
    report's table of events under it gives each label's description.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> e = pl.DataFrame({"ts": [datetime(2025, 8, 2, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)],
    ...                   "kind": ["fix", "deploy"], "description": ["b", "a"], "scope": [None, None]})
    >>> numbered_events(e)["label"].to_list(), numbered_events(e)["kind"].to_list()
    (['E1', 'E2'], ['deploy', 'fix'])
    """
    frame = events.sort("ts", maintain_order=True)
    return frame.with_columns(
        pl.Series("label", [f"E{i}" for i in range(1, frame.height + 1)], dtype=pl.Utf8)
    )


def _overview(signatures: Sequence[Signature], events: pl.DataFrame, prov: Provenance) -> Figure:
    from forensics import charts

    span = (prov.first, prov.last) if prov.first and prov.last else None
    labelled = numbered_events(events).with_columns(
        (pl.col("label") + " " + pl.col("kind").fill_null("")).alias("kind")
    )
    chart = charts.signatures_chart(
        signatures,
        events=labelled.drop("label"),
        span=span,
        title="When each problem was active, and what changed",
        width=OVERVIEW_WIDTH,
    )
    return Figure.of(
        chart,
        title="Every signature's window and every change event",
        calls=["wb.signatures()", "wb.events()"],
        caption=(
            "One row per signature, coloured by the signal it was found on; dark ends "
            "mark the 95% ranges of onset and end. Dashed rules are change events, "
            "labelled E1, E2... as in the table of events below."
        ),
    )
