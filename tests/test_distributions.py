"""Distributions: values against scipy.stats, derivatives against finite differences, and the
identities every distribution satisfies (KL(p||p)=0, KL>=0, E[score]=0, E[score score^T]=M)."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from scipy import stats

from npgrad.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical, log_sigmoid, log_softmax
from npgrad.testing import central_difference_gradient, finite_arrays

RTOL, ATOL = 1e-6, 1e-8


@st.composite
def categorical_params(draw):
    n, a = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    return draw(finite_arrays((n, a), -4, 4)), draw(finite_arrays((n, a), -4, 4)), draw(st.integers(0, 2**16))


@st.composite
def gaussian_params(draw):
    n, a = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    mean, mean_q = draw(finite_arrays((n, a))), draw(finite_arrays((n, a)))
    log_std, log_std_q = draw(finite_arrays((n, a), -1.5, 1.0)), draw(finite_arrays((n, a), -1.5, 1.0))
    return (mean, log_std), (mean_q, log_std_q), draw(st.integers(0, 2**16))


@st.composite
def multicategorical_params(draw):
    """Logits of 2 to 7 columns, split into factors by ``nvec_of``."""
    n, a = draw(st.integers(1, 4)), draw(st.integers(2, 7))
    return draw(finite_arrays((n, a), -4, 4)), draw(finite_arrays((n, a), -4, 4)), draw(st.integers(0, 2**16))


def nvec_of(width):
    """Factors of 2 actions, and one of 3 for an odd width: 5 -> (2, 3), 6 -> (2, 2, 2)."""
    return (2,) * (width // 2 - 1) + ((3,) if width % 2 else (2,))


KINDS = {"cat": Categorical, "gauss": DiagGaussian, "bern": Bernoulli,
         "multicat": lambda logits_na: MultiCategorical(logits_na, nvec_of(logits_na.shape[1]))}


def make(kind, params):
    return KINDS[kind](*params)


def draw_case(kind, case):
    if kind != "gauss":  # one parameter array, the logits
        logits, logits_q, seed = case
        return (logits,), (logits_q,), seed
    return case


def min_prob(dist):
    """The least probable outcome's probability in any factor, row or coordinate."""
    if isinstance(dist, MultiCategorical):
        return min(f.p_na.min() for f in dist.factors)
    return min(dist.p_na.min(), (1.0 - dist.p_na).min()) if isinstance(dist, Bernoulli) else dist.p_na.min()


def check_param_gradient(kind, params, fn, analytic, what):
    """Compare each cotangent in ``analytic`` with central differences of ``fn(dist)`` in that parameter.

    The rounding error of a central difference is about ``eps |f| / h`` (docs/08), so the absolute
    tolerance scales with ``|f|``: a KL of 170 cannot give a 1e-8-accurate difference with h = 1e-6.
    """
    atol = ATOL * max(1.0, abs(fn(make(kind, params))))
    for k, g in enumerate(analytic):
        def f(x, k=k):
            ps = list(params)
            ps[k] = x
            return fn(make(kind, ps))
        np.testing.assert_allclose(g, central_difference_gradient(f, params[k]), rtol=RTOL, atol=atol,
                                   err_msg=f"{kind}: d {what} / d param {k}")


both = pytest.mark.parametrize("kind, strategy", [("cat", categorical_params()), ("gauss", gaussian_params()),
                                                  ("bern", categorical_params()), ("multicat", multicategorical_params())])


@both
def test_log_prob_entropy_kl_derivatives(kind, strategy):
    @given(strategy)
    def run(case):
        p_params, q_params, seed = draw_case(kind, case)
        p, q = make(kind, p_params), make(kind, q_params)
        act = p.sample(np.random.default_rng(seed))
        w_n = np.random.default_rng(seed + 1).standard_normal(len(p_params[0]))
        check_param_gradient(kind, p_params, lambda d: w_n @ d.log_prob(act),
                             [w_n[:, None] * g for g in p.dlog_prob(act)], "log_prob")
        check_param_gradient(kind, p_params, lambda d: w_n @ d.entropy(),
                             [w_n[:, None] * g for g in p.dentropy()], "entropy")
        check_param_gradient(kind, q_params, lambda d: w_n @ p.kl(d),
                             [w_n[:, None] * g for g in p.dkl(q)], "KL(p || q) wrt q")
    run()


