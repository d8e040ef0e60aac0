"""Saved environment specs (npgrad/envs.py, npgrad/io.py): an agent trained on a wrapped or custom environment is saved
with gymnasium's spec of it and rebuilt from that spec by ``npgrad.load`` and ``evaluate``, in a fresh process too.
A file's spec imports nothing but the entry points gymnasium registers for its id and gymnasium's own wrappers unless
the caller trusts it, and an environment gymnasium cannot record says so, and asks for ``env=``."""
import inspect
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import npgrad
from npgrad.errors import ConfigError, FileFormatError, NpgradWarning
from npgrad.io import read_header

from helpers import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FRESH = """
import json, sys, warnings
import npgrad
warnings.simplefilter("error", npgrad.errors.NpgradWarning)
path, trust, imports = sys.argv[1], sys.argv[2] == "trust", [m for m in sys.argv[3].split(",") if m]
for module in imports:
    __import__(module)  # the user's own code, imported before loading (it registers its environment)
try:
    agent = npgrad.load(path, trust_env_spec=trust)
except npgrad.errors.FileFormatError as e:
    print(json.dumps({"error": str(e), "modules": sorted(m for m in sys.modules if m.startswith("npgrad_probe"))}))
    sys.exit(0)
result = agent.evaluate(episodes=3)
spec = getattr(agent, "env_spec", None)
print(json.dumps({"env_id": agent.env_id, "returns": result.returns.tolist(),
                  "obs_space": str(agent.envs.single_observation_space), "kwargs": spec and spec.kwargs,
                  "wrappers": spec and [w.name for w in spec.additional_wrappers]}))
"""


