"""Saved files are refused, with a message naming the problem, when they are unsafe or foreign."""
import json
import pickle

import numpy as np
import pytest

import npgrad
from npgrad.errors import FileFormatError
from npgrad.io import read as read_npz


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    agent = npgrad.PPO("CartPole-v1", seed=0, n_steps=16)
    agent.learn(128)
    return agent.save(tmp_path_factory.mktemp("files") / "agent.npz")


def rewrite(src, dst, change):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


def test_pickled_objects_are_refused(saved, tmp_path):
    path = rewrite(saved, tmp_path / "pickled.npz", lambda a: a.update(evil=np.array([{"x": 1}], dtype=object)))
    with pytest.raises(FileFormatError, match="pickled"):
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

    with pytest.raises(FileFormatError, match="model/policy_theta has shape"):
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
