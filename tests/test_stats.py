"""IQM, median, probability of improvement, reaching a threshold, performance profiles and bootstrap intervals:
hand-worked examples, plain-loop references, and properties."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import stats as sps

from npgrad import stats
from npgrad.testing import finite_arrays

NEVER = np.inf
runs = finite_arrays(st.integers(1, 30).map(lambda n: (n,)), low=-1e3, high=1e3)
varied_runs = finite_arrays(st.integers(2, 30).map(lambda n: (n,)), low=-1e3, high=1e3).filter(
    lambda x: np.ptp(x) > 1e-3)


# --- hand-worked examples ---------------------------------------------------------------------------------

def test_iqm_hand_computed():
    # n = 8: cut floor(8/4) = 2 from each end of 1 2 3 4 5 6 7 100 -> mean(3, 4, 5, 6) = 18 / 4 = 4.5
    assert stats.iqm([7, 100, 1, 3, 5, 2, 4, 6]) == pytest.approx(4.5, rel=1e-12, abs=0)
    # n = 10: cut floor(10/4) = 2 from each end of 0 1 2 3 4 5 6 7 10 1000 -> mean(2..7) = 27 / 6 = 4.5
    assert stats.iqm([10, 0, 1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5, rel=1e-12, abs=0)
    # n = 3: floor(3/4) = 0, nothing cut: the mean (1 + 2 + 6) / 3 = 3
    assert stats.iqm([1, 2, 6]) == pytest.approx(3.0, rel=1e-12, abs=0)
    # the last axis is the runs': two rows of the cases above
    np.testing.assert_allclose(stats.iqm([[7, 100, 1, 3, 5, 2, 4, 6], [8, 8, 8, 8, 8, 8, 8, 8]]), [4.5, 8.0],
                               rtol=1e-12, atol=0, err_msg="iqm over the last axis")


def test_median_hand_computed_never_is_late():
    # 1 2 3 inf -> (2 + 3) / 2 = 2.5 ; 1 inf inf -> inf ; 1 2 inf -> 2
    np.testing.assert_allclose([stats.median([3, 1, NEVER, 2]), stats.median([1, NEVER, NEVER]),
                                stats.median([NEVER, 1, 2])], [2.5, NEVER, 2.0], rtol=1e-12, atol=0,
                               err_msg="median with never")


def test_iqm_to_threshold_never_rule():
    # the module docstring's example: 2 of 8 never (not more than a quarter) -> mean(40, 45, 50, 55) = 47.5
    assert stats.iqm_to_threshold([30, 35, 40, 45, 50, 55, NEVER, NEVER]) == pytest.approx(47.5, rel=1e-12, abs=0)
    # 3 of 8 never (more than a quarter) -> never
    assert stats.iqm_to_threshold([30, 35, 40, 45, 50, NEVER, NEVER, NEVER]) == NEVER
    # 20 runs: 5 never (exactly a quarter) -> mean of the 6th..15th smallest = mean(5..14) = 9.5; 6 never -> never
    steps = np.r_[np.arange(15.0), [NEVER] * 5]
    assert stats.iqm_to_threshold(steps) == pytest.approx(9.5, rel=1e-12, abs=0)
    assert stats.iqm_to_threshold(np.r_[np.arange(14.0), [NEVER] * 6]) == NEVER
    assert stats.iqm_to_threshold([NEVER, NEVER]) == NEVER, "all never"
    assert stats.iqm_to_threshold([12.0]) == 12.0, "one run"
    # one row per configuration
    np.testing.assert_array_equal(stats.iqm_to_threshold([[1, 2, 3, NEVER], [1, 2, NEVER, NEVER]]), [2.5, NEVER])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 13, 20, 21])
def test_iqm_to_threshold_is_iqm_counting_never_as_infinite(n):
    """The explicit quarter rule agrees with trimming: with v <= n/4 never, all v are cut."""
    for v in range(n + 1):
        steps = np.r_[np.arange(1.0, n - v + 1), [NEVER] * v]
        assert stats.iqm_to_threshold(steps) == sps.trim_mean(steps, 0.25), f"n={n}, never={v}"


def test_probability_of_improvement_hand_computed():
    # x = 1 2 3, y = 2 2 0. x=1 beats 0 (1); x=2 beats 0, ties 2 and 2 (1 + 1/2 + 1/2); x=3 beats all (3): 6/9
    x, y = [1, 2, 3], [2, 2, 0]
    assert stats.probability_of_improvement(x, y) == pytest.approx(6 / 9, rel=1e-12, abs=0)
    # lower is better: x=1 below 2 and 2 (2); x=2 ties 2 and 2 (1); x=3 (0): 3/9
    assert stats.probability_of_improvement(x, y, lower_is_better=True) == pytest.approx(3 / 9, rel=1e-12, abs=0)
    # the module docstring's example, never ties with never: 44.5 / 64
    npgrad_r, sb3_r = [20, 25, 30, 35, 40, 45, 50, NEVER], [30, 35, 40, 45, 50, 55, NEVER, NEVER]
    assert stats.probability_of_improvement(npgrad_r, sb3_r, lower_is_better=True) == pytest.approx(
        44.5 / 64, rel=1e-12, abs=0)
    assert stats.probability_of_improvement([NEVER], [NEVER], lower_is_better=True) == 0.5, "never vs never"


def test_performance_profile_hand_computed():
    # scores 1 2 3 4: above 0 -> 4/4, above 2 (strictly) -> 3 and 4 -> 2/4, above 4 -> 0
    np.testing.assert_allclose(stats.performance_profile([3, 1, 4, 2], [0, 2, 4]), [1.0, 0.5, 0.0], rtol=0,
                               atol=1e-15, err_msg="performance profile")
    np.testing.assert_allclose(stats.performance_profile([[3, 1, 4, 2], [5, 5, 5, 5]], [0, 2, 4]),
                               [[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]], rtol=0, atol=1e-15, err_msg="rows of runs")


def test_first_and_sustained_reach_hand_computed():
    steps_k = [0, 5000, 10000, 15000, 20000, 25000]
    seconds_k = [0.0, 1.0, 2.0, 3.5, 4.5, 6.0]
    returns_k = [500, 100, 480, 300, 490, 475]  # step 0 is above 475 but never counts
    assert stats.first_reach(steps_k, returns_k, 475) == 10000
    assert stats.first_reach(steps_k, returns_k, 475, at_k=seconds_k) == 2.0
    # the last evaluation below 475 is at 15000: sustained from the next one (475 counts as "at or above")
    assert stats.sustained_reach(steps_k, returns_k, 475) == 20000
    assert stats.sustained_reach(steps_k, returns_k, 475, at_k=seconds_k) == 4.5
    # above from the start: both at the first evaluation after step 0
    assert stats.first_reach(steps_k, [600] * 6, 475) == stats.sustained_reach(steps_k, [600] * 6, 475) == 5000
    # the last evaluation is below: reached, but never sustained; nothing above: never for both
    assert stats.sustained_reach(steps_k, returns_k[:-2] + [490, 474], 475) == NEVER
    assert stats.first_reach(steps_k, [0] * 6, 475) == stats.sustained_reach(steps_k, [0] * 6, 475) == NEVER
    # a NaN return is below the threshold; only the step-0 evaluation, or none: never
    assert stats.sustained_reach([5, 10, 15], [480, np.nan, 480], 475) == 15
    assert stats.first_reach([0], [500], 475) == stats.sustained_reach([0], [500], 475) == NEVER
    assert stats.first_reach([], [], 475) == stats.sustained_reach([], [], 475) == NEVER


# --- plain-loop references ---------------------------------------------------------------------------------

def probability_of_improvement_loop(x, y):
    """``(1 / (n m)) sum_ij [x_i > y_j] + 1/2 [x_i = y_j]``, pair by pair."""
    return sum(1.0 if xi > yj else 0.5 if xi == yj else 0.0 for xi in x for yj in y) / (len(x) * len(y))


def reach_loop(history, threshold):
    """``benchmarks/learning.py``'s definitions on its ``(steps, seconds, return)`` history (indices, None for
    never), mapped to steps and inf: the reference ``stats.first_reach`` and ``sustained_reach`` must match."""
    first = next((i for i, (_, _, ret) in enumerate(history) if ret >= threshold), None)
    i = len(history)
    while i > 0 and history[i - 1][2] >= threshold:
        i -= 1
    sustained = i if i < len(history) else None
    return tuple(math.inf if j is None else history[j][0] for j in (first, sustained))


steps_to_threshold = st.lists(st.one_of(st.integers(0, 6).map(float), st.just(NEVER)), min_size=1, max_size=12)


@given(steps_to_threshold, steps_to_threshold, st.booleans())
def test_probability_of_improvement_equals_pair_loop(x, y, lower_is_better):
    xs, ys = ([-v for v in x], [-v for v in y]) if lower_is_better else (x, y)
    assert stats.probability_of_improvement(x, y, lower_is_better) == pytest.approx(
        probability_of_improvement_loop(xs, ys), rel=1e-12, abs=1e-12), f"lower_is_better={lower_is_better}"


@given(st.lists(st.sampled_from([0.0, 470.0, 475.0, 480.0, np.nan]), max_size=10), st.integers(1, 3))
def test_reach_matches_the_benchmark_definitions(returns_k, every):
    """Histories as the ``Evaluator`` records them (no step 0), ties at the threshold and NaN returns."""
    steps_k = [every * 5000 * (k + 1) for k in range(len(returns_k))]
    history = [(s, 0.1 * s, r) for s, r in zip(steps_k, returns_k)]
    assert (stats.first_reach(steps_k, returns_k, 475.0),
            stats.sustained_reach(steps_k, returns_k, 475.0)) == reach_loop(history, 475.0)


# --- properties ----------------------------------------------------------------------------------------------

@given(runs)
def test_iqm_between_min_and_max(x):
    assert x.min() - 1e-9 <= stats.iqm(x) <= x.max() + 1e-9, "IQM outside [min, max]"


@given(st.floats(-1e6, 1e6), st.integers(1, 30))
def test_iqm_of_constant_is_the_constant(c, n):
    assert stats.iqm(np.full(n, c)) == pytest.approx(c, rel=1e-12, abs=1e-12), f"n={n}"


@given(runs, st.randoms(use_true_random=False))
def test_iqm_and_median_invariant_to_permutation(x, random):
    perm = list(range(len(x)))
    random.shuffle(perm)
    assert stats.iqm(x[perm]) == pytest.approx(stats.iqm(x), rel=1e-12, abs=1e-9), "IQM under permutation"
    assert stats.median(x[perm]) == stats.median(x), "median under permutation"


@given(runs, runs)
def test_probabilities_of_improvement_sum_to_one(x, y):
    assert stats.probability_of_improvement(x, y) + stats.probability_of_improvement(y, x) == pytest.approx(
        1.0, rel=0, abs=1e-12), "P(X > Y) + P(Y > X)"
    assert stats.probability_of_improvement(x, y, lower_is_better=True) == pytest.approx(
        stats.probability_of_improvement(y, x), rel=0, abs=1e-12), "P(X < Y) is P(Y > X)"


@given(runs, finite_arrays((5,), low=-1e3, high=1e3))
def test_performance_profile_is_non_increasing_in_tau(x, taus):
    profile = stats.performance_profile(x, np.sort(taus))
    assert np.all(np.diff(profile) <= 0) and np.all((0 <= profile) & (profile <= 1)), "profile"


@given(varied_runs, st.sampled_from(["iqm", "median", "iqm_to_threshold"]))
def test_interval_contains_the_point_estimate(x, name):
    statistic = getattr(stats, name)
    low, high = stats.interval(x, statistic, n_resamples=2000, rng=1)
    assert low - 1e-9 <= statistic(x) <= high + 1e-9, f"{name}: {statistic(x)} outside [{low}, {high}]"


@given(varied_runs, st.integers(0, 2**32 - 1))
def test_same_seed_same_interval(x, seed):
    a = stats.interval(x, n_resamples=500, rng=seed)
    assert stats.interval(x, n_resamples=500, rng=np.random.default_rng(seed)) == a, "Generator vs int seed"
    assert stats.interval(x, n_resamples=500, rng=seed) == a, "same seed"


@pytest.mark.parametrize("confidence, seed", [(0.5, 1), (0.95, 2), (0.99, 3)])
def test_interval_is_scipys_percentile_bootstrap_at_the_confidence_and_seed_given(confidence, seed):
    x = np.arange(10.0) ** 1.5
    by_hand = sps.bootstrap((x,), lambda s, axis: sps.trim_mean(s, 0.25, axis=axis), n_resamples=2000,
                            method="percentile", confidence_level=confidence,
                            random_state=np.random.default_rng(seed)).confidence_interval
    assert stats.interval(x, n_resamples=2000, confidence=confidence, rng=seed) == \
        pytest.approx((by_hand.low, by_hand.high), rel=1e-12, abs=0)


def test_interval_defaults_are_a_95_percent_interval_from_10000_resamples():
    """The README's and the tables' "95% bootstrap interval", by default, with every function that draws one."""
    x = np.arange(10.0) ** 1.5
    by_hand = sps.bootstrap((x,), lambda s, axis: sps.trim_mean(s, 0.25, axis=axis), n_resamples=10_000,
                            method="percentile", confidence_level=0.95,
                            random_state=np.random.default_rng(0)).confidence_interval
    assert stats.interval(x) == pytest.approx((by_hand.low, by_hand.high), rel=1e-12, abs=0)
    assert stats.stratified_interval([x]) == stats.interval(x)


# --- intervals: edge cases and stratification ---------------------------------------------------------------

@pytest.mark.parametrize("x, v, method", [([3.0], 3.0, "percentile"), ([2.0] * 7, 2.0, "percentile"),
                                           ([NEVER] * 20, NEVER, "percentile"), ([NEVER], NEVER, "percentile"),
                                           ([3.0], 3.0, "BCa"), ([2.0] * 7, 2.0, "BCa")])
def test_degenerate_samples_give_the_point(x, v, method):
    """One run, all equal, all never: every resample is the data, without warnings (BCa's jackknife would divide
    by zero)."""
    for statistic in (stats.iqm, stats.median, stats.iqm_to_threshold):
        assert stats.interval(x, statistic, method=method) == (v, v), f"{statistic.__name__} of {x}"


def test_interval_reaches_never_when_many_runs_never_reach():
    # 1 of 8 never: a resample holds more than 2 (a quarter) with probability 1 - P(Bin(8, 1/8) <= 2) = 0.069 > 2.5%
    low, high = stats.interval([1, 2, 3, 4, 5, 6, 7, NEVER], stats.iqm_to_threshold)
    assert np.isfinite(low) and high == NEVER, (low, high)
    # none never: a finite interval within the data
    low, high = stats.interval([1, 2, 3, 4, 5, 6, 7, 8], stats.iqm_to_threshold)
    assert 1 <= low <= 4.5 <= high <= 8, (low, high)


def test_interval_rejects_nan_and_bca_with_never():
    with pytest.raises(ValueError, match="NaN"):
        stats.interval([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="BCa"):
        stats.interval([1.0, 2.0, NEVER], stats.iqm_to_threshold, method="BCa")
    with pytest.raises(ValueError, match="at least one run"):
        stats.stratified_interval([[1.0, 2.0], []])


def test_bca_interval_close_to_percentile_for_a_normal_sample():
    x = np.random.default_rng(0).normal(10.0, 1.0, 40)
    pct, bca = stats.interval(x, method="percentile"), stats.interval(x, method="BCa")
    np.testing.assert_allclose(bca, pct, rtol=0, atol=0.15, err_msg="BCa vs percentile, symmetric data")


def test_stratified_bootstrap_resamples_within_tasks():
    """Task a has runs in [0, 1], task b in [100, 101], 4 runs each. Resampled within tasks, every pooled mean is
    (4 * mean_a + 4 * mean_b) / 8, in [50, 50.5 + 0.5]; an unstratified resample could draw 8 runs of one task."""
    rng = np.random.default_rng(0)
    tasks = {"a": rng.random(4), "b": 100 + rng.random(4)}
    low, high = stats.stratified_interval(tasks, lambda x, axis=-1: np.mean(x, axis=axis))
    assert 50 <= low <= high <= 51, (low, high)
    # a constant task (here a single run) is held fixed and still pooled: IQM of 1 2 3 4 | 10 -> cut 1 each end
    low, high = stats.stratified_interval([[1.0, 2.0, 3.0, 4.0], [10.0]], n_resamples=2000)
    assert 1 <= low <= stats.iqm([1, 2, 3, 4, 10]) <= high <= 10, (low, high)
    # one task is the plain bootstrap
    assert stats.stratified_interval([tasks["a"]], rng=3) == stats.interval(tasks["a"], rng=3)


def test_probability_of_improvement_interval():
    # X always better in every resample: the interval is (1, 1); Y lower is better: (0, 0)
    x_by_task, y_by_task = {"a": [10, 11, 12], "b": [5.0, 6.0]}, {"b": [0.0, 1.0, 2.0], "a": [0, 1, 2]}
    assert stats.probability_of_improvement_interval(x_by_task, y_by_task) == (1.0, 1.0)
    assert stats.probability_of_improvement_interval(x_by_task, y_by_task, lower_is_better=True) == (0.0, 0.0)
    # overlapping runs: the interval holds the mean over tasks of the point estimates
    rng = np.random.default_rng(0)
    xs, ys = [rng.normal(0.3, 1, 20), rng.normal(0, 1, 15)], [rng.normal(0, 1, 20), rng.normal(0, 1, 10)]
    point = stats.probability_of_improvement_over_tasks(xs, ys)
    assert point == pytest.approx(np.mean([probability_of_improvement_loop(x, y) for x, y in zip(xs, ys)]),
                                  rel=1e-12, abs=0)
    low, high = stats.probability_of_improvement_interval(xs, ys, n_resamples=2000)
    assert 0 < low < point < high < 1, (low, point, high)
    # steps to threshold with never: never ties never, and the interval stays in [0, 1]
    low, high = stats.probability_of_improvement_interval([[1, 2, NEVER, NEVER]], [[2, 3, 4, NEVER]],
                                                          lower_is_better=True, n_resamples=2000)
    assert 0 <= low <= stats.probability_of_improvement([1, 2, NEVER, NEVER], [2, 3, 4, NEVER], True) <= high <= 1
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement_interval({"a": [1, 2]}, {"b": [1, 2]})


def test_performance_profile_interval():
    x, taus = np.arange(20.0), np.array([-1.0, 5.0, 10.0, 25.0])
    low, high = stats.performance_profile_interval(x, taus, n_resamples=2000)
    profile = stats.performance_profile(x, taus)
    assert low.shape == high.shape == (4,)
    assert np.all(low <= profile) and np.all(profile <= high), (low, profile, high)
    # everyone above -1 and nobody above 25 in every resample: those bands are points
    np.testing.assert_array_equal([low[0], high[0], low[3], high[3]], [1.0, 1.0, 0.0, 0.0])


def test_interval_over_evaluations_resamples_the_same_runs():
    """A ``(k, r)`` array (returns of 20 runs at 3 evaluations) gives ``(low_k, high_k)``; each row equals the 1-D
    interval with the same seed, since every row resamples the same runs; a constant row is its point."""
    returns_kr = np.random.default_rng(0).normal(size=(3, 20))
    returns_kr[1] = 5.0
    low_k, high_k = stats.interval(returns_kr, rng=5)
    for k in (0, 2):
        np.testing.assert_allclose((low_k[k], high_k[k]), stats.interval(returns_kr[k], rng=5), rtol=1e-12, atol=0,
                                   err_msg=f"evaluation {k}")
    assert (low_k[1], high_k[1]) == (5.0, 5.0)
    # performance profiles of the 3 evaluations: (k, m), like performance_profile
    low_km, high_km = stats.performance_profile_interval(returns_kr, [-1.0, 0.0, 6.0], n_resamples=2000)
    profile_km = stats.performance_profile(returns_kr, [-1.0, 0.0, 6.0])
    assert low_km.shape == high_km.shape == profile_km.shape == (3, 3)
    assert np.all(low_km <= profile_km) and np.all(profile_km <= high_km)
    # one run per evaluation: the points
    np.testing.assert_array_equal(stats.interval(returns_kr[:, :1]), (returns_kr[:, 0], returns_kr[:, 0]))
