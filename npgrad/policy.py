"""Policies and value functions on flat parameter vectors; their gradients; Fisher-vector products.

Maths: docs/03-policy-gradient.md (objectives), docs/04-natural-gradient.md (Fisher), docs/05-trpo.md (FVP).

A policy maps ``obs_no --MLP(theta)--> out --head--> dist.params --> pi(a|s)``. The parameters are
an argument: every method takes ``theta_p`` (default: the policy's current ``theta``) and mutates
nothing, so a line search or a finite difference is a plain function of ``theta``. The objectives
(``npgrad/objectives.py``) return cotangents in ``dist.params``; ``Policy.vjp`` pulls one back to
``theta_bar_p`` in one backward pass, and ``Policy.jvp`` pushes a tangent ``v_p`` forward.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeError
from .heads import make_head
from .nn import MLP
from .observations import encoded_dim
from .objectives import scale_rows, value_loss


# --- networks ---------------------------------------------------------------------------------------


def check_obs(obs_no, obs_dim):
    """``obs_no`` as float64, if it is ``(n, o)`` (or ``(S, n, o)``: a batch for each of ``S`` stacked agents)."""
    obs_no = np.asarray(obs_no, dtype=np.float64)
    if obs_no.ndim not in (2, 3) or obs_no.shape[-1] != obs_dim:
        raise ShapeError(f"observations must have shape (n, {obs_dim}), got {obs_no.shape}")
    return obs_no


def policy_sizes(obs_dim, hidden, head, value_output=False):
    """A policy MLP's layer widths: the observation, the hidden layers, the head's inputs (and V, if shared)."""
    return (obs_dim, *hidden, head.out_dim + int(value_output))


class Forward:
    """What one forward pass leaves for ``vjp`` and ``jvp``: the distribution, the MLP's cache and outputs,
    the head's parameters ``head_p`` and, with gSDE, the features ``phi_nf`` that ``sigma`` was computed from."""

    def __init__(self, dist, cache, out_no, head_p, features_nf=None):
        self.dist, self.cache, self.out_no, self.head_p, self.features_nf = dist, cache, out_no, head_p, features_nf


