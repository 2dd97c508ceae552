"""Johnson SU translation-system network (Hayashi, Shibanoki & Tsuji 2021), two readings.

With ``s_d = asinh((z_d - ξ_d) / λ_d)`` a multivariate Johnson SU class density is Gaussian in
``s``; its log, plus the log-prior, is linear in the quadratic expansion ``φ(s)`` plus the
Jacobian ``-½ Σ_d log(λ_d² + (z_d - ξ_d)²)`` (METHODS.md §1.2). Hence two networks:

- Reading B, :class:`SharedJSUNet` (the default ``"shared"`` variant): ξ, λ shared by all classes
  and fixed from the pooled training data, so the Jacobian is class-independent and cancels in
  the posterior, and training is multinomial logistic regression on ``φ(t)`` — convex, with a
  unique optimum thanks to a small L2 penalty on the weights (:func:`fit_shared_jsu`, full-batch
  L-BFGS in float64). Here ``t = γ + δ s`` with fixed δ, γ that give every ``t_d`` zero mean and
  unit variance on the training data: ``φ(t)`` spans the same functions as ``φ(s)``, and the
  penalty treats every feature on the same scale.
- Reading A, :class:`FullJSUNet` (``"full"``): class-specific ``ξ_c``, ``λ_c`` learned by
  gradient together with the weights, keeping the class-dependent Jacobian; non-convex.

:class:`JohnsonSUTranslation` is the elementwise layer ``t = γ + δ asinh((z - ξ) / λ)`` shared by
Reading B (all fixed) and the JSU-SDGM composition (all four learned).

Positive parameters are ``softplus(·) + ε`` by construction (a :mod:`torch.nn.utils.parametrize`
parametrisation, removed with its value kept when the network is frozen for export).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from biosig._checks import BiosigError
from biosig.nets.sdgm import FrozenNet, GaussianMixtureDensity, QuadraticExpansion, fit_gaussians

logger = logging.getLogger(__name__)

#: Lower bound of every positive parameter (λ, δ), in the units of the standardised features.
POSITIVE_FLOOR = 1e-3
#: Above this |u|, asinh(u) = log(2|u|) to float64 precision; the export formula switches there.
_ASINH_LARGE = 1e8

TRANSLATIONS = ("robust", "johnsonsu")
#: Largest λ kept from a pooled Johnson SU fit, in standardised units (the data spread is ~1;
#: asinh is then nearly linear over the data, as the fit asked, without losing precision).
_MAX_TRANSLATION_SCALE = 100.0


def stable_asinh(u: torch.Tensor) -> torch.Tensor:
    """``asinh(u)`` from Sign/Abs/Sqrt/Log/Where only, finite for every finite ``u``.

    ``sign(u) · log(|u| + √(u² + 1))`` with ``|u|`` limited before squaring (so ``u²`` cannot
    overflow) and ``log(2|u|)`` beyond :data:`_ASINH_LARGE`; the naive ``log(u + √(u² + 1))``
    gives -inf for ``u <= -1e4`` in float32 (METHODS.md §7). Absolute error ~1e-7 in float32.
    For the exported graph only: the unused ``where`` branch would give NaN gradients.
    """
    magnitude = torch.abs(u)
    moderate = torch.clamp(magnitude, max=_ASINH_LARGE)
    small_branch = torch.log(moderate + torch.sqrt(moderate * moderate + 1.0))
    large_branch = torch.log(magnitude) + math.log(2.0)
    return torch.sign(u) * torch.where(magnitude > _ASINH_LARGE, large_branch, small_branch)


def asinh(u: torch.Tensor) -> torch.Tensor:
    """``torch.asinh`` normally; :func:`stable_asinh` while tracing for the legacy ONNX exporter,
    which has no Asinh op."""
    if torch.onnx.is_in_onnx_export():
        return stable_asinh(u)
    return torch.asinh(u)


class SoftplusPositive(nn.Module):
    """Parametrisation ``x ↦ softplus(x) + floor``: always > ``floor``, never clipped."""

    def __init__(self, floor: float = POSITIVE_FLOOR):
        super().__init__()
        self.floor = float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) + self.floor

    def right_inverse(self, y: torch.Tensor) -> torch.Tensor:
        excess = torch.clamp(y - self.floor, min=1e-12)
        # softplus⁻¹(v) = v + log(1 - e^{-v}), written without overflow for large v.
        return excess + torch.log(-torch.expm1(-excess))


def _positive(module: nn.Module, name: str) -> None:
    parametrize.register_parametrization(module, name, SoftplusPositive())


def bake_parametrizations(module: nn.Module) -> nn.Module:
    """Replace every parametrisation in ``module`` (in place) by its current value.

    Afterwards ``scale`` etc. are plain parameters holding ``softplus(·) + ε``; torch can pickle
    the module (it refuses parametrised ones) and the exporter sees constants.
    """
    for submodule in list(module.modules()):
        if parametrize.is_parametrized(submodule):
            for name in list(submodule.parametrizations.keys()):
                parametrize.remove_parametrizations(submodule, name, leave_parametrized=True)
    return module


def _freeze(module: nn.Module) -> nn.Module:
    """Deep copy with parametrisations baked, no gradients, in eval mode."""
    frozen = bake_parametrizations(copy.deepcopy(module))
    frozen.requires_grad_(False)
    return frozen.eval()


def robust_translation(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature location (median) and scale (IQR / 1.349) of ``z``, shape (D,) each.

    A feature whose IQR is zero (e.g. a mostly constant count) gets scale 1, its standard
    deviation after standardisation.
    """
    location = np.median(z, axis=0)
    q75, q25 = np.percentile(z, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 10 * POSITIVE_FLOOR, scale, 1.0)
    return location, scale


