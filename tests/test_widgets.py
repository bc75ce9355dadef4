"""The dashboard, driven from Python: set controls, check what it shows and asks."""

import html
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import forensics
from forensics import widgets
from forensics.dashboard.data import signature_text
from forensics.errors import ForensicsError
from forensics.findings import View
from forensics.rootcause import headline
from forensics.signature import Signature, SymptomRate
from forensics.simulate import simulate
from tests.conftest import same_signatures

ROWS = 20_000


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    """A small simulated incident (three overlapping bugs), ingested once for the module."""
    out = tmp_path_factory.mktemp("dash")
    simulate("postmortem-2025", rows=ROWS, seed=3, out=out / "sim")
    path = out / "dash.duckdb"
    with forensics.open(path) as wb:
        wb.ingest(out / "sim" / "requests.parquet", progress=False)
        wb.ingest_events(out / "sim" / "events.csv")
    return path


@pytest.fixture(scope="module")
def truth(db_path):
    """What the simulator injected (bugs with their windows and signals)."""
    return json.loads((db_path.parent / "sim" / "truth.json").read_text())


def _bugs_raising(truth, signal):
    """(start, end) of the true bugs that inject ``signal``."""
    return [
        (datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]))
        for b in truth["bugs"]
        if signal in b["injected"]["signals"]
    ]


@pytest.fixture
def wb(db_path):
    bench = forensics.open(db_path, read_only=True)
    yield bench
    bench.close()


@pytest.fixture
def dash(wb):
    return wb.dashboard()


def _headline_rate(dash) -> str:
    return dash.headline.value.split("forensics-rate'>")[1].split("<")[0]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _first_cubed(wb) -> str:
    return wb.cubes()[0].dims[0]


def test_dashboard_shows_the_overall_rate_and_draws_every_panel(wb, dash):
    overall = wb.rates(signal="degraded").row(0, named=True)
    assert _headline_rate(dash) == _pct(overall["rate"])
    assert f"{overall['n']:,}</b> requests" in dash.headline.value
    assert dash.group_picker.value == _first_cubed(wb)
    assert dash.timeline_view.spec["title"]["text"].startswith("degraded rate by")
    assert dash.heatmap_view.spec["title"]["text"].startswith("Where degraded concentrates")
    # on this small sample degraded has no significant rise: the comparison says what to do
    assert dash.state().signal == "degraded"
    assert "No rise detected in this range" in str(dash.compare_view.spec)
    dash.signal_picker.value = "script_mix"  # rises with the TPU corruption: compared
    assert dash.compare_view.spec["facet"]["field"] == "panel"
    assert dash.volume_view.spec["title"]["text"].startswith("Requests per day by")
    assert "updated in" in dash.status.value
    assert set(dash.last_update.panels) >= {"headline", "timeline", "heatmap", "compare"}
    # the timeline keeps its selection even though its spec is set directly
    assert charts_selection(dash) == widgets.charts.SELECTION


def charts_selection(dash):
    return next(iter(dash.timeline_view._vl_selections))


def test_filters_come_from_the_data(wb, dash):
    names = {d.name for d in wb.dimensions()}
    numeric = {d.name for d in wb.dimensions() if d.kind == "numeric" and len(d.edges) > 1}
    assert (
        set(dash.filters) == {d.name for d in wb.dimensions() if d.kind == "categorical"} | numeric
    )
    assert set(dash.filters) <= names
    assert dash.signal_picker.options == tuple(wb.signals())
    first = _first_cubed(wb)
    values = [v for _, v in dash.filters[first].options]
    assert set(values) == set(forensics.queries.dimension_values(wb.db, first)["value"].to_list())


def test_the_outcomes_show_under_the_filters_and_are_no_filter(wb, dash):
    outcomes = wb.roles().filter(pl.col("role") == "outcome")["column"].to_list()
    assert "output_tokens" in outcomes
    note = dash.roles_note.value
    assert "outcomes (never slices): " in note
    assert all(f">{name}</span>" in note for name in outcomes)
    assert dash.roles_note in dash.filter_panel.accordion.children[0].children
    assert not set(outcomes) & set(dash.filters)


def test_a_filter_changes_the_numbers_to_those_of_the_slice(wb, dash):
    dim = _first_cubed(wb)
    value = dash.filters[dim].options[0][1]
    before = dash.timeline_view.spec
    dash.filters[dim].value = (value,)
    start, end = dash.state().start, dash.state().end
    expected = wb.rates(signal="degraded", where={dim: [value], "ts": (start, end)}).row(
        0, named=True
    )
    assert _headline_rate(dash) == _pct(expected["rate"])
    assert dash.state().values == ((dim, (value,)),)
    assert dash.timeline_view.spec != before
    assert f"{dim} = {value}" in " ".join(dash.timeline_view.spec["title"]["subtitle"])
    assert "raw rows" not in dash.status.value  # a cubed dimension: the cube answered
    dash.reset_filters()
    assert dash.state().values == ()


