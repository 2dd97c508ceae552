"""Run a trained biosig model from its ONNX file: providers, model card checks, posteriors.

The live path (stream → DSP → this module → GUI) must start fast, so this module imports
``onnx`` and ``onnxruntime`` but never torch (a test checks ``sys.modules``).

The model file contract
-----------------------
A biosig model is one ``.onnx`` file, written by the exporter (:mod:`biosig.nets`) or by
:func:`build_linear_model`:

- input ``features``: float32, shape ``(N, F)`` with ``N`` dynamic: the RAW feature vectors, in
  the order of the card's ``feature_names``. Standardisation is part of the graph.
- output ``logits``: float32, shape ``(N, C)``. The posterior is ``softmax(logits / T)`` with
  the temperature ``T`` of the card (calibrated on held-out training data).
- output ``ood_score``: float32, shape ``(N,)``; higher means further out of the training
  distribution (e.g. the negative log-density, or ``-logsumexp(logits)``).
- ``metadata_props``: ``biosig.format = "biosig-model/1"`` and ``biosig.model_card`` = the
  model card as JSON. A sidecar ``<model>.json`` with the same card is for humans
  (:func:`write_model_card`); the embedded card is the one used.

The model card (schema ``biosig-model/1``)
------------------------------------------
=================  ========  ==================================================================
key                required  meaning
=================  ========  ==================================================================
``format``         yes       ``"biosig-model/1"``
``biosig_version`` yes       version of biosig that wrote the model, e.g. ``"0.1.0"``
``arch``           yes       architecture, e.g. ``"jsu"``, ``"sdgm"``, ``"jsu-sdgm"``, ``"lda"``
``modality``       yes       ``"EMG"`` or ``"CTG"``; ``"features"`` for a model trained on a
                             feature table (it then has ``srate`` and ``pipeline`` null and
                             ``channels`` empty, and cannot run on a stream)
``srate``          yes       sampling rate of the training data in Hz (> 0)
``channels``       yes       channel labels the model needs, in order (distinct strings)
``pipeline``       yes       :meth:`biosig.config.PipelineConfig.to_dict` of the preprocessing,
                             window and feature settings used for training
``feature_names``  yes       names of the ``F`` input columns, in order (distinct strings)
``class_names``    yes       names of the ``C`` logit columns, in order (>= 2, distinct)
``class_labels``   no        human-readable name of each class (same length as class_names)
``temperature``    no        softmax temperature ``T`` > 0 (1.0 when absent)
``ood``            yes       ``{"threshold": float, "percentile": float in [0, 100],
                             "score": str}``: a window is out of distribution when its
                             ``ood_score`` exceeds ``threshold``, the ``percentile`` of the
                             training data's scores; ``score`` names the score
``training``       no        ``{"data", "n_windows", "seed", "command", "date", ...}``
``metrics``        no        held-out metrics, e.g. ``{"accuracy": 0.91, "ece": 0.03}``
=================  ========  ==================================================================

Other keys are kept and ignored (logged at debug level).

Streaming path
--------------
One window at a time runs through :class:`OnnxModel` without onnxruntime allocating tensors:
the input ``(1, F)`` and output buffers are preallocated and bound once with
``session.io_binding()``; each call copies the feature row into the input buffer and runs
``session.run_with_iobinding``. Measured with ``python benchmarks/inference_latency.py``
(CPU provider, onnxruntime 1.32, linear model of 48 features × 8 classes, a shared 2-core
machine): io-binding p50 6.3 µs / p99 ~10 µs per window against 8.1-8.3 µs / ~15 µs for
``session.run`` (which builds a feed dict and allocates new output arrays each call); the whole
:meth:`OnnxModel.infer` (softmax, entropy, OOD flag, decision in numpy) ~21 µs p50. Many windows
at once (offline) go through ``session.run`` in batches of ``batch_size`` (~6 million windows/s
for the graph alone, ~2 million/s for ``infer``, on the same machine).

The bound buffers are shared, so the single-window call holds a lock; batched calls may run
from several threads. Decision smoothing keeps per-stream state: one stream per model object.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_existing_file, check_int, check_positive
from biosig.config import PipelineConfig
from biosig.io.recording import Recording, Stream

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_KEYS",
    "CARD_PROP",
    "FORMAT_PROP",
    "INPUT_NAME",
    "LOGITS_NAME",
    "MODEL_FORMAT",
    "OOD_NAME",
    "DecisionSmoother",
    "Inference",
    "OnnxModel",
    "attach_model_card",
    "build_linear_model",
    "choose_providers",
    "read_model_card",
    "softmax_with_entropy",
    "validate_model_card",
    "write_model_card",
]

#: Value of ``biosig.format`` and of the card's ``format`` for this schema.
MODEL_FORMAT = "biosig-model/1"
#: ``metadata_props`` keys of the ONNX file.
FORMAT_PROP = "biosig.format"
CARD_PROP = "biosig.model_card"
#: Tensor names of the contract.
INPUT_NAME = "features"
LOGITS_NAME = "logits"
OOD_NAME = "ood_score"

#: Card keys: name -> required.
CARD_KEYS = {
    "format": True,
    "biosig_version": True,
    "arch": True,
    "modality": True,
    "srate": True,
    "channels": True,
    "pipeline": True,
    "feature_names": True,
    "class_names": True,
    "class_labels": False,
    "temperature": False,
    "ood": True,
    "training": False,
    "metrics": False,
}
#: Signal modalities of models that run on streams.
MODALITIES = ("EMG", "CTG")
#: Modality of a model trained on a feature table: no stream, rate, channels or pipeline.
TABLE_MODALITY = "features"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


# -- model card -------------------------------------------------------------------------------


def _card_error(message: str) -> BiosigError:
    return BiosigError(f"model card: {message}")


def _check_label_list(value, key: str, *, minimum: int = 1) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _card_error(f"{key} must be a list of strings, got {type(value).__name__}")
    if not all(isinstance(v, str) and v for v in value):
        raise _card_error(f"{key} must hold non-empty strings")
    if len(value) < minimum:
        raise _card_error(f"{key} needs at least {minimum} entries, got {len(value)}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise _card_error(f"{key} lists {repeated} more than once")
    return list(value)


def _check_card_number(value, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _card_error(f"{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise _card_error(f"{key} must be > 0, got {value!r}")
    return float(value)


def _check_ood(ood) -> dict:
    if not isinstance(ood, dict):
        raise _card_error(f"ood must be an object with threshold, percentile, score; got {ood!r}")
    missing = [k for k in ("threshold", "percentile", "score") if k not in ood]
    if missing:
        raise _card_error(f"ood lacks {', '.join(missing)}")
    out = dict(ood)
    out["threshold"] = _check_card_number(ood["threshold"], "ood.threshold")
    out["percentile"] = _check_card_number(ood["percentile"], "ood.percentile")
    if not 0 <= out["percentile"] <= 100:
        raise _card_error(f"ood.percentile must be in [0, 100], got {out['percentile']:g}")
    if not isinstance(ood["score"], str) or not ood["score"]:
        raise _card_error(f"ood.score must name the score, got {ood['score']!r}")
    return out


def _check_card_pipeline(card: dict) -> None:
    """The pipeline section must parse, and agree with the card's rate and channels."""
    try:
        config = PipelineConfig.from_dict(card["pipeline"])
    except (TypeError, ValueError, AttributeError) as err:  # BiosigError is a ValueError
        raise _card_error(f"pipeline: {_first_line(err)}") from None
    if config.channels is not None and list(config.channels) != card["channels"]:
        raise _card_error(
            f"pipeline channels {config.channels} differ from the card's channels "
            f"{card['channels']}"
        )
    if config.srate is not None and abs(config.srate - card["srate"]) > 1e-6 * card["srate"]:
        raise _card_error(
            f"pipeline srate {config.srate:g} Hz differs from the card's srate {card['srate']:g} Hz"
        )


