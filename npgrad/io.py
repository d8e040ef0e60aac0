"""The file format: one ``.npz`` of arrays plus a JSON header, never pickle.

An agent's arrays are named ``part/key`` (``model/policy_theta``, ``rule/pi_optim/m``, ...), from
the ``state()`` of each part that owns state. The header (``__meta__``, a JSON string stored as a
NumPy unicode scalar) records the format, the npgrad version, the algorithm, the environment id,
the seed, the loop's progress, the RNG state and the config. Reading uses ``allow_pickle=False``
and checks the format and version; the agent then checks every array's name and shape against the
networks its config builds (``check_arrays``). Writes are atomic: the file is written beside the
target and renamed over it, so a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .version import __version__
from .errors import FileFormatError

FORMAT = "npgrad-agent"
FORMAT_VERSION = 2


def flatten(parts, prefix=""):
    """``{"rule": {"pi_optim": {"m": x}}}`` -> ``{"rule/pi_optim/m": x}`` (arrays as they are, scalars as 0-d)."""
    flat = {}
    for name, value in parts.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}/"))
        else:
            flat[f"{prefix}{name}"] = np.asarray(value)
    return flat


def unflatten(arrays):
    """The inverse of ``flatten``."""
    parts = {}
    for key, value in arrays.items():
        *path, name = key.split("/")
        node = parts
        for folder in path:
            node = node.setdefault(folder, {})
        node[name] = value
    return parts


def check_arrays(arrays, expected, path="file"):
    """Refuse a file whose arrays are not exactly the ones (names and shapes) the saved config builds."""
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or extra:
        raise FileFormatError(f"{path}: missing arrays {missing}, unexpected arrays {extra}")
    for name, current in expected.items():
        if np.shape(arrays[name]) != np.shape(current):
            raise FileFormatError(f"{path}: array {name} has shape {np.shape(arrays[name])}, but the saved config "
                                  f"builds {np.shape(current)}")


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


def write(path, arrays, meta):
    """Write ``arrays`` and the JSON header ``meta`` to ``path`` atomically."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "npgrad_version": __version__, **meta}
    return atomic_write_npz(path, {**arrays, "__meta__": np.array(json.dumps(header))})


def read(path):
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
