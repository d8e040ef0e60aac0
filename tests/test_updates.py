"""What one update guarantees: each algorithm's rule, run once on a fixed batch, checked against the maths.

Every test builds a small float64 agent, trains it a little (so the policy is not at its
initialisation), collects one batch with ``estimate`` and calls ``agent.rule.update`` once. The
expected parameters are recomputed here from the distributions and gradients at ``theta_old``,
never read from the update's ``info``. Adam steps are written out by hand (Kingma & Ba 2015,
Algorithm 1) rather than taken from ``npgrad.solvers.Adam``.
"""
import copy
import dataclasses

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import assume, given, strategies as st

import npgrad
from npgrad.algos.common import explained_variance, minibatches, shared_trunk_loss, standardize
from npgrad.objectives import add, clipped_surrogate, mean_entropy, scale, surrogate, weighted_log_prob
from npgrad.policy import Policy
from npgrad.solvers import conjugate_gradient, trust_region_step
from npgrad.testing import central_difference_gradient, finite_arrays
from npgrad.train import estimate

ENVS = ["CartPole-v1", "Pendulum-v1"]  # categorical; Gaussian (gSDE in the tuned defaults of all but VPG)
BETAS, ADAM_EPS = (0.9, 0.999), 1e-5  # npgrad's Adam: eps = 1e-5 as SB3 / CleanRL


def make_agent(algo, env_id, learn=512, **overrides):
    """A small float64 agent of ``algo`` on ``env_id`` (its tuned defaults), trained for ``learn`` steps."""
    agent = algo(env_id, seed=0, n_envs=4, n_steps=64, dtype="float64", **overrides)
    if learn:
        agent.learn(learn)
    return agent


def collect(agent, seed=1):
    """One fresh batch from the agent's current policy and value function, and the generator the update gets."""
    rng = np.random.default_rng(seed)
    batch = estimate(agent.rollout.collect(agent.policy, rng), agent.value_fn, agent.config.gamma, agent.config.lam)
    return batch, rng


def transitions(batch):
    """The batch's transitions alone: its reset steps, which weigh 0 in every mean an update takes, dropped."""
    v = batch.valid_n
    return dataclasses.replace(batch, obs_no=batch.obs_no[v], act=batch.act[v], logp_n=batch.logp_n[v],
                               val_n=batch.val_n[v], adv_n=batch.adv_n[v], ret_n=batch.ret_n[v], valid_n=v[v])


def fresh_rule(agent):
    """A new update rule for the trained model: its optimisers are at t = 0, so the next step is Adam's first."""
    agent.rule = type(agent.rule)(agent.config, agent.model)
    return agent.rule


def standardised(adv_n):
    """``(A - mean A) / (std A + 1e-8)``, as the rules standardise a batch (or minibatch) of advantages."""
    return (adv_n - adv_n.mean()) / (adv_n.std() + 1e-8)


def rule_advantages(batch, cfg):
    return standardised(batch.adv_n) if cfg.normalize_advantages else batch.adv_n


def hand_adam_first_step(theta_p, grad_p, lr, max_grad_norm=None):
    """Adam's first step (t = 1) on a loss with gradient ``grad_p``, after global-norm clipping:
    ``m = (1-b1) g, v = (1-b2) g^2, m_hat = m / (1-b1), v_hat = v / (1-b2), theta - lr m_hat / (sqrt(v_hat) + eps)``."""
    norm = np.sqrt(np.sum(grad_p**2))
    g = grad_p * (max_grad_norm / norm) if max_grad_norm is not None and norm > max_grad_norm else grad_p
    b1, b2 = BETAS
    m, v = (1 - b1) * g, (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**1), v / (1 - b2**1)
    return theta_p - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)


def assert_same_step(theta_new, theta_expected, theta_old, what, rtol=1e-8, atol=1e-14):
    """Compare steps ``theta - theta_old`` (not parameters), so an error the size of a step is not hidden."""
    np.testing.assert_allclose(theta_new - theta_old, theta_expected - theta_old, rtol=rtol, atol=atol,
                               err_msg=what)


# --- TRPO ---------------------------------------------------------------------------------------------


def surrogate_at(policy, t, adv_n, theta_p):
    """``L(theta) = mean(pi_theta(a|s) / pi_old(a|s) A)`` (TRPO eq. 14)."""
    return np.mean(np.exp(policy.log_prob(t.obs_no, t.act, theta_p) - t.logp_n) * adv_n)


def mean_kl_at(policy, old, t, theta_p):
    """``mean KL(pi_old || pi_theta)`` over the batch's states (TRPO eq. 12)."""
    return float(old.kl(policy.distribution(t.obs_no, theta_p)).mean())


# (env, max_kl, accept_ratio, what the line search does from that trained policy)
TRPO_CASES = [("CartPole-v1", 0.01, 0.1, "full step"), ("Pendulum-v1", 0.01, 0.1, "full step"),
              ("CartPole-v1", 5.0, 0.1, "backtracks"),  # the full step's mean KL is above max_kl
              ("Pendulum-v1", 1.0, 0.1, "backtracks"),  # the full step lowers the surrogate
              ("CartPole-v1", 0.01, 1e3, "rejects"), ("Pendulum-v1", 0.01, 1e3, "rejects")]


@pytest.mark.parametrize("env_id, max_kl", [case[:2] for case in TRPO_CASES if case[3] != "rejects"])
def test_trpo_accepted_step_is_in_the_trust_region_and_improves_enough(env_id, max_kl):
    """TRPO (Schulman et al. 2015, eq. 12-14 and App. C): the step s = theta_new - theta_old that the line
    search accepts satisfies

        mean KL(pi_old || pi_new) <= delta,
        L(theta_new) - L(theta_old) > 0  and  >= accept_ratio * g . s,      g = grad L(theta_old),

    where L is the surrogate on the advantages the rule uses (standardised) and g . s is the linear
    prediction ``g . full_step * step_fraction``."""
    agent = make_agent(npgrad.TRPO, env_id, max_kl=max_kl)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy = agent.config, agent.policy
    adv_n, theta_old = rule_advantages(t, cfg), policy.theta.copy()
    old = policy.distribution(t.obs_no)
    _, g_p = policy.objective_grad(t.obs_no, surrogate, t.act, adv_n, t.logp_n)

    agent.rule.update(agent.model, batch, rng, 1.0)
    s_p = policy.theta - theta_old
    assert np.any(s_p != 0), f"{env_id}: the line search accepted nothing, so this test checks nothing"
    kl = mean_kl_at(policy, old, t, policy.theta)
    assert kl <= cfg.max_kl, f"{env_id}: mean KL(old || new) = {kl} > max_kl = {cfg.max_kl}"
    improvement = surrogate_at(policy, t, adv_n, policy.theta) - surrogate_at(policy, t, adv_n, theta_old)
    expected = float(g_p @ s_p)
    assert expected > 0, f"{env_id}: the step is not an ascent direction of the surrogate (g . s = {expected})"
    assert improvement > 0 and improvement >= cfg.accept_ratio * expected, \
        f"{env_id}: surrogate improved by {improvement}, less than {cfg.accept_ratio} x predicted {expected}"