def in_fresh_process(path, trust=False, imports=(), pythonpath=()):
    """Load ``path`` in a new Python process and evaluate it there, as ``FRESH`` does; its JSON report."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([ROOT, *map(str, pythonpath)])}
    proc = subprocess.run([sys.executable, "-c", FRESH, str(path), "trust" if trust else "-", ",".join(imports)],
                          check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


# --- a wrapped environment comes back: in evaluate, after load, in a fresh process -----------------------------


def test_a_reward_wrapper_comes_back_in_a_fresh_process(tmp_path):
    agent = npgrad.PPO(gym.wrappers.ClipReward(gym.make("Pendulum-v1"), -0.05, 0.05), seed=0, n_steps=64,
                       minibatch_size=64).learn(128)
    returns = agent.evaluate(episodes=3).returns  # on the wrapped environment, not on the bare id
    np.testing.assert_allclose(returns, -10.0)  # 200 steps clipped at -0.05 (Pendulum's own returns are ~ -1000)
    path = agent.save(tmp_path / "clipped.npz")
    assert read_header(path)["env_id"] == "Pendulum-v1"  # the id is kept as it was
    out = in_fresh_process(path)
    assert (out["env_id"], out["wrappers"]) == ("Pendulum-v1", ["ClipReward"])
    np.testing.assert_allclose(out["returns"], returns)


def test_an_observation_wrapper_and_make_arguments_come_back_in_a_fresh_process(tmp_path):
    env = gym.wrappers.FlattenObservation(gym.make("FrozenLake-v1", is_slippery=False))  # npgrad's error suggests it
    agent = npgrad.PPO(env, seed=0, n_steps=32, minibatch_size=32).learn(64)
    returns = agent.evaluate(episodes=3).returns  # was a ShapeError: the bare id gives integers, not one-hots
    out = in_fresh_process(agent.save(tmp_path / "flat.npz"))
    assert out["obs_space"].startswith("Box(0, 1, (16,)") and out["wrappers"] == ["FlattenObservation"]
    assert out["kwargs"]["is_slippery"] is False
    np.testing.assert_array_equal(out["returns"], returns)


PROBE_ENV = "\n".join([  # a module of its own, importable by a fresh process: tests/helpers.py's Counter, registered
    "import gymnasium as gym", "import numpy as np", "", "", inspect.getsource(Counter), "",
    'gym.register("NpgradProbe/Counter-v0", entry_point="npgrad_probe_env:Counter", kwargs={"term_at": 3})', ""])


def test_a_custom_environment_comes_back_in_a_fresh_process(tmp_path, monkeypatch):
    (tmp_path / "npgrad_probe_env.py").write_text(PROBE_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    import npgrad_probe_env  # noqa: F401 - registers NpgradProbe/Counter-v0
    try:
        env = gym.wrappers.ClipReward(gym.make("NpgradProbe/Counter-v0", term_at=7), 0.0, 0.5)
        path = npgrad.PPO(env, seed=0, n_steps=32, minibatch_size=32).learn(64).save(tmp_path / "custom.npz")
    finally:
        gym.registry.pop("NpgradProbe/Counter-v0")
        sys.modules.pop("npgrad_probe_env")
    # the user's package registers its environment on import: nothing to pass
    out = in_fresh_process(path, imports=["npgrad_probe_env"], pythonpath=[tmp_path])
    assert out["returns"] == [3.5] * 3 and out["kwargs"] == {"term_at": 7}  # 7 steps clipped to 0.5
    # not imported: refused without importing it; trusted: gymnasium imports the saved entry point
    out = in_fresh_process(path, pythonpath=[tmp_path])
    assert "not registered" in out["error"] and "trust_env_spec=True" in out["error"] and out["modules"] == []
    assert in_fresh_process(path, trust=True, pythonpath=[tmp_path])["returns"] == [3.5] * 3


def test_an_env_registered_with_a_class_is_saved_by_the_class_name(tmp_path):
    gym.register("NpgradProbe/ClassCounter-v0", entry_point=Counter, kwargs={"term_at": 4})
    try:
        agent = npgrad.PPO(gym.make("NpgradProbe/ClassCounter-v0"), seed=0, n_steps=32, minibatch_size=32)
        path = agent.save(tmp_path / "class.npz")
        assert read_header(path)["env_spec"]["entry_point"] == "helpers:Counter"
        np.testing.assert_array_equal(npgrad.load(path).evaluate(episodes=2).returns, [4, 4])  # registered: no trust
    finally:
        gym.registry.pop("NpgradProbe/ClassCounter-v0")


def test_an_agent_on_an_id_saves_the_id_alone_and_files_without_a_spec_load_as_before(tmp_path):
    path = npgrad.PPO("CartPole-v1", seed=0, n_steps=16).save(tmp_path / "id.npz")
    assert "env_spec" not in read_header(path)  # the header of an id-built agent is as it was
    wrapped = npgrad.PPO(gym.wrappers.ClipReward(gym.make("Pendulum-v1"), -0.05, 0.05), seed=0, n_steps=64,
                         minibatch_size=64)
    old = with_spec(wrapped.save(tmp_path / "clipped.npz"), tmp_path / "old.npz", DELETE)  # saved before the field
    loaded = npgrad.load(old)
    assert loaded.env_id == "Pendulum-v1" and loaded.env_spec is None  # the id alone, as files were read before
    assert loaded.evaluate(episodes=1).mean < -10.0  # so the bare Pendulum, unclipped


def test_a_vector_env_instance_is_rebuilt_from_its_spec(tmp_path):
    agent = npgrad.PPO(gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync",
                                    wrappers=[lambda env: gym.wrappers.ClipReward(env, -0.05, 0.05)]), n_steps=32,
                       minibatch_size=64)
    assert [w.name for w in agent.env_spec.additional_wrappers] == ["ClipReward"]
    loaded = npgrad.load(agent.save(tmp_path / "vec.npz"))
    assert loaded.config.n_envs == 2 and loaded.envs.num_envs == 2
    np.testing.assert_allclose(loaded.evaluate(episodes=2).returns, -10.0)


# --- what gymnasium cannot record: a warning on save, and load and evaluate ask for env= -----------------------


class Unrecorded(gym.RewardWrapper):
    """A wrapper that does not record its arguments (no ``gymnasium.utils.RecordConstructorArgs``)."""

    def reward(self, reward):
        return 0.0


UNRECORDABLE = {  # name: (make the environment, what the message names)
    "a lambda in TransformReward": (lambda: gym.wrappers.TransformReward(gym.make("Pendulum-v1"), lambda r: r / 10),
                                    "TransformReward.*func="),
    "a wrapper without RecordConstructorArgs": (lambda: Unrecorded(gym.make("Pendulum-v1")),
                                                "Unrecorded.*RecordConstructorArgs"),
    "an unregistered custom env": (lambda: Counter(5), "Counter has no gymnasium spec"),
    "a vector wrapper": (lambda: gym.wrappers.vector.ClipReward(gym.make_vec("Pendulum-v1", 2), -1, 1),
                         "vector wrappers"),
}


@pytest.mark.parametrize("case", sorted(UNRECORDABLE))
def test_an_environment_gymnasium_cannot_record_warns_on_save_and_load_and_evaluate_ask_for_env(tmp_path, case):
    make, why = UNRECORDABLE[case]
    agent = npgrad.PPO(make(), seed=0, n_steps=64, minibatch_size=64)
    with pytest.raises(ConfigError, match=f"evaluate: the agent's environment cannot be rebuilt: .*{why}.*pass env=") \
            as info:
        agent.evaluate(episodes=1)  # not silently the bare id, nor "env must be ..., got NoneType"
    with pytest.warns(NpgradWarning, match=f"saved without its environment.*{why}.*env="):
        path = agent.save(tmp_path / "agent.npz")
    with pytest.raises(FileFormatError, match=f"env_spec: the agent was saved without its environment.*{why}"
                                              ".*pass env=") as loading:
        npgrad.load(path)
    assert "\n" not in str(info.value) + str(loading.value)  # one line each
    loaded = npgrad.load(path, env=make())  # the caller's environment: loads and evaluates
    np.testing.assert_array_equal(loaded.policy.theta, agent.policy.theta)
    assert np.isfinite(loaded.evaluate(episodes=1, env=make()).mean)


# --- a file's spec is untrusted: it imports nothing but gymnasium's wrappers and registered entry points ---------


@pytest.fixture(scope="module")
def clipped(tmp_path_factory):
    agent = npgrad.PPO(gym.wrappers.ClipReward(gym.make("Pendulum-v1"), -0.05, 0.05), seed=0, n_steps=64,
                       minibatch_size=64)
    return agent.save(tmp_path_factory.mktemp("spec") / "clipped.npz")


DELETE = object()


def with_spec(src, dst, change):
    """``src`` with its header's ``env_spec`` replaced by ``change(spec)``'s result (``DELETE`` removes it)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    new = DELETE if change is DELETE else change(meta["env_spec"])
    if new is DELETE:
        del meta["env_spec"]
    else:
        meta["env_spec"] = new
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


