"""The loop every algorithm shares, and the progress record it owns.

    collect (act in the environments) -> estimate (V, then GAE) -> update (the algorithm's rule) -> record

That is all ``train`` does; an algorithm is only its ``update`` (``npgrad/algos/``), and everything
users touch (environments, evaluation, saving) is composed around this by ``npgrad.agent``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from .advantages import gae
from .errors import EnvError

REFUSED = "non-finite advantages or value targets"


@dataclass
class Progress:
    """The loop's counters: steps and updates so far, failed updates, and this ``learn`` call's horizon."""

    num_steps: int = 0
    num_updates: int = 0
    failed_updates: int = 0
    learn_start: int = 0
    total_steps: int = 0

    def begin(self, steps):
        """Plan ``steps`` more environment steps; schedules run from 1 now to 0 at their end."""
        self.learn_start, self.total_steps = self.num_steps, self.num_steps + steps

    def retarget(self, total_steps):
        """End the current ``learn`` call at ``total_steps`` instead (a resumed run given a new budget)."""
        self.total_steps = total_steps

    @property
    def schedule(self):
        """``progress_remaining``: 1 at the start of the ``learn`` call, 0 at its end (SB3's name). Read before each
        batch is collected, as CleanRL's ``anneal_lr``: update k of K gets ``1 - (k - 1) / K`` (SB3 reads it after
        collecting, one batch later)."""
        return 1.0 - (self.num_steps - self.learn_start) / max(self.total_steps - self.learn_start, 1)

    def record(self, batch, info, recent):
        """Count the update (and a failure, once) and add the counters and episode statistics to ``info``: how many
        episodes ended in ``batch``, and the means over the ``recent`` ones (the rollout's returns and lengths of
        its latest episodes). Per agent, for a stack: ``failed_updates`` is then one count per agent."""
        self.num_steps += batch.env_steps
        self.num_updates += 1
        failed = info.get("update_failed")
        self.failed_updates = self.failed_updates + (np.not_equal(failed, None) if batch.valid_n.ndim > 1 else
                                                     failed is not None)
        stats = episode_stats if batch.valid_n.ndim == 1 else lambda *args: per_agent(episode_stats, *args)
        info.update(num_steps=self.num_steps, num_updates=self.num_updates, failed_updates=self.failed_updates,
                    **stats(batch.episode_returns, *recent))
        return info

    def state(self):
        return asdict(self)

    def load_state(self, state):
        for name, value in state.items():
            setattr(self, name, int(value) if np.ndim(value) == 0 else np.array(value, dtype=np.int64))


def episode_stats(ended, recent_returns, recent_lengths):
    """How many episodes ``ended`` in a batch, and the mean return and length of the recent ones (SB3's
    ``ep_rew_mean`` and ``ep_len_mean``; NaN until one has ended)."""
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"episodes": len(ended), "ep_return_mean": mean(recent_returns), "ep_length_mean": mean(recent_lengths)}


def per_agent(f, *per_agent_args):
    """``f`` of each agent's arguments, its results stacked into one array per key."""
    results = [f(*args) for args in zip(*per_agent_args)]
    return {name: np.array([r[name] for r in results]) for name in results[0]}


def plain(info):
    """One agent's ``info`` with NumPy scalars as Python numbers (for logs, JSON and callbacks)."""
    return {k: v.item() if isinstance(v, (np.ndarray, np.generic)) and np.ndim(v) == 0 else v for k, v in info.items()}


def estimate(traj, value, gamma, lam):
    """``V`` on every observation (the bootstrap row too), then GAE (docs/06): the ``Batch`` an update takes. A
    stack of agents (``(T, S, E)`` arrays) evaluates each agent's ``V`` on its own rows, with its own ``gamma``
    and ``lam`` (one per agent or one for all)."""
    T, *lead, E = traj.rew_te.shape
    if not lead:
        val_te = value(traj.obs_teo.reshape((T + 1) * E, -1)).reshape(T + 1, E)
    else:
        obs_no = np.moveaxis(traj.obs_teo, 0, 1).reshape(*lead, (T + 1) * E, -1)  # each agent's rows together
        val_te = np.moveaxis(value(obs_no).reshape(*lead, T + 1, E), 1, 0)
        gamma, lam = np.asarray(gamma)[..., None], np.asarray(lam)[..., None]  # per agent, against (S, E)
    adv_te, ret_te = gae(traj.rew_te, val_te[:-1], val_te[1:], traj.term_te, traj.trunc_te, gamma, lam)
    return traj.flatten(val_te[:-1], adv_te, ret_te)


