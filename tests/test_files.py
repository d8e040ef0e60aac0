"""Saved files are refused, with a message naming the problem, when they are unsafe or foreign."""
import gc
import io
import json
import pickle
import struct
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import npgrad
from npgrad.errors import FileFormatError
from npgrad.io import read as read_npz, read_header
from helpers import rewrite


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    agent = npgrad.PPO("CartPole-v1", seed=0, n_steps=16)
    agent.learn(128)
    return agent.save(tmp_path_factory.mktemp("files") / "agent.npz")


def test_pickled_objects_are_refused(saved, tmp_path):
    path = rewrite(saved, tmp_path / "crafted.npz", lambda a: a.update(evil=np.array([{"x": 1}], dtype=object)))
    with pytest.raises(FileFormatError, match="evil.npy: refused, it contains pickled objects"):
        npgrad.load(path)


@pytest.mark.parametrize("write, what", [
    (lambda f: pickle.dump({"policy": [1.0]}, f), "a pickle"),
    (lambda f: np.save(f, np.zeros(3)), "a single .npy array"),
    (lambda f: f.write(b"theta = [0.1, 0.2]\n"), "not a zip archive"),
])
def test_files_that_are_not_npz_are_named_as_such(tmp_path, write, what):
    path = tmp_path / "agent.npz"
    with open(path, "wb") as f:
        write(f)
    with pytest.raises(FileFormatError, match=f"not an .npz file \\({what}\\)"):
        npgrad.load(path)


def test_truncated_file_is_refused(saved, tmp_path):
    data = open(saved, "rb").read()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="truncated or corrupt"):
        npgrad.load(path)


def test_foreign_npz_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(FileFormatError, match="not an npgrad file"):
        npgrad.load(path)
    with pytest.raises(FileFormatError, match="no such file"):
        npgrad.load(tmp_path / "missing.npz")


def test_incompatible_version_is_refused(saved, tmp_path):
    def bump(arrays):
        meta = json.loads(str(arrays["__meta__"]))
        meta["format_version"] = 999
        arrays["__meta__"] = np.array(json.dumps(meta))

    with pytest.raises(FileFormatError, match="version 999"):
        npgrad.load(rewrite(saved, tmp_path / "future.npz", bump))


def test_shapes_are_checked_against_the_config(saved, tmp_path):
    def shrink(arrays):
        arrays["model/policy_theta"] = arrays["model/policy_theta"][:-1]

    with pytest.raises(FileFormatError, match="model/policy_theta: declares shape"):
        npgrad.load(rewrite(saved, tmp_path / "shrunk.npz", shrink))


def test_header_records_version_and_config(saved):
    meta, arrays = read_npz(saved)
    assert meta["npgrad_version"] == npgrad.__version__ and meta["algo"] == "ppo"
    assert meta["config"]["n_steps"] == 16 and meta["progress"]["num_steps"] == 256
    assert {"model/policy_theta", "model/value_theta", "rule/pi_optim/m", "rule/beta"} <= set(arrays)


def test_a_save_that_dies_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    agent = npgrad.A2C("CartPole-v1", seed=0)
    path = agent.save(tmp_path / "agent.npz")
    before = open(path, "rb").read()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(np, "savez", crash)
    agent.learn(40)
    with pytest.raises(KeyboardInterrupt):
        agent.save(path)
    assert open(path, "rb").read() == before, "the previous file must survive a failed save"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.npz"], "no temporary file left behind"


# --- one schema: every field of the header and every member is checked before anything is built ---------


def with_header(src, dst, change):
    """``src`` with its JSON header edited: ``change(meta)`` mutates it, or returns a replacement."""
    def edit(arrays):
        meta = json.loads(str(arrays["__meta__"]))
        new = change(meta)
        arrays["__meta__"] = np.array(new if isinstance(new, str) else json.dumps(meta if new is None else new))
    return rewrite(src, dst, edit)


def setting(*keys_value):
    """``change`` for ``with_header``: ``meta[k1][k2]... = value``, or delete the key if value is ``DELETE``."""
    *keys, value = keys_value

    def change(meta):
        node = meta
        for key in keys[:-1]:
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return change


DELETE = object()
DEEP = "[" * 100_000 + "]" * 100_000

