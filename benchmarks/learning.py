"""Learning benchmark: steps and seconds to threshold, final return, and the environment's speed limit.

    python benchmarks/learning.py --quick     # PPO and TRPO on CartPole, 2 seeds, ~1 minute
    python benchmarks/learning.py             # every algorithm x {CartPole-v1, Pendulum-v1}, 5 seeds
    python benchmarks/learning.py --algos trpo --envs Pendulum-v1 --first-seed 20 --seeds 20 --sb3   # seeds 20-39

The protocol is ../shared/BENCHMARKS.md's (copied in benchmarks/README.md): single-threaded BLAS,
one run at a time, a deterministic evaluation on 10 episodes (env seeded ``seed + 10000``) every
5,000 steps, evaluation time excluded from training seconds; "first" is the first evaluation that
reaches the threshold, "sustained" the first from which every later one stays at or above it;
"final" is 20 further deterministic episodes after the budget. It also measures the raw
throughput of each library's own vector env, same number of envs, with random actions (the ceiling).
Where npgrad's is NumPy-vectorised (CartPole), each algorithm also trains once (the first seed) on a SyncVectorEnv,
which steps one env at a time as SB3's DummyVecEnv does, and is measured against that env's ceiling.

Writes ``benchmarks/results/learning.json`` (``-quick``, ``-subset`` for other runs) and a markdown table next to it.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
import math  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad.callbacks import Evaluator  # noqa: E402
from npgrad.envs import make_vec_env  # noqa: E402

import sb3  # noqa: E402
from common import machine_info, never, vector_env_speed, write_results  # noqa: E402

THRESHOLDS = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0}
ONE_AT_A_TIME = ("Trained on a vector env that steps its environments one at a time (gymnasium's SyncVectorEnv, "
                 "as SB3's DummyVecEnv does; same number of environments, the first seed) "
                 "and measured against its ceiling:")
# label -> (algorithm, overrides); PPO-KL is PPO with the adaptive KL-penalty objective
VARIANTS = {"ppo": ("ppo", {}), "trpo": ("trpo", {}), "ppo-kl": ("ppo", {"objective": "kl_penalty"}),
            "a2c": ("a2c", {}), "npg": ("npg", {}), "vpg": ("vpg", {})}
# the budgets of the first version (steps within which the median must reach the threshold)
BUDGETS = {
    "CartPole-v1": {"ppo": 100_000, "trpo": 100_000, "ppo-kl": 100_000, "a2c": 500_000, "npg": 200_000,
                    "vpg": 200_000},
    "Pendulum-v1": {"ppo": 100_000, "trpo": 100_000, "ppo-kl": 150_000, "a2c": 1_000_000, "npg": 200_000,
                    "vpg": 500_000},
}


# Not measured here: the PyTorch reference of ../shared/BENCHMARKS.md (SB3 2.9.2 / sb3-contrib 2.9.2,
# RL-Zoo settings, 3 seeds, another 2-core machine). steps first/sustained, seconds first/sustained.
SB3_REFERENCE = {
    ("ppo", "CartPole-v1"): (15_000, 20_000, 3.1, 4.1), ("trpo", "CartPole-v1"): (26_000, 76_000, 6.8, 19.8),
    ("a2c", "CartPole-v1"): (20_000, 100_000, 1.9, 9.5), ("ppo", "Pendulum-v1"): (29_000, 78_000, 9.8, 26.2),
    ("trpo", "Pendulum-v1"): (55_000, 61_000, 16.0, 17.7),
}


def first_reach(history, threshold):
    """Index of the first evaluation at or above ``threshold`` (None if never)."""
    return next((i for i, (_, _, ret) in enumerate(history) if ret >= threshold), None)


def sustained_reach(history, threshold):
    """Index of the first evaluation from which every later one stays at or above ``threshold``."""
    i = len(history)
    while i > 0 and history[i - 1][2] >= threshold:
        i -= 1
    return i if i < len(history) else None


def reach(histories, threshold):
    """``{first_steps, first_seconds, sustained_steps, sustained_seconds}``: each run's steps and training seconds at
    its first and sustained evaluation at or above ``threshold`` (``inf``: never), as arrays over runs."""
    out = {}
    for name, find in (("first", first_reach), ("sustained", sustained_reach)):
        rows = [h[i] if i is not None else (np.inf, np.inf) for h, i in ((h, find(h, threshold)) for h in histories)]
        out[name + "_steps"] = np.array([row[0] for row in rows])  # ints, unless a run never reaches it
        out[name + "_seconds"] = np.array([row[1] for row in rows])
    return out


def run_one(label, env_id, seed, budget, env=None):
    """One npgrad run on ``env_id``'s own vector env, or on ``env`` (an instance of ``env_id``) if given."""
    algo, variant = VARIANTS[label]
    agent = npgrad.ALGOS[algo](env_id if env is None else env, seed=seed, **variant)
    evaluator = Evaluator(every=5_000, episodes=10)
    agent.learn(budget, callback=evaluator)
    final = agent.evaluate(episodes=20, seed=seed + 20_000)
    return make_row("npgrad", label, env_id, seed, budget, agent.num_steps, evaluator.history, final.mean,
                    evaluator.train_seconds, agent.config.n_envs)


