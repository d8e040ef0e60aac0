"""Environments: building a gymnasium vector env from an id or an instance, and running evaluation episodes."""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import gymnasium as gym
import numpy as np

from .errors import ConfigError, shown
from .rollout import independent_seeds

if TYPE_CHECKING:
    from .config import Config

EnvLike = Union[str, gym.Env, gym.vector.VectorEnv]
"""What ``env`` may be: a gymnasium id, an ``Env`` or a ``VectorEnv``."""


def make_vec_env(env: EnvLike, n_envs: int) -> gym.vector.VectorEnv:
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
    spec = env_spec(env)
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    return gym.make_vec(spec.id, num_envs=n_envs, vectorization_mode=mode)


def check_env_id(env_id: object, trust: bool = False) -> str:
    """``env_id`` if gymnasium has it registered. The ``module:Env`` form imports ``module``, so it is taken only
    if ``trust``: an id the user names (typed, or saved and trusted with ``--trust-env-spec`` /
    ``trust_env_spec=True``), never one a file or run folder names on its own."""
    if not isinstance(env_id, str) or len(env_id) > 200:
        raise ConfigError(f"env_id must be a gymnasium id string, got {shown(env_id)}")
    if ":" in env_id and not trust:
        raise ConfigError(f"env_id {shown(env_id)} is refused: the module:Env form imports a module, and it is not a "
                          "registered gymnasium id; npgrad imports one only when you name it yourself (type it, or "
                          "pass --trust-env-spec / trust_env_spec=True for a saved one)")
    if ":" in env_id:
        env_spec(env_id)  # imports the module, as the user asked
    elif env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=5)
        hint = f"did you mean: {', '.join(close)}?" if close else "e.g. CartPole-v1 or Pendulum-v1"
        raise ConfigError(f"unknown environment id {shown(env_id)}; {hint}")
    return env_id


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """gymnasium's spec of ``env_id``. The ``module:Env`` form first imports ``module`` (as ``gym.make`` does): npgrad
    only passes an id the caller typed here, or one from a file the caller trusts (``load(trust_env_spec=True)``)."""
    module, _, name = env_id.rpartition(":")
    try:
        if module:
            importlib.import_module(module)
        return gym.spec(name)
    except (gym.error.Error, ImportError) as e:
        raise ConfigError(f"unknown environment id {env_id!r}: {e}") from None


class CallersEnv(gym.vector.SyncVectorEnv):
    """A vector env of one around the caller's ``Env``, which stays the caller's: closing this wrapper, or
    (gymnasium < 1.3) garbage-collecting it, leaves the ``Env`` open."""

    def close_extras(self, **kwargs: Any) -> None:
        pass


def fit_to_env_instance(env: EnvLike, values: dict[str, Any], overrides: Mapping[str, Any],
                        defaults: Config) -> dict[str, Any]:
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


def spaces_of(env: EnvLike) -> tuple[gym.Space, gym.Space]:
    """``(observation_space, action_space)`` of one environment of ``env``: an id (one copy is built, then
    closed), an ``Env`` or a ``VectorEnv``."""
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space, env.single_action_space
    if isinstance(env, gym.Env):
        return env.observation_space, env.action_space
    probe = make_vec_env(env, 1)
    try:
        return probe.single_observation_space, probe.single_action_space
    finally:
        probe.close()


def env_id_of(env: EnvLike) -> str | None:
    spec = getattr(env, "spec", None)
    return env if isinstance(env, str) else getattr(spec, "id", None)


class EvalResult(NamedTuple):
    mean: float
    std: float
    returns: np.ndarray


def run_episodes(act: Callable[[np.ndarray], np.ndarray], envs: gym.vector.VectorEnv, episodes: int,
                 seed: int | None) -> EvalResult:
    """``EvalResult`` of ``episodes`` episodes of ``act(obs_eo) -> actions`` on the vector env ``envs``, reset
    with ``seed`` (each environment its own stream, ``independent_seeds``).

    The environments share the episodes as SB3's ``evaluate_policy`` does: environment ``e`` runs
    ``(episodes + e) // n_envs`` of them, so short episodes are not favoured.
    """
    obs, _ = envs.reset(seed=independent_seeds(envs, seed))
    E = envs.num_envs
    quota_e = (episodes + np.arange(E)) // E
    return_so_far_e = np.zeros(E)
    finished_e: list[list[float]] = [[] for _ in range(E)]  # finished_e[e]: env e's returns
    while any(len(finished) < quota for finished, quota in zip(finished_e, quota_e)):
        obs, rew, term, trunc, _ = envs.step(act(obs))
        return_so_far_e += rew
        for e in np.flatnonzero(term | trunc):
            if len(finished_e[e]) < quota_e[e]:
                finished_e[e].append(return_so_far_e[e])
            return_so_far_e[e] = 0.0  # the next step only resets it (NEXT_STEP autoreset): reward 0
    returns = np.array([ret for finished in finished_e for ret in finished])
    return EvalResult(float(returns.mean()), float(returns.std()), returns)
