"""Regenerate the explanatory figures in docs/figures/ (needs matplotlib):  python docs/figures.py

- clip_objective.png   PPO's clipped objective against the ratio r (docs/07-ppo-and-a2c.md)
- cg_convergence.png   CG's relative residual on a real policy's Fisher (docs/05-trpo.md)

The learning curves and performance profiles are drawn by benchmarks/figures.py.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import npgrad
from npgrad.objectives import surrogate
from npgrad.solvers import conjugate_gradient
from npgrad.train import estimate

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "figures")


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
