"""The pipeline: source → preprocessing → windows → features → inference slot → sinks.

Processing order for one chunk (see also ``docs/pipeline.md``):

1. the acquisition thread reads a chunk from the source and queues it with its arrival time;
2. the processing thread takes it, picks the configured channels, replaces non-finite samples
   (counted), filters and smooths it with carried filter state (:class:`~biosig.dsp.Preprocessor`);
3. every window completed by this chunk is found (ring buffer of per-hop block sums);
4. its features are formed from those sums in one vectorised call, and the raw samples of the
   same windows are checked for clipped and flat channels (:mod:`biosig.dsp.quality`; EMG only);
5. the classifier (if any) turns features into posteriors, unless the windows are stale; one
   with ``infer`` (an :class:`~biosig.inference.OnnxModel`) also gives OOD scores and flags,
   rejections and smoothed decisions;
6. the result batch goes to every sink.

The same :class:`StreamProcessor` runs offline on a whole recording in one call
(:func:`process_recording`), so live and offline results are identical.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from biosig._checks import BiosigError, check_positive
from biosig.config import PipelineConfig
from biosig.dsp import FeatureChain, FeatureExtractor, Preprocessor, WindowFeatures
from biosig.dsp.quality import (
    QUALITY_CLIPPED,
    QUALITY_FLAT,
    QUALITY_NONFINITE,
    WindowQuality,
    rate_ratio,
)
from biosig.io.recording import Stream
from biosig.stream.results import WindowResults

logger = logging.getLogger(__name__)


def select_channels(available, wanted) -> list[int]:
    """Indices of the ``wanted`` channel labels among ``available`` (all if ``wanted`` is None)."""
    available = list(available)
    if wanted is None:
        return list(range(len(available)))
    missing = [label for label in wanted if label not in available]
    if missing:
        raise BiosigError(
            f"the stream has no channel(s) {missing}; it has {available}"
        )
    return [available.index(label) for label in wanted]


class StreamProcessor:
    """Synchronous core of the pipeline: chunk in, window results out, state carried.

    Parameters
    ----------
    config : PipelineConfig
        Preprocessing, window and feature settings.
    srate : float
        Sampling rate of the incoming samples in Hz.
    channel_labels : list of str
        Labels of the incoming channels (the config may pick a subset).
    classifier : object or None
        Anything with ``predict_proba(X) -> (n, n_classes)`` and ``classes_``; fills the
        inference slot. If it also has ``infer(X)`` (returning posteriors, ood_score,
        ood_flag, rejected and predicted, as :class:`biosig.inference.Inference`), that is used
        instead and the results carry the OOD and rejection columns. A classifier with
        ``check_stream(srate, channel_labels)`` is asked to accept the stream first, and one
        with ``feature_names`` must name exactly the features this pipeline computes.
    channel_format : str or None
        The stream's value format (``"int8"`` ...). An integer format's rails are where the
        quality check counts clipped samples, unless ``config.quality.rails`` is set.

    Attributes
    ----------
    quality : WindowQuality or None
        The per-window clipped/flat check (None for the CTG chain, or with both checks off).
    """

    def __init__(self, config: PipelineConfig, srate: float, channel_labels, classifier=None,
                 *, channel_format: str | None = None):
        self.config = config
        self.srate = check_positive(srate, "sampling rate")
        if config.srate is not None and abs(self.srate - config.srate) > 1e-6 * config.srate:
            raise BiosigError(
                f"the stream is sampled at {self.srate:g} Hz but the pipeline is configured "
                f"for {config.srate:g} Hz"
            )
        if hasattr(classifier, "check_stream"):
            classifier.check_stream(self.srate, list(channel_labels))
        self.n_source_channels = len(channel_labels)
        self._source_labels = list(channel_labels)
        self._channel_format = channel_format
        self.channel_index = select_channels(channel_labels, config.channels)
        self.channel_labels = [list(channel_labels)[i] for i in self.channel_index]
        n_channels = len(self.channel_index)
        self.quality = None
        self._reports_quality = not config.features.is_ctg  # the CTG chain has its own rules
        if config.features.is_ctg:
            # CTG FIGO features: their own streaming chain (loss, artefacts, events), same
            # FeatureBatch out; it keeps events and baseline for displays (chain.snapshot()).
            from biosig.ctg import CTGFeatureChain

            self.chain = CTGFeatureChain(config.ctg, self.srate, self.channel_labels,
                                         config.features.names, config.window.length_s,
                                         config.window.hop_s)
        else:
            self.preprocessor = Preprocessor(config.preprocess, self.srate, n_channels)
            self.extractor = FeatureExtractor(
                config.features.names,
                channel_labels=self.channel_labels,
                zc_threshold=config.features.zc_threshold,
                ssc_threshold=config.features.ssc_threshold,
            )
            # Features straight from per-hop block sums: no window is materialised on this path.
            self.chain = FeatureChain(
                self.preprocessor,
                WindowFeatures(self.extractor, self.preprocessor.fs_out, config.window.length_s,
                               config.window.hop_s),
            )
            self.quality = _quality_check(config, self.srate, n_channels, channel_format)
        self.classifier = classifier
        self.class_names = [str(c) for c in getattr(classifier, "classes_", [])]
        self._infers = callable(getattr(classifier, "infer", None))
        _check_classifier_features(classifier, self.feature_names)
        if callable(getattr(classifier, "reset", None)):
            classifier.reset()  # a new stream: no decision history from another one

    @property
    def feature_names(self) -> list[str]:
        return self.chain.feature_names

    @property
    def n_nonfinite(self) -> int:
        """Non-finite input samples seen so far (all channels)."""
        return int(np.sum(self.chain.n_nonfinite))

    def warm_up(self) -> None:
        """Compile the DSP kernels now, not on the stream's first window.

        The envelope, window features and quality check are compiled loops (numba):
        compiled on first use, ~10 s once per installation, then loaded from the disk cache in
        a fraction of a second. A live pipeline calls this before it starts, so that time is
        not a stall at the first window. Runs on a throwaway copy: this processor's state is
        untouched.
        """
        ghost = StreamProcessor(self.config, self.srate, self._source_labels,
                                channel_format=self._channel_format)
        window = self.config.window.length_s + self.config.window.hop_s
        n = max(8, int(np.ceil(4 * window * self.srate)))
        data = np.zeros((n, self.n_source_channels))
        timestamps = np.arange(n) / self.srate
        # Short pushes (live: a window at a time), then a long one (many windows at once).
        for start in range(0, n // 2, 3):
            ghost.process(data[start : start + 3], timestamps[start : start + 3])
        ghost.process(data[n // 2 :], timestamps[n // 2 :])

    def reset(self) -> None:
        """Forget all carried state (filters, partial windows, decision smoothing)."""
        self.chain.reset()
        if self.quality is not None:
            self.quality.reset()
        if callable(getattr(self.classifier, "reset", None)):
            self.classifier.reset()

    def process(self, data, timestamps, *, classify: bool = True) -> WindowResults:
        """Process one chunk and return the windows it completed.

        Parameters
        ----------
        data : ndarray, shape (n_samples, n_source_channels)
            Samples in the stream's units.
        timestamps : ndarray, shape (n_samples,)
            Sample times in seconds.
        classify : bool
            If False, leave the posteriors of these windows NaN (stale windows).
        """
        # C order: the compiled DSP loops run along rows (a channel selection of a recording
        # is often a strided view).
        data = np.ascontiguousarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_source_channels:
            raise BiosigError(
                f"the stream announced {self.n_source_channels} channels but a chunk has shape "
                f"{data.shape}"
            )
        if len(self.channel_index) != data.shape[1]:
            data = data[:, self.channel_index]
        # The quality check reads the raw samples, before the chain repairs and filters them.
        checked = self.quality.push(data) if self.quality is not None else None
        batch = self.chain.push(data, np.asarray(timestamps, dtype=np.float64))
        features = batch.features
        results = WindowResults(
            t_end=batch.t_end,
            features=features,
            flagged=batch.flags,
            feature_names=self.feature_names,
            class_names=self.class_names,
        )
        if self._reports_quality:
            self._add_quality(results, checked)
        if self.classifier is not None:
            self._classify(results, features, classify)
        return results

    def _add_quality(self, results: WindowResults, checked) -> None:
        """Fill the quality columns of ``results`` and flag clipped and flat windows."""
        n = len(results)
        results.channel_labels = self.channel_labels
        if checked is None:  # both checks off
            clipped = flat = np.zeros((n, len(self.channel_labels)), dtype=bool)
        else:
            if checked.n_windows != n:  # both cut the same windows; a mismatch is a bug
                raise RuntimeError(
                    f"quality check found {checked.n_windows} windows, the features {n}"
                )
            clipped, flat = checked.clipped, checked.flat
        results.clipped, results.flat = clipped, flat
        if not n:  # most live chunks: nothing to allocate
            results.quality = _NO_QUALITY
            return
        quality = np.multiply(results.flagged, QUALITY_NONFINITE, dtype=np.uint8)
        if clipped.any():
            quality[clipped.any(axis=1)] |= QUALITY_CLIPPED
        if flat.any():
            quality[flat.any(axis=1)] |= QUALITY_FLAT
        results.quality = quality
        results.flagged = quality != 0

    def _classify(self, results: WindowResults, features, classify: bool) -> None:
        """Fill the inference slot of ``results`` (NaN / no decision where skipped)."""
        n = len(results)
        results.posteriors = np.full((n, len(self.class_names)), np.nan)
        if self._infers:
            results.ood_score = np.full(n, np.nan)
            results.ood_flag = np.zeros(n, dtype=bool)
            results.rejected = np.zeros(n, dtype=bool)
            results.decision = np.full(n, -1, dtype=np.int64)
        if not n:
            return
        if not classify:
            results.skipped[:] = True
            return
        for name, values in self._inference(features).items():
            getattr(results, name)[...] = values

    def classify(self, parts) -> None:
        """Classify, in place, windows that :meth:`process` returned with ``classify=False``.

        For an offline caller that computes many chunks' windows first and then classifies
        them together (the features and the network each keep the CPU caches to themselves).

        Parameters
        ----------
        parts : list of WindowResults
            Consecutive batches of this stream, in stream order (decision smoothing carries on
            from the previous windows); classified in one call of the classifier.
        """
        parts = [part for part in parts if len(part)]
        if self.classifier is None or not parts:
            return
        features = parts[0].features if len(parts) == 1 else np.concatenate(
            [part.features for part in parts])
        columns = self._inference(features)
        start = 0
        for part in parts:
            stop = start + len(part)
            for name, values in columns.items():
                getattr(part, name)[...] = values[start:stop]
            part.skipped[:] = False
            start = stop

    def _inference(self, features) -> dict:
        """The classifier's output columns for ``features``, by :class:`WindowResults` name."""
        if not self._infers:
            return {"posteriors": self.classifier.predict_proba(features)}
        inference = self.classifier.infer(features)
        return {"posteriors": inference.posteriors, "ood_score": inference.ood_score,
                "ood_flag": inference.ood_flag, "rejected": inference.rejected,
                "decision": inference.predicted}


