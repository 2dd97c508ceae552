"""Batched inference on a GPU through torch, against onnxruntime on the CPU, same windows.

For a machine with a CUDA GPU that torch sees (the offline ``biosig analyze`` path uses it when
onnxruntime has no CUDA provider; :class:`biosig.torch_graph.TorchGraph`). For each bundled
network it runs the Myo recording's windows (features computed once, not timed) through
onnxruntime (CPU, one thread, batches of 256) and through torch on the device (blocks of 4096,
as ``analyze`` does), and prints windows/s, the ratio and the largest posterior and OOD-score
differences. Without a GPU it says so and runs torch on the CPU (a parity check only).

    python benchmarks/gpu_batch.py [--device cuda] [--repeats 5] [--copies 20]

``--copies`` tiles the recording's windows so that a GPU has enough work to time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def windows_of(model, recording: Path) -> np.ndarray:
    """Feature vectors of every window of the recording, float32 (the model's input)."""
    from biosig.io import read_recording
    from biosig.stream.pipeline import process_recording

    stream = model.check_recording(read_recording(recording))
    return process_recording(stream, model.pipeline_config()).features.astype(np.float32)


def best_time(func, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best counts")
    parser.add_argument("--copies", type=int, default=20, help="tiles of the windows")
    args = parser.parse_args(argv)

    import logging

    import torch

    from biosig.analysis.batch import CLASSIFY_WINDOWS, ONNX_BATCH
    from biosig.inference import OnnxModel, softmax_with_entropy
    from biosig.torch_graph import TorchGraph

    logging.disable(logging.WARNING)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device for torch {torch.__version__}: running torch on the CPU "
              "(parity only, timings are not a GPU's)")
        device = "cpu"
    elif device.startswith("cuda"):
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device)}")
    recording = REPO / "recordings" / "myo_12345-1.xdf"
    for name in ("myo-12345-jsu.onnx", "myo-12345-sdgm.onnx"):
        path = REPO / "models" / name
        model = OnnxModel(path, threads=1, batch_size=ONNX_BATCH)
        X = np.tile(windows_of(model, recording), (args.copies, 1))
        graph = TorchGraph(path.read_bytes(), device)

        def on_torch():
            outputs = [graph(X[i : i + CLASSIFY_WINDOWS]) for i in range(0, len(X),
                                                                         CLASSIFY_WINDOWS)]
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return outputs

        cpu_logits, cpu_ood = model._run(X)
        gpu = on_torch()
        gpu_logits = np.concatenate([o[0] for o in gpu])
        gpu_ood = np.concatenate([o[1] for o in gpu])
        p_cpu = softmax_with_entropy(cpu_logits, model.temperature)[0]
        p_gpu = softmax_with_entropy(gpu_logits, model.temperature)[0]
        t_cpu = best_time(lambda: model._run(X), args.repeats)
        t_gpu = best_time(on_torch, args.repeats)
        print(f"{name}: {len(X)} windows; onnxruntime CPU {len(X) / t_cpu:,.0f} windows/s, "
              f"torch {device} {len(X) / t_gpu:,.0f} windows/s ({t_cpu / t_gpu:.1f}x); "
              f"max |posterior diff| {np.max(np.abs(p_cpu - p_gpu)):.2e}, "
              f"max |OOD diff| {np.max(np.abs(cpu_ood - gpu_ood)):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
