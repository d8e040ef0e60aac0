"""Objectives of a policy's distribution: each returns ``(value, cotangent)``.

Maths: docs/03-policy-gradient.md, docs/07-ppo-and-a2c.md.

Every objective below is a function of the distribution only; the cotangent is
``d value / d dist.params``, a tuple shaped like ``dist.params``, which ``Policy.vjp`` pulls back to
``theta_bar_p`` in one backward pass. Objectives add before the pull-back, so a whole PPO loss
(PPO eq. 9) costs one VJP. Means are over the last axis (the batch), so values come out per agent
when a leading axis of independent agents, ``(S, n)``, is stacked in front.
"""
from __future__ import annotations

import numpy as np


def scale(cotangent, c):
    return tuple(c * t for t in cotangent)


def add(*cotangents):
    return tuple(sum(parts) for parts in zip(*cotangents))


def weighted_log_prob(dist, act, w_n):
    """``sum_i w_i log pi(a_i|s_i)``; its gradient is the REINFORCE estimator when ``w = A / n``."""
    return (w_n * dist.log_prob(act)).sum(axis=-1), weighted_score(dist, act, w_n)


def weighted_score(dist, act, w_n):
    """The cotangent of ``sum_i w_i log pi(a_i|s_i)``: ``w_i d log pi(a_i|s_i) / d params_i``."""
    return tuple(w_n[..., None] * g for g in dist.dlog_prob(act))


def ratio(dist, act, logp_old_n):
    """Importance weight ``r = pi_theta(a|s) / pi_old(a|s)``, shape ``(n,)``."""
    return np.exp(dist.log_prob(act) - logp_old_n)


def surrogate(dist, act, adv_n, logp_old_n):
    """``L(theta) = mean(r A)`` (Kakade & Langford 2002; TRPO eq. 14); ``grad = mean(r A grad log pi)``."""
    r_n = ratio(dist, act, logp_old_n)
    return np.mean(r_n * adv_n, axis=-1), weighted_score(dist, act, r_n * adv_n / r_n.shape[-1])


def clipped_surrogate(dist, act, adv_n, logp_old_n, clip_eps):
    """``L_clip = mean(min(r A, clip(r, 1-eps, 1+eps) A))`` (PPO eq. 7).

    The gradient is ``r A grad log pi`` where the unclipped term is the smaller one and 0 where the
    clip is active (the min picks the constant branch). Returns ``(value, cotangent, clip_frac)``.
    """
    r_n = ratio(dist, act, logp_old_n)
    unclipped_n = r_n * adv_n
    clipped_n = np.clip(r_n, 1.0 - clip_eps, 1.0 + clip_eps) * adv_n
    active_n = unclipped_n <= clipped_n
    w_n = np.where(active_n, unclipped_n, 0.0) / r_n.shape[-1]
    clip_frac = np.mean(np.abs(r_n - 1.0) > clip_eps, axis=-1)
    return np.mean(np.minimum(unclipped_n, clipped_n), axis=-1), weighted_score(dist, act, w_n), clip_frac


def mean_entropy(dist):
    """``mean H[pi(.|s)]`` and its cotangent."""
    return dist.entropy().mean(axis=-1), scale(dist.dentropy(), 1.0 / dist.params[0].shape[-2])


def mean_kl(old, new):
    """``mean KL(pi_old || pi_new)`` and its cotangent in ``new``'s parameters (TRPO eq. 12)."""
    return old.kl(new).mean(axis=-1), scale(old.dkl(new), 1.0 / new.params[0].shape[-2])


def value_loss(v_n, ret_n, v_old_n=None, clip_vf=0.0):
    """``L = mean((V - R)^2)`` and ``dL/dV = 2 (V - R) / n``.

    With ``clip_vf = c > 0``, PPO's clipped value loss (OpenAI Baselines' ppo2):
    ``L = mean(max((V - R)^2, (V_clip - R)^2))`` with ``V_clip = V_old + clip(V - V_old, -c, c)``.
    Where ``|V - V_old| <= c``, ``V_clip = V`` and the gradient is the plain one; beyond it ``V_clip``
    is a constant, so a row whose max picks the clipped term has gradient 0. (Comparing the two
    squares alone is not enough: inside the range ``V_old + (V - V_old)`` can round away from ``V``.)
    """
    err_n = v_n - ret_n
    if clip_vf <= 0:
        return np.mean(err_n**2, axis=-1), 2.0 * err_n / err_n.shape[-1]
    d_n = v_n - v_old_n
    sq_n, sq_clipped_n = err_n**2, (v_old_n + np.clip(d_n, -clip_vf, clip_vf) - ret_n) ** 2
    flat_n = (sq_clipped_n > sq_n) & (np.abs(d_n) > clip_vf)
    return np.mean(np.maximum(sq_n, sq_clipped_n), axis=-1), np.where(flat_n, 0.0, 2.0 * err_n / err_n.shape[-1])
