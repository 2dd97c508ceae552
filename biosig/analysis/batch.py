"""One recording through the live path's objects, offline: windows, posteriors, quality, summary.

:func:`analyze_recording` is the unit of work of ``biosig analyze``. It is a plain top-level
function of picklable arguments, so the same call runs in this process, in a local process pool
or on a Dask worker, and returns a :class:`RecordingResult` (the per-window table and the
summary) for the caller to write.

It runs the recording through :class:`~biosig.stream.pipeline.StreamProcessor`, the object the
live :class:`~biosig.stream.pipeline.Pipeline` runs on its processing thread, with the model's
own pipeline settings (:meth:`~biosig.inference.OnnxModel.pipeline_config`), so an EMG model
and a CTG model need nothing else. The samples go in chunks of whole hops, at most
``batch_windows`` of them and about as many samples as the feature chain takes at once
(:data:`~biosig.dsp.chain.PIECE_SAMPLES`): longer chunks only add copies of their windows.
The windows of several chunks (:data:`CLASSIFY_WINDOWS`) are then classified together, in
onnxruntime calls of :func:`onnx_batch` windows (the live path gives it one or a few windows at
a time), and memory stays bounded on long recordings. The filters carry their state across
chunks, so the results are those of the live path (``tests/test_analyze.py`` compares them).
The model's session uses :func:`~biosig.inference.choose_providers`: CUDA where
onnxruntime-gpu and a GPU are present (then a whole block per call), else the CPU.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_int

logger = logging.getLogger(__name__)

#: Column names of the per-window table that are not features.
TIME_COLUMN = "t_end"
LABEL_COLUMN = "label"
DECISION_COLUMN = "decision"


def posterior_column(class_name: str) -> str:
    """Name of the posterior column of a class, as in the pipeline's CSV output."""
    return f"p({class_name})"


@dataclass
class ModelSettings:
    """How the model decides, passed to every worker (:class:`~biosig.inference.OnnxModel`).

    Parameters
    ----------
    reject_threshold : float or None
        No decision for a window whose top posterior is below this (in (0, 1]).
    smoothing : int or None
        Majority vote over this many consecutive decisions.
    threads : int or None
        onnxruntime intra-op threads per worker; None: onnxruntime's default.
    providers : list of str or None
        onnxruntime execution providers; None: CUDA where present, else CPU.
    batch_windows : int
        At most this many windows per chunk of samples (see :func:`chunk_samples`).
    torch_device : str or None
        Batches run by torch on this device (:meth:`~biosig.inference.OnnxModel.use_torch`):
        None (default) never; ``"auto"`` on a CUDA GPU that torch sees when onnxruntime has no
        CUDA provider; a device name (``"cuda:1"``, ``"cpu"``) always. Not the default
        because each worker first pays about 7.6 s (importing torch, the CUDA context, the
        graph's first call), which blocks of 4096 windows on an H200 win back only after
        about 16 million windows per worker (``benchmarks/gpu_batch.py``).
    """

    reject_threshold: float | None = None
    smoothing: int | None = None
    threads: int | None = None
    providers: list[str] | None = None
    batch_windows: int = 4096
    torch_device: str | None = None

    def model_kwargs(self) -> dict:
        return {"reject_threshold": self.reject_threshold, "smoothing": self.smoothing,
                "threads": self.threads, "providers": self.providers}

    def fingerprint(self) -> dict:
        """What changes the results (threads, providers and batching do not, beyond rounding)."""
        return {"reject_threshold": self.reject_threshold, "smoothing": self.smoothing}


@dataclass
class RecordingTask:
    """One recording to analyse: where it is, its output name, the model and its settings."""

    name: str
    path: str
    model_path: str
    settings: ModelSettings = field(default_factory=ModelSettings)


@dataclass
class RecordingResult:
    """What :func:`analyze_recording` gives back.

    Attributes
    ----------
    name : str
        Output name of the recording.
    table : pyarrow.Table
        One row per window (:func:`results_table`).
    summary : dict
        :func:`biosig.analysis.summary.recording_summary` of it.
    """

    name: str
    table: object
    summary: dict


@dataclass
class RecordingFailure:
    """A recording that could not be analysed, and why (one line)."""

    name: str
    path: str
    error: str

    def describe(self) -> str:
        """One line naming the file (once) and the error."""
        return self.error if self.path in self.error else f"{self.path}: {self.error}"


# Models already opened in this process (a pool worker or Dask worker analyses many recordings).
_MODELS: dict = {}

