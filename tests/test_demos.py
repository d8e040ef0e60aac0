"""The demos run end to end (on a tiny budget) and write what their docstrings promise."""
import importlib.util
from pathlib import Path

import pytest

import npgrad

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def load_demo(name):
    spec = importlib.util.spec_from_file_location(name, DEMOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("demo, algo", [("cartpole", "ppo"), ("pendulum", "trpo")])
def test_demo_runs_and_saves_a_loadable_model(demo, algo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = load_demo(demo)
    history = module.main(module.Args(algo=algo, steps=5_000))
    assert len(history) == 1 and history[0][0] >= 5_000
    agent = npgrad.load(tmp_path / f"{demo}_{algo}.npz")
    assert agent.name == algo and agent.num_steps == history[0][0]
