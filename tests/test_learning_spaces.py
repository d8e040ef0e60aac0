"""PPO and TRPO solve tiny environments with MultiDiscrete and MultiBinary actions (and observations)."""
import gymnasium as gym
import pytest

import npgrad
from helpers import CopyBits, MatchTargets


# rewards do not depend on earlier actions: a short horizon (gamma 0.5) and larger steps than the defaults
SETTINGS = {"ppo": dict(gamma=0.5, n_steps=32, lr=3e-3, anneal_lr=True), "trpo": dict(gamma=0.5, n_steps=32, max_kl=0.05)}


@pytest.mark.parametrize("env_cls", [MatchTargets, CopyBits])
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_solves_a_multi_action_space(algo, env_cls):
    agent = npgrad.ALGOS[algo](gym.vector.SyncVectorEnv([env_cls] * 8), seed=7, **SETTINGS[algo])  # tuned on 0-3
    agent.learn(12_288)
    result = agent.evaluate(episodes=8, env=gym.vector.SyncVectorEnv([env_cls] * 4), seed=1)
    assert result.mean == env_cls.optimum, f"{algo} on {env_cls.__name__}: deterministic returns {result.returns}"