def trpo_full_step(agent, batch, delta=None):
    """TRPO App. C at theta_old, by hand: g, x ~ F^-1 g (CG on the damped FVP of every k-th transition) and the
    full step ``s = sqrt(2 delta / x^T F x) x`` (``delta`` is ``max_kl`` unless given). Returns
    ``(theta_old, s, L(theta_old), g, search, x)`` where ``search(accept_ratio)`` is ``(theta_old + shrink^k s, k)``
    for the first k < max_backtracks with

        L(theta_k) - L(theta_old) > 0,  >= accept_ratio shrink^k g . s,  mean KL(pi_old || pi_k) <= delta,

    or ``(theta_old, None)`` if there is none."""
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy = agent.config, agent.policy
    delta = cfg.max_kl if delta is None else delta
    adv_n, theta_old = rule_advantages(t, cfg), policy.theta.copy()
    old = policy.distribution(t.obs_no)
    f0, g_p = policy.objective_grad(t.obs_no, surrogate, t.act, adv_n, t.logp_n)
    k = cfg.fvp_subsample  # the rule takes every k-th row of the whole batch, then weighs its reset steps 0
    fvp = policy.fvp_operator(batch.obs_no[::k][batch.valid_n[::k]], damping=cfg.cg_damping)
    x_p, _ = conjugate_gradient(fvp, g_p, cfg.cg_iters)
    full_p, _ = trust_region_step(x_p, fvp(x_p), delta)
    np.testing.assert_allclose(0.5 * full_p @ fvp(full_p), delta, rtol=1e-10)  # on the damped model's edge

    def search(accept_ratio):
        for k in range(cfg.max_backtracks):
            frac = cfg.backtrack_shrink**k
            theta_k = theta_old + frac * full_p
            improvement = surrogate_at(policy, t, adv_n, theta_k) - f0
            if (improvement > 0 and improvement >= accept_ratio * frac * (g_p @ full_p)
                    and mean_kl_at(policy, old, t, theta_k) <= delta):
                return theta_k, k
        return theta_old, None

    return theta_old, full_p, f0, g_p, search, x_p


@pytest.mark.parametrize("env_id, max_kl, accept_ratio, outcome", TRPO_CASES)
def test_trpo_takes_the_first_acceptable_point_of_the_backtracking_path(env_id, max_kl, accept_ratio, outcome):
    """TRPO App. C: with x ~ F^-1 g (CG on the damped FVP) and the full step s = sqrt(2 delta / x^T F x) x,
    the rule's new parameters are theta_old + shrink^k s for the first k whose point passes both tests of
    the previous test, and exactly theta_old (bit for bit) when no k < max_backtracks does.
    ``accept_ratio = 1e3`` forces that rejection."""
    agent = make_agent(npgrad.TRPO, env_id, max_kl=max_kl, accept_ratio=accept_ratio)
    batch, rng = collect(agent)
    theta_old, _, _, _, search, _ = trpo_full_step(agent, batch)
    expected_theta, first_k = search(accept_ratio)
    policy = agent.policy
    agent.rule.update(agent.model, batch, rng, 1.0)
    if first_k is None:
        np.testing.assert_array_equal(policy.theta, theta_old, err_msg=f"{env_id}: rejected, yet theta moved")
    else:
        assert_same_step(policy.theta, expected_theta, theta_old, f"{env_id}: accepted point (k = {first_k})",
                         rtol=1e-7, atol=1e-12)  # our standardisation and the rule's round differently
    observed = "rejects" if first_k is None else "full step" if first_k == 0 else "backtracks"
    assert observed == outcome, f"{env_id}: the case meant to test '{outcome}' {observed} (k = {first_k})"


@pytest.mark.parametrize("env_id, max_kl, outcome", [("CartPole-v1", 0.04, "full step"),
                                                      ("Pendulum-v1", 0.04, "full step"),
                                                      ("CartPole-v1", 0.4, "backtracks")])  # KL 1.09 delta
@pytest.mark.parametrize("anneal_kl", [True, False])
def test_trpo_anneal_kl_takes_the_step_of_the_smaller_trust_region(env_id, max_kl, outcome, anneal_kl):
    """With ``anneal_kl`` the update at schedule 1/4 (update k of K with 1 - (k - 1) / K = 1/4) is TRPO App. C's
    with delta = max_kl / 4, in the step to that region's edge and in the line search's KL test. Without it the
    schedule changes nothing."""
    agent = make_agent(npgrad.TRPO, env_id, max_kl=max_kl, anneal_kl=anneal_kl)
    batch, rng = collect(agent)
    delta = 0.25 * max_kl if anneal_kl else max_kl
    theta_old, _, _, _, search, _ = trpo_full_step(agent, batch, delta)
    expected_theta, first_k = search(agent.config.accept_ratio)
    assert first_k is not None, f"{env_id}: the line search accepts nothing, so this test checks nothing"
    if anneal_kl:
        assert ("full step" if first_k == 0 else "backtracks") == outcome, f"{env_id}: k = {first_k}"
    info = agent.rule.update(agent.model, batch, rng, 0.25)
    assert info["max_kl"] == delta
    assert_same_step(agent.policy.theta, expected_theta, theta_old, f"{env_id}: accepted point (k = {first_k})",
                     rtol=1e-7, atol=1e-12)


def test_trpo_anneals_max_kl_linearly_to_zero_over_each_learn_call():
    """As PPO's ``anneal_lr``: update k of the K of a ``learn`` call bounds the KL by ``max_kl (1 - (k - 1) / K)``,
    and a second ``learn`` call starts again from the whole ``max_kl``."""
    agent = npgrad.TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=8, hidden=(4,), vf_hidden=(4,), vf_minibatch_size=16,
                        anneal_kl=True)
    seen = []
    agent.learn(16 * 16, lambda a, info: seen.append(info["max_kl"]))
    agent.learn(4 * 16, lambda a, info: seen.append(info["max_kl"]))
    schedule = np.r_[1 - np.arange(16) / 16, 1 - np.arange(4) / 4]
    np.testing.assert_allclose(seen, agent.config.max_kl * schedule, rtol=1e-12, atol=0)