HEADER_HOLES = {  # name: (change, the field the error must name)
    "header a list": (lambda m: [m], "header"), "header a number": (lambda m: 3, "header"),
    "header nested 100,000 deep": (lambda m: DEEP, "header"),
    "config a string": (setting("config", "fast"), "config"), "config null": (setting("config", None), "config"),
    "algo a list": (setting("algo", ["ppo"]), "algo"), "algo a dict": (setting("algo", {"a": 1}), "algo"),
    "no algo": (setting("algo", DELETE), "algo"), "no seed": (setting("seed", DELETE), "seed"),
    "no config": (setting("config", DELETE), "config"), "no rng_state": (setting("rng_state", DELETE), "rng_state"),
    "no num_updates": (setting("progress", "num_updates", DELETE), "num_updates"),
    "num_updates 1.5": (setting("progress", "num_updates", 1.5), "num_updates"),
    "num_steps a string": (setting("progress", "num_steps", "256"), "num_steps"),
    "num_steps negative": (setting("progress", "num_steps", -256), "num_steps"),
    "num_updates true": (setting("progress", "num_updates", True), "num_updates"),
    "learn_start beyond num_steps": (setting("progress", "learn_start", 10**6), "learn_start.*more than num_steps"),
    "seed negative": (setting("seed", -1), "seed"), "seed 1.5": (setting("seed", 1.5), "seed"),
    "rng_state a string": (setting("rng_state", "PCG64"), "rng_state"),
    "rng_state of MT19937": (setting("rng_state", "bit_generator", "MT19937"), "rng_state"),
    "rng_state inc a string": (setting("rng_state", "state", "inc", "1"), "rng_state"),
    "rng_state inc even": (setting("rng_state", "state", "inc", 2), "rng_state"),  # PCG64's increment is odd
    "rng_state state negative": (setting("rng_state", "state", "state", -1), "rng_state"),
    "rng_state state 2^128": (setting("rng_state", "state", "state", 2**128), "rng_state"),
    "rng_state without has_uint32": (setting("rng_state", "has_uint32", DELETE), "rng_state"),
    "env_id module:Env": (setting("env_id", "os:Nothing-v0"), "env_id"),
    "env_id unregistered": (setting("env_id", "NoSuchEnv-v0"), "env_id"),
    "env_id a number": (setting("env_id", 5), "env_id"),
    "config hidden 100,000 wide": (setting("config", "hidden", [100_000, 100_000]), "memory"),
    "config 10^9 environments": (setting("config", "n_envs", 10**9), "n_envs"),
    "config 10^9 epochs": (setting("config", "n_epochs", 10**9), "n_epochs"),
    "config n_steps a string": (setting("config", "n_steps", "16"), "n_steps"),
    "config unknown field": (setting("config", "warp", 9), "warp"),
    "unknown header field": (setting("exec", "import os"), "exec"),
    "user a list": (setting("user", [1]), "user"),
}


def assert_refused_quickly(path, what, seconds=1.0):
    """``npgrad.load(path)`` raises a ``FileFormatError`` naming the file and matching ``what``, within ``seconds``."""
    start = time.perf_counter()
    with pytest.raises(FileFormatError, match=what) as info:
        npgrad.load(path)
    assert str(path) in str(info.value), "the error names the file"
    assert time.perf_counter() - start < seconds, "refused, but slowly"


@pytest.mark.parametrize("hole", sorted(HEADER_HOLES))
def test_every_header_field_is_checked_and_named(saved, tmp_path, hole):
    change, field = HEADER_HOLES[hole]
    assert_refused_quickly(with_header(saved, tmp_path / "crafted.npz", change), field)


def test_a_config_asking_for_much_larger_networks_is_refused_before_they_are_built(saved, tmp_path):
    path = with_header(saved, tmp_path / "wide.npz", setting("config", "hidden", [6000, 6000]))
    assert_refused_quickly(path, "model/policy_theta: declares shape")  # not 36M parameters built, then refused


@pytest.mark.parametrize("chars", [300_000, 2_000_000])  # 1.2 MB and 8 MB as a NumPy string, past the 1 MiB bound
def test_the_header_size_is_bounded(saved, tmp_path, chars):
    path = with_header(saved, tmp_path / "big_header.npz", setting("user", {"note": "x" * chars}))
    with pytest.raises(FileFormatError, match="header.*at most 1,048,576 bytes"):
        npgrad.load(path)


def test_json_integers_are_not_booleans_and_nesting_is_bounded():
    from npgrad.io import MAX_SPEC_DEPTH, is_integer, too_deep

    assert is_integer(3) and not is_integer(True) and not is_integer(3.0)
    lists = lambda levels: [] if levels == 1 else [lists(levels - 1)]  # noqa: E731  [[]] is 2 levels
    assert not too_deep(lists(MAX_SPEC_DEPTH)) and too_deep(lists(MAX_SPEC_DEPTH + 1))


