"""Policy distributions with analytic derivatives in their own parameters.

Maths: docs/02-distributions.md.

Every class shares one interface. A distribution is a batch of ``n`` distributions described by a
tuple of parameter arrays ``dist.params`` (``(logits_na,)`` or ``(mean_na, log_std_na)``); every
derivative is returned as a tuple of the same shapes, so a policy can feed it straight into its
network's vjp. Reductions are over the last axis, so leading axes (independent agents, ``(S, n, a)``)
pass through every class:

=====================  =========================================================
method                 what it computes
=====================  =========================================================
``log_prob(act)``      ``log pi(a|s)``, shape ``(n,)``
``dlog_prob(act)``     ``d log pi / d params`` (the score in parameter space)
``entropy()``          ``H[pi]``, shape ``(n,)``
``dentropy()``         ``d H / d params``
``kl(q)``              ``KL(self || q)``, shape ``(n,)``
``dkl(q)``             ``d KL(self || q) / d (q's params)``
``fisher_vp(*t)``      ``M t``: the Fisher metric ``E[score score^T]`` applied to a tangent ``t``
=====================  =========================================================
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

LOG_2PI = np.log(2.0 * np.pi)


def log_softmax(logits_na: np.ndarray) -> np.ndarray:
    """``log p_i = z_i - log sum_j exp z_j``, computed after subtracting the row max (stable)."""
    shifted = logits_na - logits_na.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def rows_of(x_na: np.ndarray) -> np.ndarray:
    """``x`` viewed as ``(N, a)``: every leading axis (agents, rows) folded into one."""
    return x_na.reshape(-1, x_na.shape[-1])


def at(act_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index of entry ``a_i`` in each row of ``rows_of(x)``: as fast as fancy indexing on ``(n, a)``."""
    return np.arange(act_n.size), act_n.ravel()


