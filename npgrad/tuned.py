"""Tuned defaults: algorithm -> environment -> the fields that differ from the config's defaults.

Each entry says in one line why it is what it is; how each was measured, and what was tried and
not kept, is in benchmarks/README.md ("How the defaults were chosen"). An environment without an
entry starts from its family's defaults (``FAMILIES``): discrete or continuous actions.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from .envs import EnvLike, env_id_of, spaces_of

Entry = tuple[dict[str, Any], str]  # (fields, one line on why)

# Continuous control without a tuned entry: observations and rewards normalised (MuJoCo's observations span
# orders of magnitude, its rewards reach thousands), and sigma = exp(-0.5) = 0.61, so a mean-zero Gaussian keeps
# 90% of its samples inside the usual [-1, 1] action box instead of 68% with sigma = 1 (the rest are clipped).
CONTINUOUS = dict(normalize_obs=True, normalize_reward=True, log_std_init=-0.5)
"""The continuous-control family: observations and rewards normalised, sigma = exp(-0.5) = 0.61 at the start."""
VALUE_REGRESSION = dict(vf_epochs=10, vf_minibatch_size=128, vf_lr=1e-3)
"""The value fit of every tuned TRPO, NPG and VPG entry, and of their families."""

TUNED: dict[str, dict[str, Entry]] = {
    "vpg": {
        "CartPole-v1": (dict(n_envs=8, n_steps=256, gamma=0.99, lam=0.97, pi_lr=5e-3, vf_epochs=10,
                             vf_minibatch_size=128),
                        "Spinning Up's VPG with a larger step: reaches 475 within its 200k budget on every seed"),
        "Pendulum-v1": (dict(n_envs=8, n_steps=512, gamma=0.9, lam=0.95, pi_lr=3e-3, normalize_obs=True,
                             normalize_reward=True, log_std_init=-0.5, vf_epochs=10, vf_minibatch_size=128),
                        "the RL-Zoo's Pendulum discount and normalisation; VPG has no threshold to meet there"),
    },
    "npg": {
        "CartPole-v1": (dict(n_envs=8, n_steps=256, gamma=0.99, lam=0.97, max_kl=0.02, hidden=(32,),
                             vf_epochs=10, vf_minibatch_size=128),
                        "one hidden layer of 32 keeps the explicit Fisher small (226 parameters) for a Cholesky solve"),
        "Pendulum-v1": (dict(n_envs=8, n_steps=512, gamma=0.9, lam=0.95, max_kl=0.005, hidden=(32,),
                             normalize_obs=True, normalize_reward=True, log_std_init=-0.5, vf_epochs=10,
                             vf_minibatch_size=128, use_sde=True, sde_sample_freq=4),
                        "gSDE at half the KL: with no line search, a smaller step is held by more seeds"),
    },
    "trpo": {
        "CartPole-v1": (dict(n_envs=16, n_steps=64, gamma=0.99, lam=0.98, max_kl=0.01, vf_epochs=10,
                             vf_minibatch_size=128, vf_lr=1e-3, fvp_subsample=5),
                        "the RL-Zoo's 1024-transition batch from 16 cheap vector envs; F on every 5th row is 40% "
                        "faster at no more steps"),
        "Pendulum-v1": (dict(n_envs=8, n_steps=256, gamma=0.9, lam=0.95, max_kl=0.02, vf_epochs=10,
                             vf_minibatch_size=128, vf_lr=1e-3, normalize_obs=True, normalize_reward=True,
                             log_std_init=-1.0, use_sde=True, sde_sample_freq=4),
                        "gSDE as the RL-Zoo: reaches -200 in half the steps of independent noise"),
        "Swimmer-v5": (dict(CONTINUOUS, **VALUE_REGRESSION, gamma=0.9999, log_std_init=0.0),
                       "the RL-Zoo's gamma 0.9999, as a small, steady forward reward needs a long horizon, and its "
                       "sigma 1: the KL step moves the means in units of sigma, 1.6x as far as from the family's 0.61"),
        "InvertedDoublePendulum-v5": (dict(CONTINUOUS, **VALUE_REGRESSION, n_steps=512, anneal_kl=True),
                                      "twice the family's batch (8 x 512 transitions per update), and a trust region "
                                      "shrinking to 0 so that more seeds keep a balance once found"),
        "LunarLander-v3": (dict(VALUE_REGRESSION, gamma=0.999, lam=0.98, n_steps=512),
                           "PPO's long horizon (gamma 0.999, lambda 0.98) for a landing that pays at the end, on "
                           "twice the family's batch (8 x 512 transitions per update)"),
        "Hopper-v5": (dict(CONTINUOUS, **VALUE_REGRESSION, max_kl=0.03),
                      "the continuous family in the RL-Zoo's trust region: sb3-contrib's target_kl 0.01 bounds the KL "
                      "averaged over Hopper's 3 action dimensions, 0.03 in the summed KL max_kl bounds"),
        "HalfCheetah-v5": (dict(CONTINUOUS, **VALUE_REGRESSION, log_std_init=-1.0),
                           "sigma exp(-1) = 0.37 at the start, as PPO's entry: on tuning seeds first at 2,000 at "
                           "128k steps (the family 165k) and 6,215 at 1M (5,217)"),
    },
    "ppo": {
        "CartPole-v1": (dict(n_envs=16, n_steps=16, minibatch_size=64, n_epochs=5, gamma=0.98, lam=0.8,
                             lr=5e-3, anneal_lr=True, anneal_clip=True),
                        "the RL-Zoo's batch of 256 and schedules, with 4 minibatches of 64 at 5x the step: "
                        "as many gradient steps on a quarter of the rows"),
        "Pendulum-v1": (dict(n_envs=8, n_steps=256, minibatch_size=128, n_epochs=10, gamma=0.9, lam=0.95,
                             lr=1e-3, anneal_lr=True, normalize_obs=True, normalize_reward=True, log_std_init=-0.5,
                             use_sde=True, sde_sample_freq=4),
                        "gSDE as the RL-Zoo, 8 x 256 transitions per update"),
        "FrozenLake-v1": (dict(n_envs=8, n_steps=128, gamma=0.99, ent_coef=0.01),
                          "a small entropy bonus keeps exploring until the sparse goal is found"),
        "InvertedDoublePendulum-v5": (dict(CONTINUOUS, n_steps=512),
                                      "twice the family's batch (8 x 512 transitions per update), as TRPO's"),
        "InvertedPendulum-v5": (dict(CONTINUOUS, n_steps=128),
                                "half the family's batch (8 x 128 transitions per update): balanced at the first "
                                "evaluation, 10k steps, where the family takes 20k"),
        "Hopper-v5": (dict(CONTINUOUS, lr=1e-4),
                      "a third of the family's step, near the RL-Zoo's 9.8e-5: fewer seeds fall in the last 200k "
                      "steps, where an evaluation may catch them"),
        "HalfCheetah-v5": (dict(CONTINUOUS, log_std_init=-1.0, n_steps=64, anneal_lr=True),
                           "sigma exp(-1) = 0.37 on every joint, between the family's 0.61 and the RL-Zoo's 0.14, on a "
                           "quarter of the family's batch with the step annealed to 0: first at 3,000 in a third of "
                           "the family's steps, the annealing keeping the many late updates from undoing it"),
        "LunarLander-v3": (dict(n_envs=16, n_steps=1024, minibatch_size=64, n_epochs=4, gamma=0.999, lam=0.98,
                                ent_coef=0.01, lr=6e-4),
                           "the RL-Zoo's, with a long horizon (gamma 0.999) for a landing that pays at the end, at "
                           "twice its step: landed within 500k steps"),
        "Swimmer-v5": (dict(CONTINUOUS, gamma=0.9999, n_envs=4, n_steps=1024, minibatch_size=256, lr=6e-4, lam=0.98),
                       "the RL-Zoo's: a long horizon (gamma 0.9999) for a small, steady forward reward, and a quarter "
                       "of the gradient steps per transition at twice the step, which gets there in a quarter of the "
                       "steps"),
        "Taxi-v4": (dict(n_envs=16, n_steps=128, minibatch_size=256, n_epochs=4, gamma=0.99, lam=1.0, lr=1e-3,
                         anneal_lr=True, ent_coef=0.2),
                    "ent_coef 0.2 tries pickup and dropoff until a delivery is found; lambda 1 carries the +20 back; "
                    "the annealed step settles on the optimal route from every start"),
        "Taxi-v3": (dict(n_envs=16, n_steps=128, minibatch_size=256, n_epochs=4, gamma=0.99, lam=1.0, lr=1e-3,
                         anneal_lr=True, ent_coef=0.2),
                    "as Taxi-v4, its name before gymnasium 1.3"),
    },
    "a2c": {
        "CartPole-v1": (dict(n_envs=8, n_steps=5, gamma=0.99, lam=1.0, lr=7e-4, normalize_advantages=False),
                        "the A3C paper's n-step returns (5 steps, lambda 1) from 8 environments, as SB3"),
        "Pendulum-v1": (dict(n_envs=8, n_steps=8, gamma=0.9, lam=0.9, lr=2e-3, anneal_lr=True, normalize_obs=True,
                             normalize_reward=True, log_std_init=-0.5, normalize_advantages=False, use_sde=True,
                             sde_sample_freq=4),
                        "gSDE as the RL-Zoo, with its linear learning-rate schedule"),
        "FrozenLake-v1": (dict(n_envs=8, n_steps=16, gamma=0.99, ent_coef=0.01),
                          "16-step batches, a small entropy bonus: the non-slippery lake's optimum on 10 of 10 seeds"),
        "Taxi-v4": (dict(n_envs=16, n_steps=128, gamma=0.99, lam=1.0, lr=1e-2, anneal_lr=True, ent_coef=0.2,
                         normalize_advantages=True),
                    "PPO's Taxi batch, entropy and returns at 10x the step: with one gradient step per 2,048 "
                    "transitions it takes learn(3_000_000)"),
        "Taxi-v3": (dict(n_envs=16, n_steps=128, gamma=0.99, lam=1.0, lr=1e-2, anneal_lr=True, ent_coef=0.2,
                         normalize_advantages=True),
                    "as Taxi-v4, its name before gymnasium 1.3"),
    },
}
"""algorithm -> environment id -> (fields, why): the tuned entries (``npgrad defaults ALGO ENV_ID`` prints the whole
config an entry gives). ``CONTINUOUS`` is the continuous-control family's normalisation and starting sigma,
``VALUE_REGRESSION`` the value fit of every TRPO, NPG and VPG entry."""


FAMILIES: dict[str, dict[str, Entry]] = {
    "discrete": {
        "a2c": (dict(n_steps=5, lam=1.0, normalize_advantages=False),
                "5-step returns as the A3C paper (256 steps per env would be one gradient step per 2,048)"),
        "trpo": (dict(VALUE_REGRESSION), "the config's own, value function fitted as in the tuned entries"),
        "npg": (dict(VALUE_REGRESSION), "the config's own, value function fitted as in the tuned entries"),
        "vpg": (dict(VALUE_REGRESSION), "the config's own, value function fitted as in the tuned entries"),
        "ppo": ({}, "the config's own: 8 x 256 transitions per update, 10 epochs of 64-row minibatches"),
    },
    "continuous": {
        "a2c": (dict(CONTINUOUS, n_steps=8, lam=0.9, normalize_advantages=False),
                "observations and rewards normalised, sigma 0.61, 8-step batches as the RL-Zoo's"),
        "trpo": (dict(CONTINUOUS, **VALUE_REGRESSION), "observations and rewards normalised, sigma 0.61"),
        "npg": (dict(CONTINUOUS, **VALUE_REGRESSION, max_kl=0.005),
                "observations and rewards normalised, sigma 0.61, half the KL step (NPG has no line search)"),
        "vpg": (dict(CONTINUOUS, **VALUE_REGRESSION), "observations and rewards normalised, sigma 0.61"),
        "ppo": (dict(CONTINUOUS), "observations and rewards normalised, sigma 0.61 (as CleanRL's MuJoCo PPO)"),
    },
}
"""family -> algorithm -> (fields, why): the defaults of an environment without a tuned entry."""


def family_of(action_space: gym.Space) -> str:
    """``"continuous"`` for a ``Box`` of actions, ``"discrete"`` for the rest (Discrete, MultiDiscrete,
    MultiBinary)."""
    return "continuous" if isinstance(action_space, gym.spaces.Box) else "discrete"


def defaults_for(algo: str, env: EnvLike | None) -> tuple[dict, str]:
    """``(fields, source)``: the defaults ``algo`` starts from on ``env`` (an id, spec or instance) and where they
    come from, said in one line: the tuned entry of its id, else its family's (its action space is read from a
    copy of the environment, or from the instance)."""
    name = env_id_of(env) if env is not None else None
    name = name.rpartition(":")[2] if name else name
    if name in TUNED.get(algo, {}):
        values, why = TUNED[algo][name]
        return dict(values), f"tuned for {name}: {why}"
    if env is None:
        return {}, "the config's own (no environment given)"
    family = family_of(spaces_of(env)[1])
    values, why = FAMILIES[family][algo]
    return dict(values), f"{family}-control family, no tuned entry for {name}: {why}"

