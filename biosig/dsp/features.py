"""Per-window EMG features, vectorised over windows and channels.

``env_mean`` is the mean of the amplitude envelope over the window (the per-window input of the
Johnson SU EMG model). The others are Hudgins' time-domain set (plus RMS) on the filtered signal:

- ``rms``: root mean square.
- ``mav``: mean absolute value.
- ``wl``: waveform length, ``sum |x[i+1] - x[i]|``.
- ``zc``: zero crossings, consecutive samples of strictly opposite sign with
  ``|x[i+1] - x[i]| >= zc_threshold``.
- ``ssc``: slope sign changes, samples that are a strict local maximum or minimum
  (``(x[i] - x[i-1]) * (x[i+1] - x[i]) < 0``) with ``|x[i] - x[i-1]| >= ssc_threshold`` or
  ``|x[i+1] - x[i]| >= ssc_threshold``.

Counts (``zc``, ``ssc``) are returned as float64 like the rest.

For a stream that needs only the features, :class:`biosig.dsp.WindowFeatures` computes the
same values from per-block sums, without cutting the (overlapping) windows.
"""

from __future__ import annotations

import numpy as np

from biosig._checks import BiosigError, check_names, check_positive

#: Every feature :class:`FeatureExtractor` knows, in its default order.
FEATURE_NAMES = ("env_mean", "rms", "mav", "wl", "zc", "ssc")

_WINDOWS_PER_BLOCK = 4


def check_feature_names(features) -> tuple[str, ...]:
    """Return ``features`` as a tuple, refusing unknown or repeated names."""
    return check_names(features, FEATURE_NAMES, "feature")


