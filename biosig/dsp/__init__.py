"""Streaming, causal, multichannel signal processing for EMG and CTG.

Every stage takes chunks of shape (n_samples, n_channels) in float64, keeps its state between
chunks (``process`` / ``reset``), and gives the same output for a stream fed in chunks of any
size as for the whole recording in one call. See :mod:`biosig.dsp.preprocess` for the order
of the stages. A consumer that needs only window features (not the windows, nor the filtered
signal) gets them fastest from a :class:`FeatureChain` (:mod:`biosig.dsp.chain`).
"""

from biosig._lazy import lazy_exports

# Where each public name lives; loaded on first use, so that code needing one stage (a
# configuration, say) does not load them all, nor the compiled loops' numba.
_EXPORTS = {
    "FeatureChain": "chain",
    "ENVELOPE_KINDS": "envelope", "LowpassEnvelope": "envelope", "MovingAverage": "envelope",
    "MovingRMS": "envelope", "make_envelope": "envelope", "rectify": "envelope",
    "FEATURE_NAMES": "features", "FeatureExtractor": "features",
    "SOSFilter": "filters", "cascade": "filters", "design_bandpass": "filters",
    "design_highpass": "filters", "design_lowpass": "filters", "design_notch": "filters",
    "notch_frequencies": "filters", "sosfilt_offline": "filters",
    "NonFiniteGuard": "preprocess", "Preprocessor": "preprocess",
    "Decimator": "resample", "Resampler": "resample", "rational_ratio": "resample",
    "FeatureBatch": "window_features", "WindowFeatures": "window_features",
    "WindowBatch": "windows", "Windower": "windows", "window_lengths": "windows",
    "windows_offline": "windows",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
