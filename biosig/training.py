"""Train a classifier on a feature dataset and write it as one self-describing ONNX model.

This module imports torch (through :mod:`biosig.nets`); the live path never imports it.

Steps of :func:`train_model`:

1. get held-out predictions to calibrate on. With ``calibration="recordings"`` (the default
   when the windows come from two or more recordings) the recordings are split into folds, a
   copy of the estimator is fitted on all other folds and predicts each fold: every window
   gets a prediction from a model that never saw its recording. With ``"windows"`` (one
   recording, or a feature table) a stratified ``calibration_fraction`` of the windows is held
   out instead;
2. fit the estimator (seeded, on the GPU when torch sees one): on all windows after
   cross-recording calibration, on the rest after a window split;
3. fit a temperature T on the held-out predictions by minimising their NLL (temperature
   scaling);
4. set the OOD threshold at a percentile of the training windows' OOD scores;
5. measure the calibrated metrics on the held-out predictions and write the ONNX file with its
   model card (embedded in ``metadata_props`` and as a sidecar ``.json``).

Why recordings: a new session (a new donning of an EMG armband, a new patient) shifts the
features more than any random subset of the training windows does. A temperature fitted on
windows of the training recordings sees none of that shift and makes the model over-confident
on a new session; on the Myo within-user protocol it raised the test ECE of the Johnson SU
network above the untempered one (docs/results.md), while the cross-recording temperature
lowered it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from biosig import __version__
from biosig._checks import BiosigError, check_option
from biosig.metrics import classification_report

logger = logging.getLogger(__name__)

#: Architecture name → (estimator class name in biosig.nets, fixed keyword arguments).
ARCHITECTURES = {
    "jsu": ("JSUClassifier", {"variant": "shared"}),
    "jsu-full": ("JSUClassifier", {"variant": "full"}),
    "sdgm": ("SDGMClassifier", {}),
    "jsu-sdgm": ("JSUSDGMClassifier", {}),
    "lda": ("LDAClassifier", {}),
    "mlp": ("MLPClassifier", {}),
}


def make_estimator(arch: str, *, random_state: int = 0, verbose: bool = False, device: str = "cpu",
                   **params):
    """A fresh, unfitted estimator for ``arch`` (one of :data:`ARCHITECTURES`); ``random_state``,
    ``verbose`` and ``device`` go to the estimators that take them (LDA takes no device)."""
    import biosig.nets as nets

    check_option(arch, "--arch", tuple(ARCHITECTURES))
    class_name, fixed = ARCHITECTURES[arch]
    estimator = getattr(nets, class_name)(**fixed, **params)
    names = estimator.get_params()
    extra = {"random_state": random_state, "verbose": verbose, "device": device}
    extra = {k: v for k, v in extra.items() if k in names}
    return estimator.set_params(**extra)


def fit_temperature(log_proba: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature T > 0 minimising the NLL of softmax(log_proba / T) (temperature scaling)."""

    def nll(log_t):
        z = log_proba / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(log_p[np.arange(len(y_idx)), y_idx])

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def _softmax_tempered(log_proba, temperature):
    z = log_proba / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def stratified_split(y, fraction: float, seed: int):
    """Indices (fit, calibration): ``fraction`` of each class goes to calibration."""
    rng = np.random.default_rng(seed)
    calibration = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        n = int(round(fraction * idx.size))
        if idx.size >= 2:
            n = min(max(n, 1), idx.size - 1)
            calibration.extend(rng.choice(idx, size=n, replace=False).tolist())
    calibration = np.sort(np.asarray(calibration, dtype=np.int64))
    fit = np.setdiff1d(np.arange(len(y)), calibration)
    return fit, calibration


#: How train_model holds out data for the temperature (see the module docstring).
CALIBRATIONS = ("auto", "recordings", "windows")

#: Most folds of a cross-recording calibration (each fold is one extra fit).
MAX_CALIBRATION_FOLDS = 5


