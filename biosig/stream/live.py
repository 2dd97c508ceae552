"""Live display state: what a viewer (the GUI) reads while a pipeline runs. No Qt here.

:class:`LiveSession` wires one source to the same :class:`~biosig.stream.pipeline.Pipeline`
the CLI uses, plus an :class:`~biosig.explain.service.ExplainerService` when there is a model,
and fills thread-safe display buffers that a viewer polls:

- :class:`SignalBuffer` ``session.signal``: the latest raw samples, written by the pipeline's
  processing thread through its chunk hook (a copy under a lock; a NaN row marks a gap so a
  plot breaks its line there);
- ``session.envelope``: the same samples through a display copy of the pipeline's preprocessor
  (filters, rectification, envelope), kept at about :data:`ENVELOPE_DISPLAY_HZ`; run on the
  processing thread after the chunk's windows went to the sinks, so it adds nothing to their
  latency;
- :class:`ResultsBuffer` ``session.results``: posteriors, entropy, OOD and rejection flags and
  decisions per window (a pipeline sink), and the latest feature vector;
- :class:`Annotations` ``session.annotations``: overlay traces (e.g. a CTG baseline in the
  channel's units) and events ``(t_start, t_end, kind)`` that a later stage (the CTG analysis)
  can add from any thread;
- :meth:`LiveSession.status`: a :class:`LiveStatus` snapshot (connection state, host, nominal
  and measured rate, gaps and dropped samples, clock offset, latency percentiles).

A viewer never computes. It tells a buffer the resolution it draws at
(:meth:`SignalBuffer.set_bin_size`: samples per pixel column); from then on the writer keeps
the minimum and maximum of every such bin of samples as they arrive, on the processing thread,
and the viewer reads only the bins completed since its last frame (:meth:`SignalBuffer.read_bins`),
a few per frame, instead of thinning the whole view every frame. (:meth:`SignalBuffer.snapshot`
and :func:`minmax_decimate` give the raw samples and a one-off thinning of them.)

A CTG session (features from :mod:`biosig.ctg`) also copies the CTG chain's display state into
``session.annotations`` after every analysed window: the FHR baseline trace, the events
(accelerations, decelerations by type, contractions, maternal-rate spans, with depth and peak
time) and the FIGO features of the latest window.

Times are this machine's LSL clock (``pylsl.local_clock()``; the inlet maps the sender's clock
onto it). A replay sped up ``speed`` times compresses its timestamps by that factor; the
session's ``time_scale`` says so, and a viewer multiplies time differences by it to show
recording seconds.

:class:`ReplayFeed` publishes a recording on LSL (looping, as a sensor would send it) so a
session can attach to it exactly as to a live stream.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_int, check_positive

logger = logging.getLogger(__name__)

#: :attr:`LiveSession.message` while the pipeline starts once its stream is found: its DSP loops
#: are compiled then, which takes ~10 s the first time after installing (a fraction of a second
#: after, from the disk cache).
PREPARING_MESSAGE = "stream found; preparing the signal processing (~10 s on a first run)"

__all__ = [
    "Annotations", "DisplayBins", "Event", "LiveSession", "LiveStatus", "ReplayFeed",
    "ResultsBuffer", "SignalBuffer", "minmax_decimate",
]

#: Envelope samples kept per second for display (the envelope is smooth: a 100 ms moving RMS
#: has nothing above ~10 Hz worth drawing).
ENVELOPE_DISPLAY_HZ = 100.0
#: Two samples further apart than this many (time-scaled) sample periods are drawn as a gap.
GAP_FACTOR = 1.5

#: Seconds of signal kept for display by default, per modality.
DEFAULT_HISTORY_S = {"emg": 60.0, "ctg": 3600.0}
#: Connection states of a :class:`LiveSession`.
STATES = ("idle", "connecting", "running", "lost", "stopped", "error")


# -- buffers ---------------------------------------------------------------------------------


class SignalBuffer:
    """The latest samples of a multichannel signal, for display; thread-safe.

    Parameters
    ----------
    n_channels : int
        Channels per sample.
    capacity : int
        Samples kept (older ones are overwritten).
    period_s : float
        Expected time between samples in seconds (already divided by a replay's speed). A
        chunk starting more than ``GAP_FACTOR`` periods after the previous sample is preceded
        by a NaN row, so the plot shows the gap instead of a straight line across it.
    """

    def __init__(self, n_channels: int, capacity: int, period_s: float):
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.capacity = check_int(capacity, "capacity", minimum=2)
        self.period_s = check_positive(period_s, "period_s")
        self._data = np.full((self.capacity, self.n_channels), np.nan, dtype=np.float32)
        self._t = np.full(self.capacity, np.nan)
        self._next = 0
        self._count = 0
        self._last_t = math.nan
        self._lock = threading.Lock()
        self.total = 0  # samples ever written (gap rows excluded)
        self.gap_rows = 0
        self._bins: _MinMaxBins | None = None
        self.generation = 0  # bumped whenever the bins are rebuilt (new bin size, clear)

    def __len__(self) -> int:
        return self._count

    @property
    def bin_size(self) -> int | None:
        """Samples per display bin (None: no bins kept yet, see :meth:`set_bin_size`)."""
        bins = self._bins
        return None if bins is None else bins.per_bin

    @property
    def last_time(self) -> float:
        """Timestamp of the newest sample (NaN before the first)."""
        return self._last_t

    def write(self, data, timestamps) -> None:
        """Append a chunk ``(n, n_channels)`` with its timestamps ``(n,)`` in seconds."""
        n = len(timestamps)
        if n == 0:
            return
        with self._lock:
            if timestamps[0] - self._last_t > GAP_FACTOR * self.period_s:
                self._put(np.full((1, self.n_channels), np.nan),
                          np.array([self._last_t + self.period_s]))
                self.gap_rows += 1
            if n > self.capacity:
                data, timestamps = data[-self.capacity:], timestamps[-self.capacity:]
            self._put(data, timestamps)
            self._last_t = float(timestamps[-1])
            self.total += n

    def _put(self, data, timestamps) -> None:
        n = len(timestamps)
        first = min(n, self.capacity - self._next)  # rows before the wrap-around
        self._data[self._next:self._next + first] = data[:first]
        self._t[self._next:self._next + first] = timestamps[:first]
        self._data[:n - first] = data[first:]
        self._t[:n - first] = timestamps[first:]
        self._next = (self._next + n) % self.capacity
        self._count = min(self._count + n, self.capacity)
        if self._bins is not None:
            self._bins.feed(data, timestamps)

    def _ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """Views (or copies, across the wrap) of the kept rows, oldest first (lock held)."""
        start = (self._next - self._count) % self.capacity
        if start + self._count <= self.capacity:
            return self._t[start:start + self._count], self._data[start:start + self._count]
        order = (np.arange(self._count) + start) % self.capacity
        return self._t[order], self._data[order]

    def set_bin_size(self, per_bin: int) -> None:
        """Keep the min and max of every ``per_bin`` samples from now on, for display.

        The bins are rebuilt from the samples kept (so a new resolution shows the whole history
        at once) and :attr:`generation` is bumped; later writes extend them incrementally, on the
        writer's thread. A viewer picks ``per_bin`` as samples per pixel column.
        """
        per_bin = check_int(per_bin, "per_bin", minimum=1)
        with self._lock:
            if self._bins is not None and self._bins.per_bin == per_bin:
                return
            bins = _MinMaxBins(self.n_channels, per_bin, self.capacity // per_bin + 4)
            if self._count:
                bins.feed(*self._ordered()[::-1])
            self._bins = bins
            self.generation += 1

    def read_bins(self, since: int = 0, generation: int | None = None) -> "DisplayBins | None":
        """The display bins completed since bin number ``since``, and the bin being filled.

        Parameters
        ----------
        since : int
            Number of the first bin wanted (bins are numbered from 0 per :attr:`generation`);
            the viewer passes the ``end`` of its previous read.
        generation : int or None
            The generation the viewer's bins belong to; if it is not the current one, every bin
            kept is returned (``since`` is ignored).

        Returns
        -------
        DisplayBins or None
            None before :meth:`set_bin_size` was called.
        """
        with self._lock:
            bins = self._bins
            if bins is None:
                return None
            if generation != self.generation:
                since = 0
            return bins.read(since, self.generation)

    def snapshot(self, since: float = -math.inf) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the samples with timestamp >= ``since``, oldest first: ``(t, data)``.

        ``data`` is float32, shape ``(n, n_channels)``; NaN rows mark gaps.
        """
        with self._lock:
            t, data = self._ordered()
            first = int(np.searchsorted(t, since)) if since > -math.inf else 0
            return t[first:].copy(), data[first:].copy()

    def clear(self) -> None:
        with self._lock:
            self._next = self._count = 0
            self._last_t = math.nan
            if self._bins is not None:
                self._bins = _MinMaxBins(self.n_channels, self._bins.per_bin, self._bins.capacity)
                self.generation += 1


@dataclass
class DisplayBins:
    """Display bins of a :class:`SignalBuffer`: min and max of consecutive samples.

    Attributes
    ----------
    generation : int
        The buffer's bin generation these belong to.
    start, end : int
        Numbers of the first bin returned and one past the last (pass ``end`` as the next
        read's ``since``).
    t_first, t_last : ndarray, shape (m,)
        Time of each bin's first and last sample, s.
    low, high : ndarray, shape (m, n_channels)
        Each bin's minimum and maximum (NaN: the bin holds a gap row or a non-finite sample).
    partial : tuple or None
        The bin being filled, ``(t_first, t_last, low, high)`` (scalars and (n_channels,)
        arrays), or None when the last bin is complete; it is returned again, grown, next time.
    per_bin : int
        Samples per complete bin.
    """

    generation: int
    start: int
    end: int
    t_first: np.ndarray
    t_last: np.ndarray
    low: np.ndarray
    high: np.ndarray
    partial: tuple | None
    per_bin: int

    def __len__(self) -> int:
        return self.end - self.start


class _MinMaxBins:
    """Running min/max of every ``per_bin`` consecutive rows, the latest ``capacity`` bins kept.

    Not thread-safe: :class:`SignalBuffer` feeds and reads it under its lock. A gap row (NaN)
    makes its bin NaN, so the drawn line breaks there as it does on the raw samples.
    """

    def __init__(self, n_channels: int, per_bin: int, capacity: int):
        self.per_bin = per_bin
        self.capacity = capacity
        self.t_first = np.full(capacity, np.nan)
        self.t_last = np.full(capacity, np.nan)
        self.low = np.full((capacity, n_channels), np.nan, dtype=np.float32)
        self.high = np.full((capacity, n_channels), np.nan, dtype=np.float32)
        self.end = 0  # bins completed so far; bin k lives at row k % capacity
        self._acc_low = np.empty(n_channels, dtype=np.float32)
        self._acc_high = np.empty(n_channels, dtype=np.float32)
        self._acc_n = 0
        self._acc_t = [math.nan, math.nan]

    def feed(self, data, timestamps) -> None:
        n, per_bin = len(timestamps), self.per_bin
        i = 0
        if self._acc_n:
            i = min(per_bin - self._acc_n, n)
            # np.minimum/np.maximum propagate NaN: a bin with a gap row stays a gap.
            np.minimum(self._acc_low, data[:i].min(axis=0), out=self._acc_low)
            np.maximum(self._acc_high, data[:i].max(axis=0), out=self._acc_high)
            self._acc_t[1] = timestamps[i - 1]
            self._acc_n += i
            if self._acc_n == per_bin:
                self._emit(np.array([self._acc_t[0]]), np.array([self._acc_t[1]]),
                           self._acc_low[None], self._acc_high[None])
                self._acc_n = 0
        full = (n - i) // per_bin
        if full:
            stop = i + full * per_bin
            blocks = data[i:stop].reshape(full, per_bin, data.shape[1])
            self._emit(timestamps[i:stop:per_bin], timestamps[i + per_bin - 1:stop:per_bin],
                       blocks.min(axis=1), blocks.max(axis=1))
            i = stop
        if i < n:
            self._acc_low[:] = data[i:].min(axis=0)
            self._acc_high[:] = data[i:].max(axis=0)
            self._acc_t = [timestamps[i], timestamps[n - 1]]
            self._acc_n = n - i

    def _emit(self, t_first, t_last, low, high) -> None:
        m = len(t_first)
        if m > self.capacity:
            self.end += m - self.capacity
            t_first, t_last = t_first[-self.capacity:], t_last[-self.capacity:]
            low, high = low[-self.capacity:], high[-self.capacity:]
            m = self.capacity
        at = self.end % self.capacity
        first = min(m, self.capacity - at)  # bins before the wrap-around
        for dst, src in ((self.t_first, t_first), (self.t_last, t_last), (self.low, low),
                         (self.high, high)):
            dst[at:at + first] = src[:first]
            dst[:m - first] = src[first:]
        self.end += m

    def read(self, since: int, generation: int) -> DisplayBins:
        start = min(max(since, self.end - self.capacity, 0), self.end)
        rows = np.arange(start, self.end) % self.capacity
        partial = None
        if self._acc_n:
            partial = (float(self._acc_t[0]), float(self._acc_t[1]), self._acc_low.copy(),
                       self._acc_high.copy())
        return DisplayBins(generation, start, self.end, self.t_first[rows], self.t_last[rows],
                           self.low[rows], self.high[rows], partial, self.per_bin)


def minmax_decimate(t: np.ndarray, data: np.ndarray, max_points: int):
    """Thin ``(t, data)`` to at most about ``max_points`` points per channel, keeping peaks.

    Each bin of consecutive samples becomes two points, its minimum and its maximum, so a
    spike narrower than a pixel still shows (what pyqtgraph's ``"peak"`` downsampling does
    per curve, here for all channels in one vectorised call). NaN gap rows survive: a bin
    holding one stays NaN.

    Parameters
    ----------
    t : ndarray, shape (n,)
    data : ndarray, shape (n, n_channels)
    max_points : int
        Points per channel wanted, e.g. twice the plot's width in pixels.

    Returns
    -------
    t_out : ndarray, shape (m,)
    data_out : ndarray, shape (m, n_channels)
    """
    n = len(t)
    per_bin = n // max(1, max_points // 2)
    if per_bin < 2:
        return t, data
    n_bins = n // per_bin
    head = n - n_bins * per_bin  # the oldest samples that do not fill a bin are left out
    blocks = data[head:].reshape(n_bins, per_bin, data.shape[1])
    out = np.empty((n_bins, 2, data.shape[1]), dtype=data.dtype)
    # min/max propagate NaN: a bin with a gap row stays a gap.
    np.min(blocks, axis=1, out=out[:, 0])
    np.max(blocks, axis=1, out=out[:, 1])
    t_blocks = t[head:].reshape(n_bins, per_bin)
    t_out = np.empty((n_bins, 2))
    t_out[:, 0] = t_blocks[:, 0]
    t_out[:, 1] = t_blocks[:, -1]
    return t_out.reshape(-1), out.reshape(2 * n_bins, data.shape[1])


class ResultsBuffer:
    """The latest windows' classification results, for display; a pipeline sink; thread-safe.

    Parameters
    ----------
    capacity : int
        Windows kept.

    Notes
    -----
    Storage for the posteriors is allocated on the first batch with posteriors (when the number
    of classes is known). Windows without a classifier still record their times, so a viewer
    can tell "no model" from "no data".
    """

    def __init__(self, capacity: int = 8192):
        self.capacity = check_int(capacity, "capacity", minimum=1)
        self._lock = threading.Lock()
        self.class_names: list[str] = []
        self.feature_names: list[str] = []
        self._t = np.full(self.capacity, np.nan)
        self._posteriors: np.ndarray | None = None
        self._entropy = np.full(self.capacity, np.nan)
        self._ood = np.zeros(self.capacity, dtype=bool)
        self._rejected = np.zeros(self.capacity, dtype=bool)
        self._decision = np.full(self.capacity, -1, dtype=np.int64)
        self._next = 0
        self._count = 0
        self.total = 0
        self.latest_features: np.ndarray | None = None
        self.latest_posteriors: np.ndarray | None = None
        self.latest_decision = -1
        self.latest_rejected = False
        self.latest_ood = False

    def __len__(self) -> int:
        return self._count

    def __call__(self, results) -> None:
        """Pipeline sink: copy the batch in (O(batch))."""
        n = len(results)
        if n == 0:
            return
        if n > self.capacity:
            keep = slice(n - self.capacity, n)
        else:
            keep = slice(0, n)
        posteriors = results.posteriors
        with self._lock:
            self.feature_names = results.feature_names
            if posteriors is not None and (self._posteriors is None
                                           or self._posteriors.shape[1] != posteriors.shape[1]):
                self.class_names = list(results.class_names)
                self._posteriors = np.full((self.capacity, posteriors.shape[1]), np.nan)
            columns = [(self._t, results.t_end)]
            if posteriors is not None:
                decision = results.predicted
                ood = results.ood_flag if results.ood_flag is not None else np.zeros(n, bool)
                rejected = results.rejected if results.rejected is not None else np.zeros(n, bool)
                columns += [(self._posteriors, posteriors), (self._entropy, results.entropy),
                            (self._ood, ood), (self._rejected, rejected),
                            (self._decision, decision)]
                self.latest_posteriors = posteriors[-1].copy()
                self.latest_decision = int(decision[-1])
                self.latest_rejected = bool(rejected[-1])
                self.latest_ood = bool(ood[-1])
            self._write(columns, keep)
            self.latest_features = results.features[-1].copy()
            self.total += n

    def _write(self, columns, keep: slice) -> None:
        n = keep.stop - keep.start
        first = min(n, self.capacity - self._next)
        for dst, src in columns:
            src = src[keep]
            dst[self._next:self._next + first] = src[:first]
            dst[:n - first] = src[first:]
        self._next = (self._next + n) % self.capacity
        self._count = min(self._count + n, self.capacity)

    def snapshot(self, since: float = -math.inf) -> dict:
        """Copies of the windows ending at or after ``since``, oldest first.

        Returns
        -------
        dict
            ``t_end`` (n,), ``posteriors`` (n, n_classes) or None, ``entropy`` (n,) nats,
            ``ood`` / ``rejected`` (n,) bool, ``decision`` (n,) int (-1: none).
        """
        with self._lock:
            start = (self._next - self._count) % self.capacity
            order = (np.arange(self._count) + start) % self.capacity
            t = self._t[order]
            keep = order[t >= since] if since > -math.inf else order
            return {
                "t_end": self._t[keep],
                "posteriors": None if self._posteriors is None else self._posteriors[keep],
                "entropy": self._entropy[keep],
                "ood": self._ood[keep],
                "rejected": self._rejected[keep],
                "decision": self._decision[keep],
            }

    def clear(self) -> None:
        with self._lock:
            self._next = self._count = 0
            self._posteriors = None
            self.latest_features = self.latest_posteriors = None
            self.latest_decision = -1


@dataclass(frozen=True)
class Event:
    """An interval on the time axis: ``kind`` from ``t_start`` to ``t_end`` (LSL clock, s).

    ``value`` is the event's size in its channel's units (a CTG deceleration's depth below the
    baseline in bpm, a contraction's peak above the resting tone), ``t_peak`` the time of its
    peak or nadir; NaN when the event has none.
    """

    t_start: float
    t_end: float
    kind: str
    value: float = math.nan
    t_peak: float = math.nan


class Annotations:
    """Overlays for a live view, added from any thread: traces, events and readings.

    A trace is drawn over one channel, in that channel's units (e.g. the CTG baseline over
    FHR, in bpm); an event is an interval with a kind (e.g. ``"acceleration"``,
    ``"late_deceleration"``, ``"contraction"``), drawn as a shaded band; a reading is a named
    dict of values at a time (e.g. the FIGO features of the latest CTG window).
    """

    def __init__(self, max_events: int = 512):
        self._lock = threading.Lock()
        self._traces: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
        self._events: list[Event] = []
        self._readings: dict[str, tuple[float, dict]] = {}
        self.max_events = max_events
        self.version = 0  # bumped on every change, so a viewer redraws only when needed

    def set_trace(self, name: str, channel: str, t, y) -> None:
        """Replace trace ``name`` over ``channel``: times ``t`` (s) and values ``y``."""
        with self._lock:
            self._traces[name] = (channel, np.asarray(t, float).copy(), np.asarray(y, float).copy())
            self.version += 1

    def add_event(self, t_start: float, t_end: float, kind: str, value: float = math.nan,
                  t_peak: float = math.nan) -> None:
        with self._lock:
            self._events.append(Event(float(t_start), float(t_end), str(kind), float(value),
                                      float(t_peak)))
            del self._events[:-self.max_events]
            self.version += 1

    def set_events(self, events) -> None:
        """Replace all events (the newest ``max_events`` of them), e.g. by a stage that keeps
        its own list; each item is an :class:`Event` or has the same attributes."""
        listed = [e if isinstance(e, Event) else
                  Event(float(e.t_start), float(e.t_end), str(e.kind),
                        float(getattr(e, "value", getattr(e, "depth", math.nan))),
                        float(getattr(e, "t_peak", math.nan)))
                  for e in events]
        with self._lock:
            self._events = listed[-self.max_events:]
            self.version += 1

    def set_reading(self, name: str, t: float, values: dict) -> None:
        """Replace reading ``name``: ``values`` (name to number) valid at time ``t`` (s)."""
        with self._lock:
            self._readings[name] = (float(t), dict(values))
            self.version += 1

    def traces(self) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
        with self._lock:
            return dict(self._traces)

    def events(self, since: float = -math.inf) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.t_end >= since]

    def readings(self) -> dict[str, tuple[float, dict]]:
        with self._lock:
            return dict(self._readings)

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()
            self._events.clear()
            self._readings.clear()
            self.version += 1


