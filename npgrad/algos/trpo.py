"""Trust region policy optimisation (Schulman et al. 2015).

Maths: docs/05-trpo.md. One update:

    g   = grad mean(r A)                              at theta_old (r = 1 there)
    x  ~= F^-1 g                                      conjugate gradient on the exact FVP (every k-th row)
    s   = sqrt(2 delta / x^T F x) x                   KKT step to the edge of the trust region (of the damped
                                                      model F + cg_damping I, as the original code)
    theta = line search on mean(r A) from theta_old along s, accepting only mean KL <= delta

then fit V separately. If CG breaks down or nothing is accepted, theta stays theta_old. With ``anneal_kl``,
update k of the K of a ``learn`` call takes delta = max_kl (1 - (k - 1) / K).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ValueRegressionConfig, require
from ..objectives import mean, row_weights, surrogate
from ..solvers import Adam, backtracking_line_search, conjugate_gradient, trust_region_step, vdot
from .common import UpdateRule, advantages, annealed, commit, fail, fit_value_function, policy_stats


@dataclass
class TRPOConfig(ValueRegressionConfig):
    max_kl: float = 0.01
    """delta, the trust-region radius in mean KL (0.001-0.05); annealed linearly to 0 if ``anneal_kl``."""
    cg_iters: int = 10
    """Conjugate-gradient iterations (10 in the original code)."""
    cg_damping: float = 0.1
    """lambda, damping added to F (F + lambda I): regularises near-null directions (0.01-0.1)."""
    backtrack_shrink: float = 0.8
    """Step fraction multiplier per backtrack (0.5-0.8)."""
    fvp_subsample: int = 1
    """k: Fisher-vector products on every k-th transition (1 = all). F is only the metric of the step, so a
    subsample does for it (Schulman 2016, PhD thesis, pp. 40-42: 10% of the data; OpenAI baselines uses k = 5);
    g and the line search always use the whole batch. Rows are time-major (step t, env e at t * n_envs + e), so
    a k sharing a factor with n_envs sees only some of the environments."""
    max_backtracks: int = 10
    """Step fractions tried, ``shrink^0 .. shrink^(k-1)``, before the update keeps theta_old (10 as the original)."""
    accept_ratio: float = 0.1
    """Minimum ratio of actual to linearly predicted improvement."""
    anneal_kl: bool = False
    """Anneal ``max_kl`` linearly to 0 over the ``learn`` call, as PPO's ``anneal_lr`` its step: once the policy is
    good, the standardised advantages can be mostly noise, and a full-size step along them can undo what it learned."""

    algo = "trpo"
    SCHEDULED = {"max_kl": "anneal_kl"}
    ALIASES = {**ValueRegressionConfig.ALIASES, "learning_rate": "vf_lr", "batch_size": "vf_minibatch_size",
               "n_critic_updates": "vf_epochs", "target_kl": "max_kl", "cg_max_steps": "cg_iters",
               "line_search_shrinking_factor": "backtrack_shrink", "line_search_max_iter": "max_backtracks",
               "sub_sampling_factor": "fvp_subsample"}
    """sb3-contrib's TRPO names: its learning_rate and batch_size are the value function's. Its ``target_kl`` is
    ``max_kl`` for Discrete and MultiDiscrete actions, not for ``a`` independent dimensions (a Box, a MultiBinary):
    sb3-contrib 2.9 averages their KL over the dimensions as well as the states, so its trust region is
    ``a * target_kl`` in the mean KL of eq. (5.1) that ``max_kl`` bounds, and its damping acts on ``F / a``. Its
    CG step equals ``max_kl = a * target_kl, cg_damping = a * cg_damping`` here, but for its CG's start (1e-4 times a
    normal draw, not 0) and stop (|r|^2 < 1e-10, not |r| <= 1e-10); its line search differs (it
    accepts any improvement, ``accept_ratio=0``, and measures KL(new || old)), and its ``sub_sampling_factor``
    subsamples the whole update where ``fvp_subsample`` subsamples only the Fisher-vector products."""

    def validate(self):
        super().validate()
        self.require_positive("max_kl")
        self.require_nonnegative("cg_damping", "accept_ratio")
        require(0 < self.backtrack_shrink < 1, "backtrack_shrink", self.backtrack_shrink, "in (0, 1)")


class TRPOUpdate(UpdateRule):
    """TRPO's update rule; its state is the value function's Adam."""

    Config = TRPOConfig

    def __init__(self, config, model):
        self.config = config
        self.optims = {"vf_optim": Adam(model.value.theta.shape, lr=config.vf_lr)}

    def update(self, model, batch, rng, schedule):
        """g, CG for F^-1 g, KKT step, line search (module docstring), then fit V. Returns diagnostics."""
        cfg, policy, obs_no, act = self.config, model.policy, batch.obs_no, batch.act
        adv_n, theta_old_p, u_n = advantages(batch, cfg.normalize_advantages), policy.theta, batch.u_n
        old = policy.distribution(obs_no)
        delta = annealed(cfg.max_kl, cfg.anneal_kl, schedule)

        last = {}

        def surrogate_and_kl(theta_p):
            """``(mean(r A), mean KL(old || new))`` at ``theta_p``. The line search asks for the objective, then
            the constraint, at the same point: one forward serves both."""
            if last.get("theta_p") is not theta_p:
                new = policy.distribution(obs_no, theta_p)
                last.update(theta_p=theta_p, value=(surrogate(new, act, adv_n, batch.logp_n, u_n)[0],
                                                    mean(old.kl(new), u_n)))
            return last["value"]

        surr_before, g_p = policy.objective_grad(obs_no, surrogate, act, adv_n, batch.logp_n, u_n)
        k = cfg.fvp_subsample
        fvp = policy.fvp_operator(obs_no[..., ::k, :], damping=cfg.cg_damping, u_n=row_weights(batch.valid_n[..., ::k]))
        x_p, cg = conjugate_gradient(fvp, g_p, cfg.cg_iters)
        step_p, kkt = trust_region_step(x_p, fvp(x_p), delta)
        info = {"max_kl": delta, "surrogate_before": surr_before, "cg_iterations": cg["iterations"],
                "cg_residual": cg["residual_norm"], "cg_breakdown": cg["breakdown"]}
        searchable = ~cg["breakdown"] & kkt["ok"]
        fail(info, "CG breakdown", ~searchable)
        ls = {"accepted": np.zeros(searchable.shape, bool), "backtracks": 0 * searchable,
              "step_fraction": 0.0 * searchable}
        if searchable.any():
            theta_new_p, found = backtracking_line_search(
                lambda th: surrogate_and_kl(th)[0], theta_old_p, step_p, expected_improve=vdot(g_p, step_p),
                constraint=lambda th: surrogate_and_kl(th)[1] <= delta, shrink=cfg.backtrack_shrink,
                max_backtracks=cfg.max_backtracks, accept_ratio=cfg.accept_ratio, f0=surr_before)
            ls = {name: np.where(searchable, found[name], ls[name]) for name in ls}
            commit(policy, theta_new_p, info, active=ls["accepted"])
            fail(info, "no step accepted", searchable & ~ls["accepted"])
        new = policy.distribution(obs_no)
        info.update(line_search_accepted=ls["accepted"], line_search_backtracks=ls["backtracks"],
                    step_fraction=ls["step_fraction"], surrogate_after=surrogate(new, act, adv_n, batch.logp_n, u_n)[0])
        info.update(policy_stats(old, new, u_n))
        info.update(fit_value_function(model.value, self.optims["vf_optim"], batch, cfg, rng))
        return info
