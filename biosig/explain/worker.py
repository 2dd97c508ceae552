"""The explainer's worker loop, and the entry point of its worker process.

:func:`run_loop` is the one schedule both kinds of worker follow (prototypes when asked, MI
every ``mi_interval_s`` when new windows arrived); a *control* object tells it when to stop,
wake early or recompute the prototypes, and a *report* callable takes every outcome:

- thread worker: :class:`ThreadControl` (events set by the service) and a report that updates
  the service directly;
- process worker: ``python -m biosig.explain.worker CMD_FD RESULT_FD`` (:func:`main`), started
  by the service with the two pipe ends it inherits; it reads its :class:`WorkerSpec` from the
  command pipe, then runs :func:`process_main` with :class:`PipeControl` (commands from the
  service) and a report that sends each outcome back through the other pipe, read by the
  service's receiver thread. A fresh interpreter rather than a ``multiprocessing`` spawn:
  spawn re-imports the parent's main script in the child, which runs a script's top level
  again unless it has an ``if __name__ == "__main__":`` guard. A library's background worker
  must not depend on its callers' scripts being written that way.

The process lowers its scheduling priority (:func:`lower_priority`), opens its own
single-threaded :class:`~biosig.inference.OnnxModel` from the model's file and attaches to the
service's :class:`~biosig.explain.ring.SharedWindowRing`.
It imports neither torch nor Qt (neither does anything it imports); warnings and errors it logs
are forwarded to the service's process and logged there.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from biosig.explain.engine import Cancelled, ExplainerEngine, single_thread_blas

logger = logging.getLogger(__name__)

#: Scheduling priorities of the worker process: "idle" (Linux ``SCHED_IDLE``: the worker runs
#: on CPU time nobody else wants, and any waking thread of normal priority preempts it at
#: once; elsewhere niceness +19), "low" (niceness +10) or "normal".
PRIORITIES = ("idle", "low", "normal")


def lower_priority(priority: str) -> str:
    """Lower the calling process's scheduling priority; returns what was applied.

    Why "idle" by default: Linux preempts a ``SCHED_IDLE`` task as soon as a normal thread
    wakes, whereas a niced task keeps the core for up to its wake-up granularity (ms). The
    measurements do not separate the two (docs/benchmarks.md: on the quiet 2-core machine an
    idle worker gave the pipeline's p99 x1.02-1.06 of off; with other jobs running, an idle
    worker x1.08-1.35 and a +10 one x0.6-1.8, noise as large as the difference), so the
    choice rests on the mechanism.
    The price: on a saturated machine the MI refreshes late (the worker gets a minimal share).
    Only for a process: a worker *thread* with ``SCHED_IDLE`` could be preempted while holding
    the GIL, and the pipeline's thread would wait for it (priority inversion).
    """
    if priority == "idle" and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError:  # not permitted here (some containers): niceness instead
            pass
    niceness = {"idle": 19, "low": 10}.get(priority, 0)
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)
        return f"nice +{niceness}"
    return "normal"


#: Modules whose presence in the worker process the service reports (none should be there).
HEAVY_MODULES = ("torch", "PySide6", "sklearn")

# Commands the service sends to a worker process.
STOP, REFRESH, PROTOTYPES = "stop", "refresh", "prototypes"

#: ``report(kind, outcome, value, duration_s)`` with outcome "done" (value: the result),
#: "error" (value: one line), or "cancelled".
Report = Callable[[str, str, object, float], None]


def _guarded(kind: str, job: Callable[[], object], report: Report) -> bool:
    """Run one computation and report its outcome; True if it completed."""
    started = time.perf_counter()
    try:
        with single_thread_blas():
            result = job()
    except Cancelled:
        report(kind, "cancelled", None, time.perf_counter() - started)
        return False
    except Exception as err:  # noqa: BLE001 - an explainer must never take the pipeline down
        logger.exception("explainer: %s failed", kind)
        report(kind, "error", f"{kind}: {type(err).__name__}: {err}",
               time.perf_counter() - started)
        return False
    report(kind, "done", result, time.perf_counter() - started)
    return True


def run_loop(engine: ExplainerEngine, ring, control, report: Report, *, mi_interval_s: float,
             min_windows: int) -> None:
    """The worker's schedule, until ``control.stopped()``.

    Prototypes first whenever asked for; then wait until the next MI tick (or an early wake),
    and refresh the MI if at least ``min_windows`` windows are buffered and some arrived since
    the last refresh. Prototypes with the empirical prior (the buffer itself) are recomputed on
    the same snapshot after every MI refresh.
    """
    next_mi = time.monotonic() + mi_interval_s
    last_total = 0
    while not control.stopped():
        if control.take_prototypes() and not (engine.prototypes_follow_buffer
                                              and len(ring) < min_windows):
            # (Prototypes on the buffer wait for enough windows: the next MI refresh.)
            _guarded("prototypes", lambda: engine.prototypes(ring.snapshot), report)
        woken = control.wait(max(0.0, next_mi - time.monotonic()))
        if control.stopped():
            break
        refresh = control.take_refresh()
        if woken and not refresh and control.prototypes_pending() \
                and time.monotonic() < next_mi:
            continue  # woken for prototypes only
        next_mi = time.monotonic() + mi_interval_s
        if len(ring) < min_windows or ring.total == last_total:
            continue
        taken: list = []

        def refresh_mi():
            taken.append(ring.snapshot())
            return engine.mutual_information(taken[0])

        if _guarded("mi", refresh_mi, report):
            last_total = taken[0][3]
            if engine.prototypes_follow_buffer:  # same snapshot as the MI
                _guarded("prototypes", lambda: engine.prototypes(lambda: taken[0]), report)


class ThreadControl:
    """Control of a worker thread: flags and a wake-up event set by the service."""

    def __init__(self):
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.prototypes_wanted = threading.Event()
        self.refresh_wanted = threading.Event()

    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def wait(self, timeout: float) -> bool:
        woken = self.wake.wait(timeout)
        self.wake.clear()
        return woken

    def take_prototypes(self) -> bool:
        wanted = self.prototypes_wanted.is_set()
        self.prototypes_wanted.clear()
        return wanted

    def prototypes_pending(self) -> bool:
        return self.prototypes_wanted.is_set()

    def take_refresh(self) -> bool:
        wanted = self.refresh_wanted.is_set()
        self.refresh_wanted.clear()
        return wanted


class PipeControl:
    """Control of a worker process: commands read from the service's pipe.

    The end of the pipe (the service's process gone, or its end closed) counts as "stop", so
    a worker never outlives its service.
    """

    def __init__(self, connection, *, prototypes: bool):
        self.connection = connection
        self._stop = False
        self._prototypes = prototypes
        self._refresh = False

    def _read(self, timeout: float) -> bool:
        """Handle every command that arrives within ``timeout``; True if any did."""
        received = False
        try:
            while not self._stop and self.connection.poll(timeout):
                command = self.connection.recv()
                received, timeout = True, 0.0
                if command == STOP:
                    self._stop = True
                elif command == REFRESH:
                    self._refresh = True
                elif command == PROTOTYPES:
                    self._prototypes = True
        except (EOFError, OSError):
            self._stop, received = True, True
        return received

    def stopped(self) -> bool:
        self._read(0.0)
        return self._stop

    def wait(self, timeout: float) -> bool:
        return self._read(timeout)

    def take_prototypes(self) -> bool:
        self._read(0.0)
        wanted, self._prototypes = self._prototypes, False
        return wanted

    def prototypes_pending(self) -> bool:
        return self._prototypes

    def take_refresh(self) -> bool:
        wanted, self._refresh = self._refresh, False
        return wanted


# -- the worker process ----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs (pickled to it at start)."""

    model_path: str
    ring_layout: tuple
    feature_names: list | None
    class_names: list | None
    min_windows: int
    mi_interval_s: float
    mi_options: dict
    prototype_options: dict
    compute_prototypes: bool
    priority: str = "idle"


class _PipeLogHandler(logging.Handler):
    """Forwards the worker's warnings and errors to the service's process."""

    def __init__(self, send: Callable[[tuple], None]):
        super().__init__(logging.WARNING)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self._send(("log", record.levelno, record.name, message))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def process_main(spec: WorkerSpec, commands, results) -> None:
    """Entry point of the worker process: load the model, attach the ring, run the loop.

    Sends ``("ready", pid, heavy modules imported, priority applied)`` once started, ``("report", kind, outcome,
    value, duration_s)`` per computation, ``("log", level, logger, message)`` for warnings and
    errors, and ``("fatal", message)`` if it cannot start.
    """
    from biosig.explain.ring import SharedWindowRing

    applied_priority = lower_priority(spec.priority)
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            results.send(message)

    handler = _PipeLogHandler(send)
    package_logger = logging.getLogger("biosig")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.WARNING)
    package_logger.propagate = False  # the service's process logs what we forward
    ring = None
    try:
        try:
            from biosig.inference import OnnxModel

            model = OnnxModel(spec.model_path, threads=1)
            ring = SharedWindowRing.attach(*spec.ring_layout, track=False)
        except Exception as err:  # noqa: BLE001 - reported to the service, which decides
            send(("fatal", f"{type(err).__name__}: {err}"))
            return
        send(("ready", os.getpid(), [m for m in HEAVY_MODULES if m in sys.modules],
              applied_priority))
        control = PipeControl(commands, prototypes=spec.compute_prototypes)
        engine = ExplainerEngine(model, feature_names=spec.feature_names,
                                 class_names=spec.class_names, min_windows=spec.min_windows,
                                 mi_options=spec.mi_options,
                                 prototype_options=spec.prototype_options,
                                 cancelled=control.stopped)

        def report(kind, outcome, value, duration):
            send(("report", kind, outcome, value, duration))

        run_loop(engine, ring, control, report, mi_interval_s=spec.mi_interval_s,
                 min_windows=spec.min_windows)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the service is gone: nothing to report to
    finally:
        package_logger.removeHandler(handler)
        if ring is not None:
            ring.close()
        for connection in (commands, results):
            connection.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m biosig.explain.worker CMD_FD RESULT_FD``: the worker process's entry point.

    The first message on the command pipe is the :class:`WorkerSpec`.
    """
    from multiprocessing.connection import Connection

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m biosig.explain.worker CMD_FD RESULT_FD (started by "
              "biosig.explain.service.ExplainerService)", file=sys.stderr)
        return 2
    commands = Connection(int(args[0]), writable=False)
    results = Connection(int(args[1]), readable=False)
    try:
        spec = commands.recv()
    except (EOFError, OSError):
        return 1
    process_main(spec, commands, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