@pytest.mark.parametrize("factor", [0.99, 1.01])
@pytest.mark.parametrize("env_id", ENVS)
def test_trpo_armijo_test_compares_with_the_steps_own_linear_prediction(env_id, factor):
    """TRPO App. C's acceptance test of the full step s compares the surrogate's improvement with
    ``accept_ratio * g . s`` (g . s, not g . x for the unscaled direction x ~ F^-1 g): with rho the full
    step's measured ratio ``(L(theta_old + s) - L(theta_old)) / g . s``, accept_ratio = 0.99 rho takes s
    itself and accept_ratio = 1.01 rho does not (it backtracks to the first acceptable point, or keeps
    theta_old). The step's scale ``s = beta x`` is far enough from 1 for g . x to fail one of the two."""
    agent = make_agent(npgrad.TRPO, env_id)
    batch, rng = collect(agent)
    theta_old, full_p, f0, g_p, search, x_p = trpo_full_step(agent, batch)
    t, policy = transitions(batch), agent.policy
    rho = (surrogate_at(policy, t, rule_advantages(t, agent.config), theta_old + full_p) - f0) / (g_p @ full_p)
    assert rho > 0 and abs(np.log((g_p @ full_p) / (g_p @ x_p))) > 0.05, f"{env_id}: rho = {rho}"
    agent.rule.config = dataclasses.replace(agent.config, accept_ratio=factor * rho)
    expected_theta, first_k = search(factor * rho)
    assert (first_k == 0) == (factor < 1), f"{env_id}: accept_ratio = {factor} rho: k = {first_k}"
    agent.rule.update(agent.model, batch, rng, 1.0)
    assert_same_step(agent.policy.theta, expected_theta, theta_old, f"{env_id}: accept_ratio = {factor} rho",
                     rtol=1e-7, atol=1e-12)


def test_minibatches_cover_every_row_once_the_last_chunk_smaller():
    chunks = minibatches(10, 4, np.random.default_rng(0))
    assert [len(c) for c in chunks] == [4, 4, 2] and sorted(np.concatenate(chunks).tolist()) == list(range(10))


def test_ppo_takes_a_step_on_the_last_smaller_minibatch_too():
    agent = make_agent(npgrad.PPO, "CartPole-v1", minibatch_size=96, n_epochs=1)  # 256 rows: 96 + 96 + 64
    rule = fresh_rule(agent)
    batch, rng = collect(agent)
    rule.update(agent.model, batch, rng, 1.0)
    assert rule.optims["pi_optim"].t == 3


def test_explained_variance_is_one_minus_the_residuals_share_of_the_targets_variance():
    target = np.array([1.0, 2.0, 4.0, 7.0])  # Var = 5.25
    assert explained_variance(target, target) == 1.0 and explained_variance(np.full(4, 3.5), target) == 0.0
    assert explained_variance(0.5 * target, target) == pytest.approx(0.75)  # the residual has a quarter of Var
    assert explained_variance(np.array([1.5, 2.0, 3.5, 6.0]), target) == pytest.approx(1 - 0.3125 / 5.25)
    assert np.isnan(explained_variance(target, np.ones(4))), "constant targets: no variance to explain"


# --- NPG ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fisher", ["exact", "auto", "empirical"])
@pytest.mark.parametrize("env_id", ENVS)
def test_npg_exact_fisher_step_has_quadratic_kl_delta_along_regularised_natural_gradient(env_id, fisher):
    """NPG (Kakade 2002; solvers.natural_gradient_step) with the explicit Fisher F = J^T M J / n at theta_old:

        s = theta_new - theta_old = beta x,   x = (F + reg I)^-1 g,   beta = sqrt(2 delta / x^T F x) > 0,

    so ``1/2 s^T F s = delta`` exactly with F itself (not F + reg I), and s is parallel to (F + reg I)^-1 g.
    ``fisher="auto"`` takes this exact F for a network of at most 3,000 parameters (here 100-odd);
    ``fisher="empirical"`` the mean outer product of the sampled actions' scores, ``F = S^T S / n``."""
    agent = make_agent(npgrad.NPG, env_id, fisher=fisher, hidden=(16,))
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    assert env_id != "CartPole-v1" or not batch.valid_n.all(), "CartPole's batch exercises no reset step"
    cfg, policy, n = agent.config, agent.policy, len(t.obs_no)
    theta_old = policy.theta.copy()
    F_pp = policy.empirical_fisher(t.obs_no, t.act) if fisher == "empirical" else policy.fisher_matrix(t.obs_no)
    _, g_p = policy.objective_grad(t.obs_no, weighted_log_prob, t.act, rule_advantages(t, cfg) / n)

    agent.rule.update(agent.model, batch, rng, 1.0)
    s_p = policy.theta - theta_old
    np.testing.assert_allclose(0.5 * s_p @ F_pp @ s_p, cfg.max_kl, rtol=1e-8, err_msg=f"{env_id}: 1/2 s^T F s")
    regularised = 0.5 * s_p @ (F_pp + cfg.fisher_reg * np.eye(len(s_p))) @ s_p
    assert abs(regularised / cfg.max_kl - 1) > 1e-6, f"{env_id}: F and F + reg I indistinguishable here"
    x_p = np.linalg.solve(F_pp + cfg.fisher_reg * np.eye(len(g_p)), g_p)
    np.testing.assert_allclose(s_p / np.linalg.norm(s_p), x_p / np.linalg.norm(x_p), rtol=0, atol=1e-8,
                               err_msg=f"{env_id}: direction of s vs (F + reg I)^-1 g")
    assert g_p @ s_p > 0, f"{env_id}: the natural step is not an ascent direction"


@pytest.mark.parametrize("env_id", ENVS)
def test_npg_cg_step_has_damped_quadratic_kl_delta(env_id):
    """NPG with ``fisher="cg"`` (npg.py): x ~ (F + lambda I)^-1 g by CG on the damped Fisher-vector product of the
    batch's transitions, and the step ``s = sqrt(2 delta / x^T (F + lambda I) x) x`` (as TRPO), so

        1/2 s^T (F + lambda I) s = delta,   F = J^T M J / n over the n transitions (reset steps excluded),

    and s is parallel to that CG solution."""
    agent = make_agent(npgrad.NPG, env_id, fisher="cg", hidden=(8,))
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy, n = agent.config, agent.policy, len(t.obs_no)
    theta_old = policy.theta.copy()
    damped_pp = policy.fisher_matrix(t.obs_no) + cfg.cg_damping * np.eye(policy.num_params)
    _, g_p = policy.objective_grad(t.obs_no, weighted_log_prob, t.act, rule_advantages(t, cfg) / n)
    x_p, _ = conjugate_gradient(lambda v: damped_pp @ v, g_p, cfg.cg_iters)

    agent.rule.update(agent.model, batch, rng, 1.0)
    s_p = policy.theta - theta_old
    np.testing.assert_allclose(0.5 * s_p @ damped_pp @ s_p, cfg.max_kl, rtol=1e-8,
                               err_msg=f"{env_id}: 1/2 s^T (F + lambda I) s")
    np.testing.assert_allclose(s_p / np.linalg.norm(s_p), x_p / np.linalg.norm(x_p), rtol=0, atol=1e-8,
                               err_msg=f"{env_id}: direction of s vs CG's (F + lambda I)^-1 g")


