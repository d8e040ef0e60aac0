"""Rollout collection (npgrad/rollout.py): episode boundaries, termination vs truncation, reward scaling, seeds."""
import gymnasium as gym
import numpy as np
import pytest

import npgrad
from npgrad.rollout import Rollout
from npgrad.train import estimate

from helpers import Counter


class ValueIsObs:
    """A stand-in value function, V(s) = 10 * s, so bootstrapped targets are easy to compute by hand."""

    def __call__(self, obs_no):
        return 10.0 * obs_no[:, 0]


def test_rollout_respects_termination_truncation_and_resets():
    # env 0 terminates after 3 steps; env 1 is truncated by a time limit of 4 (it would end at 100)
    envs = gym.vector.SyncVectorEnv([lambda: Counter(3), lambda: gym.wrappers.TimeLimit(Counter(100), 4)])
    policy = npgrad.Policy(envs.single_observation_space, envs.single_action_space, (4,), rng=0)
    rollout = Rollout(envs, n_steps=9, seed=0)
    batch = estimate(rollout.collect(policy, np.random.default_rng(0)), ValueIsObs(), gamma=0.5, lam=1.0)
    # every step is a row; reset steps weigh 0: env 0 has 9 - 2 = 7 transitions and env 1 has 9 - 1 = 8
    assert len(batch.obs_no) == 18 and batch.env_steps == 18 and batch.valid_n.sum() == 15
    np.testing.assert_array_equal(batch.u_n, batch.valid_n / 15.0)
    # no transition starts from a final observation: observations are t = 0, 1, 2 (env 0) / 0..3 (env 1)
    assert batch.obs_no[batch.valid_n].max() <= 3.0
    # env 0 ends at t = 2 and 6, env 1 (truncated) at t = 3 and 8
    assert batch.episode_returns == [3.0, 4.0, 3.0, 4.0] and batch.episode_lengths == [3, 4, 3, 4]
    ret = {}  # value targets by (env, obs) for the first episode of each env, lam=1 => discounted returns
    flat_env = np.array([e for t in range(9) for e in range(2)])
    valid = np.ones(18, bool)
    valid[[3 * 2 + 0, 7 * 2 + 0, 4 * 2 + 1]] = False  # env 0 resets at t=3, 7; env 1 at t=4
    np.testing.assert_array_equal(batch.valid_n, valid)
    for (e, o), r in zip(zip(flat_env[valid], batch.obs_no[valid, 0]), batch.ret_n[valid]):
        ret.setdefault((e, o), r)
    # terminated: no bootstrap.  R(s=0) = 1 + .5 + .25
    assert ret[(0, 0.0)] == pytest.approx(1.75) and ret[(0, 2.0)] == pytest.approx(1.0)
    # truncated at t=4: bootstrap from V(final obs = 4) = 40.  R(s=3) = 1 + .5 * 40
    assert ret[(1, 3.0)] == pytest.approx(21.0) and ret[(1, 0.0)] == pytest.approx(1 + .5 + .25 + .125 + .0625 * 40)


