"""MuJoCo side by side: npgrad's defaults against SB3/sb3-contrib with the RL-Zoo's settings, seed by seed.

    pip install -e ".[mujoco]" torch stable-baselines3==2.9.2 sb3-contrib==2.9.2   # SB3: never needed by npgrad
    python benchmarks/mujoco_sb3.py --envs InvertedPendulum-v5,Reacher-v5 --algos ppo --seeds 0-4
    python benchmarks/mujoco_sb3.py --envs Hopper-v5 --algos trpo --seeds 0-4 --budget 500000   # a shorter budget
    python benchmarks/mujoco_sb3.py --envs InvertedDoublePendulum-v5 --algos trpo --full   # does the return hold?

Each seed trains once with each library, one run at a time on one core, under the protocol of
``mujoco_runs.py`` (the deterministic policy evaluated on 10 episodes every 10,000 steps, evaluation
time excluded) until an evaluation reaches the target return (the issue's, or ``--target``) or the
budget runs out. Both libraries train solo runs, so a seed's seconds are its own (a population
would share its stack's time between members). Reported per configuration: how many seeds reach
the target, the interquartile mean of steps and of training seconds to it with its 95% bootstrap
interval, as "IQM [low, high]" ("never" counts as infinitely late), and the median over seeds of SB3's seconds over
npgrad's, each seed against itself. With ``--full`` every run trains to the budget, and the last evaluations'
IQM says whether the return reached first also holds. Results: ``results/mujoco-sb3.json`` and ``.md``.

SB3's runs are kept in ``results/mujoco-sb3-runs.json`` as each ends (the slowest take 40 minutes or more), and
a run already there with the same settings, versions and CPU is not run again, so a stopped benchmark resumes
and two processes given different seeds (``--seeds 0,2,4`` and ``--seeds 1,3``, one per core) share the
work; the row for all five seeds then needs only npgrad's runs (``--seeds 0-4``), which are always run.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
import json  # noqa: E402

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad import stats  # noqa: E402
from npgrad.callbacks import Evaluator  # noqa: E402
from npgrad.population_runs import parse_seeds  # noqa: E402

from common import (cpu_model, finite, iqm_summary, kilo_steps, machine_info, machines_note, never,  # noqa: E402
                    read_results, row_label, seeds_label, with_interval, write_results)
from learning import reach  # noqa: E402
from mujoco_runs import BUDGET, EVERY, HERE, TARGETS  # noqa: E402
from sb3 import ZOO, run_sb3  # noqa: E402

RUNS = os.path.join(HERE, "results", "mujoco-sb3-runs.json")


def run_npgrad(algo, env_id, seed, budget, stop_at):
    """One solo npgrad run with its defaults, stopped at the first evaluation at or above ``stop_at`` (``inf``: never):
    its evaluations and where its defaults came from."""
    agent = npgrad.ALGOS[algo](env_id, seed=seed)
    evaluator = Evaluator(every=EVERY, episodes=10, on_eval=lambda agent, info, row: row[2] < stop_at)
    agent.learn(budget, callback=evaluator)
    return evaluator.history, agent.defaults_source


def run_key(algo, env_id, seed, budget, stop_at):
    """What makes two SB3 runs the same run: the configuration, the Zoo's settings, every version involved, and the
    CPU, so that the seconds compared with npgrad's were measured on the same kind of machine."""
    name, n_envs, normalize, kwargs = ZOO[(algo, env_id)]
    key = {"algo": algo, "env": env_id, "seed": seed, "budget": budget, "stop_at": stop_at,
           "sb3_settings": {"class": name, "n_envs": n_envs, "VecNormalize": normalize, **kwargs},
           "versions": {**versions(), "gymnasium": gymnasium.__version__}, "cpu": cpu_model()}
    return json.loads(json.dumps(key))  # as it reads back from the file: tuples as lists


def sb3_history(algo, env_id, seed, budget, stop_at):
    """SB3's evaluations for one seed: from ``RUNS`` if this run is there, else trained and added to it (the file is
    read again just before the write, so another process's runs are kept)."""
    key = run_key(algo, env_id, seed, budget, stop_at)

    def stored():
        return read_results(RUNS).get("runs", [])

    for run in stored():
        if all(run.get(k) == value for k, value in key.items()):
            return run["history"]
    history = run_sb3(algo, env_id, seed, budget, every=EVERY, stop_at=stop_at, final_episodes=0)[1]
    runs = stored() + [{**key, "date": machine_info()["date"], "history": history}]
    with open(RUNS, "w") as f:
        json.dump({"runs": runs}, f, indent=1)
    return history


def compare(algo, env_id, seeds, budget, target, full=False):
    """Both libraries on each seed, stopped at the target, or with ``full`` trained to the budget (to see whether
    the return holds)."""
    runs = {"npgrad": [], "sb3": []}
    for seed in seeds:
        history, source = run_npgrad(algo, env_id, seed, budget, np.inf if full else target)
        runs["npgrad"].append(history)
        runs["sb3"].append(sb3_history(algo, env_id, seed, budget, None if full else target))
        last = {lib: reach(h[-1:], target) for lib, h in runs.items()}
        print(f"{algo} {env_id} seed {seed}, steps and seconds to the target:",
              {lib: (r["first_steps"][0], r["first_seconds"][0]) for lib, r in last.items()}, flush=True)
    name, n_envs, normalize, kwargs = ZOO[(algo, env_id)]
    row = {"algo": algo, "env": env_id, "seeds": list(seeds), "budget": budget, "target": target,
           "npgrad_defaults": source, "sb3_settings": {"class": name, "n_envs": n_envs, "VecNormalize": normalize,
                                                       **kwargs}, "full": full, "histories": runs}
    for lib, histories in runs.items():
        reached = reach(histories, target)
        steps_r, seconds_r = reached["first_steps"].astype(float), reached["first_seconds"]
        row[lib] = {"reached": int(np.isfinite(steps_r).sum()), "steps": iqm_summary(steps_r),
                    "seconds": iqm_summary(seconds_r), "seconds_per_seed": seconds_r.tolist()}
        if full:
            row[lib]["final"] = iqm_summary([h[-1][2] for h in histories], stats.iqm)
    row["sb3_over_npgrad_median"] = median_ratio(row["sb3"]["seconds_per_seed"], row["npgrad"]["seconds_per_seed"])
    return row


