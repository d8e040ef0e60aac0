"""Environments (npgrad/envs.py): ids, instances and vector envs, autoreset mode, evaluation episodes and seeds."""
import gc

import gymnasium as gym
import numpy as np
import pytest

import npgrad
import npgrad.envs
from npgrad.errors import ConfigError

from helpers import Counter


def test_an_env_instance_sets_n_envs_and_keeps_the_tuned_batch(tmp_path):
    single = npgrad.PPO(gym.make("CartPole-v1"))  # tuned 16 x 16
    assert (single.config.n_envs, single.config.n_steps, single.envs.num_envs) == (1, 256, 1)
    vector = npgrad.PPO(gym.make_vec("CartPole-v1", num_envs=5))
    assert (vector.config.n_envs, vector.config.n_steps, vector.envs.num_envs) == (5, 52, 5)  # ceil(256 / 5)
    assert npgrad.PPO(gym.make_vec("CartPole-v1", num_envs=5), n_steps=20).config.n_steps == 20  # given: kept
    agrees = npgrad.PPO(gym.make_vec("CartPole-v1", num_envs=5), n_envs=5).config  # n_envs as the instance's
    assert (agrees.n_envs, agrees.n_steps) == (5, 52), "an n_envs that agrees with the instance changes nothing"
    for wrong in (True, 1.0):  # refused as with an id, even where it equals the instance's count
        with pytest.raises(ConfigError, match="n_envs"):
            npgrad.PPO(gym.make("CartPole-v1"), n_envs=wrong)
    with pytest.raises(ConfigError, match="n_envs=4, but the environment instance holds 1"):
        npgrad.PPO(gym.make("CartPole-v1"), n_envs=4)
    vector.save(tmp_path / "agent.npz")  # a saved 5-env agent onto one environment instance
    loaded = npgrad.load(tmp_path / "agent.npz", env=gym.make("CartPole-v1"))
    assert (loaded.config.n_envs, loaded.config.n_steps) == (1, 260)
    np.testing.assert_array_equal(loaded.policy.theta, vector.policy.theta)


@pytest.mark.skipif(not hasattr(gym.vector, "AutoresetMode"), reason="gymnasium 1.0 autoresets on the next step only")
def test_a_vector_env_must_autoreset_on_the_next_step():
    same_step = gym.make_vec("Pendulum-v1", 2, vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    with pytest.raises(ConfigError, match="autoresets in SameStep mode; npgrad needs NextStep"):
        npgrad.PPO(same_step)


class Closable(gym.Wrapper):
    closed = False

    def close(self):
        self.closed = True
        super().close()


def test_evaluate_on_instances_shares_the_episodes_as_sb3_does():
    envs = gym.vector.SyncVectorEnv([lambda: Counter(2), lambda: Counter(10)])  # returns 2 and 10 per episode
    agent = npgrad.PPO(envs, seed=0)
    # each environment runs its share (episodes + e) // 2, not the first 4 to finish (which would all be 2s)
    np.testing.assert_array_equal(agent.evaluate(episodes=4, env=envs).returns, [2, 2, 10, 10])
    result = agent.evaluate(episodes=3, env=envs)
    np.testing.assert_array_equal(result.returns, [2, 10, 10])
    assert (result.mean, result.std) == (np.mean([2, 10, 10]), np.std([2, 10, 10])), "SB3's mean and std (ddof 0)"
    single = Closable(Counter(3))
    np.testing.assert_array_equal(agent.evaluate(episodes=5, env=single).returns, [3] * 5)
    assert not single.closed  # the caller's environment stays open


def test_evaluation_episodes_default_to_seed_plus_10000_not_the_training_seed():
    """As the benchmark protocol: evaluation environments are seeded ``seed + 10000``, so a policy is not evaluated
    on the starting states its training environments were seeded with."""
    agent = npgrad.PPO("Pendulum-v1", seed=5)
    default = agent.evaluate(episodes=3).returns
    np.testing.assert_array_equal(default, agent.evaluate(episodes=3, seed=5 + 10000).returns)
    assert not np.any(np.isin(default, agent.evaluate(episodes=3, seed=5).returns))


def test_evaluation_seeds_k_and_k_plus_1_share_no_episode():
    # a deterministic policy's return is a function of the starting state: a shared state shows as a shared return
    agent = npgrad.PPO("Pendulum-v1", seed=0)
    returns_k = [agent.evaluate(episodes=10, seed=k).returns for k in (5, 6, 5)]
    assert not set(returns_k[0]) & set(returns_k[1])  # gymnasium's int seeding would share 9 of the 10
    np.testing.assert_array_equal(returns_k[0], returns_k[2])  # and the same seed gives the same episodes
    envs = npgrad.envs.make_vec_env("CartPole-v1", 10)  # one RNG for all copies: the int seeds it
    assert npgrad.rollout.independent_seeds(envs, 5) == 5


def test_an_agent_builds_its_own_evaluation_environments_once_and_they_play_as_fresh_ones(monkeypatch):
    agent = npgrad.PPO("Pendulum-v1", seed=0)
    built = []
    make = npgrad.agent.make_vec_env
    monkeypatch.setattr(npgrad.agent, "make_vec_env", lambda env, n: built.append(n) or make(env, n))
    first, again = (agent.evaluate(episodes=4).returns for _ in range(2))
    fresh = agent.evaluate(episodes=4, env="Pendulum-v1").returns  # built for this call, and closed after it
    np.testing.assert_array_equal(again, first)  # each evaluation resets them with its seeds
    np.testing.assert_array_equal(fresh, first)
    assert built == [4, 4]  # the agent's own once, then "Pendulum-v1"
    agent.evaluate(episodes=2)  # another number of copies: rebuilt
    assert built == [4, 4, 2] and agent.own_eval_envs.num_envs == 2


def test_the_callers_env_stays_open_when_the_agent_is_done_with_it():
    single = Closable(Counter(3))
    agent = npgrad.PPO(single, n_steps=64)
    agent.envs.close()  # closing (or before gymnasium 1.3, garbage-collecting) the agent's wrapper of one
    del agent
    gc.collect()
    assert not single.closed


@pytest.mark.parametrize("own", ["env instance", "vector env"])
def test_evaluating_on_the_training_environments_restarts_them(own):
    agent = npgrad.PPO(gym.make("CartPole-v1") if own == "env instance" else "CartPole-v1", n_steps=64).learn(128)
    env = agent.envs.envs[0] if own == "env instance" else agent.envs
    agent.evaluate(episodes=3, env=env)  # steps them past the rollout's last observations
    state_eo = agent.envs.envs[0].unwrapped.state[None] if own == "env instance" else agent.envs.state.T
    np.testing.assert_allclose(agent.rollout.obs_eo, state_eo, rtol=1e-6)  # the next rollout starts where they are