def test_reward_scale_is_the_running_std_of_the_discounted_return_over_real_steps():
    # env 0: episodes of 3 steps, env 1: truncated at 4; every reward is 1, gamma 0.5
    envs = gym.vector.SyncVectorEnv([lambda: Counter(3), lambda: gym.wrappers.TimeLimit(Counter(100), 4)])
    policy = npgrad.Policy(envs.single_observation_space, envs.single_action_space, (4,), rng=0)
    reward_filter = npgrad.rollout.RunningMeanStd(1)
    rollout = Rollout(envs, n_steps=9, seed=0, reward_filter=reward_filter, gamma=0.5)
    rollout.collect(policy, np.random.default_rng(0))
    # G = 1, 1.5, 1.75 within each episode; the reset steps after t = 2, 6 (env 0) and 3 (env 1) are not counted
    g = [1, 1.5, 1.75] * 2 + [1] + [1, 1.5, 1.75, 1.875] * 2
    assert reward_filter.count == len(g) == 15
    np.testing.assert_allclose([reward_filter.mean[0], reward_filter.var[0]], [np.mean(g), np.var(g)], rtol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_each_scaled_reward_is_the_reward_over_the_running_std_of_g_then_clipped(sign):
    """VecNormalize's reward: ``clip(r / sqrt(Var[G] + eps), -c, c)``, Var[G] over every G counted so far (this
    step's included, reset steps not). Rewards of +-1 and gamma 0.5, as above: the first step's Var[G] = 0 gives
    +-1e4, clipped to +-10."""
    def counter(term_at, limit=None):
        env = gym.wrappers.TransformReward(Counter(term_at), lambda r: sign * r)
        return gym.wrappers.TimeLimit(env, limit) if limit else env

    envs = gym.vector.SyncVectorEnv([lambda: counter(3), lambda: counter(100, 4)])
    policy = npgrad.Policy(envs.single_observation_space, envs.single_action_space, (4,), rng=0)
    reward_filter = npgrad.rollout.RunningMeanStd(1)
    rollout = Rollout(envs, n_steps=9, seed=0, reward_filter=reward_filter, gamma=0.5, clip_reward=10.0)
    traj = rollout.collect(policy, np.random.default_rng(0))
    g_te = sign * np.array([[1, 1.5, 1.75, np.nan, 1, 1.5, 1.75, np.nan, 1],  # env 0; nan: a reset step
                            [1, 1.5, 1.75, 1.875, np.nan, 1, 1.5, 1.75, 1.875]]).T  # env 1
    np.testing.assert_array_equal(traj.valid_te, ~np.isnan(g_te))
    for t in range(9):
        seen = g_te[: t + 1][~np.isnan(g_te[: t + 1])]
        expected = np.clip(sign / np.sqrt(np.var(seen) + reward_filter.eps), -10.0, 10.0)
        valid = traj.valid_te[t]
        np.testing.assert_allclose(traj.rew_te[t][valid], expected, rtol=1e-12, err_msg=f"step {t}")


def test_observation_filter_learns_the_observations_acted_on_not_the_bootstrap_row():
    # the filter learns each observation the policy acts on (T E of them, a reset step's final observation
    # included) and normalises the bootstrap row after the last step without learning it
    envs = gym.vector.SyncVectorEnv([lambda: Counter(3), lambda: gym.wrappers.TimeLimit(Counter(100), 4)])
    policy = npgrad.Policy(envs.single_observation_space, envs.single_action_space, (4,), rng=0)
    obs_filter = npgrad.rollout.RunningMeanStd(1)
    rollout = Rollout(envs, n_steps=9, obs_filter=obs_filter, seed=0)
    traj = rollout.collect(policy, np.random.default_rng(0))
    # env 0 sees t = 0, 1, 2, then its final observation 3 on the reset step; env 1 sees 0..3, then 4
    seen = [0, 1, 2, 3, 0, 1, 2, 3, 0] + [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert obs_filter.count == len(seen) == 18
    np.testing.assert_allclose([obs_filter.mean[0], obs_filter.var[0]], [np.mean(seen), np.var(seen)], rtol=1e-12)
    # after the last step env 0 is at 1, env 1 (truncated again) at 4: normalised by the filter as it ends
    bootstrap = (np.array([1.0, 4.0]) - np.mean(seen)) / np.sqrt(np.var(seen) + 1e-8)
    np.testing.assert_allclose(traj.obs_teo[-1, :, 0], bootstrap, rtol=1e-12)


def test_training_seeds_k_and_k_plus_1_share_no_starting_state():
    # gymnasium seeds env i with k + i, so env i of seed k would start where env i - 1 of seed k + 1 starts
    starts = [{tuple(o) for o in npgrad.PPO("Pendulum-v1", seed=k).rollout.obs_eo} for k in (5, 6)]
    assert len(starts[0]) == 8 and not starts[0] & starts[1]
    agent = npgrad.PPO("Pendulum-v1", seed=5)
    agent.learn(256)
    agent.restart_envs()  # a restart (after a checkpoint) draws its seed from (seed, num_steps) the same way
    assert not {tuple(o) for o in agent.rollout.obs_eo} & starts[0]


@pytest.mark.parametrize("env_id, overrides", [("CartPole-v1", {"n_steps": 64}),
                                               ("Pendulum-v1", {"n_steps": 256, "normalize_reward": True})])
def test_the_logged_training_return_is_the_mean_of_the_last_100_episodes_as_gymnasium_counts_them(env_id, overrides):
    """``ep_return_mean`` and ``ep_length_mean`` after each update are the means over the latest 100 episodes,
    as gymnasium's RecordEpisodeStatistics keeps them (SB3's ``ep_rew_mean``): of the environment's own rewards,
    not the scaled ones the update learns from; ``episodes`` counts the batch's."""
    envs = gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec(env_id, 4), buffer_length=100)
    agent = npgrad.PPO(envs, seed=0, lr=1e-9, **overrides)  # a policy that stays random: CartPole ends 12 a batch
    rows, before = [], [0]

    def compare(agent, info):
        rows.append((info["ep_return_mean"], np.mean(envs.return_queue), info["ep_length_mean"],
                     np.mean(envs.length_queue), info["episodes"], envs.episode_count - before[0]))
        before[0] = envs.episode_count

    agent.learn(12 * 256 if env_id == "CartPole-v1" else 4 * 1024, callback=compare)
    assert envs.episode_count > (100 if env_id == "CartPole-v1" else 10), "CartPole: the window filled and moved"
    np.testing.assert_allclose(np.array(rows)[:, [0, 2, 4]], np.array(rows)[:, [1, 3, 5]], rtol=1e-12)
    window = list(agent.rollout.recent[0])
    agent.restart_envs()  # as after a checkpoint: unfinished episodes are dropped, finished ones kept
    assert list(agent.rollout.recent[0]) == window and len(window) == min(100, envs.episode_count)

