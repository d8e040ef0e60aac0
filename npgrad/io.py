"""Save and load agents as one ``.npz`` file: arrays plus a JSON header, never pickle.

The header (``__meta__``, a JSON string stored as a NumPy unicode scalar) records the format,
the npgrad version, the algorithm, the environment id, the seed, the step counters, the RNG
state and the config. Loading uses ``allow_pickle=False``, checks the format and version, and
checks every array's shape against the network the config builds. Writes are atomic: the file
is written beside the target and renamed over it, so a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .version import __version__
from .errors import FileFormatError

FORMAT = "npgrad-agent"
FORMAT_VERSION = 1


def stateful_parts(agent):
    """The agent's filters and optimisers that exist, by name; each has ``state()`` and ``load_state()``."""
    parts = {name: getattr(agent, name, None) for name in ("obs_filter", "reward_filter", "vf_optim", "pi_optim")}
    return {name: part for name, part in parts.items() if part is not None}


def agent_arrays(agent):
    """Every array that makes up the agent's state, by name."""
    arrays = {"policy/theta": agent.policy.theta, "value/theta": agent.value_fn.theta}
    for name, part in stateful_parts(agent).items():
        arrays.update({f"{name}/{k}": v for k, v in part.state().items()})
    return arrays


def agent_meta(agent):
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "npgrad_version": __version__,
            "algo": agent.name, "env_id": agent.env_id, "seed": agent.seed, "num_steps": agent.num_steps,
            "num_updates": agent.num_updates, "learn_start": agent.learn_start, "total_steps": agent.total_steps,
            "failed_updates": agent.failed_updates, "extra": agent.extra_state(),
            "rng_state": agent.rng.bit_generator.state, "config": agent.config.to_dict()}


def atomic_write_npz(path, arrays):
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_agent(agent, path, user=None):
    """Write the agent; ``user`` is any JSON-serialisable dict stored in the header (e.g. a run's state)."""
    arrays = dict(agent_arrays(agent))
    arrays["__meta__"] = np.array(json.dumps({**agent_meta(agent), "user": user or {}}))
    return atomic_write_npz(path, arrays)


def read_npz(path):
    """``(meta, arrays)`` of a saved file; refuses pickles, truncation and foreign files with ``FileFormatError``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith(b"PK"):  # np.load would call anything that is not a zip or .npy a pickle
        what = {b"\x80": "a pickle", b"\x93": "a single .npy array"}.get(magic[:1], "not a zip archive")
        raise FileFormatError(f"{path}: refused, not an .npz file ({what}); npgrad saves and loads .npz only")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # numpy refuses object arrays when pickles are not allowed
        raise FileFormatError(f"{path}: refused, it contains pickled objects ({e})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise FileFormatError(f"{path}: not a readable .npz file (truncated or corrupt: {e})") from None
    if "__meta__" not in arrays:
        raise FileFormatError(f"{path}: not an npgrad file (no __meta__ header)")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}: corrupt header ({e})") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise FileFormatError(f"{path}: format {meta.get('format')!r} version {meta.get('format_version')!r} "
                              f"is not {FORMAT!r} version {FORMAT_VERSION} (saved by npgrad "
                              f"{meta.get('npgrad_version')}, this is {__version__})")
    return meta, arrays


def load(path, env=None):
    """Rebuild a saved agent. ``env`` defaults to the saved environment id."""
    from .algos import ALGOS

    meta, arrays = read_npz(path)
    if meta["algo"] not in ALGOS:
        raise FileFormatError(f"{path}: unknown algorithm {meta['algo']!r}; known: {sorted(ALGOS)}")
    cls = ALGOS[meta["algo"]]
    agent = cls(env if env is not None else meta["env_id"], seed=meta["seed"],
                config=cls.Config.from_dict(meta["config"]))
    restore(agent, meta, arrays, path)
    return agent


def restore(agent, meta, arrays, path="file"):
    expected = agent_arrays(agent)
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise FileFormatError(f"{path}: missing arrays {missing}")
    for name, current in expected.items():
        if np.shape(arrays[name]) != np.shape(current):
            raise FileFormatError(f"{path}: array {name} has shape {np.shape(arrays[name])}, but the saved config "
                                  f"builds {np.shape(current)}")
    agent.policy.theta = arrays["policy/theta"]
    agent.value_fn.theta = arrays["value/theta"]
    for name, part in stateful_parts(agent).items():
        part.load_state({k: arrays[f"{name}/{k}"] for k in part.state()})
    agent.num_steps, agent.num_updates = meta["num_steps"], meta["num_updates"]
    agent.learn_start = meta.get("learn_start", agent.num_steps)
    agent.total_steps = meta.get("total_steps", agent.num_steps)
    agent.failed_updates = meta.get("failed_updates", 0)
    agent.rng.bit_generator.state = meta["rng_state"]
    agent.load_extra_state(meta.get("extra", {}))
