"""Cardiotocography: streaming FHR/UC cleaning, FIGO features, events (Qt-free, torch-free).

Stages (details and sources in ``docs/ctg.md``):

- :mod:`biosig.ctg.preprocess`: :class:`CTGPreprocessor`, signal loss, beat-to-beat artefacts
  and short-gap interpolation, chunk by chunk with carried state.
- :mod:`biosig.ctg.features`: :func:`analyse_window`, baseline, STV/LTV, accelerations,
  decelerations (early/late/variable/prolonged), tachy-/bradycardia, contractions, loss.
- :mod:`biosig.ctg.chain`: :class:`CTGFeatureChain`, samples in, window features out, used by
  :class:`biosig.stream.pipeline.StreamProcessor` whenever the configured features are CTG
  ones (:meth:`biosig.config.PipelineConfig.ctg_default`).

For the GUI and reports: a running pipeline's ``processor.chain`` is a
:class:`CTGFeatureChain` for a CTG configuration; ``chain.snapshot()`` gives the events
``(t_start, t_end, kind, depth, t_peak)``, the baseline trace and the latest features.
Offline, :func:`analyse_stream` returns the same for a whole recorded stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from biosig._lazy import lazy_exports

if TYPE_CHECKING:
    from biosig.ctg.chain import CTGSnapshot
    from biosig.ctg.preprocess import CleanChunk

# Where each public name lives; loaded on first use, so that reading a configuration (which
# needs only biosig.ctg.config) does not load the streaming chain and what it imports.
_EXPORTS = {
    "CTGFeatureChain": "chain", "CTGSnapshot": "chain",
    "CTG_FEATURE_NAMES": "config", "UC_FEATURES": "config", "CTGConfig": "config",
    "check_ctg_feature_names": "config", "is_ctg_feature_set": "config",
    "EVENT_KINDS": "features", "CTGEvent": "features", "WindowAnalysis": "features",
    "analyse_window": "features",
    "ARTEFACT": "preprocess", "LOSS": "preprocess", "MATERNAL": "preprocess",
    "VALID": "preprocess", "CleanChunk": "preprocess", "CTGPreprocessor": "preprocess",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted([*_EXPORTS, "CTGAnalysis", "analyse_stream"])


@dataclass
class CTGAnalysis:
    """A whole recorded CTG stream analysed offline (:func:`analyse_stream`).

    Attributes
    ----------
    results : WindowResults
        Per-window features (and posteriors with a classifier), as the pipeline gives them.
    snapshot : CTGSnapshot
        Events and baseline trace of the whole stream.
    clean : CleanChunk
        The cleaned FHR (bpm, NaN where missing), sample codes, tocogram and times.
    """

    results: object
    snapshot: CTGSnapshot
    clean: CleanChunk


def analyse_stream(stream, config=None, classifier=None) -> CTGAnalysis:
    """Run the CTG pipeline on a whole recorded stream and keep its events and baseline.

    Parameters
    ----------
    stream : biosig.io.Stream
        A CTG stream with an ``FHR`` channel (bpm) and usually ``UC``.
    config : PipelineConfig or None
        Default: the classifier's pipeline settings, else
        :meth:`~biosig.config.PipelineConfig.ctg_default`.
    classifier : OnnxModel or None
        Fills the posteriors, as in :func:`biosig.stream.pipeline.process_recording`.

    Returns
    -------
    CTGAnalysis
    """
    from biosig.config import PipelineConfig
    from biosig.ctg.chain import CTGFeatureChain
    from biosig.ctg.preprocess import CTGPreprocessor
    from biosig.stream.pipeline import StreamProcessor

    if config is None:
        if callable(getattr(classifier, "pipeline_config", None)):
            config = classifier.pipeline_config()
        else:
            config = PipelineConfig.ctg_default(stream.srate)
    processor = StreamProcessor(config, stream.srate, stream.channel_labels, classifier)
    chain = processor.chain
    if not isinstance(chain, CTGFeatureChain):
        from biosig._checks import BiosigError

        raise BiosigError("the configuration's features are not CTG features")
    results = processor.process(stream.data, stream.timestamps)
    clean_pre = CTGPreprocessor(chain.config, chain.fs)
    uc = None if chain.uc_index is None else stream.data[:, processor.channel_index][:, chain.uc_index]
    fhr = stream.data[:, processor.channel_index][:, chain.fhr_index]
    clean = clean_pre.process(fhr, uc, stream.timestamps)
    return CTGAnalysis(results=results, snapshot=chain.snapshot(), clean=clean)