def _window(dash):
    selection = dash.frame().selection
    return None if selection is None else (selection.start, selection.end)


def test_group_by_and_grain_redraw_the_timeline_but_do_not_recompare(dash):
    dash.signal_picker.value = "script_mix"
    by_day = _window(dash)
    dash.grain_picker.value = "hour"
    assert "per hour" in dash.timeline_view.spec["title"]["text"]
    # the automatic window follows the hourly change points: compared again
    by_hour = _window(dash)
    assert by_hour is not None
    assert by_hour != by_day
    assert "compare" in dash.last_update.panels
    compare_before = dash.compare_view.spec
    dash.group_picker.value = None
    assert "timeline" in dash.last_update.panels
    assert "compare" not in dash.last_update.panels
    assert dash.compare_view.spec == compare_before
    assert "Choose a group-by" in str(dash.heatmap_view.spec)


def test_date_range_snaps_to_whole_days(dash):
    dash.date_range.index = (3, 10)
    state = dash.state()
    assert state.start.hour == 0
    assert state.end - state.start == timedelta(days=8)
    assert dash.where()["ts"] == [state.start.isoformat(), state.end.isoformat()]


def test_numeric_filter_is_a_range_over_bucket_edges(wb, dash):
    name, control = next(
        (n, c) for n, c in dash.filters.items() if not hasattr(c, "rows") and len(c.options) > 3
    )
    edges = next(d.edges for d in wb.dimensions() if d.name == name)
    control.index = (1, 3)
    assert dash.state().ranges == ((name, edges[1], edges[3]),)
    control.index = (0, len(edges))
    assert dash.state().ranges == ()
    control.index = (2, 2)  # one position: the bucket that starts there
    assert dash.state().ranges == ((name, edges[2], edges[3]),)


def test_dragging_a_window_sets_the_incident_of_the_comparison(dash):
    start = datetime(2025, 8, 26, 5, 30, tzinfo=UTC)
    end = datetime(2025, 8, 29, 1, 0, tzinfo=UTC)
    ms = [int(t.timestamp() * 1000) for t in (start, end)]
    timeline, heatmap = dash.timeline_view.spec, dash.heatmap_view.spec
    dash.timeline_view._vl_selections = {
        widgets.charts.SELECTION: {"value": {"ts": ms}, "store": []}
    }
    # both redrawn with the snapped window shaded (the previous window's shade goes)
    assert dash.timeline_view.spec is not timeline
    assert dash.heatmap_view.spec is not heatmap
    assert "2025-08-26T00:00:00Z,2025-08-30T00:00:00Z" in str(dash.timeline_view.spec["datasets"])
    # snapped outwards to whole days (the grain), so that a cube answers
    assert dash.state().incident == (
        datetime(2025, 8, 26, tzinfo=UTC),
        datetime(2025, 8, 30, tzinfo=UTC),
    )
    assert "compare" in dash.last_update.panels
    assert "selection: brushed window · 2025-08-26 – 2025-08-29 UTC" in " ".join(
        dash.compare_view.spec["title"]["subtitle"]
    )
    # the browser reports an empty selection whenever it redraws: that keeps the window
    dash.timeline_view._vl_selections = {widgets.charts.SELECTION: {"value": {}, "store": []}}
    assert dash.state().incident is not None
    dash.select_window(None)
    assert dash.state().incident is None


@pytest.mark.parametrize(
    ("grain", "slack"), [("day", timedelta(days=1)), ("hour", timedelta(hours=6))]
)
def test_the_automatic_window_is_the_true_incident(wb, dash, truth, grain, slack):
    """Without a dragged window, the comparison's incident is where the simulator put the bugs
    that raise the signal: their first onset to their last end, within a bucket or a few hours."""
    dash.grain_picker.value = grain
    dash.signal_picker.value = "script_mix"
    bugs = _bugs_raising(truth, "script_mix")
    window = _window(dash)
    assert abs(window[0] - min(start for start, _ in bugs)) <= slack
    assert abs(window[1] - max(end for _, end in bugs)) <= slack
    frame = dash.frame()
    assert frame.selection.kind == "detected"
    assert frame.baseline.where is None  # everything else under the filters
    assert frame.baseline.description.startswith("everything else")
    first, last = (f"{t:%Y-%m-%d}" for t in (window[0], window[1] - timedelta(hours=1)))
    subtitle = " ".join(dash.compare_view.spec["title"]["subtitle"])
    assert f"selection: the strongest detected rise · {first}" in subtitle
    assert last in subtitle


