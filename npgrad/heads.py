"""Policy heads: what sits between the MLP's outputs and ``pi(a|s)``.

Maths: docs/02-distributions.md. A policy's parameters are ``theta = [MLP | head]``; a head owns
the second slice (nothing for a categorical, the log-std for a Gaussian, the matrix ``Lambda`` for
gSDE), builds the distribution from the MLP outputs and its slice, and carries the chain rule
through that step in both directions:

==========  =====================================================  =========================
head        distribution parameters                                its own parameters
==========  =====================================================  =========================
categorical ``logits = out`` (MultiDiscrete: one block per factor)  none
Bernoulli   ``logits = out``, one per MultiBinary coordinate        none
Gaussian    ``mu = out``, ``log sigma = log_std`` (every row)      ``log_std`` (a,)
gSDE        ``mu = out``, ``log sigma = 1/2 log(phi^2 e^(2 Lambda) + eps)``  ``Lambda`` (f, a)
==========  =====================================================  =========================

``vjp(fwd, cotangent) -> (out_bar, head_bar)`` and ``jvp(fwd, out_dot, head_dot) -> tangent``
are the transposes of each other; ``Policy`` adds the MLP's half. A new action distribution is
one new head.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from . import gsde
from .distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from .errors import SpaceError

LOG_STD_BOUNDS = (-5.0, 2.0)  # sigma in [0.0067, 7.4]: keeps 1/sigma^2 in the Fisher metric finite


class CategoricalHead:
    """``pi(a|s) = softmax(out)_a`` for ``Discrete(k)`` actions ``0..k-1``; no parameters of its own."""

    num_params, needs_features = 0, False
    act_shape, act_dtype = (), np.int64

    def __init__(self, n):
        self.out_dim = n

    def init_params(self, log_std_init):
        return np.zeros(0)

    def distribution(self, out_na, head_p, features_nf):
        return Categorical(out_na)

    def vjp(self, fwd, cotangent):
        return cotangent[0], np.zeros(cotangent[0].shape[:-2] + (0,))  # no parameters (of each agent)

    def jvp(self, fwd, out_dot_na, head_dot_p):
        return (out_dot_na,)

    def scores(self, fwd, score):
        return np.zeros((len(score[0]), 0))

    def exploration(self, head_p, n, rng):
        return None

    def sample(self, fwd, rng, explore):
        return fwd.dist.sample(rng)

    def to_env(self, act):
        return act

    def project(self, head_p):
        return head_p


class MultiCategoricalHead(CategoricalHead):
    """``MultiDiscrete(nvec)``: independent categoricals, ``sum(nvec)`` logits, actions of shape ``(k,)``."""

    def __init__(self, nvec):
        self.nvec, self.out_dim, self.act_shape = tuple(int(k) for k in nvec), int(sum(nvec)), (len(nvec),)

    def distribution(self, out_na, head_p, features_nf):
        return MultiCategorical(out_na, self.nvec)


class BernoulliHead(CategoricalHead):
    """``MultiBinary(n)``: ``n`` independent Bernoullis on logits, actions of shape ``(n,)`` in {0, 1}."""

    def __init__(self, n):
        self.out_dim, self.act_shape = int(n), (int(n),)

    def distribution(self, out_na, head_p, features_nf):
        return Bernoulli(out_na)


class GaussianHead:
    """``pi(a|s) = N(out, diag(exp(log_std))^2)`` with one state-independent ``log_std`` vector."""

    act_dtype, needs_features = np.float64, False

    def __init__(self, space):
        self.out_dim = self.num_params = space.shape[0]
        self.act_shape, self.low, self.high, self.env_dtype = space.shape, space.low, space.high, space.dtype

    def init_params(self, log_std_init):
        return np.full(self.num_params, float(log_std_init))

    def distribution(self, out_na, head_p, features_nf):
        return DiagGaussian(out_na, head_p[..., None, :])  # one log-std row for every state (of each agent)

    def vjp(self, fwd, cotangent):
        """``log_std`` is shared by every row, so its cotangents add up."""
        return cotangent[0], cotangent[1].sum(axis=-2)

    def jvp(self, fwd, out_dot_na, head_dot_p):
        return out_dot_na, np.broadcast_to(head_dot_p[..., None, :], out_dot_na.shape)

    def scores(self, fwd, score):
        return score[1]

    def exploration(self, head_p, n, rng):
        return None

    def sample(self, fwd, rng, explore):
        return fwd.dist.sample(rng)

    def to_env(self, act):
        """Samples are unbounded; the environment gets them clipped to the Box and in its dtype (as SB3), so
        ``space.contains`` holds. The policy's log-probabilities are of the float64 samples."""
        return np.clip(act, self.low, self.high).astype(self.env_dtype, copy=False)

    def project(self, head_p):
        return np.clip(head_p, *LOG_STD_BOUNDS)