def recording_folds(groups, y_idx, n_classes: int) -> list[np.ndarray] | None:
    """Recording-wise folds (arrays of window indices) for cross-recording calibration.

    Recordings are dealt to ``min(n_recordings, MAX_CALIBRATION_FOLDS)`` folds in order of
    appearance. None when there are fewer than two recordings, or when leaving a fold out would
    remove every window of some class from the rest (the fold's model could not predict it).
    """
    names = list(dict.fromkeys(np.asarray(groups).tolist()))
    if len(names) < 2:
        return None
    n_folds = min(len(names), MAX_CALIBRATION_FOLDS)
    fold_of = {name: i % n_folds for i, name in enumerate(names)}
    fold = np.fromiter((fold_of[g] for g in np.asarray(groups).tolist()), dtype=np.int64,
                       count=len(groups))
    folds = [np.flatnonzero(fold == k) for k in range(n_folds)]
    for held_out in folds:
        rest = np.setdiff1d(np.arange(len(y_idx)), held_out)
        if np.unique(y_idx[rest]).size < n_classes:
            return None
    return folds


def _held_out_log_proba(estimator_factory, X, y_labels, folds, order_of) -> np.ndarray:
    """Out-of-fold log-posteriors: each fold predicted by a copy fitted on the other folds."""
    log_proba = np.empty((X.shape[0], len(order_of)), dtype=np.float64)
    everything = np.arange(X.shape[0])
    for held_out in folds:
        rest = np.setdiff1d(everything, held_out)
        estimator = estimator_factory().fit(X[rest], y_labels[rest])
        order = [list(map(str, estimator.classes_)).index(c) for c in order_of]
        log_proba[held_out] = np.log(np.clip(estimator.predict_proba(X[held_out])[:, order], 1e-300, 1.0))
    return log_proba