@dataclass
class _Notebook:
    """An investigation as the report module defines it: something with add_view."""

    views: list

    def add_view(self, view: View) -> None:
        self.views.append(view)


def test_add_to_report_pins_a_view_whose_calls_reproduce_its_numbers(wb):
    notebook = _Notebook([])
    dash = wb.dashboard(investigation=notebook)
    dash.signal_picker.value = "script_mix"  # an automatic incident window: compared too
    dim = _first_cubed(wb)
    dash.filters[dim].value = (dash.filters[dim].options[0][1],)
    dash.note.value = "only this model"
    view = dash.pin()
    assert notebook.views == [view]
    assert dash.pinned == [view]
    assert dash.note.value == ""
    assert view.note == "only this model"
    assert view.where[dim] == [dash.filters[dim].value[0]]
    assert view.by == (dash.group_picker.value,)
    assert "vconcat" in view.chart
    assert view.chart["vconcat"][0]["layer"][2]["mark"]["type"] == "line"
    assert view.chart["vconcat"][1]["facet"]["field"] == "panel"  # the comparison
    assert "1 pinned" in dash.pinned_list.value
    rates = eval(view.calls[0], {"wb": wb})
    assert _headline_rate(dash) == _pct(rates["rate"][0])
    timeline = eval(view.calls[1], {"wb": wb})
    assert timeline.rates["n"].sum() == rates["n"][0]
    assert len(view.calls) == 3
    compared = eval(view.calls[2], {"wb": wb})
    assert compared.equals(dash.compared)


def test_pinned_views_are_kept_without_an_investigation(dash):
    view = dash.pin("a note", title="my title")
    assert dash.pinned == [view]
    assert view.title == "my title"
    assert view.to_dict()["note"] == "a note"


def test_exposure_is_computed_when_asked_and_marked_stale_after(wb, dash):
    dash.show_exposure()
    assert "computed in" in dash.exposure_text.value
    assert dash.exposure_view.spec["title"]["text"] == "Who is hit by degraded"
    dash.signal_picker.value = wb.signals()[0]
    assert "filters changed" in dash.exposure_text.value


def _signature(id, predicate, start, end, signal):
    """A Signature as the separation engine returns it, with made-up evidence."""
    symptom = SymptomRate(
        signal=signal,
        n_inside=1234,
        k_inside=80,
        rate_inside=80 / 1234,
        ci_inside=(0.052, 0.08),
        n_baseline=50_000,
        k_baseline=750,
        rate_baseline=0.015,
        ci_baseline=(0.014, 0.016),
        p_value=1e-9,
        elevated=True,
    )
    return Signature(
        id=id,
        predicate=predicate,
        start=start,
        end=end,
        signal=signal,
        signals=(signal,),
        symptoms=(symptom,),
        baseline="the same slice outside the window",
        excess_rate=0.05,
        ci=(0.04, 0.06),
        excess_requests=61.5,
        requests=1234,
        users=56,
        p_value=1e-8,
        log_likelihood_ratio=42.0,
        onset_range=(start - timedelta(hours=2), start + timedelta(hours=1)),
        end_range=None if end is None else (end - timedelta(hours=1), end + timedelta(hours=1)),
        events=(),
    )


def test_choosing_a_signature_sets_filters_window_and_signal(wb, dash):
    cat = _first_cubed(wb)
    value = dash.filters[cat].options[-1][1]
    numeric = next(d for d in wb.dimensions() if d.kind == "numeric" and len(d.edges) > 3)
    threshold = numeric.edges[2] + 0.5  # off the bucket grid, as refined edges are
    start = datetime(2025, 8, 25, 16, tzinfo=UTC)
    signature = _signature(
        "S1", {cat: [value], numeric.name: {"lt": threshold}}, start, None, wb.signals()[0]
    )
    dash.signatures = [signature]
    dash.choose_signature("S1")
    state = dash.state()
    # the filters are the predicate, thresholds exact (not widened to a bucket)
    assert state.values == ((cat, (value,)),)
    assert state.ranges == ((numeric.name, None, threshold),)
    assert {k: v for k, v in dash.where().items() if k != "ts"} == signature.predicate
    assert f"exactly &lt; {threshold:g}" in dash.filter_panel.controls[numeric.name].note.value
    assert state.signal == signature.signal
    assert state.incident == (signature.start, state.end)  # still active: to the end
    assert state.signature == "S1"
    # the date range shows its context: a week before it (half its length, at most a week)
    assert state.start == start.replace(hour=0) - timedelta(days=7)
    assert dash.frame().selection.describe().startswith("signature S1")
    # its symptoms, and its exposure over its slice and window
    assert "forensics-symptoms" in dash.signature_panel.symptoms.value
    assert "S1: its slice over its window" in dash.exposure_text.value
    assert dash.exposure_view.spec["title"]["text"].startswith("Who is hit by")
    assert "S1" not in dash.signature_table.value  # the table is drawn by find_signatures
    assert signature_text(signature).startswith(f"S1: {cat} = {value}")
    # the numbers come from the exact threshold: the raw rows, not the buckets
    where = {
        cat: [value],
        numeric.name: {"lt": threshold},
        "ts": [s.isoformat() for s in (state.start, state.end)],
    }
    expected = wb.rates(signal=state.signal, where=where).row(0, named=True)
    assert _headline_rate(dash) == _pct(expected["rate"])
    # moving the range by hand goes back to the buckets
    assert dash.filters[numeric.name].index == (0, 3)  # the slider shows the bucket around it
    dash.filters[numeric.name].index = (0, 2)
    assert dash.state().ranges == ((numeric.name, None, numeric.edges[2]),)
    assert dash.filter_panel.controls[numeric.name].note.value == ""