@given(categorical_params())
def test_categorical_matches_scipy(case):
    logits, _, seed = case
    d = Categorical(logits)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    act = d.sample(np.random.default_rng(seed))
    onehot = np.eye(logits.shape[1])[act]
    expect = [stats.multinomial.logpmf(onehot[i], 1, p[i]) for i in range(len(p))]
    np.testing.assert_allclose(d.log_prob(act), expect, rtol=1e-9, atol=1e-12, err_msg="categorical log_prob")
    np.testing.assert_allclose(d.entropy(), stats.entropy(p, axis=1), rtol=1e-9, atol=1e-12,
                               err_msg="categorical entropy")


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 4), st.integers(0, 2**16))
def test_multicategorical_is_a_product_of_scipy_categoricals(nvec, n, seed):
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-3, 3, (n, sum(nvec)))
    d = MultiCategorical(logits, nvec)
    act = d.sample(rng)
    blocks = np.split(logits, np.cumsum(nvec)[:-1], axis=1)
    probs = [np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
             for z in blocks]
    expect = [sum(stats.multinomial.logpmf(np.eye(k)[act[i, j]], 1, p[i]) for j, (k, p) in enumerate(zip(nvec, probs)))
              for i in range(n)]
    np.testing.assert_allclose(d.log_prob(act), expect, rtol=1e-9, atol=1e-12, err_msg=f"log_prob, nvec {nvec}")
    np.testing.assert_allclose(d.entropy(), sum(stats.entropy(p, axis=1) for p in probs), rtol=1e-9, atol=1e-12,
                               err_msg=f"entropy, nvec {nvec}")
    assert act.shape == (n, len(nvec)) and np.all((act >= 0) & (act < np.array(nvec))), f"actions {act}"


@given(categorical_params())
def test_bernoulli_matches_scipy(case):
    logits, _, seed = case
    d = Bernoulli(logits)
    act = d.sample(np.random.default_rng(seed))
    p = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(d.log_prob(act), stats.bernoulli.logpmf(act, p).sum(1), rtol=1e-9, atol=1e-12,
                               err_msg="bernoulli log_prob")
    np.testing.assert_allclose(d.entropy(), stats.bernoulli.entropy(p).sum(1), rtol=1e-9, atol=1e-12,
                               err_msg="bernoulli entropy")


