"""Synchronous advantage actor-critic, A2C (Mnih et al. 2016, the synchronous variant of A3C).

Maths: docs/07-ppo-and-a2c.md. Every ``n_steps`` x ``n_envs`` batch takes one gradient step on

    L = -mean(A log pi(a|s)) - c_H mean H[pi(.|s)] + c_V mean((V(s) - R)^2)

with n-step (GAE) returns ``R``. Policy and value networks are separate, so the loss splits into
one optimiser step on each: Adam by default, or RMSprop as in the A3C paper and SB3
(``optimizer="rmsprop"``), which on Pendulum learned less well here (docs/07).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, require
from ..policy import add, mean_entropy, scale, weighted_log_prob
from ..solvers import Adam, RMSprop
from ..train import Agent


@dataclass
class A2CConfig(Config):
    lr: float = 7e-4
    """Learning rate of both networks (1e-4-3e-3); annealed linearly to 0 if ``anneal_lr``."""
    ent_coef: float = 0.0
    """c_H, entropy bonus (0-0.01)."""
    vf_coef: float = 0.5
    """c_V, value-loss weight: scales the value network's gradient. The value network has its own optimiser,
    which normalises the gradient's scale, so c_V only meets the clip and eps (docs/07)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip of each network."""
    optimizer: str = "adam"
    """``adam`` or ``rmsprop`` (alpha 0.99, eps 1e-5, as SB3)."""
    anneal_lr: bool = False
    """Anneal ``lr`` linearly to 0 over the ``learn`` call."""

    ENV_DEFAULTS = {
        "CartPole-v1": dict(n_envs=8, n_steps=5, gamma=0.99, lam=1.0, lr=7e-4, normalize_advantages=False),
        # gSDE as the RL-Zoo: median 760k / 790k steps to -200 on seeds 0-4 in 1M steps, 3 of 5 seeds reach and
        # hold it (benchmarks/README.md). Independent noise reached it on 3 of 5 (485k, held from 775k; compared
        # before each environment, in training and evaluation, got its own seed, and before reset steps left
        # the reward scale)
        "Pendulum-v1": dict(n_envs=8, n_steps=8, gamma=0.9, lam=0.9, lr=2e-3, anneal_lr=True, normalize_obs=True,
                            normalize_reward=True, log_std_init=-0.5, normalize_advantages=False, use_sde=True,
                            sde_sample_freq=4),
    }

    def validate(self):
        super().validate()
        self.require_positive("lr", "max_grad_norm", "vf_coef")
        self.require_nonnegative("ent_coef")
        require(self.optimizer in ("adam", "rmsprop"), "optimizer", self.optimizer, "'adam' or 'rmsprop'")


class A2C(Agent):
    name = "a2c"
    Config = A2CConfig

    def setup(self):
        cfg = self.config
        self.use_optimizer_for_both(cfg.lr, cfg.max_grad_norm, RMSprop if cfg.optimizer == "rmsprop" else Adam)

    def update(self, batch):
        """One update: the combined A2C loss of the module docstring (one step per network). Returns diagnostics."""
        cfg, n = self.config, len(batch.obs_no)
        self.pi_optim.lr = self.vf_optim.lr = self.annealed(cfg.lr, cfg.anneal_lr)
        fwd = self.policy.forward(batch.obs_no)
        pg, pg_cot = weighted_log_prob(fwd.dist, batch.act, self.advantages(batch) / n)
        entropy, ent_cot = mean_entropy(fwd.dist)
        cotangent = add(pg_cot, scale(ent_cot, cfg.ent_coef))
        theta, _ = self.pi_optim.step(self.policy.theta, -self.policy.vjp(fwd, cotangent))  # ascent
        diag = {"surrogate_before": pg}
        self.commit_policy(theta, diag)
        _, v_grad = self.value_fn.loss_grad(batch.obs_no, batch.ret_n)
        self.commit_value(self.vf_optim.step(self.value_fn.theta, cfg.vf_coef * v_grad)[0])
        diag.update(self.policy_stats(batch, fwd.dist))
        diag.update(self.value_stats(batch))
        return diag
