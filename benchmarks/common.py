"""What every benchmark script shares: the machine it records, where results go, the ceiling's timer."""
from __future__ import annotations

import json
import os
import platform
import time

import gymnasium
import numpy as np
import scipy

import npgrad
from npgrad import stats


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def machine_info():
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "gymnasium": gymnasium.__version__, "npgrad": npgrad.__version__,
            "threads": os.environ.get("OMP_NUM_THREADS")}


def machines_note(rows, label):
    """A sentence naming the rows measured on another CPU than most (``label(row)`` names a row), or "" when
    every row ran on one: seconds compare across rows only on one kind of machine."""
    cpu_r = [r["machine"]["cpu"] for r in rows]
    most = max(sorted(set(cpu_r)), key=cpu_r.count)
    return "".join(f" Rows measured on {cpu}: " + ", ".join(label(r) for r, c in zip(rows, cpu_r) if c == cpu)
                   + f"; the others on {most}." for cpu in sorted(set(cpu_r) - {most})).strip()


def seeds_label(seeds):
    """Seeds as ``--seeds`` takes them: ``[0, 1, 2, 3, 4]`` -> ``"0-4"``, ``[1, 3]`` -> ``"1,3"``, ``[4]`` -> ``"4"``."""
    runs = []
    for seed in seeds:
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in runs)


def row_label(r):
    """A results row's name in prose: "HalfCheetah-v5 PPO (1000-1004, log_std_init=-1.0)" (an SB3 comparison's
    row has no overrides)."""
    overrides = "".join(f", {name}={value}" for name, value in r.get("overrides", {}).items())
    return f"{r['env']} {r['algo'].upper()} ({seeds_label(r['seeds'])}{overrides})"


def read_results(path):
    """What ``write_results`` wrote at ``path``, or ``{}`` before the first write; read afresh each time, as runs
    in other processes may have written since."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_results(path, payload, table):
    """Write ``payload`` as JSON and ``table`` as markdown (same name, ``.md``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=float)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        m = payload["machine"]
        f.write(f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, {m['threads']} BLAS thread), "
                f"Python {m['python']}, NumPy {m['numpy']}, gymnasium {m['gymnasium']}, npgrad {m['npgrad']}.\n\n")
        f.write(table + "\n")
    print(f"wrote {path}")


def best_time(fn, min_seconds=0.2, max_repeats=20):
    """Best wall-clock seconds of ``fn()`` over repeats (at least 2, until ``min_seconds`` is spent)."""
    times = []
    while len(times) < 2 or (sum(times) < min_seconds and len(times) < max_repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def random_action_speed(step, action_space, n_envs, steps=50_000, seed=0, repeats=5):
    """Environment steps per second of ``step(actions)`` on a vector of ``n_envs`` environments driven by
    uniformly random actions, drawn by one NumPy call per vector step for every library: the best of
    ``repeats`` runs of ``steps`` steps (16 CartPoles read 160k-340k steps/s from one process to the
    next on this 2-core VM, so one ceiling is good to about a factor of 2)."""
    rng = np.random.default_rng(seed)
    sample = ((lambda: rng.integers(action_space.n, size=n_envs)) if hasattr(action_space, "n")
              else (lambda: rng.uniform(action_space.low, action_space.high, size=(n_envs, *action_space.shape))))
    vector_steps = max(steps // n_envs, 1)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(vector_steps):
            step(sample())
        best = max(best, vector_steps * n_envs / (time.perf_counter() - start))
    return best


def vector_env_speed(envs, seed=0):
    """``(steps/s, "Class xN")`` of a gymnasium vector env under random actions (``random_action_speed``);
    closes it."""
    envs.reset(seed=seed)
    speed = random_action_speed(envs.step, envs.single_action_space, envs.num_envs, seed=seed)
    envs.close()
    return speed, f"{type(envs).__name__} x{envs.num_envs}"


def never(value):
    """Whether a steps or seconds value means "never": ``inf``, or None once ``finite`` has written it to JSON."""
    return value is None or np.isinf(value)


def kilo_steps(value):
    """``"12k"`` for 12,345 steps, or "never"."""
    return "never" if never(value) else f"{value / 1000:.0f}k"


def with_interval(summary, fmt=lambda v: f"{v:.0f}"):
    """``"IQM [low, high]"`` of an ``iqm_summary``, each number written by ``fmt``."""
    return f"{fmt(summary['iqm'])} [{fmt(summary['low'])}, {fmt(summary['high'])}]"


def iqm_summary(values, statistic=stats.iqm_to_threshold):
    """``{iqm, low, high, median}`` of one quantity over seeds: ``statistic`` (the IQM of steps or seconds to a
    threshold, ``inf`` being never, unless told), its 95% bootstrap interval and the median."""
    low, high = stats.interval(values, statistic)
    return {"iqm": float(statistic(values)), "low": float(low), "high": float(high),
            "median": float(stats.median(values))}


def finite(value):
    """``value`` with every infinity ("never") as None: plain JSON has no infinity."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and np.isinf(value) else value