def edit(*keys_value):
    """``change`` for ``with_spec``: ``spec[k1][k2]... = value``."""
    *keys, value = keys_value

    def change(spec):
        node = spec
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return spec
    return change


PROBE_WRAPPER = """
import gymnasium as gym


class Probe(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    def __init__(self, env, scale=1.0):
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        gym.RewardWrapper.__init__(self, env)
        self.scale = scale

    def reward(self, reward):
        return self.scale * reward
"""


def test_a_wrapper_from_another_module_is_imported_only_if_the_caller_trusts_the_file(clipped, tmp_path, monkeypatch):
    (tmp_path / "npgrad_probe_wrapper.py").write_text(PROBE_WRAPPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = with_spec(clipped, tmp_path / "probe.npz", edit("additional_wrappers", 0,
                                                           {"name": "Probe", "entry_point": "npgrad_probe_wrapper:Probe",
                                                            "kwargs": {"scale": 0.0}}))
    with pytest.raises(FileFormatError, match=r"env_spec: additional_wrappers\[0\]: entry_point "
                                              "'npgrad_probe_wrapper:Probe' is not one of gymnasium's wrappers.*"
                                              "trust_env_spec=True"):
        npgrad.load(path)
    assert "npgrad_probe_wrapper" not in sys.modules  # refused before anything was imported
    try:
        loaded = npgrad.load(path, trust_env_spec=True)  # the caller's decision: gymnasium imports it
        assert "npgrad_probe_wrapper" in sys.modules
        np.testing.assert_array_equal(loaded.evaluate(episodes=2).returns, [0.0, 0.0])  # rewards scaled by 0
    finally:
        sys.modules.pop("npgrad_probe_wrapper", None)


def called(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} was called by loading a file")
    return fail


def test_a_spec_naming_other_code_is_refused_before_anything_is_imported(clipped, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "system", called("os.system"))
    for field, change in {r"additional_wrappers\[0\]: entry_point 'os:system'": edit(
            "additional_wrappers", 0, "entry_point", "os:system"),
            r"additional_wrappers\[0\]: entry_point 'npgrad_probe_evil:Wrapper'": edit(
            "additional_wrappers", 0, "entry_point", "npgrad_probe_evil:Wrapper"),
            r"additional_wrappers\[0\]: entry_point 'gymnasium.wrappersx:ClipReward'": edit(
            "additional_wrappers", 0, "entry_point", "gymnasium.wrappersx:ClipReward"),
            r"additional_wrappers\[0\]: entry_point .* not a gymnasium wrapper class": edit(
            "additional_wrappers", 0, "entry_point", "gymnasium.wrappers.vector:ClipReward"),
            r"additional_wrappers\[0\]: npgrad does not apply RecordVideo": edit(
            "additional_wrappers", 0, {"name": "RecordVideo", "entry_point": "gymnasium.wrappers:RecordVideo",
                                       "kwargs": {"video_folder": "/tmp/npgrad-probe"}}),
            "entry_point: 'os:system' is not the one gymnasium registers for Pendulum-v1": edit("entry_point",
                                                                                               "os:system"),
            "vector_entry_point: 'npgrad_probe_evil:Vec' is not the one": edit("vector_entry_point",
                                                                              "npgrad_probe_evil:Vec"),
            }.items():
        with pytest.raises(FileFormatError, match=f"env_spec: {field}.*pass env=") as info:
            npgrad.load(with_spec(clipped, tmp_path / "crafted.npz", change))
        assert str(tmp_path / "crafted.npz") in str(info.value)
    assert not [m for m in sys.modules if m.startswith(("npgrad_probe_evil", "gymnasium.wrappersx"))]
    assert not os.path.exists("/tmp/npgrad-probe")


def test_a_registered_id_that_imports_by_its_arguments_is_refused(clipped, tmp_path):
    def shim(spec):
        return {**spec, "id": "GymV26Environment-v0", "kwargs": {"env_id": "npgrad_probe_evil:Env-v0"}}
    path = with_spec(clipped, tmp_path / "shim.npz", shim)
    with np.load(path) as z:  # the header's env_id names the same id
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    arrays["__meta__"] = np.array(json.dumps({**meta, "env_id": "GymV26Environment-v0"}))
    np.savez(path, **arrays)
    with pytest.raises(FileFormatError, match="env_spec: id: GymV26Environment-v0 imports the environment"):
        npgrad.load(path)


LONG = "x" * 5000
SPEC_HOLES = {  # name: (change, the field the error must name)
    "env_spec a number": (lambda s: 5, "env_spec: must be a JSON object or a string"),
    "env_spec a list": (lambda s: [s], "env_spec: must be a JSON object or a string"),
    "a reason of 5,000 characters": (lambda s: LONG, "env_spec: a reason of 5,000 characters"),
    "a missing field": (lambda s: {k: v for k, v in s.items() if k != "kwargs"}, "env_spec: missing fields 'kwargs'"),
    "an unknown field": (lambda s: {**s, "exec": "import os"}, "env_spec: .*unexpected fields 'exec'"),
    "id not the header's env_id": (edit("id", "CartPole-v1"), "env_spec: id: is 'CartPole-v1', but env_id is"),
    "id unregistered": (edit("id", "NoSuchEnv-v0"), "env_spec: id: is 'NoSuchEnv-v0'"),
    "id with a module": (edit("id", "os:Env-v0"), "env_spec: id: must be a gymnasium id"),
    "entry_point without a colon": (edit("entry_point", "os.system"), "env_spec: entry_point: must be a module:Name"),
    "entry_point null": (edit("entry_point", None), "env_spec: entry_point: must be a string"),
    "max_episode_steps 0": (edit("max_episode_steps", 0), "env_spec: max_episode_steps"),
    "max_episode_steps 2^40": (edit("max_episode_steps", 2**40), "env_spec: max_episode_steps"),
    "max_episode_steps a string": (edit("max_episode_steps", "200"), "env_spec: max_episode_steps"),
    "order_enforce a number": (edit("order_enforce", 1), "env_spec: order_enforce: must be true or false"),
    "kwargs a list": (edit("kwargs", [1]), "env_spec: kwargs: must be a JSON object"),
    "kwargs for gym.make_vec": (edit("kwargs", {"wrappers": ["os:system"]}), "env_spec: kwargs: wrappers"),
    "kwargs num_envs": (edit("kwargs", {"num_envs": 10**9}), "env_spec: kwargs: num_envs"),
    "kwargs not a name": (edit("kwargs", {"a b": 1}), "env_spec: kwargs: 'a b': is not a keyword"),
    "kwargs 100 deep": (edit("kwargs", {"g": json.loads("[" * 100 + "]" * 100)}), "env_spec: kwargs: g: nests"),
    "kwargs 1,000 of them": (edit("kwargs", {f"k{i}": i for i in range(1000)}), "env_spec: kwargs: 1000 arguments"),
    "1,000 wrappers": (lambda s: {**s, "additional_wrappers": s["additional_wrappers"] * 1000},
                       "env_spec: additional_wrappers: 1000 wrappers"),
    "a wrapper a string": (edit("additional_wrappers", ["gymnasium.wrappers:ClipReward"]),
                           r"env_spec: additional_wrappers\[0\]: must be a JSON object"),
    "a wrapper without kwargs": (edit("additional_wrappers", 0, "kwargs", None),
                                 r"env_spec: additional_wrappers\[0\]: kwargs: must be a JSON object"),
    "a wrapper with an unknown field": (edit("additional_wrappers", 0, "exec", "x"),
                                        r"env_spec: additional_wrappers\[0\]: .*unexpected fields 'exec'"),
    "a wrapper name not a name": (edit("additional_wrappers", 0, "name", "Clip Reward"),
                                  r"env_spec: additional_wrappers\[0\]: name"),
    "a wrapper kwarg not a name": (edit("additional_wrappers", 0, "kwargs", {"1x": 0}),
                                   r"env_spec: additional_wrappers\[0\]: kwargs: '1x'"),
    "a wrapper kwarg gymnasium rejects": (edit("additional_wrappers", 0, "kwargs", {"bogus": 1}),
                                          "env_spec: gymnasium could not rebuild the environment from it"),
}


@pytest.mark.parametrize("hole", sorted(SPEC_HOLES))
def test_every_field_of_a_saved_spec_is_checked_and_named(clipped, tmp_path, hole):
    change, what = SPEC_HOLES[hole]
    path = with_spec(clipped, tmp_path / "crafted.npz", change)
    with pytest.raises(FileFormatError, match=what) as info:
        npgrad.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_vector_env_of_environments_made_differently_has_no_spec_to_save():
    from npgrad.envs import instance_spec

    makers = [lambda: gym.make("CartPole-v1")] * 2 + [lambda: gym.make("CartPole-v1", max_episode_steps=50)]
    spec, problem = instance_spec(gym.vector.SyncVectorEnv(makers))
    assert spec is None and "were made from different specs" in problem

