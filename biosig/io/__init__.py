"""Reading and writing recordings: XDF, WFDB, Myo text and CSV, all into one :class:`Recording`.

:func:`read_recording` picks the reader from the path:

* ``*.xdf``, ``*.xdfz``, ``*.xdf.gz`` → ``"xdf"``, :func:`read_xdf`;
* ``*.hea``, a ``*.dat`` next to its ``.hea``, or a WFDB record path without extension →
  ``"wfdb"``, :func:`read_wfdb`;
* a Myo ``<n>.txt`` file, or a Myo session folder ``<participant>-<session>/`` holding
  ``0.txt`` … ``7.txt`` (read as ONE recording) → ``"myo"``, :func:`read_myo`;
* ``*.csv`` → ``"csv"``, :func:`read_csv`.

:func:`iter_inputs` expands files, folders and glob patterns into the recordings they hold, for
batch work such as ``biosig convert``.
"""

from __future__ import annotations

import glob
import inspect
import logging
import re
from pathlib import Path

from biosig._checks import BiosigError, check_option
from biosig.io.csv_reader import read_csv
from biosig.io.myo import is_myo_session, read_myo
from biosig.io.recording import Markers, Recording, Stream, markers_from_labels
from biosig.io.wfdb_reader import read_wfdb
from biosig.io.xdf import read_xdf, write_xdf

logger = logging.getLogger(__name__)

#: Reader of each format name accepted by ``format=``.
READERS = {"xdf": read_xdf, "wfdb": read_wfdb, "myo": read_myo, "csv": read_csv}

#: One line naming what :func:`read_recording` accepts, for error messages.
SUPPORTED_FORMATS = (
    "XDF (.xdf, .xdfz, .xdf.gz), WFDB (.hea/.dat or record name), Myo text (<n>.txt or a "
    "<participant>-<session> folder of them), CSV (.csv)"
)

_XDF_SUFFIXES = (".xdf", ".xdfz")


def _is_xdf_name(path: Path) -> bool:
    name = path.name.lower()
    return path.suffix.lower() in _XDF_SUFFIXES or name.endswith(".xdf.gz")

# Files a data folder holds besides its recordings; skipped without a word.
_NON_RECORDING_NAMES = {"RECORDS", "SHA256SUMS", "LICENSE", "ANNOTATORS"}


def read_recording(path, *, format: str | None = None, **options) -> Recording:
    """Read any supported recording.

    Parameters
    ----------
    path : str or Path
        A file, a WFDB record path, or a Myo session folder (see the module table).
    format : {"xdf", "wfdb", "myo", "csv"} or None
        Force a reader instead of guessing from the path.
    **options
        Passed to the reader, e.g. ``fs`` (Hz) for Myo and CSV, ``drop_channels`` for WFDB,
        ``synchronize_clocks`` for XDF. An option the reader does not take is an error.

    Returns
    -------
    Recording

    Raises
    ------
    BiosigError
        If the path does not exist, its format is not supported, an option does not apply to
        the format, or the file is malformed.
    """
    path = Path(path)
    if format is None:
        format = detect_format(path)
    else:
        check_option(format, "format", tuple(READERS))
    reader = READERS[format]
    _check_options(reader, format, options)
    logger.debug("reading %s as %s", path, format)
    recording = reader(path, **options)
    if recording.source is None:
        recording.source = path
    return recording