# --- value regression (TRPO, NPG) -------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [npgrad.TRPO, npgrad.NPG])
def test_value_regression_step_is_adam_on_the_mean_squared_error_over_transitions(algo):
    """``fit_value_function``: with one epoch of one full-batch minibatch, the value network's step is Adam's
    first step (no clipping) on

        grad_phi (1/n) sum_i (V_phi(s_i) - R_i)^2   over the n transitions (a reset step is no transition),

    so the batch's reset steps, which are rows of it, must not enter the mean."""
    agent = make_agent(algo, "CartPole-v1", vf_epochs=1, vf_minibatch_size=4 * 64, hidden=(8,), vf_hidden=(8,))
    rule = fresh_rule(agent)
    batch, rng = collect(agent)
    assert not batch.valid_n.all(), "no episode ended in the batch: reset steps are not exercised"
    t, value = transitions(batch), agent.value_fn
    phi_old, n = value.theta.copy(), len(t.obs_no)
    v_n, cache = value.forward(t.obs_no)
    grad_p = value.vjp(cache, 2.0 * (v_n - t.ret_n) / n)  # d/dphi of the mean, one VJP
    rule.update(agent.model, batch, rng, 1.0)
    assert_same_step(value.theta, hand_adam_first_step(phi_old, grad_p, agent.config.vf_lr), phi_old,
                     f"{algo.name}: value step")


# --- PPO ----------------------------------------------------------------------------------------------


def ppo_objective(dist, t, adv_n, cfg):
    """PPO eq. 7 plus the entropy bonus: ``mean(min(r A, clip(r, 1-eps, 1+eps) A)) + c_H mean H``."""
    value = clipped_surrogate(dist, t.act, adv_n, t.logp_n, cfg.clip_range)[0]
    return value + cfg.ent_coef * float(dist.entropy().mean())


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_clip_one_full_batch_step_raises_the_clipped_objective(env_id):
    """PPO eq. 7 (+ c_H H): one epoch on one minibatch (the whole batch) with a small learning rate is one
    Adam step along g = grad J at theta_old (norm-clipped: a positive multiple c g), and
    ``g . s = lr c sum g_i^2 / (c |g_i| + eps) > 0``, so to first order in lr

        J(theta_new) > J(theta_old),   J on the whole batch's standardised advantages.

    J is evaluated with gSDE's features phi held at theta_old: phi is a stop-gradient in sigma (Raffin et
    al. 2022), so g is the gradient of that J, not of J with sigma following the new phi (along which even a
    tiny step can lower J)."""
    agent = make_agent(npgrad.PPO, env_id, n_epochs=1, minibatch_size=4 * 64, lr=3e-5, ent_coef=0.01)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy = agent.config, agent.policy
    adv_n, theta_old = standardised(t.adv_n), policy.theta.copy()
    phi_old = policy.forward(t.obs_no).features_nf

    def J(theta_p):
        return ppo_objective(policy.forward(t.obs_no, theta_p, phi_old).dist, t, adv_n, cfg)

    agent.rule.update(agent.model, batch, rng, 1.0)
    assert np.any(policy.theta != theta_old)
    rise = J(policy.theta) - J(theta_old)
    assert rise > 0, f"{env_id}: one small full-batch PPO step lowered the clipped objective by {-rise}"


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_clip_reports_the_clipped_objective_and_clip_fraction(env_id):
    """PPO eq. 7 with the tuned defaults (several epochs of minibatches): ``info["surrogate_before"]`` and
    ``info["surrogate_after"]`` are J(theta_old) and J(theta_new) on the batch's standardised advantages
    (the scale the minibatches optimise), and ``0 <= clip_fraction <= 1`` with some clipping.

    No monotonicity is asserted: minibatch Adam on per-minibatch standardised advantages over several
    epochs does not promise a higher J on the whole batch (one seed of Pendulum falls)."""
    agent = make_agent(npgrad.PPO, env_id, ent_coef=0.01)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy = agent.config, agent.policy
    adv_n = standardize(t.adv_n)
    before = ppo_objective(policy.distribution(t.obs_no), t, adv_n, cfg)
    info = agent.rule.update(agent.model, batch, rng, 1.0)
    after = ppo_objective(policy.distribution(t.obs_no), t, adv_n, cfg)
    np.testing.assert_allclose([info["surrogate_before"], info["surrogate_after"]], [before, after], rtol=1e-10,
                               atol=1e-14, err_msg=f"{env_id}: reported clipped objective before/after")
    assert 0.0 < info["clip_fraction"] <= 1.0, f"{env_id}: clip_fraction = {info['clip_fraction']}"


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_early_stop_compares_the_approx_kl_with_one_and_a_half_target_kl(env_id):
    """PPO-clip's early stop (SB3): after each epoch, with r = pi_new(a|s) / pi_old(a|s) over the transitions,

        approx KL = mean((r - 1) - log r)   (Schulman 2020; also ``info["approx_kl"]``),

    and the epochs stop once approx KL > 1.5 target_kl. Copies of one trained model and rule, on one batch and one
    generator: with the first epoch's approx KL k1, target_kl = k1 / 1.6 stops after it (theta as with
    n_epochs = 1), while k1 / 1.45 and k1 / 1.2 (k1 above target_kl but not above 1.5 target_kl) run both epochs."""
    agent = make_agent(npgrad.PPO, env_id, n_epochs=2, hidden=(8,), vf_hidden=(8,))
    batch, _ = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0

    def run(n_epochs, target_kl):
        model, rule = copy.deepcopy((agent.model, agent.rule))
        rule.config = dataclasses.replace(rule.config, n_epochs=n_epochs, target_kl=target_kl)
        info = rule.update(model, batch, np.random.default_rng(3), 1.0)
        return model.policy.theta, info

    def approx_kl(theta_p):
        log_r_n = agent.policy.log_prob(t.obs_no, t.act, theta_p) - t.logp_n
        return np.mean((np.exp(log_r_n) - 1) - log_r_n)

    (one, info_one), (two, info_two) = run(1, 0.0), run(2, 0.0)
    k1 = approx_kl(one)
    assert k1 > 0 and np.any(one != two), f"{env_id}: the first epoch did not move the policy, or the second"
    np.testing.assert_allclose([info_one["approx_kl"], info_two["approx_kl"]], [k1, approx_kl(two)], rtol=1e-10,
                               err_msg=f"{env_id}: info['approx_kl'] vs mean((r - 1) - log r)")
    for divisor, expected in [(1.6, one), (1.45, two), (1.2, two)]:
        np.testing.assert_array_equal(run(2, k1 / divisor)[0], expected,
                                      err_msg=f"{env_id}: target_kl = k1 / {divisor}, k1 = {k1}")


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_kl_penalty_beta_halves_doubles_or_stays_by_the_measured_kl(env_id):
    """PPO section 4 (adaptive KL penalty): with d = mean KL(pi_old || pi_new) measured after the update,

        beta <- beta / 2 if d < d_targ / 1.5;   beta <- 2 beta if d > 1.5 d_targ;   else beta unchanged.

    d_targ does not enter the update of theta (only beta's adaptation after it), so copies of one trained
    model and rule, given targets on either side of both thresholds, move theta identically."""
    agent = make_agent(npgrad.PPO, env_id, objective="kl_penalty")
    batch, _ = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0

    def run(kl_target):
        model, rule = copy.deepcopy((agent.model, agent.rule))
        rule.config = dataclasses.replace(rule.config, kl_target=kl_target)
        beta_before, old = rule.beta, model.policy.distribution(t.obs_no)
        rule.update(model, batch, np.random.default_rng(2), 1.0)
        return beta_before, rule.beta, float(old.kl(model.policy.distribution(t.obs_no)).mean())

    _, _, d = run(agent.config.kl_target)
    assert d > 0, f"{env_id}: the policy did not move"
    # either side of each threshold: d < d_targ / 1.5 at 1.6 d, not at 1.4 d; d > 1.5 d_targ at d / 1.6, not at d / 1.4
    for kl_target, factor in [(100 * d, 0.5), (1.6 * d, 0.5), (1.4 * d, 1.0), (d, 1.0), (d / 1.4, 1.0),
                              (d / 1.6, 2.0), (d / 100, 2.0)]:
        beta_before, beta_after, d_again = run(kl_target)
        assert d_again == d, f"{env_id}: kl_target changed the policy update ({d_again} vs {d})"
        assert beta_after == factor * beta_before, \
            f"{env_id}: KL {d}, target {kl_target}: beta {beta_before} -> {beta_after}, expected x{factor}"


