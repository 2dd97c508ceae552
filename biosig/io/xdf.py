"""Read and write XDF files (the file format of LabRecorder and the Lab Streaming Layer).

Reading goes through :func:`pyxdf.load_xdf`, with the numeric Samples chunks of files that fit
in memory parsed by :mod:`biosig.io._xdf_samples` (pyxdf's result, ~4x faster for a file of
many short chunks). No library writes XDF, so :class:`XDFWriter` writes it from the XDF 1.0
specification (https://github.com/sccn/xdf/wiki/Specifications):

* the file starts with the 4 magic bytes ``XDF:``, then a sequence of chunks;
* a chunk is ``[NumLengthBytes (1 byte: 1, 4 or 8)] [Length (uint, little endian)] [Tag
  (uint16 LE)] [Content]``, where ``Length`` counts the tag and the content;
* tags: 1 FileHeader (XML), 2 StreamHeader (uint32 stream id + XML), 3 Samples (stream id +
  samples), 4 ClockOffset (stream id + collection time + offset, both float64), 5 Boundary (16
  fixed bytes that a reader can scan for after corruption), 6 StreamFooter (stream id + XML);
* a Samples chunk holds ``[NumSamples (varlen uint)]`` then per sample ``[TimeStampBytes (0 or
  8)] [TimeStamp (float64, if 8)] [values]``; numeric values are little-endian in the stream's
  channel format, string values are each ``[varlen length] [UTF-8 bytes]``. An omitted time
  stamp means "previous time stamp + 1 / nominal_srate".

The writer is made for recording: every Samples chunk is flushed and ``fsync``-ed, so a process
killed at any moment leaves a file that readers load up to the last complete chunk, and
:func:`read_xdf` drops an incomplete last chunk instead of failing or returning garbage.

biosig metadata (``Recording.metadata`` and ``Stream.metadata``) is stored as
``<biosig_metadata><item><key>…</key><value>…</value></item>…</biosig_metadata>``, in the
FileHeader and in each StreamHeader's ``<desc>``; pyxdf drops XML attributes, hence elements.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import io
import logging
import os
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyxdf

from biosig._checks import BiosigError, check_existing_file, check_positive, check_samples
from biosig.io import _xdf_samples
from biosig.io.recording import NUMERIC_FORMATS, Markers, Recording, Stream

logger = logging.getLogger(__name__)

__all__ = ["XDFWriter", "read_xdf", "write_xdf"]

MAGIC = b"XDF:"
GZIP_MAGIC = b"\x1f\x8b"

#: Files (their XDF content) up to this size are read into memory, where numeric samples are
#: parsed by :mod:`biosig.io._xdf_samples`; larger ones stream through pyxdf alone.
_IN_MEMORY_BYTES = 1 << 30

TAG_FILE_HEADER = 1
TAG_STREAM_HEADER = 2
TAG_SAMPLES = 3
TAG_CLOCK_OFFSET = 4
TAG_BOUNDARY = 5
TAG_STREAM_FOOTER = 6
_KNOWN_TAGS = frozenset(range(TAG_FILE_HEADER, TAG_STREAM_FOOTER + 1))

#: Content of every Boundary chunk (fixed by the specification).
BOUNDARY_UUID = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")

#: Little-endian numpy dtype of each XDF numeric channel format.
_DTYPES = {
    "float32": np.dtype("<f4"),
    "double64": np.dtype("<f8"),
    "int8": np.dtype("<i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
}
assert set(_DTYPES) == set(NUMERIC_FORMATS)

STRING_FORMAT = "string"
METADATA_ELEMENT = "biosig_metadata"

#: Markers are written this many to a Samples chunk at most (they are small and sparse).
_MARKERS_PER_CHUNK = 1024

# Characters XML 1.0 cannot carry at all, even escaped; a file holding them would not parse.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_xdf(
    path,
    *,
    synchronize_clocks: bool = True,
    dejitter_timestamps: bool = False,
    handle_clock_resets: bool = True,
) -> Recording:
    """Read an XDF file into a :class:`Recording`.

    Numeric streams become :class:`Stream` objects (float64 samples in the channels' units,
    time stamps in seconds, nominal rate in Hz, channel labels/units/types from
    ``<desc><channels>``); string streams become :class:`Markers`. A file whose last chunk is
    incomplete (a recorder that was killed, a copy that was cut short) is read up to its last
    complete chunk, with a warning.

    Parameters
    ----------
    path : str or Path
        The ``.xdf`` file; gzip-compressed ones (``.xdfz``, ``.xdf.gz``) are read too.
    synchronize_clocks : bool
        Apply the file's ClockOffset chunks to the time stamps (pyxdf's robust fit).
    dejitter_timestamps : bool
        Replace the time stamps of regular streams by a least-squares line (pyxdf). Off by
        default so that time stamps come back exactly as recorded.
    handle_clock_resets : bool
        Let pyxdf detect clock resets (a restarted host) while synchronizing.

    Returns
    -------
    Recording
        With ``source`` set to ``Path(path)`` and ``metadata`` from the FileHeader.

    Raises
    ------
    BiosigError
        If the file is missing, empty, not XDF, or unreadable; the message names the file.
    """
    path = check_existing_file(path, "XDF file")
    plan = _plan_read(path)
    options = dict(
        synchronize_clocks=synchronize_clocks,
        dejitter_timestamps=dejitter_timestamps,
        handle_clock_resets=handle_clock_resets,
    )
    try:
        xdf_streams, file_header = _load_with_pyxdf(path, plan, options)
    except Exception as exc:  # noqa: BLE001 - pyxdf raises anything on a damaged file
        raise BiosigError(f"{path}: not a readable XDF file ({_one_line(exc)})") from None
    try:
        return _recording_from_xdf(xdf_streams, file_header, path)
    except BiosigError as exc:
        raise BiosigError(f"{path}: {exc}") from None


@dataclass
class _ReadPlan:
    """How many bytes of a file's (decompressed) XDF content to hand to pyxdf."""

    n_bytes: int
    # Bytes to read instead if reading ``n_bytes`` fails (a file corrupt in the middle).
    fallback_n_bytes: int | None = None


