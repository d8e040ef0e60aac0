"""Populations (npgrad/population.py): a member is exactly its solo run; settings reach the right member; one
member's failure changes no other; files round-trip; the aggregate is the IQM and bootstrap interval by hand;
the command line writes a population run folder and resumes it."""
import concurrent.futures
import csv
import json
import os
import shutil
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
import scipy.stats

import npgrad
from npgrad.callbacks import Evaluator
from npgrad.cli import main
from npgrad.errors import ConfigError, FileFormatError, NpgradError
from npgrad import population
from npgrad.population import Population, aggregate_curves, load_population, member_settings, per_member_fields
from npgrad.runs import eval_curve
from helpers import CopyBits, MatchTargets

TINY = {"n_envs": 2, "n_steps": 64}  # a batch of 128: the default value minibatch
STEPS, EVERY = 512, 256
CONFIGS = {"vpg": {}, "npg": {}, "trpo": {}, "trpo-anneal": {"anneal_kl": True}, "ppo": {},
           "ppo-kl": {"objective": "kl_penalty"}, "a2c": {}, "ppo-early-stop": {"target_kl": 0.002},
           "ppo-shared": {"shared_trunk": True, "clip_range_vf": 0.2}, "a2c-rmsprop": {"optimizer": "rmsprop"},
           "npg-cg": {"fisher": "cg"}}


def solo(algo, seed, steps=STEPS, eval_every=EVERY, env="CartPole-v1", **overrides):
    """The agent ``npgrad.ALGO(env, seed)`` trains alone, with the evaluations a population member gets."""
    agent = npgrad.ALGOS[algo](env, seed=seed, **TINY, **overrides)
    evaluator = Evaluator(eval_every, 3)
    agent.learn(steps, callback=[evaluator])
    return agent, [list(row) for row in evaluator.history]


BITWISE = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
"""With NumPy 1.x some stacked operation rounds a member's value network differently in its last bit (seen on the
1.23 floor, A2C with 16-row batches), so there the states are compared to 1e-12; NumPy 2 gives every bit."""


def same(x, y):
    return np.array_equal(x, y) if BITWISE else np.allclose(x, y, rtol=1e-12, atol=1e-15)


def same_state(a, b):
    (arrays_a, meta_a), (arrays_b, meta_b) = a.state(), b.state()
    return (arrays_a.keys() == arrays_b.keys() and all(same(arrays_a[k], arrays_b[k]) for k in arrays_a)
            and meta_a["progress"] == meta_b["progress"] and meta_a["rng_state"] == meta_b["rng_state"])


def returns_of(evaluation):
    return [row[2] for row in evaluation["history"]]


@pytest.mark.parametrize("name", CONFIGS)
def test_a_member_is_its_solo_run(name):
    """Three members trained as one stack (one worker: parameters (3, p), one forward and one update for all) end
    bit for bit as each alone: parameters, optimiser moments, filters, counters, generator, evaluations."""
    algo, overrides = name.split("-")[0], CONFIGS[name]
    pop = npgrad.ALGOS[algo]("CartPole-v1", seed=[3, 5, 8], **TINY, **overrides)
    assert isinstance(pop, Population) and pop.seeds == [3, 5, 8]
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=1)
    for k, seed in enumerate([3, 5, 8]):
        agent, history = solo(algo, seed, **overrides)
        assert same_state(pop[k], agent)
        assert returns_of(pop.evaluations[k]) == [row[2] for row in history]
        assert [row[0] for row in pop.evaluations[k]["history"]] == [EVERY, 2 * EVERY]


@pytest.mark.parametrize("env_cls", [MatchTargets, CopyBits])
@pytest.mark.parametrize("algo", ["vpg", "npg", "trpo", "ppo", "a2c"])
def test_a_member_with_multidiscrete_or_multibinary_actions_is_its_solo_run(algo, env_cls):
    """Factored actions (independent categoricals, Bernoullis): each factor's draws come from each member's own
    generator, as alone."""
    env_id = f"NpgradTest/{env_cls.__name__}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=env_cls)
    pop = npgrad.ALGOS[algo](env_id, seed=[0, 1], **TINY)
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=1)
    for k in range(2):
        agent, history = solo(algo, k, env=env_id)
        assert same_state(pop[k], agent) and returns_of(pop.evaluations[k]) == [row[2] for row in history]


@pytest.mark.parametrize("algo", ["ppo", "trpo", "a2c"])
def test_a_gaussian_member_with_normalisation_is_its_solo_run(algo):
    """Pendulum's defaults: gSDE (exploration matrices drawn per member), observation and reward filters."""
    pop = npgrad.ALGOS[algo]("Pendulum-v1", seed=[0, 1], **TINY)
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=1)
    assert pop[0].config.use_sde and pop[0].config.normalize_obs and pop[0].config.normalize_reward
    for k in range(2):
        agent, history = solo(algo, k, eval_every=EVERY, env="Pendulum-v1")
        assert same_state(pop[k], agent) and returns_of(pop.evaluations[k]) == [row[2] for row in history]


