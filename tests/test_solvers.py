"""Conjugate gradient, trust-region step, line search, natural-gradient step, Adam and RMSprop."""
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, strategies as st
from scipy.sparse.linalg import cg as scipy_cg

from npgrad.objectives import surrogate
from npgrad.policy import Policy
from npgrad.solvers import (SGD, Adam, RMSprop, backtracking_line_search, conjugate_gradient, natural_gradient_step,
                            trust_region_step)


@st.composite
def spd_systems(draw):
    d = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.exp(rng.uniform(-2, 2, d))  # condition number up to e^4
    return (Q * eig) @ Q.T, rng.standard_normal(d)


@given(spd_systems())
def test_cg_solves_spd_system_within_dim_iterations(system):
    A, b = system
    d = len(b)
    x, info = conjugate_gradient(lambda v: A @ v, b, iters=d, residual_tol=0.0)
    assert info["iterations"] <= d and not info["breakdown"]
    # after dim iterations the residual is 0 in exact arithmetic; in float64 CG loses orthogonality
    # (scipy's cg lands on the same iterate, checked next), so the bound is 1e-4, not 1e-15
    assert np.linalg.norm(A @ x - b) <= 1e-4 * np.linalg.norm(b), "relative residual after dim iterations"
    x_scipy, _ = scipy_cg(A, b, rtol=0.0, atol=0.0, maxiter=d)
    np.testing.assert_allclose(x, x_scipy, rtol=1e-6, atol=1e-9, err_msg="CG vs scipy.sparse.linalg.cg, dim iterations")
    x_long, _ = conjugate_gradient(lambda v: A @ v, b, iters=5 * d, residual_tol=1e-13)
    np.testing.assert_allclose(x_long, np.linalg.solve(A, b), rtol=1e-6, atol=1e-8, err_msg="CG vs numpy.linalg.solve")


def test_cg_reports_negative_curvature_instead_of_dividing():
    A = np.diag([1.0, -2.0])
    x, info = conjugate_gradient(lambda v: A @ v, np.array([0.0, 1.0]), iters=5)
    assert info["breakdown"] and info["curvature"] == -2.0 and info["iterations"] == 0
    assert np.all(np.isfinite(x))
    _, info = conjugate_gradient(lambda v: np.zeros_like(v), np.ones(3), iters=5)
    assert info["breakdown"] and info["curvature"] == 0.0
    _, info = conjugate_gradient(lambda v: np.full_like(v, np.nan), np.ones(3), iters=5)
    assert info["breakdown"], "NaN curvature must count as breakdown"


def test_cg_stops_at_residual_tolerance():
    x, info = conjugate_gradient(lambda v: 2.0 * v, np.ones(4), iters=10, residual_tol=1e-10)
    assert info["iterations"] == 1 and info["residual_norm"] < 1e-10
    np.testing.assert_allclose(x, 0.5)


def test_cg_compares_the_residual_norm_not_its_square_with_the_tolerance():
    """|b| = 2e-6 is above the tolerance 1e-10, though |b|^2 = 4e-12 is below it: one iteration is taken."""
    x, info = conjugate_gradient(lambda v: 2.0 * v, np.full(4, 1e-6), iters=10, residual_tol=1e-10)
    assert info["iterations"] == 1
    np.testing.assert_allclose(x, 5e-7, rtol=1e-12)


@given(spd_systems(), st.floats(1e-4, 0.1))
def test_trust_region_step_lands_on_the_constraint(system, delta):
    F, g = system
    x = np.linalg.solve(F, g)
    s, info = trust_region_step(x, F @ x, delta)
    assert info["ok"]
    np.testing.assert_allclose(0.5 * s @ F @ s, delta, rtol=1e-10, err_msg="1/2 s^T F s must equal delta")
    assert s @ g > 0, "the step must point uphill"


@pytest.mark.parametrize("x, Fx", [([1.0, 1.0], [-1.0, -1.0]), ([0.0, 0.0], [0.0, 0.0]), ([1.0, 0.0], [0.0, 5.0])])
def test_trust_region_step_refuses_non_positive_curvature(x, Fx):
    """Negative or zero ``x^T F x`` (a zero gradient gives ``x = 0`` without a CG breakdown) is no step."""
    s, info = trust_region_step(np.array(x), np.array(Fx), 0.01)
    assert not info["ok"] and np.all(s == 0)


