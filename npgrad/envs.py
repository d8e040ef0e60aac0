"""Environments: building a gymnasium vector env from an id, a spec or an instance, recording an instance's gymnasium
spec (its wrappers included) so it can be rebuilt, rebuilding a saved one safely, and running evaluation episodes."""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, WrapperSpec

from . import io
from .errors import ConfigError, EnvError, ShapeError, shown
from .rollout import env_error, independent_seeds
from .stacked_envs import stepped_together

if TYPE_CHECKING:
    from .config import Config

EnvLike = Union[str, EnvSpec, gym.Env, gym.vector.VectorEnv]
"""What ``env`` may be: a gymnasium id, an ``EnvSpec`` (as ``env.spec`` gives it, wrappers included), an ``Env`` or a
``VectorEnv``."""


def make_vec_env(env: EnvLike, n_envs: int) -> gym.vector.VectorEnv:
    """A gymnasium vector env: ``n_envs`` copies of an id or a spec (its NumPy-vectorised entry point if it has one,
    and for a spec no wrappers), or an instance as it is (an ``Env`` as a vector env of one). Rollouts need
    NEXT_STEP autoreset."""
    if isinstance(env, gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")  # gymnasium >= 1.1; 1.0 always steps then resets
        mode = getattr(mode, "value", mode)  # an AutoresetMode or its string
        if mode not in (None, "NextStep"):
            raise ConfigError(f"the vector env autoresets in {mode} mode; npgrad needs "
                              "NextStep, gymnasium's default (autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)")
        return env
    if isinstance(env, gym.Env):
        return CallersEnv([lambda: env])
    if isinstance(env, EnvSpec):  # gym.make_vec would take these out of its kwargs as its own arguments
        spec = dataclasses.replace(env, kwargs={k: v for k, v in env.kwargs.items() if k not in io.MAKE_VEC_KWARGS})
        vectorised = spec.vector_entry_point is not None and not spec.additional_wrappers
        return gym.make_vec(spec, num_envs=n_envs, vectorization_mode="vector_entry_point" if vectorised else "sync")
    if not isinstance(env, str):
        raise ConfigError(f"env must be a gymnasium id, EnvSpec, Env or VectorEnv, got {type(env).__name__}")
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
        raise ConfigError(f"unknown environment id {shown(env_id)}; {hint}{sb3_policy_hint(env_id)}")
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
        raise ConfigError(f"unknown environment id {env_id!r}: {e}{sb3_policy_hint(env_id)}") from None


def sb3_policy_hint(env_id: str) -> str:
    """What to say when an SB3 policy name (``"MlpPolicy"``) is given where npgrad takes the environment."""
    return (f" ({env_id!r} is SB3's policy argument: npgrad's agents take the environment first, as "
            "npgrad.PPO('CartPole-v1'), and their policy is an MLP)" if env_id.endswith("Policy") else "")


class CallersEnv(gym.vector.SyncVectorEnv):
    """A vector env of one around the caller's ``Env``, which stays the caller's: closing this wrapper, or
    (gymnasium < 1.3) garbage-collecting it, leaves the ``Env`` open."""

    def close_extras(self, **kwargs: Any) -> None:
        pass


def fit_to_env_instance(env: EnvLike, values: dict[str, Any], overrides: Mapping[str, Any],
                        defaults: Config) -> dict[str, Any]:
    """The hyperparameters, ``values`` (the tuned or given config) with ``overrides``, for an ``Env`` (one
    environment) or a ``VectorEnv`` (``num_envs`` of them): that count becomes ``n_envs``, and ``n_steps`` (unless
    given) keeps the batch ``n_envs * n_steps`` of ``values``, e.g. PPO's CartPole 16 x 16 becomes 1 x 256, whether
    or not ``n_envs`` is given too. An explicit ``n_envs`` that disagrees with the instance is an error. ``values``
    are not validated yet (``defaults`` fills what they leave out), so the config is built, and its warnings
    given, once, for the batch the agent really collects."""
    merged = {**values, **overrides}
    if isinstance(env, (str, EnvSpec)):
        return merged
    n_envs = env.num_envs if isinstance(env, gym.vector.VectorEnv) else 1
    if overrides.get("n_envs", n_envs) != n_envs:
        raise ConfigError(f"n_envs={overrides['n_envs']!r}, but the environment instance holds {n_envs} "
                          "environment(s); leave n_envs out or pass an environment id")
    n_envs_before, given = values.get("n_envs", defaults.n_envs), overrides.get("n_envs", n_envs)
    if n_envs == n_envs_before or "n_steps" in overrides:
        return {**merged, "n_envs": given}  # a given n_envs as given, so the config checks its type
    batch = n_envs_before * values.get("n_steps", defaults.n_steps)
    return {**merged, "n_envs": given, "n_steps": -(-batch // n_envs)}


def spaces_of(env: EnvLike) -> tuple[gym.Space, gym.Space]:
    """``(observation_space, action_space)`` of one environment of ``env``: an id or a spec (one copy is built, then
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
    if isinstance(env, (str, EnvSpec)):
        return env if isinstance(env, str) else env.id
    return getattr(getattr(env, "spec", None), "id", None)


# --- recording an instance's spec, and rebuilding a saved one ------------------------------------------------

NO_ENV = "pass env= (the environment itself, wrapped as in training)"
"""How every message about an environment npgrad cannot rebuild ends."""


def recorded_spec(env: EnvLike) -> tuple[EnvSpec | None, str | None]:
    """``(spec, None)`` if gymnasium can rebuild the instance ``env`` from its spec (``env.spec``: the id, its
    ``gym.make`` arguments and the wrappers applied after it, ``additional_wrappers``), and the spec can be saved as
    JSON; ``(None, why)`` if not, said so that it can end a sentence; ``(None, None)`` for an id, which is its own
    record."""
    if isinstance(env, str):
        return None, None
    try:
        spec, problem = (env, None) if isinstance(env, EnvSpec) else instance_spec(env)
        if spec is not None:
            spec_to_json(spec)  # raises ConfigError if it cannot be saved (or loaded back)
    except ConfigError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - a wrapper's own spec property raised: the instance cannot be recorded
        return None, f"gymnasium could not give the environment's spec ({type(e).__name__}: {shown(str(e), 120)})"
    return spec, problem


def instance_spec(env: gym.Env | gym.vector.VectorEnv) -> tuple[EnvSpec | None, str | None]:
    """``(spec, None)`` or ``(None, why)`` for an ``Env``, or for a ``VectorEnv``: the spec its environments share
    (``SyncVectorEnv``, ``AsyncVectorEnv``), or gymnasium's spec of a NumPy-vectorised one without its vector
    arguments."""
    name = type(env).__name__
    if isinstance(env, gym.Env):
        spec = env.spec
        if spec is None:
            return None, (f"the environment {type(env.unwrapped).__name__} has no gymnasium spec (it was not made by "
                          "gym.make from a registered id, so gymnasium cannot rebuild it)")
        return spec, None
    if isinstance(env, gym.vector.VectorWrapper):
        return None, f"gymnasium does not record vector wrappers such as {name} in a spec"
    spec = env.spec
    if spec is not None and spec.kwargs.get("vectorization_mode") == "vector_entry_point":
        kwargs = {k: v for k, v in spec.kwargs.items() if k not in io.MAKE_VEC_KWARGS}
        steps = kwargs.pop("max_episode_steps", spec.max_episode_steps)  # gym.make_vec moved it there
        return dataclasses.replace(spec, kwargs=kwargs, max_episode_steps=steps), None
    try:
        specs = env.get_attr("spec")  # type: ignore[attr-defined]  # Sync and AsyncVectorEnv have it
    except Exception:  # noqa: BLE001 - a VectorEnv of its own making: it need not have get_attr
        return None, f"the vector env {name} is not one of gymnasium's, so npgrad cannot tell how it was made"
    if any(spec is None for spec in specs):
        return None, (f"the environments of the vector env {name} have no gymnasium spec (they were not made by "
                      "gym.make from a registered id)")
    if len({spec_key(spec) for spec in specs}) > 1:
        return None, f"the environments of the vector env {name} were made from different specs"
    return specs[0], None


def spec_key(spec: EnvSpec) -> str:
    try:
        return json.dumps(spec_to_json(spec), sort_keys=True)
    except ConfigError:
        return repr(spec)


def spec_to_json(spec: EnvSpec) -> dict[str, Any]:
    """The JSON object the file keeps for ``spec``: ``EnvSpec.to_json``'s, with a registered class or function as its
    ``module:Name`` entry point. A ``ConfigError`` says why it cannot be saved: a wrapper that does not record its
    arguments, or whose arguments are not JSON (a function, an array), an entry point without an importable name."""
    for wrapper in spec.additional_wrappers:
        if wrapper.kwargs is None:
            raise ConfigError(f"gymnasium cannot record the wrapper {wrapper.name} of {spec.id}: it does not inherit "
                              "gymnasium.utils.RecordConstructorArgs, so its arguments are unknown")
        for key, value in wrapper.kwargs.items():
            if not is_json(value):
                raise ConfigError(f"gymnasium cannot record the wrapper {wrapper.name} of {spec.id}: its argument "
                                  f"{key}={shown(value, 50)} is not JSON (a function, an array, an object)")
    for key, value in spec.kwargs.items():
        if not is_json(value):
            raise ConfigError(f"gymnasium cannot record {spec.id}'s argument {key}={shown(value, 50)}: it is not JSON")
    for field in ("entry_point", "vector_entry_point"):
        value = getattr(spec, field)
        if value is not None and entry_point_name(value) is None:
            raise ConfigError(f"{spec.id}'s {field} {shown(value, 50)} has no module:Name that gymnasium could import")
    named = dataclasses.replace(spec, entry_point=entry_point_name(spec.entry_point),
                                vector_entry_point=entry_point_name(spec.vector_entry_point))
    saved = json.loads(named.to_json())
    problem = io.env_spec_problem(saved)
    if problem:
        raise ConfigError(f"{spec.id}'s spec cannot be saved: {problem[0]} {problem[1]}")
    return saved


def is_json(value: object) -> bool:
    """Whether ``value`` is made of JSON's types only (tuples as lists), as gymnasium's ``to_json`` needs."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_json(item) for item in value)
    return isinstance(value, dict) and all(isinstance(k, str) and is_json(v) for k, v in value.items())


def entry_point_name(entry_point: object) -> str | None:
    """A ``module:Name`` string as it is; a class or function (as ``gym.register(entry_point=Env)`` takes it) as its
    ``module:Name``, if it has one an import would find (not a lambda, nor one defined inside a function)."""
    if entry_point is None or isinstance(entry_point, str):
        return entry_point
    module, name = getattr(entry_point, "__module__", None), getattr(entry_point, "__qualname__", "")
    name_ok = all(part.isidentifier() for part in name.split("."))
    return f"{module}:{name}" if isinstance(module, str) and name_ok else None


GYMNASIUM_WRAPPERS = "gymnasium.wrappers"
UNSAFE_WRAPPERS = {gym.wrappers.RecordVideo: "it writes video files into a folder the file names"}
"""gymnasium's own wrappers (and their subclasses) a file may not apply on its own: they act outside the
environment."""
IMPORTING_IDS = {"GymV21Environment-v0", "GymV26Environment-v0"}
"""Registered ids whose constructors import an environment by a name in their arguments (shimmy's old-gym
compatibility): a file's arguments would choose the module."""


def rebuilt_spec(saved: Mapping[str, Any], trust: bool = False) -> EnvSpec:
    """The ``EnvSpec`` a file's ``env_spec`` describes (already checked by ``npgrad.io.check_env_spec``), to pass to
    ``gym.make``/``gym.make_vec``, which import its entry points. Unless ``trust`` (the caller's
    ``trust_env_spec=True``), nothing the file names is imported but the entry points gymnasium registers for its
    id and gymnasium's own wrappers; anything else is a ``ConfigError`` naming the field and saying how to proceed."""
    fields = {**saved, "additional_wrappers": tuple(WrapperSpec(**wrapper) for wrapper in saved["additional_wrappers"])}
    if not trust:
        fields.update(registered_entry_points(saved))
        for i, wrapper in enumerate(fields["additional_wrappers"]):
            check_gymnasium_wrapper(wrapper, f"additional_wrappers[{i}]")
    try:
        return EnvSpec(**fields)
    except Exception as e:  # noqa: BLE001 - gymnasium's own checks of the fields (its id's form, ...)
        raise ConfigError(f"not a gymnasium spec: {type(e).__name__}: {shown(str(e), 120)}") from None


def registered_entry_points(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The entry points gymnasium registers for the saved id, if the saved ones are exactly these."""
    env_id, entry_point = saved["id"], saved["entry_point"]
    trust = f"or trust_env_spec=True (--trust-env-spec) to let gymnasium import {shown(entry_point.split(':')[0])}"
    if env_id not in gym.registry:
        raise ConfigError(f"id: {shown(env_id)} is not registered with gymnasium in this process: import the package "
                          f"that registers it before loading, {NO_ENV}, {trust}")
    if env_id in IMPORTING_IDS:
        raise ConfigError(f"id: {env_id} imports the environment its arguments name; {NO_ENV}, {trust}")
    registered = gym.registry[env_id]
    for field in ("entry_point", "vector_entry_point"):
        if saved[field] is not None and saved[field] != entry_point_name(getattr(registered, field)):
            raise ConfigError(f"{field}: {shown(saved[field])} is not the one gymnasium registers for {env_id} "
                              f"({shown(entry_point_name(getattr(registered, field)))}): the file names other code; "
                              f"{NO_ENV}, {trust}")
    return {"entry_point": registered.entry_point,
            "vector_entry_point": registered.vector_entry_point if saved["vector_entry_point"] is not None else None}


def check_gymnasium_wrapper(wrapper: WrapperSpec, field: str) -> None:
    """Refuse (``ConfigError``) a wrapper that is not one of gymnasium's own ``gym.Wrapper`` classes, before anything
    but a ``gymnasium.wrappers`` module is imported."""
    module, _, name = wrapper.entry_point.partition(":")
    if module != GYMNASIUM_WRAPPERS and not module.startswith(GYMNASIUM_WRAPPERS + "."):
        raise ConfigError(f"{field}: entry_point {shown(wrapper.entry_point)} is not one of gymnasium's wrappers, and "
                          f"loading it would import {shown(module)}; {NO_ENV}, or trust_env_spec=True "
                          "(--trust-env-spec) if you trust the file")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception as e:  # noqa: BLE001 - no such wrapper in this gymnasium, or its dependency is missing
        raise ConfigError(f"{field}: gymnasium has no wrapper {shown(wrapper.entry_point)} here "
                          f"({type(e).__name__}: {shown(str(e), 80)}); {NO_ENV}") from None
    if not (isinstance(cls, type) and issubclass(cls, gym.Wrapper)):
        raise ConfigError(f"{field}: entry_point {shown(wrapper.entry_point)} is not a gymnasium wrapper class; {NO_ENV}")
    for unsafe, why in UNSAFE_WRAPPERS.items():
        if issubclass(cls, unsafe):
            raise ConfigError(f"{field}: npgrad does not apply {cls.__name__} from a file ({why}); {NO_ENV}, or "
                              "trust_env_spec=True (--trust-env-spec) if you trust the file")


@dataclasses.dataclass(frozen=True, eq=False)
class EvalResult:
    """An evaluation: the mean and standard deviation of its episodes' returns, the returns and the episodes'
    lengths. It is the tuple ``(mean, std, returns)`` to unpack or index; ``lengths`` is read by name."""

    mean: float
    std: float
    returns: np.ndarray
    lengths: np.ndarray

    def __iter__(self) -> Iterator[Any]:
        return iter((self.mean, self.std, self.returns))

    def __getitem__(self, i: int | slice) -> Any:
        return (self.mean, self.std, self.returns)[i]

    def __len__(self) -> int:
        return 3


def evaluation_reset(envs: gym.vector.VectorEnv, seed: int | None) -> np.ndarray:
    """``envs``' first observations of an evaluation seeded ``seed``; an exception is an ``EnvError``."""
    try:
        return envs.reset(seed=independent_seeds(envs, seed))[0]
    except Exception as e:
        raise env_error(e, "at an evaluation reset", envs.single_observation_space) from e


def run_episodes(act: Callable[[np.ndarray], np.ndarray], envs: gym.vector.VectorEnv, episodes: int,
                 seed: int | None) -> EvalResult:
    """``EvalResult`` of ``episodes`` episodes of ``act(obs_eo) -> actions`` on the vector env ``envs``, reset
    with ``seed`` (each environment its own stream, ``independent_seeds``).

    The environments share the episodes as SB3's ``evaluate_policy`` does: environment ``e`` runs
    ``(episodes + e) // n_envs`` of them, so short episodes are not favoured.
    """
    return run_episodes_side_by_side(lambda live, obs: [act(obs[0])], [envs], episodes, [seed])[0]


def run_episodes_side_by_side(act: Callable[[list, list], Sequence[np.ndarray]], envs_s: Sequence[gym.vector.VectorEnv],
                              episodes: int, seeds_s: Sequence[int | None]) -> list[EvalResult]:
    """``run_episodes`` for ``S`` agents at once: agent ``s`` runs on ``envs_s[s]`` reset with ``seeds_s[s]``, and
    ``act(live, [obs_eo of each live agent]) -> [actions of each]`` acts for the agents whose episodes are not all
    done yet (indices ``live``), so a stack of agents can act with one forward per step. Each agent's episodes
    are the ones ``run_episodes`` would give it alone."""
    obs_s = [evaluation_reset(envs, seed) for envs, seed in zip(envs_s, seeds_s)]
    quota_se = [(episodes + np.arange(envs.num_envs)) // envs.num_envs for envs in envs_s]
    return_so_far_se = [np.zeros(envs.num_envs) for envs in envs_s]
    length_so_far_se = [np.zeros(envs.num_envs, dtype=np.int64) for envs in envs_s]
    resetting_se = [np.zeros(envs.num_envs, dtype=bool) for envs in envs_s]  # this step only resets (NEXT_STEP)
    finished_se: list[list[list[tuple[float, int]]]] = [[[] for _ in range(envs.num_envs)] for envs in envs_s]
    left_s = [episodes] * len(envs_s)
    live = list(range(len(envs_s)))
    together = stepped_together(envs_s)
    together.gather()
    where = "at an evaluation reset"  # of the observations acted on next
    while live:
        try:
            act_s = act(live, [obs_s[s] for s in live])
        except ShapeError as error:  # every observation here came from the environments
            raise EnvError(f"the environment returned observations the policy cannot act on {where}: {error}") from None
        try:
            outcomes = together.step(act_s, live)
        except Exception as error:  # the environments' own fault, named as in training
            raise env_error(error, "at an evaluation step", envs_s[0].single_observation_space) from error
        where = "at an evaluation step"
        for s, (obs, rew, term, trunc) in zip(live, outcomes):
            obs_s[s] = obs
            return_so_far_se[s] += rew  # a reset step's reward is 0
            length_so_far_se[s] += ~resetting_se[s]
            resetting_se[s] = term | trunc
            for e in np.flatnonzero(resetting_se[s]):
                if len(finished_se[s][e]) < quota_se[s][e]:
                    finished_se[s][e].append((return_so_far_se[s][e], length_so_far_se[s][e]))
                    left_s[s] -= 1
                return_so_far_se[s][e], length_so_far_se[s][e] = 0.0, 0
        live = [s for s in live if left_s[s] > 0]
    together.scatter()
    results = []
    for finished_e in finished_se:
        returns, lengths = (np.array(column) for column in zip(*[ep for finished in finished_e for ep in finished]))
        results.append(EvalResult(float(returns.mean()), float(returns.std()), returns, lengths))
    return results