def _plan_read(path: Path) -> _ReadPlan:
    """Check the magic bytes and the chunk framing of ``path``; decide what pyxdf reads.

    An incomplete last chunk is cut off: on it pyxdf either raises or, when the file ends inside
    the last sample's values, silently returns that sample with stale bytes.
    """
    if path.stat().st_size == 0:
        raise BiosigError(f"{path}: file is empty, not an XDF file")
    try:
        with _open_xdf_bytes(path) as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise BiosigError(f"{path}: not an XDF file (it does not start with 'XDF:')")
            scan = _scan_chunks(f)
    except (OSError, EOFError) as exc:  # e.g. a damaged gzip header
        raise BiosigError(f"{path}: cannot read ({_one_line(exc)})") from None
    if scan.n_chunks == 0:
        raise BiosigError(f"{path}: XDF file has no complete chunk ({scan.problem or 'empty'})")
    if scan.first_tag != TAG_FILE_HEADER:
        raise BiosigError(f"{path}: corrupt XDF file (first chunk is not a FileHeader)")
    if scan.problem is None:
        return _ReadPlan(scan.end)
    if scan.truncated:
        logger.warning(
            "%s: %s; reading the %d complete chunks before it", path, scan.problem, scan.n_chunks
        )
        return _ReadPlan(scan.end)
    # Corruption inside the file: pyxdf can resume at the next Boundary chunk, so it gets the
    # whole file first, and only the clean part if that fails.
    logger.warning("%s: %s; trying to recover the rest of the file", path, scan.problem)
    return _ReadPlan(scan.size, fallback_n_bytes=scan.end)


def _open_xdf_bytes(path: Path):
    """Open ``path`` for reading its XDF bytes; gzip files (``.xdfz``, ``.xdf.gz``) decompressed.

    Compression is recognised by content, not by name, so any suffix or letter case works.
    """
    with open(path, "rb") as probe:
        is_gzip = probe.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return gzip.open(path, "rb") if is_gzip else open(path, "rb", buffering=0)


@dataclass
class _ChunkScan:
    """Result of walking an XDF file's chunk framing (see :func:`_scan_chunks`)."""

    end: int  # byte offset just past the last complete, well-framed chunk
    n_chunks: int
    first_tag: int | None
    size: int  # bytes of XDF content (decompressed)
    problem: str | None = None  # why the walk stopped before the end of the content
    truncated: bool = False  # the problem is an incomplete last chunk, not corruption


def _scan_chunks(f) -> _ChunkScan:
    """Walk the chunk headers of an open XDF file positioned after the magic bytes.

    Works on plain and gzip files alike: it seeks forward only and needs no file size.
    """
    pos, n_chunks, first_tag = len(MAGIC), 0, None

    def stop(problem=None, truncated=False) -> _ChunkScan:
        size = _content_size(f) if problem else pos
        return _ChunkScan(pos, n_chunks, first_tag, size, problem, truncated)

    truncated_here = "file ends inside the chunk that starts at byte {} (truncated)"
    try:
        while True:
            f.seek(pos)
            head = f.read(1)
            if not head:
                return stop()
            n_length_bytes = head[0]
            if n_length_bytes not in (1, 4, 8):
                return stop(f"invalid chunk header at byte {pos}")
            raw_length, raw_tag = f.read(n_length_bytes), f.read(2)
            if len(raw_length) < n_length_bytes or len(raw_tag) < 2:
                return stop(truncated_here.format(pos), truncated=True)
            length, tag = int.from_bytes(raw_length, "little"), int.from_bytes(raw_tag, "little")
            if length < 2 or tag not in _KNOWN_TAGS:
                return stop(f"invalid chunk at byte {pos}")
            chunk_end = pos + 1 + n_length_bytes + length
            f.seek(chunk_end - 1)
            if not f.read(1):
                return stop(truncated_here.format(pos), truncated=True)
            first_tag = tag if first_tag is None else first_tag
            n_chunks += 1
            pos = chunk_end
    except EOFError:  # a gzip stream cut short; its size is unknown, only the good part counts
        return _ChunkScan(pos, n_chunks, first_tag, pos, truncated_here.format(pos), True)


