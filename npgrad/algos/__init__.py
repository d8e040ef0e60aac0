"""One file per algorithm: a config dataclass and an update rule, ``update(model, batch, rng, schedule) -> info``.

The rules import what they share from ``common`` by name and never import the loop.
"""
from .a2c import A2CConfig, A2CUpdate
from .npg import NPGConfig, NPGUpdate
from .ppo import PPOConfig, PPOUpdate
from .trpo import TRPOConfig, TRPOUpdate
from .vpg import VPGConfig, VPGUpdate

UPDATES = {rule.Config.algo: rule for rule in (VPGUpdate, NPGUpdate, TRPOUpdate, PPOUpdate, A2CUpdate)}

__all__ = ["A2CConfig", "A2CUpdate", "NPGConfig", "NPGUpdate", "PPOConfig", "PPOUpdate", "TRPOConfig",
           "TRPOUpdate", "VPGConfig", "VPGUpdate", "UPDATES"]
