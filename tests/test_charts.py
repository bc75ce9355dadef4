"""Chart builders: frames in, valid Vega-Lite out, with the conventions the dashboard relies on."""

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from forensics import charts
from forensics.analysis import Exposure

T0 = datetime(2025, 8, 1, tzinfo=UTC)


def _rates(groups=("a", "b"), days=4, by="model"):
    rows = []
    for d in range(days):
        for i, g in enumerate(groups):
            n, k = 100 + 10 * i, 5 + d + i
            rows.append(
                {
                    "ts": T0 + timedelta(days=d),
                    by: g,
                    "n": n,
                    "k": k,
                    "rate": k / n,
                    "ci_low": k / n / 2,
                    "ci_high": min(1.0, 2 * k / n),
                }
            )
    return pl.DataFrame(rows)


def _events():
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(days=1, hours=16)],
            "kind": ["deploy"],
            "description": ["new sampler, rollout 10%"],
            "scope": ["platform=tpu"],
        }
    )


def _change_points():
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(days=2)],
            "direction": ["up"],
            "rate_before": [0.05],
            "rate_after": [0.09],
            "ci_low": [T0 + timedelta(days=1)],
            "ci_high": [T0 + timedelta(days=2)],
            "p_value": [1e-6],
        }
    )


def _rows(spec, column):
    """Rows of the one inline CSV dataset with ``column`` (Altair gathers them in ``datasets``)."""
    found = [
        list(csv.DictReader(io.StringIO(text)))
        for text in spec["datasets"].values()
        if column in text.split("\n", 1)[0].split(",")
    ]
    assert len(found) == 1, f"{len(found)} datasets with {column}"
    return found[0]


def _render(chart):
    """Validate against the Vega-Lite schema and compile + render with Vega (vl-convert)."""
    spec = charts.style(chart).to_dict(validate=True)
    svg = vlc.vegalite_to_svg(spec)
    assert svg.startswith("<svg")
    return spec


# -- colours ------------------------------------------------------------------------


def test_value_colors_are_stable_and_follow_the_given_order():
    first = charts.value_colors(["sonnet-4", "opus-4", "haiku"])
    again = charts.value_colors(["sonnet-4", "opus-4", "haiku"])
    assert first == again
    assert list(first.values()) == list(charts.PALETTE[:3])
    assert charts.value_colors([None, "x"]) == {
        "(missing)": charts.MISSING_COLOR,
        "x": charts.PALETTE[0],
    }


def test_value_colors_cycle_past_the_palette():
    colors = charts.value_colors([f"v{i}" for i in range(len(charts.PALETTE) + 2)])
    assert colors[f"v{len(charts.PALETTE)}"] == charts.PALETTE[0]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, "all requests"),
        ({"model": ["a"]}, "model = a"),
        ({"model": ["a", None]}, "model in {a, (missing)}"),
        ({"batch_size": {"gte": 64}}, "batch_size ≥ 64"),
        ({"batch_size": {"lt": 8}}, "batch_size < 8"),
        ({"model": ["a"], "ts": ["2025-08-01", "2025-08-02"]}, "model = a"),
    ],
)
def test_describe_where(where, expected):
    assert charts.describe_where(where) == expected


# -- timeline -----------------------------------------------------------------------


def test_timeline_is_valid_vega_lite_with_bands_events_changes_and_selection():
    chart = charts.timeline_chart(
        _rates(),
        signal="script_mix",
        by=["model"],
        events=_events(),
        change_points=_change_points(),
        colors={"b": "#123456", "a": "#abcdef"},
        highlight=(T0 + timedelta(days=1), T0 + timedelta(days=3)),
        where={"platform": ["tpu"]},
    )
    spec = _render(chart)
    # the brush, a click on a legend value (the dashboard filters on it), a click on a moment
    assert [p["name"] for p in spec["params"]] == [charts.SELECTION, charts.PICK, charts.MOMENT]
    assert spec["params"][1]["bind"] == "legend"
    moment = spec["params"][2]
    assert moment["select"] == {
        "type": "point", "encodings": ["x"], "nearest": True, "on": "click", "toggle": False,
        "clear": False,
    }  # fmt: skip
    # the moments: one invisible point per bucket, under every other mark (their tooltips stay)
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["point", "rect", "area", "line", "rule", "text", "point"]
    moments = spec["layer"][0]
    assert moment["views"] == [moments["name"]]
    assert moments["mark"]["opacity"] == 0
    (only,) = [t for t in spec["datasets"].values() if t.split("\n", 1)[0] == "ts"]
    assert only.split() == ["ts", *(f"2025-08-0{d}T00:00:00Z" for d in range(1, 5))]
    line = spec["layer"][3]
    scale = line["encoding"]["color"]["scale"]
    # the caller's colours, in the caller's order: the same value is the same colour everywhere
    assert scale == {"domain": ["b", "a"], "range": ["#123456", "#abcdef"]}
    assert spec["layer"][2]["encoding"]["fill"]["scale"] == scale
    rows = _rows(spec, "rate_ci")
    assert len(rows) == 8
    assert rows[0]["ts"] == "2025-08-01T00:00:00Z"
    assert spec["layer"][4]["encoding"]["tooltip"][2]["field"] == "description"
    title = " ".join([spec["title"]["text"], *spec["title"]["subtitle"]])
    assert "script_mix rate by model, per day" in title
    assert "platform = tpu" in title
    assert "2025-08-01 – 2025-08-04 UTC" in title