def _content_size(f) -> int:
    """Bytes in an open file; a gzip file cannot seek from its end, so it is read through."""
    try:
        return f.seek(0, io.SEEK_END)
    except (OSError, ValueError):
        while f.read(1 << 20):
            pass
        return f.tell()


def _load_with_pyxdf(path: Path, plan: _ReadPlan, options: dict):
    """Run :func:`pyxdf.load_xdf` on the part of ``path`` that ``plan`` names."""
    with _one_line_pyxdf_logs():
        try:
            return _load_prefix(path, plan.n_bytes, options)
        except Exception as exc:  # noqa: BLE001 - any pyxdf failure: fall back to the clean part
            if plan.fallback_n_bytes is None:
                raise
            logger.warning(
                "%s: recovery failed (%s); reading only the first %d bytes",
                path, _one_line(exc), plan.fallback_n_bytes,
            )
            return _load_prefix(path, plan.fallback_n_bytes, options)


def _load_prefix(path: Path, n_bytes: int, options: dict):
    if n_bytes <= _IN_MEMORY_BYTES and _xdf_samples.install():
        # In memory, numeric Samples chunks are parsed several times faster
        # (biosig.io._xdf_samples).
        with _open_xdf_bytes(path) as raw:
            data = _read_exactly(raw, n_bytes)
        return pyxdf.load_xdf(_xdf_samples.InMemoryXDF(data), **options)
    reader = io.BufferedReader(_PrefixReader(_open_xdf_bytes(path), n_bytes))
    return pyxdf.load_xdf(reader, **options)  # load_xdf closes the reader


def _read_exactly(f, n: int) -> bytes:
    """The next ``n`` bytes of ``f`` (fewer only at its end): an unbuffered read may return
    less than asked."""
    parts, left = [], n
    while left > 0:
        part = f.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class _PrefixReader(io.RawIOBase):
    """A read-only binary file that ends after its first ``limit`` bytes."""

    def __init__(self, raw: io.RawIOBase, limit: int):
        super().__init__()
        self._raw = raw
        self._limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._limit - self._raw.tell()
        if remaining <= 0:
            return 0
        return self._raw.readinto(memoryview(buffer)[:remaining])

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset, whence = self._limit + offset, io.SEEK_SET
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _StripTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


@contextlib.contextmanager
def _one_line_pyxdf_logs():
    """Keep pyxdf's log records to one line while it reads.

    pyxdf reports recoverable corruption with ``logger.exception``, which would print a
    traceback on stderr (logging's last-resort handler) for a file biosig handles fine.
    """
    pyxdf_logger = logging.getLogger("pyxdf.pyxdf")
    strip = _StripTraceback()
    pyxdf_logger.addFilter(strip)
    try:
        yield
    finally:
        pyxdf_logger.removeFilter(strip)


def _recording_from_xdf(xdf_streams: list, file_header: dict | None, path: Path) -> Recording:
    header_info = (file_header or {}).get("info") or {}
    recording = Recording(metadata=_metadata_from_xml(header_info), source=path)
    for xdf_stream in xdf_streams:
        item = _stream_from_xdf(xdf_stream)
        taken = set(recording.streams) | set(recording.markers)
        if item.name in taken:
            # Two outlets may share a name (e.g. two amplifiers); keep both, renamed.
            new_name = f"{item.name}#{xdf_stream['info']['stream_id']}"
            logger.warning("%s: two streams named %r; calling one %r", path, item.name, new_name)
            item.name = new_name
        if isinstance(item, Markers):
            recording.add_markers(item)
        else:
            recording.add_stream(item)
    return recording