@pytest.mark.parametrize("anneal_lr, anneal_clip", [(True, False), (False, True)])
def test_ppo_anneals_lr_and_clip_range_linearly_to_zero_over_each_learn_call(anneal_lr, anneal_clip):
    """SB3's ``lin_<value>``, read before each batch (CleanRL's ``anneal_lr``): update k of the K of a ``learn``
    call takes ``value (1 - (k - 1) / K)``, down to value / K (no floor), and a second ``learn`` call starts again
    from the whole value. ``anneal_lr`` anneals the optimisers' lr alone and ``anneal_clip`` the clip range alone."""
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=8, minibatch_size=16, n_epochs=1, hidden=(4,),
                       vf_hidden=(4,), anneal_lr=anneal_lr, anneal_clip=anneal_clip)
    cfg, seen = agent.config, []

    def record(a, info):  # after each update: the lr each Adam stepped with, and the clip range used
        seen.append([optim.lr for optim in a.rule.optims.values()] + [info["clip_range"]])

    agent.learn(16 * 16, record)  # 16 updates of 16 steps
    agent.learn(4 * 16, record)
    schedule = np.r_[1 - np.arange(16) / 16, 1 - np.arange(4) / 4][:, None]
    lr = cfg.lr * schedule if anneal_lr else np.full_like(schedule, cfg.lr)
    clip = cfg.clip_range * schedule if anneal_clip else np.full_like(schedule, cfg.clip_range)
    np.testing.assert_allclose(seen, np.hstack([lr, lr, clip]), rtol=1e-12, atol=0,
                               err_msg="columns: policy lr, value lr, clip range; rows: updates")


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_standardises_advantages_over_each_minibatch(env_id):
    """SB3's PPO standardises the advantages of each minibatch over its own transitions, not over the batch: the
    first minibatch (rows ``idx``, the head of the update generator's first permutation) steps along

        -grad sum_{i in idx} u_i A'_i log pi(a_i|s_i),   A' = (A - mean A) / (std A + 1e-8) over idx's transitions,

    the clipped surrogate's gradient at theta = theta_old (r = 1: no row is clipped), u = 1 / (idx's transitions)."""
    agent = make_agent(npgrad.PPO, env_id, minibatch_size=64, hidden=(8,), vf_hidden=(8,))
    batch, _ = collect(agent)
    policy, optim, grads = agent.policy, agent.rule.optims["pi_optim"], []
    theta_old, step = policy.theta.copy(), optim.step
    optim.step = lambda theta_p, grad_p, active: grads.append(grad_p) or step(theta_p, grad_p, active)
    agent.rule.update(agent.model, batch, np.random.default_rng(3), 1.0)
    idx = np.random.default_rng(3).permutation(len(batch.obs_no))[:64]
    valid_n = batch.valid_n[idx]
    assert valid_n.any() and np.std(batch.adv_n[idx][valid_n]) > 0
    u_n = valid_n / valid_n.sum()
    w_n = u_n * standardize(batch.adv_n[idx], u_n)
    _, g_p = policy.objective_grad(batch.obs_no[idx], weighted_log_prob, batch.act[idx], w_n, theta_p=theta_old)
    np.testing.assert_allclose(grads[0], -g_p, rtol=1e-10, atol=1e-14, err_msg=f"{env_id}: the first minibatch's step")


# --- PPO adaptive KL penalty: the objective and its gradient ---------------------------------------------


def hand_kl(old, new):
    """``KL(pi_old || pi_new)`` per state, written out: ``sum_a p (log p - log q)`` (categorical) or
    ``sum_k [log(s_new / s_old) + (s_old^2 + (mu_old - mu_new)^2) / (2 s_new^2) - 1/2]`` (diagonal Gaussian)."""
    if hasattr(old, "p_na"):
        return np.sum(old.p_na * (old.logp_na - new.logp_na), axis=-1)
    return np.sum(new.log_std_na - old.log_std_na
                  + (old.std_na**2 + (old.mean_na - new.mean_na) ** 2) / (2 * new.std_na**2) - 0.5, axis=-1)