def test_every_change_event_has_its_own_label_in_rows_that_do_not_overlap():
    crowded = pl.DataFrame(
        {
            "ts": [T0 + timedelta(days=1, hours=h) for h in (16, 16.5, 17)]
            + [T0 + timedelta(days=3)],
            "kind": ["deploy", "config", "deploy", "rollback"],
            "description": ["a", "b", "c", "d"],
            "scope": ["", "", "", ""],
        }
    )
    chart = charts.timeline_chart(_rates(), signal="script_mix", by=["model"], events=crowded)
    spec = _render(chart)
    svg = vlc.vegalite_to_svg(spec)
    rows = _rows(spec, "label")
    assert [r["label"] for r in rows] == ["deploy", "config", "deploy", "rollback"]
    # close events go one row down each; a far one is back on the first row
    assert [int(r["lane_y"]) for r in rows] == [2, 13, 24, 2]
    assert [r["description"] for r in rows] == ["a", "b", "c", "d"]  # on hover
    assert svg.count(">deploy<") == 2
    assert ">config<" in svg
    assert ">rollback<" in svg


def test_hourly_bands_are_drawn_only_in_hours_with_enough_requests():
    frame = _rates(groups=("big", "small"), days=3).with_columns(
        pl.when(pl.col("model") == "small").then(20).otherwise(500).alias("n")
    )
    hourly = _render(charts.timeline_chart(frame, signal="degraded", by=["model"], grain="hour"))
    rows = _rows(hourly, "band_low")
    assert {r["band_low"] == "" for r in rows if r["group"] == "small"} == {True}
    assert {r["band_low"] == "" for r in rows if r["group"] == "big"} == {False}
    assert any("hours of at least 100 requests" in t for t in hourly["title"]["subtitle"])
    daily = _render(charts.timeline_chart(frame, signal="degraded", by=["model"], grain="day"))
    assert all(r["band_low"] for r in _rows(daily, "band_low"))


def test_timeline_without_grouping_or_selection():
    frame = _rates(groups=("all",)).drop("model")
    spec = _render(charts.timeline_chart(frame, signal="degraded", selection=False))
    assert "params" not in spec
    assert spec["layer"][1]["encoding"]["color"]["legend"] is None


def test_timeline_draws_only_the_groups_with_most_requests():
    groups = [f"g{i:02d}" for i in range(charts.MAX_SERIES + 3)]
    frame = _rates(groups=groups)
    spec = _render(charts.timeline_chart(frame, signal="degraded", by=["model"]))
    shown = {r["group"] for r in _rows(spec, "rate_ci")}
    # n grows with the group's position, so the last MAX_SERIES groups have the most requests
    assert shown == set(groups[-charts.MAX_SERIES :])
    assert any("showing the 10 of 13" in s for s in spec["title"]["subtitle"])


def test_timeline_labels_numeric_groups_as_bucket_ranges():
    frame = _rates(groups=(0.0, 8.0), by="batch_size")
    spec = _render(
        charts.timeline_chart(
            frame, signal="degraded", by=["batch_size"], edges={"batch_size": (0.0, 8.0)}
        )
    )
    assert {r["group"] for r in _rows(spec, "rate_ci")} == {"[0, 8)", ">= 8"}


# -- heatmap ------------------------------------------------------------------------


