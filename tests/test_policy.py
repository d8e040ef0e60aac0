"""Policy gradients, the Fisher-vector product and the Fisher matrices, against finite differences."""
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import assume, given, strategies as st

from npgrad.errors import SpaceError
from npgrad.heads import GaussianHead, GSDEHead
from npgrad.objectives import clipped_surrogate, mean_entropy, mean_kl, surrogate, value_loss, weighted_log_prob
from npgrad.policy import Policy, ValueFunction
from npgrad.testing import central_difference_gradient, directional_derivative, finite_arrays

RTOL, ATOL = 1e-5, 1e-7


@st.composite
def policy_cases(draw, kind=None):
    kind = kind or draw(st.sampled_from(["categorical", "gaussian", "multidiscrete", "multibinary"]))
    o = draw(st.integers(1, 4))
    hidden = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=2)))
    act_space = {"categorical": lambda: spaces.Discrete(draw(st.integers(2, 4))),
                 "gaussian": lambda: spaces.Box(-1.0, 1.0, (draw(st.integers(1, 3)),)),
                 "multidiscrete": lambda: spaces.MultiDiscrete(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))),
                 "multibinary": lambda: spaces.MultiBinary(draw(st.integers(1, 3)))}[kind]()
    pol = Policy(spaces.Box(-np.inf, np.inf, (o,)), act_space, hidden, rng=draw(st.integers(0, 2**16)),
                 log_std_init=draw(st.floats(-1.0, 0.5)), value_output=draw(st.booleans()))  # a shared trunk, or not
    pol.theta = pol.theta + draw(finite_arrays((pol.num_params,), -0.5, 0.5))  # leave the near-zero head init
    n = draw(st.integers(1, 5))
    obs = draw(finite_arrays((n, o)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dist = pol.distribution(obs)
    act = dist.sample(rng)
    adv = rng.standard_normal(n)
    logp_old = dist.log_prob(act) + 0.3 * rng.standard_normal(n)  # ratios away from 1
    return pol, obs, act, adv, logp_old, rng


def fd_grad(pol, fn):
    """Central differences of ``fn(theta_p)`` at the policy's parameters: the parameters are an argument."""
    return central_difference_gradient(fn, pol.theta)


def assert_close(analytic, numeric, what, pol, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                               err_msg=f"{what} ({type(pol.head).__name__}, sizes {pol.net.sizes})")


@given(policy_cases())
def test_weighted_log_prob_gradient(case):
    pol, obs, act, adv, _, _ = case
    value, g = pol.objective_grad(obs, weighted_log_prob, act, adv)
    assert_close(value, adv @ pol.log_prob(obs, act), "weighted log-prob value", pol)
    assert_close(g, fd_grad(pol, lambda th: adv @ pol.log_prob(obs, act, th)), "grad sum w log pi", pol)


@given(policy_cases())
def test_surrogate_gradient(case):
    pol, obs, act, adv, logp_old, _ = case
    _, g = pol.objective_grad(obs, surrogate, act, adv, logp_old)
    numeric = fd_grad(pol, lambda th: np.mean(np.exp(pol.log_prob(obs, act, th) - logp_old) * adv))
    assert_close(g, numeric, "grad mean(r A)", pol)


@given(policy_cases(), st.floats(0.05, 0.4))
def test_clipped_surrogate_gradient_away_from_kinks(case, eps):
    pol, obs, act, adv, logp_old, _ = case
    r = np.exp(pol.log_prob(obs, act) - logp_old)
    assume(np.min(np.abs(np.abs(r - 1.0) - eps)) > 1e-3)  # the objective has kinks at r = 1 +- eps

    def objective(theta_p=None):
        r = np.exp(pol.log_prob(obs, act, theta_p) - logp_old)
        return np.mean(np.minimum(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv))

    value, g = pol.objective_grad(obs, clipped_surrogate, act, adv, logp_old, eps)
    assert_close(value, objective(), "clipped surrogate value", pol)
    assert_close(g, fd_grad(pol, objective), "grad clipped surrogate", pol)


def test_clipped_surrogate_flat_where_clip_is_active():
    """r = 2 with A > 0 (clipped from above) and r = 0.5 with A < 0 (clipped from below): no gradient."""
    from npgrad.distributions import Categorical
    dist = Categorical(np.zeros((2, 2)))
    act = np.array([0, 1])
    logp_old = dist.log_prob(act) - np.log([2.0, 0.5])
    value, cot, frac = clipped_surrogate(dist, act, np.array([1.0, -1.0]), logp_old, 0.2)
    np.testing.assert_allclose(cot[0], 0.0, atol=0, err_msg="clipped branch must have zero gradient")
    np.testing.assert_allclose(value, np.mean([1.2, -0.8]), rtol=1e-12)
    assert frac == 1.0


@given(policy_cases())
def test_entropy_gradient(case):
    pol, obs, *_ = case
    _, g = pol.objective_grad(obs, mean_entropy)
    assert_close(g, fd_grad(pol, lambda th: pol.distribution(obs, th).entropy().mean()), "grad mean entropy", pol)


@given(policy_cases())
def test_kl_gradient(case):
    pol, obs, _, _, _, rng = case
    old = pol.distribution(obs, pol.theta + 0.3 * rng.standard_normal(pol.num_params))
    _, g = pol.objective_grad(obs, lambda dist: mean_kl(old, dist))
    assert_close(g, fd_grad(pol, lambda th: old.kl(pol.distribution(obs, th)).mean()), "grad mean KL(old||new)", pol)


@given(policy_cases())
def test_fvp_matches_finite_difference_hessian_of_kl(case):
    """F v == d/dt grad KL(pi_old || pi_{theta + t v}) at t = 0 (a finite-difference Hessian)."""
    pol, obs, _, _, _, rng = case
    v_p = rng.standard_normal(pol.num_params)
    old = pol.distribution(obs)
    numeric = directional_derivative(lambda th: pol.objective_grad(obs, lambda dist: mean_kl(old, dist), theta_p=th)[1], pol.theta, v_p, h=1e-5)
    assert_close(pol.fisher_vector_product(obs, v_p), numeric, "FVP vs FD Hessian of KL", pol, atol=1e-6)
    np.testing.assert_allclose(pol.fisher_vector_product(obs, v_p, damping=0.1),
                               pol.fisher_vector_product(obs, v_p) + 0.1 * v_p, rtol=1e-12, atol=1e-14)


@given(policy_cases())
def test_fisher_matrix_is_symmetric_psd_and_matches_fvp(case):
    pol, obs, _, _, _, rng = case
    F_pp = pol.fisher_matrix(obs)
    v_p = rng.standard_normal(pol.num_params)
    assert_close(F_pp @ v_p, pol.fisher_vector_product(obs, v_p), "explicit F v vs FVP", pol, rtol=1e-9,
                 atol=1e-12)
    np.testing.assert_array_equal(F_pp, F_pp.T, err_msg="Fisher not symmetric")
    eig = np.linalg.eigvalsh(F_pp)
    assert eig.min() >= -1e-10 * max(1.0, eig.max()), f"Fisher not PSD: min eigenvalue {eig.min()}"


@given(policy_cases(kind="categorical"))
def test_empirical_fisher_averages_to_exact_fisher(case):
    """sum_a pi(a|s) s(a) s(a)^T over every action is the exact Fisher (categorical, enumerated)."""
    pol, obs, *_ = case
    probs_na = pol.distribution(obs).p_na
    F_pp = np.zeros((pol.num_params, pol.num_params))
    for a in range(pol.act_dim):
        S_np = pol.scores(obs, np.full(len(obs), a))
        F_pp += (S_np.T * probs_na[:, a]) @ S_np / len(obs)
    np.testing.assert_allclose(F_pp, pol.fisher_matrix(obs), rtol=1e-8, atol=1e-11,
                               err_msg="enumerated score outer products vs J^T M J")


@given(policy_cases())
def test_empirical_fisher_is_mean_score_outer_product(case):
    pol, obs, act, *_ = case
    S = np.array([pol.objective_grad(obs[i:i + 1], weighted_log_prob, act[i:i + 1], np.ones(1))[1] for i in range(len(obs))])
    np.testing.assert_allclose(pol.empirical_fisher(obs, act), S.T @ S / len(obs), rtol=1e-10, atol=1e-12,
                               err_msg="empirical Fisher vs one-sample gradients")


def reference_value_loss(v_n, ret_n, v_old_n, clip_vf, u_n=None):
    """The value loss written out row by row, as the formula reads (weighted by ``u``, if given)."""
    rows = []
    for v, r, v_old in zip(v_n, ret_n, v_old_n):
        v_clip = v_old + min(max(v - v_old, -clip_vf), clip_vf)
        rows.append(max((v - r) ** 2, (v_clip - r) ** 2) if clip_vf > 0 else (v - r) ** 2)
    return float(np.mean(rows)) if u_n is None else float(u_n @ rows)


def away_from_kinks(v_n, ret_n, v_old_n, clip_vf, margin=1e-3):
    """No row within ``margin`` of the clip's kinks ``|V - V_old| = c`` or of the max's tie."""
    d_n = v_n - v_old_n
    sq_n, sq_clipped_n = (v_n - ret_n) ** 2, (v_old_n + np.clip(d_n, -clip_vf, clip_vf) - ret_n) ** 2
    tie_n = (np.abs(sq_n - sq_clipped_n) < margin) & (np.abs(d_n) > clip_vf)
    return bool(np.all(np.abs(np.abs(d_n) - clip_vf) > margin) and not tie_n.any())


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(*[finite_arrays((n,)) for _ in range(3)])),
       st.sampled_from([0.0, 0.1, 0.5, 2.0]))
