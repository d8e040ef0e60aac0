"""Collect fixed-length rollouts from a gymnasium vector environment; normalise observations and rewards.

Environment interaction only: ``collect`` returns ``(T, E)`` arrays and the loop (``npgrad/train.py``)
computes values and advantages from them.

Gymnasium's vector environments autoreset in NEXT_STEP mode: the step that ends an episode
returns the true final observation with ``terminated`` or ``truncated`` set, and the *next* step
of that environment only resets it (its action is ignored, its reward is 0). We keep that reset
step in the ``(T, E)`` arrays, so ``V(final observation)`` is computed by the ordinary batched
forward and bootstraps a truncated episode, and give it weight 0 (``valid_te = False``) so that no
transition spans a reset. One batched policy forward per vector step; no per-environment loops.
The value network does not act, so the loop runs it once, on all ``(T + 1) E`` observations.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from .errors import EnvError, ShapeError
from .objectives import row_weights
from .observations import encode
from .stacked_envs import stepped_together


STATS_WINDOW = 100
"""The training return and length logged after each update are the means over this many latest episodes, as
SB3's ``stats_window_size``."""


def seed_per_env(seed, n_envs):
    """``n_envs`` seeds drawn from ``SeedSequence(seed)``: independent streams, unlike ``seed + i``."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_envs)]


def independent_seeds(envs, seed):
    """The ``seed`` argument of ``envs.reset`` that gives each sub-environment its own stream, drawn from
    ``SeedSequence(seed)``. Gymnasium turns an int into ``seed, seed + 1, ...``, so resets seeded ``k`` and
    ``k + 1`` would share all but one starting state; a NumPy-vectorised env (one RNG for all copies) takes the int,
    and ``None`` stays unseeded."""
    if seed is None:
        return None
    if isinstance(envs.unwrapped, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)):
        return seed_per_env(seed, envs.num_envs)
    return seed


class RunningMeanStd:
    """Running mean and variance of observations, merged batch by batch (Chan et al. 1979).

    ``delta = mean_b - mean``, ``n = n_a + n_b``, ``mean += delta n_b / n``,
    ``M2 = var n_a + var_b n_b + delta^2 n_a n_b / n``, ``var = M2 / n``: exactly ``np.mean`` and
    ``np.var`` of all data seen. ``normalize`` returns ``clip((x - mean) / sqrt(var + eps), -clip, clip)``.
    """

    def __init__(self, shape, clip=10.0, eps=1e-8):
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 0.0
        self.clip, self.eps = clip, eps

    def update(self, x_no):
        """Merge a batch ``x_no`` (Chan et al. 1979): ``delta = mean_b - mean``, ``n = n_a + n_b``,
        ``mean += delta n_b / n``, ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``, ``var = M2 / n``."""
        x_no = np.asarray(x_no, dtype=np.float64)
        n_b = len(x_no)
        if n_b == 0:
            return
        mean_b, var_b = x_no.mean(axis=0), x_no.var(axis=0)
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.var = (self.var * self.count + var_b * n_b + delta**2 * (self.count * n_b / n)) / n
        self.count = n

    def normalize(self, x):
        """``clip((x - mean) / sqrt(var + eps), -clip, clip)``."""
        return np.clip((x - self.mean) / np.sqrt(self.var + self.eps), -self.clip, self.clip)

    def state(self):
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": np.array(self.count)}

    def load_state(self, state):
        self.mean, self.var = np.array(state["mean"], dtype=np.float64), np.array(state["var"], dtype=np.float64)
        self.count = float(state["count"])


@dataclass
class Batch:
    """One rollout with its advantages: all ``n = T * E`` rows, time-major, each weighed by ``valid_n``.

    A reset step (module docstring) is no transition: it stays in the batch with weight 0, so every batch of a
    configuration has the same shape whatever its episodes did (members of a population stack), and every mean
    over the batch is a weighted one (``u_n``, ``npgrad/objectives.py``).
    """

    obs_no: np.ndarray  # normalised observations the policy saw
    act: np.ndarray  # (n,) int actions or (n, a) unclipped Gaussian samples
    logp_n: np.ndarray  # log pi_old(a|s) at collection time
    val_n: np.ndarray  # V_old(s)
    adv_n: np.ndarray  # GAE advantages
    ret_n: np.ndarray  # value targets A + V
    valid_n: np.ndarray  # False on reset steps
    env_steps: int  # T * E, every vector step counted (including reset steps)
    episode_returns: list = field(default_factory=list)
    episode_lengths: list = field(default_factory=list)

    @property
    def u_n(self):
        """Row weights of a batch mean: ``1 / (number of transitions)`` on transitions, 0 on reset steps."""
        return row_weights(self.valid_n)


@dataclass
class Trajectory:
    """``T`` vector steps of ``E`` environments (of each of ``S`` stacked agents: ``(T, S, E)``), as collected;
    row ``T`` of ``obs_teo`` is the bootstrap row."""

    obs_teo: np.ndarray  # (T + 1, E, o) normalised observations; row T follows the last step
    act_te: np.ndarray  # (T, E) or (T, E, a)
    logp_te: np.ndarray
    rew_te: np.ndarray  # rewards (scaled with normalize_reward)
    term_te: np.ndarray
    trunc_te: np.ndarray
    valid_te: np.ndarray  # False on reset steps, which are no transition
    episode_returns: list
    episode_lengths: list

    def flatten(self, val_te, adv_te, ret_te):
        """The ``Batch`` of all ``T * E`` rows (time-major), given ``(T, E)`` values, advantages and value targets;
        for ``S`` stacked agents, ``(T, S, E)`` arrays give each agent's rows, ``(S, T * E, ...)``."""
        T, *lead, E = self.valid_te.shape

        def rows(x):
            if lead:
                x = np.moveaxis(x, 0, len(lead))  # time after the agent axis: each agent's rows are its own
            return x.reshape(*lead, T * E, *x.shape[len(lead) + 2:])

        return Batch(rows(self.obs_teo[:-1]), rows(self.act_te), rows(self.logp_te), rows(val_te), rows(adv_te),
                     rows(ret_te), rows(self.valid_te), T * E, self.episode_returns, self.episode_lengths)


