"""Unit tests of biosig.dsp and biosig.config on small synthetic signals."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from scipy import signal

from biosig import BiosigError
from biosig.config import (
    FeatureConfig,
    PipelineConfig,
    PreprocessConfig,
    WindowConfig,
    load_config,
)
from biosig.dsp import (
    FEATURE_NAMES,
    Decimator,
    FeatureBatch,
    FeatureChain,
    FeatureExtractor,
    LowpassEnvelope,
    MovingAverage,
    MovingRMS,
    NonFiniteGuard,
    Preprocessor,
    Resampler,
    SOSFilter,
    WindowBatch,
    WindowFeatures,
    Windower,
    cascade,
    design_bandpass,
    design_highpass,
    design_lowpass,
    design_notch,
    notch_frequencies,
    rational_ratio,
    sosfilt_offline,
    windows_offline,
)

RNG_SEED = 20240611


def chunk_bounds(n: int, max_size: int, seed: int = RNG_SEED):
    """(start, stop) pairs covering 0..n in random sizes 0..max_size, with 0 and 1 included."""
    rng = np.random.default_rng(seed)
    bounds, start = [], 0
    forced = [0, 1, 0, 1, 1, 0]
    while start < n:
        size = forced.pop() if forced else int(rng.integers(0, max_size + 1))
        bounds.append((start, min(start + size, n)))
        start += size
    bounds.append((n, n))  # a trailing empty chunk
    return bounds


def run_chunked(stage, x, max_size=100, seed=RNG_SEED):
    return np.vstack([stage.process(x[a:b]) for a, b in chunk_bounds(len(x), max_size, seed)])


def tone(freq_hz, fs, seconds, n_channels=1):
    t = np.arange(int(round(seconds * fs))) / fs
    return np.repeat(np.sin(2 * np.pi * freq_hz * t)[:, None], n_channels, axis=1)


def steady_gain_db(sos, freq_hz, fs):
    """Gain of the stateful filter on a tone, measured after the transient has died out."""
    x = tone(freq_hz, fs, 4.0)
    y = SOSFilter(sos, 1).process(x)
    half = len(x) // 2
    return 20 * np.log10(np.sqrt(np.mean(y[half:] ** 2)) / np.sqrt(np.mean(x[half:] ** 2)))


# --- filters -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["compiled", "sosfilt"])
@pytest.mark.parametrize("init", ["zeros", "steady"])
def test_sos_filter_chunked_equals_scipy_one_shot(engine, init):
    fs = 1000.0
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 5)) + 3.0  # an offset makes the steady init matter
    sos = cascade(design_bandpass(20, 300, fs, order=4), design_notch(50, fs))
    reference = sosfilt_offline(sos, x, init=init)
    if init == "zeros":
        np.testing.assert_array_equal(reference, signal.sosfilt(sos, x, axis=0))
    chunked = run_chunked(SOSFilter(sos, 5, init=init, engine=engine), x, max_size=150)
    one_shot = SOSFilter(sos, 5, init=init, engine=engine).process(x)
    assert np.max(np.abs(chunked - reference)) <= 1e-9
    assert np.max(np.abs(one_shot - reference)) <= 1e-9
    if engine == "compiled":  # sosfilt's operations in sosfilt's order: the same bits
        np.testing.assert_array_equal(chunked, reference)
        np.testing.assert_array_equal(one_shot, reference)


def test_sos_filter_steady_init_removes_offset_transient():
    fs = 500.0
    x = np.full((200, 2), 7.0)
    y = SOSFilter(design_highpass(5, fs), 2, init="steady").process(x)
    assert np.max(np.abs(y)) < 1e-9


def test_sos_filter_reset_and_empty_chunks():
    sos = design_lowpass(10, 100)
    filt = SOSFilter(sos, 3)
    assert filt.process(np.zeros((0, 3))).shape == (0, 3)
    x = np.random.default_rng(2).normal(size=(50, 3))
    first = filt.process(x)
    filt.reset()
    np.testing.assert_array_equal(filt.process(x), first)


def test_notch_attenuates_mains_and_passes_neighbours():
    fs = 1000.0
    sos = design_notch(50, fs, quality=30, n_harmonics=1)
    assert steady_gain_db(sos, 50, fs) < -30
    assert abs(steady_gain_db(sos, 20, fs)) < 1
    assert abs(steady_gain_db(sos, 100, fs)) < 1


def test_notch_harmonics_stop_below_nyquist():
    assert notch_frequencies(50, 1000) == [50 * k for k in range(1, 10)]  # 500 = Nyquist
    assert notch_frequencies(50, 200) == [50.0]
    assert notch_frequencies(60, 1000, n_harmonics=3) == [60.0, 120.0, 180.0]
    assert notch_frequencies(50, 2048, max_hz=450) == [50 * k for k in range(1, 10)]
    sos = design_notch(50, 1000)
    assert sos.shape == (9, 6)
    assert steady_gain_db(sos, 150, 1000) < -30


@pytest.mark.parametrize(
    "make, value",
    [
        (lambda: design_highpass(500, 1000), "500"),
        (lambda: design_lowpass(600, 1000), "600"),
        (lambda: design_bandpass(20, 500, 1000), "500"),
        (lambda: design_notch(50, 100), "50"),
        (lambda: design_notch(60, 100), "60"),
    ],
)
def test_frequencies_at_or_above_nyquist_are_refused(make, value):
    with pytest.raises(BiosigError, match="Nyquist") as err:
        make()
    message = str(err.value)
    assert f"{value} Hz" in message and "Hz for a sampling rate" in message
    assert "\n" not in message


def test_bad_band_and_order_are_refused():
    with pytest.raises(BiosigError, match="below its upper edge"):
        design_bandpass(100, 50, 1000)
    with pytest.raises(BiosigError, match="order"):
        design_highpass(10, 1000, order=0)
    with pytest.raises(BiosigError, match="sos"):
        SOSFilter(np.zeros((0, 6)), 1)
    with pytest.raises(BiosigError, match="channels"):
        SOSFilter(design_lowpass(10, 100), 2).process(np.zeros((5, 3)))


# --- envelopes ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MovingRMS, MovingAverage])
def test_moving_window_of_constant_equals_constant(cls):
    x = np.full((1000, 3), 2.5)
    x[:, 1] = -4.0
    y = run_chunked(cls(1000, 0.05, 3), x, max_size=80)
    expected = np.abs(x) if cls is MovingRMS else x
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)


def test_moving_rms_and_average_match_direct_computation():
    fs, window_s = 200.0, 0.1  # 20 samples
    x = np.random.default_rng(3).normal(size=(700, 2)) * 50
    rms = run_chunked(MovingRMS(fs, window_s, 2), x, max_size=60)
    avg = run_chunked(MovingAverage(fs, window_s, 2), x, max_size=60)
    for i in (0, 5, 19, 20, 400, 699):
        window = x[max(0, i - 19) : i + 1]
        np.testing.assert_allclose(rms[i], np.sqrt(np.mean(window**2, axis=0)), rtol=1e-12)
        np.testing.assert_allclose(avg[i], np.mean(window, axis=0), rtol=1e-10, atol=1e-12)


def test_moving_sum_chunked_is_bit_identical_to_one_shot_over_long_streams():
    x = np.random.default_rng(4).normal(size=(20000, 2)) * 1e3 + 1e3
    one_shot = MovingRMS(2048, 0.1, 2).process(x)
    chunked = run_chunked(MovingRMS(2048, 0.1, 2), x, max_size=700)
    np.testing.assert_array_equal(one_shot, chunked)


def test_envelope_window_below_one_sample_is_refused():
    with pytest.raises(BiosigError, match="less than one sample"):
        MovingRMS(100, 0.001, 1)


def test_lowpass_envelope_of_rectified_tone_is_smooth():
    fs = 1000.0
    x = np.abs(tone(80, fs, 2.0))
    y = LowpassEnvelope(fs, 5, 1, order=2).process(x)
    assert abs(np.mean(y[1000:]) - 2 / np.pi) < 0.01
    assert np.std(y[1000:]) < 0.01


# --- rate change -------------------------------------------------------------------------


def test_decimator_keeps_every_factor_th_sample_across_chunks():
    fs, factor = 1000.0, 4
    x = np.random.default_rng(5).normal(size=(1001, 2))
    one_shot_stage = Decimator(factor, fs, 2)
    one_shot = one_shot_stage.process(x)
    assert one_shot.shape == (251, 2)  # samples 0, 4, ..., 1000
    aa = signal.cheby1(8, 0.05, 0.8 / factor, output="sos")
    np.testing.assert_allclose(one_shot, signal.sosfilt(aa, x, axis=0)[::factor], atol=1e-9)
    chunked = run_chunked(Decimator(factor, fs, 2), x, max_size=9)
    assert np.max(np.abs(chunked - one_shot)) <= 1e-9


def test_resampler_equals_causal_upfirdn_and_is_chunk_invariant():
    fs, fs_out = 2048.0, 1000.0
    assert rational_ratio(fs, fs_out) == (125, 256)
    x = np.random.default_rng(6).normal(size=(3000, 3))
    stage = Resampler(fs, fs_out, 3)
    one_shot = stage.process(x)
    n_out = (3000 * 125 - 1) // 256 + 1
    assert one_shot.shape == (n_out, 3)
    from biosig.dsp.resample import _polyphase_taps

    taps = _polyphase_taps(125, 256)
    h = taps.T.reshape(-1)  # undo the phase arrangement
    reference = signal.upfirdn(h, x, up=125, down=256, axis=0)[:n_out]
    assert np.max(np.abs(one_shot - reference)) <= 1e-9
    chunked = run_chunked(Resampler(fs, fs_out, 3), x, max_size=300)
    assert np.max(np.abs(chunked - one_shot)) <= 1e-9
    assert stage.delay_s == pytest.approx(2560 / 125 / 2048)


def test_resampler_passes_a_slow_tone_with_unit_gain():
    fs, fs_out = 2048.0, 1000.0
    x = tone(10, fs, 2.0)
    stage = Resampler(fs, fs_out, 1)
    y = stage.process(x)
    t_out = stage.output_timestamps(np.arange(len(x)) / fs)
    expected = np.sin(2 * np.pi * 10 * (t_out - stage.delay_s))
    np.testing.assert_allclose(y[200:, 0], expected[200:], atol=1e-3)


@pytest.mark.parametrize("make", [lambda: Decimator(3, 300, 2), lambda: Resampler(300, 200, 2)])
def test_rate_change_timestamps_and_mask_are_chunk_invariant(make):
    n = 500
    x = np.random.default_rng(7).normal(size=(n, 2))
    t = 100.0 + np.arange(n) / 300
    mask = np.zeros((n, 2), dtype=bool)
    mask[[10, 11, 250], 0] = True
    stage = make()
    y = stage.process(x)
    t_one, m_one = stage.output_timestamps(t), stage.output_mask(mask)
    stage = make()
    t_parts, m_parts = [], []
    for a, b in chunk_bounds(n, 40):
        stage.process(x[a:b])
        t_parts.append(stage.output_timestamps(t[a:b]))
        m_parts.append(stage.output_mask(mask[a:b]))
    np.testing.assert_array_equal(np.concatenate(t_parts), t_one)
    np.testing.assert_array_equal(np.vstack(m_parts), m_one)
    assert len(t_one) == len(y)
    np.testing.assert_allclose(np.diff(t_one), 1 / 100 if isinstance(stage, Decimator) else 1 / 200)
    assert t_one[0] == 100.0
    # 10 and 11 fall between the same pair of decimated outputs, not of resampled ones
    assert m_one[:, 0].sum() == (2 if isinstance(stage, Decimator) else 3)
    assert not m_one[:, 1].any()


def test_rate_change_map_needs_the_last_chunk():
    stage = Decimator(2, 100, 1)
    stage.process(np.zeros((10, 1)))
    with pytest.raises(BiosigError, match="last processed chunk"):
        stage.output_timestamps(np.arange(9))


def test_unreachable_resampling_ratio_is_refused():
    with pytest.raises(BiosigError, match="ratio"):
        rational_ratio(2048, 1000.123456)


# --- non-finite input --------------------------------------------------------------------


def test_nonfinite_samples_are_counted_replaced_and_flagged():
    x = np.arange(20.0).reshape(10, 2)
    x[0, 0] = np.nan  # before any finite value: replaced by 0
    x[3, 0] = np.inf
    x[4, 0] = np.nan
    x[7, 1] = -np.inf
    guard = NonFiniteGuard(2)
    parts = [guard.process(x[a:b]) for a, b in chunk_bounds(10, 3)]
    clean = np.vstack([p[0] for p in parts])
    replaced = np.vstack([p[1] for p in parts])
    np.testing.assert_array_equal(guard.n_nonfinite, [3, 1])
    np.testing.assert_array_equal(clean[[0, 3, 4], 0], [0.0, 4.0, 4.0])
    assert clean[7, 1] == x[6, 1]
    np.testing.assert_array_equal(np.argwhere(replaced), [[0, 0], [3, 0], [4, 0], [7, 1]])


def test_preprocessor_survives_nan_and_flags_windows():
    fs = 1000.0
    config = PipelineConfig.emg_default(fs)
    x = np.random.default_rng(8).normal(size=(3000, 4))
    x[1000:1010, 2] = np.nan
    x[2000, 0] = np.inf
    outputs = []
    for mode in ("one_shot", "chunked"):
        pre = Preprocessor(config.preprocess, fs, 4)
        bounds = [(0, 3000)] if mode == "one_shot" else chunk_bounds(3000, 120)
        parts = [pre.process_with_mask(x[a:b]) for a, b in bounds]
        filtered, envelope, replaced = (np.vstack([p[i] for p in parts]) for i in range(3))
        assert np.isfinite(filtered).all() and np.isfinite(envelope).all()
        np.testing.assert_array_equal(pre.n_nonfinite, [1, 0, 10, 0])
        outputs.append((filtered, envelope, replaced))
    for a, b in zip(*outputs):
        assert np.max(np.abs(a.astype(float) - b.astype(float))) <= 1e-9
    replaced = outputs[0][2]
    assert replaced[1000:1010, 2].all() and replaced.sum() == 11
    t = np.arange(3000) / fs
    batch = windows_offline(
        t, outputs[0][0], fs=fs, length_s=0.2, hop_s=0.05, mask=replaced
    )
    flagged_starts = batch.start_index[batch.flags]
    assert flagged_starts.min() == 850 and flagged_starts.max() == 2000
    assert not batch.flags[batch.start_index + 200 <= 1000].any()


# --- preprocessor ------------------------------------------------------------------------


def test_all_off_config_passes_data_through_exactly():
    x = np.random.default_rng(9).normal(size=(400, 2)) * 30 + 140
    pre = Preprocessor(PreprocessConfig(), 4.0, 2)
    filtered, envelope = pre.process(x)
    np.testing.assert_array_equal(filtered, x)
    np.testing.assert_array_equal(envelope, x)
    assert filtered is not x and envelope is not filtered
    assert pre.fs_out == 4.0
    np.testing.assert_array_equal(pre.output_timestamps(np.arange(400) / 4), np.arange(400) / 4)


def test_preprocessor_matches_its_stages_offline():
    fs = 2048.0
    config = PipelineConfig.emg_default(fs).preprocess
    x = np.random.default_rng(10).normal(size=(4096, 3))
    filtered, envelope = Preprocessor(config, fs, 3).process(x)
    sos = cascade(design_bandpass(20, 450, fs, 4), design_notch(50, fs, 30, max_hz=450))
    np.testing.assert_allclose(filtered, signal.sosfilt(sos, x, axis=0), atol=1e-9)
    np.testing.assert_allclose(envelope, MovingRMS(fs, 0.1, 3).process(filtered), atol=1e-12)


@pytest.mark.parametrize("envelope", ["moving_average", "lowpass", "none"])
def test_preprocessor_envelopes_and_rate_change_keep_lengths_equal(envelope):
    fs = 1000.0
    config = PreprocessConfig(
        highpass_hz=20.0, rectify=True, envelope=envelope, envelope_cutoff_hz=6.0, decimate=4
    )
    pre = Preprocessor(config, fs, 2)
    assert pre.fs_out == 250.0
    x = np.random.default_rng(11).normal(size=(1000, 2))
    filtered, envelope_out = pre.process(x)
    assert filtered.shape == envelope_out.shape == (250, 2)
    assert (envelope_out[50:] >= -1e-3).all()  # rectified, then smoothed


def test_preprocessor_resample_output_rate():
    config = PreprocessConfig(bandpass_hz=(20.0, 450.0), resample_hz=1000.0)
    pre = Preprocessor(config, 2048.0, 2)
    assert pre.fs_out == 1000.0
    filtered, envelope = pre.process(np.zeros((2048, 2)))
    assert filtered.shape == envelope.shape == (1000, 2)


# --- windows -----------------------------------------------------------------------------


def push_all(windower, t, arrays, bounds, mask=None):
    batches = [
        windower.push(
            t[a:b], *(arr[a:b] for arr in arrays), mask=None if mask is None else mask[a:b]
        )
        for a, b in bounds
    ]
    return WindowBatch.concatenate(batches)


def assert_batches_equal(a: WindowBatch, b: WindowBatch):
    np.testing.assert_array_equal(a.t_end, b.t_end)
    np.testing.assert_array_equal(a.start_index, b.start_index)
    np.testing.assert_array_equal(a.flags, b.flags)
    assert len(a.arrays) == len(b.arrays)
    for x, y in zip(a.arrays, b.arrays):
        assert x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "length_s, hop_s", [(0.05, 0.01), (0.01, 0.05), (0.013, 0.013), (0.001, 0.001)]
)
def test_windower_chunked_equals_offline(length_s, hop_s):
    fs = 1000.0
    n = 437
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 1))
    t = 5.0 + np.arange(n) / fs
    mask = np.zeros(n, dtype=bool)
    mask[[100, 300]] = True
    offline = windows_offline(t, a, b, fs=fs, length_s=length_s, hop_s=hop_s, mask=mask)
    length, hop = round(length_s * fs), round(hop_s * fs)
    assert offline.n_windows == (n - length) // hop + 1
    np.testing.assert_array_equal(offline.start_index, np.arange(offline.n_windows) * hop)
    np.testing.assert_array_equal(offline.t_end, t[offline.start_index + length - 1])
    np.testing.assert_array_equal(offline.arrays[0][3], a[3 * hop : 3 * hop + length])
    for max_size in (1, 7, 3 * length):
        bounds = chunk_bounds(n, max_size)
        streamed = push_all(Windower(fs, length_s, hop_s), t, (a, b), bounds, mask)
        assert_batches_equal(streamed, offline)


def test_windows_are_read_only_views_that_outlive_later_pushes():
    fs, n = 1000.0, 5000
    x = np.random.default_rng(15).normal(size=(n, 2))
    t = np.arange(n) / fs
    windower = Windower(fs, 0.1, 0.03)
    first = windower.push(t[:150], x[:150])
    kept = first.arrays[0].copy()
    for a in range(150, n, 64):  # enough pushes to replace the store several times
        windower.push(t[a : a + 64], x[a : a + 64])
    np.testing.assert_array_equal(first.arrays[0], kept)
    with pytest.raises(ValueError):
        first.arrays[0][0, 0, 0] = 1.0
    offline = windows_offline(t, x, fs=fs, length_s=0.1, hop_s=0.03)
    with pytest.raises(ValueError):
        offline.arrays[0][0, 0, 0] = 1.0


def test_windower_chunks_of_size_zero_and_one():
    fs = 100.0
    n = 30
    x = np.arange(n, dtype=float)[:, None]
    t = np.arange(n) / fs
    windower = Windower(fs, 0.05, 0.02)  # 5 samples, hop 2
    empty = windower.push(t[:0], x[:0])
    assert empty.n_windows == 0 and empty.arrays[0].shape == (0, 5, 1)
    batches = [windower.push(t[i : i + 1], x[i : i + 1]) for i in range(n)]
    assert [b.n_windows for b in batches[:7]] == [0, 0, 0, 0, 1, 0, 1]
    joined = WindowBatch.concatenate(batches)
    assert_batches_equal(joined, windows_offline(t, x, fs=fs, length_s=0.05, hop_s=0.02))


def test_window_longer_than_input_gives_no_window():
    t = np.arange(10) / 100
    x = np.ones((10, 2))
    batch = windows_offline(t, x, fs=100, length_s=0.5, hop_s=0.1)
    assert batch.n_windows == 0 and batch.arrays[0].shape == (0, 50, 2)
    windower = Windower(100, 0.5, 0.1)
    assert windower.push(t, x).n_windows == 0
    assert windower.push(t[:0] + 0.1, x[:0]).n_windows == 0


@pytest.mark.parametrize("hop_s", [0.01, 0.5])
def test_windower_memory_stays_bounded(hop_s):
    windower = Windower(1000, 0.1, hop_s)
    for i in range(300):
        windower.push(np.arange(64) + 64.0 * i, np.ones((64, 2)))
        assert windower._buffers[1].size < 100 + 64
    assert windower._buffers[1]._storage.shape[0] <= 8 * 100 + 256


@pytest.mark.parametrize("length_s, hop_s", [(0.0004, 0.01), (0.01, 0.0004), (0.01, 0.0)])
def test_windows_below_one_sample_are_refused(length_s, hop_s):
    with pytest.raises(BiosigError):
        Windower(1000, length_s, hop_s)


def test_windower_refuses_inconsistent_pushes():
    windower = Windower(100, 0.1, 0.1)
    windower.push(np.arange(3.0), np.zeros((3, 2)))
    with pytest.raises(BiosigError, match="channel counts"):
        windower.push(np.arange(3.0), np.zeros((3, 3)))
    with pytest.raises(BiosigError, match="samples"):
        windower.push(np.arange(3.0), np.zeros((4, 2)))


# --- features ----------------------------------------------------------------------------


def test_features_on_hand_computed_window():
    x = np.array([1.0, -1.0, 2.0, 2.0, -3.0])
    env = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    windows = np.stack([x, -x], axis=1)[None]  # (1, 5, 2)
    envelope = np.stack([env, env], axis=1)[None]
    extractor = FeatureExtractor(channel_labels=["a", "b"])
    out = extractor.transform(windows, envelope)
    assert out.shape == (1, 12) and out.dtype == np.float64
    values = dict(zip(extractor.feature_names, out[0]))
    assert values["env_mean:a"] == 3.0
    assert values["rms:a"] == pytest.approx(np.sqrt(19 / 5), abs=1e-15)
    assert values["mav:a"] == pytest.approx(9 / 5, abs=1e-15)
    assert values["wl:a"] == 10.0  # |-2| + |3| + |0| + |-5|
    assert values["zc:a"] == 3.0  # 1->-1, -1->2, 2->-3
    assert values["ssc:a"] == 1.0  # only -1 is a strict extremum; the plateau 2, 2 is not
    for name in FEATURE_NAMES:  # sign flip changes none of them
        assert values[f"{name}:b"] == values[f"{name}:a"]


def test_feature_thresholds():
    x = np.array([1.0, -1.0, 2.0, 2.0, -3.0, -2.9])[None, :, None]
    strict = FeatureExtractor(("zc", "ssc"), ["c"], zc_threshold=2.5, ssc_threshold=3.0)
    zc, ssc = strict.transform(x)[0]
    assert zc == 2.0  # steps of 3 and 5 qualify, the step of 2 does not
    assert ssc == 2.0  # extrema -1 (largest step 3) and -3 (largest step 5)
    loose = FeatureExtractor(("ssc",), ["c"], ssc_threshold=3.5)
    assert loose.transform(x)[0, 0] == 1.0  # only -3 (step 5)


def test_feature_names_are_feature_major_and_stable():
    extractor = FeatureExtractor(("mav", "wl"), ["F1", "W2"])
    assert extractor.feature_names == ["mav:F1", "mav:W2", "wl:F1", "wl:W2"]
    x = np.random.default_rng(13).normal(size=(9, 20, 2))
    out = extractor.transform(x)
    np.testing.assert_allclose(out[:, 1], np.abs(x[:, :, 1]).mean(axis=1), rtol=1e-13)
    wl_f1 = np.abs(np.diff(x[:, :, 0], axis=1)).sum(axis=1)
    np.testing.assert_allclose(out[:, 2], wl_f1, rtol=1e-13)


def test_features_batched_equal_one_by_one_and_never_nan():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(11, 30, 3))
    x[2] = 0.0  # a silent window
    env = np.abs(x)
    extractor = FeatureExtractor(channel_labels=["a", "b", "c"])
    batched = extractor.transform(x, env)
    single = np.vstack([extractor.transform(x[i : i + 1], env[i : i + 1]) for i in range(11)])
    np.testing.assert_allclose(batched, single, rtol=1e-13, atol=1e-15)
    assert np.isfinite(batched).all()
    one_sample = extractor.transform(x[:, :1], env[:, :1])
    assert np.isfinite(one_sample).all()
    assert extractor.transform(x[:0], env[:0]).shape == (0, 18)


def test_unknown_feature_lists_valid_names():
    valid = "env_mean, rms, mav, wl, zc, ssc"
    with pytest.raises(BiosigError, match=f"unknown feature 'iemg'.*{valid}"):
        FeatureExtractor(("mav", "iemg"), ["a"])
    with pytest.raises(BiosigError, match="channels"):
        FeatureExtractor(("mav",), ["a"]).transform(np.zeros((1, 5, 2)))
    with pytest.raises(BiosigError, match="envelope"):
        FeatureExtractor(("env_mean",), ["a"]).transform(np.zeros((1, 5, 1)))


# --- window features (no windows) ----------------------------------------------------------


def _features_via_windows(extractor, t, x, env, fs, length_s, hop_s, mask):
    signals = (x,) if env is None else (x, env)
    batch = windows_offline(t, *signals, fs=fs, length_s=length_s, hop_s=hop_s, mask=mask)
    return batch, extractor.transform(*batch.arrays)


def _assert_same_features(got: np.ndarray, expected: np.ndarray, extractor):
    assert got.shape == expected.shape
    if not got.size:
        return
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    counts = [
        i for i, name in enumerate(extractor.feature_names) if name.split(":")[0] in ("zc", "ssc")
    ]
    np.testing.assert_array_equal(got[:, counts], expected[:, counts])  # counts stay exact


@pytest.mark.parametrize(
    "length_s, hop_s",
    [
        (0.2, 0.05),  # the EMG preset: 200 / 50 samples
        (0.05, 0.013),  # length not a multiple of the hop
        (0.013, 0.013),  # no overlap
        (0.01, 0.05),  # gaps between windows
        (0.004, 0.003),  # hop of 3: the shortest without the fallback
        (0.002, 0.004),  # windows shorter than what ssc leaves out
        (0.05, 0.002),  # hop of 2: falls back to windows + transform
        (0.001, 0.001),
    ],
)
def test_window_features_equal_transform_of_the_windows(length_s, hop_s):
    fs, n = 1000.0, 1500
    rng = np.random.default_rng(21)
    x = rng.normal(size=(n, 3))
    x[300:320] = 0.0  # exact zeros: no crossing, no slope change
    x[400:410, 1] = 1.0  # a plateau
    env = np.abs(rng.normal(size=(n, 3)))
    t = 3.0 + np.arange(n) / fs
    mask = np.zeros((n, 3), dtype=bool)
    mask[[250, 900], [0, 2]] = True
    extractor = FeatureExtractor(channel_labels=["a", "b", "c"])
    reference, expected = _features_via_windows(extractor, t, x, env, fs, length_s, hop_s, mask)
    for max_size in (None, 1, 7, 150):
        features = WindowFeatures(extractor, fs, length_s, hop_s)
        bounds = [(0, n)] if max_size is None else chunk_bounds(n, max_size)
        batches = [
            features.push(t[a:b], x[a:b], env[a:b], mask=mask[a:b]) for a, b in bounds
        ]
        got = FeatureBatch.concatenate(batches)
        assert got.n_windows == reference.n_windows
        np.testing.assert_array_equal(got.t_end, reference.t_end)
        np.testing.assert_array_equal(got.start_index, reference.start_index)
        np.testing.assert_array_equal(got.flags, reference.flags)
        _assert_same_features(got.features, expected, extractor)
    assert reference.flags.any()


def test_window_features_with_thresholds_subsets_and_any_order():
    fs, n = 500.0, 2000
    x = np.random.default_rng(22).normal(size=(n, 2))
    t = np.arange(n) / fs
    for names in [("ssc", "zc", "wl"), ("zc",), ("ssc",), ("rms", "mav"), ("wl", "env_mean")]:
        for zc_threshold, ssc_threshold in [(0.0, 0.0), (0.8, 0.5)]:
            extractor = FeatureExtractor(
                names, ["p", "q"], zc_threshold=zc_threshold, ssc_threshold=ssc_threshold
            )
            env = np.abs(x) if "env_mean" in names else None
            _, expected = _features_via_windows(extractor, t, x, env, fs, 0.1, 0.03, None)
            features = WindowFeatures(extractor, fs, 0.1, 0.03)
            got = FeatureBatch.concatenate(
                features.push(t[a:b], x[a:b], None if env is None else env[a:b])
                for a, b in chunk_bounds(n, 90)
            )
            _assert_same_features(got.features, expected, extractor)


def test_window_features_of_windows_many_hops_long():
    fs, n = 1000.0, 2500
    x = np.random.default_rng(27).normal(size=(n, 2))
    t = np.arange(n) / fs
    extractor = FeatureExtractor(channel_labels=["a", "b"])
    features = WindowFeatures(extractor, fs, 1.0, 0.003)  # 334 hops per window
    assert features._window_index is None  # indices computed per push, not tabulated
    _, expected = _features_via_windows(extractor, t, x, np.abs(x), fs, 1.0, 0.003, None)
    got = FeatureBatch.concatenate(
        features.push(t[a:b], x[a:b], np.abs(x[a:b])) for a, b in chunk_bounds(n, 400)
    )
    _assert_same_features(got.features, expected, extractor)


def test_window_features_stay_bounded_and_reset():
    fs = 1000.0
    extractor = FeatureExtractor(channel_labels=["a", "b"])
    features = WindowFeatures(extractor, fs, 0.2, 0.05)
    x = np.random.default_rng(23).normal(size=(64, 2))
    first = []
    for i in range(500):
        batch = features.push(np.arange(64) / fs + 0.064 * i, x, np.abs(x))
        if i < 20:
            first.append(batch)
        assert features._signal.rows.shape[1] <= 4 * 50 + 1024
        assert features._sums.shape[0] <= 4 * 4 + 8
    # one push of a whole recording is taken in pieces: the buffers stay small
    features.reset()
    long = np.random.default_rng(24).normal(size=(30000, 2))
    assert features.push(np.arange(30000) / fs, long, np.abs(long)).n_windows == 597
    assert features._signal.rows.shape[1] <= 2 * (4096 + 4 * 50 + 1024)
    assert features._sums.shape[0] <= 2 * (4096 // 50 + 4 * 4 + 8)
    features.reset()
    again = [features.push(np.arange(64) / fs + 0.064 * i, x, np.abs(x)) for i in range(20)]
    np.testing.assert_array_equal(
        FeatureBatch.concatenate(again).features, FeatureBatch.concatenate(first).features
    )


def test_window_features_refuse_bad_pushes():
    extractor = FeatureExtractor(channel_labels=["a", "b"])
    features = WindowFeatures(extractor, 100.0, 0.1, 0.05)
    with pytest.raises(BiosigError, match="channels"):
        features.push(np.arange(3.0), np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(BiosigError, match="samples"):
        features.push(np.arange(3.0), np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(BiosigError, match="env_mean"):
        features.push(np.arange(3.0), np.zeros((3, 2)))
    with pytest.raises(BiosigError, match="FeatureExtractor"):
        WindowFeatures(None, 100.0, 0.1, 0.05)
    empty = features.push(np.zeros(0), np.zeros((0, 2)), np.zeros((0, 2)))
    assert empty.n_windows == 0 and empty.features.shape == (0, 12)


@pytest.mark.parametrize(
    "changes, length_s, hop_s",
    [
        ({}, 0.2, 0.05),  # the EMG preset
        ({"envelope": "moving_average", "filter_init": "steady"}, 0.2, 0.05),
        ({"envelope": "lowpass", "envelope_cutoff_hz": 8.0}, 0.1, 0.03),
        ({"envelope": "none", "bandpass_hz": None, "highpass_hz": 20.0}, 0.05, 0.05),
        ({"envelope": "none", "rectify": False, "bandpass_hz": None, "notch_hz": None}, 0.1, 0.02),
        ({"decimate": 2}, 0.2, 0.05),  # a rate change: no deferring
        ({}, 0.05, 0.002),  # a hop of 2 samples: WindowFeatures falls back, no deferring
    ],
)
def test_feature_chain_equals_its_stages_chunk_by_chunk(changes, length_s, hop_s):
    fs, n = 1000.0, 3000
    rng = np.random.default_rng(25)
    x = rng.normal(size=(n, 3)) + 0.5
    x[700, 1] = np.nan
    x[1500:1504, 0] = np.inf
    x[2980:, 2] = np.nan  # in the last, unfinished window: still counted
    t = 10.0 + np.arange(n) / fs
    config = PipelineConfig.emg_default(fs)
    preprocess = PreprocessConfig(**{**config.preprocess.to_dict(), **changes})
    extractor = FeatureExtractor(channel_labels=["a", "b", "c"])

    def stages():
        pre = Preprocessor(preprocess, fs, 3)
        return pre, WindowFeatures(extractor, pre.fs_out, length_s, hop_s)

    pre, features = stages()
    chain = FeatureChain(*stages())
    expected, got = [], []
    for a, b in chunk_bounds(n, 90):
        filtered, envelope, replaced = pre.process_with_mask(x[a:b])
        expected.append(
            features.push(pre.output_timestamps(t[a:b]), filtered, envelope, mask=replaced)
        )
        got.append(chain.push(x[a:b], t[a:b]))
        assert len(got[-1]) == len(expected[-1])  # each window as soon as it completes
        np.testing.assert_array_equal(chain.n_nonfinite, pre.n_nonfinite)
    expected, got = FeatureBatch.concatenate(expected), FeatureBatch.concatenate(got)
    assert got.n_windows > 10 and got.flags.any() and not got.flags.all()
    np.testing.assert_array_equal(got.t_end, expected.t_end)
    np.testing.assert_array_equal(got.start_index, expected.start_index)
    np.testing.assert_array_equal(got.flags, expected.flags)
    _assert_same_features(got.features, expected.features, extractor)
    np.testing.assert_array_equal(chain.n_nonfinite, [4, 1, 20])
    # one call over the whole recording, and again after a reset
    for _ in range(2):
        once = chain.reset().push(x, t)
        np.testing.assert_array_equal(once.t_end, expected.t_end)
        np.testing.assert_array_equal(once.flags, expected.flags)
        _assert_same_features(once.features, expected.features, extractor)


def test_feature_chain_takes_a_long_recording_in_pieces():
    fs = 2048.0
    x = np.random.default_rng(26).normal(size=(20000, 2))
    t = np.arange(20000) / fs
    config = PipelineConfig.emg_default(fs)
    extractor = FeatureExtractor(config.features.names, ["a", "b"])

    def chain():
        pre = Preprocessor(config.preprocess, fs, 2)
        return FeatureChain(pre, WindowFeatures(extractor, fs, 0.2, 0.05))

    once = chain().push(x, t)
    chunked = chain()
    pieces = FeatureBatch.concatenate(
        chunked.push(x[a : a + 32], t[a : a + 32]) for a in range(0, 20000, 32)
    )
    assert once.n_windows == pieces.n_windows == (20000 - 410) // 102 + 1
    np.testing.assert_array_equal(once.t_end, pieces.t_end)
    _assert_same_features(once.features, pieces.features, extractor)
    assert chunked.features._signal.rows.shape[1] <= 4 * 102 + 1024
    assert chunked._pending.shape[0] <= 1024


def test_feature_chain_refuses_mismatched_stages():
    extractor = FeatureExtractor(channel_labels=["a", "b"])
    pre = Preprocessor(PreprocessConfig(decimate=2), 100.0, 2)
    with pytest.raises(BiosigError, match="Hz"):
        FeatureChain(pre, WindowFeatures(extractor, 100.0, 0.2, 0.05))
    with pytest.raises(BiosigError, match="channels"):
        FeatureChain(
            Preprocessor(PreprocessConfig(), 100.0, 3), WindowFeatures(extractor, 100.0, 0.2, 0.05)
        )
    chain = FeatureChain(
        Preprocessor(PreprocessConfig(), 100.0, 2), WindowFeatures(extractor, 100.0, 0.2, 0.05)
    )
    with pytest.raises(BiosigError, match="timestamps"):
        chain.push(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(BiosigError, match="channels"):
        chain.push(np.zeros((3, 3)), np.zeros(3))


# --- configuration -----------------------------------------------------------------------


def test_config_round_trips_through_json():
    config = PipelineConfig.emg_default(2048)
    config.channels = ["F1", "F2"]
    config.stream_name = "EMG"
    data = json.loads(json.dumps(config.to_dict()))
    assert PipelineConfig.from_dict(data) == config
    assert PreprocessConfig.from_dict(config.preprocess.to_dict()) == config.preprocess


def test_config_unknown_key_is_named():
    data = PipelineConfig.ctg_default().to_dict()
    data["preprocess"]["notch_hertz"] = 50
    with pytest.raises(BiosigError, match="unknown key 'notch_hertz' in \\[preprocess\\]"):
        PipelineConfig.from_dict(data)
    with pytest.raises(BiosigError, match="unknown key 'windows'"):
        PipelineConfig.from_dict({"windows": {}})


def test_load_config_from_toml(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(
        'stream_type = "EMG"\nchannels = ["F1", "F2"]\n\n'
        "[preprocess]\nbandpass_hz = [20, 450]\nnotch_hz = 60\nrectify = true\n"
        'envelope = "moving_rms"\n\n[window]\nlength_s = 0.25\nhop_s = 0.05\n\n'
        '[features]\nnames = ["mav", "wl"]\n'
    )
    config = load_config(path)
    assert config.preprocess.bandpass_hz == (20.0, 450.0)
    assert config.preprocess.notch_hz == 60.0
    assert config.window == WindowConfig(0.25, 0.05)
    assert config.features == FeatureConfig(names=("mav", "wl"))
    assert config.channels == ["F1", "F2"]
    config.validate(2048)
    bad = tmp_path / "bad.toml"
    bad.write_text("[preprocess\n")
    with pytest.raises(BiosigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(BiosigError, match="not found"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"notch_hz": 55}, "notch_hz"),
        ({"envelope": "hilbert"}, "envelope"),
        ({"highpass_hz": 20, "bandpass_hz": (20, 450)}, "not both"),
        ({"bandpass_hz": (450, 20)}, "below upper edge"),
        ({"resample_hz": 1000, "decimate": 2}, "not both"),
        ({"filter_order": 0}, "filter_order"),
        ({"rectify": "yes"}, "rectify"),
        ({"notch_harmonics": 0}, "notch_harmonics"),
    ],
)
def test_preprocess_config_refuses_bad_values(kwargs, match):
    with pytest.raises(BiosigError, match=match):
        PreprocessConfig(**kwargs)


def test_config_validate_refuses_frequencies_above_nyquist():
    with pytest.raises(BiosigError, match="bandpass_hz upper edge = 450 Hz.*Nyquist.*100 Hz"):
        PreprocessConfig(bandpass_hz=(20.0, 450.0)).validate(200)
    with pytest.raises(BiosigError, match="envelope_cutoff_hz"):
        PreprocessConfig(envelope="lowpass", envelope_cutoff_hz=3.0).validate(4)
    with pytest.raises(BiosigError, match="window hop"):
        PipelineConfig(window=WindowConfig(1.0, 0.1)).validate(4)
    with pytest.raises(BiosigError, match="Nyquist"):
        Preprocessor(PreprocessConfig(highpass_hz=100.0), 200.0, 1)


def test_emg_preset_adapts_to_the_myo_rate(caplog):
    with caplog.at_level(logging.INFO, logger="biosig.config"):
        myo = PipelineConfig.emg_default(200)
    assert "using a 20 Hz high-pass" in caplog.text
    assert myo.preprocess.bandpass_hz is None and myo.preprocess.highpass_hz == 20.0
    assert myo.preprocess.notch_hz == 50.0
    grab = PipelineConfig.emg_default(2048)
    assert grab.preprocess.bandpass_hz == (20.0, 450.0)
    with caplog.at_level(logging.INFO, logger="biosig.config"):
        low = PipelineConfig.emg_default(80)
    assert low.preprocess.notch_hz is None and "no notch" in caplog.text


def test_ctg_preset_is_pass_through():
    config = PipelineConfig.ctg_default(4)
    pre = Preprocessor(config.preprocess, 4, 2)
    x = np.array([[140.0, 10.0], [0.0, 12.0], [141.5, 80.0]])
    filtered, envelope = pre.process(x)
    np.testing.assert_array_equal(filtered, x)
    np.testing.assert_array_equal(envelope, x)
    assert config.window.validate(4) is config.window


def test_for_rate_picks_the_preset_of_the_modality():
    assert PipelineConfig.for_rate(2048) == PipelineConfig.emg_default(2048)
    assert PipelineConfig.for_rate(4, modality="ctg") == PipelineConfig.ctg_default(4)
    with pytest.raises(BiosigError, match="no preset for stream type 'EEG'"):
        PipelineConfig.for_rate(250, modality="EEG")


def test_last_replaced_follows_process():
    pre = Preprocessor(PreprocessConfig(highpass_hz=1.0), 100.0, 2)
    x = np.ones((5, 2))
    x[2, 1] = np.nan
    filtered, _ = pre.process(x)
    assert pre.last_replaced.shape == (5, 2) and pre.last_replaced[2, 1]
    assert pre.last_replaced.sum() == 1
    pre.process(np.ones((3, 2)))
    assert pre.last_replaced.shape == (3, 2) and not pre.last_replaced.any()
