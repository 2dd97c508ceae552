"""Typed pipeline configuration: preprocessing, windows, features, stream selection.

Each dataclass checks what it can on its own in ``__post_init__`` (types, ranges, options) and
what depends on the sampling rate in ``validate(fs)``. ``to_dict()`` / ``from_dict()`` round-trip
through JSON; :func:`load_config` reads the same structure from TOML::

    stream_type = "EMG"
    channels = ["F1", "F2"]          # optional; all channels when absent

    [preprocess]
    bandpass_hz = [20.0, 450.0]
    notch_hz = 50.0
    notch_max_hz = 450.0             # harmonics up to the band edge
    rectify = true
    envelope = "moving_rms"
    envelope_window_s = 0.1

    [window]
    length_s = 0.2
    hop_s = 0.05

    [features]
    names = ["env_mean", "rms", "mav", "wl", "zc", "ssc"]

A CTG configuration names CTG FIGO features instead (``biosig.ctg.CTG_FEATURE_NAMES``:
``baseline``, ``stv``, ``ltv``, ``accelerations``, ``decelerations`` ... ``loss``); the pipeline
then runs the CTG chain (:mod:`biosig.ctg`) instead of the EMG one, leaves ``[preprocess]``
unused, and reads the CTG rules from an optional ``[ctg]`` section (signal-loss range,
interpolation limit, artefact threshold, event and contraction thresholds; see
:class:`biosig.ctg.CTGConfig`). :meth:`PipelineConfig.ctg_default` is such a configuration.

An EMG configuration may add a ``[quality]`` section: the per-window clipped/flat channel check
(:class:`biosig.dsp.quality.QualityConfig`; the CTG chain does not use it)::

    [quality]
    clip_share = 0.5                 # clipped: more than half a window's samples at a rail
    rails = [-2.5, 2.5]              # a float stream's range (integer formats: their own)
    flat_ptp = 0.0                   # flat: peak-to-peak <= 0 over the window

Keys left out keep their defaults (TOML has no null, so a None field is written by leaving it
out). An unknown key is refused with a :class:`BiosigError` naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from biosig._checks import (
    BiosigError,
    check_below_nyquist,
    check_existing_file,
    check_int,
    check_option,
    check_positive,
)
from biosig._config_section import ConfigSection, check_bool, check_known_keys
from biosig.ctg.config import CTG_FEATURE_NAMES, CTGConfig, check_ctg_feature_names, is_ctg_feature_set
from biosig.dsp.envelope import ENVELOPE_KINDS, window_samples
from biosig.dsp.features import FEATURE_NAMES, check_feature_names
from biosig.dsp.filters import FILTER_INITS
from biosig.dsp.quality import QualityConfig
from biosig.dsp.resample import rational_ratio
from biosig.dsp.windows import window_lengths

logger = logging.getLogger(__name__)

#: Mains frequencies a notch may be set to, in Hz.
MAINS_HZ = (50.0, 60.0)


def _optional_positive(value, name: str) -> float | None:
    return None if value is None else check_positive(value, name)


@dataclass
class PreprocessConfig(ConfigSection):
    """What the :class:`biosig.dsp.Preprocessor` does. The defaults do nothing (pass-through).

    Parameters
    ----------
    highpass_hz : float or None
        Butterworth high-pass cut-off in Hz. Exclusive with ``bandpass_hz``.
    bandpass_hz : (float, float) or None
        Butterworth band-pass edges in Hz.
    notch_hz : {None, 50.0, 60.0}
        Mains frequency to notch out.
    notch_harmonics : int or None
        How many of ``notch_hz, 2*notch_hz, ...`` to notch (those at or above Nyquist are
        always left out); None: every multiple below Nyquist (and ``notch_max_hz``).
    notch_max_hz : float or None
        Notch no multiple above this frequency (e.g. a band-pass upper edge); None: Nyquist.
        ``notch_hz`` itself is always notched.
    notch_quality : float
        Quality factor of each notch (-3 dB width = frequency / quality).
    filter_order : int
        Butterworth order of the high-/band-pass and of the low-pass envelope.
    filter_init : {"zeros", "steady"}
        Initial state of every IIR filter (see :class:`biosig.dsp.SOSFilter`).
    rectify : bool
        Full-wave rectify the filtered signal before the envelope.
    envelope : {"none", "moving_average", "moving_rms", "lowpass"}
        Envelope smoother; "none" makes the envelope the (rectified) filtered signal.
    envelope_window_s : float
        Window of the moving average / RMS in seconds.
    envelope_cutoff_hz : float
        Cut-off of the low-pass envelope in Hz.
    resample_hz : float or None
        Resample both outputs to this rate (polyphase FIR). Exclusive with ``decimate``.
    decimate : int
        Keep every ``decimate``-th sample after an anti-alias filter (1: off).
    """

    _section = "preprocess"

    highpass_hz: float | None = None
    bandpass_hz: tuple[float, float] | None = None
    notch_hz: float | None = None
    notch_harmonics: int | None = None
    notch_max_hz: float | None = None
    notch_quality: float = 30.0
    filter_order: int = 4
    filter_init: str = "zeros"
    rectify: bool = False
    envelope: str = "none"
    envelope_window_s: float = 0.1
    envelope_cutoff_hz: float = 5.0
    resample_hz: float | None = None
    decimate: int = 1

    def __post_init__(self):
        self.highpass_hz = _optional_positive(self.highpass_hz, "highpass_hz")
        if self.bandpass_hz is not None:
            self.bandpass_hz = self._check_band(self.bandpass_hz)
        if self.highpass_hz is not None and self.bandpass_hz is not None:
            raise BiosigError("give either highpass_hz or bandpass_hz, not both")
        if self.notch_hz is not None:
            self.notch_hz = check_positive(self.notch_hz, "notch_hz")
            check_option(self.notch_hz, "notch_hz", MAINS_HZ)
        if self.notch_harmonics is not None:
            self.notch_harmonics = check_int(self.notch_harmonics, "notch_harmonics", minimum=1)
        self.notch_max_hz = _optional_positive(self.notch_max_hz, "notch_max_hz")
        self.notch_quality = check_positive(self.notch_quality, "notch_quality")
        self.filter_order = check_int(self.filter_order, "filter_order", minimum=1)
        if self.filter_order > 12:
            raise BiosigError(f"filter_order must be <= 12, got {self.filter_order}")
        check_option(self.filter_init, "filter_init", FILTER_INITS)
        check_bool(self.rectify, "rectify")
        check_option(self.envelope, "envelope", ENVELOPE_KINDS)
        self.envelope_window_s = check_positive(self.envelope_window_s, "envelope_window_s")
        self.envelope_cutoff_hz = check_positive(self.envelope_cutoff_hz, "envelope_cutoff_hz")
        self.resample_hz = _optional_positive(self.resample_hz, "resample_hz")
        self.decimate = check_int(self.decimate, "decimate", minimum=1)
        if self.resample_hz is not None and self.decimate != 1:
            raise BiosigError("give either resample_hz or decimate, not both")

    @staticmethod
    def _check_band(band) -> tuple[float, float]:
        try:
            low, high = band
        except (TypeError, ValueError):
            raise BiosigError(
                f"bandpass_hz must be two numbers [low, high], got {band!r}"
            ) from None
        low = check_positive(low, "bandpass_hz lower edge")
        high = check_positive(high, "bandpass_hz upper edge")
        if low >= high:
            raise BiosigError(
                f"bandpass_hz lower edge {low:g} Hz must be below upper edge {high:g} Hz"
            )
        return (low, high)

    def output_rate(self, fs: float) -> float:
        """Rate of the preprocessed signal in Hz for an input at ``fs`` Hz."""
        fs = check_positive(fs, "fs")
        if self.resample_hz is not None:
            up, down = rational_ratio(fs, self.resample_hz)
            return fs * up / down
        return fs / self.decimate

    def validate(self, fs: float) -> "PreprocessConfig":
        """Refuse what cannot work at ``fs`` Hz (frequencies at or above Nyquist ...)."""
        fs = check_positive(fs, "fs")
        if self.highpass_hz is not None:
            check_below_nyquist(self.highpass_hz, fs, "highpass_hz")
        if self.bandpass_hz is not None:
            check_below_nyquist(self.bandpass_hz[0], fs, "bandpass_hz lower edge")
            check_below_nyquist(self.bandpass_hz[1], fs, "bandpass_hz upper edge")
        if self.notch_hz is not None:
            check_below_nyquist(self.notch_hz, fs, "notch_hz")
        if self.envelope == "lowpass":
            check_below_nyquist(self.envelope_cutoff_hz, fs, "envelope_cutoff_hz")
        if self.envelope in ("moving_average", "moving_rms"):
            window_samples(self.envelope_window_s, fs, "envelope_window_s")
        self.output_rate(fs)
        return self

    def adapted_to(self, fs: float) -> "PreprocessConfig":
        """A copy adapted to ``fs`` Hz, with a logged warning for each change, then validated.

        A band-pass whose upper edge is at or above Nyquist becomes a high-pass at its lower
        edge (the device's own anti-alias filter then bounds the band), and a notch at or above
        Nyquist is dropped.
        """
        fs = check_positive(fs, "fs")
        nyquist = fs / 2
        changes = {}
        if self.bandpass_hz is not None and self.bandpass_hz[1] >= nyquist:
            logger.info(
                "band-pass upper edge %g Hz is at or above Nyquist (%g Hz at %g Hz): "
                "using a %g Hz high-pass instead",
                self.bandpass_hz[1], nyquist, fs, self.bandpass_hz[0],
            )
            changes.update(bandpass_hz=None, highpass_hz=self.bandpass_hz[0])
        if self.notch_hz is not None and self.notch_hz >= nyquist:
            logger.info(
                "notch %g Hz is at or above Nyquist (%g Hz at %g Hz): no notch",
                self.notch_hz, nyquist, fs,
            )
            changes.update(notch_hz=None)
        return dataclasses.replace(self, **changes).validate(fs)


@dataclass
class WindowConfig(ConfigSection):
    """Analysis windows.

    Parameters
    ----------
    length_s : float
        Window length in seconds.
    hop_s : float
        Time between window starts in seconds.
    """

    _section = "window"

    length_s: float = 0.2
    hop_s: float = 0.05

    def __post_init__(self):
        self.length_s = check_positive(self.length_s, "window length_s")
        self.hop_s = check_positive(self.hop_s, "window hop_s")

    def validate(self, fs: float) -> "WindowConfig":
        """Refuse a length or hop shorter than one sample at ``fs`` Hz."""
        window_lengths(fs, self.length_s, self.hop_s)
        return self


@dataclass
class FeatureConfig(ConfigSection):
    """Per-window features.

    Parameters
    ----------
    names : tuple of str
        Features, from :data:`biosig.dsp.FEATURE_NAMES` (EMG) or, all of them,
        from :data:`biosig.ctg.CTG_FEATURE_NAMES` (CTG FIGO features, see :attr:`is_ctg`).
    zc_threshold, ssc_threshold : float
        Amplitude thresholds of zero crossings and slope sign changes (signal units, >= 0).
    """

    _section = "features"

    names: tuple[str, ...] = FEATURE_NAMES
    zc_threshold: float = 0.0
    ssc_threshold: float = 0.0

    def __post_init__(self):
        if is_ctg_feature_set(self.names):
            self.names = check_ctg_feature_names(self.names)
        else:
            self.names = check_feature_names(self.names)
        self.zc_threshold = check_positive(self.zc_threshold, "zc_threshold", allow_zero=True)
        self.ssc_threshold = check_positive(self.ssc_threshold, "ssc_threshold", allow_zero=True)

    def validate(self, fs: float | None = None) -> "FeatureConfig":
        """Nothing depends on the rate; present for symmetry."""
        return self

    @property
    def is_ctg(self) -> bool:
        """True for CTG FIGO features (the pipeline then runs :class:`biosig.ctg.CTGFeatureChain`)."""
        return is_ctg_feature_set(self.names)


_SECTIONS = {"preprocess": PreprocessConfig, "window": WindowConfig, "features": FeatureConfig,
             "ctg": CTGConfig, "quality": QualityConfig}


@dataclass
class PipelineConfig:
    """Everything one classification pipeline needs to know before it sees data.

    Parameters
    ----------
    preprocess : PreprocessConfig
    window : WindowConfig
    features : FeatureConfig
    stream_name : str or None
        Signal stream to use (by name); None: the first of ``stream_type``.
    stream_type : str or None
        Content type of the stream to use, e.g. "EMG" or "CTG".
    channels : list of str or None
        Channel labels to use, in this order; None: all channels.
    srate : float or None
        Sampling rate in Hz these settings were made for (e.g. a model's training data); a
        stream at another rate is refused. None: any rate.
    ctg : CTGConfig
        CTG cleaning/feature rules; used only when ``features`` are CTG features.
    quality : QualityConfig
        Per-window clipped/flat channel checks of the EMG chain (not used by the CTG chain).
    """

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    stream_name: str | None = None
    stream_type: str | None = None
    channels: list[str] | None = None
    srate: float | None = None
    ctg: CTGConfig = field(default_factory=CTGConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self):
        for name, kind in _SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise BiosigError(f"{name} must be a {kind.__name__}")
        for name in ("stream_name", "stream_type"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise BiosigError(f"{name} must be a string, got {value!r}")
        if self.channels is not None:
            if isinstance(self.channels, str) or not all(
                isinstance(c, str) for c in self.channels
            ):
                raise BiosigError(f"channels must be a list of labels, got {self.channels!r}")
            self.channels = list(self.channels)
            if not self.channels:
                raise BiosigError("channels is empty; leave it out to use all channels")
            if len(set(self.channels)) != len(self.channels):
                raise BiosigError(f"channels lists a label twice: {self.channels}")
        self.srate = _optional_positive(self.srate, "srate")

    def validate(self, fs: float) -> "PipelineConfig":
        """Check every section against an input rate of ``fs`` Hz (windows at the output rate)."""
        self.preprocess.validate(fs)
        self.window.validate(self.preprocess.output_rate(fs))
        self.features.validate(fs)
        return self

    def adapted_to(self, fs: float) -> "PipelineConfig":
        """A copy whose preprocessing is adapted to ``fs`` Hz (see
        :meth:`PreprocessConfig.adapted_to`), validated."""
        adapted = dataclasses.replace(self, preprocess=self.preprocess.adapted_to(fs))
        return adapted.validate(fs)

    @classmethod
    def for_rate(cls, fs: float, modality: str = "EMG") -> "PipelineConfig":
        """The preset for ``modality`` ("EMG" or "CTG", any case), adapted to ``fs`` Hz.

        Parameters
        ----------
        fs : float
            Sampling rate of the stream in Hz.
        modality : str
            Stream content type; selects :meth:`emg_default` or :meth:`ctg_default`.
        """
        presets = {"emg": cls.emg_default, "ctg": cls.ctg_default}
        key = str(modality).strip().lower()
        if key not in presets:
            raise BiosigError(
                f"no preset for stream type {modality!r}; use one of EMG, CTG "
                "or give a configuration file"
            )
        return presets[key](fs)

    def to_dict(self) -> dict:
        """Nested plain dict, JSON-serialisable; :meth:`from_dict` reverses it."""
        out = {
            "stream_name": self.stream_name,
            "stream_type": self.stream_type,
            "channels": None if self.channels is None else list(self.channels),
            "srate": self.srate,
        }
        for name in _SECTIONS:
            out[name] = getattr(self, name).to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "PipelineConfig":
        """Build from a nested dict (as :meth:`to_dict` or a TOML file gives)."""
        if not isinstance(data, dict):
            raise BiosigError(f"pipeline config must be a table, got {data!r}")
        check_known_keys(cls, data, "pipeline config")
        kwargs = dict(data)
        for name, kind in _SECTIONS.items():
            if name in kwargs:
                kwargs[name] = kind.from_dict(kwargs[name])
        return cls(**kwargs)

    @classmethod
    def emg_default(cls, fs: float | None = None) -> "PipelineConfig":
        """Surface-EMG defaults, adapted to ``fs`` Hz when given (see :meth:`adapted_to`).

        - 20-450 Hz band-pass: 20 Hz removes motion artefact and cable sway, and sEMG holds
          almost no power above ~450 Hz (De Luca et al. 2010, J Biomech 43:1573). Below 900 Hz
          sampling (e.g. the Myo at 200 Hz) this becomes a 20 Hz high-pass.
        - 50 Hz notch and its harmonics up to the 450 Hz band edge (50, 100, ..., 450 Hz):
          mains harmonics fall inside the EMG band. Above the edge the band-pass already
          attenuates them (-5 dB at 500 Hz, -24 dB at 900 Hz) and little mains power is left,
          while each extra notch costs as much as a quarter of the band-pass: notching every
          multiple below Nyquist at 2048 Hz needs 24 sections instead of 13, ~1.5x the
          filtering time. Set ``notch_max_hz = None`` to notch them all, and
          ``notch_hz = 60.0`` where the mains is 60 Hz.
        - Rectify + 100 ms moving RMS: RMS is the amplitude estimator of choice for sEMG, and
          100 ms follows contraction changes while halving the variance of a 50 ms window; it
          fits twice into the 200 ms analysis window.
        - 200 ms windows every 50 ms: long enough for stable time-domain features, short enough
          for a < 300 ms controller delay (Englehart & Hudgins 2003).
        """
        config = cls(
            preprocess=PreprocessConfig(
                bandpass_hz=(20.0, 450.0),
                notch_hz=50.0,
                notch_harmonics=None,
                notch_max_hz=450.0,
                rectify=True,
                envelope="moving_rms",
                envelope_window_s=0.1,
            ),
            window=WindowConfig(length_s=0.2, hop_s=0.05),
            features=FeatureConfig(names=FEATURE_NAMES),
            stream_type="EMG",
        )
        return config if fs is None else config.adapted_to(fs)

    @classmethod
    def ctg_default(cls, fs: float | None = None) -> "PipelineConfig":
        """Cardiotocography (FHR + UC at 4 Hz) defaults: the CTG FIGO feature chain.

        No filtering (FHR/UC are already smoothed, low-rate traces; filtering would smear
        decelerations): the CTG chain (:mod:`biosig.ctg`) handles signal loss, artefacts and
        short gaps itself, with the rules of :class:`biosig.ctg.CTGConfig`. Windows of 10 min
        (the segment FIGO 2015 assesses baseline and variability over) every 1 min, so the
        features follow the trace minute by minute. Features: all of
        :data:`biosig.ctg.CTG_FEATURE_NAMES` (baseline, STV, LTV, accelerations,
        decelerations and their kinds, tachy-/bradycardia time, contractions, signal loss).
        """
        config = cls(
            preprocess=PreprocessConfig(),
            window=WindowConfig(length_s=600.0, hop_s=60.0),
            features=FeatureConfig(names=CTG_FEATURE_NAMES),
            stream_type="CTG",
            ctg=CTGConfig(),
        )
        return config if fs is None else config.adapted_to(fs)


def load_config(path) -> PipelineConfig:
    """Read a :class:`PipelineConfig` from a TOML file (layout in this module's docstring).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    PipelineConfig
    """
    path = check_existing_file(path, "config file")
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise BiosigError(f"config file {path} is not valid TOML: {err}") from None
    return PipelineConfig.from_dict(data)