# -- status ----------------------------------------------------------------------------------


@dataclass
class LiveStatus:
    """One reading of a session's state, for a status bar.

    Attributes
    ----------
    state : str
        One of :data:`STATES`.
    stream, host, stream_type : str
    channel_labels, channel_units : list of str
    nominal_rate, measured_rate : float
        Hz; the measured rate is divided by the replay speed (recording Hz). NaN when unknown.
    samples, dropped_samples, gaps : int
        Samples received; samples missing in gaps and chunks dropped by the pipeline; gaps seen.
    disconnects, reconnects : int
    clock_offset : float
        Seconds added to the sender's timestamps.
    latency_p50, latency_p99 : float
        Processing latency percentiles, seconds.
    windows, windows_ood, windows_rejected : int
    model : str
        Model file name ('' without one).
    message : str
        The last error, or why the session stopped.
    time_scale : float
        Replay speed (1 for a live stream).
    """

    state: str = "idle"
    stream: str = ""
    host: str = ""
    stream_type: str = ""
    channel_labels: list = field(default_factory=list)
    channel_units: list = field(default_factory=list)
    nominal_rate: float = math.nan
    measured_rate: float = math.nan
    samples: int = 0
    dropped_samples: int = 0
    gaps: int = 0
    disconnects: int = 0
    reconnects: int = 0
    clock_offset: float = math.nan
    latency_p50: float = math.nan
    latency_p99: float = math.nan
    windows: int = 0
    windows_ood: int = 0
    windows_rejected: int = 0
    model: str = ""
    message: str = ""
    time_scale: float = 1.0


