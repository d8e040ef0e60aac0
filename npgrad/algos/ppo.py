"""Proximal policy optimisation (Schulman et al. 2017): clipped surrogate or adaptive KL penalty.

Maths: docs/07-ppo-and-a2c.md. Per update, for ``n_epochs`` passes over shuffled minibatches:

    clip:        maximise  mean(min(r A, clip(r, 1-eps, 1+eps) A)) + c_H H            (PPO eq. 7)
    kl_penalty:  maximise  mean(r A) - beta KL(pi_old || pi_theta) + c_H H            (PPO eq. 8)

then, for the penalty, ``beta /= 2`` if KL < target / 1.5 and ``beta *= 2`` if KL > 1.5 target.
With separate networks the value function takes its own Adam step on each minibatch; with
``shared_trunk`` one network maximises eq. 9, ``L^CLIP - c_V L^VF + c_H H``, in one step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config, require
from ..objectives import add, clipped_surrogate, mean, mean_entropy, mean_kl, row_weights, surrogate
from ..solvers import Adam
from .common import (UpdateRule, advantages, annealed, column, commit, leading, minibatches, policy_stats,
                     scale_agents, shared_trunk_loss, value_stats)


@dataclass
class PPOConfig(Config):
    objective: str = "clip"
    """``clip`` (PPO-clip) or ``kl_penalty`` (adaptive KL penalty)."""
    lr: float = 3e-4
    """Adam learning rate of policy and value (1e-4-5e-3); annealed linearly to 0 if ``anneal_lr``."""
    n_epochs: int = 10
    """K, passes over the batch per update (3-30)."""
    minibatch_size: int = 64
    """Transitions per gradient step (32-4096, at most the batch ``n_envs * n_steps``)."""
    clip_range: float = 0.2
    """epsilon, the clip range of the ratio (0.1-0.3); annealed linearly to 0 if ``anneal_clip``."""
    clip_range_vf: float = 0.0
    """Clip range of the value update around the old values; 0 disables value clipping (the default)."""
    ent_coef: float = 0.0
    """c_H, entropy bonus coefficient (0-0.01)."""
    shared_trunk: bool = False
    """One MLP for policy and value (a policy head and a value head on one trunk), trained on eq. 9 with one
    Adam; the default is two networks with an Adam each."""
    vf_coef: float = 0.5
    """c_V (eq. 9's c_1), the value loss's weight in the shared trunk's loss (0.25-1)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip of each network's minibatch gradient (of the one network's, if shared)."""
    target_kl: float = 0.0
    """Stop the epochs early once the approximate KL exceeds 1.5 times this (``clip`` only). 0: never stop."""
    kl_beta_init: float = 1.0
    """beta at the start (``kl_penalty`` only)."""
    kl_target: float = 0.01
    """d_targ, the KL the penalty aims at (``kl_penalty`` only)."""
    anneal_lr: bool = False
    """Anneal ``lr`` linearly to 0 over the ``learn`` call (SB3's ``lin_<lr>``; the first update takes the whole
    ``lr``, as CleanRL's ``anneal_lr``)."""
    anneal_clip: bool = False
    """Anneal ``clip_range`` linearly to 0 over the ``learn`` call (``clip`` only)."""

    algo = "ppo"
    ALIASES = {**Config.ALIASES, "learning_rate": "lr", "batch_size": "minibatch_size"}
    """SB3's PPO names: its ``batch_size`` is the minibatch."""
    REQUIRES = {**Config.REQUIRES, "kl_beta_init": ("objective", "kl_penalty"),
                "kl_target": ("objective", "kl_penalty"), "clip_range": ("objective", "clip"),
                "anneal_clip": ("objective", "clip"), "target_kl": ("objective", "clip"),
                "vf_coef": ("shared_trunk", True), "vf_hidden": ("shared_trunk", False)}

    def validate(self):
        super().validate()
        require(self.objective in ("clip", "kl_penalty"), "objective", self.objective, "'clip' or 'kl_penalty'")
        self.require_positive("lr", "clip_range", "max_grad_norm", "kl_beta_init", "kl_target", "vf_coef")
        self.require_nonnegative("clip_range_vf", "ent_coef", "target_kl")
        self.warn_beyond_batch("minibatch_size")


class PPOUpdate(UpdateRule):
    """PPO's update rule; its state is the Adam optimiser(s) and the penalty's ``beta``."""

    Config = PPOConfig

    def __init__(self, config, model):
        self.config, self.beta = config, np.full(leading(model), config.kl_beta_init, dtype=np.float64)
        optimiser = lambda owner: Adam(owner.theta.shape, lr=config.lr, max_grad_norm=config.max_grad_norm)  # noqa: E731
        self.optims = {"pi_optim": optimiser(model.policy)}
        if not model.shared:
            self.optims["vf_optim"] = optimiser(model.value)

    def policy_objective(self, dist, old_all, batch, idx, adv_n, clip_eps, u_n):
        """The objective on rows ``idx`` (weights ``u_n``) to maximise and its cotangent (PPO eq. 7 or 8, plus
        entropy)."""
        cfg, act, logp_old = self.config, batch.act[idx], batch.logp_n[idx]
        if cfg.objective == "clip":
            value, cot, clip_frac = clipped_surrogate(dist, act, adv_n, logp_old, column(clip_eps), u_n)
        else:
            value, cot = surrogate(dist, act, adv_n, logp_old, u_n)
            kl, kl_cot = mean_kl(old_all[idx], dist, u_n)  # the objective's only use of pi_old beyond logp_old
            value, cot, clip_frac = value - self.beta * kl, add(cot, scale_agents(kl_cot, -self.beta)), 0.0 * kl
        if (np.asarray(cfg.ent_coef) == 0).all():
            return value, cot, clip_frac
        entropy, ent_cot = mean_entropy(dist, u_n)
        return value + cfg.ent_coef * entropy, add(cot, scale_agents(ent_cot, cfg.ent_coef)), clip_frac

    def step(self, model, fwd, objective, cot, batch, idx, u_n, info, active):
        """One Adam step of each network on its loss, or of the shared network on eq. 9's (for the ``active``
        agents)."""
        cfg, policy = self.config, model.policy
        if model.shared:
            _, grad_p, _ = shared_trunk_loss(policy, fwd, objective, cot, batch.ret_n[idx], cfg.vf_coef,
                                             batch.val_n[idx], cfg.clip_range_vf, u_n)
            commit(policy, self.optims["pi_optim"].step(policy.theta, grad_p, active)[0], info, active=active)
            return
        theta_p, _ = self.optims["pi_optim"].step(policy.theta, -policy.vjp(fwd, cot), active)  # ascent
        commit(policy, theta_p, info, active=active)
        _, v_grad_p = model.value.loss_grad(batch.obs_no[idx], batch.ret_n[idx], batch.val_n[idx],
                                            column(cfg.clip_range_vf), u_n=u_n)
        commit(model.value, self.optims["vf_optim"].step(model.value.theta, v_grad_p, active)[0], {}, active=active)

    def update(self, model, batch, rng, schedule):
        """n_epochs of minibatch Adam steps on PPO eq. 7 or 8 (module docstring). Returns diagnostics."""
        cfg, policy = self.config, model.policy
        lr = annealed(cfg.lr, cfg.anneal_lr, schedule)
        for optim in self.optims.values():
            optim.lr = lr
        clip_eps = annealed(cfg.clip_range, cfg.anneal_clip, schedule)
        old_all = policy.distribution(batch.obs_no)
        info = value_stats(batch)
        adv_all_n = advantages(batch, cfg.normalize_advantages)  # the scale the minibatches optimise, for the report
        before, _, _ = self.policy_objective(old_all, old_all, batch, slice(None), adv_all_n, clip_eps, batch.u_n)
        active = np.ones(leading(model), dtype=bool)  # agents still in their epochs (target_kl stops them early)
        epochs, clip_fracs, stepped = np.zeros(active.shape, dtype=np.int64), [], []
        for epoch in range(1, cfg.n_epochs + 1):
            for idx in minibatches(batch.obs_no.shape[-2], cfg.minibatch_size, rng, active):
                u_n, adv_n = row_weights(batch.valid_n[idx]), advantages(batch, cfg.normalize_advantages, idx)
                fwd = policy.forward(batch.obs_no[idx])
                objective, cot, clip_frac = self.policy_objective(fwd.dist, old_all, batch, idx, adv_n, clip_eps, u_n)
                if "first_ratio_deviation" not in info:  # sanity check: r == 1 and KL == 0 before any step
                    r_n = np.exp(fwd.dist.log_prob(batch.act[idx]) - batch.logp_n[idx])
                    info.update(first_ratio_deviation=np.max(np.abs(r_n - 1.0), axis=-1),
                                first_kl=np.max(np.abs(old_all[idx].kl(fwd.dist)), axis=-1))
                self.step(model, fwd, objective, cot, batch, idx, u_n, info, active)
                clip_fracs.append(clip_frac)
                stepped.append(active.copy())
            epochs = np.where(active, epoch, epochs)
            if cfg.objective == "clip" and np.any(np.asarray(cfg.target_kl) > 0):  # early stop: the KL after each epoch
                kl = approx_kl_of(policy.distribution(batch.obs_no), batch)
                active &= ~((np.asarray(cfg.target_kl) > 0) & (kl > 1.5 * np.asarray(cfg.target_kl)))
                if not active.any():
                    break
        new_all = policy.distribution(batch.obs_no)
        info.update(policy_stats(old_all, new_all, batch.u_n))
        after, _, _ = self.policy_objective(new_all, old_all, batch, slice(None), adv_all_n, clip_eps, batch.u_n)
        info.update(surrogate_before=before, surrogate_after=after, approx_kl=approx_kl_of(new_all, batch),
                    clip_fraction=mean_of_steps(clip_fracs, stepped), epochs=epochs, lr=lr, clip_range=clip_eps)
        if cfg.objective == "kl_penalty":
            self.beta = adapt_beta(self.beta, info["kl"], cfg.kl_target)
            info["beta"] = self.beta
        return info

    def state(self):
        return {**super().state(), "beta": np.array(self.beta)}

    def load_state(self, state):
        super().load_state(state)
        self.beta = np.array(state["beta"], dtype=np.float64)


def mean_of_steps(values, stepped):
    """Each agent's mean of ``values`` (one per minibatch step) over the steps it took."""
    values_k, stepped_k = np.array(values, dtype=np.float64), np.array(stepped)
    if values_k.ndim == 1:
        return np.mean(values_k)
    return np.array([np.mean(v[s]) for v, s in zip(values_k.T, stepped_k.T)])


def approx_kl_of(new, batch):
    """``mean((r - 1) - log r)``: an unbiased, non-negative estimate of KL(old || new) (Schulman 2020)."""
    log_r_n = new.log_prob(batch.act) - batch.logp_n
    return mean(np.expm1(log_r_n) - log_r_n, batch.u_n)


def adapt_beta(beta, kl, kl_target):
    """PPO section 4: ``beta / 2`` if ``KL < d_targ / 1.5``; ``beta * 2`` if ``KL > 1.5 d_targ`` (per agent)."""
    return np.where(kl < kl_target / 1.5, beta / 2.0, np.where(kl > kl_target * 1.5, beta * 2.0, beta))