def test_log_sigmoid_is_stable_for_huge_logits():
    z = np.array([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(log_sigmoid(z), [-1000.0, -np.log(2.0), 0.0], atol=1e-12, err_msg="log sigma(z)")
    assert np.all(np.isfinite(Bernoulli(z[None]).entropy())), "entropy at saturated logits"


def test_product_fisher_metric_is_block_diagonal():
    """MultiDiscrete: one diag(p_k) - p_k p_k^T block per factor, zeros between factors."""
    logits = np.array([[0.3, -0.2, 1.0, 0.0, -1.0]])
    d = MultiCategorical(logits, (2, 3))
    M = np.column_stack([d.fisher_vp(e[None])[0][0] for e in np.eye(5)])
    blocks = [np.diag(f.p_na[0]) - np.outer(f.p_na[0], f.p_na[0]) for f in d.factors]
    np.testing.assert_allclose(M[:2, :2], blocks[0], rtol=1e-12, atol=1e-15, err_msg="factor 0 block")
    np.testing.assert_allclose(M[2:, 2:], blocks[1], rtol=1e-12, atol=1e-15, err_msg="factor 1 block")
    np.testing.assert_array_equal(M[:2, 2:], 0.0, err_msg="no coupling between factors")


@given(gaussian_params())
def test_gaussian_matches_scipy(case):
    (mean, log_std), _, seed = case
    d = DiagGaussian(mean, log_std)
    act = d.sample(np.random.default_rng(seed))
    expect = stats.norm.logpdf(act, mean, np.exp(log_std)).sum(1)
    np.testing.assert_allclose(d.log_prob(act), expect, rtol=1e-9, atol=1e-12, err_msg="gaussian log_prob")
    np.testing.assert_allclose(d.entropy(), stats.norm.entropy(mean, np.exp(log_std)).sum(1), rtol=1e-9,
                               atol=1e-12, err_msg="gaussian entropy")


def test_log_softmax_is_stable_for_huge_logits():
    logp = log_softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.all(np.isfinite(logp)), "log_softmax overflowed"
    np.testing.assert_allclose(logp, [[0.0, -1000.0, -2000.0]], atol=1e-12)


@both
def test_kl_is_zero_to_self_and_nonnegative(kind, strategy):
    @given(strategy)
    def run(case):
        p_params, q_params, _ = draw_case(kind, case)
        p, q = make(kind, p_params), make(kind, q_params)
        np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-12, err_msg=f"{kind}: KL(p||p)")
        assert np.all(p.kl(q) >= -1e-12), f"{kind}: KL(p||q) < 0: {p.kl(q)}"
    run()


@pytest.mark.parametrize("kind, strategy", [("gauss", gaussian_params()), ("bern", categorical_params())])
def test_kl_over_independent_dimensions_is_their_sum(kind, strategy):
    """The KL of ``a`` independent dimensions is the sum of theirs, which TRPO's ``max_kl`` bounds (eq. 5.1);
    sb3-contrib's ``target_kl`` bounds their mean (docs/05-trpo.md)."""
    @given(strategy)
    def run(case):
        p_params, q_params, _ = draw_case(kind, case)
        whole_n = make(kind, p_params).kl(make(kind, q_params))
        column_kls = [make(kind, [x[:, j:j + 1] for x in p_params]).kl(make(kind, [x[:, j:j + 1] for x in q_params]))
                      for j in range(p_params[0].shape[1])]
        np.testing.assert_allclose(whole_n, np.sum(column_kls, axis=0), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{kind}: KL over the dimensions")
    run()


def mc_check(samples_mk, expected_k, what, family_alpha=1e-5):
    """Assert Monte-Carlo means agree with ``expected`` within ``z`` standard errors (+ rounding).

    ``z`` is Bonferroni-corrected over the ``k`` entries: 3 standard errors per entry would raise a
    false alarm every few hundred entries, and a d x d Fisher metric has d^2 of them.
    """
    n_se = stats.norm.isf(family_alpha / (2 * samples_mk.shape[1]))
    mean_k = samples_mk.mean(0)
    se_k = samples_mk.std(0, ddof=1) / np.sqrt(len(samples_mk))
    assert np.all(np.abs(mean_k - expected_k) <= n_se * se_k + 1e-9), \
        f"{what}: Monte-Carlo {mean_k} vs exact {expected_k} (standard error {se_k})"


@both
def test_monte_carlo_identities(kind, strategy):
    """KL = E_p[log p - log q]; E[score] = 0; E[score score^T] = Fisher metric, per row."""
    @given(strategy)
    def run(case):
        p_params, q_params, seed = draw_case(kind, case)
        # a sample standard error cannot see events rarer than 1/m: keep every action visible
        # independent factors (bern, multicat) multiply their scores: a pair of rare outcomes must be seen
        # tens of times too, so the least likely outcome of each factor needs 0.1 rather than 0.02
        assume(kind == "gauss" or min_prob(make(kind, p_params)) > (0.02 if kind == "cat" else 0.1))
        rng, m = np.random.default_rng(seed), 4000
        for i in range(len(p_params[0])):
            row = [x[i:i + 1].repeat(m, axis=0) for x in p_params]
            p, q = make(kind, row), make(kind, [x[i:i + 1].repeat(m, axis=0) for x in q_params])
            act = p.sample(rng)
            mc_check((p.log_prob(act) - q.log_prob(act))[:, None], p.kl(q)[:1], f"{kind}: KL row {i}")
            score_mk = np.concatenate(p.dlog_prob(act), axis=1)
            mc_check(score_mk, np.zeros(score_mk.shape[1]), f"{kind}: E[score] row {i}")
            d = score_mk.shape[1]
            metric_kk = np.column_stack([np.concatenate(p.fisher_vp(*np.split(np.tile(e, (m, 1)), len(row), 1)),
                                                        axis=1)[0] for e in np.eye(d)])
            outer_mkk = (score_mk[:, :, None] * score_mk[:, None, :]).reshape(m, -1)
            mc_check(outer_mkk, metric_kk.ravel(), f"{kind}: E[score score^T] = M, row {i}")
    run()


@given(categorical_params())
def test_categorical_fisher_metric_is_exact_score_covariance(case):
    logits, _, _ = case
    d = Categorical(logits)
    a = logits.shape[1]
    for i, p in enumerate(d.p_na):
        scores = np.eye(a) - p  # score of each action
        expected = (scores.T * p) @ scores
        metric = np.column_stack([Categorical(logits[i:i + 1]).fisher_vp(e[None])[0][0] for e in np.eye(a)])
        np.testing.assert_allclose(metric, expected, rtol=1e-10, atol=1e-12, err_msg=f"categorical metric row {i}")


def test_categorical_sample_frequencies():
    d = Categorical(np.log(np.tile([[0.2, 0.5, 0.3]], (20000, 1))))
    freq = np.bincount(d.sample(np.random.default_rng(0)), minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.015, err_msg="sample frequencies")


@both
def test_taking_rows_equals_building_from_rows(kind, strategy):
    @given(strategy)
    def run(case):
        p_params, _, seed = draw_case(kind, case)
        idx = np.random.default_rng(seed).permutation(len(p_params[0]))[: max(1, len(p_params[0]) // 2)]
        taken, built = make(kind, p_params)[idx], make(kind, [x[idx] for x in p_params])
        for a, b in zip(taken.params, built.params):
            np.testing.assert_array_equal(a, b, err_msg=f"{kind}: dist[idx] parameters")
        np.testing.assert_array_equal(taken.entropy(), built.entropy(), err_msg=f"{kind}: dist[idx] entropy")
    run()


@both
def test_the_mode_is_the_most_probable_action(kind, strategy):
    """``mode()``, the action ``predict(deterministic=True)`` takes, is in every row at least as probable as any
    action sampled there."""
    @given(strategy)
    def run(case):
        p_params, _, seed = draw_case(kind, case)
        p, rng = make(kind, p_params), np.random.default_rng(seed)
        best_n = p.log_prob(p.mode())
        for _ in range(50):
            assert np.all(best_n >= p.log_prob(p.sample(rng)) - 1e-12), kind
    run()


def test_wrong_action_shape_is_named():
    with pytest.raises(ValueError, match="actions must have shape"):
        DiagGaussian(np.zeros((3, 2)), np.zeros(2)).log_prob(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="actions must have shape"):
        Categorical(np.zeros((3, 2))).log_prob(np.zeros(4, dtype=int))
