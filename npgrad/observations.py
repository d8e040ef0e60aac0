"""Observations as the networks' input: every supported space becomes a flat float vector.

==================  ===============================================================
space               encoding of one observation
==================  ===============================================================
1-D ``Box``         as it is
``Discrete(n)``     one-hot of ``x - start``: ``n`` entries
``MultiDiscrete``   one one-hot per entry, side by side: ``sum(nvec)`` entries
``MultiBinary(n)``  its 0/1 entries as floats
``Dict``, ``Tuple`` their parts' encodings side by side, in the space's own order
==================  ===============================================================

This is gymnasium's ``spaces.flatten`` for each of these spaces, applied to a whole batch at
once. The encoding is a function of the observation space alone, so the rebuilt environment of a
loaded model encodes exactly as in training. Images (a ``Box`` of more than one dimension) are
out of scope: flatten them yourself or use a library with convolutional networks.
"""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .errors import ShapeError, SpaceError, shown


def encoded_dim(space):
    """The length of an encoded observation of ``space``; ``SpaceError`` for a space npgrad cannot encode."""
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        if space.shape[0] == 0:
            raise SpaceError(f"observation space {space} holds no numbers: a policy needs at least one input")
        return space.shape[0]
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return int(space.nvec.sum())
    if isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
        return int(space.n)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        if not parts(space):
            raise SpaceError(f"observation space {space} has no parts: a policy needs at least one input")
        return sum(part_dim(space, key, part) for key, part in parts(space))
    raise SpaceError(f"observation space {space} is not supported: npgrad encodes 1-D Box, Discrete, 1-D "
                     "MultiDiscrete, 1-D MultiBinary, and Dict or Tuple of those (flatten images yourself, e.g. "
                     "with gymnasium's FlattenObservation)")


def parts(space):
    """``(key, sub-space)`` of a ``Dict`` (in its key order) or a ``Tuple`` (keys 0, 1, ...)."""
    return list(space.spaces.items()) if isinstance(space, spaces.Dict) else list(enumerate(space.spaces))


def part_dim(space, key, part):
    """``encoded_dim`` of one part, with an error that says where in ``space`` the part sits."""
    try:
        return encoded_dim(part)
    except SpaceError as e:
        raise SpaceError(f"observation space {space}, part {key!r}: {e}") from None


def one_hot(x_n, start, n, what):
    """``(len(x_n), n)`` rows ``e_{x - start}``; a value outside ``start..start+n-1`` is a ``ShapeError`` naming
    ``what``."""
    x_n = np.asarray(x_n)
    if not (np.issubdtype(x_n.dtype, np.integer) and np.all((x_n >= start) & (x_n < start + n))):
        raise ShapeError(f"{what} must be integers in {start}..{start + n - 1}, got {x_n}")
    return np.eye(n)[x_n - start]


def encode(space, obs):
    """A batch of ``n`` observations of ``space`` (as a vector env returns them) -> ``(n, encoded_dim)`` floats."""
    if isinstance(space, spaces.Discrete):
        return one_hot(obs, int(space.start), int(space.n), f"a {space} observation")
    if isinstance(space, spaces.MultiDiscrete):
        x_nk, start_k = np.asarray(obs), np.broadcast_to(space.start, space.nvec.shape)
        return np.concatenate([one_hot(x_nk[:, k], int(start_k[k]), int(n), f"entry {k} of a {space} observation")
                               for k, n in enumerate(space.nvec)], axis=-1)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        check_parts(space, obs)
        return side_by_side([encode(part, obs[key]) for key, part in parts(space)])
    x = real_numbers(obs)  # Box and MultiBinary
    if isinstance(space, spaces.MultiBinary) and not np.all((x == 0) | (x == 1)):
        raise ShapeError(f"a {space} observation holds 0s and 1s only, got {x}")
    return x


def side_by_side(parts_no):
    """The encoded parts of a batch of Dict or Tuple observations, side by side; each must hold the same rows."""
    if len({len(x) for x in parts_no}) > 1:
        raise ShapeError(f"the parts of a batch of observations hold different numbers of rows: "
                         f"{[len(x) for x in parts_no]}")
    return np.concatenate(parts_no, axis=-1)


