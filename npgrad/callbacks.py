"""Callbacks for ``Agent.learn``: each is called as ``callback(agent, info)`` after every update; returning
``False`` stops training. A callback with a ``start_clock()`` method is told when training (re)starts, and one
with ``stop_clock()`` when a population's stack stops training to call its members' callbacks.

SB3's names and meanings: ``EvalCallback`` (periodic evaluation, the best model saved),
``CheckpointCallback``, and, as an ``EvalCallback``'s children, ``StopTrainingOnRewardThreshold`` and
``StopTrainingOnNoModelImprovement``; several callbacks are passed as a list. One difference: npgrad
counts frequencies in environment steps (over all environments), SB3 in calls, i.e. steps per environment.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import require_integer
from .errors import ConfigError, shown


class Evaluator:
    """A ``learn`` callback: every ``every`` environment steps, evaluate the deterministic policy.

    Records ``(env_steps, training_seconds, mean_return)`` in ``self.history``; training seconds
    exclude evaluation time (the protocol of the benchmarks). ``on_eval(agent, diagnostics, row)``
    is called after each evaluation, e.g. to print a line. A population's stack evaluates the members it trains
    together, one forward for all per step, and hands each member's ``Evaluator`` its result as ``given``
    (exactly what ``agent.evaluate`` would return) before calling it.
    """

    def __init__(self, every: int = 5000, episodes: int = 10, on_eval: Callable[..., Any] | None = None,
                 env: Any = None, deterministic: bool = True) -> None:
        self.every, self.episodes = require_integer(every, "every", True), require_integer(episodes, "episodes", True)
        self.on_eval, self.env, self.deterministic = on_eval, env, deterministic
        self.history: list[tuple] = []
        self.given: Any = None  # this evaluation's EvalResult, if computed elsewhere (class docstring)
        self.last_result: Any = None  # the latest evaluation's EvalResult
        self.next_eval, self.train_seconds = every, 0.0
        self._last: float | None = None

    def start_clock(self) -> None:
        self._last = time.perf_counter()

    def stop_clock(self) -> None:
        """Count the training time up to now, and none until ``start_clock``: a stack's members are evaluated one
        after another, and none may count the others' evaluations as its training time."""
        if self._last is not None:
            self.train_seconds += time.perf_counter() - self._last
        self._last = None

    def state(self) -> dict:
        """Its evaluations so far and its schedule, as JSON (a checkpoint or a population keeps them)."""
        return {"history": [list(r) for r in self.history], "next_eval": self.next_eval,
                "train_seconds": self.train_seconds}

    def load_state(self, state: dict) -> None:
        """Continue from ``state()`` (an empty dict: from the start)."""
        self.history = [tuple(r) for r in state.get("history", [])]
        self.next_eval = state.get("next_eval", self.every)
        self.train_seconds = state.get("train_seconds", 0.0)

    def due(self, num_steps: int) -> bool:
        """Whether the call after an update at ``num_steps`` evaluates (and so needs the agent's current state)."""
        return num_steps >= self.next_eval

    def __call__(self, agent, diagnostics):
        now = time.perf_counter()
        self.train_seconds += now - (self._last if self._last is not None else now)
        if agent.num_steps >= self.next_eval:
            self.next_eval = next_due(self.next_eval, self.every, agent.num_steps)
            given, self.given = self.given, None
            if given is None:
                given = agent.evaluate(self.episodes, deterministic=self.deterministic, env=self.env)
            self.last_result = given
            row = (agent.num_steps, self.train_seconds, given.mean)
            self.history.append(row)
            if self.on_eval is not None and self.on_eval(agent, diagnostics, row) is False:
                self._last = time.perf_counter()
                return False
        self._last = time.perf_counter()
        return True


