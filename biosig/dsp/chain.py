"""Preprocessing and window features for a consumer that needs only the features.

:class:`FeatureChain` runs a :class:`~biosig.dsp.Preprocessor` and a
:class:`~biosig.dsp.WindowFeatures` on a stream (e.g. the pipeline's processing thread, which
outputs window features, not the filtered signal). It returns what
``WindowFeatures.push(*preprocessor.process_with_mask(chunk))`` would return chunk by chunk
(the same windows; features equal to rounding, ~1e-15 relative, counts exactly), but faster:

- Preprocessing is deferred until a window completes, then run on all the samples received
  since. Every stage is chunk-invariant, so this changes nothing but the cost: a window hop's
  worth of samples (~3 live chunks of 32 samples at 2 kHz with a 50 ms hop) takes a few calls
  per stage instead of a few per chunk. No window comes out later: each is returned by the
  push that brings its last sample.
- The filtered signal and the envelope are written straight into the buffers of the window
  features, not copied there.

Non-finite input samples are counted (and replaced) in the push that brings them, so
:attr:`FeatureChain.n_nonfinite` is always current. With a rate change (decimation or
resampling) each chunk is processed as it arrives, through the public stage methods.
"""

from __future__ import annotations

import math

import numpy as np

from biosig._checks import BiosigError, check_samples
from biosig.dsp.preprocess import Preprocessor
from biosig.dsp.window_features import FeatureBatch, WindowFeatures

_FLOAT = np.dtype(np.float64)

#: Longest run of samples preprocessed and windowed at once (longer pushes, e.g. a whole
#: recording, go in pieces of this many): bounds the buffers and keeps them in the CPU caches.
#: An offline caller gains nothing from pushing more at once (biosig.analysis.batch).
PIECE_SAMPLES = 4096


