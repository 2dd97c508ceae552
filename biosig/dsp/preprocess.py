"""The configured preprocessing chain: non-finite repair, filtering, envelope, rate change.

Processing order for each chunk (shape (n_samples, n_channels), float64):

1. :class:`NonFiniteGuard`: NaN/Inf samples are counted and replaced by the channel's last
   finite value (0 before any), so they cannot poison the filter state.
2. One SOS cascade: high-pass *or* band-pass, then the mains notch(es). Its output is the
   **filtered** signal.
3. Full-wave rectification, then the envelope smoother. Its output is the **envelope**.
4. Optional decimation or rational resampling, applied to both outputs alike.

With every option off (the CTG preset) the filtered signal and the envelope are exact copies of
the (finite) input.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from biosig._checks import check_int, check_positive, check_samples
from biosig.dsp.envelope import make_envelope
from biosig.dsp.filters import (
    SOSFilter,
    cascade,
    design_bandpass,
    design_highpass,
    design_notch,
)
from biosig.dsp.resample import make_rate_converter

if TYPE_CHECKING:  # config imports biosig.dsp; import it here only for type hints
    from biosig.config import PreprocessConfig

logger = logging.getLogger(__name__)


class NonFiniteGuard:
    """Replace NaN/Inf samples by the last finite value of their channel, and count them.

    Parameters
    ----------
    n_channels : int

    Attributes
    ----------
    n_nonfinite : ndarray of int64, shape (n_channels,)
        Non-finite samples seen per channel since the last :meth:`reset`.
    last_clean : bool
        True when the last chunk was all finite (its ``replaced`` mask is all False).
    """

    def __init__(self, n_channels: int):
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.reset()

    def reset(self) -> "NonFiniteGuard":
        """Forget the stream (counts and last finite values)."""
        self.n_nonfinite = np.zeros(self.n_channels, dtype=np.int64)
        self._last_finite = np.zeros(self.n_channels)
        self.last_clean = True  # whether the last chunk was all finite
        return self

    def process(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Repair the next chunk.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_channels)

        Returns
        -------
        clean : ndarray, shape (n_samples, n_channels)
            ``x`` with non-finite samples replaced (``x`` itself when all are finite).
        replaced : ndarray of bool, shape (n_samples, n_channels)
            True where a sample was replaced.
        """
        return self._process(check_samples(x, self.n_channels, "input"))

    def _process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n == 0:
            self.last_clean = True
            return x, np.zeros((0, self.n_channels), dtype=bool)
        # The sum of squares is non-finite whenever a sample is (or, rarely, when finite
        # samples overflow, which the exact check below then clears); one BLAS dot is
        # cheaper than isfinite + all on live-sized chunks.
        flat = x.reshape(-1)
        if math.isfinite(flat.dot(flat)) or np.isfinite(x).all():
            self._last_finite[...] = x[-1]
            self.last_clean = True
            return x, np.zeros(x.shape, dtype=bool)
        self.last_clean = False
        finite = np.isfinite(x)
        replaced = ~finite
        self.n_nonfinite += replaced.sum(axis=0)
        # Row of the latest finite sample at or before each row (-1: none yet in this chunk).
        source_row = np.where(finite, np.arange(n)[:, None], -1)
        np.maximum.accumulate(source_row, axis=0, out=source_row)
        clean = np.take_along_axis(x, np.maximum(source_row, 0), axis=0)
        clean = np.where(source_row < 0, self._last_finite[None, :], clean)
        self._last_finite = clean[-1].copy()
        return clean, replaced


