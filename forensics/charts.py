"""Altair builders for the investigator's charts: a DataFrame in, a chart out.

Each builder takes the frame a ``Workbench`` question returns (``timeline``,
``compare``, ``exposure``) and returns an Altair chart; none reads a database,
prints or writes a file, so the dashboard (``widgets``) and the report
(``report``) draw the same pictures from the same numbers.

Conventions every chart follows:

- **Colours per value** come from ``value_colors``: given a dimension's values
  in a fixed order (most requests first over the whole table, as
  ``queries.dimension_values`` returns them), each value keeps its colour in
  every chart and under every filter.
- **Time** is UTC: axes use a UTC scale and tooltips say "UTC".
- **Titles say what and when**: the signal, the grouping, the filter and the
  time range (``describe_where`` writes the filter part).
- **Composable**: builders return unstyled charts; ``style`` applies fonts
  and borders to the outermost chart (``style(alt.vconcat(a, b))``).
- **Data is inlined as CSV text** (``InlineData`` with ``format: csv``). The
  frames are aggregates (a few thousand rows at most), so Altair's row limit,
  meant for raw data, does not apply; CSV keeps the specification small and
  fast to build and to send to the browser.

Examples
--------
>>> from datetime import datetime, UTC
>>> rates = pl.DataFrame({
...     "ts": [datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 8, 2, tzinfo=UTC)],
...     "n": [100, 120], "k": [3, 9],
...     "rate": [0.03, 0.075], "ci_low": [0.01, 0.04], "ci_high": [0.08, 0.14]})
>>> spec = timeline_chart(rates, signal="script_mix").to_dict()
>>> spec["params"][0]["name"]
'window'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import altair as alt
import polars as pl

from forensics.grain import GRAIN_NAMES
from forensics.queries import bucket_label
from forensics.stats import format_p_value

if TYPE_CHECKING:
    from forensics.signature import Signature

__all__ = [
    "BAND_MIN_REQUESTS",
    "DROP",
    "HEIGHT",
    "MAX_SERIES",
    "MIN_CELL_REQUESTS",
    "MOMENT",
    "PALETTE",
    "PICK",
    "REGION",
    "SELECTION",
    "WIDTH",
    "comparison_chart",
    "contrast_chart",
    "describe_where",
    "describe_window",
    "exposure_chart",
    "group_labels",
    "heatmap_chart",
    "message_chart",
    "signatures_chart",
    "style",
    "timeline_chart",
    "value_colors",
    "volume_chart",
    "windows_chart",
]

PALETTE: tuple[str, ...] = (
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b",
    "#ff9da6", "#9d755d", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
"""Categorical colours (Vega's tableau10, then d3's category10), in assignment order."""

MISSING_COLOR = "#c7c7c7"
"""Colour of the ``(missing)`` value of any dimension."""

EVENT_COLOR = "#6b6b6b"
"""Colour of change-event rules and labels."""

EVENT_CHAR_PX = 5.5
"""Estimated width of one character of a change-event label, in pixels (9 px font)."""

EVENT_LANES = 4
"""Rows of change-event labels at the top of a chart: a label that would overlap the
one before it goes one row down; past the last row an event keeps its rule and
tooltip only."""

EVENT_LANE_PX = 11
"""Height of one row of change-event labels, in pixels."""

CHANGE_COLOR = "#b2182b"
"""Colour of detected change points."""

HIGHLIGHT_COLOR = "#f2c94c"
"""Fill of a highlighted window (e.g. a signature's)."""

SIGNIFICANT_COLOR = "#d62728"
"""Incident rate of a value whose rise is significant."""

QUIET_COLOR = "#8c8c8c"
"""Incident rate of a value whose rise is not significant, and baselines."""

WIDTH = 760
"""Width of the plotting area of full-width charts, in pixels."""

HEIGHT = 240
"""Height of the timeline's plotting area, in pixels."""

MAX_SERIES = 10
"""The timeline draws at most this many groups (the most requests first)."""

MIN_CELL_REQUESTS = 30
"""Heatmap cells with fewer requests are drawn faded: their rate is mostly noise."""

SELECTION = "window"
"""Name of the timeline's interval selection (the incident window the dashboard reads)."""

REGION = "region"
"""Name of the heatmap's two-dimensional interval selection (values x time)."""

MOMENT = "moment"
"""Name of the timeline's click selection of a moment (a time bucket; the dashboard explains it)."""

PICK = "pick"
"""Name of the click selection of a bar or legend value (the dashboard adds it to the filters)."""

DROP = "drop"
"""Name of the shift-click selection of a bar (the dashboard excludes the value)."""

BAND_MIN_REQUESTS = 100
"""At hourly grain a group's 95% band is drawn only in hours with at least this many
requests: the bands of small groups' quiet hours span most of the axis and hide the lines."""

VOLUME_HEIGHT = 90
"""Height of the request-volume chart under the timeline, in pixels."""

SELECTION_COLOR = "#d62728"
"""Colour of the selection's side in a contrast chart."""

BASELINE_COLOR = "#9e9e9e"
"""Colour of the baseline's side in a contrast chart."""

_LINE_VIEW = "timeline_rates"
"""View name of the timeline's rate lines (where the selection lives)."""

_MOMENT_VIEW = "timeline_moments"
"""View name of the timeline's invisible points, one per bucket (where ``MOMENT`` lives)."""

_CELLS_VIEW = "heatmap_cells"
"""View name of the heatmap's cells (where the region selection lives)."""

_FONT = "Inter, 'Helvetica Neue', Arial, sans-serif"


# -- shared pieces --------------------------------------------------------------------


def value_colors(values: Sequence[Any]) -> dict[str, str]:
    """A stable colour per value: the i-th value gets ``PALETTE[i]`` (cycling), missing is grey.

    Pass a dimension's values in a fixed order (most requests first over the
    whole table), labelled as the charts label them (``group_labels``).

    Examples
    --------
    >>> value_colors(["model-a", "model-b", None])
    {'model-a': '#4c78a8', 'model-b': '#f58518', '(missing)': '#c7c7c7'}
    """
    colors: dict[str, str] = {}
    i = 0
    for value in values:
        label = "(missing)" if value is None else str(value)
        if label in colors:
            continue
        if label == "(missing)":
            colors[label] = MISSING_COLOR
        else:
            colors[label] = PALETTE[i % len(PALETTE)]
            i += 1
    return colors


def _fmt_time(t: datetime | None, *, hours: bool = True) -> str:
    if t is None:
        return "now"
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    if hours and (t.hour or t.minute):
        return t.strftime("%Y-%m-%d %H:%M")
    return t.strftime("%Y-%m-%d")


def describe_window(start: datetime | None, end: datetime | None) -> str:
    """A time window as people say it, end exclusive shown as the last day or hour included.

    Examples
    --------
    >>> describe_window(datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 8, 8, tzinfo=UTC))
    '2025-08-01 – 2025-08-07 UTC'
    >>> describe_window(datetime(2025, 8, 1, 6, tzinfo=UTC), datetime(2025, 8, 1, 9, tzinfo=UTC))
    '2025-08-01 06:00 – 08:59 UTC'
    >>> describe_window(None, datetime(2025, 8, 1, tzinfo=UTC))
    'up to 2025-07-31 UTC'
    """
    if start is None and end is None:
        return "all time"
    if end is None:
        return f"from {_fmt_time(start)} UTC"
    day_aligned = all(t is None or (t.hour == 0 and t.minute == 0) for t in (start, end))
    if day_aligned:
        last = end - timedelta(days=1)
        if start is None:
            return f"up to {_fmt_time(last, hours=False)} UTC"
        if start.date() == last.date():
            return f"{_fmt_time(start, hours=False)} UTC"
        return f"{_fmt_time(start, hours=False)} – {_fmt_time(last, hours=False)} UTC"
    last = end - timedelta(minutes=1)
    if start is None:
        return f"up to {_fmt_time(last)} UTC"
    same_day = start.date() == last.date()
    return f"{_fmt_time(start)} – {last.strftime('%H:%M') if same_day else _fmt_time(last)} UTC"


def describe_where(where: Mapping[str, Any] | None) -> str:
    """The filter part of a title: ``model in {a, b} · batch_size ≥ 8``; time is left out.

    Takes the mapping form of a filter (``queries.Where.to_dict()``).

    Examples
    --------
    >>> describe_where({"model": ["a", "b"], "batch_size": {"gte": 8, "lt": 32}, "ts": [None, None]})
    'model in {a, b} · 8 ≤ batch_size < 32'
    >>> describe_where({})
    'all requests'
    """
    parts = []
    for column, spec in (where or {}).items():
        if column == "ts":
            continue
        if isinstance(spec, Mapping):
            gte, lt = spec.get("gte"), spec.get("lt")
            if gte is not None and lt is not None:
                parts.append(f"{gte:g} ≤ {column} < {lt:g}")
            elif gte is not None:
                parts.append(f"{column} ≥ {gte:g}")
            elif lt is not None:
                parts.append(f"{column} < {lt:g}")
        else:
            values = [spec] if isinstance(spec, str) or not isinstance(spec, Sequence) else spec
            shown = ", ".join("(missing)" if v is None else str(v) for v in values)
            parts.append(f"{column} = {shown}" if len(values) == 1 else f"{column} in {{{shown}}}")
    return " · ".join(parts) if parts else "all requests"


def group_labels(
    frame: pl.DataFrame, by: Sequence[str], *, edges: Mapping[str, Sequence[float]] | None = None
) -> pl.Series:
    """One text label per row naming its group: values joined by " / ", numeric buckets as ranges.

    ``edges`` gives the bucket edges of numeric dimensions (``Dimension.edges``).

    Examples
    --------
    >>> f = pl.DataFrame({"model": ["a", None], "batch_size": [8.0, 32.0]})
    >>> group_labels(f, ["model", "batch_size"], edges={"batch_size": (0.0, 8.0, 32.0)}).to_list()
    ['a / [8, 32)', '(missing) / >= 32']
    """
    edges = edges or {}
    columns = []
    for column in by:
        values = frame[column].to_list()
        if column in edges:
            columns.append([bucket_label(edges[column], v) for v in values])
        else:
            columns.append(["(missing)" if v is None else str(v) for v in values])
    if not columns:
        return pl.Series("group", ["all"] * frame.height, dtype=pl.Utf8)
    return pl.Series("group", [" / ".join(parts) for parts in zip(*columns, strict=True)])


def _pct(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.{digits}f}%"


def _max(values: pl.Series) -> float:
    """Largest value, 0 for an empty or all-null series."""
    top = values.drop_nulls().drop_nans().max() if values.len() else None
    return float(top) if isinstance(top, int | float) else 0.0


def _y_top(rates: pl.DataFrame) -> float:
    """Top of the rate axis: the highest rate of a bucket with enough requests, plus a margin.

    Buckets with few requests (quiet hours) have wide intervals and erratic
    rates; letting them set the axis would squash every line to the bottom.
    They are clipped at the top instead.

    Examples
    --------
    >>> _y_top(pl.DataFrame({"n": [1000, 3], "rate": [0.02, 0.67], "ci_high": [0.03, 0.9]}))
    0.025
    """
    enough = rates.filter(pl.col("n") >= MIN_CELL_REQUESTS)
    top = _max(enough["rate"]) if enough.height else _max(rates["ci_high"])
    return min(1.0, 1.25 * top) if top > 0 else 0.01


def _rate_format(max_rate: float) -> str:
    """Percent format with enough decimals for the largest rate shown."""
    if max_rate >= 0.1:
        return ".0%"
    if max_rate >= 0.01:
        return ".1%"
    return ".2%"


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(grain: str) -> pl.Expr:
    """The bucket's time as a tooltip shows it."""
    unit = "%Y-%m-%d (%a)" if grain == "day" else "%Y-%m-%d %H:%M UTC"
    return pl.col("ts").dt.convert_time_zone("UTC").dt.strftime(unit).alias("when")


def _rate_ci() -> pl.Expr:
    """``rate [ci_low – ci_high]`` in percent, for tooltips."""
    parts = (
        (pl.col(c) * 100).round(2).cast(pl.Utf8).fill_null("–") + pl.lit("%")
        for c in ("rate", "ci_low", "ci_high")
    )
    return pl.format("{} [{} – {}]", *parts).alias("rate_ci")


def _inline(frame: pl.DataFrame, *, dates: Sequence[str] = (), numbers: Sequence[str] = ()) -> Any:
    """The frame as CSV text inlined in the specification, with the types Vega should parse."""
    parse = {**dict.fromkeys(dates, "date"), **dict.fromkeys(numbers, "number")}
    return alt.InlineData(
        values=frame.write_csv(), format=alt.CsvDataFormat(type="csv", parse=parse)
    )


def _time_axis(start: datetime | None, end: datetime | None, *, title: str | None = None) -> Any:
    span = (end - start) if start and end else timedelta(days=30)
    fmt = "%b %d" if span > timedelta(days=3) else "%b %d %H:%M"
    # a tick a day when days are few: ten ticks over four days would repeat each date
    ticks: Any = "day" if timedelta(days=3) < span <= timedelta(days=10) else 10
    return alt.Axis(
        format=fmt, labelAngle=0, labelOverlap=True, title=title, grid=False, tickCount=ticks
    )


def _time_scale(start: datetime | None, end: datetime | None) -> Any:
    """A UTC scale over [start, end].

    Given as ``domainMin``/``domainMax``: a ``domain`` on a channel with ``x2`` makes
    Vega-Lite warn about two conflicting domains in the browser's console.
    """
    if start is None or end is None:
        return alt.Scale(type="utc")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    low, high = ((t - epoch) // timedelta(milliseconds=1) for t in (start, end))
    return alt.Scale(type="utc", domainMin=low, domainMax=high)


def _title(text: str, subtitle: str | Sequence[str] | None = None) -> Any:
    return alt.TitleParams(
        text=text,
        subtitle=subtitle or alt.Undefined,
        anchor="start",
        fontSize=14,
        subtitleFontSize=11,
        subtitleColor="#555",
        font=_FONT,
        subtitleFont=_FONT,
    )


CONFIG: dict[str, Any] = {
    "view": {"stroke": None},
    "axis": {"labelFont": _FONT, "titleFont": _FONT, "labelColor": "#333", "titleColor": "#333"},
    "legend": {"labelFont": _FONT, "titleFont": _FONT, "labelLimit": 220},
    "text": {"font": _FONT},
}
"""The Vega-Lite ``config`` of the forensics look (``style`` applies it)."""


def style(chart: Any) -> Any:
    """Apply the forensics look (fonts, no view border) to a chart or a composition of charts.

    Builders return unstyled charts so that they can be composed
    (``alt.vconcat(timeline, comparison)``); style the outermost one. A
    specification already turned into a dict takes ``spec["config"] = CONFIG``.

    Examples
    --------
    >>> style(alt.Chart().mark_point()).to_dict()["config"]["axis"]["labelColor"]
    '#333'
    """
    styled = chart.copy(deep=False)
    styled.config = alt.Config.from_dict(CONFIG)
    return styled


class _Composed:
    """Shallow copies of a composed chart (layers, columns) that do not re-run its constructor.

    Altair's ``copy(deep=False)`` rebuilds a layer or concat chart by calling
    its constructor again, which deep-copies every sub-chart to lift their data
    and params, and ``to_dict()`` starts with such a copy: for the timeline at
    hourly grain, half the time of turning it into a specification. The
    builders' compositions are lifted once, when built (``_layered``,
    ``_side_by_side``), so a shallow copy here only copies the top object, as
    the name says. The specification is the same; the tests compare it with
    the one Altair's constructors give.
    """

    _args: tuple[Any, ...]
    _kwds: dict[str, Any]

    def copy(self, deep: Any = True, ignore: list[str] | None = None) -> Any:
        """A copy of the chart (``deep=False``: the top object only, sharing its parts)."""
        if deep is not False:
            return super().copy(deep=deep, ignore=ignore)  # type: ignore[misc]
        shallow = object.__new__(type(self))
        object.__setattr__(shallow, "_args", self._args)
        object.__setattr__(shallow, "_kwds", dict(self._kwds))
        return shallow


class _LayerChart(_Composed, alt.LayerChart):
    """A LayerChart composed by ``_layered``."""


class _HConcatChart(_Composed, alt.HConcatChart):
    """An HConcatChart composed by ``_side_by_side``."""


def _lift_data(parts: Sequence[Any]) -> tuple[Any, list[Any]]:
    """The data every part shares (else Undefined), and the parts without it.

    What Altair's layer and concat constructors do (``_combine_subchart_data``):
    data shared by every part is declared once, on the composition.
    """
    shared = parts[0].data if parts else alt.Undefined
    if shared is alt.Undefined or any(p.data is not shared for p in parts):
        return alt.Undefined, list(parts)
    lifted = []
    for part in parts:
        part = part.copy(deep=False)
        part.data = alt.Undefined
        lifted.append(part)
    return shared, lifted


def _layered(layers: Sequence[Any], **properties: Any) -> alt.LayerChart:
    """``alt.LayerChart(layer=layers, **properties)`` without deep-copying the layers.

    The constructor deep-copies every layer to lift their params and data to
    the top, which costs more than building them; these builders declare
    params on the layer chart itself and lift shared data here, so there is
    nothing else to lift.
    """
    chart = _LayerChart(**properties)
    data, chart.layer = _lift_data(layers)
    if data is not alt.Undefined:
        chart.data = data
    return chart


def _side_by_side(charts: Sequence[Any], **properties: Any) -> alt.HConcatChart:
    """``alt.HConcatChart(hconcat=charts, **properties)``, without deep copies (see ``_layered``)."""
    chart = _HConcatChart(**properties)
    data, chart.hconcat = _lift_data(charts)
    if data is not alt.Undefined:
        chart.data = data
    return chart


def _step(grain: str) -> timedelta:
    """A bucket's length: a day, an hour, or a finer grain (``forensics.grain``)."""
    return GRAIN_NAMES.get(grain, timedelta(days=1))


def _time_bounds(frame: pl.DataFrame, grain: str) -> tuple[datetime | None, datetime | None]:
    if frame.height == 0 or "ts" not in frame.columns:
        return None, None
    step = _step(grain)
    first: datetime = frame["ts"].min()  # type: ignore[assignment]
    last: datetime = frame["ts"].max()  # type: ignore[assignment]
    return first, last + step


def _window_frame(window: tuple[datetime, datetime | None], end: datetime | None) -> pl.DataFrame:
    start, stop = window
    stop = stop or end or start
    return pl.DataFrame({"start": [start], "end": [stop]}).with_columns(_iso("start"), _iso("end"))


# -- the timeline ---------------------------------------------------------------------


def timeline_chart(
    rates: pl.DataFrame,
    *,
    signal: str,
    by: Sequence[str] = (),
    grain: str = "day",
    events: pl.DataFrame | None = None,
    change_points: pl.DataFrame | None = None,
    colors: Mapping[str, str] | None = None,
    edges: Mapping[str, Sequence[float]] | None = None,
    highlight: tuple[datetime, datetime | None] | None = None,
    where: Mapping[str, Any] | None = None,
    selection: bool = True,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> alt.LayerChart:
    """Rate of a signal over time per group, with Wilson bands, change events and change points.

    Parameters
    ----------
    rates
        ``Timeline.rates``: ``ts, *by, n, k, rate, ci_low, ci_high``.
    signal, by, grain
        What the frame holds (for titles and labels).
    events
        ``Timeline.events`` (``ts, kind, description, scope``): dashed rules with tooltips.
    change_points
        ``Timeline.change_points``: triangles on the time axis (up or down).
    colors
        Group label -> colour (``value_colors``); groups not in it are grey.
    edges
        Bucket edges of numeric ``by`` dimensions, to label their groups.
    highlight
        A window ``(start, end)`` to shade (end None: to the end of the data).
    where
        The filter, for the subtitle.
    selection
        Add the interval selection ``SELECTION`` (drag on the chart to pick a window)
        and the click selection ``MOMENT`` (the bucket nearest the pointer).

    Returns
    -------
    alt.LayerChart
        Only the ``MAX_SERIES`` groups with the most requests are drawn.
    """
    start, end = _time_bounds(rates, grain)
    frame = rates.with_columns(group_labels(rates, by, edges=edges))
    groups = _groups_by_size(frame)
    shown = groups[:MAX_SERIES]
    frame = frame.filter(pl.col("group").is_in(shown))
    max_rate = _y_top(frame)
    # hourly: a band only where the hour holds enough requests (else null: no band there)
    least = 0 if grain == "day" else BAND_MIN_REQUESTS
    enough = pl.col("n") >= least
    data = frame.select(
        _iso("ts"),
        "group",
        "n",
        "k",
        "rate",
        pl.when(enough).then(pl.col("ci_low")).alias("band_low"),
        pl.when(enough).then(pl.col("ci_high")).alias("band_high"),
        _when(grain),
        _rate_ci(),
    )
    domain, color_range = _group_scale(shown, colors, grouped=bool(by))
    legend = alt.Legend(orient="right", symbolType="circle", symbolOpacity=1) if by else None
    color = alt.Color(
        "group:N",
        title=" / ".join(by) or None,
        scale=alt.Scale(domain=domain, range=color_range),
        legend=legend,
        sort=domain,
    )
    x = alt.X("ts:T", scale=_time_scale(start, end), axis=_time_axis(start, end))
    y_axis = alt.Axis(format=_rate_format(max_rate), title=f"{signal} rate", grid=True)
    plain = alt.Chart(
        _inline(data, dates=["ts"], numbers=["n", "k", "rate", "band_low", "band_high"])
    ).encode(x=x)
    base = plain.encode(color=color)
    tooltip = [
        alt.Tooltip("group:N", title=" / ".join(by) or "requests"),
        alt.Tooltip("when:N", title="time"),
        alt.Tooltip("rate_ci:N", title=f"{signal} rate [95% CI]"),
        alt.Tooltip("k:Q", title=signal, format=","),
        alt.Tooltip("n:Q", title="requests", format=","),
    ]
    y_scale = alt.Scale(domain=[0, max_rate], nice=True)
    # the band has a fill and no colour: both would make Vega-Lite warn and drop one
    band = plain.mark_area(
        opacity=0.16, clip=True, interpolate="linear" if grain == "day" else "step-after"
    )
    band = band.encode(
        y=alt.Y("band_low:Q", axis=y_axis, scale=y_scale),
        y2=alt.Y2("band_high"),
        fill=alt.Fill("group:N", scale=alt.Scale(domain=domain, range=color_range), legend=legend),
    )
    line = base.mark_line(
        strokeWidth=1.8, clip=True, point=grain == "day" and frame.height <= 400
    ).encode(y=alt.Y("rate:Q"), tooltip=tooltip)
    params: list[Any] = []
    if selection:
        # Declared on the layer chart with the view it lives in, rather than with
        # line.add_params(): Altair then has no sub-chart params to gather and copy.
        line = line.properties(name=_LINE_VIEW)
        params.append(_brush(SELECTION, ["x"], _LINE_VIEW, opacity=0.12, stroke="#4c78a8"))
        # a click on a legend value (grouped; else on the line): the dashboard filters on it
        params.append(
            alt.TopLevelSelectionParameter(
                name=PICK,
                select=alt.PointSelectionConfig(type="point", fields=["group"]),
                bind="legend" if by else alt.Undefined,
                views=[_LINE_VIEW],
            )
        )
    layers: list[Any] = []
    if selection:
        layers.append(_moment_layer(frame, x, height))
        params.append(
            alt.TopLevelSelectionParameter(
                name=MOMENT,
                select=alt.PointSelectionConfig(
                    type="point",
                    encodings=["x"],
                    nearest=True,
                    on="click",
                    toggle=False,
                    clear=False,
                ),
                views=[_MOMENT_VIEW],
            )
        )
    if highlight is not None:
        window = _window_frame(highlight, end)
        layers.append(
            alt.Chart(_inline(window, dates=["start", "end"]))
            .mark_rect(color=HIGHLIGHT_COLOR, opacity=0.28)
            .encode(x=alt.X("start:T"), x2=alt.X2("end"))
        )
    layers += [band, line]
    if events is not None and events.height:
        layers += _event_layers(events, start, end, width)
    if change_points is not None and change_points.height:
        layers.append(_change_layer(change_points, start, end, height))
    what = f"{signal} rate" + (f" by {' / '.join(by)}" if by else "") + f", per {grain}"
    bands = "bands: 95% Wilson interval" + (
        f" in hours of at least {BAND_MIN_REQUESTS} requests" if least else ""
    )
    subtitle = [
        f"{describe_where(where)} · {describe_window(start, end)}",
        f"{bands} (axis fits buckets of at least {MIN_CELL_REQUESTS} requests) · dashed: "
        "change events · ▲▼: detected changes"
        + (" · drag to select a window, click a moment to explain it" if selection else "")
        + (" · click a legend value to filter" if selection and by else ""),
    ]
    if len(groups) > len(shown):
        subtitle.append(f"showing the {len(shown)} of {len(groups)} groups with most requests")
    return _layered(
        layers,
        params=params or alt.Undefined,
        width=width,
        height=height,
        title=_title(what, subtitle),
    )


def _moment_layer(frame: pl.DataFrame, x: Any, height: int) -> Any:
    """One invisible point per bucket across the middle of the chart, under every mark.

    ``MOMENT`` picks the nearest one (Vega-Lite's Voronoi cells, vertical strips
    here): a click anywhere on the chart but on a line or a rule picks its bucket,
    and the lines and rules drawn above keep their tooltips.
    """
    moments = frame.select(pl.col("ts").unique().sort()).select(_iso("ts"))
    return (
        alt.Chart(_inline(moments, dates=["ts"]))
        .mark_point(opacity=0, size=1)
        .encode(x=x, y=alt.value(height / 2))
        .properties(name=_MOMENT_VIEW)
    )


def _brush(name: str, encodings: list[Any], view: str, *, opacity: float, stroke: str) -> Any:
    """An interval selection dragged on one view, declared at the top of its chart."""
    return alt.TopLevelSelectionParameter(
        name=name,
        select=alt.IntervalSelectionConfig(
            type="interval",
            encodings=encodings,
            mark=alt.BrushConfig(fill="#4c78a8", fillOpacity=opacity, stroke=stroke),
        ),
        views=[view],
    )


def _groups_by_size(frame: pl.DataFrame) -> list[str]:
    """The groups of a labelled rates frame, most requests first (ties by name)."""
    totals = frame.group_by("group").agg(pl.col("n").sum())
    return totals.sort(["n", "group"], descending=[True, False])["group"].to_list()


def _group_scale(
    shown: Sequence[str], colors: Mapping[str, str] | None, *, grouped: bool
) -> tuple[list[str], list[str]]:
    """Domain and colours of the groups shown: the caller's colours in the caller's order."""
    palette = dict(colors or {})
    domain = [g for g in palette if g in shown] + [g for g in shown if g not in palette]
    if not grouped:
        return domain, [PALETTE[0]] * max(1, len(domain))
    return domain, [palette.get(g, QUIET_COLOR) for g in domain]


def _event_lanes(
    xs: Sequence[float], labels: Sequence[str], *, lanes: int = EVENT_LANES
) -> list[int | None]:
    """The row of each event's label, in time order: the first row where it overlaps no label.

    ``xs`` are the events' positions in pixels; a label is as wide as its text
    (``EVENT_CHAR_PX`` a character). An event finding no free row among
    ``lanes`` gets None (it keeps its rule and tooltip).

    Examples
    --------
    >>> _event_lanes([0, 10, 20, 300], ["deploy", "config", "deploy", "rollback"])
    [0, 1, 2, 0]
    >>> _event_lanes([0, 1, 2], ["a", "b", "c"], lanes=2)
    [0, 1, None]
    """
    ends: list[float] = []  # per row, where its last label ends
    out: list[int | None] = []
    for x, label in zip(xs, labels, strict=True):
        width = EVENT_CHAR_PX * len(label) + 4
        row = next((i for i, end in enumerate(ends) if x >= end), None)
        if row is None and len(ends) < lanes:
            ends.append(0.0)
            row = len(ends) - 1
        if row is not None:
            ends[row] = x + width
        out.append(row)
    return out


def _event_layers(
    events: pl.DataFrame, start: datetime | None, end: datetime | None, width: int
) -> list[Any]:
    """Dashed rules, one label per event (its kind, in rows that do not overlap), tooltips."""
    frame = events
    if start is not None and end is not None:
        frame = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    if frame.height == 0:
        return []
    frame = frame.sort("ts")
    ts = frame["ts"].to_list()
    lo, hi = (start, end) if start is not None and end is not None else (ts[0], ts[-1])
    span = (hi - lo) or timedelta(hours=1)
    kinds = frame["kind"].fill_null("").to_list()
    lanes = _event_lanes([width * ((t - lo) / span) for t in ts], kinds)
    labels = [k if lane is not None else "" for k, lane in zip(kinds, lanes, strict=True)]
    data = frame.select(
        _iso("ts"),
        pl.col("kind").fill_null(""),
        pl.col("description").fill_null(""),
        pl.col("scope").fill_null(""),
        pl.col("ts").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M UTC").alias("when"),
    ).with_columns(
        pl.Series("label", labels, dtype=pl.String),
        pl.Series("lane_y", [2 + EVENT_LANE_PX * (lane or 0) for lane in lanes], dtype=pl.Int64),
    )
    base = alt.Chart(_inline(data, dates=["ts"], numbers=["lane_y"])).encode(
        x=alt.X("ts:T"),
        tooltip=[
            alt.Tooltip("when:N", title="change"),
            alt.Tooltip("kind:N"),
            alt.Tooltip("description:N"),
            alt.Tooltip("scope:N"),
        ],
    )
    rules = base.mark_rule(color=EVENT_COLOR, strokeDash=[4, 3], strokeWidth=1, opacity=0.8)
    labelled = base.transform_filter("datum.label")  # no free row: rule and tooltip only
    text = labelled.mark_text(
        align="left", baseline="top", dx=2, fontSize=9, color=EVENT_COLOR
    ).encode(text=alt.Text("label:N"), y=alt.Y("lane_y:Q", scale=None, axis=None))
    return [rules, text]


def _change_layer(
    change_points: pl.DataFrame, start: datetime | None, end: datetime | None, height: int
) -> Any:
    data = change_points.select(
        _iso("ts"),
        "direction",
        pl.col("ts").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M UTC").alias("when"),
        pl.format(
            "{} → {}",
            *(
                (pl.col(c) * 100).round(3).cast(pl.Utf8) + pl.lit("%")
                for c in ("rate_before", "rate_after")
            ),
        ).alias("change"),
        pl.format(
            "{} – {}",
            *(
                pl.col(c).dt.convert_time_zone("UTC").dt.strftime("%m-%d %H:%M")
                for c in ("ci_low", "ci_high")
            ),
        ).alias("range"),
    )
    return (
        alt.Chart(_inline(data, dates=["ts"]))
        .mark_point(filled=True, size=70, color=CHANGE_COLOR, opacity=0.9)
        .encode(
            x=alt.X("ts:T"),
            y=alt.YValue(height - 6),
            shape=alt.Shape(
                "direction:N",
                scale=alt.Scale(domain=["up", "down"], range=["triangle-up", "triangle-down"]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("when:N", title="rate changed"),
                alt.Tooltip("direction:N"),
                alt.Tooltip("change:N", title="rate before → after"),
                alt.Tooltip("range:N", title="95% range of the time (UTC)"),
            ],
        )
    )


# -- the heatmap ----------------------------------------------------------------------


def heatmap_chart(
    rates: pl.DataFrame,
    *,
    signal: str,
    by: Sequence[str],
    grain: str = "day",
    edges: Mapping[str, Sequence[float]] | None = None,
    order: Sequence[str] | None = None,
    highlight: tuple[datetime, datetime | None] | None = None,
    highlight_groups: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    selection: bool = False,
    width: int = WIDTH,
) -> alt.LayerChart:
    """Rate of a signal per value of a dimension (rows) and time bucket (columns).

    Parameters
    ----------
    rates
        ``Timeline.rates`` grouped by ``by``: ``ts, *by, n, k, rate, ci_low, ci_high``.
    order
        Row labels, top to bottom (default: most requests first).
    highlight
        A window to outline.
    highlight_groups
        With ``highlight``, outline the window on these rows only (a selected region).
    selection
        Add the interval selection ``REGION`` over rows and time (drag a
        rectangle: its value holds ``ts`` bounds and ``group`` labels).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> f = pl.DataFrame({"ts": [datetime(2025, 8, 1, tzinfo=UTC)] * 2, "model": ["a", "b"],
    ...     "n": [10, 50], "k": [1, 5], "rate": [0.1, 0.1], "ci_low": [0.0, 0.0],
    ...     "ci_high": [0.4, 0.2]})
    >>> heatmap_chart(f, signal="degraded", by=["model"]).to_dict()["layer"][0]["mark"]["type"]
    'rect'
    """
    start, end = _time_bounds(rates, grain)
    step = _step(grain)
    frame = rates.with_columns(group_labels(rates, by, edges=edges))
    if order is None:
        totals = frame.group_by("group").agg(pl.col("n").sum())
        order = totals.sort(["n", "group"], descending=[True, False])["group"].to_list()
    present = set(frame["group"].to_list())
    rows = [g for g in order if g in present] + sorted(present - set(order))
    frame = frame.filter(pl.col("n") > 0)
    max_rate = float(frame["rate"].quantile(0.99) or 0.0) if frame.height else 0.0
    data = frame.select(
        _iso("ts"),
        (pl.col("ts") + step).alias("ts_end"),
        "group",
        "n",
        "k",
        "rate",
        _when(grain),
        _rate_ci(),
        (pl.col("n") >= MIN_CELL_REQUESTS).alias("enough"),
    ).with_columns(_iso("ts_end"))
    name = " / ".join(by)
    x = alt.X("ts:T", scale=_time_scale(start, end), axis=_time_axis(start, end))
    cells = (
        alt.Chart(_inline(data, dates=["ts", "ts_end"], numbers=["n", "k", "rate"]))
        .mark_rect()
        .encode(
            x=x,
            x2=alt.X2("ts_end"),
            y=alt.Y("group:N", sort=rows, title=name, axis=alt.Axis(labelLimit=180)),
            color=alt.Color(
                "rate:Q",
                title=f"{signal} rate",
                scale=alt.Scale(scheme="orangered", domain=[0, max(max_rate, 1e-9)], clamp=True),
                legend=alt.Legend(
                    format=_rate_format(max_rate), orient="right", gradientLength=120
                ),
            ),
            opacity=alt.condition("datum.enough == 'true'", alt.value(1.0), alt.value(0.35)),
            tooltip=[
                alt.Tooltip("group:N", title=name),
                alt.Tooltip("when:N", title="time"),
                alt.Tooltip("rate_ci:N", title=f"{signal} rate [95% CI]"),
                alt.Tooltip("k:Q", title=signal, format=","),
                alt.Tooltip("n:Q", title="requests", format=","),
            ],
        )
    )
    params: list[Any] = []
    if selection:
        cells = cells.properties(name=_CELLS_VIEW)
        params.append(_brush(REGION, ["x", "y"], _CELLS_VIEW, opacity=0.15, stroke="#222"))
    layers: list[Any] = [cells]
    if highlight is not None:
        window = _window_frame(highlight, end)
        outline = {"x": alt.X("start:T"), "x2": alt.X2("end")}
        shown = [g for g in highlight_groups or () if g in present]
        if shown:
            window = window.join(pl.DataFrame({"group": shown}), how="cross")
            outline["y"] = alt.Y("group:N", sort=rows)
        layers.append(
            alt.Chart(_inline(window, dates=["start", "end"]))
            .mark_rect(fill=None, stroke="#222", strokeWidth=1.5)
            .encode(**outline)
        )
    height = max(60, min(22 * len(rows), 480))
    subtitle = [
        f"{describe_where(where)} · {describe_window(start, end)}",
        f"colour: {signal} rate per {grain} (99th percentile and above in the darkest shade) · "
        f"faded: fewer than {MIN_CELL_REQUESTS} requests"
        + (" · drag a rectangle to select values × time" if selection else ""),
    ]
    return _layered(
        layers,
        params=params or alt.Undefined,
        width=width,
        height=height,
        title=_title(f"Where {signal} concentrates: {name} × {grain}", subtitle),
    )


# -- the comparison -------------------------------------------------------------------


def comparison_chart(
    compare: pl.DataFrame,
    *,
    signal: str,
    incident: tuple[datetime | None, datetime | None],
    baseline: tuple[datetime | None, datetime | None],
    top: int = 15,
    alpha: float = 0.05,
    where: Mapping[str, Any] | None = None,
    width: int = 470,
) -> alt.HConcatChart:
    """Which dimension values explain the incident: rate in the incident vs the baseline.

    Parameters
    ----------
    compare
        ``Workbench.compare``'s frame, already ranked (the values that explain
        the incident first).
    incident, baseline
        The two windows, for the title.
    top
        Rows shown.
    alpha
        A rise is marked significant when ``p_adjusted < alpha`` (Benjamini-Hochberg).

    Returns
    -------
    alt.HConcatChart
        Left: the incident rate with its Wilson interval (red when the rise is
        significant) and the baseline rate (hollow). Right: the share of the
        incident's excess bad requests each value accounts for.
    """
    informative = compare.filter(pl.col("dimension").count().over("dimension") > 1)
    rows = informative.head(top)
    labels = [f"{d} = {v}" for d, v in zip(rows["dimension"], rows["value"], strict=True)]
    significant = (pl.col("p_adjusted") < alpha) & (pl.col("diff") > 0)
    data = rows.with_columns(
        pl.Series("label", labels, dtype=pl.Utf8),
        pl.when(significant.fill_null(False))
        .then(pl.lit("significant rise"))
        .otherwise(pl.lit("not significant"))
        .alias("verdict"),
        pl.col("explains").clip(0.0, 1.0).fill_null(0.0).alias("explains_bar"),
    )
    text = {
        "incident_rate": [
            f"{_pct(r)} [{_pct(lo)} – {_pct(hi)}]"
            for r, lo, hi in zip(
                data["rate_incident"], data["ci_low"], data["ci_high"], strict=True
            )
        ],
        "baseline_rate": [
            _pct(r) + (" (all values: none of its own)" if n == 0 and r is not None else "")
            for r, n in zip(data["rate_baseline"], data["n_baseline"], strict=True)
        ],
        "difference": [
            f"{_pct(d)} [{_pct(lo)} – {_pct(hi)}]"
            for d, lo, hi in zip(data["diff"], data["diff_low"], data["diff_high"], strict=True)
        ],
        "p": [format_p_value(p) for p in data["p_adjusted"]],
        "explains_text": [
            "" if e is None or e <= 0 else f"{100 * e:.0f}%" for e in data["explains"]
        ],
    }
    data = data.with_columns(pl.Series(k, v, dtype=pl.Utf8) for k, v in text.items()).select(
        "label", "n_incident", "k_incident", "n_baseline", "rate_incident", "ci_low", "ci_high",
        "rate_baseline", "verdict", "explains_bar", "incident_rate", "baseline_rate",
        "difference", "p", "explains_text",
    )  # fmt: skip
    numbers = [
        "n_incident", "k_incident", "n_baseline", "rate_incident", "ci_low", "ci_high",
        "rate_baseline", "explains_bar",
    ]  # fmt: skip
    max_rate = max(_max(data["ci_high"]), _max(data["rate_baseline"]))
    y = alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=260))
    tooltip = [
        alt.Tooltip("label:N", title="slice"),
        alt.Tooltip("incident_rate:N", title="incident rate [95% CI]"),
        alt.Tooltip("baseline_rate:N", title="baseline rate"),
        alt.Tooltip("difference:N", title="difference [95% CI]"),
        alt.Tooltip("p:N", title="p (BH-adjusted)"),
        alt.Tooltip("k_incident:Q", title=f"{signal} in incident", format=","),
        alt.Tooltip("n_incident:Q", title="requests in incident", format=","),
        alt.Tooltip("explains_text:N", title="share of the excess"),
    ]
    base = alt.Chart(_inline(data, numbers=numbers)).encode(y=y, tooltip=tooltip)
    x_rate = alt.X(
        "rate_incident:Q",
        title=f"{signal} rate",
        axis=alt.Axis(format=_rate_format(max_rate), tickCount=8),
        scale=alt.Scale(zero=True),
    )
    verdict = alt.Color(
        "verdict:N",
        title=None,
        scale=alt.Scale(
            domain=["significant rise", "not significant"], range=[SIGNIFICANT_COLOR, QUIET_COLOR]
        ),
        legend=alt.Legend(orient="top", symbolType="circle"),
    )
    ci = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q"), x2=alt.X2("ci_high"), color=verdict
    )
    dots = base.mark_point(filled=True, size=60).encode(x=x_rate, color=verdict)
    baseline_dots = base.mark_point(
        shape="diamond", filled=False, size=60, color="#333", strokeWidth=1.2
    ).encode(x=alt.X("rate_baseline:Q"))
    height = max(80, 20 * data.height)
    rates_chart = _layered([ci, baseline_dots, dots], width=width, height=height)
    share = base.mark_bar(color="#4c78a8", opacity=0.8).encode(
        x=alt.X(
            "explains_bar:Q",
            title="share of the excess",
            axis=alt.Axis(format=".0%"),
            scale=alt.Scale(domain=[0, 1]),
        ),
        y=alt.Y("label:N", sort=labels, axis=None),
    )
    share_text = share.mark_text(align="left", dx=3, fontSize=10, color="#333").encode(
        text=alt.Text("explains_text:N")
    )
    subtitle = [
        f"incident {describe_window(*incident)} vs baseline {describe_window(*baseline)}"
        f" · {describe_where(where)}",
        "dot and line: incident rate with 95% interval (red: significant rise, BH-adjusted "
        f"p < {alpha:g}) · hollow diamond: baseline rate",
        f"bar: share of the incident's excess {signal} · dimensions with one value left out",
    ]
    return _side_by_side(
        [rates_chart, _layered([share, share_text], width=150, height=height)],
        spacing=8,
        title=_title(f"What is different about the incident: {signal}", subtitle),
    )


# -- exposure -------------------------------------------------------------------------


def exposure_chart(exposure: Any, *, where: Mapping[str, Any] | None = None) -> alt.HConcatChart:
    """Who is hit: affected users by how often, and whether the problem sticks to users.

    Parameters
    ----------
    exposure
        ``Workbench.exposure``'s result (an ``analysis.Exposure``).

    Returns
    -------
    alt.HConcatChart
        Left: affected users by number of requests with the signal. Right: the
        rate after a request with the signal, after one without, and overall,
        with 95% intervals; a first rate far above the others means sticky.
    """
    per_user = exposure.per_user
    bars = (
        alt.Chart(_inline(per_user, numbers=["users"]))
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X(
                "k_bucket:N",
                sort=per_user["k_bucket"].to_list(),
                title=f"requests with {exposure.signal} per user",
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("users:Q", title="affected users"),
            tooltip=[
                alt.Tooltip("k_bucket:N", title=f"{exposure.signal} requests"),
                alt.Tooltip("users:Q", format=","),
            ],
        )
        .properties(width=260, height=170)
    )
    rates = [
        ("after a request with it", *exposure.repeat_rate),
        ("after a request without it", *exposure.fresh_rate),
        ("any request", *exposure.base_rate),
    ]
    frame = pl.DataFrame(
        rates, schema=["measure", "rate", "low", "high"], orient="row"
    ).with_columns(
        pl.Series(
            "rate_ci",
            [f"{_pct(r)} [{_pct(lo)} – {_pct(hi)}]" for _, r, lo, hi in rates],
            dtype=pl.Utf8,
        )
    )
    max_rate = max((r[3] for r in rates if not math.isnan(r[3])), default=0.0)
    base = alt.Chart(_inline(frame, numbers=["rate", "low", "high"])).encode(
        y=alt.Y("measure:N", sort=[r[0] for r in rates], title=None),
        tooltip=[alt.Tooltip("measure:N"), alt.Tooltip("rate_ci:N", title="rate [95% CI]")],
    )
    sticky = alt.layer(
        base.mark_rule(strokeWidth=2, color="#555").encode(x=alt.X("low:Q"), x2=alt.X2("high")),
        base.mark_point(filled=True, size=70, color="#e45756").encode(
            x=alt.X(
                "rate:Q",
                title=f"P({exposure.signal})",
                axis=alt.Axis(format=_rate_format(max_rate)),
            )
        ),
    ).properties(width=300, height=110)
    share, low, high = exposure.share_affected
    ratio = exposure.repeat_ratio
    subtitle = [
        f"{describe_where(where)} · {exposure.users_affected:,} of {exposure.users:,} users "
        f"affected ({_pct(share, 1)} [{_pct(low, 1)} – {_pct(high, 1)}]) · heavy users: "
        f"{_pct(exposure.heavy_share_affected[0], 1)}",
        f"repeat ratio {ratio:.1f}× (rate after a request with {exposure.signal} / overall): "
        "about 1 when requests are independent, far above 1 when the problem sticks to users",
    ]
    return _side_by_side(
        [bars, sticky],
        spacing=40,
        title=_title(f"Who is hit by {exposure.signal}", subtitle),
    )


# -- request volume -------------------------------------------------------------------


OTHER_GROUPS = "(other groups)"
"""The groups a volume chart does not draw on their own, stacked as one."""


def volume_chart(
    rates: pl.DataFrame,
    *,
    signal: str,
    by: Sequence[str] = (),
    grain: str = "day",
    colors: Mapping[str, str] | None = None,
    edges: Mapping[str, Sequence[float]] | None = None,
    where: Mapping[str, Any] | None = None,
    selection: bool = True,
    width: int = WIDTH,
    height: int = VOLUME_HEIGHT,
) -> alt.LayerChart:
    """Requests per group and time bucket, stacked: the volume behind each rate.

    A rate alone hides where traffic moves: a slice that grows from nothing
    (misrouted requests landing on a new pool) shows here before its rate means
    anything. Drawn under the timeline with the same groups and colours (the
    ``MAX_SERIES`` largest; the rest stacked as ``OTHER_GROUPS``).

    Parameters
    ----------
    rates
        ``Timeline.rates``: ``ts, *by, n, k, ...`` (``n`` counts the requests
        where the signal is defined).
    selection
        Add the click selections ``PICK`` and ``DROP`` (shift-click) on a bar's group.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> f = pl.DataFrame({"ts": [datetime(2025, 8, 1, tzinfo=UTC)] * 2, "model": ["a", "b"],
    ...     "n": [10, 50], "k": [1, 5]})
    >>> spec = volume_chart(f, signal="degraded", by=["model"]).to_dict()
    >>> spec["layer"][0]["mark"]["type"], [p["name"] for p in spec["params"]]
    ('rect', ['pick', 'drop'])
    """
    start, end = _time_bounds(rates, grain)
    step = _step(grain)
    frame = rates.with_columns(group_labels(rates, by, edges=edges))
    groups = _groups_by_size(frame)
    shown = groups[:MAX_SERIES]
    if len(groups) > len(shown):
        frame = frame.with_columns(
            pl.when(pl.col("group").is_in(shown))
            .then(pl.col("group"))
            .otherwise(pl.lit(OTHER_GROUPS))
            .alias("group")
        )
        shown = [*shown, OTHER_GROUPS]
    order = {g: i for i, g in enumerate(shown)}
    stacked = (
        frame.group_by("ts", "group")
        .agg(pl.col("n").sum())
        .with_columns(pl.col("group").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort("ts", "_o")
        .with_columns(pl.col("n").cum_sum().over("ts").alias("top"))
        .with_columns((pl.col("top") - pl.col("n")).alias("bottom"))
        .filter(pl.col("n") > 0)
    )
    data = stacked.select(
        _iso("ts"),
        (pl.col("ts") + step).alias("ts_end"),
        "group",
        "n",
        "bottom",
        "top",
        _when(grain),
    ).with_columns(_iso("ts_end"))
    domain, color_range = _group_scale(shown, colors, grouped=bool(by))
    if OTHER_GROUPS in domain:
        color_range[domain.index(OTHER_GROUPS)] = MISSING_COLOR
    name = " / ".join(by)
    x = alt.X("ts:T", scale=_time_scale(start, end), axis=_time_axis(start, end))
    bars = (
        alt.Chart(_inline(data, dates=["ts", "ts_end"], numbers=["n", "bottom", "top"]))
        .mark_rect(opacity=0.85)
        .encode(
            x=x,
            x2=alt.X2("ts_end"),
            y=alt.Y("bottom:Q", title="requests", axis=alt.Axis(format="~s", tickCount=3)),
            y2=alt.Y2("top"),
            color=alt.Color(
                "group:N", scale=alt.Scale(domain=domain, range=color_range), legend=None
            ),
            tooltip=[
                alt.Tooltip("group:N", title=name or "requests"),
                alt.Tooltip("when:N", title="time"),
                alt.Tooltip("n:Q", title=f"requests ({signal} defined)", format=","),
            ],
        )
    )
    params: list[Any] = []
    if selection:
        bars = bars.properties(name=_VOLUME_VIEW)
        params = _click_params(["group"], views=[_VOLUME_VIEW])
    what = f"Requests per {grain}" + (f" by {name}" if by else "")
    subtitle = [
        f"{describe_where(where)} · {describe_window(start, end)} · requests where {signal} "
        "is defined, stacked"
        + (
            " · click a bar to filter to its group, shift-click to exclude it"
            if by and params
            else ""
        )
    ]
    return _layered(
        [bars],
        params=params or alt.Undefined,
        width=width,
        height=height,
        title=_title(what, subtitle),
    )


_VOLUME_VIEW = "volume_bars"
"""View name of the volume chart's bars (where its click selections live)."""


def _click_params(fields: Sequence[str], *, views: Sequence[str] | None = None) -> list[Any]:
    """``PICK`` (click) and ``DROP`` (shift-click) point selections on ``fields``."""
    out = []
    for name, event in ((PICK, "click[!event.shiftKey]"), (DROP, "click[event.shiftKey]")):
        out.append(
            alt.TopLevelSelectionParameter(
                name=name,
                select=alt.PointSelectionConfig(
                    type="point", fields=list(fields), on=event, toggle=False, clear=False
                ),
                views=list(views) if views else alt.Undefined,
            )
        )
    return out


def message_chart(message: str) -> alt.Chart:
    """A chart that only says something: why a panel is empty, what to do.

    Examples
    --------
    >>> message_chart("No rise detected").to_dict()["mark"]["type"]
    'text'
    """
    return (
        alt.Chart(alt.InlineData(values=[{"m": message}]))
        .mark_text(align="left", fontSize=13, color="#666")
        .encode(text="m:N", x=alt.value(0), y=alt.value(12))
        .properties(width=400, height=24)
    )


# -- contrast -------------------------------------------------------------------------


def contrast_chart(
    contrast: pl.DataFrame,
    *,
    signal: str,
    selection: str,
    baseline: str,
    columns: int = 3,
    width: int = 210,
    click: bool = True,
) -> alt.FacetChart | alt.Chart:
    """Every dimension as two distributions: share of bad requests, selection vs baseline.

    Parameters
    ----------
    contrast
        ``contrast.contrast``'s frame (dimensions most different first).
    selection, baseline
        What each side is, in words (for the subtitle).
    click
        Add the click selections ``PICK`` and ``DROP`` (shift-click) on a bar's
        ``dimension`` and ``value``.

    Returns
    -------
    alt.FacetChart
        One small chart per dimension, most different first: per value a red
        bar (its share of the selection's true requests) over a grey one (its
        share of the baseline's). A message chart when there is nothing to show.

    Examples
    --------
    >>> f = pl.DataFrame({"dimension": ["pool"] * 2, "value": ["a", "b"], "key": ["a", "b"],
    ...     "k_selection": [9, 1], "n_selection": [90, 60], "k_baseline": [1, 9],
    ...     "n_baseline": [100, 900], "share_selection": [0.9, 0.1], "share_baseline": [0.1, 0.9],
    ...     "difference": [0.8, -0.8], "rate_selection": [0.1, 0.02],
    ...     "rate_baseline": [0.01, 0.01], "distance": [0.8, 0.8], "p_adjusted": [1e-9, 1e-9],
    ...     "folded": [0, 0]})
    >>> spec = contrast_chart(f, signal="degraded", selection="S1", baseline="the rest").to_dict()
    >>> spec["facet"]["field"], [p["name"] for p in spec["params"]]
    ('panel', ['pick', 'drop'])
    """
    if contrast.height == 0:
        return message_chart(
            "No dimension sets the selection apart: every dimension has one value on both sides."
        )
    panels = {
        d: f"{d} · {_pct(dist, 0)} apart" + (f" · p {format_p_value(p)}" if p is not None else "")
        for d, dist, p in contrast.select("dimension", "distance", "p_adjusted")
        .unique("dimension", maintain_order=True)
        .iter_rows()
    }
    rows = contrast.with_columns(
        pl.int_range(pl.len()).over("dimension").alias("order"),
        pl.col("dimension").replace_strict(panels, return_dtype=pl.Utf8).alias("panel"),
    )
    sides = []
    for side in ("selection", "baseline"):
        counts = [
            f"{k:,}" if n is None else f"{k:,} of {n:,} ({_pct(k / n if n else None)})"
            for k, n in zip(rows[f"k_{side}"], rows[f"n_{side}"], strict=True)
        ]
        sides.append(
            rows.select(
                "dimension",
                "panel",
                "value",
                "order",
                pl.lit(side).alias("side"),
                pl.col(f"share_{side}").alias("share"),
                pl.Series("count_text", counts, dtype=pl.Utf8),
                pl.Series("share_text", [_pct(x, 1) for x in rows[f"share_{side}"]], dtype=pl.Utf8),
            )
        )
    data = pl.concat(sides)
    top = _max(contrast["share_selection"].fill_null(0)) or 0.0
    top = max(top, _max(contrast["share_baseline"].fill_null(0)), 0.05)
    bars = (
        alt.Chart(_inline(data, numbers=["share", "order"]))
        .mark_bar(height={"band": 1})
        .encode(
            y=alt.Y(
                "value:N",
                sort=alt.EncodingSortField("order", op="min"),
                title=None,
                axis=alt.Axis(labelLimit=140, labelFontSize=10),
            ),
            yOffset=alt.YOffset("side:N", sort=["selection", "baseline"]),
            x=alt.X(
                "share:Q",
                title=f"share of {signal} requests",
                axis=alt.Axis(format=".0%", tickCount=4),
                scale=alt.Scale(domain=[0, min(1.0, 1.1 * top)]),
            ),
            color=alt.Color(
                "side:N",
                title=None,
                scale=alt.Scale(
                    domain=["selection", "baseline"], range=[SELECTION_COLOR, BASELINE_COLOR]
                ),
                legend=alt.Legend(orient="top", symbolType="square"),
            ),
            tooltip=[
                alt.Tooltip("dimension:N"),
                alt.Tooltip("value:N"),
                alt.Tooltip("side:N"),
                alt.Tooltip("share_text:N", title=f"share of the side's {signal}"),
                alt.Tooltip("count_text:N", title=f"{signal} of requests (rate)"),
            ],
        )
        .properties(width=width, height=alt.Step(7))
    )
    subtitle = [
        f"selection: {selection}",
        f"baseline: {baseline}",
        f"bars: each side's share of its own {signal} requests (a side sums to 100%) · "
        "dimensions that differ significantly first (chi-square, BH-adjusted p),",
        "then by how far apart (total variation distance)"
        + (" · click a bar to filter to its value, shift-click to exclude it" if click else ""),
    ]
    return alt.FacetChart(
        data=bars.data,
        spec=_without_data(bars),
        facet=alt.Facet(
            "panel:N",
            sort=list(panels.values()),
            title=None,
            header=alt.Header(labelAnchor="start", labelFontWeight="bold", labelFontSize=11),
        ),
        columns=columns,
        resolve=alt.Resolve(scale=alt.ScaleResolveMap(y="independent")),
        params=_click_params(["dimension", "value"]) if click else alt.Undefined,
        title=_title(f"What sets the selection apart: {signal}", subtitle),
    )


def _without_data(chart: Any) -> Any:
    """The chart's specification without its data (a facet declares it once)."""
    inner = chart.copy(deep=False)
    inner.data = alt.Undefined
    return inner


# -- windows --------------------------------------------------------------------------


def windows_chart(
    windows: pl.DataFrame,
    *,
    events: pl.DataFrame | None = None,
    span: tuple[datetime, datetime] | None = None,
    colors: Mapping[str, str] | None = None,
    title: str = "When each problem was active",
    width: int = WIDTH,
) -> alt.LayerChart:
    """Time windows on one UTC axis, one row each, with their uncertainty and the change events.

    Parameters
    ----------
    windows
        One row per window, drawn top to bottom in frame order: ``label`` (the
        row's name), ``group`` (its colour, e.g. a signal), ``start``, ``end``
        (null: still open, drawn to the end of ``span``) and optionally
        ``start_low, start_high, end_low, end_high`` (95% ranges of the onset
        and the end, drawn as thick ticks).
    events
        ``ts, kind, description, scope``: dashed rules across every row.
    span
        The time axis (default: from the earliest start to the latest end).
    colors
        Group -> colour (default: ``value_colors`` of the groups in order).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> w = pl.DataFrame({"label": ["S1"], "group": ["script_mix"],
    ...     "start": [datetime(2025, 8, 2, tzinfo=UTC)], "end": [None]},
    ...     schema_overrides={"end": pl.Datetime("us", "UTC")})
    >>> spec = windows_chart(w, span=(datetime(2025, 8, 1, tzinfo=UTC),
    ...     datetime(2025, 8, 9, tzinfo=UTC))).to_dict()
    >>> [layer["mark"]["type"] for layer in spec["layer"]]
    ['bar', 'text']
    """
    if span is None:
        ends = windows["end"].drop_nulls()
        starts = windows["start"].drop_nulls()
        first: datetime | None = starts.min() if starts.len() else None  # type: ignore[assignment]
        last: datetime | None = max(ends.max(), starts.max()) if ends.len() else starts.max()  # type: ignore[assignment,type-var]
        start, end = first, last
    else:
        start, end = span
    labels = windows["label"].to_list()
    groups = list(dict.fromkeys(windows["group"].to_list()))
    palette = dict(colors) if colors is not None else value_colors(groups)
    fill_end = pl.col("end").fill_null(pl.lit(end, dtype=windows.schema["start"]))
    frame = windows.with_columns(
        pl.col("end").is_null().alias("open"),
        fill_end.alias("end"),
        pl.col("start").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M UTC").alias("from"),
        pl.when(pl.col("end").is_null())
        .then(pl.lit("still active"))
        .otherwise(pl.col("end").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M UTC"))
        .alias("to"),
    )
    ranges = [c for c in ("start_low", "start_high", "end_low", "end_high") if c in frame.columns]
    data = frame.select(
        "label", "group", _iso("start"), _iso("end"), "open", "from", "to",
        *(_iso(c) for c in ranges),
    )  # fmt: skip
    y = alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=360, labelFontSize=11))
    color = alt.Color(
        "group:N",
        title=None,
        sort=groups,
        scale=alt.Scale(domain=groups, range=[palette.get(g, QUIET_COLOR) for g in groups]),
        legend=alt.Legend(orient="top", symbolType="square"),
    )
    x = alt.X("start:T", scale=_time_scale(start, end), axis=_time_axis(start, end))
    base = alt.Chart(_inline(data, dates=["start", "end", *ranges])).encode(
        y=y,
        tooltip=[
            alt.Tooltip("label:N", title="window"),
            alt.Tooltip("group:N"),
            alt.Tooltip("from:N"),
            alt.Tooltip("to:N"),
        ],
    )
    layers: list[Any] = [
        base.mark_bar(height=12, cornerRadius=2, opacity=0.85).encode(
            x=x, x2=alt.X2("end"), color=color
        )
    ]
    for low, high in (("start_low", "start_high"), ("end_low", "end_high")):
        if low in ranges and high in ranges:
            layers.append(
                base.mark_bar(height=20, color="#222", opacity=0.55).encode(
                    x=alt.X(f"{low}:T"), x2=alt.X2(high)
                )
            )
    layers.append(
        base.transform_filter("datum.open == 'true'")
        .mark_text(align="right", dx=-4, dy=-12, fontSize=10, color="#333")
        .encode(x=alt.X("end:T"), text=alt.value("still active →"))
    )
    if events is not None and events.height:
        layers += _event_layers(events, start, end, width)
    subtitle = [
        describe_window(start, end),
        "bar: window (UTC); dark ends: 95% range of onset and end · dashed: change events",
    ]
    return _layered(
        layers,
        width=width,
        height=max(60, 30 * len(labels)),
        title=_title(title, subtitle),
    )


def signatures_chart(
    signatures: Sequence[Signature],
    *,
    events: pl.DataFrame | None = None,
    span: tuple[datetime, datetime] | None = None,
    title: str = "When each problem was active, and what changed",
    width: int = WIDTH,
) -> alt.LayerChart:
    """Every signature's window (``windows_chart``), coloured by the signal it was found on.

    One row per signature, labelled with its id and slice, with the 95% ranges
    of its onset and end; ``events`` (``wb.events()``) as dashed rules.

    Examples
    --------
    ``signatures_chart(wb.signatures(), events=wb.events())``
    """
    utc = pl.Datetime("us", "UTC")
    frame = pl.DataFrame(
        {
            "label": [f"{s.id} · {describe_where(s.predicate)}" for s in signatures],
            "group": [s.signal for s in signatures],
            "start": [s.start for s in signatures],
            "end": [s.end for s in signatures],
            "start_low": [s.onset_range[0] for s in signatures],
            "start_high": [s.onset_range[1] for s in signatures],
            "end_low": [s.end_range[0] if s.end_range else None for s in signatures],
            "end_high": [s.end_range[1] if s.end_range else None for s in signatures],
        },
        schema={
            "label": pl.Utf8,
            "group": pl.Utf8,
            **{c: utc for c in ("start", "end", "start_low", "start_high", "end_low", "end_high")},
        },
    )
    return windows_chart(frame, events=events, span=span, title=title, width=width)