def npy_bytes(array=None, header=None, tail=b""):
    """The bytes of an ``.npy`` file: ``array``'s, or a hand-written header dict (``header``) with ``tail``."""
    buf = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buf, array, allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + tail


def with_members(src, dst, change):
    """``src`` rewritten member by member: ``change(members)`` edits ``{zip name: bytes}``."""
    with zipfile.ZipFile(src) as z:
        members = {name: z.read(name) for name in z.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dst


MEMBER_HOLES = {  # name: (change, what the error must say)
    "a shape of 2^40 elements": (lambda m: m.update({"model/policy_theta.npy": npy_bytes(
        header={"descr": "<f8", "fortran_order": False, "shape": (2**40,)}, tail=b"\0" * 64)}), "policy_theta"),
    "1 MB past the declared data": (lambda m: m.update({"model/value_theta.npy": m["model/value_theta.npy"]
                                                        + b"\0" * 2**20}), "value_theta.npy: declares shape .* but holds"),
    "a truncated array": (lambda m: m.update({"rule/pi_optim/m.npy": m["rule/pi_optim/m.npy"][:-8]}), "pi_optim/m"),
    "a corrupt .npy header": (lambda m: m.update({"rule/beta.npy": b"\x93NUMPY\x01\x00\x16\x00{'descr': '<f8', (\n"}),
                              "rule/beta"),
    "an object array": (lambda m: m.update({"rule/beta.npy": npy_bytes(
        header={"descr": "|O", "fortran_order": False, "shape": ()}, tail=b"\0" * 8)}), "rule/beta.*pickled objects"),
    "a Fortran-ordered matrix": (lambda m: m.update({"rule/beta.npy": npy_bytes(
        header={"descr": "<f8", "fortran_order": True, "shape": (2, 2)}, tail=b"\0" * 32)}), "rule/beta.*Fortran"),
    "65 members": (lambda m: m.update({f"extra/x{i}.npy": npy_bytes(np.zeros(1)) for i in range(65 - len(m))}),
                   "65 members; an npgrad file has at most 64"),
    "an empty string header": (lambda m: m.update({"__meta__.npy": npy_bytes(
        header={"descr": "<U0", "fortran_order": False, "shape": ()})}), "__meta__"),
    "a structured array": (lambda m: m.update({"rule/beta.npy": npy_bytes(np.zeros((), [("a", "<f8")]))}), "rule/beta"),
    "a float32 step counter": (lambda m: m.update({"rule/pi_optim/t.npy": npy_bytes(np.float32(3))}), "pi_optim/t"),
    "a member named ../x": (lambda m: m.update({"../x.npy": npy_bytes(np.zeros(2))}), r"\.\./x"),
    "a member that is not .npy": (lambda m: m.update({"notes.txt": b"hello"}), "notes.txt"),
    "5,000 extra members": (lambda m: m.update({f"x{i}.npy": b"" for i in range(5_000)}), "members"),
    "no optimiser moments": (lambda m: m.pop("rule/vf_optim/v.npy"), "vf_optim/v"),
}


@pytest.mark.parametrize("hole", sorted(MEMBER_HOLES))
def test_every_member_is_checked_before_it_is_decompressed(saved, tmp_path, hole):
    change, what = MEMBER_HOLES[hole]
    path = with_members(saved, tmp_path / "crafted.npz", change)
    assert_refused_quickly(path, what)
    if hole not in ("a float32 step counter", "no optimiser moments"):  # not the format's: the config's layout
        with pytest.raises(FileFormatError, match=what):  # reading the header alone checks every member too
            read_header(str(path))


def test_a_member_declaring_a_huge_npy_header_is_refused_without_reading_it(saved, tmp_path):
    path = tmp_path / "bomb.npz"  # a .npy header that says it is 64 MiB long: 64 KiB of deflated spaces
    with_members(saved, path, lambda m: m.update({"rule/beta.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**26)
                                                  + b" " * 2**26}))
    tracemalloc.start()
    try:
        assert_refused_quickly(path, "rule/beta")
        assert tracemalloc.get_traced_memory()[1] < 2**24, "the header was read into memory before the check"
    finally:
        tracemalloc.stop()


def test_reading_every_array_without_a_config_is_bounded_too(saved, monkeypatch):
    monkeypatch.setattr(npgrad.io, "MEMORY_LIMIT", 10_000)  # the arrays of `saved` declare about 300 kB
    with pytest.raises(FileFormatError, match="members: declare .* bytes of arrays"):
        read_npz(saved)
    assert npgrad.io.read_header(saved)["algo"] == "ppo"  # the header alone is always small


def set_entry(name, index, value):
    def change(arrays):
        arrays[name] = arrays[name].copy()
        arrays[name].flat[index] = value
    return change


@pytest.fixture(scope="module")
def saved_with_filters(tmp_path_factory):
    agent = npgrad.PPO("Pendulum-v1", seed=0, n_envs=2, n_steps=64, normalize_obs=True, normalize_reward=True)
    agent.learn(64)
    return agent.save(tmp_path_factory.mktemp("filters") / "agent.npz")


NUMBER_HOLES = {  # name: (array, index, value, what the error must say)
    "a NaN weight": ("model/policy_theta", 3, np.nan, "model/policy_theta.*NaN or inf"),
    "an inf weight": ("model/value_theta", 0, np.inf, "model/value_theta.*NaN or inf"),
    "a NaN Adam moment": ("rule/pi_optim/m", 5, np.nan, "rule/pi_optim/m.*NaN or inf"),
    "a negative Adam second moment": ("rule/vf_optim/v", 1, -1.0, "rule/vf_optim/v.*negative"),
    "a negative step count": ("rule/pi_optim/t", 0, -4, "rule/pi_optim/t.*negative"),
    "a negative observation variance": ("obs_filter/var", 2, -0.5, "obs_filter/var.*negative"),
    "a NaN observation mean": ("obs_filter/mean", 0, np.nan, "obs_filter/mean.*NaN or inf"),
    "a negative reward count": ("reward_filter/count", 0, -3.0, "reward_filter/count.*negative"),
    "a log-std beyond its bounds": ("model/policy_theta", -1, 1e6, "model/policy_theta.*range"),
    "a negative KL penalty weight": ("rule/beta", 0, -1.0, "rule/beta.*negative"),
}


@pytest.mark.parametrize("hole", sorted(NUMBER_HOLES))
def test_a_files_numbers_are_checked(saved_with_filters, tmp_path, hole):
    name, index, value, what = NUMBER_HOLES[hole]
    path = rewrite(saved_with_filters, tmp_path / "crafted.npz", set_entry(name, index, value))
    with pytest.raises(FileFormatError, match=what):
        npgrad.load(path)


@pytest.mark.parametrize("make", ["truncated", "bad header"])
def test_a_refused_file_leaves_no_handle_open(saved, tmp_path, make):
    if make == "truncated":
        path = tmp_path / "truncated.npz"
        path.write_bytes(open(saved, "rb").read()[:3000])
    else:
        path = with_header(saved, tmp_path / "bad.npz", lambda m: [m])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FileFormatError):
            npgrad.load(path)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_an_env_id_from_a_file_is_refused_unless_the_caller_names_the_environment(saved, tmp_path):
    path = with_header(saved, tmp_path / "custom.npz", setting("env_id", "os:Nothing-v0"))
    with pytest.raises(FileFormatError, match="env_id.*not a registered"):
        npgrad.load(path)
    assert npgrad.load(path, env="CartPole-v1").env_id == "CartPole-v1"  # the caller's choice is trusted


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
@pytest.mark.parametrize("env_id, extra", [("CartPole-v1", {}), ("Pendulum-v1", {"use_sde": True}),
                                           ("Pendulum-v1", {"normalize_obs": True})])
