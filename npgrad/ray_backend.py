"""Populations on a Ray cluster (``pip install "npgrad[ray]"``): ``backend="ray"``, ``--backend ray``.

The members are split into chunks, and each chunk trains inside one Ray task as a local worker would
train it (``npgrad/population.py``): member by member, the same code, the same numbers. A task
receives plain data (algorithm, environment id, seeds, configurations, arrays; for a run folder,
the member's files) and returns plain data: a member's arrays and JSON, or its run folder's files
(``.npz``, JSON, CSV) as bytes, which the driver writes where a local run would have. Nothing is
written until a chunk is back, so a task that Ray retries after its worker died (``MAX_RETRIES``)
starts from the same inputs, and a run folder interrupted mid-sweep resumes without training its
finished members again.

A cluster: ``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the others, then
``npgrad train ... --backend ray --address HEAD:6379`` (or ``address="auto"`` on a cluster machine).
Without an address a local Ray instance is started with this machine's cores.
"""
from __future__ import annotations

import os
import tempfile

from .errors import ConfigError

MAX_RETRIES = 3
"""How many times Ray reruns a task whose worker process or machine died."""
MISSING = 'backend="ray" needs Ray, which is not installed: pip install "npgrad[ray]"'


def require_ray():
    """The ``ray`` module, or one ``ConfigError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(MISSING) from None
    return ray


def connect(address=None):
    """Join the cluster at ``address``, or start a local Ray instance; a session already open is kept."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    return ray


def default_chunks(ray):
    """One chunk per CPU of the cluster: every core busy, each task a population of its own."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def map_chunks(fn, chunks, ray, stopped=lambda: False):
    """Run ``fn(chunk)`` for every chunk as Ray tasks; yield ``(chunk index, result)`` as each finishes. A task whose
    worker dies is retried up to ``MAX_RETRIES`` times; an exception ``fn`` raises is not retried (it would recur).
    Tasks still running when the caller stops (Ctrl-C, ``stopped()`` true, an error, the generator closed) are
    cancelled: on a cluster they would otherwise train on with no one to take their results."""
    remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(fn)
    refs = {remote.remote(chunk): i for i, chunk in enumerate(chunks)}
    pending = list(refs)
    try:
        while pending and not stopped():
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            if done:
                yield refs[done[0]], ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


# --- what a task does -------------------------------------------------------------------------------------


def run_chunk(jobs):
    """A chunk of member run folders trained as stacks by ``npgrad train`` arguments (``population_runs.run_stack``),
    each in a scratch folder made from the files it was sent (none for a new member; a checkpointed one resumes).
    Returns ``[(status, message, files)]``, ``files`` being each member folder's ``{relative path: bytes}`` after."""
    from .population_runs import run_stack

    with tempfile.TemporaryDirectory(prefix="npgrad-") as scratch:
        argvs, folders = [], []
        for k, job in enumerate(jobs):
            member_dir, config = os.path.join(scratch, f"member-{k}"), os.path.join(scratch, f"config-{k}.yaml")
            write_files(member_dir, job["files"])
            if job["config_text"] is not None:
                with open(config, "w") as f:
                    f.write(job["config_text"])
            argvs.append([member_dir if a == job["dir"] else config if a == job["config"] else a for a in job["argv"]])
            folders.append(member_dir)
        results = run_stack(argvs)
        return [(status, message, read_files(folder) if os.path.isdir(folder) else {})
                for (status, message), folder in zip(results, folders)]


def read_files(folder):
    """``{relative path: bytes}`` of every file under ``folder`` (a member's run folder), and ``{path: None}`` of every
    folder in it (an empty ``checkpoints/`` is part of a run folder too)."""
    files = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            files[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def write_files(folder, files):
    """Write ``{relative path: bytes or None (a folder)}`` under ``folder``; a path that would leave it is refused."""
    root = os.path.realpath(folder)
    for relative, data in files.items():
        path = os.path.realpath(os.path.join(folder, relative))
        if os.path.commonpath([root, path]) != root:
            raise ConfigError(f"a member's file {relative!r} would be written outside its folder")
        if data is None:
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