def _stream_from_xdf(xdf_stream: dict) -> Stream | Markers:
    """Turn one stream dict of :func:`pyxdf.load_xdf` into a Stream or Markers."""
    info = xdf_stream["info"]
    name = _text(info, "name")
    stream_type = _text(info, "type")
    source_id = _text(info, "source_id")
    channel_format = _text(info, "channel_format")
    timestamps = np.asarray(xdf_stream["time_stamps"], dtype=np.float64)
    if channel_format == STRING_FORMAT:
        return Markers(
            name=name,
            timestamps=timestamps,
            values=[_marker_value(sample) for sample in xdf_stream["time_series"]],
            type=stream_type,
            source_id=source_id,
        )
    n_channels = int(_text(info, "channel_count"))
    data = np.asarray(xdf_stream["time_series"]).reshape(-1, n_channels)
    desc = _first(info.get("desc"))
    labels, units, types = _channel_fields(desc, n_channels, stream_type)
    return Stream(
        name=name,
        type=stream_type,
        data=data.astype(np.float64),
        timestamps=timestamps,
        srate=float(_text(info, "nominal_srate") or 0.0),
        channel_labels=labels,
        channel_units=units,
        channel_types=types,
        source_id=source_id,
        channel_format=channel_format,
        metadata=_metadata_from_xml(desc),
    )


def _marker_value(sample) -> str:
    # Markers hold one string per event; a multi-channel string stream is joined with tabs.
    return "\t".join("" if v is None else str(v) for v in sample)


def _channel_fields(desc, n_channels: int, stream_type: str):
    """Return channel labels, units and types from ``<desc><channels>`` (defaults if absent)."""
    channels = _first(_first((desc or {}).get("channels") if isinstance(desc, dict) else None))
    entries = channels.get("channel", []) if isinstance(channels, dict) else []
    labels, units, types = [], [], []
    for i in range(n_channels):
        entry = entries[i] if i < len(entries) and isinstance(entries[i], dict) else {}
        labels.append(_text(entry, "label") if "label" in entry else f"ch{i + 1}")
        units.append(_text(entry, "unit"))
        types.append(_text(entry, "type") if "type" in entry else stream_type)
    return labels, units, types


def _metadata_from_xml(parent) -> dict[str, str]:
    """Read ``<biosig_metadata>`` items below an element as pyxdf's dict-of-lists gives it."""
    if not isinstance(parent, dict):
        return {}
    node = _first(parent.get(METADATA_ELEMENT))
    if not isinstance(node, dict):
        return {}
    items = node.get("item", [])
    return {_text(item, "key"): _text(item, "value") for item in items if isinstance(item, dict)}


def _first(values):
    """First element of one of pyxdf's lists (XML children), or None."""
    if isinstance(values, list):
        return values[0] if values else None
    return values


def _text(node: dict, key: str) -> str:
    """Text of child element ``key`` in a pyxdf XML dict; "" when absent or empty."""
    value = _first(node.get(key)) if isinstance(node, dict) else None
    return value if isinstance(value, str) else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, BiosigError) else text


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_xdf(recording: Recording, path, *, chunk_size: float = 1.0) -> Path:
    """Write a whole :class:`Recording` to an XDF file, atomically.

    The file is written to ``path + ".part"`` and renamed over ``path`` only once complete,
    so an interrupted conversion never leaves a file that looks whole. Samples are stored in
    each stream's ``channel_format``, so reading the file back gives identical samples.

    Parameters
    ----------
    recording : Recording
        Streams, markers and metadata to write.
    path : str or Path
        Output file; replaced if it exists.
    chunk_size : float
        Seconds of signal per Samples chunk (irregular streams and markers: per time window
        of this length).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    BiosigError
        If a stream's samples do not fit its ``channel_format`` losslessly (e.g. 0.5 in an
        ``int16`` stream), or metadata holds characters XML cannot carry.
    """
    chunk_size = check_positive(chunk_size, "chunk_size")
    path = Path(path)
    for stream in recording.streams.values():
        # Refuse lossy data before any file exists, rather than after writing half of it.
        _to_channel_format(stream.data, stream.channel_format, stream.name)
    part = path.with_name(path.name + ".part")
    try:
        # fsync per chunk buys nothing here: the rename below is what makes the file appear.
        with XDFWriter(part, metadata=recording.metadata, overwrite=True, fsync=False) as writer:
            _write_recording_chunks(writer, recording, chunk_size)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    logger.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def _write_recording_chunks(writer: "XDFWriter", recording: Recording, chunk_size: float):
    """Write all samples of ``recording``, chunks of all streams interleaved in time order."""
    items = {}  # stream id -> Stream or Markers
    jobs = []  # per stream: (first time stamp, stream id, start, stop) of each chunk
    for item in [*recording.streams.values(), *recording.markers.values()]:
        stream_id = writer.add_stream(item)
        items[stream_id] = item
        if isinstance(item, Markers):
            bounds = _chunk_bounds(item.timestamps, 0.0, chunk_size, _MARKERS_PER_CHUNK)
        else:
            bounds = _chunk_bounds(item.timestamps, item.srate, chunk_size)
        jobs.append(_chunk_jobs(stream_id, item.timestamps, bounds))
    # heapq.merge keeps each stream's chunks in their own order even if its time stamps are
    # not sorted, so every sample is written exactly once and in order.
    for _, stream_id, start, stop in heapq.merge(*jobs):
        item = items[stream_id]
        if isinstance(item, Markers):
            writer.write_markers(stream_id, item.timestamps[start:stop], item.values[start:stop])
        else:
            writer.write_chunk(stream_id, item.data[start:stop], item.timestamps[start:stop])


