"""How fast can pure NumPy be? The least PPO on CartPole can cost per environment step, and the fraction
of the environment's own speed that leaves (the former target: training at 30% or more of the raw speed).

    python benchmarks/floor.py      # a few seconds

Three costs per environment step, single-threaded, each the best of several timed runs, on PPO's CartPole
default (16 NumPy-vectorised CartPoles x 16 steps per update; 5 epochs of 4 minibatches of 64 rows):

    env       the 16 CartPoles alone, random actions: the denominator of the fraction;
    rollout   the same steps with the policy in the loop (one forward on 16 rows, a sample, its log-prob,
              stored), then one value forward on the whole batch and GAE;
    learning  one update: per minibatch, the clipped-surrogate gradient of the policy and the squared-error
              gradient of the value function by backprop, each clipped to norm 0.5, and two Adam steps.

The **floor** does this with the fewest NumPy calls we found: parameters, gradients and Adam moments in float32
(npgrad keeps them in float64 and casts the weights for each forward), weights and gradient blocks as views made
once, backprop writing in place, nothing but the arithmetic. It computes what npgrad computes: before
anything is timed, its two gradients and one Adam step are checked against npgrad's (float64, the same
parameters and minibatch). It leaves out only what a library must do (input checks, non-finite guards,
diagnostics, distribution objects), so ``env / (rollout + learning)`` at the floor bounds the fraction any
pure-NumPy PPO with this much learning per transition can reach. The same three costs are measured for
npgrad itself. Last, the floor's minibatch step is timed with nothing but its matrix products, to show how
much of it is arithmetic and how much NumPy's cost per call. Writes ``benchmarks/results/floor.json`` and
``floor.md``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import npgrad  # noqa: E402
from npgrad.advantages import gae  # noqa: E402
from npgrad.objectives import clipped_surrogate  # noqa: E402
from npgrad.solvers import Adam  # noqa: E402
from npgrad.train import estimate  # noqa: E402
from npgrad.algos.common import minibatches, standardize  # noqa: E402
from npgrad.envs import make_vec_env  # noqa: E402

from common import best_time, machine_info, vector_env_speed, write_results  # noqa: E402

TARGET = 0.30  # the former target: training steps/s at least 30% of the raw environment steps/s


# --- the floor: the fewest NumPy calls for the same arithmetic ------------------------------------------


def layer_views(theta_p, sizes):
    """``[(W_io, b_o), ...]`` as views into a flat vector laid out as ``npgrad.nn.MLP`` lays out ``theta``."""
    views, k = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w_end = k + n_in * n_out
        views.append((theta_p[k:w_end].reshape(n_in, n_out), theta_p[w_end:w_end + n_out]))
        k = w_end + n_out
    return views


class LeanMLP:
    """A two-hidden-layer tanh MLP whose parameters, gradient and Adam moments all live in ``dtype``: the weights
    and the gradient's blocks are views made once, so a step casts nothing and backprop writes in place."""

    def __init__(self, net, dtype):
        self.theta_p = net.theta.astype(dtype)
        self.grad_p, self.m_p, self.v_p = (np.zeros_like(self.theta_p) for _ in range(3))
        self.weights, self.grads = layer_views(self.theta_p, net.sizes), layer_views(self.grad_p, net.sizes)

    def forward(self, x_no):
        """``(y, (h1, h2))``."""
        (W1, b1), (W2, b2), (W3, b3) = self.weights
        h1 = np.tanh(x_no @ W1 + b1)
        h2 = np.tanh(h1 @ W2 + b2)
        return h2 @ W3 + b3, (h1, h2)

    def backward(self, x_no, hidden, y_bar):
        """Backprop of ``y_bar`` into ``grad_p``."""
        (h1, h2), (_, (W2, _), (W3, _)) = hidden, self.weights
        (G1, g1), (G2, g2), (G3, g3) = self.grads
        np.matmul(h2.T, y_bar, out=G3), y_bar.sum(0, out=g3)
        z2_bar = (y_bar @ W3.T) * (1.0 - h2 * h2)
        np.matmul(h1.T, z2_bar, out=G2), z2_bar.sum(0, out=g2)
        z1_bar = (z2_bar @ W2.T) * (1.0 - h1 * h1)
        np.matmul(x_no.T, z1_bar, out=G1), z1_bar.sum(0, out=g1)
        return self.grad_p

    def adam_step(self, t, lr, max_norm=0.5, b1=0.9, b2=0.999, eps=1e-5):
        """npgrad's ``Adam.step`` (gradient clipped to ``max_norm``), in place."""
        g_p = self.grad_p
        norm = np.sqrt(g_p @ g_p)
        if norm > max_norm:
            g_p *= max_norm / (norm + 1e-12)
        self.m_p += (1 - b1) * (g_p - self.m_p)
        self.v_p += (1 - b2) * (g_p * g_p - self.v_p)
        c = np.sqrt(1 - b2**t)
        denom_p = np.sqrt(self.v_p)
        denom_p += eps * c
        self.theta_p -= (lr * c / (1 - b1**t)) * self.m_p / denom_p


