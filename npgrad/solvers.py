"""Solvers: conjugate gradient, the trust-region (KKT) step, backtracking line search, the explicit
natural-gradient step, and first-order optimisers on flat parameter vectors.

Maths: docs/04-natural-gradient.md, docs/05-trpo.md.

Every solver is a small function of a mat-vec or a callable that returns ``(result, info)``; it
never prints. ``info`` says what happened, including the ways it can fail (non-positive curvature,
no accepted step), so an algorithm can keep its last good parameters and report why.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import LinAlgError, cho_factor, cho_solve

Schedule = Callable[[int], float]
"""``lr_schedule(t) -> lr`` before step ``t = 1, 2, ...``."""
Info = dict[str, Any]
"""What a solver reports beside its result: iterations, whether it succeeded, and why not."""


def conjugate_gradient(Avp: Callable[[np.ndarray], np.ndarray], b_p: ArrayLike, iters: int = 10,
                       residual_tol: float = 1e-10) -> tuple[np.ndarray, Info]:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` given only ``Avp(v) = A v``.

    Hestenes & Stiefel (1952); Nocedal & Wright, Algorithm 5.2. Starting from ``x = 0``::

        alpha = r^T r / p^T A p;   x += alpha p;   r -= alpha A p;   p = r + (r_new^T r_new / r^T r) p

    In exact arithmetic it converges in at most ``dim`` iterations. If ``p^T A p <= 0`` (``A`` is
    not positive definite along ``p``) it stops before dividing and reports ``breakdown``.

    Returns ``(x_p, info)`` with ``info = {iterations, residual_norm, breakdown, curvature}``.
    """
    b_p = np.asarray(b_p, dtype=np.float64)
    x_p, r_p = np.zeros_like(b_p), b_p.copy()
    p_p, rr = r_p.copy(), float(r_p @ r_p)
    info = {"iterations": 0, "residual_norm": np.sqrt(rr), "breakdown": False, "curvature": np.nan}
    for i in range(iters):
        if np.sqrt(rr) <= residual_tol:
            break
        Ap_p = Avp(p_p)
        pAp = float(p_p @ Ap_p)
        info["curvature"] = pAp
        if not pAp > 0.0:  # also catches NaN
            info["breakdown"] = True
            break
        alpha = rr / pAp
        x_p += alpha * p_p
        r_p -= alpha * Ap_p
        rr_new = float(r_p @ r_p)
        p_p = r_p + (rr_new / rr) * p_p
        rr = rr_new
        info["iterations"], info["residual_norm"] = i + 1, np.sqrt(rr)
    return x_p, info


def trust_region_step(x_p: np.ndarray, Fx_p: np.ndarray, max_kl: float) -> tuple[np.ndarray, Info]:
    """Scale the search direction ``x ~ F^-1 g`` to the edge of the trust region (TRPO, App. C).

    The KKT conditions of ``max g^T s  s.t.  1/2 s^T F s <= delta`` give ``s = beta x`` with
    ``beta = sqrt(2 delta / x^T F x)``, so that ``1/2 s^T F s = delta`` exactly. A non-positive
    ``x^T F x`` is reported (``ok = False``, zero step), never square-rooted.
    """
    xFx = float(x_p @ Fx_p)
    if not (xFx > 0.0 and np.isfinite(xFx)):
        return np.zeros_like(x_p), {"ok": False, "xFx": xFx, "beta": 0.0}
    beta = np.sqrt(2.0 * max_kl / xFx)
    return beta * x_p, {"ok": True, "xFx": xFx, "beta": beta}