def test_value_loss_and_its_gradient_in_v(arrays, clip_vf):
    v_n, ret_n, v_old_n = arrays
    assume(away_from_kinks(v_n, ret_n, v_old_n, clip_vf))
    loss, v_bar_n = value_loss(v_n, ret_n, v_old_n, clip_vf)
    np.testing.assert_allclose(loss, reference_value_loss(v_n, ret_n, v_old_n, clip_vf), rtol=1e-12, atol=1e-12)
    numeric = central_difference_gradient(lambda v: reference_value_loss(v, ret_n, v_old_n, clip_vf), v_n)
    np.testing.assert_allclose(v_bar_n, numeric, rtol=RTOL, atol=ATOL, err_msg=f"dL/dV, clip_vf={clip_vf}")


def test_clipped_value_gradient_is_the_plain_one_inside_the_clip_range():
    """Inside ``|V - V_old| <= c``, ``V_old + (V - V_old)`` can round to a float just past ``V``; the
    clipped square then wins the max by an ulp, and must not zero that row's gradient."""
    rng = np.random.default_rng(0)
    v_n, ret_n = 0.1 * rng.standard_normal(4096), rng.standard_normal(4096)
    v_old_n = v_n + rng.uniform(-0.19, 0.19, 4096)
    rounded_n = (v_old_n + (v_n - v_old_n) - ret_n) ** 2 > (v_n - ret_n) ** 2
    assert rounded_n.any(), "the rounding this test guards against did not occur"
    _, v_bar_n = value_loss(v_n, ret_n, v_old_n, clip_vf=0.2)
    np.testing.assert_array_equal(v_bar_n, value_loss(v_n, ret_n)[1])


