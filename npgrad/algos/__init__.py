"""One file per algorithm; each states its update rule and nothing else."""
from .a2c import A2C
from .npg import NPG
from .ppo import PPO
from .trpo import TRPO
from .vpg import VPG

ALGOS = {cls.name: cls for cls in (VPG, NPG, TRPO, PPO, A2C)}

__all__ = ["A2C", "NPG", "PPO", "TRPO", "VPG", "ALGOS"]
