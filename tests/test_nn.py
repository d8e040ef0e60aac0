"""MLP: reverse mode, forward mode and the input gradient against central finite differences."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from npgrad.nn import ACTIVATIONS, MLP, orthogonal, times_transpose
from npgrad.testing import central_difference_gradient, directional_derivative, finite_arrays, mlp_sizes

RTOL, ATOL = 1e-5, 1e-7


@st.composite
def nets_and_inputs(draw):
    sizes = draw(mlp_sizes(max_layers=3, max_width=5))
    activation = draw(st.sampled_from(sorted(ACTIVATIONS)))
    net = MLP(sizes, activation, out_gain=1.0, rng=draw(st.integers(0, 2**16)))
    n = draw(st.integers(1, 4))
    x_ni = draw(finite_arrays((n, sizes[0])))
    if activation == "relu":  # finite differences are only valid away from relu's kink at z = 0
        _, cache = net.forward(x_ni)
        for h, (W, b) in zip(cache.acts[:-2], cache.weights[:-1]):
            assume(np.min(np.abs(h @ W + b)) > 1e-3)
    y_bar = draw(finite_arrays((n, sizes[-1])))
    return net, x_ni, y_bar


@given(nets_and_inputs())
def test_vjp_is_gradient_of_output_dot_cotangent(case):
    net, x_ni, y_bar = case
    _, cache = net.forward(x_ni)
    analytic = net.vjp(cache, y_bar)
    numeric = central_difference_gradient(lambda theta_p: np.sum(net(x_ni, theta_p) * y_bar), net.theta)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=f"vjp wrt theta, sizes {net.sizes}")


@given(nets_and_inputs())
def test_input_vjp_is_gradient_wrt_input(case):
    net, x_ni, y_bar = case
    _, cache = net.forward(x_ni)
    numeric = central_difference_gradient(lambda x: np.sum(net(x) * y_bar), x_ni)
    np.testing.assert_allclose(net.input_vjp(cache, y_bar), numeric, rtol=RTOL, atol=ATOL,
                               err_msg=f"input gradient, sizes {net.sizes}")


@given(nets_and_inputs(), st.integers(0, 2**16))
def test_jvp_is_directional_derivative(case, seed):
    net, x_ni, _ = case
    rng = np.random.default_rng(seed)
    theta_dot, x_dot = rng.standard_normal(net.num_params), rng.standard_normal(x_ni.shape)
    _, cache = net.forward(x_ni)
    analytic = net.jvp(cache, theta_dot, x_dot)

    def f(z):  # the network as a function of (theta, x) together
        return net(z[net.num_params:].reshape(x_ni.shape), z[: net.num_params])

    numeric = directional_derivative(f, np.concatenate([net.theta, x_ni.ravel()]),
                                     np.concatenate([theta_dot, x_dot.ravel()]))
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=f"jvp, sizes {net.sizes}")


@given(nets_and_inputs(), st.integers(0, 2**16))
def test_vjp_is_transpose_of_jvp(case, seed):
    net, x_ni, y_bar = case
    v_p = np.random.default_rng(seed).standard_normal(net.num_params)
    _, cache = net.forward(x_ni)
    lhs = np.sum(y_bar * net.jvp(cache, v_p))
    rhs = net.vjp(cache, y_bar) @ v_p
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10, err_msg="y_bar . J v != (J^T y_bar) . v")


@given(nets_and_inputs())
def test_per_sample_vjp_rows_are_single_sample_gradients(case):
    net, x_ni, y_bar = case
    _, cache = net.forward(x_ni)
    rows = net.per_sample_vjp(cache, y_bar)
    for i in range(len(x_ni)):
        _, cache_i = net.forward(x_ni[i:i + 1])
        np.testing.assert_allclose(rows[i], net.vjp(cache_i, y_bar[i:i + 1]), rtol=1e-10, atol=1e-12,
                                   err_msg=f"per-sample gradient row {i}")
    np.testing.assert_allclose(rows.sum(0), net.vjp(cache, y_bar), rtol=1e-10, atol=1e-12)


def test_layers_tile_theta_in_order_and_forward_reads_the_theta_it_is_given():
    net = MLP((3, 4, 2), rng=0)
    theta_p = np.arange(net.num_params, dtype=float)
    (W0, b0), (W1, b1) = net.forward(np.zeros((1, 3)), theta_p)[1].weights
    np.testing.assert_array_equal(W0.ravel(), np.arange(12.0))
    np.testing.assert_array_equal(b1, [net.num_params - 2.0, net.num_params - 1.0])
    before = net.theta.copy()
    assert not np.array_equal(net(np.ones((1, 3)), theta_p), net(np.ones((1, 3)))), "theta_p must be used"
    np.testing.assert_array_equal(net.theta, before, err_msg="forward at another theta must not mutate the net")


@given(nets_and_inputs(), st.integers(1, 3), st.integers(0, 2**16))
def test_a_leading_axis_of_agents_equals_each_agent_alone(case, S, seed):
    """Stacked parameters (S, p) and inputs (S, n, i): forward, vjp and jvp equal S separate calls."""
    net, x_ni, y_bar = case
    rng = np.random.default_rng(seed)
    theta_sp = net.theta + 0.1 * rng.standard_normal((S, net.num_params))
    x_sni, y_bar_sno = np.stack([x_ni] * S), np.stack([y_bar] * S)
    v_sp = rng.standard_normal((S, net.num_params))
    y_sno, cache = net.forward(x_sni, theta_sp)
    vjp_sp, jvp_sno = net.vjp(cache, y_bar_sno), net.jvp(cache, v_sp)
    for s in range(S):
        y_no, cache_s = net.forward(x_ni, theta_sp[s])
        np.testing.assert_allclose(y_sno[s], y_no, rtol=1e-12, atol=1e-12, err_msg=f"forward, agent {s}")
        np.testing.assert_allclose(vjp_sp[s], net.vjp(cache_s, y_bar), rtol=1e-12, atol=1e-12, err_msg=f"vjp, agent {s}")
        np.testing.assert_allclose(jvp_sno[s], net.jvp(cache_s, v_sp[s]), rtol=1e-12, atol=1e-12,
                                   err_msg=f"jvp, agent {s}")


@given(st.sampled_from([(), (3,)]), st.integers(1, 300), st.integers(1, 70), st.sampled_from(["float32", "float64"]),
       st.integers(0, 2**16))
def test_a_value_heads_transpose_product_equals_matmul_bit_for_bit(lead, n, i, dtype, seed):
    """A value head's ``z_bar W^T`` (one output) is an outer product, taken by broadcasting: the same bits as matmul."""
    rng = np.random.default_rng(seed)
    z_bar_no, W_io = (rng.standard_normal((*lead, *shape)).astype(dtype) for shape in ((n, 1), (i, 1)))
    np.testing.assert_array_equal(times_transpose(z_bar_no, W_io), z_bar_no @ np.swapaxes(W_io, -1, -2))