# -- replay ----------------------------------------------------------------------------------


class ReplayFeed:
    """A recording published on LSL as a looping live stream (a stand-in for a sensor).

    Parameters
    ----------
    path : str or Path
        Recording to replay (any format :func:`biosig.io.read_recording` reads).
    speed : float
        Playback speed multiple.
    start_s : float
        Seconds into the recording where playback starts (and each loop restarts).
    stream : str or None
        Signal stream to play (None: the recording's main signal).
    n_channels : int or None
        Publish this many channels, repeating the recorded ones if more are asked for (a load
        test of a wider montage); None: as recorded.
    name : str or None
        Name to publish under; None: the recorded name plus a unique suffix, so that two
        replays never collide on the network. The source id follows the name, so a feed
        re-opened under the same name is the same stream to an inlet (it recovers).

    Attributes
    ----------
    name : str
        The published stream's name (after :meth:`open`).
    """

    def __init__(self, path, *, speed: float = 1.0, start_s: float = 0.0, stream=None,
                 n_channels=None, name=None):
        self.path = Path(path)
        self.speed = speed
        self.start_s = start_s
        self.stream = stream
        self.n_channels = n_channels
        self.name: str | None = name
        self.player = None

    def open(self) -> "ReplayFeed":
        """Read the recording and make its outlet visible; return self."""
        from biosig.io import read_recording
        from biosig.io.recording import Recording
        from biosig.stream.replay import Player

        if not self.path.exists():
            raise BiosigError(f"recording not found: {self.path}")
        check_positive(self.speed, "speed")
        signal = read_recording(self.path).signal(self.stream)
        first = int(round(check_positive(self.start_s, "start", allow_zero=True) * signal.srate))
        if first >= signal.n_samples - 1:
            raise BiosigError(
                f"start {self.start_s:g} s is past the end of {self.path.name} "
                f"({signal.n_samples / signal.srate:.1f} s)"
            )
        clip = signal.pick_channels(signal.channel_labels)
        clip.data, clip.timestamps = clip.data[first:], clip.timestamps[first:]
        if self.n_channels is not None:
            clip = _widened(clip, check_int(self.n_channels, "n_channels", minimum=1))
        if self.name is None:
            self.name = f"{signal.name}-replay-{uuid.uuid4().hex[:6]}"
        clip.name = self.name
        clip.source_id = f"biosig-replay/{self.name}"
        self.clip = clip
        self.player = Player(Recording(streams={self.name: clip}), speed=self.speed, loop=True)
        self.player.open()
        return self

    def start(self) -> "ReplayFeed":
        if self.player is None:
            self.open()
        self.player.start()
        logger.info("replaying %s as %r at %gx", self.path.name, self.name, self.speed)
        return self

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()

    @property
    def samples_sent(self) -> int:
        """Samples pushed so far (all loops)."""
        player = self.player
        if player is None:
            return 0
        track = player._tracks[0]
        return player.passes * track.n_samples + track.cursor

    def __repr__(self) -> str:
        return f"<ReplayFeed {self.path.name!r} as {self.name!r} x{self.speed:g}>"


