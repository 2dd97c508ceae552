"""``biosig analyze``: offline batch analysis of many recordings, with summaries and a report."""

from __future__ import annotations

import argparse
import logging

from biosig._checks import BiosigError, check_int

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Run a trained model (ONNX) over recordings (files, folders or glob patterns of any format biosig
reads) with the model's own preprocessing, window and feature settings, and write into DIR:

  recordings/<name>/windows.parquet   one row per window: t_end (s), flagged, label (true label
                                      where one label covers the window), p(<class>) per class,
                                      entropy (nats), decision, rejected, ood_score, ood, and
                                      the features ("<feature>:<channel>"); windows.csv too with
                                      --csv
  recordings/<name>/summary.json      class time line and shares, accuracy, ECE and confusion
                                      where labels exist, OOD share, signal quality (non-finite,
                                      clipped, flat, dropped shares)
  summary.csv, summary.json           the table across recordings, and everything in one file
  report.html, figures/*.png          a self-contained report (opens from disk, no server)

The recordings run through the live pipeline's objects in large batches, so the results are
those the live path gives. A recording that cannot be read or does not fit the model is
reported and skipped; the others finish, and the exit code is then 1. Re-running skips the
recordings already complete with the same model, file and options (--force redoes them); every
file is written atomically and a completion marker is written last, so an interrupted run is
picked up where it stopped.

Work runs in a local process pool (--jobs) or, with --scheduler, on a Dask distributed
cluster whose workers have biosig installed and see the same paths. The onnxruntime CUDA
provider is used where onnxruntime-gpu and a GPU are present. Where onnxruntime is the CPU build
but torch sees a CUDA GPU, --torch-device cuda runs the model's batches there with torch; it is
not the default because starting torch and CUDA costs each worker ~8 s, more than a GPU saves
on anything short of millions of windows per worker.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="batch-analyse recordings with a model: per-window results, summaries, HTML report",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model file (.onnx)")
    parser.add_argument("inputs", nargs="+", help="recordings, folders of recordings or glob patterns")
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--csv", action="store_true", help="also write each per-window table as CSV")
    parser.add_argument("--jobs", type=int, help="local worker processes (default: one per CPU)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask distributed scheduler at ADDRESS (e.g. tcp://host:8786); "
                             'needs pip install "biosig[dask]"')
    parser.add_argument("--force", action="store_true", help="redo recordings that are already complete")
    parser.add_argument("--explain", action="store_true",
                        help="add the mutual-information and class-prototype figures to the report")
    parser.add_argument("--reject-threshold", type=float, metavar="P",
                        help="no decision for windows whose top posterior is below P (0 < P <= 1)")
    parser.add_argument("--smoothing", type=int, metavar="K",
                        help="majority vote over the last K decisions (default: none)")
    parser.add_argument("--batch-windows", type=int, default=4096,
                        help="most windows computed per chunk of a recording (default 4096; "
                             "chunks are also capped at the feature chain's piece size)")
    parser.add_argument("--torch-device", default="off", metavar="DEVICE",
                        help="run the model's batches with torch on DEVICE (e.g. cuda, cuda:1) "
                             "instead of onnxruntime; 'auto': on a CUDA GPU when onnxruntime has "
                             "no CUDA provider; 'off' (default): never. Each worker first spends "
                             "~8 s importing torch and starting CUDA, which pays back only on "
                             "millions of windows per worker (docs/analyze.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.analysis import ModelSettings, run_analysis

    if args.jobs is not None:
        check_int(args.jobs, "--jobs", minimum=1)
    if args.scheduler is not None and args.jobs is not None:
        raise BiosigError("--jobs sets the local pool; with --scheduler the cluster decides, leave it out")
    if args.smoothing is not None:
        check_int(args.smoothing, "--smoothing", minimum=1)
    if args.torch_device not in ("auto", "off"):
        from biosig.torch_graph import check_device

        check_device(args.torch_device)  # a bad name fails here, not in every worker
    settings = ModelSettings(
        reject_threshold=args.reject_threshold,
        smoothing=args.smoothing,
        batch_windows=check_int(args.batch_windows, "--batch-windows", minimum=1),
        torch_device=None if args.torch_device == "off" else args.torch_device,
    )
    result = run_analysis(
        args.model, args.inputs, args.out, jobs=args.jobs, scheduler=args.scheduler,
        force=args.force, csv=args.csv, explain=args.explain, settings=settings,
        progress=not args.quiet,
    )
    if not args.quiet:
        _print_summary(result)
    return 0 if result.ok else 1


def _print_summary(result) -> None:
    agg = result.aggregate
    line = (f"{len(result.computed)} analysed, {len(result.skipped)} already complete, "
            f"{len(result.failed)} failed; {agg.get('n_windows', 0)} windows")
    if "accuracy" in agg:
        line += f"; accuracy {agg['accuracy']:.3f} on {agg['evaluated_windows']} labelled windows"
    if "ood_share" in agg:
        line += f"; OOD {100 * agg['ood_share']:.1f} %"
    print(line)
    if result.failed:
        print(f"{len(result.failed)} recording(s) failed (listed above, and in summary.csv)")
    print(f"report: {result.report}")