class Rollout:
    """Runs a policy in a vector env for ``n_steps`` per environment and returns a ``Trajectory``.

    ``reward_filter`` scales rewards as SB3's VecNormalize does, by the running std of the
    discounted return (discount ``gamma``), then clips them to ``[-clip_reward, clip_reward]``.
    """

    def __init__(self, envs, n_steps, obs_filter=None, seed=None, reward_filter=None, sde_sample_freq=4,
                 gamma=0.99, clip_reward=10.0):
        self.envs, self.n_steps, self.obs_filter = envs, n_steps, obs_filter
        self.sde_sample_freq = sde_sample_freq  # gSDE: steps between fresh exploration matrices
        self.reward_filter, self.gamma, self.clip_reward = reward_filter, gamma, clip_reward
        self.num_envs = envs.num_envs
        self.recent = (deque(maxlen=STATS_WINDOW), deque(maxlen=STATS_WINDOW))  # latest episodes: returns, lengths
        self.restart(seed)

    def restart(self, seed=None):
        """Reset every environment, each with its own seed drawn from ``seed`` (``independent_seeds``), and
        forget unfinished episodes (the ``recent`` finished ones are kept)."""
        seeds = independent_seeds(self.envs, seed)
        try:
            self.obs_eo, _ = self.envs.reset(seed=seeds)
        except Exception as e:
            raise env_error(e, "at reset", self.envs.single_observation_space) from e
        self.x_eo = encoded(self.envs.single_observation_space, self.obs_eo, "at reset")  # as the networks take them
        if not np.isfinite(self.x_eo).all():
            raise EnvError(f"the environment returned non-finite observations at reset: obs={self.obs_eo}")
        self.resetting_e = np.zeros(self.num_envs, dtype=bool)  # the next step of this env only resets it
        self.ep_return_e, self.ep_length_e = np.zeros(self.num_envs), np.zeros(self.num_envs, dtype=np.int64)
        self.disc_return_e = np.zeros(self.num_envs)

    def _normalize(self, obs_eo, update):
        """Encoded observations (``npgrad/observations.py``) as the networks take them: normalised."""
        if self.obs_filter is None:
            return obs_eo
        if update:
            self.obs_filter.update(obs_eo)
        return self.obs_filter.normalize(obs_eo)

    def _scale(self, rew_e, done_e, valid_e):
        """``clip(r / sqrt(Var[G] + eps), -c, c)``, where ``G <- gamma G + r`` is each environment's discounted
        return so far; a reset step is no step of an episode, so its ``G = 0`` is not counted."""
        if self.reward_filter is None:
            return rew_e
        self.disc_return_e = self.disc_return_e * self.gamma + rew_e
        self.reward_filter.update(self.disc_return_e[valid_e, None])
        self.disc_return_e[done_e] = 0.0
        scaled_e = rew_e / np.sqrt(self.reward_filter.var[0] + self.reward_filter.eps)
        return np.clip(scaled_e, -self.clip_reward, self.clip_reward)

    lead = ()  # one agent; a StackedRollout has (S,)

    def begin(self):
        """Start a rollout: the episodes it finishes are listed afresh."""
        self.finished = ([], [])

    def end(self):
        """End a rollout (a stack gives each agent's environments back)."""

    def observe(self):
        """The observations the policy acts on now, ``(E, o)``: encoded, normalised (the filter learns them)."""
        return self._normalize(self.x_eo, update=True)

    def bootstrap(self):
        """The observations after the rollout's last step, normalised (the filter does not learn them)."""
        return self._normalize(self.x_eo, update=False)

    def step(self, act_env, t):
        """Step every environment with ``act_env``; ``(reward, terminated, truncated, valid)`` of this step."""
        try:
            outcome = self.envs.step(act_env)[:4]
        except Exception as e:  # the agent is untouched: it only changes after a complete rollout
            raise env_error(e, f"at rollout step {t} (of {self.n_steps})", self.envs.single_observation_space) from e
        return self.record(*outcome, t)

    def record(self, obs_eo, rew_e, term_e, trunc_e, t):
        """Take in the outcome of step ``t``: observations, episode sums, scaled rewards. Returns
        ``(reward, terminated, truncated, valid)`` of this step."""
        valid_e = ~self.resetting_e
        self.obs_eo = obs_eo
        self.x_eo = encoded(self.envs.single_observation_space, obs_eo, f"at rollout step {t}")  # checked, then used
        check_finite(self.x_eo, rew_e, t)
        done_e = term_e | trunc_e
        scaled_e = self._scale(rew_e, done_e, valid_e)
        self.ep_return_e += rew_e
        self.ep_length_e += valid_e
        if done_e.any():
            returns, lengths = self.ep_return_e[done_e].tolist(), self.ep_length_e[done_e].tolist()
            for ended in (self.finished, self.recent):
                ended[0].extend(returns)
                ended[1].extend(lengths)
            self.ep_return_e[done_e], self.ep_length_e[done_e] = 0.0, 0
        self.resetting_e = done_e
        return scaled_e, term_e, trunc_e, valid_e

    def collect(self, policy, rng):
        """``n_steps`` vector steps with one batched policy forward each (docs/06). Returns a ``Trajectory``."""
        return collect(self, policy, rng)


