"""Replay a :class:`Recording` as live LSL streams, at real time or faster.

:class:`Player` opens one outlet per stream (numeric streams and marker streams alike) and
sends the samples from a background thread. Each sample keeps its recorded spacing: its
timestamp is the recorded time, counted from the start of the recording, divided by ``speed``
and added to the ``pylsl.local_clock()`` reading at which playback started. Samples are sent in
the stream's own value format, so a receiver gets exactly the values in the file.

Typical use, making sure the first samples reach the consumer::

    player = Player(recording, speed=10).open()
    inlet = Inlet(name="MyoEMG").connect()
    player.wait_for_consumers(5.0)
    player.start()
    ...
    player.stop()
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
import pylsl

from biosig._checks import BiosigError, check_positive
from biosig.io.recording import Markers, Recording, Stream
from biosig.stream.lsl_info import default_source_id, numpy_dtype
from biosig.stream.outlet import make_outlet

logger = logging.getLogger(__name__)

__all__ = ["Player"]

#: Seconds :meth:`Player.stop` leaves the outlets up, so liblsl's sender threads can put the
#: last pushed samples on the wire (an outlet destroyed right after a push may never send it).
OUTLET_FLUSH_S = 0.05


class _Track:
    """One stream being replayed: its values, send times and outlet."""

    def __init__(self, stream: Stream | Markers, source_id: str, t0: float):
        self.stream = stream
        self.source_id = source_id
        self.name = stream.name
        # Time of each sample, in recording seconds from the start of the recording.
        self.times = np.asarray(stream.timestamps, dtype=np.float64) - t0
        if isinstance(stream, Markers):
            order = np.argsort(self.times, kind="stable")
            self.times = self.times[order]
            self.values = [stream.values[i] for i in order]
            self.period = 0.0
        else:
            self.stream, self.values = _exact_payload(stream)
            self.period = 1.0 / stream.srate if stream.srate > 0 else 0.0
        # When each sample is sent: its time, but never before an earlier sample (jittery
        # recorded timestamps may step back; the timestamps sent stay the recorded ones).
        self.send_times = np.maximum.accumulate(self.times) if self.n_samples else self.times
        self.outlet: pylsl.StreamOutlet | None = None
        self.cursor = 0

    @property
    def n_samples(self) -> int:
        return int(self.times.shape[0])

    @property
    def end(self) -> float:
        """Recording time one period past the last sample (0 when empty)."""
        return float(self.send_times[-1] + self.period) if self.n_samples else 0.0

    @property
    def pending(self) -> bool:
        return self.cursor < self.n_samples

    def send_due(self, played_s: float, pass_start: float, speed: float) -> None:
        """Push every sample due by recording time ``played_s`` of the pass starting then."""
        stop = int(np.searchsorted(self.send_times, played_s, side="right"))
        if stop <= self.cursor:
            return
        start, self.cursor = self.cursor, stop
        stamps = pass_start + self.times[start:stop] / speed
        if isinstance(self.values, list):
            for value, stamp in zip(self.values[start:stop], stamps):
                self.outlet.push_sample([value], float(stamp))
        else:
            self.outlet.push_chunk(self.values[start:stop], stamps.tolist())


def _exact_payload(stream: Stream) -> tuple[Stream, np.ndarray]:
    """Return the stream (format possibly widened) and its samples in the format's dtype."""
    payload = np.ascontiguousarray(stream.data, dtype=numpy_dtype(stream.channel_format))
    if np.array_equal(payload.astype(np.float64), stream.data, equal_nan=True):
        return stream, payload
    # Values that the declared format cannot hold (e.g. scaled int16 data) would be truncated;
    # publish them as double64 rather than send something other than the recording.
    logger.warning(
        "stream %r: values do not fit its %s format; publishing them as double64",
        stream.name, stream.channel_format,
    )
    widened = dataclasses.replace(stream, channel_format="double64")
    return widened, np.ascontiguousarray(stream.data, dtype=np.float64)