def test_trust_region_step_on_a_real_policy_moves_kl_by_about_delta():
    pol = Policy(spaces.Box(-1, 1, (4,)), spaces.Discrete(3), (16,), rng=0)
    pol.theta = pol.theta + 0.1 * np.random.default_rng(1).standard_normal(pol.num_params)
    obs = np.random.default_rng(2).standard_normal((500, 4))
    rng = np.random.default_rng(3)
    old = pol.distribution(obs)
    act = old.sample(rng)
    # a real policy gradient lies in the range of J^T: no component along the Fisher's null space
    # (adding one constant to every logit changes no probability)
    _, g = pol.objective_grad(obs, surrogate, act, rng.standard_normal(500), old.log_prob(act))
    fvp = pol.fvp_operator(obs, damping=1e-8)
    # 10 iterations as in TRPO: run to convergence, CG walks into the Fisher's near-null directions
    # (most of its 131 eigenvalues are ~0), where the quadratic model of the KL no longer holds
    x, _ = conjugate_gradient(fvp, g, iters=10)
    delta = 1e-4
    s, _ = trust_region_step(x, fvp(x), delta)
    pol.theta = pol.theta + s
    kl = old.kl(pol.distribution(obs)).mean()
    np.testing.assert_allclose(kl, delta, rtol=0.1, err_msg="measured KL after the KKT step")


def test_line_search_accepts_full_step_when_improvement_is_as_predicted():
    f = lambda x: -np.sum((x - 1.0) ** 2)  # noqa: E731
    x0, step = np.zeros(2), np.full(2, 0.1)
    expected = 0.4  # g . step with g = 2(1 - x0)
    x, info = backtracking_line_search(f, x0, step, expected)
    assert info["accepted"] and info["backtracks"] == 0
    np.testing.assert_allclose(x, step)


def test_line_search_backtracks_on_overshoot():
    f = lambda x: -np.sum((x - 1.0) ** 2)  # noqa: E731
    x, info = backtracking_line_search(f, np.zeros(1), np.array([4.0]), expected_improve=8.0)
    # f(0) = -1; x=4: -9 (worse); x=2: -1 (no gain, rejected); x=1: 0 (gain 1 >= 0.1 * 2, accepted)
    assert info["accepted"] and info["backtracks"] == 2, info
    np.testing.assert_allclose(x, [1.0])


def test_line_search_compares_with_the_kth_steps_linear_prediction():
    """Armijo at step fraction shrink^k: accept when ``f(x_k) - f(x0) >= accept_ratio * shrink^k * g.s``. On
    f(x) = -(x - 1)^2 from 0 along s = 4 (g.s = 8): k = 2 lands on x = 1, improvement 1 >= 0.45 * 0.25 * 8 = 0.9
    (though not >= 0.45 * 8, the full step's prediction)."""
    f = lambda x: -np.sum((x - 1.0) ** 2)  # noqa: E731
    x, info = backtracking_line_search(f, np.zeros(1), np.array([4.0]), expected_improve=8.0, accept_ratio=0.45)
    assert info["accepted"] and info["backtracks"] == 2, info
    np.testing.assert_array_equal(x, [1.0])
    assert info["step_fraction"] == 0.25 and info["improvement"] == 1.0 and info["expected"] == 2.0


def test_line_search_never_accepts_a_point_without_improvement():
    """``improvement > 0`` is required even when ``accept_ratio * prediction <= 0``: with accept_ratio = 0, the
    point x = 2 of f(x) = -(x - 1)^2 from 0 along s = 4 (improvement exactly 0) is refused and k = 2 (x = 1) is
    taken."""
    f = lambda x: -np.sum((x - 1.0) ** 2)  # noqa: E731
    x, info = backtracking_line_search(f, np.zeros(1), np.array([4.0]), expected_improve=8.0, accept_ratio=0.0)
    assert info["accepted"] and info["backtracks"] == 2, info
    np.testing.assert_array_equal(x, [1.0])


