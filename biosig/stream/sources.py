"""Sources of sample chunks for the pipeline: a recording (fast or real time) or an LSL inlet.

A source yields ``(data, timestamps)`` chunks, float64 arrays of shape (n, n_channels) and
(n,), from :meth:`read`. It also describes itself (``name``, ``srate``, ``channel_labels``,
``channel_units``) so the pipeline can check it against its configuration.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from biosig._checks import BiosigError, check_positive
from biosig.io.recording import Stream

logger = logging.getLogger(__name__)

#: Longest an :class:`LSLSource` read waits for the first sample, in seconds: bounds how late
#: the acquisition thread notices a stop request or a lost outlet.
MAX_WAIT_S = 0.05


class RecordingSource:
    """Chunks of one recorded stream, as fast as possible or paced at real time × ``speed``.

    Parameters
    ----------
    stream : Stream
        The signal stream to play.
    chunk_s : float
        Nominal chunk duration in seconds.
    realtime : bool
        If True, release each chunk when its last sample is due (wall clock × ``speed``) and let
        the pipeline drop data it cannot keep up with, as a live source would. If False, read as
        fast as the consumer takes it, losing nothing.
    speed : float
        Playback speed multiple for ``realtime=True``.
    chunk_sizes : sequence of int or None
        Explicit chunk sizes in samples, cycled; used by tests to feed random-sized chunks.
    """

    def __init__(self, stream: Stream, *, chunk_s=0.05, realtime=False, speed=1.0, chunk_sizes=None):
        self.stream = stream
        self.chunk_s = chunk_s
        self.realtime = realtime
        self.speed = speed
        self.chunk_sizes = chunk_sizes

    # -- description -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def srate(self) -> float:
        return self.stream.srate

    @property
    def channel_labels(self) -> list[str]:
        return self.stream.channel_labels

    @property
    def channel_units(self) -> list[str]:
        return self.stream.channel_units

    @property
    def exhausted(self) -> bool:
        return self._pos >= self.stream.n_samples

    @property
    def live(self) -> bool:
        """True when data arrives on its own clock and may have to be dropped if we fall behind."""
        return self.realtime

    # -- life cycle ----------------------------------------------------------------------------
    def open(self) -> "RecordingSource":
        check_positive(self.speed, "speed")
        if self.chunk_sizes is None:
            rate = self.stream.srate if self.stream.srate > 0 else 1.0
            n = max(1, int(round(check_positive(self.chunk_s, "chunk_s") * rate)))
            self._sizes = [n]
        else:
            self._sizes = [int(n) for n in self.chunk_sizes]
            if not self._sizes or min(self._sizes) < 0 or max(self._sizes) == 0:
                raise BiosigError("chunk_sizes must be non-negative with at least one > 0")
        self._pos = 0
        self._k = 0
        self._t0_wall = time.perf_counter()
        self._t0_data = self.stream.timestamps[0] if self.stream.n_samples else 0.0
        return self

    def close(self) -> None:
        """Nothing to release; present so every source has the same life cycle."""

    def read(self, timeout: float = 0.1):
        """Return the next chunk ``(data, timestamps)``, or None if none is due yet / left."""
        if self.exhausted:
            return None
        n = self._sizes[self._k % len(self._sizes)]
        self._k += 1
        stop = min(self._pos + n, self.stream.n_samples)
        if self.realtime and stop > self._pos:
            due = (self.stream.timestamps[stop - 1] - self._t0_data) / self.speed
            wait = due - (time.perf_counter() - self._t0_wall)
            if wait > 0:
                time.sleep(min(wait, timeout))
                if wait > timeout:
                    self._k -= 1  # not due yet: the same chunk is read next time
                    return None
        chunk = (self.stream.data[self._pos:stop], self.stream.timestamps[self._pos:stop])
        self._pos = stop
        return chunk

    def __repr__(self) -> str:
        mode = f"real time x{self.speed:g}" if self.realtime else "as fast as possible"
        return f"<RecordingSource {self.name!r} | {mode}>"


class LSLSource:
    """Chunks from a live LSL stream, through :class:`biosig.stream.inlet.Inlet`.

    Parameters
    ----------
    inlet : Inlet
        A (not necessarily connected) biosig inlet. The source connects it on :meth:`open`.
    """

    live = True
    exhausted = False

    def __init__(self, inlet):
        self.inlet = inlet

    @property
    def name(self) -> str:
        return self.inlet.name

    @property
    def srate(self) -> float:
        return self.inlet.srate

    @property
    def channel_labels(self) -> list[str]:
        return self.inlet.channel_labels

    @property
    def channel_units(self) -> list[str]:
        return self.inlet.channel_units

    def open(self) -> "LSLSource":
        self.inlet.connect()
        return self

    def close(self) -> None:
        self.inlet.close()

    def read(self, timeout: float = 0.1):
        """Return the samples received since the last read, or None if none came in ``timeout`` s.

        The wait is liblsl's (a condition variable woken by the first sample), so a chunk is
        returned as soon as it arrives: polling with a sleep added up to the sleep's length
        (it was 5 ms) to every window's latency.
        """
        data, timestamps = self.inlet.pull(timeout=min(timeout, MAX_WAIT_S))
        if data.shape[0] == 0:
            if not self.inlet.connected:
                # A lost stream returns at once: pause instead of spinning while it is found.
                time.sleep(min(timeout, 0.005))
            return None
        return data, timestamps

    def __repr__(self) -> str:
        return f"<LSLSource {self.inlet!r}>"


def as_stream(data, srate: float, channel_labels=None, name: str = "signal", type: str = "EMG") -> Stream:
    """Wrap a plain (n_samples, n_channels) array sampled at ``srate`` Hz as a :class:`Stream`."""
    data = np.asarray(data, dtype=np.float64)
    srate = check_positive(srate, "srate")
    timestamps = np.arange(data.shape[0]) / srate
    return Stream(
        name=name,
        type=type,
        data=data,
        timestamps=timestamps,
        srate=srate,
        channel_labels=list(channel_labels) if channel_labels is not None else [],
    )
