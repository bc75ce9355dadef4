"""The SQL layer on tiny tables counted by hand, and cube == raw for any filter."""

from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensics
from forensics import queries
from forensics.errors import QueryError, UnknownNameError
from forensics.queries import Where, bucket_label, counts_by, power_of_two_edges
from forensics.schema import quote_identifier
from tests.conftest import request_row

# 12 requests: model a/b, platform tpu/gpu, batch sizes, two days, three users.
# argmax_violation is defined only for greedy requests (temperature 0).
ROWS = [
    # i, model, platform, batch, temperature, rank, day
    (0, "a", "tpu", 1, 0.0, 1, 1),
    (1, "a", "tpu", 4, 0.0, 3, 1),
    (2, "a", "gpu", 8, 0.0, 1, 1),
    (3, "b", "tpu", 16, 0.7, 2, 1),
    (4, "b", "gpu", 32, 0.0, 2, 1),
    (5, "b", "gpu", 48, 0.0, 1, 1),
    (6, "a", "tpu", 1, 0.0, 2, 2),
    (7, "a", "tpu", 4, 0.0, 2, 2),
    (8, "a", "gpu", 8, 0.7, 1, 2),
    (9, "b", "tpu", 16, 0.0, 1, 2),
    (10, "b", "gpu", 32, 0.0, 1, 2),
    (11, "b", "gpu", 48, 0.0, 5, 2),
]


def tiny_rows():
    return [
        request_row(
            i,
            model=m,
            platform=p,
            batch_size=b,
            temperature=t,
            max_token_rank=r,
            prompt_tokens=1000 * (i + 1) ** 2,
            ts=f"2025-08-0{d}T{i:02d}:30:00Z",
            user_id=f"u{i % 3}",
        )
        for i, m, p, b, t, r, d in ROWS
    ]


@pytest.fixture
def tiny(tmp_path, write_jsonl):
    wb = forensics.open(tmp_path / "tiny.duckdb")
    wb.ingest(write_jsonl(tiny_rows()))
    yield wb
    wb.close()


def test_counts_by_model_by_hand(tiny):
    got = counts_by(tiny.db, by=["model"], signal="argmax_violation").rows()
    # model a greedy: rows 0,1,2,6,7 -> violations 1,6,7 ; model b greedy: 4,5,9,10,11 -> 4,11
    assert got == [("a", 5, 3), ("b", 5, 2)]


def test_counts_by_day_and_platform_with_filter(tiny):
    frame = counts_by(
        tiny.db,
        by=["platform"],
        signal="argmax_violation",
        grain="day",
        where=Where.parse({"model": ["a"]}),
    )
    got = [(r["ts"], r["platform"], r["n"], r["k"]) for r in frame.iter_rows(named=True)]
    day1, day2 = datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 8, 2, tzinfo=UTC)
    # day 2 gpu: row 8 exists but is not greedy -> a group with n = 0
    assert got == [
        (day1, "gpu", 1, 0),
        (day1, "tpu", 2, 1),
        (day2, "gpu", 0, 0),
        (day2, "tpu", 2, 2),
    ]


def test_a_numeric_column_with_few_values_is_bucketed_by_value(tiny):
    dims = {d.name: d for d in queries.dimensions(tiny.db)}
    assert dims["batch_size"].kind == "numeric"
    assert dims["batch_size"].edges == (1.0, 4.0, 8.0, 16.0, 32.0, 48.0)
    got = counts_by(tiny.db, by=["batch_size"], signal="argmax_violation").rows()
    assert got == [(1.0, 2, 1), (4.0, 2, 2), (8.0, 1, 0), (16.0, 1, 0), (32.0, 2, 1), (48.0, 2, 1)]
    ranged = counts_by(
        tiny.db, by=[], signal="argmax_violation", where=Where.parse({"batch_size": {"gte": 32}})
    )
    assert ranged.rows() == [(4, 2)]


def test_a_numeric_column_with_many_values_is_bucketed_by_powers_of_two(tmp_path, write_jsonl):
    rows = [request_row(i, prompt_tokens=3 * i * i) for i in range(40)]
    with forensics.open(tmp_path / "p.duckdb") as wb:
        wb.ingest(write_jsonl(rows))
        d = queries.dimension(wb.db, "prompt_tokens")
        assert d.edges == power_of_two_edges(0, 3 * 39 * 39)
        frame = counts_by(wb.db, by=["prompt_tokens"], signal="low_eval")
        assert frame["n"].sum() == 40
        # edges 0, 4, 16, 64...: [0, 4) holds i = 0, 1 (0, 3); [4, 16) i = 2 (12)
        assert frame.rows()[:2] == [(0.0, 2, 0), (4.0, 1, 0)]


def test_time_filter_is_half_open(tiny):
    where = Where.parse({"ts": ("2025-08-02", None)})
    assert counts_by(tiny.db, by=[], signal="degraded", where=where)["n"].sum() == 6
    where = Where.parse({"ts": ("2025-08-01T01:30:00Z", "2025-08-01T03:30:00Z")})
    assert counts_by(tiny.db, by=[], signal="degraded", where=where)["n"].sum() == 2