class Preprocessor:
    """Stateful EMG/CTG preprocessing chain built from a :class:`biosig.config.PreprocessConfig`.

    Parameters
    ----------
    config : PreprocessConfig
        What to do; validated against ``fs`` here.
    fs : float
        Input sampling rate in Hz.
    n_channels : int

    Attributes
    ----------
    fs_out : float
        Rate of the outputs in Hz (``fs`` unless decimation or resampling is configured).
    n_nonfinite : ndarray of int64, shape (n_channels,)
        Non-finite input samples seen per channel.
    last_replaced : ndarray of bool, shape (n_out, n_channels)
        For the outputs of the last :meth:`process` call: True where they come from replaced
        non-finite input (see :meth:`process_with_mask`). Pass it to
        :meth:`biosig.dsp.Windower.push` as ``mask`` to flag windows.
    """

    def __init__(self, config: "PreprocessConfig", fs: float, n_channels: int):
        self.fs = check_positive(fs, "fs")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        config.validate(self.fs)
        self.config = config
        self._guard = NonFiniteGuard(self.n_channels)
        self._filter = self._build_filter(config)
        self._envelope = make_envelope(
            config.envelope,
            self.fs,
            self.n_channels,
            window_s=config.envelope_window_s,
            cutoff_hz=config.envelope_cutoff_hz,
            order=config.filter_order,
            init=config.filter_init,
        )
        # Filtered signal and envelope go through one rate converter side by side, so both
        # are resampled identically.
        self._rate = make_rate_converter(
            self.fs,
            2 * self.n_channels,
            resample_hz=config.resample_hz,
            decimate=config.decimate,
            init=config.filter_init,
        )
        self.fs_out = self._rate.fs_out if self._rate is not None else self.fs
        self.last_replaced = np.zeros((0, self.n_channels), dtype=bool)
        # RMS squares its input, so rectifying first would change nothing but cost a pass.
        self._rectify_first = bool(config.rectify) and config.envelope != "moving_rms"
        self._no_replacement = np.zeros((0, self.n_channels), dtype=bool)
        logger.debug("built %r", self)

    def _build_filter(self, config) -> SOSFilter | None:
        order = config.filter_order
        band = None
        if config.bandpass_hz is not None:
            band = design_bandpass(config.bandpass_hz[0], config.bandpass_hz[1], self.fs, order)
        elif config.highpass_hz is not None:
            band = design_highpass(config.highpass_hz, self.fs, order)
        notch = None
        if config.notch_hz is not None:
            notch = design_notch(
                config.notch_hz,
                self.fs,
                quality=config.notch_quality,
                n_harmonics=config.notch_harmonics,
                max_hz=config.notch_max_hz,
            )
        sos = cascade(band, notch)
        if sos.shape[0] == 0:
            return None
        return SOSFilter(sos, self.n_channels, init=config.filter_init)

    @property
    def n_nonfinite(self) -> np.ndarray:
        return self._guard.n_nonfinite

    def reset(self) -> "Preprocessor":
        """Forget the stream: every stage starts again from its initial state."""
        self._guard.reset()
        self.last_replaced = np.zeros((0, self.n_channels), dtype=bool)
        for stage in (self._filter, self._envelope, self._rate):
            if stage is not None:
                stage.reset()
        return self

    def process(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Preprocess the next chunk.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_channels)
            Raw samples (may contain NaN/Inf; may be 0 rows).

        Returns
        -------
        filtered : ndarray, shape (n_out, n_channels)
        envelope : ndarray, shape (n_out, n_channels)
            ``n_out == n_samples`` unless a rate change is configured.
        """
        filtered, envelope, _ = self.process_with_mask(x)
        return filtered, envelope

    def process_with_mask(self, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`process`, also returning which outputs come from replaced samples.

        Returns
        -------
        filtered, envelope : ndarray, shape (n_out, n_channels)
        replaced : ndarray of bool, shape (n_out, n_channels)
            True where the input sample was non-finite (with a rate change: where any input
            sample since the previous output was).
        """
        if not (
            type(x) is np.ndarray
            and x.dtype == np.float64
            and x.ndim == 2
            and x.shape[1] == self.n_channels
            and x.flags.c_contiguous
        ):  # the checks and conversions, skipped for the usual float64 chunk
            x = check_samples(x, self.n_channels, "input")
        clean, replaced = self._guard._process(x)
        if self._filter is not None:
            filtered = self._filter._process(clean)
        else:
            filtered = clean.copy()  # never hand the caller's own array back
        envelope = self._envelope_of(filtered)
        if self._rate is not None:
            both = self._rate._process(np.concatenate((filtered, envelope), axis=1))
            filtered = np.ascontiguousarray(both[:, : self.n_channels])
            envelope = np.ascontiguousarray(both[:, self.n_channels :])
            replaced = self._rate.output_mask(replaced)
        self.last_replaced = replaced
        return filtered, envelope, replaced

    def _envelope_of(self, filtered: np.ndarray) -> np.ndarray:
        if self._envelope is not None:
            return self._envelope._process(filtered, rectify=self._rectify_first)
        return np.abs(filtered) if self._rectify_first else filtered.copy()

    def _process_finite_into(
        self, x: np.ndarray, filtered_out: np.ndarray, envelope_out: np.ndarray
    ) -> None:
        """:meth:`process` for a chunk known to be finite, writing the outputs in place.

        For :class:`biosig.dsp.FeatureChain`, which checks the input and hands over the rows
        of its own buffers: no rate change, no ``replaced`` mask (``last_replaced`` is an
        all-False view).
        """
        n = x.shape[0]
        guard = self._guard
        guard._last_finite[...] = x[-1]
        guard.last_clean = True
        if self._filter is not None:
            filtered = self._filter._process(x, out=filtered_out)
        else:
            filtered = filtered_out[:n]
            filtered[...] = x
        if self._envelope is not None:  # rectified on the way in
            self._envelope._process(filtered, out=envelope_out, rectify=self._rectify_first)
        elif self._rectify_first:
            np.abs(filtered, out=envelope_out)
        else:
            envelope_out[...] = filtered
        if self._no_replacement.shape[0] < n:
            self._no_replacement = np.zeros((2 * n, self.n_channels), dtype=bool)
            self._no_replacement.setflags(write=False)
        self.last_replaced = self._no_replacement[:n]

    def output_timestamps(self, timestamps) -> np.ndarray:
        """Timestamps of the outputs of the last :meth:`process` call.

        Parameters
        ----------
        timestamps : array_like, shape (n_samples,)
            Timestamps of that call's input samples, in seconds.

        Returns
        -------
        ndarray, shape (n_out,)
        """
        if self._rate is None:
            return np.array(timestamps, dtype=np.float64).reshape(-1)
        return self._rate.output_timestamps(timestamps)

    def __repr__(self) -> str:
        stages = []
        if self._filter is not None:
            stages.append(f"filter ({self._filter.sos.shape[0]} sections)")
        if self.config.rectify:
            stages.append("rectify")
        if self._envelope is not None:
            stages.append(self.config.envelope)
        if self._rate is not None:
            stages.append(f"-> {self.fs_out:g} Hz")
        chain = " -> ".join(stages) if stages else "pass-through"
        return f"<Preprocessor | {self.n_channels} ch @ {self.fs:g} Hz | {chain}>"
