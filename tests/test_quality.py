"""The per-window signal-quality check: clipped and flat channels, live and offline.

Real recordings with injected faults, through the streaming check on its own, the
:class:`StreamProcessor`, the threaded :class:`Pipeline` and the bundled ONNX model. The
expected flags come from a direct computation over each window (an independent, slow
implementation of the rules in :mod:`biosig.dsp.quality`).
"""

from __future__ import annotations

import dataclasses
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from biosig._checks import BiosigError
from biosig.config import PipelineConfig, load_config
from biosig.dsp.quality import (
    QUALITY_CLIPPED,
    QUALITY_FLAT,
    QUALITY_NONFINITE,
    QualityBatch,
    QualityConfig,
    WindowQuality,
    at_rails,
    integer_rails,
    rate_ratio,
    window_quality,
)
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.pipeline import CollectSink, Pipeline, StreamProcessor, process_recording
from biosig.stream.results import WindowResults
from biosig.stream.sinks import CSVSink, read_results_csv, result_columns
from biosig.stream.sources import RecordingSource

REPO = Path(__file__).resolve().parents[1]
MYO = REPO / "recordings" / "myo_12345-1.xdf"
GRABMYO = REPO / "recordings" / "grabmyo_session1_participant1_gesture11_trial1.xdf"
CTG = REPO / "recordings" / "ctu-uhb_1001.xdf"
MODEL = REPO / "models" / "myo-12345-jsu.onnx"


@pytest.fixture(scope="module")
def myo():
    return read_recording(MYO).signal()


def _myo_segment(myo, start_s: float, seconds: float):
    start = int(start_s * myo.srate)
    stop = start + int(seconds * myo.srate)
    return dataclasses.replace(myo, data=myo.data[start:stop].copy(),
                               timestamps=myo.timestamps[start:stop].copy())


