"""Mutual information from Gaussian mixtures (biosig.explain.mutual_info, METHODS.md §5).

Known answers: bivariate Gaussians (I = -1/2 log(1 - rho^2)), invariance under monotone maps,
independence, IRIS against the reference values of METHODS.md §5.2, bootstrap intervals, a
classifier's input-output MI, and the input checks.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from biosig import BiosigError
from biosig.explain import (
    MIWithCI,
    ModelMITracker,
    class_mutual_information,
    model_mutual_information,
    mutual_information,
    predictive_class_information,
)
from biosig.explain import mutual_info as mi_module

#: METHODS.md §5.2, class-conditional 1-D GMMs: sepal length, sepal width, petal length, width.
IRIS_REFERENCE = np.array([0.501, 0.310, 0.935, 0.997])


def gaussian_mi(rho: float) -> float:
    return -0.5 * np.log(1.0 - rho**2)


def exact_correlation_sample(rho: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bivariate normal sample whose SAMPLE correlation is exactly ``rho``.

    With a plain random sample, the sampling error of the correlation alone moves the MI by
    ~0.3 / (sqrt(n) I) relative (9 % at rho = 0.3, n = 5000), so "within 5 %" would test the
    seed, not the estimator. Whitening the sample and colouring it with the target covariance
    removes that error and leaves the estimator's own (model and Monte Carlo) error.
    """
    z = np.random.default_rng(seed).standard_normal((n, 2))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T)).T)
    x = z[:, 0]
    y = rho * z[:, 0] + np.sqrt(1.0 - rho**2) * z[:, 1]
    return x, y


# -- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_bivariate_gaussian_matches_analytic_mi(rho):
    x, y = exact_correlation_sample(rho, 5000, seed=1)
    estimate = mutual_information(x, y, random_state=0)
    assert estimate.shape == (1, 1)
    assert estimate[0, 0] == pytest.approx(gaussian_mi(rho), rel=0.05)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_random_gaussian_sample_within_sampling_error(rho):
    """On a plain random sample the error is the sampling error: sd(I_hat) ~ rho / sqrt(n)."""
    n = 5000
    z = np.random.default_rng(7).standard_normal((n, 2))
    y = rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]
    estimate = mutual_information(z[:, 0], y, random_state=0)[0, 0]
    assert abs(estimate - gaussian_mi(rho)) < 3.0 * rho / np.sqrt(n)
    sample_rho = np.corrcoef(z[:, 0], y)[0, 1]
    assert estimate == pytest.approx(gaussian_mi(sample_rho), rel=0.02)


def test_monte_carlo_agrees_with_closed_form():
    """MC with closed-form mixture marginals reproduces -1/2 log(1 - rho^2) on a split Gaussian.

    One Gaussian written as two identical half-weight components forces the Monte Carlo path
    (the closed form is used only for K = 1) on a mixture whose MI is known exactly.
    """
    rho = 0.7
    cov = np.array([[1.0, rho], [rho, 1.0]])
    mix = mi_module._Mixtures(
        log_weights=np.log(np.full((1, 2), 0.5)),
        means=np.zeros((1, 2, 2)),
        covs=np.broadcast_to(cov, (1, 2, 2, 2)).copy(),
        n_components=np.array([2]),
    )
    estimate = mi_module._pairwise_mi(mix, 20_000, np.random.default_rng(0))[0]
    assert estimate == pytest.approx(gaussian_mi(rho), abs=0.01)


def test_mixture_dependence_matches_sklearn_engine():
    """The batched EM finds the same fit as sklearn's GaussianMixture on clustered data."""
    rng = np.random.default_rng(3)
    cluster = rng.integers(0, 2, 400)
    x = rng.normal(size=400) + 4.0 * cluster
    y = rng.normal(size=400) + 4.0 * cluster
    options = dict(max_components=2, n_init=1, n_mc=4000, transform="none", random_state=0)
    ours = mutual_information(x, y, **options)[0, 0]
    reference = mutual_information(x, y, engine="sklearn", **options)[0, 0]
    assert ours > 0.4
    assert ours == pytest.approx(reference, abs=0.03)


