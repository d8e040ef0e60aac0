"""Check hand-written derivatives against central finite differences, in float64.

Maths: docs/08-testing-derivatives.md. The central difference

    (f(x + h e) - f(x - h e)) / (2 h)  =  f'(x) e  +  O(h^2 f''')  +  O(eps_mach |f| / h)

is accurate to about 1e-10 relative error with ``h = 1e-6`` for well-scaled float64 functions.
Use these helpers to test your own layers the way npgrad tests its own::

    >>> import numpy as np
    >>> from npgrad.testing import check_gradient, check_vjp
    >>> x = np.array([0.3, -1.2, 2.0])
    >>> check_gradient(lambda x: np.sum(np.sin(x)), np.cos(x), x, rtol=1e-6, atol=1e-9)
    >>> check_vjp(np.tanh, lambda x, y_bar: y_bar * (1 - np.tanh(x) ** 2), x, rng=0)

``hypothesis`` strategies (``finite_arrays``, ``mlp_sizes``) need the ``test`` extra.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # hypothesis is in the test extra, imported by the strategies themselves
    from hypothesis.strategies import SearchStrategy


def central_difference_gradient(f: Callable[[np.ndarray], float], x: ArrayLike, h: float = 1e-6) -> np.ndarray:
    """Gradient of a scalar ``f`` at ``x`` (any shape) by central differences; same shape as ``x``."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        xi = flat_x[i]
        flat_x[i] = xi + h
        f_plus = f(x)
        flat_x[i] = xi - h
        f_minus = f(x)
        flat_x[i] = xi
        flat_g[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def directional_derivative(f: Callable[[np.ndarray], ArrayLike], x: ArrayLike, v: ArrayLike,
                           h: float = 1e-6) -> np.ndarray:
    """``d/dt f(x + t v)`` at ``t = 0`` by central differences (``f`` may return an array)."""
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2.0 * h)


def check_gradient(f: Callable[[np.ndarray], float], grad: np.ndarray, x: ArrayLike, rtol: float = 1e-5,
                   atol: float = 1e-7, h: float = 1e-6, name: str = "gradient") -> None:
    """Assert that ``grad`` (an array) is the gradient of scalar ``f`` at ``x``, elementwise."""
    numeric = central_difference_gradient(f, x, h)
    check_shape(grad, numeric.shape, f"{name}: the gradient", "x")
    np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol,
                               err_msg=f"{name}: ACTUAL is your gradient, DESIRED its central difference (h={h})")


def check_shape(value: ArrayLike, shape: tuple[int, ...], what: str, like: str) -> None:
    """An ``AssertionError`` unless ``value`` has ``shape``: a derivative of the wrong shape (a sum over the batch
    left out, say) would otherwise broadcast in the comparison and could pass."""
    assert np.shape(value) == shape, f"{what} has shape {np.shape(value)}, not {like}'s {shape}"


def check_vjp(f: Callable[[np.ndarray], ArrayLike], vjp: Callable[[np.ndarray, np.ndarray], np.ndarray], x: ArrayLike,
              rtol: float = 1e-5, atol: float = 1e-7, h: float = 1e-6, rng: int | np.random.Generator | None = None,
              trials: int = 3, name: str = "vjp") -> None:
    """Assert ``y_bar . (J v) == vjp(x, y_bar) . v`` for random ``y_bar`` and ``v``.

    ``f(x) -> y`` is the forward map, ``vjp(x, y_bar) -> x_bar`` your reverse mode. ``J v`` is
    measured by a central difference along ``v``; each trial compares two scalars.
    """
    rng = np.random.default_rng(rng)
    x = np.asarray(x, dtype=np.float64)
    for _ in range(trials):
        v = rng.standard_normal(x.shape)
        y_bar = rng.standard_normal(np.shape(f(x)))
        x_bar = vjp(x, y_bar)
        check_shape(x_bar, x.shape, f"{name}: vjp(x, y_bar)", "x")
        numeric = float(np.sum(y_bar * directional_derivative(f, x, v, h)))
        np.testing.assert_allclose(float(np.sum(x_bar * v)), numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{name}: ACTUAL is vjp(x, y_bar) . v, DESIRED y_bar . (J v) by a central "
                                           f"difference (h={h}) along a random v; check_gradient on one output at a "
                                           f"time shows which entries differ")


def check_jvp(f: Callable[[np.ndarray], ArrayLike], jvp: Callable[[np.ndarray, np.ndarray], np.ndarray], x: ArrayLike,
              rtol: float = 1e-5, atol: float = 1e-7, h: float = 1e-6, rng: int | np.random.Generator | None = None,
              trials: int = 3, name: str = "jvp") -> None:
    """Assert ``jvp(x, v) == (f(x + h v) - f(x - h v)) / 2h`` for random ``v``."""
    rng = np.random.default_rng(rng)
    x = np.asarray(x, dtype=np.float64)
    for _ in range(trials):
        v = rng.standard_normal(x.shape)
        numeric = directional_derivative(f, x, v, h)
        y_dot = jvp(x, v)
        check_shape(y_dot, numeric.shape, f"{name}: jvp(x, v)", "f(x)")
        np.testing.assert_allclose(y_dot, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{name}: ACTUAL is jvp(x, v), DESIRED J v by a central difference (h={h}) "
                                           f"along a random v")


# --- hypothesis strategies ------------------------------------------------------------------------


def finite_arrays(shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]], low: float = -3.0,
                  high: float = 3.0) -> SearchStrategy[np.ndarray]:
    """Float64 arrays of ``shape`` (a tuple or a strategy of tuples) with values in ``[low, high]``."""
    from hypothesis.extra import numpy as hnp
    from hypothesis import strategies as st

    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, width=64))


def mlp_sizes(max_layers: int = 3, max_width: int = 6) -> SearchStrategy[tuple[int, ...]]:
    """Layer widths ``(in, hidden..., out)`` with 1 to ``max_layers`` weight layers."""
    from hypothesis import strategies as st

    return st.lists(st.integers(1, max_width), min_size=2, max_size=max_layers + 1).map(tuple)
