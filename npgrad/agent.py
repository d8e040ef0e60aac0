"""The facade users hold: ``npgrad.PPO("CartPole-v1", seed=0).learn(100_000)``, as in SB3.

An ``Agent`` composes the pieces and owns nothing mathematical: the environments and their
``Rollout``, the networks (``ActorCritic``), the algorithm's update rule, the observation and
reward filters, and the loop's ``Progress``. ``learn`` hands them to ``npgrad.train.train``.
"""
from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

from . import io
from .algos import A2CUpdate, NPGUpdate, PPOUpdate, TRPOUpdate, VPGUpdate
from .callbacks import ProgressBar
from .config import require_bool, require_integer, require_memory, whole_number
from .envs import (NO_ENV, EnvLike, EnvSpec, EvalResult, check_env_id, env_id_of, fit_to_env_instance, make_vec_env,
                   rebuilt_spec, recorded_spec, run_episodes, spaces_of, spec_to_json)
from .errors import ConfigError, FileFormatError, NpgradError, NpgradWarning, ShapeError, shown
from .heads import make_head
from .io import refuse
from .nn import count_params
from .observations import encoded_dim, observation_batch, representable
from .policy import ActorCritic, Policy, TrunkValue, ValueFunction, policy_sizes
from .rollout import Rollout, RunningMeanStd
from .train import Progress, train
from .tuned import defaults_for


def build_model(obs_space, act_space, config, seed):
    """The networks ``config`` describes, initialised from ``seed``, and the agent's own generator."""
    seeds = np.random.SeedSequence(seed).spawn(3)
    policy = Policy(obs_space, act_space, config.hidden, config.activation, config.log_std_init,
                    rng=np.random.default_rng(seeds[0]), dtype=config.dtype, sde=config.use_sde,
                    value_output=getattr(config, "shared_trunk", False))
    value = TrunkValue(policy) if policy.value_output else ValueFunction(
        policy.obs_dim, config.vf_hidden, config.activation, rng=np.random.default_rng(seeds[1]), dtype=config.dtype)
    return ActorCritic(policy, value), np.random.default_rng(seeds[2])


def act_on(x_no, policy, obs_filter, dtype, deterministic, rng):
    """The actions ``predict`` gives for encoded observations ``x_no``: normalised as in training, the mode or a sample,
    as the environment takes them. A stack of policies (parameters ``(S, p)``), filters (``(S, 1, o)``) and
    generators (``npgrad.rngs.Generators``) acts on ``(S, n, o)``. Outputs that overflow are a ``ShapeError``."""
    z_no = obs_filter.normalize(x_no) if obs_filter is not None else x_no
    with np.errstate(all="ignore"):  # an overflow is not a warning here: it is refused just below
        fwd = policy.forward(representable(z_no, dtype))
        act = fwd.dist.mode() if deterministic else policy.sample(fwd, rng)
    if not np.all(np.isfinite(fwd.out_no)):
        raise ShapeError(f"predict: the {dtype} network's outputs overflow for observations up to "
                         f"{np.max(np.abs(x_no)):.3g}; use dtype='float64' or normalize_obs=True")
    with np.errstate(over="ignore"):  # a float32 Box's cast of a huge action is inf: predict refuses it
        return policy.to_env(act)


def network_shapes(config, obs_space, act_space):
    """``{"model/policy_theta": (P,), "model/value_theta": (V,)}`` for the networks ``build_model`` builds, counted
    without building them (a file's members are checked against these before anything is allocated)."""
    obs_dim = encoded_dim(obs_space)
    head = make_head(act_space, config.use_sde, config.hidden[-1] if config.hidden else obs_dim)
    shared = bool(getattr(config, "shared_trunk", False))
    policy_params = count_params(policy_sizes(obs_dim, config.hidden, head, shared)) + head.num_params
    shapes = {"model/policy_theta": (policy_params,)}
    if not shared:
        shapes["model/value_theta"] = (count_params((obs_dim, *config.vf_hidden, 1)),)
    return shapes


