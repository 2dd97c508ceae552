"""Per-window signal quality on the live path: clipped and flat channels, state carried.

The ``[quality]`` section of a pipeline configuration (:class:`QualityConfig`) and the
streaming check (:class:`WindowQuality`) that the EMG pipeline runs on the raw samples of every
window, next to the non-finite guard (which flags windows holding NaN/Inf). CTG streams are not
checked here: the CTG chain (:mod:`biosig.ctg`) has its own signal-loss and artefact rules.

Definitions (the same rules as the offline shares of :mod:`biosig.analysis.quality`):

- **Rails**: the channels' lowest and highest value, in the stream's units. The configured
  ``rails`` (e.g. an amplifier's input range) when given, else those of an integer channel
  format (int8: -128 and 127, as the Myo armband sends; int16 ...). A float stream without
  configured rails has none and is not checked for clipping.
- A sample is **at a rail** when it is finite and ``<= low`` or ``>= high``
  (:func:`at_rails`). Non-finite samples are the non-finite guard's, not clipping.
- A channel is **clipped** in a window when more than ``clip_share`` of the window's samples
  are at a rail.
- A channel is **flat** in a window when its peak-to-peak (maximum - minimum of its finite
  samples) is at most ``flat_ptp`` in the stream's units; the default 0 means exactly constant
  (a stuck or disconnected channel). A channel with no finite sample in the window is not flat
  (the non-finite flag covers it), nor is any channel of a one-sample window.

Windows are the feature chain's: ``length`` and ``hop`` in samples at the preprocessed rate
(:func:`~biosig.dsp.windows.window_lengths`), the first starting at the stream's first sample.
With a rate change (``fs_out = fs * up / down``), output sample ``m`` collects the input samples
since the previous output, ``[P(m), P(m + 1))`` with ``P(m) = floor((m - 1) * down / up) + 1``
and ``P(0) = 0`` (the rate converter's own accounting, :mod:`biosig.dsp.resample`); without
one, ``P(m) = m``. A window's quality is that of its input samples, and it is complete in the
push that brings its last input sample: the push in which the feature chain returns it.

Cost: the check is compiled loops (:mod:`biosig.dsp._quality_kernels`, numba; compiled on
first use, a few seconds once, then cached on disk), one call per push that completes windows.
That call cuts each hop of the samples the windows need into a *head* (the first
``length mod hop`` samples) and a *tail*, folds each part once into per-channel maximum,
minimum and count at a rail (finite samples only), and gives each window the combination of
``length // hop`` hop results and one head: within a push each sample is read once, whatever
the window overlap. Only the samples are carried from one push to the next, so a sample in
windows completed by several pushes is read by each: live, where a push completes about one
window, ``length / hop`` reads per sample (a few hundred comparisons per window); a whole
recording, about one. Samples wait in a preallocated buffer; a push that completes no window
only copies its samples there (no allocation in steady state). Maxima, minima and integer
counts are exact, so any chunking gives bit-identical flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from biosig._checks import BiosigError, check_int, check_positive
from biosig._config_section import ConfigSection, check_bool
from biosig.dsp.resample import rational_ratio
from biosig.dsp.windows import window_lengths

#: Bits of :attr:`biosig.stream.results.WindowResults.quality`.
QUALITY_NONFINITE = 1  # the window held NaN/Inf input samples (replaced before filtering)
QUALITY_CLIPPED = 2  # a channel was clipped (see the module docstring)
QUALITY_FLAT = 4  # a channel was flat

#: Integer channel formats (LSL / XDF names) whose rails are known.
INTEGER_FORMATS = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64}

# Longest run of samples handled at once; longer pushes (a whole recording) go in pieces, so
# the buffers stay a few pieces long.
_MAX_PIECE = 4096


def integer_rails(channel_format) -> tuple[float, float] | None:
    """Lowest and highest value of an integer channel format (``"int8"``: -128, 127); None for
    float and unknown formats."""
    kind = INTEGER_FORMATS.get(str(channel_format)) if channel_format is not None else None
    if kind is None:
        return None
    info = np.iinfo(kind)
    return float(info.min), float(info.max)


def at_rails(x, low: float, high: float, out=None, scratch=None, *,
             finite_only: bool = True) -> np.ndarray:
    """True where a sample is finite and at or beyond a rail (``<= low`` or ``>= high``).

    Parameters
    ----------
    x : ndarray
        Samples in the stream's units.
    low, high : float
        The rails.
    out, scratch : ndarray of bool, shape of ``x``, optional
        Where to write the result, and a work array (preallocated ones on a hot path).
    finite_only : bool
        Leave out ±Inf (which compare as beyond the rails). False for samples known to hold no
        Inf (NaN compares False anyway).

    Returns
    -------
    ndarray of bool
    """
    x = np.asarray(x)
    out = np.less_equal(x, low, out=out)
    np.logical_or(out, np.greater_equal(x, high, out=scratch), out=out)
    if finite_only and out.any():  # Inf are rare: look only when something is at a rail
        np.logical_and(out, np.isfinite(x, out=scratch), out=out)
    return out


@dataclass
class QualityConfig(ConfigSection):
    """Per-window signal-quality checks of the EMG pipeline (the ``[quality]`` section).

    The defaults flag no window of the bundled Myo and GRABMyo recordings (see
    ``docs/faults.md`` for the figures). In TOML::

        [quality]
        clip_share = 0.5          # clipped: more than half the window's samples at a rail
        rails = [-2.5, 2.5]       # a float stream's physical range (default: none)
        flat_ptp = 0.0            # flat: peak-to-peak <= 0, i.e. exactly constant

    Parameters
    ----------
    clipping : bool
        Check for clipped channels.
    clip_share : float
        A channel is clipped in a window when more than this share (0 <= share < 1) of the
        window's samples are at a rail. 0.5: the window's amplitude is more the rails' than the
        muscle's. A strong contraction on a Myo armband touches its int8 rails now and then
        (up to 10 % of a 200 ms window in the bundled recording, up to 88 % for one participant
        of the Myo readings data set).
    rails : (float, float) or None
        Lower and upper rail in the stream's units (an amplifier's input range, a converter's
        full scale). None: the rails of an integer channel format (int8: -128, 127); a float
        stream then has none and is not checked for clipping.
    flat : bool
        Check for flat channels.
    flat_ptp : float
        A channel is flat in a window when its peak-to-peak is at most this, in the stream's
        units (>= 0). 0: exactly constant, which no live EMG channel is (the bundled
        recordings' smallest 200 ms peak-to-peak is 3 int8 steps on the Myo, 0.12 on GRABMyo).
    """

    _section = "quality"

    clipping: bool = True
    clip_share: float = 0.5
    rails: tuple[float, float] | None = None
    flat: bool = True
    flat_ptp: float = 0.0

    def __post_init__(self):
        check_bool(self.clipping, "clipping")
        check_bool(self.flat, "flat")
        self.clip_share = check_positive(self.clip_share, "clip_share", allow_zero=True)
        if self.clip_share >= 1.0:
            raise BiosigError(
                "clip_share must be below 1 (a share of the window's samples), "
                f"got {self.clip_share:g}"
            )
        self.flat_ptp = check_positive(self.flat_ptp, "flat_ptp", allow_zero=True)
        if self.rails is not None:
            self.rails = self._check_rails(self.rails)

    @staticmethod
    def _check_rails(rails) -> tuple[float, float]:
        try:
            low, high = (float(v) for v in rails)
        except (TypeError, ValueError):
            raise BiosigError(f"rails must be two numbers [low, high], got {rails!r}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise BiosigError(f"rails must be finite with low < high, got [{low:g}, {high:g}]")
        return (low, high)

    def validate(self, fs: float | None = None) -> "QualityConfig":
        """Nothing depends on the rate; present for symmetry with the other sections."""
        return self



@dataclass
class QualityBatch:
    """Quality of the windows completed by one push, in window order.

    Attributes
    ----------
    clipped, flat : ndarray of bool, shape (n_windows, n_channels)
        Per window and channel (see the module docstring); all False for a check that is off.
    end_index : ndarray of int64, shape (n_windows,)
        Index of each window's last input sample, counted from the stream's first sample.
    """

    clipped: np.ndarray
    flat: np.ndarray
    end_index: np.ndarray

    @property
    def n_windows(self) -> int:
        return int(self.end_index.shape[0])

    def __len__(self) -> int:
        return self.n_windows

    @classmethod
    def concatenate(cls, batches) -> "QualityBatch":
        """Join batches of one stream in time order."""
        batches = list(batches)
        return cls(
            clipped=np.concatenate([b.clipped for b in batches]),
            flat=np.concatenate([b.flat for b in batches]),
            end_index=np.concatenate([b.end_index for b in batches]),
        )


class _Rows:
    """Rows appended at the end and dropped from the front of one preallocated storage.

    When the end is reached, the kept rows move to the front (or, when they would overlap their
    new place, to a storage twice as large): amortised O(1), and no allocation once the storage
    holds a few pushes' worth.
    """

    def __init__(self, width: int, dtype, capacity: int):
        self._storage = np.empty((capacity, width), dtype=dtype)
        self._head = 0
        self.size = 0

    def rows(self) -> np.ndarray:
        return self._storage[self._head : self._head + self.size]

    def reserve(self, n: int) -> np.ndarray:
        """The ``n`` rows after the current end, to write before :meth:`commit`."""
        end = self._head + self.size
        if end + n > self._storage.shape[0]:
            capacity = self._storage.shape[0]
            if self.size + n <= capacity and self.size <= self._head:
                self._storage[: self.size] = self._storage[self._head : end]
            else:
                storage = np.empty((max(2 * capacity, 2 * (self.size + n)), self._storage.shape[1]),
                                   dtype=self._storage.dtype)
                storage[: self.size] = self._storage[self._head : end]
                self._storage = storage
            self._head = 0
            end = self.size
        return self._storage[end : end + n]

    def commit(self, n: int) -> None:
        self.size += n

    def drop(self, n: int) -> None:
        n = min(n, self.size)
        self._head += n
        self.size -= n


def rate_ratio(fs: float, resample_hz=None, decimate: int = 1) -> tuple[int, int]:
    """``(up, down)`` of the preprocessing's rate change (``(1, 1)``: none), as the
    :class:`~biosig.dsp.Preprocessor` applies it."""
    if resample_hz is not None and float(resample_hz) != float(fs):
        return rational_ratio(fs, resample_hz)
    return 1, int(decimate)


class WindowQuality:
    """Streaming clipped/flat check of each window's raw samples (see the module docstring).

    Parameters
    ----------
    config : QualityConfig
        What to check and the thresholds.
    fs : float
        Rate of the pushed samples in Hz.
    n_channels : int
    length_s, hop_s : float
        Window length and hop in seconds (as the pipeline's ``[window]``).
    channel_format : str or None
        The stream's value format (``"int8"`` ...): its rails unless ``config.rails`` is set.
    up, down : int
        The preprocessing's rate change, ``fs_out = fs * up / down`` (:func:`rate_ratio`);
        the windows are cut at ``fs_out``, as the feature chain's.

    Attributes
    ----------
    rails : (float, float) or None
        The rails in use (None: no clipping check).
    length, hop : int
        Window length and hop in samples at ``fs * up / down``.
    """

    def __init__(self, config: QualityConfig, fs: float, n_channels: int, length_s: float,
                 hop_s: float, *, channel_format=None, up: int = 1, down: int = 1):
        if not isinstance(config, QualityConfig):
            raise BiosigError(f"config must be a QualityConfig, got {type(config).__name__}")
        self.config = config
        self.fs = check_positive(fs, "fs")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.channel_format = channel_format
        self.up = check_int(up, "up", minimum=1)
        self.down = check_int(down, "down", minimum=1)
        self.length, self.hop = window_lengths(self.fs * self.up / self.down, length_s, hop_s)
        self.rails = config.rails if config.rails is not None else integer_rails(channel_format)
        self.reset()

    @property
    def checks_clipping(self) -> bool:
        return self.config.clipping and self.rails is not None

    @property
    def checks_flat(self) -> bool:
        return self.config.flat

    def reset(self) -> "WindowQuality":
        """Forget the stream: the next sample is the first of the first window again."""
        ch = self.n_channels
        window_and_hop = self._position(self.length + self.hop) + 1  # in input samples
        # A few windows' worth: small enough to stay in the CPU caches beside the feature
        # chain's buffers (a long push grows it once).
        self._raw = _Rows(ch, np.float64, 4 * window_and_hop + 256)
        self._raw_first = 0  # absolute index of the first buffered sample
        self._n_seen = 0
        self._windows_done = 0
        self._next_window_end = self._position(self.length)  # inputs the next window needs
        # Without the clipping check the rails are infinite: no finite sample reaches them.
        self._low, self._high = self.rails if self.checks_clipping else (-math.inf, math.inf)
        self._clip_share = float(self.config.clip_share)
        # Without the flat check, a threshold no peak-to-peak (>= 0) is at or below.
        self._flat_ptp = float(self.config.flat_ptp) if self.checks_flat else -math.inf
        self._empty = QualityBatch(np.zeros((0, ch), dtype=bool), np.zeros((0, ch), dtype=bool),
                                   np.zeros(0, dtype=np.int64))
        for array in (self._empty.clipped, self._empty.flat, self._empty.end_index):
            array.setflags(write=False)
        return self

    # -- sample positions ------------------------------------------------------------------
    def _position(self, m: int) -> int:
        """``P(m)``: index of the first input sample of output ``m``."""
        return max((m - 1) * self.down // self.up + 1, 0)

    def _outputs_ready(self, n_in: int) -> int:
        """Output samples whose inputs have all arrived after ``n_in`` inputs."""
        return (n_in * self.up - 1) // self.down + 1 if n_in > 0 else 0

    # -- the stream ------------------------------------------------------------------------
    def push(self, x) -> QualityBatch:
        """Add raw samples; return the quality of the windows they complete.

        Parameters
        ----------
        x : ndarray, shape (n_samples, n_channels)
            Raw samples in the stream's units (NaN/Inf allowed; 0 rows allowed).

        Returns
        -------
        QualityBatch
        """
        if type(x) is not np.ndarray or x.dtype != np.float64:
            x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise BiosigError(
                f"quality check for {self.n_channels} channels got a chunk of shape {x.shape}"
            )
        if x.shape[0] <= _MAX_PIECE:
            return self._push_piece(x)
        batches = [self._push_piece(x[start : start + _MAX_PIECE])
                   for start in range(0, x.shape[0], _MAX_PIECE)]
        batches = [b for b in batches if b.n_windows]
        if not batches:
            return self._empty
        return batches[0] if len(batches) == 1 else QualityBatch.concatenate(batches)

    def _push_piece(self, x: np.ndarray) -> QualityBatch:
        n = x.shape[0]
        if n == 0:
            return self._empty
        # Only a copy here; the work waits until a window completes.
        self._raw.reserve(n)[...] = x
        self._raw.commit(n)
        self._n_seen += n
        if self._n_seen < self._next_window_end:  # most live pushes: no window completes
            return self._empty
        return self._emit()

    def _emit(self) -> QualityBatch:
        """Judge the windows the buffered samples complete, then drop what no later window
        needs."""
        first_window = self._windows_done
        last_window = (self._outputs_ready(self._n_seen) - self.length) // self.hop
        n_windows = last_window - first_window + 1
        # Written by the kernel (arrays it returned would cost more to hand back than to fill).
        flags = np.empty((2, n_windows, self.n_channels), dtype=bool)  # clipped, flat
        ends = np.empty(n_windows, dtype=np.int64)
        from biosig.dsp._quality_kernels import window_flags  # noqa: PLC0415 - numba

        window_flags(self._raw.rows(), self._raw_first, first_window, self.length, self.hop,
                     self.up, self.down, self._low, self._high, self._clip_share,
                     self._flat_ptp, flags[0], flags[1], ends)
        self._windows_done = last_window + 1
        next_start = self._windows_done * self.hop
        self._next_window_end = self._position(next_start + self.length)
        # Keep from the next window's first input (with gaps between windows, it may be yet
        # to come: keep none then).
        drop_to = min(self._position(next_start), self._n_seen)
        self._raw.drop(drop_to - self._raw_first)
        self._raw_first = drop_to
        return QualityBatch(flags[0], flags[1], ends)

    def __repr__(self) -> str:
        checks = [name for name, on in (("clipping", self.checks_clipping),
                                        ("flat", self.checks_flat)) if on]
        return (f"<WindowQuality | {self.n_channels} ch | {self.length} samples, hop "
                f"{self.hop} | {', '.join(checks) or 'no checks'}>")


def window_quality(data, config: QualityConfig, fs: float, length_s: float, hop_s: float, *,
                   channel_format=None, up: int = 1, down: int = 1) -> QualityBatch:
    """The quality of every window of a whole recording in one call (a fresh
    :class:`WindowQuality` fed all of ``data``)."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise BiosigError(f"data must be 2-D (n_samples, n_channels), got shape {data.shape}")
    checker = WindowQuality(config, fs, data.shape[1], length_s, hop_s,
                            channel_format=channel_format, up=up, down=down)
    return checker.push(data)