def test_unknown_names_list_the_valid_ones(tiny):
    with pytest.raises(
        UnknownNameError, match=r"unknown signal 'nope'; valid signals: .*argmax_violation"
    ):
        counts_by(tiny.db, by=[], signal="nope")
    with pytest.raises(
        UnknownNameError, match=r"unknown dimension 'colour'; valid dimensions: .*model"
    ):
        counts_by(tiny.db, by=["colour"], signal="degraded")
    with pytest.raises(UnknownNameError, match="unknown column 'colour'"):
        counts_by(tiny.db, by=[], signal="degraded", where=Where.parse({"colour": ["red"]}))
    with pytest.raises(QueryError, match="a range needs a numeric column"):
        counts_by(tiny.db, by=[], signal="degraded", where=Where.parse({"model": {"gte": 1}}))
    with pytest.raises(QueryError, match="grain 'week'"):
        counts_by(tiny.db, by=[], signal="degraded", grain="week")


def test_where_rejects_bad_input():
    with pytest.raises(QueryError, match="not an ISO-8601 time"):
        Where.parse({"ts": ("yesterday", None)})
    with pytest.raises(QueryError, match="unknown bound"):
        Where.parse({"batch_size": {"gt": 3}})
    with pytest.raises(QueryError, match="bounds must be numbers"):
        Where.parse({"batch_size": {"gte": "big"}})
    with pytest.raises(QueryError, match="must be a mapping"):
        Where.parse([("model", "a")])


def test_where_round_trips_to_dict():
    where = Where.parse({"model": ["a"], "batch_size": {"gte": 32}, "ts": ("2025-08-01", None)})
    assert Where.parse(where.to_dict()) == where


def test_values_are_bound_not_pasted(tiny):
    statements = []
    tiny.db.trace = lambda sql, params: statements.append(sql)
    hostile = "a') OR 1=1 --"
    got = counts_by(tiny.db, by=[], signal="degraded", where=Where.parse({"model": [hostile]}))
    assert got.rows() == [(0, 0)]
    assert not any(hostile in s for s in statements)


def test_a_missing_value_can_be_selected(tmp_path, write_jsonl):
    rows = [request_row(i, surface="vertex" if i < 2 else None) for i in range(5)]
    with forensics.open(tmp_path / "m.duckdb") as wb:
        wb.ingest(write_jsonl(rows))
        where = Where.parse({"surface": [None]})
        assert counts_by(wb.db, by=[], signal="low_eval", where=where).rows() == [(3, 0)]
        assert counts_by(wb.db, by=["surface"], signal="low_eval").rows() == [
            ("vertex", 2, 0),
            (None, 3, 0),
        ]


def test_dimension_values_by_hand(tiny):
    assert queries.dimension_values(tiny.db, "platform").rows() == [("gpu", 6), ("tpu", 6)]
    assert queries.dimension_values(tiny.db, "batch_size").rows()[0] == (1.0, 2)
    with pytest.raises(UnknownNameError, match="unknown dimension 'nope'"):
        queries.dimension_values(tiny.db, "nope")


@pytest.mark.parametrize(
    ("lo", "hi", "edges"),
    [
        (1, 64, (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)),
        (0, 100, (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)),
        (0, 1, (0.0,)),
        (0, 900_000, (0.0, 8.0, 64.0, 512.0, 4096.0, 32768.0, 262144.0)),
    ],
)
def test_power_of_two_edges(lo, hi, edges):
    assert power_of_two_edges(lo, hi) == edges


def test_bucket_labels_and_ranges():
    assert bucket_label((0.0, 2.0), 0.0) == "[0, 2)"
    assert bucket_label((0.0, 2.0), 2.0) == ">= 2"
    assert bucket_label((0.0, 2.0), None) == "(missing)"
    assert queries.bucket_range((0.0, 2.0, 8.0), 2.0) == (2.0, 8.0)


def test_user_sequences_by_hand(tiny):
    frame = queries.user_sequences(tiny.db, signal="argmax_violation")
    # greedy requests in time order: u0: 0(F) 6(T) 9(F); u1: 1(T) 4(T) 7(T) 10(F);
    # u2: 2(F) 5(F) 11(T)
    assert frame.rows() == [
        ("u0", 3, 1, 2, 1, 0, 1),
        ("u1", 4, 3, 3, 3, 2, 0),
        ("u2", 3, 1, 2, 0, 0, 1),
    ]


def test_user_sequences_need_user_ids(tmp_path, write_jsonl):
    with forensics.open(tmp_path / "u.duckdb") as wb:
        wb.ingest(write_jsonl([request_row(i) for i in range(3)]))
        with pytest.raises(QueryError, match="user_id"):
            queries.user_sequences(wb.db, signal="low_eval")