#: Windows per onnxruntime call on the CPU. Small batches keep the graph's intermediate arrays
#: in the CPU caches: on one thread the bundled SDGM network runs ~1.5x faster in batches of 256
#: than of 4096 (benchmarks/offline_throughput.py); fewer calls would save little more.
ONNX_BATCH = 256

#: Windows computed before they are classified together (:func:`run_windows`): ~1.5 MB of
#: features for 48 features per window.
CLASSIFY_WINDOWS = 4096


def onnx_batch(engine: str) -> int:
    """Windows per inference call for a model whose :attr:`~biosig.inference.OnnxModel.engine`
    is ``engine``.

    On a GPU (onnxruntime's CUDA provider, or torch) each call costs a transfer and kernel
    launches whatever its size, so a whole block of :data:`CLASSIFY_WINDOWS` goes in one call;
    on onnxruntime's CPU provider, :data:`ONNX_BATCH`.
    """
    from biosig.inference import CUDA_PROVIDER

    gpu = engine == CUDA_PROVIDER or engine.startswith("torch ")
    return CLASSIFY_WINDOWS if gpu else ONNX_BATCH


def torch_device_for(setting: str | None, onnx_provider: str) -> str | None:
    """The torch device to run batches on (:attr:`ModelSettings.torch_device`), or None.

    ``"auto"`` gives ``"cuda"`` only when onnxruntime itself has no CUDA provider and torch sees
    a CUDA GPU; torch is imported only where an NVIDIA device node or ``nvidia-smi`` exists.
    """
    from biosig.inference import CUDA_PROVIDER

    if setting is None or setting != "auto":
        return setting
    if onnx_provider == CUDA_PROVIDER:
        return None
    if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
        return None
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else None


def load_model(model_path, settings: ModelSettings):
    """An :class:`~biosig.inference.OnnxModel`, opened once per process and settings."""
    from biosig.inference import OnnxModel

    path = Path(model_path)
    key = (str(path.resolve()), path.stat().st_mtime_ns, repr(settings.model_kwargs()),
           settings.torch_device)
    if key not in _MODELS:
        model = OnnxModel(path, batch_size=ONNX_BATCH, **settings.model_kwargs())
        device = torch_device_for(settings.torch_device, model.providers[0])
        if device is not None:
            model.use_torch(device)
        model.batch_size = onnx_batch(model.engine)
        _MODELS[key] = model
    return _MODELS[key]


