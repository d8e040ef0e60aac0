"""Generalised state-dependent exploration, gSDE (Raffin, Kober & Stulp 2022, "Smooth exploration for
robotic reinforcement learning"), with its derivatives in the log-std matrix.

Maths: docs/02-distributions.md, section "State-dependent exploration".

The noise is a linear function of the policy's last hidden layer ``phi(s)`` (``f`` features), with
an exploration matrix ``E`` that is drawn once and then held for several steps:

    E_fa ~ N(0, exp(Lambda_fa)^2)           drawn every ``sde_sample_freq`` steps, one per environment
    a = mu(s) + phi(s) E                    so nearby states get nearby noise (smooth exploration)

For a fixed ``s`` that action is Gaussian with independent coordinates and variance

    sigma_a(s)^2 = sum_f phi_f(s)^2 exp(2 Lambda_fa) + eps,     eps = 1e-6 (as SB3),

so ``pi(a|s)`` is a ``DiagGaussian(mu(s), log sigma(s))`` and everything else in npgrad (log-probs,
KL, entropy, Fisher) applies unchanged. As in the paper and SB3's default, ``phi`` is a
stop-gradient in ``sigma``: ``Lambda`` learns the noise scale, and the network learns it only through
``mu``. With ``w_nfa = phi_nf^2 exp(2 Lambda_fa) / sigma_na^2`` (each row of ``w`` sums to at most 1),

    d log sigma_na / d Lambda_fa = w_nfa,

which gives the vjp ``Lambda_bar = exp(2 Lambda) * ((phi^2)^T (log_sigma_bar / sigma^2))`` and the jvp
``log_sigma_dot = (phi^2) (exp(2 Lambda) * Lambda_dot) / sigma^2``: two matrix products each.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-6  # added to the variance, as SB3's StateDependentNoiseDistribution


def log_sigma(phi_nf, log_std_fa):
    """``log sigma_na = 1/2 log(sum_f phi_nf^2 exp(2 Lambda_fa) + eps)``."""
    return 0.5 * np.log(phi_nf**2 @ np.exp(2.0 * log_std_fa) + EPS)


def log_sigma_jacobian(phi_nf, log_std_fa, log_sigma_na):
    """``w_nfa = d log sigma_na / d Lambda_fa = phi_nf^2 exp(2 Lambda_fa) / sigma_na^2``, shape ``(n, f, a)``
    (per-sample scores need it whole; the vjp and jvp below never form it)."""
    exponent_nfa = 2.0 * log_std_fa[..., None, :, :] - 2.0 * log_sigma_na[..., :, None, :]
    return phi_nf[..., :, :, None] ** 2 * np.exp(exponent_nfa)


def log_sigma_vjp(phi_nf, log_std_fa, log_sigma_na, log_sigma_bar_na):
    """``Lambda_bar_fa = sum_n w_nfa log_sigma_bar_na = exp(2 Lambda) * ((phi^2)^T (log_sigma_bar / sigma^2))``."""
    phi2_fn = np.swapaxes(phi_nf, -1, -2) ** 2
    return np.exp(2.0 * log_std_fa) * (phi2_fn @ (log_sigma_bar_na * np.exp(-2.0 * log_sigma_na)))


def log_sigma_jvp(phi_nf, log_std_fa, log_sigma_na, log_std_dot_fa):
    """``log_sigma_dot_na = sum_f w_nfa Lambda_dot_fa = (phi^2) (exp(2 Lambda) * Lambda_dot) / sigma^2``."""
    return (phi_nf**2 @ (np.exp(2.0 * log_std_fa) * log_std_dot_fa)) * np.exp(-2.0 * log_sigma_na)


def sample_exploration(log_std_fa, n, rng):
    """``n`` exploration matrices ``E_nfa ~ N(0, exp(Lambda_fa)^2)``, one per environment (of each agent, for a
    stacked ``Lambda`` and a ``npgrad.rngs.Generators``)."""
    lead, fa = log_std_fa.shape[:-2], log_std_fa.shape[-2:]
    return np.exp(log_std_fa[..., None, :, :]) * rng.standard_normal((*lead, n, *fa))


def noise(phi_nf, explore_nfa):
    """``eps_na = phi_n E_n``: row ``n``'s features times its own exploration matrix."""
    return (phi_nf[..., None, :] @ explore_nfa)[..., 0, :]  # a batch of (1, f) @ (f, a) products