class Policy:
    """A stochastic policy ``pi_theta(a|s)``: an MLP and a head (``npgrad/heads.py``) on ``theta = [MLP | head]``.

    ``Discrete(k)`` actions give a categorical head, a 1-D ``Box`` a diagonal Gaussian with a
    state-independent log-std, or with ``sde=True`` gSDE's state-dependent noise. With
    ``value_output=True`` the MLP has one more output, ``V(s)``: a trunk shared with the value
    function (PPO eq. 9), whose cotangent ``vjp`` takes as ``value_bar_n``.
    """

    def __init__(self, observation_space, action_space, hidden=(64, 64), activation="tanh",
                 log_std_init=0.0, rng=None, dtype=np.float64, sde=False, value_output=False):
        self.obs_dim = encoded_dim(observation_space)  # Discrete, Dict, ... observations arrive encoded
        self.head = make_head(action_space, sde, hidden[-1] if hidden else self.obs_dim)
        self.act_dim, self.value_output = self.head.out_dim, bool(value_output)
        gains = np.r_[np.full(self.act_dim, 0.01), np.ones(int(value_output))]  # small logits; V at unit scale
        self.net = MLP(policy_sizes(self.obs_dim, hidden, self.head, value_output), activation, out_gain=gains,
                       rng=rng, dtype=dtype)
        self.num_net_params = self.net.num_params
        self.theta = np.concatenate([self.net.theta, self.head.init_params(log_std_init)])

    @property
    def num_params(self):
        return self.theta.shape[-1]

    def forward(self, obs_no, theta_p=None, features_nf=None):
        """``obs_no (n, o) -> Forward`` at ``theta_p``. With gSDE, ``sigma`` is computed from the last hidden
        layer ``phi`` (a stop-gradient), or from ``features_nf`` if given."""
        theta_p = self.theta if theta_p is None else theta_p
        out_no, cache = self.net.forward(check_obs(obs_no, self.obs_dim), theta_p[..., : self.num_net_params])
        head_p = theta_p[..., self.num_net_params:]
        phi_nf = None
        if self.head.needs_features:
            phi_nf = np.asarray(cache.acts[-2] if features_nf is None else features_nf, dtype=np.float64)
        out_na = out_no[..., : self.act_dim] if self.value_output else out_no
        return Forward(self.head.distribution(out_na, head_p, phi_nf), cache, out_no, head_p, phi_nf)

    def distribution(self, obs_no, theta_p=None):
        return self.forward(obs_no, theta_p).dist

    def log_prob(self, obs_no, act, theta_p=None):
        """``log pi_theta(a_i|s_i)``, shape ``(n,)``."""
        return self.distribution(obs_no, theta_p).log_prob(act)

    def exploration(self, n, rng, theta_p=None):
        """gSDE's ``n`` exploration matrices (one per environment); None for other heads."""
        return self.head.exploration((self.theta if theta_p is None else theta_p)[..., self.num_net_params:], n, rng)

    def sample(self, fwd, rng, explore=None):
        """``a ~ pi(.|s)``; with gSDE ``a = mu(s) + phi(s) E_n`` for the given (or fresh) exploration matrices."""
        return self.head.sample(fwd, rng, explore)

    def to_env(self, act):
        """The action the environment gets (Gaussian samples clipped to the Box)."""
        return self.head.to_env(act)

    def project(self, theta_p):
        """``theta`` with the head's parameters kept in range (the log-std in ``LOG_STD_BOUNDS``)."""
        if self.head.num_params == 0:
            return theta_p
        n = self.num_net_params
        return np.concatenate([theta_p[..., :n], self.head.project(theta_p[..., n:])], axis=-1)

    def vjp(self, fwd, cotangent, value_bar_n=None):
        """Pull a cotangent in distribution parameters (and, with a shared trunk, in ``V``) back to ``theta_bar_p``:
        one backward pass through the MLP."""
        out_bar, head_bar = self.head.vjp(fwd, cotangent)
        if self.value_output:
            v_bar_n1 = (np.zeros(out_bar.shape[:-1] + (1,)) if value_bar_n is None else
                        np.asarray(value_bar_n)[..., None])
            out_bar = np.concatenate([out_bar, v_bar_n1], axis=-1)
        return np.concatenate([self.net.vjp(fwd.cache, out_bar), head_bar], axis=-1)

    def jvp(self, fwd, v_p):
        """Push a parameter tangent ``v_p`` forward to a tangent of the distribution parameters."""
        out_dot = self.net.jvp(fwd.cache, v_p[..., : self.num_net_params])
        return self.head.jvp(fwd, out_dot[..., : self.act_dim], v_p[..., self.num_net_params:])

    def objective_grad(self, obs_no, objective, *args, theta_p=None):
        """``(value, gradient (p,))`` of ``objective(dist, *args)`` at ``theta_p``: one forward and one VJP, e.g.
        ``objective_grad(obs_no, surrogate, act, adv_n, logp_old_n)`` for ``grad mean(r A)`` (npgrad/objectives.py)."""
        fwd = self.forward(obs_no, theta_p)
        value, cotangent = objective(fwd.dist, *args)[:2]
        return value, self.vjp(fwd, cotangent)

    # --- the Fisher information -------------------------------------------------------------------

    def fvp_operator(self, obs_no, damping=0.0, theta_p=None, u_n=None):
        """``v_p -> F v + damping v`` with ``F = (1/n) sum_i J_i^T M_i J_i`` at ``theta_p`` (or ``sum_i u_i ...``
        with row weights ``u``).

        ``F`` is the Hessian of ``mean KL(pi_old || pi_theta)`` at ``theta = theta_old`` (the
        first-order term vanishes there); for gSDE, with its features held fixed, as its noise treats them
        (docs/02). One forward is shared by every product; each product
        is one JVP, the metric ``M`` of the distribution, and one VJP: no second backward pass.
        """
        fwd = self.forward(obs_no, theta_p)
        n = fwd.cache.acts[0].shape[-2]

        def fvp(v_p):
            Mv = fwd.dist.fisher_vp(*self.jvp(fwd, v_p))
            if u_n is None:
                return self.vjp(fwd, Mv) / n + np.asarray(damping)[..., None] * v_p
            return self.vjp(fwd, scale_rows(Mv, u_n)) + np.asarray(damping)[..., None] * v_p  # damping per agent

        return fvp

    def fisher_vector_product(self, obs_no, v_p, damping=0.0, theta_p=None, u_n=None):
        """``F v + damping v``, shape ``(p,)`` (see ``fvp_operator``)."""
        return self.fvp_operator(obs_no, damping, theta_p, u_n)(np.asarray(v_p, dtype=np.float64))

    def fisher_matrix(self, obs_no, theta_p=None, u_n=None):
        """Exact Fisher ``J^T M J / n``, shape ``(p, p)``, assembled column by column from FVPs."""
        fvp = self.fvp_operator(obs_no, theta_p=theta_p, u_n=u_n)
        F_pp = np.column_stack([fvp(e_p) for e_p in np.eye(self.num_params)])
        return 0.5 * (F_pp + F_pp.T)  # symmetric in exact arithmetic; remove rounding asymmetry

    def scores(self, obs_no, act, theta_p=None):
        """Per-sample scores ``grad_theta log pi(a_i|s_i)``, shape ``(n, p)``."""
        fwd = self.forward(obs_no, theta_p)
        score = fwd.dist.dlog_prob(act)
        out_bar = score[0]
        if self.value_output:
            out_bar = np.concatenate([out_bar, np.zeros((len(out_bar), 1))], axis=-1)
        return np.concatenate([self.net.per_sample_vjp(fwd.cache, out_bar), self.head.scores(fwd, score)], axis=-1)

    def empirical_fisher(self, obs_no, act, theta_p=None, u_n=None):
        """Empirical Fisher ``(1/n) sum_i s_i s_i^T`` (or ``sum_i u_i s_i s_i^T``) from scores of sampled actions,
        ``(p, p)``."""
        S_np = self.scores(obs_no, act, theta_p)
        return S_np.T @ S_np / len(S_np) if u_n is None else (S_np.T * u_n) @ S_np


