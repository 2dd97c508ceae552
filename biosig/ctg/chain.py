"""Stream CTG samples in, FIGO window features out, with events and the baseline kept for display.

:class:`CTGFeatureChain` is what :class:`biosig.stream.pipeline.StreamProcessor` runs instead
of the EMG :class:`~biosig.dsp.FeatureChain` when the configuration's features are CTG ones
(:data:`biosig.ctg.CTG_FEATURE_NAMES`). Per push:

1. the FHR and UC channels are picked by label (``[ctg] fhr_channel`` / ``uc_channel``);
2. :class:`~biosig.ctg.preprocess.CTGPreprocessor` settles the samples it can (loss, artefacts,
   short-gap interpolation; an open gap is held back up to ``max_gap_s``);
3. settled samples go to a buffer; every window (``[window] length_s`` / ``hop_s``, 10 min /
   1 min by default) completed by them is analysed (:func:`~biosig.ctg.features.analyse_window`);
4. the window's features form one row of the returned :class:`~biosig.dsp.FeatureBatch`
   (``t_end`` = time of the window's last sample; ``flags`` = less valid FHR than
   ``min_valid_share``, or a feature that could not be computed (NaN: e.g. the contraction
   count of a window whose tocogram is mostly missing), so training leaves such windows out),
   and its events and baseline update the display state.

Display state, for the GUI and reports (thread-safe: the pipeline pushes on its processing
thread, a GUI reads from its own):

- :meth:`CTGFeatureChain.snapshot` returns a :class:`CTGSnapshot`: the events found so far
  (each once: the first window that holds it whole, not touching either window edge, fixes
  it), the baseline trace (each window contributes its last hop, the first window all of
  it), the latest window's features and its end time.

Features depend only on the window's samples, and the preprocessor's state machine gives the
same settled samples for any chunking, so the features (and events) are identical whether the
stream comes in chunks or in one call.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from biosig._checks import BiosigError, check_positive, check_samples
from biosig.ctg.config import UC_FEATURES, CTGConfig, check_ctg_feature_names
from biosig.ctg.features import CTGEvent, WindowAnalysis, analyse_window
from biosig.ctg.preprocess import CleanChunk, CTGPreprocessor
from biosig.dsp.window_features import FeatureBatch
from biosig.dsp.windows import window_lengths

# Bounds of the display state (a day of events; 4 h of baseline at 4 Hz).
_MAX_EVENTS = 5000
_MAX_BASELINE_SECONDS = 4 * 3600.0


@dataclass
class CTGSnapshot:
    """A consistent copy of the chain's display state.

    Attributes
    ----------
    events : list of CTGEvent
        Every event fixed so far, in time order.
    baseline_t, baseline_bpm : ndarray
        Baseline trace: sample times (s) and values (bpm; NaN where undetermined).
    features : dict of str to float
        Latest window's features (empty before the first window).
    t_end : float
        End time of the latest window, s (NaN before the first window).
    n_windows : int
        Windows analysed so far.
    """

    events: list = field(default_factory=list)
    baseline_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_bpm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    features: dict = field(default_factory=dict)
    t_end: float = float("nan")
    n_windows: int = 0


def _find_label(labels, wanted: str) -> int | None:
    lowered = [str(label).strip().lower() for label in labels]
    return lowered.index(wanted.lower()) if wanted.lower() in lowered else None


class CTGFeatureChain:
    """CTG samples in, FIGO window features out (the CTG counterpart of ``FeatureChain``).

    Parameters
    ----------
    config : CTGConfig
        Cleaning, baseline, event and contraction rules.
    fs : float
        Sampling rate, Hz.
    channel_labels : sequence of str
        Labels of the columns pushed; must include ``config.fhr_channel``.
    features : sequence of str
        CTG feature names to output (from :data:`biosig.ctg.CTG_FEATURE_NAMES`), in order.
    length_s, hop_s : float
        Window length and hop, s.
    """

    def __init__(self, config: CTGConfig, fs: float, channel_labels, features, length_s=600.0,
                 hop_s=60.0):
        if not isinstance(config, CTGConfig):
            raise BiosigError(f"config must be a CTGConfig, got {type(config).__name__}")
        self.config = config
        self.fs = check_positive(fs, "fs")
        self.channel_labels = [str(c) for c in channel_labels]
        self.features = check_ctg_feature_names(features)
        self.length, self.hop = window_lengths(self.fs, length_s, hop_s)
        self.fhr_index = _find_label(self.channel_labels, config.fhr_channel)
        if self.fhr_index is None:
            raise BiosigError(
                f"CTG features need an FHR channel labelled {config.fhr_channel!r}; the stream "
                f"has {self.channel_labels} (set [ctg] fhr_channel)"
            )
        self.uc_index = _find_label(self.channel_labels, config.uc_channel)
        self.n_channels = len(self.channel_labels)
        self.preprocessor = CTGPreprocessor(config, self.fs)
        self._lock = threading.Lock()
        self.reset()

    @property
    def feature_names(self) -> list[str]:
        """``"<feature>:<channel label>"``: UC features on the UC label, the others on FHR."""
        fhr = self.channel_labels[self.fhr_index]
        uc = self.config.uc_channel if self.uc_index is None else self.channel_labels[self.uc_index]
        return [f"{name}:{uc if name in UC_FEATURES else fhr}" for name in self.features]

    @property
    def n_nonfinite(self) -> np.ndarray:
        """Non-finite input values seen (FHR and UC together)."""
        return np.array([self.preprocessor.n_nonfinite])

    def reset(self) -> "CTGFeatureChain":
        """Forget the stream and the display state."""
        self.preprocessor.reset()
        self._buffer = CleanChunk(np.zeros(0), np.zeros(0, np.int8), np.zeros(0), np.zeros(0))
        self._buffer_start = 0           # stream index of the buffer's first sample
        self._next_end = self.length     # stream index one past the next window's last sample
        with self._lock:
            self._events: deque = deque(maxlen=_MAX_EVENTS)
            self._baseline_t: deque = deque()
            self._baseline_bpm: deque = deque()
            self._latest: WindowAnalysis | None = None
            self._latest_t = float("nan")
            self._n_windows = 0
        return self

    def push(self, samples, timestamps) -> FeatureBatch:
        """Add raw samples; return the features of the windows they complete.

        Parameters
        ----------
        samples : array_like, shape (n_samples, n_channels)
            FHR in bpm and the tocogram, in the order of ``channel_labels``.
        timestamps : array_like, shape (n_samples,)
            Sample times, s.

        Returns
        -------
        FeatureBatch
        """
        x = check_samples(samples, self.n_channels, "input")
        t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if t.shape[0] != x.shape[0]:
            raise BiosigError(f"timestamps must have shape ({x.shape[0]},), got {t.shape}")
        uc = None if self.uc_index is None else x[:, self.uc_index]
        settled = self.preprocessor.process(x[:, self.fhr_index], uc, t)
        if len(settled):
            b = self._buffer
            self._buffer = CleanChunk(*(np.concatenate((getattr(b, k), getattr(settled, k)))
                                        for k in ("fhr", "code", "uc", "t")))
        rows, t_end, flags, starts = [], [], [], []
        n_have = self._buffer_start + len(self._buffer)
        while self._next_end <= n_have:
            start = self._next_end - self.length
            analysis, window_t = self._analyse(start)
            row = [analysis.features[name] for name in self.features]
            rows.append(row)
            t_end.append(window_t[-1])
            flags.append(analysis.valid_share < self.config.min_valid_share
                         or not np.isfinite(row).all())
            starts.append(start)
            self._publish(analysis, window_t, first=start == 0)
            self._next_end += self.hop
        self._trim()
        if not rows:
            return FeatureBatch(np.zeros(0), np.zeros((0, len(self.features))),
                                np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
        return FeatureBatch(np.asarray(t_end), np.asarray(rows, dtype=np.float64),
                            np.asarray(flags, dtype=bool), np.asarray(starts, dtype=np.int64))

    def _analyse(self, start: int) -> tuple[WindowAnalysis, np.ndarray]:
        lo = start - self._buffer_start
        sl = slice(lo, lo + self.length)
        b = self._buffer
        analysis = analyse_window(b.fhr[sl], b.code[sl], b.uc[sl], b.t[sl], self.config, self.fs,
                                  has_uc=self.uc_index is not None)
        return analysis, b.t[sl]

    def _trim(self) -> None:
        """Drop buffered samples no future window needs."""
        keep_from = self._next_end - self.length
        drop = keep_from - self._buffer_start
        if drop > 0:
            b = self._buffer
            self._buffer = CleanChunk(b.fhr[drop:], b.code[drop:], b.uc[drop:], b.t[drop:])
            self._buffer_start = keep_from

    def _publish(self, analysis: WindowAnalysis, window_t: np.ndarray, *, first: bool) -> None:
        """Update the display state with one window."""
        t0, t1 = window_t[0], window_t[-1]
        part = slice(0, None) if first else slice(-self.hop, None)
        with self._lock:
            listed = list(self._events)
            for event in analysis.events:
                if event.t_start <= t0 or event.t_end >= t1:
                    continue  # cut by the window edge: a later window sees it whole
                if any(e.family == event.family and e.t_start <= event.t_end
                       and e.t_end >= event.t_start for e in listed):
                    continue
                self._events.append(event)
                listed.append(event)
            self._baseline_t.append(window_t[part].copy())
            self._baseline_bpm.append(analysis.baseline[part].copy())
            while (len(self._baseline_t) > 1
                   and t1 - self._baseline_t[0][-1] > _MAX_BASELINE_SECONDS):
                self._baseline_t.popleft()
                self._baseline_bpm.popleft()
            self._latest = analysis
            self._latest_t = float(t1)
            self._n_windows += 1

    def snapshot(self) -> CTGSnapshot:
        """A copy of the display state (events, baseline trace, latest features)."""
        with self._lock:
            events = sorted(self._events, key=lambda e: (e.t_start, e.kind))
            bt = np.concatenate(list(self._baseline_t)) if self._baseline_t else np.zeros(0)
            bb = np.concatenate(list(self._baseline_bpm)) if self._baseline_bpm else np.zeros(0)
            features = {} if self._latest is None else dict(self._latest.features)
            return CTGSnapshot(events=events, baseline_t=bt, baseline_bpm=bb, features=features,
                               t_end=self._latest_t, n_windows=self._n_windows)

    @property
    def events(self) -> list[CTGEvent]:
        """Events fixed so far (see :meth:`snapshot`)."""
        return self.snapshot().events

    def __repr__(self) -> str:
        return (f"<CTGFeatureChain | {self.channel_labels} @ {self.fs:g} Hz | "
                f"{self.length}/{self.hop} samples | {self._n_windows} windows>")