def hand_entropy(dist):
    """``H = -sum_a p log p`` (categorical) or ``sum_k [log s_k + log(2 pi e) / 2]`` (diagonal Gaussian)."""
    if hasattr(dist, "p_na"):
        return -np.sum(dist.p_na * dist.logp_na, axis=-1)
    return np.sum(dist.log_std_na + 0.5 * np.log(2 * np.pi * np.e), axis=-1)


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_kl_penalty_objective_and_gradient_are_eq8_with_kl_old_to_new(env_id):
    """PPO eq. 8 plus the entropy bonus, at a theta away from theta_old (where grad KL = 0), weights u:

        J(theta) = sum_i u_i r_i A_i - beta sum_i u_i KL(pi_old(.|s_i) || pi_theta(.|s_i)) + c_H sum_i u_i H_i,

    ``rule.policy_objective`` returns J (the KL from old to new, not new to old) and a cotangent whose
    ``policy.vjp`` is the central difference of J (so the penalty pulls theta back towards theta_old).
    gSDE's features are held where the forward computed them (a stop-gradient in sigma)."""
    agent = make_agent(npgrad.PPO, env_id, objective="kl_penalty", ent_coef=0.01, hidden=(8,), vf_hidden=(8,))
    rule, cfg, policy = agent.rule, agent.config, agent.policy
    rule.beta = np.full((), 3.0)
    batch, _ = collect(agent)
    u_n, adv_n, obs = batch.u_n, standardize(batch.adv_n, batch.u_n), batch.obs_no
    old_all = policy.distribution(obs)
    theta_p = policy.theta + 0.1 * np.random.default_rng(2).standard_normal(policy.num_params)
    fwd = policy.forward(obs, theta_p)

    def J(th):
        new = policy.forward(obs, th, fwd.features_nf).dist
        r_n = np.exp(new.log_prob(batch.act) - batch.logp_n)
        return (np.sum(u_n * r_n * adv_n) - 3.0 * np.sum(u_n * hand_kl(old_all, new))
                + cfg.ent_coef * np.sum(u_n * hand_entropy(new)))

    kl = np.sum(u_n * hand_kl(old_all, fwd.dist))
    assert kl > 1e-3, f"{env_id}: theta is too close to theta_old for the penalty to matter (KL {kl})"
    value, cot, _ = rule.policy_objective(fwd.dist, old_all, batch, slice(None), adv_n, cfg.clip_range, u_n)
    np.testing.assert_allclose(value, J(theta_p), rtol=1e-10, atol=0, err_msg=f"{env_id}: J(theta)")
    np.testing.assert_allclose(policy.vjp(fwd, cot), central_difference_gradient(J, theta_p), rtol=1e-5, atol=1e-7,
                               err_msg=f"{env_id}: dJ/dtheta")


@pytest.mark.parametrize("env_id", ENVS)
def test_ppo_separate_value_network_step_clips_around_the_batch_values(env_id):
    """PPO's clipped value loss on a separate value network (OpenAI Baselines' ppo2): with V_old the batch's
    values (the value function that collected it) and c = clip_range_vf,

        L^VF(phi) = mean(max((V_phi(s) - R)^2, (V_old + clip(V_phi(s) - V_old, -c, c) - R)^2)).

    The value network is moved away from the one that collected the batch, so that many rows lie beyond
    the clip, and one epoch of one full-batch minibatch is then Adam's first step (clipped at max_grad_norm)
    on the central-difference gradient of L^VF over the transitions."""
    agent = make_agent(npgrad.PPO, env_id, n_epochs=1, minibatch_size=4 * 64, clip_range_vf=0.2, hidden=(8,),
                       vf_hidden=(8,))
    rule = fresh_rule(agent)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, value = agent.config, agent.value_fn
    value.theta = value.theta + 0.5 * np.random.default_rng(2).standard_normal(value.theta.shape)
    phi_start, v_n, c = value.theta.copy(), value(t.obs_no), cfg.clip_range_vf
    case = dict(ret=t.ret_n, v_old=t.val_n, clip_vf=c)
    d_n = v_n - t.val_n
    flat_n = (np.abs(d_n) > c) & ((t.val_n + np.clip(d_n, -c, c) - t.ret_n) ** 2 > (v_n - t.ret_n) ** 2)
    assert 0 < flat_n.sum() < len(flat_n), f"{env_id}: {flat_n.sum()} of {len(flat_n)} rows on the clipped branch"
    assert np.min(np.abs(np.abs(d_n) - c)) > 1e-5, f"{env_id}: a row sits on the clip's kink"
    grad_p = central_difference_gradient(lambda phi: reference_value_loss(value(t.obs_no, phi), case), phi_start)

    rule.update(agent.model, batch, rng, 1.0)
    assert_same_step(value.theta, hand_adam_first_step(phi_start, grad_p, cfg.lr, cfg.max_grad_norm), phi_start,
                     f"{env_id}: value step", rtol=1e-6, atol=1e-6 * cfg.lr)


# --- A2C and VPG: first Adam steps by hand --------------------------------------------------------------


@pytest.mark.parametrize("max_grad_norm, vf_coef", [(1e-4, 0.5), (0.5, 0.5), (1e6, 1e-5)])
@pytest.mark.parametrize("normalize_advantages", [False, True])
@pytest.mark.parametrize("env_id", ENVS)
def test_a2c_separate_networks_take_one_hand_computed_adam_step(env_id, normalize_advantages, max_grad_norm,
                                                                   vf_coef):
    """A2C (Mnih et al. 2016; docs/07) with separate networks and Adam: the policy's step is Adam's first
    step (t = 1, bias-corrected, after clipping the global norm at max_grad_norm) on the gradient

        grad_theta L = -(sum_i (A_i / n) grad log pi(a_i|s_i) + c_H grad mean H[pi(.|s_i)]),

    and the value network's is Adam's first step on ``c_V grad_phi mean((V(s) - R)^2)`` (where c_V only
    meets the clip and eps: Adam's first step is lr sign(g) wherever |g| >> eps). A tiny max_grad_norm
    makes |g_i| comparable to Adam's eps, where the step depends on every digit of g; so does a tiny c_V under a
    clip that never binds (the step then depends on c_V itself)."""
    agent = make_agent(npgrad.A2C, env_id, ent_coef=0.01, normalize_advantages=normalize_advantages,
                       max_grad_norm=max_grad_norm, vf_coef=vf_coef)
    rule = fresh_rule(agent)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy, value, n = agent.config, agent.policy, agent.value_fn, len(t.obs_no)
    theta_old, phi_old = policy.theta.copy(), value.theta.copy()
    _, pg_p = policy.objective_grad(t.obs_no, weighted_log_prob, t.act, rule_advantages(t, cfg) / n)
    _, ent_p = policy.objective_grad(t.obs_no, mean_entropy)
    grad_p = -(pg_p + cfg.ent_coef * ent_p)
    v_n = value(t.obs_no)
    # d/dphi mean((V - R)^2) = sum_i 2 (V_i - R_i) / n dV_i/dphi, one VJP through the value network
    v_grad_p = value.vjp(value.forward(t.obs_no)[1], 2.0 * (v_n - t.ret_n) / n)
    clipped = np.linalg.norm(grad_p) > max_grad_norm

    rule.update(agent.model, batch, rng, 1.0)
    where = f"{env_id}, normalize_advantages={normalize_advantages}, max_grad_norm={max_grad_norm}, c_V={vf_coef}"
    assert_same_step(policy.theta, hand_adam_first_step(theta_old, grad_p, cfg.lr, max_grad_norm), theta_old,
                     f"policy step ({where}, clipped: {clipped})")
    assert_same_step(value.theta, hand_adam_first_step(phi_old, cfg.vf_coef * v_grad_p, cfg.lr, max_grad_norm),
                     phi_old, f"value step ({where})")
    if max_grad_norm == 1e-4:
        assert clipped, f"{where}: the gradient norm {np.linalg.norm(grad_p)} was not clipped"