class EvalCallback(Evaluator):
    """Every ``eval_freq`` environment steps, evaluate on ``n_eval_episodes`` episodes of ``eval_env`` (default: the
    agent's environment, rebuilt as ``Agent.evaluate`` rebuilds it) and keep ``best_mean_reward``, as SB3's does:

    - the evaluation goes into the update's ``info`` as ``eval/mean_reward`` and ``eval/std_reward`` (so a
      ``Logger`` writes it) and, with ``verbose >= 1``, is printed;
    - with ``log_path``, every evaluation so far is written to ``log_path/evaluations.npz``: ``timesteps`` and
      ``results`` and ``ep_lengths`` (one row of episode returns, and of lengths, per evaluation), as SB3 writes them;
    - a new best is saved as ``best_model_save_path/best_model.npz`` and reported to ``callback_on_new_best``;
      every evaluation is reported to ``callback_after_eval``. A child returning ``False`` stops training.

    ``history`` holds every evaluation's ``(env_steps, training_seconds, mean_return)``."""

    def __init__(self, eval_env: Any = None, callback_on_new_best: Callable[..., Any] | None = None,
                 callback_after_eval: Callable[..., Any] | None = None, n_eval_episodes: int = 5,
                 eval_freq: int = 10_000, log_path: str | os.PathLike | None = None,
                 best_model_save_path: str | os.PathLike | None = None, deterministic: bool = True,
                 verbose: int = 1) -> None:
        super().__init__(eval_freq, n_eval_episodes, self._after_eval, eval_env, deterministic)
        self.on_new_best, self.after_eval = callback_on_new_best, callback_after_eval
        self.log_path, self.save_path, self.verbose = log_path, best_model_save_path, require_integer(verbose, "verbose")
        self.best_mean_reward = self.last_mean_reward = -np.inf
        self.timesteps: list[int] = []  # for evaluations.npz: the steps of each evaluation
        self.results: list[np.ndarray] = []  # and its episode returns
        self.ep_lengths: list[np.ndarray] = []  # and lengths

    def _after_eval(self, agent, diagnostics, row):
        result = self.last_result
        self.last_mean_reward = result.mean
        diagnostics["eval/mean_reward"], diagnostics["eval/std_reward"] = result.mean, result.std
        if self.verbose >= 1:
            print(f"Eval num_timesteps={agent.num_steps}, episode_reward={result.mean:.2f} +/- {result.std:.2f}")
        if self.log_path is not None:
            self.timesteps.append(agent.num_steps)
            self.results.append(result.returns)
            self.ep_lengths.append(result.lengths)
            os.makedirs(self.log_path, exist_ok=True)
            np.savez(os.path.join(self.log_path, "evaluations.npz"), timesteps=np.array(self.timesteps),
                     results=np.array(self.results), ep_lengths=np.array(self.ep_lengths))
        go_on = True
        if self.last_mean_reward > self.best_mean_reward:
            if self.verbose >= 1:
                print("New best mean reward!")
            self.best_mean_reward = self.last_mean_reward
            if self.save_path is not None:
                os.makedirs(self.save_path, exist_ok=True)
                agent.save(os.path.join(self.save_path, "best_model.npz"))
            go_on = self.on_new_best is None or self.on_new_best(agent, self) is not False
        return go_on and (self.after_eval is None or self.after_eval(agent, self) is not False)


class StopTrainingOnRewardThreshold:
    """An ``EvalCallback``'s ``callback_on_new_best``: stop once the best mean return reaches ``reward_threshold``."""

    def __init__(self, reward_threshold: float, verbose: int = 0) -> None:
        real = (int, float, np.integer, np.floating)
        if isinstance(reward_threshold, bool) or not isinstance(reward_threshold, real):
            raise ConfigError(f"reward_threshold must be a number, got {shown(reward_threshold)}")
        self.reward_threshold, self.verbose = float(reward_threshold), require_integer(verbose, "verbose")

    def __call__(self, agent, evaluation):
        best = best_of(self, evaluation)
        if best >= self.reward_threshold and self.verbose >= 1:
            print(f"Stopping training because the mean reward {best:.2f} is above the threshold "
                  f"{self.reward_threshold}")
        return best < self.reward_threshold


