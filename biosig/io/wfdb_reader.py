"""Read PhysioNet WFDB records (``.hea`` header + ``.dat`` signal file) into a :class:`Recording`.

Two kinds of WFDB record are known by name:

* **GRABMyo** (``session<S>_participant<P>_gesture<G>_trial<T>``): 32 sEMG signals in mV at
  2048 Hz. The amplifier's four unused inputs ``U1``–``U4`` carry no muscle signal and are
  dropped by default. The whole trial is one gesture, so the gesture number ``G`` from the
  record name becomes a single marker at t = 0 in a marker stream named ``"labels"``.
* **CTU-UHB** intrapartum CTG (``FHR`` in bpm and ``UC`` in ``nd`` at 4 Hz): every ``#key value``
  comment of the header (``pH``, ``BDecf``, ``Apgar1`` …) is kept as a string in the
  metadata, and the umbilical artery pH is also stored under :data:`PH_KEY`.

Any other WFDB record reads as one stream of its physical signals.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError
from biosig.io.recording import Markers, Recording, Stream

logger = logging.getLogger(__name__)

#: Metadata key under which a CTG record's umbilical artery pH (the usual outcome label) is
#: stored, whatever the header calls it (CTU-UHB: ``pH``). A string, as in the header.
PH_KEY = "outcome_ph"

#: GRABMyo's unused amplifier inputs, dropped by default.
GRABMYO_UNUSED_CHANNELS = ("U1", "U2", "U3", "U4")

#: Gesture names of the GRABMyo gestures in the shared data (GRABMyo numbering).
GRABMYO_GESTURE_NAMES = {
    "11": "wrist extension",
    "12": "wrist flexion",
    "15": "hand open",
    "16": "hand close",
}

_GRABMYO_NAME = re.compile(
    r"^session(?P<session>\d+)_participant(?P<participant>\d+)"
    r"_gesture(?P<gesture>\d+)_trial(?P<trial>\d+)$"
)
# A header comment "key   value": the key may hold single spaces ("Gest. weeks"), the value
# is the last whitespace-separated token.
_COMMENT_FIELD = re.compile(r"^(?P<key>\S.*?)\s+(?P<value>\S+)$")
_VOLTAGE_UNITS = {"v", "mv", "uv", "µv", "nv"}


def wfdb_record_path(path) -> Path:
    """Return the record path (no extension) of a WFDB ``.hea``/``.dat`` path or record name.

    Raises
    ------
    BiosigError
        If no ``<record>.hea`` header exists.
    """
    path = Path(path)
    record = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path
    header = record.parent / (record.name + ".hea")
    if not header.is_file():
        raise BiosigError(f"WFDB header not found: {header}")
    return record


def read_wfdb(
    path,
    *,
    drop_channels=None,
    stream_type: str | None = None,
) -> Recording:
    """Read a WFDB record into a :class:`Recording` of physical values.

    Parameters
    ----------
    path : str or Path
        The ``.hea`` header, the ``.dat`` file or the record path without extension.
    drop_channels : list of str or None
        Channel labels to leave out. ``None`` (default) drops GRABMyo's unused inputs
        ``U1``–``U4`` when the record has them and keeps everything otherwise; pass ``[]`` to
        keep every channel.
    stream_type : str or None
        Content type of the signal stream. ``None`` guesses it: ``"CTG"`` when the record has
        an ``FHR`` or ``UC`` signal, ``"EMG"`` when every signal is a voltage (GRABMyo: mV),
        else ``"WFDB"``.

    Returns
    -------
    Recording
        One signal stream named after the record, in the header's physical units (mV for
        GRABMyo, bpm and nd for CTU-UHB), ``channel_format="double64"``, timestamps
        ``sample_index / fs`` in seconds from 0. GRABMyo records also hold a ``"labels"``
        marker stream with the gesture number at t = 0. Header comments ``#key value`` are in
        ``Recording.metadata`` (and the stream's metadata) as strings; the pH of a CTG record
        is also under :data:`PH_KEY`.

    Raises
    ------
    BiosigError
        If the header is missing, unreadable, or the signal file is truncated or corrupt.
    """
    record_path = wfdb_record_path(path)
    record = _load_record(record_path)
    labels = [str(name) for name in record.sig_name]
    units = [str(unit) for unit in record.units]
    signals = np.asarray(record.p_signal, dtype=np.float64)

    keep = _channels_to_keep(labels, drop_channels, record_path)
    grabmyo = _GRABMYO_NAME.match(record_path.name)
    fs = float(record.fs)
    stream = Stream(
        name=record_path.name,
        type=stream_type or _guess_stream_type(labels, units),
        data=signals[:, keep],
        timestamps=np.arange(signals.shape[0]) / fs,
        srate=fs,
        channel_labels=[labels[i] for i in keep],
        channel_units=[units[i] for i in keep],
        source_id=f"wfdb:{record_path.name}",
        channel_format="double64",  # physical values are floats; float64 keeps them exact
    )
    metadata = {"source_format": "WFDB", "record_name": record_path.name}
    metadata.update(parse_header_comments(record.comments or []))
    if "pH" in metadata:
        metadata[PH_KEY] = metadata["pH"]
    if grabmyo:
        metadata.update(_grabmyo_metadata(grabmyo))
    stream.metadata = dict(metadata)

    recording = Recording(metadata=metadata, source=Path(path))
    recording.add_stream(stream)
    if grabmyo:
        # The whole trial is one held gesture: one label from the start.
        recording.add_markers(
            Markers(name="labels", timestamps=[0.0], values=[grabmyo["gesture"]])
        )
    return recording


def _load_record(record_path: Path):
    import wfdb  # imported here: only WFDB users pay for it

    try:
        record = wfdb.rdrecord(str(record_path))
    except Exception as err:  # wfdb raises many types (ValueError, HeaderSyntaxError, …)
        raise BiosigError(f"cannot read WFDB record {record_path}: {err}") from None
    if record.p_signal is None or record.fs is None or float(record.fs) <= 0:
        raise BiosigError(f"WFDB record {record_path} has no signal or no sampling rate")
    if record.p_signal.shape[0] != record.sig_len:
        raise BiosigError(
            f"WFDB record {record_path}: header promises {record.sig_len} samples, "
            f"signal file holds {record.p_signal.shape[0]}"
        )
    return record


def _channels_to_keep(labels, drop_channels, record_path) -> list[int]:
    if drop_channels is None:
        # GRABMyo's U1–U4 are unconnected amplifier inputs: noise, not signal.
        unused = set(GRABMYO_UNUSED_CHANNELS)
        drop = unused if unused <= set(labels) else set()
    else:
        if isinstance(drop_channels, str):
            drop_channels = [drop_channels]
        drop = set(drop_channels)
        missing = sorted(drop - set(labels))
        if missing:
            raise BiosigError(
                f"WFDB record {record_path} has no channel(s) {missing}; channels: {labels}"
            )
    keep = [i for i, label in enumerate(labels) if label not in drop]
    if not keep:
        raise BiosigError(f"WFDB record {record_path}: drop_channels leaves no channel")
    return keep


def _guess_stream_type(labels, units) -> str:
    if {"FHR", "UC"} & set(labels):
        return "CTG"
    if units and all(unit.lower() in _VOLTAGE_UNITS for unit in units):
        return "EMG"
    return "WFDB"


def parse_header_comments(comments) -> dict[str, str]:
    """Return the ``key value`` fields of WFDB header comments as a dict of strings.

    Section titles (comments starting with ``-``, as in CTU-UHB's ``#-- Outcome measures``) and
    comments without a value are skipped. Keys keep their spelling (``"Gest. weeks"``).
    """
    fields = {}
    for line in comments:
        text = str(line).strip()
        if not text or text.startswith("-"):
            continue
        match = _COMMENT_FIELD.match(text)
        if match:
            fields[match["key"]] = match["value"]
    return fields


def _grabmyo_metadata(match) -> dict[str, str]:
    gesture = str(int(match["gesture"]))
    metadata = {
        "dataset": "GRABMyo",
        "session": str(int(match["session"])),
        "participant": str(int(match["participant"])),
        "gesture": gesture,
        "trial": str(int(match["trial"])),
        "label_names": json.dumps(GRABMYO_GESTURE_NAMES),
    }
    if gesture in GRABMYO_GESTURE_NAMES:
        metadata["gesture_name"] = GRABMYO_GESTURE_NAMES[gesture]
    return metadata
