"""Inverse inference by mean field (METHODS.md §6): digits prototypes, a linear-Gaussian known
answer, finite differences against autograd, KL and input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from biosig._checks import BiosigError
from biosig.explain import Prototype, inverse_inference, prototypes
from biosig.nets.estimators import LDAClassifier

MODELS = Path(__file__).resolve().parents[1] / "models"
#: β of the digits check: at β = 1 naive mean field stops where p(c*|m) ≈ 0.8, because the
#: gradient of log p(c*|m) fades as p → 1; β = 3 sharpens the posterior (METHODS.md §6).
DIGITS_BETA = 3.0


@pytest.fixture(scope="module")
def binary_digits():
    digits = load_digits()
    return (digits.data > 7).astype(np.float64), digits.target


@pytest.fixture(scope="module")
def digits_prototypes(binary_digits):
    X, y = binary_digits
    head = LDAClassifier(shrinkage="auto").fit(X, y)
    return prototypes(head, prior="bernoulli", prior_mean=X.mean(axis=0), beta=DIGITS_BETA)


def _two_gaussians(seed=0, n=400):
    """Two classes in 3-D, shared covariance: LDA's log-odds are exactly linear in x."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [2.0, -1.0, 0.5]])
    X = np.concatenate([rng.normal(c, [1.0, 0.7, 1.3], size=(n, 3)) for c in centres])
    return X, np.repeat([0, 1], n)


def _linear_log_odds(model, x0):
    """``w, b`` of the model's log-odds ``wᵀx + b`` of class 1 (exact for a linear model)."""
    base = model.decision_function(x0[None, :])[0]
    w = model.decision_function(x0 + np.eye(x0.size)) - base
    return w, base - w @ x0


def _card_for(model, X, feature_names):
    return {
        "format": "biosig-model/1", "biosig_version": "0.1.0", "arch": "lda",
        "modality": "features", "srate": None, "channels": [], "pipeline": None,
        "feature_names": feature_names, "class_names": [str(c) for c in model.classes_],
        "ood": {"threshold": 1e9, "percentile": 99.0, "score": "model"},
        "training": {"feature_mean": X.mean(axis=0).tolist(),
                     "feature_var": X.var(axis=0).tolist()},
    }


# -- digits (the seed's MNIST result) -----------------------------------------------------------


def test_digit_prototypes_are_recognised_by_an_independent_classifier(binary_digits,
                                                                      digits_prototypes):
    X, y = binary_digits
    # One BLAS thread: next to torch's OpenMP pool, more threads oversubscribe (10 s vs 0.2 s).
    with threadpool_limits(1):
        independent = LogisticRegression(max_iter=2000).fit(X, y)
    means = np.stack([digits_prototypes[str(d)].mean for d in range(10)])
    assert np.sum(independent.predict(means) == np.arange(10)) >= 9
    assert np.sum(independent.predict((means > 0.5).astype(float)) == np.arange(10)) >= 9
    target_probability = np.array([digits_prototypes[str(d)].target_probability
                                   for d in range(10)])
    assert np.sum(target_probability > 0.9) >= 8


def test_digit_prototypes_look_like_their_class_mean(binary_digits, digits_prototypes):
    X, y = binary_digits
    class_means = np.stack([X[y == d].mean(axis=0) for d in range(10)])
    own_best = 0
    for d in range(10):
        correlation = [np.corrcoef(digits_prototypes[str(d)].mean, c)[0, 1] for c in class_means]
        own_best += int(np.argmax(correlation) == d)
    assert own_best >= 8


def test_bernoulli_prototype_fields(digits_prototypes):
    proto = digits_prototypes["3"]
    assert isinstance(proto, Prototype)
    assert proto.target == "3" and proto.prior == "bernoulli" and proto.converged
    assert proto.mean.shape == proto.std.shape == (64,)
    assert np.all((proto.mean >= 0) & (proto.mean <= 1))
    np.testing.assert_allclose(proto.std, np.sqrt(proto.mean * (1 - proto.mean)))
    assert proto.posterior.shape == (10,) and np.isclose(proto.posterior.sum(), 1.0)
    assert proto.kl_to_prior > 0 and len(proto.feature_names) == 64
    assert proto.to_dict()["target_probability"] == pytest.approx(proto.target_probability)


# -- Gaussian prior -------------------------------------------------------------------------------


