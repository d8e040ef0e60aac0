"""The facade ``npgrad.PPO`` etc.: learning, determinism, save/load, predict, callbacks and per-algorithm options."""
import gymnasium as gym
import numpy as np
import pytest

import npgrad
from npgrad.algos.ppo import adapt_beta
from npgrad.callbacks import Evaluator
from npgrad.errors import ConfigError, SpaceError
from npgrad.solvers import RMSprop
from helpers import rewrite

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
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0],
                                  err_msg=f"{algo}: actions after load")
    np.testing.assert_array_equal(agent.obs_filter.mean, loaded.obs_filter.mean)
    assert loaded.num_steps == agent.num_steps and loaded.config == agent.config


def test_predict_single_and_batch():
    agent = npgrad.PPO("CartPole-v1", seed=0)
    obs = np.zeros((5, 4))
    assert agent.predict(obs, deterministic=True)[0].shape == (5,)
    assert np.ndim(agent.predict(obs[0], deterministic=True)[0]) == 0
    agent = npgrad.TRPO("Pendulum-v1", seed=0)
    assert agent.predict(np.zeros(3), deterministic=True)[0].shape == (1,)
    assert np.all(np.abs(agent.predict(np.zeros((4, 3)), deterministic=False)[0]) <= 2.0), "actions clipped to bounds"
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        agent.predict(np.zeros(4))


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1", "MountainCarContinuous-v0"])
def test_predicted_actions_are_in_the_action_space(env_id):
    """As SB3's: a float32 Box gets float32 actions, so ``action_space.contains`` holds for what ``predict`` gives."""
    env = gym.make(env_id)
    agent = npgrad.PPO(env_id, seed=0)
    for deterministic in (True, False):
        action, _ = agent.predict(env.reset(seed=0)[0], deterministic=deterministic)
        assert env.action_space.contains(action), f"{env_id}: {action!r} not in {env.action_space}"


class StrictActions(gym.Env):
    """A Box of float32 actions that the environment checks as many hand-written ones do."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} not in {self.action_space}"
        self.t += 1
        return self.observation_space.sample(), -float(np.sum(action ** 2)), False, self.t >= 10, {}


@pytest.mark.parametrize("algo, use_sde", [("ppo", False), ("ppo", True), ("trpo", False), ("a2c", True)])
def test_training_and_evaluation_step_with_actions_in_the_action_space(algo, use_sde):
    """As SB3: the environment gets float32 actions for a float32 Box, clipped to it, in training and evaluation."""
    agent = npgrad.ALGOS[algo](gym.vector.SyncVectorEnv([StrictActions] * 2), seed=0, n_steps=64, use_sde=use_sde)
    agent.learn(128)
    assert agent.num_steps == 128 and agent.evaluate(episodes=2, env=gym.vector.SyncVectorEnv([StrictActions])).mean < 0


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_an_integer_box_of_actions_is_refused_by_name(dtype):
    """A Gaussian's samples are real numbers; rounding them into an integer Box would be another policy."""
    env = gym.vector.SyncVectorEnv([lambda: gym.wrappers.TransformAction(
        StrictActions(), lambda a: a, gym.spaces.Box(0, 5, (2,), dtype))])
    with pytest.raises(SpaceError, match=r"action space Box\(0, 5, \(2,\), .*\) holds integers"):
        npgrad.PPO(env, seed=0)


def test_predict_has_sb3s_signature_and_return():
    """``action, state = predict(obs, state=None, episode_start=None, deterministic=False)``, as in SB3."""
    agent = npgrad.PPO("CartPole-v1", seed=0)
    obs = np.random.default_rng(0).standard_normal((2, 4))
    action, state = agent.predict(obs)  # a batch of two unpacks into actions and a state, not into two actions
    assert action.shape == (2,) and state is None
    action, state = agent.predict(obs[0], state=None, episode_start=np.array([True]), deterministic=True)
    assert np.ndim(action) == 0 and state is None
    rng = np.random.default_rng(1)
    sampled = {int(agent.predict(np.zeros(4), rng=rng)[0]) for _ in range(50)}
    assert sampled == {0, 1}, "deterministic=False is the default: an untrained policy samples both actions"


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


