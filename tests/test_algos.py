"""Learning on tiny budgets, determinism, save/load, and rollouts that respect episode boundaries."""
import gc
import warnings

import gymnasium as gym
import numpy as np
import pytest

import npgrad
import npgrad.envs
from npgrad.errors import ConfigError, NpgradWarning
from npgrad.algos.ppo import adapt_beta
from npgrad.callbacks import Evaluator
from npgrad.rollout import Rollout
from npgrad.train import estimate
from npgrad.solvers import RMSprop

RANDOM_CARTPOLE = 22.0  # mean return of the uniform random policy on CartPole-v1


@pytest.mark.parametrize("algo, steps, threshold", [
    ("ppo", 24_000, 150.0),
    ("trpo", 16_000, 150.0),
    ("a2c", 25_000, 100.0),
    ("vpg", 32_000, 100.0),
    ("npg", 16_000, 80.0),
])
def test_learns_cartpole_far_above_random(algo, steps, threshold):
    # the stochastic policy: an untrained *deterministic* CartPole policy can score 500 by luck
    agent = npgrad.ALGOS[algo]("CartPole-v1", seed=0)
    before = agent.evaluate(10, deterministic=False).mean
    agent.learn(steps)
    after = agent.evaluate(10, deterministic=False).mean
    assert before < 2 * RANDOM_CARTPOLE and after >= threshold, \
        f"{algo}: evaluation return {before:.1f} -> {after:.1f} after {steps} steps (random ~{RANDOM_CARTPOLE})"


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_same_seed_same_numbers(algo, env_id):
    def run(seed):
        log = []
        npgrad.ALGOS[algo](env_id, seed=seed, n_steps=64).learn(3 * 64 * 8, lambda a, d: log.append(d))
        return log

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_equal(a, b, err_msg=f"{algo} {env_id}: same seed gave different diagnostics")  # NaN == NaN
    assert [d["entropy"] for d in a] != [d["entropy"] for d in c], f"{algo} {env_id}: seeds 3 and 4 agree"


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
def test_save_load_round_trip_gives_same_actions(algo, tmp_path):
    agent = npgrad.ALGOS[algo]("Pendulum-v1", seed=1, n_steps=64, normalize_obs=True)
    agent.learn(1024)
    path = agent.save(tmp_path / "agent.npz")
    loaded = npgrad.load(path)
    obs = np.random.default_rng(0).uniform(-1, 1, (20, 3))
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs), err_msg=f"{algo}: actions after load")
    np.testing.assert_array_equal(agent.obs_filter.mean, loaded.obs_filter.mean)
    assert loaded.num_steps == agent.num_steps and loaded.config == agent.config


@pytest.mark.parametrize("dtype, tol", [("float64", 0.0), ("float32", 1e-6)])
def test_ppo_ratio_is_one_and_kl_zero_before_the_first_step(dtype, tol):
    # float64: exactly. float32: the rollout's 8-row and the update's minibatch matrix products may
    # round differently, so the ratio is 1 to float32 precision
    for objective in ("clip", "kl_penalty"):
        log = []
        npgrad.PPO("CartPole-v1", seed=0, objective=objective, dtype=dtype).learn(256, lambda a, d: log.append(d))
        assert log[0]["first_ratio_deviation"] <= tol and log[0]["first_kl"] <= tol, log[0]