class Categorical:
    """``pi(a) = softmax(logits)_a`` for ``n`` rows of ``a`` logits (``logits_na``)."""

    def __init__(self, logits_na: ArrayLike) -> None:
        self.logits_na = np.asarray(logits_na, dtype=np.float64)
        if self.logits_na.ndim < 2:
            raise ValueError(f"Categorical expects logits of shape (n, a), got {self.logits_na.shape}")
        self.logp_na = log_softmax(self.logits_na)
        self.p_na = np.exp(self.logp_na)

    @property
    def params(self) -> tuple[np.ndarray]:
        return (self.logits_na,)

    def __getitem__(self, idx: Any) -> Categorical:
        """The distributions of rows ``idx`` (e.g. a minibatch of the old policy), without recomputing them."""
        rows = object.__new__(Categorical)
        rows.logits_na, rows.logp_na, rows.p_na = self.logits_na[idx], self.logp_na[idx], self.p_na[idx]
        return rows

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Inverse-CDF sampling: the first action whose cumulative probability exceeds ``u ~ U(0,1)``."""
        u_n1 = rng.random((*self.p_na.shape[:-1], 1))
        act_n = (np.cumsum(self.p_na, axis=-1) <= u_n1).sum(axis=-1)
        return np.minimum(act_n, self.p_na.shape[-1] - 1)  # cumsum may round to just below 1

    def mode(self) -> np.ndarray:
        return self.logits_na.argmax(axis=-1)

    def _check_act(self, act_n: ArrayLike) -> np.ndarray:
        act_n = np.asarray(act_n)
        if act_n.shape != self.p_na.shape[:-1]:
            raise ValueError(f"Categorical actions must have shape {self.p_na.shape[:-1]}, got {act_n.shape}")
        return act_n.astype(np.int64, copy=False)

    def log_prob(self, act_n: ArrayLike) -> np.ndarray:
        """``log p_a = z_a - log sum_j exp z_j``, shape ``(n,)``."""
        act_n = self._check_act(act_n)
        return rows_of(self.logp_na)[at(act_n)].reshape(act_n.shape)

    def dlog_prob(self, act_n: ArrayLike) -> tuple[np.ndarray]:
        """``d log p_a / d z = onehot(a) - p``."""
        act_n = self._check_act(act_n)
        g_na = -self.p_na  # a new array
        rows_of(g_na)[at(act_n)] += 1.0  # a view: writes g_na
        return (g_na,)

    def entropy(self) -> np.ndarray:
        """``H = -sum_i p_i log p_i``."""
        return -(self.p_na * self.logp_na).sum(axis=-1)

    def dentropy(self) -> tuple[np.ndarray]:
        """``dH / dz_j = -p_j (log p_j + H)``."""
        return (-self.p_na * (self.logp_na + self.entropy()[..., None]),)

    def kl(self, other: Categorical) -> np.ndarray:
        """``KL(p || q) = sum_i p_i (log p_i - log q_i)``."""
        return (self.p_na * (self.logp_na - other.logp_na)).sum(axis=-1)

    def dkl(self, other: Categorical) -> tuple[np.ndarray]:
        """``d KL(p || q) / d z_q = q - p``."""
        return (other.p_na - self.p_na,)

    def fisher_vp(self, z_dot_na: np.ndarray) -> tuple[np.ndarray]:
        """``M z_dot`` with ``M = diag(p) - p p^T`` (the covariance of the score ``onehot(a) - p``)."""
        return (self.p_na * (z_dot_na - (self.p_na * z_dot_na).sum(axis=-1, keepdims=True)),)


class DiagGaussian:
    """``pi(a) = N(a; mean, diag(exp(log_std))^2)``; log-probs and entropies sum over ``a`` dims.

    ``log_std`` may be shape ``(a,)`` (state independent, as in the policies here) or ``(n, a)``;
    it is broadcast to ``(n, a)`` so every derivative has the shape of ``mean_na``.
    """

    def __init__(self, mean_na: ArrayLike, log_std: ArrayLike) -> None:
        self.mean_na = np.asarray(mean_na, dtype=np.float64)
        if self.mean_na.ndim < 2:
            raise ValueError(f"DiagGaussian expects a mean of shape (n, a), got {self.mean_na.shape}")
        # a copy: a policy passes its live log-std parameters, and an "old" distribution must not move
        self.log_std_na = np.broadcast_to(np.array(log_std, dtype=np.float64), self.mean_na.shape)
        self.std_na = np.exp(self.log_std_na)

    @property
    def params(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.mean_na, self.log_std_na)

    def __getitem__(self, idx: Any) -> DiagGaussian:
        """The distributions of rows ``idx`` (e.g. a minibatch of the old policy)."""
        return DiagGaussian(self.mean_na[idx], self.log_std_na[idx])

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """``a = mu + sigma * xi`` with ``xi ~ N(0, I)``, shape ``(n, a)``."""
        return self.mean_na + self.std_na * rng.standard_normal(self.mean_na.shape)

    def mode(self) -> np.ndarray:
        return self.mean_na.copy()

    def _z(self, act_na: ArrayLike) -> np.ndarray:
        act_na = np.asarray(act_na, dtype=np.float64)
        if act_na.shape != self.mean_na.shape:
            raise ValueError(f"DiagGaussian actions must have shape {self.mean_na.shape}, got {act_na.shape}")
        return (act_na - self.mean_na) / self.std_na

    def log_prob(self, act_na: ArrayLike) -> np.ndarray:
        """``log pi = sum_k [-z_k^2 / 2 - log sigma_k - log(2 pi) / 2]``, ``z = (a - mu) / sigma``."""
        z_na = self._z(act_na)
        return (-0.5 * z_na**2 - self.log_std_na - 0.5 * LOG_2PI).sum(axis=-1)

    def dlog_prob(self, act_na: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``d/dmu = z / sigma``, ``d/dlog sigma = z^2 - 1``."""
        z_na = self._z(act_na)
        return (z_na / self.std_na, z_na**2 - 1.0)

    def entropy(self) -> np.ndarray:
        """``H = sum_k [log sigma_k + log(2 pi e) / 2]``."""
        return (self.log_std_na + 0.5 * (LOG_2PI + 1.0)).sum(axis=-1)

    def dentropy(self) -> tuple[np.ndarray, np.ndarray]:
        """``dH/dmu = 0``, ``dH/dlog sigma = 1``."""
        return (np.zeros_like(self.mean_na), np.ones_like(self.mean_na))

    def kl(self, other: DiagGaussian) -> np.ndarray:
        """``KL(p || q) = sum_k [log(s_q/s_p) + (s_p^2 + (mu_p - mu_q)^2) / (2 s_q^2) - 1/2]``."""
        var_ratio_na = (self.std_na**2 + (self.mean_na - other.mean_na) ** 2) / other.std_na**2
        return (other.log_std_na - self.log_std_na + 0.5 * var_ratio_na - 0.5).sum(axis=-1)

    def dkl(self, other: DiagGaussian) -> tuple[np.ndarray, np.ndarray]:
        """``d/dmu_q = (mu_q - mu_p) / s_q^2``; ``d/dlog s_q = 1 - (s_p^2 + (mu_p - mu_q)^2) / s_q^2``."""
        var_q_na = other.std_na**2
        var_ratio_na = (self.std_na**2 + (self.mean_na - other.mean_na) ** 2) / var_q_na
        return ((other.mean_na - self.mean_na) / var_q_na, 1.0 - var_ratio_na)

    def fisher_vp(self, mean_dot_na: np.ndarray, log_std_dot_na: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``M t`` with ``M = diag(1 / sigma^2)`` on the mean and ``2`` on each log-std."""
        return (mean_dot_na / self.std_na**2, 2.0 * log_std_dot_na)


class MultiCategorical:
    """Independent categoricals, one per factor ``k`` of a ``MultiDiscrete(nvec)`` action, on one logit row.

    ``logits_na`` holds ``sum(nvec)`` logits per row, factor ``k`` in its own block. For a product of
    independent distributions log-probs, entropies and KLs add, their derivatives are the factors'
    side by side, and the Fisher metric is block-diagonal: one ``diag(p_k) - p_k p_k^T`` per factor.
    """

    def __init__(self, logits_na: ArrayLike, nvec: Iterable[int]) -> None:
        self.logits_na, self.nvec = np.asarray(logits_na, dtype=np.float64), tuple(int(k) for k in nvec)
        if self.logits_na.ndim < 2 or self.logits_na.shape[-1] != sum(self.nvec):
            raise ValueError(f"MultiCategorical expects logits of shape (n, {sum(self.nvec)}), "
                             f"got {self.logits_na.shape}")
        self.ends = np.cumsum(self.nvec)
        self.factors = [Categorical(z_nk) for z_nk in np.split(self.logits_na, self.ends[:-1], axis=-1)]

    @property
    def params(self) -> tuple[np.ndarray]:
        return (self.logits_na,)

    def __getitem__(self, idx: Any) -> MultiCategorical:
        return MultiCategorical(self.logits_na[idx], self.nvec)

    def _join(self, per_factor: list[np.ndarray]) -> tuple[np.ndarray]:
        """The factors' ``(n, a_k)`` derivatives side by side: one ``(n, sum(nvec))`` tuple."""
        return (np.concatenate(per_factor, axis=-1),)

    def _check_act(self, act_nk: ArrayLike) -> np.ndarray:
        act_nk, shape = np.asarray(act_nk), (*self.logits_na.shape[:-1], len(self.nvec))
        if act_nk.shape != shape:
            raise ValueError(f"MultiCategorical actions must have shape {shape}, got {act_nk.shape}")
        return act_nk

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.stack([f.sample(rng) for f in self.factors], axis=-1)

    def mode(self) -> np.ndarray:
        return np.stack([f.mode() for f in self.factors], axis=-1)

    def log_prob(self, act_nk: ArrayLike) -> np.ndarray:
        """``log pi(a) = sum_k log p_k(a_k)``."""
        act_nk = self._check_act(act_nk)
        return sum(f.log_prob(act_nk[..., k]) for k, f in enumerate(self.factors))  # type: ignore[return-value]

    def dlog_prob(self, act_nk: ArrayLike) -> tuple[np.ndarray]:
        """Factor ``k``'s block: ``onehot(a_k) - p_k``."""
        act_nk = self._check_act(act_nk)
        return self._join([f.dlog_prob(act_nk[..., k])[0] for k, f in enumerate(self.factors)])

    def entropy(self) -> np.ndarray:
        """``H = sum_k H_k``."""
        return sum(f.entropy() for f in self.factors)  # type: ignore[return-value]  # never the empty sum, 0

    def dentropy(self) -> tuple[np.ndarray]:
        return self._join([f.dentropy()[0] for f in self.factors])

    def kl(self, other: MultiCategorical) -> np.ndarray:
        """``KL(p || q) = sum_k KL(p_k || q_k)``."""
        return sum(f.kl(g) for f, g in zip(self.factors, other.factors))  # type: ignore[return-value]

    def dkl(self, other: MultiCategorical) -> tuple[np.ndarray]:
        """Factor ``k``'s block: ``q_k - p_k``."""
        return self._join([f.dkl(g)[0] for f, g in zip(self.factors, other.factors)])

    def fisher_vp(self, z_dot_na: np.ndarray) -> tuple[np.ndarray]:
        """``M z_dot`` with block-diagonal ``M``: ``p_k * (z_dot_k - <p_k, z_dot_k>)`` per block."""
        blocks = np.split(z_dot_na, self.ends[:-1], axis=-1)
        return self._join([f.fisher_vp(z_dot)[0] for f, z_dot in zip(self.factors, blocks)])


def log_sigmoid(z: np.ndarray) -> np.ndarray:
    """``log sigma(z) = -log(1 + e^-z)``, computed without overflow for any ``z``."""
    return -np.logaddexp(0.0, -z)


class Bernoulli:
    """Independent Bernoullis on logits, one per coordinate of a ``MultiBinary(a)`` action: ``p = sigma(z)``.

    Per coordinate ``log pi(a) = a z - log(1 + e^z)``; log-probs and entropies sum over ``a`` dims.
    """

    def __init__(self, logits_na: ArrayLike) -> None:
        self.logits_na = np.asarray(logits_na, dtype=np.float64)
        if self.logits_na.ndim < 2:
            raise ValueError(f"Bernoulli expects logits of shape (n, a), got {self.logits_na.shape}")
        self.logp_na, self.log1mp_na = log_sigmoid(self.logits_na), log_sigmoid(-self.logits_na)
        self.p_na = np.exp(self.logp_na)

    @property
    def params(self) -> tuple[np.ndarray]:
        return (self.logits_na,)

    def __getitem__(self, idx: Any) -> Bernoulli:
        return Bernoulli(self.logits_na[idx])

    def _check_act(self, act_na: ArrayLike) -> np.ndarray:
        act_na = np.asarray(act_na)
        if act_na.shape != self.logits_na.shape:
            raise ValueError(f"Bernoulli actions must have shape {self.logits_na.shape}, got {act_na.shape}")
        return act_na.astype(np.float64)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """``a = 1[u < p]`` with ``u ~ U(0, 1)``."""
        return (rng.random(self.p_na.shape) < self.p_na).astype(np.int64)

    def mode(self) -> np.ndarray:
        return (self.logits_na > 0).astype(np.int64)

    def log_prob(self, act_na: ArrayLike) -> np.ndarray:
        """``log pi = sum_k [a_k log p_k + (1 - a_k) log(1 - p_k)]``."""
        act_na = self._check_act(act_na)
        return (act_na * self.logp_na + (1.0 - act_na) * self.log1mp_na).sum(axis=-1)

    def dlog_prob(self, act_na: ArrayLike) -> tuple[np.ndarray]:
        """``d log pi / d z = a - p``."""
        return (self._check_act(act_na) - self.p_na,)

    def entropy(self) -> np.ndarray:
        """``H = -sum_k [p_k log p_k + (1 - p_k) log(1 - p_k)]``."""
        return -(self.p_na * self.logp_na + (1.0 - self.p_na) * self.log1mp_na).sum(axis=-1)

    def dentropy(self) -> tuple[np.ndarray]:
        """``dH/dz = -z p (1 - p)``: with ``dp/dz = p (1 - p)``, ``dH/dp = log((1 - p) / p) = -z``."""
        return (-self.logits_na * self.p_na * (1.0 - self.p_na),)

    def kl(self, other: Bernoulli) -> np.ndarray:
        """``KL(p || q) = sum_k [p_k (log p_k - log q_k) + (1 - p_k)(log(1 - p_k) - log(1 - q_k))]``."""
        return (self.p_na * (self.logp_na - other.logp_na)
                + (1.0 - self.p_na) * (self.log1mp_na - other.log1mp_na)).sum(axis=-1)

    def dkl(self, other: Bernoulli) -> tuple[np.ndarray]:
        """``d KL(p || q) / d z_q = q - p``, as for a categorical."""
        return (other.p_na - self.p_na,)

    def fisher_vp(self, z_dot_na: np.ndarray) -> tuple[np.ndarray]:
        """``M z_dot`` with ``M = diag(p (1 - p))``, the variance of the score ``a - p``."""
        return (self.p_na * (1.0 - self.p_na) * z_dot_na,)