def _drawn(widget):
    """Every value an HTML widget shows from now on."""
    shown = []
    widget.observe(lambda change: shown.append(change["new"]), names="value")
    return shown


@pytest.fixture(scope="module")
def found(db_path):
    """The separation engine's signatures of the module's simulated incident."""
    with forensics.open(db_path, read_only=True) as bench:
        return bench.signatures()


def test_find_signatures_lists_the_real_search_and_shows_its_progress(wb, dash, found):
    assert found, "the simulated incident holds at least one signature"
    shown = _drawn(dash.signature_table)
    listed = dash.find_signatures()
    assert same_signatures([s.to_dict() for s in listed], [s.to_dict() for s in found])
    assert all(isinstance(s, Signature) for s in listed)
    progress = [v for v in shown if "searching…" in v]
    assert any("workspace ready" in v for v in progress), shown
    assert any(f"{found[0].id}: " in v for v in progress)
    assert found[0].id in dash.signature_table.value
    assert f"{found[0].requests:,}" in dash.signature_table.value
    # the root causes lead: the headline, then each cause with its signatures
    causes = wb.root_causes(found)
    table = dash.signature_table.value
    assert headline(causes) in table
    assert table.index(headline(causes)) < table.index("<table")
    for cause in causes:
        assert f"<b>{cause.id}</b> " in table
        assert f": {', '.join(cause.signatures)} · shared: " in table
    assert not dash.find_button.disabled
    assert len(dash.signature_picker.options) == len(found) + 1
    dash.signature_picker.value = found[0].id
    assert dash.state().incident is not None
    assert dash.state().signal == found[0].signal


def test_the_button_searches_in_the_background_while_the_panels_keep_updating(wb, dash, found):
    shown = _drawn(dash.signature_table)
    # The search waits at a gate until the test has looked: no race with its speed.
    gate = threading.Event()
    panel = dash.signature_panel
    search_and_show = panel.search_and_show
    panel.search_and_show = lambda own: gate.wait(60) and search_and_show(own)
    dash.find_button.click()
    search = panel.search
    assert search is not None
    try:
        assert dash.start_signature_search() is search  # not started twice
        assert dash.find_button.disabled
        assert dash.find_button.icon == "spinner spin"
        # the dashboard's own connection answers while the search runs on its own
        before = dash.headline.value
        dash.signal_picker.value = next(s for s in wb.signals() if s != dash.signal_picker.value)
        assert dash.headline.value != before
        assert not search.done()
    finally:
        gate.set()
    listed = search.result(timeout=300)
    assert same_signatures([s.to_dict() for s in listed], [s.to_dict() for s in found])
    assert dash.signatures == listed
    assert any("searching…" in v for v in shown)
    assert found[0].id in dash.signature_table.value
    assert not dash.find_button.disabled
    assert dash.find_button.description == "find signatures"


def test_an_empty_database_says_what_to_do(tmp_path):
    with (
        forensics.open(tmp_path / "empty.duckdb") as wb,
        pytest.raises(ForensicsError, match="forensics ingest"),
    ):
        wb.dashboard()


# -- filters: collapsed, cross-filtered, searchable --------------------------------------


def _count_of(control, value) -> int:
    label = next(text for text, v in control.options if v == value)
    return int(label.rsplit("(", 1)[1].rstrip(")").replace(",", ""))


