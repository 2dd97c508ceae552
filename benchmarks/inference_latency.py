"""Latency of one window and throughput of batches through the ONNX inference engine.

Usage::

    python benchmarks/inference_latency.py [MODEL.onnx] [--windows 20000] [--batch 8192]

Without a model file, a synthetic linear model of the Myo size (48 features = 6 features x 8
channels, 8 classes, standardisation in the graph) is built with ``onnx.helper``.

It prints, for one window at a time (the streaming path), p50/p99 in microseconds of

- ``session.run``: a feed dict per call, output arrays allocated by onnxruntime;
- ``io-binding``: preallocated input/output buffers bound once, ``run_with_iobinding``
  (what :class:`biosig.inference.OnnxModel` uses for N = 1);
- ``OnnxModel.infer``: the whole per-window work of the pipeline's slot (copy in, run,
  temperature softmax, entropy, OOD flag, decision);

and the batched throughput (windows per second) of ``session.run`` and ``OnnxModel.infer``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from biosig.config import PipelineConfig
from biosig.dsp import FeatureExtractor
from biosig.inference import (
    INPUT_NAME,
    LOGITS_NAME,
    MODEL_FORMAT,
    OOD_NAME,
    OnnxModel,
    build_linear_model,
)

MYO_CHANNELS = [f"emg{i + 1}" for i in range(8)]
MYO_CLASSES = [f"gesture{i}" for i in range(8)]


def synthetic_myo_model(path: Path) -> Path:
    """Write a linear model with the Myo's shape (48 features, 8 classes) to ``path``."""
    config = PipelineConfig.for_rate(200.0, modality="EMG")
    names = FeatureExtractor(config.features.names, channel_labels=MYO_CHANNELS).feature_names
    card = {
        "format": MODEL_FORMAT, "biosig_version": "0.1.0", "arch": "linear", "modality": "EMG",
        "srate": 200.0, "channels": MYO_CHANNELS, "pipeline": config.to_dict(),
        "feature_names": names, "class_names": MYO_CLASSES, "temperature": 1.0,
        "ood": {"threshold": 0.0, "percentile": 99.0, "score": "neg_logsumexp"},
    }
    rng = np.random.default_rng(0)
    n = len(names)
    proto = build_linear_model(rng.normal(size=(n, 8)), rng.normal(size=8), card,
                               mean=rng.normal(size=n), scale=rng.uniform(0.5, 2.0, n))
    onnx.save(proto, str(path))
    return path


def percentiles_us(call, n_calls: int, warmup: int = 1000) -> tuple[float, float]:
    """p50 and p99 wall time of ``call()`` in microseconds."""
    for _ in range(warmup):
        call()
    times = np.empty(n_calls)
    clock = time.perf_counter
    for i in range(n_calls):
        start = clock()
        call()
        times[i] = clock() - start
    p50, p99 = np.percentile(times, [50, 99]) * 1e6
    return float(p50), float(p99)


def windows_per_second(call, n_windows: int, min_seconds: float = 1.0) -> float:
    """Throughput of ``call()`` (one batch of ``n_windows``) over at least ``min_seconds``."""
    call()
    done, start = 0, time.perf_counter()
    while True:
        call()
        done += n_windows
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model file (default: synthetic Myo-size linear)")
    parser.add_argument("--windows", type=int, default=20000, help="single-window calls to time")
    parser.add_argument("--batch", type=int, default=8192, help="windows per batched call")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = Path(args.model)
        else:
            path = synthetic_myo_model(Path(tmp) / "myo_linear.onnx")
        model = OnnxModel(path, threads=args.threads)
        session = model.session
        rng = np.random.default_rng(1)
        x1 = rng.normal(size=(1, model.n_features)).astype(np.float32)
        batch = rng.normal(size=(args.batch, model.n_features)).astype(np.float32)
        outputs = [LOGITS_NAME, OOD_NAME]

        print(f"model      {model!r}")
        print(f"onnxruntime {ort.__version__}, providers {model.providers}, threads "
              f"{args.threads or 'default'}")
        print(f"single window ({args.windows} calls)            p50 us    p99 us")
        rows = {
            "session.run (new outputs)": lambda: session.run(outputs, {INPUT_NAME: x1}),
            "io-binding (bound buffers)": lambda: model._run_single(x1[0]),
            "OnnxModel.infer (all of it)": lambda: model.infer(x1),
        }
        for label, call in rows.items():
            p50, p99 = percentiles_us(call, args.windows)
            print(f"  {label:<36} {p50:8.1f}  {p99:8.1f}")
        print(f"batched ({args.batch} windows per call)          windows/s")
        rows = {
            "session.run": lambda: session.run(outputs, {INPUT_NAME: batch}),
            "OnnxModel.infer": lambda: model.infer(batch),
        }
        for label, call in rows.items():
            print(f"  {label:<36} {windows_per_second(call, args.batch):12,.0f}")


if __name__ == "__main__":
    main()
