"""Hyperparameters: one dataclass per algorithm, every field documented with its symbol and range.

``Config.for_env(env_id, **overrides)`` starts from the field defaults, applies the algorithm's
tuned defaults for that environment or, without an entry, its family's (``npgrad/tuned.py``), then the
user's overrides, and validates.
Unknown names, invalid values and settings that would have no effect (``REQUIRES``) raise
``ConfigError`` naming the field and the valid choices.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import os
import textwrap
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from .errors import ConfigError, NpgradWarning
from .nn import count_params

C = TypeVar("C", bound="Config")
"""A ``Config`` subclass: ``for_env``, ``build`` and ``from_dict`` return the class they are called on."""


def memory_limit() -> int:
    """Half the machine's physical memory (8 GiB where the system does not say): the most a configuration may
    need. Half, because the estimate (``training_memory``) is rough and the machine runs other things."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


MEMORY_LIMIT = memory_limit()


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
    """Hidden widths of the policy MLP (of the trunk both share, with ``shared_trunk``)."""
    vf_hidden: tuple = (64, 64)
    """Hidden widths of the value MLP (a separate network)."""
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
    clip_obs: float = 10.0
    """With ``normalize_obs``: normalised observations are clipped to [-clip_obs, clip_obs] (10 as SB3's
    VecNormalize; PPO1 and modular_rl use 5)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (as SB3's VecNormalize; saved with the model)."""
    clip_reward: float = 10.0
    """With ``normalize_reward``: scaled rewards are clipped to [-clip_reward, clip_reward] (10 as SB3)."""
    normalize_advantages: bool = True
    """Standardise advantages per batch (or per minibatch, for PPO)."""

    algo: ClassVar[str] = ""
    """The algorithm's name, the key of its tuned defaults in ``npgrad/tuned.py``."""
    REQUIRES: ClassVar[dict] = {"sde_sample_freq": ("use_sde", True), "clip_obs": ("normalize_obs", True),
                                "clip_reward": ("normalize_reward", True)}
    """``field: (other, value)``: setting ``field`` has an effect only when ``other == value``."""
    ALIASES: ClassVar[dict] = {"gae_lambda": "lam", "normalize_advantage": "normalize_advantages"}
    """SB3's name of a field: npgrad's name (each algorithm adds its own)."""
    SB3_ONLY: ClassVar[dict] = {
        "policy": "npgrad's policy is an MLP: pass the environment first, as npgrad.PPO('CartPole-v1')",
        "policy_kwargs": "its net_arch is hidden=(64, 64) and vf_hidden=(64, 64), its activation_fn activation='tanh'",
        "net_arch": "hidden=(64, 64) for the policy, vf_hidden=(64, 64) for the value network",
        "activation_fn": "activation='tanh' or 'relu'",
        "verbose": "npgrad prints what you ask for: learn(progress_bar=True), an EvalCallback, a Logger",
        "tensorboard_log": "pass npgrad.logger.Logger(folder, formats=('tensorboard',)) to learn as a callback",
        "device": "npgrad computes in NumPy on the CPU",
        "normalize": "normalize_obs=True and normalize_reward=True",
        "n_timesteps": "the budget is learn(total_steps), or --steps for npgrad train",
        "stats_window_size": "the logged training return averages the latest 100 episodes (rollout.STATS_WINDOW)",
    }
    """SB3's (and the RL-Zoo's) names that npgrad has no field for: what to write instead."""
    SCHEDULED: ClassVar[dict] = {"lr": "anneal_lr", "clip_range": "anneal_clip"}
    """``field: flag`` for the fields annealed linearly to 0 when the config has ``flag`` and it is True (SB3 takes
    a function of the progress for them instead)."""
    LIMITS: ClassVar[dict] = {"n_envs": 4096, "n_epochs": 1000, "vf_epochs": 1000, "cg_iters": 1000,
                              "max_backtracks": 100}
    """``field: most`` for the fields a config has of these: more environments than one process steps usefully,
    or inner loops that would keep a single update running for hours (a file asking for 10^9 epochs never ends)."""

    @classmethod
    def for_env(cls: type[C], env_id: str | None = None, **overrides: Any) -> C:
        """The defaults for ``env_id`` (its tuned entry, else its family's: ``npgrad/tuned.py``) with the user's
        ``overrides``."""
        return cls.for_env_with_source(env_id, **overrides)[0]

    @classmethod
    def for_env_with_source(cls: type[C], env_id: str | None = None, **overrides: Any) -> tuple[C, str]:
        """``for_env``, and the line that says where its defaults came from (``tuned.defaults_for``), with the
        environment read once for both."""
        from .tuned import defaults_for  # reads the environment's spaces: the envs module builds on this one

        overrides = cls.canonical(overrides)
        values, source = defaults_for(cls.algo, env_id)
        config = cls.build({**values, **overrides})
        config.refuse_ignored(overrides)
        return config, source

    @classmethod
    def canonical(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with SB3's (and sb3-contrib's) names for a field renamed to npgrad's (``ALIASES``)."""
        renamed = {cls.ALIASES.get(name, name): value for name, value in values.items()}
        if len(renamed) < len(values):
            both = sorted(name for name in values if name in cls.ALIASES and cls.ALIASES[name] in values)
            raise ConfigError(f"{both} and {[cls.ALIASES[name] for name in both]} name the same hyperparameter "
                              f"of {cls.__name__}: give one of them")
        return renamed

    @classmethod
    def build(cls: type[C], values: Mapping[str, Any]) -> C:
        """A validated config from ``{field: value}``; unknown names are refused, with the nearest valid ones."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise cls.unknown(unknown)
        tuples = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
        config = cls(**{k: plain(v, as_tuple=k in tuples) for k, v in values.items()})
        config.validate()
        return config

    @classmethod
    def unknown(cls, names: Collection[str]) -> ConfigError:
        """The ``ConfigError`` for hyperparameter ``names`` the config does not have, with the nearest valid ones."""
        valid = sorted(f.name for f in dataclasses.fields(cls))
        guesses = {name: difflib.get_close_matches(name, valid + list(cls.ALIASES), n=2) for name in names}
        hints = [f"{name}: SB3's; {cls.SB3_ONLY[name]}" if name in cls.SB3_ONLY else
                 f"{name}: did you mean {' or '.join(close)}?" for name, close in guesses.items()
                 if name in cls.SB3_ONLY or close]
        hint = "; ".join(hints)
        return ConfigError(f"unknown hyperparameter(s) {sorted(names)} for {cls.__name__}"
                           + (f" ({hint})" if hint else "") + f"; valid names: {valid}")

    def refuse_ignored(self, given: Mapping[str, Any]) -> None:
        """A setting the user gave that would change nothing (e.g. ``clip_obs=5`` without ``normalize_obs``); one
        equal to the field's default is no mistake (a whole config read back from a file gives every field)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in given:
            other, needed = self.REQUIRES.get(name, (None, None))
            if other is not None and getattr(self, other) != needed and given[name] != defaults[name]:
                raise ConfigError(f"hyperparameter {name}={given[name]!r} has no effect unless "
                                  f"{other}={needed!r} (it is {getattr(self, other)!r})")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        return cls.build(values)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                require(isinstance(value, bool), f.name, value, "true or false")
            elif isinstance(f.default, int) and not isinstance(f.default, bool):
                require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, f.name, value,
                        "a positive integer")
            elif isinstance(f.default, float):
                flag = self.SCHEDULED.get(f.name, "")
                schedule = (f"; a schedule is {flag}=True, linear to 0 over the learn call as SB3's linear schedules"
                            if callable(value) and hasattr(self, flag) else "")
                require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                        f.name, value, "a finite number" + schedule)
            elif isinstance(f.default, tuple):
                require(isinstance(value, tuple) and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                                         for h in value), f.name, value, "a tuple of positive integers")
        require(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        require(0.0 <= self.lam <= 1.0, "lam", self.lam, "in [0, 1]")
        require(self.activation in ("tanh", "relu", "identity"), "activation", self.activation,
                "one of tanh, relu, identity")
        require(self.dtype in ("float64", "float32"), "dtype", self.dtype, "'float64' or 'float32'")
        self.require_positive("clip_obs", "clip_reward")
        for name, most in self.LIMITS.items():
            if hasattr(self, name):
                require(getattr(self, name) <= most, name, getattr(self, name), f"at most {most}")
        require_memory(self)

    def require_positive(self, *names: str) -> None:
        for name in names:
            require(getattr(self, name) > 0, name, getattr(self, name), "> 0")

    def warn_beyond_batch(self, *names: str) -> None:
        """Warn, as SB3 does, of a minibatch size above the batch ``n_envs * n_steps`` (each is then the batch)."""
        batch = self.n_envs * self.n_steps
        for name in names:
            if getattr(self, name) > batch:
                warnings.warn(f"{name}={getattr(self, name)} is larger than the batch n_envs * n_steps = "
                              f"{self.n_envs} * {self.n_steps} = {batch}: every minibatch is the whole batch",
                              NpgradWarning, stacklevel=2)

    def require_nonnegative(self, *names: str) -> None:
        for name in names:
            require(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")


def field_docs(config_cls: type[Config]) -> dict[str, str]:
    """``{field: docstring}`` of a config class and its bases: the string literal under each field in the source
    (what a reader of the dataclass sees), read with ``ast`` since Python keeps no attribute docstrings."""
    docs: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__[:-1]):  # bases first, so a subclass's text wins
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
        for field, doc in zip(body, body[1:]):
            if isinstance(field, ast.AnnAssign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                docs[field.target.id] = " ".join(str(doc.value.value).split())  # type: ignore[union-attr]
    return docs


def plain(value: Any, as_tuple: bool = False) -> Any:
    """``value`` with NumPy scalars as Python's, and for a tuple field (``as_tuple``) a list or array as a tuple."""
    if as_tuple and isinstance(value, (list, tuple, np.ndarray)):
        return tuple(plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def require(ok: object, name: str, value: object, what: str) -> None:
    if not ok:
        raise ConfigError(f"hyperparameter {name}={value!r} is invalid: must be {what}")


@dataclass
class ValueRegressionConfig(Config):
    """Settings of algorithms that regress ``V`` with its own Adam after the policy step (VPG, NPG, TRPO)."""

    vf_lr: float = 1e-3
    """Adam learning rate of the value function (1e-4-3e-3)."""
    vf_epochs: int = 5
    """Epochs of value-function regression per update."""
    vf_minibatch_size: int = 64
    """Minibatch size of the value regression (at most the batch ``n_envs * n_steps``)."""

    def validate(self) -> None:
        super().validate()
        self.require_positive("vf_lr")
        self.warn_beyond_batch("vf_minibatch_size")


def whole_number(value: Any) -> Any:
    """``int(value)`` for a float that is a whole number such as ``1e5`` (as SB3 and the RL-Zoo write step counts),
    up to 2**53, beyond which floats are no exact counts; any other value as it is."""
    exact = isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) <= 2**53
    return int(value) if exact else value


def require_integer(value: object, name: str, positive: bool = False, most: int | None = None) -> int:
    """``int(value)`` if ``value`` is an integer ``>= 0`` (``> 0`` if ``positive``) and at most ``most``, else
    ``ConfigError`` naming it."""
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= int(positive)):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} integer, got {value!r}")
    if most is not None and value > most:
        raise ConfigError(f"{name} must be at most {most:,}, got {value:,}")
    return int(value)


