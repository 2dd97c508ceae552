"""Classification metrics for probabilistic outputs: accuracy, macro-F1, NLL, calibration.

Calibration follows scikit-learn's vocabulary (``sklearn.calibration``): the expected
calibration error (ECE) is the bin-weighted mean gap between confidence (the top posterior) and
accuracy over equal-width confidence bins, and the reliability diagram plots the two per bin.
"""

from __future__ import annotations

import numpy as np

from biosig._checks import BiosigError


def label_indices(y_true, class_names) -> np.ndarray:
    """Index in ``class_names`` of each label (compared as text); a label that is no class
    raises :class:`BiosigError`."""
    lookup = {str(c): i for i, c in enumerate(class_names)}
    # Each distinct label looked up once: a recording has thousands of windows, a few labels.
    distinct, inverse = np.unique(np.asarray(y_true, dtype=object).astype(str),
                                  return_inverse=True)
    unknown = sorted(str(v) for v in distinct if str(v) not in lookup)
    if unknown:
        raise BiosigError(f"labels {unknown} are not classes of the model ({list(lookup)})")
    codes = np.asarray([lookup[str(v)] for v in distinct], dtype=np.int64)
    return codes[inverse.reshape(-1)]


def confusion_matrix(y_true_idx, y_pred_idx, n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes): row = true class, column = predicted class."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(y_true_idx), np.asarray(y_pred_idx)), 1)
    return out


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in truth or prediction."""
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    present = (predicted + actual) > 0
    f1 = np.zeros_like(tp)
    denom = predicted + actual
    f1[denom > 0] = 2 * tp[denom > 0] / denom[denom > 0]
    return float(f1[present].mean()) if present.any() else float("nan")


def reliability_bins(posteriors, y_true_idx, n_bins: int = 15):
    """Per-bin confidence, accuracy and count of the top-label reliability diagram.

    Returns
    -------
    confidence, accuracy : ndarray, shape (n_bins,)
        Mean top posterior and accuracy of the windows in each bin (NaN for empty bins).
    counts : ndarray of int, shape (n_bins,)
    edges : ndarray, shape (n_bins + 1,)
    """
    posteriors = np.asarray(posteriors, dtype=np.float64)
    top = posteriors.max(axis=1)
    correct = posteriors.argmax(axis=1) == np.asarray(y_true_idx)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(top, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=top, minlength=n_bins) / counts
        accuracy = np.bincount(which, weights=correct.astype(float), minlength=n_bins) / counts
    return confidence, accuracy, counts, edges


def expected_calibration_error(posteriors, y_true_idx, n_bins: int = 15) -> float:
    """ECE over ``n_bins`` equal-width bins of the top posterior (0 = perfectly calibrated)."""
    confidence, accuracy, counts, _ = reliability_bins(posteriors, y_true_idx, n_bins)
    used = counts > 0
    return float(np.sum(counts[used] * np.abs(confidence[used] - accuracy[used])) / counts.sum())


def classification_report(y_true, posteriors, class_names, n_bins: int = 15) -> dict:
    """Accuracy, macro-F1, NLL (nats per window), ECE and confusion matrix of posteriors.

    Parameters
    ----------
    y_true : array_like of str, shape (n_windows,)
        True class names.
    posteriors : ndarray, shape (n_windows, n_classes)
        Predicted class probabilities, columns in ``class_names`` order.
    class_names : list of str
    """
    posteriors = np.asarray(posteriors, dtype=np.float64)
    if posteriors.ndim != 2 or posteriors.shape[1] != len(class_names):
        raise BiosigError(f"posteriors of shape {posteriors.shape} do not match {len(class_names)} classes")
    if len(y_true) != posteriors.shape[0]:
        raise BiosigError(f"{len(y_true)} labels for {posteriors.shape[0]} posteriors")
    if posteriors.shape[0] == 0:
        raise BiosigError("no windows to evaluate")
    truth = label_indices(y_true, class_names)
    predicted = posteriors.argmax(axis=1)
    confusion = confusion_matrix(truth, predicted, len(class_names))
    p_true = np.clip(posteriors[np.arange(len(truth)), truth], 1e-300, 1.0)
    return {
        "n_windows": int(len(truth)),
        "accuracy": float(np.mean(predicted == truth)),
        "macro_f1": macro_f1(confusion),
        "nll": float(-np.mean(np.log(p_true))),
        "ece": expected_calibration_error(posteriors, truth, n_bins),
        "confusion": confusion.tolist(),
        "class_names": [str(c) for c in class_names],
    }