def make_row(library, label, env_id, seed, budget, steps, history, final_return, train_seconds, n_envs):
    """One run's record: its evaluations, and steps and seconds to first and sustained threshold."""
    row = {"library": library, "algo": label, "env": env_id, "seed": seed, "budget": budget, "history": history,
           "final_return": final_return, "train_seconds": train_seconds,
           "steps_per_second": steps / train_seconds, "n_envs": n_envs}
    threshold = THRESHOLDS[env_id]
    for name, index in (("first", first_reach(history, threshold)), ("sustained", sustained_reach(history, threshold))):
        steps, seconds, _ = history[index] if index is not None else (None, None, None)
        row[f"{name}_steps"], row[f"{name}_seconds"] = steps, seconds
    return row


def raw_env_speed(env_id, n_envs, seed=0):
    """``(steps/s, vector env)`` of the vector env npgrad trains on (``make_vec_env``: gymnasium's
    NumPy-vectorised class where the env has one, else ``SyncVectorEnv``) under random actions."""
    return vector_env_speed(make_vec_env(env_id, n_envs), seed)


def one_at_a_time(env_id, n_envs):
    """Gymnasium's ``SyncVectorEnv`` of ``n_envs`` copies, which steps one Python env after another as SB3's
    ``DummyVecEnv`` does: the vector env of a library without NumPy-vectorised environments."""
    return gym.make_vec(env_id, n_envs, vectorization_mode="sync")


def median(values):
    """Median where ``None`` ("never") counts as infinitely late; ``None`` if the median is "never"."""
    m = float(np.median([math.inf if v is None else v for v in values]))
    return None if math.isinf(m) else m


def summarize(rows, ceilings, trained_one_at_a_time):
    groups = {}
    for row in rows:
        groups.setdefault((row["library"], row["algo"], row["env"]), []).append(row)
    summary = []
    for (library, label, env_id), runs in groups.items():
        speed = float(np.median([r["steps_per_second"] for r in runs]))
        ceiling, vector_env = ceilings[(library, env_id, runs[0]["n_envs"])]
        summary.append({
            "library": library, "algo": label, "env": env_id, "seeds": len(runs), "budget": runs[0]["budget"],
            **{f"{k}_median": median([r[k] for r in runs])
               for k in ("first_steps", "sustained_steps", "first_seconds", "sustained_seconds")},
            "final_returns": [round(r["final_return"], 1) for r in runs],
            "steps_per_second": speed, "raw_env_steps_per_second": ceiling, "vector_env": vector_env,
            "fraction_of_ceiling": speed / ceiling,
            **trained_one_at_a_time.get((library, label, env_id), {}),
        })
    return summary


def one_at_a_time_fields(row, ceiling):
    """Training speed of ``row``, a run on ``one_at_a_time``, against that vector env's raw speed ``ceiling``."""
    speed = row["steps_per_second"]
    print(f"npgrad {row['algo']:7s} {row['env']:12s} on SyncVectorEnv x{row['n_envs']}, seed {row['seed']}: "
          f"{speed:,.0f} steps/s of {ceiling:,.0f}", flush=True)
    return {"one_at_a_time_training_steps_per_second": speed, "one_at_a_time_steps_per_second": ceiling,
            "fraction_of_one_at_a_time": speed / ceiling}


def fmt(x, scale=1.0, digits=0, suffix=""):
    return "never" if never(x) else f"{x / scale:.{digits}f}{suffix}"