def training_memory(config: Config, obs_dim: int = 1, act_dim: int = 1) -> int:
    """Bytes training needs, roughly, counted before anything is built: every parameter six times in float64
    (theta, its gradient, two optimiser moments, a trial point, the network's cast) and, for each of the
    ``n_envs * (n_steps + 1)`` rows of a rollout, the observation three times and each layer's activation
    and cotangent. ``obs_dim`` and ``act_dim`` are 1 until the environment is known (a lower bound)."""
    policy, value = (obs_dim, *config.hidden, act_dim + 1), (obs_dim, *config.vf_hidden, 1)
    params = count_params(policy) + count_params(value) + policy[-2] * act_dim  # + gSDE's exploration matrix
    per_row = 3 * obs_dim + 2 * (sum(policy) + sum(value))
    return 8 * (6 * params + config.n_envs * (config.n_steps + 1) * per_row)


def require_memory(config: Config, obs_dim: int = 1, act_dim: int = 1) -> None:
    """``ConfigError`` if ``training_memory`` is above ``MEMORY_LIMIT``, before anything is allocated."""
    need = training_memory(config, obs_dim, act_dim)
    if need > MEMORY_LIMIT:
        raise ConfigError(f"this configuration would need about {need / 2**30:,.1f} GiB of memory to train "
                          f"(hidden={config.hidden}, vf_hidden={config.vf_hidden}, n_envs={config.n_envs}, "
                          f"n_steps={config.n_steps}), more than npgrad's limit of {MEMORY_LIMIT / 2**30:.1f} GiB "
                          "(half this machine's memory): use narrower networks or a smaller batch")


def require_bool(value: object, name: str) -> bool:
    """``bool(value)`` if ``value`` is ``True`` or ``False`` (NumPy's too), else ``ConfigError`` naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)