def test_workers_do_not_change_the_result_and_a_second_learn_call_restarts_the_environments():
    here, there = (npgrad.PPO("CartPole-v1", seed=range(3), **TINY) for _ in range(2))
    here.learn(STEPS, workers=1)
    there.learn(STEPS, workers=2)
    assert all(same_state(a, b) for a, b in zip(here, there))
    here.learn(EVERY, workers=1)
    there.learn(EVERY, workers=3)
    assert all(same_state(a, b) for a, b in zip(here, there))
    agent = npgrad.PPO("CartPole-v1", seed=2, **TINY)  # the documented equivalent: a resumed solo run
    agent.learn(STEPS)
    agent.restart_envs()
    agent.learn(EVERY)
    assert same_state(agent, here[2])


@pytest.mark.parametrize("env, overrides", [("CartPole-v1", {"lr": [1e-2, 3e-3, 1e-3]}),
                                             ("Pendulum-v1", {"clip_obs": [10.0, 0.5, 2.0]})])
@pytest.mark.parametrize("deterministic", [True, False])
def test_a_stack_evaluates_each_member_as_it_would_alone(env, overrides, deterministic):
    """One forward for all members per step gives each member the episodes ``evaluate`` gives it alone: sampled
    actions from its own generator, its own observation filter and clip, members leaving as their episodes end."""
    pop = npgrad.PPO(env, seed=[0, 1, 2], **TINY, **overrides)
    pop.learn(STEPS, workers=1)
    policy = population.stacked_model(pop.members).policy
    together = population.evaluate_stack(pop.members, policy, 3, deterministic)
    alone = [agent.evaluate(3, deterministic=deterministic) for agent in pop.members]
    assert all(same(a.returns, b.returns) and same(a.lengths, b.lengths) for a, b in zip(together, alone))
    if env == "CartPole-v1":  # a return is an episode's length: members finish at different steps, the stack shrinks
        assert len({max(r.returns) for r in alone}) > 1, alone


def test_members_training_seconds_are_the_stacks_and_leave_out_every_evaluation(monkeypatch):
    evaluate_stack = npgrad.population.evaluate_stack

    def slow_evaluate_stack(agents, *args, **kwargs):  # the stack evaluates its members together: 0.02 s each
        time.sleep(0.02 * len(agents))
        return evaluate_stack(agents, *args, **kwargs)

    monkeypatch.setattr(npgrad.population, "evaluate_stack", slow_evaluate_stack)
    pop = npgrad.PPO("CartPole-v1", seed=range(4))
    start = time.perf_counter()
    pop.learn(2048, eval_every=512, eval_episodes=1, workers=1)
    wall = time.perf_counter() - start
    seconds = [e["history"][-1][1] for e in pop.evaluations]
    evaluations = sum(len(e["history"]) for e in pop.evaluations)
    assert evaluations == 16 and max(seconds) - min(seconds) < 0.01, f"{evaluations} evaluations; seconds {seconds}"
    assert max(seconds) < wall - 0.02 * evaluations, f"training seconds {seconds} count evaluations (wall {wall:.2f} s)"


def test_per_member_settings_reach_their_member():
    pop = npgrad.PPO("CartPole-v1", seed=[0, 0, 1], lr=[1e-3, 3e-3, 1e-3], ent_coef=[0.0, 0.01, 0.02], **TINY)
    assert [m.config.lr for m in pop] == [1e-3, 3e-3, 1e-3]
    assert [m.config.ent_coef for m in pop] == [0.0, 0.01, 0.02]
    assert pop.varied() == ["lr", "ent_coef"] and pop.settings(1) == {"lr": 3e-3, "ent_coef": 0.01}
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=1)  # one stack: lr and ent_coef are (3,) arrays
    agent, _ = solo("ppo", 0, lr=3e-3, ent_coef=0.01)
    assert same_state(pop[1], agent)
    assert not np.array_equal(pop[0].policy.theta, pop[1].policy.theta)  # same seed, other settings
    sweep = npgrad.A2C("CartPole-v1", seed=7, gamma=[0.9, 0.99], **TINY)  # one seed, a list: a sweep on that seed
    assert sweep.seeds == [7, 7] and [m.config.gamma for m in sweep] == [0.9, 0.99]


def every_number_varied(Config, env_id, **structure):
    """Two members' settings: the defaults, and every number of the update the config uses changed."""
    config = Config.for_env(env_id, **structure)
    lists = {}
    for name in sorted(per_member_fields(Config)):
        other, needed = Config.REQUIRES.get(name, (None, None))
        if other is None or getattr(config, other) == needed:
            value = getattr(config, name)
            lists[name] = [value, 0.8 * value if value > 0 else 0.01]
    return {**structure, **lists}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("algo, structure", [("vpg", {}), ("npg", {}), ("npg", {"fisher": "cg"}), ("trpo", {}),
                                             ("ppo", {}), ("ppo", {"objective": "kl_penalty"}),
                                             ("ppo", {"shared_trunk": True}), ("a2c", {})])
