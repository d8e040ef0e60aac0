"""Objectives of a policy's distribution: each returns ``(value, cotangent)``.

Maths: docs/03-policy-gradient.md, docs/07-ppo-and-a2c.md.

Every objective below is a function of the distribution only; the cotangent is
``d value / d dist.params``, a tuple shaped like ``dist.params``, which ``Policy.vjp`` pulls back to
``theta_bar_p`` in one backward pass. Objectives add before the pull-back, so a whole PPO loss
(PPO eq. 9) costs one VJP. Means are over the last axis (the batch), so values come out per agent
when a leading axis of independent agents, ``(S, n)``, is stacked in front; ``u_n``, if given, weighs the rows
(weights summing to 1 over the batch, 0 for a rollout's reset steps) in place of the plain mean.
"""
from __future__ import annotations

import numpy as np


def scale(cotangent, c):
    return tuple(c * t for t in cotangent)


def add(*cotangents):
    return tuple(sum(parts) for parts in zip(*cotangents))


def scale_rows(cotangent, u):
    """Each row of a cotangent times its weight: ``u`` a number, or one weight per row ``(..., n)``."""
    return scale(cotangent, u) if np.ndim(u) == 0 else tuple(u[..., None] * t for t in cotangent)


def weighted_log_prob(dist, act, w_n):
    """``sum_i w_i log pi(a_i|s_i)``; its gradient is the REINFORCE estimator when ``w = A / n``."""
    return (w_n * dist.log_prob(act)).sum(axis=-1), weighted_score(dist, act, w_n)


def weighted_score(dist, act, w_n):
    """The cotangent of ``sum_i w_i log pi(a_i|s_i)``: ``w_i d log pi(a_i|s_i) / d params_i``."""
    return scale_rows(dist.dlog_prob(act), w_n)


def mean(x_n, u_n=None):
    """The batch mean of ``x`` over the last axis, or ``sum_i u_i x_i`` with row weights ``u`` that sum to 1 (a
    rollout's reset steps, which are no transition, have weight 0: ``npgrad/rollout.py``)."""
    return np.mean(x_n, axis=-1) if u_n is None else (u_n * x_n).sum(axis=-1)


def row_weights(valid_n):
    """``u = valid / sum(valid)`` over the last axis: the weights of a mean over the valid rows (all 0 if none is)."""
    valid_n = np.asarray(valid_n, dtype=np.float64)
    return valid_n / np.maximum(valid_n.sum(axis=-1, keepdims=True), 1.0)


def mean_weights(x_n, u_n=None):
    """``d mean(x) / d x``: ``1 / n`` per row, or the weights ``u``."""
    return 1.0 / x_n.shape[-1] if u_n is None else u_n


def ratio(dist, act, logp_old_n):
    """Importance weight ``r = pi_theta(a|s) / pi_old(a|s)``, shape ``(n,)``."""
    return np.exp(dist.log_prob(act) - logp_old_n)


def surrogate(dist, act, adv_n, logp_old_n, u_n=None):
    """``L(theta) = mean(r A)`` (Kakade & Langford 2002; TRPO eq. 14); ``grad = mean(r A grad log pi)``."""
    r_n = ratio(dist, act, logp_old_n)
    return mean(r_n * adv_n, u_n), weighted_score(dist, act, r_n * adv_n * mean_weights(r_n, u_n))


def clipped_surrogate(dist, act, adv_n, logp_old_n, clip_eps, u_n=None):
    """``L_clip = mean(min(r A, clip(r, 1-eps, 1+eps) A))`` (PPO eq. 7).

    The gradient is ``r A grad log pi`` where the unclipped term is the smaller one and 0 where the
    clip is active (the min picks the constant branch). Returns ``(value, cotangent, clip_frac)``.
    ``clip_eps`` may be one per agent, ``(S, 1)``.
    """
    r_n = ratio(dist, act, logp_old_n)
    unclipped_n = r_n * adv_n
    clipped_n = np.clip(r_n, 1.0 - clip_eps, 1.0 + clip_eps) * adv_n
    active_n = unclipped_n <= clipped_n
    w_n = np.where(active_n, unclipped_n, 0.0) * mean_weights(r_n, u_n)
    clip_frac = mean(np.abs(r_n - 1.0) > clip_eps, u_n)
    return mean(np.minimum(unclipped_n, clipped_n), u_n), weighted_score(dist, act, w_n), clip_frac


def mean_entropy(dist, u_n=None):
    """``mean H[pi(.|s)]`` and its cotangent."""
    h_n = dist.entropy()
    return mean(h_n, u_n), scale_rows(dist.dentropy(), mean_weights(h_n, u_n))


def mean_kl(old, new, u_n=None):
    """``mean KL(pi_old || pi_new)`` and its cotangent in ``new``'s parameters (TRPO eq. 12)."""
    kl_n = old.kl(new)
    return mean(kl_n, u_n), scale_rows(old.dkl(new), mean_weights(kl_n, u_n))


def value_loss(v_n, ret_n, v_old_n=None, clip_vf=0.0, u_n=None):
    """``L = mean((V - R)^2)`` and ``dL/dV = 2 (V - R) / n`` (or weighted by ``u``).

    With ``clip_vf = c > 0``, PPO's clipped value loss (OpenAI Baselines' ppo2):
    ``L = mean(max((V - R)^2, (V_clip - R)^2))`` with ``V_clip = V_old + clip(V - V_old, -c, c)``.
    Where ``|V - V_old| <= c``, ``V_clip = V`` and the gradient is the plain one; beyond it ``V_clip``
    is a constant, so a row whose max picks the clipped term has gradient 0. (Comparing the two
    squares alone is not enough: inside the range ``V_old + (V - V_old)`` can round away from ``V``.)
    """
    err_n = v_n - ret_n
    grad_n = 2.0 * err_n * mean_weights(err_n, u_n)
    if (np.asarray(clip_vf) <= 0).all():
        return mean(err_n**2, u_n), grad_n
    d_n, clipping = v_n - v_old_n, np.asarray(clip_vf) > 0  # agents of a population may clip or not
    sq_n, sq_clipped_n = err_n**2, (v_old_n + np.clip(d_n, -clip_vf, clip_vf) - ret_n) ** 2
    flat_n = (sq_clipped_n > sq_n) & (np.abs(d_n) > clip_vf) & clipping
    return mean(np.where(clipping, np.maximum(sq_n, sq_clipped_n), sq_n), u_n), np.where(flat_n, 0.0, grad_n)
