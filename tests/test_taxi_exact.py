"""benchmarks/spaces.py scores Taxi exactly from the environment's transition table: checked against gymnasium."""
import importlib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import npgrad

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def spaces(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # spaces.py imports its sibling common.py
    return importlib.import_module("spaces")


class Greedy:
    """The optimal policy: ``argmax_a r(s, a) + V(s')`` on the tables' own optimal values."""

    def __init__(self, tables):
        self.t = tables

    def predict(self, s_k, deterministic=True):
        t = self.t
        return np.argmax(t["reward"][s_k] + np.where(t["end"][s_k], 0.0, t["optimal"][t["next"][s_k]]), axis=-1), None


def test_value_iteration_finds_the_optimum_and_its_greedy_policy_delivers_from_every_start(spaces):
    tables = spaces.taxi_tables()
    return_k, delivered_k = spaces.exact_returns(Greedy(tables), tables)
    assert len(tables["starts"]) == 300 and delivered_k.all()
    np.testing.assert_array_equal(return_k, tables["optimal"][tables["starts"]])  # attained from every start
    assert np.mean(return_k) == pytest.approx(7.93, abs=1e-12)  # below gymnasium's reward threshold of 8


@pytest.mark.parametrize("policy", ["optimal", "untrained"])
def test_exact_returns_are_the_returns_gymnasium_gives_from_the_same_starts(spaces, policy):
    tables = spaces.taxi_tables()
    # the optimal policy's episodes end in deliveries; the untrained one's run to the 200-step limit, at -10 for
    # each illegal pickup or dropoff and -1 for each move
    agent = Greedy(tables) if policy == "optimal" else npgrad.PPO(spaces.TAXI, seed=3, hidden=(8,))
    return_k, _ = spaces.exact_returns(agent, tables)
    env = gym.make(spaces.TAXI)
    seen = set()
    for seed in range(12):
        start, _ = env.reset(seed=seed)
        s, total, done = start, 0.0, False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(agent.predict(s, deterministic=True)[0]))
            total, done = total + r, terminated or truncated
        assert total == return_k[np.flatnonzero(tables["starts"] == start)[0]]
        seen.add(total)
    assert len(seen) > 1  # not one constant that any table would reproduce
