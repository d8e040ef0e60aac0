"""Small environments and a file rewriter shared by the test files (tests/ is on sys.path: ``from helpers import
Counter``)."""
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Counter(gym.Env):
    """obs = [t]; reward = 1; terminates after ``term_at`` steps unless the time limit cuts it first."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self, term_at):
        self.term_at, self.t = term_at, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], dtype=np.float32), 1.0, self.t >= self.term_at, False, {}


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


def rewrite(src, dst, change):
    """Copy the ``.npz`` file ``src`` to ``dst`` with ``change(arrays)`` applied to its arrays: a crafted file."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst
