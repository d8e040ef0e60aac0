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

A run folder is read as untrusted input: every field of ``config.json`` and of a checkpoint's run
state is checked before it is used (``check_run_config``, ``checkpoint_state``), every count and
interval has a range (``COUNTS``), and a symbolic link that leads out of the folder is refused
(``run_file``). A write that fails (disk full, read-only) is one ``WriteError`` naming the file and
the checkpoint a resumed run starts from; leftovers of writes a killed process never finished are
removed when a run starts or resumes (``remove_stale_temporaries``).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import platform
import re
import signal
import sys
import time
import warnings

import numpy as np
import yaml

from . import zoo
from .agent import ALGOS
from .callbacks import Evaluator, next_due
from .envs import check_env_id
from .errors import ConfigError, FileFormatError, NpgradError, NpgradWarning
from .errors import shown
from .io import is_integer, read_header
from .rollout import STATS_WINDOW
from .version import __version__

CONFIG, PROGRESS, TIMING, MODEL, CURVE, CHECKPOINTS = (
    "config.json", "progress.csv", "timing.csv", "model.npz", "curve.png", "checkpoints")
PROGRESS_FIRST = ["num_updates", "num_steps", "eval_return"]
PROGRESS_OPTIONAL = ["update_failed"]  # diagnostics that only some updates report
RUN_FIELDS = ["format", "algo", "env_id", "seed", "steps", "overrides", "config", "checkpoint_every", "eval_every",
              "eval_episodes", "versions", "created"]
STALE = re.compile(r"(config\.json|progress\.csv|timing\.csv|model\.npz|step_\d{10}\.npz)\.tmp-\d+")
MAX_STEPS = 10**10  # a budget beyond this is a typo or a crafted file: 12 days at 10,000 steps/s
MAX_EPISODES = 10_000
MAX_CONFIG_BYTES = 1_000_000
NEVER = 10**18  # the interval of an evaluation that is switched off (eval_every = 0)
COUNTS = {  # every count and interval the command or a run folder takes: (smallest, largest)
    "seed": (0, 2**63 - 1), "steps": (1, MAX_STEPS), "checkpoint_every": (1, MAX_STEPS),
    "eval_every": (0, MAX_STEPS), "eval_episodes": (1, MAX_EPISODES), "episodes": (1, MAX_EPISODES),
    "batch": (1, 4096), "workers": (1, 1024), "num_updates": (0, MAX_STEPS), "next_eval": (1, NEVER),
    "next_checkpoint": (1, NEVER)}


class WriteError(NpgradError):
    """A file of a run folder could not be written (disk full, read-only); the last checkpoint is intact."""

    exit_status = 1  # not a mistake in what was typed (status 2)


# --- checking what a run is given, from the command line or from its files -------------------------


def check_count(name, value, label=None):
    """``value`` if it is an integer in the range ``COUNTS[name]``, else ``ConfigError`` naming ``label``."""
    low, high = COUNTS[name]
    label = label or name
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{label} must be a {'positive' if low else 'non-negative'} integer, got {shown(value)}")
    if value > high:
        raise ConfigError(f"{label} must be at most {high:,}, got {value:,}")
    return int(value)


def check_algo(name):
    """The agent class of an algorithm's name."""
    if not isinstance(name, str) or name not in ALGOS:
        raise ConfigError(f"unknown algorithm {shown(name)}; choose from: {', '.join(ALGOS)}")
    return ALGOS[name]


def require_object(name, value):
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {shown(value)}")
    return value


def check_fields(record, names, prefix="", optional=()):
    """``record`` holds exactly the fields ``names``, and perhaps some of ``optional``."""
    missing, unexpected = sorted(set(names) - set(record)), sorted(set(record) - set(names) - set(optional))
    if missing or unexpected:
        raise ConfigError(prefix + "; ".join(f"{kind} field(s) {shown(fields)}" for kind, fields in (
            ("missing", missing), ("unexpected", unexpected)) if fields))


