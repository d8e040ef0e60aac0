"""Returns and advantages: discounted sums and generalized advantage estimation.

Maths: docs/06-gae.md. Rollouts are ``(T, E)`` arrays: ``T`` time steps of ``E`` parallel
environments. Each vectorised function has a plain-loop reference beside it, tested equal.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import lfilter


def discount_cumsum(x_t: ArrayLike, gamma: float) -> np.ndarray:
    """``y_t = sum_{k >= t} gamma^(k-t) x_k`` along axis 0, via the IIR filter ``y_t = x_t + gamma y_{t+1}``.

    >>> discount_cumsum([1.0, 1.0, 1.0], 0.5)
    array([1.75, 1.5 , 1.  ])
    """
    x_t = np.asarray(x_t, dtype=np.float64)
    return lfilter([1.0], [1.0, -gamma], x_t[::-1], axis=0)[::-1]


def discount_cumsum_loop(x_t: Sequence[float] | np.ndarray, gamma: float) -> np.ndarray:
    """Plain-loop reference for ``discount_cumsum``."""
    y_t = np.zeros(len(x_t))
    running = 0.0
    for t in reversed(range(len(x_t))):
        running = x_t[t] + gamma * running
        y_t[t] = running
    return y_t


def td_residuals(rew_te: np.ndarray, val_te: np.ndarray, next_val_te: np.ndarray, terminated_te: np.ndarray,
                 gamma: float) -> np.ndarray:
    """``delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)`` (GAE eq. 9).

    A terminal state has value 0; a state cut off by a time limit keeps ``V(s_{t+1})``, the value
    of the true final observation.
    """
    return rew_te + gamma * (1.0 - terminated_te) * next_val_te - val_te


def gae(rew_te: np.ndarray, val_te: np.ndarray, next_val_te: np.ndarray, terminated_te: np.ndarray,
        truncated_te: np.ndarray, gamma: float = 0.99, lam: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16) over a ``(T, E)`` rollout.

    ``A_t = sum_l (gamma lam)^l delta_{t+l}``, the sum stopping at the end of the episode, computed
    backwards as ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` with
    ``done = terminated | truncated``. ``next_val_te[t]`` is ``V`` of the observation that followed
    step ``t`` (the true final observation when the episode ended there; the next observation of
    the rollout at ``t = T-1``). Returns ``(adv_te, ret_te)`` with value targets ``ret = A + V``
    (the TD(lambda) return). ``lam = 0``: one-step TD errors; ``lam = 1``: discounted returns minus ``V``.
    """
    delta_te = td_residuals(rew_te, val_te, next_val_te, terminated_te, gamma)
    keep_te = gamma * lam * (1.0 - np.logical_or(terminated_te, truncated_te))
    adv_te = np.empty_like(delta_te)
    running_e = np.zeros(delta_te.shape[1:])
    for t in reversed(range(len(delta_te))):  # vectorised across environments
        running_e = delta_te[t] + keep_te[t] * running_e
        adv_te[t] = running_e
    return adv_te, adv_te + val_te


def gae_loop(rew_te: np.ndarray, val_te: np.ndarray, next_val_te: np.ndarray, terminated_te: np.ndarray,
             truncated_te: np.ndarray, gamma: float = 0.99, lam: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Plain-loop reference for ``gae``: one environment and one step at a time."""
    T, E = np.shape(rew_te)
    adv_te = np.zeros((T, E))
    for e in range(E):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminated_te[t, e] else gamma * next_val_te[t, e]
            delta = rew_te[t, e] + bootstrap - val_te[t, e]
            if terminated_te[t, e] or truncated_te[t, e]:
                running = 0.0
            running = delta + gamma * lam * running
            adv_te[t, e] = running
    return adv_te, adv_te + np.asarray(val_te)
