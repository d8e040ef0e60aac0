"""Policies and value functions on flat parameter vectors; surrogate gradients; Fisher-vector products.

Maths: docs/03-policy-gradient.md (objectives), docs/04-natural-gradient.md (Fisher), docs/05-trpo.md (FVP).

A policy maps ``obs_no --MLP(theta)--> dist.params --> pi(a|s)``. Every objective below is a
function of the distribution only and returns ``(value, cotangent)``, the cotangent being
``d value / d dist.params``; ``Policy.vjp`` then pulls it back to ``theta_bar_p`` in one backward
pass. Objectives add before the pull-back, so a whole PPO loss costs one VJP.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from . import gsde
from .distributions import Categorical, DiagGaussian
from .errors import ShapeError, SpaceError
from .nn import MLP, count_params

LOG_STD_BOUNDS = (-5.0, 2.0)  # sigma in [0.0067, 7.4]: keeps 1/sigma^2 in the Fisher metric finite

# --- objectives: (value, d value / d dist.params) --------------------------------------------------


def scale(cotangent, c):
    return tuple(c * t for t in cotangent)


def add(*cotangents):
    return tuple(sum(parts) for parts in zip(*cotangents))


def weighted_log_prob(dist, act, w_n):
    """``sum_i w_i log pi(a_i|s_i)``; its gradient is the REINFORCE estimator when ``w = A / n``."""
    return float(w_n @ dist.log_prob(act)), weighted_score(dist, act, w_n)


def weighted_score(dist, act, w_n):
    """The cotangent of ``sum_i w_i log pi(a_i|s_i)``: ``w_i d log pi(a_i|s_i) / d params_i``."""
    return tuple(w_n[:, None] * g for g in dist.dlog_prob(act))


def ratio(dist, act, logp_old_n):
    """Importance weight ``r = pi_theta(a|s) / pi_old(a|s)``, shape ``(n,)``."""
    return np.exp(dist.log_prob(act) - logp_old_n)


def surrogate(dist, act, adv_n, logp_old_n):
    """``L(theta) = mean(r A)`` (Kakade & Langford 2002; TRPO eq. 14); ``grad = mean(r A grad log pi)``."""
    r_n = ratio(dist, act, logp_old_n)
    return float(np.mean(r_n * adv_n)), weighted_score(dist, act, r_n * adv_n / len(r_n))


def clipped_surrogate(dist, act, adv_n, logp_old_n, clip_eps):
    """``L_clip = mean(min(r A, clip(r, 1-eps, 1+eps) A))`` (PPO eq. 7).

    The gradient is ``r A grad log pi`` where the unclipped term is the smaller one and 0 where the
    clip is active (the min picks the constant branch). Returns ``(value, cotangent, clip_frac)``.
    """
    r_n = ratio(dist, act, logp_old_n)
    unclipped_n = r_n * adv_n
    clipped_n = np.clip(r_n, 1.0 - clip_eps, 1.0 + clip_eps) * adv_n
    active_n = unclipped_n <= clipped_n
    w_n = np.where(active_n, unclipped_n, 0.0) / len(r_n)
    clip_frac = float(np.mean(np.abs(r_n - 1.0) > clip_eps))
    return float(np.mean(np.minimum(unclipped_n, clipped_n))), weighted_score(dist, act, w_n), clip_frac


def mean_entropy(dist):
    """``mean H[pi(.|s)]`` and its cotangent."""
    return float(dist.entropy().mean()), scale(dist.dentropy(), 1.0 / len(dist.params[0]))


def mean_kl(old, new):
    """``mean KL(pi_old || pi_new)`` and its cotangent in ``new``'s parameters (TRPO eq. 12)."""
    return float(old.kl(new).mean()), scale(old.dkl(new), 1.0 / len(new.params[0]))