@pytest.mark.parametrize("dtype, tol", [("float64", 0.0), ("float32", 1e-6)])
def test_ppo_ratio_is_one_and_kl_zero_before_the_first_step(dtype, tol):
    # float64: exactly. float32: the rollout's 8-row and the update's minibatch matrix products may
    # round differently, so the ratio is 1 to float32 precision
    for objective in ("clip", "kl_penalty"):
        log = []
        npgrad.PPO("CartPole-v1", seed=0, objective=objective, dtype=dtype).learn(256, lambda a, d: log.append(d))
        assert log[0]["first_ratio_deviation"] <= tol and log[0]["first_kl"] <= tol, log[0]


def test_adaptive_kl_rule():
    assert adapt_beta(1.0, 0.001, 0.01) == 0.5, "KL < target / 1.5 halves beta"
    assert adapt_beta(1.0, 0.02, 0.01) == 2.0, "KL > 1.5 target doubles beta"
    assert adapt_beta(1.0, 0.012, 0.01) == 1.0, "KL near target keeps beta"


def test_ppo_kl_penalty_reports_and_adapts_beta():
    log = []
    npgrad.PPO("CartPole-v1", seed=0, objective="kl_penalty", kl_target=1e-7).learn(256, lambda a, d: log.append(d))
    assert log[0]["kl"] > 1.5e-7 and log[0]["beta"] == 2.0, log[0]