def check_hyperparameters(Config, values, overrides):
    """``config`` through the algorithm's own validation; ``overrides`` must be the values it holds."""
    require_object("config", values)
    require_object("overrides", overrides)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NpgradWarning)  # given once, when the agent is built
            full = Config.from_dict(values).to_dict()
    except ConfigError as e:
        raise ConfigError(f"config: {e}") from None
    for name, value in overrides.items():
        if name not in full or full[name] != value:
            raise ConfigError(f"overrides: {name}={shown(value)} is not the config's {name}={shown(full.get(name))}")


def check_run_config(config, trust_env_spec=False):
    """Every field of a run's ``config.json`` as ``new_run_config`` writes it; ``ConfigError`` names the first bad."""
    check_fields(config, RUN_FIELDS, optional=["defaults"])  # folders from before it was recorded lack it
    for name in ("seed", "steps", "checkpoint_every", "eval_every", "eval_episodes"):
        check_count(name, config[name])
    check_env_id(config["env_id"], trust_env_spec)
    check_hyperparameters(check_algo(config["algo"]).Config, config["config"], config["overrides"])
    texts = {f"versions[{k!r}]": v for k, v in require_object("versions", config["versions"]).items()}
    for name, value in {**texts, "created": config["created"], "defaults": config.get("defaults", "")}.items():
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {shown(value)}")
    return config


def parse_value(config_cls, name, text, where=None):
    """Turn the text of ``--set name=text`` into the type of the config field ``name``; an error names ``where`` the
    text came from (default: that ``--set``)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields:
        raise config_cls.unknown([name])
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
        raise ConfigError(f"{where or f'--set {name}={text}'}: {name} expects {kind}") from None
    return text


def set_pair(config_cls, pair):
    """``"learning_rate=1e-3"`` -> ``("lr", "1e-3")``: the field's name (SB3's names are accepted too) and its text."""
    name, sep, text = pair.partition("=")
    if not sep or not name:
        raise ConfigError(f"--set expects key=value, got {pair!r}")
    return config_cls.ALIASES.get(name.strip(), name.strip()), text


def parse_overrides(config_cls, pairs):
    """``["lr=1e-3", "hidden=32,32"]`` -> ``{"lr": 0.001, "hidden": (32, 32)}``."""
    overrides = {}
    for pair in pairs or []:
        name, text = set_pair(config_cls, pair)
        overrides[name] = parse_value(config_cls, name, text.strip())
    return overrides


def read_config_file(config_cls, path, env_id):
    """``(overrides, steps)`` of a YAML file (``--config``): a mapping of names (npgrad's or SB3's) to values, or
    an RL-Zoo file of such mappings by environment id, whose entry for ``env_id`` is read (``npgrad/zoo.py``; its
    ``n_timesteps`` is ``steps``, else None). Text values are read as ``--set`` reads them, lists as tuples. Parsed
    with ``yaml.safe_load``, which builds plain values only and never runs code. ``({}, None)`` if ``path`` is
    None."""
    if path is None:
        return {}, None
    try:
        with open(path) as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"--config {path}: larger than {MAX_CONFIG_BYTES:,} bytes, so not a hyperparameter file")
        values = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"--config {path}: {one_line_yaml_error(e)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: must hold a mapping of hyperparameter names to values, got {shown(values)}")
    values, steps = zoo.zoo_settings(values, env_id, config_cls, f"--config {path}")
    overrides = {}
    for name, value in values.items():
        name = config_cls.ALIASES.get(str(name), str(name))
        overrides[name] = (parse_value(config_cls, name, value, f"--config {path}: {name}: {value}")
                           if isinstance(value, str)
                           else tuple(value) if isinstance(value, list) else value)
    return overrides, steps


def one_line_yaml_error(e):
    """PyYAML's multi-line report of where a file stops being YAML, as one line; any other error as it is."""
    mark = getattr(e, "problem_mark", None)
    if isinstance(e, yaml.MarkedYAMLError) and mark is not None:
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {e.problem}"
    return str(e)


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