def agent_config(Config, env, config, overrides):
    """``(config, source)``: ``config`` (default: ``env``'s tuned or family defaults) with ``overrides``, fitted to
    an env instance, and one line saying where its defaults came from."""
    if config is not None and not isinstance(config, Config):
        raise ConfigError(f"config must be a {Config.__name__} (e.g. {Config.__name__}.for_env(env_id)), "
                          f"got {type(config).__name__}")
    overrides = Config.canonical(overrides)
    values, source = (config.to_dict(), "the config given") if config is not None else defaults_for(Config.algo, env)
    fitted = fit_to_env_instance(env, values, overrides, Config)
    if config is None or fitted != values:  # a config that nothing changes is not built (or warned of) again
        config = Config.from_dict(fitted)
    config.refuse_ignored(overrides)
    return config, source


class Agent:
    """``Agent(env, seed=0, config=None, **hyperparameters)``; use a subclass such as ``npgrad.PPO``.

    ``env`` is a gymnasium id (``"CartPole-v1"``), an ``EnvSpec``, an ``Env`` or a ``VectorEnv``. Hyperparameters
    start from the algorithm's tuned defaults for that id, or for an id without an entry from its family's
    (discrete or continuous actions; ``npgrad/tuned.py``); ``defaults_source`` says which, in one line. Any field
    of its ``Config`` can be overridden. An instance brings its own number of environments.

    ``env_id`` is the environment's id; ``env_spec`` the gymnasium spec of an instance (its ``gym.make`` arguments
    and the wrappers applied after it), from which ``evaluate`` and ``npgrad.load`` rebuild it, or None (built from
    an id, or ``env_problem`` says why the instance cannot be rebuilt).
    """

    name: ClassVar[str] = ""
    Update: ClassVar[Any] = None  # each algorithm's class sets its update rule (an algos.common.UpdateRule)
    Config: ClassVar[Any] = None  # and its Update's config class

    def __init_subclass__(cls):
        cls.Config = cls.Update.Config

    def __new__(cls, env=None, seed=0, config=None, **overrides):
        """Several seeds (``seed=range(16)``), or a list of numbers for a setting (``lr=[1e-3, 3e-3]``), build a
        ``Population`` of agents (``npgrad/population.py``) instead of one."""
        from .population import Population, is_population  # the population module builds on this one

        if cls.Update is not None and is_population(cls.Config, seed, overrides):
            return Population(cls, env, seed, config, **overrides)
        return super().__new__(cls)

    def __init__(self, env: EnvLike, seed: int = 0, config: Any = None, **overrides: Any) -> None:
        self.env_id = env_id_of(env)
        self.env_spec, self.env_problem = recorded_spec(env)
        self.config, self.defaults_source = agent_config(self.Config, env, config, overrides)
        if seed is None:
            raise ConfigError("seed must be a non-negative integer, got None: npgrad's runs are always seeded, so "
                              "the same seed gives the same numbers (the default is 0)")
        self.seed = require_integer(seed, "seed")
        config = self.config
        self.envs = make_vec_env(env, config.n_envs)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        require_memory(config, encoded_dim(obs_space), gym.spaces.flatdim(act_space))  # before building anything
        self.model, self.rng = build_model(obs_space, act_space, config, self.seed)
        obs_dim = self.model.policy.obs_dim
        self.obs_filter = RunningMeanStd(obs_dim, clip=config.clip_obs) if config.normalize_obs else None
        self.reward_filter = RunningMeanStd(1) if config.normalize_reward else None
        self.rollout = Rollout(self.envs, config.n_steps, self.obs_filter, seed=self.seed,
                               reward_filter=self.reward_filter, sde_sample_freq=config.sde_sample_freq,
                               gamma=config.gamma, clip_reward=config.clip_reward)
        self.rule = self.Update(config, self.model)
        self.progress = Progress()
        self.own_eval_envs: gym.vector.VectorEnv | None = None  # built by the first evaluate() (eval_envs)

    policy = property(lambda self: self.model.policy, doc="The policy network ``pi_theta``.")
    value_fn = property(lambda self: self.model.value, doc="The value function ``V_phi``.")
    num_steps = property(lambda self: self.progress.num_steps, doc="Environment steps trained so far.")
    num_timesteps = property(lambda self: self.progress.num_steps, doc="``num_steps``, by SB3's name.")
    num_updates = property(lambda self: self.progress.num_updates, doc="Updates so far.")

    @classmethod
    def load(cls, path: str | os.PathLike, env: EnvLike | None = None, trust_env_spec: bool = False) -> Agent:
        """``npgrad.load``, as SB3's ``PPO.load(path)``: the file must hold an agent of this algorithm."""
        agent = load(path, env, trust_env_spec)
        if cls is not Agent and not isinstance(agent, cls):
            raise FileFormatError(f"{path}: holds a {agent.name} agent, not {cls.name}; load it with npgrad.load")
        return agent

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.env_id}, seed {self.seed}, {self.num_steps:,} steps>"

    def learn(self, total_steps: int | None = None, callback: Callback | Sequence[Callback] | None = None,
              progress_bar: bool = False, *, total_timesteps: int | None = None) -> Agent:
        """Train for ``total_steps`` more environment steps (``total_timesteps``, SB3's name, is taken too), with a
        tqdm bar if ``progress_bar``, as SB3.

        After every update ``callback(agent, info)`` is called (each in turn, for a list of callbacks);
        any returning ``False`` stops. Linear schedules run from 1 at the start of this call to 0 at its end.
        """
        callbacks = callback_list(callback)
        self.progress.begin(require_integer(steps_given(total_steps, total_timesteps), "total_steps"))
        if require_bool(progress_bar, "progress_bar"):
            callbacks.append(ProgressBar(self.progress))
        return self.resume(callbacks)

    def resume(self, callback: Callback | Sequence[Callback] | None = None) -> Agent:
        """Continue the last ``learn`` call (also one restored from a checkpoint) up to its ``total_steps``."""
        callbacks = callback_list(callback)
        for cb in callbacks:
            if hasattr(cb, "start_clock"):
                cb.start_clock()

        def after_update(info):
            return not any([cb(self, info) is False for cb in callbacks])  # every callback sees every update

        with threadpool_limits(limits=1, user_api="blas"):  # products this small gain nothing from threads
            train(self.rollout, self.model, self.rule, self.progress, self.rng, self.config.gamma, self.config.lam,
                  after_update)
        return self

    def restart_envs(self) -> None:
        """Reset every environment with a seed drawn from ``(seed, num_steps)``; unfinished episodes are dropped.

        Checkpointed training calls this right after each checkpoint, and a resumed run right after
        loading one, so both continue from identical environment states.
        """
        self.rollout.restart(int(np.random.SeedSequence([self.seed, self.num_steps]).generate_state(1)[0]))

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False,
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, Any]:
        """``(actions, state)`` for raw observations, one or a batch, as SB3's ``predict``: sampled unless
        ``deterministic``, filtered as in training, clipped to a Box; ``state`` comes back as given (npgrad's policies
        are not recurrent). ``rng``: a ``np.random.Generator`` (default: the agent's). What is not an observation, or
        one the network cannot represent (beyond 3.4e38 in float32) or whose outputs overflow, is a ``ShapeError``.
        Actions come in the action space's dtype (float32 for most Boxes), as SB3's, so ``space.contains`` holds."""
        act, space = self.act(obs, deterministic, rng), self.envs.single_action_space
        if isinstance(space, gym.spaces.Box) and not np.all(np.isfinite(act)):
            raise ShapeError(f"predict's actions overflow the action space's {space.dtype}: use normalize_obs=True "
                             "or bound the action space")
        return act, state

    def act(self, obs: Any, deterministic: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
        """``predict``'s actions, without its check that they are finite: what ``evaluate`` steps environments with,
        so an evaluation equals the population's side-by-side one bit for bit."""
        deterministic, rng = require_bool(deterministic, "deterministic"), generator(rng, self.rng)
        obs_no, single = observation_batch(obs, self.envs.single_observation_space)
        act = act_on(obs_no, self.policy, self.obs_filter, self.config.dtype, deterministic, rng)
        return act[0] if single else act

    def evaluate(self, episodes: int | None = None, deterministic: bool = True, seed: int | None = None,
                 env: EnvLike | None = None, *, n_eval_episodes: int | None = None) -> EvalResult:
        """The ``EvalResult`` (it unpacks as ``mean, std, returns``; ``lengths`` by name) of ``episodes`` episodes
        (default 10; ``n_eval_episodes``, SB3's name, is taken too) seeded ``seed`` (default ``self.seed + 10000``),
        one per copy of the agent's environment (at most ``MAX_EVAL_ENVS`` copies, which share the episodes as
        SB3's ``evaluate_policy`` does), or on ``env`` (an id, a spec or an instance, which is not closed and whose
        environments share the episodes likewise); at most ``MAX_EPISODES``. The agent's environment is rebuilt
        from its id, or for an instance from its gymnasium spec, wrappers included (``rebuilt_env``). The agent's
        own training environments, if evaluated on, are restarted afterwards, so the next rollout does not continue
        from where the evaluation left them."""
        if episodes is not None and n_eval_episodes is not None:
            raise ConfigError("evaluate takes episodes or SB3's n_eval_episodes, not both")
        episodes = n_eval_episodes if episodes is None else episodes
        episodes = require_integer(10 if episodes is None else episodes, "episodes", positive=True, most=MAX_EPISODES)
        deterministic = require_bool(deterministic, "deterministic")
        envs = self.eval_envs(env, episodes)
        seed = self.seed + EVAL_SEED_OFFSET if seed is None else require_integer(seed, "seed")
        rng = np.random.default_rng(seed)
        result = run_episodes(lambda obs: self.act(obs, deterministic, rng), envs, episodes, seed)
        if isinstance(env, (str, EnvSpec)):  # built here for this call
            envs.close()
        if env is self.envs or env in getattr(self.envs, "envs", ()):
            self.restart_envs()
        return result

    def eval_envs(self, env: EnvLike | None, episodes: int) -> gym.vector.VectorEnv:
        """The vector env ``evaluate`` runs ``episodes`` on: ``env``, or the agent's own rebuilt (``rebuilt_env``).
        The agent's own is built once and kept for later evaluations (each resets it with its seeds, so the
        episodes are those of a fresh copy): rebuilding it every evaluation would recompile a MuJoCo model per
        copy each time (30 ms for Hopper-v5)."""
        copies = min(episodes, MAX_EVAL_ENVS)  # more episodes are shared by these copies
        if env is not None:
            envs = make_vec_env(env, copies)
            mine, theirs = spaces_of(self.envs), spaces_of(envs)
            if not all(type(a) is type(b) and gym.spaces.flatdim(a) == gym.spaces.flatdim(b)
                       for a, b in zip(mine, theirs)):
                if isinstance(env, (str, EnvSpec)):  # built here: closed here
                    envs.close()
                raise ConfigError(f"env: its spaces ({spaces_text(*theirs)}) are not the agent's "
                                  f"({spaces_text(*mine)})")
            return envs
        if self.own_eval_envs is None or self.own_eval_envs.num_envs != copies:
            if self.own_eval_envs is not None:
                self.own_eval_envs.close()
            self.own_eval_envs = None
            try:
                self.own_eval_envs = make_vec_env(self.rebuilt_env(), copies)
            except NpgradError:
                raise
            except Exception as e:  # gymnasium could not make the environment the agent's spec names
                if self.env_spec is None:
                    raise
                raise ConfigError(f"evaluate: gymnasium could not rebuild the agent's environment from its spec "
                                  f"({type(e).__name__}: {shown(str(e), 120)}); {NO_ENV}") from e
        return self.own_eval_envs

    def rebuilt_env(self) -> EnvLike:
        """What ``evaluate()`` builds the agent's environment from: the spec of the instance it was built on (wrappers
        included), or its id. An instance gymnasium cannot rebuild is a ``ConfigError`` saying why, and to pass env=."""
        if self.env_problem is not None:
            raise ConfigError(f"evaluate: the agent's environment cannot be rebuilt: {self.env_problem}; {NO_ENV}")
        if self.env_spec is None and self.env_id is None:
            raise ConfigError(f"evaluate: the agent was built from an environment without an id; {NO_ENV}")
        return self.env_spec if self.env_spec is not None else str(self.env_id)

    def state(self):
        """``(arrays, meta)``: every array that makes up the agent (by part) and the JSON the file's header keeps."""
        parts = {"model": self.model, "rule": self.rule, "obs_filter": self.obs_filter,
                 "reward_filter": self.reward_filter}
        arrays = io.flatten({name: part.state() for name, part in parts.items() if part is not None})
        meta = {"algo": self.name, "env_id": self.env_id, "seed": self.seed, "config": self.config.to_dict(),
                "progress": self.progress.state(), "rng_state": self.rng.bit_generator.state}
        env_spec = spec_to_json(self.env_spec) if self.env_spec is not None else self.env_problem
        if env_spec is not None:  # an agent built from an id keeps the id alone, as files did before env_spec
            meta["env_spec"] = env_spec
        return arrays, meta

    def load_state(self, arrays, meta, path="file"):
        """Take the ``arrays`` and ``meta`` of ``state()``, after checking their names, shapes and numbers."""
        expected, _ = self.state()
        io.check_arrays(arrays, expected, path)
        if not np.array_equal(self.policy.project(arrays["model/policy_theta"]), arrays["model/policy_theta"]):
            refuse(path, "model/policy_theta", "has a log-std out of its range (LOG_STD_BOUNDS)")
        parts = io.unflatten(arrays)
        self.model.load_state(parts["model"])
        self.rule.load_state(parts["rule"])
        for name in ("obs_filter", "reward_filter"):
            if getattr(self, name) is not None:
                getattr(self, name).load_state(parts[name])
        self.progress.load_state(meta["progress"])
        self.rng.bit_generator.state = meta["rng_state"]

    def save(self, path: str | os.PathLike, user: dict | None = None) -> str:
        """Write ``path``: an ``.npz`` of arrays with a JSON header (``npgrad.io``); ``user`` is any JSON dict
        stored with it (a run folder keeps its own state there); a path without a suffix gets ``.npz``, as SB3's
        gets ``.zip``, and the path written is returned. The header keeps the environment's id and, for an
        instance, its gymnasium spec, wrappers included; an instance gymnasium cannot rebuild is saved with the
        reason instead, and a ``NpgradWarning`` (once per agent, not at every checkpoint) says that loading it
        will need ``env=``."""
        arrays, meta = self.state()
        if self.env_problem is not None and not getattr(self, "warned_env_problem", False):
            self.warned_env_problem = True
            warnings.warn(f"{path}: saved without its environment, which cannot be rebuilt: {self.env_problem}; "
                          "npgrad.load and evaluate will need env=", NpgradWarning, stacklevel=2)
        return io.write(with_suffix(path), arrays, {**meta, "user": user or {}})


class VPG(Agent):
    """REINFORCE with a value baseline and GAE (npgrad/algos/vpg.py)."""

    name, Update = "vpg", VPGUpdate


class NPG(Agent):
    """Natural policy gradient (npgrad/algos/npg.py)."""

    name, Update = "npg", NPGUpdate


class TRPO(Agent):
    """Trust region policy optimisation (npgrad/algos/trpo.py)."""

    name, Update = "trpo", TRPOUpdate


class PPO(Agent):
    """Proximal policy optimisation, clipped or with an adaptive KL penalty (npgrad/algos/ppo.py)."""

    name, Update = "ppo", PPOUpdate


class A2C(Agent):
    """Synchronous advantage actor-critic (npgrad/algos/a2c.py)."""

    name, Update = "a2c", A2CUpdate


Callback = Callable[["Agent", dict], Any]
"""``callback(agent, info)`` after every update; returning ``False`` stops training."""
ALGOS = {cls.name: cls for cls in (VPG, NPG, TRPO, PPO, A2C)}
EVAL_SEED_OFFSET = 10000
"""``evaluate`` seeds its environments and generator with the agent's seed plus this: episodes it never trained on."""
MAX_EVAL_ENVS = 64
"""``evaluate`` runs at most this many copies of an environment at once; more episodes share them."""
MAX_EPISODES = 10**6
"""The most episodes one ``evaluate`` call runs (days of CPU for most environments)."""


def evaluate_policy(model: Agent, env: EnvLike | None = None, n_eval_episodes: int = 10, deterministic: bool = True,
                    return_episode_rewards: bool = False, seed: int | None = None) -> tuple:
    """SB3's ``evaluate_policy`` for an npgrad agent: ``(mean, std)`` of the episodes' returns or, with
    ``return_episode_rewards``, ``(returns, lengths)`` as two lists; it runs ``model.evaluate``, on the agent's own
    environment unless ``env`` is given."""
    if not isinstance(model, Agent):
        raise ConfigError(f"evaluate_policy takes an npgrad agent (pop[k] for a population's member k), got "
                          f"{type(model).__name__}")
    episode_rewards = require_bool(return_episode_rewards, "return_episode_rewards")  # before a whole evaluation
    result = model.evaluate(n_eval_episodes, deterministic, seed, env)
    return (result.returns.tolist(), result.lengths.tolist()) if episode_rewards else (result.mean, result.std)


def load(path: str | os.PathLike, env: EnvLike | None = None, trust_env_spec: bool = False) -> Agent:
    """Rebuild a saved agent (``Agent.save``) on ``env`` (default: the saved environment, rebuilt from its gymnasium
    spec with its wrappers, or from its id).

    A file is untrusted input (``npgrad.io``): every header field is checked before anything is built, the
    members' declared shapes and dtypes before anything is decompressed, and their numbers before the agent
    takes them; each violation is a ``FileFormatError`` naming the file and the field. A saved id must be
    registered with gymnasium: the ``module:Env`` form, which would import ``module``, is refused unless you
    pass the environment yourself as ``env`` or say ``trust_env_spec=True`` (the file's module is then imported).
    Likewise a saved spec may only name the entry points gymnasium registers for its id and gymnasium's own
    wrappers (``npgrad.envs.rebuilt_spec``), unless ``trust_env_spec=True``. A file saved without its environment
    (an instance gymnasium cannot rebuild) needs ``env``. As ``save`` does, a ``path`` without a suffix that
    names no file stands for ``path.npz``.
    """
    path = io.file_path(path)
    path = path if os.path.exists(path) else with_suffix(path)
    with io.Archive(path) as archive:
        meta, path = archive.meta, archive.path
        cls, config = saved_config(meta, path)
        check_saved_counters(meta, path)
        saved_spec, given = checked_env_spec(meta, path), env is not None
        if env is None:
            env = saved_env(meta, saved_spec, path, trust_env_spec)
            spaces = rebuilt_spaces(env, path)
        else:
            spaces = spaces_of(env)
        try:
            archive.check(network_shapes(config, *spaces), exact=False)  # before building the networks
        except FileFormatError as e:
            if not (given and fits_its_own_env(archive, config, meta, saved_spec, path)):
                raise  # the file's own fault
            raise ConfigError(f"env: its spaces ({spaces_text(*spaces)}) do not fit the networks saved in {path} "
                              f"({e}): pass an environment like the one the agent was trained on") from None
        try:
            agent = cls(env, seed=meta["seed"], config=config)
        except ConfigError as e:  # e.g. the memory the config needs for this environment's sizes
            refuse(path, "config", str(e))
        expected, _ = agent.state()
        archive.check(expected)  # every member, before decompressing any
        arrays = archive.read(expected)
    agent.load_state(arrays, meta, path)
    return agent


def with_suffix(path: str | os.PathLike) -> str:
    """``path`` with ``.npz`` added if it has no suffix (``model`` -> ``model.npz``), as SB3 adds ``.zip``; a folder
    is left as it is, to be refused as one."""
    path = io.file_path(path)
    return path if os.path.splitext(path)[1] or os.path.isdir(path) else path + ".npz"


def fits_its_own_env(archive: io.Archive, config: Any, meta: dict, saved_spec: Any, path: str) -> bool:
    """Whether the saved networks fit the saved environment's spaces: then a misfit with ``env=`` is that env's.
    Without an environment it can rebuild (untrusted, or needing an extra), npgrad cannot tell, and says so
    as the file's fault."""
    try:
        env = saved_env(meta, saved_spec, path, False)
        archive.check(network_shapes(config, *rebuilt_spaces(env, path)), exact=False)
    except Exception:  # noqa: BLE001 - any reason it cannot be shown to fit
        return False
    return True


def steps_given(total_steps: Any, total_timesteps: Any) -> Any:
    """The step count of a ``learn`` call, given as ``total_steps`` or by SB3's name ``total_timesteps``; a whole
    float such as ``1e5`` counts as its integer, as SB3 takes it (up to 2**53, where floats stop being exact)."""
    if (total_steps is None) == (total_timesteps is None):
        raise ConfigError("learn needs total_steps (or SB3's total_timesteps), once")
    return whole_number(total_steps if total_timesteps is None else total_timesteps)


def spaces_text(obs_space: gym.Space, act_space: gym.Space) -> str:
    """``observations Box(4,), actions Discrete(2)``: the spaces in brief, for a message."""
    def brief(space):
        return f"{type(space).__name__}{space.shape}" if isinstance(space, gym.spaces.Box) else str(space)
    return f"observations {brief(obs_space)}, actions {brief(act_space)}"


def saved_config(meta, path):
    """The agent class and the validated config a header names (as a user's values are validated)."""
    cls = ALGOS.get(meta["algo"]) or refuse(path, "algo", f"unknown algorithm {shown(meta['algo'])}; "
                                                           f"known: {sorted(ALGOS)}")
    try:
        return cls, cls.Config.from_dict(meta["config"])
    except ConfigError as e:
        refuse(path, "config", e)


def check_saved_counters(meta, path):
    """The seed, the loop's progress counters and the RNG state of a header: integers in range, nothing else."""
    if not io.is_integer(meta["seed"]):
        refuse(path, "seed", f"must be a non-negative integer, got {shown(meta['seed'])}")
    progress = meta["progress"]
    io.check_counters(progress, Progress().state(), path, "progress")
    for part, whole in (("failed_updates", "num_updates"), ("learn_start", "num_steps")):
        if progress[part] > progress[whole]:
            refuse(path, f"progress: {part}", f"is {progress[part]}, more than {whole} ({progress[whole]})")
    io.check_rng_state(meta["rng_state"], path)


MAX_ENV_PROBLEM = 2000
"""The longest reason a file may give for saving no environment spec (npgrad writes one sentence)."""


def checked_env_spec(meta, path):
    """The header's ``env_spec``: a spec (JSON object) checked for its fields, types and sizes, the reason the
    environment was not saved (a string), or None (an agent built from an id, or a file saved before the field)."""
    saved = meta.get("env_spec")
    if isinstance(saved, str) and len(saved) > MAX_ENV_PROBLEM:
        refuse(path, "env_spec", f"a reason of {len(saved):,} characters; npgrad writes at most {MAX_ENV_PROBLEM:,}")
    if isinstance(saved, dict):
        io.check_env_spec(saved, path)
        if saved["id"] != meta["env_id"]:
            refuse(path, "env_spec: id", f"is {shown(saved['id'])}, but env_id is {shown(meta['env_id'])}")
    return saved


def saved_env(meta, saved_spec, path, trust_env_spec=False):
    """The environment a file describes: its spec (``rebuilt_spec``: without ``trust_env_spec`` nothing but the
    entry points gymnasium registers for the id and gymnasium's own wrappers is imported), or its id."""
    if isinstance(saved_spec, str):
        reason = repr(saved_spec[:300])[1:-1]  # one line, whatever the file holds
        refuse(path, "env_spec", f"the agent was saved without its environment, which cannot be rebuilt: {reason}; "
                                 f"{NO_ENV} to load it")
    if saved_spec is None:
        return registered_env(meta["env_id"], path, trust_env_spec)
    try:
        return rebuilt_spec(saved_spec, trust_env_spec)
    except ConfigError as e:
        refuse(path, "env_spec", e)


def rebuilt_spaces(env, path):
    """``spaces_of`` the environment a file describes, gymnasium's failure to make it a ``FileFormatError``."""
    try:
        return spaces_of(env)
    except NpgradError:
        raise
    except Exception as e:  # noqa: BLE001 - the saved arguments or wrappers do not make an environment here
        if not isinstance(env, EnvSpec):
            raise
        refuse(path, "env_spec", f"gymnasium could not rebuild the environment from it ({type(e).__name__}: "
                                 f"{shown(str(e), 120)}); {NO_ENV} to load it")


def registered_env(env_id, path, trust_env_spec=False):
    """The saved environment id, if gymnasium has it registered; ``module:Env``, which imports ``module``, only
    if the caller trusts the file (``trust_env_spec``)."""
    if env_id is None:
        refuse(path, "env_id", "the agent was saved without an environment id: pass env= to load it")
    try:
        return check_env_id(env_id, trust_env_spec)
    except ConfigError as e:
        refuse(path, "env_id", f"{e}; or pass env= to load it")


def callback_list(callback):
    """``callback`` as a list: None -> [], a callable -> [it], a list or tuple of callables in their order, except
    that loggers (``after_others``) come last, so they log what the others add to ``info`` (an evaluation)."""
    callbacks = list(callback) if isinstance(callback, (list, tuple)) else [] if callback is None else [callback]
    for cb in callbacks:
        if not callable(cb):
            raise ConfigError(f"callback must be a function callback(agent, info), or a list of them; got "
                              f"{type(cb).__name__} {shown(cb)}")
        try:
            signature = inspect.signature(cb)
        except (TypeError, ValueError):  # some builtins have none to check
            continue
        try:
            signature.bind(None, None)
        except TypeError as e:
            raise ConfigError(f"callback {shown(cb)} must take two arguments, (agent, info): {e}") from None
    return sorted(callbacks, key=lambda cb: getattr(cb, "after_others", False) is True)


def generator(rng, default):
    """``rng``, if it is a ``np.random.Generator``; ``default`` if it is None; else a ``ConfigError``."""
    if rng is None:
        return default
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng
