"""Twenty seeds at once: npgrad's configurations trained as populations, against SB3's twenty runs.

    python benchmarks/seeds.py --sb3      # first: SB3's 20 runs of PPO, TRPO and A2C here, one after another (~2 h)
    python benchmarks/seeds.py            # every configuration as a 20-seed population (about an hour)
    python benchmarks/seeds.py --only ppo:CartPole-v1,trpo:Pendulum-v1    # some of them; the others are kept
    python benchmarks/seeds.py --restate  # train nothing: compare the stored runs again with SB3's runs there are

Each configuration trains seeds 0-19 as one population (``npgrad.PPO(env, seed=range(20))``) in one process
(``workers=1``: one core, as each SB3 run), under the protocol of ``learning.py``: deterministic evaluation on
10 episodes every 5,000 steps, the budgets of the first version. Per seed: steps to the threshold, first and
sustained ("never" counts as infinitely late), and the return of the evaluation at the budget (the same 10
episodes for both libraries). Seconds to the threshold are
training seconds (evaluation excluded) on one core: for an npgrad member, the population's training seconds at
that evaluation divided by 20 (one process trains all twenty, so each seed costs a twentieth of it); for SB3, its
own run's. Reported with ``npgrad.stats``: the interquartile mean with its 95% percentile bootstrap interval,
the median, and the probability that an npgrad seed reaches the threshold sooner than an SB3 seed (ties count
one half).

SB3's runs (SB3 2.9.2 / sb3-contrib 2.9.2, RL-Zoo settings, seeds 0-19, the same evaluation code) come from
``results/sb3-seeds.json`` (``--sb3``, this machine). A configuration it lacks takes steps from the earlier
runs on another machine (``results/cartpole-20-seeds.json``, ``pendulum-20-seeds.json``) and no seconds.

Writes results/seeds.json (every evaluation of every seed, the machine) and results/seeds.md.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad import stats  # noqa: E402
from npgrad.population_runs import parse_seeds  # noqa: E402

from common import (finite, iqm_summary, kilo_steps, machine_info, never, read_results, with_interval,  # noqa: E402
                    write_results)
from learning import BUDGETS, THRESHOLDS, VARIANTS, reach  # noqa: E402

SEEDS = range(20)
CASES = [(label, env_id) for env_id in ("CartPole-v1", "Pendulum-v1")
         for label in ("ppo", "trpo", "a2c", "ppo-kl", "npg", "vpg")]
SB3_CASES = [("ppo", "CartPole-v1"), ("trpo", "CartPole-v1"), ("ppo", "Pendulum-v1"), ("trpo", "Pendulum-v1"),
             ("a2c", "CartPole-v1"), ("a2c", "Pendulum-v1")]  # A2C, whose runs are the longest, last
SB3_ELSEWHERE = {"CartPole-v1": "cartpole-20-seeds.json", "Pendulum-v1": "pendulum-20-seeds.json"}
SB3_HERE = "sb3-seeds.json"
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def read_runs(name, label, env_id):
    """SB3's runs of seeds 0-19 for this configuration in ``results/name``, or None if it lacks any."""
    stored = read_results(os.path.join(RESULTS, name))
    if not stored:
        return None
    mine = {r["seed"]: r for r in stored["runs"] if (r["library"], r["algo"], r["env"]) == ("sb3", label, env_id)}
    return [mine[s] for s in SEEDS] if all(s in mine for s in SEEDS) else None


def sb3_runs(label, env_id):
    """``(runs, timed_here)``: SB3's 20 runs measured on this machine, else the earlier ones (steps only)."""
    here = read_runs(SB3_HERE, label, env_id)
    return (here, True) if here is not None else (read_runs(SB3_ELSEWHERE[env_id], label, env_id), False)


