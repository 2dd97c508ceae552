"""FIGO features of one CTG window: baseline, variability, events, contractions.

:func:`analyse_window` works on the cleaned samples of one window (from
:class:`~biosig.ctg.preprocess.CTGPreprocessor`). Everything here looks only at the window's
own samples, so a window's features do not depend on how the stream was chunked. The rules
(details and sources in ``docs/ctg.md``):

- **Maternal-heart-rate-like segments.** A run of valid FHR entered by a drop and left by a
  rise of more than ``jump_bpm`` across an artefact or loss (an abrupt step, where a
  deceleration descends gradually), lasting at least 60 s with a median below
  ``maternal_max_bpm`` (100 bpm), is taken as the maternal rate picked up by the transducer
  and is lost. This is our own conservative heuristic, not a published rule: without a
  maternal channel it cannot be certain, and a deep deceleration with signal loss at both
  ends and an abrupt onset looks the same.
- **Baseline** (iterative, after Dawes et al. 1982 and Mantel et al. 1990): FHR averaged over
  3.75 s epochs (1/16 min); the start level is the mode of the epoch histogram (1 bpm bins,
  5-bin smoothing); then, for each band in ``baseline_bands_bpm`` (20, 15, 10 bpm), the
  baseline trace is the moving mean over ``baseline_smooth_s`` (3 min) of the epochs within
  the band around the previous trace, so accelerations and decelerations drop out step by
  step. The feature is the mean of the trace (bpm).
- **Accelerations / decelerations** (FIGO 2015): the FHR more than ``boundary_bpm`` (5 bpm)
  above / below the baseline trace for at least ``accel_min_s`` / ``decel_min_s`` (15 s),
  reaching ``event_bpm`` (15 bpm). Decelerations longer than 3 min are *prolonged*; one whose
  nadir comes less than 30 s after its onset is *variable* (abrupt); a gradual one overlapping
  a contraction is *early* if its nadir follows the contraction peak by at most
  ``late_lag_s`` (20 s), else *late*; one without a contraction (or without UC) stays
  *unclassified*.
- **STV** (Dawes-Redman): mean absolute difference of the mean pulse interval (60000 / FHR,
  ms) between consecutive valid epochs outside decelerations.
- **LTV** (FIGO/SisPorto variability amplitude): mean over whole minutes (at least half valid)
  of the FHR range (max - min, bpm) of the valid samples outside accelerations and
  decelerations.
- **Contractions**: tocogram smoothed by a ``uc_smooth_s`` moving mean; resting tone = its
  10th percentile in the window; a contraction rises more than ``uc_rise`` above the tone for
  at least ``uc_min_s`` (30 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biosig.ctg.config import CTGConfig
from biosig.ctg.preprocess import MATERNAL, VALID, _runs

#: Event kinds of :class:`CTGEvent`.
EVENT_KINDS = (
    "acceleration", "early_deceleration", "late_deceleration", "variable_deceleration",
    "prolonged_deceleration", "deceleration", "contraction", "maternal",
)

_MATERNAL_MIN_S = 60.0
_UC_TONE_PERCENTILE = 10.0


@dataclass(frozen=True)
class CTGEvent:
    """One event with its times.

    Attributes
    ----------
    t_start, t_end : float
        First and last sample time, s (the stream's clock).
    kind : str
        One of :data:`EVENT_KINDS`; decelerations carry their type
        (``"deceleration"`` = unclassified).
    depth : float
        Accelerations: peak rise above baseline, bpm; decelerations: depth of the nadir below
        baseline, bpm; contractions: peak above resting tone (tocogram units); maternal: median
        level, bpm.
    t_peak : float
        Time of the peak / nadir, s.
    """

    t_start: float
    t_end: float
    kind: str
    depth: float
    t_peak: float

    @property
    def duration_s(self) -> float:
        return self.t_end - self.t_start

    @property
    def family(self) -> str:
        """"acceleration", "deceleration", "contraction" or "maternal"."""
        return "deceleration" if self.kind.endswith("deceleration") else self.kind

    def to_dict(self) -> dict:
        return {"t_start": self.t_start, "t_end": self.t_end, "kind": self.kind,
                "depth": self.depth, "t_peak": self.t_peak}


@dataclass
class WindowAnalysis:
    """Everything computed for one window.

    Attributes
    ----------
    features : dict of str to float
        Every feature of :data:`biosig.ctg.config.CTG_FEATURE_NAMES`.
    events : list of CTGEvent
        Events found in the window (cut at its edges).
    baseline : ndarray, shape (n,)
        Baseline trace at every sample of the window, bpm (NaN where undetermined).
    valid_share : float
        Share of FHR samples valid or interpolated.
    """

    features: dict
    events: list = field(default_factory=list)
    baseline: np.ndarray | None = None
    valid_share: float = 0.0


def moving_mean(x: np.ndarray, span: int) -> np.ndarray:
    """Centered moving mean over ``span`` samples ignoring NaN (NaN where none is finite)."""
    finite = np.isfinite(x)
    values = np.where(finite, x, 0.0)
    kernel = np.ones(int(span))
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(finite.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mark_maternal(fhr: np.ndarray, code: np.ndarray, config: CTGConfig, fs: float) -> np.ndarray:
    """Boolean mask of maternal-like samples (segment plus the gaps around it)."""
    mask = np.zeros(fhr.shape[0], dtype=bool)
    valid = code == VALID
    starts, ends = _runs(valid)
    min_len = _MATERNAL_MIN_S * fs
    for i in range(1, len(starts) - 1):
        a, b = starts[i], ends[i]
        if b - a < min_len:
            continue
        level = np.median(fhr[a:b])
        before, after = fhr[ends[i - 1] - 1], fhr[starts[i + 1]]
        if (level < config.maternal_max_bpm and before - fhr[a] > config.jump_bpm
                and after - fhr[b - 1] > config.jump_bpm):
            mask[ends[i - 1]:starts[i + 1]] = True
    return mask


def iterative_baseline(fhr: np.ndarray, config: CTGConfig, fs: float) -> np.ndarray:
    """Baseline trace (bpm) at every sample; NaN everywhere if no epoch is valid."""
    n = fhr.shape[0]
    e = config.samples(config.epoch_s, fs)
    n_epochs = n // e
    if n_epochs == 0:
        return np.full(n, np.nan)
    epochs = fhr[: n_epochs * e].reshape(n_epochs, e)
    n_finite = np.isfinite(epochs).sum(axis=1)
    valid = n_finite * 2 >= e
    with np.errstate(invalid="ignore"):
        means = np.where(valid, np.nansum(epochs, axis=1) / np.maximum(n_finite, 1), np.nan)
    if not valid.any():
        return np.full(n, np.nan)
    lo, hi = config.fhr_min_bpm, config.fhr_max_bpm
    counts, edges = np.histogram(means[valid], bins=np.arange(np.floor(lo), np.ceil(hi) + 1.0))
    smooth = np.convolve(counts, np.ones(5), mode="same")
    trace = np.full(n_epochs, 0.5 * (edges[np.argmax(smooth)] + edges[np.argmax(smooth) + 1]))
    span = max(1, int(round(config.baseline_smooth_s / config.epoch_s)))
    index = np.arange(n_epochs)
    for band in config.baseline_bands_bpm:
        keep = valid & (np.abs(means - trace) <= band)
        if not keep.any():
            break
        smoothed = moving_mean(np.where(keep, means, np.nan), span)
        known = np.isfinite(smoothed)
        trace = np.interp(index, index[known], smoothed[known])
    centres = (index + 0.5) * e - 0.5
    return np.interp(np.arange(n), centres, trace)


def _excursions(deviation: np.ndarray, sign: int, min_s: float, config: CTGConfig, fs: float):
    """(start, end, peak index, amplitude) of runs beyond the boundary in direction ``sign``."""
    with np.errstate(invalid="ignore"):
        beyond = sign * deviation > config.boundary_bpm
    out = []
    starts, ends = _runs(beyond)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if (b - a) / fs < min_s:
            continue
        segment = sign * deviation[a:b]
        peak = int(np.argmax(segment))
        if segment[peak] >= config.event_bpm:
            out.append((a, b, a + peak, float(segment[peak])))
    return out


def detect_contractions(uc: np.ndarray, t: np.ndarray, config: CTGConfig, fs: float):
    """Contractions in a window: list of :class:`CTGEvent`, or None if UC is mostly missing."""
    if np.isfinite(uc).sum() * 2 < uc.shape[0]:
        return None
    smooth = moving_mean(uc, config.samples(config.uc_smooth_s, fs))
    tone = np.nanpercentile(smooth, _UC_TONE_PERCENTILE)
    rise = smooth - tone
    events = []
    with np.errstate(invalid="ignore"):
        above = rise > config.uc_rise
    starts, ends = _runs(above)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if (b - a) / fs >= config.uc_min_s:
            peak = a + int(np.nanargmax(rise[a:b]))
            events.append(CTGEvent(float(t[a]), float(t[b - 1]), "contraction",
                                   float(rise[peak]), float(t[peak])))
    return events


def _deceleration_kind(a, b, nadir, t, contractions, config: CTGConfig, fs: float) -> str:
    duration = (b - a) / fs
    if duration > config.prolonged_s:
        return "prolonged_deceleration"
    if (nadir - a) / fs < config.variable_onset_s:
        return "variable_deceleration"
    if not contractions:
        return "deceleration"
    t_start, t_end, t_nadir = t[a], t[b - 1], t[nadir]
    overlapping = [c for c in contractions if c.t_start <= t_end and c.t_end >= t_start]
    if not overlapping:
        return "deceleration"
    nearest = min(overlapping, key=lambda c: abs(c.t_peak - t_nadir))
    lag = t_nadir - nearest.t_peak
    return "late_deceleration" if lag > config.late_lag_s else "early_deceleration"


def _stv_ms(fhr: np.ndarray, exclude: np.ndarray, config: CTGConfig, fs: float) -> float:
    e = config.samples(config.epoch_s, fs)
    n_epochs = fhr.shape[0] // e
    if n_epochs < 2:
        return np.nan
    epochs = fhr[: n_epochs * e].reshape(n_epochs, e)
    n_finite = np.isfinite(epochs).sum(axis=1)
    ok = (n_finite * 2 >= e) & ~exclude[: n_epochs * e].reshape(n_epochs, e).any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        interval = 60000.0 / (np.nansum(epochs, axis=1) / np.maximum(n_finite, 1))
    pairs = ok[1:] & ok[:-1]
    if not pairs.any():
        return np.nan
    with np.errstate(invalid="ignore"):  # epochs without samples give inf - inf, not used
        steps = np.abs(np.diff(interval))
    return float(np.mean(steps[pairs]))


def _ltv_bpm(fhr: np.ndarray, usable: np.ndarray, fs: float) -> float:
    m = max(1, int(round(60.0 * fs)))
    n_min = fhr.shape[0] // m
    ranges = []
    for k in range(n_min):
        sel = usable[k * m:(k + 1) * m]
        if sel.sum() * 2 >= m:
            values = fhr[k * m:(k + 1) * m][sel]
            ranges.append(values.max() - values.min())
    return float(np.mean(ranges)) if ranges else np.nan


def analyse_window(fhr, code, uc, t, config: CTGConfig, fs: float, *, has_uc: bool = True) -> WindowAnalysis:
    """FIGO features and events of one window of cleaned samples.

    Parameters
    ----------
    fhr : ndarray, shape (n,)
        Cleaned FHR, bpm (NaN where missing).
    code : ndarray of int8, shape (n,)
        Sample codes from the preprocessor (0 valid).
    uc : ndarray, shape (n,)
        Tocogram (NaN where missing).
    t : ndarray, shape (n,)
        Sample times, s.
    config : CTGConfig
    fs : float
        Sampling rate, Hz.
    has_uc : bool
        Whether the stream has a UC channel.

    Returns
    -------
    WindowAnalysis
    """
    n = fhr.shape[0]
    fhr = fhr.copy()
    code = code.copy()
    events = []
    if config.maternal_check:
        maternal = mark_maternal(fhr, code, config, fs)
        if maternal.any():
            for a, b in zip(*_runs(maternal)):
                events.append(CTGEvent(float(t[a]), float(t[b - 1]), "maternal",
                                       float(np.nanmedian(fhr[a:b])), float(t[a])))
            fhr[maternal] = np.nan
            code[maternal] = MATERNAL
    finite = np.isfinite(fhr)
    valid_share = float(finite.mean()) if n else 0.0
    baseline = iterative_baseline(fhr, config, fs)
    deviation = fhr - baseline
    contractions = detect_contractions(uc, t, config, fs) if has_uc else None
    in_accel = np.zeros(n, dtype=bool)
    in_decel = np.zeros(n, dtype=bool)
    accels, decels = [], []
    for a, b, peak, amp in _excursions(deviation, +1, config.accel_min_s, config, fs):
        in_accel[a:b] = True
        accels.append(CTGEvent(float(t[a]), float(t[b - 1]), "acceleration", amp, float(t[peak])))
    for a, b, nadir, depth in _excursions(deviation, -1, config.decel_min_s, config, fs):
        in_decel[a:b] = True
        kind = _deceleration_kind(a, b, nadir, t, contractions, config, fs)
        decels.append(CTGEvent(float(t[a]), float(t[b - 1]), kind, depth, float(t[nadir])))
    events.extend(accels + decels + (contractions or []))
    events.sort(key=lambda ev: (ev.t_start, ev.kind))

    kinds = [d.kind for d in decels]
    enough = valid_share >= config.min_valid_share
    level = (lambda value: value) if enough else (lambda value: np.nan)
    with np.errstate(invalid="ignore"):
        tachy = float(np.mean(baseline > config.tachycardia_bpm))
        brady = float(np.mean(baseline < config.bradycardia_bpm))
    features = {
        "baseline": level(float(np.nanmean(baseline)) if np.isfinite(baseline).any() else np.nan),
        "stv": level(_stv_ms(fhr, in_decel, config, fs)),
        "ltv": level(_ltv_bpm(fhr, (code == VALID) & ~in_accel & ~in_decel, fs)),
        "accelerations": float(len(accels)),
        "decelerations": float(len(decels)),
        "decel_depth": max((d.depth for d in decels), default=0.0),
        "decel_time": float(in_decel.mean()) if n else 0.0,
        "early_decels": float(kinds.count("early_deceleration")),
        "late_decels": float(kinds.count("late_deceleration")),
        "variable_decels": float(kinds.count("variable_deceleration")),
        "prolonged_decels": float(kinds.count("prolonged_deceleration")),
        "tachycardia": level(tachy),
        "bradycardia": level(brady),
        "contractions": np.nan if contractions is None else float(len(contractions)),
        "loss": float(np.mean(code != VALID)) if n else 1.0,
    }
    return WindowAnalysis(features=features, events=events, baseline=baseline,
                          valid_share=valid_share)
