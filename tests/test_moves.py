"""Each move of the local search on small hand-built series (no workspace query runs).

A ``Search`` is built around a series store whose series are given, so that a
move sees exactly the counts a test writes: per dimension value, observed (o),
expected (e) and defined (n) requests per day.
"""

import numpy as np
import pytest

from forensics.db import Database
from forensics.queries import Dimension
from forensics.separation import values
from forensics.separation.moves import Step, exclude, extend, replace, split
from forensics.separation.moves.edges import profile_edge, roundest
from forensics.separation.moves.minimal import minimal
from forensics.separation.moves.seed import seeds
from forensics.separation.params import SeparationParams
from forensics.separation.predicate import Condition, Space
from forensics.separation.search import Search
from forensics.separation.series import SeriesStore
from forensics.separation.statistic import Scanner, Series, Window

DAYS = 12
RATE = 0.05
PER_DAY = 2000


def _search(dims: dict[str, int]) -> Search:
    params = SeparationParams()
    space = Space(
        dims={name: Dimension(name, "categorical", size, True) for name, size in dims.items()},
        edges={},
    )
    store = SeriesStore(
        db=Database(":memory:"), space=space, columns={}, first=0, buckets=DAYS, hours=24
    )
    return Search(
        db=store.db,
        params=params,
        space=space,
        signals=["bad"],
        hours=24,
        first=0,
        buckets=DAYS,
        scanner=Scanner(DAYS, params),
        store=store,
    )


def _rows(hits: list[tuple[int, int, float]], share: list[float]) -> Series:
    """One row per value: ``share`` of the daily requests; ``hits`` = (row, first day,
    rate multiplier) from that day to the end of the window [first, first + 3)."""
    n = np.array([[PER_DAY * s] * DAYS for s in share], dtype=float)
    e = n * RATE
    o = e.copy()
    for row, first, times in hits:
        o[row, first : first + 3] *= times
    return Series(o, e, n)


def _step(search: Search, by: dict, window: Window, predicate=None) -> Step:
    predicate = predicate or {}
    if not by:
        return Step("bad", predicate, window, by, float("-inf"))
    _, s = next(iter(by.values()))
    current = search.score(predicate, float(search.scanner.at(s.total(), window)[0]))
    return Step("bad", predicate, window, by, current)


def test_exclude_leaves_out_values_clearly_spared_when_they_weigh():
    search = _search({"region": 3})
    s = _rows([(0, 4, 3.0), (1, 4, 3.0)], share=[0.3, 0.3, 0.4])
    step = _step(search, {"region": (["a", "b", "c"], s)}, Window(4, 7))
    predicate, window = exclude.exclude(search, step)
    assert predicate == {"region": Condition(values=frozenset({"a", "b"}))}
    assert window == Window(4, 7)


def test_exclude_keeps_a_dimension_whose_spared_values_are_few():
    search = _search({"region": 3})
    s = _rows([(0, 4, 3.0), (1, 4, 3.0)], share=[0.48, 0.48, 0.04])
    assert (
        exclude.exclude(search, _step(search, {"region": (["a", "b", "c"], s)}, Window(4, 7)))
        is None
    )


def test_split_sets_apart_a_value_that_peaks_in_another_window():
    search = _search({"model": 3})
    s = _rows([(0, 2, 3.0), (1, 2, 3.0), (2, 8, 3.0)], share=[0.3, 0.3, 0.4])
    step = _step(search, {"model": (["x", "y", "z"], s)}, Window(2, 5))
    predicate, window = split.split(search, step)
    assert predicate == {"model": Condition(values=frozenset({"x", "y"}))}
    assert window == Window(2, 5)


def test_split_leaves_one_problem_whole():
    search = _search({"model": 3})
    s = _rows([(0, 2, 3.0), (1, 2, 3.0), (2, 2, 3.0)], share=[0.3, 0.3, 0.4])
    assert split.split(search, _step(search, {"model": (["x", "y", "z"], s)}, Window(2, 5))) is None


