"""SB3-named callbacks: evaluation with the best model saved, checkpoints, and the two stopping rules."""
import csv

import numpy as np
import pytest

import npgrad
from npgrad.callbacks import (CheckpointCallback, EvalCallback, StopTrainingOnNoModelImprovement,
                              StopTrainingOnRewardThreshold)


def test_eval_callback_saves_the_best_model_and_stops_at_the_reward_threshold(tmp_path):
    agent = npgrad.PPO("CartPole-v1", seed=0)
    stop = StopTrainingOnRewardThreshold(reward_threshold=400)
    evaluation = EvalCallback(callback_on_new_best=stop, eval_freq=2048, n_eval_episodes=5,
                              best_model_save_path=tmp_path)
    agent.learn(100_000, evaluation)
    returns = [mean for _, _, mean in evaluation.history]
    assert evaluation.best_mean_reward == max(returns) >= 400, f"evaluations {returns}"
    assert returns[-1] >= 400 > max(returns[:-1]), f"training stops at the first evaluation reaching 400: {returns}"
    assert agent.num_steps < 100_000
    best = npgrad.load(tmp_path / "best_model.npz")
    np.testing.assert_array_equal(best.policy.theta, agent.policy.theta, err_msg="the best model is the last one")


@pytest.mark.parametrize("min_evals, stops_at", [(0, 4), (1, 4), (2, 5)])
def test_no_model_improvement_stops_after_that_many_flat_evaluations(min_evals, stops_at):
    """As SB3's: evaluations after the first ``min_evals`` count; the first is a new best, a tie is none, and the
    third flat one in a row (more than 2) stops."""
    agent = npgrad.PPO("CartPole-v1", seed=0, lr=1e-9)  # cannot improve
    agent.evaluate = lambda *args, **kwargs: npgrad.envs.EvalResult(10.0, 0.0, np.array([10.0]), np.array([10]))
    new_bests = []
    evaluation = EvalCallback(callback_on_new_best=lambda a, e: new_bests.append(e.last_mean_reward), eval_freq=256,
                              callback_after_eval=StopTrainingOnNoModelImprovement(2, min_evals=min_evals))
    agent.learn(100_000, evaluation)
    assert len(evaluation.history) == stops_at and agent.num_steps == stops_at * 256, evaluation.history
    assert new_bests == [10.0], "an evaluation equal to the best is no new best"


def test_the_reward_threshold_stops_at_an_evaluation_equal_to_it():
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    agent.evaluate = lambda *args, **kwargs: npgrad.envs.EvalResult(400.0, 0.0, np.array([400.0]), np.array([400]))
    evaluation = EvalCallback(callback_on_new_best=StopTrainingOnRewardThreshold(400), eval_freq=128)
    agent.learn(10_000, evaluation)
    assert len(evaluation.history) == 1 and agent.num_steps == 128


def test_a_stop_callback_given_to_learn_itself_says_where_it_belongs():
    from npgrad.errors import ConfigError

    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    for stop, role in ((StopTrainingOnRewardThreshold(100), "callback_on_new_best"),
                       (StopTrainingOnNoModelImprovement(3), "callback_after_eval")):
        with pytest.raises(ConfigError, match=rf"pass it as EvalCallback\({role}=...\), not to learn\(callback=...\)"):
            agent.learn(256, callback=stop)
    with pytest.raises(ConfigError, match="reward_threshold must be a number, got 'abc'"):
        StopTrainingOnRewardThreshold("abc")


def test_checkpoint_callback_saves_every_save_freq_steps(tmp_path):
    agent = npgrad.A2C("CartPole-v1", seed=0)  # 40 steps per update
    agent.learn(1000, [CheckpointCallback(save_freq=400, save_path=tmp_path / "ckpt", name_prefix="a2c")])
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == [f"a2c_{steps}_steps.npz" for steps in (400, 800)], names
    assert npgrad.load(tmp_path / "ckpt" / "a2c_800_steps.npz").num_steps == 800


def test_progress_bar_counts_this_learn_calls_steps(capsys):
    agent = npgrad.A2C("CartPole-v1", seed=0).learn(400)  # steps from an earlier call are not this bar's
    agent.learn(400, progress_bar=True)
    err = capsys.readouterr().err
    assert "400/400" in err and "ep_return" in err, err[-300:]


def test_eval_callback_logs_prints_and_writes_its_evaluations_as_sb3s(tmp_path, capsys):
    """Each evaluation reaches the update's info (so a Logger listed before the callback still writes it), the
    screen, and evaluations.npz; SB3's keyword arguments are taken."""
    from npgrad.logger import Logger

    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    infos = []
    evaluation = EvalCallback(eval_freq=256, n_eval_episodes=3, log_path=tmp_path / "evals", verbose=1)
    with Logger(tmp_path / "log") as logger:
        agent.learn(768, callback=[logger, evaluation, lambda a, info: infos.append(dict(info))])
    steps, means = [row[0] for row in evaluation.history], [row[2] for row in evaluation.history]
    assert steps == [256, 512, 768]
    logged = [(info["num_steps"], info["eval/mean_reward"]) for info in infos if "eval/mean_reward" in info]
    assert logged == list(zip(steps, means)), "the evaluation is in the info of the update it followed"
    with open(tmp_path / "log" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["eval/mean_reward"]) for r in rows if r["eval/mean_reward"]] == means
    assert [r["eval/mean_reward"] for r in rows if int(r["num_steps"]) not in steps] == [""] * 3
    with np.load(tmp_path / "evals" / "evaluations.npz", allow_pickle=False) as data:
        assert data["timesteps"].tolist() == steps and data["results"].shape == data["ep_lengths"].shape == (3, 3)
        np.testing.assert_array_equal(data["results"].mean(axis=1), means)
        np.testing.assert_array_equal(data["ep_lengths"], data["results"])  # CartPole pays 1 per step
        assert data["ep_lengths"].dtype.kind == "i" and data["results"].dtype.kind == "f"
        stds = data["results"].std(axis=1).tolist()
    assert [info["eval/std_reward"] for info in infos if "eval/std_reward" in info] == stds
    out = capsys.readouterr().out
    assert f"Eval num_timesteps=256, episode_reward={means[0]:.2f} +/- " in out and "New best mean reward!" in out
    quiet = EvalCallback(eval_freq=256, verbose=0)
    agent.learn(256, callback=quiet)
    assert quiet.history and capsys.readouterr().out == ""


def test_stop_callbacks_say_why_they_stop_when_verbose(capsys):
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    agent.evaluate = lambda *args, **kwargs: npgrad.envs.EvalResult(400.0, 0.0, np.array([400.0]), np.array([400]))
    for stop, child, says in ((StopTrainingOnRewardThreshold(400, verbose=1), "callback_on_new_best",
                               "Stopping training because the mean reward 400.00 is above the threshold 400.0"),
                              (StopTrainingOnNoModelImprovement(0, verbose=1), "callback_after_eval",
                               "Stopping training because there was no new best model in the last 1 evaluations")):
        agent.learn(10_000, EvalCallback(eval_freq=128, verbose=0, **{child: stop}))
        assert capsys.readouterr().out.strip() == says


@pytest.mark.parametrize("callback", [lambda agent: True, lambda agent, info, extra: True, lambda: True])
def test_a_callback_that_does_not_take_agent_and_info_is_refused_before_training(callback):
    from npgrad.errors import ConfigError

    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    with pytest.raises(ConfigError, match=r"callback .* must take two arguments, \(agent, info\)"):
        agent.learn(128, callback=[lambda a, info: True, callback])
    assert agent.num_steps == 0
