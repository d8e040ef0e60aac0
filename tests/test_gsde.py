"""gSDE: the log-sigma map's vjp/jvp, the policy's derivatives with the features held fixed (the
stop-gradient they are defined with), the exploration noise's variance, and the rollout's schedule."""
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, strategies as st

import npgrad
from npgrad import gsde
from npgrad.distributions import DiagGaussian
from npgrad.errors import SpaceError
from npgrad.heads import GSDEHead
from npgrad.policy import Policy
from npgrad.testing import central_difference_gradient, check_jvp, check_vjp, directional_derivative, finite_arrays

RTOL, ATOL = 1e-5, 1e-7


@st.composite
def phi_and_lambda(draw):
    n, f, a = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    return draw(finite_arrays((n, f), -2.0, 2.0)), draw(finite_arrays((f, a), -2.0, 1.0))


@given(phi_and_lambda(), st.integers(0, 2**16))
def test_log_sigma_vjp_and_jvp_match_finite_differences(case, seed):
    phi_nf, log_std_fa = case
    log_sigma = lambda lam: gsde.log_sigma(phi_nf, lam)  # noqa: E731
    check_vjp(log_sigma, lambda lam, bar: gsde.log_sigma_vjp(phi_nf, lam, log_sigma(lam), bar), log_std_fa,
              rtol=RTOL, atol=ATOL, rng=seed, name="log sigma vjp")
    check_jvp(log_sigma, lambda lam, dot: gsde.log_sigma_jvp(phi_nf, lam, log_sigma(lam), dot), log_std_fa,
              rtol=RTOL, atol=ATOL, rng=seed, name="log sigma jvp")


def test_log_sigma_is_the_noise_std_and_includes_eps():
    phi_nf, log_std_fa = np.array([[3.0, 4.0], [0.0, 0.0]]), np.zeros((2, 1))
    np.testing.assert_allclose(np.exp(gsde.log_sigma(phi_nf, log_std_fa)), [[np.sqrt(25 + 1e-6)], [1e-3]], rtol=1e-12)


