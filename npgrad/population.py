"""Populations: many seeds and hyperparameter settings of one algorithm, trained as one.

    pop = npgrad.PPO("CartPole-v1", seed=range(16), lr=[1e-3, 3e-3] * 8)   # 16 members
    pop.learn(50_000, eval_every=5_000)     # stacked, in one worker process per core
    pop.aggregate()                         # per setting: IQM of the evaluation returns, 95% CI, per step
    pop[3].predict(obs)                     # member 3 is an ordinary agent: predict, evaluate, save

**Stacked.** The members of a worker train as one stack (``train_stack``): their parameters are one
``(S, p)`` array, every step is one policy forward for all of them (``np.matmul`` on ``(S, n, i) @
(S, i, o)``), and every update is one call of the algorithm's update rule on ``(S, n, ...)`` batches,
whose control flow differs per member through masks (``npgrad/algos/common.py``); members due
for an evaluation play their episodes side by side, one forward per step (``evaluate_stack``). This removes
NumPy's per-call overhead, which dominates small networks. Each member keeps its own environments,
observation and reward filters and random generator (``npgrad.rngs.Generators``); the members'
copies of a NumPy-vectorised environment (CartPole) are stepped as one vector env of ``S * n_envs``,
each member's resets drawn from its own generator (``npgrad/stacked_envs.py``).

**Exact.** Member ``k`` is the agent ``npgrad.PPO(env, seed=seeds[k], **settings[k])`` would train
alone, bit for bit: parameters, optimiser state, generator, evaluations (``tests/test_population.py``,
every algorithm; with NumPy 1.x a member's value network can differ in its last bit). A stacked
product rounds exactly as the same product alone, and every batch of a configuration has one shape
(reset steps weigh 0 rather than being dropped). So results do not depend on which worker ran a
member, or on how many workers there were.

**Workers.** A worker process receives its members' algorithm, environment id, seeds,
configurations and arrays (plain data, no agent object), trains them as a stack, and sends back
their arrays and JSON. ``workers=1`` trains the whole population here as one stack.

**Settings.** A setting that is a number of the update (learning rates, clip range, entropy
coefficient, max KL, damping, gamma, lambda, ...) may be a list with one value per member: one
population is then a sweep, and the stack carries those numbers as ``(S,)`` arrays. Structural
settings (network sizes, ``n_envs``, ``n_steps``, minibatch sizes, the objective, ...) are shared by
every member. A member's failed update changes no other member; an exception (an environment that
raises) stops the stack it happens in, and the other workers' members finish.
"""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import multiprocessing
import os
import re
import sys
import time
from typing import NamedTuple

import gymnasium as gym
import numpy as np

from threadpoolctl import threadpool_limits

from .agent import ALGOS, EVAL_SEED_OFFSET, act_on, agent_config, load, steps_given
from .callbacks import Evaluator
from .config import MEMORY_LIMIT, require_bool, require_integer, training_memory
from .envs import run_episodes_side_by_side, spaces_of
from .errors import ConfigError, FileFormatError, NpgradError, shown
from .observations import encode, encoded_dim, require_finite
from .policy import ActorCritic, TrunkValue
from .rngs import Generators
from .rollout import StackedRollout
from .stats import interval, iqm, median
from .train import Progress, plain, train

FORMAT = "npgrad-population"
INDEX = "population.json"
MEMBER_FILE = re.compile(r"member-\d{3,6}\.npz")
MAX_MEMBERS = 100_000


# --- who the members are ------------------------------------------------------------------------------


def per_member_fields(Config):
    """The settings a population may vary member by member: the numbers of the update (its float fields)."""
    return {f.name for f in dataclasses.fields(Config) if isinstance(f.default, float)}


def is_sequence(value):
    return isinstance(value, (list, tuple, range, np.ndarray))


