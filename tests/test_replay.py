"""Replay of recordings on LSL (Player, ``biosig replay``), read back on loopback.

Streams get names unique to the test so that concurrent runs cannot cross-talk.
"""

from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest

from biosig import BiosigError, Markers, Recording, Stream
from biosig.cli import main
from biosig.io.recording import markers_from_labels
from biosig.stream.inlet import Inlet
from biosig.stream.replay import Player

MYO_RATE = 200.0
SPEED = 10.0


@pytest.fixture
def myo_recording(shared_data, unique_name) -> Recording:
    """4 s of a real Myo file (8 int8 EMG channels at 200 Hz) holding one change of label."""
    rows = np.loadtxt(shared_data / "myo-readings-dataset" / "12345-1" / "1.txt", delimiter=",")
    rows = rows[800:1600]  # the label changes from 0 to 1 at row 999
    timestamps = np.arange(rows.shape[0]) / MYO_RATE
    emg = Stream(
        name=f"{unique_name}-emg",
        type="EMG",
        data=rows[:, :8].astype(np.float32),
        timestamps=timestamps,
        srate=MYO_RATE,
        channel_labels=[f"emg{i + 1}" for i in range(8)],
        channel_units=["adu"] * 8,
        channel_format="float32",
    )
    labels = markers_from_labels(rows[:, 8], timestamps, name=f"{unique_name}-labels")
    assert labels.values == ["0", "1"]
    return Recording().add_stream(emg).add_markers(labels)


def _collect(pull, done, *, settle_s: float = 0.3, timeout: float = 10.0):
    """Call ``pull()`` until ``done()`` and then ``settle_s`` more seconds; concatenate."""
    values, stamps = [], []
    deadline = time.monotonic() + timeout
    settle_end = None
    while time.monotonic() < deadline:
        data, ts = pull()
        if len(ts):
            values.append(np.asarray(data))
            stamps.append(np.asarray(ts))
        if settle_end is None and done():
            settle_end = time.monotonic() + settle_s
        if settle_end is not None and time.monotonic() > settle_end:
            break
        time.sleep(0.005)
    return np.concatenate(values), np.concatenate(stamps)


def _check_replayed(emg: Stream, labels: Markers, data, stamps, marker_values, marker_stamps):
    np.testing.assert_array_equal(data, emg.data)  # every sample, in order, bit-identical
    # Timestamps are the recorded ones / SPEED, re-based: exact up to the clock offset.
    np.testing.assert_allclose(np.diff(stamps), 1 / MYO_RATE / SPEED, atol=1e-6, rtol=0)
    assert marker_values == labels.values
    expected = stamps[0] + (labels.timestamps - emg.timestamps[0]) / SPEED
    # Each inlet estimates its own clock offset; on one host they differ by microseconds.
    np.testing.assert_allclose(marker_stamps, expected, atol=1e-4, rtol=0)


def test_replay_read_by_biosig_inlet(myo_recording):
    emg, labels = myo_recording.signal(), myo_recording.labels()
    player = Player(myo_recording, speed=SPEED).open()
    signal_inlet = Inlet(name=emg.name, source_id=player.source_id_of(emg.name)).connect()
    label_inlet = Inlet(name=labels.name).connect()
    assert signal_inlet.channel_labels == emg.channel_labels
    assert signal_inlet.channel_format == "float32" and signal_inlet.srate == MYO_RATE
    assert player.wait_for_consumers(5.0)
    start = time.monotonic()
    player.start()
    data, stamps = _collect(signal_inlet.pull, player.finished.is_set)
    elapsed = time.monotonic() - start
    marker_values, marker_stamps = label_inlet.pull()
    player.stop()

    _check_replayed(
        emg, labels, data, stamps, [v for (v,) in marker_values.tolist()], marker_stamps
    )
    assert signal_inlet.stats.measured_rate == pytest.approx(MYO_RATE * SPEED, rel=1e-4)
    assert not signal_inlet.stats.gaps
    assert emg.duration / SPEED <= elapsed < emg.duration / SPEED + 2.0  # paced, not dumped
    assert not player.is_alive and player.error is None


def test_replay_read_by_bare_pylsl_inlet(myo_recording):
    emg, labels = myo_recording.signal(), myo_recording.labels()
    player = Player(myo_recording, speed=SPEED, source_id_prefix="bare-").open()
    (emg_info,) = pylsl.resolve_byprop("source_id", f"bare-{emg.name}", 1, 5.0)
    (label_info,) = pylsl.resolve_byprop("name", labels.name, 1, 5.0)
    emg_inlet, label_inlet = pylsl.StreamInlet(emg_info), pylsl.StreamInlet(label_info)
    full = emg_inlet.info(5.0)
    assert full.channel_format() == pylsl.cf_float32 and full.channel_count() == 8
    assert full.nominal_srate() == MYO_RATE and full.type() == "EMG"
    assert full.get_channel_labels() == emg.channel_labels
    assert full.get_channel_units() == ["adu"] * 8
    emg_inlet.open_stream(5.0)
    label_inlet.open_stream(5.0)
    assert player.wait_for_consumers(5.0)
    player.start()

    def pull():
        samples, stamps = emg_inlet.pull_chunk(timeout=0.0, max_samples=1024)
        return np.asarray(samples, dtype=np.float64).reshape(-1, 8), stamps

    data, stamps = _collect(pull, player.finished.is_set)
    marker_values, marker_stamps = label_inlet.pull_chunk(timeout=0.0)
    player.stop()
    _check_replayed(
        emg, labels, data, stamps, [v for (v,) in marker_values], np.asarray(marker_stamps)
    )