def markdown(summary):
    lines = ["| library, algorithm, env | budget | steps to threshold: first / sustained (median) "
             "| seconds: first / sustained | final return (per seed) | training steps/s "
             "| raw env steps/s (vector env) | fraction |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(
            f"| {s['library']} {s['algo'].upper()} {s['env']} | {s['budget'] // 1000}k "
            f"| {fmt(s['first_steps_median'], 1e3, 0, 'k')} / {fmt(s['sustained_steps_median'], 1e3, 0, 'k')} "
            f"| {fmt(s['first_seconds_median'], 1, 1)} / {fmt(s['sustained_seconds_median'], 1, 1)} "
            f"| {', '.join(f'{r:.0f}' for r in s['final_returns'])} | {s['steps_per_second']:,.0f} "
            f"| {s['raw_env_steps_per_second']:,.0f} ({s['vector_env']}) | {100 * s['fraction_of_ceiling']:.0f}% |")
    return "\n".join(lines)


def one_at_a_time_markdown(summary):
    """Where npgrad trains on a NumPy-vectorised env (CartPole), the same training on a vector env that steps
    its environments one at a time, as a per-environment vector env such as SB3's does, and its fraction."""
    lines = ["| algorithm, env | own vector env: training / raw steps/s (fraction) "
             "| SyncVectorEnv: training / raw steps/s (fraction) |", "|---|---|---|"]
    for s in summary:
        if "one_at_a_time_steps_per_second" in s:
            own = f"{s['steps_per_second']:,.0f} / {s['raw_env_steps_per_second']:,.0f} ({s['vector_env']}"
            one = f"{s['one_at_a_time_training_steps_per_second']:,.0f} / {s['one_at_a_time_steps_per_second']:,.0f}"
            lines.append(f"| {s['algo'].upper()} {s['env']} | {own}; {100 * s['fraction_of_ceiling']:.0f}%) "
                         f"| {one} ({100 * s['fraction_of_one_at_a_time']:.0f}%) |")
    return "\n".join(lines) if len(lines) > 2 else ""


def reference_markdown(summary):
    """npgrad's medians next to the SB3 reference numbers, as ratios SB3 / npgrad (> 1: npgrad is better)."""
    lines = ["| algorithm, env | steps first / sustained: SB3 vs npgrad | seconds first / sustained: SB3 / npgrad |",
             "|---|---|---|"]
    for s in summary:
        ref = SB3_REFERENCE.get((s["algo"], s["env"]))
        if ref is None or s["library"] != "npgrad":
            continue
        ours = [s[f"{k}_median"] for k in ("first_steps", "sustained_steps", "first_seconds", "sustained_seconds")]
        ratios = [fmt(r / o if o else None, 1, 1, "x") for r, o in zip(ref[2:], ours[2:])]
        lines.append(f"| {s['algo'].upper()} {s['env']} | {fmt(ref[0], 1e3, 0, 'k')} / {fmt(ref[1], 1e3, 0, 'k')} vs "
                     f"{fmt(ours[0], 1e3, 0, 'k')} / {fmt(ours[1], 1e3, 0, 'k')} | {ratios[0]} / {ratios[1]} |")
    return "\n".join(lines)