def test_filters_are_collapsed_and_their_counts_follow_the_other_filters(wb, dash):
    assert dash.filter_panel.accordion.selected_index is None
    first = _first_cubed(wb)
    other = next(n for n in wb.cubes()[0].dims if n != first)
    value = dash.filters[first].options[0][1]
    dash.filters[first].value = (value,)
    # collapsed: nothing counted yet, the labels still hold the whole table's counts
    totals = forensics.queries.dimension_values(wb.db, other)
    shown = dash.filters[other]
    top = shown.options[0][1]
    assert _count_of(shown, top) == totals.filter(pl.col("value") == top)["requests"][0]
    dash.filter_panel.accordion.selected_index = 0  # opened: counted under the other filters
    state = dash.state()
    for text, v in shown.options:
        expected = wb.rates(
            signal="degraded", where={first: [value], other: [v], "ts": (state.start, state.end)}
        )["n"][0]
        assert _count_of(shown, v) == expected, text
    # its own filter does not narrow its own counts
    own = dash.filters[first]
    assert (
        sum(_count_of(own, v) for _, v in own.options)
        == wb.rates(signal="degraded", where={"ts": (state.start, state.end)})["n"][0]
    )
    assert dash.filters[first].value == (value,)  # relabelling kept the choice


def test_a_long_list_is_searchable_and_keeps_its_choices(dash):
    control = dash.filter_panel.controls["server_id"]
    assert control.search.layout.display != "none"
    chosen = control.order[5]
    control.select.value = (chosen,)
    control.search.value = control.order[0][-3:]
    labels = [v for _, v in control.select.options]
    assert chosen in labels  # a chosen value stays listed
    assert all(control.order[0][-3:] in v or v == chosen for v in labels)
    assert len(labels) < len(control.order)
    assert control.select.value == (chosen,)
    assert dash.state().values == (("server_id", (chosen,)),)
    control.search.value = ""
    assert len(control.select.options) == len(control.order)


# -- clicks on charts filter --------------------------------------------------------------


def _click(view, name, point):
    view._vl_selections = {name: {"value": {"vlPoint": {"or": [point]}}, "store": []}}


def test_clicking_a_bar_or_legend_value_filters_and_shift_click_excludes(wb, dash):
    dash.signal_picker.value = "script_mix"
    compared = dash.compared
    assert compared is not None
    row = compared.filter(pl.col("dimension") == "platform").row(0, named=True)
    _click(dash.compare_view, widgets.charts.PICK, {"dimension": "platform", "value": row["value"]})
    assert dict(dash.state().values)["platform"] == (row["key"],)
    # shift-click: every value but this one
    model = dash.filter_panel.controls["model"].order[0]
    _click(dash.compare_view, widgets.charts.DROP, {"dimension": "model", "value": model})
    kept = dict(dash.state().values)["model"]
    assert model not in kept
    assert len(kept) == len(dash.filter_panel.controls["model"].order) - 1
    assert "all but" in dash.filter_panel.controls["model"].note.value
    dash.reset_filters()
    # the "other" row of a long tail is no value: nothing happens
    _click(
        dash.compare_view,
        widgets.charts.PICK,
        {"dimension": "server_id", "value": "other (3 values)"},
    )
    assert dash.state().values == ()
    # a legend value of the timeline, a bar of the volume chart
    by = dash.state().by
    first = dash.filter_panel.controls[by].order[1]
    _click(dash.timeline_view, widgets.charts.PICK, {"group": str(first)})
    assert dict(dash.state().values)[by] == (first,)
    dash.reset_filters()
    _click(dash.volume_view, widgets.charts.DROP, {"group": str(first)})
    assert first not in dict(dash.state().values)[by]
    # a numeric bucket: the filter becomes that bucket
    numeric = next(d for d in wb.dimensions() if d.kind == "numeric" and len(d.edges) > 3)
    label = forensics.queries.bucket_label(numeric.edges, numeric.edges[1])
    _click(dash.compare_view, widgets.charts.PICK, {"dimension": numeric.name, "value": label})
    assert dict((c, (g, lt)) for c, g, lt in dash.state().ranges)[numeric.name] == (
        numeric.edges[1],
        numeric.edges[2],
    )


# -- selections: a heatmap region, baselines ----------------------------------------------