def population(label, env_id):
    """Seeds 0-19 of one configuration as one population in one process: each member's record, and the
    population's wall-clock (evaluations included)."""
    algo, variant = VARIANTS[label]
    pop = npgrad.ALGOS[algo](env_id, seed=SEEDS, **variant)
    start = time.perf_counter()
    pop.learn(BUDGETS[env_id][label], eval_every=5_000, eval_episodes=10, workers=1)
    seconds = time.perf_counter() - start
    runs = [{"seed": m.seed, "history": e["history"]} for m, e in zip(pop, pop.evaluations)]
    return runs, seconds


def library_summary(runs, threshold, per_seed, timed):
    reached = reach([r["history"] for r in runs], threshold)
    for k in ("first", "sustained"):  # a population member's seconds are its stack's: its share is per_seed of them
        reached[k + "_seconds"] *= per_seed
    finals = np.array([r["history"][-1][2] for r in runs], dtype=np.float64)  # the evaluation at the budget
    quantities = [f"{k}_steps" for k in ("first", "sustained")] + ([f"{k}_seconds" for k in ("first", "sustained")]
                                                                    if timed else [])
    return {**{q: iqm_summary(reached[q]) for q in quantities}, "final": iqm_summary(finals, stats.iqm),
            "per_run": {q: reached[q].tolist() for q in quantities},
            "train_seconds": sum(r["history"][-1][1] for r in runs) * per_seed if timed else None}


def compare(label, env_id, runs, seconds):
    """One configuration's statistics: npgrad's population against SB3's runs, where there are some."""
    threshold = THRESHOLDS[env_id]
    row = {"algo": label, "env": env_id, "budget": BUDGETS[env_id][label], "threshold": threshold,
           "population_seconds": seconds, "runs": runs,
           "npgrad": library_summary(runs, threshold, 1 / len(runs), True)}
    theirs, timed_here = sb3_runs(label, env_id)
    if theirs is not None:
        row["sb3_runs"] = [{k: r[k] for k in ("seed", "history")} for r in theirs]
        row["sb3"] = library_summary(theirs, threshold, 1.0, timed_here)
        row["sb3_timed_here"] = timed_here
        for q in row["sb3"]["per_run"]:
            row[f"p_sooner_{q}"] = float(stats.probability_of_improvement(
                row["npgrad"]["per_run"][q], row["sb3"]["per_run"][q], lower_is_better=True))
    return row


def fmt(value, unit):
    """``"12k"`` steps or ``"3.4 s"``; never: "never"."""
    if never(value):
        return "never"
    return kilo_steps(value) if unit == "steps" else f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def pair(r, quantity, unit):
    """``first / sustained`` of one library's ``quantity`` ("steps" or "seconds"), IQM [95% CI] each."""
    return " / ".join(with_interval(r[f"{k}_{quantity}"], lambda v: fmt(v, unit)) for k in ("first", "sustained"))