def test_linear_gaussian_prototype_matches_the_closed_form():
    X, y = _two_gaussians()
    model = LDAClassifier().fit(X, y)
    mu0, v0 = X.mean(axis=0), X.var(axis=0)
    beta = 2.0
    proto = inverse_inference(model, 1, prior_mean=mu0, prior_var=v0, beta=beta, tol=1e-8)
    w, b = _linear_log_odds(model, mu0)
    # log p(1|x) = log σ(wᵀx + b): the fixed point is μ = μ₀ + t v₀ w with the scalar t of
    # t = β (1 − σ(wᵀμ₀ + b + t wᵀ v₀ w)).
    a0, spread = w @ mu0 + b, w @ (v0 * w)
    t = brentq(lambda t: t - beta * (1 - expit(a0 + t * spread)), 0.0, beta)
    expected_mean = mu0 + t * v0 * w
    p = expit(a0 + t * spread)
    expected_var = 1.0 / (1.0 / v0 + beta * w**2 * p * (1 - p))
    assert proto.converged
    np.testing.assert_allclose(proto.mean, expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proto.std**2, expected_var, rtol=1e-5)
    assert proto.target_probability == pytest.approx(p, rel=1e-6)


def test_iris_prototypes_move_toward_their_class():
    iris = load_iris()
    model = LDAClassifier().fit(iris.data, iris.target)
    results = prototypes(model)  # default prior: the estimator's training mean and variance
    scale = iris.data.std(axis=0)
    for index, (name, proto) in enumerate(results.items()):
        class_mean = iris.data[iris.target == index].mean(axis=0)
        moved = np.linalg.norm((proto.mean - class_mean) / scale)
        before = np.linalg.norm((iris.data.mean(axis=0) - class_mean) / scale)
        assert name == str(index) and proto.target_probability > 0.9
        if index == 1:
            # The training mean is already a confident versicolor: nothing to move for.
            assert proto.kl_to_prior < 1e-3
        else:
            assert moved < 0.8 * before and proto.kl_to_prior > 1.0
        assert np.all(proto.std <= scale + 1e-9)  # evidence only sharpens the prior


def test_kl_is_zero_at_beta_zero_and_grows_with_beta():
    X, y = _two_gaussians(seed=1)
    model = LDAClassifier().fit(X, y)
    kls = [inverse_inference(model, 0, beta=beta).kl_to_prior for beta in (0.0, 0.5, 1, 2, 4)]
    assert kls[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(kls) > 0)


def test_finite_differences_on_onnx_agree_with_autograd(tmp_path):
    pytest.importorskip("onnxruntime")
    from biosig.inference import OnnxModel
    from biosig.nets.export import export_onnx

    iris = load_iris()
    X, y = iris.data, iris.target
    model = LDAClassifier().fit(X, y)
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    path = export_onnx(model, tmp_path / "iris.onnx", model_card=_card_for(model, X, names))
    onnx_model = OnnxModel(path)
    for target in range(3):
        exact = inverse_inference(model, target, prior_mean=X.mean(0), prior_var=X.var(0))
        finite = inverse_inference(onnx_model, str(target))  # prior from the card
        assert finite.feature_names == names
        np.testing.assert_allclose(finite.mean, exact.mean, rtol=1e-2, atol=1e-3)
        np.testing.assert_allclose(finite.std, exact.std, rtol=5e-2)
        assert finite.kl_to_prior == pytest.approx(exact.kl_to_prior, rel=5e-2)


def test_finite_and_autograd_agree_on_the_same_estimator(binary_digits):
    X, y = binary_digits
    model = LDAClassifier(shrinkage="auto").fit(X, y)
    kw = dict(prior="bernoulli", prior_mean=X.mean(axis=0), beta=DIGITS_BETA)
    exact = inverse_inference(model, 9, gradient="autograd", **kw)
    finite = inverse_inference(model, 9, gradient="finite", **kw)
    np.testing.assert_allclose(finite.mean, exact.mean, atol=1e-3)


def test_any_predict_proba_model_works_torch_free():
    iris = load_iris()
    model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    proto = inverse_inference(model, 2, prior_mean=iris.data.mean(0), prior_var=iris.data.var(0))
    assert proto.converged and proto.target_probability > 0.5


