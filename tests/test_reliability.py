"""Bad input gets a named exception; a failed update never corrupts the agent; runs reproduce across processes."""
import dataclasses
import hashlib
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import npgrad
from npgrad import cli
from npgrad.errors import ConfigError, EnvError, NpgradError, ShapeError
from npgrad.heads import LOG_STD_BOUNDS
from npgrad.algos.common import commit, standardize
from npgrad.io import flatten

from helpers import Counter

CONFIGS = {name: cls.Config for name, cls in npgrad.ALGOS.items()}


# --- invalid configurations ------------------------------------------------------------------------


def invalid_value_for(field):
    """Values that break a field's documented type or range."""
    default = field.default
    bad = [None, "fast", [1], float("nan"), float("inf"), -float("inf")]
    if isinstance(default, bool):
        return st.sampled_from(bad + [0, 1, 2.5])
    if isinstance(default, int):
        return st.sampled_from(bad + [0, -1, 2.5, True]) | st.integers(max_value=0)
    if isinstance(default, float):
        return st.sampled_from(bad + ["0.1", True])
    if isinstance(default, tuple):
        return st.sampled_from([None, 64, (0,), (64, -1), (2.5,), ("a",), "64,64"])
    return st.sampled_from([None, 3, "no-such-choice"])


@st.composite
def invalid_overrides(draw):
    algo = draw(st.sampled_from(sorted(CONFIGS)))
    field = draw(st.sampled_from(dataclasses.fields(CONFIGS[algo])))
    return algo, field.name, draw(invalid_value_for(field))


@given(invalid_overrides())
def test_invalid_hyperparameters_raise_config_error_naming_the_field(case):
    algo, name, value = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy warning instead of an exception would fail here
        with pytest.raises(ConfigError, match=name):
            CONFIGS[algo].for_env("CartPole-v1", **{name: value})


@pytest.mark.parametrize("name, value", [
    ("gamma", 1.01), ("gamma", -0.1), ("lam", 2.0), ("clip_range", 0.0), ("clip_range", -0.2), ("lr", -1e-3),
    ("max_grad_norm", 0.0), ("target_kl", -0.01),
])
def test_out_of_range_ppo_hyperparameters(name, value):
    with pytest.raises(ConfigError, match=f"hyperparameter {name}="):
        npgrad.PPO.Config.for_env("CartPole-v1", **{name: value})


@pytest.mark.parametrize("algo, name, value", [("trpo", "max_kl", 0.0), ("npg", "max_kl", -0.01),
                                               ("trpo", "backtrack_shrink", 1.0), ("vpg", "pi_lr", 0.0)])
def test_out_of_range_trust_region_and_step_sizes(algo, name, value):
    with pytest.raises(ConfigError, match=f"hyperparameter {name}="):
        CONFIGS[algo].for_env("CartPole-v1", **{name: value})


# --- invalid arrays -------------------------------------------------------------------------------

AGENTS = {}


def agent_for(env_id):
    if env_id not in AGENTS:
        AGENTS[env_id] = npgrad.PPO(env_id, seed=0)
    return AGENTS[env_id]


@given(st.sampled_from(["CartPole-v1", "Pendulum-v1"]),
       hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
       st.sampled_from(["finite", "nan", "inf"]), st.integers(0, 2**32 - 1))
@settings(deadline=None)
def test_predict_accepts_valid_observations_and_names_every_invalid_one(env_id, shape, values, seed):
    agent = agent_for(env_id)
    obs = np.random.default_rng(seed).standard_normal(shape)
    if values != "finite" and obs.size:
        obs.flat[0] = np.nan if values == "nan" else np.inf
    o = agent.policy.obs_dim
    valid = (shape in ((o,),) or (len(shape) == 2 and shape[1] == o)) and values == "finite" or (
        len(shape) == 2 and shape[0] == 0 and shape[1] == o)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if valid:
            act, _ = agent.predict(obs)
            expected = () if len(shape) == 1 else (shape[0],)
            assert np.shape(act)[: len(expected)] == expected and np.all(np.isfinite(act))
        else:
            with pytest.raises(ShapeError, match="predict"):
                agent.predict(obs)


