"""A multilayer perceptron on one flat parameter vector, with hand-written reverse and forward mode.

Maths: docs/01-backprop-and-forward-mode.md.

Each dense layer computes ``z = x W + b`` then ``y = f(z)``. Three maps are written by hand:

========  ======================================  ====================================
map       per layer                               what it gives the algorithms
========  ======================================  ====================================
forward   ``z = x W + b;  y = f(z)``              outputs (distribution parameters)
vjp       ``z_bar = y_bar * f'(z)``               gradients of losses (backprop)
          ``W_bar = x^T z_bar;  b_bar = sum z_bar``
          ``x_bar = z_bar W^T``
jvp       ``z_dot = x_dot W + x W_dot + b_dot``   ``J v``, half of a Fisher-vector product
          ``y_dot = f'(z) * z_dot``
========  ======================================  ====================================

The vjp is the transpose of the jvp: ``sum(y_bar * jvp(v)) == vjp(y_bar) . v`` for all ``v``,
``y_bar`` (tested in tests/test_nn.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

Activation = Callable[[np.ndarray], np.ndarray]
"""An activation ``f(z)``, or its derivative written in terms of ``y = f(z)``."""

# --- activations: value and derivative side by side; f'(z) is written in terms of y = f(z) ----------


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def tanh_grad(y: np.ndarray) -> np.ndarray:
    return 1.0 - y * y


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def relu_grad(y: np.ndarray) -> np.ndarray:
    return (y > 0.0).astype(y.dtype)


def identity(z: np.ndarray) -> np.ndarray:
    return z


def identity_grad(y: np.ndarray) -> np.ndarray:
    return np.ones_like(y)


ACTIVATIONS = {"tanh": (tanh, tanh_grad), "relu": (relu, relu_grad), "identity": (identity, identity_grad)}


# --- one dense layer: forward, vjp and jvp are pure functions of arrays ------------------------------


def dense_forward(x_ni: np.ndarray, W_io: np.ndarray, b_o: np.ndarray, f: Activation) -> np.ndarray:
    """``y = f(x W + b)``. Returns ``y_no`` (the layer's cache is ``(x_ni, y_no)``)."""
    return f(x_ni @ W_io + b_o[..., None, :])


def dense_vjp(x_ni: np.ndarray, y_no: np.ndarray, y_bar_no: np.ndarray, W_io: np.ndarray, f_grad: Activation,
              want_x_bar: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Reverse mode through one layer. Returns ``(x_bar_ni, W_bar_io, b_bar_o)`` (``x_bar`` None if not wanted)."""
    z_bar_no = y_bar_no if f_grad is identity_grad else y_bar_no * f_grad(y_no)  # chain rule through f
    x_bar_ni = times_transpose(z_bar_no, W_io) if want_x_bar else None
    return x_bar_ni, transpose(x_ni) @ z_bar_no, z_bar_no.sum(axis=-2)


def times_transpose(z_bar_no: np.ndarray, W_io: np.ndarray) -> np.ndarray:
    """``z_bar W^T``. For a layer with one output (a value head) it is an outer product, which broadcasting
    computes bit for bit as matmul does, in a third of matmul's time (benchmarks/README.md, "Populations")."""
    return z_bar_no * transpose(W_io) if W_io.shape[-1] == 1 else z_bar_no @ transpose(W_io)


def dense_jvp(x_ni: np.ndarray, x_dot_ni: np.ndarray | None, y_no: np.ndarray, W_io: np.ndarray, W_dot_io: np.ndarray,
              b_dot_o: np.ndarray, f_grad: Activation) -> np.ndarray:
    """Forward mode through one layer: ``y_dot = f'(z) * (x_dot W + x W_dot + b_dot)``."""
    z_dot_no = x_ni @ W_dot_io + b_dot_o[..., None, :]
    if x_dot_ni is not None:
        z_dot_no += x_dot_ni @ W_io
    return z_dot_no if f_grad is identity_grad else f_grad(y_no) * z_dot_no


def transpose(A_ij: np.ndarray) -> np.ndarray:
    """``A^T`` of the last two axes, so a leading axis of independent agents passes through."""
    return np.swapaxes(A_ij, -1, -2)


@dataclass(frozen=True)
class Dense:
    """Where one layer lives in ``theta``: ``W`` (in, out) at ``W_slice``, ``b`` (out,) at ``b_slice``."""

    shape: tuple
    activation: str
    W_slice: slice
    b_slice: slice

    @property
    def f(self) -> Activation:
        return ACTIVATIONS[self.activation][0]

    @property
    def f_grad(self) -> Activation:
        return ACTIVATIONS[self.activation][1]


@dataclass
class Cache:
    """What a forward pass leaves for ``vjp``/``jvp``: ``acts = [x, h1, ..., y]`` and the ``(W, b)`` it used."""

    acts: list
    weights: list


def orthogonal(shape: tuple[int, int], gain: float, rng: np.random.Generator) -> np.ndarray:
    """Orthogonal initialisation (Saxe et al. 2014): a QR-orthonormal matrix scaled by ``gain``."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the distribution uniform (Mezzadri 2007)
    if rows < cols:
        q = q.T
    return gain * q[:rows, :cols]


def count_params(sizes: Sequence[int]) -> int:
    """Number of weights and biases of an MLP with layer widths ``sizes``."""
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


class MLP:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` on one flat float64 parameter vector.

    The parameters are an argument: ``forward(x_ni, theta_p)`` evaluates the network at any
    ``theta_p`` and mutates nothing, so a line search or a finite difference is a plain function
    of ``theta``. ``net.theta`` holds the initial parameters, for convenience. ``theta_p`` may carry
    leading axes of independent networks, ``(S, p)``, with inputs ``(S, n, i)``.

    Args:
        sizes: layer widths, input first, e.g. ``(4, 64, 64, 2)``.
        activation: hidden activation, ``"tanh"``, ``"relu"`` or ``"identity"``; the output is linear.
        hidden_gain: orthogonal-init gain of the hidden layers (sqrt(2), as in SB3 and CleanRL).
        out_gain: orthogonal-init gain of the output layer (0.01 for a policy head, 1.0 for a value head, as in
            SB3 and CleanRL); one gain per output, or one for all.
        rng: ``np.random.Generator`` or integer seed for the initialisation. Biases start at zero.
        dtype: the dtype the layers compute in. ``theta`` and every gradient stay float64;
            ``float32`` casts the weights per call and roughly halves the cost of the matrix
            products and ``tanh`` (benchmarks/README.md). Derivative tests use float64.
    """

    def __init__(self, sizes: Iterable[int], activation: str = "tanh", hidden_gain: float = np.sqrt(2.0),
                 out_gain: ArrayLike = 1.0, rng: int | np.random.Generator | None = None,
                 dtype: DTypeLike = np.float64) -> None:
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP sizes must be at least two positive widths, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.sizes, self.activation, self.dtype = sizes, activation, np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"MLP dtype must be float64 or float32, got {self.dtype}")
        self.num_params = count_params(sizes)
        self.theta = np.zeros(self.num_params)
        rng = np.random.default_rng(rng)
        self.layers, offset = [], 0
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            W_slice = slice(offset, offset + n_in * n_out)
            b_slice = slice(W_slice.stop, W_slice.stop + n_out)
            offset = b_slice.stop
            self.layers.append(Dense((n_in, n_out), "identity" if last else activation, W_slice, b_slice))
            self.theta[W_slice] = (orthogonal((n_in, n_out), 1.0, rng) * (out_gain if last else hidden_gain)).ravel()

    def forward(self, x_ni: ArrayLike, theta_p: np.ndarray | None = None) -> tuple[np.ndarray, Cache]:
        """Outputs ``y_no`` at ``theta_p`` (default ``self.theta``) and the ``Cache`` that ``vjp`` and ``jvp``
        linearise at."""
        theta_p = self.theta if theta_p is None else theta_p
        weights = self._weights(theta_p.astype(self.dtype))  # one cast and copy: later steps can't move it
        acts = [np.asarray(x_ni, dtype=self.dtype)]
        for layer, (W_io, b_o) in zip(self.layers, weights):
            acts.append(dense_forward(acts[-1], W_io, b_o, layer.f))
        return acts[-1], Cache(acts, weights)

    def __call__(self, x_ni: ArrayLike, theta_p: np.ndarray | None = None) -> np.ndarray:
        return self.forward(x_ni, theta_p)[0]

    def _weights(self, theta_p: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_io, b_o), ...]`` as views into a flat vector laid out like ``theta`` (leading axes kept)."""
        lead = theta_p.shape[:-1]
        return [(theta_p[..., layer.W_slice].reshape(*lead, *layer.shape), theta_p[..., layer.b_slice])
                for layer in self.layers]

    def _backward(self, cache: Cache, y_bar_no: ArrayLike, want_theta: bool = True,
                  want_input: bool = True) -> tuple[Any, Any]:  # (theta_bar_p or None, x_bar_ni or None)
        acts = cache.acts
        lead = acts[0].shape[:-2]
        theta_bar_p: Any = np.empty((*lead, self.num_params)) if want_theta else None
        h_bar: Any = np.asarray(y_bar_no, dtype=self.dtype)  # None after the first layer unless want_input
        for k in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[k]
            h_bar, W_bar, b_bar = dense_vjp(acts[k], acts[k + 1], h_bar, cache.weights[k][0], layer.f_grad,
                                            want_x_bar=k > 0 or want_input)
            if want_theta:
                theta_bar_p[..., layer.W_slice] = W_bar.reshape(*lead, -1)
                theta_bar_p[..., layer.b_slice] = b_bar
        return theta_bar_p, h_bar

    def vjp(self, cache: Cache, y_bar_no: ArrayLike) -> np.ndarray:
        """Reverse mode: ``theta_bar_p = d sum(y * y_bar) / d theta`` (backprop), shape ``(p,)``."""
        return self._backward(cache, y_bar_no, want_input=False)[0]

    def input_vjp(self, cache: Cache, y_bar_no: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input: ``x_bar_ni = d sum(y * y_bar) / d x``."""
        return self._backward(cache, y_bar_no, want_theta=False)[1]

    def jvp(self, cache: Cache, theta_dot_p: ArrayLike, x_dot_ni: ArrayLike | None = None) -> np.ndarray:
        """Forward mode: ``y_dot_no = (dy/dtheta) theta_dot (+ (dy/dx) x_dot)``, shape ``(n, out)``."""
        h_dot: Any = None if x_dot_ni is None else np.asarray(x_dot_ni, dtype=self.dtype)  # an array after layer 1
        dots = self._weights(np.asarray(theta_dot_p).astype(self.dtype, copy=False))
        for k, (layer, (W_io, _), (W_dot_io, b_dot_o)) in enumerate(zip(self.layers, cache.weights, dots)):
            h_dot = dense_jvp(cache.acts[k], h_dot, cache.acts[k + 1], W_io, W_dot_io, b_dot_o, layer.f_grad)
        return h_dot

    def per_sample_vjp(self, cache: Cache, y_bar_no: ArrayLike) -> np.ndarray:
        """Row ``i`` is the gradient of ``y_i . y_bar_i`` alone: shape ``(n, p)``; rows sum to ``vjp``.

        Used for per-sample scores (the empirical Fisher). Memory is ``n * p`` floats.
        """
        acts = cache.acts
        n = len(acts[0])
        out_np = np.empty((n, self.num_params))
        h_bar = np.asarray(y_bar_no, dtype=self.dtype)
        for k in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[k]
            z_bar = h_bar * layer.f_grad(acts[k + 1])
            out_np[:, layer.W_slice] = (acts[k][:, :, None] * z_bar[:, None, :]).reshape(n, -1)
            out_np[:, layer.b_slice] = z_bar
            h_bar = z_bar @ cache.weights[k][0].T
        return out_np
