"""Per-recording summaries, their aggregate over a run, and the table across recordings.

A summary is a JSON-ready dict (written as ``recordings/<name>/summary.json``):

- ``stream``: the signal analysed (name, type, rate, channels the model used, duration);
- ``n_windows``, ``n_flagged`` (windows flagged: non-finite samples, a clipped or a flat channel;
  for CTG, too little valid FHR);
- ``class_shares``: share of windows decided for each class, and ``no_decision_share``;
- ``timeline``: the class time line, runs of equal decisions ``[t_first, t_last, class]``
  (``t`` = end time of the run's first and last window, s; class null = no decision);
- ``ood_share``, ``rejected_share``, ``mean_entropy`` (nats);
- ``labels`` (null without label markers): over the windows with one known label that is a
  class of the model, ``accuracy``, ``macro_f1``, ``nll``, ``ece`` and ``confusion`` of the
  most probable class (as ``biosig evaluate``), and the reliability-diagram sums ``reliability``
  (per confidence bin: count, summed confidence, summed correctness) that add up across
  recordings;
- ``quality``: :func:`biosig.analysis.quality.signal_quality`;
- ``elapsed_s``, ``windows_per_s``, ``provider``.
"""

from __future__ import annotations

import numpy as np

#: Confidence bins of the reliability diagram (as ``biosig evaluate``'s ECE).
N_BINS = 15

#: Columns of the table across recordings (``summary.csv``), in order.
TABLE_COLUMNS = (
    "name", "status", "source", "duration_s", "n_windows", "labelled_windows", "accuracy",
    "macro_f1", "ece", "top_class", "top_class_share", "ood_share", "rejected_share",
    "mean_entropy", "nan_share", "clipping_share", "flat_share", "dropout_share",
    "windows_per_s", "error",
)


def decision_timeline(t_end, decisions, class_names) -> list:
    """Runs of equal decisions: ``[[t_first, t_last, class or None], ...]``.

    ``decisions`` holds class indices into ``class_names``, -1 for none.
    """
    t_end = np.asarray(t_end, dtype=np.float64)
    decisions = np.asarray(decisions)
    if not decisions.shape[0]:
        return []
    starts = np.flatnonzero(np.diff(decisions, prepend=decisions[0] - 1))
    stops = np.append(starts[1:], decisions.shape[0]) - 1
    return [[float(t_end[a]), float(t_end[b]), class_names[k] if k >= 0 else None]
            for a, b, k in zip(starts, stops, decisions[starts].tolist())]


def reliability_sums(posteriors, truth_idx, n_bins: int = N_BINS) -> dict:
    """Per-bin window count, summed top posterior and summed correctness (additive).

    The bins are those of :func:`biosig.metrics.reliability_bins` (equal width on [0, 1]).
    """
    top = posteriors.max(axis=1)
    correct = (posteriors.argmax(axis=1) == truth_idx).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(top, edges[1:-1], right=True), 0, n_bins - 1)
    return {
        "edges": edges.tolist(),
        "count": np.bincount(which, minlength=n_bins).astype(int).tolist(),
        "confidence_sum": np.bincount(which, weights=top, minlength=n_bins).tolist(),
        "correct_sum": np.bincount(which, weights=correct, minlength=n_bins).tolist(),
    }


def label_metrics(results, labels, class_names) -> dict | None:
    """Metrics on the windows with one known label that is a class and finite posteriors."""
    from biosig.metrics import classification_report, label_indices

    if labels is None:
        return None
    known = np.array([lab is not None for lab in labels])
    in_classes = np.isin(np.asarray(labels, dtype=object).astype(str), class_names)
    finite = np.isfinite(results.posteriors).all(axis=1)
    keep = known & in_classes & finite & ~results.unusable
    out = {
        "labelled_windows": int(known.sum()),
        "evaluated_windows": int(keep.sum()),
        "unknown_labels": sorted({str(v) for v in np.asarray(labels)[known & ~in_classes]}),
    }
    if not keep.any():
        return out
    y = np.asarray(labels, dtype=object)[keep].astype(str)
    posteriors = results.posteriors[keep]
    report = classification_report(y, posteriors, class_names, n_bins=N_BINS)
    truth = label_indices(y, class_names)
    out.update({key: report[key] for key in ("accuracy", "macro_f1", "nll", "ece", "confusion")})
    out["reliability"] = reliability_sums(posteriors, truth)
    return out


