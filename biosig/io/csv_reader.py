"""Read a generic delimited-text signal file (one sample per row) into a :class:`Recording`.

Columns are signal channels, plus optionally a time column (seconds) and a label column. A CSV
has no standard place for the sampling rate, so either ``fs`` or a time column is required. A
table of per-record features (such as the UCI cardiotocography table) is not a signal: without
``fs`` or a time column it is refused with a message that says so.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_existing_file, check_positive
from biosig.io.recording import Recording, Stream, markers_from_labels

logger = logging.getLogger(__name__)


def read_csv(
    path,
    *,
    fs: float | None = None,
    time_column=None,
    label_column=None,
    channels=None,
    delimiter: str = ",",
    header="infer",
    stream_name: str | None = None,
    stream_type: str = "EMG",
    units=None,
) -> Recording:
    """Read a CSV signal file.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    fs : float or None
        Sampling rate in Hz. Without a time column, sample ``i`` is at ``i / fs`` seconds.
        With one, ``fs`` is only the nominal rate.
    time_column : str or int or None
        Column (name, or 0-based index) holding each sample's time in seconds. It must
        increase strictly. Without ``fs``, the nominal rate is 1 / median time step.
    label_column : str or int or None
        Column of per-sample labels (numbers or text); it becomes a ``"labels"`` marker stream
        with a marker at each change of label.
    channels : list of (str or int) or None
        Signal columns to keep, in this order. Default: every column except the time and label
        columns.
    delimiter : str
        Field separator.
    header : {"infer", True, False}
        Whether the first row names the columns. ``"infer"``: it does when any of its fields is
        not a number. Without a header, columns are named ``ch1``, ``ch2`` … and can also be
        picked by index.
    stream_name : str or None
        Name of the signal stream; default: the file name without extension.
    stream_type : str
        Content type of the signal stream (``"EMG"``, ``"CTG"`` …).
    units : str or list of str or dict or None
        Channel units: one for all channels, one per kept channel, or a dict column → unit.

    Returns
    -------
    Recording
        One stream (float64 values, ``channel_format="double64"``) and, with a label column, a
        ``"labels"`` marker stream.

    Raises
    ------
    BiosigError
        If neither ``fs`` nor ``time_column`` is given, a column is missing, a signal value is
        not a number (the message names the line and column), or the times do not increase.
    """
    path = check_existing_file(path, "CSV file")
    if fs is None and time_column is None:
        raise BiosigError(
            f"{path}: a CSV file has no sampling rate; give fs (--fs) or a time column. "
            "(A table of features per record, such as the UCI cardiotocography table, is not "
            "a signal and cannot be read as one.)"
        )
    if fs is not None:
        fs = check_positive(fs, "fs")
    names, rows, first_line = _read_rows(path, delimiter, header)

    time_index = _column_index(time_column, names, path) if time_column is not None else None
    label_index = _column_index(label_column, names, path) if label_column is not None else None
    if channels is None:
        channel_indices = [i for i in range(len(names)) if i not in (time_index, label_index)]
    else:
        channel_indices = [_column_index(c, names, path) for c in channels]
    if not channel_indices:
        raise BiosigError(f"{path}: no signal column left to read")

    data = _numeric_columns(rows, channel_indices, names, path, first_line)
    if time_index is None:
        timestamps = np.arange(data.shape[0]) / fs
    else:
        timestamps = _numeric_columns(rows, [time_index], names, path, first_line)[:, 0]
        fs = _check_times(timestamps, path) if fs is None else fs

    labels = [names[i] for i in channel_indices]
    stream = Stream(
        name=stream_name or path.stem,
        type=stream_type,
        data=data,
        timestamps=timestamps,
        srate=fs,
        channel_labels=labels,
        channel_units=_channel_units(units, labels, path),
        source_id=f"csv:{path.name}",
        channel_format="double64",
    )
    recording = Recording(metadata={"source_format": "CSV"}, source=path)
    recording.add_stream(stream)
    if label_index is not None:
        values = [row[label_index].strip() for row in rows]
        recording.add_markers(markers_from_labels(values, timestamps, "labels"))
    return recording


def _read_rows(path: Path, delimiter: str, header):
    """Return (column names, data rows as lists of str, 1-based line number of the first row)."""
    if header not in ("infer", True, False, None):
        raise BiosigError(f"header must be 'infer', True or False, got {header!r}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            rows = [row for row in csv.reader(stream, delimiter=delimiter)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise BiosigError(f"{path}: not a readable CSV text file ({err})") from None
    # Blank lines are not samples; a trailing one is common.
    rows = [row for row in rows if any(field.strip() for field in row)]
    if not rows:
        raise BiosigError(f"{path}: empty CSV file")
    has_header = _looks_like_header(rows[0]) if header == "infer" else bool(header)
    if has_header:
        names = [field.strip() for field in rows[0]]
        rows = rows[1:]
    else:
        names = [f"ch{i + 1}" for i in range(len(rows[0]))]
    if not rows:
        raise BiosigError(f"{path}: no data rows")
    n_columns = len(names)
    for number, row in enumerate(rows, start=2 if has_header else 1):
        if len(row) != n_columns:
            raise BiosigError(
                f"{path}, row {number}: {len(row)} fields, expected {n_columns} "
                f"(delimiter {delimiter!r})"
            )
    return names, rows, 2 if has_header else 1


def _looks_like_header(row) -> bool:
    for field in row:
        try:
            float(field)
        except ValueError:
            return True
    return False


def _column_index(column, names, path) -> int:
    if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
        if not 0 <= column < len(names):
            raise BiosigError(f"{path}: column index {column} out of range 0–{len(names) - 1}")
        return int(column)
    if column in names:
        return names.index(column)
    if isinstance(column, str) and column.isdigit():  # an index given as text (command line)
        return _column_index(int(column), names, path)
    raise BiosigError(f"{path}: no column {column!r}; columns: {names}")


def _numeric_columns(rows, indices, names, path, first_line) -> np.ndarray:
    try:
        return np.array([[float(row[i]) for i in indices] for row in rows], dtype=np.float64)
    except ValueError:
        pass
    # Only for bad files: find the first bad cell for the message.
    for number, row in enumerate(rows, start=first_line):
        for i in indices:
            try:
                float(row[i])
            except ValueError:
                raise BiosigError(
                    f"{path}, row {number}, column {names[i]!r}: not a number: {row[i]!r}"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _check_times(timestamps: np.ndarray, path: Path) -> float:
    """Check the times increase and return the nominal rate (1 / median step) in Hz."""
    if timestamps.shape[0] < 2:
        raise BiosigError(f"{path}: one sample is not enough to know the rate; give fs")
    steps = np.diff(timestamps)
    if not np.all(np.isfinite(timestamps)) or np.any(steps <= 0):
        bad = int(np.flatnonzero(~(steps > 0))[0]) + 1 if np.any(~(steps > 0)) else 0
        raise BiosigError(f"{path}: times must increase strictly (sample {bad})")
    return float(1.0 / np.median(steps))


def _channel_units(units, labels, path) -> list[str]:
    if units is None:
        return [""] * len(labels)
    if isinstance(units, str):
        return [units] * len(labels)
    if isinstance(units, dict):
        return [str(units.get(label, "")) for label in labels]
    units = [str(u) for u in units]
    if len(units) != len(labels):
        raise BiosigError(f"{path}: {len(units)} units for {len(labels)} channels")
    return units
