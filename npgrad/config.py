"""Hyperparameters: one dataclass per algorithm, every field documented with its symbol and range.

``Config.for_env(env_id, **overrides)`` starts from the field defaults, applies the algorithm's
tuned defaults for that environment (``ENV_DEFAULTS``), then the user's overrides, and validates.
Unknown names and invalid values raise ``ConfigError`` naming the field and the valid choices.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

from .errors import ConfigError, NpgradWarning


@dataclass
class Config:
    """Settings every algorithm shares."""

    n_envs: int = 8
    """E, parallel environments in the vector env (1-64)."""
    n_steps: int = 256
    """T, steps per environment per update; a batch has T * E transitions."""
    gamma: float = 0.99
    """gamma, discount factor (0.9-0.999)."""
    lam: float = 0.95
    """lambda, GAE bias/variance trade-off (0.9-1.0; 1 = Monte-Carlo returns)."""
    hidden: tuple = (64, 64)
    """Hidden widths of the policy MLP."""
    vf_hidden: tuple = (64, 64)
    """Hidden widths of the value MLP."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu or identity."""
    dtype: str = "float32"
    """Dtype the networks compute in during training and prediction: ``float32`` (matrix products
    and ``tanh`` about 2x faster) or ``float64``. Parameters, optimiser state, gradients,
    advantages and the solvers stay float64; the derivative tests run the networks in float64."""
    log_std_init: float = 0.0
    """Initial log sigma of a Gaussian policy (-1.0-0.5); with ``use_sde``, every entry of Lambda (-3-0)."""
    use_sde: bool = False
    """gSDE (Raffin et al. 2022; npgrad/gsde.py): Gaussian noise ``phi(s) E`` that is a function of the state,
    with the exploration matrix ``E`` held for ``sde_sample_freq`` steps. Box action spaces only."""
    sde_sample_freq: int = 4
    """With ``use_sde``: vector steps between fresh exploration matrices (and one at the start of every rollout)."""
    normalize_obs: bool = False
    """Normalise observations with a running mean/std filter (saved with the model)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (as SB3's VecNormalize; saved with the model)."""
    normalize_advantages: bool = True
    """Standardise advantages per batch (or per minibatch, for PPO)."""
    vf_lr: float = 1e-3
    """Adam learning rate of the value function (1e-4-3e-3)."""
    vf_epochs: int = 5
    """Epochs of value-function regression per update (algorithms that fit V separately)."""
    vf_minibatch_size: int = 64
    """Minibatch size of the value regression (VPG, NPG, TRPO; at most the batch ``n_envs * n_steps``)."""

    ENV_DEFAULTS = {}  # env id -> {field: value}; set by each algorithm

    @classmethod
    def for_env(cls, env_id=None, **overrides):
        values = dict(cls.ENV_DEFAULTS.get(env_id, {}))
        values.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s) {unknown} for {cls.__name__}; "
                              f"valid names: {sorted(names)}")
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        tuples = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
        return cls.for_env(None, **{k: tuple(v) if k in tuples and isinstance(v, list) else v
                                    for k, v in values.items()})

    def validate(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                require(isinstance(value, bool), f.name, value, "true or false")
            elif isinstance(f.default, int) and not isinstance(f.default, bool):
                require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, f.name, value,
                        "a positive integer")
            elif isinstance(f.default, float):
                require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                        f.name, value, "a finite number")
            elif isinstance(f.default, tuple):
                require(isinstance(value, tuple) and all(isinstance(h, int) and h >= 1 for h in value), f.name,
                        value, "a tuple of positive integers")
        require(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        require(0.0 <= self.lam <= 1.0, "lam", self.lam, "in [0, 1]")
        require(self.activation in ("tanh", "relu", "identity"), "activation", self.activation,
                "one of tanh, relu, identity")
        require(self.dtype in ("float64", "float32"), "dtype", self.dtype, "'float64' or 'float32'")
        self.require_positive("vf_lr")

    def require_positive(self, *names):
        for name in names:
            require(getattr(self, name) > 0, name, getattr(self, name), "> 0")

    def warn_beyond_batch(self, *names):
        """Warn, as SB3 does, of a minibatch size above the batch ``n_envs * n_steps`` (each is then the batch)."""
        batch = self.n_envs * self.n_steps
        for name in names:
            if getattr(self, name) > batch:
                warnings.warn(f"{name}={getattr(self, name)} is larger than the batch n_envs * n_steps = "
                              f"{self.n_envs} * {self.n_steps} = {batch}: every minibatch is the whole batch",
                              NpgradWarning, stacklevel=2)

    def require_nonnegative(self, *names):
        for name in names:
            require(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")


def require(ok, name, value, what):
    if not ok:
        raise ConfigError(f"hyperparameter {name}={value!r} is invalid: must be {what}")