def test_heatmap_rows_in_the_given_order_and_small_cells_faded():
    frame = _rates(groups=("a", "b", "c"))
    frame = frame.with_columns(
        pl.when(pl.col("model") == "c").then(5).otherwise(pl.col("n")).alias("n")
    )
    spec = _render(
        charts.heatmap_chart(
            frame,
            signal="degraded",
            by=["model"],
            order=["c", "a", "b"],
            highlight=(T0 + timedelta(days=1), None),
        )
    )
    cells = spec["layer"][0]
    assert cells["encoding"]["y"]["sort"] == ["c", "a", "b"]
    rows = _rows(spec, "enough")
    assert {r["enough"] for r in rows if r["group"] == "c"} == {"false"}
    assert {r["enough"] for r in rows if r["group"] == "a"} == {"true"}
    assert rows[0]["ts_end"] == "2025-08-02T00:00:00Z"
    assert spec["layer"][1]["mark"]["type"] == "rect"
    assert "params" not in spec  # the report's heatmap has no brush


def test_heatmap_region_brush_and_outline():
    spec = _render(
        charts.heatmap_chart(
            _rates(groups=("a", "b", "c")),
            signal="degraded",
            by=["model"],
            highlight=(T0 + timedelta(days=1), T0 + timedelta(days=2)),
            highlight_groups=["b", "c", "nope"],
            selection=True,
        )
    )
    (param,) = spec["params"]
    assert param["name"] == charts.REGION
    assert param["select"]["encodings"] == ["x", "y"]
    outline = spec["layer"][1]
    assert outline["encoding"]["y"]["field"] == "group"
    assert [r["group"] for r in _rows(spec, "start")] == ["b", "c"]


# -- volume ---------------------------------------------------------------------------


def test_volume_stacks_the_groups_with_the_timelines_colours_and_clicks():
    frame = _rates(groups=[f"g{i:02d}" for i in range(charts.MAX_SERIES + 2)])
    colors = {"g11": "#123456"}
    spec = _render(
        charts.volume_chart(frame, signal="degraded", by=["model"], grain="day", colors=colors)
    )
    assert [p["name"] for p in spec["params"]] == [charts.PICK, charts.DROP]
    assert spec["params"][1]["select"]["on"] == "click[event.shiftKey]"
    rows = _rows(spec, "bottom")
    day = [r for r in rows if r["ts"] == "2025-08-01T00:00:00Z"]
    # the two smallest groups are stacked as one, grey; stacks touch and add up
    assert {r["group"] for r in day} >= {charts.OTHER_GROUPS, "g11"}
    assert len(day) == charts.MAX_SERIES + 1
    tops = sorted(day, key=lambda r: float(r["bottom"]))
    assert all(float(a["top"]) == float(b["bottom"]) for a, b in itertools.pairwise(tops))
    assert float(tops[-1]["top"]) == frame.filter(pl.col("ts") == T0)["n"].sum()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale["range"][scale["domain"].index("g11")] == "#123456"
    assert scale["range"][scale["domain"].index(charts.OTHER_GROUPS)] == charts.MISSING_COLOR


# -- contrast -------------------------------------------------------------------------


def _contrast_frame():
    rows = [
        # dimension, value, k_sel, n_sel, k_base, n_base
        ("pool", "new", 80, 100, 5, 1000),
        ("pool", "old", 20, 900, 95, 9000),
        ("model", "a", 50, 500, 50, 5000),
        ("model", "b", 50, 500, 50, 5000),
    ]
    frame = pl.DataFrame(
        rows,
        schema=["dimension", "value", "k_selection", "n_selection", "k_baseline", "n_baseline"],
        orient="row",
    )
    return frame.with_columns(
        pl.col("value").alias("key"),
        (pl.col("k_selection") / 100).alias("share_selection"),
        (pl.col("k_baseline") / 100).alias("share_baseline"),
        ((pl.col("k_selection") - pl.col("k_baseline")) / 100).alias("difference"),
        (pl.col("k_selection") / pl.col("n_selection")).alias("rate_selection"),
        (pl.col("k_baseline") / pl.col("n_baseline")).alias("rate_baseline"),
        pl.when(pl.col("dimension") == "pool").then(0.75).otherwise(0.0).alias("distance"),
        pl.when(pl.col("dimension") == "pool").then(1e-12).otherwise(1.0).alias("p_adjusted"),
        pl.lit(0).alias("folded"),
    )


