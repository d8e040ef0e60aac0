"""The analytic derivatives the algorithms use, next to their central finite differences.

``npgrad gradcheck --algo trpo --env Pendulum-v1`` prints this table for a freshly built policy and value function
with that algorithm's networks (``--set`` changes them): the gradients of every objective (REINFORCE, the
surrogate, PPO's clipped surrogate, the entropy, the KL), the Fisher-vector product (from which NPG also assembles
its explicit Fisher) and the value losses. The rows are the same for every algorithm; the property tests in
``tests/`` check the same identities over random shapes, and a shared trunk's joint loss as well.
The finite differences (``npgrad.testing``) perturb each parameter by ``h = 1e-6`` in float64,
except the Fisher-vector product, which is a directional difference of the analytic KL gradient
(``F v = d/dt grad KL(pi_old || pi_{theta + t v})`` at ``t = 0``, docs/05-trpo.md). With gSDE the
features in ``sigma`` are a stop-gradient, so the differences hold them at their value at ``theta``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .agent import ALGOS
from .envs import make_vec_env
from .objectives import clipped_surrogate, mean_entropy, mean_kl, surrogate, weighted_log_prob
from .policy import Policy, ValueFunction
from .testing import central_difference_gradient, directional_derivative


class Check(NamedTuple):
    name: str
    size: int
    scale: float  # max |analytic|
    abs_error: float  # max |analytic - numeric|
    error_to_tol: float  # max over entries of |analytic - numeric| / (atol + rtol |numeric|): ok when <= 1
    ok: bool


def compare(name: str, analytic: ArrayLike, numeric: ArrayLike, rtol: float = 1e-5, atol: float = 1e-7) -> Check:
    """One row: ``ok`` is ``np.allclose(analytic, numeric, rtol, atol)``, entry by entry, and ``error_to_tol`` how
    close the worst entry came to failing it."""
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    error_n = np.abs(analytic - numeric)
    to_tol = float(np.max(error_n / (atol + rtol * np.abs(numeric))))
    return Check(name, analytic.size, float(np.max(np.abs(analytic))), float(np.max(error_n)), to_tol, to_tol <= 1)


def gradcheck(algo: str = "ppo", env_id: str = "CartPole-v1", batch: int = 32, seed: int = 0,
              **overrides: Any) -> list[Check]:
    """Build the algorithm's networks for ``env_id`` (config ``overrides`` allowed) and return one ``Check``
    per derivative. Each finite difference is a plain function of ``theta``: the networks take it as an argument."""
    config = ALGOS[algo].Config.for_env(env_id, **overrides)
    envs = make_vec_env(env_id, 1)
    rng = np.random.default_rng(seed)
    policy = Policy(envs.single_observation_space, envs.single_action_space, config.hidden, config.activation,
                    config.log_std_init, rng=rng, sde=config.use_sde)
    value_fn = ValueFunction(policy.obs_dim, config.vf_hidden, config.activation, rng=rng)
    envs.close()
    obs_no = rng.standard_normal((batch, policy.obs_dim))
    old = policy.distribution(obs_no)
    act = old.sample(rng)
    logp_old_n, adv_n = old.log_prob(act), rng.standard_normal(batch)
    theta_old_p = policy.theta
    theta_p = theta_old_p + rng.standard_normal(policy.num_params) / np.sqrt(policy.num_params)

    def objective_check(name: str, objective: Callable[..., tuple[Any, Any]], *args: Any) -> Check:
        _, grad = policy.objective_grad(obs_no, objective, *args, theta_p=theta_p)
        phi_nf = policy.forward(obs_no, theta_p).features_nf  # None unless gSDE

        def value(th_p: np.ndarray) -> float:
            return objective(policy.forward(obs_no, th_p, phi_nf).dist, *args)[0]

        return compare(name, grad, central_difference_gradient(value, theta_p))

    checks = [
        objective_check("REINFORCE: grad mean(A log pi)", weighted_log_prob, act, adv_n / batch),
        objective_check("policy gradient: grad mean(r A)", surrogate, act, adv_n, logp_old_n),
        objective_check("PPO clipped surrogate gradient", clipped_surrogate, act, adv_n, logp_old_n, 0.05),
        objective_check("entropy gradient", mean_entropy),
        objective_check("KL gradient: grad KL(old || pi)", lambda d: mean_kl(old, d)),
    ]
    v_p = rng.standard_normal(policy.num_params)  # the Fisher is the Hessian of the KL at theta = theta_old
    phi_nf = policy.forward(obs_no, theta_old_p).features_nf

    def kl_grad(th_p: np.ndarray) -> np.ndarray:
        fwd = policy.forward(obs_no, th_p, phi_nf)
        return policy.vjp(fwd, mean_kl(old, fwd.dist)[1])

    checks.append(compare("Fisher-vector product F v", policy.fisher_vector_product(obs_no, v_p, theta_p=theta_old_p),
                          directional_derivative(kl_grad, theta_old_p, v_p, h=1e-5), rtol=1e-4, atol=1e-6))
    target_n = rng.standard_normal(batch)
    v_old_n = value_fn(obs_no) + 0.1 * rng.standard_normal(batch)  # about half the rows outside the clip range
    for name, clip_args in [("value gradient: grad mean((V - R)^2)", ()),
                            ("PPO clipped value loss gradient", (v_old_n, 0.05))]:
        _, v_grad = value_fn.loss_grad(obs_no, target_n, *clip_args)

        def value_loss(phi_p: np.ndarray, args: tuple = clip_args) -> float:
            return value_fn.loss_grad(obs_no, target_n, *args, theta_p=phi_p)[0]  # type: ignore[misc]  # args: 0 or 2

        checks.append(compare(name, v_grad, central_difference_gradient(value_loss, value_fn.theta)))
    return checks


def format_table(checks: Iterable[Check]) -> str:
    lines = [f"{'derivative':40s} {'entries':>8s} {'max |analytic|':>15s} {'max abs error':>14s} "
             f"{'error / tol':>12s}  ok", "-" * 98]
    for c in checks:
        lines.append(f"{c.name:40s} {c.size:8d} {c.scale:15.3e} {c.abs_error:14.2e} {c.error_to_tol:12.1e}  "
                     f"{'yes' if c.ok else 'NO'}")
    return "\n".join(lines)