def value_loss(v_n, ret_n, v_old_n=None, clip_vf=0.0):
    """``L = mean((V - R)^2)`` and ``dL/dV = 2 (V - R) / n``.

    With ``clip_vf = c > 0``, PPO's clipped value loss (OpenAI Baselines' ppo2):
    ``L = mean(max((V - R)^2, (V_clip - R)^2))`` with ``V_clip = V_old + clip(V - V_old, -c, c)``.
    Where ``|V - V_old| <= c``, ``V_clip = V`` and the gradient is the plain one; beyond it ``V_clip``
    is a constant, so a row whose max picks the clipped term has gradient 0. (Comparing the two
    squares alone is not enough: inside the range ``V_old + (V - V_old)`` can round away from ``V``.)
    """
    err_n = v_n - ret_n
    if clip_vf <= 0:
        return float(np.mean(err_n**2)), 2.0 * err_n / len(err_n)
    d_n = v_n - v_old_n
    sq_n, sq_clipped_n = err_n**2, (v_old_n + np.clip(d_n, -clip_vf, clip_vf) - ret_n) ** 2
    flat_n = (sq_clipped_n > sq_n) & (np.abs(d_n) > clip_vf)
    return float(np.mean(np.maximum(sq_n, sq_clipped_n))), np.where(flat_n, 0.0, 2.0 * err_n / len(err_n))


# --- networks ---------------------------------------------------------------------------------------


def obs_dim_of(space):
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise SpaceError(f"observation space {space} is not supported: npgrad needs a 1-D Box "
                         "(flatten images or dicts with a gymnasium wrapper such as FlattenObservation)")
    return space.shape[0]


def check_obs(obs_no, obs_dim):
    obs_no = np.asarray(obs_no, dtype=np.float64)
    if obs_no.ndim != 2 or obs_no.shape[1] != obs_dim:
        raise ShapeError(f"observations must have shape (n, {obs_dim}), got {obs_no.shape}")
    return obs_no


class Forward:
    """What one forward pass leaves behind for the vjp and jvp: the distribution, the MLP cache and,
    with gSDE, the features ``phi_nf`` and log-std matrix ``Lambda_fa`` that ``sigma`` was computed from."""

    def __init__(self, dist, cache, features_nf=None, log_std_fa=None):
        self.dist, self.cache, self.features_nf, self.log_std_fa = dist, cache, features_nf, log_std_fa


