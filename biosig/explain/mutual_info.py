"""Mutual information between inputs and outputs, from Gaussian mixtures fitted by EM.

The method is METHODS.md §5 (a reconstruction of the seed report's "semiparametric density
estimation with EM"): for each input ``X_i`` and output ``Y_j``,

1. map each variable by a strictly monotone transform (MI does not change) that makes it more
   Gaussian-mixture-like: logit for probabilities, log/asinh for skewed positive features;
2. fit a 2-D Gaussian mixture ``q(u, v)`` by EM (full covariances, ``K`` in
   ``1..max_components`` chosen by BIC, several k-means++ initialisations);
3. ``I(X_i; Y_j) = E_q[log q(u, v) - log q(u) - log q(v)]``, by Monte Carlo under the fitted
   mixture, with the marginals ``q(u)``, ``q(v)`` in closed form (the marginals of a Gaussian
   mixture are Gaussian mixtures); clipped at 0. A single component has the exact value
   ``-1/2 log(1 - rho^2)``, used directly.

For a discrete class ``C`` (:func:`class_mutual_information`), a 1-D mixture per class gives
``q_c(x)``, ``p(x) = sum_c P(c) q_c(x)`` and ``I(X_i; C) = sum_c P(c) KL(q_c || p)``, which is
``H(X_i) - sum_c P(c) H(X_i | c)`` with both entropies under the fitted mixtures; the KL form
lets every Monte Carlo draw serve both terms.

All values are in nats (divide by ``log 2`` for bits).

Estimator details beyond METHODS.md §5.2, each for a measured reason:

- EM is batched: every pair of a block is one slice of the same numpy arrays. A Gaussian
  log-density is a quadratic form, so the E-step for all components and points is one matrix
  product with the features ``[1, x, y, x^2, xy, y^2]`` and the M-step's sufficient statistics
  another. The live explainer refits 48 x 8 = 384 pairs every ~2 s; one
  ``sklearn.mixture.GaussianMixture`` BIC sweep (K = 1..5, 3 starts) of one pair of 1000 points
  takes ~0.14 s on one core (Python overhead per EM iteration, k-means initialisation), about a
  minute for 384 pairs; batched, one pair costs ~4 ms and 384 pairs ~1 s at live settings
  (``python benchmarks/mi_vs_knn.py``). ``engine="sklearn"`` runs the per-pair sklearn fits
  instead, for cross-checks.
- The BIC sweep stops after the first K that does not lower the BIC (:data:`BIC_PATIENCE`).
- Each variable's covariance floor is at least ``delta^2 / 12``, ``delta`` its smallest gap
  between distinct values (:func:`_variance_floor`): rounded measurements (IRIS is recorded to
  0.1 cm) and counts (zero crossings) otherwise let EM put components on single repeated values,
  which BIC rewards and which inflate the MI.
- Monte Carlo draws are stratified (the same number per component, weighted by ``pi_k``), and
  pairs where BIC chose one component get the exact value instead.

This module imports neither torch nor Qt: it runs in background threads of the live path.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from biosig._checks import BiosigError, check_int, check_option, check_positive

logger = logging.getLogger(__name__)

#: Fewest rows a mutual-information estimate accepts (a 2-D mixture has 5 parameters per
#: component; below this, BIC has nothing to choose from).
MIN_SAMPLES = 20
#: Fewest rows per class in :func:`class_mutual_information`.
MIN_SAMPLES_PER_CLASS = 5
#: Probabilities are clipped to ``[LOGIT_CLIP, 1 - LOGIT_CLIP]`` before the logit (METHODS §5.1).
LOGIT_CLIP = 1e-6
#: ``transform="auto"`` maps a non-negative variable by log/asinh when its skewness exceeds this.
SKEW_THRESHOLD = 1.0
#: ``transform="auto"`` falls back to normal scores of the ranks when a variable is still this
#: heavy-tailed (excess kurtosis) or skewed after the parametric maps: a few Gaussian components
#: cannot follow such tails (e.g. the cube of a Gaussian has excess kurtosis 43).
KURTOSIS_THRESHOLD = 3.0
#: Covariance floor added to every component, as a fraction of each variable's variance
#: (variables are standardised to unit variance before fitting).
REG_COVAR = 1e-4
#: Fewest (weighted) points per mixture component: a larger K is not tried.
MIN_POINTS_PER_COMPONENT = 10
#: A variable whose standard deviation is below this times its magnitude is constant (MI = 0).
_CONSTANT_RTOL = 1e-12
#: EM stops when the mean log-likelihood per point changes by less than this (sklearn's default).
EM_TOL = 1e-3
EM_MAX_ITER = 100
#: k-means iterations between the k-means++ seeds and EM (sklearn's "kmeans" initialisation).
_KMEANS_ITER = 3
#: The BIC sweep stops for a problem after this many successive component counts that did not
#: lower its BIC (the BIC curve of a mixture is nearly always unimodal in K; this skips the
#: costly large-K fits that would lose anyway).
BIC_PATIENCE = 1
#: Upper bound on the elements of one (problems x components x points) array: sets block sizes.
_BLOCK_ELEMENTS = 2_000_000
_LOG_2PI = math.log(2.0 * math.pi)
_TINY = 10.0 * np.finfo(np.float64).eps

TRANSFORMS = ("auto", "none", "rank")
OUTPUTS = ("posterior", "logit")
ENGINES = ("numpy", "sklearn")


# -- results ---------------------------------------------------------------------------------


class MIWithCI(NamedTuple):
    """A mutual-information estimate with its bootstrap percentile interval, in nats.

    Unpacks as ``mi, lower, upper = ...``; all three have the same shape.
    """

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass
class ModelMIResult:
    """Mutual information between a model's inputs and outputs over a reference sample.

    Attributes
    ----------
    mi : ndarray, shape (n_features, n_outputs)
        Pairwise ``I(X_i; Y_j)`` in nats, ``Y_j`` the posterior (or logit) of output ``j``.
    lower, upper : ndarray or None
        Bootstrap percentile interval of ``mi`` (None unless requested).
    feature_names, output_names : list of str
        Row and column labels of ``mi``.
    output : str
        ``"posterior"`` or ``"logit"``: which output the columns are.
    class_mi : float
        ``I(X; C_hat) = H(E_x p(.|x)) - E_x H(p(.|x))`` in nats: information the whole input
        carries about the predicted class (exact given the sample; ``0 <= class_mi <= log C``).
    predictive_entropy, expected_entropy : float
        The two terms of ``class_mi``, in nats.
    n_samples : int
        Size of the reference sample.
    """

    mi: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    feature_names: list[str]
    output_names: list[str]
    output: str
    class_mi: float
    predictive_entropy: float
    expected_entropy: float
    n_samples: int

    def ranking(self, output: int | str | None = None) -> list[tuple[str, float]]:
        """Features by decreasing MI with one output (by index or name), or with any output.

        Returns
        -------
        list of (feature name, MI in nats)
        """
        if output is None:
            scores = self.mi.max(axis=1)
        else:
            j = self.output_names.index(output) if isinstance(output, str) else int(output)
            scores = self.mi[:, j]
        order = np.argsort(-scores, kind="stable")
        return [(self.feature_names[i], float(scores[i])) for i in order]

    def to_dict(self) -> dict:
        """Plain-JSON form (lists and floats), values in nats."""
        out = {
            "units": "nats",
            "output": self.output,
            "feature_names": list(self.feature_names),
            "output_names": list(self.output_names),
            "mi": self.mi.tolist(),
            "class_mi": self.class_mi,
            "predictive_entropy": self.predictive_entropy,
            "expected_entropy": self.expected_entropy,
            "n_samples": self.n_samples,
        }
        if self.lower is not None:
            out["lower"] = self.lower.tolist()
            out["upper"] = self.upper.tolist()
        return out

    def __repr__(self) -> str:
        top = ", ".join(f"{name} {value:.2f}" for name, value in self.ranking()[:3])
        return (
            f"<ModelMIResult | {len(self.feature_names)} features x {len(self.output_names)} "
            f"{self.output}s | n={self.n_samples} | I(X;C)={self.class_mi:.3f} nats | top: {top}>"
        )


@dataclass
class _Mixtures:
    """A batch of Gaussian mixtures, padded to a common component count.

    Padding components have weight 0 (``log_weights = -inf``) and identity covariance.
    """

    log_weights: np.ndarray  # (B, K)
    means: np.ndarray  # (B, K, d)
    covs: np.ndarray  # (B, K, d, d)
    n_components: np.ndarray  # (B,) components actually used

    def take(self, index) -> _Mixtures:
        return _Mixtures(self.log_weights[index], self.means[index], self.covs[index],
                         self.n_components[index])

    def marginal(self, dim: int) -> _Mixtures:
        """The 1-D marginal mixture of coordinate ``dim`` (exact)."""
        return _Mixtures(self.log_weights, self.means[..., dim:dim + 1],
                         self.covs[..., dim:dim + 1, dim:dim + 1], self.n_components)


# -- input checks ----------------------------------------------------------------------------


def _check_matrix(data, name: str, *, n_rows: int | None = None) -> np.ndarray:
    """Return ``data`` as float64 (n, m); 1-D becomes one column. Refuse non-finite or short."""
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise BiosigError(f"{name} must be a numeric array") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise BiosigError(f"{name} must be 2-D (n_samples, n_variables), got shape {arr.shape}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise BiosigError(f"{name} has {arr.shape[0]} rows but X has {n_rows}")
    if arr.shape[0] < MIN_SAMPLES:
        raise BiosigError(f"{name} needs at least {MIN_SAMPLES} samples, got {arr.shape[0]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BiosigError(
            f"{name} has {int(bad.sum())} non-finite values (first at row {row}, column {col})"
        )
    return arr


def _check_common(max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap, return_ci):
    """Validate the options shared by the public functions; return them normalised."""
    max_components = check_int(max_components, "max_components", minimum=1)
    n_mc = check_int(n_mc, "n_mc", minimum=100)
    n_init = check_int(n_init, "n_init", minimum=1)
    n_jobs = _resolve_n_jobs(n_jobs)
    confidence = check_positive(confidence, "confidence")
    if confidence >= 1:
        raise BiosigError(f"confidence must be in (0, 1), got {confidence!r}")
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    if return_ci and n_bootstrap < 10:
        raise BiosigError(f"return_ci=True needs n_bootstrap >= 10, got {n_bootstrap}")
    return max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap


def _resolve_n_jobs(n_jobs) -> int:
    """None -> 1 thread; -1 -> one per CPU; else a positive count (as in scikit-learn)."""
    if n_jobs is None:
        return 1
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise BiosigError(f"n_jobs must be a positive integer or -1, got {n_jobs}")
    return n_jobs


def _as_seed_source(random_state) -> np.random.Generator:
    """A numpy Generator from None, an int, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise BiosigError(
            f"random_state must be None, an int or a numpy Generator, got {random_state!r}"
        ) from None