@pytest.mark.parametrize("name", ["myo-12345-jsu.onnx", "myo-12345-sdgm.onnx"])
def test_every_class_of_the_bundled_myo_models_converges_to_a_fixed_point(name):
    # The plain damped iteration stalled on these (η collapsed to 1e-3 while the objective was
    # still rising): class 7 of the JSU model, class 2 of the SDGM model ran out of iterations.
    from biosig.inference import OnnxModel

    model = OnnxModel(MODELS / name, threads=1)
    mu0, v0 = model.card["training"]["feature_mean"], model.card["training"]["feature_var"]
    mu0, sd0 = np.asarray(mu0), np.sqrt(v0)
    for index, proto in prototypes(model).items():
        assert proto.converged and proto.n_iter < 300, (index, proto.n_iter)
        # The mean satisfies μ = μ₀ + v₀ ∇log p(c*|μ) (central differences, in prior SDs).
        step = 1e-2 * sd0
        rows = np.concatenate([proto.mean + np.diag(step), proto.mean - np.diag(step)])
        log_p = np.log(model.predict_proba(rows)[:, proto._target_index])
        gradient = (log_p[:mu0.size] - log_p[mu0.size:]) / (2 * step)
        residual = (mu0 + sd0**2 * gradient - proto.mean) / sd0
        assert np.max(np.abs(residual)) < 0.05, (index, np.max(np.abs(residual)))


def test_the_empirical_prior_gives_the_class_means_where_the_gaussian_one_hugs_the_boundary():
    X, y = _two_gaussians(seed=2, n=1000)
    model = LDAClassifier().fit(X, y)  # calibrated: the data are exactly LDA's model
    mu0, sd0 = X.mean(axis=0), X.std(axis=0)
    for target in (0, 1):
        class_mean = X[y == target].mean(axis=0)
        exact = inverse_inference(model, target, prior="empirical", prior_samples=X)
        assert exact.prior == "empirical" and exact.converged
        # p(x|c) ∝ p(c|x) p̂(x) reweights the sample towards the class: its mean is the class
        # mean, up to the overlap of the classes.
        np.testing.assert_allclose((exact.mean - class_mean) / sd0, 0.0, atol=0.1)
        assert exact.target_probability > 0.9
        assert 500 < exact.n_effective < 2000 and 0.2 < exact.kl_to_prior < np.log(2)
        assert np.all(exact.std < sd0)
        mean_field = inverse_inference(model, target, prior_mean=mu0, prior_var=sd0**2)
        # The naive mean-field mode stays where p(c*|μ) saturates, far short of the class.
        assert np.linalg.norm((mean_field.mean - mu0) / sd0) < \
            0.6 * np.linalg.norm((class_mean - mu0) / sd0)
    flat = inverse_inference(model, 1, prior="empirical", prior_samples=X, beta=0.0)
    np.testing.assert_allclose(flat.mean, mu0)
    assert flat.kl_to_prior == pytest.approx(0.0, abs=1e-12)
    assert flat.n_effective == pytest.approx(2000)


def test_importing_the_explainer_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, biosig.explain.inverse; "
            "print('torch' in sys.modules or 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- bad input ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_lda():
    iris = load_iris()
    return LDAClassifier().fit(iris.data, iris.target)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target_class": 7}, "neither a class"),
    ({"target_class": "setosa"}, "neither a class"),
    ({"prior": "laplace"}, "prior must be one of"),
    ({"gradient": "symbolic"}, "gradient must be one of"),
    ({"beta": -1}, "beta"),
    ({"damping": 1.5}, "damping"),
    ({"max_iter": 0}, "max_iter"),
    ({"prior_mean": [0.0, 1.0]}, "has 2 entries"),
    ({"prior_var": [1.0, 0.0, 1.0, 1.0]}, "prior_var must be > 0"),
    ({"prior": "bernoulli"}, "needs prior_mean"),
    ({"prior": "bernoulli", "prior_mean": [0.5, 1.2, 0.1, 0.3]}, "probabilities"),
    ({"prior": "bernoulli", "prior_mean": [0.5] * 4, "prior_var": [1.0] * 4}, "prior_var is for"),
    ({"prior": "empirical"}, "needs prior_samples"),
    ({"prior": "empirical", "prior_samples": np.ones((5, 3))}, "shape"),
    ({"prior": "empirical", "prior_samples": np.ones((5, 4)), "prior_mean": [0.0] * 4},
     "not prior_mean"),
    ({"prior_samples": np.ones((5, 4))}, "prior_samples is for"),
])
def test_bad_input_raises_biosig_error(iris_lda, kwargs, message):
    kwargs = {"target_class": 0, **kwargs}
    with pytest.raises(BiosigError, match=message):
        inverse_inference(iris_lda, **kwargs)


def test_gaussian_prior_without_card_or_arguments_is_a_clear_error():
    iris = load_iris()
    model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    with pytest.raises(BiosigError, match="needs prior_mean and prior_var"):
        inverse_inference(model, 0)
    with pytest.raises(BiosigError, match="'autograd' needs a fitted biosig estimator"):
        inverse_inference(model, 0, prior_mean=iris.data.mean(0), prior_var=iris.data.var(0),
                          gradient="autograd")
    with pytest.raises(BiosigError, match="no classes_"):
        inverse_inference(object(), 0)