def recording_summary(name, source, model, stream, results, labels, quality, *, elapsed_s,
                      n_nonfinite) -> dict:
    """The summary of one analysed recording (keys: module docstring)."""
    class_names = [str(c) for c in model.classes_]
    predicted = results.predicted
    decided = predicted >= 0
    n = len(results)
    shares = {c: float(np.mean(predicted == k)) for k, c in enumerate(class_names)}
    entropy = results.entropy
    return {
        "name": name,
        "source": str(source),
        "status": "ok",
        "model": str(model.path),
        "class_names": class_names,
        "class_labels": list(model.card.get("class_labels", class_names)),
        "stream": {
            "name": stream.name,
            "type": stream.type,
            "srate": float(stream.srate),
            "channels": list(model.channels),
            "n_samples": int(stream.n_samples),
            "duration_s": float(stream.duration),
        },
        "n_windows": int(n),
        "n_flagged": int(results.flagged.sum()),
        "nonfinite_samples": int(n_nonfinite),
        "class_shares": shares,
        "no_decision_share": float(np.mean(~decided)),
        "timeline": decision_timeline(results.t_end, predicted, class_names),
        "ood_share": float(np.mean(results.ood_flag)) if results.has_ood else None,
        "rejected_share": float(np.mean(results.rejected)) if results.has_ood else None,
        "mean_entropy": float(np.nanmean(entropy)) if np.isfinite(entropy).any() else None,
        "labels": label_metrics(results, labels, class_names),
        "quality": quality,
        "elapsed_s": float(elapsed_s),
        "windows_per_s": float(n / elapsed_s) if elapsed_s > 0 else None,
        "provider": model.engine,
    }


def failure_summary(name, source, error: str) -> dict:
    """The summary entry of a recording that failed."""
    return {"name": name, "source": str(source), "status": "failed", "error": error}


def table_row(summary: dict) -> dict:
    """One row of the table across recordings (:data:`TABLE_COLUMNS`)."""
    row = dict.fromkeys(TABLE_COLUMNS)
    row.update(name=summary["name"], status=summary["status"], source=summary["source"],
               error=summary.get("error"))
    if summary["status"] != "ok":
        return row
    labels = summary.get("labels") or {}
    quality = summary["quality"]
    shares = summary["class_shares"]
    top = max(shares, key=shares.get) if shares else None
    row.update(
        duration_s=summary["stream"]["duration_s"],
        n_windows=summary["n_windows"],
        labelled_windows=labels.get("evaluated_windows"),
        accuracy=labels.get("accuracy"),
        macro_f1=labels.get("macro_f1"),
        ece=labels.get("ece"),
        top_class=top,
        top_class_share=shares.get(top) if top is not None else None,
        ood_share=summary["ood_share"],
        rejected_share=summary["rejected_share"],
        mean_entropy=summary["mean_entropy"],
        nan_share=quality["nan_share"],
        clipping_share=quality["clipping_share"],
        flat_share=quality["flat_share"],
        dropout_share=quality["dropout_share"],
        windows_per_s=summary.get("windows_per_s"),
    )
    return row


def aggregate(summaries) -> dict:
    """Totals over the recordings that were analysed: windows, confusion, reliability, ECE.

    Returns
    -------
    dict
        ``n_recordings``, ``n_failed``, ``n_windows``, ``ood_share`` (over all windows), and
        where labels exist ``confusion`` (summed), ``accuracy``, ``evaluated_windows``,
        ``reliability`` ({"edges", "confidence", "accuracy", "count"}) and ``ece``.
    """
    ok = [s for s in summaries if s["status"] == "ok"]
    out = {"n_recordings": len(ok), "n_failed": len(summaries) - len(ok),
           "n_windows": int(sum(s["n_windows"] for s in ok))}
    if ok and all(s["ood_share"] is not None for s in ok) and out["n_windows"]:
        out["ood_share"] = float(sum(s["ood_share"] * s["n_windows"] for s in ok) / out["n_windows"])
    labelled = [s["labels"] for s in ok if s.get("labels") and "confusion" in s["labels"]]
    if not labelled:
        return out
    confusion = np.sum([np.asarray(lab["confusion"]) for lab in labelled], axis=0)
    count = np.sum([lab["reliability"]["count"] for lab in labelled], axis=0)
    conf_sum = np.sum([lab["reliability"]["confidence_sum"] for lab in labelled], axis=0)
    correct_sum = np.sum([lab["reliability"]["correct_sum"] for lab in labelled], axis=0)
    used = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(used, conf_sum / np.maximum(count, 1), np.nan)
        accuracy = np.where(used, correct_sum / np.maximum(count, 1), np.nan)
    total = int(count.sum())
    out.update(
        confusion=confusion.astype(int).tolist(),
        evaluated_windows=total,
        accuracy=float(np.trace(confusion) / confusion.sum()) if confusion.sum() else None,
        ece=float(np.sum(count[used] * np.abs(confidence[used] - accuracy[used])) / total)
        if total else None,
        reliability={"edges": labelled[0]["reliability"]["edges"],
                     "confidence": _nan_to_none(confidence), "accuracy": _nan_to_none(accuracy),
                     "count": count.astype(int).tolist()},
    )
    return out


def _nan_to_none(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]