def validate_model_card(card) -> dict:
    """Check a model card against the schema and return a normalised copy.

    Parameters
    ----------
    card : dict
        The card (see this module's docstring for the keys).

    Returns
    -------
    dict
        A copy with ``temperature`` (1.0), ``class_labels`` (the class names), ``training`` and
        ``metrics`` (empty) filled in where absent, and numbers as float.

    Raises
    ------
    BiosigError
        Naming the first key that is missing or wrong.
    """
    if not isinstance(card, dict):
        raise _card_error(f"must be a JSON object, got {type(card).__name__}")
    missing = [key for key, required in CARD_KEYS.items() if required and key not in card]
    if missing:
        raise _card_error(f"missing key(s) {', '.join(missing)}")
    unknown = sorted(set(card) - set(CARD_KEYS))
    if unknown:
        logger.debug("model card has extra keys %s (kept, ignored)", unknown)
    out = dict(card)
    if out["format"] != MODEL_FORMAT:
        raise _card_error(f"format is {out['format']!r}; this biosig reads {MODEL_FORMAT!r}")
    for key in ("biosig_version", "arch"):
        if not isinstance(out[key], str) or not out[key]:
            raise _card_error(f"{key} must be a non-empty string, got {out[key]!r}")
    if out["modality"] == TABLE_MODALITY:
        _check_table_card(out)
    elif out["modality"] in MODALITIES:
        out["srate"] = _check_card_number(out["srate"], "srate", positive=True)
        out["channels"] = _check_label_list(out["channels"], "channels")
        if not isinstance(out["pipeline"], dict):
            raise _card_error("pipeline must be an object (PipelineConfig.to_dict())")
        _check_card_pipeline(out)
    else:
        raise _card_error(f"modality must be one of {', '.join(MODALITIES)} (or "
                          f"{TABLE_MODALITY!r} for a feature table), got {out['modality']!r}")
    out["feature_names"] = _check_label_list(out["feature_names"], "feature_names")
    out["class_names"] = _check_label_list(out["class_names"], "class_names", minimum=2)
    labels = out.get("class_labels")
    if labels is None:
        out["class_labels"] = list(out["class_names"])
    elif (isinstance(labels, str) or not isinstance(labels, (list, tuple))
          or len(labels) != len(out["class_names"]) or not all(isinstance(v, str) for v in labels)):
        raise _card_error(
            f"class_labels must be {len(out['class_names'])} strings (one per class name)"
        )
    else:
        out["class_labels"] = list(labels)
    out["temperature"] = _check_card_number(out.get("temperature", 1.0), "temperature",
                                            positive=True)
    out["ood"] = _check_ood(out["ood"])
    for key in ("training", "metrics"):
        value = out.get(key, {})
        if not isinstance(value, dict):
            raise _card_error(f"{key} must be an object, got {type(value).__name__}")
        out[key] = dict(value)
    return out


