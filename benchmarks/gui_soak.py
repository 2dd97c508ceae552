"""Soak with the GUI: one hour of Myo EMG replayed at 20x into the live window, offscreen.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_soak.py [--hours 1] [--speed 20] \\
        [--plot docs/figures/gui_soak.png]

The bundled Myo session (``recordings/myo_12345-1.xdf``, 477 s) is replayed looping on a
loopback LSL outlet at ``--speed`` x real time by the window's own replay feed
(:class:`biosig.stream.live.ReplayFeed`, as ``biosig gui --replay`` does) until ``--hours`` of
signal have been sent. The real :class:`biosig_gui.window.MainWindow` (1600x1000, offscreen,
60 Hz display timer) is attached to it with ``models/myo-12345-jsu.onnx`` and the explainers
(MI, prototypes) on, and Qt's event loop runs as in the application.

Reports: RSS (psutil) of this process plus its children (the explainers' worker process) every
``--every`` s and its slope after the first wall minute; painted frames per second over the
same intervals (the plot widget's ``paintEvent`` counter, as ``benchmarks/gui_fps.py`` reads
it); samples sent vs received, dropped samples and gaps from the session's status; and, per
``--segment-min`` minutes of signal, windows classified (posteriors) and the pipeline's
processing latency p50/p99 (chunk arrival to the window's results: the session's own latency,
not ``biosig selftest``'s outlet-to-outlet one). Saves the RSS and fps curves.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "recordings" / "myo_12345-1.xdf"
MODEL = REPO / "models" / "myo-12345-jsu.onnx"


def tree_rss(process: psutil.Process) -> tuple[int, int]:
    """RSS in bytes of ``process`` and of all its children together (children may come and go)."""
    own = process.memory_info().rss
    children = 0
    for child in process.children(recursive=True):
        try:
            children += child.memory_info().rss
        except psutil.Error:  # exited between listing and reading
            pass
    return own, children


class SoakMonitor:
    """Reads the window's counters from a Qt timer; collects the curves and per-segment figures.

    Latencies are taken from the pipeline's ring of the last 2000 windows often enough
    (``poll_s``) that none is missed between two reads at 20x.
    """

    def __init__(self, window, srate: float, every_s: float, segment_samples: int, poll_s: float = 0.25):
        self.window = window
        self.srate = srate
        self.every_s = every_s
        self.segment_samples = segment_samples
        self.poll_s = poll_s
        self.process = psutil.Process()
        self.curve: list[tuple] = []  # (wall s, samples sent, own rss, children rss, fps)
        self.segments: dict[int, dict] = {}
        self.lost_latencies = 0
        self.baseline: tuple[int, int] | None = None  # (sent, received) once the inlet receives
        self._windows_seen = 0
        self._start = time.perf_counter()
        self._next_sample = 0.0
        self._painted = (self._start, 0)

    def poll(self) -> None:
        session = self.window.session
        if session is None or session.pipeline is None:
            return
        stats = session.pipeline.stats
        if self.baseline is None and session.status().samples > 0:
            # Received first: a sample sent between the two readings then counts as received only.
            received = session.status().samples
            self.baseline = (self.window.feed.samples_sent, received)
        windows = stats.windows
        latest = list(stats.latencies_s)
        new = windows - self._windows_seen
        if new > len(latest):
            self.lost_latencies += new - len(latest)
        taken = latest[len(latest) - min(new, len(latest)):] if new > 0 else []
        self._windows_seen = windows
        segment = session.status().samples // self.segment_samples
        entry = self.segments.setdefault(segment, {"windows": 0, "latency": []})
        entry["windows"] += max(new, 0)
        entry["latency"].extend(taken)
        now = time.perf_counter()
        if now - self._start >= self._next_sample:
            self._next_sample += self.every_s
            t0, p0 = self._painted
            painted = self.window.plots.painted
            fps = (painted - p0) / (now - t0) if now > t0 else float("nan")
            self._painted = (now, painted)
            own, children = tree_rss(self.process)
            sent = self.window.feed.samples_sent if self.window.feed else 0
            self.curve.append((now - self._start, sent, own, children, fps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="signal to replay, hours")
    parser.add_argument("--speed", type=float, default=20.0, help="replay speed multiple")
    parser.add_argument("--every", type=float, default=2.0, help="RSS/fps sampling period, s")
    parser.add_argument("--segment-min", type=float, default=10.0, help="latency segment, minutes of signal")
    parser.add_argument("--plot", default=str(REPO / "docs" / "figures" / "gui_soak.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(REPO / "gui"))

    from PySide6 import QtCore

    from biosig_gui.app import make_app
    from biosig_gui.window import GuiOptions, MainWindow

    app = make_app(headless=True)
    QtCore.qInstallMessageHandler(_quiet_qt)
    load_before = os.getloadavg()
    window = MainWindow(GuiOptions(model=str(MODEL), explain=True))
    window.resize(1600, 1000)
    window.show()
    window.start_replay(RECORDING, speed=args.speed)
    srate = window.feed.clip.srate
    target = int(round(args.hours * 3600 * srate))
    print(f"gui soak: {args.hours * 60:.0f} min of {RECORDING.name} ({window.feed.clip.n_channels} ch @ "
          f"{srate:g} Hz, {window.feed.clip.n_samples / srate:.0f} s looped) at {args.speed:g}x into the "
          f"offscreen window with {MODEL.name} + explainers; load average before {load_before[0]:.2f}, "
          f"{os.cpu_count()} CPUs")
    monitor = SoakMonitor(window, srate, args.every, int(round(args.segment_min * 60 * srate)))
    outcome = {}

    def tick() -> None:
        monitor.poll()
        if window.feed is not None and window.feed.samples_sent >= target and "stopped" not in outcome:
            window.feed.player.stop()  # stop sending, then let the last chunks arrive
            outcome["stopped"] = time.perf_counter()
            QtCore.QTimer.singleShot(2000, finish)

    def finish() -> None:
        # Read the figures before quitting: Qt 6 closes the windows on quit (shutting them down).
        monitor.poll()
        outcome["status"] = window.session.status()
        outcome["skipped"] = window.session.pipeline.stats.windows_skipped
        explainer = window.session.explainer
        outcome["mi_runs"] = explainer.stats.runs["mi"] if explainer is not None else 0
        outcome["sent"] = window.feed.samples_sent
        app.quit()

    poller = QtCore.QTimer()
    poller.timeout.connect(tick)
    poller.start(int(monitor.poll_s * 1000))
    QtCore.QTimer.singleShot(int((args.hours * 3600 / args.speed + 120) * 1000), finish)  # a guard
    app.exec()
    poller.stop()
    window.shutdown()

    status, mi_runs, sent = outcome["status"], outcome["mi_runs"], outcome["sent"]
    wall = outcome.get("stopped", time.perf_counter()) - monitor._start
    sent0, received0 = monitor.baseline
    sent_since, received_since = sent - sent0, status.samples - received0
    print(f"ran {wall:.1f} s wall; samples sent {sent} ({sent0} before the inlet's first sample); since "
          f"then sent {sent_since}, received {received_since} (missing {sent_since - received_since}); dropped samples {status.dropped_samples}, gaps "
          f"{status.gaps}, disconnects {status.disconnects}; windows classified {status.windows}, "
          f"stale (skipped) {outcome['skipped']}; MI refreshes {mi_runs}; "
          f"latencies not captured {monitor.lost_latencies}; state {status.state} {status.message!r}")
    load_after = os.getloadavg()
    print(f"load average after {load_after[0]:.2f}")

    t, sent_curve, own, children, fps = (np.asarray(c, dtype=float) for c in zip(*monitor.curve))
    rss_mb = (own + children) / 2**20
    settled = t >= min(60.0, t[-1] / 3)
    slope = np.polyfit(t[settled], rss_mb[settled], 1)[0] * 60 if settled.sum() > 2 else float("nan")
    print(f"RSS (process + children): start {rss_mb[0]:.1f} MB, after 60 s {rss_mb[settled][0]:.1f} MB, "
          f"end {rss_mb[-1]:.1f} MB, max {rss_mb.max():.1f} MB; slope after 60 s {slope:+.3f} MB per wall "
          f"minute; children at end {children[-1] / 2**20:.1f} MB ({len(t)} samples every {args.every:g} s)")
    body = fps[1:]  # the first interval includes window creation
    print(f"painted fps per {args.every:g} s: median {np.median(body):.1f}, min {body.min():.1f}, "
          f"max {body.max():.1f}")

    print(f"\n{'signal minutes':<16}{'windows':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    everything = []
    for k in sorted(monitor.segments):
        entry = monitor.segments[k]
        lat = np.asarray(entry["latency"]) * 1e3
        everything.extend(entry["latency"])
        start = k * args.segment_min
        figures = (np.percentile(lat, 50), np.percentile(lat, 99), lat.max()) if len(lat) else (np.nan,) * 3
        print(f"{f'{start:.0f}-{start + args.segment_min:.0f}':<16}{entry['windows']:>9}"
              + "".join(f"{v:>9.2f}" for v in figures))
    lat = np.asarray(everything) * 1e3
    print(f"{'all':<16}{len(lat):>9}{np.percentile(lat, 50):>9.2f}{np.percentile(lat, 99):>9.2f}{lat.max():>9.2f}")
    _plot(args.plot, sent_curve / srate / 60, rss_mb, children / 2**20, fps, args)
    return 0


def _quiet_qt(mode, context, message: str) -> None:
    """Qt's messages, less the offscreen platform's note repeated on every resize."""
    if "propagateSizeHints" not in message:
        sys.stderr.write(message + "\n")


def _plot(path: str, signal_min, rss_mb, children_mb, fps, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.8), dpi=120, sharex=True)
    top.plot(signal_min, rss_mb, lw=1.2, label="process + children")
    top.plot(signal_min, children_mb, lw=1.0, label="children (explainer worker)")
    top.set_ylabel("RSS (MiB)")
    top.set_ylim(0, rss_mb.max() * 1.15)
    top.legend(loc="lower right", fontsize=8)
    top.set_title("biosig GUI soak: Myo 8 ch, JSU model + explainers, offscreen window")
    bottom.plot(signal_min[1:], fps[1:], lw=1.0, color="tab:green")
    bottom.set_ylabel(f"painted fps ({args.every:g} s)")
    bottom.set_ylim(0, max(70, np.nanmax(fps[1:]) * 1.1))
    bottom.set_xlabel(f"signal replayed (min; {args.speed:g}x real time)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    print(f"RSS and fps curves -> {path}")


if __name__ == "__main__":
    sys.exit(main())
