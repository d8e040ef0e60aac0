"""The npgrad command (also python -m npgrad): train, eval, plot, gradcheck, defaults, check-env.

    npgrad train ppo CartPole-v1 --steps 100000 --out runs/ppo-cartpole
    npgrad train --resume runs/ppo-cartpole
    npgrad train ppo CartPole-v1 --seeds 0-15 --set lr=1e-3,3e-3 --out runs/sweep   # 32 members
    npgrad eval runs/ppo-cartpole --episodes 20
    npgrad plot runs/ppo-cartpole-s0 runs/ppo-cartpole-s1 --out curves.png
    npgrad gradcheck --algo trpo --env Pendulum-v1
    npgrad defaults ppo CartPole-v1 > ppo.yaml; npgrad train ppo CartPole-v1 --config ppo.yaml
    npgrad check-env FrozenLake-v1

Errors in what you typed (an unknown algorithm, environment or hyperparameter, a bad value, a
folder that is not a run or whose files fail their checks) print one line, 'npgrad: error: ...',
and exit with status 2; a write that fails (disk full, read-only) prints one line and exits with 1.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import os
import re
import sys
import textwrap
import warnings

import numpy as np
import yaml

from . import io, population_runs, runs
from .agent import ALGOS, EVAL_SEED_OFFSET, load
from .config import field_docs, whole_number
from .errors import ConfigError, FileFormatError, NpgradError, NpgradWarning
from .envs import check_env_id, env_spec, make_vec_env
from .heads import make_head
from .observations import encoded_dim
from .runs import check_algo
from .plotting import have_matplotlib, iqm_band, plot_curves, seed_lines
from .population import aggregate_curves
from .version import __version__


def build_parser():
    parser = argparse.ArgumentParser(prog="npgrad", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"npgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train an agent and write a run folder", add_help=False,
                       description="Train ALGO on ENV_ID with its documented defaults for that environment; "
                                   f"writes {runs.CONFIG}, {runs.PROGRESS}, {runs.TIMING}, {runs.MODEL}, "
                                   f"{runs.CHECKPOINTS}/ and {runs.CURVE} (with matplotlib) to --out.")
    p.add_argument("-h", "--help", action=TrainHelp, nargs=0, help="show this help (with ALGO: its hyperparameters)")
    p.add_argument("algo", nargs="?", metavar="ALGO", help=f"one of: {', '.join(ALGOS)}")
    p.add_argument("env_id", nargs="?", metavar="ENV_ID", help="a gymnasium id such as CartPole-v1 or Pendulum-v1")
    p.add_argument("--steps", type=integer, default=None, help="environment steps to train (default 100000)")
    p.add_argument("--seed", type=int, default=None, help="the seed of a single run (default 0)")
    p.add_argument("--seeds", metavar="SEEDS", help="train a population, one member per seed, e.g. 0-15 or 0,3,8-11; "
                   "--set lr=1e-3,3e-3 then sweeps a number of the update (every value with every seed)")
    p.add_argument("--workers", type=int, default=None, help="a population's members trained at once, one process "
                   "each (default: one per core)")
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="where a population trains: worker "
                   "processes here, or Ray tasks (pip install \"npgrad[ray]\")")
    p.add_argument("--address", metavar="HOST:PORT", help="with --backend ray: the cluster to join (default: start "
                   "a local Ray instance)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter, e.g. --set lr=3e-4 --set hidden=32,32 (repeatable)")
    p.add_argument("--config", metavar="FILE.yaml", help="hyperparameters from a YAML mapping, as printed by "
                   "npgrad defaults, or ENV_ID's entry in an RL-Zoo file (--set overrides it)")
    p.add_argument("--out", default=None, help="run folder (default runs/ALGO-ENV_ID-sSEED)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint")
    p.add_argument("--checkpoint-every", type=integer, default=25_000, metavar="STEPS")
    p.add_argument("--eval-every", type=integer, default=5_000, metavar="STEPS", help="0 disables evaluation")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--trust-env-spec", action="store_true",
                   help="allow a saved environment id of the form module:Env, which imports module")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained agent", description="Print mean +- std return of a run's "
                       "model (or of any .npz saved by npgrad) over fresh episodes.")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder or a model .npz")
    p.add_argument("--episodes", type=int, default=10)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                      help="act with the policy's mode (default)")
    mode.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample actions")
    p.add_argument("--seed", type=int, default=None, help="evaluation env seed (default: training seed + 10000)")
    p.add_argument("--render", action="store_true", help="show the episodes in a window (needs pygame)")
    p.add_argument("--video", metavar="PATH", help="record one episode to a .gif or .mp4 (needs the video extra)")
    p.add_argument("--trust-env-spec", action="store_true",
                   help="allow a saved environment id of the form module:Env, which imports module")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("plot", help="overlay learning curves of runs", description="Plot evaluation return "
                       "against steps; runs that differ only in their seed (a population run folder's members, or "
                       "run folders named one by one) are drawn as their interquartile mean with a 95% bootstrap "
                       "confidence band.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--trust-env-spec", action="store_true",
                   help="allow a saved environment id of the form module:Env, which imports module")
    p.add_argument("--members", action="store_true", help="also draw every seed's own curve, thin")
    p.add_argument("--out", default="curves.png", help="the image to write (default curves.png, replaced if there)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("gradcheck", help="compare every analytic derivative with finite differences",
                       description="Build a fresh policy and value network for ENV and print each analytic "
                                   "derivative next to its central finite difference (float64).")
    p.add_argument("--algo", default="ppo", help="whose networks for ENV to build (default: ppo)")
    p.add_argument("--env", default="CartPole-v1", help="the environment whose spaces size the networks")
    p.add_argument("--batch", type=int, default=32, help="observations the derivatives are taken over")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks, observations and actions")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a hyperparameter of the networks, e.g. hidden=32,32 or activation=relu (repeatable)")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("check-env", help="check that npgrad can train on an environment",
                       description="Run gymnasium's environment checker and npgrad's own requirements (observation "
                                   "and action spaces it can encode, a vector env that autoresets on the next step) "
                                   "on ENV_ID, one row each; exit status 1 if any fails.")
    p.add_argument("env_id", metavar="ENV_ID")
    p.set_defaults(func=cmd_check_env)

    p = sub.add_parser("defaults", help="print an algorithm's hyperparameters for an environment as YAML",
                       description="Print every hyperparameter ALGO trains with on ENV_ID (its tuned defaults, or the "
                                   "config's own where it has none) as YAML that --config reads back.")
    p.add_argument("algo", metavar="ALGO", help=f"one of: {', '.join(ALGOS)}")
    p.add_argument("env_id", metavar="ENV_ID")
    p.set_defaults(func=cmd_defaults)
    return parser


class TrainHelp(argparse.Action):
    """``npgrad train ALGO [ENV_ID] --help``: the usual help, then every hyperparameter of ALGO with its default (on
    ENV_ID, if given) and text."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        algo, env_id = getattr(namespace, "algo", None), getattr(namespace, "env_id", None)
        print("\n" + (hyperparameter_help(algo, env_id) if algo in ALGOS else
                      "npgrad train ALGO --help lists ALGO's hyperparameters (--set NAME=VALUE)"))
        parser.exit()