@pytest.mark.parametrize("monotone", [np.exp, lambda v: v**3], ids=["exp", "cube"])
def test_monotone_transform_of_input_leaves_mi_unchanged(monotone):
    x, y = exact_correlation_sample(0.6, 3000, seed=2)
    plain = mutual_information(x, y, random_state=0)[0, 0]
    mapped = mutual_information(monotone(x), y, random_state=0)[0, 0]
    assert abs(mapped - plain) <= max(0.03, 0.05 * plain)


def test_rank_transform_is_exactly_invariant():
    x, y = exact_correlation_sample(0.5, 1000, seed=4)
    plain = mutual_information(x, y, transform="rank", random_state=0)
    mapped = mutual_information(np.exp(3 * x), -(y**3), transform="rank", random_state=0)
    np.testing.assert_allclose(mapped, plain, atol=1e-12)


def test_independent_variables_give_near_zero():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.normal(size=2000), rng.exponential(size=2000)])
    Y = np.column_stack([rng.normal(size=2000), rng.uniform(size=2000)])
    assert mutual_information(X, Y, random_state=0).max() < 0.01


def test_quantised_variable_does_not_invent_information():
    """Integer counts (like zero crossings) must not let EM put spikes on repeated values."""
    rng = np.random.default_rng(6)
    counts = rng.poisson(3.0, size=1000).astype(float)
    assert mutual_information(counts, rng.normal(size=1000), random_state=0)[0, 0] < 0.02


def test_constant_variable_has_zero_mi():
    rng = np.random.default_rng(8)
    X = np.column_stack([np.full(200, 3.0), rng.normal(size=200)])
    result = mutual_information(X, X[:, 1] + rng.normal(size=200), random_state=0)
    assert result[0, 0] == 0.0
    assert result[1, 0] > 0.2


# -- IRIS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_iris_class_mi_ranks_petal_above_sepal_near_reference(iris):
    X, y = iris
    estimate = class_mutual_information(X, y, random_state=0)
    assert estimate.shape == (4,)
    assert min(estimate[2], estimate[3]) > max(estimate[0], estimate[1])
    np.testing.assert_allclose(estimate, IRIS_REFERENCE, atol=0.08)
    assert estimate.max() <= np.log(3)


def test_iris_model_mi_ranks_petal_features_highest(iris):
    X, y = iris
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    names = ["sepal length", "sepal width", "petal length", "petal width"]
    result = model_mutual_information(clf.predict_proba, X, feature_names=names, random_state=0)
    assert result.mi.shape == (4, 3)
    assert result.output_names == ["0", "1", "2"]  # from the pipeline's classes_
    top_two = {name for name, _ in result.ranking()[:2]}
    assert top_two == {"petal length", "petal width"}
    assert 0.5 < result.class_mi <= np.log(3)
    assert result.class_mi == pytest.approx(result.predictive_entropy - result.expected_entropy)
    as_json = result.to_dict()
    assert as_json["units"] == "nats" and len(as_json["mi"]) == 4
    assert "petal" in repr(result)


def test_model_mi_with_biosig_onnx_model(iris, tmp_path):
    """``OnnxModel.predict_proba`` plugs in directly; names come from the model card."""
    onnx = pytest.importorskip("onnx")
    from biosig.inference import MODEL_FORMAT, OnnxModel, build_linear_model

    X, y = iris
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    names = ["sepal length", "sepal width", "petal length", "petal width"]
    card = {
        "format": MODEL_FORMAT, "biosig_version": "0.1.0", "arch": "linear",
        "modality": "features", "srate": None, "channels": [], "pipeline": None,
        "feature_names": names, "class_names": ["setosa", "versicolor", "virginica"],
        "ood": {"threshold": 0.0, "percentile": 99.0, "score": "neg_logsumexp"},
    }
    onnx.save(build_linear_model(clf.coef_.T, clf.intercept_, card), str(tmp_path / "m.onnx"))
    model = OnnxModel(tmp_path / "m.onnx")
    result = model_mutual_information(model.predict_proba, X, n_mc=2000, random_state=0)
    assert result.feature_names == names
    assert result.output_names == ["setosa", "versicolor", "virginica"]
    assert {name for name, _ in result.ranking()[:2]} == {"petal length", "petal width"}