def test_brushing_a_heatmap_region_selects_values_and_hours_for_the_comparison(wb, dash):
    dash.signal_picker.value = "script_mix"
    by = dash.state().by
    values = dash.filter_panel.controls[by].order[:2]
    start = datetime(2025, 8, 26, 3, 20, tzinfo=UTC)
    end = datetime(2025, 8, 27, 11, 0, tzinfo=UTC)
    dash.heatmap_view._vl_selections = {
        widgets.charts.REGION: {
            "value": {"ts": [int(t.timestamp() * 1000) for t in (start, end)], "group": values},
            "store": [],
        }
    }
    state = dash.state()
    assert state.region == (by, tuple(values))
    assert state.incident == (datetime(2025, 8, 26, tzinfo=UTC), datetime(2025, 8, 28, tzinfo=UTC))
    assert "compare" in dash.last_update.panels
    selection = dash.frame().selection
    assert selection.kind == "region"
    assert f"{by} in {{{values[0]}, {values[1]}}}" in selection.describe()
    # the comparison: the group-by dimension holds only the chosen values in the selection
    part = dash.compared.filter(pl.col("dimension") == by)
    inside = part.filter(pl.col("k_selection") > 0)["value"].to_list()
    assert set(inside) <= set(values)
    # the numbers are those of the library for the same sets
    expected = wb.contrast(
        "script_mix",
        selection={**dash.where(), by: values, "ts": [t.isoformat() for t in state.incident]},
        scope=dash.where(),
    )
    assert expected.equals(dash.compared)
    # the heatmap outlines the region on its rows
    layers = dash.heatmap_view.spec["layer"]
    assert layers[-1]["encoding"]["y"]["field"] == "group"
    # a window dragged on the timeline replaces it
    dash.brushed((start, end))
    assert dash.state().region is None


def test_the_baseline_can_be_brushed_or_a_week_earlier_and_says_why_when_empty(wb, dash):
    dash.signal_picker.value = "script_mix"
    dash.select_window((datetime(2025, 8, 27, tzinfo=UTC), datetime(2025, 8, 29, tzinfo=UTC)))
    dash.comparison.baseline.value = "week"
    # script_mix did not exist a week before: nothing to compare, and the panel says so
    assert "The baseline holds no script_mix requests" in str(dash.compare_view.spec)
    dash.signal_picker.value = "degraded"
    frame = dash.frame()
    assert frame.baseline.where.start == datetime(2025, 8, 20, tzinfo=UTC)
    assert "a week earlier" in frame.baseline.description
    subtitle = " ".join(dash.compare_view.spec["title"]["subtitle"])
    assert "baseline: the same requests a week earlier (2025-08-20 – 2025-08-21 UTC)" in subtitle
    # a selection in the data's first week has nothing a week before it
    first = dash.data.first_day
    dash.select_window((first, first + timedelta(days=2)))
    assert "No requests a week before the selection" in str(dash.compare_view.spec)
    dash.select_window((datetime(2025, 8, 27, tzinfo=UTC), datetime(2025, 8, 29, tzinfo=UTC)))
    dash.comparison.baseline.value = "brushed"
    assert "No baseline window yet" in str(dash.compare_view.spec)
    assert dash.comparison.brush_target.value == "baseline"
    dash.brushed((datetime(2025, 8, 10, 5, tzinfo=UTC), datetime(2025, 8, 14, tzinfo=UTC)))
    state = dash.state()
    assert state.baseline_window == (
        datetime(2025, 8, 10, tzinfo=UTC),
        datetime(2025, 8, 14, tzinfo=UTC),
    )
    assert state.incident == (datetime(2025, 8, 27, tzinfo=UTC), datetime(2025, 8, 29, tzinfo=UTC))
    frame = dash.frame()
    expected = wb.contrast(
        "degraded",
        selection={
            **dash.where(),
            "ts": ["2025-08-27T00:00:00+00:00", "2025-08-29T00:00:00+00:00"],
        },
        scope=dash.where(),
        baseline={"ts": ["2025-08-10T00:00:00+00:00", "2025-08-14T00:00:00+00:00"]},
    )
    assert expected.equals(dash.compared)
    assert frame.baseline.description.endswith("2025-08-10 – 2025-08-13 UTC")
    for side in ("selection", "baseline"):  # shares never exceed 100%; a side sums to it
        sums = dash.compared.group_by("dimension").agg(pl.col(f"share_{side}").sum())
        assert all(abs(x - 1) < 1e-9 for x in sums[f"share_{side}"])


def test_other_signatures_rows_are_left_out_of_the_baseline(wb, dash):
    dash.signal_picker.value = "script_mix"
    other = _signature(
        "S2", {"platform": ["gpu"]}, datetime(2025, 8, 20, tzinfo=UTC), None, "script_mix"
    )
    dash.signatures = [other]
    frame = dash.frame()
    assert frame.baseline.leave_out == (other.where,)
    assert "without the rows of S2 (other signatures)" in frame.baseline.description
    assert not dash.comparison.leave_out.disabled
    assert "S2" in dash.comparison.leave_out.description
    with_them = dash.compared
    dash.comparison.leave_out.value = False
    assert dash.frame().baseline.leave_out == ()
    assert "without the rows" not in dash.frame().baseline.description
    gpu = lambda f: f.filter(  # noqa: E731
        (pl.col("dimension") == "platform") & (pl.col("value") == "gpu")
    )["k_baseline"][0]
    assert gpu(with_them) < gpu(dash.compared)  # the gpu rows after Aug 20 came back


