"""The MuJoCo benchmarks' bookkeeping: which rows ran on another CPU, and SB3's runs kept between runs."""
import importlib
import json
from pathlib import Path

import pytest

from npgrad.population_runs import parse_seeds

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings
    return importlib.import_module("common"), importlib.import_module("mujoco_sb3")


def test_machines_note_names_the_rows_on_another_cpu_and_is_empty_on_one(benchmarks):
    common, _ = benchmarks
    rows = [{"name": name, "machine": {"cpu": cpu}} for name, cpu in [("a", "X"), ("b", "Y"), ("c", "X")]]
    assert common.machines_note(rows, lambda r: r["name"]) == "Rows measured on Y: b; the others on X."
    assert common.machines_note(rows[::2], lambda r: r["name"]) == ""


@pytest.mark.parametrize("seeds, label", [([0, 1, 2, 3, 4], "0-4"), ([1, 3], "1,3"), ([4], "4"),
                                          ([0, 1, 2, 5, 8, 9], "0-2,5,8-9"), ([1000, 1001], "1000-1001")])
def test_a_rows_seeds_are_named_as_seeds_takes_them(benchmarks, seeds, label):
    common, _ = benchmarks
    assert common.seeds_label(seeds) == label
    assert parse_seeds(label) == seeds, f"{label} does not read back as {seeds}"


def test_an_sb3_run_is_trained_once_and_then_read_back_unless_its_settings_differ(benchmarks, monkeypatch, tmp_path):
    _, mujoco_sb3 = benchmarks
    trained = []

    def fake_run_sb3(algo, env_id, seed, budget, every, stop_at, final_episodes):
        trained.append(seed)
        return budget, [(10_000, 1.5, float(seed))], None, 1.5, 1

    monkeypatch.setattr(mujoco_sb3, "RUNS", str(tmp_path / "runs.json"))
    monkeypatch.setattr(mujoco_sb3, "run_sb3", fake_run_sb3)
    monkeypatch.setattr(mujoco_sb3, "versions", lambda: {"stable_baselines3": "test"})
    first = mujoco_sb3.sb3_history("ppo", "Hopper-v5", 3, 20_000, 3000)
    again = mujoco_sb3.sb3_history("ppo", "Hopper-v5", 3, 20_000, 3000)
    assert trained == [3] and again == [list(row) for row in first], (trained, first, again)
    mujoco_sb3.sb3_history("ppo", "Hopper-v5", 3, 20_000, None)  # trained to the budget: another run
    monkeypatch.setattr(mujoco_sb3, "versions", lambda: {"stable_baselines3": "other"})
    mujoco_sb3.sb3_history("ppo", "Hopper-v5", 3, 20_000, 3000)  # another SB3: another run
    assert trained == [3, 3, 3], trained


def test_sb3_rows_on_the_same_seeds_are_told_apart_by_their_target_and_full(benchmarks):
    _, mujoco_sb3 = benchmarks
    row = {"env": "Hopper-v5", "algo": "ppo", "seeds": [0, 1, 2, 3, 4], "target": 3000}
    labels = [mujoco_sb3.sb3_row_label(r) for r in (row, {**row, "target": 1000.0}, {**row, "full": True})]
    assert labels == ["Hopper-v5 PPO (0-4)", "Hopper-v5 PPO (0-4, target=1000)", "Hopper-v5 PPO (0-4, full=True)"]


def test_the_readme_mujoco_summary_takes_the_row_on_most_seeds_and_says_when_sb3_never_gets_there(benchmarks):
    publish = importlib.import_module("publish")
    five, ten = ({"env": "E", "algo": "ppo", "seeds": list(range(n))} for n in (5, 10))
    assert publish.most_seeds([five, ten, five])[("E", "ppo")] is ten
    row = {"seeds": [0, 1, 2], "npgrad": {"reached": 2}, "sb3": {"reached": 0}, "sb3_over_npgrad_median": None}
    assert publish.against_sb3(row) == "SB3 never (2 / 0 of 3)"
    assert publish.against_sb3({**row, "sb3": {"reached": 1}}) == "SB3 never (2 / 1 of 3)"  # a median past SB3's few
    assert publish.against_sb3({**row, "sb3": {"reached": 3}, "sb3_over_npgrad_median": 4.56}) == "4.6x (2 / 3 of 3)"
    assert publish.against_sb3({**row, "npgrad": {"reached": 0}, "sb3_over_npgrad_median": float("nan")}) \
        == "- (0 / 0 of 3)"


def test_a_kept_population_measurement_keeps_the_cpu_it_ran_on(benchmarks, monkeypatch, tmp_path):
    """population.py --only measures some tables again and keeps the others: each heading names its own CPU."""
    population = importlib.import_module("population")  # the fixture put benchmarks/ on the path
    code = {"commit": "0123456789", "npgrad_changed": False, "stacked": True}
    old = {"machine": {"date": "then", "cpu": "Old CPU"}, "measured": {"ray": {"date": "then", **code}},
           "ray": {"rows": []}}
    (tmp_path / "population.json").write_text(json.dumps(old))
    results, measured = population.kept_measurements(tmp_path / "population.json", ["threshold"])
    assert measured == {"ray": {"date": "then", "cpu": "Old CPU", **code}} and results == {"ray": {"rows": []}}
    monkeypatch.setattr(population, "ray_markdown", lambda rows: "")
    assert "Measured then on Old CPU, commit 0123456." in population.report(results, {"seeds": 16}, 2, measured)
