"""Chunked == offline on real recordings: Myo (200 Hz), GRABMyo (2048 Hz), CTU-UHB CTG (4 Hz).

Each recording is fed to the preprocessing chain, the windower and the feature extractor in
random-sized chunks (0 to ~3 windows long, 0 and 1 included), and compared with one offline
call: filtered signal, envelope, replaced-sample mask, output timestamps, windows (t_end,
contents, flags) and features must agree to 1e-9. The same chunks also go to
:class:`WindowFeatures` (features without windows, after the preprocessor) and to a
:class:`FeatureChain` (preprocessor + WindowFeatures, preprocessing deferred to window ends),
whose features, chunked and in one call, must match those of the offline windows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import wfdb
from scipy import signal

from biosig.config import FeatureConfig, PipelineConfig, PreprocessConfig, WindowConfig
from biosig.dsp import (
    FeatureBatch,
    FeatureChain,
    FeatureExtractor,
    Preprocessor,
    WindowBatch,
    WindowFeatures,
    Windower,
    cascade,
    design_bandpass,
    design_highpass,
    design_notch,
    window_lengths,
    windows_offline,
)

TOLERANCE = 1e-9


def load_myo(shared_data):
    path = shared_data / "myo-readings-dataset" / "12345-1" / "1.txt"
    raw = np.loadtxt(path, delimiter=",")
    return raw[:, :8].astype(np.float64), 200.0, [f"emg{i + 1}" for i in range(8)]


def load_grabmyo(shared_data):
    record = wfdb.rdrecord(
        str(shared_data / "grabmyo-subset" / "session1_participant1_gesture11_trial1")
    )
    used = [i for i, name in enumerate(record.sig_name) if name not in ("U1", "U2", "U3", "U4")]
    data = np.ascontiguousarray(record.p_signal[:, used], dtype=np.float64)
    return data, float(record.fs), [record.sig_name[i] for i in used]


def load_ctg(shared_data):
    record = wfdb.rdrecord(str(shared_data / "ctu-uhb-ctgdb" / "1001"))
    return np.asarray(record.p_signal, dtype=np.float64), float(record.fs), list(record.sig_name)


def chunk_bounds(n: int, max_size: int, seed: int):
    rng = np.random.default_rng(seed)
    sizes = [0, 1, 1, 0, 2]
    bounds, start = [], 0
    while start < n:
        size = sizes.pop(0) if sizes else int(rng.integers(0, max_size + 1))
        bounds.append((start, min(start + size, n)))
        start += size
    return bounds + [(n, n)]


@dataclasses.dataclass
class Result:
    filtered: np.ndarray
    envelope: np.ndarray
    replaced: np.ndarray
    timestamps: np.ndarray
    windows: WindowBatch
    features: np.ndarray
    streamed: FeatureBatch  # from WindowFeatures, fed the same chunks
    chained: FeatureBatch  # from a FeatureChain fed the same raw chunks


def make_stages(config: PipelineConfig, fs: float, labels):
    pre = Preprocessor(config.preprocess, fs, len(labels))
    extractor = FeatureExtractor(
        config.features.names,
        labels,
        zc_threshold=config.features.zc_threshold,
        ssc_threshold=config.features.ssc_threshold,
    )
    return pre, extractor


def make_window_features(config, extractor, pre) -> WindowFeatures:
    return WindowFeatures(extractor, pre.fs_out, config.window.length_s, config.window.hop_s)


def make_chain(config, fs, labels) -> FeatureChain:
    pre, extractor = make_stages(config, fs, labels)
    return FeatureChain(pre, make_window_features(config, extractor, pre))


def run_offline(config, fs, x, t, labels) -> Result:
    pre, extractor = make_stages(config, fs, labels)
    filtered, envelope, replaced = pre.process_with_mask(x)
    t_out = pre.output_timestamps(t)
    streamed = make_window_features(config, extractor, pre).push(
        t_out, filtered, envelope, mask=replaced
    )
    windows = windows_offline(
        t_out,
        filtered,
        envelope,
        fs=pre.fs_out,
        length_s=config.window.length_s,
        hop_s=config.window.hop_s,
        mask=replaced,
    )
    features = extractor.transform(*windows.arrays)
    chained = make_chain(config, fs, labels).push(x, t)
    return Result(filtered, envelope, replaced, t_out, windows, features, streamed, chained)


def run_chunked(config, fs, x, t, labels, seed) -> Result:
    pre, extractor = make_stages(config, fs, labels)
    windower = Windower(pre.fs_out, config.window.length_s, config.window.hop_s)
    window_features = make_window_features(config, extractor, pre)
    chain = make_chain(config, fs, labels)
    length, _ = window_lengths(pre.fs_out, config.window.length_s, config.window.hop_s)
    # chunk sizes in input samples, up to ~3 windows
    max_size = int(3 * length * fs / pre.fs_out)
    parts = {"f": [], "e": [], "m": [], "t": [], "w": [], "x": [], "s": [], "c": []}
    for a, b in chunk_bounds(len(x), max_size, seed):
        filtered, envelope, replaced = pre.process_with_mask(x[a:b])
        t_out = pre.output_timestamps(t[a:b])
        batch = windower.push(t_out, filtered, envelope, mask=replaced)
        parts["f"].append(filtered)
        parts["e"].append(envelope)
        parts["m"].append(replaced)
        parts["t"].append(t_out)
        parts["w"].append(batch)
        parts["x"].append(extractor.transform(*batch.arrays))
        parts["s"].append(window_features.push(t_out, filtered, envelope, mask=replaced))
        parts["c"].append(chain.push(x[a:b], t[a:b]))
        # non-finite samples are counted in the push that brings them
        np.testing.assert_array_equal(chain.n_nonfinite, pre.n_nonfinite)
    return Result(
        np.vstack(parts["f"]),
        np.vstack(parts["e"]),
        np.vstack(parts["m"]),
        np.concatenate(parts["t"]),
        WindowBatch.concatenate(parts["w"]),
        np.vstack(parts["x"]),
        FeatureBatch.concatenate(parts["s"]),
        FeatureBatch.concatenate(parts["c"]),
    )


def assert_parity(offline: Result, chunked: Result):
    def close(a, b, what):
        assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
        if a.size:
            diff = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))
            assert diff <= TOLERANCE, f"{what}: max abs difference {diff:g}"

    close(offline.filtered, chunked.filtered, "filtered")
    close(offline.envelope, chunked.envelope, "envelope")
    np.testing.assert_array_equal(offline.replaced, chunked.replaced)
    close(offline.timestamps, chunked.timestamps, "timestamps")
    close(offline.windows.t_end, chunked.windows.t_end, "t_end")
    np.testing.assert_array_equal(offline.windows.start_index, chunked.windows.start_index)
    np.testing.assert_array_equal(offline.windows.flags, chunked.windows.flags)
    for i, (a, b) in enumerate(zip(offline.windows.arrays, chunked.windows.arrays)):
        close(a, b, f"window array {i}")
    close(offline.features, chunked.features, "features")
    # features without windows, in one call and chunked, against those of the windows
    for streamed, how in (
        (offline.streamed, "one call"),
        (chunked.streamed, "chunked"),
        (offline.chained, "FeatureChain, one call"),
        (chunked.chained, "FeatureChain, chunked"),
    ):
        close(offline.windows.t_end, streamed.t_end, f"WindowFeatures t_end ({how})")
        np.testing.assert_array_equal(offline.windows.start_index, streamed.start_index)
        np.testing.assert_array_equal(offline.windows.flags, streamed.flags)
        close(offline.features, streamed.features, f"WindowFeatures features ({how})")
    assert np.isfinite(offline.features).all()
    assert offline.windows.n_windows > 0


def with_preprocess(config: PipelineConfig, **changes) -> PipelineConfig:
    return dataclasses.replace(config, preprocess=dataclasses.replace(config.preprocess, **changes))


def test_myo_emg_default_parity(shared_data):
    x, fs, labels = load_myo(shared_data)
    x = x.copy()
    x[[500, 501, 7000], [2, 2, 5]] = np.nan  # exercise the non-finite path on real data
    config = PipelineConfig.emg_default(fs)
    t = np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    assert_parity(offline, run_chunked(config, fs, x, t, labels, seed=1))
    assert offline.replaced.sum() == 3 and offline.windows.flags.sum() > 0
    # the filtered signal is the scipy one-shot reference (with NaNs held at the last value)
    held = x.copy()
    held[500:502, 2] = x[499, 2]
    held[7000, 5] = x[6999, 5]
    sos = cascade(design_highpass(20, fs), design_notch(50, fs))
    reference = signal.sosfilt(sos, held, axis=0)
    assert np.max(np.abs(offline.filtered - reference)) <= TOLERANCE


def test_myo_decimated_lowpass_envelope_parity(shared_data):
    x, fs, labels = load_myo(shared_data)
    config = with_preprocess(
        PipelineConfig.emg_default(fs), envelope="lowpass", envelope_cutoff_hz=4.0, decimate=2
    )
    t = 17.0 + np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    assert offline.filtered.shape[0] == (len(x) + 1) // 2
    np.testing.assert_allclose(offline.timestamps, t[::2])
    assert_parity(offline, run_chunked(config, fs, x, t, labels, seed=2))


def test_grabmyo_emg_default_parity(shared_data):
    x, fs, labels = load_grabmyo(shared_data)
    assert x.shape == (10240, 28) and fs == 2048.0
    config = PipelineConfig.emg_default(fs)
    t = np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    assert_parity(offline, run_chunked(config, fs, x, t, labels, seed=3))
    sos = cascade(design_bandpass(20, 450, fs), design_notch(50, fs, max_hz=450))
    assert sos.shape[0] == 4 + 9
    assert np.max(np.abs(offline.filtered - signal.sosfilt(sos, x, axis=0))) <= TOLERANCE
    assert offline.features.shape == (offline.windows.n_windows, 6 * 28)


def test_grabmyo_resampled_to_1000_hz_parity(shared_data):
    x, fs, labels = load_grabmyo(shared_data)
    config = with_preprocess(
        PipelineConfig.emg_default(fs), envelope="moving_average", resample_hz=1000.0
    )
    t = 1000.0 + np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    assert offline.filtered.shape[0] == 5000
    np.testing.assert_allclose(np.diff(offline.timestamps), 1e-3, rtol=1e-6)
    assert_parity(offline, run_chunked(config, fs, x, t, labels, seed=4))


def _ctg_pass_through(fs):
    """The CTG preset's pass-through preprocessing with EMG-chain features on 60-s windows
    (the CTG preset itself runs the CTG chain, tested in test_ctg.py)."""
    return dataclasses.replace(PipelineConfig.ctg_default(fs), window=WindowConfig(60.0, 10.0),
                               features=FeatureConfig(names=("env_mean", "wl")))


def test_ctg_pass_through_parity(shared_data):
    x, fs, labels = load_ctg(shared_data)
    assert fs == 4.0
    config = _ctg_pass_through(fs)
    t = np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    finite = np.isfinite(x)
    np.testing.assert_array_equal(offline.filtered[finite], x[finite])
    np.testing.assert_array_equal(offline.envelope[finite], x[finite])
    assert offline.windows.arrays[0].shape[1:] == (240, 2)
    assert_parity(offline, run_chunked(config, fs, x, t, labels, seed=5))


def test_ctg_smoothed_steady_init_parity(shared_data):
    x, fs, labels = load_ctg(shared_data)
    config = with_preprocess(
        _ctg_pass_through(fs),
        envelope="lowpass",
        envelope_cutoff_hz=0.5,
        filter_init="steady",
    )
    t = np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    # steady init: no start-up transient from 0 to the FHR baseline
    assert abs(offline.envelope[0, 0] - x[0, 0]) < 1e-9
    assert_parity(offline, run_chunked(config, fs, x, t, labels, seed=6))


@pytest.mark.parametrize("seed", [7, 8])
def test_grabmyo_live_sized_chunks_parity(shared_data, seed):
    x, fs, labels = load_grabmyo(shared_data)
    x = x[:4096]
    config = PipelineConfig.emg_default(fs)
    t = np.arange(len(x)) / fs
    offline = run_offline(config, fs, x, t, labels)
    pre, extractor = make_stages(config, fs, labels)
    rng = np.random.default_rng(seed)
    pieces, start = [], 0
    while start < len(x):  # LSL-like: mostly 32, sometimes a burst or a straggler
        size = int(rng.choice([32, 32, 32, 1, 64, 100]))
        pieces.append(pre.process(x[start : start + size])[0])
        start += size
    assert np.max(np.abs(np.vstack(pieces) - offline.filtered)) <= TOLERANCE
    assert isinstance(PreprocessConfig.from_dict(config.preprocess.to_dict()), PreprocessConfig)
