"""Training time on the CPU against a CUDA GPU, per architecture, same windows and settings.

``biosig train`` fits on a CUDA GPU when torch sees one (``--device auto``). This prints, for
each trainable architecture, the fit time (best of ``--repeats``) and test accuracy on the CPU
and on the GPU, for the bundled Myo session's windows (features computed once, not timed;
first two thirds train, the rest test) and for ``--copies`` tiles of them with a little noise
(a larger study). The one-off cost of a process's first GPU fit (CUDA context, kernels) is
paid in a warm-up fit, not timed. Without a GPU it times the CPU only.

    python benchmarks/train_device.py [--archs jsu,sdgm] [--repeats 2] [--copies 8]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The trainable architectures, each fitted with ``biosig train``'s defaults.
ARCHS = ("jsu", "jsu-full", "sdgm", "jsu-sdgm", "mlp")


def myo_windows():
    from biosig.datasets import build_dataset

    dataset, _, _ = build_dataset([REPO / "recordings" / "myo_12345-1.xdf"], progress=False)
    split = int(len(dataset) * 2 / 3)
    y = np.asarray(dataset.y).astype(str)
    return dataset.X[:split], y[:split], dataset.X[split:], y[split:]


def tiled(X, y, copies: int, seed: int = 0):
    """``copies`` tiles of (X, y), each but the first with 1 % Gaussian noise per feature."""
    rng = np.random.default_rng(seed)
    scale = X.std(axis=0) * 0.01
    tiles = [X] + [X + rng.normal(size=X.shape) * scale for _ in range(copies - 1)]
    return np.vstack(tiles), np.tile(y, copies)


def fit_time(arch, device, X, y, repeats):
    from biosig.training import make_estimator

    best, model = float("inf"), None
    for _ in range(repeats):
        estimator = make_estimator(arch, random_state=0, device=device)
        started = time.perf_counter()
        model = estimator.fit(X, y)
        best = min(best, time.perf_counter() - started)
    return best, model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures")
    parser.add_argument("--repeats", type=int, default=2, help="fits per case; the best counts")
    parser.add_argument("--copies", type=int, default=8, help="tiles for the larger data set")
    args = parser.parse_args(argv)

    import torch

    logging.disable(logging.WARNING)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    name = torch.cuda.get_device_name() if "cuda" in devices else "no CUDA GPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {name}")
    X_train, y_train, X_test, y_test = myo_windows()
    sets = {"Myo session": (X_train, y_train)}
    if args.copies > 1:
        sets[f"{args.copies} noisy tiles"] = tiled(X_train, y_train, args.copies)
    archs = args.archs.split(",")
    if "cuda" in devices:  # the process's one-off CUDA start, not timed
        fit_time(archs[0], "cuda", X_train[::10], y_train[::10], 1)
    print(f"{'architecture':12s} {'data':18s} {'windows':>8s} "
          + " ".join(f"{d + ' fit (s)':>14s} {d + ' acc':>9s}" for d in devices))
    for arch in archs:
        for label, (X, y) in sets.items():
            cells = []
            for device in devices:
                seconds, model = fit_time(arch, device, X, y, args.repeats)
                accuracy = float(np.mean(model.predict(X_test) == y_test))
                cells.append(f"{seconds:14.2f} {accuracy:9.3f}")
            print(f"{arch:12s} {label:18s} {len(X):8d} " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