def test_events_within_a_window(tiny, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text(
        "ts,kind,description\n2025-08-01T05:00:00Z,deploy,a\n2025-08-03T00:00:00Z,rollback,b\n"
    )
    tiny.ingest_events(events)
    window = Where.parse({"ts": ("2025-08-01", "2025-08-02")})
    assert queries.event_rows(tiny.db, where=window)["kind"].to_list() == ["deploy"]
    assert queries.event_rows(tiny.db)["kind"].to_list() == ["deploy", "rollback"]


def test_time_range(tiny, tmp_path):
    first, end = queries.time_range(tiny.db)
    assert first == datetime(2025, 8, 1, 0, 30, tzinfo=UTC)
    assert end == datetime(2025, 8, 2, 12, tzinfo=UTC)
    with forensics.open(tmp_path / "e.duckdb") as empty:
        assert queries.time_range(empty.db) == (None, None)


# -- cubes ------------------------------------------------------------------------------


def _reads(wb, **kwargs):
    """The table a count query read from."""
    statements = []
    wb.db.trace = lambda sql, params: statements.append(sql)
    try:
        counts_by(wb.db, signal="argmax_violation", **kwargs)
    finally:
        wb.db.trace = None
    (sql,) = statements[-1:]
    return next(t for t in ("cube_default", "cube_day_1", "requests") if f'"{t}"' in sql)


def test_ingest_builds_a_default_cube_and_queries_read_it(tiny):
    (cube,) = tiny.cubes()
    assert cube.auto
    assert cube.source_rows == 12
    assert {"model", "platform", "batch_size"} <= set(cube.dims)
    assert _reads(tiny, by=["model"], grain="day") == "cube_default"
    # a time bound inside an hour cannot be answered from hourly buckets
    assert _reads(tiny, by=[], where=Where.parse({"ts": ("2025-08-01T00:10:00Z", None)})) == (
        "requests"
    )
    # a range bound that is not a bucket edge neither
    assert _reads(tiny, by=[], where=Where.parse({"batch_size": {"gte": 5}})) == "requests"
    assert _reads(tiny, by=[], where=Where.parse({"batch_size": {"gte": 8}})) == "cube_default"


def test_a_cube_asked_for_is_kept_and_refreshed(tiny, write_jsonl):
    cube = tiny.cube(["model"], grain="day")
    assert (cube.name, cube.dims, cube.rows) == ("cube_day_1", ("model",), 4)
    assert _reads(tiny, by=["model"]) == "cube_day_1"
    assert _reads(tiny, by=["model"], grain="hour") == "cube_default"
    tiny.ingest(write_jsonl([request_row(100 + i, model="c") for i in range(3)], name="more.jsonl"))
    refreshed = {c.name: c for c in tiny.cubes()}
    assert refreshed["cube_day_1"].source_rows == 15
    assert counts_by(tiny.db, by=["model"], signal="degraded")["model"].to_list() == ["a", "b", "c"]


def test_a_cube_refuses_unknown_or_too_wide_dimensions(tiny):
    with pytest.raises(UnknownNameError, match="unknown dimension 'colour'"):
        tiny.cube(["colour"])
    with pytest.raises(QueryError, match="grain"):
        tiny.cube(["model"], grain="minute")


_filters = st.fixed_dictionaries(
    {},
    optional={
        "model": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2, unique=True),
        "platform": st.lists(st.sampled_from(["tpu", "gpu"]), min_size=1, max_size=2, unique=True),
        "batch_size": st.sampled_from([{"gte": 8}, {"lt": 16}, {"gte": 4, "lt": 32}, {"gte": 5}]),
        "ts": st.sampled_from(
            [
                ("2025-08-02", None),
                (None, "2025-08-02"),
                ("2025-08-01T06:00:00Z", "2025-08-02T06:00:00Z"),
                ("2025-08-01T06:10:00Z", None),
            ]
        ),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=_filters,
    by=st.sampled_from([[], ["model"], ["platform", "batch_size"], ["prompt_tokens"]]),
    grain=st.sampled_from([None, "hour", "day"]),
)
def test_cube_equals_raw_and_groups_add_up(tiny, where, by, grain):
    parsed = Where.parse(where)
    fast = counts_by(tiny.db, by=by, signal="argmax_violation", grain=grain, where=parsed)
    raw = counts_by(
        tiny.db, by=by, signal="argmax_violation", grain=grain, where=parsed, use_cubes=False
    )
    assert fast.equals(raw)
    total = counts_by(tiny.db, by=[], signal="argmax_violation", where=parsed)
    assert fast["n"].sum() == total["n"].sum()
    assert fast["k"].sum() == total["k"].sum()
    assert (fast["k"] <= fast["n"]).all()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=_filters, b=_filters)
def test_filters_commute(tiny, a, b):
    ab = Where.parse(a).merged(Where.parse(b))
    ba = Where.parse(b).merged(Where.parse(a))
    assert counts_by(tiny.db, by=["model"], signal="degraded", where=ab).equals(
        counts_by(tiny.db, by=["model"], signal="degraded", where=ba)
    )


def test_signal_inputs_and_identities_are_not_dimensions(tmp_path, write_jsonl):
    rows = [request_row(i, user_id=f"u{i}", latency_ms=100 * i, kernel="k1") for i in range(5)]
    mapping = forensics.Mapping.from_dict(
        {"signals": {"slow": {"column": "latency_ms", "op": ">", "value": 250}}}
    )
    with forensics.open(tmp_path / "d.duckdb") as wb:
        wb.ingest(write_jsonl(rows), mapping=mapping)
        names = {d.name for d in wb.dimensions()}
    assert {"model", "platform", "temperature", "kernel"} <= names
    assert not names & {"eval_score", "max_token_rank", "user_id", "latency_ms", "slow", "ts"}


