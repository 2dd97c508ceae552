"""Soak: one hour of Myo EMG replayed at 20x through the whole live path, memory and latency watched.

Usage::

    python benchmarks/soak.py [--hours 1] [--speed 20] [--plot docs/figures/soak_rss.png]

The bundled Myo session (``recordings/myo_12345-1.xdf``, 477 s) is looped to ``--hours`` of
signal and sent on a loopback LSL outlet at ``--speed`` x real time, in chunks of 50 ms of signal
(10 samples, every 2.5 ms of wall time at 20x), through biosig's inlet, pipeline and
``models/myo-12345-jsu.onnx`` to an LSL results outlet read back by a subscriber: the
:class:`biosig.selftest.LatencySelftest` machinery, so latency means the same as in
``biosig selftest`` (chunk pushed -> posterior pushed on the results outlet).

Reports: the resident set size (psutil) every ``--every`` seconds and its slope after the first
minute, samples sent vs received, posteriors sent vs received, dropped chunks and skipped
windows, and latency p50/p95/p99/max per 10-minute segment of signal. Saves the RSS curve.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]


class RSSSampler(threading.Thread):
    """Samples this process's RSS (bytes) every ``every`` seconds until stopped."""

    def __init__(self, every: float):
        super().__init__(name="rss-sampler", daemon=True)
        self.every = every
        self.samples: list[tuple[float, float, int]] = []  # (wall s, signal samples sent, rss)
        self.sent = 0
        self._halt = threading.Event()
        self._process = psutil.Process()

    def run(self) -> None:
        start = time.perf_counter()
        while not self._halt.is_set():
            self.samples.append((time.perf_counter() - start, self.sent,
                                 self._process.memory_info().rss))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=2.0, help="RSS sampling period, s")
    parser.add_argument("--segment-min", type=float, default=10.0, help="latency segment, minutes of signal")
    parser.add_argument("--plot", default=str(REPO / "docs" / "figures" / "soak_rss.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from biosig.inference import OnnxModel
    from biosig.io import read_recording
    from biosig.selftest import LatencySelftest

    stream = read_recording(REPO / "recordings" / "myo_12345-1.xdf").signal()
    model = OnnxModel(REPO / "models" / "myo-12345-jsu.onnx")
    seconds = args.hours * 3600
    print(f"soak: {seconds / 60:.0f} min of {stream.name} ({stream.n_channels} ch @ {stream.srate:g} Hz, "
          f"{stream.duration:.0f} s looped) at {args.speed:g}x through {model!r}")
    sampler = RSSSampler(args.every)

    def progress(sent, total):
        sampler.sent = sent

    test = LatencySelftest(model, seconds=seconds, warmup_s=10.0, chunk_s=0.05, speed=args.speed)
    sampler.start()
    report = test.run_replay(stream, "soak", progress=progress)
    sampler.stop()

    print(f"ran {report.duration_s:.1f} s wall; samples sent {report.samples_sent}, received "
          f"{report.samples_received}; posteriors sent {report.results_sent}, received "
          f"{report.results_received}; dropped chunks {report.chunks_dropped}; skipped windows "
          f"{report.windows_skipped}; unmatched {report.unmatched}; error {report.error}")
    wall, sent, rss = (np.asarray(c, dtype=float) for c in zip(*sampler.samples))
    rss_mb = rss / 2**20
    settled_from = min(60.0, wall[-1] / 3)  # after start-up: the first wall minute (or third)
    settled = wall >= settled_from
    slope = np.polyfit(wall[settled], rss_mb[settled], 1)[0] * 60 if settled.sum() > 2 else float("nan")
    print(f"RSS: start {rss_mb[0]:.1f} MB, after {settled_from:.0f} s {rss_mb[settled][0]:.1f} MB, end {rss_mb[-1]:.1f} MB, "
          f"max {rss_mb.max():.1f} MB; slope after that {slope:+.3f} MB per wall minute "
          f"({len(rss_mb)} samples every {args.every:g} s)")

    segment = int(round(args.segment_min * 60 * stream.srate))
    seg = report.sample_index // segment
    print(f"\n{'signal minutes':<16}{'windows':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for k in np.unique(seg):
        mask = seg == k
        s = report.summary(report.latency_s[mask])
        start = k * args.segment_min
        print(f"{f'{start:.0f}-{start + args.segment_min:.0f}':<16}{mask.sum():>9}"
              + "".join(f"{s[q] * 1e3:>9.2f}" for q in ("p50", "p95", "p99", "max")))
    whole = report.summary(report.latency_s)
    print(f"{'all':<16}{report.n_windows:>9}" + "".join(f"{whole[q] * 1e3:>9.2f}" for q in ("p50", "p95", "p99", "max")))
    _plot(args.plot, wall, sent / stream.srate / 60, rss_mb, args)


def _plot(path: str, wall, signal_min, rss_mb, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    ax.plot(signal_min, rss_mb, lw=1.2)
    ax.set_xlabel(f"signal replayed (min; {args.speed:g}x real time)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("biosig soak: RSS of the whole live path (Myo 8 ch, JSU model)")
    low, high = rss_mb.min(), rss_mb.max()
    ax.set_ylim(low - max(5, 0.1 * low), high + max(5, 0.1 * high))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"RSS curve -> {path}")


if __name__ == "__main__":
    main()
