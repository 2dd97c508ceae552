"""Probabilistic classifiers (biosig.nets): estimator contract, method properties, ONNX export."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from scipy import stats  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from biosig import BiosigError  # noqa: E402
from biosig.nets import (  # noqa: E402
    JSUClassifier,
    JSUSDGMClassifier,
    LDAClassifier,
    MLPClassifier,
    SDGMClassifier,
    export_onnx,
)
from biosig.nets.export import CARD_PROP, FORMAT, FORMAT_PROP  # noqa: E402
from biosig.nets.jsu import (  # noqa: E402
    SharedJSUNet,
    fit_shared_jsu,
    initial_translation,
    stable_asinh,
)
from biosig.torch_graph import TorchGraph  # noqa: E402

MYO_FILE = "myo-readings-dataset/12345-1/3.txt"
MYO_RATE_HZ = 200.0


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """One intra-op thread: these tests train on tiny data, where synchronising threads costs
    ten times the arithmetic (measured: 0.28 s vs 0.024 s per small MLP fit on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the scikit-learn estimator contract ------------------------------------------------------

def _small_estimators():
    """One instance per architecture, with settings small enough for the check battery: the
    instant robust ξ, λ for the JSUs (the default pooled Johnson SU fit is exercised by the
    tests below) and few, large steps for the SDGMs."""
    sdgm = dict(n_components=2, max_iter=15, batch_size=64, learning_rate=5e-2)
    return [
        JSUClassifier(max_iter=60, translation="robust"),
        JSUClassifier("full", max_iter=60, translation="robust", epochs=3, learning_rate=1e-2),
        SDGMClassifier(**sdgm),
        SDGMClassifier(hidden_layer_sizes=(8,), **sdgm),
        JSUSDGMClassifier(**sdgm),
        LDAClassifier(),
        MLPClassifier(hidden_layer_sizes=(16,), max_iter=15, learning_rate=5e-2),
    ]


@parametrize_with_checks(_small_estimators())
def test_sklearn_contract(estimator, check):
    check(estimator)


# -- Johnson SU network --------------------------------------------------------------------------

#: Per class, per feature (γ, δ, ξ, λ) of scipy.stats.johnsonsu(a=γ, b=δ, loc=ξ, scale=λ):
#: feature 0 differs only in tail weight (same mean: invisible to LDA), feature 1 in skew.
_SKEWED_CLASSES = [
    [(0.0, 0.6, 0.0, 1.0), (-1.0, 1.0, 0.0, 1.0)],
    [(0.0, 2.0, 0.0, 1.0), (1.0, 1.0, 0.0, 1.0)],
]


def _skewed_problem(n_per_class, seed):
    """Two Johnson SU classes (independent features, shared ξ and λ), 2 features."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, features in enumerate(_SKEWED_CLASSES):
        columns = [stats.johnsonsu.rvs(a, b, loc=loc, scale=scale, size=n_per_class,
                                       random_state=rng) for a, b, loc, scale in features]
        X.append(np.column_stack(columns))
        y.append(np.full(n_per_class, label))
    return np.concatenate(X), np.concatenate(y)


def _bayes_accuracy(X, y):
    """Accuracy of the true model's posterior (equal priors)."""
    log_joint = np.column_stack([
        sum(stats.johnsonsu.logpdf(X[:, d], a, b, loc=loc, scale=scale)
            for d, (a, b, loc, scale) in enumerate(features))
        for features in _SKEWED_CLASSES
    ])
    return np.mean(np.argmax(log_joint, axis=1) == y)


def test_jsu_shared_is_multinomial_logistic_regression_on_phi():
    # Three classes: scikit-learn's binary case penalises w_1 - w_0 instead of each class row.
    X, y = _skewed_problem(150, seed=1)
    X = np.concatenate([X, X[y == 0][:100] + [4.0, -3.0]])
    y = np.concatenate([y, np.full(100, 2)])
    model = JSUClassifier(alpha=1e-2, tol=1e-9, max_iter=1000).fit(X, y)
    z = torch.as_tensor((X - model.mean_) / model.scale_)
    with torch.no_grad():
        phi = model.net_.double().expanded(z).numpy()
    reference = LogisticRegression(C=1.0 / (1e-2 * len(y)), tol=1e-10, max_iter=10_000).fit(phi, y)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(phi), atol=1e-4)