class ValueFunction:
    """State-value baseline ``V_phi(s)``: an MLP with one linear output (gain 1.0), on its own parameters."""

    def __init__(self, obs_dim, hidden=(64, 64), activation="tanh", rng=None, dtype=np.float64):
        self.obs_dim = obs_dim
        self.net = MLP((obs_dim, *hidden, 1), activation, out_gain=1.0, rng=rng, dtype=dtype)
        self.theta = self.net.theta

    def forward(self, obs_no, theta_p=None):
        """``V_phi(s)`` for ``obs_no (n, o)``: ``(v_n, cache)``."""
        v_n1, cache = self.net.forward(check_obs(obs_no, self.obs_dim), self.theta if theta_p is None else theta_p)
        return v_n1[..., 0], cache

    def __call__(self, obs_no, theta_p=None):
        return self.forward(obs_no, theta_p)[0]

    def project(self, theta_p):
        """Every value of ``phi`` is allowed."""
        return theta_p

    def vjp(self, cache, v_bar_n):
        """``phi_bar_p = d sum(V * v_bar) / d phi`` (backprop, docs/01)."""
        return self.net.vjp(cache, v_bar_n[..., None])

    def loss_grad(self, obs_no, ret_n, v_old_n=None, clip_vf=0.0, theta_p=None, u_n=None):
        """``value_loss`` of ``V(s)`` (``mean((V(s) - R)^2)``, or PPO's clipped form if ``clip_vf > 0``; weighted by
        ``u`` if given) and its gradient in ``phi`` by one VJP. Returns ``(L, grad (p,))``."""
        v_n, cache = self.forward(obs_no, theta_p)
        loss, v_bar_n = value_loss(v_n, ret_n, v_old_n, clip_vf, u_n)
        return loss, self.vjp(cache, v_bar_n)


class TrunkValue:
    """``V(s)`` as the last output of the policy's MLP (``shared_trunk``): its parameters are the policy's."""

    def __init__(self, policy):
        self.policy = policy

    def __call__(self, obs_no, theta_p=None):
        return self.policy.forward(obs_no, theta_p).out_no[..., -1].astype(np.float64)


class ActorCritic:
    """What an update rule trains: ``policy`` and ``value``, two MLPs, or one trunk with two heads."""

    def __init__(self, policy, value):
        self.policy, self.value = policy, value
        self.shared = isinstance(value, TrunkValue)

    def state(self):
        own = {} if self.shared else {"value_theta": self.value.theta}
        return {"policy_theta": self.policy.theta, **own}

    def load_state(self, state):
        self.policy.theta = np.array(state["policy_theta"], dtype=np.float64)
        if not self.shared:
            self.value.theta = np.array(state["value_theta"], dtype=np.float64)
