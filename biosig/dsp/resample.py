"""Causal rate conversion of chunked streams: integer decimation and rational resampling.

Output sample ``m`` of a stage that converts ``fs_in`` to ``fs_out = fs_in * up / down`` sits
at input position ``u_m = m * down / up`` (in input samples from the stream start), so output 0
is the instant of input sample 0. It is produced as soon as input sample ``floor(u_m)`` has
arrived. Both stages count samples across chunks, so a chunked stream gives the same output,
timestamps and replaced-sample mask as one call over the whole recording.

Timestamps are sample instants; they do not subtract the causal filters' delay
(:attr:`Resampler.delay_s` gives the FIR's).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

# scipy.signal is imported inside the functions that use it: it takes ~1 s to import, which
# every process that only reads a configuration or opens a model would otherwise pay (the
# explainer worker, most commands).
from biosig._checks import BiosigError, check_int, check_option, check_positive, check_samples
from biosig.dsp.filters import FILTER_INITS, SOSFilter

# Largest up or down factor accepted; the FIR grows as 20 * max(up, down) + 1 taps.
_MAX_RATIO_TERM = 1024
# Outputs are computed in blocks of this many, to bound the (outputs x taps x channels) gather.
_OUTPUT_BLOCK = 1024


class _RateTracker:
    """Which input sample each output of the next chunk comes from (shared by both stages)."""

    def __init__(self, up: int, down: int):
        self.up = up
        self.down = down
        self.reset()

    def reset(self) -> None:
        self.n_in = 0  # input samples consumed so far
        self.n_out = 0  # output samples produced so far
        self.last_rows = np.zeros(0, dtype=np.int64)  # floor(u_m), relative to the last chunk
        self.last_phase = np.zeros(0, dtype=np.int64)  # (m * down) mod up
        self.last_n_in = 0
        self._mask_pending = None  # per channel: a replaced input since the last output

    def advance(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Account for ``n`` new input samples; return absolute (floor(u_m), phase) of outputs."""
        first_in = self.n_in
        self.n_in += n
        # Output m is ready once floor(m * down / up) <= n_in - 1, i.e. m * down <= n_in * up - 1.
        n_ready = (self.n_in * self.up - 1) // self.down + 1 if self.n_in > 0 else 0
        m = np.arange(self.n_out, n_ready, dtype=np.int64)
        self.n_out = n_ready
        position = m * self.down
        rows = position // self.up
        phase = position - rows * self.up
        self.last_rows = rows - first_in
        self.last_phase = phase
        self.last_n_in = n
        return rows, phase

    def output_timestamps(self, timestamps, fs_in: float) -> np.ndarray:
        t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        self._check_last_chunk(t.shape[0], "timestamps")
        return t[self.last_rows] + self.last_phase / (self.up * fs_in)

    def output_mask(self, mask) -> np.ndarray:
        mask = np.asarray(mask, dtype=bool)
        squeeze = mask.ndim == 1
        if squeeze:
            mask = mask[:, None]
        self._check_last_chunk(mask.shape[0], "mask")
        if self._mask_pending is None or self._mask_pending.shape[0] != mask.shape[1]:
            self._mask_pending = np.zeros(mask.shape[1], dtype=bool)
        # An output is flagged when any input since the previous output was replaced.
        replaced_so_far = np.cumsum(mask, axis=0, dtype=np.int64)
        at_outputs = replaced_so_far[self.last_rows]
        flags = np.empty(at_outputs.shape, dtype=bool)
        if at_outputs.shape[0]:
            flags[0] = self._mask_pending | (at_outputs[0] > 0)
            flags[1:] = np.diff(at_outputs, axis=0) > 0
            total = replaced_so_far[-1]
            self._mask_pending = (total - at_outputs[-1]) > 0
        elif mask.shape[0]:
            self._mask_pending = self._mask_pending | (replaced_so_far[-1] > 0)
        return flags[:, 0] if squeeze else flags

    def _check_last_chunk(self, n: int, name: str) -> None:
        if n != self.last_n_in:
            raise BiosigError(
                f"{name} has {n} samples but the last processed chunk had {self.last_n_in}; "
                "map each chunk right after processing it"
            )