@pytest.mark.parametrize("env_id, k", [("CartPole-v1", 5), ("Pendulum-v1", 1)])
def test_trpo_puts_every_kth_transition_into_the_fisher_and_all_into_the_gradient(env_id, k):
    agent = npgrad.TRPO(env_id, seed=0, n_steps=40)
    assert agent.config.fvp_subsample == k, "the tuned default (CartPole 5, otherwise 1)"
    batches, fisher_rows, grad_rows = [], [], []
    update, fvp_operator, objective_grad = agent.rule.update, agent.policy.fvp_operator, agent.policy.objective_grad
    agent.rule.update = lambda model, batch, *args: batches.append(batch) or update(model, batch, *args)
    agent.policy.fvp_operator = lambda obs_no, damping, u_n: fisher_rows.append((obs_no, u_n)) or fvp_operator(
        obs_no, damping, u_n=u_n)
    agent.policy.objective_grad = lambda obs_no, *args: grad_rows.append(obs_no) or objective_grad(obs_no, *args)
    agent.learn(40 * agent.config.n_envs)
    n = len(batches[0].obs_no)
    assert len(fisher_rows[0][0]) == -(-n // k), f"{len(fisher_rows[0][0])} Fisher rows of {n}"
    np.testing.assert_array_equal(fisher_rows[0][0], batches[0].obs_no[::k])
    np.testing.assert_array_equal(fisher_rows[0][1] > 0, batches[0].valid_n[::k])  # reset steps weigh 0
    np.testing.assert_array_equal(grad_rows[0], batches[0].obs_no)


def test_a2c_rmsprop_option_and_annealed_learning_rate():
    agent = npgrad.A2C("CartPole-v1", seed=0, optimizer="rmsprop", anneal_lr=True, lr=1e-3)
    assert all(isinstance(optim, RMSprop) for optim in agent.rule.optims.values()) and len(agent.rule.optims) == 2
    theta0_p = agent.policy.theta.copy()
    lrs = []
    agent.learn(400, callback=lambda a, d: lrs.append(a.rule.optims["pi_optim"].lr))
    assert not np.array_equal(agent.policy.theta, theta0_p)
    assert lrs[0] == 1e-3 and all(b < a for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 1.5e-4, "lr must fall towards 0"


def test_an_env_whose_spaces_are_not_the_agents_is_named(tmp_path):
    from npgrad.callbacks import EvalCallback
    from npgrad.errors import ConfigError

    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    mismatch = r"env: its spaces \(observations Box\(3,\), actions Box\(1,\)\) are not the agent's \(observations " \
               r"Box\(4,\), actions Discrete\(2\)\)"
    with pytest.raises(ConfigError, match=mismatch):
        agent.evaluate(2, env="Pendulum-v1")
    with pytest.raises(ConfigError, match="are not the agent's"):
        agent.learn(256, callback=EvalCallback("Acrobot-v1", eval_freq=128))
    agent.save(tmp_path / "a.npz")
    with pytest.raises(ConfigError, match=r"\(observations Box\(3,\), actions Box\(1,\)\) do not fit the networks saved"):
        npgrad.load(tmp_path / "a.npz", env="Pendulum-v1")


def test_save_and_load_name_what_is_wrong_with_a_path(tmp_path):
    from npgrad.errors import ConfigError, FileFormatError

    agent = npgrad.PPO("CartPole-v1", seed=0)
    assert agent.save(tmp_path / "new" / "folder" / "a.npz") == str(tmp_path / "new" / "folder" / "a.npz")  # as SB3
    for call, error, message in [(lambda: agent.save(tmp_path), ConfigError, "is a folder: give the path of the .npz"),
                                 (lambda: agent.save(5), ConfigError, "must be a str or an os.PathLike, got int"),
                                 (lambda: npgrad.load(5), ConfigError, "must be a str or an os.PathLike, got int"),
                                 (lambda: npgrad.load(tmp_path), FileFormatError, "a folder, not an npgrad file"),
                                 (lambda: agent.save(tmp_path / "u.npz", user={"a": np.zeros(2)}), ConfigError,
                                  "must be plain JSON")]:
        with pytest.raises(error, match=message):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"], "nothing half-written"


def test_agents_and_populations_say_what_they_are():
    assert repr(npgrad.TRPO("CartPole-v1", seed=3)) == "<TRPO on CartPole-v1, seed 3, 0 steps>"
    pop = npgrad.PPO("CartPole-v1", seed=range(4), lr=[1e-3, 3e-3] * 2)
    assert repr(pop) == "<PPO population on CartPole-v1: 4 members, seeds 0-3, lr: [0.001, 0.003], 0 steps>"


def test_sb3s_names_for_learn_load_and_the_step_count(tmp_path):
    from npgrad.errors import ConfigError, FileFormatError

    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    agent.learn(total_timesteps=256)
    assert agent.num_timesteps == agent.num_steps == 256
    for kwargs in ({}, {"total_steps": 128, "total_timesteps": 128}):
        with pytest.raises(ConfigError, match=r"learn needs total_steps \(or SB3's total_timesteps\), once"):
            agent.learn(**kwargs)
    agent.save(tmp_path / "ppo.npz")
    assert npgrad.PPO.load(tmp_path / "ppo.npz").num_steps == 256
    with pytest.raises(FileFormatError, match="holds a ppo agent, not trpo; load it with npgrad.load"):
        npgrad.TRPO.load(tmp_path / "ppo.npz")
    three = agent.evaluate(n_eval_episodes=3)
    assert len(three.returns) == 3 and np.array_equal(three.returns, agent.evaluate(3).returns)
    assert len(agent.evaluate().returns) == 10
    with pytest.raises(ConfigError, match="evaluate takes episodes or SB3's n_eval_episodes, not both"):
        agent.evaluate(3, n_eval_episodes=3)


def test_a_damaged_file_is_its_own_fault_even_with_env_given(tmp_path):
    from npgrad.errors import FileFormatError

    saved = npgrad.PPO("CartPole-v1", seed=0).save(tmp_path / "a.npz")
    rewrite(saved, tmp_path / "cut.npz", lambda a: a.update({"model/policy_theta": a["model/policy_theta"][:-1]}))
    for env in (None, "CartPole-v1"):
        with pytest.raises(FileFormatError, match="declares shape"):
            npgrad.load(tmp_path / "cut.npz", env=env)


class Unbounded(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,))
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,))  # float32, no bounds to clip to

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


def test_predicted_actions_that_overflow_float32_are_an_error():
    from npgrad.errors import ShapeError

    agent = npgrad.PPO(Unbounded(), seed=0, dtype="float64", activation="relu", normalize_obs=False)
    assert np.isfinite(agent.predict(np.ones(3), deterministic=True)[0]).all()
    with pytest.raises(ShapeError, match="predict's actions overflow the action space's float32"):
        agent.predict(np.full(3, 1e300), deterministic=True)  # a float64 action of ~1e297