def _check_table_card(card: dict) -> None:
    """A feature-table model has no stream: srate, pipeline null and channels empty."""
    streamless = card["srate"] is None and card["pipeline"] is None
    if not streamless or card["channels"] not in ([], None):
        raise _card_error(
            f"a model of modality {TABLE_MODALITY!r} (trained on a feature table) has srate "
            "null, channels [] and pipeline null"
        )
    card["channels"] = []


def _card_from_json(text: str, where: str) -> dict:
    try:
        card = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise BiosigError(f"{where}: the model card is not valid JSON ({err})") from None
    try:
        return validate_model_card(card)
    except BiosigError as err:
        raise BiosigError(f"{where}: {err}") from None


def model_card_path(model_path) -> Path:
    """Sidecar card path of a model file: ``MODEL.onnx`` → ``MODEL.json``."""
    return Path(model_path).with_suffix(".json")


def write_model_card(path, card) -> Path:
    """Write the card as indented JSON beside a model (for humans; the ONNX file embeds it).

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` model file (the card goes to the same name with ``.json``) or the
        ``.json`` path itself.
    card : dict
        Model card; validated first.

    Returns
    -------
    Path
        The file written.
    """
    card = validate_model_card(card)
    path = Path(path)
    target = model_card_path(path) if path.suffix.lower() == ".onnx" else path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return target


def attach_model_card(model, card):
    """Store the card (and the format tag) in an ``onnx.ModelProto``'s ``metadata_props``.

    Parameters
    ----------
    model : onnx.ModelProto
        Modified in place (existing ``biosig.*`` entries are replaced).
    card : dict
        Model card; validated first.

    Returns
    -------
    onnx.ModelProto
        ``model``.
    """
    card = validate_model_card(card)
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith("biosig.")}
    props[FORMAT_PROP] = MODEL_FORMAT
    props[CARD_PROP] = json.dumps(card, sort_keys=False)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


# -- loading and checking the file ------------------------------------------------------------


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _parse_onnx(raw: bytes, path: Path):
    """Parse and check the bytes as an ONNX model; any failure is a one-line BiosigError."""
    import onnx  # noqa: PLC0415 - only needed when a model is loaded

    if not raw:
        raise BiosigError(f"{path} is empty, not an ONNX model")
    try:
        model = onnx.load_model_from_string(raw)
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - protobuf and checker raise many kinds
        raise BiosigError(f"{path} is not a valid ONNX model ({_first_line(err)})") from None
    if len(model.graph.node) == 0:
        raise BiosigError(f"{path} is not a valid ONNX model (its graph has no nodes)")
    return model


def _embedded_card(model, path: Path) -> dict:
    props = {p.key: p.value for p in model.metadata_props}
    if CARD_PROP not in props:
        raise BiosigError(
            f"{path} carries no biosig model card (metadata {CARD_PROP!r} is missing); "
            "export it with biosig train"
        )
    fmt = props.get(FORMAT_PROP)
    if fmt != MODEL_FORMAT:
        raise BiosigError(f"{path}: {FORMAT_PROP} is {fmt!r}; this biosig reads {MODEL_FORMAT!r}")
    return _card_from_json(props[CARD_PROP], str(path))


def read_model_card(path) -> dict:
    """Read and validate the card of a model: embedded in an ``.onnx`` file, or a ``.json`` one.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        The validated card (see :func:`validate_model_card`).
    """
    path = check_existing_file(path, "model file")
    if path.suffix.lower() == ".json":
        return _card_from_json(path.read_text(encoding="utf-8", errors="replace"), str(path))
    return _embedded_card(_parse_onnx(path.read_bytes(), path), path)


def _warn_if_sidecar_differs(path: Path, card: dict) -> None:
    sidecar = model_card_path(path)
    if not sidecar.is_file():
        return
    try:
        other = validate_model_card(json.loads(sidecar.read_text(encoding="utf-8")))
    except (BiosigError, ValueError, OSError):
        logger.warning("%s is not a valid model card; the card inside %s is used", sidecar,
                       path.name)
        return
    if other != card:
        logger.warning("%s differs from the card inside %s; the embedded card is used",
                       sidecar, path.name)


