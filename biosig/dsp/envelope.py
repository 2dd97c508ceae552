"""Amplitude envelopes of (rectified) EMG: moving average, moving RMS, low-pass.

All are causal and stateful. The moving windows carry the last ``window - 1`` samples between
chunks and sum each window from a cumulative sum taken over that tail plus the new samples
only, never over the whole stream: a running sum kept for hours would drift by rounding, while
here each sum involves at most a few hundred terms, so a chunked stream matches the same signal
processed in one call to ~1e-12 relative, whatever its duration.
"""

from __future__ import annotations

import functools

import numpy as np

from biosig._checks import BiosigError, check_int, check_positive, check_samples
from biosig.dsp.filters import SOSFilter, design_lowpass

#: Envelope kinds understood by :func:`make_envelope`.
ENVELOPE_KINDS = ("none", "moving_average", "moving_rms", "lowpass")

# Prefix sums restart at least this often (in samples), which bounds their magnitude and so
# their rounding error (to ~1e-16 of the input power over ``anchor + window`` samples). A
# restart splits the chunk it falls in, which costs a live chunk ~3x its usual time: 4096
# samples makes that 1 chunk in 128 at 32-sample chunks.
_MIN_ANCHOR_SPACING = 4096


def rectify(x) -> np.ndarray:
    """Full-wave rectification, ``|x|``.

    Parameters
    ----------
    x : array_like, shape (n_samples, n_channels)

    Returns
    -------
    ndarray, same shape, float64
    """
    return np.abs(np.asarray(x, dtype=np.float64))


def window_samples(window_s: float, fs: float, name: str = "envelope window") -> int:
    """Convert a window length in seconds to samples with ``round()``; refuse < 1 sample."""
    fs = check_positive(fs, "fs")
    window_s = check_positive(window_s, name)
    n = int(round(window_s * fs))
    if n < 1:
        raise BiosigError(
            f"{name} = {window_s:g} s is less than one sample at {fs:g} Hz "
            f"(sample period {1 / fs:g} s)"
        )
    return n


class _MovingSum:
    """Causal mean of the last ``window`` samples of each channel, identical over any chunking.

    Keeps prefix sums ``P[i] = x[a] + ... + x[i]`` of the last ``window`` samples (a ring of
    ``window`` rows: ``P[i]`` overwrites ``P[i - window]`` once that is used) and returns
    ``P[i] - P[i - window]``. ``P`` is computed sequentially (:func:`_moving_means`) and
    re-anchored (``a`` moved, the kept values rebased) at absolute sample indices that are
    multiples of ``anchor_every``: every value is therefore the same sequence of floating-point
    operations whether the stream arrives in chunks or at once, and ``|P|`` stays below
    ``anchor_every + window`` samples' worth of input, so rounding cannot grow with the length
    of the stream.
    """

    def __init__(self, window: int, n_channels: int):
        self.window = window
        self.n_channels = n_channels
        self.anchor_every = max(2 * window, _MIN_ANCHOR_SPACING)
        self._ring = np.zeros((window, n_channels))
        self.reset()

    def reset(self) -> None:
        # Prefix sums of the last ``window`` samples; samples before the stream start are 0.
        self._ring[...] = 0.0
        self._next = 0  # ring row of the next prefix sum (it holds the one ``window`` back)
        self.n_seen = 0

    def process(self, x: np.ndarray, out: np.ndarray | None = None, *, rectify: bool = False,
                square: bool = False, root: bool = False) -> np.ndarray:
        """Moving means of ``x`` into ``out`` or a new array.

        With ``rectify`` of ``|x|``, with ``square`` of ``x * x``, and with ``root`` their
        square roots. A window not yet full (the stream's first ``window - 1`` samples) is
        the mean of the samples seen so far.
        """
        n = x.shape[0]
        means = np.empty((n, self.n_channels)) if out is None else out
        moving_means = _compiled_moving_means()
        done = 0
        while done < n:
            phase = self.n_seen % self.anchor_every
            if phase == 0 and self.n_seen > 0:  # rebase on the latest prefix sum
                self._ring -= self._ring[self._next - 1].copy()
            size = min(n - done, self.anchor_every - phase)
            moving_means(x[done : done + size], self._ring, self._next, self.n_seen, rectify,
                         square, root, means[done : done + size])
            self._next = (self._next + size) % self.window
            self.n_seen += size
            done += size
        return means


@functools.cache
def _compiled_moving_means():
    """:func:`_moving_means` compiled by numba (on first use: importing numba costs ~0.3 s and
    ~120 MB, which a process that only reads configurations or opens a model should not pay)."""
    import numba  # noqa: PLC0415

    return numba.njit(cache=True, nogil=True)(_moving_means)


def _moving_means(x, ring, next_row, n_seen, rectify, square, root, out):  # pragma: no cover
    """One pass of :meth:`_MovingSum.process` over samples that reach no anchor.

    Each sample adds its value ``v`` (``|x|``, ``x * x`` or ``x``) to the prefix sum,
    ``P[i] = P[i - 1] + v`` in stream order; the output is ``P[i] - P[i - window]`` times
    ``1 / window`` (divided by the samples seen while the first window fills), square-rooted
    with ``root``. ``ring`` holds the last ``window`` prefix sums, ``P[i - window]`` in row
    ``next_row`` for the first sample.
    """
    window = ring.shape[0]
    reciprocal = 1.0 / window
    # The running sums in a local array: read back from the ring, each sum would wait for the
    # previous sample's store.
    prefix = ring[(next_row - 1) % window].copy()
    row = next_row
    for i in range(x.shape[0]):
        full = n_seen + i + 1 >= window
        for c in range(x.shape[1]):
            value = x[i, c]
            if rectify:
                value = abs(value)
            if square:
                value = value * value
            prefix[c] += value
            total = prefix[c] - ring[row, c]
            ring[row, c] = prefix[c]
            # Prefix sums of non-negative values never decrease (rounding is monotonic,
            # also after a rebase): no negative mean reaches the square root.
            mean = total * reciprocal if full else total / (n_seen + i + 1)
            out[i, c] = np.sqrt(mean) if root else mean
        row += 1
        if row == window:
            row = 0