def test_contrast_shows_every_dimension_as_two_distributions_with_clicks():
    spec = _render(
        charts.contrast_chart(
            _contrast_frame(), signal="low_eval", selection="S1 · pool = new", baseline="the rest"
        )
    )
    assert spec["facet"]["field"] == "panel"
    assert spec["facet"]["sort"] == ["pool · 75% apart · p 1e-12", "model · 0% apart · p 1"]
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert [p["name"] for p in spec["params"]] == [charts.PICK, charts.DROP]
    assert spec["params"][0]["select"]["fields"] == ["dimension", "value"]
    rows = _rows(spec, "share")
    new = {r["side"]: r for r in rows if r["value"] == "new"}
    assert new["selection"]["share_text"] == "80.0%"
    assert new["baseline"]["share_text"] == "5.0%"
    assert new["selection"]["count_text"] == "80 of 100 (80.00%)"
    subtitle = " ".join(spec["title"]["subtitle"])
    assert "selection: S1 · pool = new" in subtitle
    assert "baseline: the rest" in subtitle
    quiet = charts.contrast_chart(
        _contrast_frame(), signal="low_eval", selection="x", baseline="y", click=False
    ).to_dict()
    assert "params" not in quiet
    empty = charts.contrast_chart(
        _contrast_frame().clear(), signal="low_eval", selection="x", baseline="y"
    ).to_dict()
    assert empty["mark"]["type"] == "text"


# -- comparison ---------------------------------------------------------------------


def _comparison_frame():
    rows = [
        # dimension, value, rate_incident, rate_baseline, p_adjusted, diff, explains
        ("platform", "tpu", 0.30, 0.02, 1e-9, 0.28, 0.9),
        ("platform", "gpu", 0.03, 0.02, 0.40, 0.01, 0.1),
        ("model", "a", 0.05, 0.04, 0.01, 0.01, 0.2),
        ("model", "b", 0.02, 0.03, 0.90, -0.01, -0.1),
        ("surface", "web", 0.04, 0.02, 1e-4, 0.02, 1.0),  # the only value: says nothing
    ]
    frame = pl.DataFrame(
        rows,
        schema=[
            "dimension",
            "value",
            "rate_incident",
            "rate_baseline",
            "p_adjusted",
            "diff",
            "explains",
        ],
        orient="row",
    )
    return frame.with_columns(
        pl.lit(1000).alias("n_incident"),
        (pl.col("rate_incident") * 1000).cast(pl.Int64).alias("k_incident"),
        pl.lit(5000).alias("n_baseline"),
        (pl.col("rate_incident") * 0.8).alias("ci_low"),
        (pl.col("rate_incident") * 1.2).alias("ci_high"),
        (pl.col("diff") - 0.01).alias("diff_low"),
        (pl.col("diff") + 0.01).alias("diff_high"),
    )


def test_comparison_marks_significant_rises_and_drops_single_value_dimensions():
    spec = _render(
        charts.comparison_chart(
            _comparison_frame(),
            signal="degraded",
            incident=(T0 + timedelta(days=2), T0 + timedelta(days=4)),
            baseline=(T0, T0 + timedelta(days=2)),
            where={"region": ["eu"]},
        )
    )
    rates = spec["hconcat"][0]["layer"]
    rows = {r["label"]: r for r in _rows(spec, "verdict")}
    assert set(rows) == {"platform = tpu", "platform = gpu", "model = a", "model = b"}
    assert rows["platform = tpu"]["verdict"] == "significant rise"
    assert rows["model = a"]["verdict"] == "significant rise"
    assert rows["platform = gpu"]["verdict"] == "not significant"
    assert rows["model = b"]["verdict"] == "not significant"  # significant or not, it fell
    assert rows["platform = tpu"]["explains_text"] == "90%"
    assert rates[0]["encoding"]["y"]["sort"][0] == "platform = tpu"
    subtitle = " ".join(spec["title"]["subtitle"])
    assert (
        "incident 2025-08-03 – 2025-08-04 UTC vs baseline 2025-08-01 – 2025-08-02 UTC" in subtitle
    )
    assert "region = eu" in subtitle


def test_comparison_shows_at_most_top_rows():
    spec = _render(
        charts.comparison_chart(
            _comparison_frame(), signal="degraded", incident=(T0, None), baseline=(None, T0), top=2
        )
    )
    assert len(_rows(spec, "verdict")) == 2


# -- exposure -----------------------------------------------------------------------


