"""Proximal policy optimisation (Schulman et al. 2017): clipped surrogate or adaptive KL penalty.

Maths: docs/07-ppo-and-a2c.md. Per update, for ``n_epochs`` passes over shuffled minibatches:

    clip:        maximise  mean(min(r A, clip(r, 1-eps, 1+eps) A)) + c_H H            (PPO eq. 7)
    kl_penalty:  maximise  mean(r A) - beta KL(pi_old || pi_theta) + c_H H            (PPO eq. 8)

then, for the penalty, ``beta /= 2`` if KL < target / 1.5 and ``beta *= 2`` if KL > 1.5 target.
The value function is regressed on the same minibatches with its own Adam.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config, require
from ..policy import add, clipped_surrogate, mean_entropy, mean_kl, scale, surrogate
from ..train import Agent, minibatches, standardize


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
    max_grad_norm: float = 0.5
    """Global gradient-norm clip of each network's minibatch gradient."""
    target_kl: float = 0.0
    """Stop the epochs early once the approximate KL exceeds this; also the penalty's KL target. 0: never stop."""
    kl_beta_init: float = 1.0
    """beta at the start (``kl_penalty`` only)."""
    kl_target: float = 0.01
    """d_targ, the KL the penalty aims at (``kl_penalty`` only)."""
    anneal_lr: bool = False
    anneal_clip: bool = False

    ENV_DEFAULTS = {
        # RL-Zoo's CartPole settings (a batch of 256, gamma 0.98, lambda 0.8, linear schedules), changed where it is
        # faster at the same steps or fewer: the batch from 16 envs x 16 steps (not 8 x 32: the vector env costs about
        # the same per vector step), and 5 epochs of 4 minibatches of 64 at 5x the learning rate (not 20 epochs of 1
        # minibatch of 256: the same number of gradient steps on a quarter of the rows). Median 10k/10k steps to 475
        # on seeds 0-19 at a 100k budget, every final 500 (benchmarks/README.md)
        "CartPole-v1": dict(n_envs=16, n_steps=16, minibatch_size=64, n_epochs=5, gamma=0.98, lam=0.8,
                            lr=5e-3, anneal_lr=True, anneal_clip=True),
        # gSDE as the RL-Zoo, 8 x 256 transitions per update: median 27k/37k steps to -200 on seeds 0-19
        # (benchmarks/README.md). Against 8 x 128, compared before each training environment got its own seed:
        # 20k/20k against 20k/78k on seeds 20-39 (tuned there; 6 seeds never hold -200 against 8), 27k/66k against
        # 31k/68k on seeds 0-19. 60k/never on 0-4 with use_sde=False (compared on the evaluation episodes used
        # before each evaluation environment got its own seed, which were easier for seeds 0-4)
        "Pendulum-v1": dict(n_envs=8, n_steps=256, minibatch_size=128, n_epochs=10, gamma=0.9, lam=0.95,
                            lr=1e-3, anneal_lr=True, normalize_obs=True, normalize_reward=True, log_std_init=-0.5,
                            use_sde=True, sde_sample_freq=4),
    }

    def validate(self):
        super().validate()
        require(self.objective in ("clip", "kl_penalty"), "objective", self.objective, "'clip' or 'kl_penalty'")
        self.require_positive("lr", "clip_range", "max_grad_norm", "kl_beta_init", "kl_target")
        self.require_nonnegative("clip_range_vf", "ent_coef", "target_kl")
        self.warn_beyond_batch("minibatch_size")


