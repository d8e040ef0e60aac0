"""The example on the documentation site's "Coming from Stable-Baselines3" page (docs/sb3.md) runs as written."""
import pathlib
import re

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "sb3.md"


def test_the_sb3_pages_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    names = {}
    exec(compile(code, str(PAGE), "exec"), names)
    assert names["agent"].num_steps >= 20_000 and (tmp_path / "ppo_cartpole.npz").is_file()
    assert (tmp_path / "logs" / "evaluations.npz").is_file() and (tmp_path / "logs" / "ppo_1" / "progress.csv").is_file()
    assert names["mean_reward"] > 100, "a random policy balances about 20 steps"