class FeatureChain:
    """Stream samples in, window features out: ``Preprocessor`` -> ``WindowFeatures``.

    Parameters
    ----------
    preprocessor : Preprocessor
        The preprocessing chain (owned: :meth:`reset` resets it).
    features : WindowFeatures
        The window features, at the preprocessor's output rate (owned too).

    Notes
    -----
    Between windows the samples wait, unprocessed; ``preprocessor.last_replaced`` describes
    the last samples processed (the flags of the returned windows carry that information).
    """

    def __init__(self, preprocessor: Preprocessor, features: WindowFeatures):
        if not isinstance(preprocessor, Preprocessor):
            raise BiosigError(f"preprocessor must be a Preprocessor, got {type(preprocessor)}")
        if not isinstance(features, WindowFeatures):
            raise BiosigError(f"features must be a WindowFeatures, got {type(features)}")
        if features.fs != preprocessor.fs_out:
            raise BiosigError(
                f"window features at {features.fs:g} Hz, but the preprocessor outputs "
                f"{preprocessor.fs_out:g} Hz"
            )
        if features.n_channels != preprocessor.n_channels:
            raise BiosigError(
                f"window features for {features.n_channels} channels, but the preprocessor "
                f"has {preprocessor.n_channels}"
            )
        self.preprocessor = preprocessor
        self.features = features
        self.n_channels = preprocessor.n_channels
        # Deferring needs one output sample per input sample (no rate change) and the
        # block-sum path of WindowFeatures (not its fallback for hops under 3 samples).
        self._defer = preprocessor._rate is None and not features._fallback
        self._pending = np.empty((1024, self.n_channels))
        self.reset()

    @property
    def feature_names(self) -> list[str]:
        return self.features.feature_names

    @property
    def n_nonfinite(self) -> np.ndarray:
        """Non-finite input samples seen per channel (all pushes so far)."""
        return self.preprocessor.n_nonfinite

    def reset(self) -> "FeatureChain":
        """Forget the stream (preprocessing state, partial windows, pending samples)."""
        self.preprocessor.reset()
        self.features.reset()
        self._n_pending = 0
        self._window_in = self.features.next_window_end  # samples until a window completes
        return self

    def push(self, samples, timestamps) -> FeatureBatch:
        """Add raw samples; return the features of the windows they complete.

        Parameters
        ----------
        samples : array_like, shape (n_samples, n_channels)
            Raw samples (may contain NaN/Inf; may be 0 rows).
        timestamps : array_like, shape (n_samples,)
            Their times in seconds.

        Returns
        -------
        FeatureBatch
        """
        x = samples
        if (
            type(x) is not np.ndarray
            or x.dtype is not _FLOAT
            or x.ndim != 2
            or x.shape[1] != self.n_channels
        ):
            x = check_samples(samples, self.n_channels, "input")
        t = timestamps
        if type(t) is not np.ndarray or t.dtype is not _FLOAT:
            t = np.asarray(timestamps, dtype=np.float64)
        n = x.shape[0]
        if t.shape != (n,):
            raise BiosigError(f"timestamps must have shape ({n},), got {t.shape}")
        if not self._defer:
            pre = self.preprocessor
            filtered, envelope, replaced = pre.process_with_mask(x)
            t_out = pre.output_timestamps(t)
            return self.features.push(t_out, filtered, envelope, mask=replaced)
        if n == 0:
            return self.features._empty_batch()
        pending = self._n_pending
        flat = x.reshape(-1)
        finite = math.isfinite(flat.dot(flat))
        total = pending + n
        if total < self._window_in and finite:  # keep the samples for later
            if total > self._pending.shape[0]:
                self._grow(total)
            self._pending[pending:total] = x
            self._n_pending = total
            return self.features._empty
        if pending:
            if pending + n > self._pending.shape[0]:
                self._grow(pending + n)
            self._pending[pending : pending + n] = x
            x = self._pending[: pending + n]
            self._n_pending = 0
        # The samples x end with this push's, whose timestamps are t.
        t_first = self.features._n_seen + pending
        process = self._process_in_place if finite else self._process
        if x.shape[0] <= PIECE_SAMPLES:
            batch = process(x, t, t_first)
        else:  # a long recording
            batch = self._process_pieces(process, x, t, t_first)
        self._window_in = self.features.next_window_end - self.features._n_seen
        return batch

    def _process_in_place(self, x: np.ndarray, t: np.ndarray, t_first: int) -> FeatureBatch:
        """Finite samples: preprocess them straight into the window-feature buffers."""
        pre, features = self.preprocessor, self.features
        n = x.shape[0]
        filtered_out, envelope_out = features._reserve(n)
        if envelope_out is None:  # no feature needs the envelope: scratch rows
            envelope_out = np.empty((n, self.n_channels))
        pre._process_finite_into(x, filtered_out, envelope_out)
        return features._commit(n, t, t_first)

    def _process_pieces(self, process, x: np.ndarray, t: np.ndarray, t_first: int):
        """``process`` piece by piece (the buffers stay small); one batch of all windows."""
        batches = []
        for start in range(0, x.shape[0], PIECE_SAMPLES):
            batch = process(x[start : start + PIECE_SAMPLES], t, t_first)
            if batch.n_windows:
                batches.append(batch)
        if not batches:
            return self.features._empty_batch()
        return batches[0] if len(batches) == 1 else FeatureBatch.concatenate(batches)

    def _process(self, x: np.ndarray, t: np.ndarray, t_first: int) -> FeatureBatch:
        """Any samples (non-finite ones too), through the Preprocessor's public method."""
        pre, features = self.preprocessor, self.features
        filtered, envelope, replaced = pre.process_with_mask(x)
        n = x.shape[0]
        signal_rows, envelope_rows = features._reserve(n)
        signal_rows[:n] = filtered
        if envelope_rows is not None:
            envelope_rows[...] = envelope
        return features._commit(n, t, t_first, None if pre._guard.last_clean else replaced)

    def _grow(self, n: int) -> None:
        pending = self._pending
        self._pending = np.empty((2 * n, self.n_channels))
        self._pending[: self._n_pending] = pending[: self._n_pending]

    def __repr__(self) -> str:
        return f"<FeatureChain | {self.preprocessor!r} -> {self.features!r}>"
