"""The vector environments of a stack of agents, stepped together.

A population stack (``npgrad/population.py``) steps ``S`` agents' vector envs of ``E`` copies each at every
rollout and evaluation step. Stepped one after another, that is ``S`` calls; for a NumPy-vectorised
environment a call costs about the same for 16 copies as for 256 (gymnasium's CartPole: 32 us and 43 us),
so ``S`` agents' copies stepped as one vector env of ``S * E`` cost little more than one agent's.

Joining must not change any agent's episodes: each agent is exactly its solo run. Gymnasium's
``CartPoleVectorEnv`` keeps its state in three arrays (``state``, ``steps``, ``prev_done``, one column or entry
per copy) and draws the starting states of the copies it resets from its one generator, ``np_random``. So
``JoinedCartPoles`` concatenates the agents' arrays, steps them with one call, and has each agent's generator
draw the resets of that agent's copies, as it would alone; its ``scatter`` gives the arrays back, so between
uses each agent's environment is the one it would have stepped alone (``tests/test_stacked_envs.py`` checks
this bit for bit). Other environments are stepped one after another (``OneAfterAnother``).
"""
from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv


class OneAfterAnother:
    """``S`` agents' vector envs, each stepped with its own call."""

    def __init__(self, envs_s):
        self.envs_s = list(envs_s)

    def gather(self):
        """Take up the agents' environments as they are now (before stepping)."""

    def scatter(self):
        """Give each agent's environment back its state (after stepping)."""

    def step(self, act_s, live):
        """Step the environments of agents ``live`` with their actions ``act_s`` (one per live agent, in order):
        ``[(obs, reward, terminated, truncated), ...]`` for each of them."""
        return [self.envs_s[s].step(act)[:4] for s, act in zip(live, act_s)]


CARTPOLE_SETTINGS = ("num_envs", "gravity", "masscart", "masspole", "length", "force_mag", "tau",
                     "kinematics_integrator", "theta_threshold_radians", "x_threshold", "max_episode_steps",
                     "_sutton_barto_reward", "low", "high", "render_mode")


class MemberDraws:
    """The ``np_random`` of joined CartPoles: a draw of ``(4, m)`` starting states for the ``m`` copies being reset
    is, column block by column block, each agent's own draw for its copies among them, from its own generator. The
    generators are looked up at each draw: a seeded ``reset`` of an agent's env (a restart after a checkpoint)
    replaces its generator."""

    def __init__(self, joined, envs_s):
        self.joined, self.envs_s = joined, envs_s

    def uniform(self, low, high, size):
        resetting_se = self.joined.prev_done.reshape(len(self.envs_s), -1)
        draws = [envs.np_random.uniform(low, high, size=(size[0], count))
                 for envs, count in zip(self.envs_s, resetting_se.sum(axis=1)) if count]
        return np.concatenate(draws, axis=1) if draws else np.empty(size)


class JoinedCartPoles:
    """``S`` agents' ``CartPoleVectorEnv`` of ``E`` copies each, stepped as one of ``S * E`` (module docstring)."""

    def __init__(self, envs_s):
        self.envs_s, first = list(envs_s), envs_s[0]
        self.E = first.num_envs
        self.joined = copy.copy(first)
        self.joined.num_envs = len(self.envs_s) * self.E
        self.joined.action_space = gym.vector.utils.batch_space(first.single_action_space, self.joined.num_envs)
        self.joined.np_random = MemberDraws(self.joined, self.envs_s)

    @staticmethod
    def joinable(envs_s):
        """Whether every env is gymnasium's ``CartPoleVectorEnv`` itself (no wrapper, no subclass), reset, with the
        same settings as the others."""
        def settings(envs):
            return tuple(np.asarray(getattr(envs, name, None)).tolist() for name in CARTPOLE_SETTINGS)
        return (all(type(envs) is CartPoleVectorEnv and getattr(envs, "state", None) is not None for envs in envs_s)
                and all(settings(envs) == settings(envs_s[0]) for envs in envs_s))

    def gather(self):
        for name, axis in (("state", 1), ("steps", 0), ("prev_done", 0)):
            setattr(self.joined, name, np.concatenate([getattr(envs, name) for envs in self.envs_s], axis=axis))

    def scatter(self):
        for s, envs in enumerate(self.envs_s):
            block = slice(s * self.E, (s + 1) * self.E)
            envs.state = self.joined.state[:, block].copy()
            envs.steps, envs.prev_done = self.joined.steps[block].copy(), self.joined.prev_done[block].copy()

    def step(self, act_s, live):
        """As ``OneAfterAnother.step``; the agents not in ``live`` step too, pushing left (their episodes are not
        counted, and evaluation resets its environments with their seeds before each use)."""
        act_se = np.zeros((len(self.envs_s), self.E), dtype=np.asarray(act_s[0]).dtype)
        act_se[live] = act_s
        obs, rew, term, trunc, _ = self.joined.step(act_se.reshape(-1))
        split = [x.reshape(len(self.envs_s), self.E, *x.shape[1:]) for x in (obs, rew, term, trunc)]
        return [tuple(x[s] for x in split) for s in live]


def stepped_together(envs_s):
    """The fastest way to step ``envs_s`` that gives each agent the episodes it would have alone."""
    return JoinedCartPoles(envs_s) if len(envs_s) > 1 and JoinedCartPoles.joinable(envs_s) else OneAfterAnother(envs_s)
