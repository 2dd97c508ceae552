"""Throughput of the EMG chain, chunked as live data arrives and offline, on one CPU core.

Runs band-pass 20-450 Hz + 50 Hz notch with its harmonics (to 450 Hz as in the EMG preset, or
to Nyquist with ``--all-harmonics``) -> rectify -> 100 ms moving RMS -> 200 ms / 50 ms windows
-> all features on a GRABMyo trial (28 used channels at 2048 Hz) tiled to ``--seconds``, and
prints each path's multiple of real time. The baseline is
the habit biosig avoids (LibEMG's): re-running zero-phase ``sosfiltfilt`` over a whole buffer
for every chunk, measured in the same run on a shorter span.

Usage::

    python benchmarks/dsp_throughput.py [--seconds 60] [--chunk 32] [--repeats 3] [--all-harmonics]
"""

from __future__ import annotations

import os

# One core: set before numpy loads its BLAS, so matrix products cannot use more threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import wfdb  # noqa: E402
from scipy import signal  # noqa: E402

from biosig.config import PipelineConfig  # noqa: E402
from biosig.dsp import (  # noqa: E402
    FeatureExtractor,
    MovingRMS,
    Preprocessor,
    Windower,
    cascade,
    design_bandpass,
    design_notch,
    windows_offline,
)

logger = logging.getLogger("dsp_throughput")

DEFAULT_TRIAL = (
    Path(__file__).resolve().parents[2]
    / "shared" / "data" / "grabmyo-subset" / "session1_participant1_gesture11_trial1"
)
UNUSED_CHANNELS = ("U1", "U2", "U3", "U4")


def load_trial(path: Path) -> tuple[np.ndarray, float, list[str]]:
    """GRABMyo trial in mV, without the unused amplifier inputs."""
    record = wfdb.rdrecord(str(path))
    used = [i for i, name in enumerate(record.sig_name) if name not in UNUSED_CHANNELS]
    data = np.ascontiguousarray(record.p_signal[:, used], dtype=np.float64)
    return data, float(record.fs), [record.sig_name[i] for i in used]