def _widened(stream, n_channels: int):
    """``stream`` with its channels repeated (or cut) to ``n_channels``."""
    picks = [i % stream.n_channels for i in range(n_channels)]
    labels = [stream.channel_labels[i] if k < stream.n_channels else f"{stream.channel_labels[i]}'"
              for k, i in enumerate(picks)]
    def repeated(values):
        return [values[i] for i in picks] if values else []

    return dataclasses.replace(stream, data=np.ascontiguousarray(stream.data[:, picks]),
                               channel_labels=labels,
                               channel_units=repeated(stream.channel_units),
                               channel_types=repeated(stream.channel_types))


# -- the session -----------------------------------------------------------------------------


class LiveSession:
    """One live stream, its pipeline and explainer, and the display buffers a viewer polls.

    Parameters
    ----------
    name, type, source_id : str or None
        Which LSL stream to attach to (see :class:`~biosig.stream.inlet.Inlet`).
    model : str, Path, OnnxModel or None
        Classifier for the pipeline's inference slot; its card's pipeline settings are used.
    config : PipelineConfig or None
        Processing settings without a model (None: the preset for the stream's type and rate).
    history_s : float or None
        Seconds of signal kept for display (recording seconds for a replay); None: 60 s, or
        an hour for a CTG stream.
    explain : bool
        Run the :class:`~biosig.explain.service.ExplainerService` beside a model.
    time_scale : float
        Replay speed of the stream (1 for a live sensor): display buffers and rates are in
        recording time.
    hop_s : float or None
        Override the window hop (s); the window length stays the model's.
    reject_threshold, smoothing : float, int or None
        Decision rejection and smoothing of the model (see :class:`~biosig.inference.OnnxModel`).
    resolve_timeout : float
        Seconds :meth:`start` waits for the stream.
    explainer_options : dict or None
        Extra keyword arguments of the explainer service.
    inference_threads : int or None
        onnxruntime intra-op threads of a model given as a path (None: onnxruntime's default,
        one per core).
    """

    def __init__(self, name=None, type=None, source_id=None, *, model=None, config=None,
                 history_s: float | None = None, explain: bool = True, time_scale: float = 1.0,
                 hop_s=None, reject_threshold=None, smoothing=None, resolve_timeout: float = 5.0,
                 explainer_options=None, inference_threads: int | None = 1):
        self.name = name
        self.type = type
        self.source_id = source_id
        self.model = model
        self.config = config
        self.history_s = history_s
        self.explain = explain
        self.time_scale = time_scale
        self.hop_s = hop_s
        self.reject_threshold = reject_threshold
        self.smoothing = smoothing
        self.resolve_timeout = resolve_timeout
        self.explainer_options = explainer_options
        self.inference_threads = inference_threads
        self.signal: SignalBuffer | None = None
        self.envelope: SignalBuffer | None = None
        self.results = ResultsBuffer()
        self.annotations = Annotations()
        self.pipeline = None
        self.explainer = None
        self.inlet = None
        self.classifier = None
        self.recorder = None
        self._state = "idle"
        self._message = ""
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None
        self._display_pre = None
        self._envelope_step = 1
        self._envelope_phase = 0

    # -- life cycle ---------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """One of :data:`STATES`; ``running`` turns into ``lost`` while the inlet has lost its
        outlet, and back when it returns."""
        state = self._state
        if state == "running":
            if self.pipeline is not None and self.pipeline.stats.error:
                return "error"
            if self.inlet is not None and not self.inlet.connected:
                return "lost"
        return state

    @property
    def message(self) -> str:
        if self._state == "running" and self.pipeline is not None and self.pipeline.stats.error:
            return self.pipeline.stats.error
        return self._message

    def start(self) -> "LiveSession":
        """Load the model, connect to the stream and start the pipeline (blocks until
        connected, at most ``resolve_timeout`` s); return self."""
        with self._lock:
            if self._state in ("connecting", "running"):
                return self
            self._state, self._message = "connecting", ""
        return self._start()

    def _start(self) -> "LiveSession":
        from biosig.stream.inlet import Inlet
        from biosig.stream.pipeline import Pipeline
        from biosig.stream.sources import LSLSource

        try:
            if self.history_s is not None:
                check_positive(self.history_s, "history_s")
            check_positive(self.time_scale, "time_scale")
            self.classifier = self._load_model()
            self.inlet = Inlet(self.name, self.type, self.source_id,
                               resolve_timeout=self.resolve_timeout)
            source = LSLSource(self.inlet)
            source.open()
            config = self._pipeline_config(source)
            self._prepare_display(source, config)
            sinks = [self.results]
            if config.features.is_ctg:
                sinks.append(self._annotate_ctg)
            if self.classifier is not None and self.explain:
                from biosig.explain.service import ExplainerService

                self.explainer = ExplainerService(self.classifier, **(self.explainer_options or {}))
                sinks.append(self.explainer.sink)
            self.pipeline = Pipeline(_Opened(source), config, classifier=self.classifier,
                                     sinks=sinks)
            self.pipeline.chunk_hooks.append(self._on_chunk)
            with self._lock:  # the stream is found; starting takes ~10 s on a first run
                self._message = PREPARING_MESSAGE
            self.pipeline.start()
            if self.explainer is not None:
                self.explainer.start()
        except BaseException as err:
            self._teardown()
            with self._lock:
                self._state = "error"
                self._message = str(err) if isinstance(err, BiosigError) else f"{type(err).__name__}: {err}"
            raise
        with self._lock:
            self._state, self._message = "running", ""
        logger.info("live session on %r", self.inlet)
        return self

    def start_in_background(self) -> threading.Thread:
        """:meth:`start` on a thread (a GUI must not wait for the network); errors end up in
        :attr:`state` ("error") and :attr:`message`."""
        def run():
            try:
                self._start()
            except BaseException:  # noqa: BLE001 - reported through state/message
                logger.debug("live session failed to start", exc_info=True)

        with self._lock:
            if self._state in ("connecting", "running"):
                return self._starter
            self._state, self._message = "connecting", ""
        self._starter = threading.Thread(target=run, name="biosig-live-start", daemon=True)
        self._starter.start()
        return self._starter

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait for a background start; True if the session is running (or lost)."""
        if self._starter is not None:
            self._starter.join(timeout)
        return self.state in ("running", "lost")

    def stop(self) -> None:
        """Stop recording, the explainer and the pipeline (closing the inlet)."""
        if self._starter is not None and self._starter is not threading.current_thread():
            self._starter.join(self.resolve_timeout + 1.0)
        self.stop_recording()
        self._teardown()
        with self._lock:
            if self._state != "error":
                self._state = "stopped"

    def _teardown(self) -> None:
        if self.explainer is not None:
            self.explainer.stop()
        if self.pipeline is not None:
            self.pipeline.stop()
        elif self.inlet is not None:
            self.inlet.close()

    def __enter__(self) -> "LiveSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- set-up helpers -----------------------------------------------------------------------
    def _load_model(self):
        model = self.model
        if model is None or not isinstance(model, (str, Path)):
            classifier = model
        else:
            from biosig.inference import OnnxModel

            # One intra-op thread: a window per hop is too small to gain from more, and
            # onnxruntime's default pool keeps its threads spinning between runs, taking a
            # core from a viewer that draws at frame rate (see docs/gui.md).
            classifier = OnnxModel(model, reject_threshold=self.reject_threshold,
                                   smoothing=self.smoothing, threads=self.inference_threads)
        if classifier is not None:
            self.results.class_names = [str(c) for c in classifier.classes_]
        return classifier

    def _pipeline_config(self, source):
        from biosig.config import PipelineConfig

        if self.classifier is not None and callable(getattr(self.classifier, "pipeline_config", None)):
            config = self.classifier.pipeline_config()
        elif self.config is not None:
            config = self.config
        else:
            config = PipelineConfig.for_rate(source.srate, _modality(self.inlet.type))
        if self.hop_s is not None:
            config = dataclasses.replace(config, window=dataclasses.replace(
                config.window, hop_s=check_positive(self.hop_s, "hop")))
        return config

    def _prepare_display(self, source, config) -> None:
        from biosig.dsp import Preprocessor
        from biosig.stream.pipeline import select_channels

        srate = source.srate
        if srate <= 0:
            raise BiosigError(f"stream {source.name!r} has no regular rate; nothing to plot")
        period = 1.0 / (srate * self.time_scale)
        if self.history_s is None:
            self.history_s = DEFAULT_HISTORY_S[_modality(self.inlet.type)]
        capacity = max(2, int(math.ceil(self.history_s * srate)) + 16)
        n = len(source.channel_labels)
        self.signal = SignalBuffer(n, capacity, period)
        self.envelope = None
        self._display_pre = None
        if _modality(self.inlet.type) == "emg" and config.preprocess.envelope != "none":
            # A display copy of the pipeline's filters at the input rate (no resampling), on
            # the channels the pipeline uses: what its features see, at screen resolution.
            pre_config = dataclasses.replace(config.preprocess, resample_hz=None, decimate=1)
            self._display_channels = select_channels(source.channel_labels, config.channels)
            self._display_pre = Preprocessor(pre_config, srate, len(self._display_channels))
            self._envelope_step = max(1, int(srate // ENVELOPE_DISPLAY_HZ))
            self._envelope_phase = 0
            rate = srate / self._envelope_step
            self.envelope = SignalBuffer(len(self._display_channels),
                                         int(math.ceil(self.history_s * rate)) + 16,
                                         self._envelope_step * period)

    def _on_chunk(self, data, timestamps) -> None:
        """Pipeline chunk hook (processing thread): raw and envelope into the display buffers."""
        self.signal.write(data, timestamps)
        if self._display_pre is None:
            return
        x = data if len(self._display_channels) == data.shape[1] else data[:, self._display_channels]
        _, envelope = self._display_pre.process(x)
        step = self._envelope_step
        first = (-self._envelope_phase) % step
        self._envelope_phase = (self._envelope_phase + len(timestamps)) % step
        self.envelope.write(envelope[first::step], timestamps[first::step])

    def _annotate_ctg(self, results) -> None:
        """Pipeline sink of a CTG session (processing thread, once per batch of analysed
        windows): the CTG chain's baseline, events and latest features into the annotations."""
        chain = self.pipeline.processor.chain
        snapshot = chain.snapshot()
        fhr = chain.channel_labels[chain.fhr_index]
        notes = self.annotations
        notes.set_trace("baseline", fhr, snapshot.baseline_t, snapshot.baseline_bpm)
        notes.set_events(snapshot.events)
        notes.set_reading("figo", snapshot.t_end,
                          {**snapshot.features, "window_s": chain.length / chain.fs})

    @property
    def ctg_channels(self) -> tuple[str, str | None] | None:
        """``(FHR label, UC label or None)`` of a CTG session's chain; None otherwise."""
        chain = getattr(getattr(self.pipeline, "processor", None), "chain", None)
        if chain is None or not hasattr(chain, "fhr_index"):
            return None
        uc = None if chain.uc_index is None else chain.channel_labels[chain.uc_index]
        return chain.channel_labels[chain.fhr_index], uc

    # -- model settings (take effect at the next window) --------------------------------------
    def set_reject_threshold(self, value) -> None:
        """Change the classifier's rejection threshold (None: never reject) while it runs."""
        self.reject_threshold = value
        if self.classifier is not None and hasattr(self.classifier, "reject_threshold"):
            self.classifier.reject_threshold = self.classifier._check_reject_threshold(value)

    def set_smoothing(self, k) -> None:
        """Change the classifier's decision smoothing (majority of the last ``k``) while it runs."""
        from biosig.inference import DecisionSmoother

        self.smoothing = k
        if self.classifier is not None and hasattr(self.classifier, "smoother"):
            # One reference swap: the processing thread sees the old or the new smoother.
            self.classifier.smoother = None if k in (None, 1) else DecisionSmoother(k)

    # -- recording ----------------------------------------------------------------------------
    def record(self, path) -> Path:
        """Start writing the stream to XDF at ``path`` (never overwriting); return the path."""
        from biosig.stream.inlet import Inlet
        from biosig.stream.recorder import Recorder

        if self.inlet is None or self.state not in ("running", "lost"):
            raise BiosigError("no stream to record: attach to a stream first")
        if self.recorder is not None and self.recorder.running:
            raise BiosigError(f"already recording to {self.recorder.path}")
        path = Path(path)
        if path.exists():
            raise BiosigError(f"{path} exists; biosig never overwrites a recording")
        desc = self.inlet.info
        inlet = Inlet(desc.name, desc.type, desc.source_id or None,
                      resolve_timeout=self.resolve_timeout).connect()
        recorder = Recorder(path, [inlet], metadata={"recorded_by": "biosig gui"})
        try:
            recorder.start()
        except BaseException:
            inlet.close()
            raise
        self.recorder = recorder
        return path

    def stop_recording(self) -> Path | None:
        """Finish the file (footers) and return its path; None if not recording."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        path = recorder.stop()
        for inlet in recorder.inlets:
            inlet.close()
        logger.info("recorded %s samples to %s", recorder.samples_written, path)
        return path

    # -- reading ------------------------------------------------------------------------------
    def status(self) -> LiveStatus:
        """A snapshot of the connection, rates, losses and latency."""
        status = LiveStatus(state=self.state, message=self.message, time_scale=self.time_scale)
        if self.classifier is not None:
            status.model = Path(getattr(self.classifier, "path", "") or "").name
        inlet = self.inlet
        if inlet is not None and inlet._desc is not None:
            desc = inlet.info
            stats = inlet.stats
            status.stream, status.host, status.stream_type = desc.name, desc.hostname, desc.type
            status.channel_labels = list(desc.channel_labels)
            status.channel_units = list(desc.channel_units)
            status.nominal_rate = desc.srate
            status.measured_rate = stats.measured_rate / self.time_scale
            status.samples = stats.samples_received
            status.gaps = len(stats.gaps)
            status.dropped_samples = stats.n_dropped
            status.disconnects, status.reconnects = stats.disconnects, stats.reconnects
            status.clock_offset = stats.clock_offset
        pipeline = self.pipeline
        if pipeline is not None:
            stats = pipeline.stats
            status.dropped_samples += stats.samples_dropped
            status.latency_p50, status.latency_p99 = stats.latency_percentiles()
            status.windows = stats.windows
            status.windows_ood, status.windows_rejected = stats.windows_ood, stats.windows_rejected
        return status

    def gaps(self, since: float = -math.inf) -> list[tuple[float, float]]:
        """Holes in the stream as ``(t_start, t_end)`` (LSL clock, s), the current outage
        included (ending now) while the stream is lost."""
        inlet = self.inlet
        if inlet is None:
            return []
        out = [(g.t_start, g.t_start + g.duration_s) for g in list(inlet.stats.gaps)
               if g.t_start + g.duration_s >= since]
        if self.state == "lost" and self.signal is not None and len(self.signal):
            import pylsl

            out.append((self.signal.last_time, pylsl.local_clock()))
        return out

    def latest_explanations(self) -> dict:
        """``{"mi": ExplainerResult, "prototypes": ExplainerResult}`` (those available)."""
        return {} if self.explainer is None else self.explainer.latest()

    def __repr__(self) -> str:
        what = self.name or self.type or self.source_id
        return f"<LiveSession {what!r} | {self.state} | {self.results.total} windows>"


class _Opened:
    """A source already opened by :class:`LiveSession` (so the display buffers could be sized
    from its description first); ``open`` is a no-op, everything else is the source's."""

    def __init__(self, source):
        self._source = source

    def open(self):
        return self

    def __getattr__(self, name):
        return getattr(self._source, name)

    def __repr__(self) -> str:
        return repr(self._source)


def _modality(stream_type) -> str:
    """``"ctg"`` or ``"emg"`` (the default) from an LSL stream type."""
    return "ctg" if str(stream_type or "").strip().lower() == "ctg" else "emg"


def wait_until(predicate, timeout: float, poll_s: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(poll_s)