def _chunk_jobs(stream_id: int, timestamps: np.ndarray, bounds: np.ndarray):
    return [
        (float(timestamps[start]), stream_id, int(start), int(stop))
        for start, stop in zip(bounds[:-1], bounds[1:])
    ]


def _chunk_bounds(
    timestamps: np.ndarray, srate: float, chunk_size: float, max_per_chunk: int | None = None
) -> np.ndarray:
    """Return sample indices ``[0, …, n]`` that split a stream into Samples chunks.

    Regular streams get ``round(chunk_size * srate)`` samples per chunk; irregular ones a new
    chunk whenever a sample falls in a later ``chunk_size``-second window than the previous one.
    """
    n = timestamps.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    if srate > 0:
        starts = np.arange(0, n, max(1, int(round(chunk_size * srate))))
    else:
        window = np.floor((timestamps - timestamps[0]) / chunk_size)
        starts = np.concatenate([[0], np.flatnonzero(window[1:] != window[:-1]) + 1])
        if max_per_chunk is not None:
            starts = np.union1d(starts, np.arange(0, n, max_per_chunk))
    return np.append(starts, n).astype(np.int64)


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class _StreamState:
    """What the writer remembers about one stream between chunks."""

    stream_id: int
    name: str
    channel_format: str
    n_channels: int
    srate: float
    sample_count: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)

    @property
    def is_markers(self) -> bool:
        return self.channel_format == STRING_FORMAT


