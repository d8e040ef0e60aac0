"""Past classic control: MuJoCo and LunarLander with npgrad's defaults, seeds trained as populations.

    python benchmarks/mujoco_runs.py --envs InvertedPendulum-v5 --algos ppo,trpo            # 10 seeds, 1M steps each
    python benchmarks/mujoco_runs.py --envs Hopper-v5 --algos ppo --seeds 1000-1009         # tuning seeds, kept apart
    python benchmarks/mujoco_runs.py --envs Hopper-v5 --budget 200000 --seeds 0-3           # a shorter look
    python benchmarks/mujoco_runs.py --envs Hopper-v5 --algos ppo --workers 2               # both cores
    python benchmarks/mujoco_runs.py --envs Hopper-v5 --seeds 1000-1004 --set anneal_lr=True  # a candidate entry

The protocol of the MuJoCo targets: 1M environment steps (500k for LunarLander-v3), at least 10 seeds, the
deterministic policy evaluated on 10 episodes every 10,000 steps. Each (algorithm, environment) trains its seeds as
one population in one process (one core), or split into ``--workers`` stacks, one process each (the members are
the same bit for bit). Reported per configuration: where its defaults came from (a tuned entry
or a family's, ``agent.defaults_source``), the return at the budget (its last evaluation) as an interquartile mean
over seeds with its 95% bootstrap interval, the target (A2C is held to PPO's) and whether the IQM meets it, each
seed's mean over the last 20% of the budget (``tail_means``) as an IQM with its interval, steps to the target
(first and sustained; "never" counts as infinitely late) and training seconds per seed (the stacks' together,
evaluation excluded, divided by the number of seeds).

Results accumulate in results/mujoco.json (a configuration run again with the same seeds replaces its entry;
tuning seeds 1000 and up go to results/mujoco-tuning.json) and the table in the matching .md. ``--set`` tries
fields on top of the defaults, and only on tuning seeds: a candidate for npgrad/tuned.py is judged on seeds that
are not reported.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
import ast  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad import stats  # noqa: E402
from npgrad.population import chunked, default_workers  # noqa: E402
from npgrad.population_runs import parse_seeds  # noqa: E402

from common import (finite, iqm_summary, kilo_steps, machine_info, machines_note, read_results,  # noqa: E402
                    row_label, seeds_label, with_interval, write_results)
from learning import reach  # noqa: E402

# environment -> algorithm -> target return (the MuJoCo table), met at the budget: LunarLander's 200 must hold
TARGETS = {"Hopper-v5": {"ppo": 3000, "trpo": 3000}, "HalfCheetah-v5": {"ppo": 3000, "trpo": 2000},
           "Swimmer-v5": {"ppo": 120, "trpo": 120}, "InvertedPendulum-v5": {"ppo": 1000, "trpo": 1000},
           "InvertedDoublePendulum-v5": {"ppo": 8000, "trpo": 8000}, "Reacher-v5": {"ppo": -6, "trpo": -6},
           "LunarLander-v3": {"ppo": 200, "trpo": 200}}
for targets in TARGETS.values():  # A2C is competitive where it meets PPO's target
    targets["a2c"] = targets["ppo"]
BUDGET = {"LunarLander-v3": 500_000}
EVERY = 10_000
TAIL = 0.2  # the last fifth of the budget: 20 evaluations of a 1M run
HERE = os.path.dirname(os.path.abspath(__file__))


def train(algo, env_id, seeds, budget, overrides, workers=1):
    """One population of ``seeds`` on ``workers`` processes: each member's evaluations, where the defaults came
    from, the wall-clock, and the training seconds per seed (each stack's, shared by its members)."""
    pop = npgrad.ALGOS[algo](env_id, seed=seeds, **overrides)
    start = time.perf_counter()
    pop.learn(budget, eval_every=EVERY, eval_episodes=10, workers=workers)
    histories = [e["history"] for e in pop.evaluations]
    # the members split as Population.learn splits them; a stack's clock is each of its members'
    stacks = chunked(range(len(seeds)), default_workers(workers, len(seeds)))
    per_seed = sum(histories[stack[0]][-1][1] for stack in stacks) / len(seeds)
    return histories, pop.defaults_source, time.perf_counter() - start, per_seed


def summarise(algo, env_id, seeds, budget, overrides, histories, source, seconds, per_seed):
    target = TARGETS.get(env_id, {}).get(algo)
    final_r = np.array([h[-1][2] for h in histories])
    row = {"algo": algo, "env": env_id, "seeds": list(seeds), "budget": budget, "defaults": source,
           "overrides": overrides,
           "population_seconds": seconds, "train_seconds_per_seed": per_seed,
           "final": iqm_summary(final_r, stats.iqm), "target": target, "histories": histories}
    if target is not None:
        reached = reach(histories, target)
        first, sustained = reached["first_steps"].tolist(), reached["sustained_steps"].tolist()
        row.update(first_steps=first, sustained_steps=sustained,
                   first_iqm=float(stats.iqm_to_threshold(first)),
                   sustained_iqm=float(stats.iqm_to_threshold(sustained)), met=bool(row["final"]["iqm"] >= target))
    return row


def tail_means(histories, budget):
    """Each seed's mean return over its evaluations in the last ``TAIL`` of the budget. The last evaluation alone
    catches a seed on one episode batch, before or just after a fall; the tail's mean counts a fall by how much
    of the tail it takes, so it separates candidates that one evaluation per seed cannot."""
    return np.array([np.mean([r for steps, _, r in h if steps > (1 - TAIL) * budget]) for h in histories])


def markdown(rows):
    lines = ["| env | algorithm | seeds | budget | defaults | return at the budget, IQM [95% CI] | target | met "
             f"| mean over the last {TAIL:.0%} of the budget, IQM [95% CI] | steps to target, first / sustained (IQM) "
             "| training s per seed |",
             "|---" * 11 + "|"]
    for r in rows:
        target = r["target"]
        source = r["defaults"].split(":")[0].split(",")[0]  # "tuned for Hopper-v5" or "continuous-control family"
        source += "".join(f", {name}={value}" for name, value in r.get("overrides", {}).items())
        reach = f"{kilo_steps(r['first_iqm'])} / {kilo_steps(r['sustained_iqm'])}" if target is not None else "-"
        met = "-" if target is None else "yes" if r["met"] else "no"
        tail = iqm_summary(tail_means(r["histories"], r["budget"]), stats.iqm)
        lines.append(f"| {r['env']} | {r['algo'].upper()} | {seeds_label(r['seeds'])} | {r['budget'] // 1000}k "
                     f"| {source} | {with_interval(r['final'])} | "
                     f"{target if target is not None else '-'} | {met} | {with_interval(tail)} | {reach} "
                     f"| {r['train_seconds_per_seed']:.0f} |")
    note = machines_note(rows, row_label)
    return "\n".join(lines) + (f"\n\n{note}" if note else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="InvertedPendulum-v5")
    p.add_argument("--algos", default="ppo,trpo")
    p.add_argument("--seeds", default="0-9", help="e.g. 0-9 (reported) or 1000-1009 (tuning)")
    p.add_argument("--budget", type=int, default=None, help="steps per seed (default: 1M, LunarLander 500k)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a field on top of the defaults (tuning seeds only), e.g. anneal_lr=True")
    p.add_argument("--workers", type=int, default=1,
                   help="processes, one stack of seeds each (the members are the same bit for bit)")
    args = p.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    overrides = {name: ast.literal_eval(value) for name, value in (s.split("=", 1) for s in args.set)}
    if overrides and min(seeds) < 1000:
        p.error("--set is for tuning: use seeds 1000 and up, and report a tuned entry on seeds 0-999")
    name = "mujoco-tuning" if min(seeds) >= 1000 else "mujoco"
    path = os.path.join(HERE, "results", name + ".json")
    for env_id in args.envs.split(","):
        for algo in args.algos.split(","):
            budget = args.budget or BUDGET.get(env_id, 1_000_000)
            row = summarise(algo, env_id, seeds, budget, overrides,
                            *train(algo, env_id, seeds, budget, overrides, args.workers))
            key = (algo, env_id, seeds, budget, overrides)
            stored = read_results(path).get("results", [])  # read now: other runs may have written
            stored = [r for r in stored if (r["algo"], r["env"], r["seeds"], r["budget"], r.get("overrides", {})) != key]
            stored.append({**row, "machine": machine_info()})
            print(markdown(stored[-1:]).splitlines()[-1], flush=True)
            write_results(path, finite({"machine": machine_info(), "results": stored}), markdown(stored))


if __name__ == "__main__":
    main()