class Policy:
    """A stochastic policy ``pi_theta(a|s)`` for a gymnasium observation and action space.

    ``Discrete(k)`` actions give a categorical head (``k`` logits); a 1-D ``Box`` gives a diagonal
    Gaussian whose mean is the MLP output and whose log-std is a state-independent vector stored
    at the end of ``theta``. ``theta`` (shape ``(p,)``) holds every parameter.

    ``sde=True`` (Gaussian only) makes the noise state-dependent (gSDE, ``npgrad/gsde.py``): the
    log-std becomes a matrix ``Lambda`` of shape ``(f, a)`` over the last hidden layer's ``f`` features.
    """

    def __init__(self, observation_space, action_space, hidden=(64, 64), activation="tanh",
                 log_std_init=0.0, rng=None, dtype=np.float64, sde=False):
        self.obs_dim = obs_dim_of(observation_space)
        if isinstance(action_space, spaces.Discrete):
            if action_space.start != 0:  # the policy's actions are category indices 0..n-1
                raise SpaceError(f"action space {action_space} starts at {action_space.start}: npgrad needs Discrete "
                                 "actions 0..n-1 (shift them with a gymnasium ActionWrapper)")
            self.kind, self.act_dim = "categorical", int(action_space.n)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            self.kind, self.act_dim = "gaussian", action_space.shape[0]
        else:
            raise SpaceError(f"action space {action_space} is not supported: npgrad supports "
                             "Discrete (categorical policy) and 1-D Box (diagonal Gaussian policy)")
        if sde and self.kind != "gaussian":
            raise SpaceError(f"state-dependent exploration (use_sde) needs a Box action space, got {action_space}")
        self.sde = bool(sde)
        sizes = (self.obs_dim, *hidden, self.act_dim)
        log_std_shape = {"categorical": (0,), "gaussian": (self.act_dim,)}[self.kind]
        if self.sde:
            log_std_shape = (sizes[-2], self.act_dim)  # one row per feature of the last hidden layer
        self.num_net_params = count_params(sizes)
        self._theta = np.zeros(self.num_net_params + int(np.prod(log_std_shape)))
        self.net = MLP(sizes, activation, out_gain=0.01, rng=rng, theta=self._theta[: self.num_net_params],
                       dtype=dtype)
        self.log_std = self._theta[self.num_net_params:].reshape(log_std_shape)  # a view into theta
        self.log_std[...] = log_std_init

    @property
    def theta(self):
        return self._theta

    @theta.setter
    def theta(self, value):
        self._theta[...] = value

    @property
    def num_params(self):
        return len(self._theta)

    def forward(self, obs_no, features_nf=None):
        """``obs_no (n, o) -> Forward``: the distribution and the MLP cache for ``vjp``/``jvp``.

        With gSDE, ``sigma`` is computed from the last hidden layer ``phi`` (a stop-gradient), or from
        ``features_nf`` if given: the function whose derivatives ``vjp`` and ``jvp`` return.
        """
        out_na, cache = self.net.forward(check_obs(obs_no, self.obs_dim))
        if self.kind == "categorical":
            return Forward(Categorical(out_na), cache)
        if not self.sde:
            return Forward(DiagGaussian(out_na, self.log_std), cache)
        phi_nf = np.asarray(cache.acts[-2] if features_nf is None else features_nf, dtype=np.float64)
        log_std_fa = self.log_std.copy()
        return Forward(DiagGaussian(out_na, gsde.log_sigma(phi_nf, log_std_fa)), cache, phi_nf, log_std_fa)

    def distribution(self, obs_no):
        return self.forward(obs_no).dist

    def log_prob(self, obs_no, act):
        """``log pi_theta(a_i|s_i)``, shape ``(n,)``."""
        return self.distribution(obs_no).log_prob(act)

    def sample_exploration(self, n, rng):
        """gSDE: ``n`` exploration matrices ``E_nfa ~ N(0, exp(Lambda)^2)``, one per environment."""
        return gsde.sample_exploration(self.log_std, n, rng)

    def sample(self, fwd, rng, explore_nfa=None):
        """``a ~ pi(.|s)``; with gSDE ``a = mu(s) + phi(s) E_n`` for the given (or fresh) exploration matrices."""
        if not self.sde:
            return fwd.dist.sample(rng)
        if explore_nfa is None:
            explore_nfa = self.sample_exploration(len(fwd.features_nf), rng)
        return fwd.dist.mean_na + gsde.noise(fwd.features_nf, explore_nfa)

    def vjp(self, fwd, cotangent):
        """Pull a cotangent in distribution parameters back to ``theta_bar_p``."""
        theta_bar_p = np.empty(self.num_params)
        theta_bar_p[: self.num_net_params] = self.net.vjp(fwd.cache, cotangent[0])
        if self.sde:
            theta_bar_p[self.num_net_params:] = gsde.log_sigma_vjp(fwd.features_nf, fwd.log_std_fa,
                                                                   fwd.dist.log_std_na, cotangent[1]).ravel()
        elif self.kind == "gaussian":  # log_std is shared by every row: its cotangents add up
            theta_bar_p[self.num_net_params:] = cotangent[1].sum(axis=0)
        return theta_bar_p

    def jvp(self, fwd, v_p):
        """Push a parameter tangent ``v_p`` forward to a tangent of the distribution parameters."""
        mean_dot = self.net.jvp(fwd.cache, v_p[: self.num_net_params])
        if self.kind == "categorical":
            return (mean_dot,)
        log_std_dot = v_p[self.num_net_params:].reshape(self.log_std.shape)
        if self.sde:
            return (mean_dot, gsde.log_sigma_jvp(fwd.features_nf, fwd.log_std_fa, fwd.dist.log_std_na, log_std_dot))
        return (mean_dot, np.broadcast_to(log_std_dot, mean_dot.shape))

    # --- gradients of the objectives: one forward and one VJP each ---------------------------------

    def _grad(self, obs_no, objective, *args):
        fwd = self.forward(obs_no)
        value, cotangent = objective(fwd.dist, *args)[:2]
        return value, self.vjp(fwd, cotangent)

    def weighted_log_prob_grad(self, obs_no, act, w_n):
        """``(sum_i w_i log pi(a_i|s_i), its gradient (p,))``."""
        return self._grad(obs_no, weighted_log_prob, act, np.asarray(w_n, dtype=np.float64))

    def surrogate_grad(self, obs_no, act, adv_n, logp_old_n):
        """``(mean(r A), its gradient (p,))``."""
        return self._grad(obs_no, surrogate, act, adv_n, logp_old_n)

    def clipped_surrogate_grad(self, obs_no, act, adv_n, logp_old_n, clip_eps):
        """``(mean(min(r A, clip(r) A)), its gradient (p,))``."""
        return self._grad(obs_no, clipped_surrogate, act, adv_n, logp_old_n, clip_eps)

    def entropy_grad(self, obs_no):
        """``(mean entropy, its gradient (p,))``."""
        return self._grad(obs_no, mean_entropy)

    def kl_grad(self, obs_no, old_dist):
        """``(mean KL(old || pi_theta), its gradient (p,))``."""
        return self._grad(obs_no, lambda dist: mean_kl(old_dist, dist))

    # --- the Fisher information -------------------------------------------------------------------

    def fvp_operator(self, obs_no, damping=0.0):
        """``v_p -> F v + damping v`` with ``F = (1/n) sum_i J_i^T M_i J_i`` at the current theta.

        ``F`` is the Hessian of ``mean KL(pi_old || pi_theta)`` at ``theta = theta_old`` (the
        first-order term vanishes there). One forward is shared by every product; each product
        is one JVP, the metric ``M`` of the distribution, and one VJP: no second backward pass.
        """
        fwd = self.forward(obs_no)
        n = len(fwd.cache.acts[0])

        def fvp(v_p):
            Mv = fwd.dist.fisher_vp(*self.jvp(fwd, v_p))
            return self.vjp(fwd, Mv) / n + damping * v_p

        return fvp

    def fisher_vector_product(self, obs_no, v_p, damping=0.0):
        """``F v + damping v``, shape ``(p,)`` (see ``fvp_operator``)."""
        return self.fvp_operator(obs_no, damping)(np.asarray(v_p, dtype=np.float64))

    def fisher_matrix(self, obs_no):
        """Exact Fisher ``J^T M J / n``, shape ``(p, p)``, assembled column by column from FVPs."""
        fvp = self.fvp_operator(obs_no)
        F_pp = np.column_stack([fvp(e_p) for e_p in np.eye(self.num_params)])
        return 0.5 * (F_pp + F_pp.T)  # symmetric in exact arithmetic; remove rounding asymmetry

    def scores(self, obs_no, act):
        """Per-sample scores ``grad_theta log pi(a_i|s_i)``, shape ``(n, p)``."""
        fwd = self.forward(obs_no)
        g = fwd.dist.dlog_prob(act)
        n = len(g[0])
        S_np = np.empty((n, self.num_params))
        S_np[:, : self.num_net_params] = self.net.per_sample_vjp(fwd.cache, g[0])
        if self.sde:  # row n, entry (f, a): w_nfa g_na, the chain rule through log sigma
            w_nfa = gsde.log_sigma_jacobian(fwd.features_nf, fwd.log_std_fa, fwd.dist.log_std_na)
            S_np[:, self.num_net_params:] = (w_nfa * g[1][:, None, :]).reshape(n, -1)
        elif self.kind == "gaussian":
            S_np[:, self.num_net_params:] = g[1]
        return S_np

    def empirical_fisher(self, obs_no, act):
        """Empirical Fisher ``(1/n) sum_i s_i s_i^T`` from scores of sampled actions, ``(p, p)``."""
        S_np = self.scores(obs_no, act)
        return S_np.T @ S_np / len(S_np)


