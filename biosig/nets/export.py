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
last digits of the class log-scores that the 1e-5 parity with torch needs. The one exception is
the exponentials inside a log-sum-exp, ``max + log Σ exp(x - max)``: those terms lie in (0, 1],
so float32 costs ~1e-7 in a log-score, and onnxruntime's float32 Exp is vectorised where its
float64 Exp and ReduceLogSumExp are not (a third of the bundled SDGM network's time).

What is written is not the estimator's own graph but :class:`CompactGraph`, the same function
laid out for onnxruntime where the network is one it knows (the JSU, SDGM and JSU-SDGM
networks; others are exported as they are): the standardisation and the Johnson SU location
and scale are one multiply-add, asinh is ``sign(u) log(|u| + √(u² + 1))`` (its square root
also gives the log-Jacobian, whose logs are taken of products of 4 features' factors:
onnxruntime's float64 log is slow), pruned components and φ columns are left out, and

- where φ holds only linear and squared terms and the density's covariances are diagonal (the
  default JSU), class log-scores and density log-joints are linear in ``[h, h²]`` (or in
  ``[s, s²]`` of ``s = asinh(u)``, with the translation's ``h = γ + δ s`` folded into the
  weights): a product on ``h``, then one on ``h²`` added to it (joining ``[h, h²]`` first for
  one product costs onnxruntime a Concat as slow as a product);
- otherwise the products ``h_a h_b`` are gathered as whole rows of ``hᵀ`` (a Gather along
  axis 1, as the estimator's expansion exports, copies one value at a time: ~20 ns each).

Export checks the compact graph against the estimator's on probe inputs and falls back to the
estimator's graph (with a warning) if they differ. With one onnxruntime thread and batches of
256 windows, the bundled JSU network runs ~3x faster this way (6.2 → 1.9 µs per window on
the shared development VM), the SDGM ~2x (12.8 → 5.5 µs); see docs/analyze.md. The folded
translation, the grouped logs and the float32 log-sum-exps took another ~22 % off the JSU's
time and ~36 % off the SDGM's (docs/benchmarks.md).
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


#: |u| above which asinh's argument is clipped, so that u², and a product of
#: :data:`_JACOBIAN_GROUP` square roots √(1 + u²), cannot overflow. Unreachable from float32
#: inputs unless a feature's scale × λ is below ~1e-37; asinh(1e75) = log(2e75).
_ASINH_CLIP = 1e75

#: Lower bound of the float32 exponents in :func:`_logsumexp` (e^-80 is still a normal float32).
_LOWEST_EXPONENT = -80.0

#: Most features whose √(1 + u²) are multiplied before one log in the log-Jacobian: onnxruntime
#: takes ~5 ns per float64 log, a fifth of the JSU network's time with one log per feature.
_JACOBIAN_GROUP = 4

#: Largest difference between the compact graph and the estimator's graph (float64, probe
#: inputs), relative to 1 + |value|, accepted at export. The compact graph's float32
#: exponentials (:func:`_logsumexp`) differ by up to ~1e-7; everything else by ~1e-12.
_COMPACT_RTOL = 1e-6


class CompactGraph(nn.Module):
    """An :class:`InferenceGraph` of a Johnson SU / SDGM network, laid out for onnxruntime.

    The same function (to float64 rounding): raw features (N, F) → (logits (N, C),
    ood_score (N,)). Built by :meth:`of`; see the module docstring for what changes.

    Parameters
    ----------
    input_scale, input_shift : ndarray, shape (F,)
        ``u = x · input_scale + input_shift``: the standardised features, or with a
        translation its ``(z - ξ) / λ``.
    translation : tuple of ndarray or None
        ``(tailweight, skewness, log_jacobian_constant)``: ``h = γ + δ asinh(u)``, and the
        log-Jacobian ``Σ log(δ / λ) - Σ log √(1 + u²)``.
    trunk : nn.Module or None
        Feature network applied to ``u`` (without a translation).
    head : dict
        Class log-scores from ``h``: ``linear`` (D, K) and ``bias`` (K,), and either
        ``squares`` (D, K) or gathered products ``index_a``, ``index_b`` (Q,), ``weight``
        (K, Q); for a mixture also ``n_classes``, ``n_components``, ``select`` (K, C M) and
        ``component_bias`` (C M,), the log-score being the log-sum-exp over components.
    density : dict or None
        Log-joints of ``h`` per group: ``linear``, ``squares`` (D, G) and ``constant`` (G,)
        for diagonal covariances, else ``whitening`` (D, G D), ``shift`` (G D,) and
        ``log_norm`` (G,). None: the negative energy ``logsumexp(logits)`` instead.
    ood_offset : float
        ``ood_score = ood_offset - log-marginal``.
    """

    def __init__(self, input_scale, input_shift, translation, trunk, head: dict, density,
                 ood_offset: float):
        super().__init__()

        def buffer(name, value):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.float64)))

        buffer("input_scale", input_scale)
        buffer("input_shift", input_shift)
        self.n_features = int(np.asarray(input_scale).shape[0])
        self.translated = translation is not None
        if self.translated:
            tailweight, skewness, jacobian = translation
            self.jacobian_constant = float(jacobian)
        self.trunk = trunk
        self.ood_offset = float(ood_offset)
        self.squares = "squares" in head
        self.mixture = "n_classes" in head
        self.head_outputs = int(np.asarray(head["bias"]).shape[0])
        if self.mixture:
            self.n_classes, self.n_components = int(head["n_classes"]), int(head["n_components"])
            # Component-major columns (all classes' first components, then their second ...):
            # the log-sum-exp over components then reduces whole rows of classes.
            order = np.arange(self.n_classes * self.n_components).reshape(
                self.n_classes, self.n_components).T.reshape(-1)
            select = np.asarray(head["select"])[:, order]
            component_bias = np.asarray(head["component_bias"])[order]
        self.density = density is not None
        self.diagonal_density = self.density and "squares" in density
        if self.squares:  # linear in [h, h²], density columns included where diagonal
            head_linear, head_squares = head["linear"], head["squares"]
            head_bias = np.asarray(head["bias"])
            if self.mixture:  # the selection (a 0/1 copy of the live components) folded in
                head_linear, head_squares = head_linear @ select, head_squares @ select
                head_bias = head_bias @ select + component_bias
                self.head_outputs = select.shape[1]
            matrices = [np.vstack([head_linear, head_squares])]
            bias = [head_bias]
            if self.diagonal_density:
                matrices.append(np.vstack([density["linear"], density["squares"]]))
                bias.append(np.asarray(density["constant"]))
            weight, bias = np.hstack(matrices), np.concatenate(bias)
            if self.translated:  # the products take s = asinh(u) and s²: h = γ + δ s
                weight, bias = _through_translation(weight, bias, tailweight, skewness)
            width = weight.shape[0] // 2  # of h (the trunk's output width, behind a trunk)
            buffer("phi_linear", weight[:width])
            buffer("phi_squares", weight[width:])
            buffer("phi_bias", bias)
        else:  # the translation's γ, δ and the head's bias are used as they are
            if self.mixture:
                buffer("select", select)
                buffer("component_bias", component_bias)
            if self.translated:
                buffer("tailweight", tailweight)
                buffer("skewness", skewness)
            buffer("head_bias", head["bias"])
            buffer("linear", head["linear"])
            self.register_buffer("index_a", torch.as_tensor(np.asarray(head["index_a"]),
                                                            dtype=torch.long))
            self.register_buffer("index_b", torch.as_tensor(np.asarray(head["index_b"]),
                                                            dtype=torch.long))
            buffer("pair_weight", head["weight"])
            if self.diagonal_density:
                buffer("density_weight", np.vstack([density["linear"], density["squares"]]))
                buffer("density_constant", density["constant"])
        if self.density and not self.diagonal_density:
            buffer("whitening", density["whitening"])
            buffer("whitening_shift", density["shift"])
            buffer("log_norm", density["log_norm"])
            self.n_groups = int(np.asarray(density["log_norm"]).shape[0])

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def of(cls, graph: InferenceGraph) -> "CompactGraph | None":
        """The compact form of ``graph`` (float64), or None where its network is not one of
        the Johnson SU / SDGM networks this class knows."""
        from biosig.nets.jsu import JohnsonSUTranslation  # noqa: PLC0415 - imports sdgm
        from biosig.nets.sdgm import (  # noqa: PLC0415
            FrozenNet,
            FrozenSDGMHead,
            GaussianMixtureDensity,
            QuadraticExpansion,
        )

        net = graph.net
        if not isinstance(net, FrozenNet):
            return None
        translation, trunk = net.translation, net.trunk
        if translation is not None and (trunk is not None
                                        or not isinstance(translation, JohnsonSUTranslation)):
            return None
        if net.density is not None and not isinstance(net.density, GaussianMixtureDensity):
            return None
        head = net.head
        if isinstance(head, FrozenSDGMHead):
            expansion, weight, bias = head.expansion, head.weight, head.bias
            mixture = (head.n_classes, head.n_components)
        elif (isinstance(head, nn.Sequential) and len(head) == 2
              and isinstance(head[0], QuadraticExpansion) and isinstance(head[1], nn.Linear)):
            expansion, weight, bias = head[0], head[1].weight, head[1].bias
            mixture = None
        else:
            return None

        def array(tensor):
            return tensor.detach().cpu().double().numpy()

        mean, scale = array(graph.mean), array(graph.scale)
        spec = _head_spec(expansion.index_a.cpu().numpy(), expansion.index_b.cpu().numpy(),
                          array(weight), array(bias), mixture, int(expansion.n_features))
        if translation is None:
            input_scale, input_shift, jsu = 1.0 / scale, -mean / scale, None
        else:
            location, lam = array(translation.location), array(translation.scale)
            tailweight = array(translation.tailweight)
            input_scale = 1.0 / (scale * lam)
            input_shift = -(mean + location * scale) * input_scale
            jsu = (tailweight, array(translation.skewness), np.sum(np.log(tailweight / lam)))
        density = None if net.density is None else _density_spec(net.density, array)
        return cls(input_scale, input_shift, jsu, trunk, spec, density, graph.ood_offset)

    # -- the function -------------------------------------------------------------------------
    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = features.to(self.input_scale.dtype) * self.input_scale + self.input_shift
        if self.translated:
            magnitude = torch.clamp(torch.abs(u), max=_ASINH_CLIP)
            root = torch.sqrt(magnitude * magnitude + 1.0)
            h = torch.sign(u) * torch.log(magnitude + root)  # asinh(u)
            if not self.squares:  # else γ and δ are in phi_linear, phi_squares
                h = self.skewness + self.tailweight * h
        else:
            h = u if self.trunk is None else self.trunk(u)
        density = None
        if self.squares:
            scores = torch.addmm(torch.addmm(self.phi_bias, h, self.phi_linear), h * h,
                                 self.phi_squares)
            head = scores[:, : self.head_outputs]
            if self.diagonal_density:
                density = scores[:, self.head_outputs :]
        else:
            rows = h.t()
            products = torch.index_select(rows, 0, self.index_a) * torch.index_select(
                rows, 0, self.index_b)
            head = torch.addmm(self.head_bias, h, self.linear) + (self.pair_weight @ products).t()
            if self.diagonal_density:
                density = torch.addmm(self.density_constant, torch.cat([h, h * h], dim=1),
                                      self.density_weight)
        if self.mixture:
            components = head if self.squares else head @ self.select + self.component_bias
            logits = _logsumexp_over_parts(components, self.n_components, self.n_classes)
        else:
            logits = head
        if not self.density:
            return logits, self.ood_offset - _logsumexp(logits)
        if not self.diagonal_density:
            white = torch.addmm(self.whitening_shift, h, self.whitening).reshape(
                -1, self.n_groups, self.whitening.shape[0])
            density = self.log_norm - 0.5 * (white * white).sum(dim=-1)
        log_marginal = _logsumexp(density)
        if self.translated:
            jacobian = self.jacobian_constant - _sum_of_logs(root, self.n_features)
            log_marginal = log_marginal + jacobian
        return logits, self.ood_offset - log_marginal