def train_model(dataset, *, arch: str, out, pipeline_config=None, stream_info=None, seed: int = 0,
                calibration: str = "auto", calibration_fraction: float = 0.2,
                ood_percentile: float = 99.0, verbose: bool = True, command: str = "",
                estimator_params=None, device: str = "cpu") -> dict:
    """Fit, calibrate and export a model; return its model card.

    Parameters
    ----------
    dataset : FeatureDataset
        Training windows (features, labels).
    arch : str
        One of :data:`ARCHITECTURES`.
    out : str or Path
        Output ``.onnx`` path (its sidecar card goes to the same name with ``.json``).
    pipeline_config : PipelineConfig or None
        The configuration that produced the features (None for a feature table).
    stream_info : dict or None
        ``srate``, ``channels``, ``modality`` of the source signal.
    seed : int
        Seed of the split and of the estimator.
    calibration : {"auto", "recordings", "windows"}
        Where the temperature is fitted (module docstring): "auto" takes "recordings" when the
        windows come from two or more recordings (and every fold leaves all classes in the
        rest), else "windows". "recordings" refuses data it cannot split that way.
    calibration_fraction : float
        Share of the windows held out by the "windows" calibration.
    device : str
        Torch device of the fits: "cpu", "cuda[:N]" or "auto" (a CUDA GPU when torch sees one).
    """
    from biosig.inference import write_model_card
    from biosig.nets.export import export_onnx

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise BiosigError(f"--out must end in .onnx, got {out.name}")
    if len(dataset.classes) < 2:
        raise BiosigError(f"training needs at least two classes, found {dataset.classes}")
    check_option(calibration, "calibration", CALIBRATIONS)
    classes = dataset.classes
    y_idx = np.asarray([classes.index(v) for v in dataset.y])
    y_labels = np.asarray(classes, dtype=object)[y_idx]
    folds = None
    if calibration in ("auto", "recordings"):
        folds = recording_folds(dataset.groups, y_idx, len(classes))
        if folds is None and calibration == "recordings":
            raise BiosigError(
                "calibration by recordings needs two or more recordings, each class present "
                "outside every fold; use --calibration windows"
            )

    def new_estimator(quiet=False):
        return make_estimator(arch, random_state=seed, verbose=verbose and not quiet,
                              device=device, **(estimator_params or {}))

    if folds is not None:
        logger.info("calibrating on %d recording folds (%d extra fits)", len(folds), len(folds))
        log_proba = _held_out_log_proba(lambda: new_estimator(quiet=True), dataset.X, y_labels,
                                        folds, classes)
        fit_idx = cal_idx = np.arange(len(dataset))
        calibrated_by = "recordings"
    else:
        fit_idx, cal_idx = stratified_split(y_idx, calibration_fraction, seed)
        calibrated_by = "windows"
    estimator = new_estimator()
    started = time.perf_counter()
    estimator.fit(dataset.X[fit_idx], y_labels[fit_idx])
    train_s = time.perf_counter() - started
    if folds is None:
        order = [list(map(str, estimator.classes_)).index(c) for c in classes]
        log_proba = np.log(np.clip(estimator.predict_proba(dataset.X[cal_idx])[:, order], 1e-300, 1.0))
    temperature = fit_temperature(log_proba, y_idx[cal_idx])
    calibrated = _softmax_tempered(log_proba, temperature)
    metrics = classification_report(np.asarray(classes)[y_idx[cal_idx]], calibrated, classes)
    metrics["uncalibrated_ece"] = classification_report(
        np.asarray(classes)[y_idx[cal_idx]], np.exp(log_proba), classes)["ece"]
    metrics["train_time_s"] = train_s
    metrics["calibrated_by"] = calibrated_by
    if folds is not None:
        metrics["calibration_folds"] = len(folds)
    ood_threshold = float(np.percentile(estimator.ood_score(dataset.X[fit_idx]), ood_percentile))
    card = _model_card(
        arch=arch, dataset=dataset, classes=classes, pipeline_config=pipeline_config,
        stream_info=stream_info or {}, temperature=temperature, ood_threshold=ood_threshold,
        ood_percentile=ood_percentile, seed=seed, command=command, metrics=metrics,
        n_fit=len(fit_idx), n_cal=len(cal_idx), estimator=estimator,
    )
    export_onnx(estimator, out, model_card=card)
    write_model_card(out, card)
    logger.info("wrote %s (%s, calibration accuracy %.3f)", out, arch, metrics["accuracy"])
    return card


def _model_card(*, arch, dataset, classes, pipeline_config, stream_info, temperature, ood_threshold,
                ood_percentile, seed, command, metrics, n_fit, n_cal, estimator) -> dict:
    pipeline = pipeline_config.to_dict() if pipeline_config is not None else None
    return {
        "format": "biosig-model/1",
        "biosig_version": __version__,
        "arch": arch,
        "modality": stream_info.get("modality", "features"),
        "srate": stream_info.get("srate"),
        "channels": list(stream_info.get("channels", [])),
        "pipeline": pipeline,
        "feature_names": list(dataset.feature_names),
        "class_names": list(classes),
        "class_labels": [str(stream_info.get("label_names", {}).get(c, c)) for c in classes],
        "temperature": temperature,
        "ood": {"threshold": ood_threshold, "percentile": ood_percentile, "score": "model"},
        "training": {
            "data": list(dataset.sources),
            "n_windows": int(len(dataset)),
            "n_fit": int(n_fit),
            "n_calibration": int(n_cal),
            "seed": int(seed),
            "command": command,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "params": {k: _plain(v) for k, v in estimator.get_params().items()},
            # The training inputs' per-feature mean and variance: the Gaussian prior of inverse
            # inference and a reference for drift, without shipping the data.
            "feature_mean": dataset.X.mean(axis=0).tolist(),
            "feature_var": dataset.X.var(axis=0).tolist(),
        },
        "metrics": {"calibration_set": metrics},
    }


def _plain(value):
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)
