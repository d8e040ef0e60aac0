"""A population's run folder: what ``npgrad train ALGO ENV_ID --seeds 0-15 [--set lr=1e-3,3e-3]`` writes.

    DIR/population.json     algorithm, env id, budget, evaluation and checkpoint intervals, and each member:
                            its folder, seed and the settings it was given
    DIR/member-000/ ...     one ordinary run folder per member (``npgrad/runs.py``), the files a solo run writes
    DIR/aggregate.csv       per setting and evaluation step: the IQM of the members' evaluation returns, its 95%
                            percentile-bootstrap interval, the median and the number of members
    DIR/curve.png           the IQM with its interval as a band, one per setting

Members are every setting (each comma-separated ``--set`` list of a per-member number, crossed) with
every seed, trained by ``workers`` processes at once; each member is trained, checkpointed and
resumed exactly as a solo run with its seed and settings would be. ``--resume DIR`` skips members
that finished and resumes the others from their latest checkpoints.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io as text_io
import itertools
import json
import os
import re
import sys

from . import runs
from .errors import ConfigError, FileFormatError, NpgradError, shown
from .population import (PopulationBar, aggregate_curves, chunked, completed, default_workers, per_member_fields,
                         worker_context)
from .tuned import defaults_for

INDEX, AGGREGATE = "population.json", "aggregate.csv"
FORMAT = "npgrad-population-run"
MEMBER_DIR = re.compile(r"member-\d{3,6}")
MAX_MEMBERS = 10_000


def parse_seeds(text):
    """``"0-15"`` or ``"0,3,8-11"`` -> a list of distinct seeds, in order."""
    seeds = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ConfigError(f"--seeds {text}: expected seeds such as 0-15 or 0,3,8-11") from None
        if high < low:
            raise ConfigError(f"--seeds {text}: the range {part.strip()} is empty")
        if high - low >= MAX_MEMBERS:
            raise ConfigError(f"--seeds {text}: at most {MAX_MEMBERS:,} members")
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {text}: a seed is listed twice")
    return seeds


def split_settings(config_cls, pairs):
    """``--set`` pairs -> ``(shared pairs, {name: [value texts]})``: a comma-separated value of a per-member number
    (``lr=1e-3,3e-3``) is a list of settings to sweep; any other value (``hidden=64,64``) is one setting."""
    shared, swept = [], {}
    for pair in pairs or []:
        name, text = runs.set_pair(config_cls, pair)
        if "," in text and name in per_member_fields(config_cls):
            swept[name] = [t.strip() for t in text.split(",")]
            if len({runs.parse_value(config_cls, name, t) for t in swept[name]}) < len(swept[name]):
                raise ConfigError(f"--set {pair}: a value is listed twice")
        else:
            shared.append(pair)
    return shared, swept


def refuse_listed_structure(config_cls, shared):
    """A population's shared ``--set`` pairs may not list values of a structural setting (``n_steps=64,128``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    for pair in shared:
        name, text = runs.set_pair(config_cls, pair)
        if "," in text and name in defaults and not isinstance(defaults[name], tuple):
            raise ConfigError(f"--set {pair}: {name} is shared by every member of a population (a structural "
                              f"setting): give one value. Only numbers of the update may differ per member: "
                              f"{', '.join(sorted(per_member_fields(config_cls)))}")


def member_specs(seeds, swept):
    """Every setting crossed with every seed: ``[{"dir", "seed", "set": ["name=value", ...]}]``."""
    names = list(swept)
    settings = [dict(zip(names, values)) for values in itertools.product(*swept.values())]
    if len(settings) * len(seeds) > MAX_MEMBERS:
        raise ConfigError(f"{len(settings)} settings x {len(seeds)} seeds is more than {MAX_MEMBERS:,} members")
    members = [(setting, seed) for setting in settings for seed in seeds]
    return [{"dir": f"member-{k:03d}", "seed": seed, "set": [f"{n}={v}" for n, v in setting.items()]}
            for k, (setting, seed) in enumerate(members)]


def is_population_run(run_dir):
    return os.path.isfile(os.path.join(run_dir, INDEX))


def new_index(args, shared, members):
    return {"format": FORMAT, "algo": args.algo, "env_id": args.env_id, "steps": args.steps or 100_000,
            "set": shared, "config": args.config, "checkpoint_every": args.checkpoint_every,
            "eval_every": args.eval_every, "eval_episodes": args.eval_episodes, "members": members}