def test_every_number_of_the_update_reaches_its_member(algo, structure, env_id):
    """A member whose every per-member number differs from its neighbour's (learning rates, max KL, damping, clip
    ranges, coefficients, gamma, lambda, filters' clips, ...) trains as it would alone with them."""
    settings = every_number_varied(npgrad.ALGOS[algo].Config, env_id, **structure)
    pop = npgrad.ALGOS[algo](env_id, seed=[3, 3], **TINY, **settings)
    assert len(pop.varied()) == len(settings) - len(structure) >= 5, pop.varied()
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=1)
    for k in range(2):
        agent, history = solo(algo, 3, env=env_id, **{n: v[k] if n in pop.varied() else v for n, v in settings.items()})
        assert same_state(pop[k], agent), f"member {k}: {pop.settings(k)}"
        assert returns_of(pop.evaluations[k]) == [row[2] for row in history]


@pytest.mark.parametrize("algo, poison", [("ppo", {"lr": [3e-4, 1e30]}), ("a2c", {"lr": [7e-4, 1e30]}),
                                           ("vpg", {"vf_lr": [1e-3, 1e30]}), ("trpo", {"vf_lr": [1e-3, 1e30]})])
def test_a_poisoned_member_fails_alone(algo, poison):
    """An absurd learning rate makes member 1's updates diverge (non-finite steps, then a value function beyond
    regression, whose batches are refused); in the same stack as member 0, it keeps its last good parameters and
    says so, and member 0 is still exactly its solo run."""
    pop = npgrad.ALGOS[algo]("CartPole-v1", seed=[4, 4], **poison, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the poisoned member's overflows
        pop.learn(4 * STEPS, eval_every=EVERY, eval_episodes=3, workers=1)
    agent, history = solo(algo, 4, steps=4 * STEPS, **{name: values[0] for name, values in poison.items()})
    assert same_state(pop[0], agent) and returns_of(pop.evaluations[0]) == [row[2] for row in history]
    assert pop[1].progress.failed_updates > 0 and np.all(np.isfinite(pop[1].policy.theta))
    assert np.all(np.isfinite(pop[1].value_fn.theta))


@pytest.mark.parametrize("algo", ["vpg", "npg", "trpo", "ppo", "a2c"])
def test_a_refused_member_keeps_its_parameters_optimiser_and_generator_as_alone(monkeypatch, algo):
    """Member 1's second batch is refused (as one no update can trust would be): the stack updates member 0 and puts
    member 1's parameters, optimiser state and generator back, which is what a refused batch does to it alone."""
    usable, refuse_alone, calls = npgrad.train.unusable, [False], []

    def refuse_the_second(batch, dtype):
        why = usable(batch, dtype)
        calls.append(batch)
        if len(calls) != 2:
            return why
        return ("refused here" if refuse_alone[0] else why) if batch.valid_n.ndim == 1 else np.array(
            [why[0], "refused here"], dtype=object)

    monkeypatch.setattr(npgrad.train, "unusable", refuse_the_second)
    pop = npgrad.ALGOS[algo]("CartPole-v1", seed=[3, 4], **TINY)
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=1)
    assert pop[1].progress.failed_updates == 1 and pop[0].progress.failed_updates == 0
    for k, seed in enumerate([3, 4]):
        calls.clear()
        refuse_alone[0] = k == 1
        agent, history = solo(algo, seed)
        assert same_state(pop[k], agent) and returns_of(pop.evaluations[k]) == [row[2] for row in history]


def test_a_chunk_that_raises_does_not_stop_the_others(monkeypatch):
    """An exception (say, an environment that raises) stops the stack it happens in: with three workers each member
    is its own stack, so the other two train."""
    pop = npgrad.PPO("CartPole-v1", seed=[0, 1, 2], **TINY)
    original = population.train_stack

    def train_stack(agents, *args):  # noqa: F811
        if any(agent.seed == 1 for agent in agents):
            raise ValueError("member one is broken")
        return original(agents, *args)

    monkeypatch.setattr(population, "train_stack", train_stack)  # forked workers inherit it
    with pytest.raises(NpgradError, match=r"1 of 3 members failed .*member 1 \(seed 1\): ValueError: member one"):
        pop.learn(STEPS, workers=3)
    assert pop[0].num_steps == pop[2].num_steps == STEPS and pop[1].num_steps == 0


def test_save_and_load_round_trip(tmp_path):
    pop = npgrad.TRPO("CartPole-v1", seed=[0, 1], max_kl=[0.01, 0.02], **TINY)
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=2)
    pop.save(tmp_path / "pop")
    back = load_population(tmp_path / "pop")
    assert len(back) == 2 and back.varied() == ["max_kl"]
    assert all(same_state(a, b) for a, b in zip(pop, back)) and back.evaluations == pop.evaluations
    assert npgrad.load(tmp_path / "pop" / "member-001.npz").config.max_kl == 0.02  # each member loads alone
    back.learn(EVERY, workers=1)
    pop.learn(EVERY, workers=1)
    assert all(same_state(a, b) for a, b in zip(pop, back))


def test_a_population_index_that_is_not_one_is_refused(tmp_path):
    (tmp_path / "population.json").write_text("[1, 2]")
    with pytest.raises(FileFormatError, match="must be a population index with format 'npgrad-population', got"):
        load_population(tmp_path)