class Decimator:
    """Anti-aliased integer decimation with the sample phase carried across chunks.

    A Chebyshev type I low-pass (order 8, 0.05 dB ripple, cut-off at 0.8 x the new Nyquist,
    as in :func:`scipy.signal.decimate`) runs at the input rate; every ``factor``-th filtered
    sample is kept, counting from the first sample of the stream.

    Parameters
    ----------
    factor : int
        Decimation factor (>= 1; 1 keeps every sample and skips the filter).
    fs : float
        Input sampling rate in Hz.
    n_channels : int
    order : int
        Order of the anti-alias filter.
    init : {"zeros", "steady"}
        Initial state of the anti-alias filter.
    """

    def __init__(self, factor: int, fs: float, n_channels: int, order: int = 8, init="zeros"):
        from scipy import signal  # noqa: PLC0415

        self.factor = check_int(factor, "decimation factor", minimum=1)
        self.fs = check_positive(fs, "fs")
        self.fs_out = self.fs / self.factor
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        check_option(init, "filter init", FILTER_INITS)
        order = check_int(order, "anti-alias order", minimum=1)
        self._filter = None
        if self.factor > 1:
            sos = signal.cheby1(order, 0.05, 0.8 / self.factor, output="sos")
            self._filter = SOSFilter(sos, self.n_channels, init=init)
        self._tracker = _RateTracker(1, self.factor)

    def reset(self) -> "Decimator":
        """Forget the stream (filter state and sample phase)."""
        if self._filter is not None:
            self._filter.reset()
        self._tracker.reset()
        return self

    def process(self, x) -> np.ndarray:
        """Decimate the next chunk, shape (n, n_channels) -> (n_out, n_channels)."""
        return self._process(check_samples(x, self.n_channels, "decimator input"))

    def _process(self, x: np.ndarray) -> np.ndarray:
        filtered = self._filter._process(x) if self._filter is not None else x
        self._tracker.advance(x.shape[0])
        return filtered[self._tracker.last_rows]

    def output_timestamps(self, timestamps) -> np.ndarray:
        """Timestamps of the outputs of the last :meth:`process` call (its inputs' timestamps)."""
        return self._tracker.output_timestamps(timestamps, self.fs)

    def output_mask(self, mask) -> np.ndarray:
        """Flags of the last call's outputs: True if an input since the previous output was.

        Stateful: call it after every :meth:`process` call if you use it at all.
        """
        return self._tracker.output_mask(mask)

    def __repr__(self) -> str:
        return f"<Decimator | /{self.factor} | {self.fs:g} -> {self.fs_out:g} Hz>"


def rational_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """``(up, down)`` in lowest terms with ``fs_out = fs_in * up / down``.

    Refuses ratios that need a factor above 1024 (the FIR would exceed 20,000 taps).
    """
    fs_in = check_positive(fs_in, "input rate")
    fs_out = check_positive(fs_out, "output rate")
    ratio = Fraction(fs_out) / Fraction(fs_in)
    approx = ratio.limit_denominator(_MAX_RATIO_TERM)
    if (
        approx.numerator > _MAX_RATIO_TERM
        or abs(float(approx) - fs_out / fs_in) > 1e-12 * (fs_out / fs_in)
    ):
        raise BiosigError(
            f"cannot resample {fs_in:g} Hz to {fs_out:g} Hz: the ratio is not a fraction "
            f"up/down with up, down <= {_MAX_RATIO_TERM}"
        )
    return approx.numerator, approx.denominator