def integer(text):
    """A step count as a command line writes it: ``100000``, ``100_000`` or ``1e5`` (as the RL-Zoo writes budgets);
    argparse names the flag of any other text ("invalid integer value")."""
    try:
        return int(text)
    except ValueError:
        value = whole_number(float(text))
        if not isinstance(value, int):
            raise ValueError(text) from None
        return value


def hyperparameter_help(algo, env_id=None):
    """One paragraph per hyperparameter of ``algo``: ``name = default``, then its docstring, indented, without the
    docstring's reStructuredText quotes (the documentation site renders them; a terminal would show them). The
    defaults are those ``env_id`` gets (its tuned entry or family), each changed one showing the config's own."""
    config_cls = ALGOS[algo].Config
    config = own = config_cls()
    header = (f"hyperparameters of {config_cls.__name__} (--set NAME=VALUE), with the config's own defaults: an "
              f"environment's tuned entry or family changes some (npgrad train {algo} ENV_ID --help shows them)")
    if env_id is not None:
        try:
            config, source = config_cls.for_env_with_source(env_id)
            header = f"hyperparameters of {config_cls.__name__} on {env_id} (--set NAME=VALUE); defaults {source}"
        except Exception as e:  # noqa: BLE001 - e.g. an extra the environment needs: help still shows the fields
            header += f". {env_id}'s defaults are not known here: {e}"
    docs = field_docs(config_cls)
    lines = textwrap.wrap(header, 100, subsequent_indent="  ", break_on_hyphens=False) + [""]
    for f in dataclasses.fields(config_cls):
        value, default = getattr(config, f.name), getattr(own, f.name)
        lines.append(f"  {f.name} = {value!r}" + ("" if value == default else f"  (the config's own: {default!r})"))
        text = docs.get(f.name, "").replace("``", "")
        lines.extend(textwrap.wrap(text, 96, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return args.func(args) or 0
    except NpgradError as e:
        print(f"npgrad: error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", 2)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """npgrad's own warnings as one line, like its errors; any other warning as Python shows it."""
    if issubclass(category, NpgradWarning):
        print(f"npgrad: warning: {message}", file=sys.stderr)
    else:
        PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


PYTHON_SHOWWARNING = warnings.showwarning


def check_flags(args, *names):
    """Every count and interval given on the command line within its range (``runs.COUNTS``)."""
    for name in names:
        if getattr(args, name) is not None:
            runs.check_count(name, getattr(args, name), f"--{name.replace('_', '-')}")


# --- train ------------------------------------------------------------------------------------------


def cmd_train(args):
    check_flags(args, "steps", "seed", "checkpoint_every", "eval_every", "eval_episodes", "workers")
    if args.resume:  # a run continues as it started: only its budget (--steps) may change
        for flag, given in (("--seed", args.seed is not None), ("--seeds", args.seeds is not None),
                            ("--config", args.config is not None), ("--set", bool(args.set))):
            if given:
                raise ConfigError(f"{flag} cannot change a run being resumed (only --steps can); start a new run "
                                  "instead")
    if args.resume and population_runs.is_population_run(args.resume):
        return resume_population(args)
    if args.seeds is not None and args.seed is not None:
        raise ConfigError("--seed and --seeds: give --seeds for a population, --seed for a single run")
    args.seed = args.seed if args.seed is not None else 0
    if args.seeds is not None or (args.algo in ALGOS and population_runs.split_settings(ALGOS[args.algo].Config,
                                                                                        args.set)[1]):
        return start_population(args)
    for flag, given in (("--workers", args.workers is not None), ("--backend", args.backend != "local"),
                        ("--address", args.address is not None)):
        if given:
            raise ConfigError(f"{flag} is for populations: give --seeds (or a --set list of values)")
    agent, run_dir, run_config, state = resume_run(args) if args.resume else start_run(args)
    show = not args.quiet
    if show:
        print(f"training {run_config['algo']} on {run_config['env_id']} (seed {run_config['seed']}) for "
              f"{run_config['steps']:,} steps -> {run_dir}", file=sys.stderr)
        if "defaults" in run_config:
            print(f"defaults: {run_config['defaults']} (npgrad defaults {run_config['algo']} {run_config['env_id']} "
                  "prints them)", file=sys.stderr)
    with runs.StopOnSignal() as stop:
        logger = runs.RunLogger(run_dir, run_config, state, stop=stop, show=show)
        agent.resume(logger)
    if show:
        print(file=sys.stderr)
    return finish_run(agent, run_dir, run_config, logger, stop)


def finish_run(agent, run_dir, run_config, logger, stop):
    """After training: the Ctrl-C checkpoint of an interrupted run (exit status 130), or the model and curve."""
    if stop.requested and agent.num_steps < agent.progress.total_steps:
        path = logger.save_checkpoint(agent)
        if logger.show:  # a population's member is quiet: its parent says how to continue them all
            print(f"interrupted at {agent.num_steps:,} steps; saved {path}. Continue with: "
                  f"npgrad train --resume {run_dir}", file=sys.stderr)
        return 130
    model, curve = runs.run_file(run_dir, runs.MODEL), runs.run_file(run_dir, runs.CURVE)
    with runs.writing(run_dir, model):
        agent.save(model)
    steps, _, returns = zip(*logger.evaluator.history) if logger.evaluator.history else ((), (), ())
    with runs.writing(run_dir, curve):
        curve = plot_curves({run_config["algo"]: (steps, returns)}, curve, run_config["env_id"]) if steps else None
    if logger.show:
        print(f"done: {agent.num_steps:,} steps; wrote {model}" + (f" and {curve}" if curve else ""), file=sys.stderr)
    return 0


def start_run(args):
    if not (args.algo and args.env_id):
        raise ConfigError("train needs ALGO and ENV_ID (or --resume RUN_DIR)")
    cls = check_algo(args.algo)
    env_id = check_env_id(args.env_id, trust=True)  # typed by the user: a module:Env id is imported
    from_file, file_steps = runs.read_config_file(cls.Config, args.config, env_id)
    overrides = {**from_file, **runs.parse_overrides(cls.Config, args.set)}
    config, source = cls.Config.for_env_with_source(env_id, **overrides)
    steps = args.steps or file_steps or 100_000
    run_dir = args.out or os.path.join("runs", f"{args.algo}-{env_id}-s{args.seed}")
    if os.path.lexists(os.path.join(run_dir, runs.CONFIG)):
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose --out")
    run_config = runs.new_run_config(args.algo, env_id, args.seed, steps, overrides, config, args.checkpoint_every,
                                     args.eval_every, args.eval_episodes, source)
    agent = fresh_agent(run_config)  # before anything is written: a run that cannot start leaves no folder
    with runs.writing(run_dir, run_dir):
        os.makedirs(run_dir, exist_ok=True)
    runs.remove_stale_temporaries(run_dir)  # of a run killed before it wrote its config.json
    runs.write_config(run_dir, run_config)
    return agent, run_dir, run_config, {}


def start_population(args):
    """A new population run folder (``npgrad/population_runs.py``), every member's settings checked before anything
    is written; then train it."""
    if args.backend == "ray":
        from .ray_backend import require_ray

        require_ray()  # a missing extra is said before anything is written
    if not (args.algo and args.env_id):
        raise ConfigError("train needs ALGO and ENV_ID (or --resume RUN_DIR)")
    cls = check_algo(args.algo)
    args.env_id = check_env_id(args.env_id, trust=True)
    shared, swept = population_runs.split_settings(cls.Config, args.set)
    population_runs.refuse_listed_structure(cls.Config, shared)
    seeds = population_runs.parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    for seed in seeds:
        runs.check_count("seed", seed, "--seeds")
    members = population_runs.member_specs(seeds, swept)
    from_file, file_steps = runs.read_config_file(cls.Config, args.config, args.env_id)
    args.steps = args.steps or file_steps
    base = {**from_file, **runs.parse_overrides(cls.Config, shared)}
    for member in members[:: len(seeds)]:  # one per setting: each must make a valid config
        cls.Config.for_env(args.env_id, **{**base, **runs.parse_overrides(cls.Config, member["set"])})
    run_dir = args.out or os.path.join("runs", f"{args.algo}-{args.env_id}-seeds{seeds[0]}-{seeds[-1]}")
    if any(os.path.lexists(os.path.join(run_dir, name)) for name in (population_runs.INDEX, runs.CONFIG)):
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose --out")
    args.config = os.path.abspath(args.config) if args.config else None  # members may start from another folder
    index = population_runs.new_index(args, shared, members)
    with runs.writing(run_dir, run_dir):
        os.makedirs(run_dir, exist_ok=True)
    population_runs.write_index(run_dir, index)
    return population_runs.train_population(index, run_dir, args.workers, show=not args.quiet, backend=args.backend,
                                            address=args.address)


def resume_population(args):
    """Continue a population run: finished members are skipped, the others resume from their checkpoints."""
    index = population_runs.read_index(args.resume)
    for given, saved in ((args.algo, index["algo"]), (args.env_id, index["env_id"])):
        if given is not None and given != saved:
            raise ConfigError(f"{args.resume} is a {index['algo']} population on {index['env_id']}, not {given}")
    check_algo(index["algo"])
    check_env_id(index["env_id"], args.trust_env_spec)
    index["steps"] = args.steps if args.steps is not None else index["steps"]
    population_runs.refuse_finished(index, args.resume)  # before --steps is written
    if args.steps is not None:
        population_runs.refuse_below(index, args.resume, args.steps)
        population_runs.write_index(args.resume, index)
    return population_runs.train_population(index, args.resume, args.workers, resume=True, show=not args.quiet,
                                            backend=args.backend, address=args.address)


def fresh_agent(run_config):
    """The untrained agent a run starts from, built from its config.json alone."""
    cls = check_algo(run_config["algo"])
    agent = cls(run_config["env_id"], seed=run_config["seed"], config=cls.Config.from_dict(run_config["config"]))
    agent.progress.begin(run_config["steps"])
    return agent


def resume_run(args):
    """The agent, folder, config and run state to continue; everything is checked before anything is written."""
    run_dir = args.resume
    run_config = runs.read_config(run_dir, args.trust_env_spec)
    for given, saved in ((args.algo, run_config["algo"]), (args.env_id, run_config["env_id"])):
        if given is not None and given != saved:
            raise ConfigError(f"{run_dir} is a {run_config['algo']} run on {run_config['env_id']}, not {given}")
    refuse_finished(run_dir, run_config, args.steps)
    path = runs.latest_checkpoint(run_dir)
    agent, num_updates, state = restore(path, run_config, args.trust_env_spec) if path else (None, 0, {})
    if agent is not None and args.steps is not None and args.steps < agent.num_steps:
        raise ConfigError(f"--steps {args.steps:,} is below the {agent.num_steps:,} steps {run_dir} has trained "
                          f"({path}); give more to train further")
    runs.remove_stale_temporaries(run_dir)
    if args.steps is not None:
        run_config["steps"] = args.steps
        runs.write_config(run_dir, run_config)
    if agent is None:  # interrupted before the first checkpoint: start again from scratch, with the new budget
        agent = fresh_agent(run_config)
    elif args.steps is not None:
        agent.progress.retarget(args.steps)
    runs.truncate_logs(run_dir, num_updates)
    if path and not args.quiet:
        print(f"resuming from {path} ({agent.num_steps:,} steps)", file=sys.stderr)
    return agent, run_dir, run_config, state


def refuse_finished(run_dir, run_config, steps):
    """A run whose model.npz has the whole budget (``steps``, if given) is finished: resuming it would retrain
    from the last checkpoint, and could write a model trained for fewer steps over it."""
    model, target = runs.run_file(run_dir, runs.MODEL), steps if steps is not None else run_config["steps"]
    if os.path.isfile(model):
        done = io.read_header(model)["progress"]["num_steps"]
        if done >= target:
            raise ConfigError(f"{run_dir} has finished: its model has {done:,} steps of the {target:,} asked for; "
                              f"evaluate it with npgrad eval {run_dir}, or train further with --resume {run_dir} "
                              f"--steps N (N > {done:,})")


def restore(path, run_config, trust_env_spec=False):
    """``(agent, num_updates, run state)`` of a checkpoint, the agent as the uninterrupted run was right after it."""
    num_updates, state = runs.checkpoint_state(path, run_config)
    agent = load(path, trust_env_spec=trust_env_spec)
    agent.restart_envs()  # as the uninterrupted run did right after writing this checkpoint
    for window, episodes in zip(agent.rollout.recent, state["recent"]):  # its training return averages them too
        window.extend(episodes)
    return agent, num_updates, state


# --- eval -------------------------------------------------------------------------------------------


def model_path(run, trust_env_spec=False):
    if os.path.isfile(run):  # a file the user named: followed wherever it is
        return run
    if population_runs.is_population_run(run):
        first = (population_runs.member_dirs(run) or [os.path.join(run, "member-000")])[0]
        raise ConfigError(f"{run} is a population: evaluate one of its members, e.g. npgrad eval {first}")
    runs.read_config(run, trust_env_spec)  # a clear error if this is not a run folder
    for path in (runs.run_file(run, runs.MODEL), runs.latest_checkpoint(run)):
        if path and os.path.isfile(path):
            return path
    raise FileFormatError(f"{run} has no {runs.MODEL} and no checkpoint yet")


def cmd_eval(args):
    check_flags(args, "episodes", "seed")
    if args.video:
        video_writer(args.video)  # a missing plugin is reported before, not after, the evaluation
        render_offscreen()
    path = model_path(args.run, args.trust_env_spec)
    agent = load(path, trust_env_spec=args.trust_env_spec)
    result = agent.evaluate(args.episodes, deterministic=args.deterministic, seed=args.seed)
    mode = "deterministic" if args.deterministic else "stochastic"
    print(f"{agent.name} on {agent.env_id} ({path}, {agent.num_steps:,} steps): mean return "
          f"{result.mean:.1f} +- {result.std:.1f} over {args.episodes} {mode} episodes")
    seed = args.seed if args.seed is not None else agent.seed + EVAL_SEED_OFFSET  # the seed evaluate was given
    if args.render:
        play_episode(agent, seed, args.deterministic, "human")
    if args.video:
        with runs.writing(None, args.video):
            write_video(args.video, *play_episode(agent, seed, args.deterministic, "rgb_array"))
        print(f"wrote {args.video}")
    return 0


def render_offscreen():
    """Let MuJoCo render frames on Linux without a display (through EGL; its default, GLFW, needs a window).
    Read when ``mujoco`` is imported, so this comes first; a ``MUJOCO_GL`` the user set is kept."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")


def play_episode(agent, seed, deterministic, render_mode, seconds=None):
    """One episode of ``agent`` on a rendering copy of its environment: ``(frames, fps)``. For ``rgb_array``,
    about 30 frames per second of simulated time (an environment step lasts ``1 / render_fps`` s), and ``fps``
    plays them in real time; at most ``seconds`` of simulated time if given."""
    import gymnasium as gym

    try:
        env = gym.make(agent.rebuilt_env(), render_mode=render_mode)  # its wrappers too
        obs, _ = env.reset(seed=seed)
        frames = [env.render()] if render_mode == "rgb_array" else []
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError(f"rendering {agent.env_id} needs a dependency: pip install 'npgrad[video]' ({e})") from None
    fps = env.metadata.get("render_fps") or 30
    skip = max(1, round(fps / 30))
    rng = np.random.default_rng(seed)
    for t in itertools.count(1):
        obs, _, term, trunc, _ = env.step(agent.act(obs, deterministic, rng))  # as evaluate steps
        if render_mode == "rgb_array" and t % skip == 0:
            frames.append(env.render())
        if term or trunc or (seconds is not None and t >= seconds * fps):
            break
    env.close()
    return frames, fps / skip


def video_writer(path):
    """``imageio.v2``, once it is known to be able to write ``path`` (a .gif, or a video through ffmpeg)."""
    try:
        import imageio.v2 as imageio
        if not path.endswith(".gif"):
            import imageio_ffmpeg  # noqa: F401  (the plugin imageio needs for .mp4 and other videos)
    except ImportError as e:
        raise ConfigError(f"--video {path} needs {e.name}: pip install 'npgrad[video]'") from None
    require_folder(path, "--video")
    return imageio


def require_folder(path, flag):
    """``ConfigError`` unless the folder ``path`` is to be written in exists: said before any work, not after it."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise ConfigError(f"{flag} {path}: the folder {folder} does not exist")


def write_video(path, frames, fps=30):
    imageio = video_writer(path)
    if path.endswith(".gif"):
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, [pad_to_16(frame) for frame in frames], fps=fps)


def pad_to_16(frame_hwc):
    """The frame with edge rows and columns added up to multiples of 16, the macro-block video codecs expect
    (ffmpeg would otherwise resize it, and say so)."""
    h, w = frame_hwc.shape[:2]
    return np.pad(frame_hwc, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")


# --- plot -------------------------------------------------------------------------------------------


def group_runs(run_dirs, trust_env_spec=False):
    """``{label: [(steps, returns), ...]}``: runs equal but for their seed share a label, which names the settings
    that differ from the defaults of their algorithm and environment (however they were given: --set, --config),
    and the budget when the runs' budgets differ (a schedule spans its run's budget). Two runs of one label with
    the same seed are refused: each seed counts once in a curve."""
    configs = [runs.read_config(run_dir, trust_env_spec) for run_dir in run_dirs]
    budgets = {config["steps"] for config in configs}
    groups, defaults, seen = {}, {}, {}
    for run_dir, config in zip(run_dirs, configs):
        steps, returns = runs.eval_curve(run_dir)
        if len(steps) == 0:
            raise FileFormatError(f"{run_dir} has no evaluations in {runs.PROGRESS} yet")
        changed = changed_settings(config, defaults)
        overrides = ",".join(f"{k}={v}" for k, v in sorted(changed.items()))
        label = (f"{config['algo']} {config['env_id']}" + (f" ({overrides})" if overrides else "")
                 + (f", budget {config['steps']:,}" if len(budgets) > 1 else ""))
        twin = seen.setdefault(label, {}).setdefault(config["seed"], run_dir)
        if twin != run_dir:
            raise ConfigError(f"{twin} and {run_dir} are both seed {config['seed']} of {label}: each seed counts once "
                              "in a curve")
        groups.setdefault(label, []).append((steps, returns))
    return groups


def changed_settings(config, defaults):
    """The settings of a run's config that differ from its algorithm's defaults for its environment id (cached in
    ``defaults``), however they were given. An id without a tuned entry needs its environment for its family's
    defaults; where it cannot be built here (a missing extra), the settings the run was given stand instead."""
    cls, key = check_algo(config["algo"]), (config["algo"], config["env_id"])
    if key not in defaults:
        try:
            defaults[key] = dataclasses.asdict(cls.Config.for_env(config["env_id"]))
        except Exception:  # noqa: BLE001 - e.g. MuJoCo not installed: plotting needs no environment
            defaults[key] = None
    if defaults[key] is None:
        return dict(config["overrides"])
    return {k: v for k, v in dataclasses.asdict(cls.Config.from_dict(config["config"])).items()
            if v != defaults[key][k]}


def cmd_plot(args):
    if not have_matplotlib():
        raise ConfigError("npgrad plot needs matplotlib: pip install 'npgrad[plot]'")
    out = image_path(args.out, "--out")
    run_dirs = [d for run in args.runs for d in (population_runs.member_dirs(run) if
                                                 population_runs.is_population_run(run) else [run])]
    counts = collections.Counter(os.path.realpath(d) for d in run_dirs)
    for run_dir in run_dirs:
        if counts[os.path.realpath(run_dir)] > 1:
            raise ConfigError(f"{run_dir} is listed {counts[os.path.realpath(run_dir)]} times: each run counts once "
                              "in a curve")
    curves, env_ids = {}, set()
    for label, members in group_runs(run_dirs, args.trust_env_spec).items():
        lengths = sorted({len(s) for s, _ in members})
        n = lengths[0]  # seeds of one config evaluate at the same steps, up to where the shortest run is
        steps, returns_rk = members[0][0][:n], [r[:n] for _, r in members]
        if len(lengths) > 1:
            print(f"{label}: its runs have {lengths[0]} to {lengths[-1]} evaluations; the curve stops at "
                  f"{int(steps[-1]):,} steps, where the shortest does")
        if 1 < len(members) < 5:
            print(f"{label}: with {len(members)} seeds the 95% interval spans about their range; 10 or more "
                  "make it say where the IQM lies")
        curve = ({f"{label}, 1 seed": (steps, returns_rk[0])} if len(members) == 1 else
                 iqm_band(label, aggregate_curves(steps, returns_rk)))
        curves.update(curve)
        if len(members) > 1 and args.members:
            curves.update(seed_lines(label, steps, returns_rk))
        env_ids.add(label.split()[1])
        last = next(iter(curve.values()))[1]
        seeds = f"{len(members)} seed{'s' if len(members) > 1 else ''}"
        print(f"{label}: {seeds}, last evaluation {last[-1]:.1f} at {int(steps[-1]):,} steps, best {np.max(last):.1f}"
              + (" (IQM over seeds)" if len(members) > 1 else ""))
    with runs.writing(None, out):
        print(f"wrote {plot_curves(curves, out, ', '.join(sorted(env_ids)))}")
    return 0


def image_path(path, flag):
    """``path`` for a figure, ``.png`` added if it has no extension; ``ConfigError`` if its folder does not exist
    or matplotlib cannot write its format (checked before any work)."""
    from matplotlib.figure import Figure

    ext = os.path.splitext(path)[1]
    path = path if ext else path + ".png"
    formats = Figure().canvas.get_supported_filetypes()
    if ext and ext[1:].lower() not in formats:
        raise ConfigError(f"{flag} {path}: matplotlib cannot write .{ext[1:]} files; use one of "
                          f"{', '.join('.' + f for f in sorted(formats))}")
    require_folder(path, flag)
    return path


# --- check-env ------------------------------------------------------------------------------------------


def cmd_check_env(args):
    import gymnasium as gym

    env_id = check_env_id(args.env_id, trust=True)
    try:
        env = gym.make(env_spec(env_id).id)
    except gym.error.Error as e:  # e.g. a missing extra: Box2D, MuJoCo
        raise ConfigError(f"cannot make {env_id}: {e}") from None
    checks = {"gymnasium's env_checker": lambda: gymnasium_check(env),
              "observation space": lambda: f"{env.observation_space}: {encoded_dim(env.observation_space)} inputs",
              "action space": lambda: f"{env.action_space}: a {type(make_head(env.action_space)).__name__}",
              "vector env, NEXT_STEP autoreset": lambda: str(make_vec_env(env_id, 2))}
    failed = 0
    print(f"{'check':34s} {'ok':4s} detail")
    for name, check in checks.items():
        try:
            detail, ok = check(), True
        except Exception as e:  # the checker's own assertions, npgrad's SpaceError, ...: each is a row
            detail, ok = f"{type(e).__name__}: {e}", False
        failed += not ok
        print(f"{name:34s} {'yes' if ok else 'NO':4s} {detail}")
    env.close()
    return 1 if failed else 0


def gymnasium_check(env):
    """gymnasium's ``check_env`` (without rendering); its warnings, plainly, as the detail."""
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    notes = [re.sub(r"\x1b\[[0-9;]*m", "", str(w.message)).strip() for w in caught]
    return "; ".join(notes) or "no warnings"


# --- defaults -------------------------------------------------------------------------------------------


def cmd_defaults(args):
    cls = check_algo(args.algo)
    env_id = check_env_id(args.env_id, trust=True)
    config, source = cls.Config.for_env_with_source(env_id)
    print(f"# {args.algo} on {env_id}, {source}\n" + yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


# --- gradcheck --------------------------------------------------------------------------------------


def cmd_gradcheck(args):
    from .gradcheck import format_table, gradcheck

    cls = check_algo(args.algo)
    check_flags(args, "batch", "seed")
    env_id = check_env_id(args.env, trust=True)
    overrides = runs.parse_overrides(cls.Config, args.set)
    config = cls.Config.for_env(env_id, **overrides)
    checks = gradcheck(args.algo, env_id, batch=args.batch, seed=args.seed, **overrides)
    sde = "; gSDE, its features held fixed as the stop-gradient they are (docs/02)" if config.use_sde else ""
    print(textwrap.fill(
        f"{args.algo}'s networks (hidden {config.hidden}, value {config.vf_hidden}, {config.activation}) on {env_id}, "
        f"batch {args.batch}, float64{sde}. Each analytic derivative against central differences of the function it differentiates "
        "(h = 1e-6; the FVP: a difference of the analytic KL gradient, h = 1e-5); ok = allclose(rtol=1e-5, "
        "atol=1e-7) entry by entry (FVP: rtol=1e-4, atol=1e-6), that is error / tol <= 1.", 98, break_on_hyphens=False))
    print(format_table(checks))
    if not all(c.ok for c in checks):
        print(textwrap.fill("A NO row's analytic derivative disagrees with its finite difference: "
                            "docs/08-testing-derivatives.md shows how to test the pieces it is made of one at a time "
                            "(npgrad.testing.check_vjp, check_jvp).", 98, break_on_hyphens=False))
        return 1
    return 0
