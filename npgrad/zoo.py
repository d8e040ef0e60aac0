"""The RL-Zoo's hyperparameter files (``hyperparams/ppo.yml`` of rl-baselines3-zoo), read by ``--config``.

A Zoo file maps environment ids to settings in SB3's words::

    CartPole-v1:
      n_envs: 8
      n_timesteps: !!float 1e5
      policy: 'MlpPolicy'
      learning_rate: lin_0.001
      clip_range: lin_0.2
      policy_kwargs: "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256], vf=[256]))"

``zoo_settings`` takes the entry of the environment being trained (or a flat mapping, as ``npgrad defaults``
prints) and says it in npgrad's words: ``lin_x`` is ``x`` with ``anneal_lr`` (or ``anneal_clip``), ``normalize``
is ``normalize_obs`` and ``normalize_reward``, ``policy_kwargs`` gives ``hidden``, ``vf_hidden``, ``activation``
and ``log_std_init``, and ``n_timesteps`` is the budget. ``policy_kwargs`` and a ``normalize`` dict are Python
text: they are parsed (``ast``), never evaluated, and only literals, ``dict(...)`` and ``nn.ReLU``/``nn.Tanh`` are
taken. What a file may not make npgrad do (import its ``env_wrapper`` or ``callback``) is refused.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import warnings
from typing import Any

from .errors import ConfigError, NpgradWarning, shown

ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh"}
REFUSED = ("env_wrapper", "vec_env_wrapper", "callback", "frame_stack", "env_kwargs")
NORMALIZE = {"norm_obs": "normalize_obs", "norm_reward": "normalize_reward", "clip_obs": "clip_obs",
             "clip_reward": "clip_reward"}


def is_zoo_file(values: dict) -> bool:
    """Whether a file's mapping is keyed by environment, as the Zoo's are (every value a mapping)."""
    return bool(values) and all(isinstance(v, dict) for v in values.values())


def zoo_settings(values: dict, env_id: str, config_cls: Any, where: str) -> tuple[dict, int | None]:
    """``(settings, budget)``: a file's settings in npgrad's names (SB3's aliases left for the config to rename)
    for ``config_cls``, and its ``n_timesteps`` (None if it has none). A Zoo file's settings are its entry for
    ``env_id``; a flat mapping's are the mapping, read alike (``lin_``, ``policy_kwargs``, ...)."""
    zoo = is_zoo_file(values)
    if zoo and env_id not in values:
        raise ConfigError(f"{where}: an RL-Zoo file with settings for {sorted(values)}, none for {env_id}")
    entry, where = (dict(values[env_id]), f"{where}: {env_id}") if zoo else (dict(values), where)
    for name in REFUSED:
        if name in entry:
            raise ConfigError(f"{where}: {name} is refused: npgrad does not build or import what a file names; "
                              "wrap the environment yourself and pass it in code")
    policy = entry.pop("policy", "MlpPolicy")
    if policy != "MlpPolicy":
        raise ConfigError(f"{where}: policy {shown(policy)}: npgrad's policy is an MLP (MlpPolicy)")
    budget = entry.pop("n_timesteps", None)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not math.isfinite(budget) or budget != int(budget) or budget < 1):
        raise ConfigError(f"{where}: n_timesteps must be a positive whole number of steps, got {shown(budget)}")
    settings: dict[str, Any] = {}
    for name, value in entry.items():
        if isinstance(value, str) and value.startswith("lin_"):
            settings.update(schedule(name, value, config_cls, where))
        elif name == "normalize":
            settings.update(normalize(value, where))
        elif name == "policy_kwargs":
            settings.update(policy_kwargs(value, where))
        elif name == "vf_coef" and zoo and config_cls.REQUIRES.get(name) == ("shared_trunk", True):
            warnings.warn(f"{where}: vf_coef is left out: it weighs the value loss only with shared_trunk=True; "
                          "here the value network is separate, with its own Adam step", NpgradWarning, stacklevel=4)
        else:
            settings[name] = value
    return settings, None if budget is None else int(budget)


