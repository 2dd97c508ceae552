"""Live-path latency (``biosig selftest``) at three stream sizes, on one CPU core.

Usage::

    python benchmarks/selftest_latency.py [--seconds 10] [--cpu 0] [--cases myo grabmyo32 hdemg128]

Each case runs in its own process pinned to one core (``taskset -c CPU``, one onnxruntime and
BLAS thread), replaying a recording at real time in 5 ms chunks over loopback LSL through the
live path (inlet -> pipeline -> ONNX model -> results outlet); see :mod:`biosig.selftest` for
what is timed:

- ``myo``: 8 ch x 200 Hz, ``recordings/myo_12345-1.xdf`` through ``models/myo-12345-jsu.onnx``;
- ``grabmyo32``: 32 ch x 2048 Hz, the bundled GRABMyo recording (28 ch) with its first 4
  channels repeated;
- ``hdemg128``: 128 ch x 2048 Hz, the GRABMyo channels tiled (high-density EMG stand-in).

The GRABMyo cases need a model whose features match: a linear discriminant (scikit-learn LDA,
shrinkage covariance) is fitted on the spot on that stream's own windows, labelled by
activation level (quartiles of the window's mean envelope: 4 classes), and written as a real
ONNX model with :func:`biosig.inference.build_linear_model`. It is a latency stand-in of the
right size (features x classes), not a gesture classifier.

Baseline, measured in the same run: the same case with the acquisition thread polling the inlet
every 5 ms (what ``LSLSource.read`` did before it waited on liblsl for the first sample).
Goal: end-to-end p99 <= 5 ms on one core for all three.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "myo": ("recordings/myo_12345-1.xdf", None),
    "grabmyo32": ("recordings/grabmyo_session1_participant1_gesture11_trial1.xdf", 32),
    "hdemg128": ("recordings/grabmyo_session1_participant1_gesture11_trial1.xdf", 128),
}


def tile_channels(stream, n_channels: int):
    """``stream`` with its channels repeated (labels suffixed) up to ``n_channels``."""
    from dataclasses import replace

    index = np.arange(n_channels) % stream.n_channels
    labels = [stream.channel_labels[i] + ("" if k < stream.n_channels else f"_{k // stream.n_channels}")
              for k, i in enumerate(index)]
    return replace(stream, data=np.ascontiguousarray(stream.data[:, index]), channel_labels=labels,
                   channel_units=[stream.channel_units[i] for i in index],
                   channel_types=[stream.channel_types[i] for i in index] if stream.channel_types else [],
                   channel_format="float32")


def fit_activation_lda(stream, path: Path) -> Path:
    """Fit a 4-class LDA on ``stream``'s windows (activation quartiles); write it as ONNX."""
    import onnx
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from biosig import __version__
    from biosig.config import PipelineConfig
    from biosig.inference import MODEL_FORMAT, build_linear_model
    from biosig.stream.pipeline import process_recording

    config = PipelineConfig.for_rate(stream.srate, modality="EMG")
    results = process_recording(stream, config)
    envelope = results.features[:, [i for i, n in enumerate(results.feature_names) if n.startswith("env_mean:")]]
    level = envelope.mean(axis=1)
    y = np.searchsorted(np.quantile(level, [0.25, 0.5, 0.75]), level)
    classes = [f"level{k + 1}" for k in range(4)]
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(results.features, y)
    card = {
        "format": MODEL_FORMAT, "biosig_version": __version__, "arch": "lda", "modality": "EMG",
        "srate": stream.srate, "channels": stream.channel_labels, "pipeline": config.to_dict(),
        "feature_names": results.feature_names, "class_names": classes, "temperature": 1.0,
        "ood": {"threshold": 0.0, "percentile": 99.0, "score": "neg_logsumexp"},
    }
    proto = build_linear_model(lda.coef_.T, lda.intercept_, card)
    onnx.save(proto, str(path))
    return path


def run_case(name: str, seconds: float, baseline: bool) -> dict:
    """One case in this process (already pinned); returns the report as a dict."""
    from biosig.inference import OnnxModel
    from biosig.io import read_recording
    from biosig.selftest import LatencySelftest

    recording, n_channels = CASES[name]
    stream = read_recording(REPO / recording).signal()
    with tempfile.TemporaryDirectory() as tmp:
        if n_channels is None:
            model_path = REPO / "models" / "myo-12345-jsu.onnx"
        else:
            stream = tile_channels(stream, n_channels)
            model_path = fit_activation_lda(stream, Path(tmp) / "lda.onnx")
        model = OnnxModel(model_path, threads=1)
        if baseline:
            _use_polling_reads()
        report = LatencySelftest(model, seconds=seconds).run_replay(stream, name)
    out = report.to_dict()
    out["n_features"] = model.n_features
    out["n_classes"] = model.n_classes
    return out


def _use_polling_reads() -> None:
    """The baseline: LSLSource.read as it was, a non-waiting pull and a 5 ms sleep when empty."""
    from biosig.stream.sources import LSLSource

    def read(self, timeout: float = 0.1):
        data, timestamps = self.inlet.pull()
        if data.shape[0] == 0:
            time.sleep(min(timeout, 0.005))
            return None
        return data, timestamps

    LSLSource.read = read


def pinned(name: str, seconds: float, cpu: int, baseline: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = ["taskset", "-c", str(cpu), sys.executable, __file__, "--one", name,
           "--seconds", str(seconds)] + (["--baseline"] if baseline else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds * 4 + 120)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cpu", type=int, default=0, help="core to pin each case to")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--one", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.seconds, args.baseline)))
        return
    print(f"one core (taskset -c {args.cpu}), {args.seconds:g} s per case, 5 ms chunks, real time")
    print(f"{'case':<10}{'stream':>14}{'model':>12}{'windows':>8}  {'end-to-end ms p50/p95/p99/max':<31}"
          f"{'processing p99':>15}{'baseline p99':>14}{'ratio':>7}  {'budget ms':>9} goal")
    for name in args.cases:
        new = pinned(name, args.seconds, args.cpu, baseline=False)
        old = pinned(name, args.seconds, args.cpu, baseline=True)
        e2e, proc = new["end_to_end_s"], new["processing_s"]
        figures = "/".join(f"{e2e[k] * 1e3:.2f}" for k in ("p50", "p95", "p99", "max"))
        base = old["end_to_end_s"]["p99"]
        stream = f"{new['n_channels']}ch@{new['srate']:g}Hz"
        model = f"{new['n_features']}f>{new['n_classes']}c"
        print(f"{name:<10}{stream:>14}{model:>12}{new['n_windows']:>8}  {figures:<31}"
              f"{proc['p99'] * 1e3:>15.2f}{base * 1e3:>14.2f}{base / e2e['p99']:>6.1f}x  "
              f"{new['budget_s'] * 1e3:>9.1f} {'PASS' if new['processing_pass'] else 'FAIL'}")
        lost = (new["samples_sent"] - new["samples_received"], new["results_sent"] - new["results_received"])
        if any(lost) or new["chunks_dropped"] or new["windows_skipped"]:
            print(f"  lost samples {lost[0]}, lost posteriors {lost[1]}, dropped chunks "
                  f"{new['chunks_dropped']}, skipped windows {new['windows_skipped']}")


if __name__ == "__main__":
    main()
