"""Read the Myo armband text files of the *myo-readings-dataset* into a :class:`Recording`.

Each line of a ``<label>.txt`` file is ``ch1,…,ch8,label``: eight raw Myo EMG samples (signed
8-bit ADC values, no physical unit) and the gesture label of that sample. There is no time
column; rows are equally spaced at the Myo's 200 Hz. A session folder
``<participant>-<session>/`` holds ``0.txt`` … ``7.txt``, one file per gesture.

The recording has:

* one ``"MyoEMG"`` stream of type ``"EMG"``: channels ``emg1`` … ``emg8`` in unit ``"adu"``,
  ``channel_format="int8"``: the values are the Myo's int8 samples, so int8 stores them
  losslessly in a quarter of the space of float32;
* one ``"labels"`` marker stream: a marker at every change of label, valued with the label
  number as a string (``"0"`` … ``"7"``). The gesture names are in the metadata as
  ``label_names``, a JSON object ``{"0": "rest", "1": "wrist flexion", …}``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_positive
from biosig.io.recording import Recording, Stream, markers_from_labels

logger = logging.getLogger(__name__)

#: Nominal Myo EMG sampling rate in Hz.
MYO_RATE_HZ = 200.0

#: Number of EMG channels (pods) of the Myo armband.
MYO_N_CHANNELS = 8

#: Label number (as a string) to gesture, from the dataset's README.
MYO_LABEL_NAMES = {
    "0": "rest",
    "1": "wrist flexion",
    "2": "wrist extension",
    "3": "radial deviation",
    "4": "ulnar deviation",
    "5": "pronation",
    "6": "supination",
    "7": "fist",
}

_SESSION_FOLDER = re.compile(r"^(?P<participant>\d+)-(?P<session>\d+)$")
_GESTURE_FILE = re.compile(r"^\d+\.txt$")


def myo_session_files(folder) -> list[Path]:
    """Return the gesture files ``<n>.txt`` of a Myo session folder, in label order.

    Returns an empty list when ``folder`` holds no such file (it is not a Myo session).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and _GESTURE_FILE.match(p.name)]
    return sorted(files, key=lambda p: int(p.stem))


def is_myo_session(folder) -> bool:
    """Whether ``folder`` is a Myo session folder (holds ``0.txt``, ``1.txt`` …)."""
    return bool(myo_session_files(folder))


def read_myo(path, *, fs: float = MYO_RATE_HZ) -> Recording:
    """Read one Myo gesture file or a whole session folder.

    Parameters
    ----------
    path : str or Path
        A ``<label>.txt`` file, or a ``<participant>-<session>/`` folder whose ``<n>.txt``
        files are concatenated in label order (0.txt, 1.txt, …) into one continuous recording.
    fs : float
        Sampling rate in Hz (the files carry no time column); default 200 Hz.

    Returns
    -------
    Recording
        Stream ``"MyoEMG"`` (8 channels ``emg1`` … ``emg8``, unit ``"adu"``, int8 format,
        timestamps ``row / fs`` in seconds from 0, continuous across files) and marker stream
        ``"labels"`` (label numbers as strings at each change of label). Metadata: ``dataset``,
        ``participant`` and ``session`` (from the folder name ``<participant>-<session>``),
        ``files`` and ``file_start_samples`` (comma-separated; where each file begins) and
        ``label_names`` (JSON object label → gesture).

    Raises
    ------
    BiosigError
        If the path is missing, a folder holds no ``<n>.txt`` file, or a line is not nine
        integers (the message names the file and the line number).
    """
    fs = check_positive(fs, "fs")
    path = Path(path)
    if path.is_dir():
        files = myo_session_files(path)
        if not files:
            raise BiosigError(f"{path} is not a Myo session folder: it has no 0.txt … 7.txt")
        folder = path
    elif path.is_file():
        files = [path]
        folder = path.parent
    else:
        raise BiosigError(f"Myo file or folder not found: {path}")

    blocks = [read_myo_rows(file) for file in files]
    rows = np.concatenate(blocks, axis=0)
    timestamps = np.arange(rows.shape[0]) / fs
    starts = np.cumsum([0] + [block.shape[0] for block in blocks[:-1]])

    metadata = {
        "source_format": "Myo text",
        "dataset": "myo-readings-dataset",
        "files": ",".join(file.name for file in files),
        "file_start_samples": ",".join(str(int(s)) for s in starts),
        "label_names": json.dumps(MYO_LABEL_NAMES),
    }
    session = _SESSION_FOLDER.match(folder.name)
    if session:
        metadata["participant"] = session["participant"]
        metadata["session"] = session["session"]
    stream = Stream(
        name="MyoEMG",
        type="EMG",
        data=rows[:, :MYO_N_CHANNELS],
        timestamps=timestamps,
        srate=fs,
        channel_labels=[f"emg{i + 1}" for i in range(MYO_N_CHANNELS)],
        channel_units=["adu"] * MYO_N_CHANNELS,
        source_id=f"myo:{folder.name}" if path.is_dir() else f"myo:{folder.name}/{path.name}",
        channel_format="int8",
        metadata=dict(metadata),
    )
    recording = Recording(metadata=metadata, source=path)
    recording.add_stream(stream)
    recording.add_markers(markers_from_labels(rows[:, MYO_N_CHANNELS], timestamps, "labels"))
    return recording