def johnsonsu_translation(z: np.ndarray, max_samples: int = 2000,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature location and scale of a pooled ``scipy.stats.johnsonsu`` fit, shape (D,) each.

    At most ``max_samples`` rows are used (fits are slow); a feature whose fit fails falls back
    to :func:`robust_translation`. When the fit says a feature is nearly normal, ξ and λ run
    off together (λ ~ 1e8: asinh is linear over the data, and ``(z - ξ) / λ`` is constant to
    float precision); λ is then brought down to :data:`_MAX_TRANSLATION_SCALE` keeping ``u`` at
    the median, which keeps the (slight) curvature and the feature's information.
    """
    from scipy import stats

    rng = np.random.default_rng(seed)
    rows = z if len(z) <= max_samples else z[rng.choice(len(z), max_samples, replace=False)]
    location, scale = robust_translation(z)
    median = np.median(z, axis=0)
    for d in range(z.shape[1]):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                # The optimiser warns on heavy-tailed columns; the result is checked below.
                warnings.simplefilter("ignore", RuntimeWarning)
                _, _, loc, scl = stats.johnsonsu.fit(rows[:, d])
        except (RuntimeError, ValueError, FloatingPointError):
            continue
        if not (np.isfinite(loc) and np.isfinite(scl) and scl > 10 * POSITIVE_FLOOR):
            continue
        if scl > _MAX_TRANSLATION_SCALE:
            u_median = (median[d] - loc) / scl
            scl = _MAX_TRANSLATION_SCALE
            loc = median[d] - u_median * scl
        location[d], scale[d] = loc, scl
    return location, scale


def initial_translation(z: np.ndarray, method: str) -> dict:
    """Shared translation ``t = γ + δ asinh((z - ξ) / λ)`` fitted to the pooled data ``z``.

    ξ, λ come from ``method`` ("robust" or "johnsonsu"); δ and γ then make every ``t_d``
    zero-mean with unit variance on ``z``. (For the Johnson SU fit they are close to the fitted
    δ, γ, which make ``t`` standard normal.) Standardised ``t`` keeps the quadratic features
    and the L2 penalty on their weights on one scale whatever λ is — without it a feature with
    a large λ gives a nearly constant ``asinh`` whose weights the penalty suppresses.

    Returns
    -------
    dict
        ``location``, ``scale``, ``tailweight``, ``skewness``: ndarrays of shape (D,).
    """
    if method == "robust":
        location, scale = robust_translation(z)
    elif method == "johnsonsu":
        location, scale = johnsonsu_translation(z)
    else:
        raise BiosigError(f"translation must be one of {TRANSLATIONS}, got {method!r}")
    s = np.arcsinh((z - location) / scale)
    spread = s.std(axis=0)
    tailweight = 1.0 / np.where(spread > 1e-12, spread, 1.0)
    return {"location": location, "scale": scale, "tailweight": tailweight,
            "skewness": -s.mean(axis=0) * tailweight}


class JohnsonSUTranslation(nn.Module):
    """Elementwise Johnson SU translation ``t_d = γ_d + δ_d asinh((z_d - ξ_d) / λ_d)``.

    Parameters
    ----------
    location, scale, tailweight, skewness : array_like, shape (D,)
        Initial ξ, λ > 0, δ > 0 and γ, in the units of the (standardised) input (see
        :func:`initial_translation`).
    learn : bool
        Train all four (parameters, λ and δ kept positive by softplus) or keep them fixed
        (buffers).
    """

    def __init__(self, location, scale, tailweight, skewness, *, learn: bool = False):
        super().__init__()
        values = {name: torch.as_tensor(np.asarray(value), dtype=torch.get_default_dtype()).clone()
                  for name, value in (("location", location), ("scale", scale),
                                      ("tailweight", tailweight), ("skewness", skewness))}
        for name, value in values.items():
            if learn:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        if learn:
            _positive(self, "scale")
            _positive(self, "tailweight")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.skewness + self.tailweight * asinh((z - self.location) / self.scale)

    def log_jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """``log |dt/dz|`` summed over features, shape (N,)."""
        scale = self.scale
        offset = z - self.location
        return (torch.log(self.tailweight)
                - 0.5 * torch.log(scale * scale + offset * offset)).sum(dim=-1)

    def frozen(self) -> "JohnsonSUTranslation":
        return _freeze(self)


class SharedJSUNet(nn.Module):
    """Reading B: shared, fixed translation; class log-scores ``w_cᵀ φ(t) + b_c``.

    ``t = γ + δ asinh((z - ξ) / λ)`` with fixed δ, γ is an affine map of ``s``, so ``φ(t)``
    spans the same functions as ``φ(s)`` (METHODS.md §1.2); δ, γ only put the features on one
    scale for the L2 penalty.

    Parameters
    ----------
    translation : dict
        Shared, fixed ``location``, ``scale``, ``tailweight``, ``skewness`` (each shape (D,),
        standardised units), as :func:`initial_translation` returns.
    n_classes : int
        Number of classes ``C``.
    covariance : {"full", "diag"}
        Quadratic expansion of the translated features.
    """

    def __init__(self, translation: dict, n_classes: int, covariance: str = "full"):
        super().__init__()
        self.translation = JohnsonSUTranslation(**translation)
        self.expansion = QuadraticExpansion(len(np.asarray(translation["location"])), covariance)
        self.linear = nn.Linear(self.expansion.n_outputs, int(n_classes))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.density: GaussianMixtureDensity | None = None

    def expanded(self, z: torch.Tensor) -> torch.Tensor:
        """``φ(t)`` of shape (N, H) for standardised inputs ``z`` (N, D)."""
        return self.expansion(self.translation(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Class log-scores (N, C), without the class-independent Jacobian."""
        return self.linear(self.expanded(z))

    @torch.no_grad()
    def fit_density(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the generative reading: per class, a Gaussian in ``t`` (a multivariate Johnson SU
        density in ``z`` with the shared ξ, λ), by maximum likelihood."""
        weights = nn.functional.one_hot(y, self.linear.out_features).to(z.dtype)
        self.density = GaussianMixtureDensity.fit(self.translation(z), weights,
                                                  self.expansion.covariance)

    def frozen(self) -> FrozenNet:
        head = _freeze(nn.Sequential(self.expansion, self.linear))
        density = None if self.density is None else copy.deepcopy(self.density)
        return FrozenNet(head, translation=self.translation.frozen(), density=density)


def fit_shared_jsu(net: SharedJSUNet, z: torch.Tensor, y: torch.Tensor, *, alpha: float,
                   max_iter: int, tol: float, progress=None) -> dict:
    """Fit Reading B's weights by full-batch L-BFGS: multinomial logistic regression on ``φ(s)``.

    Minimises ``mean_n CE(y_n, W φ_n + b) + ½ α ‖W‖²`` (bias unpenalised), which is strictly
    convex in ``W`` — the same problem as ``sklearn.linear_model.LogisticRegression(
    C=1 / (α N))`` on ``φ(s)`` — so every start reaches the same optimum.

    Parameters
    ----------
    net : SharedJSUNet
        Its ``linear`` layer is the starting point and receives the result.
    z : Tensor, shape (N, D)
        Standardised training inputs (float64 recommended).
    y : Tensor of int64, shape (N,)
        Class indices.
    alpha : float
        L2 strength (per-sample loss units).
    max_iter : int
        Maximum L-BFGS iterations.
    tol : float
        Stop when the largest gradient entry is below this.
    progress : tqdm or None
        Advanced once per loss evaluation.

    Returns
    -------
    dict
        ``n_iter``, ``loss`` (final objective) and ``converged`` (gradient below ``tol``, or
        the objective stopped changing before ``max_iter``).
    """
    with torch.no_grad():
        phi = net.expanded(z)
    weight, bias = net.linear.weight, net.linear.bias
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
                                  tolerance_grad=tol, tolerance_change=1e-14, history_size=30,
                                  line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        logits = nn.functional.linear(phi, weight, bias)
        loss = nn.functional.cross_entropy(logits, y) + 0.5 * alpha * (weight * weight).sum()
        loss.backward()
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        return loss

    optimizer.step(objective)
    n_iter = int(optimizer.state[weight].get("n_iter", 0))
    final_loss = float(objective().detach())
    gradient = max(float(weight.grad.abs().max()), float(bias.grad.abs().max()))
    # Stopping before max_iter without reaching tol means the objective stopped changing at
    # float64 precision: as converged as it can be.
    return {"n_iter": n_iter, "loss": final_loss, "converged": gradient <= tol or n_iter < max_iter}


class FullJSUNet(nn.Module):
    """Reading A: class-specific ξ_c, λ_c learned with the weights; class Jacobian kept.

    Class log-score ``w_cᵀ φ(t_c) + b_c + log |dt_c/dz|`` with
    ``t_c = γ + δ asinh((z - ξ_c) / λ_c)``; δ, γ are shared and fixed (they only set the
    scale of the features, as in :class:`SharedJSUNet`).

    Parameters
    ----------
    location, scale : array_like, shape (C, D)
        Initial ξ_c and λ_c (> 0).
    tailweight, skewness : array_like, shape (D,)
        Fixed δ (> 0) and γ.
    weight : array_like, shape (C, H)
        Initial quadratic-form weights.
    bias : array_like, shape (C,)
        Initial biases.
    covariance : {"full", "diag"}
        Quadratic expansion of each ``t_c``.
    """

    def __init__(self, location, scale, tailweight, skewness, weight, bias,
                 covariance: str = "full"):
        super().__init__()
        dtype = torch.get_default_dtype()

        def tensor(value):
            return torch.as_tensor(np.asarray(value), dtype=dtype).clone()

        self.location = nn.Parameter(tensor(location))
        self.scale = nn.Parameter(tensor(scale))
        _positive(self, "scale")
        self.register_buffer("tailweight", tensor(tailweight))
        self.register_buffer("skewness", tensor(skewness))
        self.expansion = QuadraticExpansion(self.location.shape[1], covariance)
        self.weight = nn.Parameter(tensor(weight))
        self.bias = nn.Parameter(tensor(bias))
        # Generative reading (per class, a Gaussian in t_c), set by fit_density.
        self.density: GaussianMixtureDensity | None = None

    @classmethod
    def from_shared(cls, shared: SharedJSUNet) -> "FullJSUNet":
        """Start from a fitted Reading B network: same posterior, ξ_c = ξ and λ_c = λ for all c."""
        n_classes = shared.linear.out_features
        translation = {name: getattr(shared.translation, name).detach().cpu().numpy()
                       for name in ("location", "scale", "tailweight", "skewness")}
        return cls(np.tile(translation["location"], (n_classes, 1)),
                   np.tile(translation["scale"], (n_classes, 1)),
                   translation["tailweight"], translation["skewness"],
                   shared.linear.weight.detach().cpu().numpy(),
                   shared.linear.bias.detach().cpu().numpy(),
                   covariance=shared.expansion.covariance)

    def _translated(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``t_c`` (N, C, D) and the class log-Jacobians ``log |dt_c/dz|`` (N, C)."""
        offset = z[:, None, :] - self.location  # (N, C, D)
        scale = self.scale
        t = self.skewness + self.tailweight * asinh(offset / scale)
        log_jacobian = (torch.log(self.tailweight)
                        - 0.5 * torch.log(scale * scale + offset * offset)).sum(dim=-1)
        return t, log_jacobian

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Class log-scores (N, C): the discriminative log-joints, class Jacobian included."""
        t, log_jacobian = self._translated(z)
        return (self.expansion(t) * self.weight).sum(dim=-1) + self.bias + log_jacobian

    def scores(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class log-scores (N, C) and the generative log-density of ``z`` (N,) (after
        :meth:`fit_density`)."""
        t, log_jacobian = self._translated(z)
        logits = (self.expansion(t) * self.weight).sum(dim=-1) + self.bias + log_jacobian
        log_joint = self.density.per_group_log_joints(t) + log_jacobian
        return logits, torch.logsumexp(log_joint, dim=-1)

    def weight_penalty(self) -> torch.Tensor:
        """``½ ‖W‖²`` (the L2 term, as in Reading B)."""
        return 0.5 * (self.weight * self.weight).sum()

    @torch.no_grad()
    def fit_density(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the generative reading: for each class a Gaussian in its own ``t_c`` (a
        multivariate Johnson SU density with the learned ξ_c, λ_c), by maximum likelihood."""
        t = self._translated(z)[0].detach().cpu().double().numpy()
        labels = y.cpu().numpy()
        fits = [fit_gaussians(t[labels == c, c], np.ones((int(np.sum(labels == c)), 1)),
                              self.expansion.covariance) for c in range(self.weight.shape[0])]
        # One group per class, in its own t_c; log π_c is the class frequency.
        log_pi = np.log(np.bincount(labels, minlength=len(fits)) / len(labels))
        self.density = GaussianMixtureDensity(
            log_pi, np.concatenate([f[2] for f in fits]), np.concatenate([f[3] for f in fits]),
        ).to(z.device)

    def frozen(self) -> nn.Module:
        return _FullJSUScores(_freeze(self))


class _FullJSUScores(nn.Module):
    """Frozen Reading A network with the (logits, log-marginal) interface of FrozenNet."""

    def __init__(self, net: FullJSUNet):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.scores(z)
