"""Populations on Ray (npgrad/ray_backend.py): the same members as the local backend, also after Ray retried a task
whose worker died; a resumed sweep does not retrain finished members; a missing extra is one line."""
import os
import sys
import time

import numpy as np
import pytest

import npgrad
from npgrad import ray_backend
from npgrad.cli import main
from npgrad.errors import ConfigError
from npgrad.population import learn_chunk

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'npgrad[ray]')")

TINY = {"n_envs": 2, "n_steps": 64}
FLAGS = ["--set", "n_envs=2", "--set", "n_steps=64", "--steps", "512", "--eval-every", "256", "--eval-episodes", "2"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with 2 CPUs, as on this machine; shut down after this module."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


def same_members(a, b):
    return all(np.array_equal(x.policy.theta, y.policy.theta) and np.array_equal(x.value_fn.theta, y.value_fn.theta)
               and x.state()[1]["rng_state"] == y.state()[1]["rng_state"] for x, y in zip(a, b, strict=True))


def test_a_population_on_ray_equals_the_same_population_trained_here(cluster):
    here, on_ray = (npgrad.PPO("CartPole-v1", seed=range(4), lr=[1e-3, 3e-3] * 2, **TINY) for _ in range(2))
    here.learn(512, eval_every=256, eval_episodes=2, workers=1)
    on_ray.learn(512, eval_every=256, eval_episodes=2, backend="ray")
    assert same_members(here, on_ray)
    assert [[(row[0], row[2]) for row in e["history"]] for e in on_ray.evaluations] == \
           [[(row[0], row[2]) for row in e["history"]] for e in here.evaluations]


def test_a_task_whose_worker_dies_is_retried_with_the_same_result(cluster, tmp_path):
    """The first attempt at the chunk kills its own worker process (as a lost machine would); Ray reruns it."""
    pop = npgrad.A2C("CartPole-v1", seed=[0, 1], **TINY)
    tasks = pop.tasks(512, 256, 2)
    marker = str(tmp_path / "died-once")

    def dies_once(chunk):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return learn_chunk(chunk)

    (i, results), = ray_backend.map_chunks(dies_once, [tasks], cluster)
    assert os.path.exists(marker) and [kind for kind, _ in results] == ["ok", "ok"]
    for (_, (arrays, meta, evaluation)), (_, expected) in zip(results, learn_chunk(tasks)):
        assert all(np.array_equal(arrays[k], expected[0][k]) for k in arrays)
        assert [(row[0], row[2]) for row in evaluation["history"]] == [(r[0], r[2]) for r in expected[2]["history"]]


def test_cli_ray_run_folder_equals_the_local_one_and_resumes_without_retraining(cluster, tmp_path):
    for backend in ("local", "ray"):
        assert main(["train", "ppo", "CartPole-v1", "--seeds", "0-2", *FLAGS, "--backend", backend,
                     "--out", str(tmp_path / backend), "--quiet"]) == 0
    for k in range(3):
        member = f"member-00{k}"
        local, remote = (npgrad.load(tmp_path / b / member / "model.npz") for b in ("local", "ray"))
        assert same_members([local], [remote])
        assert sorted(os.listdir(tmp_path / "ray" / member)) == sorted(os.listdir(tmp_path / "local" / member))
        assert (tmp_path / "ray" / member / "progress.csv").read_text().count("\n") == \
               (tmp_path / "local" / member / "progress.csv").read_text().count("\n")
    assert (tmp_path / "ray" / "aggregate.csv").read_text() == (tmp_path / "local" / "aggregate.csv").read_text()
    kept = (tmp_path / "ray" / "member-000" / "model.npz").stat().st_mtime_ns
    (tmp_path / "ray" / "member-002" / "model.npz").unlink()
    assert main(["train", "--resume", str(tmp_path / "ray"), "--backend", "ray", "--quiet"]) == 0
    assert (tmp_path / "ray" / "member-000" / "model.npz").stat().st_mtime_ns == kept
    assert same_members([npgrad.load(tmp_path / "ray" / "member-002" / "model.npz")],
                        [npgrad.load(tmp_path / "local" / "member-002" / "model.npz")])


@pytest.mark.parametrize("how", ["closed", "stopped"])
def test_tasks_still_running_when_the_caller_stops_are_cancelled(cluster, tmp_path, how):
    """A Ctrl-C in the driver (the caller closing the generator, or the CLI's ``stopped()`` turning true) must not
    leave tasks training on the cluster: the long task would finish 2 s after it started, unless it was cancelled."""
    started, finished = tmp_path / "started", tmp_path / "finished"

    def task(seconds):
        if seconds:
            started.write_text("")
            time.sleep(seconds)
            finished.write_text("")
        return seconds

    def wait_until_started():
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    if how == "closed":
        results = ray_backend.map_chunks(task, [0, 2], cluster)
        assert next(results) == (0, 0)
        wait_until_started()
        results.close()
    else:
        assert list(ray_backend.map_chunks(task, [0, 2], cluster, stopped=lambda: started.exists())) in ([(0, 0)], [])
        wait_until_started()
    time.sleep(4)
    assert started.exists() and not finished.exists()


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError, match=r'needs Ray, which is not installed: pip install "npgrad\[ray\]"'):
        npgrad.PPO("CartPole-v1", seed=[0, 1], **TINY).learn(128, backend="ray")
    assert main(["train", "ppo", "CartPole-v1", "--seeds", "0-1", "--backend", "ray", "--out", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err.strip().endswith('pip install "npgrad[ray]"') and not (tmp_path / "p").exists()
