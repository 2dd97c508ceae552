"""Batched inference on a GPU through torch, against onnxruntime on the CPU, same windows.

For a machine with a CUDA GPU that torch sees (``biosig analyze --torch-device cuda``;
:class:`biosig.torch_graph.TorchGraph`). It prints what a process pays once before its first
GPU batch (importing torch, creating the CUDA context, building the graph), then for each
bundled network runs the Myo recording's windows (features computed once, not timed) through
onnxruntime (CPU, one thread, batches of 256, as ``analyze`` does) and through torch on the
device in blocks of each ``--blocks`` size (``analyze`` uses 4096), and prints windows/s, the
ratio, the largest posterior and OOD-score differences, and the windows one process must
classify before the GPU has paid back its one-off cost. Without a GPU it says so and runs
torch on the CPU (a parity check only).

    python benchmarks/gpu_batch.py [--device cuda] [--repeats 5] [--copies 20]
                                   [--blocks 4096,65536]

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
    parser.add_argument("--blocks", default="4096,65536",
                        help="comma-separated torch block sizes (windows per call)")
    args = parser.parse_args(argv)
    blocks = [int(b) for b in args.blocks.split(",")]

    import logging

    started = time.perf_counter()
    import torch

    import_s = time.perf_counter() - started

    from biosig.analysis.batch import ONNX_BATCH
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
    started = time.perf_counter()
    torch.zeros(1, device=device).sum().item()  # creates the CUDA context
    context_s = time.perf_counter() - started
    recording = REPO / "recordings" / "myo_12345-1.xdf"
    first_call_s = 0.0
    for name in ("myo-12345-jsu.onnx", "myo-12345-sdgm.onnx"):
        path = REPO / "models" / name
        model = OnnxModel(path, threads=1, batch_size=ONNX_BATCH)
        X = np.tile(windows_of(model, recording), (args.copies, 1))
        started = time.perf_counter()
        graph = TorchGraph(path.read_bytes(), device)
        graph(X[:2])
        graph_s = time.perf_counter() - started
        # A process's first graph call also starts the GPU's math libraries: count that once
        # for every model, as a worker running only this one would pay it.
        first_call_s = max(first_call_s, graph_s)
        once_s = import_s + context_s + first_call_s
        print(f"{name}: once per process: import torch {import_s:.2f} s, {device} context "
              f"{context_s:.2f} s, graph and first call {graph_s:.2f} s")

        cpu_logits, cpu_ood = model._run(X)
        p_cpu = softmax_with_entropy(cpu_logits, model.temperature)[0]
        t_cpu = best_time(lambda: model._run(X), args.repeats)
        print(f"  {len(X)} windows; onnxruntime CPU {len(X) / t_cpu:,.0f} windows/s")
        for block in blocks:
            def on_torch():
                outputs = [graph(X[i : i + block]) for i in range(0, len(X), block)]
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                return outputs

            gpu = on_torch()
            gpu_logits = np.concatenate([o[0] for o in gpu])
            gpu_ood = np.concatenate([o[1] for o in gpu])
            p_gpu = softmax_with_entropy(gpu_logits, model.temperature)[0]
            t_gpu = best_time(on_torch, args.repeats)
            saved_per_window = (t_cpu - t_gpu) / len(X)
            payback = (f"pays back its {once_s:.1f} s after "
                       f"{once_s / saved_per_window:,.0f} windows per process"
                       if saved_per_window > 0 else "never pays back (slower per window)")
            print(f"  torch {device}, blocks of {block}: {len(X) / t_gpu:,.0f} windows/s "
                  f"({t_cpu / t_gpu:.1f}x); {payback}; max |posterior diff| "
                  f"{np.max(np.abs(p_cpu - p_gpu)):.2e}, max |OOD diff| "
                  f"{np.max(np.abs(cpu_ood - gpu_ood)):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
