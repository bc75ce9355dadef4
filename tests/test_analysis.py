"""The investigator's questions (rates, timeline, compare, exposure, change points) by hand."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import forensics
from forensics import analysis
from forensics.errors import UnknownNameError
from forensics.queries import Where, counts_by, counts_per_dimension
from tests.conftest import request_row
from tests.test_queries import tiny_rows


def _rows_with_low_eval(spec):
    """spec: (day, platform, model, requests, low) -> rows whose low_eval count is `low`."""
    rows, i = [], 0
    for day, platform, model, count, low in spec:
        for j in range(count):
            rows.append(
                request_row(
                    i,
                    ts=f"2025-08-{day:02d}T{j % 24:02d}:{j % 60:02d}:00Z",
                    platform=platform,
                    model=model,
                    eval_score=0.2 if j < low else 0.9,
                    prompt_tokens=500,
                    user_id=f"u{i % 7}",
                )
            )
            i += 1
    return rows


@pytest.fixture
def incident(tmp_path, write_parquet):
    spec = [
        # baseline day 1: 2% everywhere; incident day 2: tpu at 30%
        (1, "tpu", "a", 50, 1),
        (1, "tpu", "b", 50, 1),
        (1, "gpu", "a", 50, 1),
        (1, "gpu", "b", 50, 1),
        (2, "tpu", "a", 50, 15),
        (2, "tpu", "b", 50, 15),
        (2, "gpu", "a", 50, 1),
        (2, "gpu", "b", 50, 1),
    ]
    wb = forensics.open(tmp_path / "inc.duckdb")
    wb.ingest(write_parquet(_rows_with_low_eval(spec)))
    yield wb
    wb.close()


def test_rates_with_wilson_intervals_at_k_0_and_k_n(tmp_path, write_jsonl):
    rows = [request_row(i, model="m0", eval_score=0.9) for i in range(20)]
    rows += [request_row(100 + i, model="m1", eval_score=0.1) for i in range(20)]
    with forensics.open(tmp_path / "r.duckdb") as wb:
        wb.ingest(write_jsonl(rows))
        frame = wb.rates(by="model", signal="low_eval")
    assert frame.columns == ["model", "n", "k", "rate", "ci_low", "ci_high"]
    m0, m1 = frame.rows(named=True)
    assert (m0["n"], m0["k"], m0["rate"], m0["ci_low"]) == (20, 0, 0.0, 0.0)
    assert m0["ci_high"] == pytest.approx(0.1611, abs=1e-4)  # Wilson 0/20
    assert (m1["k"], m1["rate"], m1["ci_high"]) == (20, 1.0, 1.0)
    assert m1["ci_low"] == pytest.approx(1 - 0.1611, abs=1e-4)


def test_rates_per_day_and_filter(incident):
    frame = incident.rates(by=["platform"], signal="low_eval", grain="day", where={"model": "a"})
    got = [(r["ts"].day, r["platform"], r["n"], r["k"]) for r in frame.iter_rows(named=True)]
    assert got == [(1, "gpu", 50, 1), (1, "tpu", 50, 1), (2, "gpu", 50, 1), (2, "tpu", 50, 15)]


def test_timeline_fills_empty_buckets_and_carries_events(tmp_path, write_jsonl):
    rows = [request_row(i, ts=f"2025-08-0{1 + 2 * (i % 2)}T10:00:00Z") for i in range(6)]
    events = tmp_path / "ev.csv"
    events.write_text("ts,kind,description\n2025-08-02T08:00:00Z,deploy,v2\n")
    with forensics.open(tmp_path / "t.duckdb") as wb:
        wb.ingest(write_jsonl(rows))
        wb.ingest_events(events)
        line = wb.timeline("low_eval", grain="day")
    assert [t.day for t in line.rates["ts"]] == [1, 2, 3]
    assert line.rates["n"].to_list() == [3, 0, 3]
    assert line.rates["rate"].to_list() == [0.0, None, 0.0]
    assert line.events["kind"].to_list() == ["deploy"]
    assert (line.signal, line.grain, line.by) == ("low_eval", "day", ())


def test_compare_ranks_the_explaining_value_first_with_numbers_by_hand(incident):
    frame = incident.compare(
        "low_eval", incident=("2025-08-02", "2025-08-03"), baseline=("2025-08-01", "2025-08-02")
    )
    top = frame.row(0, named=True)
    assert (top["dimension"], top["value"]) == ("platform", "tpu")
    assert (top["n_incident"], top["k_incident"], top["n_baseline"], top["k_baseline"]) == (
        100,
        30,
        100,
        2,
    )
    assert top["rate_incident"] == pytest.approx(0.30)
    assert top["rate_baseline"] == pytest.approx(0.02)
    assert top["rate_out"] == pytest.approx(0.02)  # gpu during the incident
    assert top["lift"] == pytest.approx(15.0)
    assert top["excess"] == pytest.approx(30 - 100 * 0.02)
    assert top["explains"] == pytest.approx(1.0)  # whole excess: 32 - 200 x 0.02 = 28
    assert top["share_of_bad_incident"] == pytest.approx(30 / 32)
    assert top["share_of_bad_baseline"] == pytest.approx(0.5)
    assert top["diff_low"] < 0.28 < top["diff_high"]
    assert top["p_adjusted"] < 1e-4
    by_value = {(r["dimension"], r["value"]): r for r in frame.iter_rows(named=True)}
    gpu = by_value[("platform", "gpu")]
    assert gpu["excess"] == pytest.approx(0.0)
    assert gpu["p_adjusted"] > 0.05
    # models share the rise equally: each explains half and neither is surprising
    assert by_value[("model", "a")]["explains"] == pytest.approx(0.5)
    assert by_value[("model", "a")]["surprise"] == pytest.approx(0.0)


def _pool_rows(spec):
    """spec: (day, routing_pool, requests, bad) -> rows; models and platforms alternate."""
    rows, i = [], 0
    for day, pool, count, bad in spec:
        for j in range(count):
            rows.append(
                request_row(
                    i,
                    ts=f"2025-08-{day:02d}T{j % 24:02d}:{j % 60:02d}:00Z",
                    routing_pool=pool,
                    eval_score=0.2 if j < bad else 0.9,
                )
            )
            i += 1
    return rows


def test_compare_ranks_a_value_new_in_the_incident_by_what_it_explains(tmp_path, write_parquet):
    """A pool that only exists in the incident window is the misrouting case itself."""
    spec = [
        (1, "p1", 400, 8),
        (1, "p2", 400, 8),
        (2, "p1", 400, 8),
        (2, "p2", 400, 8),
        (2, "p-new", 216, 216),  # new, and every request bad
    ]
    with forensics.open(tmp_path / "new.duckdb") as wb:
        wb.ingest(write_parquet(_pool_rows(spec)))
        frame = wb.compare(
            "low_eval", incident=("2025-08-02", "2025-08-03"), baseline=("2025-08-01", "2025-08-02")
        )
    top = frame.row(0, named=True)
    assert (top["dimension"], top["value"]) == ("routing_pool", "p-new")
    assert (top["n_incident"], top["k_incident"], top["n_baseline"], top["k_baseline"]) == (
        216,
        216,
        0,
        0,
    )
    # held to the rest of its dimension in the baseline: 16 of 800 bad
    assert top["rate_baseline"] == pytest.approx(0.02)
    assert (top["share_of_bad_baseline"], top["share_of_bad_incident"]) == (0.0, 216 / 232)
    assert top["excess"] == pytest.approx(216 - 216 * 0.02)
    # the whole incident's excess, 232 - 1016 x 0.02, is all of it
    assert top["explains"] == pytest.approx(1.0)
    assert top["diff_low"] > 0.9
    assert top["p_adjusted"] < 1e-10
    # the old pools did not change
    by_value = {(r["dimension"], r["value"]): r for r in frame.iter_rows(named=True)}
    assert by_value[("routing_pool", "p1")]["excess"] == pytest.approx(0.0)
    assert by_value[("routing_pool", "p1")]["p_adjusted"] > 0.05
    # the chart says which baseline it was held to
    from forensics.charts import comparison_chart

    chart = comparison_chart(frame, signal="low_eval", incident=(None, None), baseline=(None, None))
    spec = json.dumps(chart.to_dict())
    assert "2.00% (all values: none of its own)" in spec


def test_compare_without_baseline_traffic_tests_nothing(tmp_path, write_parquet):
    with forensics.open(tmp_path / "empty.duckdb") as wb:
        wb.ingest(write_parquet(_pool_rows([(2, "p1", 100, 5), (2, "p2", 100, 50)])))
        frame = wb.compare(
            "low_eval", incident=("2025-08-02", "2025-08-03"), baseline=("2025-07-01", "2025-07-02")
        )
    assert frame.height > 0
    assert frame["explains"].null_count() == frame.height
    assert frame["rate_baseline"].null_count() == frame.height
    assert set(frame["p_value"].to_list()) == {1.0}


def test_compare_default_baseline_is_everything_before(incident):
    explicit = incident.compare(
        "low_eval", incident=("2025-08-02", None), baseline=(None, "2025-08-02")
    )
    default = incident.compare("low_eval", incident=("2025-08-02", None))
    assert explicit.equals(default)


def test_compare_labels_numeric_buckets(incident):
    frame = incident.compare("low_eval", incident=("2025-08-02", None), dims=["prompt_tokens"])
    assert all(v.startswith(("[", ">=")) for v in frame["value"])


def test_exposure_by_hand(tmp_path, write_jsonl):
    with forensics.open(tmp_path / "x.duckdb") as wb:
        wb.ingest(write_jsonl(tiny_rows()))
        exp = wb.exposure("argmax_violation")
    # greedy requests in time order: u0 F T F, u1 T T T F, u2 F F T
    assert (exp.users, exp.users_affected) == (3, 3)
    assert exp.base_rate[0] == pytest.approx(5 / 10)
    assert exp.repeat_rate[0] == pytest.approx(2 / 4)  # after a T: u0 F, u1 T T F
    assert exp.fresh_rate[0] == pytest.approx(2 / 3)  # after an F: u0 T, u2 F T
    assert exp.repeat_ratio == pytest.approx(1.0)
    assert dict(exp.per_user.rows()) == {"1": 2, "2": 0, "3-5": 1, "6-10": 0, "11+": 0}
    summary = exp.summary()
    assert summary.columns == ["measure", "estimate", "ci_low", "ci_high"]
    assert (summary["ci_low"] <= summary["estimate"]).all()


def _step_rows(hours, onset, *, platform_step="tpu"):
    rng = np.random.default_rng(11)
    rows, i = [], 0
    start = datetime(2025, 8, 1, tzinfo=UTC)
    for h in range(hours):
        for platform in ("tpu", "gpu"):
            rate = 0.25 if (platform == platform_step and h >= onset) else 0.03
            for _ in range(20):
                low = rng.random() < rate
                rows.append(
                    request_row(
                        i,
                        ts=(start + timedelta(hours=h, minutes=int(rng.integers(60)))).isoformat(),
                        platform=platform,
                        eval_score=0.2 if low else 0.9,
                    )
                )
                i += 1
    return rows


def test_change_points_find_an_onset_in_the_right_slice(tmp_path, write_parquet):
    with forensics.open(tmp_path / "cp.duckdb") as wb:
        wb.ingest(write_parquet(_step_rows(24 * 8, onset=100)))
        found = wb.change_points("low_eval", where={"platform": ["tpu"]}, grain="hour")
        assert found["direction"].to_list() == ["up"]
        onset = datetime(2025, 8, 1, tzinfo=UTC) + timedelta(hours=100)
        (row,) = found.rows(named=True)
        assert abs((row["ts"] - onset).total_seconds()) <= 3 * 3600
        assert row["ci_low"] <= row["ts"] <= row["ci_high"]
        assert row["rate_before"] == pytest.approx(0.03, abs=0.02)
        assert row["rate_after"] == pytest.approx(0.25, abs=0.04)
        assert wb.change_points("low_eval", where={"platform": ["gpu"]}, grain="hour").is_empty()
        assert found.columns == [
            "ts",
            "direction",
            "rate_before",
            "rate_after",
            "ci_low",
            "ci_high",
            "p_value",
        ]


# -- counts per dimension and window (the comparison's one query) ------------------------

DAY1, DAY2, DAY3 = (datetime(2025, 8, d, tzinfo=UTC) for d in (1, 2, 3))


def test_counts_per_dimension_by_hand(incident):
    frame = counts_per_dimension(
        incident.db,
        dims=["platform", "model"],
        signal="low_eval",
        windows={"before": (DAY1, DAY2), "during": (DAY2, DAY3), "both": (None, None)},
    )
    assert frame.columns == [
        "dimension", "platform", "model",
        "n_before", "k_before", "n_during", "k_during", "n_both", "k_both",
    ]  # fmt: skip
    got = [(r[0], r[1] or r[2], *r[3:]) for r in frame.rows()]
    assert got == [
        # day 1: 2% everywhere; day 2: tpu at 30%, each model half tpu
        ("platform", "gpu", 100, 2, 100, 2, 200, 4),
        ("platform", "tpu", 100, 2, 100, 30, 200, 32),
        ("model", "a", 100, 2, 100, 16, 200, 18),
        ("model", "b", 100, 2, 100, 16, 200, 18),
    ]


def test_counts_per_dimension_keeps_values_seen_in_one_window_only(incident):
    frame = counts_per_dimension(
        incident.db,
        dims=["platform"],
        signal="low_eval",
        windows={"early": (None, DAY1), "day1": (DAY1, DAY2)},
        where=Where.parse({"platform": ["tpu"]}),
    )
    assert frame.select("platform", "n_early", "k_early", "n_day1", "k_day1").rows() == [
        ("tpu", 0, 0, 100, 2)
    ]


def _per_dimension_reference(db, dims, signal, windows, where, *, use_cubes):
    """What the comparison used to ask: one counts_by per dimension and window."""
    rows = {}
    for d in dims:
        for name, (start, end) in windows.items():
            part = counts_by(
                db, by=[d], signal=signal, where=where.between(start, end), use_cubes=use_cubes
            )
            for value, n, k in part.rows():
                entry = rows.setdefault((d, value), dict.fromkeys(windows, (0, 0)))
                entry[name] = (n, k)
    return {key: tuple(x for w in windows for x in value[w]) for key, value in rows.items()}


@pytest.mark.parametrize("use_cubes", [True, False])
@pytest.mark.parametrize(
    "windows",
    [
        {"incident": (DAY2, DAY3), "baseline": (DAY1, DAY2)},
        # unaligned and overlapping: no cube answers, and a row may count in both
        {"incident": (DAY2 - timedelta(minutes=30), None), "baseline": (None, DAY2)},
    ],
)
def test_counts_per_dimension_equal_one_counts_by_per_dimension_and_window(
    incident, use_cubes, windows
):
    db = incident.db
    dims = [d.name for d in incident.dimensions()]
    assert any(d.kind == "numeric" for d in incident.dimensions())
    for where in (Where(), Where.parse({"model": ["a"], "ts": (DAY1, DAY3)})):
        frame = counts_per_dimension(
            db, dims=dims, signal="low_eval", windows=windows, where=where, use_cubes=use_cubes
        )
        got = {
            (r["dimension"], r[r["dimension"]]): tuple(
                r[f"{m}_{w}"] for w in windows for m in ("n", "k")
            )
            for r in frame.iter_rows(named=True)
        }
        expected = _per_dimension_reference(
            db, dims, "low_eval", windows, where, use_cubes=use_cubes
        )
        assert got == expected
        assert frame.height == len(expected)


def test_counts_per_dimension_reads_the_cube_once_when_it_holds_every_dimension(incident):
    statements = []
    incident.db.trace = lambda sql, params: statements.append(sql)
    cube = incident.cubes()[0]
    counts_per_dimension(
        incident.db,
        dims=list(cube.dims),
        signal="low_eval",
        windows={"incident": (DAY2, DAY3), "baseline": (DAY1, DAY2)},
    )
    incident.db.trace = None
    counting = [s for s in statements if "GROUPING SETS" in s]
    assert len(counting) == 1
    assert f'FROM "{cube.name}"' in counting[0]


def test_counts_per_dimension_names_an_unknown_dimension(incident):
    with pytest.raises(UnknownNameError, match="nope"):
        counts_per_dimension(
            incident.db, dims=["nope"], signal="low_eval", windows={"all": (None, None)}
        )


# -- change points of a timeline ------------------------------------------------------------


def test_a_grouped_timeline_has_the_change_points_of_the_overall_series(tmp_path, write_parquet):
    with forensics.open(tmp_path / "cp.duckdb") as wb:
        wb.ingest(write_parquet(_step_rows(24 * 8, onset=100)))
        overall = wb.change_points("low_eval", grain="hour")
        assert overall.height >= 1
        for by in ([], ["platform"], ["model", "platform"]):
            line = wb.timeline("low_eval", by=by, grain="hour")
            assert line.change_points.equals(overall), by
        scoped = {"ts": ("2025-08-03", "2025-08-07")}
        assert wb.timeline(
            "low_eval", by="platform", grain="hour", where=scoped
        ).change_points.equals(wb.change_points("low_eval", grain="hour", where=scoped))


def test_a_segmentation_asked_again_is_remembered(tmp_path, write_parquet):
    with forensics.open(tmp_path / "cp.duckdb") as wb:
        wb.ingest(write_parquet(_step_rows(24 * 6, onset=70)))
        first = wb.change_points("low_eval", grain="hour")
        before = analysis._segmented.cache_info()
        again = wb.timeline("low_eval", by="platform", grain="hour").change_points
        after = analysis._segmented.cache_info()
    assert again.equals(first)
    assert after.hits == before.hits + 1
    assert after.misses == before.misses