class GSDEHead(GaussianHead):
    """gSDE (npgrad/gsde.py): ``a = mu(s) + phi(s) E`` with ``E ~ N(0, exp(Lambda)^2)`` held for several steps.

    ``phi`` is the MLP's last hidden layer, a stop-gradient in ``sigma`` (Raffin et al. 2022).
    """

    needs_features = True

    def __init__(self, space, n_features):
        super().__init__(space)
        self.shape = (n_features, space.shape[0])
        self.num_params = n_features * space.shape[0]

    def distribution(self, out_na, head_p, features_nf):
        return DiagGaussian(out_na, gsde.log_sigma(features_nf, self.matrix(head_p)))

    def vjp(self, fwd, cotangent):
        Lambda_bar = gsde.log_sigma_vjp(fwd.features_nf, self.matrix(fwd.head_p), fwd.dist.log_std_na, cotangent[1])
        return cotangent[0], Lambda_bar.reshape(*Lambda_bar.shape[:-2], -1)

    def jvp(self, fwd, out_dot_na, head_dot_p):
        return out_dot_na, gsde.log_sigma_jvp(fwd.features_nf, self.matrix(fwd.head_p), fwd.dist.log_std_na,
                                              self.matrix(head_dot_p))

    def scores(self, fwd, score):
        """Row ``n``, entry ``(f, a)``: ``w_nfa score_na``, the chain rule through ``log sigma``."""
        w_nfa = gsde.log_sigma_jacobian(fwd.features_nf, self.matrix(fwd.head_p), fwd.dist.log_std_na)
        return (w_nfa * score[1][:, None, :]).reshape(len(w_nfa), -1)

    def matrix(self, head_p):
        """``Lambda_fa`` (of each agent) from its flat slice of ``theta``."""
        return head_p.reshape(*head_p.shape[:-1], *self.shape)

    def exploration(self, head_p, n, rng):
        """``n`` exploration matrices ``E_nfa``, one per environment."""
        return gsde.sample_exploration(self.matrix(head_p), n, rng)

    def sample(self, fwd, rng, explore):
        if explore is None:
            explore = self.exploration(fwd.head_p, fwd.features_nf.shape[-2], rng)
        return fwd.dist.mean_na + gsde.noise(fwd.features_nf, explore)


def make_head(action_space, sde=False, n_features=None):
    """The head for a gymnasium action space: ``Discrete`` -> categorical, 1-D ``Box`` -> Gaussian (or gSDE)."""
    if sde and not isinstance(action_space, spaces.Box):
        raise SpaceError(f"state-dependent exploration (use_sde) needs a Box action space, got {action_space}")
    if isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)) and np.any(action_space.start != 0):
        raise SpaceError(f"action space {action_space} starts at {action_space.start}: npgrad needs actions "
                         "0..n-1 (shift them with a gymnasium ActionWrapper)")  # category indices
    if isinstance(action_space, spaces.Discrete):
        return CategoricalHead(int(action_space.n))
    if isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        return MultiCategoricalHead(action_space.nvec)
    if isinstance(action_space, spaces.MultiBinary) and len(action_space.shape) == 1:
        return BernoulliHead(action_space.n)
    if isinstance(action_space, spaces.Box) and not np.issubdtype(action_space.dtype, np.floating):
        raise SpaceError(f"action space {action_space} holds integers: npgrad's policy for a Box is a Gaussian over "
                         "real numbers (use Discrete or MultiDiscrete actions, or a float Box)")
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return GSDEHead(action_space, n_features) if sde else GaussianHead(action_space)
    raise SpaceError(f"action space {action_space} is not supported: npgrad supports Discrete (categorical), "
                     "1-D MultiDiscrete (independent categoricals), 1-D MultiBinary (independent Bernoullis) and "
                     "1-D Box (diagonal Gaussian) actions")
