"""Hostile run folders: every field of ``config.json`` and of a checkpoint's run state is checked before use,
symlinks that leave the folder are refused, a full disk is one line, and no loop runs without an end."""
import contextlib
import errno
import json
import os
import shutil
import signal

import numpy as np
import pytest

import npgrad
from npgrad import cli, io, runs
from npgrad.callbacks import Evaluator
from npgrad.errors import ConfigError
from npgrad.plotting import have_matplotlib, plot_curves

TINY = ["--steps", "3000", "--checkpoint-every", "1024", "--eval-every", "1024", "--eval-episodes", "2", "--quiet"]


@contextlib.contextmanager
def within(seconds):
    """Fail, instead of hanging the suite, when the body runs longer than ``seconds``."""
    def give_up(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a loop without an end?")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", "ppo", "CartPole-v1", "--out", str(run), *TINY]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    """A copy of a run interrupted after its first checkpoint (1024 of 3000 steps), so resuming trains."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, symlinks=True)
    os.remove(copy / "model.npz")
    for name in ("step_0000002048.npz", "step_0000003072.npz"):
        os.remove(copy / "checkpoints" / name)
    return copy


def edit_config(run, **changes):
    config = json.loads((run / "config.json").read_text())
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))


def resume(run, *extra, capsys=None):
    with within(20):
        status = cli.main(["train", "--resume", str(run), "--quiet", *extra])
    return status, (capsys.readouterr().err if capsys else "")


def assert_one_line_error(status, err, *fragments):
    assert status == 2, f"exit status {status}, stderr {err!r}"
    assert err.startswith("npgrad: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


# --- config.json --------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"checkpoint_every": 0}, "checkpoint_every must be a positive integer, got 0"),
    ({"checkpoint_every": -1024}, "checkpoint_every must be a positive integer, got -1024"),
    ({"checkpoint_every": "1024"}, "checkpoint_every must be a positive integer, got '1024'"),
    ({"eval_every": -1}, "eval_every must be a non-negative integer, got -1"),
    ({"eval_episodes": 10**6}, "eval_episodes must be at most 10,000, got 1,000,000"),
    ({"steps": 10**18}, "steps must be at most 10,000,000,000, got 1,000,000,000,000,000,000"),
    ({"steps": 3000.5}, "steps must be a positive integer, got 3000.5"),
    ({"seed": True}, "seed must be a non-negative integer, got True"),
    ({"algo": ["ppo"]}, "unknown algorithm ['ppo']; choose from: vpg, npg, trpo, ppo, a2c"),
    ({"env_id": "os:system-v0"}, "env_id 'os:system-v0' is refused: the module:Env form imports a module"),
    ({"env_id": "$\\frac{"}, "unknown environment id '$\\\\frac{'; e.g. CartPole-v1"),
    ({"env_id": 7}, "env_id must be a gymnasium id string, got 7"),
    ({"config": "x"}, "config must be a JSON object, got 'x'"),
    ({"config": {"gamma": 1.5}}, "config: hyperparameter gamma=1.5 is invalid: must be in [0, 1]"),
    ({"overrides": {"lr": 0.5}}, "overrides: lr=0.5 is not the config's lr="),
    ({"overrides": []}, "overrides must be a JSON object, got []"),
    ({"versions": None}, "versions must be a JSON object, got None"),
    ({"surprise": 1}, "unexpected field(s) ['surprise']"),
])
def test_a_bad_config_json_is_refused_on_resume_in_one_line(run, capsys, changes, message):
    progress = (run / "progress.csv").read_bytes()
    edit_config(run, **changes)
    status, err = resume(run, capsys=capsys)
    assert_one_line_error(status, err, f"{run / 'config.json'}: ", message)
    assert (run / "progress.csv").read_bytes() == progress and not (run / "model.npz").exists()


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "must hold a JSON object, got list"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    (json.dumps({"format": "npgrad-run", "pad": "x" * 2_000_000}), "larger than 1,000,000 bytes"),
])
def test_a_config_json_of_the_wrong_shape_or_size_is_refused(run, capsys, text, message):
    (run / "config.json").write_text(text)
    status, err = resume(run, capsys=capsys)
    assert_one_line_error(status, err, message)


def test_a_missing_field_is_named(run, capsys):
    config = json.loads((run / "config.json").read_text())
    del config["eval_episodes"]
    (run / "config.json").write_text(json.dumps(config))
    assert_one_line_error(*resume(run, capsys=capsys), "missing field(s) ['eval_episodes']")


@pytest.mark.skipif(not have_matplotlib(), reason="needs matplotlib (test extra)")
def test_plot_refuses_a_config_json_with_mathtext_in_its_env_id(run, tmp_path, capsys):
    edit_config(run, env_id="$\\frac{")
    status = cli.main(["plot", str(run), "--out", str(tmp_path / "c.png")])
    assert_one_line_error(status, capsys.readouterr().err, "unknown environment id '$\\\\frac{'")


@pytest.mark.skipif(not have_matplotlib(), reason="needs matplotlib (test extra)")
def test_plot_labels_and_titles_are_drawn_literally(tmp_path):
    steps, returns = np.array([1, 2]), np.array([3.0, 4.0])
    path = plot_curves({"$\\frac{$ a": (steps, returns)}, tmp_path / "c.png", title="$\\frac{-v0$")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG" and path == tmp_path / "c.png"


def test_a_corrupt_progress_csv_is_one_line_for_plot(run, tmp_path, capsys):
    (run / "progress.csv").write_text("num_updates,num_steps,eval_return\n1,many,3.0\n")
    status = cli.main(["plot", str(run), "--out", str(tmp_path / "c.png")])
    assert_one_line_error(status, capsys.readouterr().err, f"{run / 'progress.csv'}: row 1: num_steps")


# --- resuming -----------------------------------------------------------------------------------------


def test_resume_steps_is_honoured_before_the_first_checkpoint(run, capsys):
    shutil.rmtree(run / "checkpoints")
    assert resume(run, "--steps", "512")[0] == 0
    assert npgrad.load(run / "model.npz").num_steps == 512
    assert runs.read_config(run)["steps"] == 512


def rewrite_checkpoint(path, **progress):
    meta, arrays = io.read(path)
    meta["progress"].update(progress)
    io.write(path, arrays, meta)


@pytest.mark.parametrize("value", [1.5, -1, "4", None])
def test_a_checkpoint_with_a_bad_update_count_deletes_no_log_rows(run, capsys, value):
    progress = (run / "progress.csv").read_bytes()
    rewrite_checkpoint(run / "checkpoints" / "step_0000001024.npz", num_updates=value)
    assert_one_line_error(*resume(run, capsys=capsys), "step_0000001024.npz: ", "num_updates")
    assert (run / "progress.csv").read_bytes() == progress


def test_a_checkpoint_of_another_run_is_refused(run, tmp_path, capsys):
    other = tmp_path / "other"
    assert cli.main(["train", "ppo", "CartPole-v1", "--out", str(other), "--seed", "1", *TINY]) == 0
    capsys.readouterr()
    shutil.copy(other / "checkpoints" / "step_0000001024.npz", run / "checkpoints" / "step_0000001024.npz")
    assert_one_line_error(*resume(run, capsys=capsys), "saved by a run with seed=1, not this run's seed=0")


@pytest.mark.parametrize("state, message", [
    ({"next_checkpoint": 0}, "next_checkpoint must be a positive integer"),
    ({"next_eval": "x"}, "next_eval must be a positive integer"),
    ({"train_seconds": -1.0}, "train_seconds must be a finite number >= 0"),
    ({"history": [[1, 2]]}, "history must be a list of [steps, seconds, return] rows"),
    ({"recent": [[1.0], []]}, "recent must be [returns, lengths] of at most 100 episodes"),
    ({"recent": [[float("nan")], [3]]}, "recent must be"),
    ({"recent": [[1.0], [-3]]}, "recent must be"),
    ({"recent": [[1.0] * 101, [1] * 101]}, "recent must be"),
    ({"recent": "[]"}, "recent must be"),
])
def test_a_checkpoint_with_a_bad_run_state_is_refused(run, capsys, state, message):
    path = run / "checkpoints" / "step_0000001024.npz"
    meta, arrays = io.read(path)
    meta["user"].update(state)
    io.write(path, arrays, meta)
    assert_one_line_error(*resume(run, capsys=capsys), "step_0000001024.npz: ", message)


def test_a_checkpoint_without_recent_episodes_resumes_with_none(run):
    """Checkpoints written before they kept the latest episodes still resume; the window starts empty."""
    path = run / "checkpoints" / "step_0000001024.npz"
    meta, arrays = io.read(path)
    assert len(meta["user"].pop("recent")[0]) > 0
    io.write(path, arrays, meta)
    assert resume(run)[0] == 0


# --- symlinks -----------------------------------------------------------------------------------------


def test_a_symlinked_checkpoints_folder_is_refused(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoints", elsewhere)
    os.symlink(elsewhere, run / "checkpoints")
    assert_one_line_error(*resume(run, capsys=capsys), "checkpoints is a symbolic link", "outside the run folder")
    assert os.listdir(elsewhere) == ["step_0000001024.npz"]


@pytest.mark.parametrize("name", ["progress.csv", "timing.csv"])
def test_a_dangling_log_symlink_is_refused(run, tmp_path, capsys, name):
    os.remove(run / name)
    os.symlink(tmp_path / "planted.csv", run / name)
    assert_one_line_error(*resume(run, capsys=capsys), f"{name} is a symbolic link", "outside the run folder")
    assert not (tmp_path / "planted.csv").exists()


def test_eval_refuses_a_model_symlinked_from_another_run(trained, run, capsys):
    os.symlink(trained / "model.npz", run / "model.npz")
    status = cli.main(["eval", str(run), "--episodes", "1"])
    assert_one_line_error(status, capsys.readouterr().err, "model.npz is a symbolic link", "outside the run folder")


def test_a_symlink_that_stays_inside_the_run_folder_is_followed(run, capsys):
    os.rename(run / "progress.csv", run / "progress-real.csv")
    os.symlink("progress-real.csv", run / "progress.csv")
    assert resume(run)[0] == 0


# --- writes that fail, and their leftovers -------------------------------------------------------------


def test_a_read_only_run_folder_is_one_line(run, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(runs, "atomic_write_text", refuse)
    status, err = resume(run, "--steps", "2000", capsys=capsys)
    assert status == 1 and err.startswith(f"npgrad: error: cannot write {run / 'config.json'}: Permission denied; "
                                          f"the last checkpoint, {run / 'checkpoints' / 'step_0000001024.npz'}, "
                                          "is intact"), err


def test_stale_temporary_files_are_removed_when_a_run_resumes(run):
    stale = [run / "progress.csv.tmp-4242", run / "model.npz.tmp-17", run / "checkpoints" / "step_0000002048.npz.tmp-9"]
    for path in stale:
        path.write_bytes(b"half a file")
    (run / "notes.tmp-1").write_text("not ours")
    assert resume(run)[0] == 0
    assert not any(path.exists() for path in stale) and (run / "notes.tmp-1").exists()


# --- counts and intervals of the callbacks ------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"every": -5}, {"every": 2.5}, {"episodes": 0}])
def test_evaluator_refuses_counts_that_would_never_end(kwargs):
    with pytest.raises(ConfigError, match="must be a positive integer"):
        Evaluator(**kwargs)


def test_an_evaluators_training_seconds_add_up_between_evaluations():
    evaluator = Evaluator(every=400, episodes=1)
    npgrad.A2C("CartPole-v1", seed=0).learn(2000, callback=evaluator)
    seconds = [row[1] for row in evaluator.history]
    assert len(seconds) >= 3 and all(later > earlier for earlier, later in zip(seconds, seconds[1:])), seconds


def test_an_evaluator_continues_at_the_evaluation_it_had_planned():
    evaluator = Evaluator(every=1000, episodes=1)
    evaluator.load_state({"history": [[1000, 1.5, 20.0]], "next_eval": 3000, "train_seconds": 1.5})
    assert not evaluator.due(2999) and evaluator.due(3000) and evaluator.history == [(1000, 1.5, 20.0)]


def test_a_resumed_run_shows_the_last_episode_return_it_logged(tmp_path):
    (tmp_path / "progress.csv").write_text("num_steps,ep_return_mean\n128,3.0\n256,\n512,12.5\n768,nan\n1024,oops\n")
    assert runs.last_return(tmp_path / "progress.csv") == 12.5
    assert np.isnan(runs.last_return(tmp_path / "missing.csv"))


def test_a_stop_set_by_another_process_is_seen_within_its_interval():
    import threading

    halt = threading.Event()  # a manager's Event proxy in a population; the same two methods
    stop = runs.StopOnSignal(halt, every=0.0)
    assert not stop.requested
    halt.set()
    assert stop.requested
    later = runs.StopOnSignal(halt, every=3600.0)
    later.next_look = float("inf")  # looked a moment ago: not asked again within the interval
    assert not later.requested