def listed_settings(Config, overrides):
    """``{name: values}`` of the settings given one value per member. A list for a tuple field is one value
    (``hidden=[64, 64]``) unless its entries are lists themselves (which a population cannot vary)."""
    fields = {f.name: f.default for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise Config.unknown(unknown)
    return {name: list(value) for name, value in overrides.items()
            if is_sequence(value) and not (isinstance(fields[name], tuple) and not any(map(is_sequence, value)))}


def is_population(Config, seed, overrides):
    """Whether ``Agent(env, seed, **overrides)`` asks for a population: several seeds, or a list of values of a
    setting that is one number (``lr=[1e-3, 3e-3]``)."""
    return is_sequence(seed) or bool(listed_settings(Config, Config.canonical(overrides)))


def member_settings(Config, seed, overrides):
    """``[(seed_k, overrides_k)]``, one pair per member. Every list (the seeds, each listed setting) has one entry
    per member; a single seed with listed settings gives every member that seed (a sweep on one seed)."""
    overrides = Config.canonical(overrides)
    listed = listed_settings(Config, overrides)
    lengths = {name: len(values) for name, values in listed.items()}
    if is_sequence(seed):
        lengths = {"seed": len(seed), **lengths}
    if len(set(lengths.values())) > 1:
        raise ConfigError("a population's lists give one value per member, so they must have one length; got "
                          + ", ".join(f"{name}: {n}" for name, n in lengths.items()))
    size = next(iter(lengths.values()), 1)
    if size == 0:
        raise ConfigError(f"a population needs at least one member; {next(iter(lengths))} is empty")
    if size > MAX_MEMBERS:
        raise ConfigError(f"a population has at most {MAX_MEMBERS:,} members, got {size:,}")
    structural = sorted(set(listed) - per_member_fields(Config))
    if structural:
        raise ConfigError(f"{', '.join(structural)} {'is' if len(structural) == 1 else 'are'} shared by every member "
                          f"of a population (a structural setting): give one value, not a list. Only numbers of the "
                          f"update may differ per member: {', '.join(sorted(per_member_fields(Config)))}")
    seeds = [require_integer(s, "seed") for s in seed] if is_sequence(seed) else [require_integer(seed, "seed")] * size
    return [(seeds[k], {**overrides, **{name: values[k] for name, values in listed.items()}}) for k in range(size)]


def population_memory(config, obs_dim, act_dim, size):
    """Bytes a population needs, roughly: every member's parameters and optimiser state, held here, and every member
    in training (``training_memory``), since a worker trains its members as one stack, with all their rollouts."""
    held = copy.copy(config)
    held.n_envs = 0  # training_memory without the rollout's rows: the parameters only
    return size * (training_memory(held, obs_dim, act_dim) + training_memory(config, obs_dim, act_dim))


def require_population_memory(config, env, size):
    obs_space, act_space = spaces_of(env)
    need = population_memory(config, encoded_dim(obs_space), gym.spaces.flatdim(act_space), size)
    if need > MEMORY_LIMIT:
        raise ConfigError(f"a population of {size:,} members (seed) would need about {need / 2**30:,.1f} GiB of "
                          f"memory, more than npgrad's limit of {MEMORY_LIMIT / 2**30:.1f} GiB (half this machine's "
                          "memory): train fewer members at once, or smaller networks")


def default_workers(workers, size):
    """``workers`` processes (default: one per core), never more than there are members."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = cores if workers is None else require_integer(workers, "workers", positive=True, most=1024)
    return min(workers, size)


# --- training a stack of members, here or in a worker process ------------------------------------------


def begin(agents, steps):
    """Plan ``steps`` more environment steps for each agent, as ``Agent.learn`` does; one that trained before starts
    from freshly seeded environments (``Agent.restart_envs``) and no recent episodes: a worker process builds a
    member afresh, and a member trained here must do the same to stay equal."""
    for agent in agents:
        if agent.num_steps > 0:
            agent.restart_envs()
            for window in agent.rollout.recent:
                window.clear()
        agent.progress.begin(steps)


def train_stack(agents, callbacks, monitor=None):
    """Train ``agents`` (one algorithm and environment id, the same structural settings, the same progress) to the end
    of their ``learn`` call as one stack: parameters ``(S, p)``, one policy forward per step for all of them, one
    update of all (``npgrad.train.train``). Each agent keeps its own environments (stepped together:
    ``npgrad.stacked_envs``), filters and generator, and ends exactly as ``agent.resume()`` would leave it.
    ``callbacks[k]`` (or None) is member ``k``'s ``learn`` callback; it sees member ``k`` up to date whenever it is
    ``due(num_steps)`` (always, if it has no ``due``), and any callback returning False stops the whole stack.
    ``monitor(num_steps, latest_returns)``, if given, hears after every update each member's latest mean episode
    return (NaN until one ended)."""
    first = agents[0]
    if any(a.progress.state() != {**first.progress.state(), "failed_updates": a.progress.failed_updates}
           for a in agents):
        raise ConfigError("the members of one stack must be at the same step of the same learn call")
    config, model = stacked_config([a.config for a in agents]), stacked_model(agents)
    rule = type(first.rule)(config, model)
    rule.load_state(stacked([a.rule.state() for a in agents]))
    progress = Progress(**{**first.progress.state(), "failed_updates": np.array(
        [a.progress.failed_updates for a in agents], dtype=np.int64)})
    for callback in callbacks:
        if hasattr(callback, "start_clock"):
            callback.start_clock()
    timed = [callback for callback in callbacks if hasattr(callback, "stop_clock")]

    def sync(k):
        agents[k].model.load_state(row(model.state(), k))
        agents[k].rule.load_state(row(rule.state(), k))

    latest = np.full(len(agents), np.nan)

    def after_update(info):
        ended = np.isfinite(info["ep_return_mean"])
        latest[ended] = info["ep_return_mean"][ended]
        if monitor is not None:
            monitor(progress.num_steps, latest)
        go_on = True
        for callback in timed:  # each member's training seconds are the stack's, none of the members' evaluations
            callback.stop_clock()
        for k, agent in enumerate(agents):
            agent.progress.load_state({**progress.state(), "failed_updates": progress.failed_updates[k]})
        evaluate_due(agents, callbacks, model.policy, progress.num_steps)
        for k, (agent, callback) in enumerate(zip(agents, callbacks)):
            if callback is not None:
                if getattr(callback, "due", lambda n: True)(progress.num_steps):
                    sync(k)
                go_on &= callback(agent, plain(row(info, k))) is not False
        for callback in timed:
            callback.start_clock()
        return go_on

    with threadpool_limits(limits=1, user_api="blas"):  # products this small gain nothing from threads
        train(StackedRollout([a.rollout for a in agents]), model, rule, progress, Generators([a.rng for a in agents]),
              config.gamma, config.lam, after_update)
    for k, agent in enumerate(agents):
        sync(k)
        agent.progress.load_state({**progress.state(), "failed_updates": progress.failed_updates[k]})


def stacked_config(configs):
    """One config for a stack: each number of the update that differs between members as an ``(S,)`` array."""
    config, numbers = copy.copy(configs[0]), per_member_fields(type(configs[0]))
    for f in dataclasses.fields(config):
        values = [getattr(c, f.name) for c in configs]
        if any(v != values[0] for v in values):
            if f.name not in numbers:
                raise ConfigError(f"members of one stack must share {f.name} (a structural setting), got {values}")
            setattr(config, f.name, np.array(values, dtype=np.float64))
    return config


def stacked_model(agents):
    """The members' networks as one: the same layers, parameters ``(S, p)``."""
    policy = copy.copy(agents[0].policy)
    policy.theta = np.stack([a.policy.theta for a in agents])
    if agents[0].model.shared:
        return ActorCritic(policy, TrunkValue(policy))
    value = copy.copy(agents[0].value_fn)
    value.theta = np.stack([a.value_fn.theta for a in agents])
    return ActorCritic(policy, value)


def stacked(states):
    """Nested dicts of arrays (one per member) as one nested dict of stacked arrays."""
    if isinstance(states[0], dict):
        return {name: stacked([s[name] for s in states]) for name in states[0]}
    return np.stack([np.asarray(s) for s in states])


def row(state, k):
    """Member ``k``'s part of a stacked nested dict (a value that is not per member, as it is)."""
    if isinstance(state, dict):
        return {name: row(value, k) for name, value in state.items()}
    return state[k] if isinstance(state, np.ndarray) and state.ndim >= 1 else state


def evaluate_due(agents, callbacks, policy, num_steps):
    """Evaluate together every member whose evaluation is due at ``num_steps`` (an ``Evaluator`` on the member's own
    environment: its callback, or its callback's ``evaluator``), and give each its result (``Evaluator.given``).
    ``policy`` holds the members' current parameters ``(S, p)``."""
    due = {}
    for k, callback in enumerate(callbacks):
        evaluator = getattr(callback, "evaluator", callback)
        if isinstance(evaluator, Evaluator) and evaluator.env is None and evaluator.due(num_steps):
            due.setdefault((evaluator.episodes, evaluator.deterministic), []).append((k, evaluator))
    for (episodes, deterministic), members in due.items():
        ks = [k for k, _ in members]
        results = evaluate_stack([agents[k] for k in ks], subset(policy, ks), episodes, deterministic)
        for (_, evaluator), result in zip(members, results):
            evaluator.given = result


def evaluate_stack(agents, policy, episodes, deterministic):
    """Each agent's ``evaluate(episodes, deterministic)``, bit for bit, run side by side: one forward of the stacked
    ``policy`` (the agents' parameters, ``(S, p)``) per step for every agent whose episodes are not all done."""
    envs_s = [agent.eval_envs(None, episodes) for agent in agents]
    seeds = [agent.seed + EVAL_SEED_OFFSET for agent in agents]
    rngs = [np.random.default_rng(seed) for seed in seeds]
    space, dtype = agents[0].envs.single_observation_space, agents[0].config.dtype
    acting = {}  # the policy, filter and generators of the agents still running, built once per set of them

    def act(live, obs_s):
        key = tuple(live)
        if key not in acting:
            acting[key] = (subset(policy, live), stacked_filter([agents[s].obs_filter for s in live]),
                           Generators([rngs[s] for s in live]))
        part, obs_filter, rng = acting[key]
        x_sno = require_finite(np.stack([encode(space, obs) for obs in obs_s]))
        return act_on(x_sno, part, obs_filter, dtype, deterministic, rng)

    return run_episodes_side_by_side(act, envs_s, episodes, seeds)


def subset(policy, ks):
    """The stacked ``policy`` of members ``ks`` alone."""
    if len(ks) == len(policy.theta):
        return policy
    part = copy.copy(policy)
    part.theta = policy.theta[ks]
    return part


def stacked_filter(filters):
    """The members' observation filters as one normalising ``(S, n, o)``: mean, variance and clip per member."""
    if filters[0] is None:
        return None
    stack = copy.copy(filters[0])
    stack.mean, stack.var = (np.stack([getattr(f, name) for f in filters])[:, None] for name in ("mean", "var"))
    stack.clip = np.array([f.clip for f in filters])[:, None, None]
    return stack


def make_evaluator(every, episodes, state):
    """A member's ``Evaluator`` continuing from ``state`` (None if it does not evaluate)."""
    if not every:
        return None
    evaluator = Evaluator(every=every, episodes=episodes)
    evaluator.load_state(state)
    return evaluator


def evaluator_state(evaluator, state):
    """The member's evaluation state after training: its evaluator's, or ``state`` as it was."""
    return state if evaluator is None else evaluator.state()


def worker_context():
    """Forked workers where the system has ``fork`` (Linux): they start at once and do not import the user's script
    again. Elsewhere (macOS, Windows) a spawned worker imports the script that created the population, which must
    then train it under ``if __name__ == "__main__":``, as with any multiprocessing program."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and os.name == "posix" and
                                       not sys.platform.startswith("darwin") else "spawn")


def chunked(items, n_chunks):
    """``items`` in ``n_chunks`` consecutive chunks of (nearly) equal length, none empty."""
    size = -(-len(items) // max(1, min(n_chunks, len(items))))
    return [items[i:i + size] for i in range(0, len(items), size)]


def reporter(feed, chunk, every=0.5):
    """A ``train_stack`` monitor that puts ``(chunk, num_steps, latest returns)`` on the queue ``feed`` at most every
    ``every`` seconds (None without a queue): how a worker's stack shows in the parent's progress display."""
    if feed is None:
        return None
    last = [-np.inf]

    def report(num_steps, latest):
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            feed.put((chunk, num_steps, latest.tolist()))

    return report


class MemberFailed(NpgradError):
    """A member's training raised in a worker; the message is the worker's ``Type: message``."""


class Task(NamedTuple):
    """What a worker receives for one member: configurations, seeds and arrays (plain data, no agent)."""

    algo: str
    env_id: str
    seed: int
    config: dict
    arrays: dict
    meta: dict
    steps: int
    eval_every: int
    eval_episodes: int
    evaluation: dict


def learn_chunk(tasks, feed=None, chunk=0):
    """A worker's job: rebuild the members of ``tasks`` (``Task``), train them as one stack (``train_stack``) and
    return, per member, ``("ok", (arrays, meta, evaluation))``, or ``("error", message)`` for every member of the
    chunk if training raised. Progress goes to the queue ``feed``, if given (``reporter``)."""
    agents, evaluators = [], []
    for task in tasks:
        cls = ALGOS[task.algo]
        agent = cls(task.env_id, seed=task.seed, config=cls.Config.from_dict(task.config))
        agent.load_state(task.arrays, task.meta)
        agents.append(agent)
        evaluators.append(make_evaluator(task.eval_every, task.eval_episodes, task.evaluation))
    try:
        begin(agents, tasks[0].steps)
        train_stack(agents, evaluators, reporter(feed, chunk))
    except Exception as e:  # noqa: BLE001 - reported for these members; other chunks go on
        return [("error", f"{type(e).__name__}: {e}")] * len(tasks)
    return [("ok", (*a.state(), evaluator_state(e, t.evaluation))) for a, e, t in zip(agents, evaluators, tasks)]


# --- the population ---------------------------------------------------------------------------------


class Curve(NamedTuple):
    """A population's learning curve at each evaluation: the IQM of its members' returns, its ``confidence``
    bootstrap interval (``npgrad.stats.interval``), the median, and how many members it pools."""

    num_steps: np.ndarray
    """``(k,)`` the evaluation steps."""
    iqm: np.ndarray
    """``(k,)`` the interquartile mean of the members' returns at each."""
    low: np.ndarray
    """``(k,)`` the lower end of its bootstrap interval."""
    high: np.ndarray
    """``(k,)`` the upper end."""
    median: np.ndarray
    """``(k,)`` the median of the members' returns."""
    members: int
    """How many members the curve pools."""


def aggregate_curves(steps_k, returns_rk, confidence=0.95):
    """The ``Curve`` of ``r`` runs evaluated at the same ``k`` steps: IQM, percentile-bootstrap CI and median over the
    runs at every step."""
    returns_rk = np.asarray(returns_rk, dtype=np.float64)
    low_k, high_k = interval(returns_rk.T, iqm, confidence)
    return Curve(np.asarray(steps_k), iqm(returns_rk, axis=0), low_k, high_k, median(returns_rk, axis=0),
                 len(returns_rk))


def setting_label(settings, varied):
    """``"lr=0.001, ent_coef=0.01"``: the settings that differ between members, or ``"all"`` if none do."""
    return ", ".join(f"{name}={settings[name]!r}" for name in varied) or "all"


class Population:
    """``S`` members of one algorithm on one environment id; ``population[k]`` is member ``k``, an ``Agent``, and
    ``population[i:j]`` a population of those members.

    Built by an algorithm's class when its ``seed`` is a list or range, or a setting is a list of numbers:
    ``npgrad.TRPO("Pendulum-v1", seed=range(20))``.
    """

    display = None  # the progress bar of a learn call, if it asked for one

    def __init__(self, Algo, env, seed=0, config=None, **overrides):
        if not isinstance(env, str):
            raise ConfigError(f"a population needs a gymnasium environment id (every member builds its own "
                              f"environments, also in worker processes), got {type(env).__name__}")
        members = member_settings(Algo.Config, seed, overrides)
        require_population_memory(agent_config(Algo.Config, env, config, members[0][1])[0], env, len(members))
        self.members = [Algo(env, seed=s, config=config, **member_overrides) for s, member_overrides in members]
        self.evaluations = [{} for _ in self.members]  # each member's evaluation history and schedule

    @classmethod
    def of(cls, members, evaluations=None):
        """A population of agents trained before (``load_population``)."""
        population = cls.__new__(cls)
        population.members = list(members)
        population.evaluations = evaluations or [{} for _ in population.members]
        return population

    def __len__(self):
        return len(self.members)

    def __getitem__(self, k):
        """Member ``k`` (an ``Agent``), or for a slice a ``Population`` of those members with their evaluations
        (the same agents, not copies, as a list's slice holds the same objects: training the slice trains them, and
        its new evaluations stay with the slice)."""
        if isinstance(k, slice):
            if not self.members[k]:
                parts = (k.start, k.stop) if k.step is None else (k.start, k.stop, k.step)
                text = ":".join("" if i is None else str(i) for i in parts)
                raise IndexError(f"[{text}] selects no member of a population of {len(self)}")
            return Population.of(self.members[k], self.evaluations[k])
        return self.members[k]

    def __iter__(self):
        return iter(self.members)

    def __repr__(self):
        swept = "".join(f", {name}: {distinct(m.config.to_dict()[name] for m in self.members)}"
                        for name in self.varied())
        seeds = sorted(set(self.seeds))
        seeds_text = (f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
                      else ", ".join(map(str, seeds)))
        return (f"<{self.algo.upper()} population on {self.env_id}: {len(self)} members, seeds {seeds_text}{swept}, "
                f"{self.members[0].num_steps:,} steps>")

    seeds = property(lambda self: [m.seed for m in self.members], doc="Each member's seed.")
    algo = property(lambda self: self.members[0].name, doc="The algorithm's name.")
    env_id = property(lambda self: self.members[0].env_id, doc="The environment id every member trains on.")
    defaults_source = property(lambda self: self.members[0].defaults_source,
                               doc="Where the members' defaults come from: a tuned entry or a family's.")

    def varied(self):
        """The names of the settings whose values differ between members."""
        configs = [m.config.to_dict() for m in self.members]
        return [name for name in configs[0] if any(c[name] != configs[0][name] for c in configs)]

    def settings(self, k):
        """``{name: value}`` of member ``k``'s settings that differ between members."""
        config = self.members[k].config.to_dict()
        return {name: config[name] for name in self.varied()}

    def learn(self, total_steps: int | None = None, eval_every: int = 0, eval_episodes: int = 10,
              workers: int | None = None, progress_bar: bool = False, backend: str = "local",
              address: str | None = None, *, total_timesteps: int | None = None, callback: object = None) -> Population:
        """Train every member for ``total_steps`` more environment steps (or SB3's ``total_timesteps``), evaluating
        each every ``eval_every`` steps (0: never) on ``eval_episodes`` episodes. ``workers`` processes train members
        side by side (default: one per core); with ``workers=1`` they train here, one after another, with identical
        results. With ``backend="ray"`` chunks of members train as Ray tasks (``npgrad/ray_backend.py``) on the
        cluster at ``address`` (default: a local Ray instance), again with identical results. There is no
        ``callback``: members train in other processes, where a callback's effects would stay."""
        if callback is not None:
            raise ConfigError("a population's learn takes no callback (its members train in worker processes, where "
                              "a callback's effects would stay): evaluate with eval_every= and eval_episodes=, watch "
                              "with progress_bar=True, or train one member with its callbacks: pop[k].learn(...)")
        total_steps = require_integer(steps_given(total_steps, total_timesteps), "total_steps")
        eval_every = require_integer(eval_every, "eval_every")
        eval_episodes = require_integer(eval_episodes, "eval_episodes", positive=True, most=10_000)
        steps_k = [m.num_steps for m in self.members]
        if len(set(steps_k)) > 1:  # refused here, before any is split among workers
            raise ConfigError(f"a population's members train together from one step, but these are at {steps_k} "
                              "steps (pop[k].learn trains member k alone); train such a member on its own, or "
                              "start a new population")
        workers = default_workers(workers, len(self))
        if backend not in ("local", "ray"):
            raise ConfigError(f"backend must be 'local' or 'ray', got {shown(backend)}")
        self.display = PopulationBar(len(self), total_steps) if require_bool(progress_bar, "progress_bar") else None
        train = self.train_on_ray(address) if backend == "ray" else self.train
        failures = {}
        try:
            for k, outcome in train(total_steps, eval_every, eval_episodes, workers):
                if isinstance(outcome, Exception):
                    failures[k] = outcome
        finally:
            if self.display is not None:
                self.display.close()
        if failures:
            k, error = next(iter(sorted(failures.items())))
            why = str(error) if isinstance(error, MemberFailed) else f"{type(error).__name__}: {error}"
            others = " (the others trained)" if len(failures) < len(self) else ""
            raise NpgradError(f"{len(failures)} of {len(self)} members failed{others}; member {k} "
                              f"(seed {self.members[k].seed}): {why}") from error
        return self

    def train(self, total_steps, eval_every, eval_episodes, workers):
        """Yield ``(k, None or the exception)`` as each member finishes: with one worker, all members as one stack
        here; with more, one chunk of members per worker process, each chunk a stack."""
        if workers == 1:
            evaluators = [make_evaluator(eval_every, eval_episodes, e) for e in self.evaluations]
            monitor = None if self.display is None else lambda n, latest: self.show(0, len(self), n, latest)
            try:
                begin(self.members, total_steps)
                train_stack(self.members, evaluators, monitor)
            except Exception as e:  # noqa: BLE001 - reported per member, as from a worker
                yield from ((k, e) for k in range(len(self)))
                return
            self.evaluations = [evaluator_state(v, e) for v, e in zip(evaluators, self.evaluations)]
            yield from ((k, None) for k in range(len(self)))
            return
        tasks = self.tasks(total_steps, eval_every, eval_episodes)
        chunks = chunked(list(range(len(self))), workers)
        context = worker_context()
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool, context.Manager() as manager:
            feed = manager.Queue() if self.display is not None else None
            futures = {pool.submit(learn_chunk, [tasks[k] for k in chunk], feed, i): i
                       for i, chunk in enumerate(chunks)}
            for future in completed(futures, feed, lambda c, n, latest: self.show(c, len(chunks[c]), n, latest)):
                i = futures[future]
                yield from self.take_chunk(chunks[i], future.result())
                self.show(i, len(chunks[i]), total_steps)

    def tasks(self, total_steps, eval_every, eval_episodes):
        """One ``Task`` per member: what a worker needs to rebuild and train it."""
        return [Task(m.name, m.env_id, m.seed, m.config.to_dict(), *m.state(), total_steps, eval_every,
                     eval_episodes, self.evaluations[k]) for k, m in enumerate(self.members)]

    def take_chunk(self, chunk, results):
        """Members ``chunk`` as a worker left them (``learn_chunk``'s results); yields ``(k, None or the error)``."""
        for k, (kind, value) in zip(chunk, results):
            if kind == "ok":
                arrays, meta, self.evaluations[k] = value
                self.members[k].load_state(arrays, meta)
            yield k, None if kind == "ok" else MemberFailed(value)

    def train_on_ray(self, address):
        """``train``, with chunks of members as Ray tasks (``npgrad/ray_backend.py``)."""
        from . import ray_backend

        ray = ray_backend.connect(address)

        def train_chunks(total_steps, eval_every, eval_episodes, workers):
            tasks = self.tasks(total_steps, eval_every, eval_episodes)
            chunks = chunked(list(range(len(self))), ray_backend.default_chunks(ray))
            jobs = [[tasks[k] for k in chunk] for chunk in chunks]
            for i, results in ray_backend.map_chunks(learn_chunk, jobs, ray):
                yield from self.take_chunk(chunks[i], results)
                self.show(i, len(chunks[i]), total_steps)

        return train_chunks

    def show(self, chunk, size, num_steps, latest=None):
        """Tell the progress bar (if any) that a chunk of ``size`` members reached ``num_steps``."""
        if self.display is not None:
            self.display.update(chunk, size, num_steps, latest)

    def aggregate(self) -> dict[str, Curve]:
        """``{label: Curve}``: the members with the same settings (all but their seed) pooled at each evaluation step:
        the IQM of their returns with its 95% bootstrap interval, and the median. ``ConfigError`` before any
        evaluation."""
        groups: dict[str, list] = {}
        for k in range(len(self)):
            history = self.evaluations[k].get("history", [])
            if history:
                groups.setdefault(setting_label(self.settings(k), self.varied()), []).append(history)
        if not groups:
            raise ConfigError("no member has been evaluated yet: learn with eval_every, e.g. "
                              "pop.learn(50_000, eval_every=5_000)")
        curves = {}
        for label, histories in groups.items():
            n = min(map(len, histories))  # members of one setting evaluate at the same steps
            returns_rk = [[row[2] for row in h[:n]] for h in histories]
            curves[label] = aggregate_curves([row[0] for row in histories[0][:n]], returns_rk)
        return curves

    def evaluate(self, episodes: int = 10, deterministic: bool = True) -> list:
        """Each member's ``EvalResult`` (``Agent.evaluate``), in member order."""
        return [member.evaluate(episodes, deterministic=deterministic) for member in self.members]

    def save(self, folder: str | os.PathLike) -> str | os.PathLike:
        """Write ``folder/population.json`` and one agent file per member, ``folder/member-000.npz`` ... (each
        loads alone with ``npgrad.load``; its evaluation history is kept in its header). Returns ``folder``."""
        os.makedirs(folder, exist_ok=True)
        files = [f"member-{k:03d}.npz" for k in range(len(self))]
        for member, name, evaluation in zip(self.members, files, self.evaluations):
            member.save(os.path.join(folder, name), user={"evaluation": evaluation})
        index = {"format": FORMAT, "algo": self.algo, "env_id": self.env_id, "members": files}
        with open(os.path.join(folder, INDEX), "w") as f:
            json.dump(index, f, indent=1)
        return folder


def distinct(values):
    """``values`` without repeats, in first-seen order (a list may hold lists)."""
    seen: list = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def load_population(folder: str | os.PathLike, trust_env_spec: bool = False) -> Population:
    """The ``Population`` saved in ``folder``. ``population.json`` is untrusted input: it may only name member files
    ``member-NNN.npz`` in that folder, each loaded and checked by ``npgrad.load``, all of one algorithm and id."""
    path = os.path.join(folder, INDEX)
    try:
        with open(path) as f:
            index = json.loads(f.read(1_000_000))
    except (OSError, ValueError) as e:
        raise FileFormatError(f"{path}: not a population index ({e})") from None
    if not (isinstance(index, dict) and index.get("format") == FORMAT):
        got = index.get("format") if isinstance(index, dict) else index
        raise FileFormatError(f"{path}: must be a population index with format {FORMAT!r}, got {shown(got)}")
    files = index.get("members")
    if not (isinstance(files, list) and files and all(isinstance(n, str) and MEMBER_FILE.fullmatch(n) for n in files)):
        raise FileFormatError(f"{path}: members must be a non-empty list of names member-NNN.npz, got {shown(files)}")
    twice = sorted({name for name in files if files.count(name) > 1})
    if twice:
        raise FileFormatError(f"{path}: members lists {', '.join(twice)} more than once")
    members, evaluations = [], []
    for name in files:
        if os.path.dirname(os.path.realpath(os.path.join(folder, name))) != os.path.realpath(folder):
            raise FileFormatError(f"{path}: {name} leads out of the folder (a link)")
        member = load(os.path.join(folder, name), trust_env_spec=trust_env_spec)
        if (member.name, member.env_id) != (index.get("algo"), index.get("env_id")):
            raise FileFormatError(f"{path}: {name} is a {member.name} agent on {member.env_id}, not the population's "
                                  f"{shown(index.get('algo'))} on {shown(index.get('env_id'))}")
        members.append(member)
        evaluations.append(saved_evaluation(os.path.join(folder, name)))
    check_shared_structure(members, files, path)
    return Population.of(members, evaluations)


def check_shared_structure(members, names, path):
    """A population's members share every setting but the numbers of the update (``per_member_fields``)."""
    numbers = per_member_fields(type(members[0].config))

    def structure(member):
        return {f: v for f, v in member.config.to_dict().items() if f not in numbers}

    first = structure(members[0])
    for member, name in zip(members[1:], names[1:]):
        differs = sorted(f for f, v in structure(member).items() if v != first[f])
        if differs:
            raise FileFormatError(f"{path}: {name} has {differs[0]}={shown(structure(member)[differs[0]])} where "
                                  f"{names[0]} has {shown(first[differs[0]])}: a population's members share it")


def saved_evaluation(path):
    """A member file's evaluation history and schedule (its header's ``user.evaluation``), checked."""
    from .io import read_header
    from .runs import check_run_state

    evaluation = read_header(path).get("user", {}).get("evaluation", {})
    if evaluation:
        try:
            check_run_state({**evaluation, "next_checkpoint": 1})
        except ConfigError as e:
            raise FileFormatError(f"{path}: user: evaluation: {e}") from None
    return evaluation


def completed(futures, feed=None, show=None, every=0.5, tick=None):
    """The ``futures`` as they complete; meanwhile, every ``every`` seconds, each report waiting on the queue ``feed``
    is shown (``show(chunk, num_steps, latest returns)``) and ``tick()`` is called, if given."""
    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(pending, timeout=every if feed is not None or tick else None,
                                                return_when=concurrent.futures.FIRST_COMPLETED)
        while feed is not None and not feed.empty():
            show(*feed.get())
        if tick is not None:
            tick()
        yield from done


class PopulationBar:
    """A tqdm bar of the population's member-steps (its rate: member-steps/s), with the interquartile mean of the
    members' latest mean episode returns and how many members have finished."""

    def __init__(self, members, steps):
        from tqdm.auto import tqdm

        self.members, self.steps, self.chunks = members, steps, {}
        self.bar = tqdm(total=members * steps, unit="member-steps", unit_scale=True, dynamic_ncols=True)

    def update(self, chunk, size, num_steps, latest=None):
        """Chunk ``chunk`` of ``size`` members has reached ``num_steps`` with these latest returns (if known)."""
        latest = self.chunks.get(chunk, (0, 0, []))[2] if latest is None else list(latest)
        self.chunks[chunk] = (size, min(num_steps, self.steps), latest)
        returns = [r for _, _, latest in self.chunks.values() for r in latest if np.isfinite(r)]
        done = sum(size for size, n, _ in self.chunks.values() if n >= self.steps)
        postfix = {"members done": f"{done}/{self.members}"}
        if returns:
            postfix["IQM return"] = f"{float(iqm(returns)):.1f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(sum(size * n for size, n, _ in self.chunks.values()) - self.bar.n)

    def close(self):
        self.bar.close()