def test_every_algorithm_round_trips_through_the_checks(tmp_path, algo, env_id, extra):
    agent = npgrad.ALGOS[algo](env_id, seed=1, n_envs=2, n_steps=64, **extra).learn(128)
    loaded = npgrad.load(agent.save(tmp_path / "agent.npz"))
    np.testing.assert_array_equal(loaded.policy.theta, agent.policy.theta)
    assert loaded.progress == agent.progress
    (arrays, meta), (loaded_arrays, loaded_meta) = agent.state(), loaded.state()
    assert arrays.keys() == loaded_arrays.keys() and all(np.array_equal(arrays[k], loaded_arrays[k]) for k in arrays)
    assert loaded_meta["rng_state"] == meta["rng_state"], "the generator goes on where it was"


def test_a_module_env_id_is_imported_only_when_the_caller_trusts_the_file(tmp_path):
    agent = npgrad.PPO("gymnasium.envs.classic_control:CartPole-v1", seed=0)  # typed by the user: imported
    path = agent.save(tmp_path / "agent.npz")
    with pytest.raises(FileFormatError, match="trust_env_spec=True"):
        npgrad.load(path)
    loaded = npgrad.load(path, trust_env_spec=True)
    np.testing.assert_array_equal(loaded.policy.theta, agent.policy.theta)
