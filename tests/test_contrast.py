"""BubbleUp's comparison: every dimension's values, selection vs baseline, counted by hand."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensics
from forensics.contrast import contrast, contrast_subsets
from forensics.queries import Where
from tests.conftest import request_row


def _rows():
    """60 requests over 3 days: pool 'new' exists only on day 3 and fails there."""
    rows = []
    for i in range(60):
        day = 1 + i // 20
        pool = "new" if day == 3 and i % 2 == 0 else "old"
        bad = pool == "new" or i % 10 == 3
        rows.append(
            request_row(
                i,
                ts=f"2025-08-0{day}T{i % 20:02d}:00:00Z",
                routing_pool=pool,
                model=["m-a", "m-b", "m-c"][i % 3],
                eval_score=0.1 if bad else 0.9,
                server_id=f"s{i % 12:02d}",
                prompt_tokens=100,  # the same for all: request_row's grows with i, as days do
            )
        )
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("contrast") / "c.duckdb"
    rows = _rows()
    wb = forensics.open(path)
    import json

    file = path.with_suffix(".jsonl")
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    wb.ingest(file, progress=False)
    yield wb.db
    wb.close()


DAY3 = {"ts": ("2025-08-03", "2025-08-04")}


def test_shares_of_bad_requests_by_hand(db):
    frame = contrast(db, "low_eval", selection=DAY3)
    pool = frame.filter(pl.col("dimension") == "routing_pool")
    # day 3: i = 40..59; bad: the new pool (even i) and i % 10 == 3 -> 43, 53 (old)
    # baseline (days 1-2): bad i % 10 == 3 -> 3, 13, 23, 33, all old
    by_value = {r["value"]: r for r in pool.iter_rows(named=True)}
    assert by_value["new"]["k_selection"] == 10
    assert by_value["old"]["k_selection"] == 2
    assert by_value["new"]["share_selection"] == pytest.approx(10 / 12)
    assert by_value["new"]["share_baseline"] == 0.0
    assert by_value["old"]["share_baseline"] == 1.0
    assert by_value["new"]["difference"] == pytest.approx(10 / 12)
    assert by_value["new"]["rate_selection"] == 1.0
    assert by_value["old"]["rate_selection"] == pytest.approx(2 / 10)
    assert by_value["new"]["distance"] == pytest.approx(10 / 12)
    assert pool["value"].to_list() == ["new", "old"]  # the value that rose first
    # the pool sets day 3 apart, significantly; the model does not
    assert pool["p_adjusted"][0] < 0.05
    model = frame.filter(pl.col("dimension") == "model")
    assert model["p_adjusted"][0] > 0.05
    dims = frame["dimension"].unique(maintain_order=True).to_list()
    assert dims.index("routing_pool") < dims.index("model")


def test_long_tails_are_folded_and_shares_never_exceed_one(db):
    frame = contrast(db, "low_eval", selection=DAY3, top=4)
    servers = frame.filter(pl.col("dimension") == "server_id")
    assert servers.height == 5
    other = servers.filter(pl.col("folded") > 0).row(0, named=True)
    assert other["value"] == "other (8 values)"
    assert other["key"] is None
    for side in ("selection", "baseline"):
        sums = frame.group_by("dimension").agg(pl.col(f"share_{side}").sum())
        assert all(x == pytest.approx(1.0) for x in sums[f"share_{side}"])
        assert (frame[f"share_{side}"] <= 1).all()


def test_the_baseline_leaves_out_rows_or_is_given(db):
    left_out = contrast(db, "low_eval", selection=DAY3, leave_out=[{"model": ["m-a"]}])
    everything = contrast(db, "low_eval", selection=DAY3)
    base = lambda f: f.filter(pl.col("dimension") == "model")["k_baseline"].sum()  # noqa: E731
    assert base(everything) == 4
    assert base(left_out) == 4 - 2  # i = 3 and 33 are model m-a (i % 3 == 0)
    day1 = contrast(db, "low_eval", selection=DAY3, baseline={"ts": ("2025-08-01", "2025-08-02")})
    assert base(day1) == 2  # i = 3, 13
    sel, base_set = contrast_subsets(selection=DAY3, scope={"model": ["m-a"]})
    assert Where.parse({"model": ["m-a"]}) in sel.within
    assert base_set.without == (Where.parse(DAY3),)


def test_dimensions_no_cube_answers_have_exact_shares_but_no_rates(db):
    """An exact threshold (off the bucket edges) is in no cube: only the bad rows are read."""
    exact = {"prompt_tokens": {"gte": 99.5}}  # every request, but no cube can say so
    raw = contrast(db, "low_eval", selection=DAY3, scope=exact)
    cubed = contrast(db, "low_eval", selection=DAY3)
    assert raw["n_selection"].null_count() == raw.height
    assert raw["rate_selection"].null_count() == raw.height
    same = ["dimension", "value", "k_selection", "k_baseline", "share_selection", "share_baseline"]
    assert (
        raw.select(same)
        .sort("dimension", "value")
        .equals(cubed.select(same).sort("dimension", "value"))
    )


_where = st.fixed_dictionaries(
    {},
    optional={
        "model": st.lists(st.sampled_from(["m-a", "m-b", "m-c"]), min_size=1, unique=True),
        "ts": st.sampled_from([("2025-08-02", None), ("2025-08-01T05:00:00Z", "2025-08-03")]),
    },
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(selection=_where, scope=_where)
def test_both_sides_partition_their_bad_requests(db, selection, scope):
    frame = contrast(db, "low_eval", selection=selection, scope=scope)
    if frame.height == 0:
        return
    totals = frame.group_by("dimension").agg(
        pl.col("k_selection").sum(), pl.col("k_baseline").sum()
    )
    assert totals["k_selection"].n_unique() == 1  # every dimension counts the same requests
    assert totals["k_baseline"].n_unique() == 1
    rows = pl.DataFrame(_rows()).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC"), (pl.col("eval_score") < 0.5).alias("bad")
    )
    sel, base = contrast_subsets(selection=selection, scope=scope)

    def inside(where: Where) -> pl.Expr:
        expr = pl.lit(True)
        for column, allowed in where.values:
            expr &= pl.col(column).is_in(list(allowed))
        if where.start is not None:
            expr &= pl.col("ts") >= where.start
        if where.end is not None:
            expr &= pl.col("ts") < where.end
        return expr

    def count(subset) -> int:
        expr = pl.col("bad")
        for w in subset.within:
            expr &= inside(w)
        for w in subset.without:
            expr &= ~inside(w)
        return rows.filter(expr).height

    assert totals["k_selection"][0] == count(sel)
    assert totals["k_baseline"][0] == count(base)
