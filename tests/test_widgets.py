"""The dashboard, driven from Python: set controls, check what it shows and asks."""

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import forensics
from forensics import widgets
from forensics.errors import ForensicsError
from forensics.findings import View
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
    assert "hconcat" in dash.compare_view.spec
    assert "updated in" in dash.status.value
    assert set(dash.last_update.panels) >= {"headline", "timeline", "charts"}
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
    assert dash.roles_note in dash.filter_panel.children[0].children
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


def test_group_by_and_grain_redraw_the_timeline_but_do_not_recompare(dash):
    dash.signal_picker.value = "script_mix"
    by_day = dash._windows(dash.state())[0]
    dash.grain_picker.value = "hour"
    assert "per hour" in dash.timeline_view.spec["title"]["text"]
    # the automatic window follows the hourly change points: compared again
    by_hour = dash._windows(dash.state())[0]
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
    assert "incident 2025-08-26 – 2025-08-29 UTC" in " ".join(
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
    window, baseline = dash._windows(dash.state())
    assert abs(window[0] - min(start for start, _ in bugs)) <= slack
    assert abs(window[1] - max(end for _, end in bugs)) <= slack
    assert baseline == (dash.state().start, window[0])  # everything before it
    first, last = (f"{t:%Y-%m-%d}" for t in (window[0], window[1] - timedelta(hours=1)))
    subtitle = " ".join(dash.compare_view.spec["title"]["subtitle"])
    assert f"incident {first}" in subtitle
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
    assert "1 pinned" in dash.pinned_list.value
    rates = eval(view.calls[0], {"wb": wb})
    assert _headline_rate(dash) == _pct(rates["rate"][0])
    timeline = eval(view.calls[1], {"wb": wb})
    assert timeline.rates["n"].sum() == rates["n"][0]
    assert len(view.calls) == 3
    compared = eval(view.calls[2], {"wb": wb})
    assert compared.equals(dash._compare)


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
    signature = _signature(
        "S1",
        # a numeric bound between edges widens to the enclosing buckets
        {cat: [value], numeric.name: {"lt": numeric.edges[2] + 0.5}},
        datetime(2025, 8, 25, 16, tzinfo=UTC),
        None,
        wb.signals()[0],
    )
    dash.signatures = [signature]
    dash.choose_signature("S1")
    state = dash.state()
    assert state.values == ((cat, (value,)),)
    assert state.ranges == ((numeric.name, None, numeric.edges[3]),)
    assert state.signal == signature.signal
    assert state.incident[0] == signature.start  # whole hours: kept as found
    assert state.incident[1] == state.end
    assert "S1" not in dash.signature_table.value  # the table is drawn by find_signatures
    assert dash._signature_line(signature).startswith(f"S1: {cat} = {value}")


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
    assert not dash.find_button.disabled
    assert len(dash.signature_picker.options) == len(found) + 1
    dash.signature_picker.value = found[0].id
    assert dash.state().incident is not None
    assert dash.state().signal == found[0].signal


def test_the_button_searches_in_the_background_while_the_panels_keep_updating(wb, dash, found):
    shown = _drawn(dash.signature_table)
    # The search waits at a gate until the test has looked: no race with its speed.
    gate = threading.Event()
    search_and_show = dash._search_and_show
    dash._search_and_show = lambda own: gate.wait(60) and search_and_show(own)
    dash.find_button.click()
    search = dash._search
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
