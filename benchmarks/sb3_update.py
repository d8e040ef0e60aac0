"""One PPO and one TRPO update, npgrad's against SB3's, on the same batch from the same parameters.

    pip install -e ".[mujoco]" torch stable-baselines3==2.9.2 sb3-contrib==2.9.2   # never needed by npgrad
    python benchmarks/sb3_update.py

npgrad trains PPO on Swimmer-v5 with the RL-Zoo's settings for it (``npgrad/tuned.py``), and TRPO with its
entry and sb3-contrib's defaults in npgrad's units (``TRPO_AS_SB3``), on 4 x 512 transitions per update, so
that a batch can hold no episode end: npgrad keeps the step that resets an environment as a row of weight 0 and
SB3 has no such row, and only a batch without one gives both libraries the same rows. At three points of each
run (before any update, after 4 and after 8) it collects a batch, and both libraries update from the same
parameters and Adam moments (npgrad's copied into SB3's, float64 in both) on those rows in npgrad's minibatch
order, once with each setting below. SB3's rollout buffer hands each minibatch's actions over in float32, so
the batch's actions are rounded to float32 first, and their log-probabilities taken again at the rounded actions.

- PPO, ``no clip, SB3's std``: neither clips the gradient norm, and npgrad standardises each minibatch's
  advantages with SB3's unbiased standard deviation. The same computation: they differ by rounding.
- PPO, ``no clip``: npgrad standardises with the biased standard deviation (``npgrad.algos.common.standardize``),
  sqrt(256 / 255) larger advantages than SB3's, which Adam's step divides out only up to its ``eps``: the two
  updates differ by more than rounding.
- PPO, ``each as it trains``: SB3 clips one norm over the policy's and the value's gradients of ``policy loss +
  vf_coef * value loss`` (``vf_coef`` 0.5), npgrad each network's own, both at 0.5.
- TRPO, ``npgrad's CG, SB3's std``: sb3-contrib's conjugate gradient starts from x = 0 and stops at |r| <= 1e-10,
  as npgrad's. The same computation, but 15 CG iterations amplify rounding: after 4 updates, npgrad's own
  solution moves by 1e-6 of itself when g moves by 1e-15.
- TRPO, ``each as it trains``: sb3-contrib's CG starts from 1e-4 times a standard normal draw and stops at
  |r|^2 < 1e-10, so it stops once |r| < 1e-5, which can be before its 15 iterations.

Reported: each updated network's distance from the other library's, relative to npgrad's step, and the
KL of each library's step (mean over the batch). Results: ``results/sb3-update.json`` and ``.md``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import contextlib  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import sb3_contrib  # noqa: E402
import sb3_contrib.trpo.trpo as sb3_trpo  # noqa: E402
import stable_baselines3  # noqa: E402
import stable_baselines3.common.policies as sb3_policies  # noqa: E402
import torch as th  # noqa: E402
from sb3_contrib import TRPO  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

import npgrad  # noqa: E402
import npgrad.algos.common  # noqa: E402
from npgrad.train import estimate  # noqa: E402

from common import machine_info, write_results  # noqa: E402

ENV, T, E, SEED = "Swimmer-v5", 512, 4, 0
POINTS = (0, 4, 8)  # updates before the compared one; their batches hold no episode end (episodes are 1,000 steps)
A = gym.make(ENV).action_space.shape[0]  # Swimmer's 2 action dimensions
SETTINGS = {  # algorithm: {setting: what differs from both libraries as they train}
    "ppo": {"no clip, SB3's std": dict(sb3_std=True, clip=np.inf, vf_coef=1.0),
            "no clip": dict(clip=np.inf, vf_coef=1.0), "each as it trains": {}},
    "trpo": {"npgrad's CG, SB3's std": dict(npgrads_cg=True, sb3_std=True), "each as it trains": {}},
}
TRPO_AS_SB3 = dict(max_kl=A * 0.01, cg_damping=A * 0.1, cg_iters=15, accept_ratio=0.0)
"""sb3-contrib's TRPO defaults in npgrad's units (``npgrad.TRPOConfig``): its target_kl 0.01 and damping 0.1 act
on the KL averaged over the action dimensions, its 15 CG iterations, its line search accepting any improvement."""
HERE = os.path.dirname(os.path.abspath(__file__))


class Recorder:
    """A generator that hands out npgrad's permutations and keeps them, for SB3 to take the same minibatches."""

    def __init__(self, seed):
        self.rng, self.perms = np.random.default_rng(seed), []

    def permutation(self, n):
        self.perms.append(self.rng.permutation(n))
        return self.perms[-1]