def clipped_surrogate_bar(logits_na, act_n, logp_old_n, adv_n, clip_eps):
    """``d(-L_clip)/d logits = w (p - onehot(a))``, ``w = r A / n`` where the unclipped term is the min (PPO eq. 7)."""
    z_na = logits_na - logits_na.max(1, keepdims=True)
    p_na = np.exp(z_na)
    p_na /= p_na.sum(1, keepdims=True)
    rows = np.arange(len(act_n))
    r_n = p_na[rows, act_n] / np.exp(logp_old_n)
    rA_n = r_n * adv_n
    w_n = np.where(rA_n <= np.clip(r_n, 1.0 - clip_eps, 1.0 + clip_eps) * adv_n, rA_n, 0.0) / len(act_n)
    p_na *= w_n[:, None]
    p_na[rows, act_n] -= w_n
    return p_na


class LeanPPO:
    """PPO's minibatch step at the floor: a policy and a value function, each a ``LeanMLP`` with its own Adam."""

    def __init__(self, agent, dtype):
        self.pi, self.vf = LeanMLP(agent.policy.net, dtype), LeanMLP(agent.value_fn.net, dtype)
        self.dtype, self.t = dtype, 0

    def policy_grad(self, obs_no, act_n, logp_old_n, adv_n, clip_eps):
        logits, hidden = self.pi.forward(obs_no)
        return self.pi.backward(obs_no, hidden, clipped_surrogate_bar(logits, act_n, logp_old_n, adv_n, clip_eps))

    def value_grad(self, obs_no, ret_n):
        v_n1, hidden = self.vf.forward(obs_no)
        return self.vf.backward(obs_no, hidden, (2.0 / len(ret_n)) * (v_n1 - ret_n[:, None]))

    def update(self, batch, rng, epochs, minibatch_size, clip_eps, lr):
        obs_no, logp_n, adv_n, ret_n = (x.astype(self.dtype) for x in (batch.obs_no, batch.logp_n, batch.adv_n,
                                                                        batch.ret_n))
        for _ in range(epochs):
            for idx in minibatches(len(obs_no), minibatch_size, rng):
                self.t += 1
                self.policy_grad(obs_no[idx], batch.act[idx], logp_n[idx], standardize(adv_n[idx]), clip_eps)
                self.pi.adam_step(self.t, lr)
                self.value_grad(obs_no[idx], ret_n[idx])
                self.vf.adam_step(self.t, lr)