class XDFWriter:
    """Write an XDF file chunk by chunk, crash-safe, e.g. while recording.

    Every chunk is written whole, then flushed and ``fsync``-ed, so a process killed at any
    moment leaves a file that :func:`read_xdf` and :func:`pyxdf.load_xdf` read up to the last
    complete chunk. Not thread-safe: call it from one thread.

    Parameters
    ----------
    path : str or Path
        The file to create. Nothing is opened before :meth:`open` (or ``with``).
    metadata : dict of str to str, optional
        Recording-level metadata, stored in the FileHeader (``Recording.metadata`` on reading).
    overwrite : bool
        Replace an existing file. By default an existing file is an error, so a new recording
        can never wipe an old one.
    boundary_interval : float
        Seconds of stream time between Boundary chunks (resynchronisation points for readers
        after corruption).
    fsync : bool
        ``fsync`` after every chunk. Turn off only when durability comes from elsewhere (as in
        :func:`write_xdf`, which renames a finished file into place).

    Examples
    --------
    >>> with XDFWriter("rec.xdf") as writer:                      # doctest: +SKIP
    ...     emg = writer.add_stream(template_stream)
    ...     writer.write_chunk(emg, samples, timestamps)
    """

    def __init__(
        self,
        path,
        *,
        metadata: dict | None = None,
        overwrite: bool = False,
        boundary_interval: float = 10.0,
        fsync: bool = True,
    ):
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        self.overwrite = bool(overwrite)
        self.boundary_interval = check_positive(boundary_interval, "boundary_interval")
        self.fsync = bool(fsync)
        #: Stream id of each added stream, by stream name.
        self.stream_ids: dict[str, int] = {}
        self._streams: dict[int, _StreamState] = {}
        self._file = None
        self._closed = False
        self._next_boundary_time: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> "XDFWriter":
        """Create the file and write the magic bytes and the FileHeader; return ``self``."""
        if self._file is not None or self._closed:
            raise BiosigError(f"XDF writer for {self.path} was already opened")
        header = _file_header_xml(self.metadata)  # validate before creating anything
        mode = "wb" if self.overwrite else "xb"  # "x": never truncate an existing recording
        try:
            self._file = open(self.path, mode)
        except FileExistsError:
            raise BiosigError(
                f"{self.path} already exists; choose another name or pass overwrite=True"
            ) from None
        except OSError as exc:
            raise BiosigError(f"cannot create {self.path}: {_one_line(exc)}") from None
        self._write(MAGIC + _chunk(TAG_FILE_HEADER, header))
        logger.debug("opened %s for writing", self.path)
        return self

    def __enter__(self) -> "XDFWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        # Finish the file even after an error: what was written stays readable and whole.
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Write the ClockOffset and StreamFooter chunks and close the file (idempotent).

        A stream that got no :meth:`write_clock_offset` gets one zero offset, so readers that
        synchronize clocks leave its time stamps exactly as written.
        """
        if self._file is None or self._closed:
            self._closed = True
            return
        try:
            trailer = b""
            for state in self._streams.values():
                if not state.clock_offsets:
                    state.clock_offsets.append((state.last_timestamp or 0.0, 0.0))
                    trailer += _clock_offset_chunk(state.stream_id, *state.clock_offsets[-1])
                trailer += _chunk(TAG_STREAM_FOOTER, _footer_xml(state), state.stream_id)
            self._write(trailer, durable=True)
        finally:
            self._file.close()
            self._closed = True
        logger.debug("closed %s", self.path)

    # -- streams and samples ---------------------------------------------------------------

    def add_stream(self, stream: Stream | Markers) -> int:
        """Write the StreamHeader of a stream; return its stream id.

        Only the header is written (name, type, channel count/format, nominal rate, source id,
        channel labels/units/types, ``Stream.metadata``); the stream's samples, if any, are not.
        Write samples with :meth:`write_chunk` / :meth:`write_markers`.

        Parameters
        ----------
        stream : Stream or Markers
            A template of the stream; a Stream with zero samples is fine.

        Returns
        -------
        int
            The stream id (1, 2, …) to pass to :meth:`write_chunk` / :meth:`write_markers`.
        """
        self._check_open()
        if not isinstance(stream, (Stream, Markers)):
            raise BiosigError(f"add_stream needs a Stream or Markers, got {type(stream).__name__}")
        if stream.name in self.stream_ids:
            raise BiosigError(f"{self.path}: a stream named {stream.name!r} was already added")
        stream_id = len(self._streams) + 1
        if isinstance(stream, Markers):
            state = _StreamState(stream_id, stream.name, STRING_FORMAT, 1, 0.0)
        else:
            state = _StreamState(
                stream_id, stream.name, stream.channel_format, stream.n_channels, stream.srate
            )
        self._write(_chunk(TAG_STREAM_HEADER, _stream_header_xml(stream), stream_id), durable=True)
        self._streams[stream_id] = state
        self.stream_ids[stream.name] = stream_id
        return stream_id

    def write_chunk(self, stream_id: int, data, timestamps) -> None:
        """Append samples of a numeric stream as one Samples chunk, flushed and fsync-ed.

        Parameters
        ----------
        stream_id : int
            From :meth:`add_stream`.
        data : array_like, shape (n_samples, n_channels)
            Samples in the channels' units; must fit the stream's ``channel_format`` exactly.
        timestamps : array_like, shape (n_samples,)
            Sample times in seconds.
        """
        state = self._state(stream_id, markers=False)
        data = check_samples(data, state.n_channels, name=f"stream {state.name!r} data")
        timestamps = _check_timestamps(timestamps, data.shape[0], state.name)
        if data.shape[0] == 0:
            return
        values = _to_channel_format(data, state.channel_format, state.name, state.sample_count)
        payload = _encode_numeric_samples(values, timestamps, state.srate)
        self._write_samples(state, payload, timestamps)

    def write_markers(self, stream_id: int, timestamps, values) -> None:
        """Append events of a marker stream as one Samples chunk, flushed and fsync-ed.

        Parameters
        ----------
        stream_id : int
            From :meth:`add_stream` with a :class:`Markers`.
        timestamps : array_like, shape (n_events,)
            Event times in seconds.
        values : sequence of str
            One string per event (any Unicode; stored as UTF-8).
        """
        state = self._state(stream_id, markers=True)
        values = [str(v) for v in values]
        timestamps = _check_timestamps(timestamps, len(values), state.name)
        if not values:
            return
        payload = _encode_string_samples(values, timestamps, state.name)
        self._write_samples(state, payload, timestamps)

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """Record a clock offset measurement (LSL ``time_correction``) for a stream.

        Parameters
        ----------
        stream_id : int
            From :meth:`add_stream`.
        collection_time : float
            When the offset was measured, in seconds on the stream's clock.
        offset : float
            Seconds to add to the stream's time stamps to map them to the recorder's clock.
        """
        state = self._state(stream_id)
        state.clock_offsets.append((float(collection_time), float(offset)))
        self._write(_clock_offset_chunk(stream_id, float(collection_time), float(offset)))

    # -- internals -------------------------------------------------------------------------

    def _write_samples(self, state: _StreamState, payload: bytes, timestamps: np.ndarray):
        data = _chunk(TAG_SAMPLES, payload, state.stream_id)
        last = float(timestamps[-1])
        if self._next_boundary_time is None:
            self._next_boundary_time = float(timestamps[0]) + self.boundary_interval
        if last >= self._next_boundary_time:
            data += _chunk(TAG_BOUNDARY, BOUNDARY_UUID)
            self._next_boundary_time = last + self.boundary_interval
        self._write(data)
        if state.first_timestamp is None:
            state.first_timestamp = float(timestamps[0])
        state.last_timestamp = last
        state.sample_count += timestamps.shape[0]

    def _write(self, data: bytes, durable: bool | None = None) -> None:
        # One write() per chunk, then flush+fsync: a crash leaves whole chunks plus at most one
        # partial chunk at the end, which read_xdf cuts off.
        self._file.write(data)
        self._file.flush()
        if self.fsync if durable is None else durable:
            os.fsync(self._file.fileno())

    def _check_open(self) -> None:
        if self._closed:
            raise BiosigError(f"XDF writer for {self.path} is closed")
        if self._file is None:
            raise BiosigError(f"XDF writer for {self.path} is not open; call open() or use 'with'")

    def _state(self, stream_id: int, markers: bool | None = None) -> _StreamState:
        self._check_open()
        state = self._streams.get(stream_id)
        if state is None:
            raise BiosigError(f"{self.path}: no stream with id {stream_id!r}")
        if markers is True and not state.is_markers:
            raise BiosigError(f"stream {state.name!r} is numeric; use write_chunk")
        if markers is False and state.is_markers:
            raise BiosigError(f"stream {state.name!r} is a marker stream; use write_markers")
        return state

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("open" if self._file else "not opened")
        return f"<XDFWriter {str(self.path)!r} | {status} | {len(self._streams)} streams>"


# -- byte layout -------------------------------------------------------------------------------


def _varlen(value: int) -> bytes:
    """Encode a length as XDF's variable-length unsigned integer (1, 4 or 8 bytes + prefix)."""
    if value < 1 << 8:
        return b"\x01" + value.to_bytes(1, "little")
    if value < 1 << 32:
        return b"\x04" + value.to_bytes(4, "little")
    return b"\x08" + value.to_bytes(8, "little")


