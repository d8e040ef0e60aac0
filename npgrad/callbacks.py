"""Callbacks for ``Agent.learn``: each is called as ``callback(agent, info)`` after every update; returning
``False`` stops training. A callback with a ``start_clock()`` method is told when training (re)starts.
"""
from __future__ import annotations

import time


class Evaluator:
    """A ``learn`` callback: every ``every`` environment steps, evaluate the deterministic policy.

    Records ``(env_steps, training_seconds, mean_return)`` in ``self.history``; training seconds
    exclude evaluation time (the protocol of the benchmarks). ``on_eval(agent, diagnostics, row)``
    is called after each evaluation, e.g. to print a line.
    """

    def __init__(self, every=5000, episodes=10, on_eval=None):
        self.every, self.episodes, self.on_eval = every, episodes, on_eval
        self.history, self.next_eval, self.train_seconds = [], every, 0.0
        self._last = None

    def start_clock(self):
        self._last = time.perf_counter()

    def __call__(self, agent, diagnostics):
        now = time.perf_counter()
        self.train_seconds += now - (self._last if self._last is not None else now)
        if agent.num_steps >= self.next_eval:
            while self.next_eval <= agent.num_steps:
                self.next_eval += self.every
            row = (agent.num_steps, self.train_seconds, agent.evaluate(self.episodes).mean)
            self.history.append(row)
            if self.on_eval is not None:
                self.on_eval(agent, diagnostics, row)
        self._last = time.perf_counter()
        return True