def chunk_samples(config, srate: float, batch_windows: int) -> int:
    """Input samples per chunk: whole hops, at most ``batch_windows`` of them.

    Also at most about :data:`~biosig.dsp.chain.PIECE_SAMPLES`, with room for the samples the
    feature chain still holds from the previous chunk (less than a hop), so that each chunk
    goes through the chain in one piece: its windows then need no joining, which for chunks
    of 4096 hops cost more than their inference (``benchmarks/offline_throughput.py``).
    """
    from biosig.dsp.chain import PIECE_SAMPLES

    check_int(batch_windows, "batch_windows", minimum=1)
    hop = max(1, int(round(config.window.hop_s * srate)))
    return hop * min(batch_windows, max(1, PIECE_SAMPLES // hop - 1))


def run_windows(processor, stream, n_chunk: int, progress=None):
    """Push a stream through a :class:`StreamProcessor` in chunks; all windows, concatenated.

    The windows of several chunks are classified together, :data:`CLASSIFY_WINDOWS` at a time
    (:meth:`StreamProcessor.classify`): alternating a chunk's features with its few hundred
    windows' inference would keep evicting each other's data from the CPU caches.

    Parameters
    ----------
    processor : StreamProcessor
    stream : Stream
    n_chunk : int
        Samples per chunk.
    progress : callable or None
        Called with the number of windows each chunk completed.
    """
    from biosig.stream.results import WindowResults

    parts, first_pending = [], 0
    for start in range(0, stream.n_samples, n_chunk):
        stop = min(start + n_chunk, stream.n_samples)
        part = processor.process(stream.data[start:stop], stream.timestamps[start:stop],
                                 classify=False)
        if not len(part):
            continue
        parts.append(part)
        if progress is not None:
            progress(len(part))
        if sum(len(p) for p in parts[first_pending:]) >= CLASSIFY_WINDOWS:
            processor.classify(parts[first_pending:])
            first_pending = len(parts)
    processor.classify(parts[first_pending:])
    return WindowResults.concat(parts, processor.feature_names, processor.class_names)


def window_labels(recording, results, config, srate: float):
    """True label of each window where one label covers all of it, else None (object array).

    Returns None when the recording has no label markers.
    """
    from biosig.datasets import single_label_windows

    markers = recording.labels()
    if markers is None or len(markers) == 0:
        return None
    fs_out = config.preprocess.output_rate(srate)
    window_s = (round(config.window.length_s * fs_out) - 1) / fs_out
    labels, pure = single_label_windows(results.t_end, window_s, markers)
    out = np.asarray(labels, dtype=object)
    out[~pure | (out == "")] = None
    return out


def results_table(results, labels=None):
    """The per-window table: time, flags, label, posteriors, entropy, decision, OOD, features.

    Parameters
    ----------
    results : WindowResults
        With posteriors (a classifier ran).
    labels : ndarray of object or None
        True label per window (None where unknown).

    Returns
    -------
    pyarrow.Table
        Columns ``t_end`` (s, the window's last sample), ``flagged`` (the window held
        non-finite samples, a clipped or a flat channel), ``label`` (string, null where unknown), ``p(<class>)`` per class,
        ``entropy`` (nats), ``decision`` (class name, null where none), ``rejected``,
        ``ood_score``, ``ood`` (above the model's threshold), then one column per feature
        (``<feature>:<channel>``).
    """
    import pyarrow as pa

    n = len(results)
    names = list(results.class_names)
    predicted = results.predicted
    decision = np.asarray([names[i] if i >= 0 else None for i in predicted], dtype=object)
    columns = {
        TIME_COLUMN: pa.array(results.t_end, pa.float64()),
        "flagged": pa.array(results.flagged, pa.bool_()),
        LABEL_COLUMN: pa.array([None] * n if labels is None else list(labels), pa.string()),
    }
    for k, name in enumerate(names):
        columns[posterior_column(name)] = pa.array(results.posteriors[:, k], pa.float64())
    columns["entropy"] = pa.array(results.entropy, pa.float64())
    columns[DECISION_COLUMN] = pa.array(list(decision), pa.string())
    has_ood = results.has_ood
    columns["rejected"] = pa.array(results.rejected if has_ood else np.zeros(n, bool), pa.bool_())
    columns["ood_score"] = pa.array(results.ood_score if has_ood else np.full(n, np.nan),
                                    pa.float64())
    columns["ood"] = pa.array(results.ood_flag if has_ood else np.zeros(n, bool), pa.bool_())
    for k, name in enumerate(results.feature_names):
        columns[name] = pa.array(results.features[:, k], pa.float64())
    return pa.table(columns)


def analyze_recording(task: RecordingTask, progress=None) -> RecordingResult:
    """Analyse one recording with the model: per-window table and summary.

    Parameters
    ----------
    task : RecordingTask
    progress : callable or None
        Called with the number of windows completed by each chunk (in-process runs only).

    Returns
    -------
    RecordingResult

    Raises
    ------
    BiosigError
        If the file cannot be read or does not fit the model (rate, channels).
    """
    from biosig.analysis.quality import signal_quality
    from biosig.analysis.summary import recording_summary
    from biosig.io import read_recording
    from biosig.stream.pipeline import StreamProcessor

    started = time.perf_counter()
    model = load_model(task.model_path, task.settings)
    recording = read_recording(task.path)
    stream = model.check_recording(recording)
    config = model.pipeline_config()
    processor = StreamProcessor(config, stream.srate, stream.channel_labels, model,
                                channel_format=stream.channel_format)
    n_chunk = chunk_samples(config, stream.srate, task.settings.batch_windows)
    results = run_windows(processor, stream, n_chunk, progress)
    if len(results) == 0:
        raise BiosigError(
            f"{stream.duration:.1f} s of signal give no window of {config.window.length_s:g} s"
        )
    labels = window_labels(recording, results, config, stream.srate)
    table = results_table(results, labels)
    quality = signal_quality(stream, processor.channel_labels)
    elapsed = time.perf_counter() - started
    summary = recording_summary(
        task.name, task.path, model, stream, results, labels, quality,
        elapsed_s=elapsed, n_nonfinite=processor.n_nonfinite,
    )
    logger.info("%s: %d windows in %.2f s", task.name, len(results), elapsed)
    return RecordingResult(task.name, table, summary)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, with its type when that is not a BiosigError."""
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(err, BiosigError):
        return message or "error"
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def run_task(task: RecordingTask, progress=None):
    """:func:`analyze_recording`, with any failure turned into a :class:`RecordingFailure`.

    One broken file must not stop the others, wherever it runs (pool, Dask): its error comes
    back as a value, with the traceback logged at debug level where it happened.
    """
    try:
        return analyze_recording(task, progress)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one file is reported, not raised
        logger.debug("%s failed", task.path, exc_info=True)
        return RecordingFailure(task.name, task.path, first_line(err))
