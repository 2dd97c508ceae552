"""The pipeline object: threads, bounded queues, parity with the offline call, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
import wfdb

from biosig._checks import BiosigError
from biosig.config import PipelineConfig
from biosig.io.recording import Stream
from biosig.stream.pipeline import CollectSink, Pipeline, StreamProcessor, process_recording
from biosig.stream.sources import RecordingSource, as_stream


def _grabmyo_stream(shared_data) -> Stream:
    record = wfdb.rdrecord(str(shared_data / "grabmyo-subset" / "session1_participant1_gesture12_trial2"))
    used = [i for i, name in enumerate(record.sig_name) if not name.startswith("U")]
    return as_stream(record.p_signal[:, used], record.fs, [record.sig_name[i] for i in used], name="grabmyo")


def _myo_stream(shared_data) -> Stream:
    rows = np.loadtxt(shared_data / "myo-readings-dataset" / "21547-2" / "4.txt", delimiter=",")
    return as_stream(rows[:, :8], 200.0, [f"emg{i + 1}" for i in range(8)], name="myo")


def _ctg_stream(shared_data) -> Stream:
    record = wfdb.rdrecord(str(shared_data / "ctu-uhb-ctgdb" / "1003"))
    return as_stream(record.p_signal, record.fs, record.sig_name, name="ctg", type="CTG")


def _run_threaded(stream, config, chunk_sizes):
    sink = CollectSink()
    pipeline = Pipeline(RecordingSource(stream, chunk_sizes=chunk_sizes), config, sinks=[sink])
    with pipeline:
        assert pipeline.wait(timeout=120), "pipeline did not finish"
    assert pipeline.stats.error is None
    return pipeline, sink.results()


@pytest.mark.parametrize("loader", [_myo_stream, _grabmyo_stream, _ctg_stream])
def test_threaded_pipeline_equals_offline_on_real_recordings(shared_data, loader):
    stream = loader(shared_data)
    config = PipelineConfig.for_rate(stream.srate, modality=stream.type)
    rng = np.random.default_rng(7)
    window = int(round(config.window.length_s * stream.srate))
    sizes = rng.integers(0, 3 * window, size=97).tolist() + [0, 1, 1]
    pipeline, live = _run_threaded(stream, config, sizes)
    offline = process_recording(stream, config)
    assert len(offline) > 10
    assert len(live) == len(offline)
    np.testing.assert_array_equal(live.t_end, offline.t_end)
    # NaN == NaN: a CTG window without enough tocogram has no contraction count
    np.testing.assert_allclose(live.features, offline.features, rtol=0, atol=1e-9)
    assert pipeline.stats.samples_in == stream.n_samples
    assert pipeline.stats.chunks_dropped == 0


def test_nonfinite_samples_are_counted_flagged_and_never_reach_features(shared_data):
    stream = _myo_stream(shared_data)
    stream.data[1000:1010, 2] = np.nan
    stream.data[3000, :] = np.inf
    config = PipelineConfig.for_rate(stream.srate, modality="EMG")
    pipeline, live = _run_threaded(stream, config, [37])
    assert pipeline.stats.nonfinite_samples == 10 + 8
    assert np.isfinite(live.features).all()
    flagged_t = live.t_end[live.flagged]
    assert flagged_t.size > 0
    # Every flagged window covers one of the bad samples.
    length = config.window.length_s
    bad_t = stream.timestamps[[1000, 1009, 3000]]
    for t in flagged_t:
        assert np.any((bad_t <= t + 1e-9) & (bad_t > t - length - 1e-9))


class _SlowClassifier:
    """A classifier slower than real time, to force stale windows."""

    classes_ = np.array(["rest", "fist"])

    def predict_proba(self, features):
        time.sleep(0.05)
        p = np.full((features.shape[0], 2), 0.5)
        return p


def test_stale_windows_are_skipped_and_counted_when_processing_falls_behind(shared_data):
    stream = _myo_stream(shared_data)
    short = as_stream(stream.data[:4000], 200.0, stream.channel_labels, name="myo")
    config = PipelineConfig.for_rate(200.0, modality="EMG")
    sink = CollectSink()
    # 20x real time with a 50 ms classifier per chunk: the processor cannot keep up.
    source = RecordingSource(short, realtime=True, speed=20.0, chunk_s=0.05)
    pipeline = Pipeline(source, config, classifier=_SlowClassifier(), sinks=[sink], max_latency_s=0.1)
    with pipeline:
        assert pipeline.wait(timeout=60)
    results = sink.results()
    stats = pipeline.stats
    assert stats.windows_skipped > 0
    assert stats.windows_skipped == int(results.skipped.sum())
    assert np.isnan(results.posteriors[results.skipped]).all()
    classified = ~results.skipped
    assert classified.any()
    np.testing.assert_allclose(results.posteriors[classified], 0.5)
    # Filter state stayed continuous: features still equal the offline ones.
    offline = process_recording(short, config)
    assert np.max(np.abs(results.features - offline.features)) <= 1e-9


def test_bounded_queue_drops_and_counts_chunks_of_a_live_source(shared_data):
    stream = _myo_stream(shared_data)
    config = PipelineConfig.for_rate(200.0, modality="EMG")

    class _Blocking:
        classes_ = np.array(["a", "b"])

        def predict_proba(self, features):
            time.sleep(0.2)
            return np.full((features.shape[0], 2), 0.5)

    source = RecordingSource(stream, realtime=True, speed=200.0, chunk_s=0.05)
    pipeline = Pipeline(source, config, classifier=_Blocking(), max_queue_chunks=4, max_latency_s=10)
    with pipeline:
        pipeline.wait(timeout=60)
    stats = pipeline.stats
    assert stats.chunks_dropped > 0
    assert stats.samples_dropped > 0
    assert stats.samples_in == stream.n_samples


def test_channel_selection_and_mismatch_errors(shared_data):
    stream = _grabmyo_stream(shared_data)
    config = PipelineConfig.for_rate(stream.srate, modality="EMG")
    config.channels = ["F1", "W3"]
    processor = StreamProcessor(config, stream.srate, stream.channel_labels)
    assert [n.split(":")[1] for n in processor.feature_names[:2]] == ["F1", "W3"]
    config.channels = ["F1", "X9"]
    with pytest.raises(BiosigError, match="X9"):
        StreamProcessor(config, stream.srate, stream.channel_labels)
    config.channels = None
    processor = StreamProcessor(config, stream.srate, stream.channel_labels)
    with pytest.raises(BiosigError, match="channels"):
        processor.process(np.zeros((10, 3)), np.arange(10) / stream.srate)


def test_rate_mismatch_is_a_clear_error(shared_data):
    stream = _myo_stream(shared_data)
    config = PipelineConfig.for_rate(200.0, modality="EMG")
    config.srate = 1000.0
    with pytest.raises(BiosigError, match="200 Hz.*1000 Hz"):
        StreamProcessor(config, stream.srate, stream.channel_labels)
    assert PipelineConfig.from_dict(config.to_dict()).srate == 1000.0


def test_live_pipeline_survives_an_outlet_restart(unique_name):
    """The LSL source loses its outlet mid-stream; the pipeline reports it and carries on."""
    import pylsl

    from biosig.stream.inlet import Inlet
    from biosig.stream.sources import LSLSource

    def outlet():
        info = pylsl.StreamInfo(unique_name, "EMG", 2, 200.0, "float32", unique_name)
        return pylsl.StreamOutlet(info)

    rng = np.random.default_rng(3)
    sent = rng.normal(size=(1200, 2)).astype(np.float32)
    sink = CollectSink()
    out = outlet()
    pipeline = Pipeline(LSLSource(Inlet(name=unique_name)), PipelineConfig.for_rate(200.0), sinks=[sink])
    pipeline.start()
    out.wait_for_consumers(5)

    def send(block, t0):
        for k in range(0, len(block), 20):
            stamps = t0 + (np.arange(k, k + 20)) / 200.0
            out.push_chunk(block[k:k + 20], stamps.tolist())
            time.sleep(0.01)

    t0 = pylsl.local_clock()
    send(sent[:600], t0)
    time.sleep(0.1)
    del out  # the sensor goes away for a second
    time.sleep(1.0)
    out = outlet()
    out.wait_for_consumers(10)
    send(sent[600:], t0 + 600 / 200.0 + 1.0)
    deadline = time.monotonic() + 10
    while pipeline.stats.samples_in < 1200 and time.monotonic() < deadline:
        time.sleep(0.05)
    inlet = pipeline.source.inlet
    pipeline.stop()
    assert pipeline.stats.samples_in == 1200
    assert inlet.stats.disconnects >= 1 and inlet.stats.reconnects >= 1
    assert any(abs(gap.duration_s - 1.0) < 0.1 for gap in inlet.stats.gaps)
    results = sink.results()
    # Windows keep coming after the restart (hop 50 ms over 6 s of data, minus the first window).
    assert len(results) >= 110
    assert np.isfinite(results.features).all()


def test_warm_up_leaves_the_processor_state_untouched(shared_data):
    stream = _myo_stream(shared_data)
    config = PipelineConfig.for_rate(stream.srate, modality="EMG")
    half = stream.n_samples // 2
    warmed = StreamProcessor(config, stream.srate, stream.channel_labels)
    first = warmed.process(stream.data[:half], stream.timestamps[:half])
    warmed.warm_up()  # mid-stream: the filters and partial windows must carry on as before
    second = warmed.process(stream.data[half:], stream.timestamps[half:])
    reference = process_recording(stream, config)
    np.testing.assert_array_equal(np.concatenate([first.t_end, second.t_end]), reference.t_end)
    # Every stage gives the same bits for any chunking.
    np.testing.assert_array_equal(np.vstack([first.features, second.features]),
                                  reference.features)