def tile_to(data: np.ndarray, seconds: float, fs: float) -> np.ndarray:
    n = int(round(seconds * fs))
    reps = -(-n // data.shape[0])
    return np.ascontiguousarray(np.tile(data, (reps, 1))[:n])


def run_chunked(config: PipelineConfig, x, fs, labels, chunk: int) -> tuple[float, int]:
    """Seconds to run the whole chain chunk by chunk, and the number of windows produced."""
    pre = Preprocessor(config.preprocess, fs, x.shape[1])
    windower = Windower(pre.fs_out, config.window.length_s, config.window.hop_s)
    extractor = FeatureExtractor(config.features.names, labels)
    timestamps = np.arange(x.shape[0]) / fs
    chunks = [(x[s : s + chunk], timestamps[s : s + chunk]) for s in range(0, len(x), chunk)]
    n_windows = 0
    start = time.perf_counter()
    for samples, t in chunks:
        filtered, envelope, replaced = pre.process_with_mask(samples)
        batch = windower.push(t, filtered, envelope, mask=replaced)
        if batch.n_windows:
            extractor.transform(*batch.arrays)
            n_windows += batch.n_windows
    return time.perf_counter() - start, n_windows


def run_offline(config: PipelineConfig, x, fs, labels) -> tuple[float, int]:
    """Seconds to run the whole chain in one call per stage."""
    start = time.perf_counter()
    pre = Preprocessor(config.preprocess, fs, x.shape[1])
    filtered, envelope, replaced = pre.process_with_mask(x)
    batch = windows_offline(
        np.arange(x.shape[0]) / fs,
        filtered,
        envelope,
        fs=pre.fs_out,
        length_s=config.window.length_s,
        hop_s=config.window.hop_s,
        mask=replaced,
    )
    FeatureExtractor(config.features.names, labels).transform(*batch.arrays)
    return time.perf_counter() - start, batch.n_windows


def run_refilter_baseline(config, x, fs, labels, chunk: int, buffer_s: float) -> float:
    """Seconds for the LibEMG habit: per chunk, ``sosfiltfilt`` over the last ``buffer_s``.

    After each hop, the newest window of the re-filtered buffer is rectified, smoothed (same
    moving RMS) and turned into the same features, so only the filtering strategy differs.
    """
    pre = config.preprocess
    sos = cascade(
        design_bandpass(pre.bandpass_hz[0], pre.bandpass_hz[1], fs, pre.filter_order),
        design_notch(pre.notch_hz, fs, pre.notch_quality, pre.notch_harmonics, pre.notch_max_hz),
    )
    buffer_len = int(round(buffer_s * fs))
    length = int(round(config.window.length_s * fs))
    hop = int(round(config.window.hop_s * fs))
    extractor = FeatureExtractor(config.features.names, labels)
    buffer = np.zeros((0, x.shape[1]))
    next_window_end = length
    start = time.perf_counter()
    for s in range(0, len(x), chunk):
        buffer = np.concatenate((buffer, x[s : s + chunk]))[-buffer_len:]
        # sosfiltfilt's default padding needs a few times the filter length of signal.
        filtered = signal.sosfiltfilt(sos, buffer, axis=0) if len(buffer) > 200 else buffer
        n_seen = s + min(chunk, len(x) - s)
        while next_window_end <= n_seen:
            offset = n_seen - next_window_end  # samples after the window's end
            window = filtered[len(filtered) - offset - length : len(filtered) - offset]
            envelope = MovingRMS(fs, config.preprocess.envelope_window_s, x.shape[1]).process(
                np.abs(window)
            )
            extractor.transform(window[None], envelope[None])
            next_window_end += hop
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="signal length (s)")
    parser.add_argument("--chunk", type=int, default=32, help="live chunk size (samples)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; best is kept")
    parser.add_argument("--baseline-seconds", type=float, default=5.0,
                        help="span the baseline is measured on (s)")
    parser.add_argument("--baseline-buffer", type=float, default=1.0,
                        help="buffer the baseline re-filters per chunk (s)")
    parser.add_argument("--trial", type=Path, default=DEFAULT_TRIAL,
                        help="GRABMyo record (path without extension)")
    parser.add_argument("--all-harmonics", action="store_true",
                        help="notch every 50 Hz multiple below Nyquist, not only up to 450 Hz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    if not Path(str(args.trial) + ".hea").exists():
        print(f"GRABMyo trial not found: {args.trial}", file=sys.stderr)
        return 2
    trial, fs, labels = load_trial(args.trial)
    x = tile_to(trial, args.seconds, fs)
    config = PipelineConfig.emg_default(fs)
    if args.all_harmonics:
        config.preprocess.notch_max_hz = None
    pre = Preprocessor(config.preprocess, fs, x.shape[1])

    print(f"data: {args.trial.name}, {x.shape[1]} channels @ {fs:g} Hz, tiled to "
          f"{args.seconds:g} s ({x.shape[0]} samples); threads: 1; best of {args.repeats}")
    print(f"chain: {pre!r}; windows {config.window.length_s * 1e3:g} ms / "
          f"{config.window.hop_s * 1e3:g} ms; features {', '.join(config.features.names)}")

    chunked_s, n_win = min(run_chunked(config, x, fs, labels, args.chunk)
                           for _ in range(args.repeats))
    n_chunks = -(-x.shape[0] // args.chunk)
    chunked_rt = args.seconds / chunked_s
    print(f"chunked ({args.chunk}-sample chunks): {chunked_s:.3f} s -> {chunked_rt:,.0f}x "
          f"real time ({chunked_s / n_chunks * 1e6:.1f} us per chunk, {n_win} windows)")

    offline_s, n_win_off = min(run_offline(config, x, fs, labels) for _ in range(args.repeats))
    print(f"offline (one call per stage): {offline_s:.3f} s -> {args.seconds / offline_s:,.0f}x "
          f"real time ({n_win_off} windows)")

    span = tile_to(trial, args.baseline_seconds, fs)
    baseline_s = run_refilter_baseline(config, span, fs, labels, args.chunk,
                                       args.baseline_buffer)
    baseline_rt = args.baseline_seconds / baseline_s
    print(f"baseline (sosfiltfilt over a {args.baseline_buffer:g} s buffer per "
          f"{args.chunk}-sample chunk, {args.baseline_seconds:g} s span): {baseline_s:.3f} s "
          f"-> {baseline_rt:,.1f}x real time")
    print(f"chunked / baseline: {chunked_rt / baseline_rt:,.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
