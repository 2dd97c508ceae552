"""Display state of the live view (biosig.stream.live): buffers, decimation, a real session.

No Qt here: what the GUI polls is tested on its own, on a real replayed recording over LSL.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from biosig import BiosigError
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.live import (
    PREPARING_MESSAGE,
    Annotations,
    LiveSession,
    ReplayFeed,
    ResultsBuffer,
    SignalBuffer,
    minmax_decimate,
    wait_until,
)
from biosig.stream.pipeline import process_recording

from conftest import RECORDINGS, REPO_ROOT

MYO = RECORDINGS / "myo_12345-1.xdf"
CTG = RECORDINGS / "ctu-uhb_1001.xdf"
MODEL = REPO_ROOT / "models" / "myo-12345-jsu.onnx"


def test_signal_buffer_keeps_the_latest_samples_in_order():
    buffer = SignalBuffer(2, capacity=10, period_s=0.01)
    t = np.arange(25) * 0.01
    data = np.column_stack([np.arange(25), -np.arange(25)]).astype(float)
    for start in range(0, 25, 7):  # chunks that wrap the ring
        buffer.write(data[start:start + 7], t[start:start + 7])
    times, values = buffer.snapshot()
    np.testing.assert_allclose(times, t[-10:])
    np.testing.assert_array_equal(values[:, 0], np.arange(15, 25))
    since, _ = buffer.snapshot(since=t[20])
    np.testing.assert_allclose(since, t[20:])
    assert buffer.total == 25 and buffer.gap_rows == 0


def test_signal_buffer_marks_a_gap_with_a_nan_row():
    buffer = SignalBuffer(1, capacity=100, period_s=0.01)
    buffer.write(np.ones((5, 1)), np.arange(5) * 0.01)
    buffer.write(np.ones((5, 1)), 1.0 + np.arange(5) * 0.01)  # 0.96 s missing
    times, values = buffer.snapshot()
    assert buffer.gap_rows == 1 and len(times) == 11
    assert np.isnan(values[5, 0]) and math.isclose(times[5], 0.05)


def _blockwise(data, per_bin):
    n = len(data) // per_bin * per_bin
    blocks = data[:n].reshape(-1, per_bin, data.shape[1])
    return blocks.min(axis=1), blocks.max(axis=1)


def test_signal_buffer_bins_grow_incrementally_with_the_writes():
    rng = np.random.default_rng(0)
    t = np.arange(1000) * 0.01
    data = rng.standard_normal((1000, 3)).astype(np.float32)
    buffer = SignalBuffer(3, capacity=2000, period_s=0.01)
    assert buffer.read_bins() is None  # no resolution asked for yet
    buffer.write(data[:100], t[:100])
    buffer.set_bin_size(7)  # bins of what is kept, then kept up to date by the writes
    first = buffer.read_bins()
    assert first.generation == buffer.generation and first.start == 0 and len(first) == 100 // 7
    parts, since = [first], first.end
    for start, stop in [(100, 103), (103, 500), (500, 501), (501, 1000)]:  # odd chunk sizes
        buffer.write(data[start:stop], t[start:stop])
        part = buffer.read_bins(since, first.generation)
        assert part.start == since  # only the bins completed since the last read
        parts.append(part)
        since = part.end
    low = np.concatenate([p.low for p in parts])
    high = np.concatenate([p.high for p in parts])
    want_low, want_high = _blockwise(data, 7)
    np.testing.assert_array_equal(low, want_low)
    np.testing.assert_array_equal(high, want_high)
    np.testing.assert_allclose(np.concatenate([p.t_first for p in parts]), t[:994:7])
    np.testing.assert_allclose(np.concatenate([p.t_last for p in parts]), t[6:1000:7])
    t0, t1, part_low, part_high = parts[-1].partial  # 1000 = 142 * 7 + 6: a bin being filled
    assert (t0, t1) == (t[994], t[999])
    np.testing.assert_array_equal(part_low, data[994:].min(axis=0))
    # A new resolution rebuilds the bins from the samples kept, under a new generation.
    buffer.set_bin_size(10)
    rebuilt = buffer.read_bins(since, first.generation)
    assert rebuilt.generation == first.generation + 1 and rebuilt.start == 0
    np.testing.assert_array_equal(rebuilt.high, _blockwise(data, 10)[1])


def test_signal_buffer_bins_break_at_a_gap():
    buffer = SignalBuffer(1, capacity=100, period_s=0.01)
    buffer.set_bin_size(2)
    buffer.write(np.ones((4, 1)), np.arange(4) * 0.01)
    buffer.write(np.ones((4, 1)), 1.0 + np.arange(4) * 0.01)  # a gap: a NaN row, then 4 more
    bins = buffer.read_bins()
    assert len(bins) == 4 and bins.partial is not None  # 9 rows: 4 bins + 1 row
    assert np.isnan(bins.low[2, 0]) and np.isnan(bins.high[2, 0])  # the line breaks there
    assert np.isfinite(bins.low[[0, 1, 3], 0]).all()


def test_minmax_decimate_keeps_peaks_and_gaps():
    t = np.arange(10_000) / 1000.0
    data = np.zeros((10_000, 2), dtype=np.float32)
    data[5_003, 0] = 7.0  # one-sample spike
    data[2_000:2_010, 1] = np.nan  # a gap
    t_out, out = minmax_decimate(t, data, max_points=200)
    assert len(t_out) <= 200 and out.shape == (len(t_out), 2)
    assert np.nanmax(out[:, 0]) == 7.0
    assert np.isnan(out[:, 1]).any() and not np.isnan(out[:, 0]).any()
    assert np.all(np.diff(t_out) >= 0)
    short_t, short = minmax_decimate(t[:50], data[:50], max_points=200)
    assert short is data[:50] or np.array_equal(short, data[:50])


def test_results_buffer_holds_what_the_model_decided():
    recording = read_recording(MYO)
    stream = recording.signal()
    stream.data, stream.timestamps = stream.data[12_000:14_000], stream.timestamps[12_000:14_000]
    model = OnnxModel(MODEL)
    results = process_recording(stream, model.pipeline_config(), classifier=model)
    buffer = ResultsBuffer(capacity=64)
    for start in range(0, len(results), 25):
        part = results.__class__(**{k: (v[start:start + 25] if isinstance(v, np.ndarray) else v)
                                    for k, v in vars(results).items()})
        buffer(part)
    snap = buffer.snapshot()
    assert len(buffer) == 64 and buffer.total == len(results)
    np.testing.assert_allclose(snap["t_end"], results.t_end[-64:])
    np.testing.assert_allclose(snap["posteriors"], results.posteriors[-64:])
    np.testing.assert_array_equal(snap["decision"], results.predicted[-64:])
    assert buffer.latest_decision == results.predicted[-1]
    assert buffer.class_names == list(results.class_names)
    np.testing.assert_allclose(buffer.latest_features, results.features[-1])


def test_annotations_hold_traces_and_events():
    notes = Annotations(max_events=2)
    notes.set_trace("baseline", "FHR", [0, 1], [140, 141])
    for k in range(3):
        notes.add_event(k, k + 0.5, "deceleration")
    assert notes.traces()["baseline"][0] == "FHR"
    assert [e.t_start for e in notes.events()] == [1.0, 2.0]
    assert [e.t_start for e in notes.events(since=2.2)] == [2.0]


def test_session_follows_a_replay_through_loss_and_return(tmp_path, unique_name):
    feed = ReplayFeed(MYO, start_s=60, speed=2, name=unique_name).start()
    session = LiveSession(unique_name, history_s=20, time_scale=2, resolve_timeout=5)
    try:
        session.start()
        assert wait_until(lambda: len(session.signal) > 200, 5)
        status = session.status()
        assert status.state == "running" and status.stream == unique_name
        assert status.nominal_rate == 200 and abs(status.measured_rate - 200) < 5
        assert status.channel_labels[:2] == ["emg1", "emg2"] and status.channel_units[0] == "adu"
        assert session.envelope is not None and wait_until(lambda: len(session.envelope) > 20, 2)
        # The envelope is the rectified, smoothed signal: non-negative.
        assert np.nanmin(session.envelope.snapshot()[1]) >= 0
        feed.stop()
        assert wait_until(lambda: session.state == "lost", 4)
        assert session.gaps()[-1][1] > session.gaps()[-1][0]  # the outage, ending now
        received = len(session.signal)
        feed = ReplayFeed(MYO, start_s=60, speed=2, name=unique_name).start()
        assert wait_until(lambda: session.state == "running" and len(session.signal) > received, 8)
        assert session.status().reconnects >= 1
        assert session.signal.gap_rows >= 1  # the outage is a break in the plotted line
    finally:
        session.stop()
        feed.stop()
    assert session.state == "stopped"


def test_ctg_session_annotates_baseline_events_and_features(unique_name):
    """A real CTU-UHB replay: the session copies the CTG chain's findings into its annotations,
    the same ones an offline analysis of the samples it received finds."""
    from biosig.ctg import EVENT_KINDS, analyse_stream
    from biosig.io.recording import Stream

    feed = ReplayFeed(CTG, start_s=600, speed=300, name=unique_name).start()
    session = LiveSession(unique_name, history_s=7200, resolve_timeout=5)
    try:
        session.start()
        assert session.ctg_channels == ("FHR", "UC")
        assert wait_until(lambda: len(session.annotations.events()) >= 4, 15)
        session.pipeline.stop()  # freeze the chain where it is
        notes = session.annotations
        events = notes.events()
        t, data = session.signal.snapshot()
    finally:
        session.stop()
        feed.stop()
    assert {e.kind for e in events} <= set(EVENT_KINDS)
    assert all(e.t_end > e.t_start and t[0] <= e.t_start for e in events)
    assert any(e.kind == "contraction" for e in events)
    channel, base_t, base_bpm = notes.traces()["baseline"]
    assert channel == "FHR" and len(base_t) == len(base_bpm) > 100
    finite = base_bpm[np.isfinite(base_bpm)]
    assert len(finite) and 90 < finite.min() <= finite.max() < 190
    t_end, figo = notes.readings()["figo"]
    assert t_end <= t[-1] and figo["window_s"] == 600
    assert {"baseline", "stv", "accelerations", "decelerations", "loss"} <= set(figo)
    # The chain is chunking-invariant: the received samples, analysed in one go, give the
    # same events as the live session found (those it had fixed when it stopped).
    received = ~np.isnan(data).all(axis=1)  # not the buffer's gap rows: the chain never saw them
    stream = Stream(name="CTG", type="CTG", data=data[received].astype(float), timestamps=t[received],
                    srate=4.0, channel_labels=["FHR", "UC"])
    offline = analyse_stream(stream)
    live_events = [(e.kind, round(e.t_start, 6), round(e.t_end, 6)) for e in events]
    offline_events = [(e.kind, round(e.t_start, 6), round(e.t_end, 6))
                      for e in offline.snapshot.events]
    assert live_events == offline_events[:len(live_events)]


def test_session_reports_a_missing_stream(unique_name):
    session = LiveSession(unique_name, resolve_timeout=0.3)
    with pytest.raises(BiosigError, match="no LSL stream"):
        session.start()
    assert session.state == "error" and "no LSL stream" in session.message


def test_record_never_overwrites(tmp_path, unique_name):
    feed = ReplayFeed(MYO, start_s=60, speed=1, name=unique_name).start()
    session = LiveSession(unique_name)
    existing = tmp_path / "taken.xdf"
    existing.write_bytes(b"keep me")
    try:
        session.start()
        with pytest.raises(BiosigError, match="never overwrites"):
            session.record(existing)
    finally:
        session.stop()
        feed.stop()
    assert existing.read_bytes() == b"keep me"


def test_session_says_it_is_preparing_once_the_stream_is_found(unique_name):
    # Between finding the stream and running, the DSP loops are compiled or loaded (~10 s on a
    # first run): the status must say so, not that it is still looking for the stream.
    import time

    feed = ReplayFeed(MYO, start_s=60, speed=2, name=unique_name).start()
    session = LiveSession(unique_name, history_s=5, resolve_timeout=5, explain=False)
    seen = set()
    try:
        session.start_in_background()
        deadline = time.monotonic() + 15
        while session.state == "connecting" and time.monotonic() < deadline:
            seen.add(session.message)
            time.sleep(0.0005)
        assert session.state == "running"
        assert PREPARING_MESSAGE in seen
        assert session.message == ""
    finally:
        session.stop()
        feed.stop()
