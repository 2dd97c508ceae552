"""Streaming, causal, multichannel signal processing for EMG and CTG.

Every stage takes chunks of shape (n_samples, n_channels) in float64, keeps its state between
chunks (``process`` / ``reset``), and gives the same output for a stream fed in chunks of any
size as for the whole recording in one call. See :mod:`biosig.dsp.preprocess` for the order
of the stages. A consumer that needs only window features (not the windows, nor the filtered
signal) gets them fastest from a :class:`FeatureChain` (:mod:`biosig.dsp.chain`).
"""

from biosig.dsp.chain import FeatureChain
from biosig.dsp.envelope import (
    ENVELOPE_KINDS,
    LowpassEnvelope,
    MovingAverage,
    MovingRMS,
    make_envelope,
    rectify,
)
from biosig.dsp.features import FEATURE_NAMES, FeatureExtractor
from biosig.dsp.filters import (
    SOSFilter,
    cascade,
    design_bandpass,
    design_highpass,
    design_lowpass,
    design_notch,
    notch_frequencies,
    sosfilt_offline,
)
from biosig.dsp.preprocess import NonFiniteGuard, Preprocessor
from biosig.dsp.resample import Decimator, Resampler, rational_ratio
from biosig.dsp.window_features import FeatureBatch, WindowFeatures
from biosig.dsp.windows import WindowBatch, Windower, window_lengths, windows_offline

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