class PPO(Agent):
    name = "ppo"
    Config = PPOConfig

    def setup(self):
        self.use_optimizer_for_both(self.config.lr, self.config.max_grad_norm)
        self.beta = self.config.kl_beta_init

    def extra_state(self):
        return {"beta": self.beta}

    def load_extra_state(self, state):
        self.beta = state.get("beta", self.config.kl_beta_init)

    def policy_objective(self, dist, old_all, batch, idx, adv_n, clip_eps):
        """The objective on rows ``idx`` to maximise and its cotangent (PPO eq. 7 or 8, plus entropy)."""
        act, logp_old = batch.act[idx], batch.logp_n[idx]
        if self.config.objective == "clip":
            value, cot, clip_frac = clipped_surrogate(dist, act, adv_n, logp_old, clip_eps)
        else:
            value, cot = surrogate(dist, act, adv_n, logp_old)
            kl, kl_cot = mean_kl(old_all[idx], dist)  # the objective's only use of pi_old beyond logp_old
            value, cot, clip_frac = value - self.beta * kl, add(cot, scale(kl_cot, -self.beta)), 0.0
        if self.config.ent_coef == 0:
            return value, cot, clip_frac
        entropy, ent_cot = mean_entropy(dist)
        return value + self.config.ent_coef * entropy, add(cot, scale(ent_cot, self.config.ent_coef)), clip_frac

    def value_step(self, batch, idx, clip_vf):
        """One Adam step on ``mean((V - R)^2)``, or its clipped form ``mean(max((V-R)^2, (V_clip-R)^2))``."""
        _, grad = self.value_fn.loss_grad(batch.obs_no[idx], batch.ret_n[idx], batch.val_n[idx], clip_vf)
        self.commit_value(self.vf_optim.step(self.value_fn.theta, grad)[0])

    def update(self, batch):
        """One update: n_epochs of minibatch Adam steps on PPO eq. 7 or 8 (module docstring), V on the same
        minibatches. Returns diagnostics."""
        cfg = self.config
        self.pi_optim.lr = self.vf_optim.lr = self.annealed(cfg.lr, cfg.anneal_lr)
        clip_eps = self.annealed(cfg.clip_range, cfg.anneal_clip)
        old_all = self.policy.distribution(batch.obs_no)
        diag = self.value_stats(batch)
        before, _, _ = self.policy_objective(old_all, old_all, batch, slice(None), batch.adv_n, clip_eps)
        clip_fracs, epochs = [], 0
        for epochs in range(1, cfg.n_epochs + 1):
            for idx in minibatches(len(batch.obs_no), cfg.minibatch_size, self.rng):
                adv_n = standardize(batch.adv_n[idx]) if cfg.normalize_advantages else batch.adv_n[idx]
                fwd = self.policy.forward(batch.obs_no[idx])
                _, cot, clip_frac = self.policy_objective(fwd.dist, old_all, batch, idx, adv_n, clip_eps)
                if "first_ratio_deviation" not in diag:  # sanity check: r == 1 and KL == 0 before any step
                    r_n = np.exp(fwd.dist.log_prob(batch.act[idx]) - batch.logp_n[idx])
                    diag.update(first_ratio_deviation=float(np.max(np.abs(r_n - 1.0))),
                                first_kl=float(np.max(np.abs(old_all[idx].kl(fwd.dist)))))
                theta, _ = self.pi_optim.step(self.policy.theta, -self.policy.vjp(fwd, cot))  # ascent
                self.commit_policy(theta, diag)
                self.value_step(batch, idx, cfg.clip_range_vf)
                clip_fracs.append(clip_frac)
            if cfg.target_kl > 0 and cfg.objective == "clip":  # early stop: needs the KL after every epoch
                if approx_kl_of(self.policy.distribution(batch.obs_no), batch) > 1.5 * cfg.target_kl:
                    break
        new_all = self.policy.distribution(batch.obs_no)
        approx_kl = approx_kl_of(new_all, batch)
        diag.update(self.policy_stats(batch, old_all, new_all))
        after, _, _ = self.policy_objective(new_all, old_all, batch, slice(None), batch.adv_n, clip_eps)
        diag.update(surrogate_before=before, surrogate_after=after, approx_kl=approx_kl,
                    clip_fraction=float(np.mean(clip_fracs)), epochs=epochs, lr=self.pi_optim.lr,
                    clip_range=clip_eps)
        if cfg.objective == "kl_penalty":
            self.beta = adapt_beta(self.beta, diag["kl"], cfg.kl_target)
            diag["beta"] = self.beta
        return diag


def approx_kl_of(new, batch):
    """``mean((r - 1) - log r)``: an unbiased, non-negative estimate of KL(old || new) (Schulman 2020)."""
    log_r_n = new.log_prob(batch.act) - batch.logp_n
    return float(np.mean(np.expm1(log_r_n) - log_r_n))


def adapt_beta(beta, kl, kl_target):
    """PPO section 4: ``beta / 2`` if ``KL < d_targ / 1.5``; ``beta * 2`` if ``KL > 1.5 d_targ``."""
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > kl_target * 1.5:
        return beta * 2.0
    return beta
