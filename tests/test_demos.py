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
