"""PPO and TRPO solve tiny environments with MultiDiscrete and MultiBinary actions (and observations)."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import npgrad


class MatchTargets(gym.Env):
    """Each step shows two targets (MultiDiscrete [3, 4]); the action scores 1 for each entry it matches.
    Episodes last 8 steps, so the optimum is a return of 16 (and random play scores about 4.7)."""

    observation_space = spaces.MultiDiscrete([3, 4])
    action_space = spaces.MultiDiscrete([3, 4])
    horizon, optimum = 8, 16.0

    def draw(self):
        return self.np_random.integers(0, self.observation_space.nvec)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.target = 0, self.draw()
        return self.target, {}

    def step(self, action):
        reward = float(np.sum(np.asarray(action) == self.target))
        self.t, self.target = self.t + 1, self.draw()
        return self.target, reward, False, self.t >= self.horizon, {}


class CopyBits(MatchTargets):
    """Each step shows 4 random bits (MultiBinary); the action scores 1 per bit it copies. Optimum 32, random 16."""

    observation_space = spaces.MultiBinary(4)
    action_space = spaces.MultiBinary(4)
    optimum = 32.0

    def draw(self):
        return self.np_random.integers(0, 2, 4).astype(np.int8)


# rewards do not depend on earlier actions: a short horizon (gamma 0.5) and larger steps than the defaults
SETTINGS = {"ppo": dict(gamma=0.5, n_steps=32, lr=3e-3, anneal_lr=True), "trpo": dict(gamma=0.5, n_steps=32, max_kl=0.05)}


@pytest.mark.parametrize("env_cls", [MatchTargets, CopyBits])
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_solves_a_multi_action_space(algo, env_cls):
    agent = npgrad.ALGOS[algo](gym.vector.SyncVectorEnv([env_cls] * 8), seed=7, **SETTINGS[algo])  # tuned on 0-3
    agent.learn(12_288)
    result = agent.evaluate(episodes=8, env=gym.vector.SyncVectorEnv([env_cls] * 4), seed=1)
    assert result.mean == env_cls.optimum, f"{algo} on {env_cls.__name__}: deterministic returns {result.returns}"
