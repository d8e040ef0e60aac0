"""Hyperparameters (npgrad/config.py, npgrad/tuned.py): names, values, warnings, effectless settings, tuned defaults."""
import ast
import dataclasses
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats as sp_stats

import npgrad
from npgrad.config import training_memory
from npgrad.errors import ConfigError, NpgradWarning
from npgrad.rollout import Rollout, RunningMeanStd
from npgrad.tuned import FAMILIES, TUNED, defaults_for, family_of

from helpers import Counter


def test_unknown_names_are_refused_with_choices():
    with pytest.raises(ConfigError, match="unknown environment id"):
        npgrad.PPO("NoSuchEnv-v9")
    with pytest.raises(ConfigError, match="valid names"):
        npgrad.PPO("CartPole-v1", lerning_rate=1e-3)
    with pytest.raises(ConfigError, match="gamma"):
        npgrad.TRPO("CartPole-v1", gamma=1.5)
    with pytest.raises(ConfigError, match="max_kl"):
        npgrad.TRPO("CartPole-v1", max_kl=0.0)


@pytest.mark.parametrize("call, match", [
    (lambda: npgrad.PPO("CartPole-v1", seed="0"), "seed must be a non-negative integer, got '0'"),
    (lambda: npgrad.PPO("CartPole-v1", seed=-1), "seed must be a non-negative integer, got -1"),
    (lambda: npgrad.PPO("CartPole-v1").learn(1.5), "total_steps must be a non-negative integer, got 1.5"),
    (lambda: npgrad.PPO("CartPole-v1").learn(-1), "total_steps must be a non-negative integer, got -1"),
    (lambda: npgrad.PPO("CartPole-v1").evaluate(episodes=0), "episodes must be a positive integer, got 0"),
    (lambda: npgrad.PPO("CartPole-v1").evaluate(seed=0.5), "seed must be a non-negative integer, got 0.5"),
])
def test_counts_and_seeds_must_be_integers(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_a_whole_float_budget_counts_as_its_integer_as_in_sb3():
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=1, n_steps=16, minibatch_size=16)
    agent.learn(3.2e1)
    assert agent.num_steps == 32 and agent.progress.total_steps == 32 and isinstance(agent.progress.total_steps, int)


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


def test_config_object_plus_overrides():
    config = npgrad.PPO.Config.for_env("CartPole-v1", hidden=(16,))
    agent = npgrad.PPO("CartPole-v1", config=config, lr=5e-4)
    assert agent.config.hidden == (16,) and agent.config.lr == 5e-4 and agent.config.n_steps == 16


def config_error(call):
    """The message of the ``ConfigError`` that ``call()`` raises, or None if it raises none."""
    try:
        call()
    except ConfigError as e:
        return str(e)
    return None


@pytest.mark.parametrize("env_id, setting, needs, refused_with, accepted_with", [
    ("CartPole-v1", dict(kl_target=0.02), "objective='kl_penalty'", {}, dict(objective="kl_penalty")),
    ("CartPole-v1", dict(vf_coef=1.0), "shared_trunk=True", {}, dict(shared_trunk=True)),
    ("CartPole-v1", dict(vf_hidden=(32,)), "shared_trunk=False", dict(shared_trunk=True), {}),
    ("CartPole-v1", dict(clip_obs=5.0), "normalize_obs=True", {}, dict(normalize_obs=True)),
    ("CartPole-v1", dict(clip_reward=2.0), "normalize_reward=True", {}, dict(normalize_reward=True)),
    ("Pendulum-v1", dict(sde_sample_freq=8), "use_sde=True", dict(use_sde=False), dict(use_sde=True)),
])
def test_a_setting_without_effect_is_refused_naming_what_it_needs(env_id, setting, needs, refused_with, accepted_with):
    (name, value), = setting.items()
    for build in (npgrad.PPO, npgrad.PPO.Config.for_env):  # the agent, and a config object on its own
        refused = config_error(lambda: build(env_id, **setting, **refused_with))
        assert refused is not None and f"{name}={value!r} has no effect unless {needs}" in refused, \
            f"{build.__qualname__}({env_id!r}, {setting}, {refused_with}) should need {needs}, got: {refused}"
    agent = npgrad.PPO(env_id, **setting, **accepted_with)
    assert getattr(agent.config, name) == value, f"{setting} with {accepted_with}: config has {agent.config}"