@pytest.mark.parametrize("env_id", ENVS)
def test_vpg_first_policy_step_is_lr_g_over_abs_g_plus_eps(env_id):
    """VPG (Williams 1992; docs/03) with Adam: on the first step the bias corrections cancel, m_hat = -g and
    sqrt(v_hat) = |g|, so with g = grad sum_i (A_i / n) log pi(a_i|s_i),

        theta_new - theta_old = lr g / (|g| + eps)   elementwise (no gradient clipping in VPG)."""
    agent = make_agent(npgrad.VPG, env_id)
    rule = fresh_rule(agent)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy, n = agent.config, agent.policy, len(t.obs_no)
    theta_old = policy.theta.copy()
    _, g_p = policy.objective_grad(t.obs_no, weighted_log_prob, t.act, rule_advantages(t, cfg) / n)
    rule.update(agent.model, batch, rng, 1.0)
    assert_same_step(policy.theta, hand_adam_first_step(theta_old, -g_p, cfg.pi_lr), theta_old,
                     f"{env_id}: VPG policy step")
    assert_same_step(policy.theta, theta_old + cfg.pi_lr * g_p / (np.abs(g_p) + ADAM_EPS), theta_old,
                     f"{env_id}: lr g / (|g| + eps)")


# --- shared trunk: PPO eq. 9 / A2C's one loss ------------------------------------------------------------


def away_from_kinks(r_n, clip_eps, v_n, ret_n, v_old_n, clip_vf, margin=1e-3):
    """No ratio within ``margin`` of 1 +- eps, no value within ``margin`` of |V - V_old| = c or of the max's tie."""
    if np.min(np.abs(np.abs(r_n - 1.0) - clip_eps)) <= margin:
        return False
    if clip_vf <= 0:
        return True
    d_n = v_n - v_old_n
    sq_n, sq_clipped_n = (v_n - ret_n) ** 2, (v_old_n + np.clip(d_n, -clip_vf, clip_vf) - ret_n) ** 2
    tie_n = (np.abs(sq_n - sq_clipped_n) < margin) & (np.abs(d_n) > clip_vf)
    return bool(np.all(np.abs(np.abs(d_n) - clip_vf) > margin) and not tie_n.any())


def reference_objective(dist, case):
    """J written out: PPO ``mean(min(r A, clip(r) A))`` or A2C ``mean(A log pi)``, plus ``c_H mean H``."""
    if case["algo"] == "ppo":
        r_n = np.exp(dist.log_prob(case["act"]) - case["logp_old"])
        eps = case["clip_eps"]
        j = np.mean(np.minimum(r_n * case["adv"], np.clip(r_n, 1 - eps, 1 + eps) * case["adv"]))
    else:
        j = np.mean(case["adv"] * dist.log_prob(case["act"]))
    return j + case["ent_coef"] * np.mean(dist.entropy())


def reference_value_loss(v_n, case):
    """``mean((V - R)^2)``, or with c > 0 ``mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))``."""
    ret_n, v_old_n, c = case["ret"], case["v_old"], case["clip_vf"]
    if c <= 0:
        return np.mean((v_n - ret_n) ** 2)
    return np.mean(np.maximum((v_n - ret_n) ** 2, (v_old_n + np.clip(v_n - v_old_n, -c, c) - ret_n) ** 2))


def reference_loss(policy, case, theta_p, vf_coef):
    """``L(theta) = -J(theta) + c_V L^VF(theta)`` from ``policy.forward(obs, theta)``: the distribution and
    ``V = out[:, -1]``. gSDE's features are held at theta_old (they are a stop-gradient in sigma)."""
    fwd = policy.forward(case["obs"], theta_p, case["phi"])
    return -reference_objective(fwd.dist, case) + vf_coef * reference_value_loss(fwd.out_no[:, -1], case)


