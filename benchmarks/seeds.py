"""Twenty seeds at once: npgrad's configurations trained as populations, against SB3's twenty runs.

    python benchmarks/seeds.py            # PPO and TRPO on CartPole-v1 and Pendulum-v1, A2C on CartPole (~10 min)

Each configuration trains seeds 0-19 as one population (``npgrad.PPO(env, seed=range(20))``, two worker
processes, each a stack; every member is exactly its solo run) under the protocol of ``learning.py``:
deterministic evaluation on 10 episodes every 5,000 steps, the budgets of the first version. Per seed:
steps to the threshold, first and sustained ("never" counts as infinitely late), and the final
evaluation's return. Reported with ``npgrad.stats``: the interquartile mean with its 95% percentile
bootstrap interval, the median, and the probability that an npgrad seed reaches the threshold in fewer
steps than an SB3 seed (ties count one half).

SB3's twenty runs per configuration (SB3 2.9.2 / sb3-contrib 2.9.2, RL-Zoo settings, seeds 0-19, the
same protocol and evaluation code) are read from ``results/cartpole-20-seeds.json`` and
``results/pendulum-20-seeds.json``. Steps do not depend on the machine; seconds do, and those runs were
timed on another machine, so only npgrad's wall-clock is reported here: the whole population's, 20
seeds with their evaluations, on this machine.

Writes results/seeds.json (every evaluation of every seed, the machine) and results/seeds.md.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad import stats  # noqa: E402

from common import machine_info, write_results  # noqa: E402
from learning import BUDGETS, THRESHOLDS, VARIANTS, first_reach, sustained_reach  # noqa: E402

SEEDS = range(20)
CASES = [("ppo", "CartPole-v1"), ("trpo", "CartPole-v1"), ("a2c", "CartPole-v1"), ("ppo", "Pendulum-v1"),
         ("trpo", "Pendulum-v1")]
SB3_RUNS = {"CartPole-v1": "cartpole-20-seeds.json", "Pendulum-v1": "pendulum-20-seeds.json"}
HERE = os.path.dirname(os.path.abspath(__file__))


def reach_steps(history, threshold):
    """``(first, sustained)`` steps to ``threshold`` of one run's evaluations, ``inf`` for never."""
    return tuple(history[i][0] if i is not None else np.inf
                 for i in (first_reach(history, threshold), sustained_reach(history, threshold)))


def sb3_runs(label, env_id):
    """SB3's runs of seeds 0-19 for this configuration, if a results file has them."""
    with open(os.path.join(HERE, "results", SB3_RUNS[env_id])) as f:
        runs = json.load(f)["runs"]
    mine = {r["seed"]: r for r in runs if (r["library"], r["algo"], r["env"]) == ("sb3", label, env_id)}
    return [mine[s] for s in SEEDS] if all(s in mine for s in SEEDS) else None


def population(label, env_id):
    """Seeds 0-19 of one configuration as one population; each member's record, and the wall-clock."""
    algo, variant = VARIANTS[label]
    pop = npgrad.ALGOS[algo](env_id, seed=SEEDS, **variant)
    start = time.perf_counter()
    pop.learn(BUDGETS[env_id][label], eval_every=5_000, eval_episodes=10, workers=2)
    seconds = time.perf_counter() - start
    runs = [{"seed": m.seed, "history": e["history"], "final_return": e["history"][-1][2]}
            for m, e in zip(pop, pop.evaluations)]
    return runs, seconds


def summary(values, statistic=stats.iqm_to_threshold):
    """``{iqm, low, high, median}`` of one quantity over seeds (steps: ``inf`` is never)."""
    low, high = stats.interval(values, statistic)
    return {"iqm": float(statistic(values)), "low": float(low), "high": float(high),
            "median": float(stats.median(values))}


def compare(label, env_id):
    runs, seconds = population(label, env_id)
    threshold, rows = THRESHOLDS[env_id], {}
    for library, library_runs in (("npgrad", runs), ("sb3", sb3_runs(label, env_id))):
        if library_runs is None:
            continue
        first, sustained = np.array([reach_steps(r["history"], threshold) for r in library_runs]).T
        finals = np.array([r["final_return"] for r in library_runs], dtype=np.float64)
        rows[library] = {"first": summary(first), "sustained": summary(sustained), "final": summary(finals, stats.iqm),
                         "first_steps": first.tolist(), "sustained_steps": sustained.tolist()}
    if "sb3" in rows:
        for reach in ("first", "sustained"):
            rows[f"p_sooner_{reach}"] = float(stats.probability_of_improvement(
                rows["npgrad"][f"{reach}_steps"], rows["sb3"][f"{reach}_steps"], lower_is_better=True))
    print(f"{label} {env_id}: {rows['npgrad']['first']['iqm']:.0f} / {rows['npgrad']['sustained']['iqm']:.0f} "
          f"steps (IQM), {seconds:.0f} s", flush=True)
    return {"algo": label, "env": env_id, "budget": BUDGETS[env_id][label], "threshold": threshold,
            "population_seconds": seconds, "runs": runs, **rows}


def steps(s):
    """``"12k [10k, 15k]"``: an IQM of steps with its interval (never: "never")."""
    fmt = lambda v: "never" if np.isinf(v) else f"{v / 1000:.0f}k"  # noqa: E731
    return f"{fmt(s['iqm'])} [{fmt(s['low'])}, {fmt(s['high'])}]"


def markdown(rows):
    lines = ["| algorithm, env | budget | steps to threshold, first / sustained: npgrad IQM [95% CI] | SB3 IQM [95% CI] "
             "| P(npgrad sooner): first / sustained | final return IQM [95% CI]: npgrad / SB3 | npgrad: 20 seeds, "
             "wall-clock |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        n, b = r["npgrad"], r.get("sb3")
        final = lambda s: f"{s['iqm']:.0f} [{s['low']:.0f}, {s['high']:.0f}]"  # noqa: E731
        lines.append(
            f"| {r['algo'].upper()} {r['env']} | {r['budget'] // 1000}k | {steps(n['first'])} / {steps(n['sustained'])} | "
            + (f"{steps(b['first'])} / {steps(b['sustained'])} | {r['p_sooner_first']:.2f} / "
               f"{r['p_sooner_sustained']:.2f} | {final(n['final'])} / {final(b['final'])}" if b else
               f"- | - | {final(n['final'])} / -")
            + f" | {r['population_seconds']:.0f} s |")
    return "\n".join(lines)


def finite(value):
    """``value`` with every infinity ("never") as None: plain JSON has no infinity."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and np.isinf(value) else value


def main():
    rows = [compare(label, env_id) for label, env_id in CASES]
    table = markdown(rows)
    write_results(os.path.join(HERE, "results", "seeds.json"), finite({"machine": machine_info(), "seeds": list(SEEDS),
                                                                   "results": rows}), table)
    print(table)


if __name__ == "__main__":
    main()
