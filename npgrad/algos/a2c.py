"""Synchronous advantage actor-critic, A2C (Mnih et al. 2016, the synchronous variant of A3C).

Maths: docs/07-ppo-and-a2c.md. Every ``n_steps`` x ``n_envs`` batch takes one gradient step on

    L = -mean(A log pi(a|s)) - c_H mean H[pi(.|s)] + c_V mean((V(s) - R)^2)

with n-step (GAE) returns ``R``. With separate networks (the default) the loss splits into one
optimiser step on each; with ``shared_trunk`` it is one number and one step of one network.
Adam by default, or RMSprop as in the A3C paper and SB3 (``optimizer="rmsprop"``), which on
Pendulum learned less well here (docs/07).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, require
from ..objectives import add, mean_entropy, weighted_log_prob
from ..solvers import Adam, RMSprop
from .common import (UpdateRule, advantages, annealed, column, commit, policy_stats, scale_agents, shared_trunk_loss,
                     value_stats)


@dataclass
class A2CConfig(Config):
    lr: float = 7e-4
    """Learning rate of both networks (1e-4-3e-3); annealed linearly to 0 if ``anneal_lr``."""
    ent_coef: float = 0.0
    """c_H, entropy bonus (0-0.01)."""
    vf_coef: float = 0.5
    """c_V, value-loss weight. With separate networks it scales the value network's gradient, which its own
    optimiser normalises, so c_V only meets the clip and eps (docs/07); with ``shared_trunk`` it weighs the
    value loss against the policy's in the one loss."""
    shared_trunk: bool = False
    """One MLP for policy and value (two heads on one trunk), one optimiser on the combined loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip of each network."""
    optimizer: str = "adam"
    """``adam`` or ``rmsprop`` (alpha 0.99, eps 1e-5, as SB3)."""
    anneal_lr: bool = False
    """Anneal ``lr`` linearly to 0 over the ``learn`` call."""

    algo = "a2c"
    ALIASES = {**Config.ALIASES, "learning_rate": "lr"}
    """SB3's A2C names."""
    REQUIRES = {**Config.REQUIRES, "vf_hidden": ("shared_trunk", False)}

    def validate(self):
        super().validate()
        self.require_positive("lr", "max_grad_norm", "vf_coef")
        self.require_nonnegative("ent_coef")
        require(self.optimizer in ("adam", "rmsprop"), "optimizer", self.optimizer, "'adam' or 'rmsprop'")


class A2CUpdate(UpdateRule):
    """A2C's update rule; its state is the optimiser(s)."""

    Config = A2CConfig

    def __init__(self, config, model):
        self.config = config
        optimizer = RMSprop if config.optimizer == "rmsprop" else Adam
        owners = {"pi_optim": model.policy} if model.shared else {"pi_optim": model.policy, "vf_optim": model.value}
        self.optims = {name: optimizer(owner.theta.shape, lr=config.lr, max_grad_norm=config.max_grad_norm)
                       for name, owner in owners.items()}

    def update(self, model, batch, rng, schedule):
        """One step on the loss of the module docstring. Returns diagnostics."""
        cfg, policy, u_n = self.config, model.policy, batch.u_n
        for optim in self.optims.values():
            optim.lr = annealed(cfg.lr, cfg.anneal_lr, schedule)
        fwd = policy.forward(batch.obs_no)
        pg, pg_cot = weighted_log_prob(fwd.dist, batch.act, advantages(batch, cfg.normalize_advantages) * u_n)
        entropy, ent_cot = mean_entropy(fwd.dist, u_n)
        objective, cot = pg + cfg.ent_coef * entropy, add(pg_cot, scale_agents(ent_cot, cfg.ent_coef))
        info = {"surrogate_before": pg}
        if model.shared:
            info["loss"], grad_p, _ = shared_trunk_loss(policy, fwd, objective, cot, batch.ret_n, cfg.vf_coef, u_n=u_n)
            commit(policy, self.optims["pi_optim"].step(policy.theta, grad_p)[0], info)
        else:
            commit(policy, self.optims["pi_optim"].step(policy.theta, -policy.vjp(fwd, cot))[0], info)  # ascent
            _, v_grad_p = model.value.loss_grad(batch.obs_no, batch.ret_n, u_n=u_n)
            commit(model.value, self.optims["vf_optim"].step(model.value.theta, column(cfg.vf_coef) * v_grad_p)[0], {})
        info.update(policy_stats(fwd.dist, policy.distribution(batch.obs_no), u_n))
        info.update(value_stats(batch))
        return info
