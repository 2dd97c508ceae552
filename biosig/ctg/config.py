"""CTG settings: the ``[ctg]`` section of a pipeline configuration and the FIGO feature names.

This module imports nothing from :mod:`biosig.config` (which imports it), so the section can be
part of :class:`biosig.config.PipelineConfig`. In TOML::

    [features]
    names = ["baseline", "stv", "ltv", "accelerations", "decelerations", "contractions", "loss"]

    [window]
    length_s = 600.0                 # FIGO assesses 10-min segments
    hop_s = 60.0

    [ctg]
    max_gap_s = 15.0                 # interpolate signal loss up to 15 s
    jump_bpm = 25.0                  # beat-to-beat artefact threshold

Where each default comes from is in :class:`CTGConfig` and ``docs/ctg.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from biosig._checks import BiosigError, check_int, check_names, check_positive
from biosig._config_section import ConfigSection

#: The CTG FIGO features, in their default order. Each is computed per window; the FHR ones
#: are named ``<feature>:<FHR label>``, ``contractions`` ``contractions:<UC label>``.
CTG_FEATURE_NAMES = (
    "baseline",           # baseline FHR, bpm
    "stv",                # short-term variability (Dawes-Redman, 3.75 s epochs), ms
    "ltv",                # long-term variability: mean per-minute FHR range, bpm
    "accelerations",      # count in the window
    "decelerations",      # count in the window (all kinds)
    "decel_depth",        # deepest deceleration below baseline, bpm (0: none)
    "decel_time",         # share of the window's time inside decelerations, 0-1
    "early_decels",       # counts by kind (need the UC channel, except variable/prolonged)
    "late_decels",
    "variable_decels",
    "prolonged_decels",
    "tachycardia",        # share of the window with baseline > tachycardia_bpm, 0-1
    "bradycardia",        # share of the window with baseline < bradycardia_bpm, 0-1
    "contractions",       # contraction count (UC channel)
    "loss",               # share of FHR samples lost (0, out of range, artefact, maternal)
)

#: Features taken from the UC channel; all others come from the FHR channel.
UC_FEATURES = ("contractions",)


def is_ctg_feature_set(names) -> bool:
    """True if every name in ``names`` is a CTG feature (the pipeline then runs the CTG chain)."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    return bool(names) and all(n in CTG_FEATURE_NAMES for n in names)


def check_ctg_feature_names(names) -> tuple[str, ...]:
    """Return ``names`` as a tuple, refusing unknown or repeated CTG feature names."""
    return check_names(names, CTG_FEATURE_NAMES, "CTG feature")


def _positive(value, name):
    return check_positive(value, f"[ctg] {name}")


