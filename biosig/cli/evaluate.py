"""``biosig evaluate``: honest metrics of a model on labelled recordings or a feature table."""

from __future__ import annotations

import argparse
import json

import numpy as np

from biosig._checks import BiosigError

DESCRIPTION = """\
Apply a trained model (ONNX) to labelled data it was not trained on and print accuracy,
macro-F1, negative log-likelihood (nats per window), expected calibration error (15 bins) and
the confusion matrix (rows: true class, columns: predicted class).

Recordings are processed with the pipeline settings stored in the model, and must match its
sampling rate and channels. With --json, the last line of output is one JSON object with the
keys accuracy, macro_f1, nll, ece, confusion (plus class_names, n_windows, ood_share).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="accuracy, macro-F1, NLL, ECE and confusion of a model on labelled data",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model file (.onnx)")
    parser.add_argument("data", nargs="+", help="labelled recordings, folders, or one feature table")
    parser.add_argument("--label-column", help="label column of a feature table")
    parser.add_argument("--drop-columns", default="", help="comma-separated columns of a feature table to ignore")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the metrics")
    parser.set_defaults(func=run)


def evaluate_model(model, dataset) -> dict:
    """Metrics of ``model`` (an OnnxModel) on ``dataset`` (a FeatureDataset)."""
    from biosig.metrics import classification_report

    if list(dataset.feature_names) != list(model.feature_names):
        raise BiosigError("the data's features differ from the model's (other channels or settings?)")
    unknown = sorted(set(dataset.y) - set(model.classes_.tolist()))
    if unknown:
        raise BiosigError(f"labels {unknown} are not classes of the model {model.classes_.tolist()}")
    inference = model.infer(dataset.X)
    report = classification_report(dataset.y, inference.posteriors, list(model.classes_))
    report["ood_share"] = float(np.mean(inference.ood_flag))
    return report


def run(args) -> int:
    from biosig.cli.train import _split
    from biosig.datasets import build_dataset, read_feature_table
    from biosig.inference import OnnxModel

    model = OnnxModel(args.model)
    if args.label_column:
        if len(args.data) != 1:
            raise BiosigError("a feature table is one file; give exactly one DATA with --label-column")
        dataset = read_feature_table(args.data[0], label_column=args.label_column,
                                     drop_columns=_split(args.drop_columns))
    else:
        config = model.pipeline_config()
        dataset, _, info = build_dataset(args.data, config, progress=not args.json)
        model.check_stream(info["srate"], info["channels"])
    report = evaluate_model(model, dataset)
    _print_report(report)
    if args.json:
        keys = ("accuracy", "macro_f1", "nll", "ece", "confusion", "class_names", "n_windows", "ood_share")
        print(json.dumps({k: report[k] for k in keys}))
    return 0


def _print_report(report: dict) -> None:
    names = report["class_names"]
    print(f"windows {report['n_windows']}  accuracy {report['accuracy']:.4f}  "
          f"macro-F1 {report['macro_f1']:.4f}  NLL {report['nll']:.4f}  ECE {report['ece']:.4f}  "
          f"OOD {100 * report['ood_share']:.1f} %")
    width = max(6, *(len(n) for n in names))
    print("confusion (rows true, columns predicted):")
    print(" " * width + "".join(f"{n:>{width + 1}}" for n in names))
    for name, row in zip(names, report["confusion"]):
        print(f"{name:>{width}}" + "".join(f"{v:>{width + 1}}" for v in row))