def _exposure():
    return Exposure(
        signal="low_eval",
        users=200,
        users_affected=50,
        share_affected=(0.25, 0.19, 0.31),
        heavy_users=20,
        heavy_share_affected=(0.6, 0.39, 0.78),
        per_user=pl.DataFrame(
            {"k_bucket": ["1", "2", "3-5", "6-10", "11+"], "users": [30, 10, 5, 3, 2]}
        ),
        repeat_rate=(0.4, 0.35, 0.45),
        fresh_rate=(0.05, 0.04, 0.06),
        base_rate=(0.08, 0.07, 0.09),
    )


def test_exposure_chart():
    spec = _render(charts.exposure_chart(_exposure(), where={"routing_pool": ["long"]}))
    assert [r["users"] for r in _rows(spec, "k_bucket")] == ["30", "10", "5", "3", "2"]
    subtitle = " ".join(spec["title"]["subtitle"])
    assert "50 of 200 users" in subtitle
    assert "repeat ratio 5.0×" in subtitle
    assert "routing_pool = long" in subtitle


# -- specifications: the same as Altair's constructors give -----------------------------


def _windows():
    return pl.DataFrame(
        {
            "label": ["S1", "S2"],
            "group": ["script_mix", "low_eval"],
            "start": [T0, T0 + timedelta(days=1)],
            "end": [T0 + timedelta(days=2), None],
        },
        schema_overrides={"end": pl.Datetime("us", "UTC")},
    )


CHARTS = {
    "timeline": lambda: charts.timeline_chart(_rates(), signal="degraded", by=["model"]),
    "timeline, everything": lambda: charts.timeline_chart(
        _rates(),
        signal="degraded",
        by=["model"],
        events=_events(),
        change_points=_change_points(),
        highlight=(T0 + timedelta(days=1), T0 + timedelta(days=2)),
        where={"model": ["a", "b"]},
    ),
    "timeline, no selection": lambda: charts.timeline_chart(
        _rates(groups=("a",)), signal="degraded", selection=False, grain="hour"
    ),
    "heatmap": lambda: charts.heatmap_chart(_rates(), signal="degraded", by=["model"]),
    "heatmap, highlight": lambda: charts.heatmap_chart(
        _rates(), signal="degraded", by=["model"], highlight=(T0, None)
    ),
    "comparison": lambda: charts.comparison_chart(
        _comparison_frame(), signal="degraded", incident=(T0, None), baseline=(None, T0)
    ),
    "exposure": lambda: charts.exposure_chart(_exposure()),
    "windows": lambda: charts.windows_chart(_windows(), events=_events()),
}


@pytest.mark.parametrize("name", list(CHARTS))
def test_specifications_are_those_of_altairs_constructors(name, monkeypatch):
    # The builders compose without Altair's constructors (they deep-copy every part) and
    # their compositions copy themselves shallowly: the specification must not change.
    built, other = CHARTS[name](), CHARTS["heatmap"]()
    spec = built.to_dict(validate=True)
    styled = charts.style(built).to_dict(validate=True)
    assert {k: v for k, v in styled.items() if k != "config"} == {
        k: v for k, v in spec.items() if k != "config"
    }
    assert styled["config"]["axis"] == charts.CONFIG["axis"]
    monkeypatch.setattr(charts, "_layered", lambda parts, **p: alt.LayerChart(layer=parts, **p))
    monkeypatch.setattr(
        charts, "_side_by_side", lambda parts, **p: alt.HConcatChart(hconcat=parts, **p)
    )
    reference, other_reference = CHARTS[name](), CHARTS["heatmap"]()
    assert type(reference) in (alt.LayerChart, alt.HConcatChart)
    assert spec == reference.to_dict(validate=True)
    # and a composition keeps working when Altair composes it further
    assert alt.vconcat(built, other).to_dict() == alt.vconcat(reference, other_reference).to_dict()


def test_a_shallow_copy_of_a_composed_chart_leaves_the_original_alone():
    chart = charts.timeline_chart(_rates(), signal="degraded", by=["model"])
    before = chart.to_dict()
    copy = chart.copy(deep=False)
    copy.title = "another"
    copy.layer = copy.layer[:1]
    assert chart.to_dict() == before
    assert copy.to_dict()["title"] == "another"
    assert len(copy.to_dict()["layer"]) == 1
    assert charts.style(chart).to_dict()["config"]["axis"] == charts.CONFIG["axis"]
    assert "axis" not in chart.to_dict()["config"]