def _dim_text(dim) -> str:
    return "N" if dim is None or isinstance(dim, str) else str(dim)


def _check_tensor(node, name: str, shape_doc: str, rank: int, fixed: dict, path: Path) -> None:
    """Refuse a contract tensor of the wrong type, rank, dynamic batch or fixed size."""
    shape = list(node.shape)
    shown = "[" + ", ".join(_dim_text(d) for d in shape) + "]"
    if node.type != "tensor(float)" or len(shape) != rank:
        raise BiosigError(
            f"{path}: {name} must be float32 {shape_doc}, got {node.type} {shown}"
        )
    if isinstance(shape[0], int):
        raise BiosigError(
            f"{path}: {name} must have a dynamic first (batch) dimension, got {shown}"
        )
    for axis, size in fixed.items():
        if isinstance(shape[axis], int) and shape[axis] != size:
            raise BiosigError(f"{path}: {name} must be {shape_doc} with size {size} on axis "
                              f"{axis}, got {shown}")


def _check_contract(session, card: dict, path: Path) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if list(inputs) != [INPUT_NAME]:
        raise BiosigError(f"{path}: the model must have one input named {INPUT_NAME!r}, "
                          f"it has {sorted(inputs)}")
    missing = [n for n in (LOGITS_NAME, OOD_NAME) if n not in outputs]
    if missing:
        raise BiosigError(f"{path}: the model lacks output(s) {missing}; it has {sorted(outputs)}")
    n_features, n_classes = len(card["feature_names"]), len(card["class_names"])
    _check_tensor(inputs[INPUT_NAME], INPUT_NAME, "[N, F]", 2, {1: n_features}, path)
    _check_tensor(outputs[LOGITS_NAME], LOGITS_NAME, "[N, C]", 2, {1: n_classes}, path)
    _check_tensor(outputs[OOD_NAME], OOD_NAME, "[N]", 1, {}, path)


# -- providers --------------------------------------------------------------------------------


def choose_providers(available, requested=None) -> list[str]:
    """onnxruntime execution providers to use, best first.

    Parameters
    ----------
    available : sequence of str
        What ``onnxruntime.get_available_providers()`` lists.
    requested : sequence of str or None
        Providers the user asked for; each must be available. None: CUDA then CPU when CUDA is
        listed (onnxruntime-gpu with a GPU), else CPU alone.

    Returns
    -------
    list of str
        Providers in order of preference; always ending with the CPU provider as the fallback.
    """
    available = list(available)
    if requested is not None:
        if isinstance(requested, str):
            requested = [requested]
        requested = list(requested)
        absent = [p for p in requested if p not in available]
        if absent or not requested:
            raise BiosigError(
                f"execution provider(s) {absent or requested} are not available; "
                f"onnxruntime offers {available}"
            )
        chosen = requested
    elif CUDA_PROVIDER in available:
        chosen = [CUDA_PROVIDER]
    else:
        chosen = []
    if CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


# -- decisions --------------------------------------------------------------------------------


class DecisionSmoother:
    """Majority vote over the last ``k`` decisions of one stream of windows.

    A decision is a class index, or -1 for none (a rejected or skipped window). The smoothed
    decision of a window is the class with most votes among the last ``k`` decisions (this one
    included), ties going to the one voted for most recently. A window without a decision stays
    without one (rejection is honoured), but it still takes a place in the history, so old
    votes age out at the rate of windows.

    Parameters
    ----------
    k : int
        Number of decisions voted over (>= 1; 1 passes decisions through).
    """

    def __init__(self, k: int):
        self.k = check_int(k, "smoothing", minimum=1)
        self._history: deque[int] = deque(maxlen=self.k)

    def reset(self) -> None:
        """Forget the history (a new stream starts)."""
        self._history.clear()

    def update(self, decision: int) -> int:
        """Add one window's decision; return its smoothed decision (-1: none)."""
        decision = int(decision)
        self._history.append(decision)
        if decision < 0:
            return -1
        votes: dict[int, int] = {}
        best, best_votes = decision, 0
        # Newest first: a later class only wins with strictly more votes, so ties go to the
        # most recently voted class.
        for past in reversed(self._history):
            if past < 0:
                continue
            votes[past] = votes.get(past, 0) + 1
            if votes[past] > best_votes:
                best, best_votes = past, votes[past]
        return best

    def update_many(self, decisions) -> np.ndarray:
        """Smoothed decisions of consecutive windows, shape (n,), int64."""
        return np.fromiter((self.update(d) for d in np.asarray(decisions).reshape(-1)),
                           dtype=np.int64)

    def __repr__(self) -> str:
        return f"<DecisionSmoother | k={self.k} | {len(self._history)} in history>"