@given(st.integers(1, 4), st.lists(st.integers(1, 5), max_size=2), st.integers(1, 6), st.integers(0, 2**16),
       st.sampled_from([0.0, 0.3]))
def test_value_loss_gradient_through_the_network(o, hidden, n, seed, clip_vf):
    rng = np.random.default_rng(seed)
    vf = ValueFunction(o, tuple(hidden), rng=seed)
    obs, target = rng.standard_normal((n, o)), rng.standard_normal(n)
    v_old = vf(obs) + rng.uniform(-1.0, 1.0, n)
    assume(away_from_kinks(vf(obs), target, v_old, clip_vf))
    loss, g = vf.loss_grad(obs, target, v_old, clip_vf)

    def f(phi_p):
        return reference_value_loss(vf(obs, phi_p), target, v_old, clip_vf)

    numeric = central_difference_gradient(f, vf.theta)
    np.testing.assert_allclose(loss, f(vf.theta), rtol=1e-12)
    np.testing.assert_allclose(g, numeric, rtol=RTOL, atol=ATOL, err_msg=f"grad of the value loss, clip_vf={clip_vf}")


# --- row weights: means over a rollout's transitions, its reset steps weighing 0 --------------------------


@st.composite
def row_weights_for(draw, n):
    """Weights ``u`` summing to 1 over ``n`` rows, some 0 (a rollout's reset steps) and the others unequal."""
    valid = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    valid[draw(st.integers(0, n - 1))] = True
    w_n = valid * draw(finite_arrays((n,), 0.1, 1.0))
    return w_n / w_n.sum()