def _logsumexp(x: torch.Tensor) -> torch.Tensor:
    """``logsumexp(x, dim=-1)`` of finite float64 ``x``, with the exponentials in float32.

    ``max + log(Σ exp(x - max))``: the terms are in (0, 1] with the largest exactly 1, so
    float32 gives the correction ``log(Σ ...)`` to ~1e-7 per term summed (absolute, in a
    log-score), about the rounding of the file's float32 outputs. Why: onnxruntime's float32
    Exp is vectorised (~0.1 ns per value), its float64 Exp and ReduceLogSumExp are not (~6 and
    ~17 ns); this was a quarter of the SDGM network's time.
    """
    top = torch.amax(x, dim=-1, keepdim=True)
    # Terms below e^-80 (< 2e-35, nothing next to the largest, 1) are raised to it: a float32
    # exp that underflows to a subnormal costs ~100x a normal one.
    shifted = torch.clamp((x - top).float(), min=_LOWEST_EXPONENT)
    correction = torch.log(torch.exp(shifted).sum(dim=-1))
    return top.squeeze(-1) + correction.to(x.dtype)


def _logsumexp_over_parts(x: torch.Tensor, n_parts: int, width: int) -> torch.Tensor:
    """Elementwise log-sum-exp of the ``n_parts`` column blocks of ``width`` columns of ``x``
    (N, n_parts width) → (N, width), as :func:`_logsumexp` (Python ints: constant slices).

    Whole-block maxima, differences and sums: onnxruntime reduces a short axis of a 3-D
    array (or broadcasts over it) several times slower than it runs elementwise operations.
    """
    parts = [x[:, k * width : (k + 1) * width] for k in range(n_parts)]
    top = parts[0]
    for part in parts[1:]:
        top = torch.maximum(top, part)
    total = None
    for part in parts:
        term = torch.exp(torch.clamp((part - top).float(), min=_LOWEST_EXPONENT))
        total = term if total is None else total + term
    return top + torch.log(total).to(x.dtype)


