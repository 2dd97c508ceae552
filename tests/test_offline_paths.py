"""The offline fast paths give what the live paths give.

- :class:`SOSFilter` takes a chunk of many 64-sample blocks at once (its states from powers of
  the block transition): the output must match scipy's ``sosfilt`` and a live-sized chunking.
- ``export_onnx`` writes the compact graph (:class:`biosig.nets.export.CompactGraph`) for the
  JSU and SDGM networks: one matrix product on ``[t, t²]`` for the diagonal JSU, no per-value
  Gather for the SDGM; its outputs must match the estimator's own graph, and the networks it
  does not know are exported as they are.
- The analysis chunks stay within one piece of the feature chain.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from biosig.config import PipelineConfig
from biosig.dsp import SOSFilter, cascade, design_highpass, design_notch

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """One intra-op thread: small fits, where synchronising threads costs more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the filter ------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["zeros", "steady"])
def test_sos_filter_long_chunks_match_scipy_and_live_chunks(init):
    fs = 200.0
    sos = cascade(design_highpass(20.0, fs), design_notch(50.0, fs))  # 3 sections: many-block
    x = np.random.default_rng(5).normal(size=(9000, 4)) * 40.0 + 25.0
    zi = np.zeros((sos.shape[0], 2, 4))
    if init == "steady":
        zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    reference, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    scale = np.abs(reference).max()
    # Long chunks (whole blocks and a remainder), then live-sized ones, on one filter.
    bounds = [0, 4096, 4100, 8300, 8332, 9000]
    mixed = SOSFilter(sos, 4, init=init)
    got = np.vstack([mixed.process(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    live = SOSFilter(sos, 4, init=init)
    chunked = np.vstack([live.process(x[a : a + 32]) for a in range(0, 9000, 32)])
    assert np.max(np.abs(got - reference)) <= 1e-12 * scale
    assert np.max(np.abs(got - chunked)) <= 1e-12 * scale
    np.testing.assert_allclose(mixed.zi, live.zi, rtol=0, atol=1e-12 * scale)


# -- the compact export ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def myo_features():
    """Features and per-window labels of the bundled Myo session (one analysis pass)."""
    from biosig.io import read_recording
    from biosig.stream.pipeline import process_recording

    recording = read_recording("recordings/myo_12345-1.xdf")
    stream = recording.signal(type="EMG")
    results = process_recording(stream, PipelineConfig.for_rate(stream.srate))
    labels = recording.labels().label_at(results.t_end)
    keep = np.asarray([label not in (None, "") for label in labels])
    return results.features[keep], np.asarray(labels, dtype=object)[keep].astype(str)


def _export(model, path):
    from biosig.nets.export import export_onnx

    card = {"arch": type(model).__name__, "class_names": [str(c) for c in model.classes_]}
    return onnx.load(str(export_onnx(model, path, model_card=card)))


def _run(model_proto, X):
    session = ort.InferenceSession(model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"features": X.astype(np.float32)})


def _ops(model_proto):
    return [node.op_type for node in model_proto.graph.node]


def _fitted(kind, X, y):
    from biosig.nets import JSUClassifier, JSUSDGMClassifier, LDAClassifier, SDGMClassifier

    make = {
        "jsu": lambda: JSUClassifier(translation="robust", max_iter=100),
        "sdgm": lambda: SDGMClassifier(n_components=2, max_iter=3, random_state=0),
        # The full quadratic form: the layout whose products the compact graph gathers.
        "sdgm-full": lambda: SDGMClassifier(n_components=2, covariance="full", max_iter=3,
                                            random_state=0),
        "jsu-sdgm": lambda: JSUSDGMClassifier(n_components=2, translation="robust", max_iter=2,
                                              random_state=0),
        "lda": lambda: LDAClassifier(),
    }[kind]
    return make().fit(X[::4], y[::4])


@pytest.mark.parametrize("kind", ["jsu", "sdgm", "sdgm-full", "jsu-sdgm"])
def test_compact_graph_equals_the_estimators_graph(kind, myo_features):
    from biosig.nets.export import CompactGraph

    X, y = myo_features
    model = _fitted(kind, X, y)
    graph = model.inference_graph()
    compact = CompactGraph.of(graph)
    assert compact is not None
    probe = torch.as_tensor(np.vstack([X[:300], X[:50] * 20.0, -X[:50]]))
    with torch.no_grad():
        for expected, got in zip(graph(probe), compact(probe)):
            # float64 but for the log-sum-exps' float32 exponentials (~1e-7 in a log-score)
            error = np.abs(got.numpy() - expected.numpy()) / (1.0 + np.abs(expected.numpy()))
            assert error.max() < 1e-6


def test_the_compact_log_sum_exps_equal_torchs():
    from biosig.nets.export import _logsumexp, _logsumexp_over_parts

    rng = np.random.default_rng(0)
    # Log-scores of a few hundred, some terms far below the largest (and some components
    # pruned to -1e30): the float32 exponentials must neither underflow nor lose the sum.
    x = rng.normal(0.0, 1.0, (200, 12)) * rng.choice([0.1, 3.0, 1e4], (200, 12)) - 300.0
    x[::7, 3] = -1e30
    x = torch.as_tensor(x)
    expected = torch.logsumexp(x, dim=-1).numpy()
    np.testing.assert_allclose(_logsumexp(x).numpy(), expected, rtol=0, atol=5e-7)
    # Three blocks of four columns (component-major): the log-sum-exp of each column triple.
    parts = _logsumexp_over_parts(x, 3, 4).numpy()
    triples = torch.logsumexp(x.reshape(-1, 3, 4), dim=1).numpy()
    np.testing.assert_allclose(parts, triples, rtol=0, atol=5e-7)


@pytest.mark.parametrize("n", [1, 7, 14, 48])
def test_the_jacobians_grouped_logs_equal_the_sum_of_logs(n):
    from biosig.nets.export import _ASINH_CLIP, _sum_of_logs

    rng = np.random.default_rng(n)
    magnitude = np.abs(rng.standard_cauchy((64, n))) * 10.0 ** rng.uniform(-3, 80, (64, n))
    magnitude = np.minimum(magnitude, _ASINH_CLIP)
    values = torch.as_tensor(np.sqrt(magnitude * magnitude + 1.0))
    got = _sum_of_logs(values, n).numpy()
    assert np.all(np.isfinite(got))  # no product of clipped factors overflows
    np.testing.assert_allclose(got, np.log(values.numpy()).sum(axis=1), rtol=1e-13)


def test_exported_graphs_are_compact_and_agree_with_torch(myo_features, tmp_path):
    X, y = myo_features
    jsu = _fitted("jsu", X, y)
    stored = _export(jsu, tmp_path / "jsu.onnx")
    ops = _ops(stored)
    # Diagonal JSU: logits and density from two products (on s, then s² added), with no Concat;
    # one log each for asinh, the density's log-sum-exp and the Jacobian (that one of products
    # of several features' factors).
    assert ops.count("Gemm") + ops.count("MatMul") == 2 and "Concat" not in ops
    assert ops.count("Log") == 3
    assert "ReduceProd" in ops and "ReduceLogSumExp" not in ops
    assert "Gather" not in ops and "Where" not in ops
    sdgm = _fitted("sdgm-full", X, y)
    stored = _export(sdgm, tmp_path / "sdgm.onnx")
    # φ's products come from whole rows of hᵀ: every Gather runs along axis 0.
    gathers = [node for node in stored.graph.node if node.op_type == "Gather"]
    assert gathers and all(attr.i == 0 for node in gathers for attr in node.attribute)
    for model, path in ((jsu, tmp_path / "jsu.onnx"), (sdgm, tmp_path / "sdgm.onnx")):
        logits, ood = _run(onnx.load(str(path)), X[:500])
        shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        posterior = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        features = X[:500].astype(np.float32)
        np.testing.assert_allclose(posterior, model.predict_proba(features), rtol=0, atol=1e-5)
        np.testing.assert_allclose(ood, model.ood_score(features), rtol=1e-6, atol=1e-5)


def test_networks_without_a_compact_form_are_exported_as_they_are(myo_features):
    from biosig.nets.export import CompactGraph, compact_graph

    X, y = myo_features
    graph = _fitted("lda", X, y).inference_graph()
    assert CompactGraph.of(graph) is None
    assert compact_graph(graph) is graph


# -- analysis chunks ---------------------------------------------------------------------------


@pytest.mark.parametrize("srate", [200.0, 2048.0, 4.0])
def test_analysis_chunks_are_whole_hops_within_one_piece(srate):
    from biosig.analysis.batch import chunk_samples
    from biosig.dsp.chain import PIECE_SAMPLES

    config = PipelineConfig.for_rate(srate) if srate > 100 else PipelineConfig.ctg_default(srate)
    hop = int(round(config.window.hop_s * srate))
    n = chunk_samples(config, srate, 4096)
    assert n % hop == 0 and 0 < n
    assert n + hop <= max(PIECE_SAMPLES, 2 * hop)
    assert chunk_samples(config, srate, 1) == hop