def as_array(x):
    """``np.asarray(x)``, or a ``ShapeError`` for what makes no array: a ragged list is a ``ValueError`` from
    NumPy 1.24 on and, before, an object array with a ``VisibleDeprecationWarning``."""
    if isinstance(x, np.ndarray):  # what a vector env returns: already an array, and the rollout's hot path
        return x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.asarray(x)
        except (ValueError, TypeError, Warning) as e:
            raise ShapeError(f"observations must form an array of numbers: {e}") from None


def real_numbers(x):
    """``x`` as float64, if it holds real numbers; ``ShapeError`` for complex, strings or objects, which NumPy
    would cast with a warning or an error of its own."""
    x = as_array(x)
    if x.dtype.kind not in "biuf":
        raise ShapeError(f"observations must be real numbers (bool, int or float), got an array of {x.dtype}")
    return x.astype(np.float64, copy=False)


def representable(x_no, dtype):
    """``x_no``, if a network computing in ``dtype`` can represent it; a ``ShapeError`` naming the limit if not
    (beyond 3.4e38 a float32 network would see inf)."""
    limit = float(np.finfo(dtype).max)
    if np.any(np.abs(x_no) > limit):
        raise ShapeError(f"predict got observations up to {np.max(np.abs(x_no)):.3g}, beyond the {limit:.3g} a "
                         f"{dtype} network can represent; use dtype='float64' or normalize_obs=True")
    return x_no


def is_single(space, obs):
    """Whether ``obs`` is one observation of ``space`` rather than a batch."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        check_parts(space, obs)
        key, part = parts(space)[0]
        return is_single(part, obs[key])
    return as_array(obs).ndim == len(space.shape)


def check_parts(space, obs):
    """A ``ShapeError`` unless ``obs`` has the keys of a ``Dict`` space, or the length of a ``Tuple`` space."""
    if isinstance(space, spaces.Dict):
        missing = [key for key in space.spaces if not (hasattr(obs, "keys") and key in obs)]
        if missing:
            raise ShapeError(f"a {space} observation is a dict with the keys {list(space.spaces)}; missing {missing}")
    elif not (isinstance(obs, (tuple, list, np.ndarray)) and len(obs) == len(space.spaces)):
        raise ShapeError(f"a {space} observation is a tuple of {len(space.spaces)} parts")


def check_single(space, obs, where="the observation"):
    """A ``ShapeError`` naming the part of one observation that is not in its space (of a Box, only its shape: its
    dtype may be any real type, where ``space.contains`` wants the space's)."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        for key, part in parts(space):
            check_single(part, obs[key], f"{where}[{key!r}]")
    elif isinstance(space, spaces.Box):
        if as_array(obs).shape != space.shape:
            raise ShapeError(f"{where} has shape {as_array(obs).shape}, not {space.shape}")
    elif not space.contains(obs):
        raise ShapeError(f"{where}, {shown(obs)}, is not in {space}")


def observation_batch(obs, space):
    """Raw observations, one or a batch, as the networks take them: ``(obs_no, single)``, encoded and finite.

    Anything that is not an observation of ``space`` (or a batch of them) is a ``ShapeError``.
    """
    dim = encoded_dim(space)
    what = f"shape {space.shape}" if isinstance(space, spaces.Box) else str(space)  # a Box's bounds say nothing here
    if isinstance(obs, tuple) and len(obs) == 2 and isinstance(obs[1], dict) and not isinstance(space, spaces.Tuple):
        raise ShapeError("predict got an (observation, info) pair, as env.reset() returns it: pass the observation "
                         "alone (obs, info = env.reset())")
    try:
        single = is_single(space, obs)
        if single:
            check_single(space, obs)
        if single and not isinstance(space, spaces.Box):  # a batch of one, laid out as a vector env's
            obs = gym.vector.utils.concatenate(space, [obs], gym.vector.utils.create_empty_array(space, 1))
        obs_no = encode(space, obs)
        obs_no = obs_no[None] if single and isinstance(space, spaces.Box) else obs_no
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ShapeError(f"predict expects an observation of {what} or a batch of them: {e}") from None
    if obs_no.ndim != 2 or obs_no.shape[1] != dim:
        raise ShapeError(f"predict expects an observation of {what} or a batch of them, got shape {np.shape(obs)}")
    return require_finite(obs_no), single


def require_finite(x_no):
    """``x_no``, if finite: a policy cannot act on inf or NaN observations."""
    if not np.all(np.isfinite(x_no)):
        raise ShapeError("predict got non-finite observations")
    return x_no