@pytest.mark.parametrize("members, problem", [
    (["../../elsewhere.npz"], "member-NNN.npz"), ([], "non-empty list"), ("member-000.npz", "non-empty list")])
def test_a_population_index_names_only_its_own_member_files(tmp_path, members, problem):
    npgrad.PPO("CartPole-v1", seed=[0], **TINY).save(tmp_path)
    index = json.loads((tmp_path / "population.json").read_text())
    (tmp_path / "population.json").write_text(json.dumps({**index, "members": members}))
    with pytest.raises(FileFormatError, match=problem):
        load_population(tmp_path)


@pytest.mark.parametrize("member_dir", ["../escaped", "member-001/../../escaped", "/tmp/member-001", 3])
def test_a_population_run_index_names_only_member_folders_inside_it(tmp_path, capsys, member_dir):
    from npgrad import population_runs

    index = {"format": population_runs.FORMAT, "algo": "ppo", "env_id": "CartPole-v1", "steps": 512, "set": [],
             "config": None, "checkpoint_every": 256, "eval_every": 0, "eval_episodes": 1,
             "members": [{"dir": "member-000", "seed": 0, "set": []}, {"dir": member_dir, "seed": 1, "set": []}]}
    (tmp_path / "pop").mkdir()
    (tmp_path / "pop" / "population.json").write_text(json.dumps(index))
    assert main(["train", "--resume", str(tmp_path / "pop"), "--quiet"]) == 2
    assert f"a member's dir must be member-NNN, got {member_dir!r}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop"] and os.listdir(tmp_path / "pop") == ["population.json"]


def test_the_aggregate_is_the_iqm_and_percentile_bootstrap_by_hand():
    returns_rk = np.array([[10.0, 100], [20, 200], [30, 300], [40, 400], [50, 500], [60, 600], [70, 700], [1000, 0]])
    curve = aggregate_curves([5, 10], returns_rk)
    # 8 runs: the IQM drops the 2 lowest and 2 highest of each column and averages the middle 4
    assert curve.iqm == pytest.approx([(30 + 40 + 50 + 60) / 4, (200 + 300 + 400 + 500) / 4], rel=1e-12, abs=0)
    assert curve.median == pytest.approx([45, 350], rel=1e-12, abs=0) and curve.members == 8
    for k in range(2):
        ci = scipy.stats.bootstrap((returns_rk[:, k],), lambda x, axis: scipy.stats.trim_mean(x, 0.25, axis=axis),
                                   n_resamples=10_000, method="percentile", confidence_level=0.95,
                                   random_state=np.random.default_rng(0)).confidence_interval
        assert (curve.low[k], curve.high[k]) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=0)
        assert curve.low[k] <= curve.iqm[k] <= curve.high[k]
    skewed = aggregate_curves([1], [[0.0], [0], [0], [1], [1], [1], [1], [100]])
    assert (skewed.median[0], skewed.iqm[0]) == (1.0, 0.75), "the median is not the IQM: 1 and (0 + 1 + 1 + 1) / 4"
    same = aggregate_curves([1], [[7.0]] * 5)
    assert (same.iqm[0], same.low[0], same.high[0]) == (7.0, 7.0, 7.0)


def test_a_callback_given_to_a_populations_learn_says_what_to_use_instead():
    pop = npgrad.PPO("CartPole-v1", seed=[0, 1], **TINY)
    with pytest.raises(ConfigError, match=r"a population's learn takes no callback .* evaluate with eval_every="):
        pop.learn(STEPS, callback=lambda agent, info: True)
    assert [m.num_steps for m in pop] == [0, 0]


def test_population_learning_curves_pool_members_of_one_setting():
    pop = npgrad.PPO("CartPole-v1", seed=[0, 1, 0, 1], lr=[1e-3, 1e-3, 3e-3, 3e-3], **TINY)
    with pytest.raises(ConfigError, match="no member has been evaluated yet: learn with eval_every"):
        pop.aggregate()
    pop.learn(STEPS, eval_every=EVERY, eval_episodes=3, workers=2)
    curves = pop.aggregate()
    assert sorted(curves) == ["lr=0.001", "lr=0.003"]
    by_hand = aggregate_curves([EVERY, 2 * EVERY], [returns_of(pop.evaluations[k]) for k in (2, 3)])
    assert np.array_equal(curves["lr=0.003"].iqm, by_hand.iqm) and curves["lr=0.003"].members == 2
    half = pop[2:]  # a slice is a population of the same members, with their evaluations
    assert isinstance(half, Population) and half[0] is pop[2] and half.seeds == [0, 1]
    assert np.array_equal(half.aggregate()["all"].iqm, by_hand.iqm)
    with pytest.raises(IndexError, match=r"\[4:\] selects no member of a population of 4"):
        pop[4:]