def run_file(run_dir, *names):
    """``run_dir/names``, refused when a symbolic link leads it out of the run folder (a file there would be
    created, appended to or evaluated as if it belonged to this run)."""
    path = os.path.join(run_dir, *names)
    root, target = os.path.realpath(run_dir), os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
        raise FileFormatError(f"{path} is a symbolic link to {target}, outside the run folder {run_dir}; "
                              "npgrad does not follow links out of a run folder")
    return path


def read_json_object(path):
    """The JSON object in ``path``, read no further than ``MAX_CONFIG_BYTES``."""
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read it ({e.strerror or e})") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise FileFormatError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes, so not a run config")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: also bad UTF-8 and integers of 4,300+ digits
        raise FileFormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise FileFormatError(f"{path}: must hold a JSON object, got {type(value).__name__}")
    return value


def read_config(run_dir, trust_env_spec=False):
    """A run's ``config.json``, every field checked (``check_run_config``)."""
    if not os.path.isdir(run_dir):
        raise FileFormatError(f"{os.fspath(run_dir)!r} is a file, not a run folder" if os.path.exists(run_dir) else
                              f"run folder {os.fspath(run_dir)!r} does not exist")
    for name in (PROGRESS, TIMING, MODEL, CURVE, CHECKPOINTS):
        run_file(run_dir, name)  # a link out of the folder is refused before anything is read or written
    path = run_file(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileFormatError(f"{os.fspath(run_dir)!r} is not an npgrad run folder (no {CONFIG})")
    config = read_json_object(path)
    if config.get("format") != "npgrad-run":
        raise FileFormatError(f"{path}: not an npgrad run config")
    try:
        return check_run_config(config, trust_env_spec)
    except ConfigError as e:
        raise FileFormatError(f"{path}: {e}") from None


def write_config(run_dir, run_config):
    path = run_file(run_dir, CONFIG)
    with writing(run_dir, path):
        atomic_write_text(path, json.dumps(run_config, indent=1) + "\n")


def checkpoint_path(run_dir, num_steps):
    return run_file(run_dir, CHECKPOINTS, f"step_{num_steps:010d}.npz")


def latest_checkpoint(run_dir):
    """Path of the checkpoint with the most steps, or None."""
    folder = run_file(run_dir, CHECKPOINTS)
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"step_\d{10}\.npz", n)) if os.path.isdir(
        folder) else []
    return run_file(folder, names[-1]) if names else None


def remove_stale_temporaries(run_dir):
    """Delete the ``NAME.tmp-PID`` files of writes a killed process never finished (``NAME`` itself is intact)."""
    for folder in (run_file(run_dir), run_file(run_dir, CHECKPOINTS)):
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if STALE.fullmatch(name):
                with writing(run_dir, os.path.join(folder, name)):
                    os.remove(os.path.join(folder, name))


@contextlib.contextmanager
def writing(run_dir, path):
    """Turn a failed write (disk full, read-only) into one ``WriteError`` naming ``path`` and, for a file of the run
    folder ``run_dir``, its last checkpoint (``run_dir`` None: a file outside any run, a plot or a video)."""
    try:
        yield
    except OSError as e:
        if run_dir is None:
            raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
        last = latest_checkpoint(run_dir)
        state = (f"the last checkpoint, {last}, is intact; continue from it with: npgrad train --resume {run_dir}"
                 if last else "no checkpoint was written yet")
        raise WriteError(f"cannot write {path}: {e.strerror or e}; {state}") from None


def last_return(progress_csv):
    """The last finite mean episode return a run logged (NaN if none): what a resumed run shows until its restarted
    environments finish an episode."""
    returns = []
    for row in read_csv(progress_csv)[1]:
        try:
            returns.append(float(row.get("ep_return_mean") or "nan"))
        except ValueError:
            continue
    return next((r for r in reversed(returns) if math.isfinite(r)), float("nan"))