@pytest.mark.parametrize("env_id, k", [("CartPole-v1", 5), ("Pendulum-v1", 1)])
def test_trpo_puts_every_kth_transition_into_the_fisher_and_all_into_the_gradient(env_id, k):
    agent = npgrad.TRPO(env_id, seed=0, n_steps=40)
    assert agent.config.fvp_subsample == k, "the tuned default (CartPole 5, otherwise 1)"
    batches, fisher_rows, grad_rows = [], [], []
    update, fvp_operator, surrogate_grad = agent.rule.update, agent.policy.fvp_operator, agent.policy.surrogate_grad
    agent.rule.update = lambda model, batch, *args: batches.append(batch) or update(model, batch, *args)
    agent.policy.fvp_operator = lambda obs_no, damping: fisher_rows.append(obs_no) or fvp_operator(obs_no, damping)
    agent.policy.surrogate_grad = lambda obs_no, *args: grad_rows.append(obs_no) or surrogate_grad(obs_no, *args)
    agent.learn(40 * agent.config.n_envs)
    n = len(batches[0].obs_no)
    assert len(fisher_rows[0]) == -(-n // k), f"{len(fisher_rows[0])} Fisher rows of {n}"
    np.testing.assert_array_equal(fisher_rows[0], batches[0].obs_no[::k])
    np.testing.assert_array_equal(grad_rows[0], batches[0].obs_no)


def test_adaptive_kl_rule():
    assert adapt_beta(1.0, 0.001, 0.01) == 0.5, "KL < target / 1.5 halves beta"
    assert adapt_beta(1.0, 0.02, 0.01) == 2.0, "KL > 1.5 target doubles beta"
    assert adapt_beta(1.0, 0.012, 0.01) == 1.0, "KL near target keeps beta"


def test_ppo_kl_penalty_reports_and_adapts_beta():
    log = []
    npgrad.PPO("CartPole-v1", seed=0, objective="kl_penalty", kl_target=1e-7).learn(256, lambda a, d: log.append(d))
    assert log[0]["kl"] > 1.5e-7 and log[0]["beta"] == 2.0, log[0]


def test_predict_single_and_batch():
    agent = npgrad.PPO("CartPole-v1", seed=0)
    obs = np.zeros((5, 4))
    assert agent.predict(obs).shape == (5,)
    assert np.ndim(agent.predict(obs[0])) == 0
    agent = npgrad.TRPO("Pendulum-v1", seed=0)
    assert agent.predict(np.zeros(3)).shape == (1,)
    assert np.all(np.abs(agent.predict(np.zeros((4, 3)), deterministic=False)) <= 2.0), "actions clipped to bounds"
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        agent.predict(np.zeros(4))


def test_callback_can_stop_learning():
    agent = npgrad.A2C("CartPole-v1", seed=0)
    agent.learn(100_000, lambda a, d: a.num_updates < 3)
    assert agent.num_updates == 3 and agent.num_steps == 3 * 5 * 8


def test_a_list_of_callbacks_each_sees_every_update_and_any_can_stop():
    seen, evaluator = [], Evaluator(every=80, episodes=2)
    agent = npgrad.A2C("CartPole-v1", seed=0)
    agent.learn(100_000, [lambda a, d: seen.append(a.num_updates), evaluator, lambda a, d: a.num_updates < 4])
    assert seen == [1, 2, 3, 4] and [steps for steps, _, _ in evaluator.history] == [80, 160]
    assert evaluator.train_seconds > 0  # its clock was started


class Counter(gym.Env):
    """obs = [t]; reward = 1; terminates after ``term_at`` steps unless the time limit cuts it first."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self, term_at):
        self.term_at, self.t = term_at, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], dtype=np.float32), 1.0, self.t >= self.term_at, False, {}


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
    # each env: its reset steps are dropped, so env 0 keeps 9 - 2 = 7 steps and env 1 keeps 9 - 1 = 8
    assert len(batch.obs_no) == 15 and batch.env_steps == 18
    # no transition starts from a final observation: observations are t = 0, 1, 2 (env 0) / 0..3 (env 1)
    assert batch.obs_no.max() <= 3.0
    # env 0 ends at t = 2 and 6, env 1 (truncated) at t = 3 and 8
    assert batch.episode_returns == [3.0, 4.0, 3.0, 4.0] and batch.episode_lengths == [3, 4, 3, 4]
    ret = {}  # value targets by (env, obs) for the first episode of each env, lam=1 => discounted returns
    flat_env = np.array([e for t in range(9) for e in range(2)])
    valid = np.ones(18, bool)
    valid[[3 * 2 + 0, 7 * 2 + 0, 4 * 2 + 1]] = False  # env 0 resets at t=3, 7; env 1 at t=4
    for (e, o), r in zip(zip(flat_env[valid], batch.obs_no[:, 0]), batch.ret_n):
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


def test_unknown_names_are_refused_with_choices():
    with pytest.raises(ConfigError, match="unknown environment id"):
        npgrad.PPO("NoSuchEnv-v9")
    with pytest.raises(ConfigError, match="valid names"):
        npgrad.PPO("CartPole-v1", learning_rate=1e-3)
    with pytest.raises(ConfigError, match="gamma"):
        npgrad.TRPO("CartPole-v1", gamma=1.5)
    with pytest.raises(ConfigError, match="max_kl"):
        npgrad.TRPO("CartPole-v1", max_kl=0.0)


@pytest.mark.parametrize("call, match", [
    (lambda: npgrad.PPO("CartPole-v1", seed="0"), "seed must be a non-negative integer, got '0'"),
    (lambda: npgrad.PPO("CartPole-v1", seed=-1), "seed must be a non-negative integer, got -1"),
    (lambda: npgrad.PPO("CartPole-v1").learn(1.5e4), "total_steps must be a non-negative integer, got 15000.0"),
    (lambda: npgrad.PPO("CartPole-v1").learn(-1), "total_steps must be a non-negative integer, got -1"),
    (lambda: npgrad.PPO("CartPole-v1").evaluate(episodes=0), "episodes must be a positive integer, got 0"),
    (lambda: npgrad.PPO("CartPole-v1").evaluate(seed=0.5), "seed must be a non-negative integer, got 0.5"),
])
def test_counts_and_seeds_must_be_integers(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


@pytest.mark.parametrize("algo, name, batch", [("ppo", "minibatch_size", 256), ("trpo", "vf_minibatch_size", 1024)])
def test_a_minibatch_larger_than_the_batch_warns_as_sb3_does(algo, name, batch, recwarn):
    npgrad.ALGOS[algo]("CartPole-v1", **{name: batch})  # exactly the batch (16 x 16, 16 x 64): silent
    assert len(recwarn) == 0
    with pytest.warns(NpgradWarning, match=f"{name}={batch + 1} is larger than the batch n_envs \\* n_steps = 16 \\* "):
        npgrad.ALGOS[algo]("CartPole-v1", **{name: batch + 1})


def warnings_of(call):
    """What ``call()`` warns, each message up to its first colon, every repeat kept."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # not "default", which shows a repeated warning once
        call()
    return [str(w.message).split(":")[0] for w in caught]


def test_the_minibatch_warning_is_given_once_about_the_batch_collected(tmp_path):
    # 32 x 8 = 256 transitions: no warning about the 16 x 8 the tuned config would collect
    assert warnings_of(lambda: npgrad.PPO(gym.make_vec("CartPole-v1", num_envs=32), n_steps=8,
                                          minibatch_size=200)) == []
    too_large = "is larger than the batch n_envs * n_steps ="
    assert warnings_of(lambda: npgrad.PPO(gym.make("CartPole-v1"), n_steps=8)) == [
        f"minibatch_size=64 {too_large} 1 * 8 = 8"]
    saved = [f"minibatch_size=300 {too_large} 16 * 16 = 256"]
    assert warnings_of(lambda: npgrad.PPO("CartPole-v1", minibatch_size=300).save(tmp_path / "agent.npz")) == saved
    assert warnings_of(lambda: npgrad.load(tmp_path / "agent.npz")) == saved  # built, and warned of, once


def test_an_env_instance_sets_n_envs_and_keeps_the_tuned_batch(tmp_path):
    single = npgrad.PPO(gym.make("CartPole-v1"))  # tuned 16 x 16
    assert (single.config.n_envs, single.config.n_steps, single.envs.num_envs) == (1, 256, 1)
    vector = npgrad.PPO(gym.make_vec("CartPole-v1", num_envs=5))
    assert (vector.config.n_envs, vector.config.n_steps, vector.envs.num_envs) == (5, 52, 5)  # ceil(256 / 5)
    assert npgrad.PPO(gym.make_vec("CartPole-v1", num_envs=5), n_steps=20).config.n_steps == 20  # given: kept
    with pytest.raises(ConfigError, match="n_envs=4, but the environment instance holds 1"):
        npgrad.PPO(gym.make("CartPole-v1"), n_envs=4)
    vector.save(tmp_path / "agent.npz")  # a saved 5-env agent onto one environment instance
    loaded = npgrad.load(tmp_path / "agent.npz", env=gym.make("CartPole-v1"))
    assert (loaded.config.n_envs, loaded.config.n_steps) == (1, 260)
    np.testing.assert_array_equal(loaded.policy.theta, vector.policy.theta)


class Closable(gym.Wrapper):
    closed = False

    def close(self):
        self.closed = True
        super().close()


def test_evaluate_on_instances_shares_the_episodes_as_sb3_does():
    envs = gym.vector.SyncVectorEnv([lambda: Counter(2), lambda: Counter(10)])  # returns 2 and 10 per episode
    agent = npgrad.PPO(envs, seed=0)
    # each environment runs its share (episodes + e) // 2, not the first 4 to finish (which would all be 2s)
    np.testing.assert_array_equal(agent.evaluate(episodes=4, env=envs).returns, [2, 2, 10, 10])
    np.testing.assert_array_equal(agent.evaluate(episodes=3, env=envs).returns, [2, 10, 10])
    single = Closable(Counter(3))
    np.testing.assert_array_equal(agent.evaluate(episodes=5, env=single).returns, [3] * 5)
    assert not single.closed  # the caller's environment stays open


def test_evaluation_seeds_k_and_k_plus_1_share_no_episode():
    # a deterministic policy's return is a function of the starting state: a shared state shows as a shared return
    agent = npgrad.PPO("Pendulum-v1", seed=0)
    returns_k = [agent.evaluate(episodes=10, seed=k).returns for k in (5, 6, 5)]
    assert not set(returns_k[0]) & set(returns_k[1])  # gymnasium's int seeding would share 9 of the 10
    np.testing.assert_array_equal(returns_k[0], returns_k[2])  # and the same seed gives the same episodes
    envs = npgrad.envs.make_vec_env("CartPole-v1", 10)  # one RNG for all copies: the int seeds it
    assert npgrad.rollout.independent_seeds(envs, 5) == 5


def test_training_seeds_k_and_k_plus_1_share_no_starting_state():
    # gymnasium seeds env i with k + i, so env i of seed k would start where env i - 1 of seed k + 1 starts
    starts = [{tuple(o) for o in npgrad.PPO("Pendulum-v1", seed=k).rollout.obs_eo} for k in (5, 6)]
    assert len(starts[0]) == 8 and not starts[0] & starts[1]
    agent = npgrad.PPO("Pendulum-v1", seed=5)
    agent.learn(256)
    agent.restart_envs()  # a restart (after a checkpoint) draws its seed from (seed, num_steps) the same way
    assert not {tuple(o) for o in agent.rollout.obs_eo} & starts[0]


def test_the_callers_env_stays_open_when_the_agent_is_done_with_it():
    single = Closable(Counter(3))
    agent = npgrad.PPO(single, n_steps=64)
    agent.envs.close()  # closing (or before gymnasium 1.3, garbage-collecting) the agent's wrapper of one
    del agent
    gc.collect()
    assert not single.closed


@pytest.mark.parametrize("own", ["env instance", "vector env"])
def test_evaluating_on_the_training_environments_restarts_them(own):
    agent = npgrad.PPO(gym.make("CartPole-v1") if own == "env instance" else "CartPole-v1", n_steps=64).learn(128)
    env = agent.envs.envs[0] if own == "env instance" else agent.envs
    agent.evaluate(episodes=3, env=env)  # steps them past the rollout's last observations
    state_eo = agent.envs.envs[0].unwrapped.state[None] if own == "env instance" else agent.envs.state.T
    np.testing.assert_allclose(agent.rollout.obs_eo, state_eo, rtol=1e-6)  # the next rollout starts where they are


@pytest.mark.skipif(not hasattr(gym.vector, "AutoresetMode"), reason="gymnasium 1.0 autoresets on the next step only")
def test_a_vector_env_must_autoreset_on_the_next_step():
    same_step = gym.make_vec("Pendulum-v1", 2, vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    with pytest.raises(ConfigError, match="autoresets in SameStep mode; npgrad needs NextStep"):
        npgrad.PPO(same_step)


def test_config_object_plus_overrides():
    config = npgrad.PPO.Config.for_env("CartPole-v1", hidden=(16,))
    agent = npgrad.PPO("CartPole-v1", config=config, lr=5e-4)
    assert agent.config.hidden == (16,) and agent.config.lr == 5e-4 and agent.config.n_steps == 16


def test_a2c_rmsprop_option_and_annealed_learning_rate():
    agent = npgrad.A2C("CartPole-v1", seed=0, optimizer="rmsprop", anneal_lr=True, lr=1e-3)
    assert all(isinstance(optim, RMSprop) for optim in agent.rule.optims.values()) and len(agent.rule.optims) == 2
    theta0_p = agent.policy.theta.copy()
    lrs = []
    agent.learn(400, callback=lambda a, d: lrs.append(a.rule.optims["pi_optim"].lr))
    assert not np.array_equal(agent.policy.theta, theta0_p)
    assert lrs[0] == 1e-3 and all(b < a for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 1.5e-4, "lr must fall towards 0"