def _with_outcomes(i):
    return request_row(
        i,
        output_tokens=[0, 40, 900][i % 3],
        latency_ms=[120, 30_000][i % 2],
        finish_reason=["stop", "length"][i % 2],
        kernel="k1",
        user_feedback=-1 if i % 2 else 0,
    )


@pytest.fixture
def with_outcomes(tmp_path, write_jsonl):
    wb = forensics.open(tmp_path / "o.duckdb")
    wb.ingest(write_jsonl([_with_outcomes(i) for i in range(12)]))
    yield wb
    wb.close()


def test_outcomes_are_not_dimensions(with_outcomes):
    effects = {"output_tokens", "latency_ms", "finish_reason", "user_feedback"}
    names = {d.name for d in with_outcomes.dimensions()}
    assert {"model", "platform", "temperature", "kernel"} <= names
    assert not names & effects
    assert not {d.name for d in queries.discover_dimensions(with_outcomes.db)} & effects
    assert not {d for c in with_outcomes.cubes() for d in c.dims} & effects


def test_an_outcome_can_be_grouped_and_filtered_by_hand_from_the_raw_rows(with_outcomes):
    # i odd: latency 30000, feedback -1; i even: latency 120, feedback 0 (six each)
    statements = []
    with_outcomes.db.trace = lambda sql, params: statements.append(sql)
    rates = with_outcomes.rates(by="latency_ms", signal="negative_feedback")
    assert rates.select("latency_ms", "n", "k").rows() == [(120.0, 6, 0), (30000.0, 6, 6)]
    assert rates.schema["latency_ms"] == pl.Float64
    assert with_outcomes.rates(by="finish_reason", signal="negative_feedback").select(
        "finish_reason", "n", "k"
    ).rows() == [("length", 6, 6), ("stop", 6, 0)]
    where = Where.parse({"output_tokens": {"lt": 1}})  # i = 0, 3, 6, 9: two odd
    assert counts_by(
        with_outcomes.db, by=["model"], signal="negative_feedback", where=where
    ).rows() == [
        ("m-a", 2, 0),
        ("m-b", 2, 2),
    ]
    assert all("cube_" not in s for s in statements if "negative_feedback" in s)


def test_an_outcome_is_no_cube_and_says_why(with_outcomes):
    with pytest.raises(
        UnknownNameError, match=r"'latency_ms' is an outcome .*wb\.rates\(by='latency_ms'\)"
    ):
        with_outcomes.cube(["latency_ms"])
    with pytest.raises(UnknownNameError, match=r"'output_tokens' is an outcome"):
        queries.dimension(with_outcomes.db, "output_tokens")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    predicate=st.fixed_dictionaries(
        {},
        optional={
            "model": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2, unique=True),
            "platform": st.lists(st.sampled_from(["tpu", "gpu"]), min_size=1, unique=True),
            "batch_size": st.sampled_from([{"gte": 8}, {"lt": 16}, {"gte": 5}]),
        },
    ),
    window=st.sampled_from(
        [
            ("2025-08-01T06:00:00Z", None),
            ("2025-08-01T03:00:00Z", "2025-08-02T06:00:00Z"),
            ("2025-08-01T06:10:00Z", "2025-08-02T00:00:00Z"),  # not on the cube's hours
        ]
    ),
)
def test_slice_counts_from_the_cube_equal_the_raw_scan(tiny, predicate, window):
    start, end = (None if t is None else datetime.fromisoformat(t) for t in window)
    signals = ["argmax_violation", "degraded"]
    statements = []
    tiny.db.trace = lambda sql, params: statements.append(sql)
    try:
        fast = queries.slice_counts(tiny.db, predicate, (start, end), signals)
    finally:
        tiny.db.trace = None
    raw = queries.slice_counts(tiny.db, predicate, (start, end), signals, use_cubes=False)
    assert fast.equals(raw)
    read_cube = '"cube_default"' in statements[-1]
    if start.minute:  # a window inside an hour: the hourly cube cannot answer
        assert not read_cube
    elif "batch_size" not in predicate:
        assert read_cube


# -- stale cubes: a read never answers from a cube built for other rows ---------------------


_BY_HAND = (
    "SELECT model, count(degraded), count(*) FILTER (WHERE degraded) FROM requests "
    "GROUP BY ALL ORDER BY ALL"
)


def _truth(db_path):
    """Requests and degraded requests per model, counted by hand on a connection of its own."""
    import duckdb

    with duckdb.connect(str(db_path), read_only=True) as con:
        rows = con.execute(_BY_HAND).fetchall()
    return [(m, int(n), int(k)) for m, n, k in rows]


def _answer(wb):
    return [(m, n, k) for m, n, k in wb.rates(by="model").select("model", "n", "k").rows()]


def _more_rows(write_jsonl, start, count, name, model="c"):
    return write_jsonl([request_row(start + i, model=model) for i in range(count)], name=name)


