"""Receive one LSL stream: non-blocking pulls, clock correction, gap accounting and recovery.

:class:`Inlet` wraps ``pylsl.StreamInlet`` for the live path. What happens on each
:meth:`Inlet.pull`, in order:

1. If the outlet was lost (see below), look for it again; opening it when found blocks for at
   most 0.25 s (a few ms when the outlet is there). The search itself runs on a thread.
2. Drain everything queued, with ``pull_chunk(dest_obj=<preallocated array>)`` in the stream's
   own dtype, so no Python list is built per sample; convert to float64 once.
3. Map the timestamps onto this machine's clock by adding ``time_correction()`` (refreshed every
   2 s, never waiting for it except on the first connection).
4. Account for gaps: consecutive timestamps further apart than ``gap_factor / srate`` are a gap
   of ``round(dt * srate) - 1`` dropped samples.
5. Apply the clock-jump policy (below) to a regular stream's timestamps.
6. If nothing came for a while, check whether the outlet is still on the network.

**Clock jumps** (see ``docs/faults.md``). A source whose clock steps (a device that resets its
clock, a host clock set by hand under a driver that stamps with wall time, a buggy outlet) sends
timestamps that go backwards or leap ahead with no samples missing. For a regular stream, with
``clock_jumps="rebase"`` (the default), a timestamp that is not later than the one before, or one
that is ahead of the one before by more than the time that can have passed between them (the
time since the previous pull that delivered data) plus ``JUMP_TOLERANCE_S``, starts a clock
jump: it and every later timestamp are shifted so that the stream continues one sample period
after the sample before. The jump is recorded in :attr:`InletStats.clock_jumps` with its size
and logged; no sample is dropped, and it is not counted as a gap. Delivered timestamps therefore
stay increasing and continuous (windows, labels and latency figures keep working), and
:attr:`InletStats.clock_shift_s` says how far they are from the source's own clock.
``clock_jumps="keep"`` records and logs the jumps but delivers the source's timestamps as they
are. Irregular streams (markers) keep their timestamps; backward steps are recorded only.

**Clock correction.** biosig adds ``StreamInlet.time_correction()`` itself instead of setting
liblsl's ``proc_clocksync`` flag. With ``proc_clocksync`` a pull waits for the first
time-correction estimate of a (re)connection, and when the outlet vanishes before that estimate
exists the pull blocks indefinitely (seen with pylsl 1.18.6: a ``timeout=0`` pull hung for over
40 s). ``time_correction(timeout=0)`` never waits: until liblsl has a new estimate the previous
offset is kept, which on one host is off by microseconds.

**Dejitter.** ``dejitter=True`` sets liblsl's ``proc_dejitter``, which fits a straight line
through the timestamps. That line runs straight through gaps (a 0.5 s hole in a 100 Hz stream
came out as 23 ms steps), so with it gap accounting sees almost nothing; it is off by default.

**Recovery.** The inlet is created with liblsl's ``recover=True``, which only has an effect when
the stream has a source id:

* *With a source id*, liblsl keeps the samples already queued and reconnects by itself when an
  outlet with the same name, type, source id, channel count and format reappears (measured on
  loopback: 0.7–1.7 s after it reappears). liblsl tells no one that it lost the outlet, so when
  no sample arrived for a while (0.5 s, or five sample periods if longer) biosig asks the
  network, on a background thread, whether the outlet's unique id still answers (a live outlet
  answers in about a millisecond; the question gives up after 0.5 s). If not, the inlet is
  marked disconnected, and reconnected when samples flow again. An outlet restarted before that
  check completes is recognised when data resumes: the old unique id no longer answers. If
  liblsl has not reconnected 3 s after a matching outlet answers (for instance because its
  channel count changed), biosig opens that outlet itself.
* *Without a source id*, liblsl cannot recover and raises ``LostError`` as soon as the
  connection breaks (under 1 ms on loopback). biosig then looks for a stream matching the query
  (on a background thread) and opens it. liblsl discards the samples that were queued but not
  yet pulled when it raises, so a producer without source id loses what arrived after the
  consumer's last pull. Give streams a source id.

Either way the outage shows up as one gap in :attr:`Inlet.stats` with its length, and
``disconnects``/``reconnects`` count the events. Measured on loopback (200 Hz, outlet down
1 s): a source-id outlet is reported lost 1.0–1.1 s after it went, and data flows again
0.7–2.5 s after it is re-created (liblsl's own timing); without a source id the loss is reported
at once and data flows again about 0.03 s after the outlet is re-created.

A ``pylsl.ContinuousResolver`` was tried for the liveness check and rejected: it re-queries
only about every 1.75 s, so with a short ``forget_after`` live streams flicker out of its
listing, and with a safe one a lost outlet stays listed for 2–4 s.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pylsl

from biosig._checks import BiosigError, check_int, check_option, check_positive
from biosig.stream.lsl_info import LostError, LSLTimeoutError, StreamDescription, numpy_dtype

logger = logging.getLogger(__name__)

__all__ = ["ClockJump", "Gap", "Inlet", "InletStats"]

#: A silent stream is checked for liveness after this many seconds (or 5 sample periods).
STALL_S = 0.5
#: Minimum seconds between two network probes (liveness checks, searches for a lost stream).
CHECK_INTERVAL_S = 0.1
#: Seconds between liveness checks of a silent outlet that answered the last one (a quiet
#: marker stream, a paused device).
ALIVE_RECHECK_S = 1.0
#: A probe that got no answer within this many seconds means "not on the network".
PROBE_TIMEOUT_S = 0.5
#: Slack on top of a probe's timeout for the resolve to return, in seconds.
PROBE_GRACE_S = 0.1
#: How long re-opening a found stream may block (info, subscribe, first clock estimate), in s.
REOPEN_TIMEOUT_S = 0.25
#: Let liblsl reconnect a source-id stream this long before biosig opens the outlet itself.
LIBLSL_GRACE_S = 3.0
#: Seconds between two reads of liblsl's clock offset estimate.
CLOCK_REFRESH_S = 2.0
#: A forward step in a regular stream's timestamps larger than the time that can have passed
#: (since the previous pull with data) by more than this many seconds is a clock jump, not a gap.
JUMP_TOLERANCE_S = 1.0
#: What to do with a clock jump: shift later timestamps so the stream continues, or keep them.
CLOCK_JUMP_POLICIES = ("rebase", "keep")
#: Clock jumps logged as warnings per inlet; later ones are logged at debug level.
MAX_LOGGED_JUMPS = 10

# pylsl >= 1.18 can return the timestamps as an array (no per-sample list) and stop waiting
# after the first sample; older releases get the plain call.
_PULL_PARAMS = inspect.signature(pylsl.StreamInlet.pull_chunk).parameters
_HAS_AS_NUMPY = "as_numpy" in _PULL_PARAMS
_HAS_MIN_SAMPLES = "min_samples" in _PULL_PARAMS


class ClockJump(NamedTuple):
    """A step in a source's timestamps that is not explained by missing samples.

    Attributes
    ----------
    t : float
        Delivered time of the first sample after the jump (s, local LSL clock; rebased with
        ``clock_jumps="rebase"``).
    step_s : float
        How far the source's clock jumped, in seconds: the step between the two samples minus one
        sample period (negative: backwards).
    """

    t: float
    step_s: float


class Gap(NamedTuple):
    """A stretch of missing samples.

    Attributes
    ----------
    t_start : float
        When the first missing sample was due (s, local LSL clock): last sample before + 1/srate.
    duration_s : float
        Length of the hole in seconds: time between the samples around it minus one period.
    n_dropped : int
        Samples missing: ``round(dt * srate) - 1`` for ``dt`` between the samples around it.
    """

    t_start: float
    duration_s: float
    n_dropped: int


@dataclass
class InletStats:
    """What an :class:`Inlet` has received so far.

    Attributes
    ----------
    samples_received : int
        Samples delivered by :meth:`Inlet.pull`.
    chunks : int
        Pulls that delivered at least one sample.
    gaps : list of Gap
        Holes in the timestamps, in order (regular streams only).
    disconnects, reconnects : int
        Times the outlet was lost, and found again.
    measured_rate : float
        Mean sampling rate in Hz within gap-free stretches, from the timestamps; NaN until two
        samples arrived (and for irregular streams).
    clock_offset : float
        Last ``time_correction`` estimate in seconds, added to every timestamp (0 without
        clock sync).
    clock_jumps : list of ClockJump
        Steps in the source's timestamps not explained by missing samples, in order.
    clock_shift_s : float
        Seconds added to the source's timestamps by rebasing after clock jumps (0 with
        ``clock_jumps="keep"`` or without jumps).
    """

    samples_received: int = 0
    chunks: int = 0
    gaps: list[Gap] = field(default_factory=list)
    disconnects: int = 0
    reconnects: int = 0
    measured_rate: float = math.nan
    clock_offset: float = 0.0
    clock_jumps: list[ClockJump] = field(default_factory=list)
    clock_shift_s: float = 0.0
    # Sums behind measured_rate: sample intervals, and their total length in seconds.
    _intervals: int = field(default=0, repr=False)
    _interval_s: float = field(default=0.0, repr=False)

    @property
    def n_dropped(self) -> int:
        """Total samples missing in all gaps."""
        return sum(gap.n_dropped for gap in self.gaps)


class Inlet:
    """A live LSL stream, found by name, type and/or source id.

    Parameters
    ----------
    name, type, source_id : str or None
        What to look for; at least one is required. All given ones must match. The same query
        finds the stream again after its outlet was lost.
    resolve_timeout : float
        Seconds :meth:`connect` waits for the stream to appear (also bounds opening it).
    max_buffer_s : float
        Seconds of samples liblsl keeps for this inlet between pulls (100 × this many samples
        for irregular streams); older samples are dropped.
    chunk_max_samples : int
        Size of the preallocated receive buffer, in samples; a pull drains the queue in pieces
        of at most this size.
    clock_sync : bool
        Map timestamps onto this machine's clock with ``time_correction()`` (see the module
        notes for why not ``proc_clocksync``).
    dejitter : bool
        Smooth timestamps with liblsl's ``proc_dejitter``. This hides gaps from the gap
        accounting, so it is off by default.
    gap_factor : float
        Two consecutive samples more than ``gap_factor / srate`` seconds apart make a gap.
    clock_jumps : {"rebase", "keep"}
        Policy for steps in a regular stream's timestamps that missing samples do not explain
        (see the module notes): shift later timestamps so the stream continues, or keep the
        source's timestamps. Either way the jumps are recorded in :attr:`stats`.

    Notes
    -----
    One thread at a time may use an inlet. :meth:`pull` never waits for data unless asked to,
    but when the outlet was lost it may block up to ``REOPEN_TIMEOUT_S`` (0.25 s) while
    re-opening it.
    """

    def __init__(
        self,
        name: str | None = None,
        type: str | None = None,
        source_id: str | None = None,
        *,
        resolve_timeout: float = 5.0,
        max_buffer_s: float = 30,
        chunk_max_samples: int = 1024,
        clock_sync: bool = True,
        dejitter: bool = False,
        gap_factor: float = 1.5,
        clock_jumps: str = "rebase",
    ):
        query = {"name": name, "type": type, "source_id": source_id}
        self._query = {key: str(value) for key, value in query.items() if value is not None}
        if not self._query:
            raise BiosigError("an Inlet needs a stream name, type or source_id to look for")
        self.resolve_timeout = check_positive(resolve_timeout, "resolve_timeout")
        self.max_buffer_s = check_positive(max_buffer_s, "max_buffer_s")
        self.chunk_max_samples = check_int(chunk_max_samples, "chunk_max_samples", minimum=1)
        self.clock_sync = bool(clock_sync)
        self.dejitter = bool(dejitter)
        self.gap_factor = check_positive(gap_factor, "gap_factor")
        if self.gap_factor <= 1:
            raise BiosigError(f"gap_factor must be > 1 (in sample periods), got {gap_factor!r}")
        self.clock_jumps = check_option(clock_jumps, "clock_jumps", CLOCK_JUMP_POLICIES)
        self.stats = InletStats()
        self.connected = False
        self._active = False  # between connect() and close(): keep (re)connecting
        self._desc: StreamDescription | None = None
        self._lsl: pylsl.StreamInlet | None = None
        self._buffer: np.ndarray | None = None  # receive buffer in the stream's dtype
        self._uid: str | None = None  # unique id of the outlet instance we read, if known
        self._last_ts: float | None = None  # last timestamp delivered (local clock)
        self._last_data_at: float | None = None  # local_clock() when samples last arrived
        self._jump_shift = 0.0  # seconds added to timestamps after clock jumps ("rebase")
        self._connected_at = 0.0
        self._lost_at = 0.0
        self._candidate_since: float | None = None  # when a lost stream was first seen again
        self._probe: _Probe | None = None
        self._next_probe = 0.0
        self._next_clock_refresh = 0.0
        self._clock_pending = False  # a new connection's clock offset is not measured yet

    # -- description ---------------------------------------------------------------------------

    @property
    def info(self) -> StreamDescription:
        """The stream's description (name, rate, channels, format …), once connected."""
        if self._desc is None:
            raise BiosigError(f"inlet {self._query_text()} is not connected; call connect()")
        return self._desc

    @property
    def name(self) -> str | None:
        return self._desc.name if self._desc else self._query.get("name")

    @property
    def type(self) -> str | None:
        return self._desc.type if self._desc else self._query.get("type")

    @property
    def source_id(self) -> str | None:
        return self._desc.source_id if self._desc else self._query.get("source_id")

    @property
    def srate(self) -> float:
        """Nominal sampling rate in Hz (0 for irregular streams)."""
        return self.info.srate

    @property
    def n_channels(self) -> int:
        return self.info.n_channels

    @property
    def channel_format(self) -> str:
        return self.info.channel_format

    @property
    def channel_labels(self) -> list[str]:
        return list(self.info.channel_labels)

    @property
    def channel_units(self) -> list[str]:
        return list(self.info.channel_units)

    @property
    def channel_types(self) -> list[str]:
        return list(self.info.channel_types)

    def check_compatible(self, n_channels: int | None = None, srate: float | None = None) -> None:
        """Raise :class:`BiosigError` unless the stream has the expected shape.

        Parameters
        ----------
        n_channels : int or None
            Expected number of channels.
        srate : float or None
            Expected nominal sampling rate in Hz.
        """
        desc = self.info
        if n_channels is not None and desc.n_channels != int(n_channels):
            raise BiosigError(
                f"stream {desc.name!r} has {desc.n_channels} channels but {int(n_channels)} "
                "were expected"
            )
        if srate is not None and not math.isclose(desc.srate, float(srate), rel_tol=1e-6):
            raise BiosigError(
                f"stream {desc.name!r} is sampled at {desc.rate_text()} but {float(srate):g} Hz "
                "was expected"
            )

    # -- connection ----------------------------------------------------------------------------

    def connect(self) -> "Inlet":
        """Find the stream and subscribe to it; return self.

        Raises
        ------
        BiosigError
            If no stream matches within ``resolve_timeout`` seconds, or it cannot be opened.
        """
        if self._active:
            return self
        found = _Probe(_Probe.FIND, _xpath_predicate(self._query), self.resolve_timeout).wait()
        if not found:
            raise BiosigError(
                f"no LSL stream with {self._query_text()} found within "
                f"{self.resolve_timeout:g} s; 'biosig streams' lists the visible streams"
            )
        info = _newest(found)
        if len(found) > 1:
            logger.warning(
                "%d streams match %s; using the newest, on %s (source_id %r)",
                len(found), self._query_text(), info.hostname(), info.source_id(),
            )
        try:
            self._open(info, timeout=self.resolve_timeout, wait_for_clock=True)
        except (LSLTimeoutError, LostError) as err:
            raise BiosigError(
                f"found LSL stream {info.name()!r} but could not open it: {err}"
            ) from None
        self.connected = True
        self._active = True
        self._connected_at = pylsl.local_clock()
        logger.info("connected to %r", self)
        return self

    def close(self) -> None:
        """Unsubscribe; the inlet can be connected again."""
        # Dropping the pylsl objects destroys them, which closes the connection.
        self._lsl = None
        self._probe = None
        self.connected = False
        self._active = False

    def __enter__(self) -> "Inlet":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- data ----------------------------------------------------------------------------------

    def pull(self, timeout: float = 0.0):
        """Return everything received since the last pull.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the first sample when none is queued; 0 returns at once.

        Returns
        -------
        data : ndarray, shape (n_samples, n_channels)
            float64 samples (exact for every format but int64 beyond 2**53). For a string
            stream, an object array of str.
        timestamps : ndarray, shape (n_samples,)
            Sample times in seconds on this machine's LSL clock.
        """
        if not self._active:
            raise BiosigError(f"inlet {self._query_text()} is not connected; call connect()")
        now = pylsl.local_clock()
        if not self.connected:
            self._recover(now)
        if self._lsl is None:
            return self._empty()
        data, timestamps, lost = self._drain(max(0.0, float(timeout)))
        if timestamps.shape[0]:
            # Samples can have been sent since the previous pull with data, not before it.
            since = now - self._last_data_at if self._last_data_at is not None else math.inf
            self._on_samples(now)
            self._refresh_clock(now)
            if self.clock_sync:
                timestamps += self.stats.clock_offset
            timestamps, jumps = self._handle_clock_jumps(
                timestamps, since + (pylsl.local_clock() - now))
            self._account(timestamps, jumps)
        if lost:
            self._mark_lost(now, "the connection broke", keep_inlet=False)
        elif not timestamps.shape[0]:
            self._check_liveness(now)
        return data, timestamps

    def _drain(self, timeout: float):
        """Pull every queued sample; return (data, timestamps, lost)."""
        pieces, stamps = [], []
        lost = False
        while True:
            try:
                values, ts = self._pull_once(timeout)
            except LostError:
                lost = True
                break
            if ts.shape[0]:
                pieces.append(values)
                stamps.append(ts)
            if ts.shape[0] < self.chunk_max_samples:
                break
            timeout = 0.0
        if not stamps:
            data, timestamps = self._empty()
            return data, timestamps, lost
        if len(stamps) == 1:  # the usual case: no copy of a copy
            return pieces[0], stamps[0], lost
        return np.concatenate(pieces), np.concatenate(stamps), lost

    def _pull_once(self, timeout: float):
        kwargs = {"timeout": timeout, "max_samples": self.chunk_max_samples}
        if timeout > 0 and _HAS_MIN_SAMPLES:
            kwargs["min_samples"] = 1
        if self._buffer is None:  # string stream: pylsl decodes to lists of str
            values, ts = self._lsl.pull_chunk(**kwargs)
            if not len(ts):
                return self._empty()
            strings = np.empty((len(ts), self._desc.n_channels), dtype=object)
            strings[:] = values
            return strings, np.asarray(ts, dtype=np.float64)
        if _HAS_AS_NUMPY:
            kwargs["as_numpy"] = True
        _, ts = self._lsl.pull_chunk(dest_obj=self._buffer, **kwargs)
        ts = np.asarray(ts, dtype=np.float64)
        return self._buffer[: ts.shape[0]].astype(np.float64), ts

    def _empty(self):
        n = self._desc.n_channels if self._desc else 0
        dtype = np.float64 if self._desc is None or self._desc.is_numeric else object
        return np.empty((0, n), dtype=dtype), np.empty(0, dtype=np.float64)

    # -- gap accounting ------------------------------------------------------------------------

    def _account(self, timestamps: np.ndarray, jumps: np.ndarray | None = None) -> None:
        """Count samples, find gaps and the rate; ``jumps`` marks steps that are clock jumps."""
        stats = self.stats
        stats.samples_received += int(timestamps.shape[0])
        stats.chunks += 1
        previous, self._last_ts = self._last_ts, float(timestamps[-1])
        srate = self._desc.srate
        if srate <= 0:
            return
        times = timestamps if previous is None else np.concatenate(([previous], timestamps))
        dt = np.diff(times)
        period = 1.0 / srate
        is_gap = dt > self.gap_factor * period
        if jumps is not None:  # a clock jump is not missing data, whatever its size
            is_gap &= ~jumps
        for i in np.flatnonzero(is_gap):
            n_dropped = max(int(round(dt[i] * srate)) - 1, 0)
            gap = Gap(float(times[i] + period), float(dt[i] - period), n_dropped)
            stats.gaps.append(gap)
            logger.info(
                "stream %r: gap of %.3f s (%d samples) at t=%.3f",
                self._desc.name, gap.duration_s, n_dropped, gap.t_start,
            )
        steady = ~is_gap & (dt > 0) if jumps is None else ~is_gap & (dt > 0) & ~jumps
        stats._intervals += int(steady.sum())
        stats._interval_s += float(dt[steady].sum())
        if stats._interval_s > 0:
            stats.measured_rate = stats._intervals / stats._interval_s

    def _handle_clock_jumps(self, timestamps: np.ndarray, elapsed_s: float):
        """Find clock jumps in ``timestamps`` (after the last delivered one); rebase if asked.

        ``elapsed_s`` bounds the real time between the last delivered sample and any of these:
        every one of them was sent after the previous pull that delivered data.

        Returns the (possibly rebased) timestamps, and None or a mask of the steps between
        consecutive samples (the last delivered one first, if any) that are clock jumps.
        """
        srate = self._desc.srate
        if self._jump_shift:
            timestamps += self._jump_shift
        previous = self._last_ts
        if previous is None and timestamps.shape[0] < 2:
            return timestamps, None
        times = timestamps if previous is None else np.concatenate(([previous], timestamps))
        dt = np.diff(times)
        if srate <= 0:  # irregular: no period to continue from; record backward steps only
            for i in np.flatnonzero(dt < 0):
                self._record_jump(float(times[i + 1]), float(dt[i]))
            return timestamps, None
        period = 1.0 / srate
        jumps = (dt <= 0) | (dt > elapsed_s + JUMP_TOLERANCE_S + period)
        if not jumps.any():
            return timestamps, None
        offset = 0 if previous is None else 1  # dt[i] ends at timestamps[i + 1 - offset]
        for i in np.flatnonzero(jumps):
            step = float(dt[i] - period)
            if self.clock_jumps == "rebase":
                # dt[i] is unaffected by the shifts of earlier jumps: they move both ends.
                timestamps[i + 1 - offset:] -= step
                self._jump_shift -= step
            self._record_jump(float(timestamps[i + 1 - offset]), step)
        self.stats.clock_shift_s = self._jump_shift
        return timestamps, jumps

    def _record_jump(self, t: float, step_s: float) -> None:
        self.stats.clock_jumps.append(ClockJump(t, step_s))
        # A source that stamps every sample of a chunk alike jumps on every chunk: say it a few
        # times, not forever.
        log = logger.warning if len(self.stats.clock_jumps) <= MAX_LOGGED_JUMPS else logger.debug
        log(
            "stream %r: its clock jumped by %+.6f s at t=%.3f (%s)", self._desc.name, step_s, t,
            "timestamps rebased to continue" if self.clock_jumps == "rebase" and self._desc.srate > 0
            else "timestamps kept",
        )

    # -- recovery ------------------------------------------------------------------------------

    def _open(self, info: pylsl.StreamInfo, timeout: float, *, wait_for_clock: bool) -> None:
        """Subscribe to the outlet described by ``info``, blocking at most ``timeout`` s.

        The first clock offset estimate of a connection takes liblsl about 0.65 s. On the first
        connection it is awaited (the outlet may run on another host, whose clock can be hours
        off); on a re-connection the previous offset stands in until the new one is ready.
        """
        deadline = pylsl.local_clock() + timeout

        def remaining() -> float:
            return max(deadline - pylsl.local_clock(), 0.001)

        flags = pylsl.proc_dejitter if self.dejitter else 0
        buffer_len = self.max_buffer_s if info.nominal_srate() > 0 else self.max_buffer_s * 100
        lsl = pylsl.StreamInlet(
            info,
            max_buflen=max(1, int(math.ceil(buffer_len))),
            recover=True,
            processing_flags=flags,
        )
        desc = StreamDescription.from_info(lsl.info(timeout=remaining()))
        lsl.open_stream(timeout=remaining())
        self._clock_pending = self.clock_sync
        if self.clock_sync:
            try:  # with timeout 0 this only starts the measurement
                self.stats.clock_offset = lsl.time_correction(
                    timeout=remaining() if wait_for_clock else 0.0
                )
                self._clock_pending = False
            except LSLTimeoutError:
                log = logger.warning if wait_for_clock else logger.debug
                log("no clock offset for %r yet; using %.6f s", desc.name, self.stats.clock_offset)
        self._next_clock_refresh = pylsl.local_clock() + CLOCK_REFRESH_S
        if self._desc is not None and _shape(desc) != _shape(self._desc):
            logger.warning(
                "stream %r came back as %d ch @ %s %s (was %d ch @ %s %s)",
                desc.name, desc.n_channels, desc.rate_text(), desc.channel_format,
                self._desc.n_channels, self._desc.rate_text(), self._desc.channel_format,
            )
        self._desc = desc
        self._uid = desc.uid
        self._lsl = lsl
        self._buffer = (
            np.empty((self.chunk_max_samples, desc.n_channels), numpy_dtype(desc.channel_format))
            if desc.is_numeric
            else None
        )

    def _on_samples(self, now: float) -> None:
        """Samples arrived: end an outage, or check whether a silence hid an outlet restart."""
        silent_for = now - self._last_data_at if self._last_data_at is not None else 0.0
        self._last_data_at = now
        if not self.connected:
            # Only a kept source-id inlet delivers while marked lost: liblsl reconnected it, to
            # an outlet whose unique id we learn from the network.
            self._mark_reconnected(now, "liblsl reconnected it")
            self._uid = None
            self._start_probe(_Probe.ADOPT, now, force=True)
        elif silent_for > self._stall_s() and self._desc.source_id and self._uid:
            # liblsl may have switched to a re-created outlet during the silence: then the
            # outlet we knew no longer answers.
            self._start_probe(_Probe.RESTART, now, force=True)
        self._finish_probe(now)

    def _check_liveness(self, now: float) -> None:
        """Nothing arrived: after a silence, ask the network whether the outlet still exists."""
        self._finish_probe(now)
        if not self.connected:
            return
        quiet_since = self._last_data_at if self._last_data_at is not None else self._connected_at
        if now - quiet_since >= self._stall_s():
            self._start_probe(_Probe.ALIVE, now)

    def _recover(self, now: float) -> None:
        """While lost: look for a stream matching the query and open it (unless liblsl will)."""
        self._finish_probe(now)
        if not self.connected:
            self._start_probe(_Probe.FIND, now)

    def _start_probe(self, purpose: str, now: float, *, force: bool = False) -> None:
        if self._probe is not None and not force:
            return
        if not force and now < self._next_probe:
            return
        self._next_probe = now + CHECK_INTERVAL_S
        by_uid = purpose in (_Probe.ALIVE, _Probe.RESTART) and self._uid
        predicate = _xpath_predicate({"uid": self._uid} if by_uid else self._query)
        self._probe = _Probe(purpose, predicate, PROBE_TIMEOUT_S)

    def _finish_probe(self, now: float) -> None:
        """Act on a finished probe, if any."""
        probe = self._probe
        found = probe.answer(now) if probe is not None else None
        if found is None:
            return
        self._probe = None
        if probe.purpose == _Probe.ALIVE:
            if found:
                self._next_probe = now + ALIVE_RECHECK_S
            still_quiet = now - (self._last_data_at or 0.0) >= self._stall_s()
            if self.connected and not found and still_quiet:
                # A source-id inlet is kept: liblsl will reconnect it, with its queue intact.
                keep = bool(self._desc.source_id)
                self._mark_lost(now, "its outlet left the network", keep_inlet=keep)
        elif probe.purpose == _Probe.RESTART:
            if self.connected and not found:
                self.stats.disconnects += 1
                self.stats.reconnects += 1
                logger.warning("stream %r was restarted; liblsl reconnected to it", self._desc.name)
                self._uid = None
                self._start_probe(_Probe.ADOPT, now, force=True)
        elif probe.purpose == _Probe.ADOPT:
            uids = {info.uid() for info in found}
            if len(uids) == 1:
                self._uid = uids.pop()
        elif probe.purpose == _Probe.FIND and not self.connected and found:
            self._reopen(now, _newest(found))

    def _reopen(self, now: float, info: pylsl.StreamInfo) -> None:
        if self._lsl is not None:
            # A source-id stream: liblsl reconnects by itself and keeps its queue intact, so
            # step in only if it has not done so in reasonable time.
            if self._candidate_since is None:
                self._candidate_since = now
            if now - self._candidate_since < LIBLSL_GRACE_S:
                return
            logger.warning("liblsl did not reconnect %r; opening it anew", self._desc.name)
            self._lsl = None
        try:
            self._open(info, timeout=REOPEN_TIMEOUT_S, wait_for_clock=False)
        except (LSLTimeoutError, LostError) as err:
            logger.debug("re-opening %r failed (%s); will retry", self._desc.name, err)
            self._lsl = None
            return
        self._mark_reconnected(pylsl.local_clock(), "found it again")

    def _mark_lost(self, now: float, why: str, *, keep_inlet: bool) -> None:
        self.connected = False
        self._lost_at = now
        self._candidate_since = None
        self._probe = None
        self._next_probe = 0.0
        self.stats.disconnects += 1
        if not keep_inlet:
            self._lsl = None
        logger.warning(
            "lost stream %r (%s); looking for %s again", self._desc.name, why, self._query_text()
        )

    def _mark_reconnected(self, now: float, how: str) -> None:
        self.connected = True
        # liblsl measures the clock offset anew for a new connection.
        self._clock_pending = self.clock_sync
        self._connected_at = now
        self._candidate_since = None
        self.stats.reconnects += 1
        logger.warning(
            "stream %r is back after %.2f s (%s)", self._desc.name, now - self._lost_at, how
        )

    def _stall_s(self) -> float:
        srate = self._desc.srate if self._desc else 0.0
        return max(STALL_S, 5.0 / srate) if srate > 0 else STALL_S

    def _refresh_clock(self, now: float) -> None:
        """Read liblsl's clock offset estimate: every pull while a new one is awaited, else
        every ``CLOCK_REFRESH_S``. Never waits."""
        if not self.clock_sync or self._lsl is None:
            return
        if not self._clock_pending and now < self._next_clock_refresh:
            return
        self._next_clock_refresh = now + CLOCK_REFRESH_S
        try:
            self.stats.clock_offset = self._lsl.time_correction(timeout=0.0)
            self._clock_pending = False
        except LSLTimeoutError:
            pass  # liblsl is still measuring (after a reconnection): keep the last offset
        except LostError:
            pass  # the next pull reports the loss

    # -- display -------------------------------------------------------------------------------

    def _query_text(self) -> str:
        return " and ".join(f"{key}={value!r}" for key, value in self._query.items())

    def __repr__(self) -> str:
        state = "ON" if self.connected else "OFF"
        if self._desc is None:
            return f"<Inlet {self._query_text()} | {state} | not connected>"
        desc = self._desc
        rate = desc.rate_text().replace("irregular", "irregular rate")
        return f"<Inlet {desc.name!r} | {state} | {desc.n_channels} ch @ {rate}>"