def test_advantage_normalisation_guards_a_zero_std():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(standardize(np.full(7, 3.5)), np.zeros(7))


def test_log_std_is_clipped_into_its_bounds_after_an_update():
    agent = npgrad.PPO("Pendulum-v1", seed=0, use_sde=False)
    theta = agent.policy.theta.copy()
    theta[-1], info = 50.0, {}
    assert commit(agent.policy, theta, info) and info == {}
    assert agent.policy.theta[-1] == LOG_STD_BOUNDS[1]
    theta[-1] = -50.0
    assert commit(agent.policy, theta, info) and agent.policy.theta[-1] == -5.0
    theta[0] = np.nan
    assert not commit(agent.policy, theta, info) and info["update_failed"] == "non-finite parameters"
    assert np.all(np.isfinite(agent.policy.theta)), "a refused commit keeps the last good parameters"


# --- faults during training ------------------------------------------------------------------------


def poison_first_update(agent):
    """Every policy VJP of the first update returns NaN (e.g. an overflow deep in the network)."""
    vjp = agent.policy.vjp
    agent.policy.vjp = lambda *args: vjp(*args) * (np.nan if agent.num_updates == 0 else 1.0)


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_non_finite_update_keeps_the_last_good_parameters_and_training_continues(algo, env_id):
    agent = npgrad.ALGOS[algo](env_id, seed=0, n_steps=32)
    poison_first_update(agent)
    theta_before = agent.policy.theta.copy()
    log = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)  # NaN arithmetic inside the poisoned update
        agent.learn(2 * agent.config.n_envs * 32, lambda a, d: log.append((a.policy.theta.copy(), d)))
    (theta_1, diag_1), (theta_2, diag_2) = log
    np.testing.assert_array_equal(theta_1, theta_before)
    assert "update_failed" in diag_1 and diag_1["failed_updates"] == 1
    assert "update_failed" not in diag_2 and diag_2["failed_updates"] == 1
    assert np.all(np.isfinite(theta_2)) and not np.array_equal(theta_2, theta_before)
    for name, array in flatten(agent.rule.state()).items():  # optimiser moments are never poisoned
        assert np.all(np.isfinite(array)), f"{algo}: rule state {name} is not finite"


def test_non_finite_advantages_skip_the_update_and_say_so():
    agent = npgrad.PPO("CartPole-v1", seed=0)
    collect = agent.rollout.collect

    def collect_poisoned(*args, **kwargs):
        traj = collect(*args, **kwargs)
        traj.rew_te[0, 0] = np.nan
        return traj

    agent.rollout.collect = collect_poisoned
    theta, log = agent.policy.theta.copy(), []
    agent.learn(256, lambda a, d: log.append(d))
    assert log[0]["update_failed"] == "non-finite advantages or value targets" and agent.progress.failed_updates == 1
    np.testing.assert_array_equal(agent.policy.theta, theta)


def test_trpo_cg_breakdown_keeps_parameters_and_says_so():
    agent = npgrad.TRPO("CartPole-v1", seed=0, n_steps=64)
    agent.policy.fvp_operator = lambda obs_no, damping=0.0, u_n=None: (lambda v_p: -v_p)  # negative curvature
    theta = agent.policy.theta.copy()
    log = []
    agent.learn(128, lambda a, d: log.append(d))
    assert log[0]["update_failed"] == "CG breakdown" and log[0]["cg_breakdown"]
    np.testing.assert_array_equal(agent.policy.theta, theta)


def test_trpo_without_an_accepted_step_keeps_parameters_and_says_so():
    agent = npgrad.TRPO("CartPole-v1", seed=0, n_steps=64, accept_ratio=1e9)  # nothing can pass
    theta = agent.policy.theta.copy()
    log = []
    agent.learn(128, lambda a, d: log.append(d))
    assert log[0]["update_failed"] == "no step accepted" and log[0]["line_search_accepted"] is False
    assert log[0]["line_search_backtracks"] == agent.config.max_backtracks
    np.testing.assert_array_equal(agent.policy.theta, theta)


