"""Sinks: where window results go (a CSV file, an LSL results outlet, a callback)."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError
from biosig.stream.results import WindowResults

logger = logging.getLogger(__name__)


#: Columns written after ``skipped`` when the classifier gives OOD scores and rejections.
OOD_COLUMNS = ["ood_score", "ood", "rejected"]
#: Columns written after the features when the windows' quality was checked (EMG chain).
QUALITY_COLUMNS = ["quality", "clipped", "flat"]


def result_columns(feature_names, class_names, with_label: bool = False,
                   with_ood: bool = False, with_quality: bool = False) -> list[str]:
    """Column names of a results table, in the order :func:`result_rows` writes them.

    ``predicted`` is the decided class name (empty where skipped or rejected); with
    ``with_ood``, ``ood_score`` (the model's score), ``ood`` (1 above its threshold) and
    ``rejected`` (1: no decision) follow ``skipped``. With ``with_quality``, three columns
    follow the features: ``quality`` (why the window is flagged, as bits: 1 non-finite input,
    2 a clipped channel, 4 a flat channel), ``clipped`` and ``flat`` (the channels concerned,
    labels joined by ``;``, empty when none).
    """
    columns = ["t_end", "flagged"]
    if with_label:
        columns.append("label")
    if class_names:
        columns += [f"p({c})" for c in class_names] + ["entropy", "predicted", "skipped"]
        if with_ood:
            columns += OOD_COLUMNS
    columns += list(feature_names)
    return columns + QUALITY_COLUMNS if with_quality else columns


def _columns_for(results: WindowResults, with_label: bool = False) -> list[str]:
    return result_columns(results.feature_names, results.class_names, with_label,
                          results.has_ood, results.quality is not None)


def result_rows(results: WindowResults, labels=None):
    """Yield one list of values per window, matching :func:`result_columns`."""
    entropy = results.entropy
    predicted = results.predicted
    with_ood = results.posteriors is not None and results.has_ood
    for i in range(len(results)):
        row = [repr(float(results.t_end[i])), int(results.flagged[i])]
        if labels is not None:
            row.append(labels[i])
        if results.posteriors is not None:
            row += [repr(float(p)) for p in results.posteriors[i]]
            pred = int(predicted[i])
            row += [repr(float(entropy[i])), results.class_names[pred] if pred >= 0 else "",
                    int(results.skipped[i])]
            if with_ood:
                row += [repr(float(results.ood_score[i])), int(results.ood_flag[i]),
                        int(results.rejected[i])]
        row += [repr(float(v)) for v in results.features[i]]
        if results.quality is not None:
            row += [int(results.quality[i]), _channels_at(results, results.clipped, i),
                    _channels_at(results, results.flat, i)]
        yield row


def _channels_at(results: WindowResults, per_channel, i: int) -> str:
    """Labels of the channels marked in row ``i`` of ``per_channel``, joined by ``;``."""
    if per_channel is None or not per_channel[i].any():
        return ""
    return ";".join(results.channel_labels[j] for j in np.flatnonzero(per_channel[i]))


class CSVSink:
    """Append every batch to a CSV file, flushed per batch so a crash loses at most one batch.

    Parameters
    ----------
    path : str or Path
        Output file; refused if it exists and ``overwrite`` is False.
    overwrite : bool
        Replace an existing file.
    """

    def __init__(self, path, *, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        self._file = None
        self._writer = None

    def __call__(self, results: WindowResults) -> None:
        if self._file is None:
            self._open(results)
        for row in result_rows(results):
            self._writer.writerow(row)
        self._file.flush()

    def _open(self, results: WindowResults) -> None:
        if self.path.exists() and not self.overwrite:
            raise BiosigError(f"{self.path} exists; choose another name or allow overwriting")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(_columns_for(results))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_results_csv(results: WindowResults, path, *, labels=None) -> Path:
    """Write a whole results batch to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(_columns_for(results, labels is not None))
        writer.writerows(result_rows(results, labels))
    os.replace(partial, path)
    return path


def read_results_csv(path) -> dict[str, np.ndarray]:
    """Read a results CSV back as columns (numeric where possible)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    columns = {}
    for j, name in enumerate(header):
        values = [r[j] for r in body]
        try:
            columns[name] = np.asarray(values, dtype=np.float64)
        except ValueError:
            columns[name] = np.asarray(values, dtype=object)
    return columns


class LSLResultsSink:
    """Publish posteriors, entropy, the decision and OOD/rejection flags on an LSL outlet.

    One sample per classified window (skipped windows are not sent); see
    :class:`~biosig.stream.outlet.ResultsOutlet` for the channels. A rejected window is sent
    with ``predicted = -1`` and no label marker.
    Why a window is flagged (:attr:`WindowResults.quality`) is not sent: the results stream
    has no flag channel; the CSV sink and in-process sinks carry it.

    Parameters
    ----------
    class_names : list of str
        Classes of the model, in posterior column order.
    name : str
        LSL stream name of the results outlet.
    with_ood : bool
        Add the ``ood_score``, ``ood`` and ``rejected`` channels (NaN, 0, 0 for a classifier
        that gives no OOD score).
    """

    def __init__(self, class_names, name: str = "biosig-results", *, with_ood: bool = True):
        from biosig.stream.outlet import ResultsOutlet

        self.outlet = ResultsOutlet(class_names, name=name, with_ood=with_ood)

    def __call__(self, results: WindowResults) -> None:
        if results.posteriors is None:
            return
        entropy = results.entropy
        predicted = results.predicted
        for i in np.flatnonzero(~results.skipped):
            if results.has_ood:
                self.outlet.push(results.t_end[i], results.posteriors[i], entropy[i], predicted[i],
                                 ood_score=results.ood_score[i], ood_flag=results.ood_flag[i],
                                 rejected=results.rejected[i])
            else:
                self.outlet.push(results.t_end[i], results.posteriors[i], entropy[i], predicted[i])

    def close(self) -> None:
        """Take the outlet off the network."""
        self.outlet.close()