def detect_format(path) -> str:
    """Return the format name (a key of :data:`READERS`) of ``path``, judged by its name.

    Raises
    ------
    BiosigError
        If the path does not exist or is of no supported format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        if is_myo_session(path):
            return "myo"
        raise BiosigError(
            f"{path} is a folder but not a Myo session (no 0.txt … 7.txt); to read every "
            "recording in a folder use 'biosig convert' or biosig.io.iter_inputs"
        )
    if _is_wfdb_record(path):
        return "wfdb"
    if not path.exists():
        raise BiosigError(f"file not found: {path}")
    if _is_xdf_name(path):
        return "xdf"
    if suffix == ".txt":
        return "myo"
    if suffix == ".csv":
        return "csv"
    raise BiosigError(f"unsupported file {path}; biosig reads {SUPPORTED_FORMATS}")


def _is_wfdb_record(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".hea":
        return path.is_file()
    if suffix == ".dat":
        return path.with_suffix(".hea").is_file()
    # A record name without extension, as wfdb.rdrecord takes it.
    return not path.exists() and (path.parent / (path.name + ".hea")).is_file()


def _check_options(reader, format: str, options: dict) -> None:
    accepted = {
        name
        for name, param in inspect.signature(reader).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise BiosigError(
            f"option(s) {', '.join(unknown)} do not apply to {format} files; "
            f"{format} options: {', '.join(sorted(accepted)) or 'none'}"
        )


def iter_inputs(paths) -> list[Path]:
    """Expand files, folders and glob patterns into the recordings to read, in order.

    Parameters
    ----------
    paths : str or Path or list of them
        Each may be a recording (file, WFDB record, Myo session folder), a folder of
        recordings (searched recursively; a Myo session folder counts as one recording, the
        ``.dat`` of a WFDB record is represented by its ``.hea``), or a glob pattern.

    Returns
    -------
    list of Path
        One path per recording, each readable by :func:`read_recording`; no duplicates.
        Inside folders, files of unknown type (README, RECORDS, checksums …) are skipped.

    Raises
    ------
    BiosigError
        If a path does not exist, a pattern matches nothing, or a folder holds no recording.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for item in paths:
        for path in _expand_one(item):
            if path not in found:
                found.append(path)
    return found


def _expand_one(item) -> list[Path]:
    path = Path(item)
    if path.is_dir():
        if is_myo_session(path):
            return [path]
        inside = _recordings_in_folder(path)
        if not inside:
            raise BiosigError(
                f"no recording found in folder {path}; biosig reads {SUPPORTED_FORMATS}"
            )
        return inside
    if path.is_file():
        if path.suffix.lower() == ".dat" and path.with_suffix(".hea").is_file():
            return [path.with_suffix(".hea")]
        return [path]  # an unsupported file is reported when it is read
    if _is_wfdb_record(path):
        return [path.parent / (path.name + ".hea")]
    if glob.has_magic(str(item)):
        matches = sorted(glob.glob(str(item)), key=_natural_key)
        if not matches:
            raise BiosigError(f"no file matches {item}")
        out: list[Path] = []
        for match in matches:
            out.extend(_expand_one(match))
        return out
    raise BiosigError(f"file not found: {path}")


def _natural_key(path) -> tuple:
    """Sort key that orders names as people read them: ``p2`` before ``p10``, letter case
    only breaking ties."""
    text = str(path)
    parts = [(int(part), "") if part.isdigit() else (-1, part.lower())
             for part in re.split(r"(\d+)", text)]
    return parts, text


def _recordings_in_folder(folder: Path) -> list[Path]:
    found = []
    for child in sorted(folder.iterdir(), key=_natural_key):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found.extend([child] if is_myo_session(child) else _recordings_in_folder(child))
        elif _is_recording_file(child):
            found.append(child)
        else:
            logger.debug("skipping %s: not a recording", child)
    return found


def _is_recording_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if path.name in _NON_RECORDING_NAMES or suffix == ".dat":
        return False  # a .dat is read through its .hea
    return _is_xdf_name(path) or suffix in (".hea", ".csv")


__all__ = [
    "Markers",
    "READERS",
    "Recording",
    "SUPPORTED_FORMATS",
    "Stream",
    "detect_format",
    "iter_inputs",
    "markers_from_labels",
    "read_csv",
    "read_myo",
    "read_recording",
    "read_wfdb",
    "read_xdf",
    "write_xdf",
]
