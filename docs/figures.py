"""Regenerate every figure in docs/figures/ (needs matplotlib):  python docs/figures.py

- learning_curves.png  from the last full learning benchmark (benchmarks/results/learning.json)
- clip_objective.png   PPO's clipped objective against the ratio r (docs/07-ppo-and-a2c.md)
- cg_convergence.png   CG's relative residual on a real policy's Fisher (docs/05-trpo.md)
"""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad.objectives import surrogate  # noqa: E402
from npgrad.solvers import conjugate_gradient  # noqa: E402
from npgrad.train import estimate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "figures")
LEARNING = os.path.join(HERE, "..", "benchmarks", "results", "learning.json")
THRESHOLDS = {"CartPole-v1": 475, "Pendulum-v1": -200}


def learning_curves(path=LEARNING):
    with open(path) as f:
        runs = json.load(f)["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, env_id in zip(axes, THRESHOLDS):
        groups = {}
        for run in runs:  # the side-by-side run also holds SB3's rows: dashed lines, labelled "SB3 ..."
            if run["env"] == env_id:
                groups.setdefault((run.get("library", "npgrad"), run["algo"]), []).append(np.array(run["history"]))
        for (library, algo), histories in groups.items():
            n = min(len(h) for h in histories)
            steps, returns_sn = histories[0][:n, 0], np.array([h[:n, 2] for h in histories])
            name = algo.upper() if library == "npgrad" else f"SB3 {algo.upper()}"
            line, = ax.plot(steps, returns_sn.mean(axis=0), ls="-" if library == "npgrad" else "--",
                            label=f"{name} ({len(histories)} seeds)")
            ax.fill_between(steps, returns_sn.min(axis=0), returns_sn.max(axis=0), color=line.get_color(), alpha=0.15)
        ax.axhline(THRESHOLDS[env_id], color="grey", ls="--", lw=1)
        ax.set(xscale="log", xlabel="environment steps (log scale)", ylabel="deterministic evaluation return",
               title=f"{env_id}: mean and min-max over seeds")
        ax.legend(fontsize=8)
    return save(fig, "learning_curves.png")


def clip_objective(eps=0.2):
    r = np.linspace(0.0, 2.0, 401)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=False)
    for ax, adv in zip(axes, (1.0, -1.0)):
        ax.plot(r, r * adv, color="grey", ls=":", label="r A (unclipped)")
        ax.plot(r, np.minimum(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv), lw=2, label="min(r A, clip(r) A)")
        ax.axvline(1.0, color="k", lw=0.5)
        for edge in (1 - eps, 1 + eps):
            ax.axvline(edge, color="C3", lw=0.8, ls="--")
        ax.set(xlabel="ratio r = pi / pi_old", title=f"A {'> 0' if adv > 0 else '< 0'} (epsilon = {eps})")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("per-sample objective")
    return save(fig, "clip_objective.png")


def cg_convergence(iters=40):
    # float32 would floor the residual near 1e-6; the whole batch in F, as the text counts it
    agent = npgrad.TRPO("CartPole-v1", seed=0, dtype="float64", fvp_subsample=1)
    agent.learn(4096)
    batch = estimate(agent.rollout.collect(agent.policy, agent.rng), agent.value_fn, 0.99, 0.98)
    _, g_p = agent.policy.objective_grad(batch.obs_no, surrogate, batch.act, batch.adv_n, batch.logp_n)
    fig, ax = plt.subplots(figsize=(6, 4))
    for damping in (0.1, 0.01, 0.001, 0.0):
        fvp = agent.policy.fvp_operator(batch.obs_no, damping)
        x_kp = [conjugate_gradient(fvp, g_p, k, residual_tol=0.0)[0] for k in range(iters + 1)]
        residuals = [np.linalg.norm(fvp(x_p) - g_p) for x_p in x_kp]  # the true residual, not CG's recursion
        ax.semilogy(range(iters + 1), np.array(residuals) / residuals[0], marker=".", label=f"damping {damping}")
    ax.axvline(10, color="grey", ls="--", lw=1, label="TRPO's 10 iterations")
    ax.set(xlabel="CG iteration", ylabel="||(F + damping I) x - g|| / ||g||",
           title=f"CG on the Fisher of a CartPole policy ({agent.policy.num_params:,} parameters)")
    ax.legend()
    return save(fig, "cg_convergence.png")


def save(fig, name):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    clip_objective()
    cg_convergence()
    learning_curves()