def test_model_mi_on_logits(iris):
    X, y = iris
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    result = model_mutual_information(clf.predict_proba, X, output="logit", random_state=0)
    assert result.output == "logit"
    assert np.all(result.mi >= 0)
    assert result.mi[2:].max() > result.mi[:2].max()


# -- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_interval_contains_estimate_and_shrinks_with_n():
    widths = []
    for n in (300, 3000):
        x, y = exact_correlation_sample(0.6, n, seed=9)
        result = mutual_information(x, y, return_ci=True, n_bootstrap=40, random_state=0)
        assert isinstance(result, MIWithCI)
        estimate, lower, upper = result
        assert lower[0, 0] <= estimate[0, 0] <= upper[0, 0]
        assert lower[0, 0] < gaussian_mi(0.6) < upper[0, 0]
        widths.append(upper[0, 0] - lower[0, 0])
    assert widths[1] < 0.6 * widths[0]


def test_class_mi_bootstrap_interval(iris):
    X, y = iris
    estimate, lower, upper = class_mutual_information(
        X, y, return_ci=True, n_bootstrap=30, n_mc=2000, random_state=0)
    assert np.all(lower <= estimate) and np.all(estimate <= upper)
    assert np.all(upper - lower < 0.4)


# -- determinism, threads, live tracker ------------------------------------------------------


def test_same_seed_same_result_for_any_thread_count():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(300, 3))
    Y = np.column_stack([X[:, 0] + rng.normal(size=300), np.abs(X[:, 1]) + rng.normal(size=300)])
    first = mutual_information(X, Y, random_state=42, n_jobs=1)
    np.testing.assert_array_equal(first, mutual_information(X, Y, random_state=42, n_jobs=1))
    np.testing.assert_array_equal(first, mutual_information(X, Y, random_state=42, n_jobs=2))


def test_tracker_follows_the_full_estimate_on_a_sliding_buffer(iris):
    rng = np.random.default_rng(11)
    X, y = iris
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    order = rng.permutation(len(X))
    stream = np.vstack([X[order], X[order]])
    posteriors = clf.predict_proba(stream)
    tracker = ModelMITracker(random_state=0, reselect_every=3, n_mc=4000)
    for start in range(0, 50, 10):
        result = tracker.update(stream[start:start + 120], posteriors[start:start + 120])
    assert tracker.n_updates_ == 5
    full = model_mutual_information(None, stream[40:160], posteriors=posteriors[40:160],
                                    max_components=3, random_state=0)
    np.testing.assert_allclose(result.mi, full.mi, atol=0.1)
    assert result.class_mi == pytest.approx(full.class_mi)
    assert "5 updates" in repr(tracker)


def test_predictive_class_information_bounds():
    uniform = np.full((100, 4), 0.25)
    assert predictive_class_information(uniform)[0] == pytest.approx(0.0, abs=1e-12)
    one_hot = np.eye(4)[np.arange(100) % 4]
    assert predictive_class_information(one_hot)[0] == pytest.approx(np.log(4))


def test_import_pulls_in_neither_torch_nor_qt():
    heavy = "('torch', 'PySide6', 'PyQt5', 'sklearn')"
    code = f"import sys, biosig.explain; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- input checks ----------------------------------------------------------------------------