def schedule(name: str, text: str, config_cls: Any, where: str) -> dict:
    """``lin_0.001`` -> ``{name: 0.001, anneal_...: True}``: SB3's linear schedule is npgrad's annealing to 0, for
    the fields that have one (``Config.SCHEDULED``; ``name`` may be SB3's alias of one)."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    scheduled = {field: flag for field, flag in config_cls.SCHEDULED.items() if flag in fields}
    field = config_cls.ALIASES.get(name, name)
    if field not in scheduled:
        which = f"only {' and '.join(scheduled)} can" if scheduled else "no setting can"
        raise ConfigError(f"{where}: {name}: {text}: {which} have a schedule in {config_cls.__name__}")
    try:
        return {name: float(text[len("lin_"):]), scheduled[field]: True}
    except ValueError:
        raise ConfigError(f"{where}: {name}: {text} is not lin_ followed by a number") from None


def normalize(value: Any, where: str) -> dict:
    """The Zoo's ``normalize``: ``true`` (observations and rewards), or the text of a dict of VecNormalize's
    ``norm_obs``, ``norm_reward``, ``clip_obs``, ``clip_reward``."""
    if isinstance(value, bool):
        return {"normalize_obs": value, "normalize_reward": value}
    kwargs = call_or_dict(parse(value, "normalize", where), "normalize", where)
    unknown = sorted(set(kwargs) - set(NORMALIZE))
    if unknown:
        raise ConfigError(f"{where}: normalize: npgrad has no {unknown}; it takes {sorted(NORMALIZE)}")
    settings = {NORMALIZE[k]: literal(v, f"normalize: {k}", where) for k, v in kwargs.items()}
    settings.setdefault("normalize_obs", True)  # as VecNormalize's defaults
    settings.setdefault("normalize_reward", True)
    return settings


def policy_kwargs(text: Any, where: str) -> dict:
    """The Zoo's ``policy_kwargs`` text, e.g. ``dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
    net_arch=dict(pi=[256, 256], vf=[256, 256]))``, as ``hidden``, ``vf_hidden``, ``activation``, ``log_std_init``."""
    settings: dict[str, Any] = {}
    for name, node in call_or_dict(parse(text, "policy_kwargs", where), "policy_kwargs", where).items():
        if name == "net_arch":
            settings.update(net_arch(node, where))
        elif name == "activation_fn":
            fn = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if fn not in ACTIVATIONS:
                raise ConfigError(f"{where}: policy_kwargs: activation_fn {ast.unparse(node)}: npgrad has "
                                  f"{', '.join(f'nn.{a}' for a in ACTIVATIONS)}")
            settings["activation"] = ACTIVATIONS[fn]
        elif name == "log_std_init":
            settings["log_std_init"] = literal(node, "policy_kwargs: log_std_init", where)
        elif name == "ortho_init":
            warnings.warn(f"{where}: policy_kwargs: ortho_init is left out: npgrad's networks always start "
                          "orthogonal", NpgradWarning, stacklevel=5)
        else:
            raise ConfigError(f"{where}: policy_kwargs: npgrad has no {name}; it takes net_arch, activation_fn, "
                              "log_std_init (and leaves out ortho_init)")
    return settings


def net_arch(node: ast.AST, where: str) -> dict:
    """``[64, 64]`` (both networks), ``dict(pi=[...], vf=[...])`` or ``[dict(pi=[...], vf=[...])]``."""
    if isinstance(node, ast.List) and len(node.elts) == 1 and not isinstance(node.elts[0], ast.Constant):
        node = node.elts[0]  # SB3 < 1.8's list holding one dict
    if isinstance(node, (ast.Call, ast.Dict)):
        parts = call_or_dict(node, "policy_kwargs: net_arch", where)
        if set(parts) != {"pi", "vf"}:
            raise ConfigError(f"{where}: policy_kwargs: net_arch must give pi and vf, got {sorted(parts)}")
        return {"hidden": widths(parts["pi"], where), "vf_hidden": widths(parts["vf"], where)}
    return {"hidden": widths(node, where), "vf_hidden": widths(node, where)}


def widths(node: ast.AST, where: str) -> tuple:
    value = literal(node, "policy_kwargs: net_arch", where)
    if not isinstance(value, list) or not all(isinstance(w, int) for w in value):
        raise ConfigError(f"{where}: policy_kwargs: net_arch widths must be a list of integers, got {shown(value)}")
    return tuple(value)


def parse(text: Any, name: str, where: str) -> ast.expr:
    """The expression ``text`` holds, parsed and never run."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: {name} must be the text of a dict, got {shown(text)}")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ConfigError(f"{where}: {name} is not a Python expression: {getattr(e, 'msg', e)}") from None


def call_or_dict(node: ast.AST, name: str, where: str) -> dict:
    """``{key: value node}`` of ``dict(a=..., b=...)`` or ``{'a': ..., 'b': ...}``; anything else is refused."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args
            and all(k.arg is not None for k in node.keywords)):
        return {k.arg: k.value for k in node.keywords}
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str)
                                          for k in node.keys):
        return {k.value: v for k, v in zip(node.keys, node.values)}  # type: ignore[union-attr]
    raise ConfigError(f"{where}: {name} must be dict(...) or {{...}} of settings, got {shown(ast.unparse(node))}")


def literal(node: ast.AST, name: str, where: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise ConfigError(f"{where}: {name} must be a plain value, got {shown(ast.unparse(node))}") from None
