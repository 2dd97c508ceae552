"""The inference graph of a fitted estimator and its export to one ONNX file.

The file's contract (the onnxruntime engine in :mod:`biosig.inference` is built against it):

- input ``features``: float32, shape (N, F), N dynamic — raw feature vectors as the pipeline
  computes them; the standardisation learned in ``fit`` is part of the graph;
- output ``logits``: float32 (N, C) — class log-scores whose softmax is the model's posterior
  (for JSU/SDGM the discriminatively trained class log-joints ``log P(c) p(x|c)``, without the
  terms every class shares, which cancel in the softmax);
- output ``ood_score``: float32 (N,) — higher is further out of distribution: ``-log p(x)``, a
  normalised density, for the density models (JSU, JSU-full, SDGM, JSU-SDGM: their generative
  reading, see :mod:`biosig.nets.sdgm`; LDA: its own Gaussian mixture), the energy
  ``-logsumexp(logits)`` for the MLP. For SDGM behind an MLP trunk the density is of the trunk's
  features, not of ``x``;
- ``metadata_props``: ``biosig.format = "biosig-model/1"`` and ``biosig.model_card`` =
  ``json.dumps(model_card)``.

The graph holds constants and plain ops only (METHODS.md §7): positive parameters are baked,
pruned ARD weights dropped with their φ columns, the quadratic expansion is a gather with
constant indices, asinh is written stably for the legacy (TorchScript) exporter, and everything
stays in the log domain.

Inside, the graph computes in float64 (one Cast after the input, one before each output): the
quadratic terms of standardised EMG features reach 10²–10³, and float32 sums of them lose the
last digits of the class log-scores that the 1e-5 parity with torch needs. The cost is a few
microseconds per window.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from biosig._checks import BiosigError

logger = logging.getLogger(__name__)

FORMAT = "biosig-model/1"
FORMAT_PROP = "biosig.format"
CARD_PROP = "biosig.model_card"
INPUT_NAME = "features"
OUTPUT_NAMES = ("logits", "ood_score")
OPSET = 17


class InferenceGraph(nn.Module):
    """Raw features (N, F) → (logits (N, C), ood_score (N,)), exactly as exported.

    Parameters
    ----------
    mean, scale : array_like, shape (F,)
        Standardisation learned in ``fit``: ``z = (x - mean) / scale``.
    net : nn.Module
        Constant-only network ``z`` → (class log-scores, log-marginal of ``z``).
    density : bool
        True if the log-marginal is a log-density of ``z``: the standardisation's
        log-Jacobian ``-Σ log scale`` is then added, so ``ood_score = -log p(x)``.
    """

    def __init__(self, mean, scale, net: nn.Module, *, density: bool):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float64)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float64)))
        self.net = net
        self.density = bool(density)
        self.ood_offset = float(np.sum(np.log(scale))) if density else 0.0

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (features.to(self.mean.dtype) - self.mean) / self.scale
        logits, log_marginal = self.net(z)
        return logits, self.ood_offset - log_marginal

    def copy_as(self, dtype: torch.dtype) -> "InferenceGraph":
        """An independent copy in ``dtype`` on the CPU, in eval mode."""
        return copy.deepcopy(self).to(device="cpu", dtype=dtype).eval()


class _Float32Interface(nn.Module):
    """float32 in and out around a float64 graph (the exported file's interface)."""

    def __init__(self, graph: InferenceGraph):
        super().__init__()
        self.graph = graph

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, ood = self.graph(features)
        return logits.to(torch.float32), ood.to(torch.float32)


def export_onnx(estimator, path, *, model_card: dict) -> Path:
    """Write a fitted biosig estimator as one self-contained ONNX file.

    Parameters
    ----------
    estimator : fitted estimator from :mod:`biosig.nets`
        Anything with an ``inference_graph()`` method returning an :class:`InferenceGraph`.
    path : str or Path
        Output file (``.onnx``); its folder is created if needed.
    model_card : dict
        JSON-serialisable description of the model, stored verbatim under
        ``metadata_props["biosig.model_card"]``.

    Returns
    -------
    Path
        ``path``.
    """
    import onnx

    if not hasattr(estimator, "inference_graph"):
        raise BiosigError(
            f"cannot export a {type(estimator).__name__}: not a biosig.nets estimator"
        )
    try:
        card_json = json.dumps(model_card)
    except (TypeError, ValueError) as error:
        raise BiosigError(f"the model card is not JSON-serialisable: {error}") from None
    graph = _Float32Interface(estimator.inference_graph().copy_as(torch.float64))
    n_features = int(graph.graph.mean.numel())
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo (which would need
        # onnxscript); it remains supported and gives the plain-op graph we want.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            graph, (torch.zeros(2, n_features),), buffer, dynamo=False,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "N"}, **{name: {0: "N"} for name in OUTPUT_NAMES}},
            opset_version=OPSET, do_constant_folding=True,
        )
    model = onnx.load_model_from_string(buffer.getvalue())
    _set_metadata(model, {FORMAT_PROP: FORMAT, CARD_PROP: card_json})
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    logger.info("exported %s to %s (%d nodes, %.1f kB)", type(estimator).__name__, path,
                len(model.graph.node), path.stat().st_size / 1024)
    return path


def _set_metadata(model, props: dict) -> None:
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
