"""Per-window results of the pipeline: features, and posteriors once a classifier fills the slot.

A classifier with ``infer(X)`` (:class:`biosig.inference.OnnxModel`) also fills the
out-of-distribution score and flag, the rejection flag and the decision after rejection and
smoothing; a plain ``predict_proba`` classifier leaves those None.

The EMG pipeline also says why a window is flagged: :attr:`WindowResults.quality` (bits
:data:`~biosig.dsp.quality.QUALITY_NONFINITE`, ``QUALITY_CLIPPED``, ``QUALITY_FLAT``) and, per
channel, :attr:`WindowResults.clipped` and :attr:`WindowResults.flat` (see
:mod:`biosig.dsp.quality`). The CTG chain leaves them None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biosig.dsp.quality import QUALITY_NONFINITE


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
        True where the window contained non-finite input samples (replaced before filtering)
        or, on the EMG chain, a clipped or flat channel (:attr:`quality` says which).
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
    ood_score : ndarray, shape (n_windows,), or None
        The model's out-of-distribution score (higher = less like the training data; NaN where
        skipped). None unless the classifier has ``infer``.
    ood_flag : ndarray of bool, shape (n_windows,), or None
        True where ``ood_score`` is above the model's threshold (False where skipped).
    rejected : ndarray of bool, shape (n_windows,), or None
        True where the model gave no decision because it was too uncertain.
    decision : ndarray of int64, shape (n_windows,), or None
        The classifier's decision after rejection and smoothing (-1: none). None: the decision
        is the most probable class (see :attr:`predicted`).
    quality : ndarray of uint8, shape (n_windows,), or None
        Why a window is flagged, as bits: 1 non-finite input, 2 a clipped channel, 4 a flat
        channel (0: clean). None where not checked (the CTG chain).
    clipped, flat : ndarray of bool, shape (n_windows, n_channels), or None
        Which channels were clipped / flat in each window (:mod:`biosig.dsp.quality`);
        columns named by :attr:`channel_labels`. None where not checked.
    channel_labels : list of str
        The pipeline's channels, in the column order of :attr:`clipped` and :attr:`flat`.
    """

    t_end: np.ndarray
    features: np.ndarray
    flagged: np.ndarray
    feature_names: list[str]
    posteriors: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    skipped: np.ndarray | None = None
    latency_s: np.ndarray | None = None
    ood_score: np.ndarray | None = None
    ood_flag: np.ndarray | None = None
    rejected: np.ndarray | None = None
    decision: np.ndarray | None = None
    quality: np.ndarray | None = None
    clipped: np.ndarray | None = None
    flat: np.ndarray | None = None
    channel_labels: list[str] = field(default_factory=list)

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
    def has_ood(self) -> bool:
        """True if the classifier filled ``ood_score``, ``ood_flag`` and ``rejected``."""
        return self.ood_score is not None

    @property
    def unusable(self) -> np.ndarray:
        """Windows whose features cannot be used to train or score a model: non-finite input
        (EMG) or too little valid signal (CTG; its chain flags only those). Clipped and flat
        windows are flagged but usable: their features are finite, and a saturating strong
        contraction is still that gesture."""
        if self.quality is None:
            return self.flagged
        return (self.quality & QUALITY_NONFINITE) != 0

    def flag_reasons(self, i: int) -> list[str]:
        """Why window ``i`` is flagged: ``"nonfinite"``, ``"clipped:<channel>"``,
        ``"flat:<channel>"`` (empty for a clean window or one that was not checked)."""
        if self.quality is None:
            return ["nonfinite"] if self.flagged[i] else []
        reasons = ["nonfinite"] if self.quality[i] & QUALITY_NONFINITE else []
        for name, per_channel in (("clipped", self.clipped), ("flat", self.flat)):
            if per_channel is not None:
                reasons += [f"{name}:{self.channel_labels[j]}"
                            for j in np.flatnonzero(per_channel[i])]
        return reasons

    @property
    def predicted(self) -> np.ndarray | None:
        """Decided class index per window: the classifier's :attr:`decision` if it made one,
        else the most probable class; -1 where skipped (or rejected)."""
        if self.posteriors is None:
            return None
        if self.decision is not None:
            return self.decision
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
        n_each = [len(p) for p in parts]
        return cls(
            t_end=np.concatenate([p.t_end for p in parts]),
            features=np.concatenate([p.features for p in parts]),
            flagged=np.concatenate([p.flagged for p in parts]),
            feature_names=first.feature_names,
            posteriors=np.concatenate([p.posteriors for p in parts]) if has_post else None,
            class_names=first.class_names,
            skipped=np.concatenate([p.skipped for p in parts]),
            latency_s=np.concatenate([p.latency_s for p in parts]),
            ood_score=_concat_optional(parts, "ood_score", n_each, np.nan, np.float64),
            ood_flag=_concat_optional(parts, "ood_flag", n_each, False, bool),
            rejected=_concat_optional(parts, "rejected", n_each, False, bool),
            decision=_concat_decisions(parts),
            quality=_concat_optional(parts, "quality", n_each, 0, np.uint8),
            clipped=_concat_per_channel(parts, "clipped", n_each),
            flat=_concat_per_channel(parts, "flat", n_each),
            channel_labels=next((list(p.channel_labels) for p in parts if p.channel_labels), []),
        )


def _concat_optional(parts, name: str, n_each, fill, dtype) -> np.ndarray | None:
    """Join an optional per-window array; None if no part has it, ``fill`` for parts without."""
    arrays = [getattr(p, name) for p in parts]
    if all(a is None for a in arrays):
        return None
    return np.concatenate([
        np.full(n, fill, dtype=dtype) if a is None else np.asarray(a, dtype=dtype)
        for a, n in zip(arrays, n_each)
    ])


def _concat_per_channel(parts, name: str, n_each) -> np.ndarray | None:
    """Join an optional (n_windows, n_channels) bool array; False rows for parts without."""
    arrays = [getattr(p, name) for p in parts]
    width = next((a.shape[1] for a in arrays if a is not None), None)
    if width is None:
        return None
    return np.concatenate([
        np.zeros((n, width), dtype=bool) if a is None else np.asarray(a, dtype=bool)
        for a, n in zip(arrays, n_each)
    ])


def _concat_decisions(parts) -> np.ndarray | None:
    """Join decisions; a part without them contributes its most probable classes."""
    if all(p.decision is None for p in parts):
        return None
    return np.concatenate([
        p.decision if p.decision is not None
        else p.predicted if p.posteriors is not None
        else np.full(len(p), -1, dtype=np.int64)
        for p in parts
    ]).astype(np.int64)