@st.composite
def sde_policies(draw):
    o, a = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    hidden = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    pol = Policy(spaces.Box(-np.inf, np.inf, (o,)), spaces.Box(-1.0, 1.0, (a,)), hidden, sde=True,
                 rng=draw(st.integers(0, 2**16)), log_std_init=draw(st.floats(-1.5, 0.0)))
    pol.theta = pol.theta + draw(finite_arrays((pol.num_params,), -0.5, 0.5))
    n = draw(st.integers(1, 4))
    obs_no = draw(finite_arrays((n, o), -2.0, 2.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    fwd = pol.forward(obs_no)
    return pol, obs_no, fwd.features_nf, pol.sample(fwd, rng), rng


def frozen(pol, obs_no, phi_nf, fn):
    """``fn(dist)`` as a function of theta with the gSDE features fixed at ``phi_nf``."""
    return lambda theta_p: fn(pol.forward(obs_no, theta_p, phi_nf).dist)


@given(sde_policies())
def test_policy_log_prob_gradient_with_features_held_fixed(case):
    pol, obs_no, phi_nf, act_na, rng = case
    w_n = rng.standard_normal(len(obs_no))
    fwd = pol.forward(obs_no)
    g_p = pol.vjp(fwd, tuple(w_n[:, None] * d for d in fwd.dist.dlog_prob(act_na)))
    numeric = central_difference_gradient(frozen(pol, obs_no, phi_nf, lambda d: w_n @ d.log_prob(act_na)), pol.theta)
    np.testing.assert_allclose(g_p, numeric, rtol=RTOL, atol=ATOL, err_msg="grad sum w log pi (gSDE)")


@given(sde_policies())
def test_policy_jvp_is_the_derivative_of_mean_and_log_sigma(case):
    pol, obs_no, phi_nf, _, rng = case
    v_p = rng.standard_normal(pol.num_params)
    mean_dot, log_sigma_dot = pol.jvp(pol.forward(obs_no), v_p)
    for k, (name, analytic) in enumerate((("mean", mean_dot), ("log sigma", log_sigma_dot))):
        numeric = directional_derivative(frozen(pol, obs_no, phi_nf, lambda d: d.params[k]), pol.theta, v_p)
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=f"d {name} (gSDE jvp)")


@given(sde_policies())
def test_fvp_is_the_hessian_of_kl_with_features_held_fixed(case):
    pol, obs_no, phi_nf, _, rng = case
    old = pol.distribution(obs_no)
    v_p = rng.standard_normal(pol.num_params)

    def kl_grad(theta_p):
        fwd = pol.forward(obs_no, theta_p, phi_nf)
        return pol.vjp(fwd, tuple(d / len(obs_no) for d in old.dkl(fwd.dist)))

    np.testing.assert_allclose(kl_grad(pol.theta), 0.0, atol=1e-10, err_msg="KL gradient at theta_old")
    numeric = directional_derivative(kl_grad, pol.theta, v_p, h=1e-5)
    # phi = 0 leaves sigma = sqrt(eps) = 1e-3 and entries of F of 1e6: atol is relative to the largest entry
    np.testing.assert_allclose(pol.fisher_vector_product(obs_no, v_p), numeric, rtol=1e-5,
                               atol=1e-6 * max(1.0, np.abs(numeric).max()), err_msg="gSDE FVP vs FD Hessian of KL")


@given(sde_policies())
def test_scores_are_one_sample_gradients(case):
    pol, obs_no, phi_nf, act_na, _ = case
    S_np = pol.scores(obs_no, act_na)
    for i in range(len(obs_no)):
        numeric = central_difference_gradient(
            frozen(pol, obs_no[i:i + 1], phi_nf[i:i + 1], lambda d: d.log_prob(act_na[i:i + 1])[0]), pol.theta)
        np.testing.assert_allclose(S_np[i], numeric, rtol=RTOL, atol=ATOL, err_msg=f"score of row {i} (gSDE)")


def test_noise_has_variance_sigma_squared():
    rng = np.random.default_rng(0)
    phi_nf, log_std_fa = rng.standard_normal((3, 4)), rng.uniform(-1.0, 0.5, (4, 2))
    draws = 40_000
    eps_dna = np.stack([gsde.noise(phi_nf, gsde.sample_exploration(log_std_fa, 3, rng)) for _ in range(draws)])
    var_na = np.exp(2 * gsde.log_sigma(phi_nf, log_std_fa)) - gsde.EPS
    # the sample variance of 40k normal draws is within 4 * sqrt(2 / 40k) = 2.8% of the truth
    np.testing.assert_allclose(eps_dna.var(axis=0), var_na, rtol=0.03)
    np.testing.assert_allclose(eps_dna.mean(axis=0), 0.0, atol=4 * np.sqrt(var_na.max() / draws))


def test_sample_adds_features_times_the_given_exploration_matrix():
    pol = Policy(spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (2,)), (5,), sde=True, rng=0)
    rng = np.random.default_rng(1)
    fwd = pol.forward(rng.standard_normal((4, 3)))
    explore_nfa = pol.exploration(4, rng)
    expected = fwd.dist.mean_na + np.einsum("nf,nfa->na", fwd.features_nf, explore_nfa)
    np.testing.assert_allclose(pol.sample(fwd, rng, explore_nfa), expected, rtol=1e-12)
    assert pol.head.shape == (5, 2) and pol.num_params == pol.num_net_params + 10