def unbiased_standardize(x_n, u_n=None, eps=1e-8):
    """SB3's ``(A - mean) / (std + 1e-8)`` with torch's unbiased std (every row a transition here)."""
    d_n = x_n - x_n.mean()
    return d_n / (np.sqrt((d_n * d_n).sum() / (len(d_n) - 1)) + eps)


@contextlib.contextmanager
def replaced(owner, name, value):
    """``owner.name`` is ``value`` inside the block."""
    kept = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, kept)


def npgrad_update(agent, batch, sb3_std, clip=None):
    """npgrad's update of ``agent`` on ``batch`` (its optimisers' gradient clip ``clip``, if given): the updated
    parameters and the minibatch orders. The agent is left as it was."""
    kept = copy.deepcopy((agent.model.state(), agent.rule.state()))
    recorder = Recorder(SEED)
    with contextlib.ExitStack() as stack:
        for optim in agent.rule.optims.values() if clip is not None else ():
            stack.enter_context(replaced(optim, "max_grad_norm", clip))
        if sb3_std:
            stack.enter_context(replaced(npgrad.algos.common, "standardize", unbiased_standardize))
        agent.rule.update(agent.model, batch, recorder, 1.0)
    updated = agent.model.policy.theta.copy(), agent.model.value.theta.copy(), recorder.perms
    agent.model.load_state(kept[0])
    agent.rule.load_state(kept[1])
    return updated


def sb3_linears(policy, of_pi):
    """SB3's linear layers of the policy (``of_pi``) or of the value network, input first."""
    trunk = policy.mlp_extractor.policy_net if of_pi else policy.mlp_extractor.value_net
    return [trunk[0], trunk[2], policy.action_net if of_pi else policy.value_net]


def per_tensor(flat_p, sizes):
    """An npgrad MLP's flat vector (``W`` as ``(in, out)``, then ``b``, per layer) as torch's tensors, layer by layer
    (``weight`` as ``(out, in)``, then ``bias``), and the rest of the vector (the policy's ``log_std``)."""
    tensors, offset = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W_io = flat_p[offset:offset + n_in * n_out].reshape(n_in, n_out)
        tensors += [th.tensor(W_io.T.copy()), th.tensor(flat_p[offset + n_in * n_out:offset + n_in * n_out + n_out])]
        offset += n_in * n_out + n_out
    return tensors + ([th.tensor(flat_p[offset:])] if offset < len(flat_p) else [])


def take(linears):
    """The torch layers' parameters as an npgrad MLP's flat vector."""
    return np.concatenate([np.concatenate([lin.weight.data.numpy().T.ravel(), lin.bias.data.numpy()])
                           for lin in linears])


