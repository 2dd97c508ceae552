"""Sparse discriminative Gaussian mixture (SDGM; Hayashi & Uchida, ICLR 2021).

Each class ``c`` is a mixture of ``M`` components whose log-scores are linear in the quadratic
expansion ``φ(h) = [h_1..h_D, h_i h_j (i <= j)]`` of the input ``h`` (a Gaussian log-density is
exactly such a function), so the class log-score is ``logsumexp_m(w_cmᵀ φ(h) + b_cm)`` and the
posterior is its softmax over classes (METHODS.md §3.1).

Sparsity comes from sparse variational dropout (Molchanov, Ashukha & Vetrov 2017): every weight
has its own dropout rate ``α = σ² / θ²`` with a log-uniform prior, so weights that do not pay
for themselves get a large ``log α`` and are pruned (``log α >= prune_threshold``) in
evaluation. A component is pruned when its share of its class's training data (the estimated
mixing weight ``π_cm``) falls below ``component_threshold`` — so the number of live weights and
of live components comes out of training.

KL weighting (METHODS.md §3.3: the public demo multiplies the KL by <= 1e-9, i.e. switches it
off, and does not divide it by the data-set size): the loss per sample is
``cross_entropy + kl_weight · ramp(epoch) · KL / N``, with ``N`` the number of training samples
and ``ramp`` rising linearly from 0 to 1 over the first ``kl_warmup`` (30 %) of the epochs, so
the data fit is established before the prior prunes. With ``kl_weight = 1`` (the default) this
is the negative ELBO ``-(Σ_n E_q log p(y_n | x_n, w) - KL(q || p))`` divided by ``N``
(Molchanov et al. 2017, eq. 3): the prior's pull on each weight, per training sample, falls
as ``1/N``, as a posterior's should. A multiplier above 1 counts the prior several times, and
its relative strength then depends on ``N``: the earlier default 10, chosen on ~9200 Myo
windows, pruned 99-100 % of the weights on ~800-1400 samples (GRABMyo, UCI CTG) and lost 7-13
points there. The evidence for the defaults is in :class:`~biosig.nets.SDGMClassifier`.

The columns of ``φ`` are standardised on the training data before the ARD layer
(:meth:`SDGMHead.fit_scaling`). The log-uniform prior is scale-free, so this changes the
optimisation, not the model: Adam moves every weight by about the same amount per step, and
without it a step on the square of a heavy-tailed feature (standardised values up to 24 on
the UCI CTG table, squares up to ~570) changes the log-score hundreds of times more than a
step on a linear term.

Out-of-distribution score: the class log-scores of a discriminatively trained model are
log-joints only up to a function of ``h`` shared by all classes (the softmax cannot see it), and
the unconstrained quadratic forms need not be integrable, so ``-logsumexp`` of them can *fall*
far from the data. The density used instead is the model's generative reading
(:class:`GaussianMixtureDensity`): each live component's Gaussian fitted by maximum likelihood to
the training data it is responsible for — normalised, so its ``-log`` grows away from the data.

The quadratic expansion is a gather with constant index pairs (:class:`QuadraticExpansion`),
which exports to ONNX as two Gathers and a Mul (METHODS.md §7, rule 3).

This module also holds the pieces the other networks share: :class:`QuadraticExpansion`,
:class:`GaussianMixtureDensity` and :class:`FrozenNet` (the constant-only inference form).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from biosig._checks import BiosigError

logger = logging.getLogger(__name__)

#: Coefficients of Molchanov et al.'s approximation of KL(q || log-uniform prior).
_KL_K1, _KL_K2, _KL_K3 = 0.63576, 1.8732, 1.48695
#: Range of log α where that approximation is used (the official code clamps to it as well).
_LOG_ALPHA_RANGE = (-10.0, 10.0)
#: Initial log σ² of every weight: tiny multiplicative noise at the start (as the official code).
_INITIAL_LOG_SIGMA2 = -10.0
#: Standard deviation of the initial weights θ (as the official code; breaks component symmetry).
_INITIAL_WEIGHT_STD = 0.02
#: Log-score given to a pruned component in the exported graph: exp() of it is exactly 0 in
#: float32, and unlike -inf it cannot make NaN out of inf - inf.
DEAD_COMPONENT_LOGIT = -1e30

COVARIANCES = ("full", "diag")


def quadratic_pairs(n_features: int, covariance: str = "full") -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(a, b)`` into ``[1, h_1, ..., h_D]`` whose products make ``φ(h)``.

    Parameters
    ----------
    n_features : int
        Input dimension ``D``.
    covariance : {"full", "diag"}
        "full": linear terms and every product ``h_i h_j`` with ``i <= j`` (row-major upper
        triangle, ``H = D (D + 3) / 2``); "diag": linear and squared terms only (``H = 2 D``).

    Returns
    -------
    a, b : ndarray of int64, shape (H,)
        ``φ_k(h) = [1, h][a_k] · [1, h][b_k]``; linear terms use ``a_k = 0`` (the constant 1).
    """
    linear = np.arange(1, n_features + 1)
    if covariance == "full":
        rows, cols = np.triu_indices(n_features)
        a = np.concatenate([np.zeros(n_features, dtype=np.int64), rows + 1])
        b = np.concatenate([linear, cols + 1])
    elif covariance == "diag":
        a = np.concatenate([np.zeros(n_features, dtype=np.int64), linear])
        b = np.concatenate([linear, linear])
    else:
        raise BiosigError(f"covariance must be 'full' or 'diag', got {covariance!r}")
    return a.astype(np.int64), b.astype(np.int64)