def read_myo_rows(file) -> np.ndarray:
    """Return the rows of one Myo text file as an int16 array of shape (n_rows, 9).

    Columns 0–7 are the EMG samples in [-128, 127], column 8 the label (>= 0).

    Raises
    ------
    BiosigError
        Naming the file and the (1-based) line of the first malformed row.
    """
    file = Path(file)
    try:
        text = file.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise BiosigError(f"{file}: not a Myo text file (non-ASCII content)") from None
    except OSError as err:
        raise BiosigError(f"cannot read {file}: {err.strerror or err}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # a trailing newline is not a row
        lines.pop()
    if not lines:
        raise BiosigError(f"{file}: empty Myo file")
    try:
        # Fast path: numpy parses the whole file in C.
        rows = np.loadtxt(lines, dtype=np.int64, delimiter=",", ndmin=2)
        if rows.shape != (len(lines), MYO_N_CHANNELS + 1):
            raise ValueError("unexpected shape")
    except ValueError:
        # Slow path, only for bad files: find the first bad line for the message.
        for number, line in enumerate(lines, start=1):
            _parse_row(line, file, number)
        raise BiosigError(f"{file}: not a Myo text file") from None
    _check_ranges(rows, file)
    return rows.astype(np.int16)


def _parse_row(line: str, file: Path, number: int) -> list[int]:
    fields = line.strip().split(",")
    if len(fields) != MYO_N_CHANNELS + 1:
        raise BiosigError(
            f"{file}, line {number}: expected {MYO_N_CHANNELS + 1} comma-separated integers "
            f"(8 EMG values and a label), got {len(fields)} fields"
        )
    try:
        return [int(field) for field in fields]
    except ValueError:
        raise BiosigError(
            f"{file}, line {number}: not an integer in {line.strip()[:60]!r}"
        ) from None


def _check_ranges(rows: np.ndarray, file: Path) -> None:
    emg = rows[:, :MYO_N_CHANNELS]
    bad = np.flatnonzero(((emg < -128) | (emg > 127)).any(axis=1))
    if bad.size:
        raise BiosigError(
            f"{file}, line {bad[0] + 1}: EMG value outside the Myo's int8 range [-128, 127]"
        )
    bad = np.flatnonzero(rows[:, MYO_N_CHANNELS] < 0)
    if bad.size:
        raise BiosigError(f"{file}, line {bad[0] + 1}: negative label")
