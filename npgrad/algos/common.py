"""What several update rules share, each imported by name: minibatches, advantage standardisation,
schedules, "commit if finite", value regression and the statistics every update reports.

An update reports a refusal by setting ``info["update_failed"]`` (the first reason is kept); the
loop's progress record counts it, once per update.
"""
from __future__ import annotations

import numpy as np

from ..objectives import mean, row_weights, scale, value_loss


class UpdateRule:
    """What every update rule shares: its optimisers live in ``self.optims`` and are saved by name."""

    def state(self):
        return {name: optim.state() for name, optim in self.optims.items()}

    def load_state(self, state):
        for name, optim in self.optims.items():
            optim.load_state(state[name])


def minibatches(n, size, rng):
    """Shuffled index arrays covering ``range(n)`` in chunks of ``size`` (the last may be smaller)."""
    perm = rng.permutation(n)
    return [perm[i:i + size] for i in range(0, n, size)]


def standardize(x_n, u_n=None, eps=1e-8):
    """``(x - mean) / (std + eps)`` over the last axis, the moments weighted by ``u`` if given (reset steps, weight
    0, do not count); the ``eps`` guards a batch whose advantages are all equal."""
    d_n = x_n - mean(x_n, u_n)[..., None]
    return d_n / (np.sqrt(mean(d_n * d_n, u_n))[..., None] + eps)


def advantages(batch, normalize, idx=None):
    """The advantages of the batch's rows ``idx`` (default: all), standardised over those rows if ``normalize``."""
    adv_n = batch.adv_n if idx is None else batch.adv_n[idx]
    return standardize(adv_n, batch.u_n if idx is None else row_weights(batch.valid_n[idx])) if normalize else adv_n


def annealed(value, anneal, schedule):
    """``value * schedule`` if ``anneal`` (``schedule`` runs from 1 to 0 over a ``learn`` call: SB3's
    ``lin_<value>``), else ``value``."""
    return value * schedule if anneal else value


def explained_variance(pred_n, target_n):
    """``1 - Var[target - pred] / Var[target]``: 1 is perfect, 0 is no better than a constant."""
    var = np.var(target_n)
    return float("nan") if var == 0 else float(1.0 - np.var(target_n - pred_n) / var)


def fail(info, why):
    """Record that this update kept (some of) the last good parameters, and why (the first reason stays)."""
    info.setdefault("update_failed", why)


def commit(owner, theta_p, info, why="non-finite parameters"):
    """``owner.theta = theta_p`` (projected into the policy's range) if every entry is finite; otherwise keep
    the last good parameters and say so in ``info``. Returns whether ``theta_p`` was accepted."""
    if not np.all(np.isfinite(theta_p)):
        fail(info, why)
        return False
    owner.theta = owner.project(theta_p)
    return True


def value_stats(batch):
    """Value loss and explained variance of the value function that collected ``batch`` (on its transitions)."""
    val_n, ret_n = batch.val_n[batch.valid_n], batch.ret_n[batch.valid_n]
    return {"value_loss": float(np.mean((val_n - ret_n) ** 2)) if len(val_n) else float("nan"),
            "explained_variance": explained_variance(val_n, ret_n) if len(val_n) else float("nan")}


def policy_stats(old, new, u_n=None):
    """Mean ``KL(old || new)`` and the new entropy, for distributions on the same rows."""
    return {"kl": float(mean(old.kl(new), u_n)), "entropy": float(mean(new.entropy(), u_n))}


def fit_value_function(value, optim, batch, cfg, rng):
    """Regress ``V`` on the value targets, ``min mean((V(s) - R)^2)``, with ``cfg.vf_epochs`` passes of
    ``cfg.vf_minibatch_size`` minibatch ``optim`` steps (a non-finite step is skipped). Returns the
    statistics of the value that collected ``batch``."""
    for _ in range(cfg.vf_epochs):
        for idx in minibatches(len(batch.obs_no), cfg.vf_minibatch_size, rng):
            _, grad_p = value.loss_grad(batch.obs_no[idx], batch.ret_n[idx], u_n=row_weights(batch.valid_n[idx]))
            commit(value, optim.step(value.theta, grad_p)[0], {})
    return value_stats(batch)


def shared_trunk_loss(policy, fwd, objective, objective_cot, ret_n, vf_coef, v_old_n=None, clip_vf=0.0, u_n=None):
    """``L = -J + c_V L^VF`` as one number, and its gradient by one VJP through the shared trunk.

    ``J`` is the policy's objective to maximise with its entropy bonus already in it, so ``-L`` is
    PPO's eq. 9, ``L^CLIP - c_1 L^VF + c_2 S``, and ``L`` is A2C's loss ``-mean(A log pi) - c_H H +
    c_V mean((V - R)^2)`` (Deep RL Bootcamp, lab 4). ``V`` is the policy network's last output.
    Returns ``(L, dL/dtheta (p,), L^VF)``.
    """
    v_n = fwd.out_no[..., -1].astype(np.float64)
    vf_loss, v_bar_n = value_loss(v_n, ret_n, v_old_n, clip_vf, u_n)
    grad_p = policy.vjp(fwd, scale(objective_cot, -1.0), vf_coef * v_bar_n)
    return -objective + vf_coef * vf_loss, grad_p, vf_loss
