"""Discrete observations: PPO and A2C on FrozenLake-v1 (4x4, non-slippery and slippery) and Taxi.

    python benchmarks/spaces.py                          # report: seeds 0-9, the settings below (~50 min, 2 cores)
    python benchmarks/spaces.py --only ppo:taxi,a2c:taxi      # report these two again, keep the others' runs
    python benchmarks/spaces.py --first-seed 1000 --only ppo:taxi --set lr=1e-3   # a tuning run (writes spaces-subset)

Measures, per algorithm x environment, how far the tuned entries of npgrad/tuned.py (``SETTINGS``) get in a
modest budget: the deterministic policy is evaluated every ``EVERY`` steps
(seed ``seed + 10000``) and once more after the budget (seed ``seed + 20000``), on the episode count
of the threshold (below). Reported: IQM of the final return over seeds with a 95% bootstrap interval
(npgrad.stats), how many seeds reach the threshold (at any evaluation, and in the final one), and the
median steps to the first evaluation at or above it ("never" as infinitely late).

Thresholds: non-slippery FrozenLake: 1.0 (the optimum) over 20 episodes; slippery FrozenLake:
0.74 over 100 episodes (gymnasium's reference). Taxi is deterministic once its start state is drawn, so its
evaluation is exact instead of sampled: the greedy policy plays every one of the 300 start states once
(``exact_returns``), which gives its expected return itself. The optimal policy's is 7.93 (value iteration on
the environment's own transition table), below gymnasium's reward threshold of 8, which a 20-episode sample
therefore meets or misses by the draw of start states as much as by the policy. The threshold is 7.9: every
start delivered (one start left at the 200-step limit costs about 0.7) at no more than 10 steps beyond the
shortest routes in all.
gymnasium >= 1.3 registers Taxi-v4 (Taxi-v3 raises DeprecatedEnv); without ``is_rainy`` or
``fickle_passenger`` the two are the same environment, so this measures Taxi-v4 where it exists.

The non-slippery lake has no id of its own: it trains on a ``SyncVectorEnv`` of
``gym.make("FrozenLake-v1", is_slippery=False)`` and is evaluated on another (``evaluate(env=...)``),
since ``evaluate`` would otherwise rebuild the slippery default from the id.
Writes benchmarks/results/spaces.json (every evaluation of every run, machine, settings) and spaces.md.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
import ast  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad import stats  # noqa: E402
from npgrad.tuned import TUNED  # noqa: E402

from common import machine_info, read_results, write_results  # noqa: E402

TAXI = "Taxi-v4" if "Taxi-v4" in gym.registry else "Taxi-v3"
# label -> (env id, make kwargs, threshold, evaluation episodes, budget, evaluate every)
ENVS = {
    "lake": ("FrozenLake-v1", {"is_slippery": False}, 1.0, 20, 100_000, 5_000),
    "slippery": ("FrozenLake-v1", {}, 0.74, 100, 100_000, 10_000),
    "taxi": (TAXI, {}, 7.9, 300, 500_000, 25_000),  # 300: every start state, once (exact_returns)
}
LABELS = {"lake": "FrozenLake-v1 (is_slippery=False)", "slippery": "FrozenLake-v1 (slippery)", "taxi": TAXI}

# The settings measured: each algorithm's tuned entry in npgrad/tuned.py (both lakes share the id; why each field
# is what it is: the entry's own line there). ``--set`` tries fields on top of them.
SETTINGS = {algo: {env_id: TUNED[algo][env_id][0] for env_id in ("FrozenLake-v1", TAXI)} for algo in ("ppo", "a2c")}
# A2C takes one gradient step per 2,048 transitions on Taxi: it needs more of them than PPO's 500k steps give
BUDGETS = {("a2c", "taxi"): 3_000_000}
# the default run, longest first so two workers end together
ORDER = [("a2c", "taxi"), ("ppo", "taxi"), ("ppo", "lake"), ("a2c", "lake"), ("ppo", "slippery"), ("a2c", "slippery")]


def vector_env(env_id, kwargs, n):
    """``n`` copies of ``env_id`` built with ``kwargs``, stepped one at a time."""
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", **kwargs)


def taxi_tables(env_id=TAXI):
    """Taxi's dynamics as tables, read from the environment's own ``P``: next state, reward and episode end of every
    (state, action), the start states, and the optimal return from each state (undiscounted value iteration,
    ``V(s) = max_a r(s, a) + V(s')``, with ``V = 0`` after a delivery)."""
    env = gym.make(env_id).unwrapped
    n_s, n_a = env.observation_space.n, env.action_space.n
    next_sa, r_sa, end_sa = np.zeros((n_s, n_a), dtype=np.int64), np.zeros((n_s, n_a)), np.zeros((n_s, n_a), bool)
    for s in range(n_s):
        for a in range(n_a):
            ((_, next_sa[s, a], r_sa[s, a], end_sa[s, a]),) = env.P[s][a]  # one outcome: deterministic
    v_s = np.zeros(n_s)
    while True:
        v_new_s = np.max(r_sa + np.where(end_sa, 0.0, v_s[next_sa]), axis=1)
        if np.array_equal(v_new_s, v_s):
            break
        v_s = v_new_s
    return {"next": next_sa, "reward": r_sa, "end": end_sa, "starts": np.flatnonzero(env.initial_state_distrib),
            "optimal": v_s}


def exact_returns(agent, tables, limit=200):
    """``(return_k, delivered_k)`` of the agent's greedy policy on Taxi from each start state k, all played at once to
    a delivery or the 200-step limit. The start distribution is uniform, so ``mean(return_k)`` is the policy's
    expected return itself, with no sampling error."""
    s_k = tables["starts"].copy()
    return_k, running_k = np.zeros(len(s_k)), np.ones(len(s_k), dtype=bool)
    for _ in range(limit):
        a_k = agent.predict(s_k, deterministic=True)[0]
        return_k += np.where(running_k, tables["reward"][s_k, a_k], 0.0)
        running_k &= ~tables["end"][s_k, a_k]
        s_k = np.where(running_k, tables["next"][s_k, a_k], s_k)
    return return_k, ~running_k


def run_one(algo, env, seed, overrides, budget=None):
    """One run: ``{"history": [(steps, seconds, return), ...], "final": [returns], ...}``."""
    env_id, kwargs, threshold, episodes, default_budget, every = ENVS[env]
    budget = budget or BUDGETS.get((algo, env), default_budget)
    fields = {**SETTINGS[algo][env_id], **overrides}
    Agent = npgrad.ALGOS[algo]
    n_envs = Agent.Config.for_env(env_id, **fields).n_envs
    train_env = vector_env(env_id, kwargs, n_envs) if kwargs else env_id
    eval_env = vector_env(env_id, kwargs, min(episodes, 64)) if kwargs else None  # None: the agent's id
    agent = Agent(train_env, seed=seed, **fields)
    history, seconds, due = [], 0.0, every
    tables = taxi_tables(env_id) if env == "taxi" else None

    def returns(seed=None):
        if tables is not None:
            return exact_returns(agent, tables)[0]
        return agent.evaluate(episodes, seed=seed, env=eval_env).returns

    def evaluate(agent, info):
        nonlocal seconds, due, start
        seconds += time.perf_counter() - start
        if agent.num_steps >= due:
            due += every * ((agent.num_steps - due) // every + 1)
            history.append((agent.num_steps, seconds, float(np.mean(returns()))))
        start = time.perf_counter()

    start = time.perf_counter()
    agent.learn(budget, callback=evaluate)
    final = returns(seed + 20_000)
    steps_k, _, returns_k = np.array(history).T
    return {"algo": algo, "env": LABELS[env], "seed": seed, "budget": budget, "settings": fields,
            "config": agent.config.to_dict(), "history": history, "final_returns": final.tolist(),
            "final_mean": float(final.mean()), "first_reach": never_as_none(stats.first_reach(steps_k, returns_k, threshold)),
            "reached_final": bool(final.mean() >= threshold), "train_seconds": seconds,
            "steps_per_second": agent.num_steps / seconds}


def never_as_none(steps):
    """Steps to a threshold for the JSON file: "never" (inf) as null, which strict JSON parsers read."""
    return None if np.isinf(steps) else steps


def run_task(task):
    return run_one(*task)


def summarize(runs):
    groups = {}
    for run in runs:
        groups.setdefault((run["algo"], run["env"]), []).append(run)
    rows = []
    for (algo, env), group in groups.items():
        final_r = np.array([r["final_mean"] for r in group])
        first_r = np.array([np.inf if r["first_reach"] is None else r["first_reach"] for r in group])
        low, high = stats.interval(final_r, stats.iqm) if len(group) > 1 else (np.nan, np.nan)
        rows.append({"algo": algo, "env": env, "seeds": len(group), "budget": group[0]["budget"],
                     "iqm_final": float(stats.iqm(final_r)), "ci": (float(low), float(high)),
                     "reached_any": int(np.isfinite(first_r).sum()),
                     "reached_final": sum(r["reached_final"] for r in group),
                     "median_first_reach": never_as_none(float(stats.median(first_r))),
                     "steps_per_second": float(np.median([r["steps_per_second"] for r in group]))})
    return rows


def markdown(rows):
    lines = ["| algorithm, env | budget | IQM final return [95% CI] (Taxi: exact, over every start) "
             "| seeds reaching threshold: any eval / final | median first-reach steps | training steps/s |",
             "|---|---|---|---|---|---|"]
    for s in rows:
        first = "never" if s["median_first_reach"] is None else f"{s['median_first_reach'] / 1e3:.0f}k"
        lines.append(f"| {s['algo'].upper()} {s['env']} | {s['budget'] // 1000}k | {s['iqm_final']:.2f} "
                     f"[{s['ci'][0]:.2f}, {s['ci'][1]:.2f}] | {s['reached_any']} / {s['reached_final']} of {s['seeds']} "
                     f"| {first} | {s['steps_per_second']:,.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--only", default=None, help="comma-separated algo:env, e.g. ppo:taxi,a2c:lake")
    p.add_argument("--set", nargs="*", default=[], help="overrides as field=value (tuning)")
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (processes; the protocol's machine has 2 cores)")
    p.add_argument("--out", default=None, help="default: results/spaces.json (where a rerun configuration replaces "
                                               "its runs), or spaces-subset.json for tuning runs")
    args = p.parse_args(argv)
    pairs = [tuple(x.split(":")) for x in args.only.split(",")] if args.only else ORDER
    overrides = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    reported = not (args.set or args.budget or args.first_seed or args.seeds != 10)
    out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                   "spaces.json" if reported else "spaces-subset.json")
    tasks = [(algo, env, seed, overrides, args.budget) for algo, env in pairs
             for seed in range(args.first_seed, args.first_seed + args.seeds)]
    rerun = {(algo, LABELS[env]) for algo, env in pairs}
    runs = []
    with multiprocessing.Pool(args.jobs) as pool:  # one run per process at a time, BLAS single-threaded
        for run in pool.imap_unordered(run_task, tasks):
            runs.append(run)
            if reported:  # re-read before each write: another configuration's run may have written since
                runs = [r for r in read_results(out).get("runs", []) if (r["algo"], r["env"]) not in rerun] + [
                    r for r in runs if (r["algo"], r["env"]) in rerun]
            first = "never" if run["first_reach"] is None else f"{run['first_reach']:.0f}"
            print(f"{run['algo']} {run['env']} seed {run['seed']}: final {run['final_mean']:.2f} first "
                  f"{first} evals {' '.join(f'{r:.2f}' for _, _, r in run['history'])} "
                  f"({run['steps_per_second']:,.0f} steps/s)", flush=True)
            runs.sort(key=lambda r: (r["algo"], r["env"], r["seed"]))
            table = markdown(summarize(runs))  # written after every run: a stopped run keeps what it measured
            write_results(out, {"machine": machine_info(), "args": vars(args), "settings": SETTINGS,
                                "thresholds": {LABELS[e]: dict(zip(("threshold", "episodes", "budget", "every"),
                                                                   ENVS[e][2:])) for e in ENVS},
                                "summary": summarize(runs), "runs": runs}, table)
    print(table)


if __name__ == "__main__":
    main()
