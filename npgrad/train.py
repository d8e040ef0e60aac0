"""The loop every algorithm shares, and the progress record it owns.

    collect (act in the environments) -> estimate (V, then GAE) -> update (the algorithm's rule) -> record

That is all ``train`` does; an algorithm is only its ``update`` (``npgrad/algos/``), and everything
users touch (environments, evaluation, saving) is composed around this by ``npgrad.agent``.
"""
from __future__ import annotations

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
        """``progress_remaining``: 1 at the start of the ``learn`` call, 0 at its end (SB3's name)."""
        return 1.0 - (self.num_steps - self.learn_start) / max(self.total_steps - self.learn_start, 1)

    def record(self, batch, info):
        """Count the update (and a failure, once) and add the counters and episode statistics to ``info``."""
        self.num_steps += batch.env_steps
        self.num_updates += 1
        self.failed_updates += "update_failed" in info
        returns, lengths = batch.episode_returns, batch.episode_lengths
        info.update(num_steps=self.num_steps, num_updates=self.num_updates, failed_updates=self.failed_updates,
                    episodes=len(returns), ep_return_mean=float(np.mean(returns)) if returns else float("nan"),
                    ep_length_mean=float(np.mean(lengths)) if lengths else float("nan"))
        return info

    def state(self):
        return asdict(self)

    def load_state(self, state):
        for name, value in state.items():
            setattr(self, name, int(value))


def estimate(traj, value, gamma, lam):
    """``V`` on every observation (the bootstrap row too), then GAE (docs/06): the ``Batch`` an update takes."""
    T, E = traj.rew_te.shape
    val_te = value(traj.obs_teo.reshape((T + 1) * E, -1)).reshape(T + 1, E)
    adv_te, ret_te = gae(traj.rew_te, val_te[:-1], val_te[1:], traj.term_te, traj.trunc_te, gamma, lam)
    return traj.flatten(val_te[:-1], adv_te, ret_te)


def unusable(batch, dtype):
    """Why no update can be trusted on ``batch``, or None: non-finite advantages or value targets, or a value function
    whose predictions have diverged beyond what it can be regressed on; the update is then refused (the parameters
    stay as they are). Targets beyond that while ``V`` is not are the rewards' doing: an ``EnvError`` before any
    update, rather than a value function that silently stops learning while the policy trains. The squared errors
    are float64 and summed over up to ~1e8 rows (so ``|R| < sqrt(1.8e308) / 1e4``); their cotangents are cast to
    the networks' dtype and summed again in backprop (so ``|R|`` below its largest number over 1e8: 3.4e30 for
    float32)."""
    if not (np.all(np.isfinite(batch.adv_n)) and np.all(np.isfinite(batch.ret_n))):
        return REFUSED  # e.g. a diverged value function
    limit = min(np.sqrt(np.finfo(np.float64).max) / 1e4, float(np.finfo(dtype).max) / 1e8)
    largest, largest_value = (float(np.max(np.abs(x), initial=0.0)) for x in (batch.ret_n, batch.val_n))
    if largest_value > limit:
        return f"the value function diverged: |V(s)| up to {largest_value:.3g}, beyond the {limit:.2g} it can be regressed on"
    if largest > limit:
        raise EnvError(f"the rewards give value targets up to {largest:.3g}, beyond the {limit:.2g} a value network "
                       "can be regressed on (its errors would overflow and V would stop learning); rescale the "
                       "rewards (gymnasium's TransformReward wrapper, or normalize_reward=True)")
    return None


def train(rollout, model, rule, progress, rng, gamma, lam, after_update=None):
    """Run ``collect -> estimate -> update -> record`` until ``progress.total_steps``; stop early when
    ``after_update(info)`` returns False. A batch that no update can trust (``unusable``) is not used at all."""
    while progress.num_steps < progress.total_steps:
        schedule = progress.schedule
        batch = estimate(rollout.collect(model.policy, rng), model.value, gamma, lam)
        why = unusable(batch, model.policy.net.dtype)
        info = {"update_failed": why} if why else rule.update(model, batch, rng, schedule)
        info = progress.record(batch, info)
        if after_update is not None and after_update(info) is False:
            break
    return progress
