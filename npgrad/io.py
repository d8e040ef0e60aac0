"""The file format: one ``.npz`` of arrays plus a JSON header, never pickle.

An agent's arrays are named ``part/key`` (``model/policy_theta``, ``rule/pi_optim/m``, ...), from
the ``state()`` of each part that owns state. The header (``__meta__``, a JSON string stored as a
NumPy unicode scalar) records the format, the npgrad version, the algorithm, the environment id (and,
for an agent built on an ``Env`` or ``VectorEnv`` instance, its gymnasium spec with the wrappers it records,
or why it has none), the seed, the loop's progress, the RNG state and the config. Writes are atomic: the file is written
beside the target and renamed over it, so a crash never leaves half a file.

A file is untrusted input, read in an order that bounds what a crafted one can cost:

1. the zip's directory: at most ``MAX_MEMBERS`` members, each named ``part/key.npy``, stored or deflated;
2. each member's ``.npy`` header only (a few hundred bytes): its dtype, shape and byte order, and that
   the member's uncompressed size is exactly that header plus ``prod(shape) * itemsize`` bytes;
3. the JSON header, at most ``MAX_HEADER_BYTES``: a dict with exactly the fields of ``HEADER`` (and those of
   ``OPTIONAL`` it has), each of its JSON type (``Archive``); the agent then checks the values
   (``npgrad.agent.load``; a saved environment spec with ``check_env_spec``, before gymnasium sees it);
4. the members' declared shapes and dtypes against the ones the saved config builds (``Archive.check``);
5. only then the data (``Archive.read``), whose numbers must be finite, and non-negative where they
   are variances or counts (``check_numbers``).

Every violation is a ``FileFormatError`` that names the file and the field or member.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from tokenize import TokenError
from typing import Any, NamedTuple, NoReturn, Union

import numpy as np
from numpy.typing import ArrayLike

from .config import MEMORY_LIMIT
from .errors import ConfigError, FileFormatError, shown
from .version import __version__

FORMAT = "npgrad-agent"
FORMAT_VERSION = 2
MAX_MEMBERS = 64
"""An agent has at most about a dozen arrays (two networks, their optimisers' moments, two filters)."""
MAX_HEADER_BYTES = 1 << 20
"""The JSON header holds a config, counters, an RNG state and a run's small state: kilobytes, not megabytes."""
HEADER = {"format": (str,), "format_version": (int,), "npgrad_version": (str,), "algo": (str,),
          "env_id": (str, type(None)), "seed": (int,), "config": (dict,), "progress": (dict,), "rng_state": (dict,),
          "user": (dict,)}
"""Every field of the header and its JSON type(s): exactly these, no more and no fewer (but ``OPTIONAL``'s)."""
OPTIONAL = {"env_spec": (dict, str)}
"""Fields a header of this format version may leave out, as files saved before them do: ``env_spec``, the
environment's gymnasium spec (``EnvSpec.to_json``, a JSON object) or why it could not be saved (a string). A
header without it names its environment by ``env_id`` alone."""
MEMBER_NAME = re.compile(r"[A-Za-z_]\w*(/[A-Za-z_]\w*)*\.npy")
NON_NEGATIVE = {"var", "v", "count", "t", "beta"}
"""Arrays (by their last name) that are variances, second moments, counts or a penalty weight."""
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, SyntaxError,
               TokenError, TypeError, KeyError, RecursionError, NotImplementedError)
"""What zipfile, zlib, json and numpy's .npy header parser raise on bytes that are not what they claim."""
FilePath = Union[str, "os.PathLike[str]"]


def flatten(parts: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """``{"rule": {"pi_optim": {"m": x}}}`` -> ``{"rule/pi_optim/m": x}`` (arrays as they are, scalars as 0-d)."""
    flat: dict[str, np.ndarray] = {}
    for name, value in parts.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}/"))
        else:
            flat[f"{prefix}{name}"] = np.asarray(value)
    return flat


def unflatten(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``flatten``."""
    parts: dict[str, Any] = {}
    for key, value in arrays.items():
        *path, name = key.split("/")
        node = parts
        for folder in path:
            node = node.setdefault(folder, {})
        node[name] = value
    return parts


def refuse(path: FilePath, field: str, problem: str) -> NoReturn:
    """Raise the ``FileFormatError`` every check of a file raises: ``"<path>: <field>: <problem>"``."""
    raise FileFormatError(f"{path}: {field}: {problem}")


def listed(names: Sequence[str]) -> str:
    """``'a', 'b'`` (each cut by ``shown``), or ``none``."""
    return ", ".join(shown(name) for name in names[:10]) + (", ..." if len(names) > 10 else "") or "none"


def is_integer(value: object, low: int = 0, high: int | None = None) -> bool:
    """Whether ``value`` is a JSON integer (not a bool, not ``1.0``) in ``[low, high)``."""
    return type(value) is int and value >= low and (high is None or value < high)


def file_path(path: Any) -> str:
    """``path`` as a string, if it is one or an ``os.PathLike``; else ``ConfigError``."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"a file path must be a str or an os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def atomic_write_npz(path: FilePath, arrays: Mapping[str, Any]) -> str:
    """Write ``path`` through a temporary file beside it, so a reader never sees half a file. A missing folder is
    created (as SB3's ``save`` does); an ``OSError`` names ``path``, not the temporary file."""
    path = file_path(path)
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a folder: give the path of the .npz file to write")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno is None:
            raise
        raise type(e)(e.errno, e.strerror, path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write(path: FilePath, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """Write ``arrays`` and the JSON header ``meta`` to ``path`` atomically."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "npgrad_version": __version__, **meta}
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as e:  # e.g. a user= dict holding an array
        raise ConfigError(f"the header of {path} must be plain JSON (numbers, strings, lists, dicts): {e}") from None
    return atomic_write_npz(path, {**arrays, "__meta__": np.array(text)})


def read(path: FilePath) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a saved file, every member checked for what it declares (``Archive``) and read, if
    together they fit in ``MEMORY_LIMIT``. ``npgrad.load`` checks them against the saved config instead;
    ``read_header`` reads no array at all."""
    with Archive(path) as archive:
        total = sum(member.nbytes for member in archive.members.values())
        if total > MEMORY_LIMIT:
            refuse(archive.path, "members", f"declare {total:,} bytes of arrays, more than npgrad's limit of "
                                            f"{MEMORY_LIMIT:,} (half this machine's memory)")
        return archive.meta, archive.read(archive.members)


def read_header(path: FilePath) -> dict[str, Any]:
    """The checked JSON header of a saved file, without decompressing any array."""
    with Archive(path) as archive:
        return archive.meta


class Member(NamedTuple):
    """What a member's ``.npy`` header declares, and where its data starts."""

    shape: tuple
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class Archive:
    """An npgrad file, opened: its checked header ``meta`` and ``members`` (name -> ``Member``), no array read yet.

    Use it as a context manager: the file is closed on leaving, whether or not it was refused.
    """

    def __init__(self, path: FilePath) -> None:
        self.path = file_path(path)
        self.zip = open_zip(self.path)
        try:
            self.members = {name[:-4]: member for name, member in read_members(self.zip, self.path).items()}
            self.meta = read_meta(self.zip, self.members, self.path)
        except BaseException:
            self.zip.close()
            raise
        del self.members["__meta__"]

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def check(self, expected: Mapping[str, ArrayLike | tuple[int, ...]], exact: bool = True) -> None:
        """Refuse members whose declared shape or dtype differ from ``expected`` (name -> array, or -> a shape,
        which checks the shape only), before any is decompressed; with ``exact``, the names must be exactly these."""
        declared = {name: (member.shape, member.dtype) for name, member in self.members.items()}
        wanted = {name: (want, None) if isinstance(want, tuple) else layout(want) for name, want in expected.items()}
        check_layout(declared, wanted, self.path, exact)

    def read(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """``{name: array}`` of the members ``names``, decompressed and their numbers checked (``check_numbers``)."""
        arrays = {name: read_array(self.zip, name, self.members[name], self.path) for name in names}
        for name, array in arrays.items():
            check_numbers(self.path, name, array)
        return arrays


def layout(array: ArrayLike) -> tuple[tuple[int, ...], np.dtype]:
    return np.shape(array), np.asarray(array).dtype


def check_layout(declared: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                 expected: Mapping[str, tuple[tuple[int, ...], np.dtype | None]], path: FilePath,
                 exact: bool = True) -> None:
    """Refuse ``declared`` arrays (name -> (shape, dtype)) that are not the ``expected`` ones (a dtype of None
    is not checked); with ``exact``, the names must be exactly ``expected``'s."""
    missing, extra = sorted(set(expected) - set(declared)), sorted(set(declared) - set(expected))
    if missing or (extra and exact):
        refuse(path, "members", f"missing arrays {listed(missing)}; unexpected arrays {listed(extra)}")
    for name, (shape, dtype) in expected.items():
        if declared[name][0] != shape:
            refuse(path, name, f"declares shape {declared[name][0]}, but the saved config builds {shape}")
        if dtype is not None and declared[name][1] != dtype:
            refuse(path, name, f"declares dtype {declared[name][1]}, but npgrad saves it as {dtype}")


def check_arrays(arrays: Mapping[str, ArrayLike], expected: Mapping[str, ArrayLike], path: FilePath = "file") -> None:
    """Refuse ``arrays`` unless they are exactly the ``expected`` ones (names, shapes, dtypes) with valid numbers."""
    check_layout({name: layout(array) for name, array in arrays.items()},
                 {name: layout(array) for name, array in expected.items()}, path)
    for name, array in arrays.items():
        check_numbers(path, name, np.asarray(array))


def open_zip(path: str) -> zipfile.ZipFile:
    """The file as a ``ZipFile``, refusing what is missing or is not a zip (``np.load`` would unpickle those)."""
    if os.path.isdir(path):
        raise FileFormatError(f"{path}: a folder, not an npgrad file (a saved population is loaded with "
                              "npgrad.load_population)")
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith(b"PK"):
        what = {b"\x80": "a pickle", b"\x93": "a single .npy array"}.get(magic[:1], "not a zip archive")
        raise FileFormatError(f"{path}: refused, not an .npz file ({what}); npgrad saves and loads .npz only")
    try:
        return zipfile.ZipFile(path)
    except READ_ERRORS as e:
        raise FileFormatError(f"{path}: not a readable .npz file (truncated or corrupt: {e})") from None


def read_members(zf: zipfile.ZipFile, path: str) -> dict[str, Member]:
    """``{zip name: Member}`` from the directory and each member's ``.npy`` header; the data is not read."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        refuse(path, "members", f"{len(infos)} members; an npgrad file has at most {MAX_MEMBERS}")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        refuse(path, "members", "the same name appears twice")
    return {info.filename: read_member(zf, info, path) for info in infos}


NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
NPY_HEADER_BYTES = 12 + 10_000
"""Magic, version and length, and the header dict, which numpy refuses above 10,000 characters."""


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> Member:
    """One member's declared layout, checked: its name, compression, dtype and uncompressed size."""
    name = info.filename
    if not MEMBER_NAME.fullmatch(name):
        refuse(path, f"member {shown(name)}", "is not part of the format (names are part/key.npy)")
    if info.flag_bits & 1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        refuse(path, name, "is encrypted or compressed with a method npgrad does not write")
    try:
        with zf.open(info) as f:
            head = io.BytesIO(f.read(NPY_HEADER_BYTES))  # numpy would read a header of any declared length first
        version = np.lib.format.read_magic(head)
        read_header = NPY_HEADERS.get(version)
        shape, fortran_order, dtype = read_header(head) if read_header else ((), False, np.dtype(None))
        member = Member(shape, dtype, head.tell())
    except READ_ERRORS as e:
        refuse(path, name, f"not a readable .npy array (truncated or corrupt: {shown(str(e), 120)})")
    if read_header is None:
        refuse(path, name, f".npy format version {version} is not one npgrad writes")
    if dtype.hasobject:
        refuse(path, name, "refused, it contains pickled objects (npgrad never writes object arrays)")
    if dtype.kind not in "biufU" or dtype.names is not None or dtype.shape != () or dtype.itemsize == 0:
        refuse(path, name, f"has dtype {dtype}, which npgrad never writes (it writes bools, integers and floats, "
                           "and the header as a string)")
    if fortran_order and len(shape) > 1:
        refuse(path, name, "is in Fortran order, which npgrad never writes")
    if info.file_size != member.offset + member.nbytes:
        refuse(path, name, f"declares shape {shape} of {dtype} ({member.nbytes:,} bytes) but holds "
                           f"{info.file_size - member.offset:,} bytes")
    return member


def read_meta(zf: zipfile.ZipFile, members: Mapping[str, Member], path: str) -> dict[str, Any]:
    """The JSON header, bounded in size, with the fields of ``HEADER`` and their JSON types."""
    member = members.get("__meta__") or refuse(path, "header", "not an npgrad file (no __meta__ header)")
    if member.dtype.kind != "U" or member.shape != () or member.nbytes > MAX_HEADER_BYTES:
        refuse(path, "header", f"must be one string of at most {MAX_HEADER_BYTES:,} bytes, got shape {member.shape} "
                               f"of {member.dtype} ({member.nbytes:,} bytes)")
    text = str(read_array(zf, "__meta__", member, path)[()])
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:
        refuse(path, "header", f"corrupt JSON ({shown(str(e), 120)})")
    check_envelope(meta, path)
    return meta


def check_envelope(meta: object, path: str) -> None:
    """Refuse a header that is not a dict of exactly ``HEADER``'s fields, of their JSON types, in this format."""
    if not isinstance(meta, dict):
        refuse(path, "header", f"must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise FileFormatError(f"{path}: format {shown(meta.get('format'))} version {shown(meta.get('format_version'))} "
                              f"is not {FORMAT!r} version {FORMAT_VERSION} (saved by npgrad "
                              f"{shown(meta.get('npgrad_version'))}, this is {__version__})")
    missing, extra = sorted(set(HEADER) - set(meta)), sorted(set(meta) - set(HEADER) - set(OPTIONAL))
    if missing or extra:
        refuse(path, "header", f"missing fields {listed(missing)}; unexpected fields {listed(extra)}")
    for field, types in {**HEADER, **OPTIONAL}.items():
        if field in meta and type(meta[field]) not in types:
            refuse(path, field, f"must be {' or '.join(JSON_NAMES[t] for t in types)}, got {shown(meta[field])}")


JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a JSON object",
              list: "a list", type(None): "null"}


def read_array(zf: zipfile.ZipFile, name: str, member: Member, path: str) -> np.ndarray:
    """The data of a member whose layout was checked: at most ``member.nbytes`` bytes are decompressed."""
    try:
        with zf.open(f"{name}.npy") as f:
            f.read(member.offset)
            data = f.read(member.nbytes + 1)
    except READ_ERRORS as e:
        refuse(path, name, f"not readable (truncated or corrupt: {shown(str(e), 120)})")
    if len(data) != member.nbytes:
        refuse(path, name, f"holds {len(data):,} bytes of data, not the {member.nbytes:,} its header declares")
    return np.frombuffer(data, member.dtype).reshape(member.shape).copy()


def check_numbers(path: FilePath, name: str, array: np.ndarray) -> None:
    """Refuse non-finite numbers, and negative ones where ``name`` is a variance, a moment or a count."""
    if array.dtype.kind not in "biuf":
        refuse(path, name, f"must hold real numbers, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        bad = np.size(array) - np.count_nonzero(np.isfinite(array))
        refuse(path, name, f"{bad:,} of its {np.size(array):,} numbers are NaN or inf: the file is corrupt or was "
                           "saved from a diverged model")
    if name.rsplit("/", 1)[-1] in NON_NEGATIVE and np.any(array < 0):
        refuse(path, name, f"has negative entries (min {np.min(array):.3g}); it is a variance, a second moment "
                           "or a count")


def check_rng_state(state: Mapping[str, Any], path: FilePath) -> None:
    """Refuse anything but a PCG64 state as ``Generator.bit_generator.state`` gives it: a 128-bit ``state``,
    an odd 128-bit increment ``inc``, a 0/1 flag ``has_uint32`` and a buffered 32-bit word ``uinteger``."""
    inner = state.get("state")
    well_formed = (set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
                   and state["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
                   and is_integer(inner["state"], 0, 2**128) and is_integer(inner["inc"], 0, 2**128)
                   and inner["inc"] % 2 == 1 and is_integer(state["has_uint32"], 0, 2)
                   and is_integer(state["uinteger"], 0, 2**32))
    if not well_formed:
        refuse(path, "rng_state", f"is not a PCG64 state ({{'bit_generator': 'PCG64', 'state': {{'state': <128-bit>, "
                                  f"'inc': <odd 128-bit>}}, 'has_uint32': 0 or 1, 'uinteger': <32-bit>}}), "
                                  f"got {shown(state, 120)}")


def check_counters(counters: Mapping[str, Any], names: Iterable[str], path: FilePath, field: str) -> None:
    """Refuse ``counters`` unless its keys are exactly ``names`` and every value is an integer ``>= 0``."""
    if set(counters) != set(names):
        refuse(path, field, f"must have exactly the counters {listed(sorted(names))}; got {listed(list(counters))}")
    for name, value in counters.items():
        if not is_integer(value):
            refuse(path, f"{field}: {name}", f"must be a non-negative integer, got {shown(value)}")


# --- a saved environment spec ------------------------------------------------------------------------------

ENV_SPEC = {"id": (str,), "entry_point": (str,), "reward_threshold": (int, float, type(None)), "nondeterministic": (bool,),
            "max_episode_steps": (int, type(None)), "order_enforce": (bool,), "disable_env_checker": (bool,),
            "kwargs": (dict,), "additional_wrappers": (list,), "vector_entry_point": (str, type(None))}
"""The fields of gymnasium's ``EnvSpec.to_json`` and their JSON types: exactly these."""
WRAPPER_SPEC = {"name": (str,), "entry_point": (str,), "kwargs": (dict,)}
"""The fields of one of its ``additional_wrappers`` (a ``WrapperSpec``) and their JSON types."""
ENTRY_POINT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
"""``module.sub:Name``, as gymnasium writes an entry point (``load_env_creator`` imports ``module.sub``)."""
ENV_ID = re.compile(r"[\w.\-/]{1,200}")
MAX_WRAPPERS = 32
MAX_KWARGS = 64
MAX_SPEC_DEPTH = 8
"""Nesting of lists and objects in an argument: gymnasium deep-copies them, and npgrad never needs more."""
MAX_STEPS = 2**31
MAKE_VEC_KWARGS = ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers")
"""Keys ``gym.make_vec`` takes out of a spec's ``kwargs`` as its own arguments (``wrappers`` would be called):
never an environment's argument, and npgrad records specs without them."""


def env_spec_problem(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(field, problem)`` for the first thing wrong with a saved environment spec (its JSON types and sizes), or
    None. What it may import is not judged here: ``npgrad.envs.rebuilt_spec`` does that."""
    problem = fields_problem(spec, ENV_SPEC)
    if problem:
        return problem
    if not ENV_ID.fullmatch(spec["id"]):
        return "id", f"must be a gymnasium id (letters, digits, -_./, at most 200), got {shown(spec['id'])}"
    for field in ("entry_point", "vector_entry_point"):
        if spec[field] is not None and not ENTRY_POINT.fullmatch(spec[field]):
            return field, f"must be a module:Name entry point, got {shown(spec[field])}"
    steps = spec["max_episode_steps"]
    if steps is not None and not is_integer(steps, 1, MAX_STEPS):
        return "max_episode_steps", f"must be an integer from 1 to 2**31 or null, got {shown(steps)}"
    problem = kwargs_problem(spec["kwargs"])
    if problem:
        return joined("kwargs", problem[0]), problem[1]
    vector_keys = [key for key in MAKE_VEC_KWARGS if key in spec["kwargs"]]
    if vector_keys:
        return f"kwargs: {vector_keys[0]}", "is an argument of gym.make_vec, not of the environment; npgrad never saves it"
    wrappers = spec["additional_wrappers"]
    if len(wrappers) > MAX_WRAPPERS:
        return "additional_wrappers", f"{len(wrappers)} wrappers; npgrad saves at most {MAX_WRAPPERS}"
    for i, wrapper in enumerate(wrappers):
        problem = wrapper_problem(wrapper)
        if problem:
            return joined(f"additional_wrappers[{i}]", problem[0]), problem[1]
    return None


def wrapper_problem(wrapper: object) -> tuple[str, str] | None:
    """``(field, problem)`` for the first thing wrong with one saved ``WrapperSpec``, or None."""
    if not isinstance(wrapper, dict):
        return "", f"must be a JSON object (name, entry_point, kwargs), got {shown(wrapper)}"
    problem = fields_problem(wrapper, WRAPPER_SPEC)
    if problem:
        return problem
    if not (wrapper["name"].isidentifier() and len(wrapper["name"]) <= 100):
        return "name", f"must be a class name, got {shown(wrapper['name'])}"
    if not ENTRY_POINT.fullmatch(wrapper["entry_point"]):
        return "entry_point", f"must be a module:Name entry point, got {shown(wrapper['entry_point'])}"
    problem = kwargs_problem(wrapper["kwargs"])
    return problem and (joined("kwargs", problem[0]), problem[1])


def check_env_spec(spec: Mapping[str, Any], path: FilePath) -> None:
    """Refuse a saved environment spec whose fields are not exactly gymnasium's, of their JSON types and sizes
    (``env_spec_problem``); the ``FileFormatError`` names the field, e.g. ``env_spec: kwargs: wrappers``."""
    problem = env_spec_problem(spec)
    if problem:
        field, text = problem
        refuse(path, joined("env_spec", field), text)


def joined(field: str, part: str) -> str:
    """``field: part``, or ``field`` if ``part`` is empty (the problem is with the whole of ``field``)."""
    return f"{field}: {part}" if part else field


def fields_problem(value: Mapping[str, Any], types: Mapping[str, tuple]) -> tuple[str, str] | None:
    """``(field, problem)`` if ``value`` has not exactly the fields of ``types``, each of its JSON type(s)."""
    missing, extra = sorted(set(types) - set(value)), sorted(set(value) - set(types))
    if missing or extra:
        return "", f"missing fields {listed(missing)}; unexpected fields {listed(extra)}"
    for field, allowed in types.items():
        if type(value[field]) not in allowed:
            return field, f"must be {' or '.join(JSON_NAMES[t] for t in allowed)}, got {shown(value[field])}"
    return None


def kwargs_problem(kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(key, problem)`` unless ``kwargs`` are Python keyword arguments (identifiers, at most ``MAX_KWARGS``) whose
    values are JSON nested at most ``MAX_SPEC_DEPTH`` deep."""
    if len(kwargs) > MAX_KWARGS:
        return "", f"{len(kwargs)} arguments; npgrad saves at most {MAX_KWARGS}"
    for key, value in kwargs.items():
        if not key.isidentifier() or len(key) > 100:
            return shown(key), "is not a keyword argument's name"
        if too_deep(value):
            return key, f"nests lists or objects more than {MAX_SPEC_DEPTH} deep"
    return None


def too_deep(value: object, levels: int = MAX_SPEC_DEPTH) -> bool:
    """Whether JSON ``value`` nests lists and objects more than ``levels`` deep (it recurses at most that far)."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if children is None:
        return False
    return levels == 0 or any(too_deep(child, levels - 1) for child in children)
