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


def regressable(batch, dtype):
    """``batch``, if ``V`` can be regressed on its value targets; an ``EnvError`` before the update if not, rather
    than a value function that silently stops learning while the policy trains. The squared errors are float64
    and summed over up to ~1e8 rows (so ``|R| < sqrt(1.8e308) / 1e4``); their cotangents are cast to the
    networks' dtype and summed again in backprop (so ``|R|`` below its largest number over 1e8: 3.4e30 for float32)."""
    limit = min(np.sqrt(np.finfo(np.float64).max) / 1e4, float(np.finfo(dtype).max) / 1e8)
    largest = float(np.max(np.abs(batch.ret_n), initial=0.0))
    if largest > limit:
        raise EnvError(f"the rewards give value targets up to {largest:.3g}, beyond the {limit:.2g} a value network "
                       "can be regressed on (its errors would overflow and V would stop learning); rescale the "
                       "rewards (gymnasium's TransformReward wrapper, or normalize_reward=True)")
    return batch


def train(rollout, model, rule, progress, rng, gamma, lam, after_update=None):
    """Run ``collect -> estimate -> update -> record`` until ``progress.total_steps``; stop early when
    ``after_update(info)`` returns False. A batch with non-finite advantages is not used at all."""
    while progress.num_steps < progress.total_steps:
        schedule = progress.schedule
        batch = estimate(rollout.collect(model.policy, rng), model.value, gamma, lam)
        if np.all(np.isfinite(batch.adv_n)) and np.all(np.isfinite(batch.ret_n)):
            info = rule.update(model, regressable(batch, model.policy.net.dtype), rng, schedule)
        else:  # e.g. a diverged value function: no update can be trusted, keep everything as it is
            info = {"update_failed": REFUSED}
        info = progress.record(batch, info)
        if after_update is not None and after_update(info) is False:
            break
    return progress