@dataclass
class Inference:
    """What the model says about a batch of windows.

    Attributes
    ----------
    posteriors : ndarray, shape (n, n_classes), float64
        Temperature-scaled softmax of the logits; rows sum to 1 (NaN rows for non-finite input).
    entropy : ndarray, shape (n,)
        Entropy of each posterior in nats (0 = certain, log(n_classes) = uniform).
    ood_score : ndarray, shape (n,)
        The model's out-of-distribution score (higher = less like the training data).
    ood_flag : ndarray of bool, shape (n,)
        ``ood_score`` above the card's threshold (or not a number).
    predicted : ndarray of int64, shape (n,)
        Decision: class index after rejection and smoothing; -1 where there is none.
    rejected : ndarray of bool, shape (n,)
        No decision for this window: its largest posterior is below ``reject_threshold``
        (or it is out of distribution with ``reject_ood``, or its posterior is not finite).
    """

    posteriors: np.ndarray
    entropy: np.ndarray
    ood_score: np.ndarray
    ood_flag: np.ndarray
    predicted: np.ndarray
    rejected: np.ndarray

    def __len__(self) -> int:
        return int(self.posteriors.shape[0])


_MOST_NEGATIVE = np.finfo(np.float64).min


def softmax_with_entropy(logits, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``softmax(logits / T)`` and its entropy in nats, in float64.

    Parameters
    ----------
    logits : ndarray, shape (n, n_classes)
    temperature : float
        Softmax temperature ``T`` > 0.

    Returns
    -------
    posteriors : ndarray, shape (n, n_classes)
        Rows sum to 1; NaN rows where a logit is NaN or +inf.
    entropy : ndarray, shape (n,)
        NaN exactly where the posterior row is.
    """
    # Class-major (one row per class): every reduction over classes is then an elementwise
    # operation on whole rows of windows, ~2x faster over a recording than reducing each
    # window's few classes along axis 1.
    z = np.array(logits, dtype=np.float64).T.copy()
    z /= temperature
    z -= z.max(axis=0)
    # A -inf logit (probability 0) would make p * z = 0 * -inf = NaN in the entropy.
    np.maximum(z, _MOST_NEGATIVE, out=z)
    e = np.exp(z)
    total = e.sum(axis=0)
    e /= total
    # H = log(sum e^z) - sum p z: exact where p underflows, unlike -sum p log p.
    z *= e
    entropy = np.log(total) - z.sum(axis=0)
    return e.T, entropy


def most_probable(posteriors) -> np.ndarray:
    """Index of each row's largest posterior, shape (n,): ``np.argmax(posteriors, axis=1)``
    for rows without NaN (the first of equal maxima).

    One pass per class over all rows, ~3x faster than ``argmax`` along rows of a few classes.
    """
    columns = np.asarray(posteriors).T
    best = columns[0].copy()
    index = np.zeros(best.shape[0], dtype=np.int64)
    for k in range(1, columns.shape[0]):
        np.copyto(index, k, where=columns[k] > best)
        np.maximum(best, columns[k], out=best)
    return index


# -- the model --------------------------------------------------------------------------------


class OnnxModel:
    """A biosig model file ready to classify feature vectors with onnxruntime.

    Fits the pipeline's inference slot (:class:`biosig.stream.pipeline.StreamProcessor`):
    ``classes_``, ``predict_proba`` and the richer :meth:`infer`.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file (contract and card: see this module's docstring).
    providers : sequence of str or None
        onnxruntime execution providers; None: chosen by :func:`choose_providers`.
    reject_threshold : float or None
        In :meth:`infer`, a window whose largest posterior is below this (in (0, 1]) gets no
        decision (``predicted = -1``, ``rejected = True``). None: never reject.
    reject_ood : bool
        In :meth:`infer`, also give no decision for out-of-distribution windows.
    smoothing : int or None
        In :meth:`infer`, majority vote over the last ``smoothing`` decisions
        (:class:`DecisionSmoother`); successive calls are taken as successive windows of one
        stream until :meth:`reset`. None or 1: no smoothing.
    batch_size : int
        Largest number of windows per onnxruntime call in the batched path (bounds memory).
    threads : int or None
        onnxruntime intra-op threads; None: onnxruntime's default (one per core).

    Attributes
    ----------
    card : dict
        The validated model card.
    classes_ : ndarray of str, shape (n_classes,)
        Class names, in posterior column order.
    feature_names : list of str
        Input columns, in order.
    providers : list of str
        Providers the session uses, best first.
    """

    def __init__(self, path, *, providers=None, reject_threshold=None, reject_ood=False,
                 smoothing=None, batch_size=8192, threads=None):
        self.path = check_existing_file(path, "model file")
        self.reject_threshold = self._check_reject_threshold(reject_threshold)
        self.reject_ood = bool(reject_ood)
        self.smoother = None if smoothing in (None, 1) else DecisionSmoother(smoothing)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        threads = None if threads is None else check_int(threads, "threads", minimum=1)
        raw = self.path.read_bytes()
        proto = _parse_onnx(raw, self.path)
        self.card = _embedded_card(proto, self.path)
        _warn_if_sidecar_differs(self.path, self.card)
        del proto
        self._torch_graph = None  # batches on a torch device instead (use_torch)
        self.session = self._open_session(raw, providers, threads)
        _check_contract(self.session, self.card, self.path)
        self.classes_ = np.array(self.card["class_names"])
        self.feature_names = list(self.card["feature_names"])
        self.temperature = float(self.card["temperature"])
        self.ood_threshold = float(self.card["ood"]["threshold"])
        self._lock = threading.Lock()
        self._bind_single_window()
        self._warm_up()

    # -- construction helpers -----------------------------------------------------------------
    @staticmethod
    def _check_reject_threshold(value) -> float | None:
        if value is None:
            return None
        value = check_positive(value, "reject_threshold")
        if value > 1:
            raise BiosigError(f"reject_threshold is a probability in (0, 1], got {value:g}")
        return value

    def _open_session(self, raw: bytes, providers, threads):
        import onnxruntime as ort  # noqa: PLC0415

        chosen = choose_providers(ort.get_available_providers(), providers)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's own warnings would bypass logging
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(raw, sess_options=options, providers=chosen)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BiosigError(
                f"{self.path}: onnxruntime cannot load the model ({_first_line(err)})"
            ) from None
        self.providers = list(session.get_providers())
        if self.providers[0] != chosen[0]:
            logger.warning("%s: %s could not be used; running on %s", self.path.name, chosen[0],
                           self.providers[0])
        logger.info("%s: onnxruntime %s on %s", self.path.name, ort.__version__, self.providers[0])
        return session

    def _bind_single_window(self) -> None:
        """Preallocate the N = 1 input/output buffers and bind them once."""
        n_features, n_classes = len(self.feature_names), len(self.classes_)
        self._x1 = np.zeros((1, n_features), dtype=np.float32)
        self._logits1 = np.zeros((1, n_classes), dtype=np.float32)
        self._ood1 = np.zeros(1, dtype=np.float32)
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cpu", 0, np.float32, self._x1.shape, self._x1.ctypes.data)
        binding.bind_output(LOGITS_NAME, "cpu", 0, np.float32, self._logits1.shape,
                            self._logits1.ctypes.data)
        binding.bind_output(OOD_NAME, "cpu", 0, np.float32, self._ood1.shape,
                            self._ood1.ctypes.data)
        self._binding = binding

    def _warm_up(self) -> None:
        """Run both paths once: checks the output shapes and takes the first-run cost now."""
        try:
            self._run_single(np.zeros(len(self.feature_names)))
            logits, ood = self._run_batch(np.zeros((2, len(self.feature_names)), dtype=np.float32))
        except Exception as err:  # noqa: BLE001 - a graph that cannot run is a bad file
            raise BiosigError(f"{self.path}: the model fails to run ({_first_line(err)})") from None
        if logits.shape != (2, len(self.classes_)) or ood.shape != (2,):
            raise BiosigError(
                f"{self.path}: for 2 windows the model gives logits {logits.shape} and "
                f"ood_score {ood.shape}; expected (2, {len(self.classes_)}) and (2,)"
            )

    # -- description --------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_classes(self) -> int:
        return len(self.classes_)

    @property
    def runs_on_streams(self) -> bool:
        """False for a model trained on a feature table (no rate, channels or pipeline)."""
        return self.card["modality"] != TABLE_MODALITY

    @property
    def srate(self) -> float | None:
        """Sampling rate of the training data in Hz (None for a feature-table model)."""
        return None if self.card["srate"] is None else float(self.card["srate"])

    def _require_stream_model(self) -> None:
        if not self.runs_on_streams:
            raise BiosigError(
                f"model {self.path.name} was trained on a feature table: it has no pipeline "
                "settings and cannot run on a stream or recording"
            )

    @property
    def channels(self) -> list[str]:
        """Channel labels the model needs, in order."""
        return list(self.card["channels"])

    def pipeline_config(self) -> PipelineConfig:
        """The training pipeline settings, bound to the model's rate and channels.

        Returns
        -------
        PipelineConfig
            With ``srate`` and ``channels`` from the card, and ``stream_type`` set to the
            modality where the card's pipeline leaves it open.
        """
        self._require_stream_model()
        config = PipelineConfig.from_dict(self.card["pipeline"])
        config.srate = self.srate
        config.channels = self.channels
        if config.stream_type is None:
            config.stream_type = self.card["modality"]
        return config

    def check_stream(self, srate, channel_labels) -> None:
        """Refuse a stream this model cannot run on, naming what differs.

        Parameters
        ----------
        srate : float
            Nominal sampling rate of the stream in Hz.
        channel_labels : sequence of str
            Labels of the stream's channels.

        Raises
        ------
        BiosigError
            If the rate differs from the card's, or a channel the model needs is missing.
        """
        self._require_stream_model()
        srate = check_positive(srate, "sampling rate")
        name = self.path.name
        if abs(srate - self.srate) > 1e-6 * self.srate:
            raise BiosigError(
                f"model {name} was trained at {self.srate:g} Hz but the stream is sampled at "
                f"{srate:g} Hz"
            )
        labels = [str(c) for c in channel_labels]
        missing = [c for c in self.channels if c not in labels]
        if not missing:
            return
        if len(labels) < len(self.channels):
            raise BiosigError(
                f"model {name} needs {len(self.channels)} channels {self.channels} but the "
                f"stream has {len(labels)} {labels}"
            )
        raise BiosigError(
            f"model {name} needs channel(s) {missing} that the stream lacks; "
            f"the stream has {labels}"
        )

    def check_recording(self, stream: Stream | Recording) -> Stream:
        """Check a recorded :class:`~biosig.io.Stream` (or pick one from a ``Recording``).

        Parameters
        ----------
        stream : Stream or Recording
            A Recording's signal is chosen by the card's stream name, else its modality.

        Returns
        -------
        Stream
            The checked stream.
        """
        self._require_stream_model()
        if isinstance(stream, Recording):
            config = self.pipeline_config()
            stream = stream.signal(name=config.stream_name, type=config.stream_type)
        if stream.type and stream.type.upper() != self.card["modality"]:
            logger.warning("stream %r is of type %r; model %s was trained on %s", stream.name,
                           stream.type, self.path.name, self.card["modality"])
        self.check_stream(stream.srate, stream.channel_labels)
        return stream

    # -- running the graph --------------------------------------------------------------------
    def _as_features(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise BiosigError(
                f"model {self.path.name} takes {self.n_features} features per window, got an "
                f"array of shape {np.shape(X)}"
            )
        return X

    def _run_single(self, x) -> tuple[np.ndarray, np.ndarray]:
        """One window through the bound buffers; returns views valid until the next call."""
        np.copyto(self._x1[0], x, casting="same_kind")
        self.session.run_with_iobinding(self._binding)
        return self._logits1, self._ood1

    def _run_batch(self, X32) -> tuple[np.ndarray, np.ndarray]:
        if self._torch_graph is not None:
            return self._torch_graph(X32)
        logits, ood = self.session.run([LOGITS_NAME, OOD_NAME], {INPUT_NAME: X32})
        return logits, ood

    def use_torch(self, device: str = "cuda") -> "OnnxModel":
        """Run batches of windows with torch on ``device`` instead of onnxruntime.

        For a GPU that onnxruntime cannot use (its CPU build beside torch with CUDA): the
        model's graph runs node by node as torch operations
        (:class:`biosig.torch_graph.TorchGraph`), with the same outputs to float rounding.
        Single windows (the live path) stay on onnxruntime. Offline use only: it imports torch.

        Parameters
        ----------
        device : str
            A torch device, e.g. ``"cuda"`` or ``"cpu"``.

        Returns
        -------
        OnnxModel
            This model.
        """
        from biosig.torch_graph import TorchGraph  # noqa: PLC0415

        self._torch_graph = TorchGraph(self.path.read_bytes(), device)
        logger.info("%s: batches run by torch on %s", self.path.name, self._torch_graph.device)
        return self

    @property
    def engine(self) -> str:
        """What runs batches: ``"torch cuda:0"`` after :meth:`use_torch`, else onnxruntime's
        first provider (``"CPUExecutionProvider"``, ``"CUDAExecutionProvider"``)."""
        if self._torch_graph is not None:
            return f"torch {self._torch_graph.device}"
        return self.providers[0]

    def _run(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Logits (n, C) and OOD scores (n,) as float32 arrays owned by the caller."""
        X = self._as_features(X)
        n = X.shape[0]
        if n == 1:
            with self._lock:  # the bound buffers are shared; explainers may call from threads
                logits, ood = self._run_single(X[0])
                return logits.copy(), ood.copy()
        logits = np.empty((n, self.n_classes), dtype=np.float32)
        ood = np.empty(n, dtype=np.float32)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            chunk = np.ascontiguousarray(X[start:stop], dtype=np.float32)
            logits[start:stop], ood[start:stop] = self._run_batch(chunk)
        return logits, ood

    # -- public API ---------------------------------------------------------------------------
    def predict_logits(self, X) -> np.ndarray:
        """Raw logits (before temperature).

        Parameters
        ----------
        X : array_like, shape (n, n_features) or (n_features,)
            Raw feature vectors in the order of :attr:`feature_names`.

        Returns
        -------
        ndarray, shape (n, n_classes), float32
        """
        return self._run(X)[0]

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated posteriors ``softmax(logits / T)``, float64, rows summing to 1.

        Parameters
        ----------
        X : array_like, shape (n, n_features) or (n_features,)

        Returns
        -------
        ndarray, shape (n, n_classes)
        """
        return softmax_with_entropy(self._run(X)[0], self.temperature)[0]

    def predict(self, X) -> np.ndarray:
        """Most probable class name per window (no rejection, no smoothing; see :meth:`infer`).

        Returns
        -------
        ndarray of str, shape (n,)
        """
        return self.classes_[np.argmax(self.predict_logits(X), axis=1)]

    def infer(self, X) -> Inference:
        """Posteriors, entropy, OOD score and flag, and decisions with rejection and smoothing.

        Parameters
        ----------
        X : array_like, shape (n, n_features) or (n_features,)
            Raw feature vectors of consecutive windows.

        Returns
        -------
        Inference
        """
        X = self._as_features(X)
        if X.shape[0] == 1:
            # Straight from the bound buffers: no copy of the logits on the streaming path.
            with self._lock:
                logits, ood = self._run_single(X[0])
                posteriors, entropy = softmax_with_entropy(logits, self.temperature)
                ood_score = ood.astype(np.float64)
        else:
            logits, ood = self._run(X)
            posteriors, entropy = softmax_with_entropy(logits, self.temperature)
            ood_score = ood.astype(np.float64)
        return self._decide(posteriors, entropy, ood_score)

    def _decide(self, posteriors, entropy, ood_score) -> Inference:
        """OOD flags, rejection and (smoothed) decisions for computed posteriors."""
        # A score that is not a number is no evidence of being in distribution.
        ood_flag = ~(ood_score <= self.ood_threshold)
        rejected = ~np.isfinite(entropy)  # NaN exactly where the posterior row is
        if self.reject_threshold is not None:
            rejected |= posteriors.max(axis=1) < self.reject_threshold
        if self.reject_ood:
            rejected |= ood_flag
        predicted = most_probable(posteriors)
        predicted[rejected] = -1
        if self.smoother is not None:
            predicted = self.smoother.update_many(predicted)
        return Inference(posteriors, entropy, ood_score, ood_flag, predicted, rejected)

    def reset(self) -> None:
        """Forget the smoothing history (call between streams)."""
        if self.smoother is not None:
            self.smoother.reset()

    def __repr__(self) -> str:
        source = "feature table"
        if self.runs_on_streams:
            source = f"{self.card['modality']} {len(self.channels)} ch @ {self.srate:g} Hz"
        return (
            f"<OnnxModel {self.path.name!r} | {self.card['arch']} | {source} | "
            f"{self.n_features} features -> {self.n_classes} classes | {self.providers[0]}>"
        )


# -- a plain linear model (tests, benchmarks, linear baselines) -------------------------------


def build_linear_model(weights, bias, card, *, mean=None, scale=None, opset: int = 18):
    """A contract-conforming ONNX model with ``logits = ((x - mean) / scale) @ W + b``.

    Its ``ood_score`` is ``-logsumexp(logits)`` (low total evidence = unfamiliar input). Used by
    the tests and the latency benchmark, and fits any linear classifier (e.g. LDA).

    Parameters
    ----------
    weights : ndarray, shape (n_features, n_classes)
    bias : ndarray, shape (n_classes,)
    card : dict
        Model card; ``feature_names`` and ``class_names`` must match the shapes.
    mean, scale : ndarray, shape (n_features,), or None
        Standardisation baked into the graph; None: none.
    opset : int
        ONNX opset (>= 18, where ReduceLogSumExp takes its axes as an input).

    Returns
    -------
    onnx.ModelProto
    """
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    card = validate_model_card(card)
    weights = np.asarray(weights, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32).reshape(-1)
    n_features, n_classes = len(card["feature_names"]), len(card["class_names"])
    if weights.shape != (n_features, n_classes) or bias.shape != (n_classes,):
        raise BiosigError(
            f"weights {weights.shape} and bias {bias.shape} do not fit the card's "
            f"{n_features} features and {n_classes} classes"
        )
    init = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "class_axis")]
    nodes, x = [], INPUT_NAME
    if mean is not None:
        init.append(numpy_helper.from_array(np.asarray(mean, np.float32).reshape(-1), "mean"))
        nodes.append(helper.make_node("Sub", [x, "mean"], ["centred"]))
        x = "centred"
    if scale is not None:
        init.append(numpy_helper.from_array(np.asarray(scale, np.float32).reshape(-1), "scale"))
        nodes.append(helper.make_node("Div", [x, "scale"], ["standardised"]))
        x = "standardised"
    nodes += [
        helper.make_node("MatMul", [x, "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], [LOGITS_NAME]),
        helper.make_node("ReduceLogSumExp", [LOGITS_NAME, "class_axis"], ["evidence"], keepdims=0),
        helper.make_node("Neg", ["evidence"], [OOD_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "biosig_linear",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info(LOGITS_NAME, TensorProto.FLOAT, ["N", n_classes]),
         helper.make_tensor_value_info(OOD_NAME, TensorProto.FLOAT, ["N"])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="biosig")
    model.ir_version = 10  # what onnxruntime >= 1.17 reads; onnx's default may be newer
    onnx.checker.check_model(model)
    return attach_model_card(model, card)
