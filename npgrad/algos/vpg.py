"""Vanilla policy gradient: REINFORCE with a learned value baseline and GAE (Williams 1992).

Maths: docs/03-policy-gradient.md. One update:

    g = (1/n) sum_i grad log pi(a_i|s_i) A_i        (the policy gradient theorem, Sutton et al. 2000)
    theta <- Adam step along g                      (ascent)

then regress ``V`` on the returns. With ``lam = 1`` ``A`` is the Monte-Carlo return minus the baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..solvers import Adam
from ..train import Agent


@dataclass
class VPGConfig(Config):
    pi_lr: float = 3e-3
    """Adam learning rate of the policy (1e-3-1e-2)."""

    ENV_DEFAULTS = {
        "CartPole-v1": dict(n_envs=8, n_steps=256, gamma=0.99, lam=0.97, pi_lr=5e-3, vf_epochs=10,
                            vf_minibatch_size=128),
        "Pendulum-v1": dict(n_envs=8, n_steps=512, gamma=0.9, lam=0.95, pi_lr=3e-3, normalize_obs=True,
                            normalize_reward=True, log_std_init=-0.5, vf_epochs=10, vf_minibatch_size=128),
    }

    def validate(self):
        super().validate()
        self.require_positive("pi_lr")
        self.warn_beyond_batch("vf_minibatch_size")


class VPG(Agent):
    name = "vpg"
    Config = VPGConfig

    def setup(self):
        self.pi_optim = Adam(self.policy.num_params, lr=self.config.pi_lr)

    def update(self, batch):
        """One update: one Adam step along ``g = mean(grad log pi A)`` (module docstring), then fit V.
        Returns diagnostics."""
        n, old = len(batch.obs_no), self.policy.distribution(batch.obs_no)
        pg, g_p = self.policy.weighted_log_prob_grad(batch.obs_no, batch.act, self.advantages(batch) / n)
        theta, info = self.pi_optim.step(self.policy.theta, -g_p)  # Adam minimises: ascend on g
        diag = {"surrogate_before": pg, "grad_norm": info["grad_norm"]}
        self.commit_policy(theta, diag)
        diag.update(self.policy_stats(batch, old))
        diag.update(self.fit_value_function(batch))
        return diag