def test_replay_keeps_integer_formats_exact(unique_name):
    extremes = np.array([[-32768, 32767], [0, -1], [12345, -12345]] * 20)
    stream = Stream(
        name=unique_name, type="CTG", data=extremes, timestamps=np.arange(60) / 4.0, srate=4.0,
        channel_format="int16",
    )
    player = Player(Recording().add_stream(stream), speed=40).open()
    (info,) = pylsl.resolve_byprop("name", unique_name, 1, 5.0)
    inlet = pylsl.StreamInlet(info)
    assert inlet.info(5.0).channel_format() == pylsl.cf_int16
    inlet.open_stream(5.0)
    assert player.wait_for_consumers(5.0)
    player.start()

    def pull():
        return inlet.pull_chunk(timeout=0.0, max_samples=64, as_numpy=True)

    data, _ = _collect(pull, player.finished.is_set, settle_s=0.1)
    player.stop()
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, extremes)


def test_replay_widens_values_that_do_not_fit_their_format(unique_name, caplog):
    stream = Stream(
        name=unique_name, type="EMG", data=[[0.5], [1.25]], timestamps=[0.0, 0.1], srate=10.0,
        channel_format="int16",
    )
    player = Player(Recording().add_stream(stream))
    assert player.streams[0].channel_format == "double64"
    assert "do not fit its int16 format" in caplog.text


def test_loop_repeats_with_continuing_timestamps(unique_name):
    n, srate, speed = 50, 100.0, 5.0  # one pass = 0.5 s of recording = 0.1 s of replay
    stream = Stream(
        name=unique_name, type="EMG", data=np.arange(n, dtype=float),
        timestamps=np.arange(n) / srate, srate=srate, channel_format="float32",
    )
    player = Player(Recording().add_stream(stream), speed=speed, loop=True).open()
    inlet = Inlet(name=unique_name).connect()
    assert player.wait_for_consumers(5.0)
    player.start()
    data, stamps = _collect(inlet.pull, lambda: player.passes >= 3, settle_s=0.05)
    player.stop()
    assert player.finished.is_set() and not player.is_alive
    assert data.shape[0] >= 3 * n
    np.testing.assert_array_equal(data[:, 0], np.arange(data.shape[0]) % n)
    np.testing.assert_allclose(np.diff(stamps), 1 / srate / speed, atol=1e-6, rtol=0)
    assert not inlet.stats.gaps


def test_player_checks_its_arguments(unique_name):
    stream = Stream(
        name=unique_name, type="EMG", data=np.zeros(4), timestamps=np.arange(4), srate=1
    )
    recording = Recording().add_stream(stream)
    with pytest.raises(BiosigError, match=f"no stream named 'nope'.*available: '{unique_name}'"):
        Player(recording, streams=["nope"])
    with pytest.raises(BiosigError, match="speed must be a finite number > 0"):
        Player(recording, speed=0)
    with pytest.raises(BiosigError, match="expected a Recording"):
        Player(stream)


# -- biosig replay ---------------------------------------------------------------------------


@pytest.fixture
def replayable(tmp_path, unique_name, monkeypatch):
    """A file the CLI 'reads' into a small recording with unique stream names."""
    path = tmp_path / "session.xdf"
    path.write_bytes(b"")
    signal = Stream(
        name=f"{unique_name}-emg", type="EMG", data=np.arange(40.0).reshape(20, 2),
        timestamps=np.arange(20) / 100.0, srate=100.0, channel_format="float32",
    )
    markers = Markers(name=f"{unique_name}-labels", timestamps=[0.0, 0.1], values=["0", "1"])
    recording = Recording().add_stream(signal).add_markers(markers)
    monkeypatch.setattr("biosig.cli.replay._read_recording", lambda p: recording)
    return path, recording


def test_cli_replay_publishes_and_exits_0(replayable, capsys):
    path, recording = replayable
    assert main(["replay", str(path), "--speed", "20"]) == 0
    out = capsys.readouterr().out
    for name in list(recording.streams) + list(recording.markers):
        assert name in out
    assert "2 ch @ 100 Hz" in out and "done" in out


def test_cli_replay_real_myo_file(shared_data, unique_name, monkeypatch, capsys):
    from biosig.io import read_recording

    def read_renamed(path):
        # The reader names streams "MyoEMG"/"labels"; make them unique to this test.
        recording = read_recording(path)
        out = Recording(metadata=recording.metadata, source=recording.source)
        for stream in recording.streams.values():
            stream.name = f"{unique_name}-{stream.name}"
            out.add_stream(stream)
        for markers in recording.markers.values():
            markers.name = f"{unique_name}-{markers.name}"
            out.add_markers(markers)
        return out

    monkeypatch.setattr("biosig.cli.replay._read_recording", read_renamed)
    path = shared_data / "myo-readings-dataset" / "12345-1" / "1.txt"
    assert main(["replay", str(path), "--speed", "400", "--stream", f"{unique_name}-MyoEMG"]) == 0
    out = capsys.readouterr().out
    assert f"{unique_name}-MyoEMG: EMG, 8 ch @ 200 Hz" in out
    assert f"{unique_name}-labels" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["replay", "{missing}"], "not found"),
        (["replay", "{file}", "--stream", "nope"], "no stream named 'nope'"),
        (["replay", "{file}", "--speed", "0"], "--speed must be a finite number > 0"),
        (["replay", "{file}", "--speed", "-2"], "--speed must be a finite number > 0"),
    ],
    ids=["missing-file", "unknown-stream", "speed-0", "speed-negative"],
)
def test_cli_replay_bad_input(replayable, tmp_path, capsys, args, message):
    path, _ = replayable
    argv = [a.format(missing=tmp_path / "nope.xdf", file=path) for a in args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("biosig replay: error:") and message in err