def read_index(run_dir):
    """``population.json``, checked: it may only name member folders ``member-NNN`` inside ``run_dir``, and every
    count is in range; the members' own ``config.json`` files are checked when they are resumed."""
    path = runs.run_file(run_dir, INDEX)
    index = runs.read_json_object(path)
    try:
        runs.check_fields(index, ["format", "algo", "env_id", "steps", "set", "config", "checkpoint_every",
                                  "eval_every", "eval_episodes", "members"])
        if index["format"] != FORMAT:
            raise ConfigError(f"format must be {FORMAT!r}, got {shown(index['format'])}")
        for name in ("steps", "checkpoint_every", "eval_every", "eval_episodes"):
            runs.check_count(name, index[name])
        members = index["members"]
        if not (isinstance(members, list) and 0 < len(members) <= MAX_MEMBERS):
            raise ConfigError(f"members must be a list of 1 to {MAX_MEMBERS:,} members, got {shown(members)}")
        for member in members:
            runs.check_fields(runs.require_object("a member", member), ["dir", "seed", "set"])
            if not (isinstance(member["dir"], str) and MEMBER_DIR.fullmatch(member["dir"])):
                raise ConfigError(f"a member's dir must be member-NNN, got {shown(member['dir'])}")
            runs.check_count("seed", member["seed"])
        for pairs in [index["set"]] + [m["set"] for m in members]:
            if not (isinstance(pairs, list) and all(isinstance(p, str) for p in pairs)):
                raise ConfigError(f"set must be a list of name=value texts, got {shown(pairs)}")
        if index["config"] is not None and not isinstance(index["config"], str):
            raise ConfigError(f"config must be a file name or null, got {shown(index['config'])}")
    except ConfigError as e:
        raise FileFormatError(f"{path}: {e}") from None
    return index


def member_argv(index, member, run_dir, resume):
    """The ``npgrad train`` arguments that start (or resume) one member as a solo run."""
    member_dir = os.path.join(run_dir, member["dir"])
    if resume and os.path.isfile(os.path.join(member_dir, runs.CONFIG)):
        return ["train", "--resume", member_dir, "--quiet", "--steps", str(index["steps"])]
    argv = ["train", index["algo"], index["env_id"], "--seed", str(member["seed"]), "--out", member_dir, "--quiet",
            "--steps", str(index["steps"]), "--checkpoint-every", str(index["checkpoint_every"]),
            "--eval-every", str(index["eval_every"]), "--eval-episodes", str(index["eval_episodes"])]
    if index["config"]:
        argv += ["--config", index["config"]]
    for pair in index["set"] + member["set"]:
        argv += ["--set", pair]
    return argv


def steps_in(path):
    """The steps an agent file (a model or a checkpoint) has trained, from its header, or None without a file."""
    if not (path and os.path.isfile(path)):
        return None
    from .io import read_header

    return read_header(path)["progress"]["num_steps"]


def trained_steps(member, run_dir):
    """The steps of a member's finished model, or None before it has one."""
    return steps_in(os.path.join(run_dir, member["dir"], runs.MODEL))


def finished(index, member, run_dir):
    steps = trained_steps(member, run_dir)
    return steps is not None and steps >= index["steps"]


def refuse_finished(index, run_dir):
    """A population whose every member has its ``index["steps"]`` is finished: resuming it would train nothing."""
    if all(finished(index, m, run_dir) for m in index["members"]):
        most = max(trained_steps(m, run_dir) for m in index["members"])
        raise ConfigError(f"{run_dir} has finished: all {len(index['members'])} members have {index['steps']:,} "
                          f"steps or more; plot them with npgrad plot {run_dir}, or train further with --resume "
                          f"{run_dir} --steps N (N > {most:,})")


def refuse_below(index, run_dir, steps):
    """``--steps`` below what a member has trained (its model, or its latest checkpoint) is refused before anything
    is written, as for a solo run: that member could not resume, and the index would disagree with its files."""
    for member in index["members"]:
        member_dir = os.path.join(run_dir, member["dir"])
        for path in (os.path.join(member_dir, runs.MODEL), runs.latest_checkpoint(member_dir)):
            done = steps_in(path) or 0
            if done > steps:
                raise ConfigError(f"--steps {steps:,} is below the {done:,} steps {member_dir} has trained ({path}); "
                                  "give more to train further")