class Resampler:
    """Causal polyphase FIR resampling by a rational factor ``up / down`` (e.g. 2048 -> 1000 Hz).

    The filter is that of :func:`scipy.signal.resample_poly` (Kaiser-windowed sinc, beta 5,
    ``20 * max(up, down) + 1`` taps) but applied causally: the last taps' worth of input is
    carried between chunks, so no history is recomputed and the output is delayed by
    :attr:`delay_s`. Samples before the stream start count as zeros.

    Parameters
    ----------
    fs : float
        Input sampling rate in Hz.
    fs_out : float
        Output sampling rate in Hz.
    n_channels : int
    """

    def __init__(self, fs: float, fs_out: float, n_channels: int):
        self.fs = check_positive(fs, "fs")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.up, self.down = rational_ratio(self.fs, fs_out)
        self.fs_out = self.fs * self.up / self.down
        self._taps_by_phase = _polyphase_taps(self.up, self.down)
        self.n_taps_per_phase = self._taps_by_phase.shape[1]
        self._tracker = _RateTracker(self.up, self.down)
        self.reset()

    @property
    def delay_s(self) -> float:
        """Group delay of the causal FIR in seconds."""
        if self.up == self.down == 1:
            return 0.0
        half_length = 10 * max(self.up, self.down)
        return half_length / (self.up * self.fs)

    def reset(self) -> "Resampler":
        """Forget the stream."""
        self._tail = np.zeros((self.n_taps_per_phase - 1, self.n_channels))
        self._tracker.reset()
        return self

    def process(self, x) -> np.ndarray:
        """Resample the next chunk, shape (n, n_channels) -> (n_out, n_channels)."""
        return self._process(check_samples(x, self.n_channels, "resampler input"))

    def _process(self, x: np.ndarray) -> np.ndarray:
        n_taps = self.n_taps_per_phase
        first_in = self._tracker.n_in
        rows, phase = self._tracker.advance(x.shape[0])
        extended = np.concatenate((self._tail, x))
        if n_taps > 1:
            self._tail = extended[-(n_taps - 1) :].copy()
        # extended[0] is input sample first_in - (n_taps - 1).
        newest = rows - (first_in - (n_taps - 1))
        lags = np.arange(n_taps)
        y = np.empty((rows.shape[0], self.n_channels))
        for start in range(0, rows.shape[0], _OUTPUT_BLOCK):
            block = slice(start, start + _OUTPUT_BLOCK)
            gathered = extended[newest[block, None] - lags[None, :]]  # (m, taps, ch)
            taps = self._taps_by_phase[phase[block]]  # (m, taps)
            y[block] = np.einsum("mk,mkc->mc", taps, gathered)
        return y

    def output_timestamps(self, timestamps) -> np.ndarray:
        """Timestamps of the last call's outputs: input time of floor(u_m) + fraction / fs."""
        return self._tracker.output_timestamps(timestamps, self.fs)

    def output_mask(self, mask) -> np.ndarray:
        """Flags of the last call's outputs: True if an input since the previous output was.

        Stateful: call it after every :meth:`process` call if you use it at all.
        """
        return self._tracker.output_mask(mask)

    def __repr__(self) -> str:
        return (
            f"<Resampler | x{self.up}/{self.down} | {self.fs:g} -> {self.fs_out:g} Hz | "
            f"{self.n_taps_per_phase} taps per phase>"
        )


def _polyphase_taps(up: int, down: int) -> np.ndarray:
    """FIR taps arranged by phase: ``taps[p, k] = h[p + k * up]``, shape (up, n_per_phase)."""
    from scipy import signal  # noqa: PLC0415

    if up == down == 1:
        return np.ones((1, 1))
    max_rate = max(up, down)
    half_length = 10 * max_rate
    h = signal.firwin(2 * half_length + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    n_per_phase = -(-h.shape[0] // up)
    padded = np.zeros(n_per_phase * up)
    padded[: h.shape[0]] = h
    return np.ascontiguousarray(padded.reshape(n_per_phase, up).T)


def make_rate_converter(
    fs: float, n_channels: int, *, resample_hz=None, decimate: int = 1, init: str = "zeros"
):
    """The rate stage a configuration asks for: a Resampler, a Decimator, or None."""
    if resample_hz is not None and decimate != 1:
        raise BiosigError("give either resample_hz or a decimation factor, not both")
    if resample_hz is not None:
        if float(resample_hz) == float(fs):
            return None
        return Resampler(fs, resample_hz, n_channels)
    if decimate != 1:
        return Decimator(decimate, fs, n_channels, init=init)
    return None