def test_extend_proposes_the_hit_value_and_not_a_spared_one():
    search = _search({"pool": 4})
    s = _rows([(2, 5, 4.0)], share=[0.25] * 4)
    proposals = extend.extend(
        search, _step(search, {"pool": (["p", "q", "r", "s"], s)}, Window(5, 8))
    )
    kept = {frozenset(p["pool"].values) for p, _, _ in proposals}
    assert frozenset({"r"}) in kept
    assert all("p" not in k or "r" in k for k in kept)
    assert all(window == Window(5, 8) for p, window, _ in proposals if p["pool"].values == {"r"})


def test_roles_tell_hit_spared_and_empty_values_apart():
    search = _search({"pool": 4})
    s = _rows([(0, 5, 4.0)], share=[0.3, 0.3, 0.4, 0.0])
    found = values.roles(search, {}, "pool", ["p", "q", "r", "s"], s, Window(5, 8))
    assert list(found) == [values.AFFECTED, values.UNAFFECTED, values.UNAFFECTED, values.EMPTY]


def test_seeds_put_the_hit_value_first_at_its_window():
    search = _search({"pool": 3})
    pool = _rows([(1, 6, 4.0)], share=[0.4, 0.2, 0.4])
    search.store.remember("bad", {}, ["pool"], (pool.total(), {"pool": (["a", "b", "c"], pool)}))
    first = seeds(search, "bad")[0]
    assert first.predicate == {"pool": Condition(values=frozenset({"b"}))}
    assert first.window == Window(6, 9)


def test_minimal_drops_a_condition_that_adds_nothing():
    search = _search({"pool": 2, "task": 2})
    hit_pool = Condition(values=frozenset({"a"}))
    any_task = Condition(values=frozenset({"t"}))
    both = {"pool": hit_pool, "task": any_task}
    # pool=a is hit on days 3-5; task=t holds half of every pool's requests.
    pool = _rows([(0, 3, 3.0)], share=[0.5, 0.5])
    a_rows = Series(pool.o[:1], pool.e[:1], pool.n[:1])
    half = Series(a_rows.o / 2, a_rows.e / 2, a_rows.n / 2)
    store = search.store
    store.remember("bad", both, [], (half, {}))
    store.remember(
        "bad",
        {"task": any_task},
        ["pool"],
        (
            Series(pool.o / 2, pool.e / 2, pool.n / 2).total(),
            {"pool": (["a", "b"], Series(pool.o / 2, pool.e / 2, pool.n / 2))},
        ),
    )
    task_rows = Series(
        np.vstack([half.o, half.o]), np.vstack([half.e, half.e]), np.vstack([half.n, half.n])
    )
    store.remember("bad", {"pool": hit_pool}, ["task"], (a_rows, {"task": (["t", "u"], task_rows)}))
    predicate, window = minimal(search, "bad", both, Window(3, 6))
    assert predicate == {"pool": hit_pool}
    assert window == Window(3, 6)


def test_replace_offers_dropping_a_condition_and_swapping_it():
    search = _search({"pool": 2, "task": 2})
    pool_a, task_t = Condition(values=frozenset({"a"})), Condition(values=frozenset({"t"}))
    pool = _rows([(0, 3, 3.0)], share=[0.5, 0.5])
    half = Series(pool.o / 2, pool.e / 2, pool.n / 2)
    a = Series(pool.o[:1], pool.e[:1], pool.n[:1])
    tasks = Series(*(np.vstack([x / 2, x / 2]) for x in (a.o, a.e, a.n)))
    search.store.remember(
        "bad", {"task": task_t}, ["pool"], (half.total(), {"pool": (["a", "b"], half)})
    )
    search.store.remember("bad", {"pool": pool_a}, ["task"], (a, {"task": (["t", "u"], tasks)}))
    step = _step(search, {}, Window(3, 6), predicate={"pool": pool_a, "task": task_t})
    proposals = [p for p, _, _ in replace.replace(search, step)]
    assert {"pool": pool_a} in proposals  # task dropped
    assert {"task": task_t} not in proposals  # pool holds the hit: never dropped for nothing