def sb3_model(algo, agent, clip, vf_coef):
    """SB3's PPO or sb3-contrib's TRPO with ``agent``'s settings, its networks holding ``agent``'s parameters and its
    Adam ``agent``'s moments (for a value loss weighted by ``vf_coef``), in float64."""
    cfg, venv = agent.config, DummyVecEnv([lambda: gym.make(ENV)] * E)
    shared = dict(n_steps=T, gamma=cfg.gamma, gae_lambda=cfg.lam, policy_kwargs=dict(log_std_init=cfg.log_std_init),
                  seed=SEED, device="cpu")
    if algo == "ppo":
        model = PPO("MlpPolicy", venv, batch_size=cfg.minibatch_size, learning_rate=cfg.lr, n_epochs=cfg.n_epochs,
                    clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, vf_coef=vf_coef, max_grad_norm=clip, **shared)
    else:
        model = TRPO("MlpPolicy", venv, batch_size=cfg.vf_minibatch_size, learning_rate=cfg.vf_lr,
                     n_critic_updates=cfg.vf_epochs, cg_max_steps=cfg.cg_iters, cg_damping=cfg.cg_damping / A,
                     target_kl=cfg.max_kl / A, line_search_shrinking_factor=cfg.backtrack_shrink,
                     line_search_max_iter=cfg.max_backtracks, **shared)
    model.set_logger(configure(None, []))
    policy = model.policy.double()
    for of_pi, net, weight in [(True, agent.model.policy, 1.0), (False, agent.model.value, vf_coef)]:
        params = [p for linear in sb3_linears(policy, of_pi) for p in (linear.weight, linear.bias)]
        params += [policy.log_std] if of_pi else []
        for param, theta in zip(params, per_tensor(net.theta, net.net.sizes)):
            param.data = theta
        optim = agent.rule.optims.get("pi_optim" if of_pi else "vf_optim")
        if optim is not None and optim.t > 0:  # Adam's moments as npgrad's, for a loss weighted by ``weight``
            m_p, v_p = optim.m_p * weight, optim.v_p * weight**2
            for param, m, v in zip(params, per_tensor(m_p, net.net.sizes), per_tensor(v_p, net.net.sizes)):
                policy.optimizer.state[param] = {"step": th.tensor(float(optim.t)), "exp_avg": m, "exp_avg_sq": v}
    return model


def sb3_update(algo, agent, batch, perms, clip, vf_coef, npgrads_cg=False):
    """SB3's update from ``agent``'s parameters on ``batch``'s rows in the minibatch orders ``perms``: the updated
    policy and value parameters, and how far SB3's old log-probabilities are from npgrad's. ``npgrads_cg``: TRPO's
    conjugate gradient starts from x = 0 and stops early at |r| <= 1e-10, as npgrad's, instead of starting from
    1e-4 times a standard normal draw and stopping at |r|^2 < 1e-10."""
    model = sb3_model(algo, agent, clip, vf_coef)
    policy, buffer = model.policy, model.rollout_buffer
    buffer.reset()
    for name, x in [("observations", batch.obs_no), ("actions", batch.act), ("values", batch.val_n),
                    ("log_probs", batch.logp_n), ("advantages", batch.adv_n), ("returns", batch.ret_n)]:
        setattr(buffer, name, np.array(x, dtype=np.float64).reshape(T, E, *np.shape(x)[1:]))  # npgrad: t * E + e
    buffer.full, buffer.pos = True, T
    if algo == "trpo":  # its policy step draws an order of the whole batch first: the rows as npgrad has them
        perms = [np.arange(T * E)] + perms
    orders = [e * T + t for t, e in (np.divmod(perm, E) for perm in perms)]  # SB3 flattens env-major: e * T + t
    cg = functools.partial(sb3_trpo.conjugate_gradient_solver, residual_tol=1e-20 if npgrads_cg else 1e-10)
    # float64 observations (SB3 casts them to float32), npgrad's minibatch orders and, if asked, npgrad's CG
    with replaced(sb3_policies, "preprocess_obs", lambda obs, space, normalize_images=True: obs), \
            replaced(np.random, "permutation", lambda n: orders.pop(0)), \
            replaced(sb3_trpo, "conjugate_gradient_solver", cg), \
            replaced(th, "randn_like", th.zeros_like if npgrads_cg else th.randn_like):
        with th.no_grad():
            _, logp, _ = policy.evaluate_actions(th.tensor(batch.obs_no), th.tensor(batch.act))
        model.train()
    assert not orders, "SB3 took fewer minibatch orders than npgrad drew"
    theta_pi = np.concatenate([take(sb3_linears(policy, True)), policy.log_std.data.numpy()])
    return theta_pi, take(sb3_linears(policy, False)), float(np.max(np.abs(logp.numpy() - batch.logp_n)))


