"""The live explainer: mutual information and prototypes refreshed in the background.

:class:`ExplainerService` sits beside a running :class:`~biosig.stream.pipeline.Pipeline`:

- its :meth:`~ExplainerService.sink` is one of the pipeline's sinks. On the processing thread it
  only copies the new windows' features and posteriors into a preallocated ring buffer under a
  lock (O(batch), no allocation once running, never waits on the worker);
- one worker thread takes a snapshot of the buffer every ``mi_interval_s`` and refreshes the
  input-output mutual information with :class:`~biosig.explain.ModelMITracker` (warm-started
  EM), and computes the class prototypes (inverse inference) once per model and on
  :meth:`~ExplainerService.request_prototypes`;
- results go out as :class:`ExplainerResult` through the ``on_result`` callback (called on the
  worker thread) and a bounded queue; :meth:`~ExplainerService.latest` gives the newest of each
  kind.

Why a thread and not a process: the buffer snapshot is shared memory (no pickling of ~400 kB
every refresh), the warm-started EM state stays where it is used, start-up costs nothing
(a spawned process re-imports numpy, scipy and onnxruntime: seconds) and the work is
numpy-bound, which releases the GIL in its large array operations, so the pipeline's thread
keeps running. ``benchmarks/explainer_latency.py`` measures the cost on the pipeline's per-window
latency: on a loaded 2-core machine the median stays within ~3 % of off, but the 99th
percentile grows (0.74 -> 1.12 ms), the GIL hand-over between the worker's Python-level steps
and the processing thread. A worker process would remove that tail at the price above; it is
the next step if the tail matters more than sub-millisecond absolute figures suggest.

Threads have no priority of their own in CPython (``os.nice`` is per process). Instead the
worker's computations run with BLAS/OpenMP pools limited to one thread (``threadpoolctl``, when
installed; note those limits are process-wide while they hold, which costs the pipeline nothing:
its per-window arrays are far too small for BLAS to use threads), the MI runs on one thread
(``n_jobs=1``), and the worker uses its own single-threaded copy of an
:class:`~biosig.inference.OnnxModel`, so it never contends for the pipeline's inference session.

Cancellation: the MI refresh runs in blocks of features (one tracker per block) and prototypes
one class at a time; :meth:`~ExplainerService.stop` sets a flag checked between blocks and
classes, so it returns within about one block's time (well under 1 s at the defaults), and
never joins for longer than its ``timeout``.

An exception in an explainer is logged and counted (:attr:`ExplainerStats.errors`); the worker
goes on and the pipeline never sees it. This module imports neither torch nor Qt.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from biosig._checks import BiosigError, check_int, check_positive
from biosig.explain.mutual_info import ModelMIResult, ModelMITracker

logger = logging.getLogger(__name__)

#: Kinds of result the service publishes.
KINDS = ("mi", "prototypes")
#: Features per MI block: the granularity at which a refresh can be cancelled (48 features x
#: 8 classes at 1000 windows: ~0.1-0.3 s per block of 12).
MI_FEATURES_PER_BLOCK = 12


# -- results and counters --------------------------------------------------------------------


@dataclass(frozen=True)
class ExplainerResult:
    """One published explanation.

    Attributes
    ----------
    kind : {"mi", "prototypes"}
    payload : ModelMIResult or dict
        ``"mi"``: a :class:`~biosig.explain.ModelMIResult` (``mi`` is n_features x n_classes,
        nats). ``"prototypes"``: ``{class name: Prototype}`` from
        :func:`biosig.explain.inverse.inverse_inference`.
    timestamp : float
        Wall-clock time (``time.time()``) when the result was ready.
    n_windows : int
        Windows in the snapshot it was computed on (0 for prototypes computed from the model's
        card alone).
    duration_s : float
        Computation time in seconds.
    t_end : float
        Stream time of the newest window in the snapshot (NaN if none).
    """

    kind: str
    payload: Any
    timestamp: float
    n_windows: int
    duration_s: float
    t_end: float = float("nan")

    def to_dict(self) -> dict:
        """Plain-JSON form of the result."""
        if self.kind == "mi":
            payload = self.payload.to_dict()
        else:
            payload = {name: _prototype_dict(p) for name, p in self.payload.items()}
        return {"kind": self.kind, "timestamp": self.timestamp, "n_windows": self.n_windows,
                "duration_s": self.duration_s, "t_end": self.t_end, "payload": payload}


def _prototype_dict(prototype) -> dict:
    """A Prototype as plain JSON (its own ``to_dict``)."""
    return prototype.to_dict()


@dataclass
class ExplainerStats:
    """Counters of an :class:`ExplainerService`; read them from any thread.

    Attributes
    ----------
    windows_in : int
        Windows with posteriors that reached the buffer.
    windows_skipped : int
        Windows the sink ignored (no posteriors: stale or no classifier).
    runs : dict
        Completed computations per kind.
    cancelled : int
        Computations abandoned because of :meth:`ExplainerService.stop`.
    errors : int
        Computations that raised (logged; the worker went on).
    callback_errors : int
        ``on_result`` calls that raised.
    results_dropped : int
        Results pushed out of the full queue (nobody was reading it).
    last_duration_s : dict
        Duration of the latest completed computation per kind.
    last_error : str or None
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