def test_line_search_honours_the_constraint():
    f = lambda x: float(x[0])  # noqa: E731
    x, info = backtracking_line_search(f, np.zeros(1), np.array([1.0]), 1.0, constraint=lambda x: x[0] <= 0.3)
    assert info["accepted"] and x[0] <= 0.3 and info["backtracks"] == 2


def test_line_search_returns_original_point_when_nothing_is_acceptable():
    f = lambda x: -float(x @ x)  # noqa: E731  every step makes it worse
    x0 = np.array([0.5, -0.5])
    x, info = backtracking_line_search(f, x0, np.ones(2), 1.0, max_backtracks=5)
    assert not info["accepted"] and info["backtracks"] == 5
    np.testing.assert_array_equal(x, x0)
    for value in (np.nan, np.inf):
        x, info = backtracking_line_search(lambda x: value, x0, np.ones(2), 1.0, f0=0.0)
        assert not info["accepted"], f"an objective of {value} must not be accepted"


@given(spd_systems(), st.floats(1e-3, 0.1))
def test_natural_gradient_step(system, eps):
    F, g = system
    step, info = natural_gradient_step(F, g, eps, reg=0.0)
    assert info["ok"]
    np.testing.assert_allclose(step, np.sqrt(2 * eps / (g @ np.linalg.solve(F, g))) * np.linalg.solve(F, g),
                               rtol=1e-6, err_msg="sqrt(2 eps / g^T F^-1 g) F^-1 g")