def test_jsu_shared_reaches_the_same_optimum_from_any_start():
    X, y = _skewed_problem(100, seed=2)
    z = torch.as_tensor((X - X.mean(0)) / X.std(0))
    y_t = torch.as_tensor(y)
    translation = initial_translation(z.numpy(), "robust")
    fits = []
    for start in ("zeros", "random"):
        net = SharedJSUNet(translation, n_classes=2).double()
        if start == "random":
            with torch.no_grad():
                net.linear.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
                net.linear.bias.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(1))
        info = fit_shared_jsu(net, z, y_t, alpha=1e-2, max_iter=1000, tol=1e-9)
        assert info["converged"]
        with torch.no_grad():
            fits.append((net.linear.weight.numpy().copy(), torch.softmax(net(z), 1).numpy()))
    # Only the differences of the class rows are identified (softmax is shift-invariant).
    contrast = [w[1] - w[0] for w, _ in fits]
    np.testing.assert_allclose(contrast[0], contrast[1], atol=1e-5)
    np.testing.assert_allclose(fits[0][1], fits[1][1], atol=1e-6)


def test_jsu_beats_lda_on_skewed_classes():
    X_train, y_train = _skewed_problem(400, seed=3)
    X_test, y_test = _skewed_problem(2000, seed=4)
    jsu = JSUClassifier().fit(X_train, y_train).score(X_test, y_test)
    lda = LDAClassifier().fit(X_train, y_train).score(X_test, y_test)
    bayes = _bayes_accuracy(X_test, y_test)
    # Measured: JSU 0.890, LDA 0.829, Bayes 0.894.
    assert jsu > lda + 0.04, (jsu, lda)
    assert jsu > bayes - 0.015, (jsu, bayes)


def test_jsu_full_starts_from_shared_and_keeps_a_normalised_posterior():
    X, y = _skewed_problem(200, seed=5)
    shared = JSUClassifier().fit(X, y)
    full_untrained = JSUClassifier("full", epochs=0).fit(X, y)
    np.testing.assert_allclose(full_untrained.predict_proba(X), shared.predict_proba(X), atol=1e-5)
    full = JSUClassifier("full", epochs=20, random_state=0).fit(X, y)
    proba = full.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    # Class-specific translations moved away from the shared start.
    location = full.net_.location.detach().numpy()
    assert np.abs(location[0] - location[1]).max() > 1e-3


def test_stable_asinh_is_accurate_and_finite_in_float32():
    u = np.concatenate([-np.logspace(-8, 30, 200), [0.0], np.logspace(-8, 30, 200)])
    got = stable_asinh(torch.as_tensor(u, dtype=torch.float32)).numpy().astype(np.float64)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.arcsinh(u), rtol=1e-6, atol=2e-7)


# -- SDGM ----------------------------------------------------------------------------------------

