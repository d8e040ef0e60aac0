"""Populations: many seeds and hyperparameter settings of one algorithm, trained as one.

    pop = npgrad.PPO("CartPole-v1", seed=range(16), lr=[1e-3, 3e-3] * 8)   # 16 members
    pop.learn(50_000, eval_every=5_000)     # in worker processes, one per core
    pop.aggregate()                         # per setting: IQM of the evaluation returns, 95% CI, per step
    pop[3].predict(obs)                     # member 3 is an ordinary agent: predict, evaluate, save

Member ``k`` is the agent ``npgrad.PPO(env, seed=seeds[k], **settings[k])`` would train alone, bit for
bit: its parameters, optimiser state and evaluations. A worker process receives a member's
algorithm, environment id, seed, configuration and arrays, trains it, and sends back its arrays
and JSON; no agent object crosses a process boundary, and the results do not depend on which
worker ran which member, or on how many workers there were.

A setting that is a number of the update (learning rates, clip range, entropy coefficient,
max KL, damping, gamma, lambda, ...) may be a list with one value per member: one population is
then a sweep. Structural settings (network sizes, ``n_envs``, ``n_steps``, minibatch sizes, the
objective, ...) are shared by every member. Each member keeps its own environments, seeded as a
solo run seeds them, and a member's failed update (or exception) changes no other member.
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

from .agent import ALGOS, agent_config, load
from .callbacks import Evaluator
from .config import MEMORY_LIMIT, require_bool, require_integer, training_memory
from .envs import spaces_of
from .errors import ConfigError, FileFormatError, NpgradError, shown
from .observations import encoded_dim
from .stats import interval, iqm, median

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


def population_memory(config, obs_dim, act_dim, size, workers):
    """Bytes a population needs, roughly: every member's parameters and optimiser state, held here, and in each of
    ``workers`` processes one member in training (``training_memory``)."""
    held = copy.copy(config)
    held.n_envs = 0  # training_memory without the rollout's rows: the parameters only
    return size * training_memory(held, obs_dim, act_dim) + workers * training_memory(config, obs_dim, act_dim)


def require_population_memory(config, env, size, workers):
    obs_space, act_space = spaces_of(env)
    need = population_memory(config, encoded_dim(obs_space), gym.spaces.flatdim(act_space), size, workers)
    if need > MEMORY_LIMIT:
        raise ConfigError(f"a population of {size:,} members (seed) would need about {need / 2**30:,.1f} GiB of memory, "
                          f"more than npgrad's limit of {MEMORY_LIMIT / 2**30:.1f} GiB (half this machine's memory): "
                          "train fewer members at once, or smaller networks")


def default_workers(workers, size):
    """``workers`` processes (default: one per core), never more than there are members."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = cores if workers is None else require_integer(workers, "workers", positive=True, most=1024)
    return min(workers, size)


# --- training one member, here or in a worker process ------------------------------------------------------


def train_member(agent, steps, evaluator):
    """``agent.learn(steps)`` with ``evaluator`` (or none). A member that has trained before starts from freshly
    seeded environments (``Agent.restart_envs``), as a run resumed from a checkpoint does: a worker process
    builds the member's environments anew, and a member trained here must do the same to stay equal to it."""
    if agent.num_steps > 0:
        agent.restart_envs()
    agent.learn(steps, callback=[evaluator] if evaluator is not None else None)


def make_evaluator(every, episodes, state):
    if not every:
        return None
    evaluator = Evaluator(every=every, episodes=episodes)
    evaluator.history = [tuple(row) for row in state.get("history", [])]
    evaluator.next_eval = state.get("next_eval", every)
    evaluator.train_seconds = state.get("train_seconds", 0.0)
    return evaluator


def evaluator_state(evaluator, state):
    if evaluator is None:
        return state
    return {"history": [list(row) for row in evaluator.history], "next_eval": evaluator.next_eval,
            "train_seconds": evaluator.train_seconds}


def worker_context():
    """Forked workers where the system has ``fork`` (Linux): they start at once and do not import the user's script
    again. Elsewhere (macOS, Windows) a spawned worker imports the script that created the population, which must
    then train it under ``if __name__ == "__main__":``, as with any multiprocessing program."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and os.name == "posix" and
                                       not sys.platform.startswith("darwin") else "spawn")


class Task(NamedTuple):
    """What a worker process receives: configurations, seeds and arrays (plain data, no agent)."""

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


def learn_in_worker(task):
    """A worker process's job: rebuild the member from its task, train it, and return ``(arrays, meta,
    evaluation)``: the agent's state (``Agent.state``) and its evaluation history."""
    cls = ALGOS[task.algo]
    agent = cls(task.env_id, seed=task.seed, config=cls.Config.from_dict(task.config))
    agent.load_state(task.arrays, task.meta)
    evaluator = make_evaluator(task.eval_every, task.eval_episodes, task.evaluation)
    train_member(agent, task.steps, evaluator)
    return (*agent.state(), evaluator_state(evaluator, task.evaluation))