@pytest.mark.parametrize("edge", [96, 37, 150])
def test_a_step_in_the_rate_is_placed_at_its_edge_with_a_narrow_range(edge):
    rng = np.random.default_rng(edge)
    v = np.arange(1.0, 257.0)
    n = np.full(v.size, 400.0)
    e = n * RATE
    o = rng.poisson(np.where(v >= edge, 3 * e, e)).astype(float)
    first, last = profile_edge(v, o, e, upper=False)
    assert v[first] <= edge <= v[last] or v[first - 1] < edge <= v[last]
    assert v[last] - v[first] <= 0.1 * edge


def test_an_upper_edge_is_placed_too():
    v = np.arange(1.0, 101.0)
    e = np.full(v.size, 20.0)
    o = np.where(v < 40, 60.0, 20.0)
    assert profile_edge(v, o, e, upper=True) == (39, 39)  # inside: v < v[39] = 40


def test_no_edge_without_a_rise():
    v = np.arange(1.0, 11.0)
    assert profile_edge(v, np.full(10, 5.0), np.full(10, 5.0), upper=False) is None
    falling = np.linspace(10.0, 1.0, 10)
    assert profile_edge(v, falling, np.full(10, 5.0), upper=False) is None


@pytest.mark.parametrize(
    ("low", "high", "prefer", "want"),
    [
        (199_650, 200_410, 200_100, 200_000),
        (95, 97, 96, 96),
        (0.71, 0.79, 0.75, 0.75),
        (64, 64, 64, 64),
    ],
)
def test_the_reported_edge_is_the_roundest_number_in_its_range(low, high, prefer, want):
    assert roundest(low, high, prefer=prefer) == pytest.approx(want)


def test_a_value_new_in_the_window_is_not_padded_with_old_ambiguous_ones():
    # v3 begins with the window and is hit; v1 and v2 have a past and too few requests in
    # the window to tell. Mixed with them, v3's excess would count as a rise of the whole.
    search = _search({"version": 4})
    s = _rows([(2, 8, 3.0)], share=[0.01, 0.01, 0.3, 0.68])
    for row in (0, 1):
        s.n[row, 8:], s.e[row, 8:], s.o[row, 8:] = 1.0, RATE, RATE
    s.n[2, :8] = s.e[2, :8] = s.o[2, :8] = 0.0
    names = ["v1", "v2", "v3", "v4"]
    found = values.roles(search, {}, "version", names, s, Window(8, 11))
    assert list(found[:3]) == [values.AMBIGUOUS, values.AMBIGUOUS, values.AFFECTED]
    cond = values.keep(search, "version", names, found, s, Window(8, 11))
    assert cond == Condition(values=frozenset({"v3"}))
    assert list(values.new_values(s, Window(8, 11))) == [False, False, True, False]


def _signature(sid, signal, predicate, start, end):
    from datetime import UTC, datetime

    from forensics.signature import Signature

    day = lambda d: datetime(2025, 1, d, tzinfo=UTC)  # noqa: E731
    return Signature(
        id=sid, predicate=predicate, start=day(start), end=day(end), signal=signal,
        signals=(signal,), symptoms=(), baseline="", excess_rate=0.1, ci=(0.0, 0.2),
        excess_requests=10.0, requests=100, users=0, p_value=1e-9, log_likelihood_ratio=30.0,
        onset_range=(day(start), day(start)), end_range=(day(end), day(end)), events=(),
    )  # fmt: skip