def lean_rollout(envs, lean, n_steps, obs_eo, rng, gamma, lam):
    """``n_steps`` vector steps with the policy in the loop, then the value forward and GAE; returns the last obs."""
    E, o = envs.num_envs, obs_eo.shape[1]
    obs_teo, act_te, logp_te = np.empty((n_steps + 1, E, o)), np.empty((n_steps, E), np.int64), np.empty((n_steps, E))
    rew_te, term_te, trunc_te = np.empty((n_steps, E)), np.empty((n_steps, E), bool), np.empty((n_steps, E), bool)
    rows = np.arange(E)
    for t in range(n_steps):
        z_na = lean.pi.forward(obs_eo.astype(lean.dtype))[0]
        z_na -= z_na.max(1, keepdims=True)
        logp_na = z_na - np.log(np.exp(z_na).sum(1, keepdims=True))
        act_e = (rng.random(E) > np.exp(logp_na[:, 0])).astype(np.int64)  # two actions: one uniform draw
        obs_teo[t], act_te[t], logp_te[t] = obs_eo, act_e, logp_na[rows, act_e]
        obs_eo, rew_te[t], term_te[t], trunc_te[t], _ = envs.step(act_e)
    obs_teo[n_steps] = obs_eo
    val_te = lean.vf.forward(obs_teo.reshape(-1, o).astype(lean.dtype))[0].reshape(n_steps + 1, E)
    gae(rew_te, val_te[:-1], val_te[1:], term_te, trunc_te, gamma, lam)
    return obs_eo


# --- the check: the floor computes npgrad's update ---------------------------------------------------


def check_floor_matches_npgrad(batch, cfg):
    """The lean gradients and Adam step equal npgrad's in float64 on the same parameters and minibatch."""
    # not the policy that collected the batch: its ratios move away from 1, so the clip is exercised
    agent = npgrad.PPO("CartPole-v1", seed=1, dtype="float64")
    lean = LeanPPO(agent, np.float64)
    idx = minibatches(len(batch.obs_no), cfg.minibatch_size, np.random.default_rng(0))[0]
    obs_no, act_n, logp_n, ret_n = batch.obs_no[idx], batch.act[idx], batch.logp_n[idx], batch.ret_n[idx]
    adv_n = standardize(batch.adv_n[idx])
    g_pi = -agent.policy.objective_grad(obs_no, clipped_surrogate, act_n, adv_n, logp_n, cfg.clip_range)[1]  # ascent
    np.testing.assert_allclose(lean.policy_grad(obs_no, act_n, logp_n, adv_n, cfg.clip_range), g_pi,
                               rtol=1e-9, atol=1e-12, err_msg="floor's policy gradient")
    theta_next, _ = Adam(len(g_pi), lr=cfg.lr, max_grad_norm=cfg.max_grad_norm).step(lean.pi.theta_p, g_pi)
    lean.pi.adam_step(1, cfg.lr, cfg.max_grad_norm)
    np.testing.assert_allclose(lean.pi.theta_p, theta_next, rtol=1e-12, atol=1e-15, err_msg="floor's Adam step")
    _, g_vf = agent.value_fn.loss_grad(obs_no, ret_n)
    np.testing.assert_allclose(lean.value_grad(obs_no, ret_n), g_vf, rtol=1e-9, atol=1e-12,
                               err_msg="floor's value gradient")


# --- timing -------------------------------------------------------------------------------------------


def us_per_call(fn, number):
    """The best mean time of ``number`` calls of ``fn()`` in us (``best_time`` of the loop: a call of a few us
    is too short to time alone)."""
    return 1e6 * best_time(lambda: [fn() for _ in range(number)]) / number


def products_us(lean, x_no):
    """The floor's minibatch step with everything but its 16 matrix products left out (for each network 3 in the
    forward pass and 5 in backprop, which needs no gradient of the input), in us."""
    calls = []
    for net in (lean.pi, lean.vf):
        (W1, _), (W2, _), (W3, _) = net.weights
        h_nh = np.tanh(x_no @ W1)  # any (n, 64) activations and (n, out) cotangents have the products' shapes
        y_bar = h_nh @ W3
        calls += [(x_no, W1), (h_nh, W2), (h_nh, W3), (h_nh.T, y_bar), (y_bar, W3.T), (h_nh.T, h_nh), (h_nh, W2.T),
                  (x_no.T, h_nh)]

    def run():
        for a, b in calls:
            a @ b

    return us_per_call(run, 500)


