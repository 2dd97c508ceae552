"""The in-memory recording: named signal streams and marker streams, as in the LSL/XDF world.

A :class:`Recording` holds what an XDF file holds: numeric :class:`Stream` objects (samples,
per-sample timestamps in seconds, nominal rate, channel metadata) and :class:`Markers`
(timestamps + strings). Labels for supervised data are markers; a per-sample label channel
converts to markers with :func:`markers_from_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError

#: LSL/XDF numeric channel formats biosig reads and writes.
NUMERIC_FORMATS = ("float32", "double64", "int8", "int16", "int32", "int64")


@dataclass
class Stream:
    """One regularly (or irregularly) sampled numeric stream.

    Parameters
    ----------
    name : str
        Stream name (LSL ``name``), e.g. ``"MyoEMG"``.
    type : str
        Content type (LSL ``type``), e.g. ``"EMG"``, ``"CTG"``.
    data : ndarray, shape (n_samples, n_channels)
        Samples as float64, in the channels' units.
    timestamps : ndarray, shape (n_samples,)
        Time of each sample in seconds (LSL clock for live data, 0-based for files without
        timestamps).
    srate : float
        Nominal sampling rate in Hz; 0 for irregular streams.
    channel_labels, channel_units, channel_types : list of str
        One entry per channel.
    source_id : str
        LSL ``source_id``; lets an inlet recover a restarted outlet.
    channel_format : str
        The LSL/XDF value format the samples came in (``"float32"``, ``"int16"`` …). Writers and
        outlets use it, so a round trip keeps samples bit-identical.
    metadata : dict
        Free-form string metadata (e.g. outcome fields from a WFDB header).
    """

    name: str
    type: str
    data: np.ndarray
    timestamps: np.ndarray
    srate: float
    channel_labels: list[str] = field(default_factory=list)
    channel_units: list[str] = field(default_factory=list)
    channel_types: list[str] = field(default_factory=list)
    source_id: str = ""
    channel_format: str = "double64"
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim == 1:
            self.data = self.data[:, None]
        if self.data.ndim != 2:
            raise BiosigError(f"stream {self.name!r}: data must be 2-D, got {self.data.shape}")
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        if self.timestamps.shape[0] != self.data.shape[0]:
            raise BiosigError(
                f"stream {self.name!r}: {self.data.shape[0]} samples but "
                f"{self.timestamps.shape[0]} timestamps"
            )
        if self.channel_format not in NUMERIC_FORMATS:
            raise BiosigError(
                f"stream {self.name!r}: channel_format must be one of {NUMERIC_FORMATS}, "
                f"got {self.channel_format!r}"
            )
        n = self.n_channels
        if not self.channel_labels:
            self.channel_labels = [f"ch{i + 1}" for i in range(n)]
        if not self.channel_units:
            self.channel_units = [""] * n
        if not self.channel_types:
            self.channel_types = [self.type] * n
        for what in ("channel_labels", "channel_units", "channel_types"):
            values = getattr(self, what)
            if len(values) != n:
                raise BiosigError(
                    f"stream {self.name!r}: {len(values)} {what} for {n} channels"
                )
            setattr(self, what, [str(v) for v in values])
        self.srate = float(self.srate)

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Duration in seconds from the first to one period past the last sample."""
        if self.n_samples == 0:
            return 0.0
        period = 1.0 / self.srate if self.srate > 0 else 0.0
        return float(self.timestamps[-1] - self.timestamps[0] + period)

    def pick_channels(self, labels) -> "Stream":
        """Return a copy holding only the channels named in ``labels`` (in that order)."""
        missing = [lab for lab in labels if lab not in self.channel_labels]
        if missing:
            raise BiosigError(f"stream {self.name!r} has no channel(s) {missing}")
        idx = [self.channel_labels.index(lab) for lab in labels]
        return Stream(
            name=self.name,
            type=self.type,
            data=self.data[:, idx],
            timestamps=self.timestamps.copy(),
            srate=self.srate,
            channel_labels=[self.channel_labels[i] for i in idx],
            channel_units=[self.channel_units[i] for i in idx],
            channel_types=[self.channel_types[i] for i in idx],
            source_id=self.source_id,
            channel_format=self.channel_format,
            metadata=dict(self.metadata),
        )

    def __repr__(self) -> str:
        rate = f"{self.srate:g} Hz" if self.srate > 0 else "irregular"
        return (
            f"<Stream {self.name!r} | {self.type} | {self.n_channels} ch @ {rate} | "
            f"{self.n_samples} samples, {self.duration:.1f} s>"
        )


