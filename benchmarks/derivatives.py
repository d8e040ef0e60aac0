"""Derivative costs: one gradient (forward + VJP), one JVP, one Fisher-vector product, one CG solve.

    python benchmarks/derivatives.py --quick    # batch 1k-10k, widths 32-128, ~20 s
    python benchmarks/derivatives.py            # batch 1k-100k, widths 32-512, a few minutes

A CartPole-shaped categorical policy (4 inputs, 2 actions) with two hidden layers of each width,
single-threaded BLAS. Times are the best of several repeats; memory is the tracemalloc peak of one
call (NumPy reports its buffers to tracemalloc), measured in a separate call. "FVP" includes its
own forward pass, as "gradient" does, so ``FVP / gradient`` compares like with like; TRPO shares one
forward between all the products of a CG solve, which the "CG (10 iterations)" column includes.
The grid runs the networks in float64 (``--dtype float32`` for training's precision). Last, one
whole TRPO update on a 100k-transition batch with 64x64 networks in each dtype: time and peak memory.

Writes ``benchmarks/results/derivatives[-quick].json`` and a markdown table next to it.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from npgrad import TRPO  # noqa: E402
from npgrad.objectives import surrogate  # noqa: E402
from npgrad.policy import Policy  # noqa: E402
from npgrad.rollout import Batch  # noqa: E402
from npgrad.solvers import conjugate_gradient  # noqa: E402

from common import best_time, machine_info, write_results  # noqa: E402

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (4,))
ACT_SPACE = gym.spaces.Discrete(2)


def peak_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def derivative_calls(batch, width, rng, dtype):
    """The four operations, as closures over one policy and one batch."""
    policy = Policy(OBS_SPACE, ACT_SPACE, (width, width), rng=rng, dtype=dtype)
    obs_no = rng.standard_normal((batch, 4))
    old = policy.distribution(obs_no)
    act, adv_n = old.sample(rng), rng.standard_normal(batch)
    logp_n, v_p = old.log_prob(act), rng.standard_normal(policy.num_params)

    def gradient():
        return policy.objective_grad(obs_no, surrogate, act, adv_n, logp_n)

    def jvp():
        return policy.jvp(policy.forward(obs_no), v_p)

    def fvp():
        return policy.fisher_vector_product(obs_no, v_p)

    def cg():
        return conjugate_gradient(policy.fvp_operator(obs_no, damping=0.1), v_p, iters=10, residual_tol=0.0)

    return {"gradient": gradient, "jvp": jvp, "fvp": fvp, "cg10": cg}, policy.num_params


def trpo_update_cost(batch, rng, dtype):
    """Seconds and peak bytes of one TRPO update (policy step + value fit) on a synthetic batch."""
    # the config describes the synthetic batch (1 x batch); one value epoch of large minibatches, so the
    # policy step dominates; F on every row (CartPole's default takes every 5th), the memory target's worst case
    agent = TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=batch, vf_minibatch_size=4096, vf_epochs=1, dtype=dtype,
                 fvp_subsample=1)
    obs_no = rng.standard_normal((batch, 4))
    old = agent.policy.distribution(obs_no)
    act = old.sample(rng)
    data = Batch(obs_no, act, old.log_prob(act), agent.value_fn(obs_no), rng.standard_normal(batch),
                 rng.standard_normal(batch), batch)
    update = lambda: agent.rule.update(agent.model, data, rng, 1.0)  # noqa: E731
    peak = peak_bytes(update)
    start = time.perf_counter()
    update()
    return time.perf_counter() - start, peak


def table(rows, trpo):
    lines = ["| batch | width | params | gradient ms | JVP ms | FVP ms | CG(10) ms | FVP / gradient | peak MB: "
             "gradient / FVP / CG |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']:,} | {r['width']} | {r['params']:,} | {1e3 * r['gradient_s']:.2f} | "
                     f"{1e3 * r['jvp_s']:.2f} | {1e3 * r['fvp_s']:.2f} | {1e3 * r['cg10_s']:.1f} | "
                     f"{r['fvp_s'] / r['gradient_s']:.2f} | {r['gradient_mb']:.1f} / {r['fvp_mb']:.1f} / "
                     f"{r['cg10_mb']:.1f} |")
    lines.append("")
    lines.append("| TRPO update, 64x64 networks | network dtype | seconds | peak MB |")
    lines.append("|---|---|---|---|")
    for t in trpo:
        lines.append(f"| batch {t['batch']:,} | {t['dtype']} | {t['seconds']:.2f} | {t['peak_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                   help="network dtype of the derivative grid (the TRPO update is measured in both)")
    args = p.parse_args(argv)
    batches = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    widths = (32, 64, 128) if args.quick else (32, 64, 128, 256, 512)
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        for width in widths:
            calls, params = derivative_calls(batch, width, rng, args.dtype)
            row = {"batch": batch, "width": width, "params": params}
            for name, fn in calls.items():
                row[f"{name}_s"] = best_time(fn)
                row[f"{name}_mb"] = peak_bytes(fn) / 2**20
            rows.append(row)
            print(f"batch {batch:>7,} width {width:>3}: gradient {1e3 * row['gradient_s']:8.2f} ms, FVP/gradient "
                  f"{row['fvp_s'] / row['gradient_s']:.2f}, CG10 {1e3 * row['cg10_s']:9.1f} ms, "
                  f"peak {row['cg10_mb']:.1f} MB", flush=True)
    trpo = []
    for batch in ((10_000,) if args.quick else (10_000, 100_000)):
        for dtype in ("float64", "float32"):
            seconds, peak = trpo_update_cost(batch, rng, dtype)
            trpo.append({"batch": batch, "dtype": dtype, "seconds": seconds, "peak_mb": peak / 2**20})
    text = table(rows, trpo)
    print(text)
    # results/derivatives.json is the float64 grid the READMEs show; other runs get their own file
    name = "derivatives" + ("-quick" if args.quick else "") + ("-float32" if args.dtype == "float32" else "")
    out = args.out or os.path.join(os.path.dirname(__file__), "results", name + ".json")
    write_results(out, {"machine": machine_info(), "rows": rows, "trpo_update": trpo}, text)
    return rows, trpo


if __name__ == "__main__":
    main()