@st.composite
def weighted_cases(draw, kind=None):
    """A policy case (``policy_cases``) and row weights ``u`` for its batch."""
    case = draw(policy_cases(kind))
    return (*case, draw(row_weights_for(len(case[1]))))


@given(weighted_cases(), st.floats(0.05, 0.4))
def test_weighted_objectives_gradients(case, eps):
    """With row weights, every objective is ``sum_i u_i f_i`` and its gradient that sum's: surrogate, clipped
    surrogate (away from its kinks) with its clip fraction, entropy, and KL(old || new) (off theta_old)."""
    pol, obs, act, adv, logp_old, rng, u_n = case
    r_n = np.exp(pol.log_prob(obs, act) - logp_old)
    old = pol.distribution(obs, pol.theta + 0.3 * rng.standard_normal(pol.num_params))

    def ratio(th):
        return np.exp(pol.log_prob(obs, act, th) - logp_old)

    references = {
        "surrogate": (lambda th: u_n @ (ratio(th) * adv), surrogate, (act, adv, logp_old, u_n)),
        "entropy": (lambda th: u_n @ pol.distribution(obs, th).entropy(), mean_entropy, (u_n,)),
        "KL(old || new)": (lambda th: u_n @ old.kl(pol.distribution(obs, th)), lambda d, u: mean_kl(old, d, u), (u_n,)),
    }
    if np.min(np.abs(np.abs(r_n - 1.0) - eps)) > 1e-3:  # the clipped objective has kinks at r = 1 +- eps
        references["clipped surrogate"] = (
            lambda th: u_n @ np.minimum(ratio(th) * adv, np.clip(ratio(th), 1 - eps, 1 + eps) * adv),
            clipped_surrogate, (act, adv, logp_old, eps, u_n))
        assert clipped_surrogate(pol.distribution(obs), act, adv, logp_old, eps, u_n)[2] == \
            pytest.approx(u_n @ (np.abs(r_n - 1.0) > eps), rel=1e-12, abs=0), "weighted clip fraction"
    for what, (reference, objective, args) in references.items():
        value, g = pol.objective_grad(obs, objective, *args)
        assert_close(value, reference(pol.theta), f"weighted {what}", pol, rtol=1e-12, atol=1e-12)
        assert_close(g, fd_grad(pol, reference), f"grad of the weighted {what}", pol)


@given(weighted_cases())
def test_weighted_fvp_matches_finite_difference_hessian_of_the_weighted_kl(case):
    """``F_u v = d/dt grad sum_i u_i KL_i(pi_old || pi_{theta + t v})``; the explicit ``F_u`` agrees, damping adds."""
    pol, obs, _, _, _, rng, u_n = case
    v_p = rng.standard_normal(pol.num_params)
    old = pol.distribution(obs)
    numeric = directional_derivative(
        lambda th: pol.objective_grad(obs, lambda dist: mean_kl(old, dist, u_n), theta_p=th)[1], pol.theta, v_p, h=1e-5)
    fvp_p = pol.fisher_vector_product(obs, v_p, u_n=u_n)
    assert_close(fvp_p, numeric, "weighted FVP vs FD Hessian of the weighted KL", pol, atol=1e-6)
    assert_close(pol.fisher_matrix(obs, u_n=u_n) @ v_p, fvp_p, "explicit weighted F v vs FVP", pol, rtol=1e-9,
                 atol=1e-12)
    np.testing.assert_allclose(pol.fisher_vector_product(obs, v_p, damping=0.1, u_n=u_n), fvp_p + 0.1 * v_p,
                               rtol=1e-12, atol=1e-14)


@given(weighted_cases())
def test_weighted_empirical_fisher_is_the_weighted_score_outer_product(case):
    pol, obs, act, *_, u_n = case
    S = np.array([pol.objective_grad(obs[i:i + 1], weighted_log_prob, act[i:i + 1], np.ones(1))[1]
                  for i in range(len(obs))])
    np.testing.assert_allclose(pol.empirical_fisher(obs, act, u_n=u_n), (S.T * u_n) @ S, rtol=1e-10, atol=1e-12,
                               err_msg="weighted empirical Fisher vs one-sample gradients")


@given(st.integers(1, 4), st.lists(st.integers(1, 5), max_size=2), st.integers(1, 6).flatmap(
    lambda n: st.tuples(st.just(n), row_weights_for(n))), st.integers(0, 2**16), st.sampled_from([0.0, 0.3]))
def test_weighted_value_loss_gradient_through_the_network(o, hidden, n_u, seed, clip_vf):
    (n, u_n), rng = n_u, np.random.default_rng(seed)
    vf = ValueFunction(o, tuple(hidden), rng=seed)
    obs, target = rng.standard_normal((n, o)), rng.standard_normal(n)
    v_old = vf(obs) + rng.uniform(-1.0, 1.0, n)
    assume(away_from_kinks(vf(obs), target, v_old, clip_vf))
    loss, g = vf.loss_grad(obs, target, v_old, clip_vf, u_n=u_n)

    def f(phi_p):
        return reference_value_loss(vf(obs, phi_p), target, v_old, clip_vf, u_n)

    np.testing.assert_allclose(loss, f(vf.theta), rtol=1e-12)
    np.testing.assert_allclose(g, central_difference_gradient(f, vf.theta), rtol=RTOL, atol=ATOL,
                               err_msg=f"grad of the weighted value loss, clip_vf={clip_vf}")


def test_log_std_and_gsdes_log_scales_are_kept_within_minus_5_and_2():
    """sigma within [exp(-5), exp(2)] = [0.0067, 7.4]: 1 / sigma^2 in the Fisher metric stays finite."""
    for head in (GaussianHead(spaces.Box(-1, 1, (4,))), GSDEHead(spaces.Box(-1, 1, (2,)), 2)):
        np.testing.assert_array_equal(head.project(np.array([-50.0, -5.0, 2.0, 2.5])), [-5.0, -5.0, 2.0, 2.0])


def test_log_std_is_part_of_theta():
    pol = Policy(spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (2,)), (8,), log_std_init=-0.5, rng=0)
    np.testing.assert_array_equal(pol.theta[-2:], [-0.5, -0.5])
    pol.theta = np.zeros(pol.num_params)
    np.testing.assert_array_equal(pol.distribution(np.ones((1, 3))).std_na, [[1.0, 1.0]])


@pytest.mark.parametrize("obs_space, act_space, match", [
    (spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([[2, 3], [2, 2]]), "MultiDiscrete"),
    (spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 3], start=[0, 1]), "starts at"),
    (spaces.Box(-1, 1, (3,)), spaces.MultiBinary([2, 2]), "MultiBinary"),
    (spaces.Box(0, 255, (8, 8, 3)), spaces.Discrete(2), "FlattenObservation"),
    (spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "image": spaces.Box(0, 255, (8, 8))}), spaces.Discrete(2),
     "observation space Box"),
    (spaces.Box(-1, 1, (3,)), spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2))), "Tuple"),
    (spaces.Text(5), spaces.Discrete(2), "observation space Text"),
    (spaces.Box(-1, 1, (3,)), spaces.Discrete(3, start=1), "starts at 1: npgrad needs actions 0..n-1"),
])
def test_unsupported_spaces_name_the_space(obs_space, act_space, match):
    with pytest.raises(SpaceError, match=match):
        Policy(obs_space, act_space)


def test_wrong_observation_shape_is_named():
    pol = Policy(spaces.Box(-1, 1, (3,)), spaces.Discrete(2), rng=0)
    with pytest.raises(ValueError, match=r"observations must have shape \(n, 3\)"):
        pol.distribution(np.zeros((2, 4)))
