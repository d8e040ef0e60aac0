"""The optional side-by-side: Stable-Baselines3's PPO and A2C and sb3-contrib's TRPO, RL-Zoo settings.

    pip install stable-baselines3 sb3-contrib      # brings PyTorch; never needed by npgrad or its tests
    python benchmarks/learning.py --sb3            # npgrad and SB3 in the same run, with ratio tables

``run_sb3`` follows the protocol of ``learning.run_one`` exactly: single-threaded torch, a
deterministic evaluation on 10 episodes of ``npgrad.train.make_vec_env(env_id, 10)`` seeded
``seed + 10000`` at the first update boundary at or after every 5,000 steps (evaluation time
excluded), 20 final episodes seeded ``seed + 20000``. The hyperparameters are the RL-Zoo's
(rl-baselines3-zoo ``hyperparams/{ppo,a2c,trpo}.yml``), gSDE included where the Zoo uses it.
"""
from __future__ import annotations

import time

import numpy as np

from npgrad.rollout import independent_seeds, seed_per_env
from npgrad.envs import make_vec_env

from common import random_action_speed


def _linear(value):
    return lambda progress_remaining: progress_remaining * value  # the Zoo's "lin_<value>"


# label, env -> (constructor name, n_envs, VecNormalize?, keyword arguments)
ZOO = {
    ("ppo", "CartPole-v1"): ("PPO", 8, False, dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                                                   ent_coef=0.0, learning_rate=_linear(1e-3), clip_range=_linear(0.2))),
    ("ppo", "Pendulum-v1"): ("PPO", 4, False, dict(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                                                   learning_rate=1e-3, clip_range=0.2, use_sde=True,
                                                   sde_sample_freq=4)),
    ("trpo", "CartPole-v1"): ("TRPO", 2, False, dict(n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98,
                                                     gamma=0.99, learning_rate=1e-3, n_critic_updates=20)),
    ("trpo", "Pendulum-v1"): ("TRPO", 2, False, dict(n_steps=1024, gamma=0.9, n_critic_updates=15, use_sde=True,
                                                     sde_sample_freq=4)),
    ("a2c", "CartPole-v1"): ("A2C", 8, False, dict(ent_coef=0.0)),
    ("a2c", "Pendulum-v1"): ("A2C", 8, True, dict(ent_coef=0.0, max_grad_norm=0.5, n_steps=8, gae_lambda=0.9,
                                                  vf_coef=0.4, gamma=0.9, use_rms_prop=True, normalize_advantage=False,
                                                  learning_rate=_linear(7e-4), use_sde=True,
                                                  policy_kwargs=dict(log_std_init=-2, ortho_init=False))),
}

# MuJoCo, from the Zoo's entries for the -v4 (-v2) versions, and LunarLander-v3; "normalize: true" is VecNormalize
# on observations and rewards; ZOO_NETWORK is the Zoo's policy_kwargs for its tuned PPO entries on Hopper and
# HalfCheetah
ZOO_NETWORK = dict(log_std_init=-2, ortho_init=False, activation_fn="ReLU", net_arch=dict(pi=[256, 256], vf=[256, 256]))
ZOO_TRPO_MUJOCO = dict(batch_size=128, n_steps=1024, gamma=0.99, gae_lambda=0.95, sub_sampling_factor=1,
                       cg_max_steps=25, cg_damping=0.1, n_critic_updates=20, learning_rate=1e-3)
ZOO.update({
    ("ppo", "Hopper-v5"): ("PPO", 1, True, dict(batch_size=32, n_steps=512, gamma=0.999, learning_rate=9.80828e-05,
                                                ent_coef=0.00229519, clip_range=0.2, n_epochs=5, gae_lambda=0.99,
                                                max_grad_norm=0.7, vf_coef=0.835671, policy_kwargs=ZOO_NETWORK)),
    ("ppo", "HalfCheetah-v5"): ("PPO", 1, True, dict(batch_size=64, n_steps=512, gamma=0.98, learning_rate=2.0633e-05,
                                                     ent_coef=0.000401762, clip_range=0.1, n_epochs=20,
                                                     gae_lambda=0.92, max_grad_norm=0.8, vf_coef=0.58096,
                                                     policy_kwargs=ZOO_NETWORK)),
    ("ppo", "Swimmer-v5"): ("PPO", 4, True, dict(gamma=0.9999, n_steps=1024, batch_size=256, learning_rate=6e-4,
                                                 gae_lambda=0.98)),
    ("ppo", "InvertedPendulum-v5"): ("PPO", 1, True, dict(batch_size=64, n_steps=32, gamma=0.999,
                                                          learning_rate=0.000222425, ent_coef=1.37976e-07,
                                                          clip_range=0.4, n_epochs=5, gae_lambda=0.9,
                                                          max_grad_norm=0.3, vf_coef=0.19816)),
    ("ppo", "Reacher-v5"): ("PPO", 1, True, dict(batch_size=32, n_steps=512, gamma=0.9, learning_rate=0.000104019,
                                                 ent_coef=7.52585e-08, clip_range=0.3, n_epochs=5, gae_lambda=1.0,
                                                 max_grad_norm=0.9, vf_coef=0.950368)),
    ("trpo", "Hopper-v5"): ("TRPO", 2, True, ZOO_TRPO_MUJOCO),
    ("trpo", "HalfCheetah-v5"): ("TRPO", 2, True, dict(ZOO_TRPO_MUJOCO, target_kl=0.04)),
    ("trpo", "Swimmer-v5"): ("TRPO", 2, True, dict(ZOO_TRPO_MUJOCO, gamma=0.9999)),
    ("ppo", "InvertedDoublePendulum-v5"): ("PPO", 1, True, dict(batch_size=512, n_steps=128, gamma=0.98,
                                                                learning_rate=0.000155454, ent_coef=1.05057e-06,
                                                                clip_range=0.4, n_epochs=10, gae_lambda=0.8,
                                                                max_grad_norm=0.5, vf_coef=0.695929)),
    # the Zoo has no TRPO entry for these three: its MuJoCo defaults
    ("trpo", "InvertedDoublePendulum-v5"): ("TRPO", 2, True, ZOO_TRPO_MUJOCO),
    ("trpo", "InvertedPendulum-v5"): ("TRPO", 2, True, ZOO_TRPO_MUJOCO),
    ("trpo", "Reacher-v5"): ("TRPO", 2, True, ZOO_TRPO_MUJOCO),
    ("ppo", "LunarLander-v3"): ("PPO", 16, False, dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999,
                                                      n_epochs=4, ent_coef=0.01)),
    ("trpo", "LunarLander-v3"): ("TRPO", 2, False, dict(n_steps=512, cg_damping=0.01, gae_lambda=0.98, gamma=0.99,
                                                       learning_rate=1e-3, n_critic_updates=15)),
})


def with_torch_activation(kwargs):
    """``kwargs`` with a ``policy_kwargs`` activation named by string replaced by the ``torch.nn`` class."""
    import torch

    policy = kwargs.get("policy_kwargs")
    if policy is None or not isinstance(policy.get("activation_fn"), str):
        return kwargs
    return dict(kwargs, policy_kwargs=dict(policy, activation_fn=getattr(torch.nn, policy["activation_fn"])))


def available():
    """True when stable-baselines3 and sb3-contrib can be imported."""
    try:
        import sb3_contrib  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def raw_env_speed(env_id, n_envs, seed=0):
    """``(steps/s, vector env)`` of the vector env SB3 trains on (``make_vec_env``: a ``DummyVecEnv`` that
    steps one gymnasium env after another) under random actions; VecNormalize, like npgrad's observation
    filter, counts as the learner's work."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    venv = sb3_make_vec_env(env_id, n_envs=n_envs, seed=seed)
    venv.reset()
    speed = random_action_speed(venv.step, venv.action_space, n_envs, seed=seed)
    venv.close()
    return speed, f"{type(venv).__name__} x{n_envs}"


def evaluate_sb3(model, env_id, episodes, seed, vecnorm=None):
    """Mean return of ``episodes`` deterministic episodes run in parallel, as ``Agent.evaluate`` does."""
    envs = make_vec_env(env_id, episodes)
    obs, _ = envs.reset(seed=independent_seeds(envs, seed))
    returns_e, running_e = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running_e.any():
        action, _ = model.predict(vecnorm.normalize_obs(obs) if vecnorm is not None else obs, deterministic=True)
        obs, rew, term, trunc, _ = envs.step(action)
        returns_e += rew * running_e
        running_e &= ~(term | trunc)
    envs.close()
    return float(returns_e.mean())


def run_sb3(label, env_id, seed, budget, every=5_000, episodes=10, stop_at=None, final_episodes=20):
    """Train the Zoo configuration for ``budget`` steps, or until an evaluation reaches ``stop_at``; returns
    ``(steps, history, final_return, train_seconds, n_envs)`` with ``history`` rows ``(env_steps, training_seconds,
    mean_return)`` as ``Evaluator`` records them (``final_return`` None without ``final_episodes``)."""
    import sb3_contrib
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    class IndependentlySeeded(DummyVecEnv):
        """Seeds its envs as npgrad's ``Rollout`` does (``npgrad.rollout.seed_per_env``), not ``seed + i``, so
        consecutive seeds share no stream of starting states."""

        def seed(self, seed=None):
            self._seeds = seed_per_env(seed, self.num_envs)
            return self._seeds

    torch.set_num_threads(1)
    name, n_envs, normalize, kwargs = ZOO[(label, env_id)]
    cls = getattr(stable_baselines3, name, None) or getattr(sb3_contrib, name)
    venv = sb3_make_vec_env(env_id, n_envs=n_envs, seed=seed, vec_env_cls=IndependentlySeeded)
    if normalize:
        venv = VecNormalize(venv, gamma=kwargs["gamma"])
    model = cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **with_torch_activation(kwargs))

    class Evaluate(BaseCallback):
        """At every update boundary (a rollout starts after each update, and training ends after the last)."""

        def _on_training_start(self):
            self.history, self.next_eval, self.seconds, self.last = [], every, 0.0, time.perf_counter()

        def _on_rollout_start(self):
            now = time.perf_counter()
            self.seconds += now - self.last
            if self.num_timesteps >= self.next_eval:
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += every
                vecnorm = venv if normalize else None
                self.history.append((self.num_timesteps, self.seconds,
                                     evaluate_sb3(self.model, env_id, episodes, seed + 10_000, vecnorm)))
            self.last = time.perf_counter()

        def _on_training_end(self):
            self._on_rollout_start()

        def _on_step(self):
            return stop_at is None or not self.history or self.history[-1][2] < stop_at

    callback = Evaluate()
    model.learn(budget, callback=callback)
    final = evaluate_sb3(model, env_id, final_episodes, seed + 20_000, venv if normalize else None) \
        if final_episodes else None
    return model.num_timesteps, callback.history, final, callback.seconds, n_envs
