"""Inverse inference: the input a trained model expects for a class (METHODS.md §6).

Approximates the posterior over inputs given a desired output,

    p(x | c*) ∝ p(c* | x)^β p₀(x),

by mean field: a factorised ``q(x) = Π_i q_i(x_i)`` that minimises
``F[q] = −β E_q[log p(c*|x)] + KL(q ‖ p₀)``.

Three priors:

- ``"bernoulli"`` for binary inputs (binarised images): ``p₀ = Π Bern(ρ_i)``, ``q_i = Bern(m_i)``.
  Naive mean field replaces ``E_q log p(c*|x)`` by ``log p(c*|m)``, which gives the
  self-consistent equations ``m_i = σ(logit ρ_i + β ∂_i log p(c*|m))``.
- ``"gaussian"`` for continuous features: ``p₀ = N(μ₀, diag v₀)``, ``q_i = N(μ_i, s_i²)``.
  Second-order mean field gives ``μ_i = μ₀_i + v₀_i β ∂_i log p(c*|μ)`` and
  ``1/s_i² = 1/v₀_i − β ∂²_ii log p(c*|μ)`` (clipped so that ``s_i²`` stays positive).

- ``"empirical"``: ``p₀`` the empirical distribution of reference inputs (training windows, or
  a live buffer). The posterior is then exact, the sample reweighted by ``p(c*|x_i)^β``; its
  mean is where real inputs of the class lie (it keeps their correlations, which a factorised
  prior cannot).

The mean-field equations are iterated with damping and a backtracking line search on the
mean-field objective until the largest undamped step of the mean is below ``tol`` (in units of
the prior standard deviation for the Gaussian prior).

Gradients of ``log p(c*|x)``:

- a fitted :mod:`biosig.nets` estimator: exact, by torch autograd through its
  ``inference_graph()`` (torch is imported only then);
- anything else with ``predict_proba`` (an :class:`biosig.inference.OnnxModel`, a scikit-learn
  classifier): batched central finite differences, one ``predict_proba`` call of ``2F + 1``
  rows per iteration, which also gives the diagonal second derivatives. This path is
  torch-free, so it can run in the live pipeline's background workers.

This module imports neither torch nor scikit-learn at import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from biosig._checks import BiosigError, check_int, check_option, check_positive

logger = logging.getLogger(__name__)

__all__ = ["PRIORS", "Prototype", "inverse_inference", "prototypes"]

#: Supported input priors.
PRIORS = ("gaussian", "bernoulli", "empirical")
#: Ways to get the input gradient of ``log p(c*|x)``.
GRADIENTS = ("auto", "autograd", "finite")
#: Bernoulli prior probabilities are clipped to [ε, 1 − ε]: a pixel never on in training has
#: ρ = 0 and logit ρ = −∞, which no evidence could overcome and which makes the KL infinite.
_RHO_CLIP = 1e-4
#: The Gaussian posterior precision is kept ≥ this fraction of the prior precision, so that
#: a direction where log p(c*|x) is convex cannot make s² negative or unbounded (s ≤ 10 σ₀).
_MIN_PRECISION_RATIO = 1e-2
#: Smallest step fraction the line search tries before it gives up.
_MIN_DAMPING = 1e-4
#: Armijo constant: a step must raise the objective by this fraction of its first-order gain.
_ARMIJO = 1e-4
#: Rounding of ``log p(c*|x)`` in nats below which the line search stops trusting J itself: an
#: ONNX model computes in float32, and its log posterior is rough at 1e-7-8e-7 nats (measured
#: along lines on the bundled Myo JSU and SDGM models). Within ~1e-3 prior SDs of the optimum
#: J changes by less than that; its gradient stays smooth (to ~1e-5 SDs of step).
_LOG_P_ROUNDING = 2e-6
#: log p is clipped below at log of this, so an underflowed posterior stays finite.
_TINY_PROBABILITY = 1e-300
#: The empirical prior warns when the reweighted sample rests on fewer windows than this
#: (Kish's effective sample size).
_FEW_EFFECTIVE_SAMPLES = 10.0


@dataclass
class Prototype:
    """The mean-field posterior over inputs for one class.

    Attributes
    ----------
    mean : ndarray, shape (F,)
        Mean input under q: for the Bernoulli prior the probability each input is 1 (``m``),
        for the Gaussian prior ``μ`` (the input the class implies), in raw feature units.
    std : ndarray, shape (F,)
        Per-input standard deviation under q: ``sqrt(m (1 − m))`` or ``s``.
    posterior : ndarray, shape (C,)
        The model's posterior ``p(c | x = mean)`` for every class.
    target : str
        Name of the class ``c*``.
    kl_to_prior : float
        ``KL(q ‖ p₀)`` in nats (closed form): how atypical the implied input is.
    converged : bool
        Whether the largest change of the mean fell below ``tol`` within ``max_iter``.
    n_iter : int
        Iterations run.
    feature_names : list of str
        Names of the F inputs.
    prior : str
        ``"gaussian"`` or ``"bernoulli"``.
    beta : float
        Sharpening exponent β of ``p(c*|x)``.
    n_effective : float
        Empirical prior only: Kish's effective number of reference windows behind the
        prototype, ``1 / Σ w_i²`` (NaN for the other priors).
    """

    mean: np.ndarray
    std: np.ndarray
    posterior: np.ndarray
    target: str
    kl_to_prior: float
    converged: bool
    n_iter: int
    feature_names: list = field(default_factory=list)
    prior: str = "gaussian"
    beta: float = 1.0
    n_effective: float = float("nan")

    @property
    def target_probability(self) -> float:
        """``p(c*|mean)``, the model's posterior of the target class at the mean input."""
        return float(self.posterior[self._target_index])

    _target_index: int = field(default=0, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready numbers (lists and floats)."""
        return {
            "target": self.target,
            "prior": self.prior,
            "beta": self.beta,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "posterior": self.posterior.tolist(),
            "target_probability": self.target_probability,
            "kl_to_prior": self.kl_to_prior,
            "converged": self.converged,
            "n_iter": self.n_iter,
            "feature_names": list(self.feature_names),
            "n_effective": self.n_effective,
        }


# -- the model as seen by the explainer ---------------------------------------------------------


def _class_names(model) -> list[str]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise BiosigError(
            f"{type(model).__name__} has no classes_: inverse inference needs a fitted "
            "classifier (a biosig estimator, an OnnxModel, or anything with predict_proba and "
            "classes_)"
        )
    return [str(c) for c in np.asarray(classes).tolist()]


def _n_features(model) -> int | None:
    names = getattr(model, "feature_names", None)
    if names is not None:
        return len(names)
    n_in = getattr(model, "n_features_in_", None)
    return None if n_in is None else int(n_in)


def _feature_names(model, n_features: int) -> list[str]:
    for attribute in ("feature_names", "feature_names_in_"):
        names = getattr(model, attribute, None)
        if names is not None and len(names) == n_features:
            return [str(n) for n in names]
    return [f"x{i}" for i in range(n_features)]


def _resolve_target(model, target_class) -> tuple[int, str]:
    """Index and name of ``target_class``: a label of ``classes_`` (checked first), its name as
    a string, or an integer index (for integer labels such as digits the label wins)."""
    names = _class_names(model)
    labels = [c for c in np.asarray(model.classes_).tolist()]
    for i, (name, label) in enumerate(zip(names, labels)):
        if target_class == label or (isinstance(target_class, str) and target_class == name):
            return i, name
    is_index = isinstance(target_class, (int, np.integer)) and not isinstance(target_class, bool)
    if is_index and 0 <= int(target_class) < len(names):
        return int(target_class), names[int(target_class)]
    raise BiosigError(f"target_class {target_class!r} is neither a class of the model "
                      f"({', '.join(names)}) nor an index in 0..{len(names) - 1}")


def _training_moments(model) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Training inputs' per-feature mean and variance, where the model records them."""
    card = getattr(model, "card", None)
    if isinstance(card, dict):
        training = card.get("training") or {}
        if "feature_mean" in training and "feature_var" in training:
            return (np.asarray(training["feature_mean"], dtype=np.float64),
                    np.asarray(training["feature_var"], dtype=np.float64))
    # A fitted biosig estimator standardises with the training mean and standard deviation.
    if hasattr(model, "inference_graph") and hasattr(model, "mean_") and hasattr(model, "scale_"):
        return (np.asarray(model.mean_, dtype=np.float64),
                np.asarray(model.scale_, dtype=np.float64) ** 2)
    return None, None


class _FiniteDifferenceGradient:
    """``log p(c*|x)``, its gradient and diagonal Hessian by central differences.

    One ``predict_proba`` call per evaluation, on the ``2F + 1`` rows ``x``, ``x + h_i e_i``,
    ``x − h_i e_i``: the cost is one batched model call, and no torch.
    """

    def __init__(self, model, target: int, step: np.ndarray):
        if not callable(getattr(model, "predict_proba", None)):
            raise BiosigError(f"{type(model).__name__} has no predict_proba")
        self.model = model
        self.target = target
        self.step = step

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        n_features = x.size
        offsets = np.diag(self.step)
        rows = np.concatenate([x[None, :], x + offsets, x - offsets])
        proba = np.asarray(self.model.predict_proba(rows), dtype=np.float64)
        log_p = np.log(np.maximum(proba[:, self.target], _TINY_PROBABILITY))
        centre, plus, minus = log_p[0], log_p[1:n_features + 1], log_p[n_features + 1:]
        gradient = (plus - minus) / (2 * self.step)
        curvature = (plus - 2 * centre + minus) / self.step**2
        return float(centre), gradient, curvature


class _AutogradGradient:
    """Exact ``log p(c*|x)``, gradient and diagonal Hessian through ``inference_graph()``."""

    def __init__(self, model, target: int, need_curvature: bool):
        import torch  # noqa: PLC0415 - only this branch needs torch

        self.torch = torch
        self.graph = model.inference_graph()
        self.target = target
        self.need_curvature = need_curvature

    def _log_p(self, x):
        logits, _ = self.graph(x[None, :])
        return self.torch.log_softmax(logits, dim=-1)[0, self.target]

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        torch = self.torch
        x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        log_p = self._log_p(x_t)
        (gradient,) = torch.autograd.grad(log_p, x_t, create_graph=self.need_curvature)
        if self.need_curvature:
            # Row i of the Hessian is the gradient of ∂_i log p; only its diagonal is used.
            # F backward passes through a small graph: cheap for feature vectors (F ≲ 10³).
            basis = torch.eye(x.size, dtype=torch.float64)
            rows = torch.autograd.grad(gradient, x_t, grad_outputs=basis, is_grads_batched=True)[0]
            curvature = torch.diagonal(rows).detach().numpy().copy()
        else:
            curvature = np.zeros(x.size)
        return float(log_p.detach()), gradient.detach().numpy().copy(), curvature


def _gradient_function(model, target: int, gradient: str, need_curvature: bool,
                       fd_step: np.ndarray):
    has_graph = callable(getattr(model, "inference_graph", None))
    if gradient == "autograd" and not has_graph:
        raise BiosigError(f"gradient='autograd' needs a fitted biosig estimator (with "
                          f"inference_graph()); got a {type(model).__name__}: use 'finite'")
    if gradient == "autograd" or (gradient == "auto" and has_graph):
        return _AutogradGradient(model, target, need_curvature)
    return _FiniteDifferenceGradient(model, target, fd_step)


# -- priors ---------------------------------------------------------------------------------------


def _as_feature_vector(value, name: str, n_features: int | None) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BiosigError(f"{name} must be a vector of numbers") from None
    if array.ndim != 1 or array.size == 0:
        raise BiosigError(f"{name} must be a 1-D vector, got shape {array.shape}")
    if n_features is not None and array.size != n_features:
        raise BiosigError(f"{name} has {array.size} entries; the model has {n_features} features")
    if not np.all(np.isfinite(array)):
        raise BiosigError(f"{name} holds non-finite values")
    return array


def _gaussian_prior(model, prior_mean, prior_var) -> tuple[np.ndarray, np.ndarray]:
    n_features = _n_features(model)
    card_mean, card_var = _training_moments(model)
    if prior_mean is None:
        prior_mean = card_mean
    if prior_var is None:
        prior_var = card_var
    if prior_mean is None or prior_var is None:
        raise BiosigError(
            "the Gaussian prior needs prior_mean and prior_var: this model's card records no "
            "training feature_mean / feature_var (models trained with an older biosig)"
        )
    mean = _as_feature_vector(prior_mean, "prior_mean", n_features)
    var = _as_feature_vector(prior_var, "prior_var", mean.size)
    if np.any(var <= 0):
        raise BiosigError("prior_var must be > 0 for every feature (a constant feature: give it "
                          "a small positive variance)")
    return mean, var


def _bernoulli_prior(model, prior_mean, prior_var) -> np.ndarray:
    if prior_var is not None:
        raise BiosigError("prior_var is for the Gaussian prior; the Bernoulli prior takes only "
                          "prior_mean (the probability each input is 1)")
    if prior_mean is None:
        raise BiosigError("the Bernoulli prior needs prior_mean: the probability ρ_i that input i "
                          "is 1 (e.g. the training pixel means)")
    rho = _as_feature_vector(prior_mean, "prior_mean", _n_features(model))
    if np.any((rho < 0) | (rho > 1)):
        raise BiosigError("prior_mean of the Bernoulli prior holds probabilities in [0, 1]")
    return np.clip(rho, _RHO_CLIP, 1 - _RHO_CLIP)


def gaussian_kl(mean, var, prior_mean, prior_var) -> float:
    """``KL(N(mean, diag var) ‖ N(prior_mean, diag prior_var))`` in nats."""
    ratio = var / prior_var
    return float(0.5 * np.sum(ratio + (mean - prior_mean) ** 2 / prior_var - 1 - np.log(ratio)))


def bernoulli_kl(m, rho) -> float:
    """``KL(Π Bern(m_i) ‖ Π Bern(ρ_i))`` in nats (0 log 0 = 0)."""
    m = np.asarray(m, dtype=np.float64)
    on = np.where(m > 0, m * np.log(np.where(m > 0, m, 1.0) / rho), 0.0)
    off = np.where(m < 1, (1 - m) * np.log(np.where(m < 1, 1 - m, 1.0) / (1 - rho)), 0.0)
    return float(np.sum(on + off))


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free logistic


# -- mean-field iterations ------------------------------------------------------------------------


@dataclass
class _Iteration:
    """Outcome of a mean-field ascent."""

    mean: np.ndarray
    std: np.ndarray
    converged: bool
    n_iter: int


class _Probe(NamedTuple):
    """The mean-field objective J at one point, its gradient, and the fixed-point step."""

    objective: float  # J(x): the negated mean-field free energy, up to a constant
    ascent: np.ndarray  # ∇J(x)
    step: np.ndarray  # undamped (preconditioned) step of the fixed-point map, F(x) − x

    @property
    def slope(self) -> float:
        """Directional derivative ``∇J · step`` (≥ 0: the step ascends J)."""
        return float(self.ascent @ self.step)


def _accept(here: _Probe, there: _Probe, eta: float, noise: float) -> bool:
    """Whether the step ``η · here.step``, which led to ``there``, goes far enough up J.

    Armijo's test on J where J can tell; where the promised gain ``η · slope`` is below J's
    rounding ``noise``, the slope at the end point instead: it must not have turned more
    downhill than it was uphill at the start (for a quadratic, exactly the steps that do not
    lower J). Gradients stay smooth far below the rounding of J itself.
    """
    gain = eta * here.slope
    if there.objective >= here.objective + _ARMIJO * gain:
        return True
    return gain < noise and float(there.ascent @ here.step) >= -(1 - _ARMIJO) * here.slope


def _ascend(probe, start: np.ndarray, *, damping: float, tol: float, max_iter: int,
            unit: np.ndarray, noise: float) -> tuple[np.ndarray, bool, int]:
    """Damped fixed point ``x ← x + η (F(x) − x)`` with a backtracking line search on J.

    The fixed points of the mean-field equations are the stationary points of an objective J
    (:func:`_gaussian_mean_field`, :func:`_bernoulli_mean_field`) and ``F(x) − x`` is an ascent
    direction of J. A step is accepted when J rises enough (:func:`_accept`); otherwise η is
    halved and the step retried. After an accepted step η is doubled again, up to 1.
    Convergence is judged on the *undamped* step, ``max |F(x) − x| / unit < tol``, so a small
    η cannot fake it.

    Why: the earlier plain iteration halved η whenever the step grew, never raised it again,
    and tested the damped change. On the JSU Myo model the step grows for tens of iterations
    while J rises steadily (the path curves into a stiff direction), so η fell to its floor of
    1e-3 and the run crawled past 500 iterations (class 7); other classes stopped as
    "converged" with undamped steps up to 0.1 prior SDs.

    Returns the point, whether it converged, and the accepted iterations.
    """
    x = start.copy()
    here = probe(x)
    eta = damping
    for iteration in range(max_iter):
        if float(np.max(np.abs(here.step) / unit)) < tol:
            return x, True, iteration
        while True:
            trial = x + eta * here.step
            there = probe(trial)
            if _accept(here, there, eta, noise):
                break
            if eta <= _MIN_DAMPING:
                # Not even a tiny step goes up: a finite-difference gradient too far off to
                # point uphill. Going on would only wander.
                logger.debug("inverse inference: line search stalled at iteration %d "
                             "(step %.3g units)", iteration, np.max(np.abs(here.step) / unit))
                return x, False, iteration
            eta = max(eta / 2, _MIN_DAMPING)
        x, here = trial, there
        eta = min(2 * eta, 1.0)
    return x, float(np.max(np.abs(here.step) / unit)) < tol, max_iter


def _bernoulli_mean_field(log_p_gradient, rho, *, beta, damping, tol, max_iter) -> _Iteration:
    """Naive mean field: stationary points of ``J(m) = β log p(c*|m) − KL(m ‖ ρ)``.

    ``∂J/∂m_i = h_i − logit m_i`` with ``h = logit ρ + β ∇ log p(c*|m)``, and ``σ(h_i) − m_i``
    has the sign of ``h_i − logit m_i``: the fixed-point step ascends J.
    """
    prior_field = np.log(rho) - np.log1p(-rho)

    def probe(m):
        log_p, gradient, _ = log_p_gradient(m)
        field_ = prior_field + beta * gradient
        inside = np.clip(m, _RHO_CLIP**2, 1 - _RHO_CLIP**2)  # logit m finite at 0 and 1
        ascent = field_ - (np.log(inside) - np.log1p(-inside))
        objective = beta * log_p - bernoulli_kl(np.clip(m, 0.0, 1.0), rho)
        return _Probe(objective, ascent, _sigmoid(field_) - m)

    m, converged, n_iter = _ascend(probe, rho.copy(), damping=damping, tol=tol,
                                   max_iter=max_iter, unit=np.ones_like(rho),
                                   noise=beta * _LOG_P_ROUNDING)
    m = np.clip(m, 0.0, 1.0)
    return _Iteration(m, np.sqrt(m * (1 - m)), converged, n_iter)


def _gaussian_precision_ratio(curvature, prior_var, beta) -> np.ndarray:
    """``v₀ / s² = 1 − β v₀ ∂²_ii log p``, clipped below (see ``_MIN_PRECISION_RATIO``)."""
    return np.maximum(1.0 - beta * prior_var * curvature, _MIN_PRECISION_RATIO)


def _gaussian_mean_field(log_p_gradient, prior_mean, prior_var, *, beta, damping, tol,
                         max_iter) -> _Iteration:
    """Stationary point of ``J(μ) = β log p(c*|μ) − ½ Σ (μ_i − μ₀_i)² / v₀_i``.

    Its stationarity condition is the mean-field equation ``μ = μ₀ + v₀ β ∇ log p(c*|μ)``;
    the step is that equation's residual with diagonal Newton preconditioning (``s²/v₀ ≤ 1``
    where log p curves down), which keeps a sharply separating model from overshooting.
    """
    def probe(mu):
        log_p, gradient, curvature = log_p_gradient(mu)
        residual = prior_mean + prior_var * beta * gradient - mu  # = v₀ ∇J
        step = residual / np.maximum(_gaussian_precision_ratio(curvature, prior_var, beta), 1.0)
        objective = beta * log_p - 0.5 * float(np.sum((mu - prior_mean) ** 2 / prior_var))
        return _Probe(objective, residual / prior_var, step)

    prior_std = np.sqrt(prior_var)
    mu, converged, n_iter = _ascend(probe, prior_mean.copy(), damping=damping, tol=tol,
                                    max_iter=max_iter, unit=prior_std,
                                    noise=beta * _LOG_P_ROUNDING)
    _, _, curvature = log_p_gradient(mu)
    var = prior_var / _gaussian_precision_ratio(curvature, prior_var, beta)
    return _Iteration(mu, np.sqrt(var), converged, n_iter)


def _empirical_samples(model, prior_samples, prior_mean, prior_var) -> np.ndarray:
    if prior_mean is not None or prior_var is not None:
        raise BiosigError("the empirical prior takes prior_samples (the reference windows), not "
                          "prior_mean / prior_var")
    if prior_samples is None:
        raise BiosigError("the empirical prior needs prior_samples: reference inputs, shape "
                          "(n, n_features), e.g. the training windows or a recent buffer")
    try:
        samples = np.asarray(prior_samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise BiosigError("prior_samples must be a matrix of numbers") from None
    n_features = _n_features(model)
    if samples.ndim != 2 or samples.shape[0] < 2 or (n_features is not None
                                                     and samples.shape[1] != n_features):
        raise BiosigError(f"prior_samples must have shape (n >= 2, {n_features or 'F'}), got "
                          f"{samples.shape}")
    finite = np.all(np.isfinite(samples), axis=1)
    if finite.sum() < 2:
        raise BiosigError("prior_samples has fewer than 2 rows without NaN or inf")
    return samples[finite]


def _empirical_posterior(model, target: int, samples: np.ndarray, beta: float):
    """Exact ``p(x|c*) ∝ p(c*|x)^β p₀(x)`` for ``p₀`` the empirical distribution of ``samples``.

    The posterior is the sample reweighted by ``w_i ∝ p(c*|x_i)^β``: no mean-field
    approximation is needed. Returns mean, std, KL(q ‖ p₀) and the effective sample size.
    """
    proba = np.asarray(model.predict_proba(samples), dtype=np.float64)[:, target]
    log_w = beta * np.log(np.maximum(proba, _TINY_PROBABILITY))
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    mean = w @ samples
    var = w @ (samples - mean) ** 2
    nonzero = w > 0
    kl = float(np.sum(w[nonzero] * np.log(w[nonzero] * samples.shape[0])))
    return mean, np.sqrt(var), kl, float(1.0 / np.sum(w**2))


# -- public API -----------------------------------------------------------------------------------


def _check_settings(prior, beta, damping, tol, max_iter, gradient, fd_step):
    check_option(prior, "prior", PRIORS)
    check_option(gradient, "gradient", GRADIENTS)
    beta = check_positive(beta, "beta", allow_zero=True)
    damping = check_positive(damping, "damping")
    if damping > 1:
        raise BiosigError(f"damping is a step fraction in (0, 1], got {damping:g}")
    return (beta, damping, check_positive(tol, "tol"), check_int(max_iter, "max_iter", minimum=1),
            check_positive(fd_step, "fd_step"))


def inverse_inference(model, target_class, *, prior="gaussian", prior_mean=None, prior_var=None,
                      beta=1.0, damping=0.3, tol=1e-4, max_iter=500, gradient="auto",
                      fd_step=1e-2, prior_samples=None) -> Prototype:
    """Mean-field posterior over inputs given a desired class, ``p(x|c*) ∝ p(c*|x)^β p₀(x)``.

    Parameters
    ----------
    model : fitted classifier
        A fitted :mod:`biosig.nets` estimator (exact gradients by torch autograd through its
        ``inference_graph()``), an :class:`biosig.inference.OnnxModel`, or anything with
        ``predict_proba`` and ``classes_`` (finite differences, torch-free).
    target_class : class name, class label or int
        The class ``c*``: a label from ``model.classes_`` or its string form, or else its
        index (a label matches first: with labels 1, 2, 3 the value 1 is the first class).
    prior : {"gaussian", "bernoulli", "empirical"}
        Input prior ``p₀``: independent Gaussians (continuous features), independent
        Bernoullis (binary inputs), or the empirical distribution of ``prior_samples``. The
        first two are solved by mean field; the empirical posterior is exact (the samples
        reweighted by ``p(c*|x)^β``), and, unlike the other two, keeps the correlations of
        real inputs: with a Gaussian prior the mean-field mean stops where ``p(c*|μ)``
        saturates, near the decision boundary (see docs/explain.md).
    prior_mean : array_like, shape (F,), optional
        Gaussian: prior means ``μ₀`` (default: the training feature means recorded in the
        model card's ``training.feature_mean``, or a biosig estimator's ``mean_``).
        Bernoulli: required, the probabilities ``ρ_i`` that input i is 1 (e.g. the training
        pixel means); clipped to ``[1e-4, 1 − 1e-4]``.
    prior_var : array_like, shape (F,), optional
        Gaussian only: prior variances ``v₀`` > 0 (default: the card's
        ``training.feature_var``, or a biosig estimator's ``scale_**2``).
    beta : float
        Sharpening exponent ≥ 0 of ``p(c*|x)``; 1 is exact Bayes, 0 returns the prior.
    damping : float in (0, 1]
        Initial step fraction η of ``x ← (1 − η) x + η F(x)``; halved whenever the step grows.
    tol : float
        Convergence when the largest change of the mean is below ``tol`` (Bernoulli: in
        probability; Gaussian: in prior standard deviations).
    max_iter : int
        Iteration limit; a run that reaches it is returned with ``converged=False``.
    gradient : {"auto", "autograd", "finite"}
        "auto": autograd for biosig estimators, finite differences otherwise.
    fd_step : float
        Finite-difference step, relative to the prior standard deviation (Gaussian) or in
        input units (Bernoulli). 1e-2 balances truncation against float32 rounding of an ONNX
        model's logits.
    prior_samples : array_like, shape (n, F), optional
        Empirical prior only (required there): reference inputs, e.g. the training windows or
        a recent buffer of live windows. Rows with NaN or inf are left out.

    Returns
    -------
    Prototype

    Raises
    ------
    BiosigError
        For an unknown class, a missing or malformed prior, or a bad setting.
    """
    beta, damping, tol, max_iter, fd_step = _check_settings(prior, beta, damping, tol, max_iter,
                                                            gradient, fd_step)
    target, target_name = _resolve_target(model, target_class)
    if prior != "empirical" and prior_samples is not None:
        raise BiosigError("prior_samples is for prior='empirical'")
    if prior == "empirical":
        return _empirical_prototype(model, target, target_name, beta,
                                    _empirical_samples(model, prior_samples, prior_mean,
                                                       prior_var))
    if prior == "gaussian":
        prior_mu, prior_v = _gaussian_prior(model, prior_mean, prior_var)
        log_p_gradient = _gradient_function(model, target, gradient, True,
                                            fd_step * np.sqrt(prior_v))
        result = _gaussian_mean_field(log_p_gradient, prior_mu, prior_v, beta=beta,
                                      damping=damping, tol=tol, max_iter=max_iter)
        kl = gaussian_kl(result.mean, result.std**2, prior_mu, prior_v)
    else:
        rho = _bernoulli_prior(model, prior_mean, prior_var)
        log_p_gradient = _gradient_function(model, target, gradient, False,
                                            np.full(rho.size, fd_step))
        result = _bernoulli_mean_field(log_p_gradient, rho, beta=beta, damping=damping, tol=tol,
                                       max_iter=max_iter)
        kl = bernoulli_kl(result.mean, rho)
    if not result.converged:
        logger.warning("inverse inference for class %s did not converge in %d iterations; "
                       "lower damping or raise max_iter", target_name, max_iter)
    posterior = np.asarray(model.predict_proba(result.mean[None, :]), dtype=np.float64)[0]
    logger.info("inverse inference %s (%s prior, β=%g): p(c*|mean)=%.3f, KL=%.2f nats, %d iter",
                target_name, prior, beta, posterior[target], kl, result.n_iter)
    return Prototype(mean=result.mean, std=result.std, posterior=posterior, target=target_name,
                     kl_to_prior=kl, converged=result.converged, n_iter=result.n_iter,
                     feature_names=_feature_names(model, result.mean.size), prior=prior,
                     beta=beta, _target_index=target)


def _empirical_prototype(model, target: int, target_name: str, beta: float,
                         samples: np.ndarray) -> Prototype:
    mean, std, kl, n_effective = _empirical_posterior(model, target, samples, beta)
    if n_effective < _FEW_EFFECTIVE_SAMPLES:
        # INFO, not WARNING: live, a class nobody performed lately is the normal case, and
        # Prototype.n_effective tells the caller anyway.
        logger.info("inverse inference for class %s rests on ~%.1f of %d reference windows: "
                    "few look like this class", target_name, n_effective, samples.shape[0])
    posterior = np.asarray(model.predict_proba(mean[None, :]), dtype=np.float64)[0]
    logger.info("inverse inference %s (empirical prior, %d windows, β=%g): p(c*|mean)=%.3f, "
                "KL=%.2f nats, %.1f effective windows", target_name, samples.shape[0], beta,
                posterior[target], kl, n_effective)
    return Prototype(mean=mean, std=std, posterior=posterior, target=target_name,
                     kl_to_prior=kl, converged=True, n_iter=0,
                     feature_names=_feature_names(model, mean.size), prior="empirical",
                     beta=beta, n_effective=n_effective, _target_index=target)


def prototypes(model, **kwargs) -> dict[str, Prototype]:
    """Inverse inference for every class of ``model``.

    Parameters
    ----------
    model : fitted classifier
        As :func:`inverse_inference`.
    **kwargs
        Passed on to :func:`inverse_inference`.

    Returns
    -------
    dict
        Class name → :class:`Prototype`, in ``model.classes_`` order.
    """
    names = _class_names(model)
    return {name: inverse_inference(model, index, **kwargs) for index, name in enumerate(names)}