def test_a_signature_cut_down_to_where_its_symptom_shows_is_merged_into_the_whole():
    # S1: platform tpu (all languages); S2: tpu and English, same days, on a signal only
    # English rows can show. Rows: (tpu?, en?) x inside both windows, with n per signal.
    from datetime import UTC, datetime

    import polars as pl

    from forensics.separation.merge import duplicates
    from forensics.separation.symptoms import Cover

    frame = pl.DataFrame(
        {
            "c0_0": [True, True, False], "p0": [1, 1, 1],
            "c1_0": [True, True, False], "c1_1": [True, False, True], "p1": [1, 1, 1],
            "n__low_eval": [600, 400, 5000], "k__low_eval": [90, 60, 250],
            "n__script_mix": [600, 400, 5000], "k__script_mix": [60, 0, 5],
        }
    )  # fmt: skip
    found = [
        _signature("S1", "low_eval", {"platform": ["tpu"]}, 5, 10),
        _signature("S2", "script_mix", {"platform": ["tpu"], "lang": ["en"]}, 5, 10),
    ]
    cover = Cover(frame, found, ["low_eval", "script_mix"])
    end = datetime(2025, 1, 30, tzinfo=UTC)
    assert duplicates(cover, found, end) == [0]
    # Later in time, or in other rows, it is another problem.
    later = [found[0], _signature("S2", "script_mix", found[1].predicate, 14, 20)]
    assert duplicates(Cover(frame, later, ["low_eval", "script_mix"]), later, end) == [0, 1]
    small = frame.with_columns(pl.Series("n__script_mix", [100, 900, 5000]))
    assert duplicates(Cover(small, found, ["low_eval", "script_mix"]), found, end) == [0, 1]


def test_split_follows_the_values_set_apart_when_the_others_are_not_hit():
    # Release v3 is bad to the end (days 2-12) while its client's other releases are
    # not hit at all: its traffic faded, so the client's window ended early (day 6).
    search = _search({"version": 3})
    s = _rows([], share=[0.4, 0.4, 0.2])
    s.o[2, 2:] = s.e[2, 2:] * 4
    step = _step(search, {"version": (["v1", "v2", "v3"], s)}, Window(2, 6))
    predicate, window = split.split(search, step)
    assert predicate == {"version": Condition(values=frozenset({"v3"}))}
    assert window == Window(2, DAYS)


def test_no_window_holds_all_the_data():
    # A slice always three times its expectation: how it is, not a change in time.
    scanner = Scanner(DAYS, SeparationParams())
    s = _rows([], share=[1.0])
    s = Series(s.o * 3, s.e, s.n)
    start, stop, _ = scanner.best(s)
    assert (int(start[0]), int(stop[0])) != (0, DAYS)
    assert not ((scanner.starts == 0) & (scanner.stops == DAYS)).any()


def test_a_slice_without_a_past_is_measured_against_its_most_frequent_siblings():
    # A new model version on long prompts: worse than other versions on long prompts,
    # but no worse than the new version on other prompts. It does not stand out against
    # the siblings of each of its conditions, so it is no problem of its own.
    from forensics.separation.evidence import measure

    params = SeparationParams()
    predicate = {"model_version": ["new"], "prompt_length": ["long"]}
    inside = {"bad": (1000, 300)}
    outside = {"bad": (0, 0)}
    parents = {
        "model_version": {"bad": (1000 + 20_000, 300 + 500)},  # long prompts, any version
        "prompt_length": {"bad": (1000 + 5_000, 300 + 1500)},  # the new version, any length
    }
    found = measure(params, "bad", predicate, ["bad"], inside, outside, parents)
    assert found.primary.baseline == "other requests with model_version in {new} in the window"
    assert found.primary.rate_baseline == pytest.approx(0.3)
    assert not found.primary.elevated


def test_isolate_restricts_a_rise_to_the_values_that_appeared_with_it():
    # A client's release v3 appears on day 5 and is bad from its first request; its
    # older releases are not hit. The client's rise is v3's alone.
    from forensics.separation.moves import isolate

    search = _search({"version": 3})
    s = _rows([], share=[0.45, 0.45, 0.1])
    s.n[2, :5] = s.e[2, :5] = s.o[2, :5] = 0.0
    s.o[2, 5:] = s.e[2, 5:] * 4
    step = _step(search, {"version": (["v1", "v2", "v3"], s)}, Window(5, DAYS))
    predicate, window = isolate.isolate(search, step)
    assert predicate == {"version": Condition(values=frozenset({"v3"}))}
    assert window == Window(5, DAYS)
    # When an old release is hit too, the rise is not the new one's alone.
    s.o[0, 5:] = s.e[0, 5:] * 2
    assert isolate.isolate(search, step) is None