class StackedRollout:
    """The rollouts of ``S`` agents (each its own ``Rollout``: environments, filters, episodes) taken as one: one
    policy forward for all agents per step, then their environments stepped together (``npgrad/stacked_envs.py``).
    Arrays are ``(T, S, E, ...)``; each agent's numbers are those its own rollout would give."""

    def __init__(self, rollouts):
        self.rollouts = list(rollouts)
        first = self.rollouts[0]
        self.n_steps, self.num_envs, self.sde_sample_freq = first.n_steps, first.num_envs, first.sde_sample_freq
        self.lead = (len(self.rollouts),)
        self.envs, self.everyone = stepped_together([r.envs for r in self.rollouts]), list(range(len(self.rollouts)))

    def begin(self):
        for r in self.rollouts:
            r.begin()
        self.envs.gather()

    def end(self):
        self.envs.scatter()

    def observe(self):
        return np.stack([r.observe() for r in self.rollouts])

    def bootstrap(self):
        return np.stack([r.bootstrap() for r in self.rollouts])

    def step(self, act_env, t):
        try:
            outcomes = self.envs.step(act_env, self.everyone)
        except Exception as e:
            space = self.rollouts[0].envs.single_observation_space
            raise env_error(e, f"at rollout step {t} (of {self.n_steps})", space) from e
        return tuple(np.stack(parts) for parts in zip(*(r.record(*outcome, t)
                                                         for r, outcome in zip(self.rollouts, outcomes))))

    @property
    def finished(self):
        return tuple([r.finished[i] for r in self.rollouts] for i in (0, 1))

    @property
    def recent(self):
        return tuple([r.recent[i] for r in self.rollouts] for i in (0, 1))

    def collect(self, policy, rng):
        """As ``Rollout.collect``, for every agent at once (``policy`` holds ``(S, p)`` parameters and ``rng`` is a
        ``npgrad.rngs.Generators``)."""
        return collect(self, policy, rng)


