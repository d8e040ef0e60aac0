"""Natural policy gradient (Kakade 2002; Peters & Schaal 2008; Rajeswaran et al. 2017).

Maths: docs/04-natural-gradient.md. One update:

    g     = (1/n) sum_i grad log pi(a_i|s_i) A_i
    x     = (F + reg I)^-1 g                        the natural gradient (reg: fisher_reg, or cg_damping)
    step  = sqrt(2 delta / x^T F x) x               a KL of delta in the quadratic model (at most delta with cg,
                                                    which scales by x^T (F + cg_damping I) x, as TRPO); no
                                                    line search

``F^-1 g`` comes from an explicit Fisher (``exact`` J^T M J, or ``empirical`` mean score outer
products) by a Cholesky solve for small networks, or from conjugate gradient on the exact
Fisher-vector product (``cg``) for larger ones. ``auto`` picks explicit up to 3,000 parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ValueRegressionConfig, require
from ..objectives import weighted_log_prob
from ..solvers import Adam, conjugate_gradient, natural_gradient_step, trust_region_step
from .common import UpdateRule, advantages, commit, fail, fit_value_function, policy_stats

EXPLICIT_MAX_PARAMS = 3000


@dataclass
class NPGConfig(ValueRegressionConfig):
    max_kl: float = 0.01
    """delta, the KL the step is scaled to (0.001-0.05)."""
    fisher: str = "auto"
    """How F^-1 g is computed: ``exact``, ``empirical``, ``cg`` or ``auto``."""
    cg_iters: int = 10
    """Conjugate-gradient iterations of the ``cg`` solve (10 as TRPO)."""
    cg_damping: float = 0.1
    """Damping added to F in the CG solve; ``fisher_reg`` plays that role for the explicit Fisher."""
    fisher_reg: float = 1e-3
    """reg in (F + reg I)^-1 g for the explicit Fisher."""
    dtype: str = "float64"
    """NPG keeps float64: it assembles and Cholesky-factorises an explicit Fisher matrix."""

    algo = "npg"

    def validate(self):
        super().validate()
        self.require_positive("max_kl")
        require(self.fisher in ("auto", "exact", "empirical", "cg"), "fisher", self.fisher,
                "one of auto, exact, empirical, cg")
        self.require_nonnegative("cg_damping", "fisher_reg")


def natural_step(policy, batch, g_p, cfg):
    """The step ``sqrt(2 delta / x^T F x) x``, ``x = (F + reg I)^-1 g``, whether it could be computed, and which F."""
    fisher = cfg.fisher
    if fisher == "auto":
        fisher = "exact" if policy.num_params <= EXPLICIT_MAX_PARAMS else "cg"
    if fisher == "cg":
        fvp = policy.fvp_operator(batch.obs_no, cfg.cg_damping, u_n=batch.u_n)
        x_p, cg = conjugate_gradient(fvp, g_p, cfg.cg_iters)
        step_p, kkt = trust_region_step(x_p, fvp(x_p), cfg.max_kl)
        return step_p, kkt["ok"] & ~cg["breakdown"], fisher
    def explicit(obs_no, act, u_n, theta_p):
        return (policy.fisher_matrix(obs_no, theta_p=theta_p, u_n=u_n) if fisher == "exact" else
                policy.empirical_fisher(obs_no, act, theta_p=theta_p, u_n=u_n))

    F_pp = agent_by_agent(explicit, batch.obs_no, batch.act, batch.u_n, policy.theta)
    step_p, solve = natural_gradient_step(F_pp, g_p, cfg.max_kl, cfg.fisher_reg)
    return step_p, solve["ok"], fisher


def agent_by_agent(f, *arrays):
    """``f`` of each agent's slice of ``arrays``, stacked (one call for one agent): an explicit Fisher is small and
    assembled column by column, so a stack gains nothing from being assembled at once."""
    if arrays[-1].ndim == 1:
        return f(*arrays)
    return np.stack([f(*slices) for slices in zip(*arrays)])


class NPGUpdate(UpdateRule):
    """NPG's update rule; its state is the value function's Adam."""

    Config = NPGConfig

    def __init__(self, config, model):
        self.config = config
        self.optims = {"vf_optim": Adam(model.value.theta.shape, lr=config.vf_lr)}

    def update(self, model, batch, rng, schedule):
        """g, then ``theta += sqrt(2 delta / x^T F x) x`` with ``x = (F + reg I)^-1 g``, then fit V. Returns info."""
        cfg, policy, u_n = self.config, model.policy, batch.u_n
        old = policy.distribution(batch.obs_no)
        w_n = advantages(batch, cfg.normalize_advantages) * u_n  # reset steps weigh 0
        pg, g_p = policy.objective_grad(batch.obs_no, weighted_log_prob, batch.act, w_n)  # g = mean(A grad log pi)
        step_p, ok, fisher = natural_step(policy, batch, g_p, cfg)
        info = {"surrogate_before": pg, "fisher": fisher}
        commit(policy, policy.theta + step_p, info, active=ok)
        fail(info, "Fisher solve failed (non-positive curvature)", ~np.asarray(ok))
        info.update(policy_stats(old, policy.distribution(batch.obs_no), u_n))
        info.update(fit_value_function(model.value, self.optims["vf_optim"], batch, cfg, rng))
        return info