class FeatureExtractor:
    """Compute named features for every window and channel.

    Parameters
    ----------
    features : sequence of str
        Feature names, from :data:`FEATURE_NAMES`; output columns follow this order.
    channel_labels : sequence of str
        One label per channel, used in :attr:`feature_names`.
    zc_threshold : float
        Minimum amplitude step for a zero crossing, in the signal's units (>= 0).
    ssc_threshold : float
        Minimum amplitude step for a slope sign change, in the signal's units (>= 0).

    Attributes
    ----------
    feature_names : list of str
        ``f"{feature}:{channel_label}"``, feature-major (all channels of the first feature,
        then of the second ...), matching the columns of :meth:`transform`.
    """

    def __init__(
        self,
        features=FEATURE_NAMES,
        channel_labels=None,
        zc_threshold: float = 0.0,
        ssc_threshold: float = 0.0,
    ):
        self.features = check_feature_names(features)
        if channel_labels is None:
            raise BiosigError("give channel_labels (one label per channel)")
        self.channel_labels = [str(label) for label in channel_labels]
        if not self.channel_labels:
            raise BiosigError("channel_labels is empty")
        if len(set(self.channel_labels)) != len(self.channel_labels):
            raise BiosigError(f"channel labels are not unique: {self.channel_labels}")
        self.zc_threshold = check_positive(zc_threshold, "zc_threshold", allow_zero=True)
        self.ssc_threshold = check_positive(ssc_threshold, "ssc_threshold", allow_zero=True)
        self.feature_names = [f"{f}:{c}" for f in self.features for c in self.channel_labels]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def transform(self, filtered, envelope=None) -> np.ndarray:
        """Features of a batch of windows.

        Parameters
        ----------
        filtered : array_like, shape (n_windows, length, n_channels)
            Windows of the filtered signal.
        envelope : array_like, shape (n_windows, length, n_channels), optional
            Windows of the envelope; required for ``env_mean``.

        Returns
        -------
        ndarray, shape (n_windows, n_features), float64
        """
        x = self._check_windows(filtered, "filtered")
        env = None
        if envelope is not None:
            env = self._check_windows(envelope, "envelope")
            if env.shape != x.shape:
                raise BiosigError(
                    f"envelope windows {env.shape} do not match filtered windows {x.shape}"
                )
        elif "env_mean" in self.features:
            raise BiosigError("feature 'env_mean' needs the envelope windows")
        n_windows = x.shape[0]
        if n_windows <= _WINDOWS_PER_BLOCK:
            return self._features(x, env)
        # Blocks of a few windows keep the temporaries in cache (~2x faster for big batches).
        out = np.empty((n_windows, self.n_features))
        for start in range(0, n_windows, _WINDOWS_PER_BLOCK):
            block = slice(start, start + _WINDOWS_PER_BLOCK)
            out[block] = self._features(x[block], None if env is None else env[block])
        return out

    def _features(self, x: np.ndarray, env: np.ndarray | None) -> np.ndarray:
        # Every feature is a sum over the window of a per-sample term (|x|, x^2, |dx|, a
        # crossing indicator ...). Each feature's terms fill one contiguous block of ``terms``,
        # and all blocks are summed by one product with a vector of ones: numpy's
        # ``sum(axis=1)`` over these short, wide windows is ~5x slower than BLAS.
        n_windows, length, n_channels = x.shape
        n_kinds = len(self.features)
        terms = np.empty((n_kinds, n_windows, length, n_channels))
        diffs = x[:, 1:] - x[:, :-1] if {"wl", "zc", "ssc"} & set(self.features) else None
        for k, name in enumerate(self.features):
            self._write_terms(name, x, env, diffs, terms[k])
        sums = np.matmul(np.ones(length), terms)  # (n_kinds, n_windows, n_channels)
        for k, name in enumerate(self.features):
            if name in ("env_mean", "mav"):
                sums[k] /= length
            elif name == "rms":
                np.sqrt(sums[k] / length, out=sums[k])
        # feature-major columns: window w, feature k, channel c -> column k * n_channels + c
        by_window = np.ascontiguousarray(sums.transpose(1, 0, 2))
        return by_window.reshape(n_windows, n_kinds * n_channels)

    def _write_terms(self, name, x, env, diffs, out) -> None:
        """Per-sample terms of feature ``name`` into ``out`` (n_windows, length, n_channels)."""
        if name == "env_mean":
            out[...] = env
        elif name == "rms":
            np.multiply(x, x, out=out)
        elif name == "mav":
            np.abs(x, out=out)
        elif name == "wl":
            out[:, 0] = 0.0
            np.abs(diffs, out=out[:, 1:])
        elif name == "zc":
            out[:, 0] = 0.0
            crossings = out[:, 1:]
            if self.zc_threshold > 0:
                crossings[...] = ((x[:, :-1] * x[:, 1:]) < 0) & (
                    np.abs(diffs) >= self.zc_threshold
                )
            else:  # in place: the product, then 1.0 where it is negative
                np.multiply(x[:, :-1], x[:, 1:], out=crossings)
                np.less(crossings, 0.0, out=crossings)
        else:  # ssc
            out[:, 0] = 0.0
            out[:, -1] = 0.0
            before, after = diffs[:, :-1], diffs[:, 1:]
            changes = out[:, 1:-1]
            if self.ssc_threshold > 0:
                changes[...] = ((before * after) < 0) & (
                    np.maximum(np.abs(before), np.abs(after)) >= self.ssc_threshold
                )
            else:
                np.multiply(before, after, out=changes)
                np.less(changes, 0.0, out=changes)

    def _check_windows(self, windows, name: str) -> np.ndarray:
        arr = np.asarray(windows, dtype=np.float64)
        if arr.ndim != 3:
            raise BiosigError(
                f"{name} windows must be 3-D (n_windows, length, n_channels), got {arr.shape}"
            )
        if arr.shape[2] != len(self.channel_labels):
            raise BiosigError(
                f"{name} windows have {arr.shape[2]} channels but "
                f"{len(self.channel_labels)} channel labels were given"
            )
        if arr.shape[1] < 1:
            raise BiosigError(f"{name} windows are empty (length 0)")
        return arr

    def __repr__(self) -> str:
        return (
            f"<FeatureExtractor | {', '.join(self.features)} | "
            f"{len(self.channel_labels)} ch -> {self.n_features} features>"
        )