#: The quality bits of a batch without windows (shared, read-only).
_NO_QUALITY = np.zeros(0, dtype=np.uint8)
_NO_QUALITY.setflags(write=False)


def _quality_check(config: PipelineConfig, srate: float, n_channels: int,
                   channel_format) -> WindowQuality | None:
    """The clipped/flat check for the EMG chain's windows, or None when both checks are off."""
    quality = config.quality
    if not (quality.flat or quality.clipping):
        return None
    up, down = rate_ratio(srate, config.preprocess.resample_hz, config.preprocess.decimate)
    return WindowQuality(quality, srate, n_channels, config.window.length_s, config.window.hop_s,
                         channel_format=channel_format, up=up, down=down)


def _check_classifier_features(classifier, feature_names) -> None:
    """Refuse a classifier trained on other features than the pipeline computes."""
    expected = getattr(classifier, "feature_names", None)
    if expected is None or list(expected) == list(feature_names):
        return
    expected, actual = list(expected), list(feature_names)
    absent = [f for f in expected if f not in actual]
    if absent:
        detail = f"the pipeline does not compute {absent[:6]}{' ...' if len(absent) > 6 else ''}"
    elif len(expected) != len(actual):
        detail = (f"the pipeline computes {len(actual)} features, the classifier takes "
                  f"{len(expected)}")
    else:
        detail = "the pipeline computes them in another order"
    raise BiosigError(
        f"the classifier was trained on other features than this pipeline computes: {detail}; "
        "use the model's own pipeline settings"
    )