def test_natural_gradient_step_of_a_stack_uses_each_agents_own_max_kl_and_reg():
    """A stack ``(S, p, p)`` is solved agent by agent, agent k with its own delta_k and reg_k: it equals agent k's
    step alone, ``1/2 s_k^T F_k s_k = delta_k``."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 4, 4))
    F, g = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(4), rng.standard_normal((3, 4))
    max_kl, reg = np.array([0.01, 0.04, 0.002]), np.array([0.0, 1e-2, 1e-1])
    step, info = natural_gradient_step(F, g, max_kl, reg)
    assert np.all(info["ok"])
    for k in range(3):
        np.testing.assert_allclose(step[k], natural_gradient_step(F[k], g[k], max_kl[k], reg[k])[0], rtol=1e-12,
                                   err_msg=f"agent {k} of the stack vs alone")
        np.testing.assert_allclose(0.5 * step[k] @ F[k] @ step[k], max_kl[k], rtol=1e-10, err_msg=f"agent {k}")


def test_natural_gradient_step_reports_indefinite_fisher():
    step, info = natural_gradient_step(-np.eye(3), np.ones(3), 0.01, reg=0.0)
    assert not info["ok"] and np.all(step == 0)


def test_adam_matches_its_update_rule_and_minimises():
    opt = Adam(2, lr=0.1)
    theta, g = np.zeros(2), np.array([1.0, -3.0])
    theta1, _ = opt.step(theta, g)
    np.testing.assert_allclose(theta1, -0.1 * np.sign(g), rtol=1e-5, err_msg="Adam's first step is lr * sign(g)")
    theta = np.array([5.0, -5.0])
    opt = Adam(2, lr=0.1)
    for _ in range(500):
        theta, _ = opt.step(theta, 2 * theta)
    assert np.all(np.abs(theta) < 0.05), theta


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_adam_refuses_a_non_finite_gradient_and_keeps_its_moments(bad):
    opt, theta = Adam(3, lr=0.1, max_grad_norm=1.0), np.ones(3)
    opt.step(theta, np.array([0.1, -0.2, 0.3]))
    before = opt.state()
    new_theta, info = opt.step(theta, np.array([0.1, bad, 0.3]))
    assert not np.any(np.isfinite(new_theta)) and not np.isfinite(info["grad_norm"])
    for key, value in opt.state().items():
        np.testing.assert_array_equal(value, before[key], err_msg=f"Adam's {key} changed after a {bad} gradient")


def test_rmsprop_matches_its_update_rule_and_minimises():
    opt = RMSprop(2, lr=0.1, alpha=0.99, eps=0.0)
    theta, g = np.zeros(2), np.array([1.0, -3.0])
    theta1, _ = opt.step(theta, g)  # v = 0.01 g^2, so the first step is lr * g / (0.1 |g|) = 10 lr sign(g)
    np.testing.assert_allclose(theta1, -np.sign(g), rtol=1e-12)
    theta2, _ = opt.step(theta1, g)  # v = (0.99 * 0.01 + 0.01) g^2
    np.testing.assert_allclose(theta2, theta1 - 0.1 * np.sign(g) / np.sqrt(0.0199), rtol=1e-12)
    b = RMSprop(2, lr=0.1, alpha=0.99, eps=0.0)
    b.load_state(opt.state())
    np.testing.assert_array_equal(b.step(theta2, g)[0], opt.step(theta2, g)[0])
    theta, opt = np.array([5.0, -5.0]), RMSprop(2, lr=0.01)
    for _ in range(2000):
        theta, _ = opt.step(theta, 2 * theta)
    assert np.all(np.abs(theta) < 0.05), theta


def test_rmsprop_adds_eps_to_the_root_of_the_square_average():
    """``theta - lr g / (sqrt(v) + eps)`` (torch's RMSprop), not ``g / sqrt(v + eps)``: with eps = 0.5 and g = (1, -3),
    v = 0.01 g^2 = (0.01, 0.09), so the first step is 0.1 (1 / 0.6, -3 / 0.8)."""
    opt = RMSprop(2, lr=0.1, alpha=0.99, eps=0.5)
    theta1, _ = opt.step(np.zeros(2), np.array([1.0, -3.0]))
    np.testing.assert_allclose(theta1, [-0.1 / 0.6, 0.3 / 0.8], rtol=1e-12)
    np.testing.assert_allclose(opt.state()["v"], [0.01, 0.09], rtol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rmsprop_refuses_a_non_finite_gradient_and_keeps_its_square_average(bad):
    opt, theta = RMSprop(3, lr=0.1), np.ones(3)
    opt.step(theta, np.array([0.1, -0.2, 0.3]))
    before = opt.state()
    new_theta, _ = opt.step(theta, np.array([0.1, bad, 0.3]))
    assert not np.all(np.isfinite(new_theta))
    for key, value in opt.state().items():
        np.testing.assert_array_equal(value, before[key], err_msg=f"RMSprop's {key} changed after a {bad} gradient")


def test_grad_norm_clipping():
    opt = SGD(lr=1.0, max_grad_norm=1.0)
    theta, info = opt.step(np.zeros(2), np.array([3.0, 4.0]))
    np.testing.assert_allclose(theta, [-0.6, -0.8], rtol=1e-9)
    assert info["grad_norm"] == 5.0


def test_adam_state_round_trip_gives_identical_steps():
    a, g = Adam(3, lr=0.01), np.array([0.1, -0.2, 0.3])
    a.step(np.zeros(3), g)
    b = Adam(3, lr=0.01)
    b.load_state(a.state())
    np.testing.assert_array_equal(a.step(np.ones(3), g)[0], b.step(np.ones(3), g)[0])


def test_learning_rate_schedule_hook_sets_lr_before_each_step():
    lrs = []
    opt = Adam(1, lr=1.0, lr_schedule=lambda t: 0.1 / t)
    for _ in range(3):
        lrs.append(opt.step(np.zeros(1), np.ones(1))[1]["lr"])
    assert lrs == [0.1, 0.05, 0.1 / 3]
    refused = Adam(1, lr=1.0, lr_schedule=lambda t: 0.1 / t)  # a refused first step leaves the next one step 1
    assert refused.step(np.zeros(1), np.array([np.nan]))[1]["lr"] == 0.1 and refused.t == 0
    stack = Adam((2, 1), lr=1.0, lr_schedule=lambda t: 0.1 / t)  # a stack: each agent at its own step
    stack.step(np.zeros((2, 1)), np.array([[1.0], [np.nan]]))
    np.testing.assert_array_equal(stack.step(np.zeros((2, 1)), np.ones((2, 1)))[1]["lr"], [0.05, 0.1])
    sgd = SGD(lr=1.0, lr_schedule=lambda t: 0.5**t)
    theta, info = sgd.step(np.zeros(1), np.ones(1))
    assert info["lr"] == 0.5 and theta[0] == -0.5
