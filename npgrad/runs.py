"""A run folder: what ``npgrad train`` writes, and how an interrupted run resumes exactly.

    RUN_DIR/config.json      algorithm, env id, seed, budget, every hyperparameter, library versions
    RUN_DIR/progress.csv     one row per update: every diagnostic, plus the evaluation return when
                             one was run (deterministic numbers only, so a resumed run reproduces it)
    RUN_DIR/timing.csv       wall-clock per update (training seconds exclude evaluation)
    RUN_DIR/checkpoints/     step_<num_steps>.npz every ``checkpoint_every`` steps (and on Ctrl-C)
    RUN_DIR/model.npz        the final agent (``npgrad.load``)
    RUN_DIR/curve.png        evaluation returns against steps (with matplotlib)

Resume: the latest checkpoint restores parameters, optimiser moments, normalisers, RNG state,
counters and this run's evaluation state. Environments are not saved: right after writing each
periodic checkpoint, training restarts every environment with a seed drawn from
``(seed, num_steps)`` (``Agent.restart_envs``), and a resumed run does the same after loading, so
both continue identically. The final Ctrl-C checkpoint is taken where the run stopped, so a
run resumed from it continues correctly but not bit-identically to one never interrupted.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
import re
import signal
import sys
import time

import numpy as np

from .version import __version__
from .errors import ConfigError, FileFormatError
from .io import read
from .callbacks import Evaluator

CONFIG, PROGRESS, TIMING, MODEL, CURVE, CHECKPOINTS = (
    "config.json", "progress.csv", "timing.csv", "model.npz", "curve.png", "checkpoints")
PROGRESS_FIRST = ["num_updates", "num_steps", "eval_return"]
PROGRESS_OPTIONAL = ["update_failed"]  # diagnostics that only some updates report


def parse_value(config_cls, name, text):
    """Turn the text of ``--set name=text`` into the type of the config field ``name``."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields:
        raise ConfigError(f"unknown hyperparameter {name!r} for {config_cls.__name__}; valid names: "
                          f"{', '.join(sorted(fields))}")
    default = fields[name].default
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            return tuple(int(h) for h in text.strip("()[] ").split(",") if h.strip())
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number",
                tuple: "comma-separated integers such as 64,64"}[type(default)]
        raise ConfigError(f"--set {name}={text}: {name} expects {kind}") from None
    return text


def parse_overrides(config_cls, pairs):
    """``["lr=1e-3", "hidden=32,32"]`` -> ``{"lr": 0.001, "hidden": (32, 32)}``."""
    overrides = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        overrides[name.strip()] = parse_value(config_cls, name.strip(), text.strip())
    return overrides


def versions():
    import gymnasium
    import scipy

    return {"npgrad": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "gymnasium": gymnasium.__version__}


def atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def read_config(run_dir):
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise FileFormatError(f"run folder {run_dir!r} does not exist")
    if not os.path.isfile(path):
        raise FileFormatError(f"{run_dir!r} is not an npgrad run folder (no {CONFIG})")
    try:
        with open(path) as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not valid JSON ({e})") from None
    if config.get("format") != "npgrad-run":
        raise FileFormatError(f"{path}: not an npgrad run config")
    return config


def write_config(run_dir, run_config):
    atomic_write_text(os.path.join(run_dir, CONFIG), json.dumps(run_config, indent=1) + "\n")


def checkpoint_path(run_dir, num_steps):
    return os.path.join(run_dir, CHECKPOINTS, f"step_{num_steps:010d}.npz")


def latest_checkpoint(run_dir):
    """Path of the checkpoint with the most steps, or None."""
    folder = os.path.join(run_dir, CHECKPOINTS)
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"step_\d{10}\.npz", n)) if os.path.isdir(
        folder) else []
    return os.path.join(folder, names[-1]) if names else None


def read_csv(path):
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def truncate_csv(path, num_updates):
    """Keep the rows of updates ``<= num_updates`` (a resumed run rewrites the rest)."""
    header, rows = read_csv(path)
    if header:
        rewrite_csv(path, header, [r for r in rows if int(r["num_updates"]) <= num_updates])


def truncate_logs(run_dir, num_updates):
    """Cut ``progress.csv`` and ``timing.csv`` back to the updates a checkpoint holds."""
    for name in (PROGRESS, TIMING):
        truncate_csv(os.path.join(run_dir, name), num_updates)


def rewrite_csv(path, header, rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())


def eval_curve(run_dir):
    """``(steps, returns)`` of the evaluations in a run's ``progress.csv``."""
    _, rows = read_csv(os.path.join(run_dir, PROGRESS))
    points = [(int(r["num_steps"]), float(r["eval_return"])) for r in rows if r.get("eval_return")]
    return tuple(np.array(v) for v in zip(*points)) if points else (np.array([]), np.array([]))


