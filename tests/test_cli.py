"""End-to-end use of the `biosig` command as a user would run it: real files, real LSL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest

from biosig.cli import COMMANDS, main
from biosig.config import PipelineConfig
from biosig.io import read_recording
from biosig.io.recording import Markers, Recording
from biosig.io.xdf import read_xdf
from biosig.stream.inlet import Inlet
from biosig.stream.pipeline import process_recording
from biosig.stream.replay import Player
from biosig.stream.sinks import read_results_csv
from conftest import RECORDINGS

GRABMYO = RECORDINGS / "grabmyo_session1_participant1_gesture11_trial1.xdf"
MYO = RECORDINGS / "myo_12345-1.xdf"


def _biosig(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "biosig", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"biosig {command}" in out and len(out) > 200


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_a_bad_option_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["process", str(MYO), "--out", "x.csv", "--window", "abc"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--window" in err[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["process", "{missing}", "--out", "{out}"], "not found"),
        (["process", str(MYO), "--out", "{out}", "--window", "-1"], "--window"),
        (["process", str(MYO), "--out", "{out}", "--stream", "nope"], "nope"),
        (["info", str(RECORDINGS / "README.md")], "README.md"),
    ],
)
def test_user_mistakes_are_one_line_on_stderr_and_exit_2(args, message, tmp_path, capsys):
    argv = [a.format(missing=tmp_path / "missing.xdf", out=tmp_path / "out.csv") for a in args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0] and "Traceback" not in captured.err


def test_process_file_writes_features_with_labels_equal_to_the_library(tmp_path, capsys):
    out = tmp_path / "features.csv"
    assert main(["process", str(MYO), "--out", str(out)]) == 0
    table = read_results_csv(out)
    recording = read_recording(MYO)
    stream = recording.signal()
    expected = process_recording(stream, PipelineConfig.for_rate(stream.srate, modality="EMG"))
    np.testing.assert_array_equal(table["t_end"], expected.t_end)
    for j, name in enumerate(expected.feature_names):
        np.testing.assert_array_equal(table[name], expected.features[:, j])
    # Labels "0".."7" read back as numbers from the CSV.
    assert {int(v) for v in table["label"]} == set(range(8))
    # The refusal to overwrite protects earlier results.
    assert main(["process", str(MYO), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def _read_all(pull, n_expected, n_channels, timeout=30.0):
    data, stamps = [], []
    deadline = time.monotonic() + timeout
    while sum(len(d) for d in data) < n_expected and time.monotonic() < deadline:
        chunk, ts = pull()
        if len(ts):
            data.append(np.asarray(chunk).reshape(len(ts), n_channels))
            stamps.append(np.asarray(ts))
        else:
            time.sleep(0.01)
    return np.concatenate(data), np.concatenate(stamps)


@pytest.mark.parametrize("reader", ["biosig", "pylsl"])
def test_cli_replay_of_a_bundled_xdf_is_bit_identical(reader):
    stream = read_xdf(GRABMYO).signal()
    raw = np.asarray(stream.data, dtype=np.float64)
    proc = _biosig("replay", str(GRABMYO), "--speed", "4", "--stream", stream.name, "--wait", "20")
    try:
        if reader == "biosig":
            inlet = Inlet(name=stream.name, resolve_timeout=10).connect()
            data, ts = _read_all(inlet.pull, stream.n_samples, stream.n_channels)
            assert inlet.channel_labels == stream.channel_labels
            inlet.close()
        else:
            info = pylsl.resolve_byprop("name", stream.name, timeout=10)[0]
            bare = pylsl.StreamInlet(info, max_chunklen=512)
            bare.open_stream(timeout=10)
            data, ts = _read_all(lambda: bare.pull_chunk(timeout=0.0, max_samples=4096),
                                 stream.n_samples, stream.n_channels)
            assert bare.info().channel_count() == stream.n_channels
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert data.shape == raw.shape
    # Bit-identical values, in order (GRABMyo samples are float64 in mV).
    assert np.array_equal(np.asarray(data, dtype=np.float64), raw)
    np.testing.assert_allclose(np.diff(ts), 1 / stream.srate / 4, atol=2e-3)


def test_record_live_streams_reads_back_identical(tmp_path, unique_name):
    recording = read_xdf(MYO)
    emg = recording.signal()
    emg = emg.pick_channels(emg.channel_labels)
    emg.data, emg.timestamps, emg.name = emg.data[:600], emg.timestamps[:600], unique_name
    labels = Markers(name=f"{unique_name}-labels", timestamps=[0.5, 1.5, 2.5], values=["0", "ü 1", ""])
    player = Player(Recording(streams={emg.name: emg}, markers={labels.name: labels}), speed=2.0).open()
    out = tmp_path / "session.xdf"
    proc = _biosig("record", "--name", emg.name, "--name", labels.name, "--out", str(out), "--duration", "4")
    try:
        assert player.wait_for_consumers(15)
        player.start()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        player.stop()
    assert proc.returncode == 0, stderr
    back = read_xdf(out)
    got = back.streams[emg.name]
    assert np.array_equal(got.data, emg.data)
    assert got.channel_labels == emg.channel_labels and got.srate == emg.srate
    assert back.markers[labels.name].values == labels.values
    assert main(["record", "--name", emg.name, "--out", str(out), "--timeout", "0.5"]) == 2


def test_record_killed_mid_write_leaves_a_readable_file(tmp_path, unique_name):
    emg = read_xdf(MYO).signal()
    emg = emg.pick_channels(emg.channel_labels)
    emg.name = unique_name
    player = Player(Recording(streams={emg.name: emg}), speed=4.0).open()
    out = tmp_path / "killed.xdf"
    proc = _biosig("record", "--name", emg.name, "--out", str(out))
    try:
        assert player.wait_for_consumers(15)
        player.start()
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        player.stop()
    back = read_xdf(out)
    got = back.streams[emg.name]
    assert got.n_samples > 200
    assert np.array_equal(got.data, emg.data[: got.n_samples])


def test_demo_runs_the_live_pipeline_and_matches_offline():
    proc = _biosig("demo", "--seconds", "4", "--speed", "8")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    assert "live features equal offline features: yes" in stdout
    assert "received 800" in stdout
