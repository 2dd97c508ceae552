"""The live explainer: mutual information and prototypes refreshed in the background.

:class:`ExplainerService` sits beside a running :class:`~biosig.stream.pipeline.Pipeline`:

- its :meth:`~ExplainerService.sink` is one of the pipeline's sinks. On the processing thread it
  only copies the new windows' features and posteriors into a preallocated ring buffer
  (O(batch), no allocation once running, never waits on the worker);
- a worker takes a snapshot of the buffer every ``mi_interval_s`` and refreshes the
  input-output mutual information with :class:`~biosig.explain.ModelMITracker` (warm-started
  EM), and computes the class prototypes (inverse inference) once per model and on
  :meth:`~ExplainerService.request_prototypes`;
- results go out as :class:`ExplainerResult` through the ``on_result`` callback and a bounded
  queue; :meth:`~ExplainerService.latest` gives the newest of each kind.

Two kinds of worker run the same computations (:class:`~biosig.explain.engine.ExplainerEngine`
on the same schedule, :func:`~biosig.explain.worker.run_loop`), so a snapshot gives the same
numbers in both:

``worker="process"`` (the default for an :class:`~biosig.inference.OnnxModel`)
    The ring lives in shared memory (:class:`~biosig.explain.ring.SharedWindowRing`, written
    by the sink under a sequence lock that never makes the writer wait). A fresh interpreter
    (``python -m biosig.explain.worker``, see :mod:`biosig.explain.worker` for why not a
    multiprocessing spawn) lowers its own priority (``SCHED_IDLE`` by default: it computes on
    CPU time the pipeline does not want), opens its own
    single-threaded ``OnnxModel`` from the model's file, reads snapshots, computes, and sends
    results back through a pipe to a small receiver thread here, which updates :meth:`latest`,
    the queue and the stats and calls ``on_result``. Why: with a worker *thread*, the GIL
    hand-over between the worker's Python-level steps and the processing thread grew the
    pipeline's 99th-percentile per-window latency by 30-51 % on a loaded 2-core machine
    (median within ~3 %), against a goal of 10 % (issue 4); a process has its own interpreter
    and its own scheduling priority (with it: p99 x1.02-1.06 of off on the quiet machine,
    where the thread gave x1.28; docs/benchmarks.md). The price: the process needs a few seconds to start
    (imports numpy, scipy, onnxruntime; never torch or Qt) and ~100 MB of memory, the model
    must be a file, and it needs POSIX (pipe descriptors passed to the child). A worker that
    dies is logged, counted (:attr:`ExplainerStats.worker_exits`) and restarted up to
    :data:`MAX_RESTARTS` times; the pipeline never waits for it.
``worker="thread"`` (any model with ``predict_proba``)
    A daemon thread in this process, with a process-local ring under a
    :class:`threading.Lock`. Its computations run with BLAS/OpenMP pools limited to one thread
    (``threadpoolctl``, when installed), the MI on one thread, and a private single-threaded
    copy of an ``OnnxModel``, so it never contends for the pipeline's inference session.
    Starts instantly; costs the tail latency above.

Cancellation: the MI refresh runs in blocks of features (one tracker per block) and prototypes
one class at a time; :meth:`~ExplainerService.stop` asks the worker to stop, which it checks
between blocks and classes, so it returns within about one block's time (well under 1 s at the
defaults). It never waits longer than its ``timeout``: a worker process still busy then is
terminated (then killed), so no process outlives the service; the shared memory is unlinked
in every case (also when starting fails, and at garbage collection or exit as a last resort).

An exception in an explainer is logged and counted (:attr:`ExplainerStats.errors`); the worker
goes on and the pipeline never sees it. This module imports neither torch nor Qt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np

from biosig._checks import BiosigError, check_int, check_option, check_positive
from biosig.explain.engine import (
    KINDS,
    MI_FEATURES_PER_BLOCK,
    ExplainerEngine,
    ExplainerResult,
    private_model,
)
from biosig.explain.ring import SharedWindowRing, WindowRing
from biosig.explain.worker import (
    PROTOTYPES,
    REFRESH,
    STOP,
    ThreadControl,
    PRIORITIES,
    WorkerSpec,
    run_loop,
)

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "MI_FEATURES_PER_BLOCK", "MAX_RESTARTS", "WORKERS", "ExplainerResult",
           "ExplainerService", "ExplainerStats", "SharedWindowRing", "WindowRing"]

#: Kinds of worker: "auto" is "process" for a model read from an ONNX file, else "thread".
WORKERS = ("auto", "thread", "process")
#: Times a worker process that died is started again before the service gives up on it.
MAX_RESTARTS = 3
#: Seconds to wait before restarting a worker process that died.
RESTART_DELAY_S = 0.5
#: Seconds :meth:`ExplainerService.stop` lets a worker process end on its own (it checks for
#: the request between MI blocks and classes) before terminating it.
GRACEFUL_STOP_S = 0.5


@dataclass
class ExplainerStats:
    """Counters of an :class:`ExplainerService`; read them from any thread.

    Attributes
    ----------
    windows_in : int
        Windows with posteriors that reached the buffer.
    windows_skipped : int
        Windows the sink ignored (no posteriors: stale or no classifier; or, with a worker
        process, a feature or class count other than the model's).
    runs : dict
        Completed computations per kind.
    cancelled : int
        Computations abandoned because of :meth:`ExplainerService.stop`.
    errors : int
        Computations that raised (logged; the worker went on), plus worker processes that
        could not start.
    callback_errors : int
        ``on_result`` calls that raised.
    results_dropped : int
        Results pushed out of the full queue (nobody was reading it).
    last_duration_s : dict
        Duration of the latest completed computation per kind.
    last_error : str or None
    worker_starts : int
        Worker processes started (0 with a worker thread).
    worker_exits : int
        Worker processes that ended without being asked to (crashed or killed).
    worker_imports : list of str
        Heavy modules (torch, PySide6, sklearn) the worker process had imported when it
        reported ready; empty unless something is wrong.
    """

    windows_in: int = 0
    windows_skipped: int = 0
    runs: dict = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    cancelled: int = 0
    errors: int = 0
    callback_errors: int = 0
    results_dropped: int = 0
    last_duration_s: dict = field(default_factory=lambda: dict.fromkeys(KINDS, float("nan")))
    last_error: str | None = None
    worker_starts: int = 0
    worker_exits: int = 0
    worker_imports: list = field(default_factory=list)


def _model_file(model) -> str | None:
    """The ONNX file an OnnxModel was read from (None for any other model)."""
    path = getattr(model, "path", None)
    if path is None or type(model).__name__ != "OnnxModel":
        return None
    return str(path)


def _worker_environment() -> dict:
    """The worker's environment: ours, with this biosig importable first, and one thread for
    the numeric libraries (the worker computes on one core beside the pipeline)."""
    environment = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        environment[name] = "1"
    return environment


@dataclass
class _Process:
    """One running worker process and this side's ends of its pipes."""

    popen: subprocess.Popen
    commands: Connection
    results: Connection
    ready: bool = False  # reported ready: model loaded, ring attached
    fatal: bool = False  # reported that it cannot start

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(max(0.0, timeout))

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()


class ExplainerService:
    """Mutual information and class prototypes of a model, refreshed beside a live pipeline.

    Parameters
    ----------
    model : object
        The pipeline's classifier: ``predict_proba``, ``classes_`` and ``feature_names``
        (an :class:`~biosig.inference.OnnxModel`; its card's training mean and variance are the
        Gaussian prior of the prototypes).
    mi_interval_s : float
        Seconds between MI refreshes (a refresh is skipped when no new window arrived).
    buffer_windows : int
        Windows kept for the MI reference sample (the most recent ones).
    min_windows : int
        Fewest buffered windows before the first MI refresh.
    on_result : callable or None
        Called with every :class:`ExplainerResult`, on the worker thread (``worker="thread"``)
        or the receiver thread (``"process"``). Keep it short; a GUI should hand it to its own
        thread. Exceptions are logged and counted.
    compute_prototypes : bool
        Compute the prototypes once after :meth:`start` (with the default Gaussian prior from
        the model card they depend only on the model).
    queue_size : int
        Bound of :attr:`results`; when full, the oldest result is dropped.
    mi_options : dict or None
        Extra keyword arguments of :class:`~biosig.explain.ModelMITracker`.
    prototype_options : dict or None
        Extra keyword arguments of :func:`biosig.explain.inverse.inverse_inference`.
        ``{"prior": "empirical"}`` takes the buffered windows as the prior: the prototypes
        are then where recent inputs of each class lie (the exact posterior, not a mean-field
        mode near the decision boundary) and are recomputed with every MI refresh.
    worker : {"auto", "process", "thread"}
        Where the computations run (see the module docstring). "auto": a process for an
        :class:`~biosig.inference.OnnxModel`, a thread for any other model. "process" needs an
        ``OnnxModel``.
    worker_priority : {"idle", "low", "normal"}
        Scheduling priority of a worker process: "idle" runs it only on CPU time nobody else
        wants (Linux ``SCHED_IDLE``; elsewhere niceness +19), "low" is niceness +10. See
        :func:`biosig.explain.worker.lower_priority`. A worker thread ignores it.

    Attributes
    ----------
    results : queue.Queue
        Published results, oldest first.
    stats : ExplainerStats

    Examples
    --------
    >>> service = ExplainerService(model, on_result=gui.show)        # doctest: +SKIP
    >>> pipeline = Pipeline(source, classifier=model, sinks=[service.sink])  # doctest: +SKIP
    >>> with service, pipeline:                                       # doctest: +SKIP
    ...     pipeline.wait()
    """

    def __init__(self, model, *, mi_interval_s=2.0, buffer_windows=1000, min_windows=100,
                 on_result: Callable[[ExplainerResult], None] | None = None,
                 compute_prototypes=True, queue_size=16, mi_options=None, prototype_options=None,
                 worker="auto", worker_priority="idle"):
        self.model = model
        self.mi_interval_s = check_positive(mi_interval_s, "mi_interval_s")
        self.min_windows = check_int(min_windows, "min_windows", minimum=20)
        self.buffer_windows = check_int(buffer_windows, "buffer_windows", minimum=1)
        if self.min_windows > self.buffer_windows:
            raise BiosigError(
                f"min_windows ({self.min_windows}) exceeds buffer_windows ({self.buffer_windows})"
            )
        if on_result is not None and not callable(on_result):
            raise BiosigError("on_result must be callable or None")
        self.on_result = on_result
        self.compute_prototypes = bool(compute_prototypes)
        self.results: queue.Queue = queue.Queue(maxsize=check_int(queue_size, "queue_size", minimum=1))
        self.mi_options = dict(mi_options or {})
        self.prototype_options = dict(prototype_options or {})
        self.worker = check_option(worker, "worker", WORKERS)
        self.worker_priority = check_option(worker_priority, "worker_priority", PRIORITIES)
        if self.worker == "process" and _model_file(model) is None:
            raise BiosigError(f"worker='process' needs an OnnxModel (the worker process opens its "
                              f"file); got a {type(model).__name__}: use worker='thread'")
        if self.worker == "process" and os.name != "posix":
            raise BiosigError("worker='process' needs a POSIX system (it passes pipe file "
                              "descriptors to the worker); use worker='thread'")
        self.stats = ExplainerStats()
        self.feature_names = list(getattr(model, "feature_names", None) or []) or None
        self.class_names = [str(c) for c in getattr(model, "classes_", [])] or None
        self._latest: dict[str, ExplainerResult] = {}
        self._latest_lock = threading.Lock()
        # Thread worker.
        self._control = ThreadControl()
        self._thread: threading.Thread | None = None
        self._local_ring = None if self.uses_process else WindowRing(self.buffer_windows)
        # Process worker.
        self._shared_ring: SharedWindowRing | None = None
        self._ring_linked = False
        self._unlink_at_exit = None
        self._lock = threading.Lock()  # worker process, supervisor, stopping
        self._worker: _Process | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._prototypes_requested = False
        self._width_warned = False

    @property
    def uses_process(self) -> bool:
        """Whether the computations run in a worker process (else a thread)."""
        return self.worker == "process" or (self.worker == "auto" and os.name == "posix"
                                            and _model_file(self.model) is not None)

    # -- the buffer -----------------------------------------------------------------------------
    @property
    def buffer(self) -> WindowRing | SharedWindowRing:
        """The ring of recent windows (shared memory with a worker process, created on first
        use and unlinked by :meth:`stop`)."""
        if self._local_ring is not None:
            return self._local_ring
        ring = self._shared_ring
        return ring if ring is not None else self._ensure_shared_ring()

    def _ensure_shared_ring(self) -> SharedWindowRing:
        """The shared ring, (re)created if none is linked (first use, or after a stop)."""
        with self._lock:
            if self._shared_ring is not None and self._ring_linked:
                return self._shared_ring
            old = self._shared_ring
            ring = SharedWindowRing.create(self.buffer_windows, len(self.feature_names or []) or 1,
                                           len(self.class_names or []) or 1)
            if old is not None and len(old):  # windows buffered before a stop() carry over
                features, posteriors, t_end, _ = old.snapshot()
                ring.push(features, posteriors, t_end)
            self._shared_ring, self._ring_linked = ring, True
            # Last resort for a service never stopped: unlink at garbage collection or exit.
            self._unlink_at_exit = weakref.finalize(self, SharedWindowRing.unlink, ring)
            return ring

    def _unlink_ring(self) -> None:
        with self._lock:
            if self._shared_ring is not None and self._ring_linked:
                self._shared_ring.unlink()
                self._ring_linked = False
                if self._unlink_at_exit is not None:
                    self._unlink_at_exit.detach()

    @property
    def shared_memory_name(self) -> str | None:
        """Name of the shared-memory block of the ring while it is linked (None otherwise)."""
        ring = self._shared_ring
        return ring.name if ring is not None and self._ring_linked else None

    # -- pipeline side (processing thread) ---------------------------------------------------
    def sink(self, results) -> None:
        """Pipeline sink: buffer the batch's classified windows. O(batch); never waits long.

        Windows without posteriors (no classifier, or skipped as stale) are counted and left
        out: the MI pairs each input with the model's output on the same window. So are
        windows with non-finite features (a CTG window with too little valid FHR has NaN
        level features), which no density estimate can take.
        """
        posteriors = results.posteriors
        n = len(results)
        if posteriors is None or n == 0:
            self.stats.windows_skipped += n
            return
        valid = ~results.skipped & ~results.unusable
        if not valid.all() or not np.isfinite(results.features).all():
            valid &= np.isfinite(posteriors).all(axis=1) & np.isfinite(results.features).all(axis=1)
            self.stats.windows_skipped += int(n - valid.sum())
            if not valid.any():
                return
            features, posteriors, t_end = results.features[valid], posteriors[valid], results.t_end[valid]
        else:
            features, t_end = results.features, results.t_end
        ring = self.buffer
        if isinstance(ring, SharedWindowRing) and not ring.fits(features, posteriors):
            self._skip_misfit(features, posteriors)
            return
        ring.push(features, posteriors, t_end)
        self.stats.windows_in += features.shape[0]

    __call__ = sink

    def _skip_misfit(self, features, posteriors) -> None:
        self.stats.windows_skipped += features.shape[0]
        if not self._width_warned:
            self._width_warned = True
            logger.warning("explainer: windows with %d features x %d classes, but the model has "
                           "%d x %d; left out", features.shape[1], posteriors.shape[1],
                           self.buffer.n_features, self.buffer.n_classes)

    # -- control ------------------------------------------------------------------------------
    def start(self) -> ExplainerService:
        """Start the worker (idempotent). A worker process reports ready a few seconds later."""
        if self.running:
            return self
        if self.uses_process:
            self._start_process_worker()
        else:
            self._start_thread_worker()
        logger.info("explainer started (%s worker, MI every %.3g s over <= %d windows)",
                    "process" if self.uses_process else "thread", self.mi_interval_s,
                    self.buffer_windows)
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the worker to stop and wait at most ``timeout`` seconds.

        A computation in progress is abandoned at its next block (MI) or class (prototypes).
        A worker process still running at the end is terminated; its shared memory is
        unlinked in every case.

        Returns
        -------
        bool
            True if the worker has ended; False if it was still finishing a block after
            ``timeout`` (a thread: it ends on its own at the next check; a process: it was
            killed and did not exit in time).
        """
        if self.uses_process:
            return self._stop_process_worker(timeout)
        return self._stop_thread_worker(timeout)

    @property
    def running(self) -> bool:
        """Whether a worker is active (a worker process may still be starting or restarting)."""
        if self.uses_process:
            return self._supervisor is not None and self._supervisor.is_alive()
        return self._thread is not None and self._thread.is_alive()

    @property
    def worker_ready(self) -> bool:
        """Whether a worker can take requests now: a thread once started, a process once it
        has loaded the model (a few seconds after :meth:`start`)."""
        if not self.uses_process:
            return self.running
        current = self._worker
        return current is not None and current.ready and current.is_alive()

    @property
    def worker_pid(self) -> int | None:
        """Process id of the current worker process (None with a thread or when not running)."""
        current = self._worker
        return None if current is None else current.pid

    def request_prototypes(self) -> None:
        """Recompute the prototypes at the worker's next opportunity (e.g. after a new model)."""
        if self.uses_process:
            self._prototypes_requested = True
            self._send(PROTOTYPES)
            return
        self._control.prototypes_wanted.set()
        self._control.wake.set()

    def refresh_now(self) -> None:
        """Run the MI refresh now instead of at the next tick (if enough windows are buffered)."""
        if self.uses_process:
            self._send(REFRESH)
            return
        self._control.refresh_wanted.set()
        self._control.wake.set()

    def latest(self, kind: str | None = None):
        """The newest result of ``kind`` (None if none yet), or ``{kind: result}`` for all."""
        with self._latest_lock:
            if kind is None:
                return dict(self._latest)
            if kind not in KINDS:
                raise BiosigError(f"kind must be one of {KINDS}, got {kind!r}")
            return self._latest.get(kind)

    def __enter__(self) -> ExplainerService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- outcomes (worker thread, or the receiver thread of a worker process) ------------------
    def _record(self, kind: str, outcome: str, value, duration: float) -> None:
        """Count one computation's outcome and publish its result."""
        if outcome == "done":
            self.stats.runs[kind] += 1
            self.stats.last_duration_s[kind] = duration
            if kind == "prototypes":
                self._prototypes_requested = False
            self._publish(value)
        elif outcome == "error":
            self.stats.errors += 1
            self.stats.last_error = value
        else:
            self.stats.cancelled += 1
            logger.debug("explainer: %s cancelled by stop()", kind)

    def _publish(self, result: ExplainerResult) -> None:
        with self._latest_lock:
            self._latest[result.kind] = result
        while True:
            try:
                self.results.put_nowait(result)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.results.get_nowait()
                    self.stats.results_dropped += 1
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:  # noqa: BLE001 - a broken consumer must not stop the explainer
                self.stats.callback_errors += 1
                logger.exception("explainer: on_result callback failed")

    def _engine(self, model, cancelled) -> ExplainerEngine:
        return ExplainerEngine(model, feature_names=self.feature_names,
                               class_names=self.class_names, min_windows=self.min_windows,
                               mi_options=self.mi_options,
                               prototype_options=self.prototype_options, cancelled=cancelled)

    # -- thread worker --------------------------------------------------------------------------
    def _start_thread_worker(self) -> None:
        control = self._control  # kept across stop/start: a request made before start() holds
        control.stop_event.clear()
        if self.compute_prototypes:
            control.prototypes_wanted.set()

        def run() -> None:
            engine = self._engine(private_model(self.model), control.stopped)
            run_loop(engine, self._local_ring, control, self._record,
                     mi_interval_s=self.mi_interval_s, min_windows=self.min_windows)

        self._thread = threading.Thread(target=run, name="biosig-explainer", daemon=True)
        self._thread.start()

    def _stop_thread_worker(self, timeout: float) -> bool:
        self._control.stop_event.set()
        self._control.wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("explainer: worker still busy %.3g s after stop(); leaving it to end",
                           timeout)
            return False
        logger.info("explainer stopped: %s", self.stats)
        return True

    # -- process worker -------------------------------------------------------------------------
    def _spec(self, ring: SharedWindowRing) -> WorkerSpec:
        wants_prototypes = self._prototypes_requested or (
            self.compute_prototypes and self.latest("prototypes") is None)
        return WorkerSpec(model_path=_model_file(self.model), ring_layout=ring.layout,
                          feature_names=self.feature_names, class_names=self.class_names,
                          min_windows=self.min_windows, mi_interval_s=self.mi_interval_s,
                          mi_options=self.mi_options, prototype_options=self.prototype_options,
                          compute_prototypes=wants_prototypes, priority=self.worker_priority)

    def _spawn(self, ring: SharedWindowRing) -> _Process:
        """Start one worker process on ``ring``; this side keeps one end of each pipe."""
        commands_read, commands_write = os.pipe()
        results_read, results_write = os.pipe()
        child_ends = (commands_read, results_write)
        commands = Connection(commands_write, readable=False)
        results = Connection(results_read, writable=False)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "biosig.explain.worker", *map(str, child_ends)],
                pass_fds=child_ends, stdin=subprocess.DEVNULL, env=_worker_environment())
            commands.send(self._spec(ring))
        except BaseException:
            commands.close()
            results.close()
            raise
        finally:
            for end in child_ends:  # the child has its own; its exit is then an EOF here
                os.close(end)
        self.stats.worker_starts += 1
        return _Process(process, commands, results)

    def _start_process_worker(self) -> None:
        self._stopping.clear()
        try:
            ring = self._ensure_shared_ring()
            with self._lock:
                self._worker = self._spawn(ring)
            self._supervisor = threading.Thread(target=self._supervise, args=(ring,),
                                                name="biosig-explainer-receiver", daemon=True)
            self._supervisor.start()
        except BaseException:
            self._stop_process_worker(1.0)
            raise

    def _send(self, command: str) -> None:
        """Send a command to the worker process, if there is one (never blocks for long: the
        pipe is read continuously; a dead worker's pipe just fails)."""
        with self._lock:
            current = self._worker
            if current is None:
                return
            try:
                current.commands.send(command)
            except (OSError, ValueError):  # dead worker, or a pipe already closed
                logger.debug("explainer: could not send %r to the worker", command)

    def _supervise(self, ring: SharedWindowRing) -> None:
        """Receiver thread: handle the worker's messages; detect and restart a dead worker."""
        restarts = 0
        while True:
            current = self._worker
            if current is None:
                return
            self._receive(current)
            current.join(1.0)
            if self._stopping.is_set():
                return
            self.stats.worker_exits += 1
            code = current.exitcode
            if not current.fatal:
                self.stats.last_error = f"worker process exited unexpectedly (exit code {code})"
            if current.fatal or restarts >= MAX_RESTARTS:
                logger.error("explainer: worker process exited (code %s); not restarting it "
                             "(%s)", code, "it could not start" if current.fatal
                             else f"{restarts} restarts already")
                return
            logger.error("explainer: worker process exited (code %s); restarting it", code)
            if self._stopping.wait(RESTART_DELAY_S):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._worker = self._spawn(ring)
                except Exception:  # noqa: BLE001 - give up on the worker, never on the pipeline
                    logger.exception("explainer: could not restart the worker process")
                    self.stats.errors += 1
                    return
            restarts += 1
            current.commands.close()
            current.results.close()

    def _receive(self, current: _Process) -> None:
        """Handle messages until the worker process closes its end (it exited)."""
        while True:
            try:
                message = current.results.recv()
            except (EOFError, OSError):
                return
            self._handle(current, message)

    def _handle(self, current: _Process, message: tuple) -> None:
        tag = message[0]
        if tag == "report":
            self._record(*message[1:])
        elif tag == "log":
            _, level, name, text = message
            logger.log(level, "explainer worker [%s]: %s", name, text)
        elif tag == "ready":
            current.ready = True
            self.stats.worker_imports = list(message[2])
            if message[2]:
                logger.warning("explainer: the worker process imported %s", ", ".join(message[2]))
            logger.info("explainer: worker process %d ready (priority: %s)", message[1],
                        message[3])
        elif tag == "fatal":
            current.fatal = True
            self.stats.errors += 1
            self.stats.last_error = f"worker process could not start: {message[1]}"
            logger.error("explainer: worker process could not start: %s", message[1])

    def _stop_process_worker(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(float(timeout), 0.0)
        with self._lock:
            self._stopping.set()
            current = self._worker
        ended = True
        try:
            if current is not None:
                with contextlib.suppress(OSError, ValueError):
                    current.commands.send(STOP)
                ended = self._end_process(current, deadline)
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None and supervisor is not threading.current_thread():
                supervisor.join(max(0.0, deadline - time.monotonic()))
            with self._lock:  # no command goes out on a closed pipe after this
                self._worker = None
            if current is not None:
                current.commands.close()
                if supervisor is None or not supervisor.is_alive():
                    current.results.close()
        finally:
            self._unlink_ring()
        if ended:
            logger.info("explainer stopped: %s", self.stats)
        return ended

    @staticmethod
    def _end_process(process: _Process, deadline: float) -> bool:
        """Let the worker end on its own for a moment, then terminate it, then kill it.

        Its state is discarded anyway, so a worker still importing or deep in an MI block is
        not worth waiting for: at most :data:`GRACEFUL_STOP_S` (or 60 % of the time left).
        """
        left = deadline - time.monotonic()
        if process.ready:
            process.join(max(0.0, min(GRACEFUL_STOP_S, 0.6 * left)))
        for end in (process.terminate, process.kill):
            if not process.is_alive():
                break
            if process.ready:
                logger.info("explainer: worker process %d still busy; %s", process.pid,
                            end.__name__)
            end()
            process.join(max(0.05, 0.5 * (deadline - time.monotonic())))
        return not process.is_alive()

    def __repr__(self) -> str:
        state = "ON" if self.running else "OFF"
        kind = "process" if self.uses_process else "thread"
        ring = self._local_ring if self._local_ring is not None else self._shared_ring
        held = 0 if ring is None else len(ring)
        return (f"<ExplainerService | {state} | {kind} | {held}/{self.buffer_windows} windows | "
                f"runs {self.stats.runs} | errors {self.stats.errors}>")
