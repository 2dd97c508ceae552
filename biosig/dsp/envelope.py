"""Amplitude envelopes of (rectified) EMG: moving average, moving RMS, low-pass.

All are causal and stateful. The moving windows carry the last ``window - 1`` samples between
chunks and sum each window from a cumulative sum taken over that tail plus the new samples
only, never over the whole stream: a running sum kept for hours would drift by rounding, while
here each sum involves at most a few hundred terms, so a chunked stream matches the same signal
processed in one call to ~1e-12 relative, whatever its duration.
"""

from __future__ import annotations

import numpy as np

from biosig._checks import BiosigError, check_int, check_positive, check_samples
from biosig.dsp.filters import SOSFilter, design_lowpass

#: Envelope kinds understood by :func:`make_envelope`.
ENVELOPE_KINDS = ("none", "moving_average", "moving_rms", "lowpass")

# Prefix sums restart at least this often (in samples), which bounds their magnitude and so
# their rounding error; rarer restarts would save nothing measurable.
_MIN_ANCHOR_SPACING = 64


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
    """Causal sum of the last ``window`` samples of each channel, identical over any chunking.

    Keeps prefix sums ``P[i] = x[a] + ... + x[i]`` of the last ``window`` samples and returns
    ``P[i] - P[i - window]``. ``P`` is computed sequentially (``np.cumsum``) and re-anchored
    (``a`` moved, the kept values rebased) at absolute sample indices that are multiples of
    ``anchor_every``: every value is therefore the same sequence of floating-point operations
    whether the stream arrives in chunks or at once, and ``|P|`` stays below
    ``anchor_every + window`` samples' worth of input, so rounding cannot grow with the length
    of the stream.
    """

    def __init__(self, window: int, n_channels: int):
        self.window = window
        self.n_channels = n_channels
        self.anchor_every = max(2 * window, _MIN_ANCHOR_SPACING)
        self.reset()

    def reset(self) -> None:
        # Prefix sums of the last ``window`` samples; samples before the stream start are 0.
        self._prefix = _RowStore(self.window, self.n_channels)
        self.n_seen = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        phase = self.n_seen % self.anchor_every
        if 0 < phase and phase + n <= self.anchor_every:  # the common live case: one segment
            return self._segment(x)
        sums = np.empty((n, self.n_channels))
        done = 0
        while done < n:
            phase = self.n_seen % self.anchor_every
            if phase == 0 and self.n_seen > 0:
                self._prefix.rebase()
            size = min(n - done, self.anchor_every - phase)
            sums[done : done + size] = self._segment(x[done : done + size])
            done += size
        return sums

    def _segment(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        w = self.window
        block = self._prefix.extend(x)  # rows: P[s - w], ..., P[s - 1], then x[s], ...
        np.cumsum(block[w - 1 :], axis=0, out=block[w - 1 :])
        self.n_seen += n
        return block[w:] - block[:n]

    def counts(self, n: int) -> np.ndarray | float:
        """Number of real samples in each of the last ``n`` windows returned.

        A float when all are full (the common case), else shape (n, 1).
        """
        first = self.n_seen - n + 1
        if first >= self.window:
            return float(self.window)
        return np.minimum(np.arange(first, first + n), self.window)[:, None].astype(np.float64)


class _RowStore:
    """The last ``keep`` rows of prefix sums, with room to append without reallocating."""

    def __init__(self, keep: int, n_channels: int):
        self._keep = keep
        self._rows = np.zeros((4 * self._keep + 256, n_channels))
        self._end = self._keep  # rows [_end - _keep, _end) are the kept prefix sums

    def extend(self, x: np.ndarray) -> np.ndarray:
        """Append ``x`` after the kept rows; return a view of kept rows + ``x``."""
        n = x.shape[0]
        if self._end + n > self._rows.shape[0]:
            kept = self._rows[self._end - self._keep : self._end].copy()
            if self._keep + n > self._rows.shape[0]:
                self._rows = np.empty((2 * (self._keep + n), self._rows.shape[1]))
            self._rows[: self._keep] = kept
            self._end = self._keep
        start = self._end - self._keep
        self._rows[self._end : self._end + n] = x
        self._end += n
        return self._rows[start : self._end]

    def rebase(self) -> None:
        kept = self._rows[self._end - self._keep : self._end]
        kept -= kept[-1].copy()


class MovingAverage:
    """Causal moving average over the last ``window_s`` seconds of each channel.

    During the first window, each output averages the samples seen so far (no zero padding),
    so a constant input gives that constant from the first sample on.

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

    def reset(self) -> "MovingAverage":
        """Forget the stream."""
        self._sum.reset()
        return self

    def process(self, x) -> np.ndarray:
        """Average the next chunk, shape (n_samples, n_channels) -> same shape."""
        return self._process(check_samples(x, self.n_channels, "envelope input"))

    def _process(self, x: np.ndarray) -> np.ndarray:
        sums = self._sum.process(x)
        sums /= self._sum.counts(x.shape[0])
        return sums

    def __repr__(self) -> str:
        return f"<MovingAverage | {self.window} samples ({self.window_s:g} s) @ {self.fs:g} Hz>"


class MovingRMS:
    """Causal moving root-mean-square over the last ``window_s`` seconds of each channel.

    During the first window, each output uses the samples seen so far (no zero padding), so
    the RMS of a constant equals its absolute value from the first sample on.

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

    def reset(self) -> "MovingRMS":
        """Forget the stream."""
        self._sum.reset()
        return self

    def process(self, x) -> np.ndarray:
        """RMS of the next chunk, shape (n_samples, n_channels) -> same shape."""
        return self._process(check_samples(x, self.n_channels, "envelope input"))

    def _process(self, x: np.ndarray) -> np.ndarray:
        mean_square = self._sum.process(x * x)
        mean_square /= self._sum.counts(x.shape[0])
        # No clipping needed: prefix sums of squares never decrease (float rounding is
        # monotonic, also after a rebase), so every window sum is >= 0, and exactly 0 for a
        # window of zeros.
        return np.sqrt(mean_square, out=mean_square)

    def __repr__(self) -> str:
        return f"<MovingRMS | {self.window} samples ({self.window_s:g} s) @ {self.fs:g} Hz>"


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

    def _process(self, x: np.ndarray) -> np.ndarray:
        return self._filter._process(x)

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