def _xy(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.normal(size=(n, 1))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda X, Y: (X[:, :, None], Y), "X must be 2-D"),
        (lambda X, Y: (X, Y[:40]), "Y has 40 rows but X has 50"),
        (lambda X, Y: (X[:10], Y[:10]), "X needs at least 20 samples"),
        (lambda X, Y: (np.where(X > 2.0, np.nan, X), Y), "X has .* non-finite"),
        (lambda X, Y: (X, np.full_like(Y, np.inf)), "Y has 50 non-finite"),
        (lambda X, Y: (np.array([["a"] * 2] * 50), Y), "X must be a numeric array"),
    ],
)
def test_bad_arrays_raise_biosig_error(change, match):
    X, Y = change(*_xy())
    with pytest.raises(BiosigError, match=match):
        mutual_information(X, Y)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_components": 0}, "max_components must be >= 1"),
        ({"n_mc": 10}, "n_mc must be >= 100"),
        ({"transform": "boxcox"}, "transform must be one of"),
        ({"return_ci": True, "n_bootstrap": 5}, "n_bootstrap >= 10"),
        ({"confidence": 1.5}, "confidence must be in"),
        ({"n_jobs": 0}, "n_jobs must be"),
        ({"engine": "torch"}, "engine must be one of"),
        ({"random_state": "seed"}, "random_state must be"),
        ({"transform": lambda c: c[:-1]}, "transform must map each column"),
    ],
)
def test_bad_options_raise_biosig_error(options, match):
    X, Y = _xy()
    with pytest.raises(BiosigError, match=match):
        mutual_information(X, Y, **options)


def test_bad_labels_raise_biosig_error():
    X, _ = _xy()
    with pytest.raises(BiosigError, match="at least 2 classes"):
        class_mutual_information(X, np.zeros(50))
    with pytest.raises(BiosigError, match="class 1 has 3 samples"):
        class_mutual_information(X, np.r_[np.zeros(47), np.ones(3)].astype(int))
    with pytest.raises(BiosigError, match="y has 49 labels"):
        class_mutual_information(X, np.zeros(49))


def test_bad_predict_output_raises_biosig_error():
    X, _ = _xy()
    with pytest.raises(BiosigError, match="posteriors of shape"):
        model_mutual_information(lambda data: np.ones((len(data), 1)), X)
    with pytest.raises(BiosigError, match="rows sum to 1"):
        model_mutual_information(lambda data: np.full((len(data), 3), 0.5), X)
    with pytest.raises(BiosigError, match="output must be one of"):
        model_mutual_information(None, X, posteriors=np.full((50, 2), 0.5), output="prob")
    with pytest.raises(BiosigError, match="predict must be callable"):
        model_mutual_information(None, X)
    with pytest.raises(BiosigError, match="class_names has 3 names for 2"):
        model_mutual_information(None, X, posteriors=np.full((50, 2), 0.5),
                                 class_names=["a", "b", "c"])


def test_two_class_outputs_get_one_estimate_for_both_columns(iris):
    # With two classes P(c1|x) = 1 - P(c0|x): every input carries the same information about
    # both, and both columns must show it (separate estimates differed by their noise).
    X, y = iris
    binary = (y == 2).astype(int)
    clf = LogisticRegression(max_iter=1000).fit(X, binary)
    p = clf.predict_proba(X)
    for output in ("posterior", "logit"):
        result = model_mutual_information(None, X, posteriors=p, output=output, n_mc=2000,
                                          max_components=3, random_state=0, return_ci=True,
                                          n_bootstrap=10)
        assert result.mi.shape == (4, 2)
        np.testing.assert_array_equal(result.mi[:, 0], result.mi[:, 1])
        np.testing.assert_array_equal(result.lower[:, 0], result.lower[:, 1])
        assert result.mi[2:, 0].min() > result.mi[:2, 0].max()  # petals inform, as for 3 classes
    tracker = ModelMITracker(random_state=0, n_mc=2000)
    live = tracker.update(X, p)
    np.testing.assert_array_equal(live.mi[:, 0], live.mi[:, 1])
    full = model_mutual_information(clf.predict_proba, X, n_mc=2000, max_components=3,
                                    random_state=0)
    np.testing.assert_allclose(live.mi, full.mi, atol=0.15)