class ValueFunction:
    """State-value baseline ``V_phi(s)``: an MLP with one linear output (gain 1.0)."""

    def __init__(self, obs_dim, hidden=(64, 64), activation="tanh", rng=None, dtype=np.float64):
        self.obs_dim = obs_dim
        self.net = MLP((obs_dim, *hidden, 1), activation, out_gain=1.0, rng=rng, dtype=dtype)

    @property
    def theta(self):
        return self.net.theta

    @theta.setter
    def theta(self, value):
        self.net.theta = value

    def forward(self, obs_no):
        """``V_phi(s)`` for ``obs_no (n, o)``: ``(v_n, cache)``."""
        v_n1, cache = self.net.forward(check_obs(obs_no, self.obs_dim))
        return v_n1[:, 0], cache

    def __call__(self, obs_no):
        return self.forward(obs_no)[0]

    def vjp(self, cache, v_bar_n):
        """``phi_bar_p = d sum(V * v_bar) / d phi`` (backprop, docs/01)."""
        return self.net.vjp(cache, v_bar_n[:, None])

    def loss_grad(self, obs_no, ret_n, v_old_n=None, clip_vf=0.0):
        """``value_loss`` of ``V(s)`` (``mean((V(s) - R)^2)``, or PPO's clipped form if ``clip_vf > 0``)
        and its gradient in ``phi`` by one VJP. Returns ``(L, grad (p,))``."""
        v_n, cache = self.forward(obs_no)
        loss, v_bar_n = value_loss(v_n, ret_n, v_old_n, clip_vf)
        return loss, self.vjp(cache, v_bar_n)