def _two_relevant_of_six(n, seed):
    """Class depends on features 0 and 1 only (two blobs per class, XOR layout); 2-5 are noise."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-2, -2], [2, 2], [-2, 2], [2, -2]], dtype=float)
    blob = rng.integers(0, 4, size=n)
    relevant = centres[blob] + 0.6 * rng.standard_normal((n, 2))
    noise = rng.standard_normal((n, 4))
    return np.column_stack([relevant, noise]), (blob >= 2).astype(int)


def test_sdgm_prunes_irrelevant_weights_and_components():
    X, y = _two_relevant_of_six(600, seed=0)
    model = SDGMClassifier(n_components=3, max_iter=150, batch_size=128, random_state=0).fit(X, y)
    X_test, y_test = _two_relevant_of_six(1000, seed=1)
    assert model.score(X_test, y_test) > 0.95
    head = model.net_.head
    features = np.column_stack([head.expansion.index_a.numpy(), head.expansion.index_b.numpy()]) - 1
    irrelevant_column = (features >= 2).any(axis=1)  # φ terms that involve a noise feature
    alive = head.component_alive.numpy().reshape(-1)
    live = head.linear.live_mask.numpy()[alive]
    assert live[:, irrelevant_column].mean() < 0.1
    sparsity = model.sparsity_
    assert sparsity["n_components_live"] < sparsity["n_components_initial"]
    assert sparsity["n_live_weights"] == int(live.sum())


def test_sdgm_frozen_head_folds_the_phi_standardisation_exactly():
    X, y = _two_relevant_of_six(300, seed=2)
    model = SDGMClassifier(n_components=2, covariance="full", max_iter=20, random_state=0).fit(X, y)
    head = model.net_.head.double().eval()
    h = torch.as_tensor((X - model.mean_) / model.scale_)
    with torch.no_grad():
        phi = head.scaled_expansion(h).numpy()
        live, frozen = head(h).numpy(), head.frozen()(h).numpy()
    # The training statistics standardise φ (so one Adam step means the same for every term) ...
    np.testing.assert_allclose(phi.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(phi.std(axis=0), 1.0, rtol=1e-4)
    # ... and the constant-only form used for export gives the same log-scores without them.
    np.testing.assert_allclose(frozen, live, rtol=1e-9, atol=1e-9)


def test_sdgm_default_keeps_what_a_small_real_table_pays_for(shared_data):
    # UCI CTG, ~1100 training rows: the earlier default (KL counted ten times, full quadratic
    # form) pruned 99 % of the weights here and reached macro-F1 ~0.75 (docs/results.md).
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    from biosig.datasets import read_feature_table

    path = shared_data / "uci-cardiotocography" / "CTG_train.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = read_feature_table(path, label_column="NSP", drop_columns=["row_id", "CLASS"])
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=1 / 3, stratify=data.y, random_state=0)
    model = SDGMClassifier(random_state=0).fit(X_train, y_train)
    assert f1_score(y_test, model.predict(X_test), average="macro") > 0.78
    sparsity = model.sparsity_
    # Sparse, but not everything: the count comes out of training.
    assert 0.5 < sparsity["fraction_pruned"] < 0.98, sparsity
    assert sparsity["n_components_live"] >= len(model.classes_)


def test_jsu_sdgm_trains_and_gives_a_normalised_posterior():
    X, y = _skewed_problem(300, seed=6)
    model = JSUSDGMClassifier(n_components=2, max_iter=60, random_state=0).fit(X, y)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(proba >= 0)
    assert model.score(X, y) > 0.8
    assert np.all(np.isfinite(model.ood_score(X)))
    assert model.net_.translation.tailweight.min() > 0


def test_bad_hyperparameter_is_a_one_line_biosig_error():
    X, y = _skewed_problem(20, seed=7)
    with pytest.raises(BiosigError, match="variant must be one of"):
        JSUClassifier(variant="both").fit(X, y)
    with pytest.raises(BiosigError, match="n_components must be >= 1"):
        SDGMClassifier(n_components=0).fit(X, y)


@pytest.mark.parametrize("make_model", [
    JSUClassifier,
    lambda: JSUClassifier("full", epochs=5),
    lambda: SDGMClassifier(n_components=2, max_iter=30),
    lambda: JSUSDGMClassifier(n_components=2, max_iter=30),
    LDAClassifier,
], ids=["jsu", "jsu-full", "sdgm", "jsu-sdgm", "lda"])
def test_density_ood_score_grows_far_from_the_training_data(make_model):
    # A discriminative score (energy) can fall far from the data; a normalised density cannot.
    X, y = _skewed_problem(300, seed=8)
    model = make_model().fit(X, y)
    typical = np.median(model.ood_score(X))
    for direction in (1, -1):
        far = model.ood_score((X.mean(axis=0) + direction * 50 * X.std(axis=0))[None, :])[0]
        assert far > typical + 5, (direction, far, typical)


# -- ONNX export on real features ---------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _myo_windows(path: str):
    """Features and labels of single-label windows of one Myo recording (200 ms, 50 ms hop)."""
    from biosig.config import PipelineConfig
    from biosig.stream.pipeline import process_recording
    from biosig.stream.sources import as_stream

    table = np.loadtxt(path, delimiter=",")
    data, labels = table[:, :8], table[:, 8].astype(int)
    config = PipelineConfig.for_rate(MYO_RATE_HZ)
    results = process_recording(as_stream(data, MYO_RATE_HZ, [f"emg{i}" for i in range(8)]),
                                config)
    last = np.rint(results.t_end * MYO_RATE_HZ).astype(int)
    length = int(round(config.window.length_s * MYO_RATE_HZ))
    first = last - length + 1
    single = labels[first] == labels[last]
    single &= np.array([np.all(labels[a:b + 1] == labels[b]) for a, b in zip(first, last)])
    return results.features[single], labels[last[single]], last[single]


@pytest.fixture
def myo_split(shared_data):
    path = shared_data / MYO_FILE
    if not path.is_file():
        pytest.skip(f"{path} not found")
    X, y, last_sample = _myo_windows(str(path))
    # Chronological: the first 8 of 12 five-second blocks train, the rest test.
    train = last_sample < 8000
    return X[train], y[train], X[~train], y[~train]


# Small settings: the parity of the export does not depend on how long a model trained.
_EXPORT_CASES = {
    "jsu": lambda: JSUClassifier(translation="robust", max_iter=200),
    "jsu-full": lambda: JSUClassifier("full", translation="robust", max_iter=100, epochs=3),
    "sdgm": lambda: SDGMClassifier(n_components=2, max_iter=20, random_state=0),
    "sdgm-full": lambda: SDGMClassifier(n_components=2, covariance="full", max_iter=20,
                                        random_state=0),
    "sdgm-trunk": lambda: SDGMClassifier(n_components=2, hidden_layer_sizes=(16,), max_iter=20,
                                         random_state=0),
    "jsu-sdgm": lambda: JSUSDGMClassifier(n_components=2, translation="robust", max_iter=20,
                                          random_state=0),
    "lda": lambda: LDAClassifier(),
    "mlp": lambda: MLPClassifier(max_iter=20, random_state=0),
}

#: ONNX ops the exported graphs may use (METHODS.md §7: constants and plain ops only).
_PLAIN_OPS = {
    "Sub", "Div", "Mul", "Add", "Neg", "Abs", "Sign", "Sqrt", "Log", "Exp", "Clip", "Min", "Max",
    "Greater", "Where", "Gather", "Concat", "MatMul", "Gemm", "Reshape", "ReduceLogSumExp",
    "ReduceMax", "ReduceProd", "ReduceSum", "Unsqueeze", "Squeeze", "Slice", "Shape",
    "ConstantOfShape", "Constant", "Expand", "Tanh", "Relu", "Cast", "Identity", "Transpose",
}


@pytest.mark.parametrize("arch", sorted(_EXPORT_CASES))
def test_onnx_export_matches_torch_on_real_data(arch, myo_split, tmp_path):
    X_train, y_train, X_test, _ = myo_split
    model = _EXPORT_CASES[arch]().fit(X_train, y_train)
    card = {"arch": arch, "class_names": [str(c) for c in model.classes_], "note": "µ-test ✓"}
    path = export_onnx(model, tmp_path / f"{arch}.onnx", model_card=card)

    stored = onnx.load(str(path))
    props = {p.key: p.value for p in stored.metadata_props}
    assert props[FORMAT_PROP] == FORMAT
    assert json.loads(props[CARD_PROP]) == card
    assert stored.opset_import[0].version in (17, 18)
    assert {node.op_type for node in stored.graph.node} <= _PLAIN_OPS

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [o.name for o in session.get_outputs()] == ["logits", "ood_score"]
    # Both sides see the same float32 feature values (the file's input type).
    features = X_test.astype(np.float32)
    logits, ood = session.run(None, {"features": features})
    assert logits.dtype == np.float32 and logits.shape == (len(X_test), len(model.classes_))
    assert ood.dtype == np.float32 and ood.shape == (len(X_test),)
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    posterior = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(posterior, model.predict_proba(features), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ood, model.ood_score(features), rtol=1e-6, atol=1e-5)
    # The torch engine (offline batches on a GPU onnxruntime cannot use) runs the same graph.
    torch_logits, torch_ood = TorchGraph(path.read_bytes(), "cpu")(features)
    np.testing.assert_allclose(torch_logits, logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(torch_ood, ood, rtol=1e-6, atol=1e-6)
    # A single window (the live path) gives the same as its row of the batch.
    one_logits, one_ood = session.run(None, {"features": features[:1]})
    np.testing.assert_allclose(one_logits[0], logits[0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(one_ood, ood[:1], rtol=1e-6, atol=1e-5)


def test_export_refuses_a_card_that_is_not_json(tmp_path):
    X, y = _skewed_problem(30, seed=9)
    model = LDAClassifier().fit(X, y)
    with pytest.raises(BiosigError, match="JSON"):
        export_onnx(model, tmp_path / "m.onnx", model_card={"bad": object()})


def test_the_live_path_does_not_import_torch():
    code = ("import sys, biosig.stream, biosig.dsp, biosig.io; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
