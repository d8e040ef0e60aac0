"""Random numbers for a population: one generator per member, drawn from as one.

Every random draw in npgrad asks a generator for an array of a given shape (``rng.random(shape)``,
``rng.standard_normal(shape)``, ``rng.permutation(n)``). ``Generators`` answers the same calls
for ``S`` members stacked in front: the draw of shape ``(S, ...)`` has row ``s`` from member ``s``'s
own ``np.random.Generator``, drawn exactly as that member alone would draw it. So code written for
one agent samples actions, exploration matrices and minibatches for a population unchanged, and
each member's stream of random numbers stays its own.
"""
from __future__ import annotations

import numpy as np


class Generators:
    """``S`` ``np.random.Generator`` s answering one call with a stacked draw (module docstring)."""

    def __init__(self, generators):
        self.generators = list(generators)

    def __len__(self):
        return len(self.generators)

    def _each(self, draw, shape):
        if shape[0] != len(self.generators):
            raise ValueError(f"a draw for {len(self.generators)} members needs a leading axis of that size, "
                             f"got shape {shape}")
        return np.stack([draw(g, shape[1:]) for g in self.generators])

    def random(self, shape):
        return self._each(lambda g, s: g.random(s), tuple(shape))

    def standard_normal(self, shape):
        return self._each(lambda g, s: g.standard_normal(s), tuple(shape))

    def permutation(self, n, where=None):
        """``(S, n)``: a permutation of ``range(n)`` from each member's generator; a member not in ``where`` (a
        boolean mask) draws nothing and gets ``range(n)``, so its stream is left as it is."""
        where = np.ones(len(self), bool) if where is None else np.broadcast_to(where, (len(self),))
        return np.stack([g.permutation(n) if w else np.arange(n) for g, w in zip(self.generators, where)])