@pytest.mark.parametrize("shape", [(4, 4), (3, 7), (7, 3)])
def test_orthogonal_init_has_orthonormal_rows_or_columns(shape):
    W = orthogonal(shape, gain=2.0, rng=np.random.default_rng(0))
    small = min(shape)
    gram = W.T @ W if shape[0] >= shape[1] else W @ W.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12, err_msg=f"orthogonal {shape}")


@pytest.mark.parametrize("shape", [(3, 3), (4, 1), (1, 4)])
def test_orthogonal_init_is_uniform_so_every_entry_averages_zero(shape):
    """Haar-uniform (Mezzadri 2007): QR alone fixes the signs of ``diag(r)``, and with them a bias in ``q``. An
    entry's standard deviation is at most 1, so over 2,000 draws its mean is within 4.5 standard errors of 0."""
    mean = np.mean([orthogonal(shape, gain=1.0, rng=np.random.default_rng(seed)) for seed in range(2000)], axis=0)
    assert np.max(np.abs(mean)) < 0.1, mean


def test_same_seed_same_weights_and_gains():
    a, b = MLP((4, 64, 64, 2), rng=3, out_gain=0.01), MLP((4, 64, 64, 2), rng=3, out_gain=0.01)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, MLP((4, 64, 64, 2), rng=4, out_gain=0.01).theta)
    W_out = a.forward(np.zeros((1, 4)))[1].weights[-1][0]
    np.testing.assert_allclose(np.linalg.norm(W_out, axis=0), 0.01, rtol=1e-12)
    two_gains = MLP((4, 64, 64, 3), rng=3, out_gain=np.array([0.01, 0.01, 1.0]))  # a policy head and V on one trunk
    W_out = two_gains.forward(np.zeros((1, 4)))[1].weights[-1][0]
    np.testing.assert_allclose(np.linalg.norm(W_out, axis=0), [0.01, 0.01, 1.0], rtol=1e-12)


@pytest.mark.parametrize("sizes, activation", [((3,), "tanh"), ((3, 0), "tanh"), ((3, 2), "sigmoid")])
def test_bad_construction_is_refused(sizes, activation):
    with pytest.raises(ValueError, match="sizes|activation"):
        MLP(sizes, activation)


@given(mlp_sizes(max_layers=3, max_width=8), st.sampled_from(sorted(ACTIVATIONS)), st.integers(0, 2**16))
def test_float32_compute_matches_float64_to_float32_precision(sizes, activation, seed):
    rng = np.random.default_rng(seed)
    net64 = MLP(sizes, activation, rng=seed)
    net32 = MLP(sizes, activation, rng=seed, dtype=np.float32)
    np.testing.assert_array_equal(net32.theta, net64.theta)
    x_ni, y_bar = rng.standard_normal((5, sizes[0])), rng.standard_normal((5, sizes[-1]))
    theta_dot = rng.standard_normal(net64.num_params)
    (y64, c64), (y32, c32) = net64.forward(x_ni), net32.forward(x_ni)
    assert y32.dtype == np.float32 and net32.vjp(c32, y_bar).dtype == np.float64, "theta's gradient stays float64"
    tol = dict(rtol=1e-4, atol=1e-5)  # float32 eps is 1.2e-7; a few layers of rounding stay far below this
    np.testing.assert_allclose(y32, y64, **tol, err_msg="forward")
    np.testing.assert_allclose(net32.vjp(c32, y_bar), net64.vjp(c64, y_bar), **tol, err_msg="vjp")
    np.testing.assert_allclose(net32.jvp(c32, theta_dot), net64.jvp(c64, theta_dot), **tol, err_msg="jvp")
    with pytest.raises(ValueError, match="dtype"):
        MLP(sizes, activation, dtype=np.float16)