def sparse_vd_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """Approximate KL(q || log-uniform prior) per weight, in nats (Molchanov et al. 2017)."""
    neg_kl = (_KL_K1 * torch.sigmoid(_KL_K2 + _KL_K3 * log_alpha)
              - 0.5 * torch.log1p(torch.exp(-log_alpha)) - _KL_K1)
    return -neg_kl


class QuadraticExpansion(nn.Module):
    """``φ(h)``: linear and quadratic terms of the last axis, by constant-index gathers.

    Parameters
    ----------
    n_features : int
        Input dimension ``D``.
    covariance : {"full", "diag"}
        Which products to form (see :func:`quadratic_pairs`).
    pairs : tuple of ndarray or None
        Explicit ``(a, b)`` index pairs (e.g. a pruned subset); overrides ``covariance``.
    """

    def __init__(self, n_features: int, covariance: str = "full", pairs=None):
        super().__init__()
        a, b = quadratic_pairs(n_features, covariance) if pairs is None else pairs
        self.n_features = int(n_features)
        self.covariance = covariance if pairs is None else "pruned"
        self.register_buffer("index_a", torch.as_tensor(np.asarray(a), dtype=torch.long))
        self.register_buffer("index_b", torch.as_tensor(np.asarray(b), dtype=torch.long))

    @property
    def n_outputs(self) -> int:
        """Number of expanded features ``H``."""
        return int(self.index_a.numel())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map ``h`` of shape (..., D) to ``φ(h)`` of shape (..., H)."""
        axis = h.dim() - 1
        with_one = torch.cat([torch.ones_like(h.narrow(axis, 0, 1)), h], dim=axis)
        return with_one.index_select(axis, self.index_a) * with_one.index_select(axis, self.index_b)

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_outputs}"


class LinearARD(nn.Module):
    """Linear layer with sparse variational dropout (automatic relevance determination).

    Each weight has a posterior ``N(θ, σ²)``; ``log α = log σ² - log θ²``. Training draws the
    layer's output with the local reparameterisation trick (lower variance than sampling one
    weight matrix per batch, as the official code does); evaluation uses ``θ`` with the weights
    whose ``log α >= prune_threshold`` set to zero. The bias is an ordinary parameter.

    Parameters
    ----------
    in_features, out_features : int
        Shape of the layer.
    prune_threshold : float
        ``log α`` at and above which a weight counts as pruned (3: dropout rate ≈ 0.95).
    """

    def __init__(self, in_features: int, out_features: int, prune_threshold: float = 3.0):
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.prune_threshold = float(prune_threshold)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * _INITIAL_WEIGHT_STD)
        self.log_sigma2 = nn.Parameter(torch.full((out_features, in_features), _INITIAL_LOG_SIGMA2))
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def log_alpha(self) -> torch.Tensor:
        """``log α`` per weight, shape (out_features, in_features), limited to the KL's range."""
        log_alpha = self.log_sigma2 - torch.log(self.weight**2 + 1e-16)
        # A range for the KL approximation and the pruning test, not a constraint on a
        # parameter: log σ² and θ themselves stay free.
        return torch.clamp(log_alpha, *_LOG_ALPHA_RANGE)

    @property
    def live_mask(self) -> torch.Tensor:
        """True where a weight survives pruning."""
        return self.log_alpha < self.prune_threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = nn.functional.linear(x, self.weight, self.bias)
            variance = nn.functional.linear(x * x, torch.exp(self.log_sigma2))
            return mean + torch.sqrt(variance + 1e-12) * torch.randn_like(mean)
        weight = torch.where(self.live_mask, self.weight, torch.zeros_like(self.weight))
        return nn.functional.linear(x, weight, self.bias)

    def kl(self) -> torch.Tensor:
        """Sum over weights of the approximate KL(q || log-uniform prior), in nats."""
        return sparse_vd_kl(self.log_alpha).sum()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"prune_threshold={self.prune_threshold:g}")