def _newest(infos: list[pylsl.StreamInfo]) -> pylsl.StreamInfo:
    """The most recently created of several matching outlets (a restart's survivor)."""
    return max(infos, key=lambda info: info.created_at())


def _xpath_predicate(query: dict[str, str]) -> str:
    """An LSL resolver predicate matching every ``key == value`` of ``query``."""
    return " and ".join(f"{key}={_xpath_literal(value)}" for key, value in query.items())


def _xpath_literal(value: str) -> str:
    # XPath 1.0 strings have no escapes: quote with whichever quote the value lacks.
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in parts) + ")"


class _Probe:
    """A one-shot LSL resolve on a background thread, so that :meth:`Inlet.pull` never waits.

    A live outlet answers within milliseconds; a missing one leaves the resolve to run out its
    timeout, which is why it must not run on the caller's thread. The answer counts as "none"
    once the timeout has passed, even if liblsl has not returned yet: a resolve that finds
    nothing sometimes returns 5 s late (seen with liblsl 1.18 on loopback, now and then).
    """

    ALIVE = "alive"  # silent stream: does our outlet still answer?
    RESTART = "restart"  # data resumed after a silence: does our outlet still answer?
    ADOPT = "adopt"  # after liblsl reconnected: which outlet is it now?
    FIND = "find"  # lost, or connecting: which outlet matches the query now?

    def __init__(self, purpose: str, predicate: str, timeout: float):
        self.purpose = purpose
        self.predicate = predicate
        self.deadline = pylsl.local_clock() + timeout + PROBE_GRACE_S
        self.done = threading.Event()
        self._found: list[pylsl.StreamInfo] = []
        thread = threading.Thread(
            target=self._run, args=(timeout,), name="biosig-lsl-probe", daemon=True
        )
        thread.start()

    def answer(self, now: float) -> list[pylsl.StreamInfo] | None:
        """The streams found; [] if none answered in time; None while still waiting."""
        if self.done.is_set():
            return self._found
        return [] if now > self.deadline else None

    def wait(self) -> list[pylsl.StreamInfo]:
        """Block until the answer is known (at most the timeout plus a little)."""
        self.done.wait(max(self.deadline - pylsl.local_clock(), 0.0))
        return self._found if self.done.is_set() else []

    def _run(self, timeout: float) -> None:
        try:
            self._found = pylsl.resolve_bypred(self.predicate, minimum=1, timeout=timeout)
        except Exception as err:  # a failed probe only delays recovery; never kill the reader
            logger.debug("resolve %r failed: %s", self.predicate, err)
        self.done.set()


def _shape(desc: StreamDescription) -> tuple:
    return desc.n_channels, desc.srate, desc.channel_format