def median_ratio(sb3_s, npgrad_s):
    """Median over seeds of SB3's seconds over npgrad's: infinite where only npgrad reached the target, 0 where only
    SB3 did; seeds neither reached are left out (NaN if that is every seed)."""
    ratios = [b / n if np.isfinite(n) else 0.0 for b, n in zip(sb3_s, npgrad_s) if np.isfinite(b) or np.isfinite(n)]
    return float(np.median(ratios)) if ratios else float("nan")


def markdown(rows):
    def s(v):
        return "never" if never(v) else f"{v:.0f}"

    def final(r):  # "-": the runs stopped at the target
        return f"{r['npgrad']['final']['iqm']:.0f} / {r['sb3']['final']['iqm']:.0f}" if r.get("full") else "-"

    def times(ratio):
        return "-" if ratio is not None and np.isnan(ratio) else "SB3 never" if never(ratio) else f"{ratio:.1f}x"

    lines = ["| env | algorithm | npgrad's defaults | seeds | budget | target | seeds reaching it, npgrad / SB3 "
             "| npgrad steps to it | SB3 steps | npgrad training s to it | SB3 training s "
             "| SB3 s / npgrad s, median per seed | return at the budget (IQM), npgrad / SB3 |", "|---" * 13 + "|"]
    for r in rows:
        n, b = r["npgrad"], r["sb3"]
        cells = [with_interval(x["steps"], kilo_steps) for x in (n, b)]
        cells += [with_interval(x["seconds"], s) for x in (n, b)]
        source = r["npgrad_defaults"].split(":")[0].split(",")[0]  # "tuned for Hopper-v5", "continuous-control family"
        lines.append(f"| {r['env']} | {r['algo'].upper()} | {source} | {seeds_label(r['seeds'])} "
                     f"| {kilo_steps(r['budget'])} "
                     f"| {r['target']:g} "
                     f"| {n['reached']} / {b['reached']} of {len(r['seeds'])} | " + " | ".join(cells)
                     + f" | {times(r['sb3_over_npgrad_median'])} | {final(r)} |")
    return "\n".join(lines)


def caption(machine, rows):
    """The table's caption; ``machine`` is the latest row's, which the line above the table names."""
    text = ("Steps and training seconds to the target: interquartile mean over the seeds [95% bootstrap interval]; "
            "each run stops at its first evaluation at or above the target, or at the budget. A row with a return in "
            "its last column trained every run to the budget (--full): the IQM of the last evaluations. "
            f"SB3 {machine['stable_baselines3']} and sb3-contrib {machine['sb3_contrib']} on torch {machine['torch']} "
            f"(one thread), MuJoCo {machine['mujoco']}.")
    return (text + " " + machines_note(rows, sb3_row_label)).strip()


def sb3_row_label(r):
    """``row_label`` with what else sets a row apart from one on the same seeds: a target other than the issue's,
    and ``--full``: "Hopper-v5 PPO (0-4, target=1000)"."""
    differs = {} if r["target"] == TARGETS[r["env"]][r["algo"]] else {"target": f"{r['target']:g}"}
    return row_label({**r, "overrides": {**differs, **({"full": True} if r.get("full") else {})}})


def versions():
    import mujoco
    import sb3_contrib
    import stable_baselines3
    import torch

    return {"mujoco": mujoco.__version__, "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="InvertedPendulum-v5")
    p.add_argument("--algos", default="ppo")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--budget", type=int, default=None, help="steps per run (default: 1M, LunarLander 500k)")
    p.add_argument("--target", type=float, default=None, help="the return to reach (default: the issue's target)")
    p.add_argument("--full", action="store_true", help="train to the budget instead of stopping at the target")
    args = p.parse_args(argv)
    path = os.path.join(HERE, "results", "mujoco-sb3.json")
    for env_id in args.envs.split(","):
        for algo in args.algos.split(","):
            budget = args.budget or BUDGET.get(env_id, 1_000_000)
            target = args.target if args.target is not None else TARGETS[env_id][algo]
            row = compare(algo, env_id, parse_seeds(args.seeds), budget, target, args.full)
            key = (algo, env_id, row["seeds"], budget, target, args.full)
            stored = [r for r in read_results(path).get("results", [])
                      if (r["algo"], r["env"], r["seeds"], r["budget"], r["target"], r.get("full", False)) != key]
            machine = {**machine_info(), **versions()}
            stored.append({**row, "machine": machine})  # this row's, as others may differ
            print(markdown([row]).splitlines()[-1], flush=True)
            write_results(path, finite({"machine": machine, "results": stored}),
                          markdown(stored) + "\n\n" + caption(machine, stored))


if __name__ == "__main__":
    main()
