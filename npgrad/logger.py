"""``Logger``: a ``learn`` callback that writes every update's diagnostics to a folder, as SB3's logger does.

    with Logger("logs/run1", formats=("csv", "tensorboard")) as logger:
        agent.learn(50_000, callback=logger)          # then: tensorboard --logdir logs

Each update writes one row, every key of ``info`` (``Agent.learn``'s diagnostics), to each format:

========================  =====================================================================================
format                    what it writes
========================  =====================================================================================
``csv``                   ``progress.csv``: the columns of ``npgrad train``'s progress.csv (without its
                          evaluations): ``num_updates, num_steps``, then the other keys sorted (``update_failed``
                          among them). A key first seen later is added at the end, earlier rows left blank there
                          (as an ``EvalCallback``'s ``eval/mean_reward`` and ``eval/std_reward``, which only the
                          rows of updates followed by an evaluation have). Floats are written exactly (``repr``),
                          strings and booleans as they are.
``tensorboard``           ``events.out.tfevents.<time>.<host>``: the numbers (booleans as 0/1) as scalars at
                          step ``num_steps``, in float32, tagged as SB3 groups its own (``tag``): ``rollout/``
                          the episodes (the means over the latest 100, ``STATS_WINDOW``), ``time/`` the counters,
                          ``train/`` what the update reports, ``eval/`` an ``EvalCallback``'s evaluations.
                          Strings are not written, nor NaN: until an episode has ended there is no
                          ``ep_return_mean`` to plot. Needs ``pip install "npgrad[tensorboard]"``
                          (tensorboardX, which needs no torch); viewing the files needs TensorBoard itself
                          (``pip install tensorboard``).
========================  =====================================================================================

``learn`` calls a ``Logger`` after its other callbacks, wherever it is in the list, so that it logs what they add to
``info``. A new ``Logger`` starts ``progress.csv`` afresh and adds a new event file (SB3 does the same): give each
run its own folder. The CSV is on disk after every update; the event file is flushed every ``FLUSH_SECONDS``, when
a ``learn`` call reaches its ``total_steps``, and by ``close()`` (or leaving the ``with`` block).
"""
from __future__ import annotations

import math
import numbers
import os
import time

import numpy as np

from .errors import ConfigError, shown
from .runs import PROGRESS_OPTIONAL, CsvLog

FORMATS = ("csv", "tensorboard")
FLUSH_SECONDS = 10  # each flush fsyncs the event file: cheap on an SSD, milliseconds on a busy disk
ROLLOUT = ("episodes", "ep_return_mean", "ep_length_mean")
TIME = ("num_steps", "num_updates", "failed_updates")


def tag(key):
    """The TensorBoard tag of a diagnostic.

    >>> tag("ep_return_mean"), tag("ep_length_mean"), tag("episodes"), tag("num_steps"), tag("kl")
    ('rollout/ep_return_mean', 'rollout/ep_length_mean', 'rollout/episodes', 'time/num_steps', 'train/kl')
    >>> tag("eval/mean_reward")
    'eval/mean_reward'
    """
    if "/" in key:  # grouped already, as an EvalCallback's eval/mean_reward
        return key
    return f"{'rollout' if key in ROLLOUT else 'time' if key in TIME else 'train'}/{key}"


def scalars(info):
    """``{tag: value}`` of the finite numbers of ``info``: what goes to TensorBoard."""
    return {tag(k): float(v) for k, v in info.items()
            if isinstance(v, (numbers.Real, np.bool_)) and math.isfinite(v)}


class Logger:
    """A ``learn`` callback writing each update's ``info`` to ``folder`` in ``formats`` (some of ``FORMATS``; the
    module docstring says what goes where). ``close()`` it, or use it as a context manager."""

    after_others = True  # learn calls it after the other callbacks: it logs what they add (an EvalCallback's)

    def __init__(self, folder, formats=("csv",)):
        formats = (formats,) if isinstance(formats, str) else formats
        if not isinstance(formats, (list, tuple)) or not formats or any(f not in FORMATS for f in formats):
            raise ConfigError(f"formats must be a non-empty list of {', '.join(map(repr, FORMATS))}; "
                              f"got {shown(formats)}")
        if "tensorboard" in formats:
            try:  # SummaryWriter would queue every scalar to a writer thread: ~65 us each, 13% of a CartPole
                # PPO update; one Event per update, written here, costs ~90 us in all
                from tensorboardX.event_file_writer import EventsWriter
                from tensorboardX.proto.event_pb2 import Event
                from tensorboardX.proto.summary_pb2 import Summary
            except ImportError:
                raise ConfigError('formats=("tensorboard",) needs tensorboardX: '
                                  'pip install "npgrad[tensorboard]"') from None
            self.Event, self.Summary = Event, Summary
        self.folder = os.fspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.csv = self.events = None
        if "csv" in formats:
            path = os.path.join(self.folder, "progress.csv")
            if os.path.exists(path):
                os.remove(path)  # CsvLog appends to an existing file: that would be another run's
            self.csv = CsvLog(path, ["num_updates", "num_steps"], PROGRESS_OPTIONAL)
        if "tensorboard" in formats:
            self.events = EventsWriter(os.path.join(self.folder, "events"))
        self.last_flush, self.closed = time.monotonic(), False

    def start_clock(self):
        self.refuse_if_closed()  # learn calls this before its first update

    def __call__(self, agent, info):
        self.refuse_if_closed()
        if self.csv is not None:
            self.csv.write(info)
        if self.events is not None:
            values = [self.Summary.Value(tag=t, simple_value=v) for t, v in scalars(info).items()]
            self.events.write_event(self.Event(wall_time=time.time(), step=agent.num_steps,
                                               summary=self.Summary(value=values)))
            if time.monotonic() - self.last_flush > FLUSH_SECONDS or agent.num_steps >= agent.progress.total_steps:
                self.flush()
        return True

    def flush(self):
        if self.events is not None:
            self.events.flush()
        self.last_flush = time.monotonic()

    def close(self):
        if not self.closed and self.events is not None:
            self.events.close()
        self.closed = True

    def refuse_if_closed(self):
        if self.closed:
            raise ConfigError(f"this Logger of {self.folder!r} is closed: make a new one to log another run")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