def _chunk(tag: int, content: bytes, stream_id: int | None = None) -> bytes:
    """Frame ``content`` as a chunk: length, tag, [stream id], content."""
    if stream_id is not None:
        content = struct.pack("<I", stream_id) + content
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _clock_offset_chunk(stream_id: int, collection_time: float, offset: float) -> bytes:
    return _chunk(TAG_CLOCK_OFFSET, struct.pack("<dd", collection_time, offset), stream_id)


def _check_timestamps(timestamps, n_samples: int, name: str) -> np.ndarray:
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if timestamps.shape[0] != n_samples:
        raise BiosigError(
            f"stream {name!r}: {n_samples} samples but {timestamps.shape[0]} timestamps"
        )
    if not np.all(np.isfinite(timestamps)):
        raise BiosigError(f"stream {name!r}: timestamps must be finite numbers (seconds)")
    return timestamps


def _to_channel_format(
    data: np.ndarray, channel_format: str, name: str, first_sample: int = 0
) -> np.ndarray:
    """Convert float64 samples to the stream's format, refusing any change of value.

    ``first_sample`` is the index of ``data[0]`` in the whole stream, for the error message.
    """
    dtype = _DTYPES[channel_format]
    if dtype.kind == "f":
        with np.errstate(over="ignore"):  # overflow to inf is caught as a lossy value below
            values = data.astype(dtype)
        back = values.astype(np.float64)
        lossy = ~((back == data) | (np.isnan(back) & np.isnan(data)))
    else:
        bound = -float(np.iinfo(dtype).min)  # 2**(bits-1), exact in float64
        with np.errstate(invalid="ignore"):
            lossy = ~((data >= -bound) & (data < bound) & (data == np.trunc(data)))
        values = np.where(lossy, 0.0, data).astype(dtype)
    if lossy.any():
        sample, channel = np.argwhere(lossy)[0]
        raise BiosigError(
            f"stream {name!r}: value {float(data[sample, channel])!r} "
            f"(sample {first_sample + sample}, channel "
            f"{channel}) cannot be stored as {channel_format} without loss; "
            f"set Stream.channel_format to 'double64' or fix the data"
        )
    return values