def collect(rollout, policy, rng):
    """``T`` vector steps of a ``Rollout`` (or ``StackedRollout``): one batched forward, a sample and an environment
    step each; gSDE's exploration matrices drawn every ``sde_sample_freq`` steps. Returns a ``Trajectory``."""
    T, E, lead, head = rollout.n_steps, rollout.num_envs, rollout.lead, policy.head
    obs_teo = np.empty((T + 1, *lead, E, policy.obs_dim))  # row T: the observation after the last step
    act_te = np.empty((T, *lead, E, *head.act_shape), dtype=head.act_dtype)
    logp_te, rew_te = np.empty((T, *lead, E)), np.empty((T, *lead, E))
    term_te, trunc_te, valid_te = (np.empty((T, *lead, E), bool) for _ in range(3))
    rollout.begin()
    explore = None
    try:
        for t in range(T):
            if t % rollout.sde_sample_freq == 0:
                explore = policy.exploration(E, rng)  # gSDE's noise matrices; None for other heads
            obs_teo[t] = rollout.observe()
            fwd = policy.forward(obs_teo[t])
            act = policy.sample(fwd, rng, explore)
            act_te[t], logp_te[t] = act, fwd.dist.log_prob(act)
            rew_te[t], term_te[t], trunc_te[t], valid_te[t] = rollout.step(policy.to_env(act), t)
    finally:
        rollout.end()
    obs_teo[T] = rollout.bootstrap()
    return Trajectory(obs_teo, act_te, logp_te, rew_te, term_te, trunc_te, valid_te, *rollout.finished)


def encoded(space, obs_eo, where):
    """``encode(space, obs_eo)``; an observation outside the space is the environment's fault: an ``EnvError``."""
    try:
        return encode(space, obs_eo)
    except ShapeError as e:
        raise EnvError(f"the environment returned an observation outside its space {where}: {e}") from None


def env_error(e, where, space):
    """The ``EnvError`` for ``e``, raised by the environments ``where`` (at reset, at a rollout step)."""
    hint = (f" (gymnasium's vector env could not put the environments' observations together: one of them does not "
            f"fit the observation space {space}; check its shape, dtype and keys)"
            if raised_in(e, "concatenate", "gymnasium") else "")
    return EnvError(f"the environment raised {where}: {type(e).__name__}: {e}{hint}")


def raised_in(e, function, package):
    """Whether exception ``e`` passed through a function of ``package`` whose name contains ``function`` (gymnasium
    dispatches ``concatenate`` to ``_concatenate_base`` and others by space)."""
    tb = e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if function in code.co_name and f"{os.sep}{package}{os.sep}" in code.co_filename:
            return True
        tb = tb.tb_next
    return False


def check_finite(obs_eo, rew_e, t):
    if not (np.isfinite(obs_eo).all() and np.isfinite(rew_e).all()):  # methods: 2 us, not 7, per step
        raise EnvError(f"the environment returned non-finite observations or rewards at rollout step {t}: "
                         f"obs={obs_eo}, reward={rew_e}")
