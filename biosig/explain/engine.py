"""The computations of the live explainer, shared by its thread and process workers.

:class:`ExplainerEngine` turns a snapshot of recent windows into an :class:`ExplainerResult`:
input-output mutual information (warm-started :class:`~biosig.explain.ModelMITracker`, one per
block of features) and class prototypes (:func:`~biosig.explain.inverse.inverse_inference`).
Both worker kinds of :class:`~biosig.explain.service.ExplainerService` run this same code, so a
snapshot gives the same numbers whichever worker computed them.

This module imports neither torch nor Qt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from biosig.explain.mutual_info import ModelMIResult, ModelMITracker

logger = logging.getLogger(__name__)

#: Kinds of result the service publishes.
KINDS = ("mi", "prototypes")
#: Features per MI block: the granularity at which a refresh can be cancelled (48 features x
#: 8 classes at 1000 windows: ~0.1-0.3 s per block of 12).
MI_FEATURES_PER_BLOCK = 12


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
            payload = {name: prototype.to_dict() for name, prototype in self.payload.items()}
        return {"kind": self.kind, "timestamp": self.timestamp, "n_windows": self.n_windows,
                "duration_s": self.duration_s, "t_end": self.t_end, "payload": payload}


class Cancelled(Exception):
    """Raised inside a worker when stop() was asked for during a computation."""


def single_thread_blas():
    """Context limiting BLAS/OpenMP pools to one thread while the worker computes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the pools keep their default size
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def private_model(model):
    """The model a worker calls: a private single-threaded copy of an OnnxModel.

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


def card_prior(model) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Training feature mean and variance from a model card, if the card has them."""
    training = (getattr(model, "card", None) or {}).get("training") or {}
    mean, var = training.get("feature_mean"), training.get("feature_var")
    if mean is None or var is None:
        return None, None
    return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)


Snapshot = tuple[np.ndarray, np.ndarray, np.ndarray, int]


class ExplainerEngine:
    """MI and prototypes of one model, computed on snapshots of recent windows.

    Not thread-safe: one engine per worker. Keeps the MI trackers between refreshes (warm
    start), so successive results depend on the history of snapshots, not only the last one.

    Parameters
    ----------
    model : object
        The classifier the computations call (``predict_proba``, ``classes_``).
    feature_names, class_names : list of str or None
        Labels of the results.
    min_windows : int
        Fewest windows for the buffer-based prototype prior.
    mi_options, prototype_options : dict
        Extra keyword arguments of :class:`~biosig.explain.ModelMITracker` and
        :func:`~biosig.explain.inverse.inverse_inference`.
    cancelled : callable
        Returns True when the running computation should stop (checked between feature blocks
        and between classes).
    """

    def __init__(self, model, *, feature_names, class_names, min_windows: int, mi_options: dict,
                 prototype_options: dict, cancelled: Callable[[], bool]):
        self.model = model
        self.feature_names = feature_names
        self.class_names = class_names
        self.min_windows = min_windows
        self.mi_options = mi_options
        self.prototype_options = prototype_options
        self.cancelled = cancelled
        self._trackers: list[tuple[slice, ModelMITracker]] | None = None

    def _check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled

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

    def mutual_information(self, snapshot: Snapshot) -> ExplainerResult:
        """Refresh the input-output MI on a snapshot (features, posteriors, t_end, total)."""
        features, posteriors, t_end, _ = snapshot
        started = time.perf_counter()
        if self._trackers is None or self._trackers[-1][0].stop != features.shape[1]:
            self._trackers = self._trackers_for(features.shape[1])
        parts = []
        for block, tracker in self._trackers:
            self._check_cancel()
            parts.append(tracker.update(features[:, block], posteriors))
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
    @property
    def prototypes_follow_buffer(self) -> bool:
        """Whether the prototypes use the buffered windows as their (empirical) prior, and so
        are recomputed with every MI refresh instead of once per model."""
        return self.prototype_options.get("prior") == "empirical"

    def _prototype_prior(self, snapshot: Callable[[], Snapshot]) -> dict:
        """Gaussian prior from the model's card, else from the buffered windows, else default;
        or, for the empirical prior, the buffered windows themselves."""
        if self.prototypes_follow_buffer:
            return {"prior_samples": snapshot()[0]}
        if "prior_mean" in self.prototype_options or "prior" in self.prototype_options:
            return {}
        mean, var = card_prior(self.model)
        if mean is None:
            features = snapshot()[0]
            if features.shape[0] >= self.min_windows:
                mean, var = features.mean(axis=0), features.var(axis=0)
        if mean is None:
            return {}
        return {"prior": "gaussian", "prior_mean": mean, "prior_var": np.maximum(var, 1e-12)}

    def prototypes(self, snapshot: Callable[[], Snapshot]) -> ExplainerResult:
        """Inverse inference for every class (``snapshot`` is called only for the empirical
        prior, or if the card has no training moments for the Gaussian prior)."""
        from biosig.explain.inverse import inverse_inference

        started = time.perf_counter()
        options = {**self._prototype_prior(snapshot), **self.prototype_options}
        found = {}
        for name in self.class_names or []:
            self._check_cancel()
            found[name] = inverse_inference(self.model, name, **options)
        samples = options.get("prior_samples")
        return ExplainerResult("prototypes", found, time.time(),
                               0 if samples is None else len(samples),
                               time.perf_counter() - started)