@pytest.mark.parametrize("algo, setting", [("ppo", dict(vf_lr=0.123)), ("a2c", dict(vf_epochs=3))])
def test_value_regression_fields_exist_only_where_the_value_is_regressed_on_its_own(algo, setting):
    (name, _), = setting.items()
    message = config_error(lambda: npgrad.ALGOS[algo]("CartPole-v1", **setting))
    assert message is not None and f"unknown hyperparameter(s) [{name!r}]" in message and "valid names" in message, \
        f"{algo} has no value regression of its own, so {name} should be unknown; got: {message}"
    valid = ast.literal_eval(message.split("valid names: ")[1])
    assert name not in valid and "n_steps" in valid, f"{algo}: the valid names listed should leave out {name}: {valid}"


@pytest.mark.parametrize("algo", ["vpg", "npg", "trpo"])
def test_value_regression_fields_are_taken_where_the_value_is_regressed(algo):
    config = npgrad.ALGOS[algo]("CartPole-v1", vf_lr=0.123, vf_epochs=3).config
    assert (config.vf_lr, config.vf_epochs) == (0.123, 3), f"{algo}: vf_lr {config.vf_lr}, vf_epochs {config.vf_epochs}"


@pytest.mark.parametrize("algo, env_id", [(algo, env_id) for algo in sorted(TUNED) for env_id in sorted(TUNED[algo])])
def test_every_tuned_entry_is_a_valid_config_with_a_one_line_why(algo, env_id, recwarn):
    values, why = TUNED[algo][env_id]
    assert algo in npgrad.ALGOS, f"tuned defaults for an unknown algorithm {algo!r}"
    config = npgrad.ALGOS[algo].Config.for_env(env_id)
    config.refuse_ignored(values)  # no tuned field may be one that has no effect
    assert {name: getattr(config, name) for name in values} == values, f"{algo} {env_id}: {config}"
    assert len(recwarn) == 0, f"{algo} {env_id} warns: {[str(w.message) for w in recwarn]}"
    assert isinstance(why, str) and why.strip() and "\n" not in why, f"{algo} {env_id}: why = {why!r}"


def test_the_readme_lists_every_tuned_entry():
    """The README's "Tuned defaults" bullet names each environment with a tuned entry, followed by its algorithms."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    bullet = " ".join(readme.split("- **Tuned defaults**")[1].split("\n- **")[0].split())
    for algo in TUNED:
        for env_id in TUNED[algo]:
            name = env_id.split("-v")[0] if env_id.startswith("Taxi") else env_id  # Taxi-v3 and -v4: "Taxi"
            assert name in bullet, f"the README's tuned defaults leave out {env_id}"
            algos = bullet[bullet.index(name):].split("(", 1)[1].split(")")[0]
            assert algo.upper() in algos or algos == "all five algorithms", \
                f"the README's tuned defaults list {env_id} with ({algos}), not {algo.upper()}"


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
@pytest.mark.parametrize("env_id, family", [("Acrobot-v1", "discrete"), ("MountainCarContinuous-v0", "continuous")])
def test_an_id_without_a_tuned_entry_starts_from_its_familys_defaults_and_says_so(algo, env_id, family, recwarn):
    agent = npgrad.ALGOS[algo](env_id)
    values, why = FAMILIES[family][algo]
    assert {name: getattr(agent.config, name) for name in values} == values, f"{algo} {env_id}: {agent.config}"
    assert agent.defaults_source == f"{family}-control family, no tuned entry for {env_id}: {why}"
    assert npgrad.ALGOS[algo].Config.for_env(env_id) == agent.config
    assert len(recwarn) == 0, f"{algo} {env_id} warns: {[str(w.message) for w in recwarn]}"


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
def test_continuous_control_defaults_normalise_and_start_with_a_sigma_that_clips_few_samples(algo):
    config = npgrad.ALGOS[algo]("MountainCarContinuous-v0").config
    assert config.normalize_obs and config.normalize_reward, f"{algo}: {config}"
    sigma = np.exp(config.log_std_init)
    inside = 2 * sp_stats.norm.cdf(1 / sigma) - 1  # P(|a| <= 1) for a ~ N(0, sigma^2): the rest are clipped
    assert inside >= 0.85, f"{algo}: sigma {sigma:.2f} keeps only {inside:.0%} of the actions inside [-1, 1]"


def test_each_continuous_family_default_is_what_its_one_line_why_says():
    for algo, (values, why) in FAMILIES["continuous"].items():
        assert "sigma 0.61" in why and round(float(np.exp(values["log_std_init"])), 2) == 0.61, algo
    assert "half the KL step" in FAMILIES["continuous"]["npg"][1]
    assert FAMILIES["continuous"]["npg"][0]["max_kl"] == npgrad.NPG.Config().max_kl / 2


def test_a2c_takes_short_n_step_batches_on_any_discrete_id():
    config = npgrad.A2C("Acrobot-v1").config
    assert (config.n_steps, config.lam) == (5, 1.0), f"A2C on an untuned id: {config.n_steps} steps, lam {config.lam}"


def test_the_source_of_the_defaults_names_a_tuned_entry_or_a_given_config():
    assert npgrad.PPO("CartPole-v1").defaults_source == "tuned for CartPole-v1: " + TUNED["ppo"]["CartPole-v1"][1]
    config = npgrad.PPO.Config.for_env("Acrobot-v1", lr=1e-3)
    assert npgrad.PPO("Acrobot-v1", config=config).defaults_source == "the config given"
    assert defaults_for("ppo", gym.make("MountainCarContinuous-v0"))[1].startswith("continuous-control family")
    assert npgrad.PPO(gym.make("Acrobot-v1")).defaults_source.startswith("discrete-control family")


@pytest.mark.parametrize("setting, problem", [
    (dict(n_epochs=0), "n_epochs=0 is invalid: must be a positive integer"),
    (dict(lam=1.2), "lam=1.2 is invalid: must be in [0, 1]"),
    (dict(n_envs=4097), "n_envs"),
])
def test_counts_and_fractions_out_of_range_are_refused(setting, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        npgrad.PPO("CartPole-v1", **setting)
    npgrad.PPO.Config(**{name: {"n_epochs": 1, "lam": 1.0, "n_envs": 4096}[name] for name in setting})  # the edge


def test_the_memory_estimate_counts_each_parameter_six_times():
    """theta, its gradient, two optimiser moments, a trial point and the network's cast, 8 bytes each."""
    config = npgrad.PPO.Config(hidden=(1000, 1000), vf_hidden=(1,), n_envs=1, n_steps=1)
    policy_params = (4 * 1000 + 1000) + (1000 * 1000 + 1000) + (1000 * 2 + 2)  # the policy (4, 1000, 1000, 2) alone
    assert training_memory(config, obs_dim=4, act_dim=2) >= 6 * 8 * policy_params