class CsvLog:
    """Append-only CSV whose header is ``first`` columns, then the first row's other keys and ``optional``, sorted."""

    def __init__(self, path, first=(), optional=()):
        self.path, self.first, self.optional = path, list(first), list(optional)
        self.header, _ = read_csv(path)

    def write(self, row):
        new = not self.header
        if new:
            self.header = self.first + sorted((set(row) | set(self.optional)) - set(self.first))
        elif set(row) - set(self.header):  # a diagnostic seen for the first time: widen the file once
            self.header += sorted(set(row) - set(self.header))
            _, rows = read_csv(self.path)
            rewrite_csv(self.path, self.header, rows)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, self.header, restval="", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({k: format_cell(v) for k, v in row.items()})


def format_cell(value):
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


class StopOnSignal:
    """Turn Ctrl-C (SIGINT) into a request to stop at the next update boundary."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


class RunLogger:
    """The ``learn`` callback of a run folder: evaluate, log, checkpoint, show progress, stop on request."""

    def __init__(self, run_dir, run_config, state=None, stop=None, show=True):
        self.run_dir, self.run_config, self.stop, self.show = run_dir, run_config, stop, show
        self.every = run_config["checkpoint_every"]
        state = state or {}
        self.evaluator = Evaluator(every=run_config["eval_every"] or 10**18, episodes=run_config["eval_episodes"])
        self.evaluator.history = [tuple(r) for r in state.get("history", [])]
        self.evaluator.next_eval = state.get("next_eval", self.evaluator.every)
        self.evaluator.train_seconds = state.get("train_seconds", 0.0)
        self.next_checkpoint = state.get("next_checkpoint", self.every)
        self.progress = CsvLog(os.path.join(run_dir, PROGRESS), PROGRESS_FIRST, PROGRESS_OPTIONAL)
        self.timing = CsvLog(os.path.join(run_dir, TIMING), ["num_updates", "num_steps"])
        self.last_return = float("nan")
        os.makedirs(os.path.join(run_dir, CHECKPOINTS), exist_ok=True)

    def start_clock(self):
        self.evaluator.start_clock()

    def state(self):
        """What a checkpoint stores about this run besides the agent (JSON)."""
        e = self.evaluator
        return {"history": [list(r) for r in e.history], "next_eval": e.next_eval, "train_seconds": e.train_seconds,
                "next_checkpoint": self.next_checkpoint}

    def save_checkpoint(self, agent):
        path = agent.save(checkpoint_path(self.run_dir, agent.num_steps), user=self.state())
        self.evaluator.start_clock()  # saving is not training time
        return path

    def __call__(self, agent, diagnostics):
        evaluations = len(self.evaluator.history)
        self.evaluator(agent, diagnostics)
        row = dict(diagnostics)
        if len(self.evaluator.history) > evaluations:
            row["eval_return"] = self.evaluator.history[-1][2]
        self.progress.write(row)
        seconds = self.evaluator.train_seconds
        self.timing.write({"num_updates": agent.num_updates, "num_steps": agent.num_steps, "train_seconds": seconds,
                           "steps_per_second": agent.num_steps / seconds if seconds > 0 else float("nan")})
        if np.isfinite(diagnostics.get("ep_return_mean", np.nan)):
            self.last_return = diagnostics["ep_return_mean"]
        if self.show:
            self.print_progress(agent, diagnostics, row)
        if agent.num_steps >= self.next_checkpoint:
            while self.next_checkpoint <= agent.num_steps:
                self.next_checkpoint += self.every
            self.save_checkpoint(agent)
            agent.restart_envs()  # a resumed run restarts them here too (see the module docstring)
        if self.stop is not None and self.stop.requested:
            return False
        return True

    def print_progress(self, agent, diagnostics, row):
        seconds = self.evaluator.train_seconds
        speed = agent.num_steps / seconds if seconds > 0 else 0.0
        total = agent.progress.total_steps
        line = (f"{agent.num_steps:>9,}/{total:,} steps "
                f"{100 * agent.num_steps / max(total, 1):3.0f}%  return {self.last_return:8.1f}  "
                f"KL {diagnostics.get('kl', float('nan')):.4f}  {speed:,.0f} steps/s")
        if "eval_return" in row:
            print(f"\r{line}  eval {row['eval_return']:8.1f}", file=sys.stderr, flush=True)
        elif sys.stderr.isatty():
            print(f"\r{line}", end="", file=sys.stderr, flush=True)


def new_run_config(algo, env_id, seed, steps, overrides, config, checkpoint_every, eval_every, eval_episodes):
    return {"format": "npgrad-run", "algo": algo, "env_id": env_id, "seed": seed, "steps": steps,
            "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
            "config": config.to_dict(), "checkpoint_every": checkpoint_every, "eval_every": eval_every,
            "eval_episodes": eval_episodes, "versions": versions(), "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def checkpoint_state(path):
    """The run state a checkpoint stored (``RunLogger.state``)."""
    meta, _ = read(path)
    return meta.get("user", {})