class _Cancelled(Exception):
    """Raised inside the worker when stop() was asked for during a computation."""


# -- ring buffer -----------------------------------------------------------------------------


class WindowRing:
    """Bounded FIFO of the latest windows' features and posteriors (thread-safe).

    Storage is allocated on the first batch (when the widths are known) and then reused: a
    push is at most two slice copies under the lock.

    Parameters
    ----------
    capacity : int
        Windows kept; older ones are overwritten.
    """

    def __init__(self, capacity: int):
        self.capacity = check_int(capacity, "buffer_windows", minimum=1)
        self._lock = threading.Lock()
        self._features: np.ndarray | None = None
        self._posteriors: np.ndarray | None = None
        self._t_end = np.full(self.capacity, np.nan)
        self._next = 0  # slot the next window goes to
        self._count = 0  # windows held (<= capacity)
        self.total = 0  # windows ever pushed

    def __len__(self) -> int:
        return self._count

    def push(self, features: np.ndarray, posteriors: np.ndarray, t_end: np.ndarray) -> None:
        """Append rows (only the last ``capacity`` of a larger batch are kept)."""
        n = features.shape[0]
        if n > self.capacity:
            features, posteriors, t_end = (a[-self.capacity:] for a in (features, posteriors, t_end))
        with self._lock:
            if self._features is None or self._features.shape[1] != features.shape[1] \
                    or self._posteriors.shape[1] != posteriors.shape[1]:
                self._allocate(features.shape[1], posteriors.shape[1])
            self._write(features, posteriors, t_end)
            self.total += n

    def _allocate(self, n_features: int, n_classes: int) -> None:
        self._features = np.empty((self.capacity, n_features))
        self._posteriors = np.empty((self.capacity, n_classes))
        self._next = self._count = 0

    def _write(self, features, posteriors, t_end) -> None:
        n = features.shape[0]
        first = min(n, self.capacity - self._next)  # rows before the wrap-around
        for src, dst in ((features, self._features), (posteriors, self._posteriors),
                         (t_end, self._t_end)):
            dst[self._next:self._next + first] = src[:first]
            dst[:n - first] = src[first:]
        self._next = (self._next + n) % self.capacity
        self._count = min(self._count + n, self.capacity)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Copies of the held windows, oldest first: features, posteriors, t_end, total pushed."""
        with self._lock:
            if self._features is None or self._count == 0:
                return np.empty((0, 0)), np.empty((0, 0)), np.empty(0), self.total
            start = (self._next - self._count) % self.capacity
            order = (np.arange(self._count) + start) % self.capacity
            return (self._features[order], self._posteriors[order], self._t_end[order],
                    self.total)

    def clear(self) -> None:
        with self._lock:
            self._next = self._count = 0


# -- helpers ---------------------------------------------------------------------------------


def _single_thread_blas():
    """Context limiting BLAS/OpenMP pools to one thread while the worker computes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the pools keep their default size
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _worker_model(model):
    """The model the worker calls: a private single-threaded copy of an OnnxModel.

    A copy has its own onnxruntime session, so prototypes never wait for (or hold up) the
    pipeline's inference, and one intra-op thread keeps it from competing with the pipeline for
    cores. Other models are used as they are.
    """
    path = getattr(model, "path", None)
    if path is None or type(model).__name__ != "OnnxModel":
        return model
    try:
        return type(model)(path, threads=1)
    except Exception:  # noqa: BLE001 - fall back to sharing the pipeline's session
        logger.warning("explainer: could not open a private copy of %s; sharing the model", path,
                       exc_info=True)
        return model


