"""MuJoCo smoke tests (the ``mujoco`` extra; skipped without it): PPO and TRPO balance InvertedPendulum-v5."""
import pytest

import npgrad

pytest.importorskip("mujoco", reason="MuJoCo is an optional extra: pip install -e '.[mujoco]'")


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_learns_inverted_pendulum_far_above_its_initial_policy(algo):
    agent = npgrad.ALGOS[algo]("InvertedPendulum-v5", seed=0)
    before = agent.evaluate(10).mean  # the initial policy falls within about 25 steps
    agent.learn(16_384)
    after = agent.evaluate(10).mean
    assert after >= max(100.0, 4 * before), f"{algo}: mean return {before:.1f} before, {after:.1f} after 16k steps"


@pytest.mark.parametrize("algo", sorted(npgrad.ALGOS))
def test_an_untuned_mujoco_id_gets_the_continuous_family_with_observation_normalisation(algo):
    agent = npgrad.ALGOS[algo]("Walker2d-v5")  # no tuned entry: the continuous-control family's defaults
    assert agent.defaults_source.startswith("continuous-control family, no tuned entry for Walker2d-v5: ")
    assert agent.config.normalize_obs and agent.config.normalize_reward, f"{algo}: {agent.config}"
    assert agent.obs_filter is not None, f"{algo}: observations are not normalised"


@pytest.mark.parametrize("algo, env_id, changed", [
    ("ppo", "Swimmer-v5", dict(gamma=0.9999, n_envs=4, n_steps=1024, minibatch_size=256, lr=6e-4, lam=0.98)),
    ("ppo", "InvertedPendulum-v5", dict(n_steps=128)),
    ("ppo", "InvertedDoublePendulum-v5", dict(n_steps=512)),
    ("ppo", "Hopper-v5", dict(lr=1e-4)),
    ("ppo", "HalfCheetah-v5", dict(log_std_init=-1.0, n_steps=64, anneal_lr=True)),
    ("trpo", "Swimmer-v5", dict(gamma=0.9999, log_std_init=0.0)),
    ("trpo", "InvertedDoublePendulum-v5", dict(n_steps=512, anneal_kl=True)),
    ("trpo", "Hopper-v5", dict(max_kl=0.03)),
    ("trpo", "HalfCheetah-v5", dict(log_std_init=-1.0))])
def test_a_tuned_mujoco_entry_is_the_continuous_family_with_only_its_own_changes(algo, env_id, changed):
    """The tuned entry is all the defaults an id gets, so each must repeat the family's fields it keeps
    (normalised observations and rewards, sigma 0.61) and change only its own, to its values."""
    agent = npgrad.ALGOS[algo](env_id)
    family = npgrad.ALGOS[algo]("Walker2d-v5").config
    assert agent.defaults_source.startswith(f"tuned for {env_id}: "), agent.defaults_source
    assert family.gamma == 0.99, family.gamma
    differs = {f: getattr(agent.config, f) for f in vars(family) if getattr(agent.config, f) != getattr(family, f)}
    assert differs == changed, f"{algo}: {env_id}'s entry differs from the family in {differs}"