class Player:
    """Replay the streams of a recording on LSL, at real time × ``speed``.

    Parameters
    ----------
    recording : Recording
        What to play.
    speed : float
        Playback speed multiple (> 0); 2 plays twice as fast. Timestamps are compressed by the
        same factor; the nominal rate published stays the recorded one.
    loop : bool
        Start over at the end, forever (until :meth:`stop`), timestamps continuing.
    streams : list of str or None
        Names of the streams (signal or marker) to publish; None publishes all.
    chunk_period_s : float
        Seconds between two sends; each send pushes every sample that has come due.
    source_id_prefix : str or None
        If given, the source id of each outlet is ``<prefix><stream name>``; otherwise the
        stream's own ``source_id``, or ``"<file name>/<name>@<hostname>"`` if it has none.

    Attributes
    ----------
    finished : threading.Event
        Set when playback ended: the end of the recording (without ``loop``), or :meth:`stop`.
    duration_s : float
        Recording seconds in one pass.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        speed: float = 1.0,
        loop: bool = False,
        streams=None,
        chunk_period_s: float = 0.02,
        source_id_prefix: str | None = None,
    ):
        if not isinstance(recording, Recording):
            raise BiosigError(f"expected a Recording, got {type(recording).__name__}")
        self.recording = recording
        self.speed = check_positive(speed, "speed")
        self.loop = bool(loop)
        self.chunk_period_s = check_positive(chunk_period_s, "chunk_period_s")
        self.source_id_prefix = source_id_prefix
        selected = _select(recording, streams)
        t0 = min((float(s.timestamps[0]) for s in selected if len(s.timestamps)), default=0.0)
        self._tracks = [_Track(s, self._source_id_for(s), t0) for s in selected]
        self.duration_s = max(track.end for track in self._tracks)
        if self.loop and self.duration_s <= 0:
            raise BiosigError("cannot loop a recording that lasts 0 s")
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.passes = 0
        self._position_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- description ---------------------------------------------------------------------------

    @property
    def stream_names(self) -> list[str]:
        return [track.name for track in self._tracks]

    @property
    def streams(self) -> list[Stream | Markers]:
        """The streams published, as sent (a stream whose values did not fit its format is
        published as double64)."""
        return [track.stream for track in self._tracks]

    def source_id_of(self, name: str) -> str:
        return self._track(name).source_id

    @property
    def position_s(self) -> float:
        """Recording seconds played in the current pass."""
        return self._position_s

    @property
    def is_alive(self) -> bool:
        """True while the playback thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- control -------------------------------------------------------------------------------

    def open(self) -> "Player":
        """Make the outlets visible on the network (without sending); return self."""
        for track in self._tracks:
            if track.outlet is None:
                track.outlet = make_outlet(track.stream, source_id=track.source_id)
        logger.debug("outlets open: %s", self.stream_names)
        return self

    def wait_for_consumers(self, timeout: float, streams=None) -> bool:
        """Wait until each stream has at least one subscribed inlet.

        Opens the outlets if needed. Call it before :meth:`start` so that no sample is sent
        to nobody.

        Parameters
        ----------
        timeout : float
            Seconds to wait in all.
        streams : list of str or None
            Streams that need a consumer; None means all published streams.

        Returns
        -------
        bool
            True if all of them have a consumer, False if the timeout expired first.
        """
        timeout = check_positive(timeout, "timeout", allow_zero=True)
        self.open()
        if streams is None:
            names = self.stream_names
        else:
            names = [streams] if isinstance(streams, str) else list(streams)
        deadline = pylsl.local_clock() + timeout
        for name in names:
            remaining = max(deadline - pylsl.local_clock(), 0.0)
            if not self._track(name).outlet.wait_for_consumers(remaining):
                logger.info("no consumer for %r within %g s", name, timeout)
                return False
        return True

    def start(self) -> "Player":
        """Open the outlets if needed and start sending in a background thread; return self."""
        if self.is_alive:
            raise BiosigError("the player is already playing")
        self.open()
        self._stop.clear()
        self.finished.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, name="biosig-player", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for playback to end; return True if it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive

    def stop(self) -> None:
        """Stop sending and take the outlets off the network."""
        self._stop.set()
        self.join()
        if any(track.outlet is not None for track in self._tracks):
            time.sleep(OUTLET_FLUSH_S)
        for track in self._tracks:
            track.outlet = None  # the last reference: liblsl destroys the outlet
        self.finished.set()

    def __enter__(self) -> "Player":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- playback thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            origin = pylsl.local_clock()
            self.passes = 0
            while not self._stop.is_set():
                pass_start = origin + self.passes * self.duration_s / self.speed
                self._play_pass(pass_start)
                if self._stop.is_set() or not self.loop:
                    break
                self.passes += 1
        except BaseException as err:  # reported, not swallowed: the thread has no caller
            self.error = err
            logger.exception("playback failed")
        finally:
            self.finished.set()

    def _play_pass(self, pass_start: float) -> None:
        """Send one pass whose recording time 0 is LSL time ``pass_start``."""
        for track in self._tracks:
            track.cursor = 0
        while True:
            now = pylsl.local_clock()
            played_s = (now - pass_start) * self.speed
            self._position_s = min(max(played_s, 0.0), self.duration_s)
            for track in self._tracks:
                track.send_due(played_s, pass_start, self.speed)
            pending = [track for track in self._tracks if track.pending]
            if not pending:
                # Wait out the last sample period, so a loop's next pass starts on time.
                self._stop.wait(max(pass_start + self.duration_s / self.speed - now, 0.0))
                return
            next_due = min(float(track.send_times[track.cursor]) for track in pending)
            wait = max(self.chunk_period_s, (next_due - played_s) / self.speed)
            if self._stop.wait(wait):
                return

    # -- helpers -------------------------------------------------------------------------------

    def _source_id_for(self, stream: Stream | Markers) -> str:
        if self.source_id_prefix is not None:
            return f"{self.source_id_prefix}{stream.name}"
        if stream.source_id:
            return stream.source_id
        # Stable across restarts of the same replay (so inlets recover), distinct between
        # files that share stream names such as "labels".
        source = self.recording.source
        return default_source_id(f"{source.name}/{stream.name}" if source else stream.name)

    def _track(self, name: str) -> _Track:
        for track in self._tracks:
            if track.name == name:
                return track
        raise BiosigError(
            f"the player publishes no stream {name!r}; it publishes {self.stream_names}"
        )

    def __repr__(self) -> str:
        state = "playing" if self.is_alive else "stopped"
        return (
            f"<Player {len(self._tracks)} streams | {state} x{self.speed:g} | "
            f"{self.position_s:.1f}/{self.duration_s:.1f} s>"
        )


def _select(recording: Recording, names) -> list[Stream | Markers]:
    """The streams named (all by default), in the recording's order."""
    available = list(recording.streams) + list(recording.markers)
    if names is None:
        names = available
    elif isinstance(names, str):
        names = [names]
    else:
        names = list(names)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise BiosigError(
            f"no stream named {', '.join(map(repr, unknown))} in the recording; "
            f"available: {', '.join(map(repr, available)) or 'none'}"
        )
    if not names:
        raise BiosigError("the recording holds no stream to play")
    every = {**recording.streams, **recording.markers}
    return [every[name] for name in dict.fromkeys(names)]
