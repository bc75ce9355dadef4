"""Tests of ``forensics.explain``: explaining a moment from counts per bucket and slice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import numpy as np
import polars as pl
import pytest

from forensics.errors import QueryError
from forensics.explain import ExplainParams, explain_counts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DIMS = {
    "region": ["eu", "us", "ap", "sa"],
    "pool": ["p1", "p2", "p3", "p4", "p5"],
    "client": ["ios", "web", "cli", "android"],
}
ONSET = 70


def counts(
    lifts: list[tuple[dict[str, str], float, int]] | None = None,
    *,
    minutes: int = 90,
    volume: float = 300.0,
    rate: float = 0.01,
    seed: int = 0,
    grain: timedelta = timedelta(minutes=1),
    lift_by: dict[str, dict[str, float]] | None = None,
) -> pl.DataFrame:
    """Counts per bucket and leaf; ``lifts``: (element, rate multiplier, first bucket)."""
    rng = np.random.default_rng(seed)
    leaves = list(product(*DIMS.values()))
    names = list(DIMS)
    base = rng.lognormal(0.0, 0.3, size=len(leaves)) * rate
    rows = []
    for m in range(minutes):
        n = rng.poisson(volume, size=len(leaves))
        p = base.copy()
        for element, lift, start in lifts or []:
            if m < start:
                continue
            for i, leaf in enumerate(leaves):
                values = dict(zip(names, leaf, strict=True))
                if all(values[c] == v for c, v in element.items()):
                    scale = 1.0
                    for column, factors in (lift_by or {}).items():
                        scale *= factors.get(values[column], 1.0)
                    p[i] *= 1.0 + (lift - 1.0) * scale
        k = rng.binomial(n, np.minimum(p, 0.9))
        for i, leaf in enumerate(leaves):
            rows.append((T0 + m * grain, *leaf, int(n[i]), int(k[i])))
    return pl.DataFrame(rows, schema=["t", *names, "n", "k"], orient="row").with_columns(
        pl.col("t").dt.replace_time_zone("UTC")
    )


AT = T0 + timedelta(minutes=ONSET)


def first(frame: pl.DataFrame, **options) -> tuple[dict, ...]:
    return explain_counts(frame, **options).items[0].elements


@pytest.mark.parametrize(
    ("element", "lift"),
    [
        ({"region": "eu"}, 4.0),
        ({"region": "us", "pool": "p3"}, 6.0),
        ({"region": "ap", "pool": "p2", "client": "web"}, 15.0),
    ],
)
def test_the_raised_element_is_the_first_candidate(element, lift):
    frame = counts([(element, lift, ONSET)])
    assert first(frame, at=AT) == (element,)


def test_coarse_first_when_the_left_out_values_are_raised_too():
    # eu & p2 fails; inside it, ios is hit hard, web and cli less: still the whole of eu & p2
    element = {"region": "eu", "pool": "p2"}
    uneven = {"client": {"ios": 2.0, "web": 0.5, "cli": 0.5, "android": 1.0}}
    result = explain_counts(counts([(element, 6.0, ONSET)], lift_by=uneven), at=AT)
    assert result.items[0].elements == (element,)
    assert result.items[0].share > 0.8
    described = [c.elements for c in result.items]
    finer = [e for e in described if len(e) == 1 and set(e[0]) == {"region", "pool", "client"}]
    coarser = [e for e in described if e in (({"region": "eu"},), ({"pool": "p2"},))]
    for f in finer:  # nested alternatives: coarser before finer
        for c in coarser:
            assert described.index(c) < described.index(f)


def test_not_coarser_than_the_cause():
    # only eu & p2 fails: region = eu alone is too coarse (its other pools are at baseline)
    result = explain_counts(counts([({"region": "eu", "pool": "p2"}, 5.0, ONSET)]), at=AT)
    assert {"region": "eu"} not in result.items[0].elements


def test_two_elements_failing_at_once_are_one_candidate():
    lifts = [({"region": "eu"}, 4.0, ONSET), ({"region": "us", "pool": "p4"}, 8.0, ONSET)]
    elements = first(counts(lifts), at=AT)
    assert sorted(elements, key=len) == [{"region": "eu"}, {"region": "us", "pool": "p4"}]


def test_a_slice_that_is_always_worse_is_not_blamed():
    # ap is 5x worse all along and unchanged; sa & p1 rises at the moment
    lifts = [({"region": "ap"}, 5.0, 0), ({"region": "sa", "pool": "p1"}, 6.0, ONSET)]
    assert first(counts(lifts), at=AT) == ({"region": "sa", "pool": "p1"},)


def test_a_slice_already_bad_before_that_got_worse_counts():
    lifts = [({"pool": "p5"}, 2.0, ONSET - 30), ({"pool": "p5"}, 3.0, ONSET)]
    assert first(counts(lifts), at=AT) == ({"pool": "p5"},)


def test_a_rise_everywhere_is_no_slice():
    frame = counts([({}, 3.0, ONSET)])
    result = explain_counts(frame, at=AT)
    assert result.items[0].elements == ({},)
    # with a slice rising more than the rest, the rest's rise goes into its baseline
    lifts = [({}, 2.0, ONSET), ({"client": "cli"}, 4.0, ONSET)]
    result = explain_counts(counts(lifts), at=AT)
    assert result.items[0].elements == ({"client": "cli"},)
    assert result.factor > 1.5


def test_nothing_raised_no_first_candidate_claims_much():
    result = explain_counts(counts([], seed=3), at=AT)
    assert result.items[0].score < 20


def test_the_moment_is_found_when_none_is_given():
    result = explain_counts(counts([({"region": "us", "pool": "p3"}, 5.0, ONSET)]))
    assert result.found
    assert result.evidence is not None
    assert result.evidence > 0
    assert abs((result.at - AT) / timedelta(minutes=1)) <= 1
    assert result.items[0].elements == ({"region": "us", "pool": "p3"},)


def test_grain_follows_the_data():
    frame = counts([({"region": "eu"}, 4.0, 40)], minutes=50, grain=timedelta(hours=1))
    result = explain_counts(frame, at=T0 + timedelta(hours=40, minutes=20))
    assert result.grain == timedelta(hours=1)
    assert result.at == T0 + timedelta(hours=40)
    assert result.items[0].elements == ({"region": "eu"},)


def test_rows_of_one_bucket_and_slice_add_up():
    frame = counts([({"region": "us", "pool": "p3"}, 5.0, ONSET)])
    halves = pl.concat(
        [
            frame.with_columns(n=pl.col("n") // 2, k=pl.col("k") // 2),
            frame.with_columns(n=pl.col("n") - pl.col("n") // 2, k=pl.col("k") - pl.col("k") // 2),
        ]
    ).sample(fraction=1.0, shuffle=True, seed=1)
    a, b = explain_counts(frame, at=AT), explain_counts(halves, at=AT)
    assert [c.elements for c in a.items] == [c.elements for c in b.items]
    assert [c.requests for c in a.items] == [c.requests for c in b.items]
    assert a.items[0].rate == pytest.approx(b.items[0].rate)


def test_candidates_and_json_contract():
    element = {"region": "us", "pool": "p3"}
    result = explain_counts(counts([(element, 5.0, ONSET)]), at=AT, signal="stalled")
    assert len(result.items) >= 5
    doc = result.to_dict()
    assert doc["at"] == AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["signal"] == "stalled"
    top = doc["candidates"][0]
    assert set(top) == {"elements", "share", "rate", "baseline_rate", "ci", "score"}
    assert top["elements"] == [element]
    assert top["ci"][0] <= top["rate"] <= top["ci"][1]
    assert top["rate"] > top["baseline_rate"]
    assert 0.5 < top["share"] <= 1.0  # the rest of the traffic adds its noise to the total
    table = result.candidates
    assert table["rank"].to_list() == list(range(1, len(result.items) + 1))
    assert "us" in result.describe()


def test_ranges_read_as_bounds():
    frame = counts([({"pool": "p3"}, 5.0, ONSET)]).with_columns(
        pool=pl.col("pool").str.slice(1).cast(pl.Int64) * 8
    )
    result = explain_counts(frame, at=AT, ranges={"pool": [8, 16, 24, 32, 40]})
    assert result.items[0].elements == ({"pool": {"gte": 24.0, "lt": 32.0}},)


def test_baseline_is_a_parameter():
    frame = counts([({"region": "eu"}, 4.0, ONSET)])
    assert explain_counts(frame, at=AT).baseline_buckets == 60
    assert explain_counts(frame, at=AT, params=ExplainParams(baseline=20)).baseline_buckets == 20


@pytest.mark.parametrize(
    ("change", "at", "message"),
    [
        (lambda f: f, T0 + timedelta(days=2), "outside the data"),
        (lambda f: f, T0, "first bucket"),
        (lambda f: f, "yesterday", "not an ISO-8601 time"),
        (lambda f: f.drop("k"), AT, "lacks column"),
        (lambda f: f.with_columns(k=pl.col("n") + 1), AT, "k exceeds n"),
        (lambda f: f.with_columns(n=pl.col("n").cast(pl.Float64)), AT, "whole counts"),
        (lambda f: f.head(0), AT, "no rows"),
        (
            lambda f: f.filter(((pl.col("t") - T0).dt.total_minutes() % 5).is_in([0, 2])),
            AT,
            "one grid",
        ),
    ],
)
def test_bad_input_says_what_to_do(change, at, message):
    frame = counts([], minutes=80)
    with pytest.raises(QueryError, match=message):
        explain_counts(change(frame), at=at)


@pytest.mark.parametrize("cards", [(3, 4, 5), (2000, 2000, 3000)])
def test_leaf_ids_match_a_sort_whichever_way_they_are_counted(cards):
    from forensics.explain.leaves import leaf_ids

    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(c, size=500) for c in cards]).astype(np.int32)
    ids, first = leaf_ids(codes, cards)
    _, expected_first, expected_ids = np.unique(
        codes, axis=0, return_index=True, return_inverse=True
    )
    assert ids.tolist() == expected_ids.ravel().tolist()
    assert first.tolist() == expected_first.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_at_least_five_candidates_when_few_slices_are_anomalous(seed):
    # thin traffic, one raised slice: few anomalous elements, the first candidate among
    # them; the list is topped up to five without counting the first twice
    frame = counts([({"region": "us", "pool": "p3"}, 10.0, ONSET)], volume=3.0, seed=seed)
    result = explain_counts(frame, at=AT)
    assert len(result.items) >= 5
    assert len({c.description for c in result.items}) == len(result.items)


def test_the_moment_is_the_same_when_slices_are_scanned_in_groups(monkeypatch):
    from forensics.explain import moment
    from forensics.explain.table import encode_counts

    table = encode_counts(counts([({"region": "us", "pool": "p3"}, 5.0, ONSET)]))
    whole = moment.find_moment(table, ExplainParams())
    monkeypatch.setattr(moment, "SCAN_CELLS", 200)  # two slices of 90 buckets per group
    grouped = moment.find_moment(table, ExplainParams())
    assert grouped == whole
    assert whole.slice


def test_a_much_smaller_second_cause_gets_a_place():
    # eu fails hard; us & p3 & cli fails too, with under 2% of the excess (min_share):
    # not in the first candidate, but the first with it is among the five
    lifts = [
        ({"region": "eu"}, 8.0, ONSET),
        ({"region": "us", "pool": "p3", "client": "cli"}, 4.0, ONSET),
    ]
    result = explain_counts(counts(lifts, volume=600.0), at=AT)
    assert result.items[0].elements == ({"region": "eu"},)
    small = {"region": "us", "pool": "p3", "client": "cli"}
    assert any(small in c.elements for c in result.items), result.describe()