def step_kl(policy, obs_no, theta_from, theta_to):
    """Mean over the batch of KL(pi_from || pi_to)."""
    return float(np.mean(policy.distribution(obs_no, theta_from).kl(policy.distribution(obs_no, theta_to))))


def apart(theta_a, theta_b, start):
    """How far apart two updates from ``start`` end, relative to the first one's step."""
    return float(np.linalg.norm(theta_a - theta_b) / np.linalg.norm(theta_a - start))


def compare(algo, point):
    """Every setting of ``algo`` at ``point`` updates into the run: one row each."""
    if algo == "ppo":
        agent = npgrad.PPO(ENV, seed=SEED, n_steps=T, dtype="float64")
    else:
        agent = npgrad.TRPO(ENV, seed=SEED, n_envs=E, n_steps=T, dtype="float64", **TRPO_AS_SB3)
    if point:
        agent.learn(point * T * E)
    cfg = agent.config
    batch = estimate(agent.rollout.collect(agent.model.policy, agent.rng), agent.model.value, cfg.gamma, cfg.lam)
    assert batch.valid_n.all(), f"the batch after {point} updates holds an episode end"
    act = batch.act.astype(np.float32).astype(np.float64)  # SB3's minibatches carry their actions in float32
    batch = dataclasses.replace(batch, act=act, logp_n=agent.model.policy.distribution(batch.obs_no).log_prob(act))
    pi0, v0 = agent.model.policy.theta.copy(), agent.model.value.theta.copy()
    rows = []
    for setting, changes in SETTINGS[algo].items():
        clip = changes.get("clip", getattr(cfg, "max_grad_norm", None))
        pi_np, v_np, perms = npgrad_update(agent, batch, changes.get("sb3_std", False), clip)
        pi_sb3, v_sb3, logp_diff = sb3_update(algo, agent, batch, perms, clip,
                                              changes.get("vf_coef", getattr(cfg, "vf_coef", 1.0)),
                                              changes.get("npgrads_cg", False))
        kl = lambda theta: step_kl(agent.model.policy, batch.obs_no, pi0, theta)  # noqa: E731
        rows.append(dict(algo=algo, point=point, setting=setting, policy_rel=apart(pi_np, pi_sb3, pi0),
                         value_rel=apart(v_np, v_sb3, v0), kl_npgrad=kl(pi_np), kl_sb3=kl(pi_sb3),
                         logp_max_diff=logp_diff))
        print(rows[-1])
    return rows


def table(rows):
    as_sb3 = ", ".join(f"{name}={value:g}" for name, value in TRPO_AS_SB3.items())
    lines = ["| algorithm | updates before | setting | policy: distance / npgrad's step "
             "| value: distance / npgrad's step | KL of the step, npgrad / SB3 |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['algo'].upper()} | {r['point']} | {r['setting']} | {r['policy_rel']:.1e} | {r['value_rel']:.1e} "
              f"| {r['kl_npgrad']:.4f} / {r['kl_sb3']:.4f} |" for r in rows]
    note = (f"\n{ENV}, seed {SEED}, {E} x {T} transitions per update, float64; SB3 {stable_baselines3.__version__} on "
            f"torch {th.__version__}. Old log-probabilities at the same parameters agree to "
            f"{max(r['logp_max_diff'] for r in rows):.1e}. Without a clip SB3's value loss is weighted 1, the gradient "
            "of npgrad's mean((V - R)^2); with its own clip SB3's vf_coef is 0.5, as it trains. TRPO: npgrad's "
            f"Swimmer-v5 entry with sb3-contrib's defaults in npgrad's units ({as_sb3}), against sb3-contrib "
            f"{sb3_contrib.__version__} with its defaults.")
    return "\n".join(lines) + "\n" + note


def main():
    th.set_default_dtype(th.float64)
    rows = [row for algo in SETTINGS for point in POINTS for row in compare(algo, point)]
    write_results(os.path.join(HERE, "results", "sb3-update.json"), {"machine": machine_info(), "rows": rows},
                  table(rows))


if __name__ == "__main__":
    main()