def main():
    agent = npgrad.PPO("CartPole-v1", seed=0)
    cfg, dtype = agent.config, agent.policy.net.dtype
    agent.learn(5_000)  # a policy that has learnt a little, so episodes are neither all short nor all long
    rng = np.random.default_rng(0)
    batch = estimate(agent.rollout.collect(agent.policy, rng), agent.value_fn, cfg.gamma, cfg.lam)
    check_floor_matches_npgrad(batch, cfg)
    n = cfg.n_envs * cfg.n_steps
    env_sps, env_name = vector_env_speed(make_vec_env("CartPole-v1", cfg.n_envs))

    lean = LeanPPO(agent, dtype)
    envs = make_vec_env("CartPole-v1", cfg.n_envs)
    state = {"obs": envs.reset(seed=0)[0]}

    def floor_rollout():
        state["obs"] = lean_rollout(envs, lean, cfg.n_steps, state["obs"], rng, cfg.gamma, cfg.lam)

    costs = {
        "floor": {"rollout": us_per_call(floor_rollout, 20) / n,
                  "learning": us_per_call(lambda: lean.update(batch, rng, cfg.n_epochs, cfg.minibatch_size,
                                                              cfg.clip_range, cfg.lr), 20) / n},
        "npgrad": {"rollout": us_per_call(
                       lambda: estimate(agent.rollout.collect(agent.policy, rng), agent.value_fn, cfg.gamma, cfg.lam), 20) / n,
                   "learning": us_per_call(lambda: agent.rule.update(agent.model, batch, rng, 1.0), 20) / n},
    }
    env_us = 1e6 / env_sps
    steps_per_update = cfg.n_epochs * -(-n // cfg.minibatch_size)
    step_us = costs["floor"]["learning"] * n / steps_per_update
    product_us = products_us(lean, batch.obs_no[:cfg.minibatch_size].astype(dtype))
    for row in costs.values():
        row["total"] = row["rollout"] + row["learning"]
        row["fraction"] = env_us / row["total"]
        # minibatch steps per update that TARGET leaves, at this row's cost per minibatch step
        row["minibatch_steps_at_target"] = (env_us / TARGET - row["rollout"]) / (row["learning"] / steps_per_update)
    lines = [f"Per environment step (us), PPO's CartPole default ({cfg.n_envs} x {cfg.n_steps} transitions, "
             f"{steps_per_update} minibatch steps of {cfg.minibatch_size} per update); env: {env_name}, "
             f"{env_us:.2f} us ({env_sps:,.0f} raw steps/s).",
             "",
             "| | rollout (with the env) | learning | total | fraction of raw speed "
             f"| minibatch steps per update that {TARGET:.0%} allows |",
             "|---|---|---|---|---|---|"]
    for name, row in costs.items():
        lines.append(f"| {name} | {row['rollout']:.2f} | {row['learning']:.2f} | {row['total']:.2f} | "
                     f"{row['fraction']:.0%} | {max(row['minibatch_steps_at_target'], 0):.1f} |")
    lines += ["", f"One minibatch step at the floor takes {step_us:.0f} us, of which its 16 matrix products take "
                  f"{product_us:.0f} us; the rest is the cost of its other NumPy calls."]
    text = "\n".join(lines)
    print(text)
    write_results(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "floor.json"),
                  {"machine": machine_info(), "env": env_name, "env_us": env_us, "steps_per_update": steps_per_update,
                   "target": TARGET, "costs": costs, "floor_minibatch_step_us": step_us, "products_us": product_us},
                  text)


if __name__ == "__main__":
    main()