def test_a_path_without_a_suffix_is_saved_and_loaded_as_npz_as_sb3_does_zip(tmp_path):
    from npgrad.errors import FileFormatError

    agent = npgrad.A2C("CartPole-v1", seed=0, n_envs=2, n_steps=4)
    written = agent.save(tmp_path / "model")
    assert written == str(tmp_path / "model.npz") and sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    for path in (tmp_path / "model", str(tmp_path / "model.npz")):
        np.testing.assert_array_equal(npgrad.A2C.load(path).policy.theta, agent.policy.theta)
    assert agent.save(tmp_path / "model.v2") == str(tmp_path / "model.v2"), "a suffix is kept, whatever it is"
    with pytest.raises(FileFormatError, match="other.npz: no such file"):
        npgrad.load(tmp_path / "other")


def test_evaluate_keeps_each_episodes_length_and_evaluate_policy_answers_as_sb3s():
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    agent.learn(1024)
    result = agent.evaluate(6, env=gym.make_vec("CartPole-v1", num_envs=2))  # 3 episodes each, 2 resets between
    mean, std, returns = result
    assert result[0] == mean and result[-1] is returns and len(result) == 3  # the tuple it was before lengths
    np.testing.assert_array_equal(result.lengths, returns)  # CartPole pays 1 per step; the reset steps are no step
    assert len(set(returns)) > 1, returns
    assert npgrad.evaluate_policy(agent, n_eval_episodes=6) == tuple(agent.evaluate(6))[:2]
    rewards, lengths = npgrad.evaluate_policy(agent, "CartPole-v1", 3, return_episode_rewards=True)
    assert rewards == lengths and all(isinstance(n, int) for n in lengths)
    with pytest.raises(ConfigError, match="evaluate_policy takes an npgrad agent .pop.k. for a population's member k., "
                                          "got Population"):
        npgrad.evaluate_policy(npgrad.PPO("CartPole-v1", seed=[0, 1]))
    agent.evaluate = None  # a bad flag is refused before any episode runs
    with pytest.raises(ConfigError, match="return_episode_rewards must be True or False, got str 'yes'"):
        npgrad.evaluate_policy(agent, return_episode_rewards="yes")


def test_predict_normalises_observations_as_training_does():
    agent = npgrad.PPO("Pendulum-v1", seed=0, n_envs=2, n_steps=64, normalize_obs=True, use_sde=False)
    agent.learn(256)  # the filter has moved from its start
    obs = np.array([[0.5, -0.5, 3.0], [1.0, 0.0, -7.0]])
    action, _ = agent.predict(obs, deterministic=True)
    mean = agent.policy.distribution(agent.obs_filter.normalize(obs)).mode()
    np.testing.assert_array_equal(action, np.clip(mean, -2.0, 2.0).astype(np.float32))
    assert not np.array_equal(action, np.clip(agent.policy.distribution(obs).mode(), -2, 2).astype(np.float32))


@pytest.mark.parametrize("obs, problem", [
    (np.zeros((2, 5)), r"predict expects an observation of shape \(3,\) or a batch of them, got shape \(2, 5\)"),
    (np.array([0.1, np.nan, 0.0]), "non-finite"),
    (np.array([0.1, 1e39, 0.0]), "beyond the 3.4e\\+38 a float32 network can represent"),
])
def test_predict_names_what_is_wrong_with_an_observation(obs, problem):
    from npgrad.errors import ShapeError

    agent = npgrad.PPO("Pendulum-v1", seed=0, normalize_obs=False)
    with pytest.raises(ShapeError, match=problem):
        agent.predict(obs)


def test_restarted_environments_are_seeded_by_the_seed_and_the_steps_trained():
    agent, twin = (npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=16, minibatch_size=32) for _ in range(2))
    agent.restart_envs()
    at_start = agent.rollout.obs_eo.copy()
    agent.learn(32)
    twin.learn(32)
    agent.restart_envs()
    twin.restart_envs()
    assert not np.array_equal(agent.rollout.obs_eo, at_start), "after 32 steps: other starting states"
    np.testing.assert_array_equal(agent.rollout.obs_eo, twin.rollout.obs_eo)


def test_every_callback_sees_every_update_even_after_one_asks_to_stop():
    seen = []
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=16, minibatch_size=32)
    agent.learn(64, callback=[lambda a, info: False, lambda a, info: seen.append(a.num_updates)])
    assert seen == [1]

