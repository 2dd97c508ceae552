"""Translate between LSL stream descriptions (``pylsl.StreamInfo``) and biosig's stream metadata.

An LSL stream declares its name, content type, channel count, nominal rate, value format and
source id; channel labels, units and types live in its extended description as
``desc/channels/channel/{label,unit,type}`` (the XDF meta-data convention). A
:class:`StreamDescription` holds all of that in plain Python, so code above this module never
walks the XML tree:

* :func:`stream_info_for` builds the ``StreamInfo`` an outlet publishes a :class:`Stream` or
  :class:`Markers` with;
* :meth:`StreamDescription.from_info` reads one back (from a full info, as an inlet returns it,
  or from a resolver result, whose ``desc`` is empty);
* :meth:`StreamDescription.to_stream` turns received samples into a :class:`Stream`.

The pylsl exceptions biosig catches are re-exported here, because their home module moved
between pylsl releases.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np
import pylsl

from biosig._checks import BiosigError
from biosig.io.recording import NUMERIC_FORMATS, Markers, Stream

try:  # pylsl >= 1.17 split the package into modules
    from pylsl.util import LostError
    from pylsl.util import TimeoutError as LSLTimeoutError
except ImportError:  # pragma: no cover - pylsl 1.16
    from pylsl.pylsl import LostError
    from pylsl.pylsl import TimeoutError as LSLTimeoutError

__all__ = [
    "FORMAT_CODES",
    "LSLTimeoutError",
    "LostError",
    "StreamDescription",
    "default_source_id",
    "numpy_dtype",
    "stream_info_for",
]

#: LSL value format name -> pylsl ``cf_*`` code. ``"string"`` is the marker format.
FORMAT_CODES = {
    "float32": pylsl.cf_float32,
    "double64": pylsl.cf_double64,
    "string": pylsl.cf_string,
    "int32": pylsl.cf_int32,
    "int16": pylsl.cf_int16,
    "int8": pylsl.cf_int8,
    "int64": pylsl.cf_int64,
}
_FORMAT_NAMES = {code: name for name, code in FORMAT_CODES.items()}

_NUMPY_DTYPES = {
    "float32": np.float32,
    "double64": np.float64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "int64": np.int64,
}


def numpy_dtype(channel_format: str) -> type:
    """Return the numpy dtype that holds one value of the LSL ``channel_format`` exactly.

    Raises
    ------
    BiosigError
        If the format is not numeric (``"string"``) or unknown.
    """
    try:
        return _NUMPY_DTYPES[channel_format]
    except KeyError:
        raise BiosigError(
            f"channel format {channel_format!r} is not numeric; numeric formats: "
            f"{', '.join(NUMERIC_FORMATS)}"
        ) from None


def format_name(code: int) -> str:
    """Return the LSL value format name (``"float32"`` …) of a pylsl ``cf_*`` code."""
    return _FORMAT_NAMES.get(int(code), "undefined")


def default_source_id(name: str) -> str:
    """A source id for a stream published by biosig on this host: ``"<name>@<hostname>"``.

    A source id lets inlets recover the stream when its outlet is re-created; it must be
    unique on the network, which name plus host is unless one host publishes the same name
    twice.
    """
    return f"{name}@{socket.gethostname()}"


@dataclass(frozen=True)
class StreamDescription:
    """What an LSL stream declares about itself.

    Parameters
    ----------
    name, type : str
        Stream name and content type.
    n_channels : int
        Values per sample.
    srate : float
        Nominal sampling rate in Hz; 0 for irregular streams (markers, results).
    channel_format : str
        Value format: one of ``"float32"``, ``"double64"``, ``"int8"`` … ``"int64"``,
        ``"string"``.
    source_id : str
        Source id ('' if the outlet set none; such a stream cannot be recovered by id).
    hostname : str
        Host the outlet runs on.
    uid : str
        Unique id of this outlet instance; changes when the outlet is re-created.
    channel_labels, channel_units, channel_types : tuple of str
        One entry per channel; defaults (``ch1`` …, ``""``, the stream type) where the
        description has none (resolver results never have them).
    """

    name: str
    type: str
    n_channels: int
    srate: float
    channel_format: str
    source_id: str = ""
    hostname: str = ""
    uid: str = ""
    channel_labels: tuple[str, ...] = field(default=())
    channel_units: tuple[str, ...] = field(default=())
    channel_types: tuple[str, ...] = field(default=())

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> "StreamDescription":
        """Read a ``pylsl.StreamInfo``, including its channel meta-data where present."""
        n = int(info.channel_count())
        channels = _read_channel_fields(info, n)
        stream_type = info.type()
        return cls(
            name=info.name(),
            type=stream_type,
            n_channels=n,
            srate=float(info.nominal_srate()),
            channel_format=format_name(info.channel_format()),
            source_id=info.source_id(),
            hostname=info.hostname(),
            uid=info.uid(),
            channel_labels=_filled(channels["label"], [f"ch{i + 1}" for i in range(n)]),
            channel_units=_filled(channels["unit"], [""] * n),
            channel_types=_filled(channels["type"], [stream_type] * n),
        )

    @property
    def is_numeric(self) -> bool:
        return self.channel_format in _NUMPY_DTYPES

    def rate_text(self) -> str:
        """The rate as people read it: ``"200 Hz"`` or ``"irregular"``."""
        return f"{self.srate:g} Hz" if self.srate > 0 else "irregular"

    def to_stream(self, data, timestamps) -> Stream:
        """Return a :class:`Stream` of received samples that carries this description.

        Parameters
        ----------
        data : array_like, shape (n_samples, n_channels)
            Samples in the channels' units.
        timestamps : array_like, shape (n_samples,)
            Sample times in seconds (LSL clock).
        """
        if not self.is_numeric:
            raise BiosigError(f"stream {self.name!r} carries strings, not numeric samples")
        return Stream(
            name=self.name,
            type=self.type,
            data=data,
            timestamps=timestamps,
            srate=self.srate,
            channel_labels=list(self.channel_labels),
            channel_units=list(self.channel_units),
            channel_types=list(self.channel_types),
            source_id=self.source_id,
            channel_format=self.channel_format,
        )


def stream_info_for(stream: Stream | Markers, *, source_id: str | None = None) -> pylsl.StreamInfo:
    """Build the ``pylsl.StreamInfo`` that publishes ``stream`` unchanged.

    Parameters
    ----------
    stream : Stream or Markers
        A numeric stream keeps its name, type, nominal rate, value format and channel labels,
        units and types; a marker stream becomes a one-channel irregular ``"string"`` stream.
    source_id : str or None
        Source id of the outlet; None uses the stream's own ``source_id`` ('' is allowed and
        means "not recoverable by id").

    Returns
    -------
    pylsl.StreamInfo
    """
    source_id = stream.source_id if source_id is None else str(source_id)
    if isinstance(stream, Markers):
        info = pylsl.StreamInfo(
            stream.name, stream.type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id
        )
        _write_channel_fields(info, labels=[stream.name], units=[""], types=[stream.type])
        return info
    if not isinstance(stream, Stream):
        raise BiosigError(f"expected a Stream or Markers, got {type(stream).__name__}")
    info = pylsl.StreamInfo(
        stream.name,
        stream.type,
        stream.n_channels,
        stream.srate if stream.srate > 0 else pylsl.IRREGULAR_RATE,
        FORMAT_CODES[stream.channel_format],
        source_id,
    )
    _write_channel_fields(
        info, labels=stream.channel_labels, units=stream.channel_units, types=stream.channel_types
    )
    return info


def channel_info(
    name: str,
    type: str,
    channel_labels,
    *,
    srate: float = 0.0,
    channel_format: str = "float32",
    source_id: str = "",
    channel_units=None,
    channel_types=None,
) -> pylsl.StreamInfo:
    """Build a ``pylsl.StreamInfo`` from plain values (for outlets that hold no :class:`Stream`).

    Parameters
    ----------
    name, type : str
        Stream name and content type.
    channel_labels : list of str
        One label per channel; sets the channel count.
    srate : float
        Nominal rate in Hz; 0 for irregular.
    channel_format : str
        LSL value format name.
    source_id : str
        Source id of the outlet.
    channel_units, channel_types : list of str or None
        Per-channel units (default '') and types (default ``type``).
    """
    labels = [str(label) for label in channel_labels]
    n = len(labels)
    info = pylsl.StreamInfo(name, type, n, srate, FORMAT_CODES[channel_format], source_id)
    _write_channel_fields(
        info,
        labels=labels,
        units=list(channel_units) if channel_units is not None else [""] * n,
        types=list(channel_types) if channel_types is not None else [type] * n,
    )
    return info


# -- desc/channels XML -------------------------------------------------------------------------


def _write_channel_fields(info: pylsl.StreamInfo, *, labels, units, types) -> None:
    channels = info.desc().append_child("channels")
    for label, unit, kind in zip(labels, units, types):
        channel = channels.append_child("channel")
        channel.append_child_value("label", str(label))
        channel.append_child_value("unit", str(unit))
        channel.append_child_value("type", str(kind))


def _read_channel_fields(info: pylsl.StreamInfo, n_channels: int) -> dict[str, list[str]]:
    fields = {"label": [], "unit": [], "type": []}
    channel = info.desc().child("channels").child("channel")
    # A description with more <channel> entries than channels is malformed; ignore the extra.
    while not channel.empty() and len(fields["label"]) < n_channels:
        for key, values in fields.items():
            values.append(channel.child_value(key))
        channel = channel.next_sibling("channel")
    return fields


def _filled(values: list[str], defaults: list[str]) -> tuple[str, ...]:
    # A missing or empty entry falls back to the default, so a partial description still yields
    # one value per channel.
    out = list(defaults)
    for i, value in enumerate(values[: len(out)]):
        if value:
            out[i] = value
    return tuple(out)