def run_stack(argvs, feed=None, chunk=0, halt=None):
    """A worker's job: the members given by their ``npgrad train`` arguments, each set up as its solo run would be
    (a new run folder, or one resumed from its checkpoint), then trained as stacks of members at the same step
    (``population.train_stack``), each with its run folder's logger; progress goes to the queue ``feed``, if given.
    Ctrl-C here, or the event ``halt`` set by the parent, stops every member at its next update with a checkpoint.
    Returns ``[(exit status, message)]``."""
    from .cli import build_parser, finish_run, resume_run, start_run
    from .population import reporter, train_stack

    parser, results, members = build_parser(), [None] * len(argvs), []
    with runs.StopOnSignal(halt) as stop:
        for i, argv in enumerate(argvs):
            args = parser.parse_args(argv)
            try:
                agent, run_dir, run_config, state = resume_run(args) if args.resume else start_run(args)
            except NpgradError as e:
                results[i] = (getattr(e, "exit_status", 2), f"npgrad: error: {e}")
                continue
            members.append((i, agent, run_dir, run_config, runs.RunLogger(run_dir, run_config, state, stop=stop,
                                                                            show=False)))
        groups = {}
        for member in members:  # a stack trains members at the same step of the same budget
            at = {name: n for name, n in member[1].progress.state().items() if name != "failed_updates"}
            groups.setdefault(tuple(sorted(at.items())), []).append(member)
        for g, group in enumerate(groups.values()):
            try:
                train_stack([m[1] for m in group], [m[4] for m in group], reporter(feed, (chunk, g)))
                for i, agent, run_dir, run_config, logger in group:
                    results[i] = (finish_run(agent, run_dir, run_config, logger, stop), "")
            except NpgradError as e:
                for m in group:
                    results[m[0]] = (getattr(e, "exit_status", 2), f"npgrad: error: {e}")
    return results


def train_population(index, run_dir, workers, resume=False, show=True, backend="local", address=None):
    """Train every unfinished member, in ``workers`` processes here (each a stack of members) or in chunks on a Ray
    cluster (``backend="ray"``); write the aggregate; return the exit status."""
    todo = [m for m in index["members"] if not (resume and finished(index, m, run_dir))]
    workers = default_workers(workers, max(len(todo), 1))
    if show:
        where = (f"as {workers} stack{'s' if workers > 1 else ''} of members trained together, one per worker "
                 "process" if backend == "local" else "on Ray")
        print(f"training {index['algo']} on {index['env_id']}: {len(index['members'])} members "
              f"({len(index['members']) - len(todo)} finished) for {index['steps']:,} steps each, {where} -> {run_dir}",
              file=sys.stderr)
        print(f"defaults: {defaults_for(index['algo'], index['env_id'])[1]}", file=sys.stderr)
    failures, display = {}, PopulationBar(len(todo), index["steps"]) if show else None
    try:
        with runs.StopOnSignal() as stop:
            outcomes = (train_on_ray(index, run_dir, todo, resume, address, stop, display) if backend == "ray" else
                        train_here(index, run_dir, todo, resume, workers, stop, display))
            for member, status, message in outcomes:
                if status != 0:
                    failures[member["dir"]] = (status, message)
    finally:
        if display is not None:
            display.close()
    written = write_aggregate(index, run_dir)
    stopped_early = stop.requested and not all(finished(index, m, run_dir) for m in index["members"])
    if stopped_early or any(status == 130 for status, _ in failures.values()):  # a Ctrl-C after the end is no stop
        print(f"interrupted; continue with: npgrad train --resume {run_dir}", file=sys.stderr)
        return 130
    for name, (status, message) in sorted(failures.items()):
        print(f"{name} failed (exit status {status}): {message}", file=sys.stderr)
    if show and written:
        print(f"done: wrote {', '.join(written)}", file=sys.stderr)
    return 1 if failures else 0


def train_here(index, run_dir, todo, resume, workers, stop, display=None):
    """Yield ``(member, exit status, message)`` as each worker process finishes its chunk of members (stacks), showing
    their progress on ``display`` meanwhile."""
    chunks, context = chunked(todo, workers), worker_context()
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool, context.Manager() as manager:
        feed, halt = (manager.Queue() if display is not None else None), manager.Event()
        futures = {pool.submit(run_stack, [member_argv(index, m, run_dir, resume) for m in chunk], feed, i, halt): i
                   for i, chunk in enumerate(chunks)}
        sizes = {}  # the size of each stack a chunk trains, learned from its first report
        show = lambda key, n, latest: display.update(key, sizes.setdefault(key, len(latest)), n, latest)  # noqa: E731

        def pass_on_ctrl_c():  # a Ctrl-C that reached only this process stops the workers too
            if stop.requested:
                halt.set()
        for future in completed(futures, feed, show, tick=pass_on_ctrl_c):
            if stop.requested:
                for f in futures:
                    f.cancel()
            i = futures[future]
            for member, (status, message) in zip(chunks[i], future.result()):
                yield member, status, message
            for key in [key for key in sizes if key[0] == i and not stop.requested]:
                display.update(key, sizes[key], index["steps"])


