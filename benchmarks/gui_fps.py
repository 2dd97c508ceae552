"""Frame rate and sample loss of the live window on a wide, fast EMG stream.

A GRABMyo recording (28 ch x 2048 Hz, widened to ``--channels`` by repeating channels) is
replayed on LSL in real time, looping; the window attaches to it with a 10 s view while the
pipeline classifies every window and the explainers (MI, prototypes) run beside it. The display
timer runs as fast as it can (``frame_ms=0``), so the figure is the frame rate the GUI can
sustain, not the 60 Hz cap of the interactive timer. Frames are counted where they are painted
(the plot widget's ``paintEvent``), not where they are requested.

Baseline, measured in the same run on the same window size: the same stream with no model
(signals and envelopes only: no inference, no explainers). The ratio is the frame-rate cost of
classifying and explaining while drawing.

Dropped samples: samples missing in the inlet's gap accounting plus chunks the pipeline had to
drop, and the samples sent by the replay minus those received (after a short drain).

Run (offscreen; the model is trained once on the shared GRABMyo subset if not given)::

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_fps.py --seconds 10
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "recordings" / "grabmyo_session1_participant1_gesture11_trial1.xdf"
SHARED_GRABMYO = REPO.parent / "shared" / "data" / "grabmyo-subset"


def train_model(out: Path) -> Path:
    """An LDA model on the shared GRABMyo subset (the same 28 channels at 2048 Hz)."""
    if not SHARED_GRABMYO.is_dir():
        sys.exit(f"no model given and no GRABMyo subset at {SHARED_GRABMYO} to train one on")
    subprocess.run([sys.executable, "-m", "biosig", "train", str(SHARED_GRABMYO), "--arch", "lda",
                    "--out", str(out), "--quiet"], check=True)
    return out


def measure(app, model, args) -> dict:
    """Run the window on a fresh replay for ``args.seconds`` s; return its figures."""
    from biosig_gui.window import GuiOptions, MainWindow

    window = MainWindow(GuiOptions(model=str(model) if model else None, view_s=args.view,
                                   frame_ms=0, explain=model is not None))
    window.resize(1600, 1000)
    window.show()
    window.start_replay(RECORDING, n_channels=args.channels)
    deadline = time.monotonic() + 30
    while not (window._built_for is not None and len(window.session.signal) > 0):
        app.processEvents()
        if time.monotonic() > deadline:
            sys.exit(f"the window did not attach: {window.session.status().message}")
    settle_until = time.monotonic() + args.settle
    while time.monotonic() < settle_until:  # the view fills, the explainers start
        app.processEvents()
    session, feed = window.session, window.feed
    sent0, received0 = feed.samples_sent, session.status().samples
    painted0, frames0 = window.plots.painted, window.frames
    frame_times0 = len(window._frame_times)
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        app.processEvents()
    elapsed = time.perf_counter() - started
    painted, frames = window.plots.painted - painted0, window.frames - frames0
    feed.player.stop()  # stop sending, then let the last chunks arrive
    drain_until = time.monotonic() + 1.0
    while time.monotonic() < drain_until:
        app.processEvents()
    status = session.status()
    sent = feed.samples_sent - sent0
    received = status.samples - received0
    explainer = session.explainer
    figures = {
        "fps": painted / elapsed,
        "refresh_per_s": frames / elapsed,
        "refresh_ms_p50": 1e3 * _median(window._frame_times[-min(frames, 240):]) if frames else float("nan"),
        "dropped": status.dropped_samples,
        "gaps": status.gaps,
        "sent": sent,
        "received": received,
        "latency_p50_ms": status.latency_p50 * 1e3,
        "latency_p99_ms": status.latency_p99 * 1e3,
        "windows": status.windows,
        "mi_runs": explainer.stats.runs["mi"] if explainer else 0,
        "channels": len(status.channel_labels),
    }
    del frame_times0
    window.shutdown()
    window.deleteLater()
    app.processEvents()
    return figures


def _median(values) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds before measuring")
    parser.add_argument("--channels", type=int, default=32, help="channels replayed (28 recorded)")
    parser.add_argument("--view", type=float, default=10.0, help="seconds of signal shown")
    parser.add_argument("--model", type=Path, help="model (.onnx) for 28-ch GRABMyo (default: train LDA)")
    args = parser.parse_args()

    from biosig_gui.app import make_app

    app = make_app(headless=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_model(Path(tmp) / "grabmyo-lda.onnx")
        baseline = measure(app, None, args)
        full = measure(app, model, args)
    print(f"GRABMyo replay, {full['channels']} ch x 2048 Hz, {args.view:g} s view, "
          f"{args.seconds:g} s measured, window 1600x1000 offscreen, {os.cpu_count()} CPUs")
    print(f"{'':34s}{'fps':>7s}{'refresh/s':>11s}{'dropped':>9s}{'sent':>9s}{'received':>10s}"
          f"{'lat p50/p99 ms':>16s}")
    for name, f in (("baseline: signals only, no model", baseline),
                    ("pipeline + model + explainers", full)):
        print(f"{name:34s}{f['fps']:7.1f}{f['refresh_per_s']:11.1f}{f['dropped']:9d}{f['sent']:9d}"
              f"{f['received']:10d}{f['latency_p50_ms']:8.2f}/{f['latency_p99_ms']:.2f}")
    print(f"fps ratio (full / baseline): {full['fps'] / baseline['fps']:.2f}; "
          f"windows classified {full['windows']}, MI refreshes {full['mi_runs']}; "
          f"median refresh (GUI thread work per frame) {full['refresh_ms_p50']:.1f} ms")
    goal = full["fps"] >= 60 and full["dropped"] == 0 and full["received"] >= full["sent"]
    print(f"goal (>= 60 fps, 0 dropped): {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
