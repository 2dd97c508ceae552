"""Does the live explainer slow the pipeline? Per-window latency with the explainer off, on a
worker thread, and on a worker process.

Replays the bundled Myo recording in real time x ``--speed`` through the pipeline with a
model (by default a quick LDA trained on the same recording, as in earlier runs of this
benchmark; ``--model`` for any .onnx), once per setting and repeat, and prints the per-window
latency (chunk arrival to result) p50 / p99 of each setting and its ratio to off. With the
explainer on, an :class:`~biosig.explain.service.ExplainerService` refreshes the MI every
``--mi-interval`` s over the last 1000 windows and computes the prototypes once. Goal
(issue 4): within 10 % of off.

Settings alternate within each repeat (off, thread, process, off, ...) so that drifts of
machine load hit all alike. Two summaries: percentiles of all windows of a setting pooled, and
the median over repeats of each run's percentile divided by that of the same repeat's "off"
run (robust to a load burst from other jobs hitting one run). The worker is
started, and a worker process given time to load its model, before the replay begins: the
figures are the steady state, and the worker process's start-up time is printed apart.

Usage::

    python benchmarks/explainer_latency.py [--speed 20] [--seconds 20] [--repeats 2]
        [--modes off thread process] [--priority idle|low|normal] [--model MODEL.onnx]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from biosig.explain.service import ExplainerService
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.pipeline import Pipeline
from biosig.stream.sources import RecordingSource

RECORDING = Path(__file__).resolve().parents[1] / "recordings" / "myo_12345-1.xdf"
MODES = ("off", "thread", "process")


def train(out: Path) -> Path:
    """A quick LDA on the bundled recording (torch only here, never in the worker)."""
    from biosig.datasets import build_dataset
    from biosig.training import train_model

    dataset, config, info = build_dataset([RECORDING], progress=False)
    train_model(dataset, arch="lda", out=out, pipeline_config=config, stream_info=info,
                verbose=False)
    return out


def latencies(stream, model, *, mode: str, speed: float, seconds: float, mi_interval: float,
              priority: str) -> tuple[np.ndarray, dict]:
    """Latency of every window of one run (seconds), and the explainer's stats if on."""
    collected: list[np.ndarray] = []
    sinks = [lambda results: collected.append(results.latency_s.copy())]
    service = None if mode == "off" else ExplainerService(
        model, mi_interval_s=mi_interval, worker=mode, worker_priority=priority)
    stats: dict = {}
    if service is not None:
        sinks.append(service.sink)
        started = time.perf_counter()
        service.start()
        deadline = time.monotonic() + 60.0
        while not service.worker_ready and time.monotonic() < deadline:
            time.sleep(0.02)
        stats["start_s"] = round(time.perf_counter() - started, 2)
    pipeline = Pipeline(RecordingSource(stream, realtime=True, speed=speed), classifier=model,
                        sinks=sinks)
    with pipeline:
        pipeline.wait(seconds)
    if service is not None:
        service.stop()
        stats.update(runs=dict(service.stats.runs), errors=service.stats.errors,
                     last_mi_s=round(service.stats.last_duration_s["mi"], 3))
        if service.stats.worker_exits:
            stats["worker_exits"] = service.stats.worker_exits
    if pipeline.stats.chunks_dropped:
        stats["chunks_dropped"] = pipeline.stats.chunks_dropped
    return np.concatenate(collected) if collected else np.empty(0), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=20.0, help="replay speed (default 20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds per run")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all settings (2)")
    parser.add_argument("--mi-interval", type=float, default=2.0, help="MI cadence in s")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="settings to compare (off is the baseline; default: all)")
    parser.add_argument("--priority", choices=("idle", "low", "normal"), default="idle",
                        help="scheduling priority of the worker process (default idle)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (default: an LDA trained on the recording)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    modes = ["off", *[m for m in args.modes if m != "off"]]

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = OnnxModel(args.model or train(Path(tmp) / "bench.onnx"))
        stream = read_recording(RECORDING).signal()
        pooled: dict[str, list[np.ndarray]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                values, stats = latencies(stream, model, mode=mode, speed=args.speed,
                                          seconds=args.seconds, mi_interval=args.mi_interval,
                                          priority=args.priority)
                pooled[mode].append(values)
                if stats:
                    print(f"  {mode:7s}: {stats}", flush=True)
    load_after = os.getloadavg()
    print(f"pipeline on {RECORDING.name} with {Path(model.path).name}, real time "
          f"x{args.speed:g}, {args.repeats} x {args.seconds:g} s per setting, MI every "
          f"{args.mi_interval:g} s, worker process priority {args.priority}; "
          f"{os.cpu_count()} CPUs, load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after")
    per_run = {mode: np.array([np.percentile(v * 1e3, [50, 99]) for v in pooled[mode]])
               for mode in modes}
    for mode in modes:
        runs = ", ".join(f"{p50:.3f}/{p99:.3f}" for p50, p99 in per_run[mode])
        print(f"  {mode:7s} p50/p99 per run (ms): {runs}")
    figures = {}
    for mode in modes:
        values = np.concatenate(pooled[mode]) * 1e3
        figures[mode] = np.percentile(values, [50, 99])
        print(f"explainer {mode:7s}: {values.size:6d} windows  p50 {figures[mode][0]:.3f} ms  "
              f"p99 {figures[mode][1]:.3f} ms")
    for mode in modes[1:]:
        ratio = figures[mode] / figures["off"]
        paired = np.median(per_run[mode] / per_run["off"], axis=0)
        verdict = "met" if np.all(paired <= 1.10) else "NOT met"
        print(f"{mode:7s} / off: pooled p50 x{ratio[0]:.2f}  p99 x{ratio[1]:.2f};  median of "
              f"paired runs p50 x{paired[0]:.2f}  p99 x{paired[1]:.2f}  "
              f"(goal: within 10 %: {verdict})")


if __name__ == "__main__":
    main()