@pytest.mark.parametrize("seed, overrides, problem", [
    ([0, 1, 2], {"lr": [1e-3, 3e-3]}, "must have one length; got seed: 3, lr: 2"),
    ([0, 1], {"n_steps": [32, 64]}, "n_steps is shared by every member of a population"),
    ([0, 1], {"hidden": [[32], [64]]}, "hidden is shared by every member"),
    ([], {}, "needs at least one member; seed is empty"),
    (0, {"lr": []}, "needs at least one member; lr is empty"),
    ([0, 1], {"lrr": [1e-3, 3e-3]}, "unknown hyperparameter"),
    ([0, -1], {}, "seed must be a non-negative integer"),
    ([0, 1], {"lr": [1e-3, -1.0]}, "lr=-1.0 is invalid"),
])
def test_bad_populations_are_refused_by_name(seed, overrides, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
        npgrad.PPO("CartPole-v1", seed=seed, **overrides)


def test_a_population_beyond_memory_is_refused_before_anything_is_built():
    with pytest.raises(ConfigError, match="a population of 100,000 members .* GiB of memory"):
        npgrad.PPO("CartPole-v1", seed=range(100_000), hidden=(1024, 1024))


def test_one_value_of_a_tuple_setting_is_not_a_population():
    agent = npgrad.PPO("CartPole-v1", seed=0, hidden=[16, 16], **TINY)
    assert isinstance(agent, npgrad.PPO) and agent.config.hidden == (16, 16)
    with pytest.raises(ConfigError, match="needs a gymnasium environment id"):
        npgrad.PPO(npgrad.envs.make_vec_env("CartPole-v1", 2), seed=[0, 1])


# --- the command line ----------------------------------------------------------------------------------------


def test_cli_population_run_writes_every_member_folder_and_the_aggregate(tmp_path, capsys):
    out = tmp_path / "pop"
    assert main(["train", "a2c", "CartPole-v1", "--seeds", "0-1", "--set", "lr=1e-3,3e-3", "--set", "n_envs=2",
                 "--set", "n_steps=64", "--steps", str(STEPS), "--eval-every", str(EVERY), "--eval-episodes", "3",
                 "--workers", "2", "--out", str(out)]) == 0
    index = json.loads((out / "population.json").read_text())
    assert [(m["seed"], m["set"]) for m in index["members"]] == [
        (0, ["lr=1e-3"]), (1, ["lr=1e-3"]), (0, ["lr=3e-3"]), (1, ["lr=3e-3"])]
    for m in index["members"]:
        assert {"config.json", "progress.csv", "timing.csv", "model.npz", "checkpoints"} <= set(os.listdir(out / m["dir"]))
    assert {"aggregate.csv", "curve.png"} <= set(os.listdir(out))
    agent, history = solo("a2c", 1, lr=3e-3)  # member-003 is the solo run with that seed and setting
    assert same_state(npgrad.load(out / "member-003" / "model.npz"), agent)
    assert list(eval_curve(out / "member-003")[1]) == [row[2] for row in history]
    with open(out / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    members = [eval_curve(out / f"member-00{k}")[1] for k in (2, 3)]
    by_hand = aggregate_curves([EVERY, 2 * EVERY], members)
    mine = [r for r in rows if r["setting"] == "lr=3e-3"]
    assert [float(r["iqm"]) for r in mine] == pytest.approx(by_hand.iqm, rel=1e-9, abs=0)
    assert [float(r["ci_low"]) for r in mine] == pytest.approx(by_hand.low, rel=1e-9, abs=0)
    assert [int(r["members"]) for r in mine] == [2, 2]
    capsys.readouterr()
    assert main(["plot", str(out), "--members", "--out", str(tmp_path / "p.png")]) == 0
    assert "IQM over seeds" in capsys.readouterr().out and (tmp_path / "p.png").stat().st_size > 0


def test_cli_population_takes_its_settings_and_budget_from_an_rl_zoo_file(tmp_path):
    (tmp_path / "a2c.yml").write_text("CartPole-v1:\n  n_envs: 2\n  n_steps: 64\n  n_timesteps: !!float 256\n"
                                      "  learning_rate: lin_0.002\n  policy: MlpPolicy\n")
    out = tmp_path / "pop"
    assert main(["train", "a2c", "CartPole-v1", "--seeds", "0-1", "--config", str(tmp_path / "a2c.yml"),
                 "--eval-every", "0", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    assert json.loads((out / "population.json").read_text())["steps"] == 256
    for member in ("member-000", "member-001"):
        run = json.loads((out / member / "config.json").read_text())
        assert run["overrides"] == {"n_envs": 2, "n_steps": 64, "lr": 0.002, "anneal_lr": True}
        assert npgrad.load(out / member / "model.npz").num_steps == 256


def test_the_aggregate_file_is_each_settings_curve_over_the_steps_all_its_members_reached(tmp_path, monkeypatch):
    """Every column of aggregate.csv against aggregate_curves by hand, with six members (two would make the median
    the IQM and blur confidence levels) and one member stopped an evaluation early."""
    from npgrad import population_runs

    rng = np.random.default_rng(0)
    returns_rk = rng.uniform(0, 500, size=(6, 3)).round(1)
    curves = {f"m{k}": ([1000, 2000, 3000][:3 - (k == 5)], returns_rk[k][:3 - (k == 5)]) for k in range(6)}
    monkeypatch.setattr(population_runs, "member_curves", lambda index, run_dir: curves)
    index = {"members": [{"dir": f"m{k}", "set": []} for k in range(6)], "env_id": "CartPole-v1"}
    population_runs.write_aggregate(index, str(tmp_path))
    with open(tmp_path / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    by_hand = aggregate_curves([1000, 2000], returns_rk[:, :2])
    assert [int(r["num_steps"]) for r in rows] == [1000, 2000] and {r["members"] for r in rows} == {"6"}
    for column, expected in (("iqm", by_hand.iqm), ("ci_low", by_hand.low), ("ci_high", by_hand.high),
                             ("median", by_hand.median)):
        assert [float(r[column]) for r in rows] == list(expected), column
    assert not np.allclose(by_hand.median, by_hand.iqm) and not np.allclose(by_hand.low, by_hand.high)
    assert by_hand.low[0] != aggregate_curves([1000], returns_rk[:, :1], confidence=0.9).low[0]


class Unplugged(gym.Env):
    """Resets, then raises at its first step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        raise ConnectionError("the simulator is unplugged")


def test_cli_population_whose_members_fail_exits_1_and_names_them(tmp_path, capsys):
    gym.register("NpgradUnplugged-v0", entry_point=Unplugged)
    try:
        assert main(["train", "ppo", "NpgradUnplugged-v0", "--seeds", "0-1", "--steps", "64", "--set", "n_envs=1",
                     "--set", "n_steps=16", "--eval-every", "0", "--workers", "1", "--quiet",
                     "--out", str(tmp_path / "pop")]) == 1
    finally:
        gym.registry.pop("NpgradUnplugged-v0")
    err = capsys.readouterr().err
    for member in ("member-000", "member-001"):
        assert f"{member} failed (exit status 2): npgrad: error: the environment raised at rollout step 0" in err, err


def test_cli_population_members_train_at_their_own_listed_setting(tmp_path):
    """A listed --set wins over a shared one of the same name, for the member it labels."""
    out = tmp_path / "pop"
    assert main(["train", "a2c", "CartPole-v1", "--seeds", "0", "--set", "lr=1e-3", "--set", "lr=3e-4,1e-4",
                 "--set", "n_envs=2", "--set", "n_steps=16", "--steps", "64", "--eval-every", "0", "--workers", "1",
                 "--quiet", "--out", str(out)]) == 0
    index = json.loads((out / "population.json").read_text())
    trained = [(m["set"], json.loads((out / m["dir"] / "config.json").read_text())["config"]["lr"])
               for m in index["members"]]
    assert trained == [(["lr=3e-4"], 3e-4), (["lr=1e-4"], 1e-4)]


def test_cli_population_resume_skips_finished_members_and_finishes_the_rest(tmp_path, capsys):
    out = tmp_path / "pop"
    args = ["train", "ppo", "CartPole-v1", "--seeds", "0,1", "--set", "n_envs=2", "--set", "n_steps=64",
            "--steps", "256", "--eval-every", "128", "--eval-episodes", "2", "--checkpoint-every", "128",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    finished = (out / "member-000" / "model.npz").stat().st_mtime_ns
    (out / "member-001" / "model.npz").unlink()  # member 1 as if interrupted after its last checkpoint
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert (out / "member-000" / "model.npz").stat().st_mtime_ns == finished
    flags = args[args.index("--set"):args.index("--out")]
    assert main(["train", "ppo", "CartPole-v1", "--seed", "1", *flags, "--out", str(tmp_path / "solo"), "--quiet"]) == 0
    assert same_state(npgrad.load(out / "member-001" / "model.npz"), npgrad.load(tmp_path / "solo" / "model.npz"))
    assert main(["train", "--resume", str(out), "--steps", "384", "--quiet"]) == 0
    assert all(npgrad.load(out / f"member-00{k}" / "model.npz").num_steps == 384 for k in (0, 1))
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    assert f"is a population: evaluate one of its members, e.g. npgrad eval {out / 'member-000'}" in \
        capsys.readouterr().err
    index = (out / "population.json").read_text()
    (out / "member-001" / "model.npz").unlink()  # unfinished again, at its checkpoint of 384 steps
    assert main(["train", "--resume", str(out), "--quiet", "--steps", "300"]) == 2  # as a solo run, before writing
    assert capsys.readouterr().err.strip() == (
        f"npgrad: error: --steps 300 is below the 384 steps {out / 'member-000'} has trained "
        f"({out / 'member-000' / 'model.npz'}); give more to train further")
    assert (out / "population.json").read_text() == index
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    for more in ([], ["--steps", "300"]):  # nothing left to train: refused, as a solo run, before writing anything
        assert main(["train", "--resume", str(out), "--quiet", *more]) == 2
        steps = more[1] if more else "384"
        assert capsys.readouterr().err.strip() == (
            f"npgrad: error: {out} has finished: all 2 members have {int(steps):,} steps or more; plot them with "
            f"npgrad plot {out}, or train further with --resume {out} --steps N (N > 384)")
    assert (out / "population.json").read_text() == index


def test_cli_population_resume_starts_a_member_whose_folder_was_never_created(tmp_path, capsys):
    """A member stopped before it began (no folder) starts afresh on resume, as its solo run would; meanwhile
    plot draws the members that exist."""
    out, flags = tmp_path / "pop", ["--set", "n_envs=2", "--set", "n_steps=64", "--steps", "256", "--eval-every",
                                    "128", "--eval-episodes", "2", "--quiet"]
    assert main(["train", "ppo", "CartPole-v1", "--seeds", "0,1", *flags, "--out", str(out)]) == 0
    shutil.rmtree(out / "member-001")
    capsys.readouterr()
    assert main(["plot", str(out), "--out", str(tmp_path / "c.png")]) == 0
    assert "1 seed" in capsys.readouterr().out
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert main(["train", "ppo", "CartPole-v1", "--seed", "1", *flags, "--out", str(tmp_path / "solo")]) == 0
    assert same_state(npgrad.load(out / "member-001" / "model.npz"), npgrad.load(tmp_path / "solo" / "model.npz"))


def test_cli_population_trains_in_as_many_worker_processes_as_asked(tmp_path, monkeypatch, capsys):
    pools, real = [], concurrent.futures.ProcessPoolExecutor

    def pool(workers, **kwargs):
        pools.append(workers)
        return real(workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", pool)
    flags = ["--set", "n_envs=2", "--set", "n_steps=64", "--steps", "128", "--eval-every", "0"]
    for workers, seeds in (("2", "0-2"), ("3", "3-4")):  # 3 members on 2 workers; never more workers than members
        assert main(["train", "ppo", "CartPole-v1", "--seeds", seeds, "--workers", workers, *flags,
                     "--out", str(tmp_path / seeds)]) == 0
    assert pools == [2, 2]
    assert "as 2 stacks of members trained together, one per worker process" in capsys.readouterr().err


@pytest.mark.parametrize("argv, problem", [
    (["--seeds", "3-1"], "the range 3-1 is empty"), (["--seeds", "a"], "expected seeds such as 0-15"),
    (["--seeds", "0,0"], "a seed is listed twice"), (["--seeds", "0-1", "--set", "lr=1e-3,-1"], "lr=-1.0 is invalid"),
    (["--workers", "2"], "--workers is for populations"),
    (["--seeds", "0-1", "--workers", "0"], "--workers must be a positive integer, got 0"),
    (["--seeds", "0-1", "--seed", "7"], "--seed and --seeds: give --seeds for a population, --seed for a single run"),
    (["--seeds", "0-1", "--set", "n_steps=64,128"], "n_steps is shared by every member of a population"),
    (["--seeds", "0-1", "--set", "lr=1e-3,0.001"], "--set lr=1e-3,0.001: a value is listed twice"),
    (["--seeds", "0-1", "--set", "lr=1e-3", "--set", "lr=-1,1e-2"], "lr=-1.0 is invalid"),  # the list wins
])
def test_cli_population_bad_input(tmp_path, capsys, argv, problem):
    assert main(["train", "ppo", "CartPole-v1", "--out", str(tmp_path / "p"), *argv]) == 2
    assert problem in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_member_settings_pairs_seeds_with_values():
    assert member_settings(npgrad.PPO.Config, range(2), {"learning_rate": [1e-3, 2e-3]}) == [
        (0, {"lr": 1e-3}), (1, {"lr": 2e-3})]


def test_ctrl_c_to_the_parent_alone_stops_every_worker_with_a_checkpoint(tmp_path):
    """A SIGINT that reaches only the parent (``kill -INT PID``) is passed on: each member stops at its next update
    with a checkpoint, the parent alone says how to continue, and the resumed population finishes."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "pop"
    cmd = [sys.executable, "-m", "npgrad", "train", "ppo", "CartPole-v1", "--seeds", "0-1", "--workers", "2",
           "--steps", "1000000", "--checkpoint-every", "2048", "--eval-every", "0", "--quiet", "--out", str(out)]
    parent = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)  # no shared Ctrl-C
    deadline = time.monotonic() + 120
    while not all(any((out / m / "checkpoints").glob("*.npz")) for m in ("member-000", "member-001")):
        assert time.monotonic() < deadline and parent.poll() is None, "the population never wrote a checkpoint"
        time.sleep(0.1)
    parent.send_signal(signal.SIGINT)
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, err
    assert err.strip().splitlines() == [f"interrupted; continue with: npgrad train --resume {out}"]
    for member in ("member-000", "member-001"):
        assert not (out / member / "model.npz").exists(), f"{member} trained on to the end"
    steps = [npgrad.load(sorted((out / m / "checkpoints").iterdir())[-1]).num_steps for m in ("member-000", "member-001")]
    assert max(steps) < 1_000_000
    assert main(["train", "--resume", str(out), "--steps", str(max(steps) + 2048), "--quiet"]) == 0


def test_members_at_different_steps_are_refused_before_any_trains():
    pop = npgrad.PPO("CartPole-v1", seed=range(2), n_envs=2, n_steps=64)
    pop[0].learn(128)  # member 0 alone: the population's members no longer start from one step
    for workers in (1, 2):
        with pytest.raises(ConfigError, match=r"members train together from one step, but these are at \[128, 0\]"):
            pop.learn(128, workers=workers)
    assert [m.num_steps for m in pop.members] == [128, 0]


def test_cli_population_members_equal_solo_runs_across_checkpoints(tmp_path):
    """Each checkpoint restarts a run's environments with a seeded reset; members stacked on one worker must draw
    their later episodes as their solo runs do."""
    flags = ["--set", "n_envs=2", "--set", "n_steps=64", "--steps", "1024", "--eval-every", "256",
             "--eval-episodes", "2", "--checkpoint-every", "256", "--quiet"]
    assert main(["train", "ppo", "CartPole-v1", "--seeds", "0,1", "--workers", "1", *flags,
                 "--out", str(tmp_path / "pop")]) == 0
    for k in (0, 1):
        assert main(["train", "ppo", "CartPole-v1", "--seed", str(k), *flags, "--out", str(tmp_path / f"s{k}")]) == 0
        assert same_state(npgrad.load(tmp_path / "pop" / f"member-00{k}" / "model.npz"),
                          npgrad.load(tmp_path / f"s{k}" / "model.npz")), f"member {k}"
        assert eval_curve(tmp_path / "pop" / f"member-00{k}")[1].tolist() == eval_curve(tmp_path / f"s{k}")[1].tolist()


def test_a_ctrl_c_after_every_member_finished_is_no_interruption(tmp_path, monkeypatch, capsys):
    from npgrad import population_runs, runs

    class LateStop(runs.StopOnSignal):
        pressed = False
        requested = property(lambda self: LateStop.pressed)

    def press_then_aggregate(*args, aggregate=population_runs.write_aggregate):
        LateStop.pressed = True  # Ctrl-C once every member has its steps, as the aggregate is written
        return aggregate(*args)

    monkeypatch.setattr(runs, "StopOnSignal", LateStop)
    monkeypatch.setattr(population_runs, "write_aggregate", press_then_aggregate)
    assert main(["train", "ppo", "CartPole-v1", "--seeds", "0,1", "--set", "n_envs=2", "--set", "n_steps=64",
                 "--steps", "256", "--eval-every", "128", "--eval-episodes", "2", "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0
    assert LateStop.pressed and "interrupted" not in capsys.readouterr().err


def test_a_later_learn_call_starts_each_members_training_return_afresh_as_a_worker_would():
    pop = npgrad.PPO("CartPole-v1", seed=[0, 1], **TINY)
    pop.learn(STEPS, workers=1)
    assert all(len(window) for member in pop.members for window in member.rollout.recent)
    population.begin(pop.members, STEPS)  # what the next learn call does first
    assert not any(len(window) for member in pop.members for window in member.rollout.recent)


def test_a_populations_evaluate_passes_deterministic_on():
    pop = npgrad.PPO("Pendulum-v1", seed=[0, 1], **TINY)
    for deterministic in (True, False):
        expected = [member.evaluate(2, deterministic=deterministic).returns for member in pop.members]
        assert all(same(a.returns, b) for a, b in zip(pop.evaluate(2, deterministic=deterministic), expected))
    assert not same(pop.evaluate(2, deterministic=False)[0].returns, pop.evaluate(2)[0].returns)


def test_the_memory_estimate_counts_every_members_rollout():
    """A worker trains its members as one stack, so it holds all their rollouts, not one member's."""
    from npgrad.population import population_memory

    config = npgrad.PPO.Config.for_env("CartPole-v1", n_envs=256, n_steps=256, minibatch_size=16384)
    one, many = population_memory(config, 4, 2, 1), population_memory(config, 4, 2, 64)
    assert many == 64 * one


def test_a_population_folder_whose_members_do_not_belong_together_is_refused(tmp_path):
    npgrad.PPO("CartPole-v1", seed=[0, 1], **TINY).save(tmp_path / "pop")
    index_path = tmp_path / "pop" / "population.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "members": ["member-000.npz"] * 2}))
    with pytest.raises(FileFormatError, match="members lists member-000.npz more than once"):
        load_population(tmp_path / "pop")
    index_path.write_text(json.dumps(index))
    npgrad.PPO("CartPole-v1", seed=1, **{**TINY, "hidden": (8,)}).save(tmp_path / "pop" / "member-001.npz")
    with pytest.raises(FileFormatError, match=r"member-001.npz has hidden=\[8\] where member-000.npz has \[64, 64\]"):
        load_population(tmp_path / "pop")
    (tmp_path / "pop" / "member-001.npz").unlink()
    npgrad.PPO("CartPole-v1", seed=1, **TINY).save(tmp_path / "elsewhere.npz")
    (tmp_path / "pop" / "member-001.npz").symlink_to(tmp_path / "elsewhere.npz")
    with pytest.raises(FileFormatError, match="member-001.npz leads out of the folder"):
        load_population(tmp_path / "pop")
