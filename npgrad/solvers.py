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

Schedule = Callable[[Any], Any]
"""``lr_schedule(t) -> lr`` before step ``t = 1, 2, ...`` (for a stack, an array of each agent's ``t``)."""
PerAgent = float | np.ndarray
"""A number of one agent, or one per agent of a stack, ``(S,)``."""
Info = dict[str, Any]
"""What a solver reports beside its result: iterations, whether it succeeded, and why not."""


def vdot(a_p: np.ndarray, b_p: np.ndarray) -> np.ndarray:
    """``a . b`` over the last axis: one number per agent of a stack, rounded the same way for one agent alone (a
    ``(1, p) @ (p, 1)`` product per agent: one BLAS call each, stacked or not)."""
    return (a_p[..., None, :] @ b_p[..., :, None])[..., 0, 0]


def conjugate_gradient(Avp: Callable[[np.ndarray], np.ndarray], b_p: ArrayLike, iters: int = 10,
                       residual_tol: float = 1e-10) -> tuple[np.ndarray, Info]:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` given only ``Avp(v) = A v``.

    Hestenes & Stiefel (1952); Nocedal & Wright, Algorithm 5.2. Starting from ``x = 0``::

        alpha = r^T r / p^T A p;   x += alpha p;   r -= alpha A p;   p = r + (r_new^T r_new / r^T r) p

    In exact arithmetic it converges in at most ``dim`` iterations. If ``p^T A p <= 0`` (``A`` is
    not positive definite along ``p``) it stops before dividing and reports ``breakdown``.

    ``b`` may be a stack ``(S, p)`` of independent systems (``Avp`` then maps a stack too): each stops on
    its own, a converged or broken-down one left exactly where it stopped while the others go on.

    Returns ``(x_p, info)`` with ``info = {iterations, residual_norm, breakdown, curvature}`` (per system).
    """
    b_p = np.asarray(b_p, dtype=np.float64)
    x_p, r_p = np.zeros_like(b_p), b_p.copy()
    p_p, rr = r_p.copy(), vdot(r_p, r_p)
    running = np.ones(rr.shape, dtype=bool)
    info = {"iterations": np.zeros(rr.shape, dtype=np.int64), "residual_norm": np.sqrt(rr),
            "breakdown": np.zeros(rr.shape, dtype=bool), "curvature": np.full(rr.shape, np.nan)}
    for i in range(iters):
        running &= ~(np.sqrt(rr) <= residual_tol)
        if not running.any():
            break
        Ap_p = Avp(p_p)
        pAp = vdot(p_p, Ap_p)
        info["curvature"] = np.where(running, pAp, info["curvature"])
        broken = running & ~(pAp > 0.0)  # also catches NaN
        info["breakdown"] |= broken
        running &= ~broken
        if not running.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):  # the stopped systems' quotients are not used
            alpha = rr / pAp
            on = running[..., None]
            x_p = np.where(on, x_p + alpha[..., None] * p_p, x_p)
            r_p = np.where(on, r_p - alpha[..., None] * Ap_p, r_p)
            rr_new = vdot(r_p, r_p)
            p_p = np.where(on, r_p + (rr_new / rr)[..., None] * p_p, p_p)
        rr = np.where(running, rr_new, rr)
        info["iterations"] = np.where(running, i + 1, info["iterations"])
        info["residual_norm"] = np.where(running, np.sqrt(rr), info["residual_norm"])
    return x_p, info


def trust_region_step(x_p: np.ndarray, Fx_p: np.ndarray, max_kl: PerAgent) -> tuple[np.ndarray, Info]:
    """Scale the search direction ``x ~ F^-1 g`` to the edge of the trust region (TRPO, App. C).

    The KKT conditions of ``max g^T s  s.t.  1/2 s^T F s <= delta`` give ``s = beta x`` with
    ``beta = sqrt(2 delta / x^T F x)``, so that ``1/2 s^T F s = delta`` exactly. A non-positive
    ``x^T F x`` is reported (``ok = False``, zero step), never square-rooted. Stacks ``(S, p)`` step each
    agent to its own ``delta`` (``max_kl`` one per agent or one for all).
    """
    xFx = vdot(x_p, Fx_p)
    ok = (xFx > 0.0) & np.isfinite(xFx)
    beta = np.sqrt(2.0 * max_kl / np.where(ok, xFx, 1.0)) * ok
    return np.where(ok[..., None], beta[..., None] * x_p, 0.0), {"ok": ok, "xFx": xFx, "beta": beta}


def backtracking_line_search(f: Callable[[np.ndarray], Any], x0_p: np.ndarray, full_step_p: np.ndarray,
                             expected_improve: PerAgent, constraint: Callable[[np.ndarray], Any] | None = None,
                             shrink: PerAgent = 0.5, max_backtracks: int = 10, accept_ratio: PerAgent = 0.1,
                             f0: PerAgent | None = None) -> tuple[np.ndarray, Info]:
    """Try ``x0 + shrink^k full_step`` for ``k = 0, 1, ...``; accept the first point that improves.

    ``f`` is maximised. A point is accepted when its actual improvement is positive, at least
    ``accept_ratio`` times the linear prediction ``shrink^k * expected_improve`` (Armijo-style, as
    in the original TRPO code), finite, and satisfies ``constraint(x)`` (e.g. mean KL <= delta)
    when one is given. If no point is accepted, the original ``x0`` comes back with
    ``accepted = False``. For a stack ``(S, p)``, ``f`` and ``constraint`` answer per agent and each agent
    takes its own first acceptable point.

    Returns ``(x_p, info)`` with ``info = {accepted, backtracks, step_fraction, improvement, expected}``.
    """
    f0 = f(x0_p) if f0 is None else f0
    lead = np.shape(f0)
    expected_improve = np.asarray(expected_improve, dtype=np.float64)
    x_p, accepted = np.array(x0_p, dtype=np.float64), np.zeros(lead, dtype=bool)
    info = {"accepted": accepted, "backtracks": np.full(lead, max_backtracks), "step_fraction": np.zeros(lead),
            "improvement": np.zeros(lead), "expected": expected_improve}
    for k in range(max_backtracks):
        frac = np.power(shrink, k)
        x_k = x0_p + np.asarray(frac)[..., None] * full_step_p
        improvement, expected = f(x_k) - f0, frac * expected_improve
        with np.errstate(invalid="ignore"):
            ok = ~accepted & np.isfinite(improvement) & (improvement > 0.0) & (improvement >= accept_ratio * expected)
        if constraint is not None and ok.any():
            ok &= constraint(x_k)
        x_p = np.where(ok[..., None], x_k, x_p)
        for name, value in (("backtracks", k), ("step_fraction", frac), ("improvement", improvement),
                            ("expected", expected)):
            info[name] = np.where(ok, value, info[name])
        accepted = accepted | ok
        if accepted.all():
            break
    info["accepted"] = accepted
    return x_p, info


def natural_gradient_step(F_pp: np.ndarray, g_p: np.ndarray, max_kl: PerAgent,
                          reg: PerAgent = 1e-6) -> tuple[np.ndarray, Info]:
    """Natural-gradient step with an explicit Fisher (Kakade 2002; Peters & Schaal 2008).

    ``g_nat = (F + reg I)^-1 g`` by a Cholesky solve; the step ``sqrt(2 eps / g_nat^T F g_nat) g_nat``
    moves a second-order KL of exactly ``eps``. Returns ``(step_p, info)``; a Fisher that is not
    positive definite even with ``reg``, or a non-finite ``F`` or ``g``, is reported (``ok = False``, zero step).
    A stack ``(S, p, p)`` is solved agent by agent.
    """
    if F_pp.ndim == 3:
        steps = [natural_gradient_step(F, g, np.broadcast_to(max_kl, len(g_p))[k], np.broadcast_to(reg, len(g_p))[k])
                 for k, (F, g) in enumerate(zip(F_pp, g_p))]
        return np.stack([s for s, _ in steps]), {name: np.array([i[name] for _, i in steps]) for name in ("ok", "gFg")}
    if not (np.all(np.isfinite(F_pp)) and np.all(np.isfinite(g_p))):
        return np.zeros_like(g_p), {"ok": False, "gFg": np.nan}
    try:
        g_nat_p = cho_solve(cho_factor(F_pp + reg * np.eye(len(g_p))), g_p)
    except LinAlgError:
        return np.zeros_like(g_p), {"ok": False, "gFg": np.nan}
    step_p, info = trust_region_step(g_nat_p, F_pp @ g_nat_p, max_kl)
    return step_p, {"ok": bool(info["ok"]), "gFg": float(info["xFx"])}


def clip_grad_norm(grad_p: np.ndarray, max_norm: PerAgent | None) -> tuple[np.ndarray, np.ndarray]:
    """Rescale ``grad`` to norm at most ``max_norm`` (``None``: unchanged). Returns ``(grad, norm)``; a stack
    ``(S, p)`` is clipped row by row, each to its own ``max_norm``.

    A non-finite gradient is returned unchanged: no rescaling can make it finite."""
    norm = np.sqrt(vdot(grad_p, grad_p))
    if max_norm is None:
        return grad_p, norm
    clip = (max_norm < norm) & (norm < np.inf)
    if not clip.any():
        return grad_p, norm
    clipped_p = grad_p * (max_norm / (norm + 1e-12))[..., None]
    return (clipped_p if clip.all() else np.where(clip[..., None], clipped_p, grad_p)), norm


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

    A stack of agents is one ``Adam`` whose state has a leading axis (``load_state`` of stacked arrays):
    ``(S, p)`` moments, ``S`` step counts, and ``lr`` and ``max_grad_norm`` one per agent or one for all.
    """

    def __init__(self, num_params: int | tuple[int, ...], lr: PerAgent = 3e-4,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5, max_grad_norm: PerAgent | None = None,
                 lr_schedule: Schedule | None = None) -> None:
        self.lr, self.betas, self.eps, self.max_grad_norm = lr, betas, eps, max_grad_norm
        self.lr_schedule = lr_schedule
        self.m_p, self.v_p = np.zeros(num_params), np.zeros(num_params)  # (p,), or (S, p) for a stack
        self._work: np.ndarray | None = None
        self.t = np.zeros(self.m_p.shape[:-1], dtype=np.int64)

    def step(self, theta_p: np.ndarray, grad_p: np.ndarray,
             active: bool | np.ndarray = True) -> tuple[np.ndarray, Info]:
        """Returns ``(new_theta_p, info)``; ``theta_p`` itself is not modified. Agents not ``active`` (a mask, for a
        stack) keep their parameters and moments.

        A non-finite gradient is returned as NaN parameters (which ``algos.common.commit`` refuses)
        and never poisons ``m``, ``v``: ``|g|^2 = g.g`` is finite only if every ``g_i^2`` is, and then
        the moments and the step are finite too, so they are updated (a gradient so large that ``g.g``
        overflows is refused as well).
        """
        grad_p, norm = clip_grad_norm(grad_p, self.max_grad_norm)
        ok = np.isfinite(norm) & active
        t, every = self.t + ok, bool(ok.all())
        if self.lr_schedule is not None:  # the step about to be taken, counted per agent of a stack
            self.lr = self.lr_schedule(self.t + 1)
        info = {"grad_norm": norm, "lr": self.lr}
        if not (every or ok.any()):
            return np.where(np.asarray(active)[..., None], np.nan, theta_p), info
        b1, b2 = self.betas
        scratch = self._scratch(grad_p)
        kept = None if every else (self.m_p[~ok], self.v_p[~ok])  # rows not taken keep their moments
        # m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2: in place, through one scratch array
        with np.errstate(invalid="ignore", over="ignore"):  # a refused gradient's NaN, in rows put back below
            self.m_p += np.multiply(np.subtract(grad_p, self.m_p, out=scratch), 1 - b1, out=scratch)
            step = np.multiply(grad_p, grad_p, out=scratch)
            self.v_p += np.multiply(np.subtract(step, self.v_p, out=scratch), 1 - b2, out=scratch)
        if kept is not None:
            self.m_p[~ok], self.v_p[~ok] = kept
        self.t = t
        # m_hat / (sqrt(v_hat) + eps) with both bias corrections folded into two scalars (Algorithm 1,
        # the "more efficient" order of section 2): two vector operations fewer per step
        correction = np.sqrt(1 - b2**t)
        denom_p = np.sqrt(self.v_p, out=scratch)
        denom_p += (self.eps * correction)[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 in a row not taken before its first step
            step_p = np.multiply((self.lr * correction / (1 - b1**t))[..., None], self.m_p)
            step_p /= denom_p
        new_theta_p = np.subtract(theta_p, step_p, out=step_p)
        if every:
            return new_theta_p, info
        return np.where(ok[..., None], new_theta_p, np.where(np.asarray(active)[..., None], np.nan, theta_p)), info

    def _scratch(self, like: np.ndarray) -> np.ndarray:
        """A work array shaped like the parameters, kept between steps."""
        if self._work is None or self._work.shape != like.shape:
            self._work = np.empty(like.shape)
        return self._work

    def state(self) -> dict[str, np.ndarray]:
        return {"m": self.m_p.copy(), "v": self.v_p.copy(), "t": np.array(self.t)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.m_p, self.v_p = np.array(state["m"]), np.array(state["v"])
        self.t = np.array(state["t"], dtype=np.int64)


class RMSprop:
    """RMSprop (Tieleman & Hinton 2012, lecture 6e) on a flat parameter vector, as ``torch.optim.RMSprop``.

    ``v <- alpha v + (1 - alpha) g^2;  theta <- theta - lr g / (sqrt(v) + eps)``, no momentum and no
    bias correction, so once ``v`` has warmed up every coordinate moves by about ``lr`` per step whatever
    the gradient's scale (from ``v = 0`` the first step is ``lr / sqrt(1 - alpha)``, 10 ``lr``, as torch's).
    The defaults are SB3's A2C: alpha 0.99 (as the A3C paper) and eps 1e-5. Stacks as ``Adam``.
    """

    def __init__(self, num_params: int | tuple[int, ...], lr: PerAgent = 7e-4, alpha: float = 0.99,
                 eps: float = 1e-5, max_grad_norm: PerAgent | None = None) -> None:
        self.lr, self.alpha, self.eps, self.max_grad_norm = lr, alpha, eps, max_grad_norm
        self.v_p = np.zeros(num_params)
        self.t = np.zeros(self.v_p.shape[:-1], dtype=np.int64)

    def step(self, theta_p: np.ndarray, grad_p: np.ndarray,
             active: bool | np.ndarray = True) -> tuple[np.ndarray, Info]:
        """Returns ``(new_theta_p, info)``; the square average is only stored where the result is finite (and the
        agent ``active``)."""
        grad_p, norm = clip_grad_norm(grad_p, self.max_grad_norm)
        with np.errstate(invalid="ignore", over="ignore"):
            v_p = self.alpha * self.v_p + (1 - self.alpha) * grad_p * grad_p
            new_theta_p = theta_p - np.asarray(self.lr)[..., None] * grad_p / (np.sqrt(v_p) + self.eps)
        ok = np.isfinite(new_theta_p).all(axis=-1) & active
        self.v_p, self.t = np.where(ok[..., None], v_p, self.v_p), self.t + ok
        return np.where(np.asarray(active)[..., None], new_theta_p, theta_p), {"grad_norm": norm, "lr": self.lr}

    def state(self) -> dict[str, np.ndarray]:
        return {"v": self.v_p.copy(), "t": np.array(self.t)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.v_p, self.t = np.array(state["v"]), np.array(state["t"], dtype=np.int64)
