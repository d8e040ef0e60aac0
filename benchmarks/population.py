"""Populations: aggregate training speed, wall-clock to threshold, memory per member, and Ray's overhead.

    python benchmarks/population.py --quick                # ~8 min: S <= 8, seeds 0-3 to threshold, 16-member Ray sweep
    python benchmarks/population.py                        # ~45 min on 2 cores: S <= 64, seeds 0-15, 64-member sweep
    python benchmarks/population.py --sizes 1,2,4,8,16,32  # ~30 min: the same up to S = 32

A population (``npgrad.PPO(env, seed=range(S))``) trains each member exactly as its solo run, in ``workers``
forked processes (``workers=1``: all here), the members of each process as one stack (parameters ``(S, p)``,
one forward and one update for all: ``npgrad.population.train_stack``); the results record the commit
measured and whether it stacked. ``S = 1`` with ``workers=1`` is one agent alone.
Every timing is the best of ``--repeats`` (at least 2), workers=1 and workers=2 taking turns, so that a
busy spell on a shared machine hits both; ratios are within one run. BLAS is single-threaded. Each timing
also records the machine's load from other processes (busy CPU seconds in /proc/stat, less this run's own,
over the wall-clock): on a shared 2-core machine a second worker is only as fast as the core left to it.

1. Throughput: PPO, TRPO, A2C on CartPole-v1 and PPO on Pendulum-v1 (tuned defaults), S members of a fixed
   budget each (20k steps CartPole, 10k Pendulum), no evaluation: member-steps/s of ``learn`` (wall-clock;
   building the population excluded), CPU seconds (this process and its workers) per 1k member-steps, and
   member-steps per CPU-second over the raw speed of the same vector env under random actions.
2. To threshold: seeds 0-15 of PPO and TRPO on CartPole-v1, evaluated every 5k steps on 10 episodes, trained
   to the protocol's 100k cap: the wall-clock (evaluations included) of seed 0 alone, of 16 solo runs one after
   another, of the 16 as one stack here (workers=1) and on 2 workers, and the step by which every member has
   sustained 475 (every later evaluation up to the cap >= 475). A population trains a fixed budget, and
   whether a member has sustained is known only at the cap, so the wall-clock is the cap's; members do not
   depend on the workers, which the results check.
3. Memory: in a fresh process per S, a PPO CartPole population of S (5k steps, 2 workers): what it holds
   here (tracemalloc while it is built; its arrays), this process's peak RSS, and each worker's peak RSS
   (which counts the pages it shares with this process after the fork) and peak private memory (sampled).
4. Ray: a 64-member sweep (8 learning rates x 8 seeds) of PPO CartPole, 10k steps each, on 2 local workers
   against Ray tasks (one chunk of members per CPU) on a local instance. Each repeat: the local sweep, then
   ``ray.init(num_cpus=2)`` (timed on its own), a first Ray sweep (which also starts Ray's worker processes),
   a second, and ``ray.shutdown()``: the local workers never fork a process in which Ray runs.

Writes results/population.json (every timing, the machine, when and at which commit each measurement was taken)
and population.md; --quick writes population-quick. ``--only threshold`` (say) measures that again and keeps the
others.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported: the protocol is single-threaded

import argparse  # noqa: E402
import glob  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

import npgrad  # noqa: E402
import npgrad.population  # noqa: E402

from common import machine_info, read_results, write_results  # noqa: E402
from learning import raw_env_speed, sustained_reach  # noqa: E402

CASES = [("ppo", "CartPole-v1"), ("trpo", "CartPole-v1"), ("a2c", "CartPole-v1"), ("ppo", "Pendulum-v1")]
BUDGETS = {"CartPole-v1": 20_000, "Pendulum-v1": 10_000}
MODES = {  # sizes (measurements 1 and 3), seeds to threshold (2), members of the Ray sweep (4)
    "quick": dict(sizes=(1, 2, 4, 8), seeds=4, sweep=16),
    "full": dict(sizes=(1, 2, 4, 8, 16, 32, 64), seeds=16, sweep=64),
}
MIB, CLOCK = 2 ** 20, os.sysconf("SC_CLK_TCK")
MEASURES = ("throughput", "threshold", "memory", "ray")  # the order of the tables (the numbering above)


def processes():
    """``{pid: (parent pid, CPU seconds)}`` of every process (/proc/PID/stat: fields 4, 14 and 15)."""
    table = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            table[int(path.split("/")[2])] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK)
        except (OSError, ValueError, IndexError):
            pass  # it ended meanwhile
    return table


def descendants(table, root):
    """Pids of ``root``'s children, their children, ... in ``processes()``'s ``table``."""
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, (parent, _) in table.items() if parent in frontier]
        found += frontier
    return found


def cpu_seconds():
    """CPU seconds of this process, of its children that have ended (a local pool's workers once it has shut down)
    and of its descendants still running (a local Ray instance: its daemons and worker processes)."""
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    table = processes()
    running = sum(table[pid][1] for pid in descendants(table, os.getpid()))
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime + running


def machine_busy_seconds():
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK


def timed_learn(pop, steps, **kwargs):
    """``(wall seconds, CPU seconds, member-steps, others' load)`` of ``pop.learn(steps, **kwargs)``: CPU seconds of
    this process and its workers (local or Ray's); others' load: the cores the rest of the machine kept busy."""
    cpu, busy, start = cpu_seconds(), machine_busy_seconds(), time.perf_counter()
    pop.learn(steps, **kwargs)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    others = max(0.0, (machine_busy_seconds() - busy - cpu) / wall)  # clock ticks: it may read -0.01
    return wall, cpu, sum(m.num_steps for m in pop), others


# --- 1. throughput against S -------------------------------------------------------------------------------


def throughput(sizes, repeats):
    rows = []
    for algo, env_id in CASES:
        n_envs = npgrad.ALGOS[algo](env_id, seed=0).config.n_envs
        raw, vector_env = raw_env_speed(env_id, n_envs)  # one process, random actions: the env's own limit
        for size in sizes:
            runs = {1: [], 2: []}
            for _ in range(repeats):
                for workers in (1, 2):  # taking turns: a noisy spell on the shared machine hits both
                    pop = npgrad.ALGOS[algo](env_id, seed=range(size))
                    runs[workers].append(timed_learn(pop, BUDGETS[env_id], workers=workers))
            row = {"algo": algo, "env": env_id, "members": size, "budget": BUDGETS[env_id], "n_envs": n_envs,
                   "raw_env_steps_per_second": raw, "vector_env": vector_env}
            for workers, times in runs.items():
                wall, _, steps, others = min(times)  # the fastest repeat, and the load it ran beside
                cpu = min(t[1] for t in times)
                row[f"workers{workers}"] = {
                    "wall_seconds": [t[0] for t in times], "cpu_seconds": [t[1] for t in times], "member_steps": steps,
                    "others_load": [t[3] for t in times], "member_steps_per_second": steps / wall,
                    "cpu_seconds_per_1k": 1000 * cpu / steps, "fraction_of_raw": steps / cpu / raw,
                    "others_load_best": others}
            row["speedup"] = row["workers2"]["member_steps_per_second"] / row["workers1"]["member_steps_per_second"]
            rows.append(row)
            w1, w2 = row["workers1"], row["workers2"]
            print(f"{algo} {env_id} S={size}: {w1['member_steps_per_second']:,.0f} / "
                  f"{w2['member_steps_per_second']:,.0f} member-steps/s ({row['speedup']:.2f}x)", flush=True)
    return rows


def throughput_markdown(rows):
    lines = ["| algorithm, env (budget per member) | S | member-steps/s: workers=1 (one stack) / 2 | speed-up | others' load "
             "(cores): 1 / 2 | CPU s per 1k member-steps: 1 / 2 | member-steps per CPU-s / raw env steps/s: 1 / 2 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        w1, w2 = r["workers1"], r["workers2"]
        lines.append(f"| {r['algo'].upper()} {r['env']} ({r['budget'] // 1000}k) | {r['members']} "
                     f"| {w1['member_steps_per_second']:,.0f} / {w2['member_steps_per_second']:,.0f} "
                     f"| {r['speedup']:.2f}x | {w1['others_load_best']:.1f} / {w2['others_load_best']:.1f} "
                     f"| {w1['cpu_seconds_per_1k']:.3f} / {w2['cpu_seconds_per_1k']:.3f} "
                     f"| {100 * w1['fraction_of_raw']:.1f}% / {100 * w2['fraction_of_raw']:.1f}% "
                     f"of {r['raw_env_steps_per_second']:,.0f} ({r['vector_env']}) |")
    return "\n".join(lines)


# --- 2. wall-clock until every member has sustained 475 ------------------------------------------------------


def scores(pop):
    """Every member's evaluations as ``(steps, return)`` (their seconds differ from run to run, nothing else)."""
    return [[(row[0], row[2]) for row in e["history"]] for e in pop.evaluations]


def to_threshold(algos, n_seeds, repeats, cap=100_000, threshold=475.0):
    rows = []
    for algo in algos:
        # every run trains to the cap: PPO anneals its step size and clip range over the budget of the learn call, so
        # a run to a smaller budget would be another run, not the beginning of this one
        runs = {"seed 0 alone": ([0], 1), "one stack": (range(n_seeds), 1), "2 workers": (range(n_seeds), 2)}
        times, pops = {name: [] for name in ["one after another", *runs]}, {}
        for _ in range(repeats):
            solo = [npgrad.ALGOS[algo]("CartPole-v1", seed=[s]) for s in range(n_seeds)]  # populations of one: solo runs
            parts = [timed_learn(pop, cap, eval_every=5_000, eval_episodes=10, workers=1) for pop in solo]
            times["one after another"].append(tuple(sum(t[i] for t in parts) for i in range(3)) +
                                              (float(np.mean([t[3] for t in parts])),))
            for name, (seeds, workers) in runs.items():
                pops[name] = npgrad.ALGOS[algo]("CartPole-v1", seed=seeds)
                times[name].append(timed_learn(pops[name], cap, eval_every=5_000, eval_episodes=10, workers=workers))
        pops["one after another"] = solo
        histories = [e["history"] for e in pops["2 workers"].evaluations]
        sustained = [h[i][0] if (i := sustained_reach(h, threshold)) is not None else None for h in histories]
        best = {name: min(t[0] for t in runs) for name, runs in times.items()}
        rows.append({"algo": algo, "env": "CartPole-v1", "seeds": n_seeds, "cap": cap, "sustained_steps": sustained,
                     "all_sustained_at": None if None in sustained else max(sustained), "best": best,
                     "runs": {name: [dict(zip(("wall", "cpu", "member_steps", "others_load"), t)) for t in runs]
                              for name, runs in times.items()},
                     "others_load_best_2_workers": min(times["2 workers"])[3],
                     "speedup": best["one after another"] / best["2 workers"],
                     "cost_over_one_seed": best["2 workers"] / best["seed 0 alone"],
                     "identical": scores(pops["2 workers"]) == scores(pops["one stack"])
                     == [scores(pop)[0] for pop in pops["one after another"]]
                     and scores(pops["seed 0 alone"])[0] == scores(pops["2 workers"])[0]})
        print(f"{algo}: all sustained at {rows[-1]['all_sustained_at']}, {best}", flush=True)
    return rows


def threshold_markdown(rows):
    lines = ["| algorithm, CartPole-v1 | steps at which each member sustains 475 | every member sustained at | wall-clock "
             "to the cap: seed 0 alone / S solo runs one after another / S as one stack / S on 2 workers | speed-up "
             "of 2 workers over solo runs (others' load) | S on 2 workers over one seed |", "|---|---|---|---|---|---|"]
    for r in rows:
        steps = ", ".join("never" if s is None else f"{s / 1000:.0f}k" for s in r["sustained_steps"])
        last, b = r["all_sustained_at"], r["best"]
        lines.append(f"| {r['algo'].upper()}, S = {r['seeds']} | {steps} | "
                     f"{'not within the cap' if last is None else f'{last / 1000:.0f}k'} | {b['seed 0 alone']:.1f} s / "
                     f"{b['one after another']:.1f} s / {b['one stack']:.1f} s / {b['2 workers']:.1f} s | "
                     f"{r['speedup']:.2f}x "
                     f"({r['others_load_best_2_workers']:.1f} cores) | {r['cost_over_one_seed']:.1f}x |")
    return "\n".join(lines)


# --- 3. memory per member -----------------------------------------------------------------------------------


def private_kib(pid):
    """Memory only process ``pid`` maps (USS: private clean + dirty pages), in KiB; 0 if it has ended."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean", "Private_Dirty")))
    except (OSError, ValueError):
        return 0


def sample_workers(peaks, stop):
    """Until ``stop`` is set, record each child process's peak private memory in ``peaks`` (every 20 ms)."""
    while not stop.wait(0.02):
        for pid in descendants(processes(), os.getpid()):
            peaks[pid] = max(peaks.get(pid, 0), private_kib(pid))


def memory_probe(size, steps=5_000):
    """In a fresh process (ru_maxrss is a high-water mark): a PPO CartPole population of ``size`` on 2 workers."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()  # only while building: in a forked worker it would slow and swell training
    pop = npgrad.PPO("CartPole-v1", seed=range(size))
    built = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    peaks, stop = {}, threading.Event()
    sampler = threading.Thread(target=sample_workers, args=(peaks, stop))
    sampler.start()
    pop.learn(steps, workers=2)
    stop.set()
    sampler.join()
    return {"members": size, "baseline_rss": before * 1024, "built_traced": built,
            "arrays": sum(a.nbytes for m in pop for a in m.state()[0].values()),
            "parent_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "worker_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "worker_peak_private": [kib * 1024 for kib in peaks.values()]}


def memory(sizes):
    rows = []
    for size in sizes:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
            rows.append(fresh.submit(memory_probe, size).result())
        print(f"memory S={size}: parent peak {rows[-1]['parent_peak_rss'] / MIB:.0f} MiB", flush=True)
    return rows


def memory_markdown(rows):
    lines = ["| S | built population (tracemalloc) / per member | its arrays / per member | parent peak RSS "
             "(fresh process: before) | worker peak RSS | worker peak private memory |", "|---|---|---|---|---|---|"]
    for r in rows:
        s = r["members"]
        private = max(r["worker_peak_private"], default=0)
        workers = (f"{r['worker_peak_rss'] / MIB:.0f} MiB | {private / MIB:.1f} MiB" if r["worker_peak_rss"] else
                   "none: one member trains here | -")
        lines.append(f"| {s} | {r['built_traced'] / MIB:.1f} MiB / {r['built_traced'] / s / 1024:.0f} KiB "
                     f"| {r['arrays'] / 1024:.0f} KiB / {r['arrays'] / s / 1024:.0f} KiB "
                     f"| {r['parent_peak_rss'] / MIB:.0f} MiB ({r['baseline_rss'] / MIB:.0f}) | {workers} |")
    return "\n".join(lines)


# --- 4. Ray against the local workers -------------------------------------------------------------------------


def ray_overhead(size, repeats, steps=10_000):
    lrs = [float(lr) for lr in np.geomspace(1e-3, 1e-2, 8)] * (size // 8)  # a sweep: 8 learning rates x size/8 seeds

    def sweep():
        return npgrad.PPO("CartPole-v1", seed=range(size), lr=lrs)

    import ray

    times = {"local": [], "ray.init": [], "first Ray sweep": [], "second Ray sweep": [], "ray.shutdown": []}
    for _ in range(repeats):  # Ray is shut down before the local workers fork: forking a Ray driver is unsafe
        local_pop = sweep()
        times["local"].append(timed_learn(local_pop, steps, workers=2))
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        times["ray.init"].append(time.perf_counter() - start)
        for name in ("first Ray sweep", "second Ray sweep"):  # the first also starts Ray's worker processes
            ray_pop = sweep()
            times[name].append(timed_learn(ray_pop, steps, backend="ray"))
        start = time.perf_counter()
        ray.shutdown()
        times["ray.shutdown"].append(time.perf_counter() - start)
    identical = all(all(np.array_equal(a[k], b[k]) for k in a) for a, b in
                    ((x.state()[0], y.state()[0]) for x, y in zip(local_pop, ray_pop)))
    print(f"ray: {times}", flush=True)
    return {"members": size, "steps": steps, "member_steps": sum(m.num_steps for m in ray_pop), "times": times,
            "identical": identical}


def ray_markdown(r):
    lines = [f"| {r['members']}-member PPO CartPole-v1 sweep (8 learning rates), {r['steps'] // 1000}k steps each "
             "| seconds: best (each repeat) | member-steps/s | busy cores on the machine, all processes |",
             "|---|---|---|---|"]
    for name, runs in r["times"].items():
        walls = [t[0] if isinstance(t, (tuple, list)) else t for t in runs]
        line = f"| {name} | {min(walls):.1f} ({', '.join(f'{w:.1f}' for w in walls)}) "
        if isinstance(runs[0], (tuple, list)):  # a sweep: (wall, CPU, member-steps, others' load)
            wall, cpu, steps, others = min(runs)  # busy cores: this run's and the others' (see timed_learn)
            line += f"| {steps / wall:,.0f} | {cpu / wall + others:.1f} |"
        else:
            line += "| | |"
        lines.append(line)
    return "\n".join(lines) + f"\n\nMembers identical on both backends: {r['identical']}."


def measured_code():
    """Which npgrad was measured: the commit, whether its files had uncommitted changes, and whether a process's
    members train as one stack."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                              cwd=os.path.dirname(npgrad.__file__)).stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "npgrad_changed": bool(git("status", "--porcelain", ".")),
            "stacked": hasattr(npgrad.population, "train_stack")}


def report(results, spec, n, measured):
    """The markdown of ``results``: one table per measurement, in ``MEASURES``' order, with its date and commit."""
    headings = {
        "throughput": f"Aggregate training speed against the number of members S (no evaluation; best of {n}):",
        "threshold": f"Seeds 0-{spec['seeds'] - 1} to 475 sustained: wall-clock to the 100k cap (evaluations every 5k "
                     f"steps on 10 episodes, included; best of {n}):",
        "memory": "Memory of a PPO CartPole-v1 population (5k steps, 2 workers), one fresh process per S:",
        "ray": f"Ray against the local workers (best of {n}):"}
    tables = {"throughput": throughput_markdown, "threshold": threshold_markdown, "memory": memory_markdown,
              "ray": ray_markdown}
    def when(k):
        m = measured[k]
        return (f"Measured {m['date']} on {m['cpu']}, commit {m['commit'][:7]}"
                f"{' with changes' if m['npgrad_changed'] else ''}.")

    return "\n\n".join(f"{headings[k]} {when(k)}\n\n{tables[k](results[k])}" for k in MEASURES if k in results) + (
        "\n\nThe load columns give the cores other processes kept busy during each timing (this 2-core machine "
        "is shared); compare ratios within this run.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="S <= 8, seeds 0-3 to threshold, a 16-member Ray sweep")
    p.add_argument("--sizes", default=None, help="comma-separated S for measurements 1 and 3 (default: 1,2,...,64)")
    p.add_argument("--repeats", type=int, default=2, help="timings of each configuration (the best is reported)")
    p.add_argument("--only", default=None, help=f"comma-separated measurements to run again (of {', '.join(MEASURES)}); "
                                                 "the others are kept from the results file")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    spec, n = dict(MODES[mode]), args.repeats
    if args.sizes:
        spec["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    out = os.path.join(os.path.dirname(__file__), "results", f"population{'-quick' if args.quick else ''}.json")
    runs = {"memory": lambda: memory(spec["sizes"]), "ray": lambda: ray_overhead(spec["sweep"], n),  # cheap ones first
            "threshold": lambda: to_threshold(["ppo", "trpo"], spec["seeds"], n),
            "throughput": lambda: throughput(spec["sizes"], n)}
    only = args.only.split(",") if args.only else list(runs)
    unknown = sorted(set(only) - set(runs))
    if unknown:
        p.error(f"--only: no measurement {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    results, measured = kept_measurements(out, only)
    code = measured_code()  # read before measuring: other people may change the files meanwhile
    for name in (name for name in runs if name in only):
        results[name] = runs[name]()
        measured[name] = {"date": machine_info()["date"], "cpu": machine_info()["cpu"], **code}
        # written after every measurement, so a long run that is stopped keeps what it measured
        write_results(out, {"machine": machine_info(), "measured": measured, "mode": mode, "args": vars(args),
                            **results}, report(results, spec, n, measured))
    print(report(results, spec, n, measured))


def kept_measurements(path, only):
    """``(results, measured)`` of the measurements in ``path`` not in ``only``: what a run of ``only`` keeps."""
    stored = read_results(path)
    if not stored:
        return {}, {}
    kept = [name for name in MEASURES if name in stored and name not in only]
    when = stored.get("measured") or {name: {"date": stored["machine"]["date"], **stored["code"]} for name in kept}
    # files from before each measurement named its CPU: every measurement in them ran on the file's machine
    return {name: stored[name] for name in kept}, {name: {"cpu": stored["machine"]["cpu"], **when[name]}
                                                    for name in kept}


if __name__ == "__main__":
    main()