def process_recording(stream: Stream, config: PipelineConfig | None = None, classifier=None) -> WindowResults:
    """Run the pipeline on a whole recorded stream in one call (the offline path).

    Gives the same windows, features and posteriors as the live path fed the same samples in
    any chunking.
    """
    config = config or _default_config(stream.srate, stream.type, classifier)
    processor = StreamProcessor(config, stream.srate, stream.channel_labels, classifier,
                                channel_format=stream.channel_format)
    return processor.process(stream.data, stream.timestamps)


def _default_config(srate: float, stream_type, classifier) -> PipelineConfig:
    """A model's own pipeline settings if it has them, else the preset for the stream."""
    if callable(getattr(classifier, "pipeline_config", None)):
        return classifier.pipeline_config()
    return PipelineConfig.for_rate(srate, modality=stream_type or "EMG")


@dataclass
class PipelineStats:
    """Counters of a running pipeline; read them from any thread.

    ``windows_flagged`` counts windows flagged for any reason; ``windows_clipped`` and
    ``windows_flat`` those with a clipped / flat channel (:mod:`biosig.dsp.quality`).
    """

    chunks_in: int = 0
    samples_in: int = 0
    chunks_dropped: int = 0
    samples_dropped: int = 0
    windows: int = 0
    windows_skipped: int = 0
    windows_flagged: int = 0
    windows_clipped: int = 0
    windows_flat: int = 0
    windows_ood: int = 0
    windows_rejected: int = 0
    nonfinite_samples: int = 0
    sink_errors: int = 0
    latencies_s: deque = field(default_factory=lambda: deque(maxlen=2000))
    error: str | None = None

    def latency_percentiles(self, q=(50, 99)) -> tuple[float, ...]:
        """Processing latency percentiles in seconds over the last 2000 windows."""
        if not self.latencies_s:
            return tuple(float("nan") for _ in q)
        return tuple(float(v) for v in np.percentile(np.fromiter(self.latencies_s, float), q))


