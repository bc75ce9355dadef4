"""Intervals, tests and change points against values computed by hand or by definition."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from forensics import stats

Z = scipy_stats.norm.ppf(0.975)


def _wilson_by_hand(k, n):
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 1), (0, 20), (20, 20), (1, 20), (7, 13), (500, 100000)])
def test_wilson_matches_the_formula_including_k_0_and_k_n(k, n):
    low, high = stats.wilson_interval([k], [n])
    want_low, want_high = _wilson_by_hand(k, n)
    assert low[0] == pytest.approx(max(want_low, 0.0), abs=1e-12)
    assert high[0] == pytest.approx(min(want_high, 1.0), abs=1e-12)
    if k == 0:
        assert low[0] == 0.0
        assert high[0] > 0
    if k == n:
        assert high[0] == 1.0
        assert low[0] < 1


def test_wilson_of_nothing_is_undefined():
    low, high = stats.wilson_interval([0, 3], [0, 3])
    assert math.isnan(low[0])
    assert math.isnan(high[0])
    assert high[1] == 1.0


@given(st.integers(0, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_estimate(kn):
    k, n = kn
    low, high = stats.wilson_interval([k], [n])
    if n == 0:
        assert math.isnan(low[0])
    else:
        assert 0 <= low[0] <= k / n <= high[0] <= 1


def test_newcombe_difference_by_hand():
    # Newcombe's method 10: the Wilson limits of each side combined in quadrature.
    k1, n1, k0, n0 = 30, 200, 10, 250
    (l1,), (u1,) = stats.wilson_interval([k1], [n1])
    (l0,), (u0,) = stats.wilson_interval([k0], [n0])
    p1, p0 = k1 / n1, k0 / n0
    want_low = p1 - p0 - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    want_high = p1 - p0 + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    low, high = stats.diff_interval([k1], [n1], [k0], [n0])
    assert low[0] == pytest.approx(want_low, abs=1e-9)
    assert high[0] == pytest.approx(want_high, abs=1e-9)


def test_newcombe_at_the_extremes_and_empty_sides():
    low, high = stats.diff_interval([0, 10, 5], [10, 10, 0], [0, 0, 1], [10, 10, 4])
    assert low[0] < 0 < high[0]
    assert 0 < low[1] < high[1] <= 1
    assert math.isnan(low[2])
    assert math.isnan(high[2])


def test_two_proportion_score_test():
    p = stats.two_proportion_pvalue(
        [30, 10, 0, 5], [100, 100, 0, 5], [10, 30, 3, 5], [100, 100, 9, 5], alternative="larger"
    )
    assert p[0] < 1e-3  # 30% vs 10%, one-sided up
    assert p[1] > 0.99  # the other way round
    assert p[2] == 1.0  # empty side: untestable
    assert p[3] == 1.0  # 100% vs 100%: untestable
    two_sided = stats.two_proportion_pvalue([30], [100], [10], [100])
    assert two_sided[0] == pytest.approx(2 * p[0], rel=1e-6)


def test_benjamini_hochberg_by_hand():
    p = [0.01, 0.02, 0.03, 0.5, float("nan")]
    # sorted p * m / rank with m = 4: 0.04, 0.04, 0.04, 0.5 (monotone from the top)
    assert np.allclose(stats.fdr_bh(p)[:4], [0.04, 0.04, 0.04, 0.5])
    assert math.isnan(stats.fdr_bh(p)[4])


# -- change points --------------------------------------------------------------------


def _series(rates, n, seed=0):
    rng = np.random.default_rng(seed)
    n = np.asarray(n)
    return rng.binomial(n, np.asarray(rates)), n


def test_a_step_is_found_at_its_place_with_a_range_that_holds_it():
    rates = [0.01] * 300 + [0.03] * 200 + [0.01] * 300
    k, n = _series(rates, [800] * 800)
    times = [datetime(2025, 8, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(800)]
    found = stats.change_points(k, n, times=times)
    assert [c.direction for c in found] == ["up", "down"]
    up, down = found
    assert abs(up.index - 300) <= 3
    assert abs(down.index - 500) <= 3
    assert up.ci_low <= times[300] <= up.ci_high
    assert up.ci_low <= up.time <= up.ci_high
    assert up.rate_before == pytest.approx(0.01, abs=0.002)
    assert up.rate_after == pytest.approx(0.03, abs=0.004)
    assert up.p_value < 1e-6


def test_alpha_sets_the_level_of_the_change_time_range():
    """A 99.99% range holds the 80% one, and is wider on a step this soft."""
    k, n = _series([0.01] * 300 + [0.016] * 300, [800] * 600, seed=4)
    wide = stats.change_points(k, n, alpha=1e-4)
    narrow = stats.change_points(k, n, alpha=0.2)
    assert [c.direction for c in wide] == [c.direction for c in narrow] == ["up"]
    (w,), (nr,) = wide, narrow
    assert w.ci_low <= nr.ci_low <= nr.ci_high <= w.ci_high
    assert (w.ci_high - w.ci_low) > (nr.ci_high - nr.ci_low)


@pytest.mark.parametrize("seed", range(5))
def test_no_change_means_no_change_point(seed):
    k, n = _series([0.02] * 500, np.random.default_rng(seed).poisson(400, 500), seed=seed)
    assert stats.change_points(k, n) == []


def test_a_daily_cycle_is_not_mistaken_for_changes():
    # The rate follows the hour of day (the traffic mix changes over the day):
    # without the seasonal profile the segmentation chases the cycle.
    hours = np.arange(24 * 40)
    rates = 0.02 * (1 + 0.5 * np.sin(hours * 2 * np.pi / 24))
    k, n = _series(rates, [2000] * hours.size, seed=3)
    assert len(stats.change_points(k, n)) > 10
    assert stats.change_points(k, n, period=24) == []


def test_a_step_on_top_of_a_daily_cycle_is_found():
    hours = np.arange(24 * 40)
    rates = 0.02 * (1 + 0.5 * np.sin(hours * 2 * np.pi / 24)) * np.where(hours >= 500, 1.6, 1.0)
    k, n = _series(rates, [2000] * hours.size, seed=4)
    found = stats.change_points(k, n, period=24)
    assert [c.direction for c in found] == ["up"]
    assert abs(found[0].index - 500) <= 2
    assert found[0].ci_low <= found[0].index <= found[0].ci_high


def test_extra_binomial_noise_is_not_mistaken_for_changes():
    # Each bucket's rate wanders around 2% (beta noise): no level shift anywhere.
    rng = np.random.default_rng(5)
    rates = rng.beta(20, 980, 600)
    k, n = _series(rates, [3000] * 600, seed=5)
    assert len(stats.change_points(k, n, overdispersion=False)) > 3
    found = stats.change_points(k, n)
    assert found == []


def test_empty_buckets_and_degenerate_series():
    assert stats.change_points([], []) == []
    assert stats.change_points([0, 0, 0, 0, 0], [10, 10, 0, 10, 10]) == []
    n = [10] * 20 + [0] * 5 + [10] * 15
    k = [0] * 20 + [0] * 5 + [5] * 15
    found = stats.change_points(k, n)
    assert [c.direction for c in found] == ["up"]
    assert 20 <= found[0].index <= 25


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        stats.change_points([1, 2], [3])
