"""npgrad.logger.Logger: one CSV row and one TensorBoard event per update, holding exactly the diagnostics."""
import csv
import math
import struct
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import npgrad
from npgrad.errors import ConfigError
from npgrad.logger import Logger, scalars


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def read_events(folder):
    """The Events of the folder's one event file, read as TFRecords: ``uint64 length, uint32 masked CRC-32C of
    the length, data, uint32 masked CRC-32C of the data``, both CRCs checked."""
    from tensorboardX.crc32c import crc32c
    from tensorboardX.proto.event_pb2 import Event

    def masked(data):
        x = crc32c(data) & 0xFFFFFFFF
        return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    (path,) = folder.glob("events.out.tfevents.*")
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[at + 8:at + 12])
        record = data[at + 12:at + 12 + length]
        (record_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        assert header_crc == masked(header) and record_crc == masked(record), f"a corrupt record at byte {at}"
        events.append(Event.FromString(record))
        at += 16 + length
    return events


def assert_csv_rows_equal(rows, infos):
    for i, (row, info) in enumerate(zip(rows, infos)):
        for key, cell in row.items():
            if key not in info:
                assert cell == "", f"update {i}: {key} is not reported, so its cell is empty"
            elif isinstance(info[key], str) or isinstance(info[key], (bool, np.bool_)):
                assert cell == str(info[key]), f"update {i}: {key}"
            else:  # floats are written with repr: exact
                assert float(cell) == info[key] or (math.isnan(float(cell)) and math.isnan(info[key])), \
                    f"update {i}: {key} = {cell} in the CSV, {info[key]} in info"


@pytest.mark.parametrize("algo, n_steps", [("PPO", 32), ("TRPO", 64)])  # TRPO reports booleans too
def test_csv_has_one_row_per_update_equal_to_its_info(tmp_path, algo, n_steps):
    agent = getattr(npgrad, algo)("CartPole-v1", seed=0, n_envs=2, n_steps=n_steps)
    infos = []
    agent.learn(6 * 2 * n_steps, callback=[Logger(tmp_path / "run"), lambda a, info: infos.append(dict(info))])
    header, rows = read_csv(tmp_path / "run" / "progress.csv")
    keys = set().union(*infos)
    assert header == ["num_updates", "num_steps"] + sorted(keys - {"num_updates", "num_steps"} | {"update_failed"})
    assert len(rows) == len(infos) == 6, "one row per update"
    assert_csv_rows_equal(rows, infos)


def test_tensorboard_has_one_event_per_update_at_num_steps(tmp_path):
    pytest.importorskip("tensorboardX")
    agent = npgrad.TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=64)
    infos = []
    with Logger(tmp_path / "run", formats=("csv", "tensorboard")) as logger:
        agent.learn(5 * 128, callback=[logger, lambda a, info: infos.append(dict(info))])
        events = read_events(tmp_path / "run")  # readable before close(): flushed at the end of learn
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events[1:]] == [info["num_steps"] for info in infos] == [128, 256, 384, 512, 640]
    for event, info in zip(events[1:], infos):
        written = {v.tag: v.simple_value for v in event.summary.value}
        assert {"rollout/ep_return_mean", "time/num_steps", "train/kl", "train/cg_breakdown"} <= set(written)
        expected = scalars(info)
        assert written.keys() == expected.keys(), "every finite number, and nothing else"
        for tag, value in expected.items():  # TensorBoard keeps float32
            assert written[tag] == np.float32(value), f"update {info['num_updates']}: {tag}"
    assert len(read_events(tmp_path / "run")) == 6, "close() adds nothing and loses nothing"


def test_new_keys_widen_the_csv_and_non_numbers_stay_out_of_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX")
    infos = [{"num_updates": 1, "num_steps": 10, "ep_return_mean": float("nan"), "kl": 0.125, "accepted": True},
             {"num_updates": 2, "num_steps": 20, "ep_return_mean": 3.5, "kl": 0.25, "accepted": False,
              "beta": 2.0, "update_failed": "no step accepted"}]
    logger = Logger(tmp_path, formats=["csv", "tensorboard"])
    for info in infos:
        logger(SimpleNamespace(num_steps=info["num_steps"], progress=SimpleNamespace(total_steps=20)), info)
    logger.close()
    header, rows = read_csv(tmp_path / "progress.csv")
    assert header == ["num_updates", "num_steps", "accepted", "ep_return_mean", "kl", "update_failed", "beta"], \
        "a key first seen later is added at the end"
    assert_csv_rows_equal(rows, infos)
    written = [{v.tag: v.simple_value for v in e.summary.value} for e in read_events(tmp_path)[1:]]
    assert written[0] == {"time/num_updates": 1, "time/num_steps": 10, "train/kl": 0.125, "train/accepted": 1.0}, \
        "NaN and strings are left out, booleans are 0/1"
    assert written[1]["rollout/ep_return_mean"] == 3.5 and written[1]["train/beta"] == 2.0
    assert "train/update_failed" not in written[1]


def test_a_new_logger_starts_a_new_csv_and_a_closed_one_refuses_to_log(tmp_path):
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=32)
    with Logger(tmp_path) as logger:
        agent.learn(192, callback=logger)
        agent.learn(128, callback=logger)  # the same logger goes on with the same file
    assert len(read_csv(tmp_path / "progress.csv")[1]) == 5
    with pytest.raises(ConfigError, match="closed"):
        agent.learn(64, callback=logger)
    assert agent.num_updates == 5, "refused before training"
    agent.learn(64, callback=Logger(tmp_path))
    rows = read_csv(tmp_path / "progress.csv")[1]
    assert [(r["num_updates"], r["num_steps"]) for r in rows] == [("6", "384")], "another run's rows are gone"


def test_missing_tensorboardx_says_which_extra_to_install(tmp_path, monkeypatch):
    for name in {"tensorboardX"} | {m for m in sys.modules if m.startswith("tensorboardX.")}:
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError, as when not installed
    with pytest.raises(ConfigError) as error:
        Logger(tmp_path / "logs", formats=("csv", "tensorboard"))
    assert 'pip install "npgrad[tensorboard]"' in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "logs").exists(), "refused before anything is written"


@pytest.mark.parametrize("formats", [(), ("csv", "stdout"), "tb", 3, None])
def test_unknown_formats_are_refused_with_the_valid_ones(tmp_path, formats):
    with pytest.raises(ConfigError, match="'csv', 'tensorboard'"):
        Logger(tmp_path, formats=formats)


def test_tensorboard_itself_reads_the_curves(tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    agent = npgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=32)
    infos = []
    with Logger(tmp_path, formats="tensorboard") as logger:
        agent.learn(256, callback=[logger, lambda a, info: infos.append(dict(info))])
    board = accumulator.EventAccumulator(str(tmp_path))
    board.Reload()
    assert {"rollout/ep_return_mean", "train/approx_kl", "time/num_steps"} <= set(board.Tags()["scalars"])
    kl = board.Scalars("train/kl")
    assert [s.step for s in kl] == [info["num_steps"] for info in infos]
    np.testing.assert_array_equal([s.value for s in kl], np.float32([info["kl"] for info in infos]))
