"""Shared trunk against separate networks: where does one MLP for policy and value learn worse?

    python benchmarks/shared_trunk.py --jobs 2               # 3 cases x 2 x 10 tuning seeds (1000-1009), 7-15 min
    python benchmarks/shared_trunk.py --seeds 20 --jobs 2    # seeds 1000-1019: results/shared-trunk.*, 15-30 min
    python benchmarks/shared_trunk.py --seeds 20 --first-seed 1020 --jobs 2 \
        --out benchmarks/results/shared-trunk-seeds-1020-1039.json        # the replication on seeds 1020-1039

PPO and A2C train either two networks (the default) or, with ``shared_trunk=True``, one MLP whose
last output is V(s), on PPO's eq. 9 (L^CLIP - c1 L^VF + c2 S, c1 = ``vf_coef``) or A2C's combined
loss. Everything else is the tuned default. Cases: PPO CartPole-v1 (50k steps), A2C CartPole-v1
(200k), PPO Pendulum-v1 (100k). Seeds 1000 on are tuning seeds, not the reported 0-19.

Protocol as ``learning.py``'s: single-threaded BLAS, a deterministic evaluation on 10 episodes (env
seeded ``seed + 10000``) at the first update at or after every 5,000 steps; thresholds CartPole 475,
Pendulum -200; "first" / "sustained" steps as there. "final" is the last of those evaluations (at
the budget). Per configuration (``npgrad.stats``): interquartile mean (IQM) of the final returns
with a 95% percentile bootstrap CI (scipy.stats.bootstrap, 10k resamples, seed 0), median steps to
threshold ("never" counting as infinitely late), how many runs reach / sustain it, and the
probability that a shared-trunk run beats a separate one (final return; first reach). Steps, not
seconds, are the result: ``--jobs 2`` runs two seeds at a time, which changes seconds, no step or return.

Writes ``results/shared-trunk.json`` (every evaluation of every run, the machine) and ``.md``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad import stats  # noqa: E402
from npgrad.callbacks import Evaluator  # noqa: E402

from common import machine_info, write_results  # noqa: E402
from learning import THRESHOLDS, first_reach, fmt, median, sustained_reach  # noqa: E402

CASES = [("ppo", "CartPole-v1", 50_000), ("a2c", "CartPole-v1", 200_000), ("ppo", "Pendulum-v1", 100_000)]


def run_one(algo, env_id, budget, shared, seed):
    """One run's record: every evaluation ``(steps, training seconds, return)``, steps to threshold, final return."""
    agent = npgrad.ALGOS[algo](env_id, seed=seed, shared_trunk=shared)
    evaluator = Evaluator(every=5_000, episodes=10)
    agent.learn(budget, callback=evaluator)
    history, threshold = evaluator.history, THRESHOLDS[env_id]
    row = {"algo": algo, "env": env_id, "budget": budget, "shared_trunk": shared, "seed": seed, "history": history,
           "final_return": history[-1][2], "train_seconds": evaluator.train_seconds}
    for name, index in (("first", first_reach(history, threshold)), ("sustained", sustained_reach(history, threshold))):
        row[f"{name}_steps"] = history[index][0] if index is not None else None
    print(f"{algo} {env_id} shared={shared!s:5} seed {seed}: first {row['first_steps']} sustained "
          f"{row['sustained_steps']} final {row['final_return']:.1f}", flush=True)
    return row


def summarize(runs):
    """Per (algo, env, shared_trunk): IQM of final returns with its bootstrap CI, median steps, reach counts,
    and for the shared trunk the probability that one of its runs beats one of the separate networks'."""
    summary = []
    for algo, env_id, budget in CASES:
        separate = None
        for shared in (False, True):
            group = [r for r in runs if (r["algo"], r["env"], r["shared_trunk"]) == (algo, env_id, shared)]
            if not group:
                continue
            finals = np.array([r["final_return"] for r in group])
            firsts = np.array([np.inf if r["first_steps"] is None else r["first_steps"] for r in group])
            low, high = stats.interval(finals, stats.iqm, method="percentile", rng=0)  # scipy.stats.bootstrap
            summary.append({
                "algo": algo, "env": env_id, "budget": budget, "shared_trunk": shared, "seeds": len(group),
                "final_iqm": float(stats.iqm(finals)), "final_iqm_ci95": [low, high],
                "first_steps_median": median([r["first_steps"] for r in group]),
                "sustained_steps_median": median([r["sustained_steps"] for r in group]),
                "reached": sum(r["first_steps"] is not None for r in group),
                "sustained": sum(r["sustained_steps"] is not None for r in group),
                "final_returns": [round(float(f), 1) for f in finals]})
            if shared and separate is not None:  # P(X > Y), ties counted as 1/2 (Mann-Whitney U / nm)
                summary[-1]["p_better_final"] = float(stats.probability_of_improvement(finals, separate[0]))
                summary[-1]["p_sooner_first"] = float(stats.probability_of_improvement(firsts, separate[1], True))
            separate = (finals, firsts)
    return summary


def markdown(summary):
    lines = ["| algorithm, env, budget | networks | final return: IQM [95% CI] | steps to threshold: first / "
             "sustained (median) | runs reaching / sustaining | P(shared beats separate): final / first |",
             "|---|---|---|---|---|---|"]
    for s in summary:
        lo, hi = s["final_iqm_ci95"]
        p = f"{s['p_better_final']:.2f} / {s['p_sooner_first']:.2f}" if "p_better_final" in s else ""
        lines.append(f"| {s['algo'].upper()} {s['env']} {s['budget'] // 1000}k "
                     f"| {'shared trunk' if s['shared_trunk'] else 'separate'} "
                     f"| {s['final_iqm']:.1f} [{lo:.1f}, {hi:.1f}] "
                     f"| {fmt(s['first_steps_median'], 1e3, 0, 'k')} / {fmt(s['sustained_steps_median'], 1e3, 0, 'k')} "
                     f"| {s['reached']} / {s['sustained']} of {s['seeds']} | {p} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10, help="how many seeds")
    p.add_argument("--first-seed", type=int, default=1000, help="the first (tuning) seed")
    p.add_argument("--cases", default="all", help="comma-separated indices into CASES (0: PPO CartPole, "
                   "1: A2C CartPole, 2: PPO Pendulum), default all")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (at most the cores; changes only seconds)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "shared-trunk.json"))
    args = p.parse_args(argv)
    cases = CASES if args.cases == "all" else [CASES[int(i)] for i in args.cases.split(",")]
    jobs = [(algo, env_id, budget, shared, seed) for algo, env_id, budget in cases for shared in (False, True)
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(run_one, *zip(*jobs)))
    summary = summarize(runs)
    table = markdown(summary) + (f"\n\nSeeds {args.first_seed}-{args.first_seed + args.seeds - 1} (tuning seeds); "
                                 "final = the last 10-episode evaluation, at the budget; P = the probability that "
                                 "a shared-trunk run scores higher / reaches the threshold sooner than a separate "
                                 "one (ties 1/2; 0.5: no difference).")
    payload = {"machine": machine_info(), "npgrad_source": os.path.dirname(npgrad.__file__), "args": vars(args),
               "summary": summary, "runs": runs}
    write_results(args.out, payload, table)
    print(table)
    return summary


if __name__ == "__main__":
    main()
