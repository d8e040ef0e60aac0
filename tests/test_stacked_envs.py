"""Agents' environments stepped together give every agent the episodes it would have alone."""
import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npgrad.envs
from npgrad.envs import make_vec_env, run_episodes, run_episodes_side_by_side
from npgrad.stacked_envs import JoinedCartPoles, OneAfterAnother, stepped_together


def cartpoles(seeds, n_envs, **kwargs):
    envs_s = [gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point", **kwargs)
              for _ in seeds]
    for envs, seed in zip(envs_s, seeds):
        envs.reset(seed=seed)
    return envs_s


def env_state(envs):
    return envs.state.copy(), envs.steps.copy(), envs.prev_done.copy(), envs.np_random.bit_generator.state


@settings(max_examples=15, deadline=None)
@given(seeds=st.lists(st.integers(0, 2 ** 31), min_size=2, max_size=5), n_envs=st.integers(1, 6),
       max_steps=st.integers(1, 30), steps=st.integers(1, 80), act_seed=st.integers(0, 2 ** 31))
def test_joined_cartpoles_step_each_agent_as_alone(seeds, n_envs, max_steps, steps, act_seed):
    """Random actions end episodes by termination and by truncation (``max_episode_steps``), so resets are drawn."""
    joined_s, alone_s = cartpoles(seeds, n_envs, max_episode_steps=max_steps), cartpoles(seeds, n_envs,
                                                                                       max_episode_steps=max_steps)
    together = stepped_together(joined_s)
    assert isinstance(together, JoinedCartPoles)
    rng, everyone = np.random.default_rng(act_seed), list(range(len(seeds)))
    together.gather()
    for _ in range(steps):
        act_se = rng.integers(0, 2, size=(len(seeds), n_envs))
        for joined, envs, act in zip(together.step(act_se, everyone), alone_s, act_se):
            for x, y in zip(joined, envs.step(act)[:4]):
                assert x.dtype == y.dtype and np.array_equal(x, y)
    together.scatter()
    for joined, envs in zip(joined_s, alone_s):
        for x, y in zip(env_state(joined), env_state(envs)):
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


def test_a_reseeded_agent_draws_from_its_new_generator():
    """A run restarts its environments with a seeded reset after each checkpoint, which gives each env a new
    generator; a stack joined before that must draw the next episodes' starts from the new one."""
    joined_s, alone_s = cartpoles([1, 2], 3, max_episode_steps=5), cartpoles([1, 2], 3, max_episode_steps=5)
    together, rng = stepped_together(joined_s), np.random.default_rng(0)
    for restart in range(3):
        together.gather()
        for _ in range(12):  # episodes of 5 steps: every copy resets twice
            act_se = rng.integers(0, 2, size=(2, 3))
            for joined, envs, act in zip(together.step(act_se, [0, 1]), alone_s, act_se):
                assert all(np.array_equal(x, y) for x, y in zip(joined, envs.step(act)[:4])), f"restart {restart}"
        together.scatter()
        for k, (joined, envs) in enumerate(zip(joined_s, alone_s)):  # as Rollout.restart does
            joined.reset(seed=100 * restart + k)
            envs.reset(seed=100 * restart + k)


def test_a_joined_agent_that_has_stopped_does_not_change_the_others():
    joined_s, alone_s = cartpoles([1, 2, 3], 4), cartpoles([1, 2, 3], 4)
    together = stepped_together(joined_s)
    assert isinstance(together, JoinedCartPoles)
    together.gather()
    for _ in range(40):  # agent 1 stopped: the others step as alone
        outcome = together.step([np.ones(4, dtype=np.int64), np.zeros(4, dtype=np.int64)], [0, 2])
        expected = [alone_s[0].step(np.ones(4, dtype=np.int64)), alone_s[2].step(np.zeros(4, dtype=np.int64))]
        for got, want in zip(outcome, expected):
            assert all(np.array_equal(x, y) for x, y in zip(got, want[:4]))


@pytest.mark.parametrize("other, why", [
    (lambda: cartpoles([0], 3)[0], "a different number of copies"),
    (lambda: cartpoles([0], 2, max_episode_steps=50)[0], "a different setting"),
    (lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), "not NumPy-vectorised"),
    (lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point"), "never reset"),
    (lambda: gym.wrappers.vector.RecordEpisodeStatistics(cartpoles([0], 2)[0]), "wrapped"),
])
def test_only_cartpoles_alike_are_joined(other, why):
    assert isinstance(stepped_together(cartpoles([5], 2) + [other()]), OneAfterAnother), why


def test_side_by_side_evaluation_of_joined_agents_is_each_agents_alone(monkeypatch):
    """Agents' episodes end at different steps (different random policies), so the live set shrinks."""
    used = []
    def spy(envs_s):
        used.append(stepped_together(envs_s))
        return used[-1]

    monkeypatch.setattr(npgrad.envs, "stepped_together", spy)
    seeds, episodes = [0, 1, 2], 5
    rngs = [np.random.default_rng(s) for s in range(3)]
    bias = [0.2, 0.5, 0.8]  # how often each agent pushes right: its episodes last differently

    def act(live, obs_s):
        return [(rngs[s].random(len(obs)) < bias[s]).astype(np.int64) for s, obs in zip(live, obs_s)]

    together = run_episodes_side_by_side(act, [make_vec_env("CartPole-v1", 3) for _ in seeds], episodes, seeds)
    rngs = [np.random.default_rng(s) for s in range(3)]
    for s, result in enumerate(together):
        alone = run_episodes(lambda obs: (rngs[s].random(len(obs)) < bias[s]).astype(np.int64),
                             make_vec_env("CartPole-v1", 3), episodes, seeds[s])
        assert np.array_equal(result.returns, alone.returns)
    assert [type(u) for u in used] == [JoinedCartPoles, OneAfterAnother, OneAfterAnother, OneAfterAnother]