def train_on_ray(index, run_dir, todo, resume, address, stop, display=None):
    """Yield ``(member, exit status, message)`` as each chunk of members comes back from its Ray task; their files are
    written into ``run_dir`` as they arrive (``npgrad/ray_backend.py``)."""
    from . import ray_backend

    ray = ray_backend.connect(address)
    config_text = None
    if index["config"]:
        with open(index["config"]) as f:
            config_text = f.read(runs.MAX_CONFIG_BYTES + 1)
    jobs = []
    for m in todo:
        member_dir = runs.run_file(run_dir, m["dir"])
        files = ray_backend.read_files(member_dir) if resume and os.path.isdir(member_dir) else {}
        jobs.append({"member": m, "dir": member_dir, "argv": member_argv(index, m, run_dir, resume), "files": files,
                     "config": index["config"], "config_text": config_text})
    chunks = chunked(jobs, ray_backend.default_chunks(ray))
    for i, results in ray_backend.map_chunks(ray_backend.run_chunk, chunks, ray, stopped=lambda: stop.requested):
        for job, (status, message, files) in zip(chunks[i], results):
            with runs.writing(run_dir, job["dir"]):
                ray_backend.write_files(job["dir"], files)
            yield job["member"], status, message
        if display is not None:
            display.update(i, len(chunks[i]), index["steps"])


def member_curves(index, run_dir):
    """``{member dir: (steps, returns)}`` of every member that has evaluations."""
    curves = {}
    for member in index["members"]:
        member_dir = os.path.join(run_dir, member["dir"])
        if os.path.isfile(os.path.join(member_dir, runs.PROGRESS)):
            curves[member["dir"]] = runs.eval_curve(member_dir)
    return curves


def population_curves(index, run_dir):
    """``{setting label: Curve}``: the members of each setting pooled at the evaluation steps all of them reached."""
    curves, groups = member_curves(index, run_dir), {}
    for member in index["members"]:
        steps, returns = curves.get(member["dir"], ((), ()))
        if len(steps):
            groups.setdefault(", ".join(member["set"]) or "all", []).append((steps, returns))
    pooled = {}
    for label, members in groups.items():
        n = min(len(steps) for steps, _ in members)
        if n:
            pooled[label] = aggregate_curves(members[0][0][:n], [returns[:n] for _, returns in members])
    return pooled


def write_aggregate(index, run_dir):
    """Write ``aggregate.csv`` and ``curve.png`` (with matplotlib); returns the paths written."""
    from .plotting import iqm_band, plot_curves

    curves = population_curves(index, run_dir)
    if not curves:
        return []
    out = text_io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["setting", "num_steps", "iqm", "ci_low", "ci_high", "median", "members"])
    for label, c in curves.items():
        for row in zip(c.num_steps, c.iqm, c.low, c.high, c.median):
            writer.writerow([label, int(row[0]), *(runs.format_cell(float(v)) for v in row[1:]), c.members])
    path = runs.run_file(run_dir, AGGREGATE)
    with runs.writing(run_dir, path):
        runs.atomic_write_text(path, out.getvalue())
    band = {entry: line for label, c in curves.items() for entry, line in iqm_band(label, c).items()}
    curve = runs.run_file(run_dir, runs.CURVE)
    with runs.writing(run_dir, curve):
        curve = plot_curves(band, curve, index["env_id"])
    return [path] + ([curve] if curve else [])


def write_index(run_dir, index):
    path = runs.run_file(run_dir, INDEX)
    with runs.writing(run_dir, path):
        runs.atomic_write_text(path, json.dumps(index, indent=1))


def member_dirs(run_dir):
    """The member folders a population run folder lists (for ``npgrad plot``)."""
    return [os.path.join(run_dir, m["dir"]) for m in read_index(run_dir)["members"]
            if os.path.isfile(os.path.join(run_dir, m["dir"], runs.CONFIG))]

