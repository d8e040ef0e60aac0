"""Discounted sums, GAE (termination vs truncation) and the observation filter."""
import numpy as np
from hypothesis import given, strategies as st

from npgrad.advantages import discount_cumsum, discount_cumsum_loop, gae, gae_loop
from npgrad.rollout import RunningMeanStd
from npgrad.testing import finite_arrays


@given(finite_arrays(st.integers(1, 30).map(lambda n: (n,))), st.floats(0.0, 1.0))
def test_discount_cumsum_equals_loop(x, gamma):
    np.testing.assert_allclose(discount_cumsum(x, gamma), discount_cumsum_loop(x, gamma), rtol=1e-10, atol=1e-10)


@st.composite
def rollouts(draw):
    T, E = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    done = rng.random((T, E)) < 0.25
    term = done & (rng.random((T, E)) < 0.5)
    return (rng.standard_normal((T, E)), rng.standard_normal((T, E)), rng.standard_normal((T, E)), term,
            done & ~term)


@given(rollouts(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_gae_equals_plain_loop(roll, gamma, lam):
    for a, b in zip(gae(*roll, gamma, lam), gae_loop(*roll, gamma, lam)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg="vectorised GAE vs loop")


@given(rollouts(), st.floats(0.0, 1.0))
def test_gae_lambda_zero_is_td_error(roll, gamma):
    rew, val, next_val, term, trunc = roll
    adv, ret = gae(*roll, gamma, 0.0)
    np.testing.assert_allclose(adv, rew + gamma * (1 - term) * next_val - val, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, adv + val, rtol=1e-12, atol=1e-12)


def test_gae_lambda_one_is_discounted_return_minus_value():
    """Two envs, four steps. Env 0: an episode terminates at t=1, the next is cut by the rollout end.
    Env 1: an episode is truncated at t=2 (time limit), bootstrapping from V(final obs) = 10."""
    g = 0.9
    rew = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    val = np.array([[0.5, 0.1], [0.4, 0.2], [0.3, 0.3], [0.2, 0.4]])
    next_val = np.array([[0.4, 0.2], [99.0, 0.3], [0.2, 10.0], [7.0, 5.0]])  # 99: must be ignored
    term = np.array([[0, 0], [1, 0], [0, 0], [0, 0]], bool)
    trunc = np.array([[0, 0], [0, 0], [0, 1], [0, 0]], bool)
    adv, ret = gae(rew, val, next_val, term, trunc, g, 1.0)
    expected_returns = np.array([
        [1 + g * 1, 2 + g * 2 + g**2 * 2 + g**3 * 10],
        [1, 2 + g * 2 + g**2 * 10],
        [1 + g * 1 + g**2 * 7, 2 + g * 10],
        [1 + g * 7, 2 + g * 5],
    ])
    np.testing.assert_allclose(ret, expected_returns, rtol=1e-12, err_msg="lam=1 value targets")
    np.testing.assert_allclose(adv, expected_returns - val, rtol=1e-12)


def test_termination_zeroes_bootstrap_truncation_keeps_it():
    one = np.ones((1, 1))
    adv_term, _ = gae(one, 0 * one, 5 * one, one.astype(bool), 0 * one.astype(bool), 0.5, 0.9)
    adv_trunc, _ = gae(one, 0 * one, 5 * one, 0 * one.astype(bool), one.astype(bool), 0.5, 0.9)
    assert adv_term[0, 0] == 1.0 and adv_trunc[0, 0] == 1.0 + 0.5 * 5


@given(st.lists(finite_arrays(st.tuples(st.integers(0, 20), st.just(3)), -100, 100), min_size=1, max_size=5))
def test_running_mean_std_equals_numpy_on_concatenated_data(batches):
    rms = RunningMeanStd(3)
    for b in batches:
        rms.update(b)
    data = np.concatenate(batches)
    if len(data):
        np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-9, atol=1e-9, err_msg="running mean")
        np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-9, atol=1e-7, err_msg="running variance")
    assert rms.count == len(data)


def test_running_mean_std_state_round_trip():
    rng = np.random.default_rng(0)
    a = RunningMeanStd(2)
    a.update(rng.standard_normal((10, 2)))
    b = RunningMeanStd(2)
    b.load_state(a.state())
    x = rng.standard_normal((5, 2))
    np.testing.assert_array_equal(a.normalize(x), b.normalize(x))
    a.update(x), b.update(x)
    np.testing.assert_array_equal(a.var, b.var)
