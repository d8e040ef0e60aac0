"""Vanilla policy gradient: REINFORCE with a learned value baseline and GAE (Williams 1992).

Maths: docs/03-policy-gradient.md. One update:

    g = (1/n) sum_i grad log pi(a_i|s_i) A_i        (the policy gradient theorem, Sutton et al. 2000)
    theta <- Adam step along g                      (ascent)

then regress ``V`` on the returns. With ``lam = 1`` ``A`` is the Monte-Carlo return minus the baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import ValueRegressionConfig
from ..objectives import weighted_log_prob
from ..solvers import Adam
from .common import UpdateRule, advantages, commit, fit_value_function, policy_stats


@dataclass
class VPGConfig(ValueRegressionConfig):
    pi_lr: float = 3e-3
    """Adam learning rate of the policy (1e-3-1e-2)."""

    algo = "vpg"
    ALIASES = {**ValueRegressionConfig.ALIASES, "learning_rate": "pi_lr"}
    """SB3's names, ``learning_rate`` for the policy's step (the value function has its own, ``vf_lr``)."""

    def validate(self):
        super().validate()
        self.require_positive("pi_lr")


class VPGUpdate(UpdateRule):
    """VPG's update rule; its state is the two Adam optimisers."""

    Config = VPGConfig

    def __init__(self, config, model):
        self.config = config
        self.optims = {"pi_optim": Adam(model.policy.theta.shape, lr=config.pi_lr),
                       "vf_optim": Adam(model.value.theta.shape, lr=config.vf_lr)}

    def update(self, model, batch, rng, schedule):
        """One Adam step along ``g = mean(grad log pi A)`` (module docstring), then fit V. Returns diagnostics."""
        cfg, policy, u_n = self.config, model.policy, batch.u_n
        old = policy.distribution(batch.obs_no)
        w_n = advantages(batch, cfg.normalize_advantages) * u_n  # reset steps weigh 0
        pg, g_p = policy.objective_grad(batch.obs_no, weighted_log_prob, batch.act, w_n)  # g = mean(A grad log pi)
        theta_p, step = self.optims["pi_optim"].step(policy.theta, -g_p)  # Adam minimises: ascend on g
        info = {"surrogate_before": pg, "grad_norm": step["grad_norm"]}
        commit(policy, theta_p, info)
        info.update(policy_stats(old, policy.distribution(batch.obs_no), u_n))
        info.update(fit_value_function(model.value, self.optims["vf_optim"], batch, cfg, rng))
        return info
