"""Objectives and distributions take a leading axis of independent agents: stacked equals one by one."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from npgrad.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from npgrad.objectives import clipped_surrogate, mean_entropy, mean_kl, surrogate, value_loss, weighted_log_prob


def stacked_case(kind, S, n, a, seed):
    """Distributions of S agents on n rows: the stacked (S, n, a) one, and one per agent."""
    rng = np.random.default_rng(seed)
    if kind in ("categorical", "multidiscrete", "multibinary"):
        nvec = (a, 2, 3)  # MultiDiscrete's factors: a + 5 logits
        z_sna, z_old_sna = rng.standard_normal((2, S, n, a + 5 if kind == "multidiscrete" else a))
        make = {"categorical": Categorical, "multibinary": Bernoulli,
                "multidiscrete": lambda z: MultiCategorical(z, nvec)}[kind]
        params, old_params = (z_sna,), (z_old_sna,)
    else:
        mean_sna, mean_old_sna = rng.standard_normal((2, S, n, a))
        log_std_sa, log_std_old_sa = rng.uniform(-1, 0.5, (2, S, a))
        make = DiagGaussian
        params, old_params = (mean_sna, log_std_sa[:, None, :]), (mean_old_sna, log_std_old_sa[:, None, :])
    stacked, old = make(*params), make(*old_params)
    alone = [make(*(p[s] for p in params)) for s in range(S)]
    old_alone = [make(*(p[s] for p in old_params)) for s in range(S)]
    act = stacked.sample(rng)
    return stacked, old, alone, old_alone, act, rng


@pytest.mark.parametrize("kind", ["categorical", "gaussian", "multidiscrete", "multibinary"])
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**16))
def test_every_objective_of_stacked_agents_equals_each_agent_alone(kind, S, n, a, seed):
    stacked, old, alone, old_alone, act, rng = stacked_case(kind, S, n, a, seed)
    adv_sn, logp_old_sn, v_sn, ret_sn = rng.standard_normal((4, S, n))
    objectives = {
        "weighted log-prob": lambda d, o, s: weighted_log_prob(d, act[s], adv_sn[s]),
        "surrogate": lambda d, o, s: surrogate(d, act[s], adv_sn[s], logp_old_sn[s]),
        "clipped surrogate": lambda d, o, s: clipped_surrogate(d, act[s], adv_sn[s], logp_old_sn[s], 0.2)[:2],
        "entropy": lambda d, o, s: mean_entropy(d),
        "KL": lambda d, o, s: mean_kl(o, d),
    }
    everyone = slice(None)
    for name, objective in objectives.items():
        value_s, cotangent = objective(stacked, old, everyone)
        for s in range(S):
            value, cot = objective(alone[s], old_alone[s], s)
            np.testing.assert_allclose(value_s[s], value, rtol=1e-12, atol=1e-12, err_msg=f"{name} value, agent {s}")
            for c_s, c in zip(cotangent, cot):
                np.testing.assert_allclose(np.broadcast_to(c_s, (S, *c.shape))[s], c, rtol=1e-12, atol=1e-12,
                                           err_msg=f"{name} cotangent, agent {s}")
    for s in range(S):
        np.testing.assert_allclose(stacked.fisher_vp(*stacked.params)[0][s], alone[s].fisher_vp(*alone[s].params)[0],
                                   rtol=1e-12, atol=1e-12, err_msg=f"Fisher metric, agent {s}")
        loss_s, v_bar_sn = value_loss(v_sn, ret_sn)
        loss, v_bar_n = value_loss(v_sn[s], ret_sn[s])
        np.testing.assert_allclose([loss_s[s], *v_bar_sn[s]], [loss, *v_bar_n], rtol=1e-12, atol=1e-12,
                                   err_msg=f"value loss, agent {s}")