def read_csv(path):
    if not os.path.isfile(path):
        return [], []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except (csv.Error, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not a readable CSV file ({e})") from None


def csv_number(path, i, row, name, kind=int):
    """``kind(row[name])`` of row ``i`` of a run's CSV file, or ``FileFormatError`` naming the cell."""
    try:
        return kind(row[name])
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(f"{path}: row {i}: {name} is {shown(row.get(name))}, not a number") from None


def truncate_csv(path, num_updates):
    """Keep the rows of updates ``<= num_updates`` (a resumed run rewrites the rest)."""
    header, rows = read_csv(path)
    if header:
        rewrite_csv(path, header, [r for i, r in enumerate(rows, 1) if csv_number(path, i, r, "num_updates")
                                   <= num_updates])


def truncate_logs(run_dir, num_updates):
    """Cut ``progress.csv`` and ``timing.csv`` back to the updates a checkpoint holds."""
    for name in (PROGRESS, TIMING):
        path = run_file(run_dir, name)
        with writing(run_dir, path):
            truncate_csv(path, num_updates)


def rewrite_csv(path, header, rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())


def eval_curve(run_dir):
    """``(steps, returns)`` of the evaluations in a run's ``progress.csv``."""
    path = run_file(run_dir, PROGRESS)
    _, rows = read_csv(path)
    points = [(csv_number(path, i, r, "num_steps"), csv_number(path, i, r, "eval_return", float))
              for i, r in enumerate(rows, 1) if r.get("eval_return")]
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
    """Turn Ctrl-C (SIGINT) into a request to stop at the next update boundary; so does setting ``halt`` (an event
    another process may set: how a population's parent stops its workers)."""

    def __init__(self, halt=None, every=0.5):
        self.signalled, self.halt, self.every, self.next_look = False, halt, every, 0.0

    @property
    def requested(self):
        """Asked after every update of every member: the event, in another process, is looked at only every
        ``every`` seconds (each look is a round trip of 0.1-0.3 ms)."""
        if not self.signalled and self.halt is not None and time.monotonic() >= self.next_look:
            self.next_look = time.monotonic() + self.every
            self.signalled = self.halt.is_set()
        return self.signalled

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.signalled = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


class RunLogger:
    """The ``learn`` callback of a run folder: evaluate, log, checkpoint, show progress, stop on request."""

    def __init__(self, run_dir, run_config, state=None, stop=None, show=True):
        self.run_dir, self.run_config, self.stop, self.show = run_dir, run_config, stop, show
        self.every = check_count("checkpoint_every", run_config["checkpoint_every"])
        state = state or {}
        self.evaluator = Evaluator(every=run_config["eval_every"] or NEVER, episodes=run_config["eval_episodes"])
        self.evaluator.load_state(state)
        self.next_checkpoint = state.get("next_checkpoint", self.every)
        self.progress = CsvLog(run_file(run_dir, PROGRESS), PROGRESS_FIRST, PROGRESS_OPTIONAL)
        self.timing = CsvLog(run_file(run_dir, TIMING), ["num_updates", "num_steps"])
        self.last_return = last_return(run_file(run_dir, PROGRESS))
        with writing(run_dir, run_file(run_dir, CHECKPOINTS)):
            os.makedirs(run_file(run_dir, CHECKPOINTS), exist_ok=True)

    def start_clock(self):
        self.evaluator.start_clock()

    def stop_clock(self):
        self.evaluator.stop_clock()

    def due(self, num_steps):
        """Whether the call after an update at ``num_steps`` evaluates or checkpoints (needs the agent's state)."""
        return self.evaluator.due(num_steps) or num_steps >= self.next_checkpoint

    def state(self):
        """What a checkpoint stores about this run besides the agent (JSON)."""
        return {**self.evaluator.state(), "next_checkpoint": self.next_checkpoint}

    def save_checkpoint(self, agent):
        path = checkpoint_path(self.run_dir, agent.num_steps)
        with writing(self.run_dir, path):
            agent.save(path, user={**self.state(), "recent": [list(window) for window in agent.rollout.recent]})
        self.evaluator.start_clock()  # saving is not training time
        return path

    def write_logs(self, row, timing_row):
        for log, values in ((self.progress, row), (self.timing, timing_row)):
            with writing(self.run_dir, log.path):
                log.write(values)

    def __call__(self, agent, diagnostics):
        evaluations = len(self.evaluator.history)
        self.evaluator(agent, diagnostics)
        row = dict(diagnostics)
        if len(self.evaluator.history) > evaluations:
            row["eval_return"] = self.evaluator.history[-1][2]
        seconds = self.evaluator.train_seconds
        self.write_logs(row, {"num_updates": agent.num_updates, "num_steps": agent.num_steps, "train_seconds": seconds,
                              "steps_per_second": agent.num_steps / seconds if seconds > 0 else float("nan")})
        if np.isfinite(diagnostics.get("ep_return_mean", np.nan)):
            self.last_return = diagnostics["ep_return_mean"]
        if self.show:
            self.print_progress(agent, diagnostics, row)
        if agent.num_steps >= self.next_checkpoint:
            self.next_checkpoint = next_due(self.next_checkpoint, self.every, agent.num_steps)
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


def new_run_config(algo, env_id, seed, steps, overrides, config, checkpoint_every, eval_every, eval_episodes, defaults):
    """``config.json`` of a new run; ``defaults`` says where its defaults came from (``tuned.defaults_for``)."""
    return {"format": "npgrad-run", "algo": algo, "env_id": env_id, "seed": seed, "steps": steps, "defaults": defaults,
            "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
            "config": config.to_dict(), "checkpoint_every": checkpoint_every, "eval_every": eval_every,
            "eval_episodes": eval_episodes, "versions": versions(), "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def checkpoint_state(path, run_config):
    """``(num_updates, state)`` of a checkpoint of this run: the updates it holds (the logs are cut back to them)
    and the run state ``RunLogger.state`` stored, each checked before anything is truncated or trusted."""
    meta = read_header(path)  # the arrays are not decompressed here: npgrad.load reads and checks them
    try:
        check_owner(require_object("the header", meta), run_config)
        num_updates = check_count("num_updates", require_object("progress", meta.get("progress")).get("num_updates"))
        return num_updates, check_run_state(require_object("user", meta.get("user")))
    except ConfigError as e:
        raise FileFormatError(f"{path}: {e}") from None


def check_owner(meta, run_config):
    """A checkpoint copied in from another run is not resumed as this one."""
    for name in ("algo", "env_id", "seed"):
        if meta.get(name) != run_config[name]:
            raise ConfigError(f"saved by a run with {name}={shown(meta.get(name))}, not this run's "
                              f"{name}={run_config[name]!r}")


def check_run_state(state):
    """``RunLogger.state``: evaluation history rows, the next evaluation and checkpoint, training seconds, and the
    returns and lengths of the latest episodes (``recent``; a checkpoint written before they were kept has none)."""
    check_fields(state, ["history", "next_eval", "train_seconds", "next_checkpoint"], "user: ", optional=["recent"])
    recent = state.setdefault("recent", [[], []])
    if not (isinstance(recent, list) and len(recent) == 2 and all(isinstance(part, list) for part in recent)
            and len(recent[0]) == len(recent[1]) <= STATS_WINDOW
            and all(is_number(r) and math.isfinite(r) for r in recent[0]) and all(map(is_integer, recent[1]))):
        raise ConfigError(f"recent must be [returns, lengths] of at most {STATS_WINDOW} episodes, got {shown(recent)}")
    check_count("next_eval", state["next_eval"])
    check_count("next_checkpoint", state["next_checkpoint"])
    seconds = state["train_seconds"]
    if not (is_number(seconds) and math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"train_seconds must be a finite number >= 0, got {shown(seconds)}")
    history = state["history"]
    if not (isinstance(history, list) and all(isinstance(r, list) and len(r) == 3 and all(map(is_number, r))
                                               for r in history)):
        raise ConfigError(f"history must be a list of [steps, seconds, return] rows, got {shown(history)}")
    return state


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