# --- the population ---------------------------------------------------------------------------------


class Curve(NamedTuple):
    """A population's learning curve at each evaluation: the IQM of its members' returns, its ``confidence``
    bootstrap interval (``npgrad.stats.interval``), the median, and how many members it pools."""

    num_steps: np.ndarray
    iqm: np.ndarray
    low: np.ndarray
    high: np.ndarray
    median: np.ndarray
    members: int


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
    """``S`` members of one algorithm on one environment id; ``population[k]`` is member ``k``, an ``Agent``.

    Built by an algorithm's class when its ``seed`` is a list or range, or a setting is a list of numbers:
    ``npgrad.TRPO("Pendulum-v1", seed=range(20))``.
    """

    def __init__(self, Algo, env, seed=0, config=None, **overrides):
        if not isinstance(env, str):
            raise ConfigError(f"a population needs a gymnasium environment id (every member builds its own "
                              f"environments, also in worker processes), got {type(env).__name__}")
        members = member_settings(Algo.Config, seed, overrides)
        require_population_memory(agent_config(Algo.Config, env, config, members[0][1]), env, len(members),
                                  default_workers(None, len(members)))
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
        return self.members[k]

    def __iter__(self):
        return iter(self.members)

    seeds = property(lambda self: [m.seed for m in self.members], doc="Each member's seed.")
    algo = property(lambda self: self.members[0].name, doc="The algorithm's name.")
    env_id = property(lambda self: self.members[0].env_id, doc="The environment id every member trains on.")

    def varied(self):
        """The names of the settings whose values differ between members."""
        configs = [m.config.to_dict() for m in self.members]
        return [name for name in configs[0] if any(c[name] != configs[0][name] for c in configs)]

    def settings(self, k):
        """``{name: value}`` of member ``k``'s settings that differ between members."""
        config = self.members[k].config.to_dict()
        return {name: config[name] for name in self.varied()}

    def learn(self, total_steps, eval_every=0, eval_episodes=10, workers=None, progress_bar=False, backend="local",
              address=None):
        """Train every member for ``total_steps`` more environment steps, evaluating each every ``eval_every``
        steps (0: never) on ``eval_episodes`` episodes. ``workers`` processes train members side by side (default:
        one per core); with ``workers=1`` they train here, one after another, with identical results. With
        ``backend="ray"`` chunks of members train as Ray tasks (``npgrad/ray_backend.py``) on the cluster at
        ``address`` (default: a local Ray instance), again with identical results."""
        total_steps = require_integer(total_steps, "total_steps")
        eval_every = require_integer(eval_every, "eval_every")
        eval_episodes = require_integer(eval_episodes, "eval_episodes", positive=True, most=10_000)
        workers = default_workers(workers, len(self))
        if backend not in ("local", "ray"):
            raise ConfigError(f"backend must be 'local' or 'ray', got {shown(backend)}")
        bar = PopulationBar(self, total_steps) if require_bool(progress_bar, "progress_bar") else None
        train = self.train_on_ray(address) if backend == "ray" else self.train
        failures = {}
        for k, outcome in train(total_steps, eval_every, eval_episodes, workers):
            if isinstance(outcome, Exception):
                failures[k] = outcome
            if bar is not None:
                bar.member_done(k)
        if bar is not None:
            bar.close()
        if failures:
            k, error = next(iter(sorted(failures.items())))
            raise NpgradError(f"{len(failures)} of {len(self)} members failed (the others trained); member {k} "
                              f"(seed {self.members[k].seed}): {type(error).__name__}: {error}") from error
        return self

    def train(self, total_steps, eval_every, eval_episodes, workers):
        """Yield ``(k, None or the exception)`` as each member finishes, in whatever order they do."""
        if workers == 1:
            for k, agent in enumerate(self.members):
                evaluator = make_evaluator(eval_every, eval_episodes, self.evaluations[k])
                try:
                    train_member(agent, total_steps, evaluator)
                except Exception as e:  # noqa: BLE001 - one member's failure must not stop the others
                    yield k, e
                    continue
                self.evaluations[k] = evaluator_state(evaluator, self.evaluations[k])
                yield k, None
            return
        tasks = self.tasks(total_steps, eval_every, eval_episodes)
        context = worker_context()
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(learn_in_worker, task): k for k, task in enumerate(tasks)}
            for future in concurrent.futures.as_completed(futures):
                k = futures[future]
                try:
                    self.take(k, future.result())
                except Exception as e:  # noqa: BLE001
                    yield k, e
                    continue
                yield k, None

    def tasks(self, total_steps, eval_every, eval_episodes):
        """One ``Task`` per member: what a worker needs to rebuild and train it."""
        return [Task(m.name, m.env_id, m.seed, m.config.to_dict(), *m.state(), total_steps, eval_every,
                     eval_episodes, self.evaluations[k]) for k, m in enumerate(self.members)]

    def take(self, k, result):
        """Member ``k`` as a worker left it: ``(arrays, meta, evaluation)``."""
        arrays, meta, self.evaluations[k] = result
        self.members[k].load_state(arrays, meta)

    def train_on_ray(self, address):
        """``train``, with chunks of members as Ray tasks (``npgrad/ray_backend.py``)."""
        from . import ray_backend

        ray = ray_backend.connect(address)

        def train(total_steps, eval_every, eval_episodes, workers):
            tasks = self.tasks(total_steps, eval_every, eval_episodes)
            chunks = ray_backend.chunked(list(range(len(self))), ray_backend.default_chunks(ray))
            jobs = [[tasks[k] for k in chunk] for chunk in chunks]
            for i, results in ray_backend.map_chunks(ray_backend.learn_chunk, jobs, ray):
                for k, (kind, value) in zip(chunks[i], results):
                    if kind == "ok":
                        self.take(k, value)
                    yield k, None if kind == "ok" else NpgradError(value)

        return train

    def aggregate(self):
        """``{label: Curve}``: the members with the same settings (all but their seed) pooled at each evaluation step:
        the IQM of their returns with its 95% bootstrap interval, and the median."""
        groups = {}
        for k in range(len(self)):
            history = self.evaluations[k].get("history", [])
            if history:
                groups.setdefault(setting_label(self.settings(k), self.varied()), []).append(history)
        curves = {}
        for label, histories in groups.items():
            n = min(map(len, histories))  # members of one setting evaluate at the same steps
            returns_rk = [[row[2] for row in h[:n]] for h in histories]
            curves[label] = aggregate_curves([row[0] for row in histories[0][:n]], returns_rk)
        return curves

    def evaluate(self, episodes=10, deterministic=True):
        """Each member's ``EvalResult`` (``Agent.evaluate``), in member order."""
        return [member.evaluate(episodes, deterministic=deterministic) for member in self.members]

    def save(self, folder):
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


