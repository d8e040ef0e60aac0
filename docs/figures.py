"""Regenerate the explanatory figures in docs/figures/ (needs matplotlib):  python docs/figures.py

- clip_objective.png   PPO's clipped objective against the ratio r (docs/07-ppo-and-a2c.md)
- cg_convergence.png   CG's relative residual on a real policy's Fisher (docs/05-trpo.md), and the
                       numbers docs/05 quotes for that figure and for fvp_subsample

The learning curves and performance profiles are drawn by benchmarks/figures.py.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import npgrad
from npgrad.algos.common import advantages
from npgrad.objectives import row_weights, surrogate
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


def trpo_batch():
    """A CartPole policy after 4k steps of TRPO, its next batch, and that update's ``g`` and ``F`` as
    ``TRPOUpdate`` forms them: ``fisher(damping, k)`` is ``F + damping I`` on every ``k``-th row, reset rows
    weighing 0. float64: float32 would floor CG's residual near 1e-6."""
    agent = npgrad.TRPO("CartPole-v1", seed=0, dtype="float64")
    agent.learn(4096)
    cfg, policy = agent.config, agent.policy
    batch = estimate(agent.rollout.collect(policy, agent.rng), agent.value_fn, cfg.gamma, cfg.lam)
    adv_n = advantages(batch, cfg.normalize_advantages)
    _, g_p = policy.objective_grad(batch.obs_no, surrogate, batch.act, adv_n, batch.logp_n, batch.u_n)

    def fisher(damping, k=1):
        return policy.fvp_operator(batch.obs_no[::k], damping, u_n=row_weights(batch.valid_n[::k]))
    return agent, batch, g_p, fisher


def cg_convergence(agent, g_p, fisher, iters=40):
    fig, ax = plt.subplots(figsize=(6, 4))
    for damping in (0.1, 0.01, 0.001, 0.0):
        fvp = fisher(damping)
        x_kp = [conjugate_gradient(fvp, g_p, k, residual_tol=0.0)[0] for k in range(iters + 1)]
        residuals = [np.linalg.norm(fvp(x_p) - g_p) for x_p in x_kp]  # the true residual, not CG's recursion
        print(f"damping {damping}: ten iterations reduce the residual {residuals[0] / residuals[10]:.3g}-fold")
        ax.semilogy(range(iters + 1), np.array(residuals) / residuals[0], marker=".", label=f"damping {damping}")
    ax.axvline(10, color="grey", ls="--", lw=1, label="TRPO's 10 iterations")
    ax.set(xlabel="CG iteration", ylabel="||(F + damping I) x - g|| / ||g||",
           title=f"CG on the Fisher of a CartPole policy ({agent.policy.num_params:,} parameters)")
    ax.legend()
    return save(fig, "cg_convergence.png")


def subsample_angles(batch, g_p, fisher, cg_iters=10):
    """The numbers docs/05 quotes for ``fvp_subsample``: the cosine between TRPO's step direction ``x ~= F^-1 g``
    (its KKT step is a multiple of ``x``) with ``F`` on every ``k``-th row and with ``F`` on all of them."""
    def cosine(a_p, b_p):
        cos = a_p @ b_p / np.linalg.norm(a_p) / np.linalg.norm(b_p)
        return f"{cos:.4f} ({np.degrees(np.arccos(min(cos, 1.0))):.1f} degrees)"
    print(f"valid rows: {int(batch.valid_n.sum())} of {batch.valid_n.size}")
    for damping in (0.1, 0.001):
        full_p = conjugate_gradient(fisher(damping), g_p, cg_iters)[0]
        print(f"damping {damping}: cosine(full step, g) = {cosine(full_p, g_p)}")
        for k in (5, 20):
            x_p = conjugate_gradient(fisher(damping, k), g_p, cg_iters)[0]
            print(f"  every {k}th row ({int(batch.valid_n[::k].sum())} valid): cosine to the full step "
                  f"{cosine(x_p, full_p)}")


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
    agent, batch, g_p, fisher = trpo_batch()
    cg_convergence(agent, g_p, fisher)
    subsample_angles(batch, g_p, fisher)