def test_files_loaded_by_ingest_files_are_counted(tmp_path, write_jsonl):
    """ingest.ingest_files does not rebuild the cubes; the next read must not trust them."""
    from forensics import ingest

    path = tmp_path / "two.duckdb"
    with forensics.open(path) as wb:
        wb.ingest(write_jsonl(tiny_rows()))
        ingest.ingest_files(wb.db, [_more_rows(write_jsonl, 100, 30, "b.jsonl")])
        ingest.ingest_files(wb.db, [_more_rows(write_jsonl, 200, 40, "c.jsonl", model="d")])
        assert wb.rates()["n"].to_list() == [12 + 30 + 40]
        expected = _answer(wb)
        assert _reads(wb, by=["model"]) == "cube_default"  # rebuilt, then read
    assert expected == _truth(path)
    assert sum(n for _, n, _ in expected) == 82


def _crash_after_commit(path, write_jsonl):
    """A database as kill -9 between an ingest's commit and its cube refresh leaves it."""
    from forensics import ingest
    from forensics.db import Database

    with forensics.open(path) as wb:
        wb.ingest(write_jsonl(tiny_rows()))
    db = Database(path)
    ingest.ingest_files(db, [_more_rows(write_jsonl, 100, 30, "later.jsonl")])
    db.close()


def _same_size_rewrite(path, write_jsonl):
    """A user's own SQL deletes 5 rows and inserts 5 others: the row count does not move."""
    import duckdb

    with forensics.open(path) as wb:
        wb.ingest(write_jsonl(tiny_rows()))
        wb.ingest(_more_rows(write_jsonl, 100, 30, "later.jsonl"))
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM requests WHERE model = 'c' AND _source_row <= 5")
        con.execute(
            "INSERT INTO requests SELECT * REPLACE ('e' AS model, _source_row + 1000 AS _source_row) "
            "FROM requests WHERE model = 'a' LIMIT 5"
        )
        con.execute("CHECKPOINT")


def _cube_dropped(path, write_jsonl):
    import duckdb

    _crash_after_commit(path, write_jsonl)
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE cube_default")


def _cube_written_to(path, write_jsonl):
    import duckdb

    with forensics.open(path) as wb:
        wb.ingest(write_jsonl(tiny_rows()))
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO cube_default SELECT * FROM cube_default")


def _catalog_of_an_older_version(path, write_jsonl):
    """Cubes recorded before the catalog kept their source's state."""
    import duckdb

    _crash_after_commit(path, write_jsonl)
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE cube_catalog DROP COLUMN source_state")


@pytest.mark.parametrize(
    "damage",
    [
        _crash_after_commit,
        _same_size_rewrite,
        _cube_dropped,
        _cube_written_to,
        _catalog_of_an_older_version,
    ],
)
@pytest.mark.parametrize("read_only", [False, True])
def test_a_read_after_a_crash_or_a_write_behind_the_cubes_is_right(
    tmp_path, write_jsonl, damage, read_only
):
    path = tmp_path / "damaged.duckdb"
    damage(path, write_jsonl)
    truth = _truth(path)
    with forensics.open(path, read_only=read_only) as wb:
        assert _answer(wb) == truth
        assert wb.rates()["n"].to_list() == [sum(n for _, n, _ in truth)]
        got = {d.name for d in wb.dimensions()}
        assert {"model", "platform"} <= got
        values = wb.db.frame("SELECT DISTINCT model FROM requests")["model"].to_list()
        assert set(queries.dimension_values(wb.db, "model")["value"]) == set(values)
        # read-only: the raw table answers; read-write: the cubes were rebuilt and answer
        assert _reads(wb, by=["model"]) == ("requests" if read_only else "cube_default")
        if read_only:
            assert wb.cubes() == []
        else:
            (cube,) = wb.cubes()
            assert cube.source_rows == sum(n for _, n, _ in truth)
    if read_only:  # the next writer repairs it for good
        with forensics.open(path) as wb:
            assert [c.source_rows for c in wb.cubes()] == [sum(n for _, n, _ in truth)]
        with forensics.open(path, read_only=True) as wb:
            assert _reads(wb, by=["model"]) == "cube_default"
            assert _answer(wb) == truth


def test_another_connections_write_is_seen(tmp_path, write_jsonl):
    """A second connection in the process shares DuckDB's instance: what it writes is seen."""
    import duckdb

    path = tmp_path / "shared.duckdb"
    with forensics.open(path) as wb:
        wb.ingest(write_jsonl(tiny_rows()))
        assert wb.rates()["n"].to_list() == [12]
        with duckdb.connect(str(path)) as other:
            other.execute(
                "INSERT INTO requests SELECT * REPLACE ('c' AS model, _source_row + 100 "
                "AS _source_row) FROM requests"
            )
            truth = [(m, int(n), int(k)) for m, n, k in other.execute(_BY_HAND).fetchall()]
        assert wb.rates()["n"].to_list() == [24]
        assert "c" in set(queries.dimension_values(wb.db, "model")["value"])
        assert _answer(wb) == truth


