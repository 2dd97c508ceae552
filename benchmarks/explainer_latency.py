"""Does the live explainer slow the pipeline? Per-window latency with explainers off and on.

Trains a quick LDA model on the bundled Myo recording, then replays the recording in real time
x ``--speed`` through the pipeline, alternating runs without and with an
:class:`~biosig.explain.service.ExplainerService` (MI every ``--mi-interval`` s over the last
1000 windows, prototypes once), and prints the per-window latency (chunk arrival to result)
p50 / p99 of each and the on/off ratio. Goal (issue 4): within 10 % of off.

Runs alternate (off, on, off, on, ...) so that drifts of machine load hit both alike; the
figures pool all windows of each setting.

Usage::

    python benchmarks/explainer_latency.py [--speed 20] [--seconds 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from biosig.datasets import build_dataset
from biosig.explain.service import ExplainerService
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.pipeline import Pipeline
from biosig.stream.sources import RecordingSource
from biosig.training import train_model

RECORDING = Path(__file__).resolve().parents[1] / "recordings" / "myo_12345-1.xdf"


def train(out: Path) -> OnnxModel:
    dataset, config, info = build_dataset([RECORDING], progress=False)
    train_model(dataset, arch="lda", out=out, pipeline_config=config, stream_info=info,
                verbose=False)
    return OnnxModel(out)


def latencies(stream, model, *, explain: bool, speed: float, seconds: float,
              mi_interval: float) -> tuple[np.ndarray, dict]:
    """Latency of every window of one run (seconds), and the explainer's stats if on."""
    collected: list[np.ndarray] = []
    sinks = [lambda results: collected.append(results.latency_s.copy())]
    service = ExplainerService(model, mi_interval_s=mi_interval) if explain else None
    if service is not None:
        sinks.append(service.sink)
        service.start()
    pipeline = Pipeline(RecordingSource(stream, realtime=True, speed=speed), classifier=model,
                        sinks=sinks)
    with pipeline:
        pipeline.wait(seconds)
    stats = {}
    if service is not None:
        service.stop()
        stats = {"runs": dict(service.stats.runs), "errors": service.stats.errors,
                 "last_mi_s": service.stats.last_duration_s["mi"]}
    if pipeline.stats.chunks_dropped:
        stats["chunks_dropped"] = pipeline.stats.chunks_dropped
    return np.concatenate(collected) if collected else np.empty(0), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=20.0, help="replay speed (default 20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds per run")
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs (default 2)")
    parser.add_argument("--mi-interval", type=float, default=2.0, help="MI cadence in s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        model = train(Path(tmp) / "bench.onnx")
        stream = read_recording(RECORDING).signal()
        pooled = {False: [], True: []}
        for _ in range(args.repeats):
            for explain in (False, True):
                values, stats = latencies(stream, model, explain=explain, speed=args.speed,
                                          seconds=args.seconds, mi_interval=args.mi_interval)
                pooled[explain].append(values)
                if stats:
                    print(f"  explainers {'on ' if explain else 'off'}: {stats}")
    print(f"pipeline on {RECORDING.name}, real time x{args.speed:g}, "
          f"{args.repeats} x {args.seconds:g} s per setting, MI every {args.mi_interval:g} s")
    figures = {}
    for explain in (False, True):
        values = np.concatenate(pooled[explain]) * 1e3
        figures[explain] = np.percentile(values, [50, 99])
        print(f"explainers {'on ' if explain else 'off'}: {values.size:6d} windows  "
              f"p50 {figures[explain][0]:.3f} ms  p99 {figures[explain][1]:.3f} ms")
    ratio = figures[True] / figures[False]
    print(f"on / off: p50 x{ratio[0]:.2f}  p99 x{ratio[1]:.2f}  "
          f"(goal: within 10 %: {'met' if np.all(ratio <= 1.10) else 'NOT met'})")


if __name__ == "__main__":
    main()
