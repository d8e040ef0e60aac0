"""Observation encoding: a batch at once equals gymnasium's spaces.flatten of each observation."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, strategies as st

from npgrad.errors import ShapeError, SpaceError
from npgrad.observations import encode, encoded_dim, is_single, observation_batch

leaves = st.one_of(
    st.integers(1, 3).map(lambda n: spaces.Box(-2.0, 2.0, (n,), dtype=np.float64)),
    st.tuples(st.integers(1, 5), st.integers(-2, 2)).map(lambda ns: spaces.Discrete(ns[0], start=ns[1])),
    st.lists(st.integers(1, 4), min_size=1, max_size=3).map(spaces.MultiDiscrete),
    st.integers(1, 4).map(spaces.MultiBinary),
)
observation_spaces = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3).map(lambda ps: spaces.Tuple(ps)),
                                    st.lists(inner, min_size=1, max_size=3).map(
                                        lambda ps: spaces.Dict({f"k{i}": p for i, p in enumerate(ps)}))),
    max_leaves=5)


@given(observation_spaces, st.integers(1, 4), st.integers(0, 2**16))
def test_a_batch_encodes_as_gymnasiums_flatten_of_each_observation(space, n, seed):
    space.seed(seed)
    batch_space = gym.vector.utils.batch_space(space, n)
    samples = [space.sample() for _ in range(n)]
    batch = gym.vector.utils.concatenate(space, samples, gym.vector.utils.create_empty_array(space, n))
    assert batch_space.contains(batch), "the batch is laid out as a vector env returns it"
    x_no = encode(space, batch)
    assert x_no.shape == (n, encoded_dim(space)) == (n, spaces.flatdim(space)), f"encoded shape, {space}"
    for i, obs in enumerate(samples):
        np.testing.assert_allclose(x_no[i], spaces.flatten(space, obs), rtol=0, atol=1e-12,
                                   err_msg=f"row {i} of {space}")
    assert not is_single(space, batch) and is_single(space, samples[0]), f"one observation or a batch, {space}"


def test_discrete_observations_are_one_hot_from_their_start():
    np.testing.assert_array_equal(encode(spaces.Discrete(3, start=-1), np.array([-1, 1])), [[1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("space, obs, problem", [
    (spaces.Discrete(3), np.array([3]), r"Discrete\(3\) observation must be integers in 0..2, got \[3\]"),
    (spaces.Discrete(3), np.array([0.5]), r"integers in 0..2, got \[0.5\]"),
    (spaces.Discrete(4, start=1), np.array([5]), r"integers in 1..4, got \[5\]"),  # the value the env gave
    (spaces.MultiDiscrete([2, 2]), np.array([[0, 2]]), r"entry 1 of a MultiDiscrete\(\[2 2\]\) .* in 0..1, got \[2\]"),
    (spaces.MultiDiscrete([2, 3], start=[10, 20]), np.array([[10, 19]]), r"entry 1 .* in 20..22, got \[19\]"),
])
def test_an_observation_outside_its_space_is_named(space, obs, problem):
    with pytest.raises(ShapeError, match=problem):
        encode(space, obs)


DICT = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "mode": spaces.Discrete(3)})


@pytest.mark.parametrize("space, obs, problem", [
    (DICT, {"pos": np.zeros(3), "mode": 1}, r"the observation\['pos'\] has shape \(3,\), not \(2,\)"),
    (DICT, {"pos": np.zeros(2), "mode": 7}, r"the observation\['mode'\], 7, is not in Discrete\(3\)"),
    (DICT, {"pos": np.zeros(2)}, r"a dict with the keys \['mode', 'pos'\]; missing \['mode'\]"),
    (DICT, np.zeros(3), r"missing \['mode', 'pos'\]"),
    (DICT, {"pos": np.zeros((3, 2)), "mode": np.array([0, 1])}, r"hold different numbers of rows: \[2, 3\]"),
    (spaces.Tuple([spaces.Discrete(2), spaces.Box(-1, 1, (1,))]), [1], "a tuple of 2 parts"),
    (spaces.MultiBinary(3), np.array([2, 0, 1]), r"array\(\[2, 0, 1\]\), is not in MultiBinary\(3\)"),
    (spaces.MultiBinary(3), np.array([[1, 0, -5]]), "holds 0s and 1s only"),
    (spaces.Discrete(16), 5.0, r"the observation, 5.0, is not in Discrete\(16\)"),
    (spaces.Box(-1, 1, (4,)), (np.zeros(4), {}), r"an \(observation, info\) pair, as env.reset\(\) returns it"),
])
def test_predict_names_what_is_wrong_with_a_structured_observation(space, obs, problem):
    tuple_of_arrays = spaces.Tuple([spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (2,))])  # gymnasium's contains takes
    assert observation_batch(np.zeros((2, 2)), tuple_of_arrays)[0].shape == (1, 4)     # an array for a Tuple too
    assert observation_batch(np.zeros((2, 5, 2)), tuple_of_arrays)[0].shape == (5, 4)
    with pytest.raises(ShapeError, match=problem):
        observation_batch(obs, space)
    if isinstance(space, spaces.Dict):  # and a valid one, in float64 where the Box is float32, is taken
        assert observation_batch({"pos": np.zeros(2), "mode": 1}, space)[0].shape == (1, 5)


@pytest.mark.parametrize("space", [spaces.Box(0, 255, (8, 8, 3)), spaces.Text(4),
                                   spaces.Dict({"image": spaces.Box(0, 1, (4, 4))}), spaces.Box(0, 1, (0,)),
                                   spaces.Dict({"x": spaces.Box(0, 1, (2,)), "empty": spaces.Box(0, 1, (0,))}),
                                   spaces.Dict(), spaces.Tuple(())])
def test_images_and_other_spaces_are_refused_by_name(space):
    with pytest.raises(SpaceError, match=f"observation space {type(space).__name__}"):
        encoded_dim(space)


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_a_multibinary_observation_holds_0s_and_1s_only(value):
    with pytest.raises(ShapeError, match="holds 0s and 1s only"):
        encode(spaces.MultiBinary(3), np.array([[0, value, 1]]))

