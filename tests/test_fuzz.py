"""Fuzzing the public surface: crafted model files and generated arguments are either accepted or refused with
an ``NpgradError`` that has a message, quickly and without a warning.

Run with ``python -W error -m pytest tests/test_fuzz.py``. About 2,000 examples run by default (under 20 s);
``NPGRAD_FUZZ=slow`` runs ten times as many.
"""
import io
import json
import os
import time
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npgrad
from npgrad.errors import NpgradError, NpgradWarning

SCALE = 10 if os.environ.get("NPGRAD_FUZZ") == "slow" else 1
SECONDS = 2.0
"""The longest a single call may take before it counts as a hang (a refusal takes milliseconds)."""


def fuzz(examples):
    return settings(max_examples=examples * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def outcome(call):
    """``call()``'s result, or the ``NpgradError`` it raised; any other exception, a warning (npgrad's own advice,
    ``NpgradWarning``, aside), an empty message or a slow answer fails the test."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", NpgradWarning)
        try:
            result = call()
        except NpgradError as e:
            assert str(e).strip(), f"{type(e).__name__} without a message"
            result = e
    assert time.perf_counter() - start < SECONDS, f"took {time.perf_counter() - start:.1f} s"
    return result


# --- files -------------------------------------------------------------------------------------------------


class ModelFile(dict):
    """The fixture's bytes, members and header, shown by name in a failing example (not as 20 kB of bytes)."""

    def __repr__(self):
        return f"<model file {self['out']}>"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small real model file (CartPole's environments are NumPy-vectorised: a crafted n_envs costs nothing)."""
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=16, hidden=(8,), vf_hidden=(8,), minibatch_size=16,
                       normalize_obs=True)
    agent.learn(64)
    folder = tmp_path_factory.mktemp("fuzz")
    path = agent.save(folder / "model.npz")
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    with open(path, "rb") as f:
        data = f.read()
    return ModelFile(bytes=data, members=members, out=str(folder / "crafted.npz"), meta=npgrad.io.read_header(path))


def load_bytes(model, data):
    """``npgrad.load`` of a file holding ``data``; a loaded agent must hold finite numbers only."""
    with open(model["out"], "wb") as f:
        f.write(data)
    result = outcome(lambda: npgrad.load(model["out"]))
    if not isinstance(result, NpgradError):
        arrays, _ = result.state()
        assert all(np.all(np.isfinite(array)) for array in arrays.values()), "a loaded agent holds non-finite numbers"
        result.envs.close()
    return result


def zip_bytes(members, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


EDGE_INTEGERS = st.sampled_from([0, 1, -1, 2, 3, 7, 64, 2**31, 2**32, 2**53 + 1, 2**63, 2**64, 2**128, 10**9, -2**63])
JSON_LEAVES = (st.none() | st.booleans() | EDGE_INTEGERS | st.integers() | st.floats()
               | st.sampled_from(["", "ppo", "CartPole-v1", "os:Env-v0", "float32", "tanh", "PCG64", "clip"])
               | st.text(max_size=8))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=8)


def paths(node, prefix=()):
    """Every path of keys and indices into a JSON tree, the root ``()`` first."""
    found = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found += paths(child, prefix + (key,))
    return found


@st.composite
def mutated_headers(draw, meta):
    """``meta`` with one node replaced by a generated JSON value, deleted, or given an extra key."""
    meta = json.loads(json.dumps(meta))
    path = draw(st.sampled_from(paths(meta)))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:
        return draw(JSON_VALUES) if action == "replace" else meta
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if action == "replace":
        parent[path[-1]] = draw(JSON_VALUES)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(JSON_VALUES)
    return meta


@given(data=st.data())
@fuzz(400)
def test_mutated_headers_are_loaded_or_refused_with_a_file_format_error(model, data):
    meta = data.draw(mutated_headers(model["meta"]))
    header = npy_bytes(np.array(json.dumps(meta)))  # NaN and inf are written as NaN and Infinity, as json allows
    load_bytes(model, zip_bytes({**model["members"], "__meta__.npy": header}))


@st.composite
def byte_edits(draw, model):
    """The file's bytes with a few overwritten, cut or inserted, mostly in the zip's headers and directory."""
    data = bytearray(model["bytes"])
    with zipfile.ZipFile(io.BytesIO(model["bytes"])) as z:
        starts = [info.header_offset for info in z.infolist()] + [len(data) - 1200]
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.sampled_from(["anywhere", "near a header"]))
        pos = (draw(st.integers(0, len(data) - 1)) if where == "anywhere"
               else min(draw(st.sampled_from(starts)) + draw(st.integers(0, 200)), len(data) - 1))
        edit = draw(st.sampled_from(["overwrite", "overwrite", "cut", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if edit == "overwrite":
            data[pos:pos + len(chunk)] = chunk
        elif edit == "cut":
            del data[pos:pos + draw(st.integers(1, 4096))]
        else:
            data[pos:pos] = chunk
    return bytes(data)


@given(data=st.data())
@fuzz(600)
def test_mutated_bytes_are_loaded_or_refused_with_a_file_format_error(model, data):
    load_bytes(model, data.draw(byte_edits(model)))


NPY_HEADER_DICTS = st.fixed_dictionaries({
    "descr": st.sampled_from(["<f8", "<f4", ">f8", "<i8", "|b1", "<c16", "|O", "<U5", "<U0", "|V8", "|V0", "<M8[s]",
                              [("a", "<f8")], [("a", "<f8", (2,))]]),
    "fortran_order": st.booleans(),
    "shape": st.lists(st.integers(0, 2**62), max_size=3).map(tuple) | st.sampled_from([(), (1,), (2**40,)])})


@st.composite
def crafted_members(draw, model):
    """The file with one member's ``.npy`` header written anew (valid zip: the CRCs match) and random data,
    or with an extra member of a generated name."""
    members = dict(model["members"])
    odd_names = st.sampled_from(["../x.npy", "/abs.npy", "a/../b.npy", "x", "é.npy"])
    name = draw(st.sampled_from(sorted(members)) | odd_names)
    buf = io.BytesIO()
    write_header = draw(st.sampled_from([np.lib.format.write_array_header_1_0, np.lib.format.write_array_header_2_0]))
    write_header(buf, draw(NPY_HEADER_DICTS))
    members[name] = buf.getvalue() + draw(st.binary(max_size=64))
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    return zip_bytes(members, method)


@given(data=st.data())
@fuzz(300)
def test_crafted_members_are_refused_with_a_file_format_error(model, data):
    load_bytes(model, data.draw(crafted_members(model)))


# --- arguments ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agents():
    return {env_id: npgrad.PPO(env_id, seed=0, n_envs=1, n_steps=16, minibatch_size=16, hidden=(8,), vf_hidden=(8,),
                               dtype=dtype, normalize_obs=False)
            for env_id, dtype in (("CartPole-v1", "float32"), ("Pendulum-v1", "float64"))}


NOT_INTEGERS = (st.none() | st.booleans() | st.floats() | st.complex_numbers() | st.text(max_size=4)
                | st.binary(max_size=4) | st.sampled_from([1e38, 3.5e38, 1e300, -1e300, 2.0, np.float32(2)]))
"""Scalars that are not Python integers (a valid count drawn at random could run for hours)."""
SCALARS = NOT_INTEGERS | st.integers() | st.just(2**100)
ANYTHING = st.recursive(SCALARS, lambda children: st.lists(children, max_size=5)
                        | st.dictionaries(st.text(max_size=3), children, max_size=3) | st.tuples(children, children),
                        max_leaves=10)


@st.composite
def observations(draw, obs_dim):
    """Arrays of the right shape and many dtypes, with huge, tiny and non-finite values; or anything at all."""
    kind = draw(st.sampled_from(["array", "list", "anything"]))
    if kind == "anything":
        return draw(ANYTHING)
    shape = draw(st.sampled_from([(obs_dim,), (3, obs_dim), (0, obs_dim), (obs_dim + 1,), (), (2, 2, obs_dim)]))
    values = st.floats(width=64) | st.sampled_from([0.0, 1e38, 3.5e38, -1e300, 1e-320])
    array = np.array(draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                     dtype=np.float64).reshape(shape)
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool", "complex128", "str", "object"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cast to the drawn dtype is the test's, not npgrad's
        cast = array.astype(dtype)
    return cast.tolist() if kind == "list" else cast


@given(data=st.data(), env_id=st.sampled_from(["CartPole-v1", "Pendulum-v1"]))
@fuzz(500)
def test_predict_answers_with_finite_actions_or_a_named_error(agents, data, env_id):
    agent = agents[env_id]
    obs = data.draw(observations(agent.policy.obs_dim))
    deterministic = data.draw(st.booleans() | st.just(np.True_) | ANYTHING)
    rng = data.draw(st.none() | st.just(np.random.default_rng(0)) | SCALARS)
    result = outcome(lambda: agent.predict(obs, deterministic=deterministic, rng=rng))
    if not isinstance(result, NpgradError):
        action, state = result
        assert np.all(np.isfinite(action)) and state is None, f"predict({obs!r}) gave {result}"


EPISODES = st.integers(-3, 3) | st.integers(10**6 + 1, 2**80) | NOT_INTEGERS
ENVS = st.sampled_from([None, "CartPole-v1", "NoSuchEnv-v0", "no_such_module_npgrad:Env-v0", "", 5, [1]])


@given(episodes=EPISODES, deterministic=st.booleans() | SCALARS, seed=st.none() | st.integers(-3, 2**70) | SCALARS,
       env=ENVS)
@fuzz(200)
def test_evaluate_answers_or_names_the_argument(agents, episodes, deterministic, seed, env):
    result = outcome(lambda: agents["CartPole-v1"].evaluate(episodes, deterministic=deterministic, seed=seed, env=env))
    if not isinstance(result, NpgradError):
        assert len(result.returns) == (10 if episodes is None else episodes) and np.isfinite(result.mean)


CALLBACKS = st.none() | st.just(lambda agent, info: None) | st.just(lambda agent, info: False) | SCALARS | st.lists(
    st.just(lambda agent, info: True) | SCALARS, max_size=3)


@given(total_steps=st.integers(-8, 48) | NOT_INTEGERS, callback=CALLBACKS)
@fuzz(60)
def test_learn_trains_or_refuses_before_training(total_steps, callback):
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=1, n_steps=16, minibatch_size=16, hidden=(8,), vf_hidden=(8,))
    result = outcome(lambda: agent.learn(total_steps, callback=callback))
    if isinstance(result, NpgradError):
        assert agent.num_steps == 0 and agent.progress.total_steps == 0, "refused after planning or training"
