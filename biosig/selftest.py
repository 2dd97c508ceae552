"""Latency self-test: how long after a window's last sample its posterior leaves the results outlet.

Two intervals are measured, both on one host, and reported as p50/p95/p99/max:

**End-to-end** (the self-test's headline figure), on ``pylsl.local_clock()``:

* replaying a recording (:meth:`LatencySelftest.run_replay`): a thread of this process sends the
  recording on a real LSL outlet, in chunks of ``chunk_s`` at real time (× ``speed``), with
  timestamps on the nominal sample grid, and notes when it pushes each chunk. biosig's live path
  receives it (:class:`~biosig.stream.inlet.Inlet` → :class:`~biosig.stream.pipeline.Pipeline`
  → the model) and publishes every posterior on an :class:`~biosig.stream.sinks.LSLResultsSink`.
  A window's latency is the moment its posterior's ``push_sample`` returned minus the moment the
  chunk holding the window's last sample was pushed. It covers LSL transport on loopback, the
  inlet's wait, the queue between the acquisition and processing threads, preprocessing,
  features, inference and the results push. It does not cover a device's own buffering (a
  sample counts as arrived when its chunk is sent) or the delivery to a program reading the
  results outlet (one LSL hop, as on the way in).
* attached to a live stream (:meth:`LatencySelftest.run_stream`): there is no push time to
  compare with, so a window's latency is the departure of its posterior minus the timestamp of
  its last sample (the source's clock mapped onto ours with ``time_correction``). That adds the
  device's chunking and driver delays, and any error of the source's timestamps.

**Processing**: the pipeline's own ``latency_s`` (``time.perf_counter``): from the acquisition
thread receiving the chunk to the window's results being ready, before the sinks run.

The **controller delay budget** is the worst-case time from a change in the muscle signal to the
first decision made on a window that holds only the new signal: window length + hop (the change
can begin just after a window starts) + extra windows of decision smoothing + the p99 end-to-end
latency. It is checked against the 100–125 ms optimal controller delay of Farrell & Weir (2007,
IEEE TNSRE 15(1):111–118): PASS when it is at most 125 ms. The processing goal is a p99
end-to-end latency of at most 5 ms.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field, replace

import numpy as np
import pylsl

from biosig._checks import BiosigError, check_positive
from biosig.io.recording import Stream
from biosig.stream.lsl_info import numpy_dtype

logger = logging.getLogger(__name__)

__all__ = ["LatencyReport", "LatencySelftest", "OPTIMAL_DELAY_S", "PROCESSING_GOAL_S"]

#: Optimal myoelectric controller delay, fast to slow prehensors (Farrell & Weir 2007), in s.
OPTIMAL_DELAY_S = (0.100, 0.125)
#: Goal for the p99 end-to-end latency on one CPU core, in seconds.
PROCESSING_GOAL_S = 0.005
#: Percentiles reported.
PERCENTILES = (50, 95, 99)
#: Seconds after the last chunk was sent that the self-test waits for its results.
DRAIN_S = 2.0


@dataclass
class LatencyReport:
    """Result of one self-test run.

    Attributes
    ----------
    source : str
        What was measured (recording path or live stream name).
    mode : str
        ``"replay"`` or ``"stream"``; decides which interval ``latency_s`` holds (module notes).
    n_channels, srate : int, float
        Shape of the stream (Hz).
    model : str
        The classifier (``repr``), or ``""``.
    window_s, hop_s : float
        Window length and hop of the pipeline, in seconds.
    smoothing : int
        Decisions in the model's majority vote (1: none).
    latency_s : ndarray
        End-to-end latency of every measured window, in seconds.
    processing_s : ndarray
        Pipeline-internal latency of the same windows, in seconds.
    sample_index : ndarray of int64
        Index of each measured window's last sample in the replayed signal (-1 live).
    samples_sent, samples_received : int
        Samples pushed by the replay (0 live) and received by the pipeline.
    results_sent, results_received : int
        Posteriors pushed on the results outlet, and read back by a subscriber of it.
    windows_skipped, chunks_dropped : int
        Stale windows not classified, and chunks the pipeline dropped because it fell behind.
    warmup_windows : int
        Windows in the first ``warmup_s`` left out of the figures.
    unmatched : int
        Windows whose last sample could not be matched to a sent chunk (should be 0).
    duration_s : float
        Wall-clock seconds the measurement ran.
    error : str or None
        The pipeline's error, if it stopped on one.
    clock_offset : float
        Seconds the inlet added to the source's timestamps (clock correction and rebasing).
    """

    source: str
    mode: str
    n_channels: int
    srate: float
    model: str
    window_s: float
    hop_s: float
    smoothing: int = 1
    latency_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    processing_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sample_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    samples_sent: int = 0
    samples_received: int = 0
    results_sent: int = 0
    results_received: int = 0
    windows_skipped: int = 0
    chunks_dropped: int = 0
    warmup_windows: int = 0
    unmatched: int = 0
    duration_s: float = 0.0
    error: str | None = None
    clock_offset: float = 0.0

    @property
    def n_windows(self) -> int:
        return int(self.latency_s.size)

    @staticmethod
    def summary(values: np.ndarray) -> dict:
        """p50, p95, p99 and max of ``values`` (seconds; NaN when empty)."""
        if values.size == 0:
            return {**{f"p{q}": math.nan for q in PERCENTILES}, "max": math.nan}
        pct = np.percentile(values, PERCENTILES)
        return {**{f"p{q}": float(v) for q, v in zip(PERCENTILES, pct)}, "max": float(values.max())}

    @property
    def smoothing_s(self) -> float:
        """Extra delay of a majority vote over ``smoothing`` decisions: half of them must agree."""
        return (self.smoothing // 2) * self.hop_s

    @property
    def budget_s(self) -> float:
        """Worst-case controller delay: window + hop + smoothing + p99 end-to-end latency."""
        return self.window_s + self.hop_s + self.smoothing_s + self.summary(self.latency_s)["p99"]

    @property
    def budget_pass(self) -> bool:
        return bool(self.budget_s <= OPTIMAL_DELAY_S[1])

    @property
    def processing_pass(self) -> bool:
        return bool(self.summary(self.latency_s)["p99"] <= PROCESSING_GOAL_S)

    @property
    def passed(self) -> bool:
        """Both checks passed and the run was clean (no error, nothing unaccounted for)."""
        return self.budget_pass and self.processing_pass and self.clean

    @property
    def clean(self) -> bool:
        """The pipeline ran without error and every posterior sent was received."""
        return (self.error is None and self.n_windows > 0
                and self.results_received == self.results_sent)

    def to_dict(self) -> dict:
        """The figures as plain JSON-ready values (seconds)."""
        return {
            "source": self.source, "mode": self.mode, "n_channels": self.n_channels,
            "srate": self.srate, "model": self.model, "window_s": self.window_s,
            "hop_s": self.hop_s, "smoothing": self.smoothing, "n_windows": self.n_windows,
            "end_to_end_s": self.summary(self.latency_s),
            "processing_s": self.summary(self.processing_s),
            "budget_s": self.budget_s, "budget_limit_s": OPTIMAL_DELAY_S[1],
            "budget_pass": self.budget_pass, "processing_goal_s": PROCESSING_GOAL_S,
            "processing_pass": self.processing_pass, "passed": self.passed,
            "samples_sent": self.samples_sent, "samples_received": self.samples_received,
            "results_sent": self.results_sent, "results_received": self.results_received,
            "windows_skipped": self.windows_skipped, "chunks_dropped": self.chunks_dropped,
            "warmup_windows": self.warmup_windows, "unmatched": self.unmatched,
            "duration_s": self.duration_s, "error": self.error,
        }

    def format_table(self) -> str:
        """The human-readable report: percentiles, budget and verdicts."""
        e2e, proc = self.summary(self.latency_s), self.summary(self.processing_s)
        interval = ("chunk pushed -> posterior pushed on the results outlet"
                    if self.mode == "replay" else
                    "last sample's timestamp -> posterior pushed on the results outlet")
        lines = [
            f"source: {self.source} ({self.n_channels} ch @ {self.srate:g} Hz, {self.mode})",
            f"model: {self.model or 'none'}",
            f"windows measured: {self.n_windows} (after {self.warmup_windows} warm-up), "
            f"{self.duration_s:.1f} s",
            "",
            f"{'latency (ms)':<34}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}",
            _row("end-to-end [1]", e2e),
            _row("processing [2]", proc),
            "[1] " + interval + " (pylsl.local_clock)",
            "[2] pipeline: chunk received by the acquisition thread -> results ready",
            "",
            "controller delay budget (ms)",
            f"  {'window':<32}{self.window_s * 1e3:>8.1f}",
            f"  {'hop':<32}{self.hop_s * 1e3:>8.1f}",
        ]
        if self.smoothing > 1:
            lines.append(f"  {f'smoothing ({self.smoothing} votes)':<32}{self.smoothing_s * 1e3:>8.1f}")
        lines += [
            f"  {'end-to-end p99':<32}{e2e['p99'] * 1e3:>8.2f}",
            f"  {'total':<32}{self.budget_s * 1e3:>8.1f}",
            "",
            f"controller delay {self.budget_s * 1e3:.1f} ms vs optimal "
            f"{OPTIMAL_DELAY_S[0] * 1e3:.0f}-{OPTIMAL_DELAY_S[1] * 1e3:.0f} ms "
            f"(Farrell & Weir 2007): {'PASS' if self.budget_pass else 'FAIL'}",
            f"end-to-end p99 {e2e['p99'] * 1e3:.2f} ms vs goal {PROCESSING_GOAL_S * 1e3:.0f} ms: "
            f"{'PASS' if self.processing_pass else 'FAIL'}",
            f"samples sent {self.samples_sent}, received {self.samples_received}; posteriors "
            f"sent {self.results_sent}, received {self.results_received}; skipped windows "
            f"{self.windows_skipped}; dropped chunks {self.chunks_dropped}",
        ]
        if self.unmatched:
            lines.append(f"windows not matched to a sent chunk: {self.unmatched}")
        if self.error:
            lines.append(f"pipeline error: {self.error}")
        return "\n".join(lines)


def _row(name: str, summary: dict) -> str:
    values = "".join(f"{summary[k] * 1e3:>8.2f}" for k in ("p50", "p95", "p99", "max"))
    return f"{name:<34}{values}"


class _TimingSink:
    """Publishes results on LSL and notes, per classified window, when its posterior left.

    Preallocated arrays hold the measurements, so a long run's memory does not grow with them.
    """

    def __init__(self, results_sink, capacity: int):
        self.results_sink = results_sink
        # Filled now, so their pages are resident from the start (RSS measurements stay fair).
        self.t_end = np.full(capacity, np.nan)
        self.departed = np.full(capacity, np.nan)
        self.processing = np.full(capacity, np.nan)
        self.n = 0
        self.sent = 0
        self.overflow = 0

    def __call__(self, results) -> None:
        self.results_sink(results)
        departed = pylsl.local_clock()
        keep = ~results.skipped
        count = int(keep.sum())
        self.sent += count
        room = min(count, self.t_end.size - self.n)
        self.overflow += count - room
        if room <= 0:
            return
        stop = self.n + room
        self.t_end[self.n:stop] = results.t_end[keep][:room]
        self.departed[self.n:stop] = departed
        self.processing[self.n:stop] = results.latency_s[keep][:room]
        self.n = stop


class _ResultsReader:
    """Subscribes to the results outlet and counts the posteriors that reach a reader."""

    def __init__(self, name: str, timeout: float = 5.0):
        found = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout)
        if not found:
            raise BiosigError(f"the results outlet {name!r} did not appear on LSL")
        self.inlet = pylsl.StreamInlet(found[0], max_buflen=60)
        self.inlet.open_stream(timeout=timeout)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="biosig-selftest-reader",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            _, stamps = self.inlet.pull_chunk(timeout=0.05, max_samples=4096)
            self.received += len(stamps)

    def close(self) -> int:
        self._stop.set()
        self._thread.join(1.0)
        _, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=1 << 20)
        self.received += len(stamps)
        self.inlet = None
        return self.received


class _Producer(threading.Thread):
    """Sends a signal on an LSL outlet in fixed chunks at real time × ``speed``.

    Timestamps lie on the nominal grid (``t0 + i / (srate × speed)``); a chunk is pushed when its
    last sample is due, and the push time of every chunk is kept. The signal is looped when
    ``n_samples`` exceeds it.
    """

    def __init__(self, outlet, data: np.ndarray, srate: float, n_samples: int, chunk: int,
                 speed: float):
        super().__init__(name="biosig-selftest-producer", daemon=True)
        self.outlet = outlet
        self.data = data
        self.rate = srate * speed
        self.n_samples = n_samples
        self.chunk = chunk
        self.push_times = np.full(-(-n_samples // chunk), np.nan)
        self.t0 = math.nan
        self.sent = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        n, chunk, rate, clock = self.data.shape[0], self.chunk, self.rate, pylsl.local_clock
        self.t0 = clock() + 0.01
        offsets = np.arange(chunk)
        for k in range(self.push_times.size):
            if self.stop_event.is_set():
                break
            first = k * chunk
            count = min(chunk, self.n_samples - first)
            due = self.t0 + (first + count - 1) / rate
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)
            rows = np.take(self.data, (first + offsets[:count]) % n, axis=0)
            stamps = (self.t0 + (first + offsets[:count]) / rate).tolist()
            self.push_times[k] = clock()
            self.outlet.push_chunk(rows, stamps)
            self.sent = first + count


class LatencySelftest:
    """Measure the live path's latency on a replayed recording or a live LSL stream.

    Parameters
    ----------
    model : OnnxModel or None
        The classifier; its pipeline settings are used. None: no classifier and no results
        outlet, so only the processing latency (features) is measured.
    seconds : float
        How long to measure, in seconds of signal (the recording is looped if shorter).
    warmup_s : float
        Windows ending in the first ``warmup_s`` seconds of signal are left out of the figures
        (connection set-up, first inference runs).
    chunk_s : float
        Replay chunk length in seconds of signal (a device's transfer size); at least one sample.
    speed : float
        Replay speed multiple (1: real time).
    config : PipelineConfig or None
        Pipeline settings when there is no model; None: the default for the stream's rate.
    """

    def __init__(self, model=None, *, seconds: float = 10.0, warmup_s: float = 1.0,
                 chunk_s: float = 0.005, speed: float = 1.0, config=None):
        self.model = model
        self.seconds = seconds
        self.warmup_s = warmup_s
        self.chunk_s = chunk_s
        self.speed = speed
        self.config = config

    # -- replay -----------------------------------------------------------------------------------

    def run_replay(self, stream: Stream, source: str | None = None, *, progress=None) -> LatencyReport:
        """Replay ``stream`` on a loopback LSL outlet through the live path and time it.

        Parameters
        ----------
        stream : Stream
            A regularly sampled signal stream.
        source : str or None
            How to name it in the report (default: the stream's name).
        progress : callable or None
            Called about every 0.2 s with (samples sent, samples to send).
        """
        from biosig.stream.outlet import make_outlet

        seconds = check_positive(self.seconds, "seconds")
        speed = check_positive(self.speed, "speed")
        if stream.srate <= 0 or stream.n_samples == 0:
            raise BiosigError(f"stream {stream.name!r} has no regular samples to replay")
        name = f"biosig-selftest-{uuid.uuid4().hex[:8]}"
        sent_stream = replace(stream, name=name, source_id=name)
        outlet = make_outlet(sent_stream)
        data = np.ascontiguousarray(stream.data.astype(numpy_dtype(stream.channel_format)))
        n_samples = int(round(seconds * stream.srate))
        chunk = max(1, int(round(check_positive(self.chunk_s, "chunk_s") * stream.srate)))
        producer = _Producer(outlet, data, stream.srate, n_samples, chunk, speed)
        report = self._measure(name, stream, producer, source or stream.name, progress)
        report.samples_sent = producer.sent
        if report.n_windows:
            self._match_replay(report, producer, stream.srate * speed, chunk)
        return report

    def _match_replay(self, report: LatencyReport, producer: _Producer, rate: float,
                      chunk: int) -> None:
        """Turn (t_end, departure) into latencies against the push of each window's chunk."""
        t_end, departed = report.sample_index, report.latency_s  # as stashed by _measure
        index = np.rint((t_end - report.clock_offset - producer.t0) * rate).astype(np.int64)
        on_grid = np.abs(producer.t0 + index / rate - (t_end - report.clock_offset)) < 0.25 / rate
        k = index // chunk
        ok = on_grid & (index >= 0) & (k < producer.push_times.size)
        ok[ok] &= np.isfinite(producer.push_times[k[ok]])
        report.unmatched = int((~ok).sum())
        pushed = producer.push_times[np.where(ok, k, 0)]
        report.latency_s = (departed - pushed)[ok]
        report.processing_s = report.processing_s[ok]
        report.sample_index = index[ok]

    # -- live ------------------------------------------------------------------------------------

    def run_stream(self, name: str, *, resolve_timeout: float = 5.0, progress=None) -> LatencyReport:
        """Attach to the live LSL stream ``name`` for ``seconds`` and time the live path."""
        report = self._measure(name, None, None, name, progress, resolve_timeout=resolve_timeout)
        if report.n_windows:
            # The source's own timestamps (mapped onto our clock) are the only arrival times.
            report.latency_s = report.latency_s - report.sample_index
            report.sample_index = np.full(report.n_windows, -1, dtype=np.int64)
        return report

    # -- shared ----------------------------------------------------------------------------------

    def _measure(self, name, stream, producer, source, progress, resolve_timeout=5.0) -> LatencyReport:
        from biosig.stream.inlet import Inlet
        from biosig.stream.pipeline import Pipeline
        from biosig.stream.sinks import LSLResultsSink
        from biosig.stream.sources import LSLSource

        seconds = check_positive(self.seconds, "seconds")
        warmup = check_positive(self.warmup_s, "warmup_s", allow_zero=True)
        inlet = Inlet(name=name, resolve_timeout=resolve_timeout)
        lsl_source = LSLSource(inlet)
        config = self.config
        if config is None and callable(getattr(self.model, "pipeline_config", None)):
            config = self.model.pipeline_config()
        results_sink = reader = None
        if self.model is not None:
            results_sink = LSLResultsSink(list(self.model.classes_), name=f"{name}-results")
        pipeline = None
        try:
            lsl_source.open()  # connect now: the stream's shape sizes the config and buffers
            if config is None:
                from biosig.config import PipelineConfig

                config = PipelineConfig.for_rate(inlet.srate, modality=inlet.type or "EMG")
            capacity = int(seconds / config.window.hop_s * 1.1) + 1024
            timing = _TimingSink(results_sink if results_sink is not None else _no_sink, capacity)
            if results_sink is not None:
                reader = _ResultsReader(f"{name}-results")
            # The source is open (connected) already; the pipeline's open() is then a no-op.
            pipeline = Pipeline(lsl_source, config, classifier=self.model,
                                sinks=[timing])
            pipeline.start()
            started = time.perf_counter()
            if producer is not None:
                if not producer.outlet.wait_for_consumers(resolve_timeout):
                    raise BiosigError("the pipeline did not subscribe to the replayed stream")
                producer.start()
                self._wait_replay(producer, pipeline, progress)
            else:
                self._wait_live(pipeline, seconds / max(self.speed, 1e-9), progress)
            duration = time.perf_counter() - started
        finally:
            if pipeline is not None:
                pipeline.stop()
            if producer is not None:
                producer.stop_event.set()
            received = reader.close() if reader is not None else 0
            if results_sink is not None:
                results_sink.close()
        stats = pipeline.stats
        n = timing.n
        t_end = timing.t_end[:n].copy()
        start_t = t_end[0] if n else 0.0
        if producer is not None and np.isfinite(producer.t0):
            start_t = producer.t0
        # Warm-up: in seconds of signal, i.e. of timestamps (which run at ``speed``).
        kept = t_end >= start_t + warmup / max(self.speed, 1e-9)
        window = config.window
        report = LatencyReport(
            source=source, mode="replay" if producer is not None else "stream",
            n_channels=inlet.n_channels, srate=inlet.srate,
            model=repr(self.model) if self.model is not None else "",
            window_s=window.length_s, hop_s=window.hop_s,
            smoothing=getattr(getattr(self.model, "smoother", None), "k", 1),
            # Stashed raw: run_replay / run_stream turn them into latencies.
            latency_s=timing.departed[:n][kept], processing_s=timing.processing[:n][kept],
            sample_index=t_end[kept],
            samples_received=stats.samples_in,
            results_sent=timing.sent if self.model is not None else 0,
            results_received=received,
            windows_skipped=stats.windows_skipped, chunks_dropped=stats.chunks_dropped,
            warmup_windows=int((~kept).sum()), duration_s=duration, error=stats.error,
        )
        report.clock_offset = inlet.stats.clock_offset + inlet.stats.clock_shift_s
        if self.model is None:
            report.results_sent = report.results_received = 0
        if timing.overflow:
            logger.warning("%d windows beyond the preallocated %d were not timed",
                           timing.overflow, capacity)
        return report

    @staticmethod
    def _wait_replay(producer: _Producer, pipeline, progress) -> None:
        while producer.is_alive():
            producer.join(0.2)
            if progress is not None:
                progress(producer.sent, producer.n_samples)
            if pipeline.stats.error:
                return
        deadline = time.monotonic() + DRAIN_S
        while pipeline.stats.samples_in < producer.sent and time.monotonic() < deadline:
            time.sleep(0.02)
        # The last chunks may still be on the processing thread: wait until windows stop coming.
        windows = -1
        while windows != pipeline.stats.windows and time.monotonic() < deadline:
            windows = pipeline.stats.windows
            time.sleep(0.1)

    @staticmethod
    def _wait_live(pipeline, wall_s: float, progress) -> None:
        deadline = time.monotonic() + wall_s
        while time.monotonic() < deadline and not pipeline.stats.error:
            time.sleep(0.2)
            if progress is not None:
                progress(pipeline.stats.samples_in, None)


def _no_sink(results) -> None:
    """Without a model nothing is published: only the processing latency is measured."""