def backtracking_line_search(f: Callable[[np.ndarray], float], x0_p: np.ndarray, full_step_p: np.ndarray,
                             expected_improve: float, constraint: Callable[[np.ndarray], bool] | None = None,
                             shrink: float = 0.5, max_backtracks: int = 10, accept_ratio: float = 0.1,
                             f0: float | None = None) -> tuple[np.ndarray, Info]:
    """Try ``x0 + shrink^k full_step`` for ``k = 0, 1, ...``; accept the first point that improves.

    ``f`` is maximised. A point is accepted when its actual improvement is positive, at least
    ``accept_ratio`` times the linear prediction ``shrink^k * expected_improve`` (Armijo-style, as
    in the original TRPO code), finite, and satisfies ``constraint(x)`` (e.g. mean KL <= delta)
    when one is given. If no point is accepted, the original ``x0`` comes back with
    ``accepted = False``.

    Returns ``(x_p, info)`` with ``info = {accepted, backtracks, step_fraction, improvement, expected}``.
    """
    f0 = f(x0_p) if f0 is None else f0
    info = {"accepted": False, "backtracks": max_backtracks, "step_fraction": 0.0, "improvement": 0.0,
            "expected": float(expected_improve)}
    for k in range(max_backtracks):
        frac = shrink**k
        x_p = x0_p + frac * full_step_p
        improvement = f(x_p) - f0
        expected = frac * expected_improve
        if (np.isfinite(improvement) and improvement > 0.0 and improvement >= accept_ratio * expected
                and (constraint is None or constraint(x_p))):
            info.update(accepted=True, backtracks=k, step_fraction=frac, improvement=float(improvement),
                        expected=float(expected))
            return x_p, info
    return np.array(x0_p, dtype=np.float64), info


def natural_gradient_step(F_pp: np.ndarray, g_p: np.ndarray, max_kl: float,
                          reg: float = 1e-6) -> tuple[np.ndarray, Info]:
    """Natural-gradient step with an explicit Fisher (Kakade 2002; Peters & Schaal 2008).

    ``g_nat = (F + reg I)^-1 g`` by a Cholesky solve; the step ``sqrt(2 eps / g_nat^T F g_nat) g_nat``
    moves a second-order KL of exactly ``eps``. Returns ``(step_p, info)``; a Fisher that is not
    positive definite even with ``reg``, or a non-finite ``F`` or ``g``, is reported (``ok = False``, zero step).
    """
    if not (np.all(np.isfinite(F_pp)) and np.all(np.isfinite(g_p))):
        return np.zeros_like(g_p), {"ok": False, "gFg": np.nan}
    try:
        g_nat_p = cho_solve(cho_factor(F_pp + reg * np.eye(len(g_p))), g_p)
    except LinAlgError:
        return np.zeros_like(g_p), {"ok": False, "gFg": np.nan}
    step_p, info = trust_region_step(g_nat_p, F_pp @ g_nat_p, max_kl)
    return step_p, {"ok": info["ok"], "gFg": info["xFx"]}


def clip_grad_norm(grad_p: np.ndarray, max_norm: float | None) -> tuple[np.ndarray, float]:
    """Rescale ``grad`` to norm at most ``max_norm`` (``None``: unchanged). Returns ``(grad, norm)``.

    A non-finite gradient is returned unchanged: no rescaling can make it finite."""
    norm = float(np.sqrt(grad_p @ grad_p))
    if max_norm is not None and max_norm < norm < np.inf:
        return grad_p * (max_norm / (norm + 1e-12)), norm
    return grad_p, norm