def unusable(batch, dtype):
    """Why no update can be trusted on ``batch``, or None (per agent, for a stack): non-finite advantages or value
    targets, or a value function whose predictions have diverged beyond what it can be regressed on; the update
    is then refused (the parameters stay as they are). Targets beyond that while ``V`` is not are the rewards'
    doing: an ``EnvError`` before any update, rather than a value function that silently stops learning while the
    policy trains. The squared errors are float64 and summed over up to ~1e8 rows (so ``|R| < sqrt(1.8e308) /
    1e4``); their cotangents are cast to the networks' dtype and summed again in backprop (so ``|R|`` below its
    largest number over 1e8: 3.4e30 for float32)."""
    limit = min(np.sqrt(np.finfo(np.float64).max) / 1e4, float(np.finfo(dtype).max) / 1e8)

    def why(adv_n, ret_n, val_n):
        if not (np.all(np.isfinite(adv_n)) and np.all(np.isfinite(ret_n))):
            return REFUSED  # e.g. a diverged value function
        largest, largest_value = (float(np.max(np.abs(x), initial=0.0)) for x in (ret_n, val_n))
        if largest_value > limit:
            return f"the value function diverged: |V(s)| up to {largest_value:.3g}, beyond the {limit:.2g} it can be " \
                   "regressed on"
        if largest > limit:
            raise EnvError(f"the rewards give value targets up to {largest:.3g}, beyond the {limit:.2g} a value "
                           "network can be regressed on (its errors would overflow and V would stop learning); "
                           "rescale the rewards (gymnasium's TransformReward wrapper, or normalize_reward=True)")
        return None

    if batch.valid_n.ndim == 1:
        return why(batch.adv_n, batch.ret_n, batch.val_n)
    return np.array([why(*rows) for rows in zip(batch.adv_n, batch.ret_n, batch.val_n)], dtype=object)


def update(rule, model, batch, rng, schedule):
    """``rule.update`` on ``batch``, except for agents whose batch no update can trust (``unusable``): they keep
    their parameters, optimiser state and random numbers, and their ``update_failed`` says why."""
    why = unusable(batch, model.policy.net.dtype)
    if batch.valid_n.ndim == 1:
        return {"update_failed": why} if why is not None else plain(rule.update(model, batch, rng, schedule))
    refused = np.not_equal(why, None)
    if not refused.any():
        return rule.update(model, batch, rng, schedule)
    kept = (model.state(), rule.state(), [g.bit_generator.state for g in rng.generators])
    info = rule.update(model, usable_rows(batch, refused), rng, schedule) if not refused.all() else {}
    model.load_state(keep_rows(kept[0], model.state(), refused))
    rule.load_state(keep_rows(kept[1], rule.state(), refused))
    for g, state, keep in zip(rng.generators, kept[2], refused):
        if keep:
            g.bit_generator.state = state
    failed = info.get("update_failed", np.full(refused.shape, None, dtype=object))
    info["update_failed"] = np.where(refused, why, failed)
    return info


def keep_rows(before, after, rows):
    """The nested state ``after``, with the agents ``rows`` as they were in ``before``."""
    if isinstance(after, dict):
        return {name: keep_rows(before[name], value, rows) for name, value in after.items()}
    return np.where(np.reshape(rows, rows.shape + (1,) * (np.ndim(after) - 1)), before, after)


def usable_rows(batch, refused):
    """``batch`` with the refused agents' advantages and targets zeroed: their update is discarded, and zeros
    keep its arithmetic quiet."""
    clean = lambda x: np.where(refused[:, None], 0.0, x)  # noqa: E731
    return dataclasses.replace(batch, adv_n=clean(batch.adv_n), ret_n=clean(batch.ret_n), val_n=clean(batch.val_n))


def train(rollout, model, rule, progress, rng, gamma, lam, after_update=None):
    """Run ``collect -> estimate -> update -> record`` until ``progress.total_steps``; stop early when
    ``after_update(info)`` returns False. One agent, or a stack of agents: the same steps."""
    while progress.num_steps < progress.total_steps:
        schedule = progress.schedule
        batch = estimate(rollout.collect(model.policy, rng), model.value, gamma, lam)
        info = progress.record(batch, update(rule, model, batch, rng, schedule), rollout.recent)
        if after_update is not None and after_update(info) is False:
            break
    return progress