def steps_table(rows):
    lines = ["| algorithm, env | budget | steps to threshold, first / sustained: npgrad IQM [95% CI] "
             "| SB3 IQM [95% CI] | P(npgrad sooner): first / sustained | return at the budget, IQM [95% CI]: npgrad / SB3 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        n, b = r["npgrad"], r.get("sb3")
        ours = with_interval(n["final"])
        theirs = (f"{pair(b, 'steps', 'steps')} | {r['p_sooner_first_steps']:.2f} / {r['p_sooner_sustained_steps']:.2f}"
                  f" | {ours} / {with_interval(b['final'])}") if b else f"- | - | {ours} / -"
        lines.append(f"| {r['algo'].upper()} {r['env']} | {r['budget'] // 1000}k | {pair(n, 'steps', 'steps')} | "
                     f"{theirs} |")
    return "\n".join(lines)


def seconds_table(rows):
    lines = ["| algorithm, env | seconds per seed to threshold, first / sustained: npgrad IQM [95% CI] "
             "| SB3 IQM [95% CI] | SB3 / npgrad, IQMs: first / sustained | training seconds, all 20 seeds: "
             "npgrad / SB3 |", "|---|---|---|---|---|"]
    for r in (r for r in rows if r.get("sb3_timed_here")):
        n, b = r["npgrad"], r["sb3"]
        ratio = " / ".join(fmt(b[f"{k}_seconds"]["iqm"] / n[f"{k}_seconds"]["iqm"], "s").replace(" s", "x")
                           if not (never(n[f"{k}_seconds"]["iqm"]) or never(b[f"{k}_seconds"]["iqm"]))
                           else "-" for k in ("first", "sustained"))
        lines.append(f"| {r['algo'].upper()} {r['env']} | {pair(n, 'seconds', 's')} | {pair(b, 'seconds', 's')} | "
                     f"{ratio} | {n['train_seconds']:.0f} s / {b['train_seconds']:.0f} s |")
    return "\n".join(lines)


def markdown(rows):
    return (steps_table(rows) + "\n\nSeconds on one core, training only (for an npgrad seed, a twentieth of its "
            "population's), where SB3 ran on this machine:\n\n" + seconds_table(rows))


def run_sb3_seeds(cases, path, seeds=SEEDS):
    """SB3's runs of ``seeds`` for each configuration, one after another, into ``path`` (rewritten after every run,
    so a stopped run keeps what it measured; a run already there is not run again, and two processes given
    different seeds can share the file)."""
    import sb3
    from learning import make_row

    def stored():
        return read_results(path).get("runs", [])

    for label, env_id in cases:
        have = {r["seed"] for r in stored() if (r["algo"], r["env"]) == (label, env_id)}
        for seed in (s for s in seeds if s not in have):
            budget = BUDGETS[env_id][label]
            row = make_row("sb3", label, env_id, seed, budget, *sb3.run_sb3(label, env_id, seed, budget))
            print(f"sb3 {label} {env_id} seed {seed}: {row['train_seconds']:.1f} s", flush=True)
            write_results(path, {"machine": machine_info(), "runs": stored() + [row]}, "")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sb3", action="store_true", help="run SB3's 20 runs of each configuration it has")
    p.add_argument("--only", default=None, help="comma-separated label:env pairs (default: every configuration)")
    p.add_argument("--restate", action="store_true", help="train nothing: recompute every stored configuration's "
                   "statistics, e.g. after more SB3 runs arrived")
    p.add_argument("--seeds", default="0-19", help="with --sb3: which of the seeds to run (e.g. 0-9, one process per "
                   "core)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.sb3:
        cases = SB3_CASES if args.only is None else [tuple(case.split(":")) for case in args.only.split(",")]
        return run_sb3_seeds(cases, os.path.join(RESULTS, SB3_HERE), parse_seeds(args.seeds))
    cases = CASES if args.only is None else [tuple(case.split(":")) for case in args.only.split(",")]
    unknown = [case for case in cases if case not in CASES]
    if unknown:
        raise SystemExit(f"unknown configurations {unknown}; choose among {CASES}")
    path, mine = os.path.join(RESULTS, "seeds.json"), {}
    if args.restate:
        return restate(path)
    for label, env_id in cases:
        runs, seconds = population(label, env_id)
        mine[label, env_id] = {**compare(label, env_id, runs, seconds), "machine": machine_info()}
        stored = {**stored_results(path), **mine}  # read again: another run of this script may have written to it
        print(f"{label} {env_id}: {seconds:.0f} s", flush=True)
        rows = [stored[case] for case in CASES if case in stored]
        write_results(path, finite({"machine": machine_info(), "seeds": list(SEEDS), "results": rows}), markdown(rows))
    print(markdown(rows))


def restate(path):
    """Every stored configuration compared again (its npgrad runs as they were) against the SB3 runs there are now."""
    stored = stored_results(path)
    rows = [{**compare(label, env_id, r["runs"], r["population_seconds"]), "machine": r["machine"]}
            for (label, env_id), r in stored.items()]
    rows = sorted(rows, key=lambda r: CASES.index((r["algo"], r["env"])))
    write_results(path, finite({**read_results(path), "results": rows}), markdown(rows))


def stored_results(path):
    """``{(label, env): result}`` of ``path``, the results in this script's present form."""
    return {(r["algo"], r["env"]): r for r in read_results(path).get("results", []) if "per_run" in r["npgrad"]}


if __name__ == "__main__":
    main()