class Pipeline:
    """A source processed on two threads (acquisition, processing), with results sent to sinks.

    Parameters
    ----------
    source : RecordingSource or LSLSource
        Where the samples come from.
    config : PipelineConfig or None
        Processing settings; None: the classifier's ``pipeline_config()`` if it has one (an
        :class:`~biosig.inference.OnnxModel`), else the default for the source's rate.
    classifier : object or None
        The inference slot (``predict_proba`` and ``classes_``; see :class:`StreamProcessor`).
    sinks : sequence of callables
        Each is called with every :class:`WindowResults` batch, on the processing thread.
    max_queue_chunks : int
        Bound of the chunk queue between the threads. A live source whose queue is full drops
        the chunk (counted) rather than block acquisition; a recording read as fast as possible
        waits instead, so it loses nothing.
    max_latency_s : float
        A live chunk that waited longer than this is still filtered and windowed (filter state
        must stay continuous) but its windows are not classified: they are stale (counted).

    Attributes
    ----------
    chunk_hooks : list of callables
        Each is called with every raw chunk ``(data, timestamps)`` on the processing thread,
        after that chunk's windows went to the sinks (so a display buffer fed here adds nothing
        to their latency). A hook that raises is logged and counted like a sink.
    """

    def __init__(self, source, config=None, *, classifier=None, sinks=(), max_queue_chunks=1024,
                 max_latency_s=0.5):
        self.source = source
        self.config = config
        self.classifier = classifier
        self.sinks = list(sinks)
        self.max_queue_chunks = max_queue_chunks
        self.max_latency_s = max_latency_s
        self.stats = PipelineStats()
        self.processor: StreamProcessor | None = None
        self._threads: list[threading.Thread] = []
        self.chunk_hooks: list = []

    def start(self) -> "Pipeline":
        """Open the source, build the processor and start both threads."""
        self.source.open()
        if self.config is None:
            if callable(getattr(self.classifier, "pipeline_config", None)):
                self.config = self.classifier.pipeline_config()
            else:
                # The preset of the source's content type (a CTG replay gets the CTG chain).
                source_stream = getattr(self.source, "stream", None) or getattr(self.source, "inlet", None)
                modality = str(getattr(source_stream, "type", None) or "EMG")
                self.config = PipelineConfig.for_rate(
                    self.source.srate, modality if modality.lower() == "ctg" else "EMG")
        self.processor = StreamProcessor(
            self.config, self.source.srate, self.source.channel_labels, self.classifier,
            channel_format=_source_channel_format(self.source),
        )
        self.processor.warm_up()
        self._queue: queue.Queue = queue.Queue(maxsize=self.max_queue_chunks)
        self._stop = threading.Event()
        self._source_done = threading.Event()
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._acquire, name="biosig-acquisition", daemon=True),
            threading.Thread(target=self._process, name="biosig-processing", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info("pipeline started on %r", self.source)
        return self

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source is fully processed (or ``timeout`` s); True if done."""
        return self._done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads and close the source; queued chunks are discarded."""
        if not self._threads:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.source.close()
        self._threads = []
        logger.info("pipeline stopped: %s", self.stats)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- threads -------------------------------------------------------------------------------
    def _acquire(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.source.read(timeout=0.05)
                if chunk is None:
                    if self.source.exhausted:
                        break
                    continue
                data, timestamps = chunk
                if data.shape[0] == 0:
                    continue
                self.stats.chunks_in += 1
                self.stats.samples_in += data.shape[0]
                self._enqueue((data, timestamps, time.perf_counter()))
        except Exception as err:  # noqa: BLE001 - a dead source must not hang the pipeline
            logger.exception("acquisition failed")
            self.stats.error = f"acquisition: {err}"
        finally:
            self._source_done.set()

    def _enqueue(self, item) -> None:
        if not self.source.live:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # Acquisition never waits for processing: losing a chunk is counted and logged.
            self.stats.chunks_dropped += 1
            self.stats.samples_dropped += item[0].shape[0]
            logger.warning("processing is behind: dropped a chunk of %d samples", item[0].shape[0])

    def _process(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    data, timestamps, arrived = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if self._source_done.is_set() and self._queue.empty():
                        break
                    continue
                self._process_chunk(data, timestamps, arrived)
                for hook in self.chunk_hooks:
                    try:
                        hook(data, timestamps)
                    except Exception:  # noqa: BLE001 - a display must not stop processing
                        self.stats.sink_errors += 1
                        logger.exception("chunk hook %r failed", hook)
        except Exception as err:  # noqa: BLE001 - report, then let wait() return
            logger.exception("processing failed")
            self.stats.error = f"processing: {err}"
        finally:
            self._done.set()

    def _process_chunk(self, data, timestamps, arrived) -> None:
        stale = self.source.live and (time.perf_counter() - arrived) > self.max_latency_s
        before = self.processor.n_nonfinite
        results = self.processor.process(data, timestamps, classify=not stale)
        self.stats.nonfinite_samples += self.processor.n_nonfinite - before
        if not len(results):
            return
        results.latency_s[:] = time.perf_counter() - arrived
        self.stats.windows += len(results)
        self.stats.windows_flagged += int(results.flagged.sum())
        if results.quality is not None:
            self.stats.windows_clipped += int(np.count_nonzero(results.quality & QUALITY_CLIPPED))
            self.stats.windows_flat += int(np.count_nonzero(results.quality & QUALITY_FLAT))
        self.stats.windows_skipped += int(results.skipped.sum())
        if results.has_ood:
            self.stats.windows_ood += int(results.ood_flag.sum())
            self.stats.windows_rejected += int(results.rejected.sum())
        self.stats.latencies_s.extend(results.latency_s.tolist())
        for sink in self.sinks:
            try:
                sink(results)
            except Exception:  # noqa: BLE001 - one bad sink must not stop the others
                self.stats.sink_errors += 1
                logger.exception("sink %r failed", sink)

    def __repr__(self) -> str:
        state = "ON" if self.running else "OFF"
        return f"<Pipeline | {state} | {self.source!r} | {self.stats.windows} windows>"


def _source_channel_format(source) -> str | None:
    """The value format of a source's stream (a recording's or an inlet's), if it has one."""
    described = getattr(source, "stream", None) or getattr(source, "inlet", None)
    return getattr(described, "channel_format", None)


class CollectSink:
    """A sink that keeps every batch in memory (tests, small offline runs)."""

    def __init__(self):
        self._parts: list[WindowResults] = []
        self._lock = threading.Lock()

    def __call__(self, results: WindowResults) -> None:
        with self._lock:
            self._parts.append(results)

    def results(self) -> WindowResults:
        with self._lock:
            return WindowResults.concat(list(self._parts))