# -- the request sample --------------------------------------------------------------------


def test_the_requests_tab_reads_a_sample_of_the_selection_with_evidence(wb, dash):
    dash.signal_picker.value = "script_mix"
    assert dash.requests.sample is None  # not read until the tab is opened
    dash.tabs.selected_index = 1
    sample = dash.requests.sample
    assert sample is not None
    assert 0 < sample.height <= dash.requests.size.value
    selection = dash.frame().selection
    assert sample["ts"].min() >= selection.start
    assert sample["ts"].max() < selection.end
    assert sample["script_mix"][0] is True  # the signal's requests first
    table = dash.requests.table.value
    assert table.count("forensics-request") == sample.height
    assert '<mark class="fx-evidence" data-signal="script_mix"' in table
    expected = wb.sample_requests(
        selection.where(dash.state().scope()), signal="script_mix", limit=sample.height
    )
    assert expected.equals(sample)
    dash.requests.another.click()
    assert not dash.requests.sample.equals(sample)
    # a new selection reads a new sample while the tab is open
    dash.select_window((datetime(2025, 8, 28, tzinfo=UTC), datetime(2025, 8, 29, tzinfo=UTC)))
    assert dash.requests.sample["ts"].min() >= datetime(2025, 8, 28, tzinfo=UTC)
    assert "requests" in dash.last_update.panels


def test_the_dashboard_reads_the_database_not_the_workbench():
    """Views take what they need from the query and separation layers, never the facade."""
    import ast
    from pathlib import Path

    package = Path(forensics.__file__).parent / "dashboard"
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        imported = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "forensics.workbench" not in imported, module.name


# -- a moment clicked on the timeline is explained -----------------------------------------


def _explained(dash) -> list[str]:
    """The candidates the panel lists, as the table writes them (data-elements)."""
    table = dash.explain_panel.view.value
    return [
        json.loads(html.unescape(part.split("'")[0])) for part in table.split("data-elements='")[1:]
    ]


def test_clicking_a_moment_explains_it_under_the_filters(wb, dash, truth):
    dash.grain_picker.value = "hour"
    dash.signal_picker.value = "script_mix"
    spec = dash.timeline_view.spec
    moment = next(p for p in spec["params"] if p["name"] == widgets.charts.MOMENT)
    assert moment["select"]["encodings"] == ["x"]
    assert moment["select"]["nearest"] is True
    assert "click a moment to explain it" in " ".join(spec["title"]["subtitle"])
    assert dash.explain_panel.explanation is None
    assert "Click a moment on the timeline" in dash.explain_panel.view.value
    onset = min(start for start, _ in _bugs_raising(truth, "script_mix"))
    hour = onset.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    _click(dash.timeline_view, widgets.charts.MOMENT, {"ts": int(hour.timestamp() * 1000)})
    shown = dash.explain_panel.explanation
    assert shown is not None
    assert "explain" in dash.last_update.panels
    expected = wb.explain(signal="script_mix", within=(hour, hour + timedelta(hours=1)))
    assert shown.to_json() == expected.to_json()
    assert shown.within == (hour, hour + timedelta(hours=1))
    assert len(shown.items) >= 5
    assert _explained(dash) == [[dict(e) for e in c.elements] for c in shown.items]
    table = dash.explain_panel.view.value
    for c in shown.items:  # rate with its interval, baseline rate, share, score, role
        assert f"{100 * c.rate:.2f}% [{100 * c.ci[0]:.2f}% – {100 * c.ci[1]:.2f}%]" in table
        assert f"<td class='num'>{100 * c.baseline_rate:.2f}%</td>" in table
        assert f"<td class='num'>{c.score:.1f}</td><td>{c.role}</td>" in table
    assert f"script_mix at {shown.at:%Y-%m-%d %H:%M} UTC" in table
    # the same click again is not explained again; another signal is
    before = dash.explain_panel.explanation
    _click(dash.timeline_view, widgets.charts.MOMENT, {"ts": int(hour.timestamp() * 1000)})
    assert dash.explain_panel.explanation is before
    # under a filter: the explanation of the filtered requests
    dim = "platform"
    value = dash.filter_panel.controls[dim].order[0]
    dash.filters[dim].value = (value,)
    filtered = dash.explain_panel.explanation
    assert filtered is not None
    assert filtered.where == {dim: [value]}
    assert (
        filtered.to_json()
        == wb.explain(
            signal="script_mix", within=(hour, hour + timedelta(hours=1)), where={dim: [value]}
        ).to_json()
    )
    assert all(dim not in e for c in filtered.items for e in c.elements)