def test_npg_with_an_indefinite_fisher_keeps_parameters_and_says_so():
    agent = npgrad.NPG("CartPole-v1", seed=0, n_steps=32, fisher="exact", fisher_reg=0.0)
    agent.policy.fisher_matrix = lambda obs_no, theta_p=None, u_n=None: -np.eye(agent.policy.num_params)
    theta = agent.policy.theta.copy()
    log = []
    agent.learn(256, lambda a, d: log.append(d))
    assert "update_failed" in log[0]
    np.testing.assert_array_equal(agent.policy.theta, theta)


class Flaky(gym.Env):
    """Steps normally until the class-wide step count reaches ``fail_at``, then raises or returns NaN."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,))
    action_space = gym.spaces.Discrete(2)
    steps, fail_at, mode = 0, 10**9, "raise"

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        Flaky.steps += 1
        if Flaky.steps >= Flaky.fail_at:
            if Flaky.mode == "raise":
                raise RuntimeError("simulator lost its connection")
            return np.array([np.nan, 0.0], dtype=np.float32), 1.0, False, False, {}
        return self.np_random.standard_normal(2).astype(np.float32), 1.0, False, Flaky.steps % 20 == 0, {}


@pytest.fixture
def flaky_env():
    gym.register("Flaky-v0", entry_point=Flaky)
    Flaky.steps, Flaky.fail_at, Flaky.mode = 0, 10**9, "raise"
    yield Flaky
    gym.registry.pop("Flaky-v0")


@pytest.mark.parametrize("mode, message", [("raise", "RuntimeError: simulator lost its connection"),
                                           ("nan", "non-finite observations or rewards")])
def test_an_environment_fault_names_itself_and_leaves_the_agent_and_checkpoint_intact(
        flaky_env, tmp_path, capsys, mode, message):
    flaky_env.fail_at, flaky_env.mode = 300, mode
    argv = ["train", "ppo", "Flaky-v0", "--out", str(tmp_path / "run"), "--steps", "1000", "--set", "n_envs=1",
            "--set", "n_steps=64", "--checkpoint-every", "128", "--eval-every", "0", "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "npgrad: error: the environment" in err and message in err and "rollout step" in err
    checkpoint = npgrad.load(tmp_path / "run" / "checkpoints" / "step_0000000256.npz", env=gym.make("Flaky-v0"))
    assert checkpoint.num_steps == 256 and np.all(np.isfinite(checkpoint.policy.theta))


def test_an_environment_fault_through_the_api_raises_env_error(flaky_env):
    flaky_env.fail_at = 100
    agent = npgrad.PPO("Flaky-v0", seed=0, n_envs=1, n_steps=64)
    with pytest.raises(EnvError, match="at rollout step") as info:
        agent.learn(1000)
    assert isinstance(info.value, NpgradError) and isinstance(info.value.__cause__, RuntimeError)
    assert agent.num_updates == 1  # the first rollout completed and updated; the second failed before updating


@pytest.mark.parametrize("seeds", [0, [0, 1]], ids=["agent", "population"])
def test_an_environment_fault_during_evaluation_raises_env_error(flaky_env, monkeypatch, seeds):
    agent = npgrad.PPO("Flaky-v0", seed=seeds, n_envs=1, n_steps=64)
    flaky_env.fail_at = flaky_env.steps + 30
    with pytest.raises(EnvError, match="the environment raised at an evaluation step: RuntimeError: simulator lost "
                                       "its connection") as info:
        agent.evaluate(episodes=2)
    assert isinstance(info.value.__cause__, RuntimeError)
    flaky_env.fail_at, flaky_env.mode = flaky_env.steps + 30, "nan"
    with pytest.raises(EnvError, match="the environment returned observations the policy cannot act on at an "
                                       "evaluation step: predict got non-finite observations"):
        agent.evaluate(episodes=2)

    def lost(self, seed=None, options=None):
        raise ConnectionError("no simulator")
    monkeypatch.setattr(flaky_env, "reset", lost)
    with pytest.raises(EnvError, match="at an evaluation reset: ConnectionError: no simulator"):
        agent.evaluate(episodes=2)


class WrongShape(gym.Env):
    """Declares observations of shape (3,) and returns (4,) ones from ``reset`` or from ``step``, or NaN ones."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self, wrong_at="reset"):
        self.wrong_at = wrong_at

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(4 if self.wrong_at == "reset" else 3, np.nan if self.wrong_at == "nan" else 0.0,
                       dtype=np.float32), {}

    def step(self, action):
        return np.zeros(4, dtype=np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("wrong_at, where", [("reset", "at reset"), ("step", r"at rollout step 0 \(of 64\)")])
def test_an_observation_that_does_not_fit_the_space_is_named_where_it_came_from(wrong_at, where):
    """gymnasium's vector env stacks observations into arrays laid out by the space; a misfit fails in there, with
    a message about arrays ("Output array is the wrong shape"): the error says where and what to check."""
    envs = gym.vector.SyncVectorEnv([lambda: WrongShape(wrong_at)])
    with pytest.raises(EnvError, match=f"the environment raised {where}: ValueError: .*does not fit the observation "
                                       r"space Box\(-1.0, 1.0, \(3,\), float32\); check its shape, dtype and keys"):
        npgrad.PPO(envs, seed=0, n_steps=64).learn(64)


def test_a_nan_observation_or_one_outside_its_space_at_reset_is_the_environments_error():
    with pytest.raises(EnvError, match=r"non-finite observations at reset: obs=\[\[nan nan nan\]\]"):
        npgrad.PPO(gym.vector.SyncVectorEnv([lambda: WrongShape("nan")]), seed=0)
    outside = gym.wrappers.TransformObservation(gym.make("FrozenLake-v1"), lambda obs: obs + 100,
                                                gym.spaces.Discrete(16))
    with pytest.raises(EnvError, match=r"an observation outside its space at reset: a Discrete\(16\) observation must "
                                       r"be integers in 0..15, got \[100\]"):
        npgrad.PPO(gym.vector.SyncVectorEnv([lambda: outside]), seed=0)


# --- reproducibility across processes -------------------------------------------------------------

def run_fingerprint(algo, env_id, seed):
    """SHA-256 of the final parameters and every update's diagnostics of a short run."""
    log = []
    agent = npgrad.ALGOS[algo](env_id, seed=seed, n_steps=64)
    agent.learn(4 * 64 * agent.config.n_envs, lambda a, d: log.append(repr(sorted(d.items()))))
    return hashlib.sha256(agent.policy.theta.tobytes() + agent.value_fn.theta.tobytes()
                          + "".join(log).encode()).hexdigest()


def fingerprint(algo, env_id, seed):
    """``run_fingerprint`` in a fresh process (this file run as a script)."""
    env = {**os.environ, "PYTHONHASHSEED": str(seed + 1)}  # a different hash seed per process
    return subprocess.run([sys.executable, __file__, algo, env_id, str(seed)], capture_output=True,
                          text=True, check=True, env=env).stdout.strip()


@pytest.mark.parametrize("algo, env_id", [("ppo", "Pendulum-v1"), ("trpo", "CartPole-v1")])
def test_same_seed_gives_bitwise_identical_runs_across_processes(algo, env_id):
    first, second, other_seed = fingerprint(algo, env_id, 0), fingerprint(algo, env_id, 0), fingerprint(algo, env_id, 1)
    assert first == second and len(first) == 64
    assert other_seed != first
    assert run_fingerprint(algo, env_id, 0) == first


if __name__ == "__main__":
    print(run_fingerprint(sys.argv[1], sys.argv[2], int(sys.argv[3])))


# --- arguments of the public API -----------------------------------------------------------------------


@pytest.mark.parametrize("obs", ["abcd", b"abcd", {"x": 1.0}, [1 + 2j, 0, 0, 0], np.ones(4, complex),
                                 [[1, 2, 3, 4], [1]],
                                 ["a", "b", "c", "d"], [None] * 4, [object()] * 4, object(), None],
                         ids=lambda obs: type(obs).__name__ + repr(obs)[:20])
def test_predict_refuses_what_is_not_an_array_of_real_numbers(obs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ComplexWarning or DeprecationWarning instead of an error would fail here
        with pytest.raises(ShapeError, match="predict"):
            agent_for("CartPole-v1").predict(obs)


@pytest.mark.parametrize("kwargs, name", [({"rng": 32}, "rng"), ({"rng": np.random.RandomState(0)}, "rng"),
                                          ({"deterministic": np.array([True, False])}, "deterministic"),
                                          ({"deterministic": "yes"}, "deterministic"),
                                          ({"deterministic": None}, "deterministic")])
def test_predict_names_an_rng_or_deterministic_of_the_wrong_type(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        agent_for("Pendulum-v1").predict(np.zeros(3), **kwargs)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("normalize_obs", [False, True])
def test_observations_the_network_cannot_represent_are_refused_not_turned_into_arbitrary_actions(
        env_id, dtype, normalize_obs):
    agent = npgrad.PPO(env_id, seed=0, dtype=dtype, normalize_obs=normalize_obs)
    o = agent.policy.obs_dim
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if dtype == "float32" and not normalize_obs:  # the filter's clip keeps what the network sees small
            with pytest.raises(ShapeError, match="3.4e\\+38"):
                agent.predict(np.full(o, 1e39))
        for scale in (1e30, 1e38, 1e100, 1e300):  # finite: an action, or a ShapeError, never NaN
            try:
                act, _ = agent.predict(np.full(o, scale) * (-1) ** np.arange(o))
            except ShapeError as e:
                assert "predict" in str(e)
            else:
                assert np.all(np.isfinite(act)), f"{dtype}: obs {scale:g} gave {act}"


def test_evaluate_runs_at_most_64_environments_and_shares_the_episodes(monkeypatch):
    built = []
    make = npgrad.agent.make_vec_env
    monkeypatch.setattr(npgrad.agent, "make_vec_env", lambda env, n: built.append(n) or make(env, n))
    result = agent_for("CartPole-v1").evaluate(episodes=130)
    assert built == [64] and len(result.returns) == 130
    assert np.all(np.isfinite(result.returns))


@pytest.mark.parametrize("episodes", [10**9, 2**63, 2**100])
def test_evaluate_refuses_an_absurd_number_of_episodes_at_once(episodes):
    with pytest.raises(ConfigError, match="episodes"):
        agent_for("CartPole-v1").evaluate(episodes=episodes)


@pytest.mark.parametrize("callback", [5, "print", [print, 5], {"cb": print}])
def test_a_callback_that_cannot_be_called_is_refused_before_training(callback):
    agent = npgrad.PPO("CartPole-v1", seed=0, n_steps=16)
    with pytest.raises(ConfigError, match="callback"):
        agent.learn(256, callback=callback)
    assert agent.num_steps == 0 and agent.progress.total_steps == 0, "nothing ran, nothing was planned"


class HugeRewards(Counter):
    """``Counter`` with every reward multiplied by ``reward``: value targets beyond what V can be regressed on."""

    def __init__(self, reward):
        super().__init__(term_at=50)
        self.reward = reward

    def step(self, action):
        obs, rew, term, trunc, info = super().step(action)
        return obs, rew * self.reward, term, trunc, info


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
@pytest.mark.parametrize("dtype, reward", [("float32", 1e100), ("float64", 1e300)])
def test_value_targets_too_large_to_regress_are_an_error_not_a_silently_frozen_value_function(algo, dtype, reward):
    agent = npgrad.ALGOS[algo](HugeRewards(reward), seed=0, n_steps=128, dtype=dtype)
    theta = agent.policy.theta.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EnvError, match="value targets"):
            agent.learn(256)
    np.testing.assert_array_equal(agent.policy.theta, theta)  # refused before the update


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_large_but_representable_rewards_still_train(algo):
    agent = npgrad.ALGOS[algo](HugeRewards(1e20), seed=0, n_steps=64)
    value = agent.value_fn.theta.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.learn(128)
    assert not np.array_equal(agent.value_fn.theta, value)