def test_families_are_read_from_the_action_space_and_ids_from_their_last_part():
    assert [family_of(space) for space in (gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(3),
                                           gym.spaces.MultiDiscrete([2, 3]), gym.spaces.MultiBinary(4))] == \
        ["continuous", "discrete", "discrete", "discrete"]
    assert defaults_for("ppo", "gymnasium:CartPole-v1") == defaults_for("ppo", "CartPole-v1")


def test_clip_obs_reaches_the_observation_filter():
    agent = npgrad.PPO("Pendulum-v1", clip_obs=0.5)  # Pendulum's tuned defaults normalise observations
    assert agent.config.normalize_obs and agent.obs_filter.clip == 0.5, f"obs_filter.clip = {agent.obs_filter.clip}"
    obs_teo = agent.rollout.collect(agent.policy, np.random.default_rng(0)).obs_teo
    assert np.abs(obs_teo).max() == 0.5, f"observations the policy saw reach {np.abs(obs_teo).max()}, not the clip"


class Jackpot(Counter):
    """Rewards 1 for ``term_at - 1`` steps, then 1e6 on the step that terminates the episode."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, 1e6 if terminated else reward, terminated, truncated, info


def test_clip_reward_bounds_the_scaled_rewards_of_the_rollout():
    assert npgrad.PPO("CartPole-v1", normalize_reward=True, clip_reward=2.0).rollout.clip_reward == 2.0, \
        "the agent should hand clip_reward to its Rollout"
    rew = {}
    for clip in (2.0, np.inf):
        envs = gym.vector.SyncVectorEnv([lambda: Jackpot(100)])
        policy = npgrad.Policy(envs.single_observation_space, envs.single_action_space, (4,), rng=0)
        rollout = Rollout(envs, n_steps=100, seed=0, reward_filter=RunningMeanStd(1), gamma=0.99, clip_reward=clip)
        rew[clip] = rollout.collect(policy, np.random.default_rng(0)).rew_te[:, 0]
    # the running std of G includes the jackpot, yet one large return among 100 is ~sqrt(100) = 10 stds out
    assert 9 < rew[np.inf][-1] < 11, f"unclipped, the jackpot should scale to ~10, got {rew[np.inf][-1]}"
    assert np.all(np.abs(rew[2.0]) <= 2.0) and rew[2.0][-1] == 2.0, f"clipped rewards exceed 2: {rew[2.0].max()}"
    np.testing.assert_array_equal(rew[2.0], np.clip(rew[np.inf], -2.0, 2.0),
                                  err_msg="the clip should change only the rewards beyond it")


def test_numpy_scalars_are_accepted_as_python_numbers():
    agent = npgrad.PPO("CartPole-v1", n_steps=np.int64(16), lr=np.float32(1e-3))
    assert type(agent.config.n_steps) is int and type(agent.config.lr) is float, "stored as Python numbers (JSON)"
    assert agent.config.n_steps == 16 and agent.config.lr == pytest.approx(1e-3, rel=1e-6)
    for widths in [(np.int64(32),), np.array([32, 16]), [32, 16]]:  # e.g. widths drawn by a sweep with NumPy
        hidden = npgrad.PPO("CartPole-v1", hidden=widths).config.hidden
        assert hidden == tuple(int(w) for w in widths) and all(type(w) is int for w in hidden)
    for bad in [(True,), (32.0,), (0,)]:
        with pytest.raises(ConfigError, match=r"hidden=.* must be a tuple of positive integers"):
            npgrad.PPO("CartPole-v1", hidden=bad)


def test_another_algorithms_config_is_refused_by_name():
    with pytest.raises(ConfigError, match="config must be a PPOConfig .* got TRPOConfig"):
        npgrad.PPO("CartPole-v1", config=npgrad.TRPO.Config.for_env("CartPole-v1"))


def test_sb3_names_are_accepted_as_aliases_and_a_near_miss_is_named():
    ppo = npgrad.PPO("CartPole-v1", learning_rate=1e-3, batch_size=32, gae_lambda=0.9, normalize_advantage=False)
    assert (ppo.config.lr, ppo.config.minibatch_size, ppo.config.lam, ppo.config.normalize_advantages) == \
        (1e-3, 32, 0.9, False), "SB3's PPO names"
    trpo = npgrad.TRPO("CartPole-v1", target_kl=0.02, learning_rate=3e-3, n_critic_updates=3, cg_max_steps=15)
    assert (trpo.config.max_kl, trpo.config.vf_lr, trpo.config.vf_epochs, trpo.config.cg_iters) == (0.02, 3e-3, 3, 15), \
        "sb3-contrib's TRPO names: its learning_rate is the value function's"
    with pytest.raises(ConfigError, match=r"\['learning_rate'\] and \['lr'\] name the same hyperparameter"):
        npgrad.PPO("CartPole-v1", learning_rate=1e-3, lr=1e-3)
    with pytest.raises(ConfigError, match="n_epoch: did you mean n_epochs"):
        npgrad.PPO("CartPole-v1", n_epoch=3)
    with pytest.raises(ConfigError, match="lerning_rate: did you mean learning_rate"):
        npgrad.A2C("CartPole-v1", lerning_rate=3)


@pytest.mark.parametrize("given, says", [
    (dict(policy_kwargs=dict(net_arch=[32, 32])), r"policy_kwargs: SB3's; its net_arch is hidden=\(64, 64\)"),
    (dict(net_arch=[32, 32]), r"net_arch: SB3's; hidden=\(64, 64\) for the policy"),
    (dict(verbose=1), r"verbose: SB3's; npgrad prints what you ask for"),
    (dict(tensorboard_log="logs"), r"tensorboard_log: SB3's; pass npgrad.logger.Logger"),
    (dict(stats_window_size=50), r"stats_window_size: SB3's; the logged training return averages the latest 100"),
    (dict(learning_rate=lambda progress: 3e-4 * progress), r"must be a finite number; a schedule is anneal_lr=True"),
    (dict(clip_range=lambda progress: 0.2 * progress), r"must be a finite number; a schedule is anneal_clip=True"),
    (dict(seed=None), r"got None: npgrad's runs are always seeded, so the same seed gives the same numbers"),
])
def test_an_sb3_only_setting_says_what_npgrad_takes_instead(given, says):
    with pytest.raises(ConfigError, match=says):
        npgrad.PPO("CartPole-v1", **given)


def test_a_function_for_a_setting_without_a_schedule_gets_no_schedule_hint():
    with pytest.raises(ConfigError, match="must be a finite number") as info:
        npgrad.PPO("CartPole-v1", ent_coef=lambda progress: 0.01 * progress)
    assert "anneal" not in str(info.value)


def test_an_sb3_policy_name_in_place_of_the_environment_says_so():
    with pytest.raises(ConfigError, match=r"'MlpPolicy' is SB3's policy argument: npgrad's agents take the "
                                          r"environment first, as npgrad.PPO\('CartPole-v1'\)"):
        npgrad.PPO("MlpPolicy", "CartPole-v1")


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
def test_every_field_of_every_config_is_documented(algo):
    from npgrad.config import field_docs

    Config = npgrad.ALGOS[algo].Config
    undocumented = [f.name for f in dataclasses.fields(Config) if not field_docs(Config).get(f.name)]
    assert not undocumented, f"{Config.__name__}: fields without a docstring: {undocumented}"
