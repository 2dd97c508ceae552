"""``biosig convert``: turn recordings (WFDB, Myo text, CSV, XDF) into XDF files."""

from __future__ import annotations

import argparse
import logging

from biosig.io import READERS

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Convert recordings to XDF, one file per recording, named after the input:
a WFDB record -> <record>.xdf (1001.xdf), a Myo session folder -> <participant>-<session>.xdf
(12345-1.xdf; its gesture files are joined in order, labels become markers), a lone Myo file
-> <session>_<n>.xdf, a CSV or XDF file -> <stem>.xdf; --prefix goes in front of each.

INPUT may be a file, a WFDB record, a Myo session folder, a folder of recordings (searched
recursively) or a glob pattern. Existing outputs are skipped with a warning unless --overwrite.
A file that cannot be read is reported and the others are still converted; the exit code is
then 2.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert WFDB, Myo text, CSV or XDF recordings to XDF",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="recordings, folders or globs")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created if missing)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing XDF files")
    parser.add_argument(
        "--prefix", default="", help="text put in front of every output name (e.g. myo_)"
    )
    parser.add_argument(
        "--format",
        choices=sorted(READERS),
        help="read every input as this format (default: guessed from the name)",
    )
    parser.add_argument("--fs", type=float, metavar="HZ", help="sampling rate for Myo/CSV inputs")
    parser.add_argument("--time-column", help="CSV: column of sample times in seconds")
    parser.add_argument("--label-column", help="CSV: column of per-sample labels")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.io.convert import convert

    options = {}
    if args.fs is not None:
        options["fs"] = args.fs
    if args.time_column is not None:
        options["time_column"] = args.time_column
    if args.label_column is not None:
        options["label_column"] = args.label_column
    written = convert(
        args.inputs,
        args.out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        format=args.format,
        prefix=args.prefix,
        **options,
    )
    print(f"wrote {len(written)} XDF file(s) to {args.out}")
    return 0