@dataclass
class Markers:
    """An irregular stream of string events (labels, cues, annotations).

    Parameters
    ----------
    name : str
        Stream name, e.g. ``"labels"``.
    timestamps : ndarray, shape (n_events,)
        Event times in seconds, on the same clock as the signal streams.
    values : list of str
        One string per event.
    type : str
        LSL content type, ``"Markers"`` by convention.
    source_id : str
        LSL ``source_id``.
    """

    name: str
    timestamps: np.ndarray
    values: list[str]
    type: str = "Markers"
    source_id: str = ""

    def __post_init__(self):
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        self.values = [str(v) for v in self.values]
        if len(self.values) != self.timestamps.shape[0]:
            raise BiosigError(
                f"markers {self.name!r}: {len(self.values)} values but "
                f"{self.timestamps.shape[0]} timestamps"
            )

    def __len__(self) -> int:
        return len(self.values)

    def label_at(self, times, default: str = "") -> np.ndarray:
        """Return the label in force at each time: the last marker at or before it.

        Parameters
        ----------
        times : array_like of float
            Query times in seconds.
        default : str
            Label for times before the first marker.
        """
        times = np.asarray(times, dtype=np.float64)
        order = np.argsort(self.timestamps, kind="stable")
        ts = self.timestamps[order]
        vals = np.asarray([self.values[i] for i in order] + [default], dtype=object)
        idx = np.searchsorted(ts, times, side="right") - 1
        idx[idx < 0] = len(ts)  # points at ``default``
        return vals[idx]

    def __repr__(self) -> str:
        return f"<Markers {self.name!r} | {len(self)} events>"


def markers_from_labels(labels, timestamps, name: str = "labels") -> Markers:
    """Turn a per-sample label channel into a marker at each change of label.

    Parameters
    ----------
    labels : array_like, shape (n_samples,)
        Label of each sample (numbers or strings).
    timestamps : array_like, shape (n_samples,)
        Sample times in seconds.
    name : str
        Name of the marker stream.
    """
    labels = np.asarray(labels).reshape(-1)
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if labels.shape[0] != timestamps.shape[0]:
        raise BiosigError(f"{labels.shape[0]} labels but {timestamps.shape[0]} timestamps")
    if labels.shape[0] == 0:
        return Markers(name=name, timestamps=np.zeros(0), values=[])
    text = np.asarray([_label_text(v) for v in labels], dtype=object)
    change = np.ones(text.shape[0], dtype=bool)
    change[1:] = text[1:] != text[:-1]
    return Markers(name=name, timestamps=timestamps[change], values=list(text[change]))


def _label_text(value) -> str:
    # 3.0 and 3 are the same label; keep integers free of a trailing ".0".
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Recording:
    """A recording: signal streams and marker streams by name, plus metadata.

    Parameters
    ----------
    streams : dict of str to Stream
        Numeric streams by name.
    markers : dict of str to Markers
        Marker streams by name.
    metadata : dict
        Recording-level metadata (source file, subject, outcome fields …).
    source : Path or None
        File the recording was read from.
    """

    streams: dict[str, Stream] = field(default_factory=dict)
    markers: dict[str, Markers] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    def add_stream(self, stream: Stream) -> "Recording":
        if stream.name in self.streams or stream.name in self.markers:
            raise BiosigError(f"recording already has a stream named {stream.name!r}")
        self.streams[stream.name] = stream
        return self

    def add_markers(self, markers: Markers) -> "Recording":
        if markers.name in self.streams or markers.name in self.markers:
            raise BiosigError(f"recording already has a stream named {markers.name!r}")
        self.markers[markers.name] = markers
        return self

    def signal(self, name: str | None = None, type: str | None = None) -> Stream:
        """Return one signal stream: by ``name``, else the first of ``type``, else the largest."""
        if name is not None:
            if name not in self.streams:
                raise BiosigError(
                    f"no signal stream named {name!r}; streams: {sorted(self.streams)}"
                )
            return self.streams[name]
        candidates = list(self.streams.values())
        if type is not None:
            candidates = [s for s in candidates if s.type.lower() == type.lower()]
        if not candidates:
            what = f" of type {type!r}" if type else ""
            raise BiosigError(f"recording has no signal stream{what}")
        # The stream with the most samples-per-second x channels is the "main" signal.
        return max(candidates, key=lambda s: (s.srate * s.n_channels, s.n_samples))

    def labels(self, name: str | None = None) -> Markers | None:
        """Return the label marker stream (``name``, else ``"labels"``, else the only one)."""
        if name is not None:
            if name not in self.markers:
                raise BiosigError(f"no marker stream named {name!r}")
            return self.markers[name]
        if "labels" in self.markers:
            return self.markers["labels"]
        if len(self.markers) == 1:
            return next(iter(self.markers.values()))
        return None

    def __repr__(self) -> str:
        src = f" from {self.source.name}" if self.source else ""
        parts = [repr(s) for s in self.streams.values()] + [repr(m) for m in self.markers.values()]
        return f"<Recording{src} | " + ", ".join(parts) + ">"