class StopTrainingOnNoModelImprovement:
    """An ``EvalCallback``'s ``callback_after_eval``: stop after ``max_no_improvement_evals`` evaluations in a row
    without a new best, counting only after the first ``min_evals`` evaluations."""

    def __init__(self, max_no_improvement_evals: int, min_evals: int = 0, verbose: int = 0) -> None:
        self.max_no_improvement_evals = require_integer(max_no_improvement_evals, "max_no_improvement_evals")
        self.min_evals, self.verbose = require_integer(min_evals, "min_evals"), require_integer(verbose, "verbose")
        self.best, self.evals, self.without_improvement = -np.inf, 0, 0

    def __call__(self, agent, evaluation):
        best = best_of(self, evaluation)
        self.evals += 1
        improved = best > self.best
        self.best = max(self.best, best)
        if self.evals > self.min_evals:
            self.without_improvement = 0 if improved else self.without_improvement + 1
        go_on = self.without_improvement <= self.max_no_improvement_evals
        if not go_on and self.verbose >= 1:
            print(f"Stopping training because there was no new best model in the last {self.without_improvement} "
                  "evaluations")
        return go_on


def best_of(callback, evaluation):
    """The ``EvalCallback``'s best mean return, which a stop callback is given; one given to ``learn`` itself sees an
    update's diagnostics instead, and is told where it belongs."""
    if not hasattr(evaluation, "best_mean_reward"):
        role = "callback_on_new_best" if isinstance(callback, StopTrainingOnRewardThreshold) else "callback_after_eval"
        raise ConfigError(f"{type(callback).__name__} stops on an EvalCallback's evaluations: pass it as "
                          f"EvalCallback({role}=...), not to learn(callback=...)")
    return evaluation.best_mean_reward


class ProgressBar:
    """``learn(..., progress_bar=True)``: a tqdm bar of environment steps, with the latest mean episode return."""

    def __init__(self, progress):
        from tqdm.auto import tqdm

        self.start = progress.learn_start  # the bar counts this learn call's steps
        self.bar = tqdm(total=progress.total_steps - self.start, unit="steps", unit_scale=True, dynamic_ncols=True)

    def __call__(self, agent, info):
        self.bar.update(min(agent.num_steps - self.start, self.bar.total) - self.bar.n)  # the last batch may pass it
        if np.isfinite(info.get("ep_return_mean", np.nan)):
            self.bar.set_postfix(ep_return=f"{info['ep_return_mean']:.1f}", refresh=False)
        if agent.num_steps >= agent.progress.total_steps:
            self.bar.close()
        return True


class CheckpointCallback:
    """Every ``save_freq`` environment steps, save the agent as ``save_path/<name_prefix>_<steps>_steps.npz``."""

    def __init__(self, save_freq: int, save_path: str | os.PathLike, name_prefix: str = "npgrad_model") -> None:
        self.save_freq = require_integer(save_freq, "save_freq", True)
        self.save_path, self.name_prefix = save_path, name_prefix
        self.next_save = self.save_freq

    def __call__(self, agent, diagnostics):
        if agent.num_steps >= self.next_save:
            self.next_save = next_due(self.next_save, self.save_freq, agent.num_steps)
            os.makedirs(self.save_path, exist_ok=True)
            agent.save(os.path.join(self.save_path, f"{self.name_prefix}_{agent.num_steps}_steps.npz"))
        return True


def next_due(due, every, num_steps):
    """The first of ``due, due + every, due + 2 every, ...`` beyond ``num_steps`` (for ``every >= 1``).

    >>> next_due(1000, 1000, 2500)
    3000
    """
    return due if num_steps < due else due + every * ((num_steps - due) // every + 1)