def _card_prior(model) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Training feature mean and variance from a model card, if the card has them."""
    training = (getattr(model, "card", None) or {}).get("training") or {}
    mean, var = training.get("feature_mean"), training.get("feature_var")
    if mean is None or var is None:
        return None, None
    return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)


# -- the service -----------------------------------------------------------------------------


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
        Called with every :class:`ExplainerResult`, on the worker thread (keep it short; a GUI
        should hand it to its own thread). Exceptions are logged and counted.
    compute_prototypes : bool
        Compute the prototypes once after :meth:`start` (they depend only on the model).
    queue_size : int
        Bound of :attr:`results`; when full, the oldest result is dropped.
    mi_options : dict or None
        Extra keyword arguments of :class:`~biosig.explain.ModelMITracker`.
    prototype_options : dict or None
        Extra keyword arguments of :func:`biosig.explain.inverse.inverse_inference`.

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
                 compute_prototypes=True, queue_size=16, mi_options=None, prototype_options=None):
        self.model = model
        self.mi_interval_s = check_positive(mi_interval_s, "mi_interval_s")
        self.min_windows = check_int(min_windows, "min_windows", minimum=20)
        self.buffer = WindowRing(buffer_windows)
        if self.min_windows > self.buffer.capacity:
            raise BiosigError(
                f"min_windows ({self.min_windows}) exceeds buffer_windows ({self.buffer.capacity})"
            )
        if on_result is not None and not callable(on_result):
            raise BiosigError("on_result must be callable or None")
        self.on_result = on_result
        self.compute_prototypes = bool(compute_prototypes)
        self.results: queue.Queue = queue.Queue(maxsize=check_int(queue_size, "queue_size", minimum=1))
        self.mi_options = dict(mi_options or {})
        self.prototype_options = dict(prototype_options or {})
        self.stats = ExplainerStats()
        self.feature_names = list(getattr(model, "feature_names", None) or []) or None
        self.class_names = [str(c) for c in getattr(model, "classes_", [])] or None
        self._latest: dict[str, ExplainerResult] = {}
        self._latest_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._prototypes_wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._trackers: list[tuple[slice, ModelMITracker]] | None = None
        self._worker_model = None
        self._last_total = 0

    # -- pipeline side (processing thread) ---------------------------------------------------
    def sink(self, results) -> None:
        """Pipeline sink: buffer the batch's classified windows. O(batch); never waits long.

        Windows without posteriors (no classifier, or skipped as stale) are counted and left
        out: the MI pairs each input with the model's output on the same window.
        """
        posteriors = results.posteriors
        n = len(results)
        if posteriors is None or n == 0:
            self.stats.windows_skipped += n
            return
        valid = ~results.skipped
        if not valid.all():
            valid &= np.isfinite(posteriors).all(axis=1)
            self.stats.windows_skipped += int(n - valid.sum())
            if not valid.any():
                return
            features, posteriors, t_end = results.features[valid], posteriors[valid], results.t_end[valid]
        else:
            features, t_end = results.features, results.t_end
        self.buffer.push(features, posteriors, t_end)
        self.stats.windows_in += features.shape[0]

    __call__ = sink

    # -- control ------------------------------------------------------------------------------
    def start(self) -> ExplainerService:
        """Start the worker thread (idempotent)."""
        if self.running:
            return self
        self._stop.clear()
        if self.compute_prototypes:
            self._prototypes_wanted.set()
        self._thread = threading.Thread(target=self._run, name="biosig-explainer", daemon=True)
        self._thread.start()
        logger.info("explainer started (MI every %.3g s over <= %d windows)", self.mi_interval_s,
                    self.buffer.capacity)
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the worker to stop and wait at most ``timeout`` seconds.

        A computation in progress is abandoned at its next block (MI) or class (prototypes).

        Returns
        -------
        bool
            True if the worker has ended; False if it was still finishing a block after
            ``timeout`` (it is a daemon thread and ends on its own at the next check).
        """
        self._stop.set()
        self._wake.set()
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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_prototypes(self) -> None:
        """Recompute the prototypes at the worker's next opportunity (e.g. after a new model)."""
        self._prototypes_wanted.set()
        self._wake.set()

    def refresh_now(self) -> None:
        """Run the MI refresh now instead of at the next tick (if enough windows are buffered)."""
        self._wake.set()

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

    # -- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        next_mi = time.monotonic() + self.mi_interval_s
        while not self._stop.is_set():
            if self._prototypes_wanted.is_set():
                self._prototypes_wanted.clear()
                self._guarded("prototypes", self._prototypes_job)
            woken = self._wake.wait(max(0.0, next_mi - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            if woken and self._prototypes_wanted.is_set() and time.monotonic() < next_mi:
                continue  # woken for prototypes only
            next_mi = time.monotonic() + self.mi_interval_s
            if len(self.buffer) >= self.min_windows and self.buffer.total != self._last_total:
                self._guarded("mi", self._mi_job)

    def _guarded(self, kind: str, job: Callable[[], ExplainerResult]) -> None:
        """Run one computation; publish its result, or log and count its failure."""
        started = time.perf_counter()
        try:
            with _single_thread_blas():
                result = job()
        except _Cancelled:
            self.stats.cancelled += 1
            logger.debug("explainer: %s cancelled by stop()", kind)
            return
        except Exception as err:  # noqa: BLE001 - an explainer must never take the pipeline down
            self.stats.errors += 1
            self.stats.last_error = f"{kind}: {type(err).__name__}: {err}"
            logger.exception("explainer: %s failed", kind)
            return
        duration = time.perf_counter() - started
        self.stats.runs[kind] += 1
        self.stats.last_duration_s[kind] = duration
        self._publish(result)

    def _check_cancel(self) -> None:
        if self._stop.is_set():
            raise _Cancelled

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

    # -- mutual information -------------------------------------------------------------------
    def _trackers_for(self, n_features: int) -> list[tuple[slice, ModelMITracker]]:
        """One warm-startable tracker per block of features (blocks are the cancel points).

        Per-column transforms and per-pair fits make the blocks independent: splitting gives
        the same estimator as one tracker over all features.
        """
        names = self.feature_names if self.feature_names and len(self.feature_names) == n_features \
            else [f"x{i}" for i in range(n_features)]
        trackers = []
        for start in range(0, n_features, MI_FEATURES_PER_BLOCK):
            block = slice(start, min(start + MI_FEATURES_PER_BLOCK, n_features))
            options = {"random_state": start, **self.mi_options}
            trackers.append((block, ModelMITracker(feature_names=names[block],
                                                   class_names=self.class_names, **options)))
        return trackers

    def _mi_job(self) -> ExplainerResult:
        features, posteriors, t_end, total = self.buffer.snapshot()
        started = time.perf_counter()
        if self._trackers is None or self._trackers[-1][0].stop != features.shape[1]:
            self._trackers = self._trackers_for(features.shape[1])
        parts = []
        for block, tracker in self._trackers:
            self._check_cancel()
            parts.append(tracker.update(features[:, block], posteriors))
        self._last_total = total
        first = parts[0]
        merged = ModelMIResult(
            mi=np.vstack([p.mi for p in parts]), lower=None, upper=None,
            feature_names=[name for p in parts for name in p.feature_names],
            output_names=first.output_names, output=first.output, class_mi=first.class_mi,
            predictive_entropy=first.predictive_entropy, expected_entropy=first.expected_entropy,
            n_samples=first.n_samples)
        return ExplainerResult("mi", merged, time.time(), features.shape[0],
                               time.perf_counter() - started, float(t_end[-1]))

    # -- prototypes ---------------------------------------------------------------------------
    def _prototype_prior(self) -> dict:
        """Gaussian prior from the model's card, else from the buffered windows, else default."""
        if "prior_mean" in self.prototype_options or "prior" in self.prototype_options:
            return {}
        mean, var = _card_prior(self.model)
        if mean is None and len(self.buffer) >= self.min_windows:
            features = self.buffer.snapshot()[0]
            mean, var = features.mean(axis=0), features.var(axis=0)
        if mean is None:
            return {}
        return {"prior": "gaussian", "prior_mean": mean, "prior_var": np.maximum(var, 1e-12)}

    def _prototypes_job(self) -> ExplainerResult:
        from biosig.explain.inverse import inverse_inference

        started = time.perf_counter()
        if self._worker_model is None:
            self._worker_model = _worker_model(self.model)
        options = {**self._prototype_prior(), **self.prototype_options}
        prototypes = {}
        for name in self.class_names or []:
            self._check_cancel()
            prototypes[name] = inverse_inference(self._worker_model, name, **options)
        return ExplainerResult("prototypes", prototypes, time.time(), 0,
                               time.perf_counter() - started)

    def __repr__(self) -> str:
        state = "ON" if self.running else "OFF"
        return (f"<ExplainerService | {state} | {len(self.buffer)}/{self.buffer.capacity} windows | "
                f"runs {self.stats.runs} | errors {self.stats.errors}>")