def test_a_fresh_cube_is_checked_not_rebuilt(tiny):
    statements = []
    tiny.rates(by="model")
    tiny.db.trace = lambda sql, params: statements.append(sql)
    try:
        tiny.rates(by="model")
        tiny.rates(by="platform", grain="day")
    finally:
        tiny.db.trace = None
    written = [s for s in statements if not s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert written == []
    # one metadata statement per read, the provenance checksum remembered
    assert sum("duckdb_tables()" in s for s in statements) == 2
    assert not any("hash(_source_file_id" in s for s in statements)


def test_a_read_only_connection_checks_its_cubes_once(tmp_path, write_jsonl):
    """While a read-only connection is open, DuckDB's file lock lets no one write."""
    path = tmp_path / "ro.duckdb"
    with forensics.open(path) as wb:
        wb.ingest(write_jsonl(tiny_rows()))
    with forensics.open(path, read_only=True) as wb:
        wb.rates(by="model")
        statements = []
        wb.db.trace = lambda sql, params: statements.append(sql)
        wb.rates(by="model")
        wb.rates(by="platform", grain="day")
        wb.db.trace = None
        assert len(statements) == 2  # the two count queries, nothing else
        assert _reads(wb, by=["model"]) == "cube_default"


# -- incremental cube updates ------------------------------------------------------------


def _later(i, hour="2025-08-03T05", **overrides):
    """A row in the tiny table's layout (its values, buckets and columns), at another time."""
    row = request_row(
        i, model="a", platform="tpu", batch_size=8, temperature=0.0, prompt_tokens=1000
    )
    return {**row, "ts": f"{hour}:{i % 60:02d}:00Z", "user_id": "u1", **overrides}


def _by_hand(wb):
    return [(m, int(n), int(k)) for m, n, k in wb.db.execute(_BY_HAND)]


def _cube_tables(wb):
    return {
        c.name: wb.db.frame(f"SELECT * FROM {quote_identifier(c.name)} ORDER BY ALL")
        for c in wb.cubes()
    }


def _append(wb, write_jsonl, rows, name):
    from forensics import ingest

    ingest.ingest_files(wb.db, [write_jsonl(rows, name=name)])
    statements = []
    wb.db.trace = lambda sql, params: statements.append(sql)
    try:
        done = queries.update_cubes(wb.db)
    finally:
        wb.db.trace = None
    return done, statements


def test_new_files_update_the_cubes_in_place_as_a_rebuild_would(tiny, write_jsonl):
    tiny.cube(["model"], grain="day")
    rows = [_later(100 + i) for i in range(5)] + [_later(200, hour="2025-08-01T03", model="b")]
    done, statements = _append(tiny, write_jsonl, rows, "more.jsonl")
    assert (done.action, done.hours) == ("updated", 2)
    # only the new files' rows, and the hours they touch, are read
    # (a row count is metadata: it reads no rows)
    reads = [s.replace("(SELECT count(*) FROM requests)", "") for s in statements]
    reads = [s for s in reads if "FROM requests" in s]
    assert reads
    assert all("_source_file_id > $f" in s or "ts >= $lo AND ts < $hi" in s for s in reads), reads
    # the cubes are fresh: a read uses them without rebuilding them
    seen = []
    tiny.db.trace = lambda sql, params: seen.append(sql)
    assert _reads(tiny, by=["model"]) == "cube_day_1"
    assert _reads(tiny, by=["platform"]) == "cube_default"
    tiny.db.trace = None
    assert not [s for s in seen if s.lstrip().upper().startswith(("CREATE", "INSERT"))]
    updated = _cube_tables(tiny)
    assert updated["cube_default"]["requests"].sum() == 18
    queries.refresh_cubes(tiny.db)
    rebuilt = _cube_tables(tiny)
    assert updated.keys() == rebuilt.keys() == {"cube_default", "cube_day_1"}
    for name in updated:
        assert updated[name].equals(rebuilt[name]), name
    assert _answer(tiny) == _by_hand(tiny)


def test_a_new_value_within_the_limit_extends_the_cube(tiny, write_jsonl):
    done, _ = _append(tiny, write_jsonl, [_later(100, model="c")], "c.jsonl")
    assert done.action == "updated"
    assert set(queries.dimension_values(tiny.db, "model")["value"]) == {"a", "b", "c"}
    assert queries.dimension(tiny.db, "model").cardinality == 3


def _rows_deleted_by_hand(wb, write_jsonl):
    wb.sql("DELETE FROM requests WHERE model = 'a' AND _source_row = 1")
    return [_later(100)]


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([_later(100, batch_size=7)], "batch_size has a value it was not bucketed by (7)"),
        ([_later(100, kernel="k1")], "the columns to slice by changed: kernel"),
        (
            [_later(100 + i, model=f"m{i}") for i in range(70)],
            "model now has 72 values, more than a cube holds (64)",
        ),
        (_rows_deleted_by_hand, "requests changed other than by files appended"),
    ],
)
def test_a_layout_change_rebuilds_the_cubes_and_says_why(tiny, write_jsonl, caplog, rows, reason):
    if callable(rows):
        rows = rows(tiny, write_jsonl)
    with caplog.at_level("INFO", logger="forensics"):
        done, _ = _append(tiny, write_jsonl, rows, "more.jsonl")
    assert done.action == "rebuilt"
    assert reason in done.reason
    assert f"cubes rebuilt: {done.reason}" in caplog.text
    assert _reads(tiny, by=["platform"]) == "cube_default"
    assert _answer(tiny) == _by_hand(tiny)