def _sum_of_logs(values: torch.Tensor, n: int) -> torch.Tensor:
    """``log(values).sum(-1)`` of ``values`` (N, n) in [1, ~1e75], as the logs of products of
    up to :data:`_JACOBIAN_GROUP` values (fewer logs; each product stays below ~1e300).

    ``n`` is a Python int, so that the exported Reshape has a constant shape.
    """
    group = next(g for g in range(_JACOBIAN_GROUP, 0, -1) if n % g == 0)
    if group == 1:
        return torch.log(values).sum(dim=-1)
    return torch.log(values.reshape(-1, n // group, group).prod(dim=-1)).sum(dim=-1)


def _through_translation(weight, bias, tailweight, skewness):
    """Weights and bias on ``[s, s²]`` equal to ``weight``, ``bias`` on ``[h, h²]`` where
    ``h = γ + δ s`` (γ ``skewness``, δ ``tailweight``, shape (D,); ``weight`` (2D, K)).

    ``W₁ h + W₂ h² = (δ W₁ + 2 γ δ W₂) s + δ² W₂ s² + (γ W₁ + γ² W₂)``: the translation's
    multiply-add leaves the graph.
    """
    delta = np.asarray(tailweight, dtype=np.float64)[:, None]
    gamma = np.asarray(skewness, dtype=np.float64)[:, None]
    linear, squares = weight[: delta.shape[0]], weight[delta.shape[0] :]
    new_weight = np.vstack([delta * linear + 2.0 * gamma * delta * squares,
                            delta * delta * squares])
    return new_weight, bias + (gamma * linear + gamma * gamma * squares).sum(axis=0)


def _head_spec(index_a, index_b, weight, bias, mixture, n_features: int) -> dict:
    """The class log-score head of :class:`CompactGraph` from ``φ`` pairs and weights.

    Pruned components (bias :data:`~biosig.nets.sdgm.DEAD_COMPONENT_LOGIT`) are left out of
    the products and restored by the selection matrix, which copies the live ones exactly.
    """
    from biosig.nets.sdgm import DEAD_COMPONENT_LOGIT  # noqa: PLC0415

    index_a, index_b = np.asarray(index_a, np.int64), np.asarray(index_b, np.int64)
    live = np.ones(len(bias), dtype=bool)
    spec = {}
    if mixture is not None:
        live = bias > DEAD_COMPONENT_LOGIT / 2
        select = np.zeros((int(live.sum()), len(bias)))
        select[np.arange(select.shape[0]), np.flatnonzero(live)] = 1.0
        spec.update(n_classes=mixture[0], n_components=mixture[1], select=select,
                    component_bias=np.where(live, 0.0, DEAD_COMPONENT_LOGIT))
    weight, bias = weight[live], bias[live]
    linear = np.zeros((n_features, weight.shape[0]))
    np.add.at(linear, index_b[index_a == 0] - 1, weight[:, index_a == 0].T)
    spec.update(linear=linear, bias=bias)
    quadratic = index_a > 0
    pair_a, pair_b = index_a[quadratic] - 1, index_b[quadratic] - 1
    pair_weight = weight[:, quadratic]
    if np.array_equal(pair_a, pair_b):
        squares = np.zeros((n_features, weight.shape[0]))
        np.add.at(squares, pair_a, pair_weight.T)
        spec["squares"] = squares
    else:
        spec.update(index_a=pair_a, index_b=pair_b, weight=pair_weight)
    return spec


def _density_spec(density, array) -> dict:
    """The Gaussian mixture of :class:`CompactGraph`: linear in ``[h, h²]`` if diagonal."""
    n_groups, n_features = density.n_groups, density.n_features
    whitening = array(density.whitening).reshape(n_groups, n_features, n_features)
    shift = array(density.whitened_means).reshape(n_groups, n_features)
    log_norm = array(density.log_norm)
    diagonal = np.diagonal(whitening, axis1=1, axis2=2)
    if np.count_nonzero(whitening) == np.count_nonzero(diagonal):
        # log_norm - ½ Σ_d (a h_d - c)² = log_norm - ½ Σ c² + Σ a c h_d - ½ Σ a² h_d²
        return {"linear": (diagonal * shift).T, "squares": (-0.5 * diagonal * diagonal).T,
                "constant": log_norm - 0.5 * np.sum(shift * shift, axis=1)}
    return {"whitening": whitening.reshape(-1, n_features).T, "shift": -shift.reshape(-1),
            "log_norm": log_norm}


def compact_graph(graph: InferenceGraph) -> nn.Module:
    """What :func:`export_onnx` writes for ``graph`` (float64): its :class:`CompactGraph`
    where that exists and agrees with it on probe inputs, else ``graph`` itself."""
    compact = CompactGraph.of(graph)
    if compact is None:
        return graph
    generator = torch.Generator().manual_seed(0)
    spread = torch.tensor([0.0, 1.0, 3.0, 10.0], dtype=torch.float64).repeat_interleave(64)
    noise = torch.randn(spread.shape[0], graph.mean.numel(), generator=generator,
                        dtype=torch.float64)
    probe = graph.mean + graph.scale * noise * spread[:, None]
    with torch.no_grad():
        expected, got = graph(probe), compact(probe)
    worst = max(float(torch.max(torch.abs(a - b) / (1.0 + torch.abs(a))))
                for a, b in zip(expected, got))
    if not worst <= _COMPACT_RTOL:
        logger.warning("the compact graph differs from the estimator's by %.3g; exporting the "
                       "estimator's graph", worst)
        return graph
    return compact


class _Float32Interface(nn.Module):
    """float32 in and out around a float64 graph (the exported file's interface)."""

    def __init__(self, graph: nn.Module):
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
    full = estimator.inference_graph().copy_as(torch.float64)
    graph = _Float32Interface(compact_graph(full))
    n_features = int(full.mean.numel())
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