def _column_names(names, count: int, default_prefix: str, name: str) -> list[str]:
    if names is None:
        return [f"{default_prefix}{k}" for k in range(count)]
    names = [str(n) for n in names]
    if len(names) != count:
        raise BiosigError(f"{name} has {len(names)} names for {count} columns")
    return names


# -- monotone transforms ---------------------------------------------------------------------


def _skewness(values: np.ndarray) -> float:
    centred = values - values.mean()
    spread = np.sqrt(np.mean(centred**2))
    if spread == 0:
        return 0.0
    return float(np.mean(centred**3) / spread**3)


def _excess_kurtosis(values: np.ndarray) -> float:
    centred = values - values.mean()
    variance = np.mean(centred**2)
    if variance == 0:
        return 0.0
    return float(np.mean(centred**4) / variance**2 - 3.0)


def _logit(values: np.ndarray) -> np.ndarray:
    p = np.clip(values, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _rank_gauss(values: np.ndarray) -> np.ndarray:
    """Normal scores ``Phi^-1(rank / (n + 1))``: marginally Gaussian, strictly monotone."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    return ndtri(rankdata(values) / (len(values) + 1.0))


def _auto_transform(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Pick a strictly monotone map making ``values`` more Gaussian-like; return it and its name.

    1. Probabilities (all in [0, 1], more than two distinct values) get the logit.
    2. A non-negative variable skewed beyond :data:`SKEW_THRESHOLD` gets ``log`` (all > 0) or
       ``asinh(x / s)`` (zeros present; ``s`` the median positive value), if that reduces the
       skewness.
    3. If the result is still skewed beyond :data:`SKEW_THRESHOLD` or heavy-tailed beyond
       :data:`KURTOSIS_THRESHOLD`, normal scores of the ranks replace it.
    """
    mapped, label = values, "none"
    low, high = values.min(), values.max()
    if low >= 0.0 and high <= 1.0 and np.unique(values[:64]).size > 2:
        mapped, label = _logit(values), "logit"
    elif low >= 0.0 and _skewness(values) > SKEW_THRESHOLD:
        if low > 0.0:
            candidate, name = np.log(values), "log"
        else:
            scale = np.median(values[values > 0]) if np.any(values > 0) else 1.0
            candidate, name = np.arcsinh(values / scale), "asinh"
        if abs(_skewness(candidate)) < _skewness(values):
            mapped, label = candidate, name
    if (abs(_skewness(mapped)) > SKEW_THRESHOLD
            or _excess_kurtosis(mapped) > KURTOSIS_THRESHOLD):
        return _rank_gauss(values), "rank"
    return mapped, label


def _transform_columns(data: np.ndarray, transform, name: str) -> tuple[np.ndarray, list[str]]:
    """Apply ``transform`` ("auto", "none", "rank" or a callable) to each column."""
    if callable(transform):
        out = np.empty_like(data)
        for k in range(data.shape[1]):
            mapped = np.asarray(transform(data[:, k]), dtype=np.float64)
            if mapped.shape != data[:, k].shape or not np.all(np.isfinite(mapped)):
                raise BiosigError(
                    f"transform must map each column of {name} to a finite array of the same "
                    f"length (column {k} gave shape {mapped.shape})"
                )
            out[:, k] = mapped
        return out, ["callable"] * data.shape[1]
    check_option(transform, "transform", TRANSFORMS)
    if transform == "none":
        return data, ["none"] * data.shape[1]
    if transform == "rank":
        return np.column_stack([_rank_gauss(c) for c in data.T]), ["rank"] * data.shape[1]
    columns, labels = zip(*(_auto_transform(c) for c in data.T))
    return np.column_stack(columns), list(labels)


def _split_transform(transform):
    """``transform`` may be one spec for X and Y, or a pair ``(for X, for Y)``."""
    if isinstance(transform, tuple):
        if len(transform) != 2:
            raise BiosigError("transform as a tuple must be (transform for X, transform for Y)")
        return transform
    return transform, transform


def _standardise(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns to zero mean, unit variance; return them and a mask of constant columns."""
    mean = data.mean(axis=0)
    std = data.std(axis=0)
    constant = std <= _CONSTANT_RTOL * np.maximum(1.0, np.abs(mean))
    return (data - mean) / np.where(constant, 1.0, std), constant


def _variance_floor(standardised: np.ndarray) -> np.ndarray:
    """Per-column variance floor for the mixture components, in standardised units.

    ``max(REG_COVAR, delta^2 / 12)`` with ``delta`` the smallest gap between distinct values:
    a variable recorded at a resolution ``delta`` (rounded measurements, counts such as zero
    crossings) carries at least the quantisation noise of a uniform on one step. Without the
    floor, EM collapses components onto single repeated values, BIC rewards those spikes and
    the MI is inflated. For continuous data the gap is tiny and the floor is ``REG_COVAR``.
    """
    floors = np.full(standardised.shape[1], REG_COVAR)
    for k, column in enumerate(standardised.T):
        gaps = np.diff(np.unique(column))
        if gaps.size:
            floors[k] = max(REG_COVAR, float(gaps.min()) ** 2 / 12.0)
    return floors


def _warn_if_discrete(data: np.ndarray, name: str) -> None:
    """Continuous MI of a variable with few distinct values is not meaningful: say so once."""
    for k, column in enumerate(data.T):
        distinct = np.unique(column).size
        if 1 < distinct <= 10:
            logger.warning(
                "%s[:, %d] takes only %d distinct values; a Gaussian mixture treats it as "
                "continuous and its MI can be inflated (use class_mutual_information for a "
                "discrete variable)", name, k, distinct,
            )


# -- batched EM for 1-D and 2-D Gaussian mixtures --------------------------------------------


# A Gaussian log-density is a quadratic form in x. With the per-point "design" features
# phi(x) = [1, x, x^2] (1-D) or [1, x, y, x^2, xy, y^2] (2-D), the log-density of every component
# at every point is one batched matrix product coefficients @ phi^T, and the M-step's sufficient
# statistics are one product (weighted responsibilities) @ phi. Expanding the quadratic costs a
# little precision (terms ~1e5 for the tightest components at |x| ~ 3), far below what matters.


def _design(points: np.ndarray) -> np.ndarray:
    """Quadratic features of each point: (B, n, d) -> (B, n, 3) for d = 1, (B, n, 6) for d = 2."""
    x = points[..., 0]
    if points.shape[-1] == 1:
        return np.stack([np.ones_like(x), x, x * x], axis=-1)
    y = points[..., 1]
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)


def _log_density_coefficients(log_weights, means, covs) -> np.ndarray:
    """Coefficients ``c`` with ``log pi_k + log N(x; mu_k, Sigma_k) = c_k . phi(x)``: (B, K, m)."""
    if means.shape[-1] == 1:
        var = covs[..., 0, 0]
        mu = means[..., 0]
        precision = 1.0 / var
        constant = log_weights - 0.5 * (np.log(var) + _LOG_2PI + mu * mu * precision)
        return np.stack([constant, mu * precision, -0.5 * precision], axis=-1)
    a, b, c = covs[..., 0, 0], covs[..., 0, 1], covs[..., 1, 1]
    det = a * c - b * b
    # Precision matrix [[p11, p12], [p12, p22]] of a 2x2 covariance, in closed form.
    p11, p12, p22 = c / det, -b / det, a / det
    mx, my = means[..., 0], means[..., 1]
    lin_x = p11 * mx + p12 * my
    lin_y = p12 * mx + p22 * my
    constant = log_weights - 0.5 * (np.log(det) + 2.0 * _LOG_2PI + mx * lin_x + my * lin_y)
    return np.stack([constant, lin_x, lin_y, -0.5 * p11, -p12, -0.5 * p22], axis=-1)


def _weighted_log_terms(design, log_weights, means, covs) -> np.ndarray:
    """``log pi_k + log N(x_n; mu_k, Sigma_k)``: (B, K, n). Weight-0 components give -inf."""
    coefficients = _log_density_coefficients(log_weights, means, covs)
    finite = np.isfinite(coefficients[..., 0])
    log_terms = np.matmul(np.where(finite[..., None], coefficients, 0.0),
                          design.transpose(0, 2, 1))
    return np.where(finite[..., None], log_terms, -np.inf)


def _normalise_components(log_terms: np.ndarray):
    """``log sum_k exp(log_terms)`` (B, n) and the responsibilities (B, K, n) in one pass."""
    peak = log_terms.max(axis=1, keepdims=True)
    scaled = np.exp(log_terms - peak)
    total = scaled.sum(axis=1, keepdims=True)
    return (peak + np.log(total))[:, 0, :], scaled / total


def _mixture_log_density(points: np.ndarray, mix: _Mixtures) -> np.ndarray:
    """``log q(x)`` of each point under each problem's mixture: (B, n)."""
    log_terms = _weighted_log_terms(_design(points), mix.log_weights, mix.means, mix.covs)
    peak = log_terms.max(axis=1)
    return peak + np.log(np.exp(log_terms - peak[:, None, :]).sum(axis=1))


def _m_step(design, weights, resp, reg, fallback_means):
    """Weighted maximum-likelihood mixture parameters from responsibilities.

    ``reg`` (B, d) is the variance floor of each problem's coordinates. A component with (almost)
    no weight keeps ``fallback_means`` and a unit covariance, so it can still pick up points
    later instead of producing NaNs. Moments are one-pass (``E[xx'] - mu mu'``): on
    standardised data the cancellation error (~1e-15) is far below the floor.
    """
    d = fallback_means.shape[-1]
    stats = np.matmul(resp * weights[:, None, :], design)  # (B, K, m) sufficient statistics
    counts = stats[..., 0]
    empty = counts < _TINY
    safe_counts = np.where(empty, 1.0, counts)[..., None]
    moments = stats[..., 1:] / safe_counts
    means = np.where(empty[..., None], fallback_means, moments[..., :d])
    if d == 1:
        var = np.maximum(moments[..., 1] - means[..., 0] ** 2, 0.0) + reg[:, None, 0]
        covs = var[..., None, None]
    else:
        mx, my = means[..., 0], means[..., 1]
        var_x = np.maximum(moments[..., 2] - mx * mx, 0.0) + reg[:, None, 0]
        cov_xy = moments[..., 3] - mx * my
        var_y = np.maximum(moments[..., 4] - my * my, 0.0) + reg[:, None, 1]
        covs = np.stack([np.stack([var_x, cov_xy], -1), np.stack([cov_xy, var_y], -1)], -2)
    covs = np.where(empty[..., None, None], np.eye(d), covs)
    total = weights.sum(axis=1, keepdims=True)
    log_weights = np.log(np.maximum(counts, _TINY) / total)
    return log_weights, means, covs


def _em_step(design, weights, log_weights, means, covs, reg):
    """One E-step + M-step; returns the new parameters and the weighted mean log-likelihood."""
    log_density, resp = _normalise_components(
        _weighted_log_terms(design, log_weights, means, covs))
    mean_loglik = (weights * log_density).sum(axis=1) / weights.sum(axis=1)
    return (*_m_step(design, weights, resp, reg, means), mean_loglik)


def _run_em(points, weights, log_weights, means, covs, reg, *, tol=EM_TOL,
            max_iter=EM_MAX_ITER):
    """EM from the given parameters until each problem's mean log-likelihood settles.

    Problems that have converged leave the working set, so one slow problem does not make the
    whole batch pay for its iterations.

    Returns
    -------
    log_weights, means, covs, mean_loglik (per problem, at the returned parameters), n_iter
    """
    B = points.shape[0]
    out = [log_weights.copy(), means.copy(), covs.copy()]
    loglik = np.full(B, -np.inf)
    active = np.arange(B)
    work = [_design(points), weights, log_weights, means, covs, reg]
    previous = np.full(B, -np.inf)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new_lw, new_means, new_covs, current = _em_step(*work)
        # ``current`` is the log-likelihood of the parameters that went in: keep those with it.
        done = np.abs(current - previous) < tol
        if n_iter == max_iter:
            done[:] = True
        if done.any():
            finished = active[done]
            for slot, value in zip(out, work[2:5]):
                slot[finished] = value[done]
            loglik[finished] = current[done]
            keep = ~done
            active = active[keep]
            if active.size == 0:
                break
            work = [work[0][keep], work[1][keep], new_lw[keep], new_means[keep], new_covs[keep],
                    work[5][keep]]
            previous = current[keep]
        else:
            work = [work[0], work[1], new_lw, new_means, new_covs, work[5]]
            previous = current
    return out[0], out[1], out[2], loglik, n_iter


def _weighted_choice(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``weights`` (B, n), drawn with probability proportional to it."""
    cumulative = np.cumsum(weights, axis=1)
    target = rng.random(weights.shape[0]) * cumulative[:, -1]
    index = (cumulative < target[:, None]).sum(axis=1)
    return np.minimum(index, weights.shape[1] - 1)


def _kmeans_init(points, weights, n_components, rng, reg):
    """k-means++ seeds, a few weighted Lloyd iterations, then a hard-assignment M-step."""
    B, n, d = points.shape
    rows = np.arange(B)
    squared_norms = (points * points).sum(axis=2)  # (B, n)

    def squared_distance_to(centre):  # (B, d) -> (B, n)
        return (squared_norms - 2.0 * np.einsum("bnd,bd->bn", points, centre)
                + (centre * centre).sum(axis=1)[:, None])

    centres = np.empty((B, n_components, d))
    centres[:, 0] = points[rows, _weighted_choice(weights, rng)]
    closest = squared_distance_to(centres[:, 0])
    for k in range(1, n_components):
        centres[:, k] = points[rows, _weighted_choice(weights * np.maximum(closest, 0.0), rng)]
        closest = np.minimum(closest, squared_distance_to(centres[:, k]))
    component_ids = np.arange(n_components)[None, :, None]
    for _ in range(_KMEANS_ITER if n_components > 1 else 1):
        # argmin_k |x - c_k|^2 = argmin_k (|c_k|^2 - 2 c_k.x): |x|^2 does not matter.
        scores = ((centres * centres).sum(axis=2)[:, :, None]
                  - 2.0 * np.matmul(centres, points.transpose(0, 2, 1)))
        labels = scores.argmin(axis=1)
        weighted = (labels[:, None, :] == component_ids) * weights[:, None, :]
        counts = weighted.sum(axis=2)
        moved = np.matmul(weighted, points) / np.maximum(counts, _TINY)[..., None]
        centres = np.where((counts > _TINY)[..., None], moved, centres)
    resp = (labels[:, None, :] == component_ids).astype(np.float64)
    return _m_step(_design(points), weights, resp, reg, centres)


def _n_parameters(n_components: int, d: int) -> int:
    return n_components * (1 + d + d * (d + 1) // 2) - 1


def _fit_mixtures_bic(points, weights, reg, max_components, n_init, rng) -> _Mixtures:
    """Fit 1..max_components mixtures to each problem by EM; keep the lowest BIC per problem.

    Parameters
    ----------
    points : ndarray, shape (B, n, d)
        Standardised data, one problem per row.
    weights : ndarray, shape (B, n)
        Non-negative point weights (0 = padding, counts = bootstrap resample).
    reg : ndarray, shape (B, d)
        Variance floor per problem and coordinate (:func:`_variance_floor`).
    """
    B, n, d = points.shape
    total = weights.sum(axis=1)
    largest_k = np.maximum(1, np.floor(total / MIN_POINTS_PER_COMPONENT)).astype(int)
    best_bic = np.full(B, np.inf)
    worse_in_a_row = np.zeros(B, dtype=int)
    mix = _Mixtures(
        np.full((B, max_components), -np.inf),
        np.zeros((B, max_components, d)),
        np.broadcast_to(np.eye(d), (B, max_components, d, d)).copy(),
        np.zeros(B, dtype=int),
    )
    for k in range(1, max_components + 1):
        todo = np.flatnonzero((largest_k >= k) & (worse_in_a_row < BIC_PATIENCE))
        if todo.size == 0:
            break
        # One component has a closed-form fit: a single EM pass from any start gives it.
        inits = 1 if k == 1 else n_init
        rep_points = np.repeat(points[todo], inits, axis=0)
        rep_weights = np.repeat(weights[todo], inits, axis=0)
        rep_reg = np.repeat(reg[todo], inits, axis=0)
        params = _kmeans_init(rep_points, rep_weights, k, rng, rep_reg)
        log_w, means, covs, loglik, n_iter = _run_em(rep_points, rep_weights, *params, rep_reg)
        pick = loglik.reshape(todo.size, inits).argmax(axis=1) + np.arange(todo.size) * inits
        bic = -2.0 * loglik[pick] * total[todo] + _n_parameters(k, d) * np.log(total[todo])
        better = bic < best_bic[todo]
        worse_in_a_row[todo] = np.where(better, 0, worse_in_a_row[todo] + 1)
        chosen, source = todo[better], pick[better]
        best_bic[chosen] = bic[better]
        mix.log_weights[chosen] = -np.inf
        mix.log_weights[chosen, :k] = log_w[source]
        mix.means[chosen, :k] = means[source]
        mix.covs[chosen] = np.eye(d)
        mix.covs[chosen, :k] = covs[source]
        mix.n_components[chosen] = k
        logger.debug("EM K=%d: %d problems x %d inits, %d iterations", k, todo.size, inits, n_iter)
    return mix


def _fit_mixtures_sklearn(points, weights, reg, max_components, n_init, rng):
    """Reference engine: one ``sklearn.mixture.GaussianMixture`` per problem and K (slow).

    Weights must be integer counts (sklearn has no sample weights): points are repeated.
    """
    from sklearn.mixture import GaussianMixture

    B, n, d = points.shape
    mix = _Mixtures(
        np.full((B, max_components), -np.inf),
        np.zeros((B, max_components, d)),
        np.broadcast_to(np.eye(d), (B, max_components, d, d)).copy(),
        np.zeros(B, dtype=int),
    )
    for b in range(B):
        data = np.repeat(points[b], np.rint(weights[b]).astype(int), axis=0)
        largest_k = max(1, min(max_components, len(data) // MIN_POINTS_PER_COMPONENT))
        fits = [
            GaussianMixture(k, covariance_type="full", reg_covar=float(reg[b].max()), n_init=n_init,
                            random_state=int(rng.integers(2**31 - 1))).fit(data)
            for k in range(1, largest_k + 1)
        ]
        best = min(fits, key=lambda g: g.bic(data))
        k = best.n_components
        mix.log_weights[b, :k] = np.log(best.weights_)
        mix.means[b, :k] = best.means_
        mix.covs[b, :k] = best.covariances_
        mix.n_components[b] = k
    return mix


# -- Monte Carlo under the fitted mixtures ---------------------------------------------------


def _sample_components(mix: _Mixtures, per_component: int, rng: np.random.Generator):
    """``per_component`` draws from every component of each mixture: (B, K, per_component, d).

    Stratified sampling: an expectation under the mixture is ``sum_k pi_k E_k[f]``, estimated
    from the same number of draws per component. It is unbiased, has no component-choice
    variance, and keeps the batch rectangular.
    """
    B, K, d = mix.means.shape
    normal = rng.standard_normal((B, K, per_component, d))
    means = mix.means[:, :, None, :]
    if d == 1:
        return means + np.sqrt(mix.covs[:, :, None, :, 0]) * normal
    # Cholesky factor of a 2x2 covariance in closed form.
    a, b, c = (mix.covs[:, :, None, i, j] for i, j in ((0, 0), (0, 1), (1, 1)))
    l11 = np.sqrt(a)
    l21 = b / l11
    l22 = np.sqrt(np.maximum(c - l21 * l21, _TINY))
    x = l11 * normal[..., 0]
    y = l21 * normal[..., 0] + l22 * normal[..., 1]
    return means + np.stack([x, y], axis=-1)


def _mixture_expectation(mix: _Mixtures, per_component_sums: np.ndarray, per_component: int):
    """``sum_k pi_k mean_s f(x_ks)`` from per-component sums (B, K); weight-0 padding drops."""
    weights = np.exp(mix.log_weights)
    return np.where(weights > 0, weights * per_component_sums, 0.0).sum(axis=1) / per_component


def _draw_chunks(n_draws: int, chunk: int):
    for start in range(0, n_draws, chunk):
        yield min(chunk, n_draws - start)


def _pairwise_mi(mix: _Mixtures, n_mc: int, rng: np.random.Generator) -> np.ndarray:
    """``E_q[log q(u,v) - log q(u) - log q(v)]`` per 2-D mixture; (B,) nats, clipped at 0.

    A single Gaussian has the exact value ``-1/2 log(1 - rho^2)``, used where BIC chose K = 1
    (no Monte Carlo noise, no cost); larger mixtures go by Monte Carlo, grouped by K so that no
    work is spent on padding components.
    """
    mi = np.zeros(mix.n_components.shape[0])
    single = np.flatnonzero(mix.n_components == 1)
    cov = mix.covs[single, 0]
    mi[single] = -0.5 * np.log1p(-cov[:, 0, 1] ** 2 / (cov[:, 0, 0] * cov[:, 1, 1]))
    for k in np.unique(mix.n_components[mix.n_components > 1]):
        todo = np.flatnonzero(mix.n_components == k)
        sub = _Mixtures(mix.log_weights[todo, :k], mix.means[todo, :k], mix.covs[todo, :k],
                        mix.n_components[todo])
        per_component = -(-n_mc // k)
        sums = np.zeros((todo.size, k))
        for size in _draw_chunks(per_component, _mc_chunk(todo.size * k, k)):
            draws = _sample_components(sub, size, rng).reshape(todo.size, k * size, 2)
            log_ratio = (_mixture_log_density(draws, sub)
                         - _mixture_log_density(draws[..., :1], sub.marginal(0))
                         - _mixture_log_density(draws[..., 1:], sub.marginal(1)))
            sums += log_ratio.reshape(todo.size, k, size).sum(axis=2)
        mi[todo] = _mixture_expectation(sub, sums, per_component)
    return np.maximum(mi, 0.0)


def _mc_chunk(n_draw_sets: int, n_components: int) -> int:
    """Draws per component per chunk, so that (sets x draws x components) stays bounded."""
    return max(64, _BLOCK_ELEMENTS // max(1, n_draw_sets * n_components))


def _class_mi(class_mix: _Mixtures, class_prob: np.ndarray, n_mc: int,
              rng: np.random.Generator) -> np.ndarray:
    """``sum_c P(c) E_{q_c}[log q_c(x) - log p(x)]`` per feature; (F,) nats, clipped at 0.

    Parameters
    ----------
    class_mix : _Mixtures
        1-D mixtures of batch size ``F * C`` (feature-major): ``q_c`` of feature ``f``.
    class_prob : ndarray, shape (F, C)
        Class probabilities ``P(c)`` (they may differ between bootstrap replicates).
    n_mc : int
        Draws per class and feature (shared among its components).
    """
    F, C = class_prob.shape
    K = class_mix.means.shape[1]
    # p(x) = sum_c P(c) q_c(x): one mixture of C*K components per feature.
    with np.errstate(divide="ignore"):
        log_prob = np.log(class_prob)
    pooled = _Mixtures(
        (class_mix.log_weights.reshape(F, C, K) + log_prob[..., None]).reshape(F, C * K),
        class_mix.means.reshape(F, C * K, 1),
        class_mix.covs.reshape(F, C * K, 1, 1),
        class_mix.n_components.reshape(F, C).sum(axis=1),
    )
    per_component = -(-n_mc // int(class_mix.n_components.max()))
    sums = np.zeros((F * C, K))
    for size in _draw_chunks(per_component, _mc_chunk(F * C * K, C * K)):
        draws = _sample_components(class_mix, size, rng)  # (F*C, K, size, 1)
        own = _mixture_log_density(draws.reshape(F * C, K * size, 1), class_mix)
        mixed = _mixture_log_density(draws.reshape(F, C * K * size, 1), pooled)
        sums += (own - mixed.reshape(F * C, K * size)).reshape(F * C, K, size).sum(axis=2)
    kl = _mixture_expectation(class_mix, sums, per_component).reshape(F, C)
    mi = np.where(class_prob > 0, class_prob * kl, 0.0).sum(axis=1)
    return np.maximum(mi, 0.0)


# -- blocks and threads ----------------------------------------------------------------------


def _run_blocks(task, n_items: int, block: int, n_jobs: int, random_state) -> list:
    """Run ``task(start, stop, rng)`` over fixed blocks of items, on ``n_jobs`` threads.

    Blocks and their seeds depend only on ``n_items`` and ``block``, so results are the same
    for any ``n_jobs``. numpy releases the GIL in the large array operations EM is made of.
    """
    starts = list(range(0, n_items, block))
    seeds = _as_seed_source(random_state).integers(0, 2**63 - 1, size=len(starts))
    jobs = [(s, min(s + block, n_items), np.random.default_rng(seed))
            for s, seed in zip(starts, seeds)]
    if n_jobs == 1 or len(jobs) == 1:
        return [task(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=min(n_jobs, len(jobs))) as pool:
        return list(pool.map(lambda job: task(*job), jobs))


def _block_size(n_points: int, n_components: int, n_init: int) -> int:
    return int(np.clip(_BLOCK_ELEMENTS // max(1, n_points * n_components * n_init), 1, 64))


def _bootstrap_weights(n: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Row 0: all ones (the estimate itself); rows 1..B: multinomial resample counts."""
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(np.float64)
    return np.vstack([np.ones((1, n)), counts])


def _percentile_interval(replicates: np.ndarray, confidence: float):
    """Percentile bootstrap interval over axis 0."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    return np.percentile(replicates, [tail, 100.0 - tail], axis=0)


# -- pairwise MI core ------------------------------------------------------------------------


def _refit_warm(points, weights, reg, previous: _Mixtures) -> _Mixtures:
    """EM from ``previous`` mixtures (same component counts) on new data: the live refresh.

    When the buffer has barely drifted, EM confirms the old fit in two or three iterations.
    """
    mix = _Mixtures(previous.log_weights.copy(), previous.means.copy(), previous.covs.copy(),
                    previous.n_components.copy())
    for k in np.unique(previous.n_components):
        todo = np.flatnonzero(previous.n_components == k)
        log_w, means, covs, _, _ = _run_em(
            points[todo], weights[todo], previous.log_weights[todo, :k],
            previous.means[todo, :k], previous.covs[todo, :k], reg[todo])
        mix.log_weights[todo, :k], mix.means[todo, :k], mix.covs[todo, :k] = log_w, means, covs
    return mix


def _concat_mixtures(parts: list[_Mixtures]) -> _Mixtures:
    return _Mixtures(*(np.concatenate([getattr(m, name) for m in parts])
                       for name in ("log_weights", "means", "covs", "n_components")))


def _pairwise_mi_matrix(u, v, replicate_weights, *, max_components, n_mc, n_init, n_jobs,
                        random_state, engine="numpy", warm_start: _Mixtures | None = None):
    """MI of every (column of u, column of v) pair, per weight row.

    ``u`` and ``v`` are transformed and standardised already. With ``warm_start`` (the mixtures
    of a previous call with one weight row, pair-major), EM restarts from them at their
    component counts instead of the BIC sweep.

    Returns
    -------
    mi : ndarray, shape (R, n_u, n_v)
        Nats.
    mixtures : _Mixtures
        The fitted mixtures, batch order (replicate, i, j).
    """
    floor_u, floor_v = _variance_floor(u), _variance_floor(v)
    n, n_u = u.shape
    n_v = v.shape[1]
    n_rep = replicate_weights.shape[0]
    n_problems = n_rep * n_u * n_v
    fit = _fit_mixtures_bic if engine == "numpy" else _fit_mixtures_sklearn

    def task(start, stop, rng):
        flat = np.arange(start, stop)
        rep, rest = np.divmod(flat, n_u * n_v)
        i, j = np.divmod(rest, n_v)
        points = np.stack([u[:, i].T, v[:, j].T], axis=-1)  # (B, n, 2)
        reg = np.stack([floor_u[i], floor_v[j]], axis=-1)
        if warm_start is None:
            mix = fit(points, replicate_weights[rep], reg, max_components, n_init, rng)
        else:
            mix = _refit_warm(points, replicate_weights[rep], reg, warm_start.take(flat))
        return _pairwise_mi(mix, n_mc, rng), mix

    block = _block_size(n, max_components, n_init)
    results = _run_blocks(task, n_problems, block, n_jobs, random_state)
    mi = np.concatenate([r[0] for r in results]).reshape(n_rep, n_u, n_v)
    mixtures = _concat_mixtures([r[1] for r in results])
    logger.debug("pairwise MI: %d fits (%s), components: %s", n_problems,
                 "warm" if warm_start is not None else "BIC sweep",
                 np.bincount(mixtures.n_components, minlength=max_components + 1)[1:].tolist())
    return mi, mixtures


# -- public API ------------------------------------------------------------------------------


def mutual_information(X, Y, *, max_components=5, n_mc=10_000, transform="auto", n_init=3,
                       return_ci=False, n_bootstrap=50, confidence=0.95, random_state=None,
                       n_jobs=None, engine="numpy"):
    """Pairwise mutual information ``I(X_i; Y_j)`` from 2-D Gaussian mixtures fitted by EM.

    For each pair, a Gaussian mixture with ``K in 1..max_components`` full-covariance components
    (chosen by BIC, best of ``n_init`` k-means++ starts) is fitted to the (transformed,
    standardised) pair, and the MI is the Monte Carlo average of
    ``log q(u,v) - log q(u) - log q(v)`` over ``n_mc`` draws from the fitted mixture, with the
    marginals in closed form. See METHODS.md §5.2.

    Parameters
    ----------
    X : array_like, shape (n_samples, n_inputs) or (n_samples,)
        Inputs; finite, at least :data:`MIN_SAMPLES` rows.
    Y : array_like, shape (n_samples, n_outputs) or (n_samples,)
        Outputs, same rows as ``X``. Continuous variables: for a discrete class use
        :func:`class_mutual_information`.
    max_components : int
        Largest number of mixture components tried (also at most one per
        :data:`MIN_POINTS_PER_COMPONENT` samples).
    n_mc : int
        Monte Carlo draws per pair (>= 100). The standard error is about
        ``sd(log ratio) / sqrt(n_mc)``: ~0.01 nats at the default for ``I`` below ~1 nat.
    transform : {"auto", "none", "rank"}, callable, or a pair of these (for X, for Y)
        Strictly monotone map applied to each variable first (MI is invariant to it).
        ``"auto"``: logit for probabilities (all values in [0, 1], clipped to
        ``[1e-6, 1 - 1e-6]``), log / asinh for non-negative variables with skewness > 1, and
        normal scores of the ranks for what is still skewed or heavy-tailed after that.
        ``"rank"``: normal scores of the ranks for every variable (exactly invariant). A
        callable maps one 1-D column to another; it must be strictly monotone for the
        result to be the MI of the original variables.
    n_init : int
        EM starts per component count; the best likelihood is kept.
    return_ci : bool
        Also return a bootstrap percentile interval (``n_bootstrap`` resamples of the rows).
    n_bootstrap : int
        Bootstrap resamples when ``return_ci`` (>= 10).
    confidence : float
        Coverage of the interval, in (0, 1).
    random_state : None, int or numpy Generator
        Seeds initialisation, Monte Carlo and bootstrap. An int gives the same result for any
        ``n_jobs``.
    n_jobs : int or None
        Threads (None: 1, -1: one per CPU).
    engine : {"numpy", "sklearn"}
        ``"numpy"``: batched EM (fast). ``"sklearn"``: one ``GaussianMixture`` per pair and K
        (slow, for cross-checks).

    Returns
    -------
    ndarray, shape (n_inputs, n_outputs)
        ``I(X_i; Y_j)`` in nats, >= 0. With ``return_ci=True``: :class:`MIWithCI`
        ``(estimate, lower, upper)`` instead.

    Raises
    ------
    BiosigError
        On bad shapes, non-finite values, too few samples or invalid options.
    """
    X = _check_matrix(X, "X")
    Y = _check_matrix(Y, "Y", n_rows=X.shape[0])
    max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap = _check_common(
        max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap, return_ci)
    check_option(engine, "engine", ENGINES)
    transform_x, transform_y = _split_transform(transform)
    _warn_if_discrete(X, "X")
    _warn_if_discrete(Y, "Y")
    u, labels_u = _transform_columns(X, transform_x, "X")
    v, labels_v = _transform_columns(Y, transform_y, "Y")
    logger.debug("transforms: X %s, Y %s", labels_u, labels_v)
    return _estimate_pairwise(u, v, max_components=max_components, n_mc=n_mc, n_init=n_init,
                              return_ci=return_ci, n_bootstrap=n_bootstrap,
                              confidence=confidence, random_state=random_state, n_jobs=n_jobs,
                              engine=engine)


def _estimate_pairwise(u, v, *, max_components, n_mc, n_init, return_ci, n_bootstrap,
                       confidence, random_state, n_jobs, engine="numpy"):
    """Pairwise MI of transformed variables, optionally with bootstrap intervals."""
    u, constant_u = _standardise(u)
    v, constant_v = _standardise(v)
    seeds = _as_seed_source(random_state)
    n = u.shape[0]
    weights = (_bootstrap_weights(n, n_bootstrap, seeds) if return_ci else np.ones((1, n)))
    mi, _ = _pairwise_mi_matrix(u, v, weights, max_components=max_components, n_mc=n_mc,
                                n_init=n_init, n_jobs=n_jobs, random_state=seeds, engine=engine)
    # A constant variable carries no information (and its "fit" is a regularised spike).
    mi[:, constant_u, :] = 0.0
    mi[:, :, constant_v] = 0.0
    if not return_ci:
        return mi[0]
    lower, upper = _percentile_interval(mi[1:], confidence)
    return MIWithCI(mi[0], lower, upper)


def class_mutual_information(X, y, *, max_components=5, n_mc=10_000, transform="auto",
                             n_init=3, return_ci=False, n_bootstrap=50, confidence=0.95,
                             random_state=None, n_jobs=None):
    """Mutual information ``I(X_i; C)`` between each input and a discrete class.

    For each feature, a 1-D Gaussian mixture ``q_c`` (K by BIC) is fitted per class, and
    ``I(X_i; C) = H(X_i) - sum_c P(c) H(X_i | c)`` with ``p(x) = sum_c P(c) q_c(x)``, both
    entropies by Monte Carlo from the fitted mixtures (METHODS.md §5.2 step 5).

    Parameters
    ----------
    X : array_like, shape (n_samples, n_inputs) or (n_samples,)
        Inputs; finite, at least :data:`MIN_SAMPLES` rows.
    y : array_like, shape (n_samples,)
        Class labels (any values), at least two classes of :data:`MIN_SAMPLES_PER_CLASS` rows.
    max_components, n_mc, transform, n_init, n_jobs
        As in :func:`mutual_information` (``transform`` applies to ``X``; ``n_mc`` draws are
        made per class).
    return_ci, n_bootstrap, confidence, random_state
        As in :func:`mutual_information`.

    Returns
    -------
    ndarray, shape (n_inputs,)
        ``I(X_i; C)`` in nats, in ``[0, H(C)]``. With ``return_ci=True``: :class:`MIWithCI`.

    Raises
    ------
    BiosigError
        On bad shapes, non-finite values, too few samples, fewer than two classes or a class
        with fewer than :data:`MIN_SAMPLES_PER_CLASS` rows.
    """
    X = _check_matrix(X, "X")
    codes, class_names = _check_labels(y, X.shape[0])
    max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap = _check_common(
        max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap, return_ci)
    u, labels = _transform_columns(X, transform, "X")
    logger.debug("transforms: X %s; classes %s", labels, class_names)
    u, constant = _standardise(u)
    seeds = _as_seed_source(random_state)
    n = u.shape[0]
    weights = _bootstrap_weights(n, n_bootstrap, seeds) if return_ci else np.ones((1, n))
    mi = _class_mi_matrix(u, codes, weights, max_components=max_components, n_mc=n_mc,
                          n_init=n_init, n_jobs=n_jobs, random_state=seeds)
    mi[:, constant] = 0.0
    if not return_ci:
        return mi[0]
    lower, upper = _percentile_interval(mi[1:], confidence)
    return MIWithCI(mi[0], lower, upper)


def _check_labels(y, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Class codes 0..C-1 and the class values; refuse too few classes or tiny classes."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise BiosigError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    if y.shape[0] != n_rows:
        raise BiosigError(f"y has {y.shape[0]} labels but X has {n_rows} rows")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise BiosigError("y has non-finite labels")
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if classes.size < 2:
        raise BiosigError(f"y needs at least 2 classes, got {classes.size}")
    if counts.min() < MIN_SAMPLES_PER_CLASS:
        small = classes[counts.argmin()]
        raise BiosigError(
            f"y: class {small} has {counts.min()} samples; at least "
            f"{MIN_SAMPLES_PER_CLASS} per class are needed"
        )
    return codes, classes


def _class_mi_matrix(u, codes, replicate_weights, *, max_components, n_mc, n_init, n_jobs,
                     random_state) -> np.ndarray:
    """``I(u_f; C)`` per weight row and feature: (R, F) nats. ``u`` is standardised."""
    n, F = u.shape
    C = int(codes.max()) + 1
    floor = _variance_floor(u)
    n_rep = replicate_weights.shape[0]
    # Rows of each class, padded to the largest class (padding has weight 0).
    members = [np.flatnonzero(codes == c) for c in range(C)]
    width = max(m.size for m in members)
    index = np.zeros((C, width), dtype=int)
    valid = np.zeros((C, width))
    for c, m in enumerate(members):
        index[c, :m.size] = m
        valid[c, :m.size] = 1.0
    class_weight = replicate_weights[:, index] * valid  # (R, C, width)
    class_total = class_weight.sum(axis=2)  # (R, C)
    class_prob = class_total / class_total.sum(axis=1, keepdims=True)
    # A class a resample missed has P(c) = 0; fit it on its rows anyway so EM stays defined.
    class_weight = np.where(class_total[..., None] > 0, class_weight, valid)

    def task(start, stop, rng):
        # Items are (replicate, feature); each has C problems (one per class).
        flat = np.arange(start, stop)
        rep, f = np.divmod(flat, F)
        points = u[index[None, :, :], f[:, None, None]]  # (B, C, width)
        weights = class_weight[rep]  # (B, C, width)
        B = flat.size
        reg = np.repeat(floor[f], C)[:, None]
        mix = _fit_mixtures_bic(points.reshape(B * C, width, 1), weights.reshape(B * C, width),
                                reg, max_components, n_init, rng)
        return _class_mi(mix, class_prob[rep], n_mc, rng)

    block = max(1, _block_size(width, max_components, n_init) // C)
    results = _run_blocks(task, n_rep * F, block, n_jobs, random_state)
    return np.concatenate(results).reshape(n_rep, F)


def predictive_class_information(posteriors) -> tuple[float, float, float]:
    """``I(X; C_hat) = H(E_x p(.|x)) - E_x H(p(.|x))`` from a sample of posteriors, in nats.

    Exact given the sample (no density estimate): the information the whole input carries
    about the class the model predicts (METHODS.md §5.1).

    Parameters
    ----------
    posteriors : array_like, shape (n_samples, n_classes)

    Returns
    -------
    class_mi, predictive_entropy, expected_entropy : float
    """
    p = np.asarray(posteriors, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
        mean = p.mean(axis=0)
        predictive = -float(np.where(mean > 0, mean * np.log(mean), 0.0).sum())
    expected = -float(plogp.sum(axis=1).mean())
    return max(predictive - expected, 0.0), predictive, expected


def _check_posteriors(posteriors, n_rows: int) -> np.ndarray:
    p = np.asarray(posteriors, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n_rows or p.shape[1] < 2:
        raise BiosigError(
            f"predict must return posteriors of shape ({n_rows}, n_classes >= 2), "
            f"got shape {p.shape}"
        )
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise BiosigError("predict must return probabilities in [0, 1] (finite)")
    if np.max(np.abs(p.sum(axis=1) - 1.0)) > 1e-3:
        raise BiosigError("predict must return posteriors whose rows sum to 1")
    return p


def _outputs_from_posteriors(p: np.ndarray, output: str) -> np.ndarray:
    """The variables ``Y_j`` paired with each input, on a scale where GMMs fit well.

    ``"posterior"``: ``logit P(c|x)`` (a strictly monotone map of the posterior: same MI).
    ``"logit"``: centred log-posteriors ``log P(c|x) - mean_k log P(k|x)``, which are the
    network's logits up to a per-window constant and a temperature scale.
    """
    if output == "posterior":
        return _logit(p)
    log_p = np.log(np.clip(p, LOGIT_CLIP, None))
    return log_p - log_p.mean(axis=1, keepdims=True)


def _mirrored(outputs: np.ndarray) -> bool:
    """True for two classes: the second output is then the first reflected (``1 - p``, or minus
    the centred log-posterior), which leaves every MI unchanged, so only the first column is
    estimated and reported for both (two separate estimates would differ by their Monte Carlo
    and fitting noise, ~0.02-0.2 nats, where the true values are equal)."""
    return outputs.shape[1] == 2


def model_mutual_information(predict, X, *, output="posterior", feature_names=None,
                             class_names=None, posteriors=None, max_components=5,
                             n_mc=10_000, transform="auto", n_init=3, return_ci=False,
                             n_bootstrap=50, confidence=0.95, random_state=None,
                             n_jobs=None) -> ModelMIResult:
    """MI between each input feature and each output of a classifier, over a reference sample.

    Parameters
    ----------
    predict : callable or None
        ``predict(X) -> (n_samples, n_classes)`` posteriors, e.g. ``OnnxModel.predict_proba``
        or an sklearn estimator's ``predict_proba``. May be None when ``posteriors`` is given
        (the live path already has them).
    X : array_like, shape (n_samples, n_features)
        Reference sample: the training set offline, a recent buffer of windows live.
    output : {"posterior", "logit"}
        Pair each input with each class posterior ``P(c|x)`` (fitted on the logit scale, which
        leaves the MI unchanged), or with the centred log-posterior ``log P(c|x) -
        mean_k log P(k|x)`` (the network's logit up to a per-window constant).
    feature_names, class_names : sequence of str or None
        Labels; by default those of the object ``predict`` is bound to (``feature_names_in_``
        or ``feature_names``, and ``classes_``: sklearn estimators, :class:`OnnxModel`), else
        ``x0, x1, ...`` and ``c0, c1, ...``.
    posteriors : array_like, shape (n_samples, n_classes), optional
        Precomputed ``predict(X)``.
    max_components, n_mc, transform, n_init, n_jobs
        As in :func:`mutual_information` (``transform`` applies to the inputs).
    return_ci, n_bootstrap, confidence, random_state
        As in :func:`mutual_information`.

    Returns
    -------
    ModelMIResult
        ``mi`` (n_features, n_classes) in nats, its interval when requested, and the summary
        ``class_mi = I(X; C_hat)``.
    """
    X = _check_matrix(X, "X")
    check_option(output, "output", OUTPUTS)
    max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap = _check_common(
        max_components, n_mc, n_init, n_jobs, confidence, n_bootstrap, return_ci)
    if posteriors is None:
        if not callable(predict):
            raise BiosigError("predict must be callable (X -> posteriors), or pass posteriors")
        posteriors = predict(X)
    p = _check_posteriors(posteriors, X.shape[0])
    owner = getattr(predict, "__self__", None)
    if feature_names is None:
        # sklearn estimators fitted on a DataFrame; biosig's OnnxModel (from its model card).
        feature_names = getattr(owner, "feature_names_in_", getattr(owner, "feature_names", None))
    if class_names is None and hasattr(owner, "classes_"):
        class_names = owner.classes_
    feature_names = _column_names(feature_names, X.shape[1], "x", "feature_names")
    class_names = _column_names(class_names, p.shape[1], "c", "class_names")

    u, labels = _transform_columns(X, transform, "X")
    logger.debug("transforms: X %s", labels)
    outputs = _outputs_from_posteriors(p, output)
    mirrored = _mirrored(outputs)
    estimate = _estimate_pairwise(
        u, outputs[:, :1] if mirrored else outputs, max_components=max_components,
        n_mc=n_mc, n_init=n_init, return_ci=return_ci, n_bootstrap=n_bootstrap,
        confidence=confidence, random_state=random_state, n_jobs=n_jobs)
    mi, lower, upper = estimate if return_ci else (estimate, None, None)
    if mirrored:
        mi, lower, upper = (None if a is None else np.repeat(a, 2, axis=1)
                            for a in (mi, lower, upper))
    class_mi, predictive, expected = predictive_class_information(p)
    return ModelMIResult(mi, lower, upper, feature_names, class_names, output, class_mi,
                         predictive, expected, X.shape[0])


# -- live: refresh on successive buffers -----------------------------------------------------


def _reapply_transform(values: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    """Apply the map chosen on an earlier buffer; re-choose if the new data leave its domain."""
    if label == "none":
        return values, label
    if label == "logit" and values.min() >= 0.0 and values.max() <= 1.0:
        return _logit(values), label
    if label == "log" and values.min() > 0.0:
        return np.log(values), label
    if label == "rank":
        return _rank_gauss(values), label
    return _auto_transform(values)


class ModelMITracker:
    """Model input-output MI refreshed on successive buffers: the live explainer's engine.

    The first :meth:`update` runs the full BIC sweep; later ones restart EM from the previous
    fits at their component counts (a buffer that moved by a few windows needs two or three EM
    iterations), and every ``reselect_every`` updates the BIC sweep runs again. The transform of
    each variable is chosen on the first buffer and kept. Not thread-safe: one tracker per
    worker.

    Parameters
    ----------
    output : {"posterior", "logit"}
        As in :func:`model_mutual_information`.
    feature_names, class_names : sequence of str or None
        Labels of the results.
    max_components : int
        Largest mixture size (3 keeps 384 pairs within a ~2 s cadence).
    n_mc : int
        Monte Carlo draws per pair (2000: ~0.02 nats standard error).
    n_init : int
        EM starts per component count in the BIC sweeps.
    transform : {"auto", "none", "rank"} or callable
        Map of the inputs (outputs are mapped by ``output``).
    reselect_every : int
        Updates between BIC sweeps (1: sweep every time, no warm start).
    random_state : None, int or numpy Generator
    n_jobs : int or None
        Threads (None: 1, -1: one per CPU).

    Attributes
    ----------
    n_updates_ : int
        Updates since construction or :meth:`reset`.
    transforms_ : list of str or None
        Map chosen for each input on the first buffer.
    """

    def __init__(self, *, output="posterior", feature_names=None, class_names=None,
                 max_components=3, n_mc=2000, n_init=1, transform="auto", reselect_every=10,
                 random_state=None, n_jobs=None):
        self.output = check_option(output, "output", OUTPUTS)
        self.feature_names = feature_names
        self.class_names = class_names
        (self.max_components, self.n_mc, self.n_init, self.n_jobs, _, _) = _check_common(
            max_components, n_mc, n_init, n_jobs, 0.5, 0, False)
        if not callable(transform):
            check_option(transform, "transform", TRANSFORMS)
        self.transform = transform
        self.reselect_every = check_int(reselect_every, "reselect_every", minimum=1)
        self._seeds = _as_seed_source(random_state)
        self.reset()

    def reset(self) -> ModelMITracker:
        """Forget the cached fits and transforms; the next update runs the full sweep."""
        self.n_updates_ = 0
        self.transforms_ = None
        self._mixtures = None
        self._shape = None
        return self

    def update(self, X, posteriors) -> ModelMIResult:
        """MI between each input and each output over this buffer (no bootstrap).

        Parameters
        ----------
        X : array_like, shape (n_windows, n_features)
            The buffer of recent feature vectors.
        posteriors : array_like, shape (n_windows, n_classes)
            The model's posteriors for those windows.

        Returns
        -------
        ModelMIResult
        """
        X = _check_matrix(X, "X")
        p = _check_posteriors(posteriors, X.shape[0])
        if self._shape != (X.shape[1], p.shape[1]):
            self.reset()
            self._shape = (X.shape[1], p.shape[1])
        u = self._transform_inputs(X)
        u, constant_u = _standardise(u)
        outputs = _outputs_from_posteriors(p, self.output)
        mirrored = _mirrored(outputs)
        v, constant_v = _standardise(outputs[:, :1] if mirrored else outputs)
        sweep = self._mixtures is None or self.n_updates_ % self.reselect_every == 0
        mi, self._mixtures = _pairwise_mi_matrix(
            u, v, np.ones((1, X.shape[0])), max_components=self.max_components, n_mc=self.n_mc,
            n_init=self.n_init, n_jobs=self.n_jobs, random_state=self._seeds,
            warm_start=None if sweep else self._mixtures)
        self.n_updates_ += 1
        mi = mi[0]
        mi[constant_u, :] = 0.0
        mi[:, constant_v] = 0.0
        if mirrored:
            mi = np.repeat(mi, 2, axis=1)
        class_mi, predictive, expected = predictive_class_information(p)
        return ModelMIResult(
            mi, None, None,
            _column_names(self.feature_names, X.shape[1], "x", "feature_names"),
            _column_names(self.class_names, p.shape[1], "c", "class_names"),
            self.output, class_mi, predictive, expected, X.shape[0])

    def _transform_inputs(self, X: np.ndarray) -> np.ndarray:
        if self.transforms_ is None:
            u, self.transforms_ = _transform_columns(X, self.transform, "X")
            return u
        if callable(self.transform):
            return _transform_columns(X, self.transform, "X")[0]
        columns, self.transforms_ = zip(*(_reapply_transform(c, label)
                                          for c, label in zip(X.T, self.transforms_)))
        self.transforms_ = list(self.transforms_)
        return np.column_stack(columns)

    def __repr__(self) -> str:
        shape = "unfitted" if self._shape is None else f"{self._shape[0]} x {self._shape[1]}"
        return (f"<ModelMITracker | {shape} | {self.output} | K <= {self.max_components} | "
                f"{self.n_updates_} updates>")