def test_nothing_new_changes_nothing(tiny):
    statements = []
    tiny.db.trace = lambda sql, params: statements.append(sql)
    assert queries.update_cubes(tiny.db).action == "unchanged"
    tiny.db.trace = None
    assert not [s for s in statements if not s.lstrip().upper().startswith(("SELECT", "WITH"))]


def test_a_value_beyond_the_last_power_of_two_bucket_rebuilds(tmp_path, write_jsonl):
    with forensics.open(tmp_path / "ranged.duckdb") as wb:
        wb.ingest(write_jsonl([_later(i, prompt_tokens=100 * (i + 1)) for i in range(20)]))
        edges = queries.dimension(wb.db, "prompt_tokens").edges
        assert len(edges) > 1
        assert queries.dimension(wb.db, "prompt_tokens").cardinality > 12
        inside, _ = _append(wb, write_jsonl, [_later(50, prompt_tokens=2001)], "in.jsonl")
        assert inside.action == "updated"
        beyond, _ = _append(wb, write_jsonl, [_later(51, prompt_tokens=10**7)], "out.jsonl")
        assert beyond.action == "rebuilt"
        assert "prompt_tokens needs new bucket edges (a value of 1e+07)" in beyond.reason
        assert queries.dimension(wb.db, "prompt_tokens").edges != edges


# -- sets of requests and cross-filtered value counts --------------------------------


def test_counts_in_subsets_by_hand(tiny):
    """A selection (model a on day 2) against everything else, without the tpu rows."""
    day2 = Where.parse({"ts": ("2025-08-02", "2025-08-03")})
    selection = Where.parse({"model": ["a"]}).merged(day2)
    subsets = {
        "sel": queries.Subset(within=(selection,)),
        "rest": queries.Subset(without=(selection, Where.parse({"platform": ["tpu"]}))),
    }
    frame = queries.counts_in_subsets(
        tiny.db, dims=["platform"], signal="argmax_violation", subsets=subsets
    )
    # selection: rows 6, 7 (tpu, greedy, both violate), 8 (gpu, not greedy)
    # rest: the gpu rows but 8: 2, 4, 5, 10, 11 (greedy; 4, 11 violate)
    assert frame.rows() == [("platform", "gpu", 0, 0, 5, 2), ("platform", "tpu", 2, 2, 0, 0)]


_subsets = st.builds(
    lambda within, without: queries.Subset(
        within=tuple(Where.parse(w) for w in within), without=tuple(Where.parse(w) for w in without)
    ),
    st.lists(_filters, max_size=2),
    st.lists(_filters, max_size=2),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=_subsets, b=_subsets, dims=st.sampled_from([["model"], ["platform", "batch_size"]]))
def test_counts_in_subsets_from_the_cube_equal_the_raw_scan_and_counts_by(tiny, a, b, dims):
    sets = {"a": a, "b": b}
    fast = queries.counts_in_subsets(tiny.db, dims=dims, signal="degraded", subsets=sets)
    raw = queries.counts_in_subsets(
        tiny.db, dims=dims, signal="degraded", subsets=sets, use_cubes=False
    )
    assert fast.equals(raw)
    # one set, one dimension: the rows counts_by gives for the same filter, by hand
    rows = tiny.sql("SELECT * FROM requests")
    for name, subset in sets.items():
        inside = pl.Series([True] * rows.height)
        for w in subset.within:
            inside &= _matches(rows, w)
        for w in subset.without:
            inside &= ~_matches(rows, w)
        assert fast[f"n_{name}"].sum() == inside.sum() * len(dims)


def _matches(rows: pl.DataFrame, where: Where) -> pl.Series:
    """Which rows a filter keeps, computed in Polars (the reference for the SQL)."""
    keep = pl.Series([True] * rows.height)
    for column, allowed in where.values:
        keep &= rows[column].is_in(list(allowed)).fill_null(False)
    for column, gte, lt in where.ranges:
        if gte is not None:
            keep &= (rows[column] >= gte).fill_null(False)
        if lt is not None:
            keep &= (rows[column] < lt).fill_null(False)
    if where.start is not None:
        keep &= rows["ts"] >= where.start
    if where.end is not None:
        keep &= rows["ts"] < where.end
    return keep


def test_value_counts_follow_the_other_filters_but_not_their_own(tiny):
    where = Where.parse({"model": ["a"], "platform": ["gpu"], "ts": ("2025-08-01", "2025-08-02")})
    frame = queries.value_counts(tiny.db, dims=["model", "platform"], where=where)
    # day 1: a tpu 0, 1; a gpu 2; b tpu 3; b gpu 4, 5
    assert frame.rows() == [
        ("model", "b", 2),  # gpu on day 1, whatever the model filter says
        ("model", "a", 1),
        ("platform", "tpu", 2),  # model a on day 1
        ("platform", "gpu", 1),
    ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=_filters)
