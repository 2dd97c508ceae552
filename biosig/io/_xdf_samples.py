"""A faster reader of numeric Samples chunks for :func:`pyxdf.load_xdf`, on files in memory.

pyxdf reads a Samples chunk one sample at a time: a one-byte read for the time-stamp flag, an
8-byte read and an unpack for the stamp, a ``readinto`` and a ``frombuffer`` for the values,
~2.5 µs per sample. A LabRecorder-style file of many short chunks (the bundled 8-minute Myo
recording: 95,000 samples in 3,400 chunks) spends ~0.18 s there, about five times the whole
analysis of its windows.

:func:`read_samples_chunk` takes pyxdf's place for numeric streams when the file is an
:class:`InMemoryXDF`: one pass over the flag bytes in the bytes object (the stamps on the way,
each deduced one as ``previous + 1 / nominal rate``, added in the same order as pyxdf), then
one gather of all the chunk's values. The result is pyxdf's to the bit (tested on the bundled
recordings and on written files with every time-stamp layout). Everything else (string
streams, files read from disk, a chunk it cannot parse) goes to pyxdf's own function, whose
error handling (scan forward to the next boundary chunk) then applies as before.

:func:`install` puts it in pyxdf's module once, where pyxdf's ``_read_chunk3`` has the
signature this relies on (``(f, s)``, ``s`` a pyxdf ``StreamData`` with ``fmt``, ``nchns``,
``dtype``, ``dtype_le``, ``samplebytes``, ``last_timestamp`` and ``tdiff``); otherwise pyxdf is
left alone.
"""

from __future__ import annotations

import io
import struct
import threading

import numpy as np

_DOUBLE = struct.Struct("<d")
_LENGTH = {1: struct.Struct("<B"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}

_install_lock = threading.Lock()
_original = None  # pyxdf's own _read_chunk3, once installed


class InMemoryXDF(io.BytesIO):
    """An XDF file's bytes as a binary file, keeping the ``bytes`` for the samples reader."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.data = data


def install() -> bool:
    """Put :func:`read_samples_chunk` in pyxdf (once); False where pyxdf's layout differs."""
    global _original
    with _install_lock:
        if _original is not None:
            return True
        try:
            from pyxdf import pyxdf as module  # noqa: PLC0415
        except ImportError:
            return False
        original = getattr(module, "_read_chunk3", None)
        if original is None or original.__code__.co_argcount != 2:
            return False
        _original = original
        module._read_chunk3 = read_samples_chunk
        return True


def read_samples_chunk(f, s):
    """pyxdf's ``_read_chunk3(f, s)``: ``(n_samples, stamps, values)`` of the Samples chunk at
    ``f``'s position, advancing ``f`` past it and ``s.last_timestamp`` to its last stamp."""
    if type(f) is not InMemoryXDF or getattr(s, "fmt", "string") == "string":
        return _original(f, s)
    start = f.tell()
    try:
        n, stamps, values, end = _parse(f.data, start, s)
    except (AttributeError, IndexError, KeyError, struct.error, ValueError):
        # A damaged or cut chunk (or a pyxdf without these stream fields): pyxdf's reader,
        # which raises at the same point, and load_xdf then scans forward to the next boundary.
        f.seek(start)
        return _original(f, s)
    f.seek(end)
    if n:
        s.last_timestamp = stamps[-1]
    return n, stamps, values


def _parse(data: bytes, pos: int, s):
    """The samples at ``data[pos:]``: ``(n, stamps, values, end position)``."""
    n, pos = _read_length(data, pos)
    record = s.samplebytes
    last, interval = s.last_timestamp, s.tdiff
    stamps = [0.0] * n
    pieces = [b""] * n
    unpack = _DOUBLE.unpack_from
    for k in range(n):
        if data[pos]:  # as pyxdf: any non-zero TimeStampBytes means 8 bytes of stamp
            last = unpack(data, pos + 1)[0]
            pos += 9
        else:
            last = last + interval
            pos += 1
        stamps[k] = last
        pieces[k] = data[pos : pos + record]
        pos += record
    if pos > len(data):
        raise ValueError("the chunk runs past the end of the file")
    values = np.frombuffer(b"".join(pieces), dtype=s.dtype_le).reshape(n, s.nchns)
    return n, np.array(stamps, dtype=np.float64), values.astype(s.dtype), pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    """XDF's variable-length integer at ``pos``: (value, position after it)."""
    size = data[pos]
    return _LENGTH[size].unpack_from(data, pos + 1)[0], pos + 1 + size