def _direct_quality(x, config: QualityConfig, fs, length_s, hop_s, channel_format, up=1, down=1):
    """Each window's flags computed straight from its samples, window by window."""
    checker = WindowQuality(config, fs, x.shape[1], length_s, hop_s,
                            channel_format=channel_format, up=up, down=down)
    length, hop, rails = checker.length, checker.hop, checker.rails

    def first_input(m):  # the input samples of output m start here
        return m if up == down == 1 else max((m - 1) * down // up + 1, 0)

    n_out = (x.shape[0] * up - 1) // down + 1 if x.shape[0] else 0
    clipped, flat, ends = [], [], []
    for k in range((n_out - length) // hop + 1 if n_out >= length else 0):
        w = x[first_input(k * hop) : first_input(k * hop + length)]
        finite = np.where(np.isfinite(w), w, np.nan)
        if config.clipping and rails is not None:
            at = np.isfinite(w) & ((w <= rails[0]) | (w >= rails[1]))
            clipped.append(at.sum(axis=0) > config.clip_share * w.shape[0])
        else:
            clipped.append(np.zeros(x.shape[1], dtype=bool))
        with warnings.catch_warnings():  # "All-NaN slice": a channel without finite samples
            warnings.simplefilter("ignore", RuntimeWarning)
            ptp = np.nanmax(finite, axis=0) - np.nanmin(finite, axis=0)
        flat.append(config.flat & (ptp <= config.flat_ptp) & (w.shape[0] >= 2))
        ends.append(first_input(k * hop + length) - 1)
    shape = (len(ends), x.shape[1])
    return (np.asarray(clipped, dtype=bool).reshape(shape),
            np.asarray(flat, dtype=bool).reshape(shape), np.asarray(ends, dtype=np.int64))


def _push_in_chunks(checker: WindowQuality, x, sizes) -> QualityBatch:
    batches, start, k = [], 0, 0
    while start < x.shape[0]:
        size = sizes[k % len(sizes)]
        batches.append(checker.push(x[start : start + size]))
        start += size
        k += 1
    batches = [b for b in batches if len(b)]
    return QualityBatch.concatenate(batches)


def _faulty(myo, seconds=12.0):
    """A Myo segment with a channel held at a rail, one stuck at a mid value, one driven into
    both rails, and a NaN/Inf burst."""
    data = _myo_segment(myo, 60.0, seconds).data
    data[300:420, 1] = 127.0                                    # held at the upper rail
    data[900:1100, 5] = data[900, 5]                            # stuck (electrode off)
    data[1500:1800, 6] = np.clip(data[1500:1800, 6] * 128, -128, 127)  # saturating
    data[2000:2010, 3] = np.nan
    data[2005, 0] = np.inf
    return data


@pytest.mark.parametrize("length_s, hop_s, up, down", [
    (0.2, 0.05, 1, 1),     # the EMG default: 40 samples every 10, heads of 0
    (0.215, 0.05, 1, 1),   # heads of 3 samples
    (0.1, 0.25, 1, 1),     # hop longer than the window: gaps between windows
    (0.2, 0.05, 1, 2),     # decimation by 2
    (0.2, 0.05, 3, 2),     # upsampling: some outputs bring no new input sample
    (0.23, 0.07, 2, 5),    # resampling to 80 Hz
])
def test_streaming_check_equals_a_direct_computation_in_any_chunking(myo, length_s, hop_s, up,
                                                                      down):
    x = _faulty(myo)
    config = QualityConfig(clip_share=0.3, flat_ptp=1.0)
    expected = _direct_quality(x, config, myo.srate, length_s, hop_s, "int8", up, down)
    assert expected[0].any() and expected[1].any()
    one_shot = window_quality(x, config, myo.srate, length_s, hop_s, channel_format="int8",
                              up=up, down=down)
    checker = WindowQuality(config, myo.srate, 8, length_s, hop_s, channel_format="int8",
                            up=up, down=down)
    chunked = _push_in_chunks(checker, x, [1, 7, 64, 3, 0, 211])
    for batch in (one_shot, chunked):
        np.testing.assert_array_equal(batch.clipped, expected[0])
        np.testing.assert_array_equal(batch.flat, expected[1])
        np.testing.assert_array_equal(batch.end_index, expected[2])
    # After a reset the same stream gives the same flags.
    np.testing.assert_array_equal(checker.reset().push(x).clipped, expected[0])


def _random_faults(rng, n_samples: int, n_channels: int) -> np.ndarray:
    """int8-like noise with random stretches at and beyond the rails, constant and 1-step
    dithered stretches, NaN and ±Inf bursts (often overlapping each other)."""
    x = rng.integers(-60, 61, size=(n_samples, n_channels)).astype(np.float64)
    for _ in range(n_samples // 25):
        c, start = rng.integers(n_channels), rng.integers(n_samples)
        stretch = slice(start, start + rng.integers(1, 60))
        kind = rng.integers(7)
        if kind == 0:
            x[stretch, c] = rng.choice([127.0, -128.0, 200.0, -130.0])  # at / beyond a rail
        elif kind == 1:
            x[stretch, c] = x[start, c]  # stuck
        elif kind == 2:
            x[stretch, c] = x[start, c] + np.arange(len(x[stretch, c])) % 2  # peak-to-peak 1
        elif kind == 3:
            x[stretch, c] = np.nan
        elif kind == 4:
            x[stretch, c] = rng.choice([np.inf, -np.inf])
        elif kind == 5:  # one non-finite sample, e.g. inside a stuck or railed stretch
            x[start, c] = rng.choice([np.inf, -np.inf, np.nan])
        else:  # railed samples scattered at random
            at = rng.random(len(x[stretch, c])) < 0.7
            x[stretch, c] = np.where(at, 127.0, x[stretch, c])
    return x


@pytest.mark.parametrize("seed, length_s, hop_s, up, down", [
    (1, 0.2, 0.05, 1, 1),     # length a multiple of the hop
    (2, 0.23, 0.05, 1, 1),    # heads of 3 samples
    (3, 0.05, 0.12, 1, 1),    # hop longer than the window
    (4, 0.2, 0.05, 3, 2),     # upsampling: some outputs bring no new input sample
    (5, 0.23, 0.07, 2, 5),    # downsampling, with heads
    (6, 0.01, 0.03, 3, 2),    # windows of 1 or 2 input samples (one sample is never flat)
])
def test_flags_equal_a_window_by_window_reference_on_random_faults(seed, length_s, hop_s, up,
                                                                   down):
    rng = np.random.default_rng(seed)
    fs, x = 100.0, _random_faults(rng, 5000, 5)  # over 4096 samples: one push goes in pieces
    configs = [QualityConfig(clip_share=0.2, flat_ptp=1.0),
               QualityConfig(clip_share=0.0, flat=False),          # clipping only, any sample
               QualityConfig(clipping=False),                      # flat only, exactly constant
               QualityConfig(clipping=False, flat=False),
               QualityConfig(rails=(-100.0, 90.0), clip_share=0.4)]  # configured rails
    for k, config in enumerate(configs):
        expected = _direct_quality(x, config, fs, length_s, hop_s, "int8", up, down)
        assert expected[0].any() == config.clipping and expected[1].any() == config.flat
        checker = WindowQuality(config, fs, x.shape[1], length_s, hop_s, channel_format="int8",
                                up=up, down=down)
        sizes = rng.integers(0, 3 * checker.length, size=50).tolist()
        batches = [window_quality(x, config, fs, length_s, hop_s, channel_format="int8", up=up,
                                  down=down),
                   _push_in_chunks(checker, x, sizes)]
        if k == 0:
            batches.append(_push_in_chunks(checker.reset(), x, [1]))
        for batch in batches:
            np.testing.assert_array_equal(batch.clipped, expected[0])
            np.testing.assert_array_equal(batch.flat, expected[1])
            np.testing.assert_array_equal(batch.end_index, expected[2])


def test_rails_come_from_the_integer_format_or_the_configuration(myo):
    assert integer_rails("int8") == (-128.0, 127.0)
    assert integer_rails("int16") == (-32768.0, 32767.0)
    assert integer_rails("float32") is None and integer_rails(None) is None
    x = _myo_segment(myo, 60.0, 4.0).data
    x[100:300, 2] = 127.0
    run = lambda config, fmt=None: window_quality(  # noqa: E731
        x, config, myo.srate, 0.2, 0.05, channel_format=fmt).clipped
    # Float data: no rails unless configured; the configured range is used as is.
    assert not run(QualityConfig()).any()
    assert run(QualityConfig(), "int8")[:, 2].any()
    assert not run(QualityConfig(), "int16").any()  # int8 values never reach int16 rails
    ranged = QualityConfig(rails=(-100.0, 100.0))
    for fmt in (None, "int16"):  # configured rails take precedence over the format's
        clipped = run(ranged, fmt)
        assert clipped[:, 2].any() and not np.delete(clipped, 2, axis=1).any()
    # Inf is not at a rail (the non-finite guard flags it), NaN neither.
    samples = np.array([np.inf, -np.inf, np.nan, 127.0, 0.0, -130.0])
    np.testing.assert_array_equal(at_rails(samples, -128, 127),
                                  [False, False, False, True, False, True])


def test_thresholds_and_switches(myo):
    x = _myo_segment(myo, 60.0, 4.0).data
    x[100:127, 0] = 127.0  # windows from 70, 80, 90, 100, 110: 10, 20, 27, 27, 17 at the rail
    x[400:600, 1] = x[400, 1] + np.arange(200) % 2  # a 1-step dither: peak-to-peak 1
    run = lambda config: window_quality(  # noqa: E731
        x, config, myo.srate, 0.2, 0.05, channel_format="int8")
    assert run(QualityConfig(clip_share=0.4)).clipped[:, 0].sum() == 4   # > 16 of 40 samples
    assert run(QualityConfig(clip_share=0.5)).clipped[:, 0].sum() == 2   # > 20 of 40
    assert not run(QualityConfig(clip_share=0.7)).clipped.any()
    assert not run(QualityConfig()).flat[:, 1].any()
    assert run(QualityConfig(flat_ptp=1.0)).flat[:, 1].sum() == 17       # windows inside 400-600
    off = run(QualityConfig(clipping=False, flat=False, flat_ptp=1.0))
    assert not off.clipped.any() and not off.flat.any() and len(off) == 77


def test_injected_faults_through_the_onnx_model_live_and_offline(myo, tmp_path):
    model = OnnxModel(MODEL)
    config = model.pipeline_config()
    stream = _myo_segment(myo, 120.0, 15.0)
    stream.data[500:800, 6] = 127.0               # channel held at the upper int8 rail
    stream.data[1500:1900, 2] = stream.data[1500, 2]  # channel stuck at a mid value
    sink, csv_path = CollectSink(), tmp_path / "results.csv"
    csv_sink = CSVSink(csv_path)
    pipeline = Pipeline(RecordingSource(stream, chunk_sizes=[5, 1, 33, 12, 64]), config,
                        classifier=model, sinks=[sink, csv_sink])
    with pipeline:
        assert pipeline.wait(timeout=60)
    csv_sink.close()
    live = sink.results()
    offline = process_recording(stream, config, model)
    assert pipeline.stats.error is None and len(live) == len(offline) == 297
    # Exactly the windows with more than half of their 40 samples at the rail are clipped, on
    # channel 6 only; exactly those inside the stuck stretch are flat, on channel 2 only.
    starts = np.arange(len(live)) * 10
    inside = lambda a, b: np.minimum(starts + 40, b) - np.maximum(starts, a)  # noqa: E731
    clipped, stuck = inside(500, 800) > 20, (starts >= 1500) & (starts + 40 <= 1900)
    # Held at one value, the railed channel is flat too where a window lies inside it.
    flat_railed = (starts >= 500) & (starts + 40 <= 800)
    np.testing.assert_array_equal(live.clipped, np.outer(clipped, np.arange(8) == 6))
    np.testing.assert_array_equal(live.flat, np.outer(stuck, np.arange(8) == 2)
                                  | np.outer(flat_railed, np.arange(8) == 6))
    np.testing.assert_array_equal(live.flagged, clipped | stuck)
    np.testing.assert_array_equal(live.quality, QUALITY_CLIPPED * clipped
                                  + QUALITY_FLAT * (stuck | flat_railed))
    labels = stream.channel_labels
    assert live.channel_labels == labels
    assert live.flag_reasons(int(np.flatnonzero(stuck)[0])) == [f"flat:{labels[2]}"]
    assert live.flag_reasons(60) == [f"clipped:{labels[6]}", f"flat:{labels[6]}"]
    assert live.flag_reasons(0) == []
    stats = pipeline.stats
    assert (stats.windows_flagged, stats.windows_clipped, stats.windows_flat) == (
        int((clipped | stuck).sum()), int(clipped.sum()), int((stuck | flat_railed).sum()))
    # The model keeps classifying: finite posteriors, and chunked equals one call.
    assert np.isfinite(live.posteriors).all()
    np.testing.assert_allclose(live.posteriors.sum(axis=1), 1.0, atol=1e-5)
    for name in ("flagged", "quality", "clipped", "flat", "t_end", "predicted"):
        np.testing.assert_array_equal(getattr(live, name), getattr(offline, name))
    # The CSV sink writes why, after the features; the columns before them are unchanged.
    table = read_results_csv(csv_path)
    names = list(table)
    assert names[-3:] == ["quality", "clipped", "flat"]
    assert names[:-3] == result_columns(live.feature_names, live.class_names, with_ood=True)
    np.testing.assert_array_equal(table["quality"], live.quality)
    assert table["clipped"][np.flatnonzero(clipped)[0]] == labels[6]
    assert set(table["flat"][stuck]) == {labels[2]}
    np.testing.assert_array_equal(table["flagged"], live.flagged)


def test_quality_windows_line_up_with_the_feature_windows_under_a_rate_change(myo):
    x = _faulty(myo)
    stream = _myo_segment(myo, 60.0, 12.0)
    stream = dataclasses.replace(stream, data=x)
    for changes in ({"decimate": 2}, {"resample_hz": 150.0}):
        base = PipelineConfig.for_rate(myo.srate, "EMG")
        config = dataclasses.replace(
            base, preprocess=dataclasses.replace(base.preprocess, **changes).validate(myo.srate))
        processor = StreamProcessor(config, stream.srate, stream.channel_labels,
                                    channel_format="int8")
        results = processor.process(stream.data, stream.timestamps)
        up, down = rate_ratio(myo.srate, config.preprocess.resample_hz, config.preprocess.decimate)
        direct = _direct_quality(x, config.quality, myo.srate, 0.2, 0.05, "int8", up, down)
        assert direct[0].any() and direct[1].any()
        np.testing.assert_array_equal(results.clipped, direct[0])
        np.testing.assert_array_equal(results.flat, direct[1])
        # Each window ends with the input sample that completes it ...
        t_last = stream.timestamps[direct[2]]
        assert np.all((results.t_end >= t_last) & (results.t_end < t_last + 1 / myo.srate))
        # ... and is returned by the same push as its features, in any chunking.
        processor.reset()
        chunked = WindowResults.concat([
            processor.process(stream.data[i : i + 7], stream.timestamps[i : i + 7])
            for i in range(0, stream.n_samples, 7)])
        np.testing.assert_array_equal(chunked.t_end, results.t_end)
        np.testing.assert_array_equal(chunked.quality, results.quality)


def test_bundled_emg_recordings_give_no_quality_flags():
    for path, expected_windows in ((MYO, 9544), (GRABMYO, 97)):
        stream = read_recording(path).signal()
        results = process_recording(stream, PipelineConfig.for_rate(stream.srate, "EMG"))
        assert len(results) == expected_windows
        assert not results.flagged.any() and not results.quality.any()
        assert results.clipped.shape == results.flat.shape == (expected_windows, stream.n_channels)


def test_ctg_streams_are_left_to_the_ctg_chain():
    stream = read_recording(CTG).signal()
    processor = StreamProcessor(PipelineConfig.for_rate(stream.srate, "CTG"), stream.srate,
                                stream.channel_labels, channel_format="int16")
    results = processor.process(stream.data, stream.timestamps)
    assert processor.quality is None and len(results) > 10
    assert results.quality is None and results.clipped is None and results.flat is None


def test_a_push_that_completes_no_window_allocates_nothing(myo):
    x = np.ascontiguousarray(np.tile(_myo_segment(myo, 60.0, 30.0).data, (1, 4)))  # 32 channels
    checker = WindowQuality(QualityConfig(), myo.srate, 32, 0.2, 0.05, channel_format="int8")
    for start in range(0, 2000, 3):  # warm up: buffers reach their steady size
        checker.push(x[start : start + 3])
    tracemalloc.start()
    try:
        worst, n_quiet = 0, 0
        start_memory = tracemalloc.get_traced_memory()[0]
        for start in range(2001, 5001, 3):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            batch = checker.push(x[start : start + 3])
            if not len(batch):  # (and the last window batch is gone)
                n_quiet += 1
                current, peak = tracemalloc.get_traced_memory()
                worst = max(worst, peak - before)
                grown = current - start_memory
    finally:
        tracemalloc.stop()
    chunk_bytes = x[:3].nbytes  # 768: any copy of the chunk would show
    assert n_quiet > 500 and worst < chunk_bytes
    assert grown < chunk_bytes  # memory stays flat over 3000 samples


def test_quality_section_in_a_configuration_file(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text('stream_type = "EMG"\n[quality]\nclip_share = 0.2\nrails = [-2.5, 2.5]\n'
                    "flat = false\n")
    config = load_config(path)
    assert config.quality == QualityConfig(clip_share=0.2, rails=(-2.5, 2.5), flat=False)
    again = PipelineConfig.from_dict(config.to_dict())
    assert again.quality == config.quality and config.to_dict()["quality"]["rails"] == [-2.5, 2.5]
    assert PipelineConfig.from_dict({}).quality == QualityConfig()  # older model cards
    for section, message in (
        ({"clip": 0.2}, "unknown key 'clip' in [quality]"),
        ({"clip_share": 1.0}, "clip_share must be below 1"),
        ({"clip_share": -0.1}, "clip_share"),
        ({"rails": [1.0, -1.0]}, "low < high"),
        ({"rails": [1.0]}, "two numbers"),
        ({"flat_ptp": -1.0}, "flat_ptp"),
        ({"flat": "yes"}, "flat must be true or false"),
    ):
        with pytest.raises(BiosigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            PipelineConfig.from_dict({"quality": section})


def test_results_concat_keeps_the_quality_columns():
    def part(n, checked):
        results = WindowResults(np.arange(n, dtype=float), np.zeros((n, 1)), np.zeros(n, bool),
                                ["f"])
        if checked:
            results.quality = np.full(n, QUALITY_NONFINITE | QUALITY_FLAT, dtype=np.uint8)
            results.clipped = np.zeros((n, 2), bool)
            results.flat = np.ones((n, 2), bool)
            results.channel_labels = ["a", "b"]
        return results

    joined = WindowResults.concat([part(2, True), part(3, False), part(1, True)])
    assert joined.channel_labels == ["a", "b"]
    np.testing.assert_array_equal(joined.quality, [5, 5, 0, 0, 0, 5])
    assert joined.flat.shape == (6, 2) and joined.flat.sum() == 6 and not joined.clipped.any()
    assert joined.flag_reasons(0) == ["nonfinite", "flat:a", "flat:b"]
    assert joined.flag_reasons(2) == []
    assert WindowResults.concat([part(2, False)]).quality is None


def test_clipped_and_flat_windows_stay_usable_for_training(myo):
    """Training, metrics and explanations drop only windows with non-finite input."""
    segment = _myo_segment(myo, 60.0, 10.0)
    segment.data[200:1200, 2] = 127  # channel 3 at the int8 rail for 5 s
    segment.data[1400:1800, 5] = 4  # channel 6 stuck for 2 s
    data = segment.data.astype(np.float64)  # int8 samples cannot hold the NaN burst
    data[1900:1905, 0] = np.nan
    segment = dataclasses.replace(segment, data=data, channel_format="int8")
    config = PipelineConfig.for_rate(segment.srate, modality="EMG")
    results = process_recording(segment, config)
    clipped = (results.quality & QUALITY_CLIPPED) != 0
    flat = (results.quality & QUALITY_FLAT) != 0
    nonfinite = (results.quality & QUALITY_NONFINITE) != 0
    assert clipped.any() and flat.any() and nonfinite.any()
    np.testing.assert_array_equal(results.flagged, clipped | flat | nonfinite)
    np.testing.assert_array_equal(results.unusable, nonfinite)