def test_value_counts_from_the_cube_equal_the_raw_scan(tiny, where):
    parsed = Where.parse(where)
    dims = ["model", "platform", "batch_size"]
    fast = queries.value_counts(tiny.db, dims=dims, where=parsed)
    raw = queries.value_counts(tiny.db, dims=dims, where=parsed, use_cubes=False)
    assert fast.equals(raw)
    for dim in dims:
        others = Where(
            tuple(v for v in parsed.values if v[0] != dim),
            tuple(r for r in parsed.ranges if r[0] != dim),
            parsed.start,
            parsed.end,
        )
        expected = counts_by(tiny.db, by=[dim], signal="degraded", where=others)
        assert fast.filter(pl.col("dimension") == dim)["requests"].sum() == expected["n"].sum()


def test_counts_in_subsets_can_read_only_the_true_rows_where_no_cube_answers(tiny):
    day2 = Where.parse({"ts": ("2025-08-02", "2025-08-03")})
    sets = {"d2": queries.Subset(within=(day2,)), "rest": queries.Subset(without=(day2,))}
    dims = ["model", "prompt_tokens"]  # prompt_tokens: in the cube as buckets
    full = queries.counts_in_subsets(tiny.db, dims=dims, signal="argmax_violation", subsets=sets)
    raw = queries.counts_in_subsets(
        tiny.db,
        dims=dims,
        signal="argmax_violation",
        subsets=sets,
        use_cubes=False,
        raw_true_only=True,
    )
    cubed = queries.counts_in_subsets(
        tiny.db, dims=dims, signal="argmax_violation", subsets=sets, raw_true_only=True
    )
    assert cubed.equals(full)  # a cube answered: nothing changes
    assert raw["n_d2"].null_count() == raw.height
    nonzero = full.filter((pl.col("k_d2") > 0) | (pl.col("k_rest") > 0))
    assert raw.select("dimension", "model", "prompt_tokens", "k_d2", "k_rest").equals(
        nonzero.select("dimension", "model", "prompt_tokens", "k_d2", "k_rest")
    )


def test_counts_in_subsets_with_a_source_that_finds_nothing(tiny):
    """Only true rows are read where no cube answers; none may be true there."""
    nothing = Where.parse({"model": ["no-such-model"]})
    sets = {"a": queries.Subset(within=(nothing,)), "b": queries.Subset(within=(nothing,))}
    frame = queries.counts_in_subsets(
        tiny.db,
        dims=["model", "prompt_tokens"],
        signal="argmax_violation",
        subsets=sets,
        use_cubes=False,
        raw_true_only=True,
    )
    assert frame.height == 0
    assert frame.columns[:3] == ["dimension", "model", "prompt_tokens"]
    # model a on gpu: rows 2 and 8, no violation; the cube answers model, the raw rows
    # (true ones only) max_token_rank, an outcome no cube holds, and find none
    some = Where.parse({"model": ["a"], "platform": ["gpu"]})
    mixed = queries.counts_in_subsets(
        tiny.db,
        dims=["model", "max_token_rank"],
        signal="argmax_violation",
        subsets={"a": queries.Subset(within=(some,))},
        raw_true_only=True,
    )
    assert mixed.columns[:3] == ["dimension", "model", "max_token_rank"]
    assert mixed.rows() == [("model", "a", None, 1, 0)]


def test_the_database_provides_everything_the_engine_boundary_asks():
    from forensics.db import Database
    from forensics.queries.engine import Engine

    db = Database(":memory:")
    assert isinstance(db, Engine)
    asked = {n for n in dir(Engine) if not n.startswith("_")} | set(Engine.__annotations__)
    assert asked <= set(dir(db)), sorted(asked - set(dir(db)))


def test_the_package_names_its_functions_not_its_modules():
    # forensics.queries is a package: a module named like a function would shadow it.
    for name in queries.__all__:
        assert not isinstance(getattr(queries, name), type(queries)), name


class _CountingEngine:
    """The database as an engine, counting the statements that read ``requests``."""

    def __init__(self, db):
        self._db = db
        self.scans: list[str] = []

    def __getattr__(self, name):
        return getattr(self._db, name)

    def _seen(self, sql):
        if "FROM requests" in sql:
            self.scans.append(sql)

    def execute(self, sql, params=None):
        self._seen(sql)
        return self._db.execute(sql, params)

    def scalar(self, sql, params=None):
        self._seen(sql)
        return self._db.scalar(sql, params)

    def frame(self, sql, params=None):
        self._seen(sql)
        return self._db.frame(sql, params)


def test_dimensions_are_discovered_in_three_scans_whatever_the_columns(tiny):
    # An engine such as Spark pays for each statement: the row count, the
    # approximate distinct counts, then exact counts, ranges and few values at once.
    engine = _CountingEngine(tiny.db)
    found = {d.name: d for d in queries.discover_dimensions(engine)}
    assert len(engine.scans) == 3, engine.scans
    assert found["model"].cardinality == 2
    assert found["model"].cubable
    assert found["batch_size"].edges == (1.0, 4.0, 8.0, 16.0, 32.0, 48.0)  # six values
    assert found["temperature"].edges == (0.0, 0.7)
    assert found["prompt_tokens"].edges == tuple(1000.0 * (i + 1) ** 2 for i in range(12))
