"""npgrad: policy-gradient reinforcement learning in pure NumPy, every derivative by hand.

Shape suffixes used throughout (as in modular_rl / CS294):

====  ==========================================  ====  ==================================
axis  meaning                                     axis  meaning
====  ==========================================  ====  ==================================
n     batch (samples, or time x envs flattened)   p     flat parameter vector (``theta_p``)
o     observation dimension                       t     time steps of a rollout
a     action dimension (or number of actions)     e     parallel environments
h     hidden width                                i     a layer's input width
f     gSDE features (the last hidden layer)       S     independent agents (a leading axis)
====  ==========================================  ====  ==================================

Tangents carry a ``_dot`` (``theta_dot``), cotangents a ``_bar`` (``y_bar``); ``d`` prefixes
gradients of a loss.

Dependencies point one way: the maths (``nn``, ``distributions``, ``heads``, ``objectives``,
``policy``, ``solvers``, ``advantages``) -> the update rules (``algos/``) -> the loop (``train``) ->
the facade (``agent``: ``PPO``, ``learn``, ``predict``, ``save``, ``load``; ``population``) -> plumbing (``runs``,
``cli``).
"""
from .version import __version__  # noqa: E402

from .agent import A2C, ALGOS, NPG, PPO, TRPO, VPG, Agent, evaluate_policy, load  # noqa: E402
from .distributions import Categorical, DiagGaussian  # noqa: E402
from .nn import MLP  # noqa: E402
from .policy import Policy, ValueFunction  # noqa: E402
from .population import Population, load_population  # noqa: E402

__all__ = ["A2C", "ALGOS", "MLP", "NPG", "PPO", "TRPO", "VPG", "Agent", "Categorical", "DiagGaussian", "Policy",
           "Population", "ValueFunction", "evaluate_policy", "load", "load_population", "__version__"]