class SGD:
    """``theta <- theta - lr * grad`` (gradient descent on a loss), optional global-norm clipping.

    ``lr_schedule(t) -> lr``, if given, sets the learning rate before step ``t = 1, 2, ...``.
    """

    def __init__(self, lr: float, max_grad_norm: float | None = None, lr_schedule: Schedule | None = None) -> None:
        self.lr, self.max_grad_norm, self.lr_schedule, self.t = lr, max_grad_norm, lr_schedule, 0

    def step(self, theta_p: np.ndarray, grad_p: np.ndarray) -> tuple[np.ndarray, Info]:
        """Returns ``(new_theta_p, info)``; a non-finite result leaves the step counter unchanged."""
        if self.lr_schedule is not None:
            self.lr = self.lr_schedule(self.t + 1)
        grad_p, norm = clip_grad_norm(grad_p, self.max_grad_norm)
        new_theta_p = theta_p - self.lr * grad_p
        if np.all(np.isfinite(new_theta_p)):
            self.t += 1
        return new_theta_p, {"grad_norm": norm, "lr": self.lr}

    def state(self) -> dict[str, np.ndarray]:
        return {"t": np.array(self.t)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.t = int(state["t"])


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) on a flat parameter vector, minimising a loss.

    ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  theta <- theta - lr m_hat / (sqrt(v_hat) + eps)``
    with bias corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``. ``lr`` is a plain
    attribute: set it between steps, or pass ``lr_schedule(t) -> lr`` to have it set before
    step ``t = 1, 2, ...``. ``eps = 1e-5`` as in SB3/CleanRL's PPO.
    """

    def __init__(self, num_params: int, lr: float = 3e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5,
                 max_grad_norm: float | None = None, lr_schedule: Schedule | None = None) -> None:
        self.lr, self.betas, self.eps, self.max_grad_norm = lr, betas, eps, max_grad_norm
        self.lr_schedule = lr_schedule
        self.m_p, self.v_p, self.t = np.zeros(num_params), np.zeros(num_params), 0

    def step(self, theta_p: np.ndarray, grad_p: np.ndarray) -> tuple[np.ndarray, Info]:
        """Returns ``(new_theta_p, info)``; ``theta_p`` itself is not modified.

        A non-finite gradient is returned as NaN parameters (which ``algos.common.commit`` refuses)
        and never poisons ``m``, ``v``: ``|g|^2 = g.g`` is finite only if every ``g_i^2`` is, and then
        the moments and the step are finite too, so they are updated in place (a gradient so large
        that ``g.g`` overflows is refused as well).
        """
        grad_p, norm = clip_grad_norm(grad_p, self.max_grad_norm)
        t = self.t + 1
        if self.lr_schedule is not None:
            self.lr = self.lr_schedule(t)
        info = {"grad_norm": norm, "lr": self.lr}
        if not np.isfinite(norm):
            return np.full_like(theta_p, np.nan), info
        b1, b2 = self.betas
        self.m_p += (1 - b1) * (grad_p - self.m_p)  # m <- b1 m + (1 - b1) g
        self.v_p += (1 - b2) * (grad_p * grad_p - self.v_p)  # v <- b2 v + (1 - b2) g^2
        self.t = t
        # m_hat / (sqrt(v_hat) + eps) with both bias corrections folded into two scalars (Algorithm 1,
        # the "more efficient" order of section 2): two vector operations fewer per step
        correction = np.sqrt(1 - b2**t)
        denom_p = np.sqrt(self.v_p)
        denom_p += self.eps * correction
        return theta_p - (self.lr * correction / (1 - b1**t)) * self.m_p / denom_p, info

    def state(self) -> dict[str, np.ndarray]:
        return {"m": self.m_p.copy(), "v": self.v_p.copy(), "t": np.array(self.t)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.m_p, self.v_p, self.t = np.array(state["m"]), np.array(state["v"]), int(state["t"])


class RMSprop:
    """RMSprop (Tieleman & Hinton 2012, lecture 6e) on a flat parameter vector, as ``torch.optim.RMSprop``.

    ``v <- alpha v + (1 - alpha) g^2;  theta <- theta - lr g / (sqrt(v) + eps)``, no momentum and no
    bias correction, so every coordinate moves by about ``lr`` per step whatever the gradient's
    scale. The defaults are SB3's A2C: alpha 0.99 (as the A3C paper) and eps 1e-5.
    """

    def __init__(self, num_params: int, lr: float = 7e-4, alpha: float = 0.99, eps: float = 1e-5,
                 max_grad_norm: float | None = None) -> None:
        self.lr, self.alpha, self.eps, self.max_grad_norm = lr, alpha, eps, max_grad_norm
        self.v_p, self.t = np.zeros(num_params), 0

    def step(self, theta_p: np.ndarray, grad_p: np.ndarray) -> tuple[np.ndarray, Info]:
        """Returns ``(new_theta_p, info)``; the square average is only stored when the result is finite."""
        grad_p, norm = clip_grad_norm(grad_p, self.max_grad_norm)
        v_p = self.alpha * self.v_p + (1 - self.alpha) * grad_p * grad_p
        new_theta_p = theta_p - self.lr * grad_p / (np.sqrt(v_p) + self.eps)
        if np.all(np.isfinite(new_theta_p)):
            self.v_p, self.t = v_p, self.t + 1
        return new_theta_p, {"grad_norm": norm, "lr": self.lr}

    def state(self) -> dict[str, np.ndarray]:
        return {"v": self.v_p.copy(), "t": np.array(self.t)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.v_p, self.t = np.array(state["v"]), int(state["t"])