def test_a_candidate_applied_becomes_the_filter(wb, dash, truth):
    dash.grain_picker.value = "hour"
    dash.signal_picker.value = "script_mix"
    onset = min(start for start, _ in _bugs_raising(truth, "script_mix"))
    hour = onset.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    shown = dash.explain_moment((hour, hour + timedelta(hours=1)))
    assert shown is not None
    buttons = dash.explain_panel.apply.children
    from forensics.dashboard.explain import candidate_filters

    wanted = [f for c in shown.items for f in candidate_filters(c)]
    assert len(buttons) == len(wanted)
    assert buttons[0].description == "filter #1" or buttons[0].description == "filter #1a"
    buttons[0].click()
    where = dash.where()
    where.pop("ts")
    assert where == wanted[0]
    # the headline now counts that slice: the same as wb.rates under it
    rates = wb.rates(signal="script_mix", where=dash.where()).row(0, named=True)
    assert _headline_rate(dash) == _pct(rates["rate"])


def test_an_explanation_goes_to_the_report(wb, truth):
    class Notebook(_Notebook):
        explanations: list

        def add_explanation(self, explanation) -> None:
            self.explanations.append(explanation)

    notebook = Notebook([])
    notebook.explanations = []
    dash = wb.dashboard(investigation=notebook, signal="script_mix", grain="hour")
    assert dash.explain_panel.add_to_report() is None  # nothing explained yet
    onset = min(start for start, _ in _bugs_raising(truth, "script_mix"))
    hour = onset.replace(minute=0, second=0, microsecond=0)
    shown = dash.explain_moment((hour, hour + timedelta(hours=1)))
    assert dash.explain_panel.report_button.layout.display is None  # shown
    dash.explain_panel.report_button.click()
    assert notebook.explanations == [shown]
    assert dash.explanations == [shown]
    dash.explain_moment(None)
    assert dash.explain_panel.explanation is None
    assert dash.explain_panel.report_button.layout.display == "none"


def _counted_minutes(tmp_path):
    """The shipped counted sample ingested: the database, its truth and the incident's onset."""
    from tests.conftest import REPO

    sample = REPO / "data_samples" / "counted-minutes"
    truth = json.loads((sample / "truth.json").read_text())
    db = tmp_path / "counted.duckdb"
    with forensics.open(db) as wb:
        wb.ingest(sample / "counts.parquet", mapping=sample / "mapping.toml", progress=False)
    return db, truth, datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))


def test_a_clicked_hour_of_counted_minutes_is_explained_at_the_minute(tmp_path):
    """The shipped counted sample: the hour clicked holds the onset; the minute and cause are found."""
    db, truth, onset = _counted_minutes(tmp_path)
    hour = onset.replace(minute=0)
    with forensics.open(db, read_only=True) as wb:
        dash = wb.dashboard(signal="failed", grain="hour")
        _click(dash.timeline_view, widgets.charts.MOMENT, {"ts": hour.isoformat()})
        shown = dash.explain_panel.explanation
    assert shown is not None
    assert shown.grain == timedelta(minutes=1)
    assert abs((shown.at - onset) / timedelta(minutes=1)) <= 1
    assert list(shown.items[0].elements) == truth["elements"]
    assert "buckets of 1 minute" in dash.explain_panel.view.value


def test_minute_counts_offer_the_minute_on_the_timeline_and_brushes_snap_to_it(tmp_path):
    """Data finer than the hour: the grain control offers it, the timeline draws it,
    and a dragged window snaps to whole minutes (an hour-only control hid the onset)."""
    db, _, onset = _counted_minutes(tmp_path)
    with forensics.open(db, read_only=True) as wb:
        dash = wb.dashboard(signal="failed", grain="hour")
        assert list(dash.grain_picker.options) == ["day", "hour", "minute"]
        dash.grain_picker.value = "minute"
        assert "per minute" in dash.timeline_view.spec["title"]["text"]
        series = dash.data.timeline(dash.state())
        steps = series.rates["ts"].unique().sort().diff().drop_nulls().unique().to_list()
        assert steps == [timedelta(minutes=1)]
        dash.brushed((onset + timedelta(seconds=10), onset + timedelta(minutes=3, seconds=5)))
        state = dash.state()
        assert (state.incident[0], state.incident[1]) == (onset, onset + timedelta(minutes=4))
    with (
        forensics.open(db, read_only=True) as wb,
        pytest.raises(forensics.errors.QueryError, match="offers day, hour, minute"),
    ):
        wb.dashboard(grain="5min")
