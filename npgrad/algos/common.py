"""What several update rules share, each imported by name: minibatches, advantage standardisation,
schedules, "commit if finite", value regression and the statistics every update reports.

An update reports a refusal by setting ``info["update_failed"]`` (the first reason is kept); the
loop's progress record counts it, once per update.

Every rule updates one agent or a stack of ``S`` agents (a population, ``npgrad/population.py``) with
the same code: parameters ``(S, p)``, a batch ``(S, n, ...)``, hyperparameters that are numbers of the
update one per agent (``(S,)`` arrays) or one for all, and control flow that differs per agent (an
early stop, a rejected step, a non-finite update) as boolean masks of shape ``(S,)``. For one agent
every such value has shape ``()``. Each agent's arithmetic is the one it would do alone.
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


def minibatches(n, size, rng, active=None):
    """Shuffled indices covering ``range(n)`` in chunks of ``size`` (the last may be smaller), as indices into a
    batch's rows: ``(m,)``, or for a stack of agents (``rng`` a ``npgrad.rngs.Generators``) each agent's own
    ``(S, m)`` chunk, ready for ``batch.obs_no[idx]`` and ``dist[idx]``. Agents not ``active`` draw nothing."""
    perm = rng.permutation(n) if np.ndim(active) == 0 else rng.permutation(n, where=active)
    return [agent_rows(perm[..., i:i + size]) for i in range(0, n, size)]


def agent_rows(idx):
    """An index into a batch's rows: ``idx`` itself for one agent, ``(agents, idx)`` for a stack ``(S, m)``."""
    return idx if idx.ndim == 1 else (np.arange(len(idx))[:, None], idx)


def leading(model):
    """The shape of a model's leading agent axes: ``()`` for one agent, ``(S,)`` for a stack."""
    return model.policy.theta.shape[:-1]


def column(c):
    """A number per agent, ``(S,)`` or ``()``, as a column that broadcasts against per-row arrays ``(S, n)``."""
    return np.asarray(c)[..., None]


def scale_agents(cotangent, c):
    """A cotangent times a number per agent (``c`` of shape ``()`` or ``(S,)``)."""
    return tuple(np.reshape(c, np.shape(c) + (1,) * (t.ndim - np.ndim(c))) * t for t in cotangent)


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


def fail(info, why, where=True):
    """Record that this update kept (some of) the last good parameters, and why (the first reason stays); for a
    stack, of the agents ``where`` says (``info["update_failed"]`` is then one reason or None per agent)."""
    where = np.asarray(where)
    if where.ndim == 0:
        if where:
            info.setdefault("update_failed", why)
        return
    failed = info.setdefault("update_failed", np.full(where.shape, None, dtype=object))
    failed[where & np.equal(failed, None)] = why


def commit(owner, theta_p, info, why="non-finite parameters", active=True):
    """``owner.theta = theta_p`` (projected into the policy's range) for every agent whose new parameters are all
    finite (and that is ``active``); the others keep their last good parameters, which ``info`` says. Returns the
    mask of agents that took ``theta_p``."""
    take = np.isfinite(theta_p).all(axis=-1) & active
    if take.all():
        owner.theta = owner.project(theta_p)
        return take
    fail(info, why, active & ~take)
    if take.any():
        owner.theta = np.where(take[..., None], owner.project(np.where(take[..., None], theta_p, owner.theta)),
                               owner.theta)
    return take


def value_stats(batch):
    """Value loss and explained variance of the value function that collected ``batch`` (on its transitions;
    per agent of a stack)."""
    def one(val_n, ret_n, valid_n):
        val_n, ret_n = val_n[valid_n], ret_n[valid_n]
        return {"value_loss": float(np.mean((val_n - ret_n) ** 2)) if len(val_n) else float("nan"),
                "explained_variance": explained_variance(val_n, ret_n) if len(val_n) else float("nan")}

    if batch.valid_n.ndim == 1:
        return one(batch.val_n, batch.ret_n, batch.valid_n)
    agents = [one(*rows) for rows in zip(batch.val_n, batch.ret_n, batch.valid_n)]
    return {name: np.array([a[name] for a in agents]) for name in agents[0]}


def policy_stats(old, new, u_n=None):
    """Mean ``KL(old || new)`` and the new entropy, for distributions on the same rows."""
    return {"kl": mean(old.kl(new), u_n), "entropy": mean(new.entropy(), u_n)}


def fit_value_function(value, optim, batch, cfg, rng):
    """Regress ``V`` on the value targets, ``min mean((V(s) - R)^2)``, with ``cfg.vf_epochs`` passes of
    ``cfg.vf_minibatch_size`` minibatch ``optim`` steps (a non-finite step is skipped). Returns the
    statistics of the value that collected ``batch``."""
    for _ in range(cfg.vf_epochs):
        for idx in minibatches(batch.obs_no.shape[-2], cfg.vf_minibatch_size, rng):
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
    vf_loss, v_bar_n = value_loss(v_n, ret_n, v_old_n, column(clip_vf), u_n)
    grad_p = policy.vjp(fwd, scale(objective_cot, -1.0), column(vf_coef) * v_bar_n)
    return -objective + vf_coef * vf_loss, grad_p, vf_loss
