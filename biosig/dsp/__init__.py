"""Streaming, causal, multichannel signal processing for EMG and CTG.

Every stage takes chunks of shape (n_samples, n_channels) in float64, keeps its state between
chunks (``process`` / ``reset``), and gives the same output for a stream fed in chunks of any
size as for the whole recording in one call. See :mod:`biosig.dsp.preprocess` for the order
of the stages. A consumer that needs only window features (not the windows, nor the filtered
signal) gets them fastest from a :class:`FeatureChain` (:mod:`biosig.dsp.chain`).
"""

import importlib

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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ENVELOPE_KINDS",
    "FEATURE_NAMES",
    "Decimator",
    "FeatureBatch",
    "FeatureChain",
    "FeatureExtractor",
    "LowpassEnvelope",
    "MovingAverage",
    "MovingRMS",
    "NonFiniteGuard",
    "Preprocessor",
    "Resampler",
    "SOSFilter",
    "WindowBatch",
    "WindowFeatures",
    "Windower",
    "cascade",
    "design_bandpass",
    "design_highpass",
    "design_lowpass",
    "design_notch",
    "make_envelope",
    "notch_frequencies",
    "rational_ratio",
    "rectify",
    "sosfilt_offline",
    "window_lengths",
    "windows_offline",
]
