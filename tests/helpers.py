"""Small environments shared by the test files (tests/ is on sys.path: ``from helpers import Counter``)."""
import gymnasium as gym
import numpy as np


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