@pytest.mark.parametrize("n_steps, freq, draws", [(10, 4, 3), (8, 4, 2), (5, 1, 5), (6, 100, 1)])
def test_rollout_draws_exploration_every_sde_sample_freq_steps(n_steps, freq, draws, monkeypatch):
    agent = npgrad.PPO("Pendulum-v1", seed=0, use_sde=True, sde_sample_freq=freq, n_envs=2, n_steps=n_steps,
                       minibatch_size=8)
    calls = []
    original = agent.policy.exploration
    monkeypatch.setattr(agent.policy, "exploration", lambda n, rng: calls.append(n) or original(n, rng))
    traj = agent.rollout.collect(agent.policy, agent.rng)
    assert calls == [2] * draws
    np.testing.assert_allclose(agent.policy.log_prob(traj.obs_teo[:-1].reshape(-1, 3), traj.act_te.reshape(-1, 1)),
                               traj.logp_te.ravel(), rtol=1e-5, atol=1e-5)


def test_rollout_holds_each_environments_own_exploration_matrix_between_draws():
    """gSDE's noise: ``a_t - mu(s_t) = phi(s_t) E_e`` with environment e's own matrix E_e, the same for every step
    until the next draw (every ``sde_sample_freq`` steps)."""
    agent = npgrad.PPO("Pendulum-v1", seed=0, use_sde=True, sde_sample_freq=4, n_envs=2, n_steps=8, minibatch_size=16)
    drawn, draw = [], agent.policy.exploration
    agent.policy.exploration = lambda n, rng: drawn.append(draw(n, rng)) or drawn[-1]
    traj = agent.rollout.collect(agent.policy, agent.rng)
    assert len(drawn) == 2 and not np.allclose(drawn[0][0], drawn[0][1]), "one matrix per environment"
    for t in range(8):
        fwd = agent.policy.forward(traj.obs_teo[t])
        noise_ea = np.einsum("ef,efa->ea", fwd.features_nf, drawn[t // 4])
        np.testing.assert_allclose(traj.act_te[t] - fwd.dist.mean_na, noise_ea, rtol=1e-9, atol=1e-12,
                                   err_msg=f"step {t}: the noise is not phi times the matrix drawn at step {4 * (t // 4)}")


def test_sde_needs_a_box_action_space():
    with pytest.raises(SpaceError, match="use_sde"):
        npgrad.PPO("CartPole-v1", use_sde=True)


def test_sde_agent_saves_and_loads(tmp_path):
    agent = npgrad.PPO("Pendulum-v1", seed=3, use_sde=True, n_steps=16, n_envs=2, minibatch_size=16)
    agent.learn(64)
    agent.save(tmp_path / "sde")
    loaded = npgrad.load(tmp_path / "sde")
    obs = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(loaded.policy.theta, agent.policy.theta)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])
    assert isinstance(loaded.policy.distribution(obs), DiagGaussian) and isinstance(loaded.policy.head, GSDEHead)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_gradcheck_table_passes_with_sde(algo):
    from npgrad.gradcheck import gradcheck
    checks = gradcheck(algo, "Pendulum-v1", batch=8, hidden=(8, 8), vf_hidden=(8, 8), use_sde=True,
                       log_std_init=-1.0)
    assert len(checks) == 8 and all(c.ok for c in checks), [c for c in checks if not c.ok]


@given(phi_and_lambda())
def test_log_sigma_jacobian_matches_finite_differences(case):
    phi_nf, log_std_fa = case
    w_nfa = gsde.log_sigma_jacobian(phi_nf, log_std_fa, gsde.log_sigma(phi_nf, log_std_fa))
    for n in range(len(phi_nf)):
        for a in range(log_std_fa.shape[1]):
            numeric_fa = central_difference_gradient(lambda lam: gsde.log_sigma(phi_nf, lam)[n, a], log_std_fa)
            np.testing.assert_allclose(w_nfa[n, :, a], numeric_fa[:, a], rtol=RTOL, atol=ATOL,
                                       err_msg=f"w[{n}, :, {a}]")
            others = np.arange(log_std_fa.shape[1]) != a  # log sigma_a depends on column a of Lambda only
            np.testing.assert_allclose(numeric_fa[:, others], 0.0, atol=ATOL)