def load_population(folder, trust_env_spec=False):
    """The ``Population`` saved in ``folder``. ``population.json`` is untrusted input: it may only name member files
    ``member-NNN.npz`` in that folder, each loaded and checked by ``npgrad.load``, all of one algorithm and id."""
    path = os.path.join(folder, INDEX)
    try:
        with open(path) as f:
            index = json.loads(f.read(1_000_000))
    except (OSError, ValueError) as e:
        raise FileFormatError(f"{path}: not a population index ({e})") from None
    if not (isinstance(index, dict) and index.get("format") == FORMAT):
        raise FileFormatError(f"{path}: format must be {FORMAT!r}, got {shown(getattr(index, 'get', dict)('format'))}")
    files = index.get("members")
    if not (isinstance(files, list) and files and all(isinstance(n, str) and MEMBER_FILE.fullmatch(n) for n in files)):
        raise FileFormatError(f"{path}: members must be a non-empty list of names member-NNN.npz, got {shown(files)}")
    members, evaluations = [], []
    for name in files:
        member = load(os.path.join(folder, name), trust_env_spec=trust_env_spec)
        if (member.name, member.env_id) != (index.get("algo"), index.get("env_id")):
            raise FileFormatError(f"{path}: {name} is a {member.name} agent on {member.env_id}, not the population's "
                                  f"{shown(index.get('algo'))} on {shown(index.get('env_id'))}")
        members.append(member)
        evaluations.append(saved_evaluation(os.path.join(folder, name)))
    return Population.of(members, evaluations)


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


class PopulationBar:
    """A tqdm bar of members done, with the IQM of their latest evaluation (or episode) returns and the
    population's member-steps per second."""

    def __init__(self, population, steps):
        from tqdm.auto import tqdm

        self.population, self.steps, self.start = population, steps, time.perf_counter()
        self.bar = tqdm(total=len(population), unit="members", dynamic_ncols=True)

    def member_done(self, k):
        done = self.bar.n + 1
        returns = [e["history"][-1][2] for e in self.population.evaluations if e.get("history")]
        rate = done * self.steps / max(time.perf_counter() - self.start, 1e-9)
        postfix = {"member-steps/s": f"{rate:,.0f}"}
        if returns:
            postfix["IQM return"] = f"{float(iqm(returns)):.1f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self):
        self.bar.close()
