"""benchmarks/floor.py bounds what npgrad's PPO can cost only while it computes npgrad's update: checked, not timed."""
import importlib
from pathlib import Path

import numpy as np
import pytest

import npgrad
from npgrad.train import estimate

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def floor_and_batch(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # floor.py imports its sibling common.py
    floor = importlib.import_module("floor")
    agent = npgrad.PPO("CartPole-v1", seed=0)
    agent.learn(1_000)
    cfg = agent.config
    return floor, estimate(agent.rollout.collect(agent.policy, np.random.default_rng(0)), agent.value_fn, cfg.gamma, cfg.lam), cfg


def test_the_floor_computes_npgrads_ppo_update(floor_and_batch):
    floor, batch, cfg = floor_and_batch
    floor.check_floor_matches_npgrad(batch, cfg)  # raises naming the gradient or step that differs


def test_the_floor_check_fails_on_a_wrong_objective(floor_and_batch, monkeypatch):
    floor, batch, cfg = floor_and_batch
    unclipped = floor.clipped_surrogate_bar
    monkeypatch.setattr(floor, "clipped_surrogate_bar", lambda *args: unclipped(*args[:-1], np.inf))
    with pytest.raises(AssertionError, match="floor's policy gradient"):
        floor.check_floor_matches_npgrad(batch, cfg)
