"""Per-window results of the pipeline: features, and posteriors once a classifier fills the slot."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class WindowResults:
    """A batch of consecutive windows and what the pipeline computed for them.

    Attributes
    ----------
    t_end : ndarray, shape (n_windows,)
        Timestamp of each window's last sample, in seconds (source clock).
    features : ndarray, shape (n_windows, n_features)
        Feature vectors, named by ``feature_names``.
    flagged : ndarray of bool, shape (n_windows,)
        True where the window contained non-finite input samples (replaced before filtering).
    feature_names : list of str
        Stable feature names, ``"<feature>:<channel>"``.
    posteriors : ndarray, shape (n_windows, n_classes), or None
        Class posteriors; NaN rows where inference was skipped. None without a classifier.
    class_names : list of str
        Names of the posterior columns.
    skipped : ndarray of bool, shape (n_windows,)
        True where inference was skipped because the window was already stale.
    latency_s : ndarray, shape (n_windows,)
        Wall-clock seconds from the chunk's arrival to its result (0 offline).
    """

    t_end: np.ndarray
    features: np.ndarray
    flagged: np.ndarray
    feature_names: list[str]
    posteriors: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    skipped: np.ndarray | None = None
    latency_s: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.t_end)
        if self.skipped is None:
            self.skipped = np.zeros(n, dtype=bool)
        if self.latency_s is None:
            self.latency_s = np.zeros(n)

    def __len__(self) -> int:
        return int(len(self.t_end))

    @property
    def entropy(self) -> np.ndarray | None:
        """Posterior entropy per window in nats (NaN where skipped)."""
        if self.posteriors is None:
            return None
        p = np.clip(self.posteriors, 1e-300, 1.0)
        return -np.sum(self.posteriors * np.log(p), axis=1)

    @property
    def predicted(self) -> np.ndarray | None:
        """Index of the most probable class per window (-1 where skipped)."""
        if self.posteriors is None:
            return None
        out = np.full(len(self), -1, dtype=np.int64)
        ok = ~np.isnan(self.posteriors).any(axis=1)
        out[ok] = np.argmax(self.posteriors[ok], axis=1)
        return out

    @classmethod
    def empty(cls, feature_names, class_names=()) -> "WindowResults":
        n_classes = len(class_names)
        return cls(
            t_end=np.zeros(0),
            features=np.zeros((0, len(feature_names))),
            flagged=np.zeros(0, dtype=bool),
            feature_names=list(feature_names),
            posteriors=np.zeros((0, n_classes)) if n_classes else None,
            class_names=list(class_names),
        )

    @classmethod
    def concat(cls, parts, feature_names=None, class_names=()) -> "WindowResults":
        """Join batches in order (an empty list gives an empty batch)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(feature_names or [], class_names)
        first = parts[0]
        has_post = first.posteriors is not None
        return cls(
            t_end=np.concatenate([p.t_end for p in parts]),
            features=np.concatenate([p.features for p in parts]),
            flagged=np.concatenate([p.flagged for p in parts]),
            feature_names=first.feature_names,
            posteriors=np.concatenate([p.posteriors for p in parts]) if has_post else None,
            class_names=first.class_names,
            skipped=np.concatenate([p.skipped for p in parts]),
            latency_s=np.concatenate([p.latency_s for p in parts]),
        )