class _MovingWindowEnvelope:
    """Shared life cycle of the moving-window envelopes (a carried :class:`_MovingSum`).

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    window_s : float
        Window length in seconds (rounded to whole samples, at least 1).
    n_channels : int
        Number of channels.
    """

    def __init__(self, fs: float, window_s: float, n_channels: int):
        self.fs = check_positive(fs, "fs")
        self.window_s = check_positive(window_s, "envelope window")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.window = window_samples(window_s, fs)
        self._sum = _MovingSum(self.window, self.n_channels)

    def reset(self):
        """Forget the stream."""
        self._sum.reset()
        return self

    def process(self, x) -> np.ndarray:
        """Envelope of the next chunk, shape (n_samples, n_channels) -> same shape."""
        return self._process(check_samples(x, self.n_channels, "envelope input"))

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"<{name} | {self.window} samples ({self.window_s:g} s) @ {self.fs:g} Hz>"


class MovingAverage(_MovingWindowEnvelope):
    """Causal moving average over the last ``window_s`` seconds of each channel.

    During the first window, each output averages the samples seen so far (no zero padding),
    so a constant input gives that constant from the first sample on.
    """

    def _process(self, x: np.ndarray, out: np.ndarray | None = None, *,
                 rectify: bool = False) -> np.ndarray:
        """Envelope of ``x`` (of ``|x|`` with ``rectify``) into ``out`` or a new array."""
        return self._sum.process(x, out, rectify=rectify)


class MovingRMS(_MovingWindowEnvelope):
    """Causal moving root-mean-square over the last ``window_s`` seconds of each channel.

    During the first window, each output uses the samples seen so far (no zero padding), so
    the RMS of a constant equals its absolute value from the first sample on.
    """

    def _process(self, x: np.ndarray, out: np.ndarray | None = None, *,
                 rectify: bool = False) -> np.ndarray:
        """Envelope of ``x`` into ``out`` or a new array (``rectify`` changes nothing here)."""
        return self._sum.process(x, out, square=True, root=True)


class LowpassEnvelope:
    """Butterworth low-pass envelope (of an already rectified signal).

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    cutoff_hz : float
        -3 dB frequency in Hz, below Nyquist (typically 2-10 Hz for EMG).
    n_channels : int
        Number of channels.
    order : int
        Butterworth order.
    init : {"zeros", "steady"}
        Initial filter state, see :class:`biosig.dsp.SOSFilter`.
    """

    def __init__(
        self, fs: float, cutoff_hz: float, n_channels: int, order: int = 4, init: str = "zeros"
    ):
        self.fs = check_positive(fs, "fs")
        self.cutoff_hz = cutoff_hz
        self._filter = SOSFilter(design_lowpass(cutoff_hz, fs, order), n_channels, init=init)
        self.n_channels = self._filter.n_channels

    def reset(self) -> "LowpassEnvelope":
        """Forget the stream."""
        self._filter.reset()
        return self

    def process(self, x) -> np.ndarray:
        """Smooth the next chunk, shape (n_samples, n_channels) -> same shape."""
        return self._filter.process(x)

    def _process(self, x: np.ndarray, out: np.ndarray | None = None, *,
                 rectify: bool = False) -> np.ndarray:
        """Envelope of ``x`` (of ``|x|`` with ``rectify``) into ``out`` or a new array."""
        y = self._filter._process(np.abs(x) if rectify else x)
        if out is None:
            return y
        out[...] = y
        return out

    def __repr__(self) -> str:
        return f"<LowpassEnvelope | {self.cutoff_hz:g} Hz @ {self.fs:g} Hz>"


def make_envelope(
    kind: str,
    fs: float,
    n_channels: int,
    *,
    window_s: float = 0.1,
    cutoff_hz: float = 5.0,
    order: int = 4,
    init: str = "zeros",
):
    """Build the envelope stage named ``kind`` (None for ``"none"``).

    Parameters
    ----------
    kind : {"none", "moving_average", "moving_rms", "lowpass"}
    fs : float
        Sampling rate in Hz.
    n_channels : int
    window_s : float
        Window of the moving average / RMS, in seconds.
    cutoff_hz : float
        Cut-off of the low-pass envelope, in Hz.
    order : int
        Order of the low-pass envelope.
    init : {"zeros", "steady"}
        Initial state of the low-pass envelope.
    """
    if kind == "none":
        return None
    if kind == "moving_average":
        return MovingAverage(fs, window_s, n_channels)
    if kind == "moving_rms":
        return MovingRMS(fs, window_s, n_channels)
    if kind == "lowpass":
        return LowpassEnvelope(fs, cutoff_hz, n_channels, order=order, init=init)
    choices = ", ".join(repr(k) for k in ENVELOPE_KINDS)
    raise BiosigError(f"envelope must be one of {choices}, got {kind!r}")
