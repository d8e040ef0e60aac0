"""The ``npgrad`` command through ``main(argv)``: files written, eval, plot, resume, Ctrl-C, errors."""
import csv
import errno
import filecmp
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import npgrad
from npgrad import cli, runs
from npgrad.agent import EVAL_SEED_OFFSET
from npgrad.errors import FileFormatError
from npgrad.io import flatten
from npgrad.plotting import have_matplotlib
from npgrad.population import aggregate_curves
from test_runs import within

TINY = ["--steps", "3000", "--checkpoint-every", "1024", "--eval-every", "1024", "--eval-episodes", "2", "--quiet"]


def train(out, algo="ppo", env="CartPole-v1", *extra):
    return cli.main(["train", algo, env, "--out", str(out), *TINY, *extra])


def crash_after(monkeypatch, update, exc=RuntimeError("simulated crash")):
    """Make the run's callback raise after ``update`` updates (a crash between checkpoints)."""
    original = runs.RunLogger.__call__

    def call(self, agent, diagnostics):
        result = original(self, agent, diagnostics)
        if agent.num_updates == update:
            raise exc
        return result

    monkeypatch.setattr(runs.RunLogger, "__call__", call)


def test_train_writes_every_file_and_eval_reads_them(tmp_path, capsys):
    assert train(tmp_path / "run") == 0
    files = set(os.listdir(tmp_path / "run"))
    assert {"config.json", "progress.csv", "timing.csv", "model.npz", "checkpoints"} <= files
    assert ("curve.png" in files) == have_matplotlib()
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "step_0000001024.npz", "step_0000002048.npz", "step_0000003072.npz"]
    config = runs.read_config(tmp_path / "run")
    assert config["algo"] == "ppo" and config["config"]["n_envs"] == 16 and config["versions"]["npgrad"]
    assert config["defaults"].startswith("tuned for CartPole-v1: ")
    header, rows = runs.read_csv(tmp_path / "run" / "progress.csv")
    assert len(rows) == 12 and {"kl", "entropy", "clip_fraction", "explained_variance", "eval_return"} <= set(header)
    assert [int(r["num_steps"]) for r in rows if r["eval_return"]] == [1024, 2048, 3072]
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "over 3 deterministic episodes" in out


def test_a_run_without_a_tuned_entry_records_and_prints_its_family_defaults(tmp_path, capsys):
    assert cli.main(["train", "a2c", "Acrobot-v1", "--out", str(tmp_path / "run"), "--steps", "200"]) == 0
    source = runs.read_config(tmp_path / "run")["defaults"]
    assert source.startswith("discrete-control family, no tuned entry for Acrobot-v1: "), source
    assert f"defaults: {source}" in capsys.readouterr().err


def test_a_run_folder_from_before_the_defaults_were_recorded_still_reads(tmp_path):
    assert train(tmp_path / "run") == 0
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    del config["defaults"]
    path.write_text(json.dumps(config))
    assert "defaults" not in runs.read_config(tmp_path / "run")
    config["defaults"] = 3
    path.write_text(json.dumps(config))
    with pytest.raises(FileFormatError, match="defaults must be a string"):
        runs.read_config(tmp_path / "run")


def test_set_overrides_are_typed_and_saved(tmp_path):
    assert train(tmp_path / "run", "ppo", "CartPole-v1", "--set", "hidden=16,16", "--set", "anneal_lr=false",
                 "--set", "lr=0.002") == 0
    agent = npgrad.load(tmp_path / "run" / "model.npz")
    assert agent.config.hidden == (16, 16) and agent.config.anneal_lr is False and agent.config.lr == 0.002
    assert runs.read_config(tmp_path / "run")["overrides"] == {"hidden": [16, 16], "anneal_lr": False, "lr": 0.002}