def _encode_numeric_samples(values: np.ndarray, timestamps: np.ndarray, srate: float) -> bytes:
    """Encode a Samples chunk body for a numeric stream (vectorised).

    A sample's time stamp is left out when it equals the previous one + 1 / srate exactly as a
    reader computes it (pyxdf: ``last + 1.0 / float(nominal_srate)``), so reading gives back the
    same float64 bit for bit. The first sample of a chunk always carries its time stamp, so a
    reader that skips a damaged chunk does not mis-time the next one.
    """
    n, bytes_per_sample = values.shape[0], values.shape[1] * values.dtype.itemsize
    has_stamp = np.ones(n, dtype=bool)
    if srate > 0 and n > 1:
        interval = 1.0 / float(srate)
        has_stamp[1:] = timestamps[1:] != timestamps[:-1] + interval
    sizes = 1 + 8 * has_stamp + bytes_per_sample
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    out[starts] = np.where(has_stamp, 8, 0)
    stamp_bytes = timestamps[has_stamp].astype("<f8").view(np.uint8).reshape(-1, 8)
    out[(starts[has_stamp] + 1)[:, None] + np.arange(8)] = stamp_bytes
    value_bytes = np.ascontiguousarray(values).view(np.uint8).reshape(n, bytes_per_sample)
    value_starts = starts + 1 + 8 * has_stamp
    out[value_starts[:, None] + np.arange(bytes_per_sample)] = value_bytes
    return _varlen(n) + out.tobytes()


def _encode_string_samples(values: list[str], timestamps: np.ndarray, name: str) -> bytes:
    """Encode a Samples chunk body for a one-channel string stream (every time stamp kept)."""
    parts = [_varlen(len(values))]
    for value, stamp in zip(values, timestamps):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise BiosigError(f"markers {name!r}: {value!r} is not valid Unicode text") from None
        parts.append(b"\x08" + struct.pack("<d", stamp) + _varlen(len(raw)) + raw)
    return b"".join(parts)


# -- XML ---------------------------------------------------------------------------------------


def _xml_text(value, what: str) -> str:
    """Escape text for an XML element, refusing characters XML cannot carry."""
    text = str(value)
    if _XML_ILLEGAL.search(text):
        raise BiosigError(f"{what} {text!r} holds control characters an XDF file cannot store")
    # "\r" is escaped because XML parsers turn a literal one into "\n".
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _element(tag: str, value, what: str | None = None) -> str:
    return f"<{tag}>{_xml_text(value, what or tag)}</{tag}>"


def _metadata_xml(metadata: dict) -> str:
    items = "".join(
        "<item>"
        + _element("key", key, "metadata key")
        + _element("value", value, f"metadata value of {key!r}")
        + "</item>"
        for key, value in metadata.items()
    )
    return f"<{METADATA_ELEMENT}>{items}</{METADATA_ELEMENT}>"


def _file_header_xml(metadata: dict) -> bytes:
    now = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
    return (
        '<?xml version="1.0"?><info><version>1.0</version>'
        f"{_element('datetime', now)}{_element('writer', 'biosig')}"
        f"{_metadata_xml(metadata)}</info>"
    ).encode("utf-8")


def _stream_header_xml(stream: Stream | Markers) -> bytes:
    if isinstance(stream, Markers):
        n_channels, srate, channel_format = 1, 0.0, STRING_FORMAT
        desc = ""
    else:
        n_channels, srate, channel_format = stream.n_channels, stream.srate, stream.channel_format
        channels = "".join(
            "<channel>"
            + _element("label", label, "channel label")
            + _element("unit", unit, "channel unit")
            + _element("type", kind, "channel type")
            + "</channel>"
            for label, unit, kind in zip(
                stream.channel_labels, stream.channel_units, stream.channel_types
            )
        )
        desc = f"<channels>{channels}</channels>{_metadata_xml(stream.metadata)}"
    return (
        '<?xml version="1.0"?><info>'
        + _element("name", stream.name, "stream name")
        + _element("type", stream.type, "stream type")
        + _element("channel_count", n_channels)
        + _element("channel_format", channel_format)
        + _element("source_id", stream.source_id, "source_id")
        # repr: the shortest text that reads back as the same float64 (readers derive omitted
        # time stamps from it).
        + _element("nominal_srate", repr(float(srate)))
        + _element("version", "1.1")
        # LSL's clock (liblsl local_clock) is the monotonic clock on Linux.
        + _element("created_at", repr(time.monotonic()))
        + _element("uid", str(uuid.uuid4()))
        + f"<desc>{desc}</desc></info>"
    ).encode("utf-8")


def _footer_xml(state: _StreamState) -> bytes:
    first = state.first_timestamp if state.first_timestamp is not None else 0.0
    last = state.last_timestamp if state.last_timestamp is not None else 0.0
    span = last - first
    measured_srate = (state.sample_count - 1) / span if state.sample_count > 1 and span > 0 else 0
    offsets = "".join(
        f"<offset><time>{t!r}</time><value>{v!r}</value></offset>"
        for t, v in state.clock_offsets
    )
    return (
        '<?xml version="1.0"?><info>'
        f"<first_timestamp>{first!r}</first_timestamp>"
        f"<last_timestamp>{last!r}</last_timestamp>"
        f"<sample_count>{state.sample_count}</sample_count>"
        f"<measured_srate>{float(measured_srate)!r}</measured_srate>"
        f"<clock_offsets>{offsets}</clock_offsets></info>"
    ).encode("utf-8")
