"""Convert recordings of any supported format into XDF files, one per recording.

Policies:

* **Names.** Each output is ``<name>.xdf`` after its input: a WFDB record's name
  (``1001.xdf``, ``session1_participant1_gesture11_trial1.xdf``), a Myo session folder's name
  (``12345-1.xdf``), a single Myo file with its folder (``12345-1_3.xdf``), or a file's stem;
  ``prefix`` is put in front (``prefix="myo_"`` gives ``myo_12345-1.xdf``).
* **Existing outputs are kept.** Without ``overwrite`` an existing output is skipped with a
  warning, so re-running a batch only fills in what is missing. Two inputs of one batch that
  would write the same output are an error for the second.
* **A batch survives bad files.** A file that cannot be read is logged (with the reason) and the
  batch goes on; at the end :class:`ConversionError` (a :class:`BiosigError`) names the failed
  inputs, so ``biosig convert`` exits non-zero after converting every good file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from biosig._checks import BiosigError, check_option
from biosig.io import READERS, iter_inputs, read_recording, write_xdf

logger = logging.getLogger(__name__)


class ConversionError(BiosigError):
    """Some inputs of a batch could not be converted; the others were.

    Attributes
    ----------
    written : list of Path
        The XDF files that were written.
    failed : list of tuple (Path, str)
        Each failed input and why.
    n_skipped : int
        Inputs whose output existed and was kept.
    """

    def __init__(self, written, failed, n_inputs, n_skipped=0):
        self.written = list(written)
        self.failed = list(failed)
        self.n_skipped = int(n_skipped)
        names = ", ".join(str(path) for path, _ in self.failed[:5])
        more = f" and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        super().__init__(
            f"{len(self.failed)} of {n_inputs} input(s) could not be converted: {names}{more} "
            f"({len(self.written)} XDF file(s) written, {self.n_skipped} existing skipped)"
        )


def output_name(path) -> str:
    """Return the XDF file name for the recording at ``path`` (see the module's naming rule)."""
    path = Path(path)
    if path.is_dir():
        return f"{path.name}.xdf"
    if path.name.lower().endswith(".xdf.gz"):
        return f"{path.name[: -len('.xdf.gz')]}.xdf"
    if path.suffix.lower() == ".txt":
        # A lone Myo file is named for its gesture only ("3.txt"); keep its session in the name.
        return f"{path.parent.name}_{path.stem}.xdf"
    if path.suffix.lower() in (".hea", ".dat", ".xdf", ".xdfz", ".csv"):
        return f"{path.stem}.xdf"
    return f"{path.name}.xdf"  # a WFDB record path without extension


def convert(
    inputs,
    out_dir,
    *,
    overwrite: bool = False,
    progress: bool = True,
    format: str | None = None,
    prefix: str = "",
    **read_options,
) -> list[Path]:
    """Convert recordings to XDF, one file per input recording.

    Parameters
    ----------
    inputs : str or Path or list of them
        Files, WFDB records, Myo session folders, folders of these, or glob patterns (expanded
        by :func:`biosig.io.iter_inputs`).
    out_dir : str or Path
        Folder for the XDF files; created if missing.
    overwrite : bool
        Replace existing outputs. Without it they are skipped with a warning.
    progress : bool
        Show a progress bar over the inputs on stderr.
    format : str or None
        Force the reader (``"xdf"``, ``"wfdb"``, ``"myo"``, ``"csv"``) for every input.
    prefix : str
        Text put in front of every output name (e.g. the data set: ``"myo_"``).
    **read_options
        Passed to :func:`biosig.io.read_recording` (e.g. ``fs`` in Hz for Myo/CSV).

    Returns
    -------
    list of Path
        The XDF files written, in input order (skipped existing files are not in it).

    Raises
    ------
    BiosigError
        Before converting anything: if an input does not exist or ``out_dir`` is not a folder.
    ConversionError
        After converting every good input: if some inputs failed (they are logged as they fail).
    """
    if format is not None:
        check_option(format, "format", tuple(READERS))
    if "/" in prefix or "\\" in prefix:
        raise BiosigError(f"prefix must not hold a path separator, got {prefix!r}")
    recordings = iter_inputs(inputs)
    out_dir = _prepare_out_dir(out_dir)
    written: list[Path] = []
    failed: list[tuple[Path, str]] = []
    n_skipped = 0
    claimed: dict[Path, Path] = {}  # output -> the input that writes it in this batch
    with logging_redirect_tqdm():
        bar = tqdm(
            recordings, desc="convert", unit="rec", file=sys.stderr, disable=not progress
        )
        for source in bar:
            target = out_dir / (prefix + output_name(source))
            if target in claimed:
                reason = f"its output {target.name} is also the output of {claimed[target]}"
                logger.error("cannot convert %s: %s", source, reason)
                failed.append((source, reason))
                continue
            claimed[target] = source
            if target.exists() and not overwrite:
                logger.warning("%s exists, skipped (--overwrite replaces it)", target)
                n_skipped += 1
                continue
            try:
                recording = read_recording(source, format=format, **read_options)
                write_xdf(recording, target)
            except (BiosigError, OSError) as err:
                reason = str(err)
                # Reader messages usually name the file already; do not say it twice.
                named = reason if str(source) in reason else f"{source}: {reason}"
                logger.error("cannot convert %s", named)
                failed.append((source, reason))
                continue
            except Exception as err:  # noqa: BLE001 - one bad file must not end the batch
                # An unexpected error is a bug, but the batch still goes on; -vv shows where.
                logger.error("cannot convert %s: %s: %s (a bug?)", source, type(err).__name__, err)
                logger.debug("traceback for %s", source, exc_info=True)
                failed.append((source, f"{type(err).__name__}: {err}"))
                continue
            logger.info("wrote %s", target)
            written.append(target)
    if failed:
        raise ConversionError(written, failed, len(recordings), n_skipped)
    return written


def _prepare_out_dir(out_dir) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BiosigError(f"output folder is a file: {out_dir}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BiosigError(f"cannot create output folder {out_dir}: {err.strerror}") from None
    return out_dir


__all__ = ["ConversionError", "convert", "output_name"]