@pytest.mark.parametrize("algo, env, crash_at", [("ppo", "CartPole-v1", 7), ("trpo", "Pendulum-v1", 1)])
def test_resume_after_a_crash_equals_the_uninterrupted_run(tmp_path, monkeypatch, algo, env, crash_at):
    assert train(tmp_path / "full", algo, env) == 0
    crash_after(monkeypatch, crash_at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path / "cut", algo, env)
    monkeypatch.undo()
    assert not os.path.exists(tmp_path / "cut" / "model.npz")
    assert cli.main(["train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert filecmp.cmp(tmp_path / "full" / "progress.csv", tmp_path / "cut" / "progress.csv", shallow=False)
    full, cut = npgrad.load(tmp_path / "full" / "model.npz"), npgrad.load(tmp_path / "cut" / "model.npz")
    np.testing.assert_array_equal(full.policy.theta, cut.policy.theta)
    np.testing.assert_array_equal(full.value_fn.theta, cut.value_fn.theta)
    full_rule, cut_rule = flatten(full.rule.state()), flatten(cut.rule.state())
    for name in full_rule:  # optimiser moments and counts, PPO's beta
        np.testing.assert_array_equal(full_rule[name], cut_rule[name], err_msg=f"rule state {name}")


@pytest.fixture
def python_sigint():
    """SIGINT as Python installs it in a terminal, whatever the suite started with (``nohup``, ``trap "" INT``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c_at(monkeypatch, update):
    """Press Ctrl-C while the run's callback handles update number ``update``."""
    original = runs.RunLogger.__call__

    def press_ctrl_c(self, agent, diagnostics):
        if agent.num_updates == update:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets a flag: no KeyboardInterrupt
        return original(self, agent, diagnostics)

    monkeypatch.setattr(runs.RunLogger, "__call__", press_ctrl_c)


def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(tmp_path, monkeypatch, python_sigint):
    ctrl_c_at(monkeypatch, 5)
    assert train(tmp_path / "run") == 130
    monkeypatch.undo()
    assert runs.latest_checkpoint(tmp_path / "run").endswith("step_0000001280.npz")  # 5 updates x 256 steps
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as it was before the run
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert npgrad.load(tmp_path / "run" / "model.npz").num_steps == 3072


def test_ctrl_c_during_the_last_update_is_no_interruption(tmp_path, monkeypatch, python_sigint, capsys):
    """The stop is taken at the next update boundary; after the last update there is nothing left to stop, so
    the run ends as a finished one: status 0 and its model, not an interrupted run's checkpoint."""
    ctrl_c_at(monkeypatch, 12)  # 12 x 256 = 3,072 steps: the budget of 3,000 reached
    assert train(tmp_path / "run") == 0
    assert npgrad.load(tmp_path / "run" / "model.npz").num_steps == 3072
    assert "interrupted" not in capsys.readouterr().err


def test_a_run_without_steps_plans_100k(tmp_path, monkeypatch, capsys):
    crash_after(monkeypatch, 1)  # the plan is written and printed before training; no need to train it
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli.main(["train", "ppo", "CartPole-v1", "--out", str(tmp_path / "run"), "--eval-every", "0"])
    assert runs.read_config(tmp_path / "run")["steps"] == 100_000
    assert "(seed 0) for 100,000 steps" in capsys.readouterr().err


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch, capsys):
    real_savez = np.savez

    def savez_then_die(file, **arrays):
        if "step_0000002048" in file.name:
            file.write(b"PK\x03\x04 half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", savez_then_die)
    assert train(tmp_path / "run") == 1  # one line, no traceback
    run, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "step_0000001024.npz"
    assert capsys.readouterr().err == (f"npgrad: error: cannot write {run / 'checkpoints' / 'step_0000002048.npz'}: "
                                       f"No space left on device; the last checkpoint, {last}, is intact; continue "
                                       f"from it with: npgrad train --resume {run}\n")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "run" / "checkpoints") == ["step_0000001024.npz"]  # no half-written file
    assert npgrad.load(tmp_path / "run" / "checkpoints" / "step_0000001024.npz").num_steps == 1024
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "ppx", "CartPole-v1"], "unknown algorithm 'ppx'; choose from: vpg, npg, trpo, ppo, a2c"),
    (["train", "ppo", "CartPol-v1"], "unknown environment id 'CartPol-v1'; did you mean: CartPole-v1"),
    (["train", "ppo", "CartPole-v1", "--set", "lrr=1"], "unknown hyperparameter(s) ['lrr'] for PPOConfig (lrr: did you mean lr?"),
    (["train", "ppo", "CartPole-v1", "--set", "lr=fast"], "--set lr=fast: lr expects a number"),
    (["train", "ppo", "CartPole-v1", "--set", "gamma=1.5"], "gamma=1.5 is invalid: must be in [0, 1]"),
    (["train", "ppo", "CartPole-v1", "--set", "hidden=a,b"], "hidden expects comma-separated integers"),
    (["train", "ppo", "CartPole-v1", "--set", "lr"], "--set expects key=value, got 'lr'"),
    (["train", "ppo", "CartPole-v1", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["train", "ppo", "CartPole-v1", "--steps", str(10**13)], "--steps must be at most 10,000,000,000, got"),
    (["train", "ppo", "CartPole-v1", "--eval-every", "-1"], "--eval-every must be a non-negative integer, got -1"),
    (["train", "ppo", "CartPole-v1", "--checkpoint-every", "-5"], "--checkpoint-every must be a positive integer"),
    (["train", "ppo", "CartPole-v1", "--eval-episodes", "1000000"], "--eval-episodes must be at most 10,000, got"),
    (["train", "ppo", "CartPole-v1", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["train", "--resume", "no/such/dir", "--eval-every", "-1"], "--eval-every must be a non-negative integer"),
    (["eval", ".", "--episodes", "1000000"], "--episodes must be at most 10,000, got 1,000,000"),
    (["eval", ".", "--seed", "-3"], "--seed must be a non-negative integer, got -3"),
    (["gradcheck", "--batch", "0"], "--batch must be a positive integer, got 0"),
    (["gradcheck", "--batch", str(10**9)], "--batch must be at most 4,096, got 1,000,000,000"),
    (["gradcheck", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["train"], "train needs ALGO and ENV_ID (or --resume RUN_DIR)"),
    (["train", "ppo", "CartPole-v1", "--address", "1.2.3.4:6379"], "--address is for populations: give --seeds"),
    (["train", "ppo", "CartPole-v1", "--workers", "2"], "--workers is for populations: give --seeds"),
    (["train", "--resume", "no/such/dir"], "run folder 'no/such/dir' does not exist"),
    (["eval", "."], "is not an npgrad run folder (no config.json)"),
    (["gradcheck", "--algo", "sac"], "unknown algorithm 'sac'"),
])
def test_bad_names_and_values_give_one_line_errors(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with within(20):
        assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("npgrad: error: ") and message in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "runs")  # nothing half-created


def test_step_counts_are_read_as_the_rl_zoo_writes_them(capsys):
    args = cli.build_parser().parse_args(["train", "ppo", "CartPole-v1", "--steps", "1e6", "--eval-every", "10_000"])
    assert (args.steps, args.eval_every, args.checkpoint_every) == (1_000_000, 10_000, 25_000)
    for text in ("1.5e0", "1e300", "nan"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["train", "ppo", "CartPole-v1", "--steps", text])
        assert f"argument --steps: invalid integer value: '{text}'" in capsys.readouterr().err


def test_npgrads_warnings_are_one_line_too(tmp_path, capsys):
    argv = ["train", "ppo", "CartPole-v1", "--out", str(tmp_path / "run"), "--steps", "256", "--quiet",
            "--set", "minibatch_size=1000"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    warning = ("npgrad: warning: minibatch_size=1000 is larger than the batch n_envs * n_steps = 16 * 16 = 256: "
               "every minibatch is the whole batch\n")
    assert err.startswith(warning) and err.count("npgrad: warning") == 1


def test_a_run_folder_is_never_overwritten(tmp_path, capsys):
    assert train(tmp_path / "run") == 0
    assert train(tmp_path / "run") == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err


def test_gradcheck_prints_a_passing_table(capsys):
    assert cli.main(["gradcheck", "--algo", "trpo", "--env", "Pendulum-v1", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.rstrip().endswith(("yes", "NO"))]
    assert len(rows) == 8 and all(r.rstrip().endswith("yes") for r in rows)
    assert "Fisher-vector product" in out


@pytest.mark.skipif(not have_matplotlib(), reason="needs matplotlib (test extra)")
def test_plot_overlays_seeds_as_mean_and_band(tmp_path, capsys):
    assert cli.main(["defaults", "ppo", "CartPole-v1"]) == 0
    (tmp_path / "ppo.yaml").write_text(capsys.readouterr().out)  # the defaults, given as a file: the same config
    assert train(tmp_path / "lr", "ppo", "CartPole-v1", "--set", "lr=2e-3") == 0
    assert train(tmp_path / "s0", "ppo", "CartPole-v1", "--seed", "0") == 0
    assert train(tmp_path / "s1", "ppo", "CartPole-v1", "--seed", "1", "--config", str(tmp_path / "ppo.yaml")) == 0
    out_png = tmp_path / "curves.png"
    assert cli.main(["plot", *(str(tmp_path / r) for r in ("lr", "s0", "s1")), "--out", str(out_png)]) == 0
    printed = capsys.readouterr().out.splitlines()
    steps, returns_rk = zip(*(runs.eval_curve(tmp_path / r) for r in ("s0", "s1")))
    iqm = aggregate_curves(steps[0], list(returns_rk)).iqm
    assert printed[0].startswith(f"ppo CartPole-v1 (lr=0.002): 1 seed, last evaluation "
                                 f"{runs.eval_curve(tmp_path / 'lr')[1][-1]:.1f}")
    assert printed[1] == ("ppo CartPole-v1: with 2 seeds the 95% interval spans about their range; 10 or more make "
                          "it say where the IQM lies")
    assert printed[2].startswith(f"ppo CartPole-v1: 2 seeds, last evaluation {iqm[-1]:.1f} at 3,072 steps")
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not have_matplotlib(), reason="needs matplotlib (test extra)")
def test_plot_counts_each_seed_once_and_keeps_budgets_apart(tmp_path, capsys):
    """A seed run twice is refused; runs of other budgets (whose schedules differ) are other curves; runs with fewer
    evaluations than the others cut the curve, and it says so."""
    assert train(tmp_path / "a0", "ppo", "CartPole-v1", "--seed", "0") == 0
    assert train(tmp_path / "b0", "ppo", "CartPole-v1", "--seed", "0", "--steps", "4096") == 0
    assert train(tmp_path / "b0-again", "ppo", "CartPole-v1", "--seed", "0", "--steps", "4096") == 0
    assert train(tmp_path / "b1", "ppo", "CartPole-v1", "--seed", "1", "--steps", "4096") == 0
    assert cli.main(["plot", *(str(tmp_path / r) for r in ("b0", "b1", "b0-again")), "--out", str(tmp_path / "x.png")]) == 2
    assert f"{tmp_path / 'b0'} and {tmp_path / 'b0-again'} are both seed 0 of ppo CartPole-v1: each seed counts " \
           "once" in capsys.readouterr().err
    out_png = str(tmp_path / "c.png")
    assert cli.main(["plot", *(str(tmp_path / r) for r in ("a0", "b0", "b1")), "--out", out_png]) == 0
    printed = capsys.readouterr().out
    assert "ppo CartPole-v1, budget 3,000: 1 seed" in printed and "ppo CartPole-v1, budget 4,096: 2 seeds" in printed
    (tmp_path / "b1" / "progress.csv").write_text("".join(open(tmp_path / "b1" / "progress.csv").readlines()[:-1]))
    assert cli.main(["plot", str(tmp_path / "b0"), str(tmp_path / "b1"), "--out", out_png]) == 0
    assert "ppo CartPole-v1: its runs have" in capsys.readouterr().out


@pytest.mark.skipif(not have_matplotlib(), reason="needs matplotlib (test extra)")
def test_plot_checks_what_it_is_given_before_reading_any_run(tmp_path, capsys):
    assert train(tmp_path / "run") == 0
    run = str(tmp_path / "run")
    for argv, message in ([[run, run], f"{run} is listed 2 times"],
                          [[run, "--out", str(tmp_path / "c.txt")], "matplotlib cannot write .txt files; use one of"],
                          [[run, "--out", str(tmp_path / "no" / "c.png")], f"the folder {tmp_path / 'no'} does not exist"],
                          [[run + "/model.npz"], "model.npz' is a file, not a run folder"]):
        assert cli.main(["plot", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("npgrad: error: ") and message in err and err.count("\n") == 1, err
    assert cli.main(["plot", run, "--out", str(tmp_path / "c")]) == 0  # no extension: a PNG, and it says which
    assert capsys.readouterr().out.endswith(f"wrote {tmp_path / 'c.png'}\n") and (tmp_path / "c.png").is_file()


def test_video_is_recorded_when_imageio_is_installed(tmp_path):
    pytest.importorskip("imageio")
    assert train(tmp_path / "run") == 0
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1", "--video", str(tmp_path / "ep.gif")]) == 0
    assert (tmp_path / "ep.gif").read_bytes()[:6] == b"GIF89a"
    missing = tmp_path / "no" / "ep.gif"
    assert cli.main(["eval", str(tmp_path / "run"), "--video", str(missing)]) == 2  # said before evaluating


def test_render_and_video_play_an_episode_seeded_as_the_evaluation(tmp_path, monkeypatch):
    assert train(tmp_path / "run") == 0
    played = []
    monkeypatch.setattr(cli, "play_episode", lambda agent, seed, *rest: played.append(seed) or ([], 30))
    monkeypatch.setattr(cli, "video_writer", lambda path: None)  # no imageio needed: nothing is written
    monkeypatch.setattr(cli, "write_video", lambda *args: None)
    for flags in ([], ["--seed", "7"]):
        assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1", "--render", "--video",
                         str(tmp_path / "ep.gif"), *flags]) == 0
    assert played == [EVAL_SEED_OFFSET] * 2 + [7] * 2  # the training seed 0 + the evaluation offset, or --seed


def test_python_dash_m_npgrad_prints_help():
    out = subprocess.run([sys.executable, "-m", "npgrad", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(cmd in out for cmd in ("train", "eval", "plot", "gradcheck"))


@pytest.mark.parametrize("command", [[], ["train"], ["train", "ppo"], ["eval"], ["plot"], ["gradcheck"],
                                     ["check-env"], ["defaults"]])
def test_every_help_text_reads_as_written(command, capsys):
    # argparse %-formats help strings but prints descriptions verbatim (an escaped %% shows as written), and
    # a docstring's reStructuredText quotes would show as typed
    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and out.startswith("usage: npgrad")
    assert "%%" not in out and "%(" not in out and "``" not in out, out


def test_progress_log_widens_its_header_when_a_new_diagnostic_appears(tmp_path):
    log = runs.CsvLog(tmp_path / "p.csv", ["num_updates"])
    log.write({"num_updates": 1, "kl": 0.5})
    log.write({"num_updates": 2, "kl": 0.25, "beta": 2.0})
    header, rows = runs.read_csv(tmp_path / "p.csv")
    assert header == ["num_updates", "kl", "beta"]
    assert rows == [{"num_updates": "1", "kl": "0.5", "beta": ""}, {"num_updates": "2", "kl": "0.25", "beta": "2.0"}]


def test_render_plays_an_episode_in_a_window(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pygame", reason="rendering is the video extra: pip install -e '.[video]'")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # pygame draws into an invisible window
    assert train(tmp_path / "run") == 0
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1", "--render"]) == 0
    assert "over 1 deterministic episodes" in capsys.readouterr().out


def test_a_missing_video_plugin_is_reported_before_evaluating(tmp_path, monkeypatch, capsys):
    pytest.importorskip("imageio")  # the plugin is what is missing here, not imageio
    real_import = __import__

    def without_ffmpeg(name, *args, **kwargs):
        if name == "imageio_ffmpeg":
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", without_ffmpeg)
    monkeypatch.setattr(cli, "load", lambda path: pytest.fail("the model was loaded and evaluated first"))
    assert cli.main(["eval", str(tmp_path), "--video", str(tmp_path / "ep.mp4")]) == 2
    assert "needs imageio_ffmpeg: pip install 'npgrad[video]'" in capsys.readouterr().err


def test_a_module_env_id_typed_on_the_command_line_is_imported_and_a_run_folders_only_when_trusted(tmp_path):
    env_id = "gymnasium.envs.classic_control:CartPole-v1"  # imports a module, then makes its CartPole-v1
    assert cli.main(["train", "ppo", env_id, "--steps", "512", "--eval-every", "0", "--quiet",
                     "--out", str(tmp_path / "run")]) == 0
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1"]) == 2  # the folder names a module
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "1", "--trust-env-spec"]) == 0


def test_defaults_print_a_yaml_file_that_config_reads_back(tmp_path, capsys):
    assert cli.main(["defaults", "ppo", "CartPole-v1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# ppo on CartPole-v1, tuned for CartPole-v1: ") and "\nn_steps: 16\n" in printed
    (tmp_path / "ppo.yaml").write_text(printed.replace("\nlr: 0.005\n", "\nlearning_rate: 1.0e-3\n"))
    assert cli.main(["train", "ppo", "CartPole-v1", "--config", str(tmp_path / "ppo.yaml"), "--set", "n_epochs=4",
                     "--steps", "256", "--eval-every", "0", "--quiet", "--out", str(tmp_path / "run")]) == 0
    config = runs.read_config(tmp_path / "run")["config"]
    assert (config["lr"], config["n_epochs"], config["n_steps"]) == (1e-3, 4, 16), "the file, an SB3 name, --set wins"


@pytest.mark.parametrize("text, match", [
    ("- 1\n", "must hold a mapping of hyperparameter names to values"),
    ("lr: !!python/object/apply:os.system ['echo unsafe']\n", "could not determine a constructor"),
    ("lrr: 1\n", "lrr: did you mean lr"),
    ("lr: [1\n", "c.yaml: not valid YAML at line 2, column 1: expected ',' or ']'"),
    ("lr: fast\n", "c.yaml: lr: fast: lr expects a number"),
    ("learning_rate: lin_fast\n", "c.yaml: learning_rate: lin_fast is not lin_ followed by a number"),
    ("ent_coef: lin_0.01\n", "c.yaml: ent_coef: lin_0.01: only lr and clip_range can have a schedule in PPOConfig"),
    ("policy: CnnPolicy\n", "c.yaml: policy 'CnnPolicy': npgrad's policy is an MLP"),
])
def test_a_config_file_that_is_not_hyperparameters_is_one_line(tmp_path, capsys, text, match):
    (tmp_path / "c.yaml").write_text(text)
    assert cli.main(["train", "ppo", "CartPole-v1", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and not (tmp_path / "r").exists(), err


ZOO_FILE = """\
atari:
  env_wrapper:
    - stable_baselines3.common.atari_wrappers.AtariWrapper
  policy: 'CnnPolicy'
CartPole-v1: &cartpole
  n_envs: 8
  n_timesteps: !!float 1e3
  policy: 'MlpPolicy'
  n_steps: 32
  batch_size: 256
  gae_lambda: 0.8
  learning_rate: lin_0.001
  clip_range: lin_0.2
Pendulum-v1:
  normalize: "{'norm_obs': True, 'norm_reward': False}"
  policy: 'MlpPolicy'
  vf_coef: 0.5
  policy_kwargs: "dict(log_std_init=-2,
                       ortho_init=False,
                       activation_fn=nn.ReLU,
                       net_arch=[dict(pi=[32, 32], vf=[16])]
                       )"
"""


def test_an_rl_zoo_file_is_read_for_the_environment_trained(tmp_path, capsys):
    """The RL-Zoo's hyperparams/ppo.yml shape: the entry of the env id, in npgrad's words (lin_ schedules anneal,
    normalize and policy_kwargs parsed, n_timesteps the budget); what npgrad leaves out it says."""
    (tmp_path / "ppo.yml").write_text(ZOO_FILE)
    common = ["--config", str(tmp_path / "ppo.yml"), "--eval-every", "0", "--quiet"]
    assert cli.main(["train", "ppo", "CartPole-v1", *common, "--out", str(tmp_path / "cp")]) == 0
    run = runs.read_config(tmp_path / "cp")
    assert run["steps"] == 1000 and run["overrides"] == {
        "n_envs": 8, "n_steps": 32, "minibatch_size": 256, "lam": 0.8, "lr": 0.001, "anneal_lr": True,
        "clip_range": 0.2, "anneal_clip": True}
    assert cli.main(["train", "ppo", "Pendulum-v1", *common, "--steps", "256", "--out", str(tmp_path / "pd")]) == 0
    run = runs.read_config(tmp_path / "pd")
    assert run["steps"] == 256, "--steps wins over n_timesteps"
    assert run["overrides"] == {"normalize_obs": True, "normalize_reward": False, "log_std_init": -2,
                                "activation": "relu", "hidden": [32, 32], "vf_hidden": [16]}
    err = capsys.readouterr().err
    assert "Pendulum-v1: vf_coef is left out: it weighs the value loss only with shared_trunk=True" in err
    assert "ortho_init is left out" in err
    assert cli.main(["train", "ppo", "Acrobot-v1", *common, "--out", str(tmp_path / "ac")]) == 2
    assert "an RL-Zoo file with settings for ['CartPole-v1', 'Pendulum-v1', 'atari'], none for Acrobot-v1" in \
        capsys.readouterr().err
    assert cli.main(["train", "trpo", "CartPole-v1", *common, "--out", str(tmp_path / "trpo")]) == 2
    assert "learning_rate: lin_0.001: only max_kl can have a schedule in TRPOConfig" in capsys.readouterr().err
    assert cli.main(["train", "npg", "CartPole-v1", *common, "--out", str(tmp_path / "npg")]) == 2
    assert "learning_rate: lin_0.001: no setting can have a schedule in NPGConfig" in capsys.readouterr().err
    (tmp_path / "a2c.yml").write_text("CartPole-v1:\n  vf_coef: 0.25\n  n_timesteps: 256\n")
    assert cli.main(["train", "a2c", "CartPole-v1", "--config", str(tmp_path / "a2c.yml"), "--eval-every", "0",
                     "--quiet", "--out", str(tmp_path / "a2c")]) == 0
    assert runs.read_config(tmp_path / "a2c")["overrides"] == {"vf_coef": 0.25}, "A2C's vf_coef acts: it is kept"
    (tmp_path / "flat.yml").write_text("learning_rate: lin_0.002\nn_timesteps: 512\nvf_coef: 0.5\n")
    assert cli.main(["train", "ppo", "CartPole-v1", "--config", str(tmp_path / "flat.yml"), "--eval-every", "0",
                     "--quiet", "--out", str(tmp_path / "flat")]) == 0
    run = runs.read_config(tmp_path / "flat")
    assert (run["steps"], run["overrides"]) == (512, {"lr": 0.002, "anneal_lr": True, "vf_coef": 0.5}), \
        "a flat file is read alike; its vf_coef, a field of npgrad's PPO, is kept"


@pytest.mark.parametrize("entry, match", [
    ("  env_wrapper: [gymnasium.wrappers.TimeLimit]\n", "env_wrapper is refused: npgrad does not build or import"),
    ("  callback: mymodule.Callback\n", "callback is refused"),
    ("  policy: CnnPolicy\n", "policy 'CnnPolicy': npgrad's policy is an MLP"),
    ("  n_timesteps: 1.5\n", "n_timesteps must be a positive whole number of steps, got 1.5"),
    ("  n_timesteps: .inf\n", "n_timesteps must be a positive whole number of steps, got inf"),
    ("  n_timesteps: 0\n", "n_timesteps must be a positive whole number of steps, got 0"),
    ("  learning_rate: lin_fast\n", "learning_rate: lin_fast is not lin_ followed by a number"),
    ("  normalize: \"{'gamma': 0.9}\"\n", "normalize: npgrad has no ['gamma']"),
    ("  policy_kwargs: \"dict(net_arch=__import__('os').system('touch HACKED'))\"\n",
     "policy_kwargs: net_arch must be dict(...) or {...} of settings, got \"__import__('os').system('touch HACKED')\""),
    ("  policy_kwargs: \"dict(log_std_init=__import__('os').system('touch HACKED'))\"\n",
     "policy_kwargs: log_std_init must be a plain value, got \"__import__('os').system('touch HACKED')\""),
    ("  policy_kwargs: \"__import__('os').system('touch HACKED')\"\n", "policy_kwargs must be dict(...) or {...}"),
    ("  policy_kwargs: \"dict(activation_fn=nn.GELU)\"\n",
     "policy_kwargs: activation_fn nn.GELU: npgrad has nn.ReLU, nn.Tanh"),
    ("  policy_kwargs: \"dict(squash_output=True)\"\n", "policy_kwargs: npgrad has no squash_output"),
    ("  policy_kwargs: \"dict(net_arch=dict(pi=[64]))\"\n", "policy_kwargs: net_arch must give pi and vf, got ['pi']"),
    ("  policy_kwargs: \"dict(net_arch=[64, 'x'])\"\n", "policy_kwargs: net_arch widths must be a list of integers"),
    ("  policy_kwargs: \"dict(\"\n", "policy_kwargs is not a Python expression"),
])
def test_an_rl_zoo_entry_npgrad_cannot_follow_is_refused_without_running_it(tmp_path, monkeypatch, capsys, entry,
                                                                              match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ppo.yml").write_text("CartPole-v1:\n" + entry)
    assert cli.main(["train", "ppo", "CartPole-v1", "--config", "ppo.yml", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert f"--config ppo.yml: CartPole-v1: {match}" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppo.yml"], "nothing ran, nothing was written"


def test_an_rl_zoo_schedule_of_trpos_target_kl_anneals_max_kl():
    """sb3-contrib's ``target_kl`` is ``max_kl``, so ``lin_`` on it is ``anneal_kl``, as on PPO's learning rate."""
    from npgrad import zoo

    settings, _ = zoo.zoo_settings({"target_kl": "lin_0.02"}, "CartPole-v1", npgrad.TRPO.Config, "f.yml")
    assert settings == {"target_kl": 0.02, "anneal_kl": True}
    config = npgrad.TRPO("CartPole-v1", **settings).config
    assert (config.max_kl, config.anneal_kl) == (0.02, True)


def test_an_rl_zoo_normalize_dict_defaults_to_vecnormalizes_own():
    """VecNormalize normalises observations and rewards unless told not to; a dict naming one keeps the other."""
    from npgrad import zoo

    for text, expected in (("{'norm_obs': False}", {"normalize_obs": False, "normalize_reward": True}),
                           ("{'norm_reward': False}", {"normalize_obs": True, "normalize_reward": False})):
        settings, _ = zoo.zoo_settings({"normalize": text}, "Pendulum-v1", npgrad.PPO.Config, "f.yml")
        assert settings == expected, text


def test_check_env_reports_one_row_per_requirement(capsys):
    assert cli.main(["check-env", "FrozenLake-v1"]) == 0
    out = capsys.readouterr().out
    assert "observation space" in out and "Discrete(16): 16 inputs" in out and " NO " not in out, out


def test_check_env_fails_on_a_space_npgrad_cannot_encode(capsys, monkeypatch):
    import gymnasium as gym

    class Images(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (8, 8, 3), dtype=np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, True, False, {}

    gym.register("NpgradTestImages-v0", entry_point=Images)
    try:
        assert cli.main(["check-env", "NpgradTestImages-v0"]) == 1
    finally:
        gym.registry.pop("NpgradTestImages-v0")
    out = capsys.readouterr().out
    assert "observation space                  NO   SpaceError: observation space Box(0, 255, (8, 8, 3)" in out, out


def test_train_algo_help_lists_every_hyperparameter_with_its_default_and_text(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "trpo", "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "hyperparameters of TRPOConfig" in out
    assert "  max_kl = 0.01\n      delta, the trust-region radius in mean KL" in out, out[-2000:]
    assert "the config's own defaults: an environment's tuned entry or family changes some" in " ".join(out.split())


def test_train_help_with_an_environment_shows_the_defaults_it_gets(capsys):
    """What the run would use, not the dataclass's values (PPO CartPole-v1 has a tuned entry), each changed one
    beside the config's own; an id that is not registered says so and falls back on the config's own."""
    with pytest.raises(SystemExit):
        cli.main(["train", "ppo", "CartPole-v1", "--help"])
    out = capsys.readouterr().out
    config = npgrad.PPO.Config.for_env("CartPole-v1")
    assert ("hyperparameters of PPOConfig on CartPole-v1 (--set NAME=VALUE); defaults tuned for CartPole-v1"
            in " ".join(out.split()))
    assert f"  n_steps = {config.n_steps}  (the config's own: 256)\n" in out and config.n_steps != 256
    assert f"  lr = {config.lr}  (the config's own: 0.0003)\n" in out and "  hidden = (64, 64)\n" in out
    with pytest.raises(SystemExit):
        cli.main(["train", "ppo", "Nope-v0", "--help"])
    out = capsys.readouterr().out
    assert "the config's own defaults" in out and "unknown environment id 'Nope-v0'" in " ".join(out.split())
    assert "  n_steps = 256\n" in out


def test_resuming_a_finished_run_says_so_instead_of_retraining(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(["train", "ppo", "CartPole-v1", "--steps", "2500", "--checkpoint-every", "1000",
                     "--eval-every", "0", "--quiet", "--out", run]) == 0  # ends at 2,560; last checkpoint 2,048
    model = (tmp_path / "run" / "model.npz").read_bytes()
    for more in ([], ["--steps", "2000"]):
        assert cli.main(["train", "--resume", run, "--quiet", *more]) == 2
        assert "has finished: its model has 2,560 steps" in capsys.readouterr().err
    assert (tmp_path / "run" / "model.npz").read_bytes() == model, "the finished model is left as it was"
    assert runs.latest_checkpoint(run).endswith("step_0000002048.npz")  # where training on starts: as one run
    assert cli.main(["train", "--resume", run, "--quiet", "--steps", "4000"]) == 0
    assert npgrad.load(tmp_path / "run" / "model.npz").num_steps == 4096


@pytest.mark.parametrize("flag", [["--seed", "7"], ["--seeds", "0-1"], ["--config", "c.yaml"], ["--set", "lr=0.5"]])
def test_a_resumed_run_keeps_its_settings_and_only_its_budget_may_change(tmp_path, capsys, flag):
    run = str(tmp_path / "run")
    assert cli.main(["train", "ppo", "CartPole-v1", "--steps", "2500", "--checkpoint-every", "1000",
                     "--eval-every", "0", "--quiet", "--out", run]) == 0
    (tmp_path / "c.yaml").write_text("lr: 0.5\n")
    config = (tmp_path / "run" / "config.json").read_text()
    assert cli.main(["train", "--resume", run, "--steps", "4000", *flag]) == 2
    assert f"{flag[0]} cannot change a run being resumed (only --steps can)" in capsys.readouterr().err
    assert (tmp_path / "run" / "config.json").read_text() == config


def test_resuming_below_the_steps_already_trained_is_refused_and_a_quiet_resume_is_quiet(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(["train", "ppo", "CartPole-v1", "--steps", "2500", "--checkpoint-every", "1000",
                     "--eval-every", "0", "--quiet", "--out", run]) == 0
    os.remove(tmp_path / "run" / "model.npz")  # as if interrupted after its checkpoint at 2,048 steps
    config = (tmp_path / "run" / "config.json").read_text()
    assert cli.main(["train", "--resume", run, "--steps", "1000", "--quiet"]) == 2
    assert "--steps 1,000 is below the 2,048 steps" in capsys.readouterr().err
    assert (tmp_path / "run" / "config.json").read_text() == config, "nothing written"
    assert cli.main(["train", "--resume", run, "--quiet"]) == 0
    assert capsys.readouterr().err == "" and npgrad.load(tmp_path / "run" / "model.npz").num_steps == 2560


def test_a_run_that_ends_exactly_at_its_budget_has_finished(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(["train", "ppo", "CartPole-v1", "--steps", "512", "--eval-every", "0", "--quiet", "--out", run]) == 0
    assert cli.main(["train", "--resume", run, "--quiet"]) == 2
    assert "has finished: its model has 512 steps of the 512 asked for" in capsys.readouterr().err


def test_a_run_folder_is_named_by_seed_and_never_trained_into_twice(tmp_path, monkeypatch, capsys):
    """The default folder names the seed; a folder holding a run's config.json (even one interrupted before its
    model) is refused; a fresh run clears temporaries an interrupted write left; timing.csv counts the steps of
    progress.csv."""
    monkeypatch.chdir(tmp_path)
    for seed in ("3", "4"):
        assert cli.main(["train", "ppo", "CartPole-v1", "--seed", seed, "--steps", "512", "--eval-every", "0",
                         "--quiet"]) == 0
    assert sorted(os.listdir("runs")) == ["ppo-CartPole-v1-s3", "ppo-CartPole-v1-s4"]
    os.remove("runs/ppo-CartPole-v1-s3/model.npz")
    assert cli.main(["train", "ppo", "CartPole-v1", "--seed", "3", "--steps", "512", "--quiet"]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    os.makedirs("fresh")
    open("fresh/progress.csv.tmp-99", "w").close()
    assert cli.main(["train", "ppo", "CartPole-v1", "--steps", "512", "--eval-every", "0", "--quiet",
                     "--out", "fresh"]) == 0
    assert not os.path.exists("fresh/progress.csv.tmp-99")
    with open("fresh/timing.csv") as timing, open("fresh/progress.csv") as progress:
        assert [r["num_steps"] for r in csv.DictReader(timing)] == [r["num_steps"] for r in csv.DictReader(progress)]


def test_eval_uses_the_model_not_the_last_checkpoint(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(["train", "ppo", "CartPole-v1", "--steps", "2500", "--checkpoint-every", "1000",
                     "--eval-every", "0", "--quiet", "--out", run]) == 0
    assert cli.main(["eval", run, "--episodes", "1"]) == 0
    assert "model.npz, 2,560 steps" in capsys.readouterr().out


def test_the_run_curve_plots_the_evaluation_returns(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(cli, "plot_curves", lambda curves, path, *a, **k: drawn.update(curves) or path)
    assert train(tmp_path / "run") == 0
    (steps, returns), = drawn.values()
    assert [list(steps), list(returns)] == [list(x) for x in runs.eval_curve(tmp_path / "run")]


def test_eval_passes_its_seed_and_mode_to_the_agent(tmp_path, monkeypatch, capsys):
    assert train(tmp_path / "run") == 0
    calls = []
    original = npgrad.agent.Agent.evaluate
    monkeypatch.setattr(npgrad.agent.Agent, "evaluate", lambda self, *a, **k: calls.append((a, k)) or original(
        self, *a, **k))
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "2", "--stochastic", "--seed", "5"]) == 0
    assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "2"]) == 0
    assert calls == [((2,), {"deterministic": False, "seed": 5}), ((2,), {"deterministic": True, "seed": None})]


@pytest.mark.parametrize("pair, expected", [
    ("anneal_lr=1", ("anneal_lr", True)), ("anneal_lr=yes", ("anneal_lr", True)), ("anneal_lr=0", ("anneal_lr", False)),
    ("hidden=[32,32]", ("hidden", (32, 32))), ("hidden=(32, 32)", ("hidden", (32, 32))), ("hidden=16", ("hidden", (16,))),
    ("learning_rate=1e-3", ("lr", 1e-3)), ("gae_lambda=0.9", ("lam", 0.9)),
])
def test_set_reads_values_as_the_field_types_them_and_sb3_names(pair, expected):
    name, text = runs.set_pair(npgrad.PPO.Config, pair)
    assert (name, runs.parse_value(npgrad.PPO.Config, name, text)) == expected


@pytest.mark.skipif(not have_matplotlib(), reason="needs matplotlib (test extra)")
def test_plot_needs_no_environment(tmp_path, monkeypatch, capsys):
    """Where an id's family defaults cannot be worked out here (its extra is missing), a run is labelled by the
    settings it was given."""
    assert train(tmp_path / "lr", "ppo", "CartPole-v1", "--set", "lr=2e-3") == 0

    def unavailable(cls, env_id, **overrides):
        raise ImportError("MuJoCo is not installed")

    monkeypatch.setattr(npgrad.PPO.Config, "for_env", classmethod(unavailable))
    assert cli.main(["plot", str(tmp_path / "lr"), "--out", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().out.startswith("ppo CartPole-v1 (lr=0.002): 1 seed")
