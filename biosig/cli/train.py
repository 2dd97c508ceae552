"""``biosig train``: fit a probabilistic classifier and write it as one ONNX model."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from biosig._checks import BiosigError, check_int

DESCRIPTION = """\
Train a classifier on labelled recordings or a feature table and write a single ONNX file that
carries everything needed to apply it: modality, channels, sampling rate, the pipeline's
preprocessing/window/feature settings, class names, temperature (calibration), OOD threshold,
training data and metrics. A model card with the same content is written next to it (.json).

DATA is labelled recordings (XDF with a label marker stream, WFDB, Myo .txt files or session
folders, folders of them), whose windows are computed by the same pipeline the live path runs
(settings from --config, else the default for the signal's rate and type), or one feature
table (CSV/Parquet) with --label-column.

Architectures:
  jsu       Johnson SU network, shared location/scale (convex; unique optimum) [default]
  jsu-full  Johnson SU network with class-specific location/scale learned by gradient
  sdgm      sparse discriminative Gaussian mixture (ARD-pruned weights and components)
  jsu-sdgm  Johnson SU translation layer feeding the SDGM head
  lda       linear discriminant analysis (baseline)
  mlp       small multilayer perceptron (baseline)

Calibration (--calibration): with two or more recordings (default "auto"), each recording is
predicted by a copy of the model trained without it (up to 5 folds: that many extra fits); the
temperature is fitted on those predictions, which see the shift a new session brings, and the
reported metrics are these cross-recording ones. The model itself is trained on all windows.
With one recording or a feature table ("windows"), a stratified share of the windows
(--calibration-fraction) is held out instead and the model is fitted on the rest. Training is
reproducible from --seed (on one device: a GPU's arithmetic differs from the CPU's in the last
bits). It runs on the CPU unless --device names a GPU: these networks are small, and on an
H200 beside 16 CPU threads only jsu-full trained faster on the GPU (1.4-1.7x), sdgm 1.5-1.9x
slower (benchmarks/train_device.py).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a Johnson SU / SDGM / baseline classifier and export it to ONNX",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", nargs="+", help="labelled recordings, folders, or one feature table")
    parser.add_argument("--arch", default="jsu", help="architecture (see above; default jsu)")
    parser.add_argument("--out", required=True, help="output model file (.onnx)")
    parser.add_argument("--config", help="pipeline configuration (TOML) for recordings")
    parser.add_argument("--label-column", help="label column of a feature table")
    parser.add_argument("--drop-columns", default="", help="comma-separated columns of a feature table to ignore")
    parser.add_argument("--exclude-labels", default="", help="comma-separated labels whose windows are left out")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--calibration", default="auto", choices=("auto", "recordings", "windows"),
                        help="where the temperature is fitted (see above; default auto)")
    parser.add_argument("--calibration-fraction", type=float, default=0.2,
                        help="share of windows held out for temperature scaling (default 0.2)")
    parser.add_argument("--device", default="cpu",
                        help="torch device for training: cpu (default), cuda, cuda:N or auto (a "
                             "CUDA GPU when torch sees one); see the note above")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run(args) -> int:
    from biosig.training import ARCHITECTURES

    if args.arch not in ARCHITECTURES:
        raise BiosigError(f"--arch must be one of {', '.join(ARCHITECTURES)}, got {args.arch!r}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise BiosigError(f"{out} exists; choose another --out or pass --overwrite")
    check_int(args.seed, "--seed", minimum=0)
    from biosig.nets.estimators import resolve_device

    resolve_device(args.device)  # a bad name or a missing GPU fails before the features
    if not 0.05 <= args.calibration_fraction <= 0.5:
        raise BiosigError("--calibration-fraction must be between 0.05 and 0.5")
    dataset, config, info = _load(args)
    from biosig.training import train_model

    command = "biosig " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    card = train_model(
        dataset, arch=args.arch, out=out, pipeline_config=config, stream_info=info, seed=args.seed,
        calibration=args.calibration, calibration_fraction=args.calibration_fraction,
        verbose=not args.quiet, command=command, device=args.device,
    )
    m = card["metrics"]["calibration_set"]
    held_out = ("cross-recording predictions" if m["calibrated_by"] == "recordings"
                else "held-out calibration set")
    print(
        f"{args.arch}: {len(dataset)} windows, {len(card['class_names'])} classes, "
        f"{len(card['feature_names'])} features; trained in {m['train_time_s']:.1f} s\n"
        f"{held_out}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
        f"NLL {m['nll']:.3f}, ECE {m['ece']:.3f} (T = {card['temperature']:.2f})\n-> {out}"
    )
    return 0


def _load(args):
    from biosig.datasets import build_dataset, read_feature_table

    if args.label_column:
        if len(args.data) != 1:
            raise BiosigError("a feature table is one file; give exactly one DATA with --label-column")
        dataset = read_feature_table(args.data[0], label_column=args.label_column,
                                     drop_columns=_split(args.drop_columns))
        return dataset, None, {"modality": "features"}
    config = None
    if args.config:
        from biosig.config import load_config

        config = load_config(args.config)
    return build_dataset(args.data, config, progress=not args.quiet,
                         exclude_labels=_split(args.exclude_labels))
