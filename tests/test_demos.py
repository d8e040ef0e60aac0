"""The demos run end to end (on a tiny budget) and write what their docstrings promise."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import npgrad
from npgrad.plotting import have_matplotlib

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


def test_mujoco_demo_saves_a_loadable_model_a_curve_and_a_video(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mujoco", reason="MuJoCo is an optional extra: pip install -e '.[mujoco]'")
    monkeypatch.chdir(tmp_path)
    module = load_demo("mujoco")
    history, paths = module.main(module.Args(steps=4_000, out="out"))  # InvertedPendulum-v5, PPO
    expected = {"model.npz", "best_model.npz", "curve.png"}
    if importlib.util.find_spec("imageio") and importlib.util.find_spec("imageio_ffmpeg"):  # the video extra
        expected.add("video.mp4")
    assert set(paths) >= expected
    printed = capsys.readouterr().out
    for name, path in paths.items():
        assert path == str(Path("out", name)) and Path(path).stat().st_size > 0, path
        assert f"saved {path}" in printed
    assert "npgrad.load(" in printed
    agent, best = npgrad.load(paths["model.npz"]), npgrad.load(paths["best_model.npz"])
    assert agent.name == best.name == "ppo" and agent.env_id == best.env_id == "InvertedPendulum-v5"
    assert agent.num_steps == history[-1][0] >= 4_000 and best.num_steps in [row[0] for row in history]


def test_seeds_demo_compares_two_settings_over_seeds_and_saves_the_population(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    module = load_demo("seeds")
    curves = module.main(module.Args(seeds=3, steps=5_000))  # PPO on CartPole-v1, lr 1e-3 against 5e-3
    assert list(curves) == ["lr=0.001", "lr=0.005"] and all(c.members == 3 for c in curves.values())
    printed = capsys.readouterr().out
    assert "P(lr=0.005 learns more than lr=0.001) = " in printed and "seed by seed: " in printed
    pop = npgrad.load_population(tmp_path / "seeds_ppo")
    assert [m.seed for m in pop] == [0, 1, 2] * 2 and [pop.settings(k)["lr"] for k in (0, 3)] == [1e-3, 5e-3]
    mean_return_at_first_evaluation = [pop.evaluations[k]["history"][0][2] for k in range(6)]
    assert curves["lr=0.001"].median[0] == np.median(mean_return_at_first_evaluation[:3])
    if have_matplotlib():
        assert (tmp_path / "seeds_ppo.png").stat().st_size > 0 and "saved seeds_ppo.png" in printed