def side_by_side_markdown(summary):
    """npgrad against SB3 measured in this run: steps as npgrad / SB3 (<= 1: no more steps) and
    seconds as SB3 / npgrad (how many times faster npgrad reaches the threshold)."""
    sb3 = {(s["algo"], s["env"]): s for s in summary if s["library"] == "sb3"}
    lines = ["| algorithm, env | steps first / sustained: npgrad vs SB3 | seconds first / sustained: npgrad vs SB3 "
             "| speed-up first / sustained | training steps/s: npgrad vs SB3 |", "|---|---|---|---|---|"]
    for s in summary:
        ref = sb3.get((s["algo"], s["env"])) if s["library"] == "npgrad" else None
        if ref is None:
            continue
        steps = [fmt(s[f"{k}_steps_median"], 1e3, 0, "k") for k in ("first", "sustained")]
        ref_steps = [fmt(ref[f"{k}_steps_median"], 1e3, 0, "k") for k in ("first", "sustained")]
        secs = [fmt(s[f"{k}_seconds_median"], 1, 1) for k in ("first", "sustained")]
        ref_secs = [fmt(ref[f"{k}_seconds_median"], 1, 1) for k in ("first", "sustained")]
        speedup = [fmt(r / o if r and o else None, 1, 1, "x") for r, o in
                   ((ref[f"{k}_seconds_median"], s[f"{k}_seconds_median"]) for k in ("first", "sustained"))]
        lines.append(f"| {s['algo'].upper()} {s['env']} | {steps[0]} / {steps[1]} vs {ref_steps[0]} / {ref_steps[1]} "
                     f"| {secs[0]} / {secs[1]} vs {ref_secs[0]} / {ref_secs[1]} | {speedup[0]} / {speedup[1]} "
                     f"| {s['steps_per_second']:,.0f} vs {ref['steps_per_second']:,.0f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="PPO and TRPO on CartPole, 2 seeds, the full budgets")
    p.add_argument("--algos", default=",".join(VARIANTS), help="comma-separated labels: " + ", ".join(VARIANTS))
    p.add_argument("--envs", default=",".join(THRESHOLDS))
    p.add_argument("--seeds", type=int, default=5, help="how many seeds")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first seed: --first-seed 20 --seeds 20 runs 20-39 (the one-at-a-time run: seed 20)")
    p.add_argument("--budget", type=int, default=None, help="override every budget (steps)")
    p.add_argument("--sb3", action="store_true",
                   help="also run SB3/sb3-contrib (RL-Zoo settings) for PPO, TRPO and A2C, same seeds, same run")
    p.add_argument("--out", default=None, help="JSON path (default: results/learning.json for the full protocol, "
                   "learning-quick.json for --quick, learning-subset.json for any other selection)")
    return p.parse_args(argv)


def default_out(args, labels, env_ids):
    """``results/learning.json`` only for the full protocol: a subset must not replace the run the READMEs show."""
    full = (set(labels) == set(VARIANTS) and set(env_ids) == set(THRESHOLDS) and args.seeds == 5
            and not args.first_seed and not args.budget)
    name = "learning-quick" if args.quick else "learning" if full else "learning-subset"
    return os.path.join(os.path.dirname(__file__), "results", name + ".json")


def main(argv=None):
    args = parse_args(argv)
    if args.sb3 and not sb3.available():
        raise SystemExit("--sb3 needs stable-baselines3 and sb3-contrib: pip install stable-baselines3 sb3-contrib")
    if args.quick:
        args.algos, args.envs, args.seeds = "ppo,trpo", "CartPole-v1", 2
    labels, env_ids = args.algos.split(","), args.envs.split(",")
    out = args.out or default_out(args, labels, env_ids)
    rows, ceilings, one_at_a_time_rows, trained_one_at_a_time = [], {}, [], {}
    for env_id in env_ids:
        for label in labels:
            budget = args.budget or BUDGETS[env_id][label]
            libraries = ["npgrad"] + (["sb3"] if args.sb3 and (label, env_id) in sb3.ZOO else [])
            for library in libraries:
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    if library == "npgrad":
                        row = run_one(label, env_id, seed, budget)
                    else:
                        row = make_row("sb3", label, env_id, seed, budget, *sb3.run_sb3(label, env_id, seed, budget))
                    rows.append(row)
                    print(f"{library:6s} {label:7s} {env_id:12s} seed {seed}: first {row['first_steps']} sustained "
                          f"{row['sustained_steps']} final {row['final_return']:.1f} "
                          f"({row['steps_per_second']:,.0f} steps/s, {row['train_seconds']:.1f} s)", flush=True)
                    key = (library, env_id, row["n_envs"])
                    if key not in ceilings:  # each library's own vector env (SB3's steps one Python env at a time)
                        measure = raw_env_speed if library == "npgrad" else sb3.raw_env_speed
                        ceilings[key] = measure(env_id, row["n_envs"])
                if library == "npgrad" and gym.spec(env_id).vector_entry_point is not None:
                    row = run_one(label, env_id, args.first_seed, budget, env=one_at_a_time(env_id, rows[-1]["n_envs"]))
                    one_at_a_time_rows.append(row)
                    key = ("one at a time", env_id, row["n_envs"])
                    if key not in ceilings:
                        ceilings[key] = vector_env_speed(one_at_a_time(env_id, row["n_envs"]))
                    trained_one_at_a_time[library, label, env_id] = one_at_a_time_fields(row, ceilings[key][0])
            # written after every algorithm x env, so a long run that is stopped keeps what it measured
            summary = summarize(rows, ceilings, trained_one_at_a_time)
            table, per_env = markdown(summary), one_at_a_time_markdown(summary)
            if per_env:
                table += f"\n\n{ONE_AT_A_TIME}\n\n{per_env}"
            if args.sb3:
                table += "\n\nAgainst SB3, measured in this run:\n\n" + side_by_side_markdown(summary)
            table += "\n\nAgainst the SB3 reference (not measured in this run):\n\n" + reference_markdown(summary)
            write_results(out, {"machine": machine_info(), "args": vars(args), "summary": summary, "runs": rows,
                                "one_at_a_time_runs": one_at_a_time_rows}, table)
    print(table)
    return summary


if __name__ == "__main__":
    main()