@dataclass
class CTGConfig(ConfigSection):
    """Signal-loss, artefact, baseline, event and contraction rules of the CTG chain.

    Parameters
    ----------
    fhr_channel, uc_channel : str
        Channel labels of the fetal heart rate (bpm) and the tocogram. Without the UC channel
        the contraction count is NaN and gradual decelerations stay unclassified.
    fhr_min_bpm, fhr_max_bpm : float
        Physiological FHR range in bpm; samples outside it (and 0, the monitors' code for
        "no signal") are signal loss. 50-240 bpm is the range accepted by the CTU-UHB
        preprocessing (Chudacek et al. 2014) and by FHRMA.
    max_gap_s : float
        Missing stretches up to this long (s) are linearly interpolated once the signal comes
        back; longer ones stay missing. 15 s as in Spilka et al. (2012). Output is delayed by
        at most this much while a gap is open.
    jump_bpm, stable_samples, stable_bpm : float, int, float
        Beat-to-beat artefact rule (Chudacek et al. 2011; Spilka et al. 2012): a sample more
        than ``jump_bpm`` from the previous valid sample starts an artefact, which lasts until
        ``stable_samples`` consecutive samples each differ from the previous by less than
        ``stable_bpm``.
    maternal_check : bool
        Mark maternal-heart-rate-like segments as lost (see :mod:`biosig.ctg.features`).
    maternal_max_bpm : float
        A step-bounded segment whose median is below this (bpm) can be maternal.
    min_valid_share : float
        A window with less valid FHR than this share gets NaN level features and is flagged.
    epoch_s : float
        Epoch of the Dawes-Redman analysis, s (1/16 min).
    baseline_smooth_s : float
        Span of the moving mean that follows slow baseline changes, s.
    baseline_bands_bpm : tuple of float
        Successive exclusion bands of the iterative baseline, bpm (widest first).
    event_bpm : float
        Minimum amplitude of an acceleration or deceleration, bpm (FIGO: 15).
    boundary_bpm : float
        An event extends as long as the FHR stays more than this from the baseline, bpm.
    accel_min_s, decel_min_s : float
        Minimum duration of an acceleration / deceleration, s (15 s).
    prolonged_s : float
        A deceleration longer than this is prolonged, s (FIGO 2015: 3 min).
    variable_onset_s : float
        A deceleration reaching its nadir faster than this from its onset is variable, s
        (FIGO / NICHD: an abrupt drop, < 30 s).
    late_lag_s : float
        A gradual deceleration whose nadir follows the contraction peak by more than this is
        late, otherwise early, s.
    tachycardia_bpm, bradycardia_bpm : float
        FIGO 2015 limits of a normal baseline, bpm.
    uc_smooth_s : float
        Moving-mean span of the tocogram before contraction detection, s.
    uc_rise : float
        A contraction rises at least this far above the resting tone (tocogram units).
    uc_min_s : float
        Minimum contraction duration, s.
    """

    _section = "ctg"

    fhr_channel: str = "FHR"
    uc_channel: str = "UC"
    fhr_min_bpm: float = 50.0
    fhr_max_bpm: float = 240.0
    max_gap_s: float = 15.0
    jump_bpm: float = 25.0
    stable_samples: int = 5
    stable_bpm: float = 10.0
    maternal_check: bool = True
    maternal_max_bpm: float = 100.0
    min_valid_share: float = 0.5
    epoch_s: float = 3.75
    baseline_smooth_s: float = 180.0
    baseline_bands_bpm: tuple[float, ...] = (20.0, 15.0, 10.0)
    event_bpm: float = 15.0
    boundary_bpm: float = 5.0
    accel_min_s: float = 15.0
    decel_min_s: float = 15.0
    prolonged_s: float = 180.0
    variable_onset_s: float = 30.0
    late_lag_s: float = 20.0
    tachycardia_bpm: float = 160.0
    bradycardia_bpm: float = 110.0
    uc_smooth_s: float = 10.0
    uc_rise: float = 15.0
    uc_min_s: float = 30.0

    def __post_init__(self):
        for name in ("fhr_channel", "uc_channel"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise BiosigError(f"[ctg] {name} must be a channel label, got {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            if f.type == "float":
                setattr(self, f.name, _positive(getattr(self, f.name), f.name))
        if self.fhr_min_bpm >= self.fhr_max_bpm:
            raise BiosigError("[ctg] fhr_min_bpm must be below fhr_max_bpm")
        self.stable_samples = check_int(self.stable_samples, "[ctg] stable_samples", minimum=1)
        if not isinstance(self.maternal_check, bool):
            raise BiosigError(f"[ctg] maternal_check must be true or false, got {self.maternal_check!r}")
        if not 0 < self.min_valid_share <= 1:
            raise BiosigError(f"[ctg] min_valid_share must be in (0, 1], got {self.min_valid_share}")
        bands = self.baseline_bands_bpm
        if isinstance(bands, (int, float)):
            bands = (bands,)
        self.baseline_bands_bpm = tuple(_positive(b, "baseline_bands_bpm") for b in bands)
        if not self.baseline_bands_bpm:
            raise BiosigError("[ctg] baseline_bands_bpm needs at least one band")

    def samples(self, seconds: float, fs: float) -> int:
        """``seconds`` as a whole number of samples at ``fs`` Hz (at least 1)."""
        return max(1, int(round(seconds * fs)))