@st.composite
def trunk_cases(draw):
    """A random small policy with a value output, and random states, actions, advantages, returns, old values."""
    kind = draw(st.sampled_from(["categorical", "gaussian", "gsde"]))
    o = draw(st.integers(1, 4))
    hidden = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=2)))
    act_space = spaces.Discrete(draw(st.integers(2, 4))) if kind == "categorical" else \
        spaces.Box(-1.0, 1.0, (draw(st.integers(1, 3)),))
    pol = Policy(spaces.Box(-np.inf, np.inf, (o,)), act_space, hidden, rng=draw(st.integers(0, 2**16)),
                 log_std_init=draw(st.floats(-1.0, 0.5)), sde=kind == "gsde", value_output=True)
    pol.theta = pol.theta + draw(finite_arrays((pol.num_params,), -0.5, 0.5))
    n = draw(st.integers(1, 6))
    obs = draw(finite_arrays((n, o)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    fwd = pol.forward(obs)
    act = pol.sample(fwd, rng)
    case = dict(algo=draw(st.sampled_from(["ppo", "a2c"])), obs=obs, act=act, phi=fwd.features_nf,
                adv=rng.standard_normal(n), logp_old=fwd.dist.log_prob(act) + 0.3 * rng.standard_normal(n),
                ret=rng.standard_normal(n), v_old=fwd.out_no[:, -1] + rng.uniform(-1.0, 1.0, n),
                clip_eps=draw(st.floats(0.05, 0.4)), ent_coef=draw(st.sampled_from([0.0, 0.01, 0.5])),
                clip_vf=draw(st.sampled_from([0.0, 0.3])))
    return pol, case


def analytic_objective(fwd, case):
    """J and its cotangent in the distribution's parameters, as the rules assemble them (objectives.py)."""
    if case["algo"] == "ppo":
        j, cot, _ = clipped_surrogate(fwd.dist, case["act"], case["adv"], case["logp_old"], case["clip_eps"])
    else:
        j, cot = weighted_log_prob(fwd.dist, case["act"], case["adv"] / len(case["adv"]))
    entropy, ent_cot = mean_entropy(fwd.dist)
    return j + case["ent_coef"] * entropy, add(cot, scale(ent_cot, case["ent_coef"]))


@given(trunk_cases(), st.sampled_from([0.25, 0.5, 1.0]))
def test_shared_trunk_loss_and_gradient_match_finite_differences(pc, vf_coef):
    """PPO eq. 9 (and A2C's one loss) on a shared trunk: ``shared_trunk_loss`` returns

        L(theta) = -J(theta) + c_V mean((V_theta(s) - R)^2)      (value-clipped if clip_vf > 0)

    and dL/dtheta equal to central differences (h = 1e-6) of L written out from the distribution and
    V = out[:, -1], away from the clip's kinks."""
    pol, case = pc
    fwd = pol.forward(case["obs"])
    r_n = np.exp(fwd.dist.log_prob(case["act"]) - case["logp_old"])
    v_n = fwd.out_no[:, -1]
    assume(away_from_kinks(r_n, case["clip_eps"], v_n, case["ret"], case["v_old"], case["clip_vf"]))
    objective, cot = analytic_objective(fwd, case)
    loss, grad_p, vf_loss = shared_trunk_loss(pol, fwd, objective, cot, case["ret"], vf_coef, case["v_old"],
                                              case["clip_vf"])
    what = f"{case['algo']}, {type(pol.head).__name__}, sizes {pol.net.sizes}, clip_vf={case['clip_vf']}"
    np.testing.assert_allclose(loss, reference_loss(pol, case, pol.theta, vf_coef), rtol=1e-12, atol=1e-12,
                               err_msg=f"L ({what})")
    np.testing.assert_allclose(vf_loss, reference_value_loss(v_n, case), rtol=1e-12, atol=1e-12,
                               err_msg=f"L^VF ({what})")
    numeric = central_difference_gradient(lambda th: reference_loss(pol, case, th, vf_coef), pol.theta, h=1e-6)
    np.testing.assert_allclose(grad_p, numeric, rtol=1e-5, atol=1e-7, err_msg=f"dL/dtheta ({what})")


@given(trunk_cases())
def test_shared_trunk_gradient_without_value_loss_is_minus_the_objective_gradient(pc):
    """With c_V = 0 the value output gets no gradient: ``dL/dtheta = -dJ/dtheta`` (central differences of J)."""
    pol, case = pc
    fwd = pol.forward(case["obs"])
    r_n = np.exp(fwd.dist.log_prob(case["act"]) - case["logp_old"])
    assume(away_from_kinks(r_n, case["clip_eps"], fwd.out_no[:, -1], case["ret"], case["v_old"], 0.0))
    objective, cot = analytic_objective(fwd, case)
    loss, grad_p, _ = shared_trunk_loss(pol, fwd, objective, cot, case["ret"], 0.0, case["v_old"], case["clip_vf"])
    np.testing.assert_allclose(loss, -objective, rtol=1e-12, atol=1e-15, err_msg="L with c_V = 0")
    numeric = central_difference_gradient(
        lambda th: -reference_objective(pol.forward(case["obs"], th, case["phi"]).dist, case), pol.theta)
    np.testing.assert_allclose(grad_p, numeric, rtol=1e-5, atol=1e-7,
                               err_msg=f"-dJ/dtheta ({case['algo']}, {type(pol.head).__name__})")


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
@pytest.mark.parametrize("env_id", ENVS)
def test_shared_trunk_agent_takes_one_adam_step_on_eq9(env_id, algo):
    """PPO eq. 9 / A2C with ``shared_trunk=True``: one network, one Adam. With one epoch of one full-batch
    minibatch (PPO), the update is Adam's first step (clipped at max_grad_norm) on the central-difference
    gradient of

        L(theta) = -(J(theta) + c_H mean H) + c_V L^VF(theta),   V = the policy network's last output,

    J being PPO's clipped surrogate (value loss clipped at clip_range_vf around the batch's values, which
    are V at theta_old: inside the clip) or A2C's ``mean(A log pi)``, on the advantages the rule uses.
    Both gradients here are longer than max_grad_norm, so the clip is exercised too."""
    small = dict(hidden=(8,), ent_coef=0.01, shared_trunk=True)
    if algo == "ppo":
        agent = make_agent(npgrad.PPO, env_id, n_epochs=1, minibatch_size=4 * 64, clip_range_vf=0.2, **small)
    else:
        agent = make_agent(npgrad.A2C, env_id, **small)
    rule = fresh_rule(agent)
    batch, rng = collect(agent)
    t = transitions(batch)  # the maths sums over transitions; the rule weighs reset steps 0
    cfg, policy = agent.config, agent.policy
    assert agent.model.shared
    # V is the trunk's last output (to rounding: the rollout evaluated it on all (T + 1) E rows at once)
    np.testing.assert_allclose(batch.val_n, policy.forward(batch.obs_no).out_no[:, -1], rtol=1e-12, atol=1e-15)
    theta_old = policy.theta.copy()
    adv_n = standardised(t.adv_n) if cfg.normalize_advantages else t.adv_n
    case = dict(algo=algo, obs=t.obs_no, act=t.act, phi=policy.forward(t.obs_no).features_nf,
                adv=adv_n, logp_old=t.logp_n, ret=t.ret_n, v_old=t.val_n,
                clip_eps=getattr(cfg, "clip_range", 0.0), ent_coef=cfg.ent_coef,
                clip_vf=getattr(cfg, "clip_range_vf", 0.0))
    grad_p = central_difference_gradient(lambda th: reference_loss(policy, case, th, cfg.vf_coef), theta_old)
    assert np.linalg.norm(grad_p) > cfg.max_grad_norm, f"{algo} on {env_id}: the clip is not exercised"

    rule.update(agent.model, batch, rng, 1.0)
    assert_same_step(policy.theta, hand_adam_first_step(theta_old, grad_p, cfg.lr, cfg.max_grad_norm), theta_old,
                     f"{algo} shared trunk on {env_id}", rtol=1e-5, atol=1e-5 * cfg.lr)  # where |g_i| ~ Adam's eps,
    # a central difference's rounding (~1e-10) moves the step lr g / (|g| + eps) by up to ~1e-5 lr


@pytest.mark.parametrize("algo", [npgrad.PPO, npgrad.A2C])
def test_shared_trunk_agents_save_and_load(algo, tmp_path):
    """A shared-trunk agent has one parameter vector (no ``value_theta``) and a save/load round trip gives
    back the same actions, distributions and values."""
    assert "value_theta" not in npgrad.PPO("CartPole-v1", shared_trunk=True).model.state()
    assert "value_theta" in npgrad.PPO("CartPole-v1").model.state()
    agent = make_agent(algo, "CartPole-v1", shared_trunk=True)
    assert set(agent.model.state()) == {"policy_theta"}
    fresh = algo("CartPole-v1", seed=0, n_envs=4, n_steps=64, dtype="float64", shared_trunk=True)
    assert np.any(fresh.policy.theta != agent.policy.theta), "training did not move theta: the round trip is moot"
    loaded = npgrad.load(agent.save(tmp_path / "agent.npz"))
    assert loaded.model.shared and loaded.config == agent.config
    obs = np.random.default_rng(0).uniform(-1, 1, (20, 4))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0],
                                  err_msg=f"{algo.name}: actions")
    np.testing.assert_array_equal(loaded.policy.distribution(obs).logits_na, agent.policy.distribution(obs).logits_na)
    np.testing.assert_array_equal(loaded.value_fn(obs), agent.value_fn(obs), err_msg=f"{algo.name}: V(s)")
    np.testing.assert_array_equal(loaded.policy.theta, agent.policy.theta)
