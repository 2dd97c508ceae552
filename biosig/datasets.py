"""Labelled feature datasets: windows of labelled recordings, or a feature table.

A recording's labels are its marker stream (the label in force at a time is the last marker at
or before it). A window is kept only if one label covers all of its samples: windows that span a
label change carry two classes and are dropped, as the within-user protocols require.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError
from biosig.config import PipelineConfig
from biosig.io.recording import Recording

logger = logging.getLogger(__name__)


@dataclass
class FeatureDataset:
    """Feature vectors with their class labels and where each came from.

    Attributes
    ----------
    X : ndarray, shape (n_windows, n_features)
    y : ndarray of str, shape (n_windows,)
    groups : ndarray of str, shape (n_windows,)
        Source of each row (recording name), for grouped splits.
    feature_names : list of str
    t_end : ndarray, shape (n_windows,)
        Window end times in seconds (NaN for rows from a feature table).
    sources : list of str
        The files the rows came from.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    feature_names: list[str]
    t_end: np.ndarray
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.y.tolist()), key=_natural_key)

    @classmethod
    def concat(cls, parts) -> "FeatureDataset":
        parts = list(parts)
        if not parts:
            raise BiosigError("no labelled windows to build a dataset from")
        names = parts[0].feature_names
        for part in parts[1:]:
            if part.feature_names != names:
                raise BiosigError(
                    "recordings give different features (channels differ?): "
                    f"{part.feature_names[:3]}... vs {names[:3]}..."
                )
        return cls(
            X=np.concatenate([p.X for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            groups=np.concatenate([p.groups for p in parts]),
            feature_names=list(names),
            t_end=np.concatenate([p.t_end for p in parts]),
            sources=[s for p in parts for s in p.sources],
        )


def _natural_key(label: str):
    # "2" sorts before "10"; non-numeric labels sort after numbers, alphabetically.
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def single_label_windows(t_end, window_s: float, markers, default: str = ""):
    """Label of each window and whether one label covers all of its samples.

    Parameters
    ----------
    t_end : ndarray, shape (n_windows,)
        Time of each window's last sample, s.
    window_s : float
        Time from a window's first to its last sample, s.
    markers : Markers
        The label stream.

    Returns
    -------
    labels : ndarray of object, shape (n_windows,)
    pure : ndarray of bool, shape (n_windows,)
        False where the label changes after the window's first sample.
    """
    t_end = np.asarray(t_end, dtype=np.float64)
    order = np.argsort(markers.timestamps, kind="stable")
    stamps = markers.timestamps[order]
    values = np.asarray(markers.values, dtype=object)[order]
    # Only markers that change the label count: a repeated marker starts no new label.
    is_change = np.ones(len(values), dtype=bool)
    is_change[1:] = values[1:] != values[:-1]
    changes = stamps[is_change]
    n_inside = np.searchsorted(changes, t_end, side="right") - np.searchsorted(
        changes, t_end - window_s, side="right"
    )
    return markers.label_at(t_end, default=default), n_inside == 0


def recording_dataset(recording: Recording, config: PipelineConfig, *, stream_name=None,
                      label_stream=None, exclude_labels=()) -> FeatureDataset:
    """Features of every single-label window of one labelled recording.

    Parameters
    ----------
    recording : Recording
        Must have a marker stream with the labels.
    config : PipelineConfig
        Preprocessing, window and feature settings.
    stream_name, label_stream : str or None
        Which signal and marker streams to use (default: the main signal, the "labels" stream).
    exclude_labels : sequence of str
        Labels whose windows are left out.
    """
    from biosig.stream.pipeline import process_recording

    stream = recording.signal(stream_name or config.stream_name, type=None)
    markers = recording.labels(label_stream)
    name = recording.source.name if recording.source else stream.name
    if markers is None or len(markers) == 0:
        raise BiosigError(f"{name} has no label markers; training needs labelled recordings")
    results = process_recording(stream, config)
    fs_out = config.preprocess.output_rate(stream.srate)
    window_s = (round(config.window.length_s * fs_out) - 1) / fs_out
    labels, pure = single_label_windows(results.t_end, window_s, markers)
    keep = pure & (labels != "") & ~np.isin(labels.astype(str), list(exclude_labels))
    keep &= ~results.unusable
    logger.info("%s: %d of %d windows have one label", name, int(keep.sum()), len(results))
    return FeatureDataset(
        X=results.features[keep],
        y=labels[keep].astype(str),
        groups=np.full(int(keep.sum()), name, dtype=object),
        feature_names=list(results.feature_names),
        t_end=results.t_end[keep],
        sources=[str(recording.source or stream.name)],
    )


def build_dataset(paths, config: PipelineConfig | None = None, *, progress: bool = True,
                  exclude_labels=()) -> tuple[FeatureDataset, PipelineConfig, dict]:
    """Read labelled recordings and return their windows' features and labels.

    Returns
    -------
    dataset : FeatureDataset
    config : PipelineConfig
        The configuration used (the default for the first recording's rate if none was given),
        with ``srate`` and ``channels`` set from the data.
    stream_info : dict
        ``srate``, ``channels``, ``modality`` of the signal the features came from, and
        ``label_names`` (label -> human-readable name) where the recordings' metadata has them.
    """
    from tqdm import tqdm

    from biosig.io import iter_inputs, read_recording

    inputs = iter_inputs(paths)
    if not inputs:
        raise BiosigError("no recordings found in the given inputs")
    parts, info = [], None
    for path in tqdm(inputs, desc="features", unit="file", disable=not progress):
        recording = read_recording(path)
        stream = recording.signal(config.stream_name if config else None)
        if config is None:
            config = PipelineConfig.for_rate(stream.srate, modality=stream.type)
        if info is None:
            info = {"srate": stream.srate, "channels": list(stream.channel_labels), "modality": stream.type}
        elif stream.srate != info["srate"]:
            raise BiosigError(f"{path}: sampled at {stream.srate:g} Hz, the others at {info['srate']:g} Hz")
        info.setdefault("label_names", {}).update(_label_names(recording, path))
        parts.append(recording_dataset(recording, config, exclude_labels=exclude_labels))
    config.srate = info["srate"]
    if config.channels is None:
        config.channels = info["channels"]
    return FeatureDataset.concat(parts), config, info


def read_feature_table(path, *, label_column: str, drop_columns=()) -> FeatureDataset:
    """Read a CSV (or Parquet, with pyarrow installed) feature table.

    Every column other than the label and the dropped ones must be numeric; it becomes a feature
    with the column's name.
    """
    path = Path(path)
    if not path.exists():
        raise BiosigError(f"feature table not found: {path}")
    if path.suffix.lower() == ".parquet":
        columns = _read_parquet(path)
    else:
        columns = _read_csv_columns(path)
    if label_column not in columns:
        raise BiosigError(f"{path.name} has no column {label_column!r}; columns: {list(columns)}")
    missing = [c for c in drop_columns if c not in columns]
    if missing:
        raise BiosigError(f"{path.name} has no column(s) {missing} to drop")
    names = [c for c in columns if c != label_column and c not in drop_columns]
    try:
        X = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in names])
    except ValueError as err:
        raise BiosigError(f"{path.name}: a feature column is not numeric ({err}); drop it with --drop-columns") from None
    if not np.isfinite(X).all():
        raise BiosigError(f"{path.name}: feature columns hold missing or non-finite values")
    y = np.asarray([_label_text(v) for v in columns[label_column]], dtype=object).astype(str)
    return FeatureDataset(X=X, y=y, groups=np.full(len(y), path.name, dtype=object),
                          feature_names=names, t_end=np.full(len(y), np.nan), sources=[str(path)])


def _label_text(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def _read_csv_columns(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise BiosigError(f"{path.name} has no data rows")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise BiosigError(f"{path.name}: line {bad[0]} has a different number of fields than the header")
    return {name: [r[j].strip() for r in body] for j, name in enumerate(header)}


def _read_parquet(path: Path) -> dict:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BiosigError("reading Parquet needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _label_names(recording: Recording, path) -> dict[str, str]:
    """Label -> name from a recording's ``label_names`` metadata (a JSON object), if any."""
    text = recording.metadata.get("label_names")
    if not text:
        return {}
    try:
        names = json.loads(text)
    except ValueError:
        logger.warning("%s: label_names metadata is not JSON; class names stay as labels", path)
        return {}
    if not isinstance(names, dict):
        return {}
    return {str(k): str(v) for k, v in names.items()}
