"""Sliding analysis windows over a stream, identical whether it arrives in chunks or at once.

Windows start at the stream's first sample and then every ``hop`` samples; each holds
``length`` samples (both converted from seconds with ``round()``). A window is complete when
its last sample arrives, and is then returned once, stamped with that sample's timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biosig._checks import BiosigError, check_positive


@dataclass
class WindowBatch:
    """The complete windows produced by one push (or one offline call).

    Attributes
    ----------
    t_end : ndarray, shape (n_windows,)
        Timestamp of each window's last sample, in seconds.
    arrays : tuple of ndarray, each shape (n_windows, length, n_channels_i)
        The windows of each pushed array, in the order they were passed. They are read-only
        views (overlapping windows share memory; nothing is copied): copy before modifying.
    flags : ndarray of bool, shape (n_windows,)
        True where the window contains a sample flagged in ``mask`` (e.g. a non-finite input
        replaced by the preprocessor); all False when no mask was given.
    start_index : ndarray of int64, shape (n_windows,)
        Index of each window's first sample, counted from the stream's first sample.
    """

    t_end: np.ndarray
    arrays: tuple[np.ndarray, ...]
    flags: np.ndarray
    start_index: np.ndarray

    @property
    def n_windows(self) -> int:
        return int(self.t_end.shape[0])

    def __len__(self) -> int:
        return self.n_windows

    @classmethod
    def concatenate(cls, batches) -> "WindowBatch":
        """Join batches of the same stream in time order (e.g. all pushes of a session)."""
        batches = list(batches)
        if not batches:
            raise BiosigError("no window batches to concatenate")
        n_arrays = len(batches[0].arrays)
        return cls(
            t_end=np.concatenate([b.t_end for b in batches]),
            arrays=tuple(
                np.concatenate([b.arrays[i] for b in batches]) for i in range(n_arrays)
            ),
            flags=np.concatenate([b.flags for b in batches]),
            start_index=np.concatenate([b.start_index for b in batches]),
        )

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"<WindowBatch | {self.n_windows} windows | arrays {shapes}>"


def window_lengths(fs: float, length_s: float, hop_s: float) -> tuple[int, int]:
    """Window length and hop in samples (``round()``), refusing either below 1 sample.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    length_s, hop_s : float
        Window length and hop in seconds.

    Returns
    -------
    (length, hop) : tuple of int
    """
    fs = check_positive(fs, "fs")
    out = []
    for value, name in ((length_s, "window length"), (hop_s, "window hop")):
        seconds = check_positive(value, name)
        samples = int(round(seconds * fs))
        if samples < 1:
            raise BiosigError(
                f"{name} = {seconds:g} s is less than one sample at {fs:g} Hz "
                f"(sample period {1 / fs:g} s)"
            )
        out.append(samples)
    return out[0], out[1]


def _as_columns(array, n: int, name: str) -> np.ndarray:
    arr = np.asarray(array, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BiosigError(f"{name} must be 2-D (n_samples, n_channels), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise BiosigError(f"{name} has {arr.shape[0]} samples but timestamps have {n}")
    return arr


def _as_sample_mask(mask, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(n, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 2:
        mask = mask.any(axis=1) if mask.any() else np.zeros(mask.shape[0], dtype=bool)
    if mask.ndim != 1 or mask.shape[0] != n:
        raise BiosigError(f"mask must have {n} samples (1-D or 2-D), got shape {mask.shape}")
    return mask


def _check_push(timestamps, arrays, mask):
    t = np.asarray(timestamps, dtype=np.float64)
    if t.ndim != 1:
        raise BiosigError(f"timestamps must be 1-D, got shape {t.shape}")
    if not arrays:
        raise BiosigError("give at least one array to window")
    n = t.shape[0]
    columns = [_as_columns(a, n, f"array {i}") for i, a in enumerate(arrays)]
    return t, columns, _as_sample_mask(mask, n)


def _window_views(
    data: np.ndarray, first_start: int, n_windows: int, length: int, hop: int
) -> np.ndarray:
    """Read-only views ``data[s : s + length]`` for ``s = first_start + k * hop``.

    Shape (n_windows, length, ch). The caller guarantees the last window lies inside ``data``.
    This is the view ``sliding_window_view`` builds (strided over overlapping rows), made
    directly: its per-call overhead dominated a live push.
    """
    if n_windows == 0:
        return np.empty((0, length, data.shape[1]))
    row_stride, column_stride = data.strides
    shape = (n_windows, length, data.shape[1])
    strides = (hop * row_stride, row_stride, column_stride)
    if data.flags.c_contiguous:
        # Same view as as_strided builds, at a third of its cost per call (a live push).
        views = np.ndarray(
            shape, data.dtype, buffer=data, offset=first_start * row_stride, strides=strides
        )
        views.flags.writeable = False
        return views
    return np.lib.stride_tricks.as_strided(
        data[first_start:], shape=shape, strides=strides, writeable=False
    )


def _window_flags(mask: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """True for each window ``mask[s : s + length]`` (``s`` in ``starts``) with any True."""
    if starts.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    span = mask[starts[0] : starts[-1] + length]
    if not span.any():
        return np.zeros(starts.shape[0], dtype=bool)
    flagged_so_far = np.concatenate(([0], np.cumsum(span, dtype=np.int64)))
    relative = starts - starts[0]
    return (flagged_so_far[relative + length] - flagged_so_far[relative]) > 0


def windows_offline(
    timestamps, *arrays, fs: float, length_s: float, hop_s: float, mask=None
) -> WindowBatch:
    """All complete windows of a whole recording in one vectorised call.

    Gives the same result as feeding the same data to a fresh :class:`Windower` in any
    chunks and concatenating the batches. The windows are read-only views into the given
    arrays.

    Parameters
    ----------
    timestamps : array_like, shape (n_samples,)
        Sample times in seconds.
    *arrays : array_like, each shape (n_samples, n_channels_i)
        Signals to cut (e.g. the filtered signal and its envelope).
    fs : float
        Sampling rate in Hz (to convert the lengths to samples).
    length_s, hop_s : float
        Window length and hop in seconds.
    mask : array_like of bool, shape (n_samples,) or (n_samples, n_channels), optional
        Samples to flag (e.g. replaced non-finite values).

    Returns
    -------
    WindowBatch
    """
    length, hop = window_lengths(fs, length_s, hop_s)
    t, columns, sample_mask = _check_push(timestamps, arrays, mask)
    n = t.shape[0]
    n_windows = (n - length) // hop + 1 if n >= length else 0
    starts = np.arange(n_windows, dtype=np.int64) * hop
    return WindowBatch(
        t_end=t[starts + length - 1],
        arrays=tuple(_window_views(c, 0, n_windows, length, hop) for c in columns),
        flags=_window_flags(sample_mask, starts, length),
        start_index=starts,
    )


class _RowBuffer:
    """Rows of one array from absolute sample ``first`` on, append-only.

    A row, once written, is never overwritten: when the storage is full, the rows still
    needed move to a *new* storage. Windows handed out as views into an old storage therefore
    stay valid, and a push needs no copy of its windows. Appends are amortised O(1).
    """

    def __init__(self, width: int, dtype, capacity: int):
        self._capacity = capacity
        self._storage = np.empty((capacity, width), dtype=dtype)
        self._head = 0  # storage row of absolute sample ``first``
        self.size = 0

    def rows(self) -> np.ndarray:
        return self._storage[self._head : self._head + self.size]

    def append(self, rows: np.ndarray) -> None:
        n = rows.shape[0]
        if self._head + self.size + n > self._storage.shape[0]:
            capacity = max(self._capacity, 2 * (self.size + n))
            storage = np.empty((capacity, self._storage.shape[1]), dtype=self._storage.dtype)
            storage[: self.size] = self.rows()
            self._storage, self._head = storage, 0
        self._storage[self._head + self.size : self._head + self.size + n] = rows
        self.size += n

    def drop(self, n: int) -> None:
        n = min(n, self.size)
        self._head += n
        self.size -= n


class Windower:
    """Streaming sliding windows with a bounded buffer.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    length_s : float
        Window length in seconds (``round(length_s * fs)`` samples, at least 1).
    hop_s : float
        Hop between window starts in seconds (``round(hop_s * fs)`` samples, at least 1; may
        exceed the length, leaving gaps).

    Notes
    -----
    Only the samples of windows not yet complete are kept (fewer than ``length``), plus the
    current push, so memory does not grow with the stream. Windows are read-only views into
    an append-only store that is replaced (never overwritten) when full, so a batch stays
    valid after later pushes while the windower itself holds at most a few window lengths.
    """

    def __init__(self, fs: float, length_s: float, hop_s: float):
        self.fs = check_positive(fs, "fs")
        self.length_s = length_s
        self.hop_s = hop_s
        self.length, self.hop = window_lengths(fs, length_s, hop_s)
        self.reset()

    def reset(self) -> "Windower":
        """Forget the stream: the next sample is the first of the first window again."""
        self._n_seen = 0  # samples pushed so far
        self._next_start = 0  # absolute index of the first sample of the next window
        self._first = 0  # absolute index of the first buffered sample
        self._buffers: list[_RowBuffer] | None = None
        self._widths: tuple[int, ...] | None = None
        self._empty: WindowBatch | None = None
        return self

    def push(self, timestamps, *arrays, mask=None) -> WindowBatch:
        """Add samples; return the windows whose last sample arrived in this push.

        Parameters
        ----------
        timestamps : array_like, shape (n_samples,)
            Sample times in seconds (``n_samples`` may be 0).
        *arrays : array_like, each shape (n_samples, n_channels_i)
            Signals to cut; the same number and widths at every push.
        mask : array_like of bool, shape (n_samples,) or (n_samples, n_channels), optional
            Samples to flag; a window's flag is True if it contains any.

        Returns
        -------
        WindowBatch
        """
        t, columns, sample_mask = _check_push(timestamps, arrays, mask)
        self._check_widths(columns)
        n = t.shape[0]
        # Samples before the next window's start (a hop longer than the window) are not kept.
        skip = min(max(self._next_start - self._n_seen, 0), n)
        if self._buffers[0].size == 0:
            self._first = self._n_seen + skip
        parts = [t[skip:, None], *(c[skip:] for c in columns), sample_mask[skip:, None]]
        for buffer, part in zip(self._buffers, parts):
            buffer.append(part)
        self._n_seen += n
        return self._emit_complete(len(columns))

    def _check_widths(self, columns) -> None:
        widths = tuple(c.shape[1] for c in columns)
        if self._widths is None:
            self._widths = widths
            capacity = 8 * self.length + 256
            self._buffers = (
                [_RowBuffer(1, np.float64, capacity)]
                + [_RowBuffer(w, np.float64, capacity) for w in widths]
                + [_RowBuffer(1, bool, capacity)]
            )
        elif widths != self._widths:
            raise BiosigError(
                f"push arrays have channel counts {widths}, earlier pushes had {self._widths}"
            )

    def _emit_complete(self, n_arrays: int) -> WindowBatch:
        last_end = self._next_start + self.length - 1
        n_windows = 0
        if last_end <= self._n_seen - 1:
            n_windows = (self._n_seen - 1 - last_end) // self.hop + 1
        if n_windows == 0:
            return self._empty_batch(n_arrays)
        start = self._next_start - self._first  # relative to the buffers
        rows = [b.rows() for b in self._buffers]
        relative_starts = start + np.arange(n_windows, dtype=np.int64) * self.hop
        batch = WindowBatch(
            t_end=rows[0][relative_starts + self.length - 1, 0].copy(),
            arrays=tuple(
                _window_views(rows[1 + i], start, n_windows, self.length, self.hop)
                for i in range(n_arrays)
            ),
            flags=_window_flags(rows[-1][:, 0], relative_starts, self.length),
            start_index=relative_starts + self._first,
        )
        self._next_start += n_windows * self.hop
        # Everything before the next window's start is never needed again.
        to_drop = min(self._next_start, self._n_seen) - self._first
        if to_drop > 0:
            for buffer in self._buffers:
                buffer.drop(to_drop)
            self._first += to_drop
        return batch

    def _empty_batch(self, n_arrays: int) -> WindowBatch:
        # Most live pushes complete no window; one shared, read-only empty batch saves
        # building four arrays each time.
        if self._empty is None:
            parts = [np.empty(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)]
            parts += [np.empty((0, self.length, w)) for w in self._widths[:n_arrays]]
            for part in parts:
                part.setflags(write=False)
            self._empty = WindowBatch(
                t_end=parts[0], arrays=tuple(parts[3:]), flags=parts[1], start_index=parts[2]
            )
        return self._empty

    def __repr__(self) -> str:
        return (
            f"<Windower | {self.length} samples ({self.length_s:g} s), hop {self.hop} "
            f"({self.hop_s:g} s) @ {self.fs:g} Hz>"
        )
