"""The loop every algorithm shares: collect -> estimate advantages -> update -> report.

An algorithm subclasses ``Agent``, names its ``Config`` and writes one method,
``update(batch) -> diagnostics``. Everything else (environments, networks, the observation
filter, rollouts, GAE, value regression, evaluation, prediction, saving) lives here once.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

from .config import Config
from .errors import ConfigError, ShapeError
from .policy import LOG_STD_BOUNDS, Policy, ValueFunction
from .rollout import Rollout, RunningMeanStd, independent_seeds
from .solvers import Adam


def make_vec_env(env, n_envs):
    """A gymnasium vector env: ``n_envs`` copies of an id (its NumPy-vectorised entry point if it has one),
    or an instance as it is (an ``Env`` as a vector env of one). Rollouts need NEXT_STEP autoreset."""
    if isinstance(env, gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")  # gymnasium >= 1.1; 1.0 always steps then resets
        mode = getattr(mode, "value", mode)  # an AutoresetMode or its string
        if mode not in (None, "NextStep"):
            raise ConfigError(f"the vector env autoresets in {mode} mode; npgrad needs "
                              "NextStep, gymnasium's default (autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)")
        return env
    if isinstance(env, gym.Env):
        return CallersEnv([lambda: env])
    if not isinstance(env, str):
        raise ConfigError(f"env must be a gymnasium id, Env or VectorEnv, got {type(env).__name__}")
    try:
        spec = gym.spec(env)
    except gym.error.Error as e:
        raise ConfigError(f"unknown environment id {env!r}: {e}") from None
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    return gym.make_vec(env, num_envs=n_envs, vectorization_mode=mode)


class CallersEnv(gym.vector.SyncVectorEnv):
    """A vector env of one around the caller's ``Env``, which stays the caller's: closing this wrapper, or
    (gymnasium < 1.3) garbage-collecting it, leaves the ``Env`` open."""

    def close_extras(self, **kwargs):
        pass


def fit_to_env_instance(env, values, overrides, defaults):
    """The hyperparameters for an ``Env`` (one environment) or a ``VectorEnv`` (``num_envs`` of them): that
    count becomes ``n_envs``, and ``n_steps`` (unless given) keeps the batch ``n_envs * n_steps``, e.g. PPO's
    CartPole 16 x 16 becomes 1 x 256. An explicit ``n_envs`` that disagrees with the instance is an error.
    ``values`` are not validated yet (``defaults`` fills what they leave out), so the config is built, and
    its warnings given, once, for the batch the agent really collects."""
    if isinstance(env, str):
        return values
    n_envs = env.num_envs if isinstance(env, gym.vector.VectorEnv) else 1
    n_envs_before = values.get("n_envs", defaults.n_envs)
    if n_envs == n_envs_before:
        return values
    if "n_envs" in overrides:
        raise ConfigError(f"n_envs={overrides['n_envs']!r}, but the environment instance holds {n_envs} "
                          "environment(s); leave n_envs out or pass an environment id")
    if "n_steps" in overrides:
        return {**values, "n_envs": n_envs}
    batch = n_envs_before * values.get("n_steps", defaults.n_steps)
    return {**values, "n_envs": n_envs, "n_steps": -(-batch // n_envs)}


def require_integer(value, name, positive=False):
    """``int(value)`` if ``value`` is an integer ``>= 0`` (``> 0`` if ``positive``), else ``ConfigError`` naming it."""
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= int(positive)):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} integer, got {value!r}")
    return int(value)


def env_id_of(env):
    spec = getattr(env, "spec", None)
    return env if isinstance(env, str) else getattr(spec, "id", None)


def minibatches(n, size, rng):
    """Shuffled index arrays covering ``range(n)`` in chunks of ``size`` (the last may be smaller)."""
    perm = rng.permutation(n)
    return [perm[i:i + size] for i in range(0, n, size)]


def standardize(x_n, eps=1e-8):
    """``(x - mean) / (std + eps)``; the ``eps`` guards a batch whose advantages are all equal."""
    d_n = x_n - x_n.mean()
    return d_n / (np.sqrt(d_n @ d_n / len(d_n)) + eps)  # np.std's value in 3 calls instead of about 10


def explained_variance(pred_n, target_n):
    """``1 - Var[target - pred] / Var[target]``: 1 is perfect, 0 is no better than a constant."""
    var = np.var(target_n)
    return float("nan") if var == 0 else float(1.0 - np.var(target_n - pred_n) / var)


class EvalResult(NamedTuple):
    mean: float
    std: float
    returns: np.ndarray


class Agent:
    """Base class of every algorithm: ``Agent(env, seed=0, **hyperparameters)``.

    ``env`` is a gymnasium id (``"CartPole-v1"``), an ``Env`` or a ``VectorEnv``. Hyperparameters
    start from the algorithm's tuned defaults for that id; any field of ``Config`` can be overridden.
    An instance brings its own number of environments (``fit_to_env_instance``).
    """

    name = "agent"
    Config = Config

    def __init__(self, env, seed=0, config=None, **overrides):
        self.env_id = env_id_of(env)
        values = config.to_dict() if config is not None else dict(self.Config.ENV_DEFAULTS.get(self.env_id, {}))
        fitted = fit_to_env_instance(env, {**values, **overrides}, overrides, self.Config)
        if config is None or fitted != values:  # a config that nothing changes is not built (or warned of) again
            config = self.Config.from_dict(fitted)
        self.config = config
        self.seed = require_integer(seed, "seed")
        self.envs = make_vec_env(env, config.n_envs)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        seeds = np.random.SeedSequence(self.seed).spawn(3)
        self.policy = Policy(obs_space, act_space, config.hidden, config.activation, config.log_std_init,
                             rng=np.random.default_rng(seeds[0]), dtype=config.dtype, sde=config.use_sde)
        self.value_fn = ValueFunction(self.policy.obs_dim, config.vf_hidden, config.activation,
                                      rng=np.random.default_rng(seeds[1]), dtype=config.dtype)
        self.rng = np.random.default_rng(seeds[2])
        self.obs_filter = RunningMeanStd(self.policy.obs_dim) if config.normalize_obs else None
        self.vf_optim = Adam(self.value_fn.net.num_params, lr=config.vf_lr)
        self.reward_filter = RunningMeanStd(1) if config.normalize_reward else None
        self.rollout = Rollout(self.envs, config.n_steps, self.obs_filter, seed=self.seed,
                               reward_filter=self.reward_filter, sde_sample_freq=config.sde_sample_freq)
        self.num_steps, self.num_updates, self.learn_start, self.total_steps = 0, 0, 0, 0
        self.failed_updates, self.progress_remaining = 0, 1.0
        self.setup()

    def setup(self):
        """Create the algorithm's own state (optimisers, schedules). Override as needed."""

    def use_optimizer_for_both(self, lr, max_grad_norm, optimizer=Adam):
        """One ``optimizer`` (``Adam`` or ``RMSprop``) for the policy and one for the value function,
        each clipping its own gradient."""
        self.pi_optim = optimizer(self.policy.num_params, lr=lr, max_grad_norm=max_grad_norm)
        self.vf_optim = optimizer(self.value_fn.net.num_params, lr=lr, max_grad_norm=max_grad_norm)

    def annealed(self, value, anneal):
        """``value * progress_remaining`` (linear from ``value`` to 0 over the ``learn`` call) if ``anneal``,
        else ``value``: SB3's ``lin_<value>`` schedules."""
        return value * self.progress_remaining if anneal else value

    def update(self, batch):
        """One update from a ``Batch``; returns a dict of diagnostics."""
        raise NotImplementedError

    def extra_state(self):
        """JSON-serialisable algorithm state that is not an array (e.g. PPO's beta)."""
        return {}

    def load_extra_state(self, state):
        pass

    # --- the loop ------------------------------------------------------------------------------

    def learn(self, total_steps, callback=None):
        """Train for ``total_steps`` more environment steps.

        After every update ``callback(agent, diagnostics)`` is called (each in turn, for a list of
        callbacks); any returning ``False`` stops. Linear schedules (``progress_remaining``) run from
        1 at the start of this call to 0 at its end.
        """
        self.learn_start = self.num_steps
        self.total_steps = self.num_steps + require_integer(total_steps, "total_steps")
        return self.resume(callback)

    def resume(self, callback=None):
        """Continue the last ``learn`` call (also one restored from a checkpoint) up to its ``total_steps``."""
        # Products this small gain nothing from BLAS threads, and once cost 4x (README.md, "Use it")
        with threadpool_limits(limits=1, user_api="blas"):
            self._train(callback)
        return self

    def _train(self, callback):
        callbacks = [] if callback is None else list(callback) if isinstance(callback, (list, tuple)) else [callback]
        for cb in callbacks:
            if hasattr(cb, "start_clock"):
                cb.start_clock()
        horizon = max(self.total_steps - self.learn_start, 1)
        while self.num_steps < self.total_steps:
            self.progress_remaining = 1.0 - (self.num_steps - self.learn_start) / horizon
            batch = self.rollout.collect(self.policy, self.value_fn, self.rng, self.config.gamma, self.config.lam)
            self.num_steps += batch.env_steps
            if np.all(np.isfinite(batch.adv_n)) and np.all(np.isfinite(batch.ret_n)):
                diagnostics = self.update(batch)
            else:  # e.g. a diverged value function: no update can be trusted, keep everything as it is
                self.failed_updates += 1
                diagnostics = {"update_failed": "non-finite advantages or value targets"}
            self.num_updates += 1
            diagnostics.update(self._batch_stats(batch))
            answers = [cb(self, diagnostics) for cb in callbacks]  # every callback sees every update
            if any(answer is False for answer in answers):
                break

    def restart_envs(self):
        """Reset every environment with a seed drawn from ``(seed, num_steps)``; unfinished episodes are dropped.

        Checkpointed training calls this right after each checkpoint, and a resumed run right after
        loading one, so both continue from identical environment states (the episode in progress at
        a checkpoint ends as a truncation, which the last batch already bootstrapped from V).
        """
        self.rollout.restart(int(np.random.SeedSequence([self.seed, self.num_steps]).generate_state(1)[0]))

    def _batch_stats(self, batch):
        return {
            "num_steps": self.num_steps, "num_updates": self.num_updates,
            "episodes": len(batch.episode_returns),
            "ep_return_mean": float(np.mean(batch.episode_returns)) if batch.episode_returns else float("nan"),
            "ep_length_mean": float(np.mean(batch.episode_lengths)) if batch.episode_lengths else float("nan"),
            "failed_updates": self.failed_updates,
        }

    # --- shared pieces of updates ----------------------------------------------------------------

    def advantages(self, batch):
        return standardize(batch.adv_n) if self.config.normalize_advantages else batch.adv_n

    def commit_policy(self, theta_p, diagnostics, why="non-finite parameters"):
        """Set the policy's parameters if they are finite; otherwise keep the last good ones.

        Returns whether the parameters were accepted and records a refusal in ``diagnostics``.
        """
        if not np.all(np.isfinite(theta_p)):
            if "update_failed" not in diagnostics:  # count an update once, however many steps it refused
                self.failed_updates += 1
            diagnostics["update_failed"] = why
            return False
        self.policy.theta = theta_p
        np.clip(self.policy.log_std, *LOG_STD_BOUNDS, out=self.policy.log_std)
        return True

    def commit_value(self, theta_p):
        """Set the value function's parameters if they are finite (else keep the last good ones)."""
        if np.all(np.isfinite(theta_p)):
            self.value_fn.theta = theta_p

    def value_stats(self, batch):
        """Value loss and explained variance of the value function that collected ``batch``."""
        return {"value_loss": float(np.mean((batch.val_n - batch.ret_n) ** 2)),
                "explained_variance": explained_variance(batch.val_n, batch.ret_n)}

    def fit_value_function(self, batch):
        """Regress ``V`` on the value targets with Adam minibatches; returns diagnostics."""
        cfg = self.config
        for _ in range(cfg.vf_epochs):
            for idx in minibatches(len(batch.obs_no), cfg.vf_minibatch_size, self.rng):
                _, grad = self.value_fn.loss_grad(batch.obs_no[idx], batch.ret_n[idx])
                self.commit_value(self.vf_optim.step(self.value_fn.theta, grad)[0])
        return self.value_stats(batch)

    def policy_stats(self, batch, old_dist, new_dist=None):
        """Mean KL(old || new) and entropy after an update (pass ``new_dist`` if already computed)."""
        new = self.policy.distribution(batch.obs_no) if new_dist is None else new_dist
        return {"kl": float(old_dist.kl(new).mean()), "entropy": float(new.entropy().mean())}

    # --- using a trained agent -------------------------------------------------------------------

    def _obs_for_policy(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        single = obs.ndim == 1
        obs_no = obs[None] if single else obs
        if obs_no.ndim != 2 or obs_no.shape[1] != self.policy.obs_dim:
            raise ShapeError(f"predict expects an observation of shape ({self.policy.obs_dim},) or a batch "
                             f"(n, {self.policy.obs_dim}), got {obs.shape}")
        if not np.all(np.isfinite(obs_no)):
            raise ShapeError("predict got non-finite observations")
        return (self.obs_filter.normalize(obs_no) if self.obs_filter is not None else obs_no), single

    def predict(self, obs, deterministic=True, rng=None):
        """Actions for raw environment observations, one ``(o,)`` or a batch ``(n, o)``.

        The agent applies its own observation filter; Gaussian actions are clipped to the action space.
        """
        obs_no, single = self._obs_for_policy(obs)
        fwd = self.policy.forward(obs_no)
        act = fwd.dist.mode() if deterministic else self.policy.sample(fwd, rng if rng is not None else self.rng)
        if self.policy.kind == "gaussian":
            space = self.envs.single_action_space
            act = np.clip(act, space.low, space.high)
        return act[0] if single else act

    def evaluate(self, episodes=10, deterministic=True, seed=None, env=None):
        """``EvalResult(mean, std, returns)`` of ``episodes`` episodes, seeded ``seed`` (default ``self.seed + 10000``;
        each environment gets its own seed from it, see ``independent_seeds``).

        They run in parallel, one per copy of the agent's environment, or on ``env`` if given (an id, or an
        instance, whose environments share the episodes as SB3's ``evaluate_policy`` does: environment ``e``
        runs ``(episodes + e) // n_envs`` of them, so short episodes are not favoured). An instance is not closed;
        the agent's own training environments are restarted afterwards (``restart_envs``), so the next rollout
        does not continue from observations the evaluation has stepped past.
        """
        episodes = require_integer(episodes, "episodes", positive=True)
        env = env if env is not None else self.env_id
        if env is None:
            raise ConfigError("this agent was built from an environment without an id: pass env= to evaluate")
        envs = make_vec_env(env, episodes)
        seed = self.seed + 10000 if seed is None else require_integer(seed, "seed")
        obs, _ = envs.reset(seed=independent_seeds(envs, seed))
        E, rng = envs.num_envs, np.random.default_rng(seed)
        quota_e = (episodes + np.arange(E)) // E
        return_so_far_e, finished_e = np.zeros(E), [[] for _ in range(E)]  # finished_e[e]: env e's returns
        while any(len(finished) < quota for finished, quota in zip(finished_e, quota_e)):
            obs, rew, term, trunc, _ = envs.step(self.predict(obs, deterministic, rng))
            return_so_far_e += rew
            for e in np.flatnonzero(term | trunc):
                if len(finished_e[e]) < quota_e[e]:
                    finished_e[e].append(return_so_far_e[e])
                return_so_far_e[e] = 0.0  # the next step only resets it (NEXT_STEP autoreset): reward 0
        if isinstance(env, str):
            envs.close()
        if env is self.envs or env in getattr(self.envs, "envs", ()):
            self.restart_envs()
        returns = np.array([ret for finished in finished_e for ret in finished])
        return EvalResult(float(returns.mean()), float(returns.std()), returns)

    def save(self, path):
        """Write ``path`` (``.npz`` with a JSON header; see ``npgrad.io``)."""
        from .io import save_agent

        return save_agent(self, path)


class Evaluator:
    """A ``learn`` callback: every ``every`` environment steps, evaluate the deterministic policy.

    Records ``(env_steps, training_seconds, mean_return)`` in ``self.history``; training seconds
    exclude evaluation time (the protocol of the benchmarks). ``on_eval(agent, diagnostics, row)``
    is called after each evaluation, e.g. to print a line.
    """

    def __init__(self, every=5000, episodes=10, on_eval=None):
        self.every, self.episodes, self.on_eval = every, episodes, on_eval
        self.history, self.next_eval, self.train_seconds = [], every, 0.0
        self._last = None

    def start_clock(self):
        self._last = time.perf_counter()

    def __call__(self, agent, diagnostics):
        now = time.perf_counter()
        self.train_seconds += now - (self._last if self._last is not None else now)
        if agent.num_steps >= self.next_eval:
            while self.next_eval <= agent.num_steps:
                self.next_eval += self.every
            row = (agent.num_steps, self.train_seconds, agent.evaluate(self.episodes).mean)
            self.history.append(row)
            if self.on_eval is not None:
                self.on_eval(agent, diagnostics, row)
        self._last = time.perf_counter()
        return True