class SDGMHead(nn.Module):
    """SDGM as a layer: ``h`` (N, D) → class log-scores (N, C).

    Usable on feature vectors directly or as the last layer of a feature network trained end
    to end (add :meth:`kl` to the loss, scaled by the ELBO weight).

    Parameters
    ----------
    n_features : int
        Input dimension ``D``.
    n_classes : int
        Number of classes ``C``.
    n_components : int
        Initial components per class ``M`` (pruning may leave fewer).
    covariance : {"full", "diag"}
        Quadratic expansion: all products or squares only.
    prune_threshold : float
        ``log α`` at which a weight is pruned.
    """

    def __init__(self, n_features: int, n_classes: int, n_components: int = 3,
                 covariance: str = "full", prune_threshold: float = 3.0):
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_components = int(n_components)
        self.expansion = QuadraticExpansion(n_features, covariance)
        self.linear = LinearARD(self.expansion.n_outputs, self.n_classes * self.n_components,
                                prune_threshold)
        self.register_buffer("component_alive",
                             torch.ones(self.n_classes, self.n_components, dtype=torch.bool))
        n_expanded = self.expansion.n_outputs
        self.register_buffer("phi_mean", torch.zeros(n_expanded))
        self.register_buffer("phi_scale", torch.ones(n_expanded))

    @torch.no_grad()
    def fit_scaling(self, h: torch.Tensor, chunk: int = 4096) -> None:
        """Standardise every column of ``φ(h)`` to zero mean and unit variance on ``h`` (N, D).

        A reparameterisation, not a change of model: the log-uniform prior is scale-free and
        the shift goes into the bias (:class:`FrozenSDGMHead` folds both into the weights).
        It makes one Adam step and the initial weights mean the same change of log-score for
        every term (see the module docstring).
        """
        total = torch.zeros(self.expansion.n_outputs, dtype=torch.float64, device=h.device)
        total_sq = torch.zeros_like(total)
        for start in range(0, len(h), chunk):  # bounded memory for the full expansion
            phi = self.expansion(h[start:start + chunk]).double()
            total += phi.sum(dim=0)
            total_sq += (phi * phi).sum(dim=0)
        n = max(len(h), 1)
        mean = total / n
        scale = torch.sqrt(torch.clamp(total_sq / n - mean * mean, min=0.0))
        constant = scale <= 1e-6 * torch.clamp(mean.abs(), min=1.0)
        self.phi_mean.copy_(mean)
        self.phi_scale.copy_(torch.where(constant, torch.ones_like(scale), scale))

    def scaled_expansion(self, h: torch.Tensor) -> torch.Tensor:
        """Standardised ``φ(h)`` (identity until :meth:`fit_scaling`)."""
        return (self.expansion(h) - self.phi_mean) / self.phi_scale

    def component_scores(self, h: torch.Tensor) -> torch.Tensor:
        """Log-score of every (class, component), shape (N, C, M); pruned ones at -inf."""
        scores = self.linear(self.scaled_expansion(h))
        scores = scores.reshape(-1, self.n_classes, self.n_components)
        return scores.masked_fill(~self.component_alive, float("-inf"))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_scores(h), dim=-1)

    def kl(self) -> torch.Tensor:
        """KL of the ARD weights of live components, in nats."""
        alive = self.component_alive.reshape(-1, 1).to(self.linear.weight.dtype)
        return (sparse_vd_kl(self.linear.log_alpha) * alive).sum()

    @torch.no_grad()
    def responsibilities(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``P(m | c = y_n, h_n)`` for each sample's own class, shape (N, C, M), 0 elsewhere.

        Parameters
        ----------
        h : Tensor, shape (N, D)
            Inputs of the head (training data).
        y : Tensor of int64, shape (N,)
            Class indices.
        """
        scores = self.component_scores(h)
        rows = torch.arange(len(y), device=y.device)
        out = torch.zeros_like(scores)
        out[rows, y] = torch.softmax(scores[rows, y], dim=-1)
        return out

    @torch.no_grad()
    def mixing_weights(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Estimated ``π_cm``: mean responsibility of each component on its class's samples.

        Returns
        -------
        Tensor, shape (C, M)
            Rows sum to 1 (0 for a class without samples).
        """
        total = self.responsibilities(h, y).sum(dim=0)
        counts = torch.bincount(y, minlength=self.n_classes).clamp(min=1).to(total.dtype)
        return total / counts[:, None]

    @torch.no_grad()
    def prune_components(self, h: torch.Tensor, y: torch.Tensor, threshold: float) -> torch.Tensor:
        """Mark components whose ``π_cm < threshold`` as dead (at least one kept per class).

        Returns the estimated mixing weights before pruning, shape (C, M).
        """
        pi = self.mixing_weights(h, y)
        alive = (pi >= threshold) & self.component_alive
        best = torch.argmax(pi, dim=1)
        alive[torch.arange(self.n_classes), best] = True
        self.component_alive.copy_(alive)
        return pi

    def sparsity(self) -> dict:
        """Live weights and components after pruning (plain numbers, for logs and cards)."""
        alive = self.component_alive.reshape(-1).cpu()
        live_weights = self.linear.live_mask.cpu()[alive]
        n_weights = int(self.linear.weight.numel())
        n_live = int(live_weights.sum())
        return {
            "n_weights": n_weights,
            "n_live_weights": n_live,
            "fraction_pruned": 1.0 - n_live / n_weights,
            "n_components_initial": self.n_classes * self.n_components,
            "n_components_live": int(alive.sum()),
            "live_components_per_class": self.component_alive.sum(dim=1).cpu().tolist(),
        }

    def frozen(self) -> "FrozenSDGMHead":
        """A constant-only copy for inference and export (pruned weights and columns dropped)."""
        return FrozenSDGMHead.from_head(self)


class FrozenSDGMHead(nn.Module):
    """Inference form of :class:`SDGMHead`: gathers, one matmul, one logsumexp.

    The φ columns whose weights are pruned in every live component are not computed; pruned
    components keep a zero weight row and the bias :data:`DEAD_COMPONENT_LOGIT`.
    """

    def __init__(self, pairs, weight: torch.Tensor, bias: torch.Tensor, n_classes: int,
                 n_components: int, n_features: int):
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_components = int(n_components)
        self.expansion = QuadraticExpansion(n_features, pairs=pairs)
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", bias.detach().clone())

    @classmethod
    def from_head(cls, head: SDGMHead) -> "FrozenSDGMHead":
        with torch.no_grad():
            linear = head.linear
            alive = head.component_alive.reshape(-1)
            weight = torch.where(linear.live_mask, linear.weight, torch.zeros_like(linear.weight))
            weight = weight * alive[:, None].to(weight.dtype)
            # Fold the φ standardisation into the weights and bias (exact, and one op less).
            weight = weight / head.phi_scale
            bias = linear.bias - weight @ head.phi_mean
            bias = torch.where(alive, bias, torch.full_like(bias, DEAD_COMPONENT_LOGIT))
            used = torch.nonzero(weight.abs().sum(dim=0) > 0).reshape(-1)
            if used.numel() == 0:
                # Everything pruned: keep one (all-zero) column so the graph keeps its shape.
                used = torch.zeros(1, dtype=torch.long, device=weight.device)
            a = head.expansion.index_a[used].cpu().numpy()
            b = head.expansion.index_b[used].cpu().numpy()
            return cls((a, b), weight[:, used], bias, head.n_classes, head.n_components,
                       head.expansion.n_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = nn.functional.linear(self.expansion(h), self.weight, self.bias)
        return torch.logsumexp(scores.reshape(-1, self.n_classes, self.n_components), dim=-1)


def fit_gaussians(h: np.ndarray, weights: np.ndarray, covariance: str = "full",
                  min_weight: float = 1e-6) -> tuple[np.ndarray, ...]:
    """Maximum-likelihood Gaussian per group: mixing weight, mean and shrunk covariance.

    Group ``k`` gets ``π_k = Σ_n r_nk / N``, the weighted mean ``μ_k`` and the weighted
    covariance ``Σ_k``, shrunk towards its mean variance by the Ledoit-Wolf amount (or diagonal
    for ``covariance="diag"``), plus a tiny ridge (:func:`with_floor`).

    Parameters
    ----------
    h : ndarray, shape (N, D)
        Samples.
    weights : ndarray, shape (N, K)
        Responsibility of each group for each sample (e.g. one-hot classes).
    covariance : {"full", "diag"}
        Covariance form.
    min_weight : float
        Groups whose total weight is below this are left out.

    Returns
    -------
    groups : ndarray of int, shape (K',)
        Indices of the groups kept.
    log_pi : ndarray, shape (K',)
    means : ndarray, shape (K', D)
    covs : ndarray, shape (K', D, D)
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    n_samples, n_features = h.shape
    groups, log_pi, means, covs = [], [], [], []
    for k in range(weights.shape[1]):
        w = weights[:, k]
        total = w.sum()
        if total < min_weight:
            continue
        mean = w @ h / total
        centred = (h - mean) * np.sqrt(w / total)[:, None]
        cov = centred.T @ centred
        if covariance == "diag":
            cov = np.diag(np.diag(cov))
        elif n_features > 1:
            # Shrinkage estimated on the weighted rows rescaled to unit mean weight.
            rho = ledoit_wolf_shrinkage(centred * np.sqrt(n_samples), assume_centered=True)
            cov = (1 - rho) * cov + rho * np.trace(cov) / n_features * np.eye(n_features)
        groups.append(k)
        log_pi.append(np.log(total / n_samples))
        means.append(mean)
        covs.append(with_floor(cov))
    return (np.asarray(groups, dtype=np.int64), np.asarray(log_pi), np.asarray(means),
            np.asarray(covs))


def with_floor(cov: np.ndarray, relative: float = 1e-6) -> np.ndarray:
    """``cov`` plus a ridge of ``relative`` × its mean variance, so it is invertible."""
    n_features = cov.shape[0]
    ridge = relative * max(np.trace(cov) / n_features, 1e-12)
    return cov + ridge * np.eye(n_features)


class GaussianMixtureDensity(nn.Module):
    """``log Σ_k π_k N(h; μ_k, Σ_k)``, computed in whitened form.

    The generative reading of a discriminative model, fitted by maximum likelihood to the
    training data in the model's own input space; normalised, so ``-log`` of it is a proper
    out-of-distribution score. Each group's Mahalanobis term is ``‖A_k h - A_k μ_k‖²`` with
    ``A_k = L_k⁻¹`` (``Σ_k = L_k L_kᵀ``): a sum of squares, so float32 keeps its relative
    precision even for nearly singular covariances (the expanded quadratic form would cancel).

    Parameters
    ----------
    log_pi : array_like, shape (K,)
        Log mixing weights.
    means : array_like, shape (K, D)
    covs : array_like, shape (K, D, D)
        Positive definite covariances.
    """

    def __init__(self, log_pi, means, covs):
        super().__init__()
        means = np.asarray(means, dtype=np.float64)
        covs = np.asarray(covs, dtype=np.float64)
        n_groups, n_features = means.shape
        cholesky = np.linalg.cholesky(covs)
        whitening = np.linalg.inv(cholesky)  # (K, D, D)
        log_det = 2 * np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(axis=1)
        log_norm = np.asarray(log_pi) - 0.5 * log_det - 0.5 * n_features * np.log(2 * np.pi)
        dtype = torch.get_default_dtype()
        self.n_groups, self.n_features = int(n_groups), int(n_features)
        # Stacked for one matmul: row k·D + i is row i of A_k.
        self.register_buffer("whitening", torch.as_tensor(
            whitening.reshape(n_groups * n_features, n_features), dtype=dtype))
        self.register_buffer("whitened_means", torch.as_tensor(
            np.einsum("kij,kj->ki", whitening, means).reshape(-1), dtype=dtype))
        self.register_buffer("log_norm", torch.as_tensor(log_norm, dtype=dtype))

    @classmethod
    def fit(cls, h: torch.Tensor, weights: torch.Tensor,
            covariance: str) -> "GaussianMixtureDensity":
        """Fit to samples ``h`` (N, D) with group responsibilities ``weights`` (N, K)."""
        _, log_pi, means, covs = fit_gaussians(h.detach().cpu().double().numpy(),
                                               weights.detach().cpu().double().numpy(),
                                               covariance)
        return cls(log_pi, means, covs).to(h.device)

    def group_log_joints(self, h: torch.Tensor) -> torch.Tensor:
        """``log π_k + log N(h; μ_k, Σ_k)`` per group for a shared input ``h`` (N, D): (N, K)."""
        white = nn.functional.linear(h, self.whitening, -self.whitened_means)
        white = white.reshape(-1, self.n_groups, self.n_features)
        return self.log_norm - 0.5 * (white * white).sum(dim=-1)

    def per_group_log_joints(self, h: torch.Tensor) -> torch.Tensor:
        """The same for one input per group, ``h`` (N, K, D) → (N, K)."""
        whitening = self.whitening.reshape(self.n_groups, self.n_features, self.n_features)
        white = torch.matmul(h.transpose(0, 1), whitening.transpose(1, 2))  # (K, N, D)
        white = white - self.whitened_means.reshape(self.n_groups, 1, self.n_features)
        return (self.log_norm - 0.5 * (white * white).sum(dim=-1).transpose(0, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Log-density of ``h`` (N, D), shape (N,)."""
        return torch.logsumexp(self.group_log_joints(h), dim=-1)


def make_trunk(n_features: int, hidden_layer_sizes) -> tuple[nn.Module | None, int]:
    """A small MLP feature network (Linear + tanh per layer) and its output dimension.

    tanh keeps the head's inputs bounded, so the quadratic terms cannot explode.
    """
    sizes = [int(n) for n in hidden_layer_sizes]
    if not sizes:
        return None, n_features
    layers: list[nn.Module] = []
    previous = n_features
    for size in sizes:
        layers += [nn.Linear(previous, size), nn.Tanh()]
        previous = size
    return nn.Sequential(*layers), previous


class SDGMNet(nn.Module):
    """SDGM on standardised features, optionally behind an MLP trunk trained end to end.

    ``forward(z)`` returns the class log-scores (N, C). After :meth:`fit_density`, the frozen
    network's log-marginal is the generative reading of the fitted components.
    """

    def __init__(self, n_features: int, n_classes: int, n_components: int = 3,
                 covariance: str = "full", prune_threshold: float = 3.0, hidden_layer_sizes=()):
        super().__init__()
        self.trunk, n_head_inputs = make_trunk(n_features, hidden_layer_sizes)
        self.head = SDGMHead(n_head_inputs, n_classes, n_components, covariance, prune_threshold)
        self.density: GaussianMixtureDensity | None = None

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs of the SDGM head."""
        return z if self.trunk is None else self.trunk(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(z))

    def kl(self) -> torch.Tensor:
        return self.head.kl()

    @torch.no_grad()
    def fit_density(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the generative reading: one Gaussian per live component, on the head's inputs,
        weighted by the component's responsibilities (call after pruning)."""
        h = self.features(z)
        weights = self.head.responsibilities(h, y).reshape(len(y), -1)
        self.density = GaussianMixtureDensity.fit(h, weights, self.head.expansion.covariance)

    def frozen(self) -> "FrozenNet":
        trunk = None if self.trunk is None else copy.deepcopy(self.trunk).requires_grad_(False)
        density = getattr(self, "density", None)
        return FrozenNet(self.head.frozen(), trunk=trunk,
                         density=None if density is None else copy.deepcopy(density))


class FrozenNet(nn.Module):
    """Constant-only inference network: ``z`` → (class log-scores (N, C), log-marginal (N,)).

    Parameters
    ----------
    head : nn.Module
        Maps the head's inputs to class log-scores.
    trunk : nn.Module or None
        Feature network before the head.
    translation : nn.Module or None
        Elementwise translation before the head, with a ``log_jacobian(z)`` method.
    density : nn.Module or None
        Log-density of the head's inputs (the generative reading); with a translation its
        log-Jacobian is added, so the log-marginal is a density of ``z``. Without a density
        the log-marginal is ``logsumexp`` of the class log-scores (the negative energy).
    """

    def __init__(self, head: nn.Module, trunk: nn.Module | None = None,
                 translation: nn.Module | None = None, density: nn.Module | None = None):
        super().__init__()
        self.head = head
        self.trunk = trunk
        self.translation = translation
        self.density = density

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = z
        if self.trunk is not None:
            h = self.trunk(h)
        if self.translation is not None:
            h = self.translation(h)
        logits = self.head(h)
        if self.density is None:
            return logits, torch.logsumexp(logits, dim=-1)
        log_marginal = self.density(h)
        if self.translation is not None:
            log_marginal = log_marginal + self.translation.log_jacobian(z)
        return logits, log_marginal
