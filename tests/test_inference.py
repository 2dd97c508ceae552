"""The ONNX inference engine: model contract and card, providers, posteriors, OOD, rejection,
smoothing, bad files, and the model in the pipeline's inference slot on a real recording."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
import onnx
import pylsl
import pytest
from onnx import TensorProto, helper, numpy_helper

from biosig._checks import BiosigError
from biosig.config import PipelineConfig
from biosig.inference import (
    CARD_PROP,
    MODEL_FORMAT,
    DecisionSmoother,
    OnnxModel,
    attach_model_card,
    build_linear_model,
    choose_providers,
    read_model_card,
    validate_model_card,
    write_model_card,
)
from biosig.io import read_recording
from biosig.stream.pipeline import CollectSink, Pipeline, StreamProcessor, process_recording
from biosig.stream.results import WindowResults
from biosig.stream.sinks import CSVSink, LSLResultsSink, read_results_csv
from biosig.stream.sources import RecordingSource
from conftest import RECORDINGS

MYO_XDF = RECORDINGS / "myo_12345-1.xdf"
MYO_CHANNELS = [f"emg{i + 1}" for i in range(8)]
MYO_RATE = 200.0
CLASSES = ["rest", "fist", "open", "pinch"]


def _myo_config() -> PipelineConfig:
    return PipelineConfig.for_rate(MYO_RATE, modality="EMG")


def _myo_feature_names() -> list[str]:
    return StreamProcessor(_myo_config(), MYO_RATE, MYO_CHANNELS).feature_names


def _card(**changes) -> dict:
    card = {
        "format": MODEL_FORMAT,
        "biosig_version": "0.1.0",
        "arch": "linear",
        "modality": "EMG",
        "srate": MYO_RATE,
        "channels": list(MYO_CHANNELS),
        "pipeline": _myo_config().to_dict(),
        "feature_names": _myo_feature_names(),
        "class_names": list(CLASSES),
        "temperature": 1.0,
        "ood": {"threshold": 0.0, "percentile": 99.0, "score": "neg_logsumexp"},
        "training": {"data": ["test"], "n_windows": 0, "seed": 0, "command": "test", "date": "-"},
        "metrics": {},
    }
    card.update(changes)
    return card


class Linear:
    """A linear-softmax model written to a file, with its numpy reference."""

    def __init__(self, path, card=None, seed=0, mean=None, scale=None):
        self.card = card or _card()
        rng = np.random.default_rng(seed)
        n_features, n_classes = len(self.card["feature_names"]), len(self.card["class_names"])
        self.W = rng.normal(size=(n_features, n_classes)).astype(np.float32)
        self.b = rng.normal(size=n_classes).astype(np.float32)
        self.mean = np.zeros(n_features) if mean is None else np.asarray(mean)
        self.scale = np.ones(n_features) if scale is None else np.asarray(scale)
        proto = build_linear_model(self.W, self.b, self.card, mean=self.mean, scale=self.scale)
        self.path = path
        onnx.save(proto, str(path))

    def logits(self, X) -> np.ndarray:
        z = (np.asarray(X, np.float64) - self.mean) / self.scale
        return z @ self.W.astype(np.float64) + self.b

    def posteriors(self, X, temperature=1.0) -> np.ndarray:
        z = self.logits(X) / temperature
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def ood_score(self, X) -> np.ndarray:
        z = self.logits(X)
        m = z.max(axis=1)
        return -(m + np.log(np.exp(z - m[:, None]).sum(axis=1)))


@pytest.fixture
def linear(tmp_path) -> Linear:
    return Linear(tmp_path / "linear.onnx")


def _features(n, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(_myo_feature_names())))


# -- providers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
         ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        (["CPUExecutionProvider", "CUDAExecutionProvider"],
         ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ],
)
def test_provider_choice_prefers_cuda_then_cpu(available, expected):
    assert choose_providers(available) == expected


def test_requested_providers_must_be_available():
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(available, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(available, "CUDAExecutionProvider") == available
    with pytest.raises(BiosigError, match="ROCMExecutionProvider.*not available"):
        choose_providers(available, ["ROCMExecutionProvider"])


def test_session_logs_the_provider_in_use(linear, caplog):
    with caplog.at_level("INFO", logger="biosig.inference"):
        model = OnnxModel(linear.path)
    assert model.providers[0] in caplog.text
    assert model.providers[-1] == "CPUExecutionProvider"
    assert repr(model).startswith(
        "<OnnxModel 'linear.onnx' | linear | EMG 8 ch @ 200 Hz | 48 features")


# -- posteriors, temperature, OOD, rejection, smoothing --------------------------------------


def test_posteriors_equal_a_numpy_reference(linear):
    model = OnnxModel(linear.path)
    X = _features(257)
    np.testing.assert_array_equal(model.classes_, CLASSES)
    np.testing.assert_allclose(model.predict_logits(X), linear.logits(X), rtol=1e-5, atol=1e-5)
    proba = model.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba, linear.posteriors(X), atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), np.array(CLASSES)[proba.argmax(axis=1)])
    inference = model.infer(X)
    p = linear.posteriors(X)
    np.testing.assert_allclose(inference.entropy, -(p * np.log(p)).sum(axis=1), atol=1e-6)
    np.testing.assert_allclose(inference.ood_score, linear.ood_score(X), rtol=1e-5, atol=1e-5)


def test_standardisation_in_the_graph(tmp_path):
    n = len(_myo_feature_names())
    rng = np.random.default_rng(3)
    lin = Linear(tmp_path / "std.onnx", mean=rng.normal(size=n) * 10, scale=rng.uniform(1, 5, n))
    X = rng.normal(size=(40, n)) * 5 + lin.mean
    np.testing.assert_allclose(OnnxModel(lin.path).predict_proba(X), lin.posteriors(X), atol=1e-6)


def test_temperature_scales_the_logits(tmp_path):
    lin = Linear(tmp_path / "t.onnx", card=_card(temperature=2.5))
    model = OnnxModel(lin.path)
    X = _features(50)
    np.testing.assert_allclose(model.predict_proba(X), lin.posteriors(X, 2.5), atol=1e-6)
    # A higher temperature flattens the posterior: more entropy than at T = 1.
    p1 = lin.posteriors(X)
    assert np.all(model.infer(X).entropy > -(p1 * np.log(p1)).sum(axis=1) - 1e-9)
    absent = _card()
    del absent["temperature"]
    lin = Linear(tmp_path / "t1.onnx", card=absent)
    np.testing.assert_allclose(OnnxModel(lin.path).predict_proba(X), lin.posteriors(X), atol=1e-6)


def test_ood_flag_is_the_score_above_the_card_threshold(tmp_path):
    X = _features(300)
    probe = Linear(tmp_path / "probe.onnx")
    threshold = float(np.median(probe.ood_score(X)))
    card = _card(ood={"threshold": threshold, "percentile": 50.0, "score": "neg_logsumexp"})
    model = OnnxModel(Linear(tmp_path / "ood.onnx", card=card).path)
    inference = model.infer(X)
    np.testing.assert_array_equal(inference.ood_flag, inference.ood_score > threshold)
    assert 100 < inference.ood_flag.sum() < 200
    # Decisions are not touched by the flag unless asked to.
    assert (inference.predicted >= 0).all()
    rejecting = OnnxModel(model.path, reject_ood=True).infer(X)
    np.testing.assert_array_equal(rejecting.rejected, inference.ood_flag)
    np.testing.assert_array_equal(rejecting.predicted == -1, inference.ood_flag)


def test_rejection_below_the_threshold(linear):
    X = _features(400)
    plain = OnnxModel(linear.path).infer(X)
    assert not plain.rejected.any()
    np.testing.assert_array_equal(plain.predicted, plain.posteriors.argmax(axis=1))
    threshold = float(np.median(plain.posteriors.max(axis=1)))
    model = OnnxModel(linear.path, reject_threshold=threshold)
    inference = model.infer(X)
    expected = plain.posteriors.max(axis=1) < threshold
    np.testing.assert_array_equal(inference.rejected, expected)
    np.testing.assert_array_equal(inference.predicted[expected], -1)
    np.testing.assert_array_equal(inference.predicted[~expected], plain.predicted[~expected])
    np.testing.assert_array_equal(inference.posteriors, plain.posteriors)  # kept as they are
    with pytest.raises(BiosigError, match="reject_threshold"):
        OnnxModel(linear.path, reject_threshold=1.5)


def test_non_finite_features_give_no_decision(linear):
    X = _features(3)
    X[1, 4] = np.nan
    inference = OnnxModel(linear.path).infer(X)
    assert np.isnan(inference.posteriors[1]).all() and np.isnan(inference.entropy[1])
    np.testing.assert_array_equal(inference.rejected, [False, True, False])
    assert inference.predicted[1] == -1 and inference.ood_flag[1]


def test_decision_smoother_majority_vote():
    smoother = DecisionSmoother(3)
    # k = 3; a tie goes to the class voted for most recently.
    decisions = [0, 1, 1, 2, 0, 2, -1, 2, 1]
    assert smoother.update_many(decisions).tolist() == [0, 1, 1, 1, 0, 2, -1, 2, 1]
    smoother.reset()
    assert smoother.update(3) == 3
    assert DecisionSmoother(1).update_many([2, 0, 1]).tolist() == [2, 0, 1]
    with pytest.raises(BiosigError, match="smoothing"):
        DecisionSmoother(0)


def test_model_smoothing_runs_over_consecutive_calls(linear):
    X = _features(60)
    raw = OnnxModel(linear.path).infer(X).predicted
    model = OnnxModel(linear.path, smoothing=5)
    one_call = model.infer(X).predicted
    np.testing.assert_array_equal(one_call, DecisionSmoother(5).update_many(raw))
    model.reset()
    in_pieces = np.concatenate([model.infer(X[i:i + 7]).predicted for i in range(0, 60, 7)])
    np.testing.assert_array_equal(in_pieces, one_call)
    assert (one_call != raw).any()


def test_single_window_and_batched_paths_agree(linear):
    model = OnnxModel(linear.path, batch_size=64)
    X = _features(200)
    batched = model.infer(X)
    singles = [model.infer(x) for x in X]
    np.testing.assert_allclose(np.concatenate([s.posteriors for s in singles]), batched.posteriors,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose([s.ood_score[0] for s in singles], batched.ood_score,
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal([s.predicted[0] for s in singles], batched.predicted)
    # The single-window buffers are reused: earlier results must not change afterwards.
    first = model.infer(X[0])
    model.infer(X[1])
    np.testing.assert_array_equal(first.posteriors, batched.posteriors[:1])
    assert model.infer(np.zeros((0, X.shape[1]))).posteriors.shape == (0, len(CLASSES))
    with pytest.raises(BiosigError, match="takes 48 features per window"):
        model.predict_proba(np.zeros((2, 47)))


# -- metadata checks -------------------------------------------------------------------------


def test_stream_mismatch_errors_name_what_differs(linear):
    model = OnnxModel(linear.path)
    model.check_stream(200.0, MYO_CHANNELS)
    model.check_stream(200.0, ["ref"] + MYO_CHANNELS[::-1])  # picked by label
    with pytest.raises(BiosigError, match=r"trained at 200 Hz.*sampled at 1000 Hz"):
        model.check_stream(1000.0, MYO_CHANNELS)
    with pytest.raises(BiosigError, match=r"needs 8 channels .* the stream has 4"):
        model.check_stream(200.0, MYO_CHANNELS[:4])
    with pytest.raises(BiosigError, match=r"needs channel\(s\) \['emg3'\] that the stream lacks"):
        model.check_stream(200.0, [c if c != "emg3" else "EMG3" for c in MYO_CHANNELS])


def test_check_recording_on_a_real_file(tmp_path, linear):
    recording = read_recording(MYO_XDF)
    stream = OnnxModel(linear.path).check_recording(recording)
    assert stream.srate == MYO_RATE and stream.channel_labels == MYO_CHANNELS
    other = Linear(tmp_path / "other.onnx", card=_card(srate=1000.0))
    with pytest.raises(BiosigError, match="trained at 1000 Hz"):
        OnnxModel(other.path).check_recording(stream)
    # The pipeline refuses it too, before any sample is processed.
    with pytest.raises(BiosigError, match="trained at 1000 Hz"):
        StreamProcessor(_myo_config(), stream.srate, stream.channel_labels, OnnxModel(other.path))


def test_pipeline_refuses_a_model_for_other_features(tmp_path):
    names = _myo_feature_names()
    reordered = names[8:] + names[:8]
    lin = Linear(tmp_path / "order.onnx", card=_card(feature_names=reordered))
    with pytest.raises(BiosigError, match="another order"):
        StreamProcessor(_myo_config(), MYO_RATE, MYO_CHANNELS, OnnxModel(lin.path))


def test_pipeline_config_comes_from_the_card(linear):
    config = OnnxModel(linear.path).pipeline_config()
    assert config.srate == MYO_RATE and config.channels == MYO_CHANNELS
    assert config.stream_type == "EMG"
    assert config.window.length_s == _myo_config().window.length_s
    assert config.to_dict()["preprocess"] == _myo_config().to_dict()["preprocess"]


# -- bad files and bad cards -----------------------------------------------------------------


def _assert_one_line_error(path):
    with pytest.raises(BiosigError) as info:
        OnnxModel(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_garbage_files_are_one_line_errors(tmp_path, linear):
    cases = {
        "empty.onnx": b"",
        "text.onnx": b"this is not a model\n" * 20,
        "random.onnx": np.random.default_rng(0).bytes(4096),
        "zip.onnx": b"PK\x03\x04" + bytes(200),
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        assert str(tmp_path / name) in _assert_one_line_error(tmp_path / name)
    with pytest.raises(BiosigError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")


def test_truncated_and_byte_flipped_files_never_crash(tmp_path, linear):
    raw = linear.path.read_bytes()
    rng = np.random.default_rng(1234)
    broken = tmp_path / "broken.onnx"
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        data = bytearray(raw)
        if i % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        elif i % 3 == 1:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[pos] ^= 1 << int(rng.integers(0, 8))
        else:
            pos = int(rng.integers(0, len(data) - 16))
            data[pos:pos + 16] = rng.bytes(16)
        broken.write_bytes(bytes(data))
        try:
            model = OnnxModel(broken)
        except BiosigError as err:
            assert "\n" not in str(err)
            outcomes["refused"] += 1
            continue
        # A flip inside the weights still makes a valid model: it must then run cleanly.
        assert model.predict_proba(_features(2)).shape == (2, len(CLASSES))
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 150


def _save_with_props(proto, path, props):
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def test_missing_or_bad_card_is_refused(tmp_path, linear):
    proto = onnx.load(str(linear.path))
    good = json.dumps(_card())
    path = _save_with_props(proto, tmp_path / "nocard.onnx", {})
    assert "carries no biosig model card" in _assert_one_line_error(path)
    path = _save_with_props(proto, tmp_path / "badjson.onnx",
                            {"biosig.format": MODEL_FORMAT, CARD_PROP: good[:-5]})
    assert "not valid JSON" in _assert_one_line_error(path)
    path = _save_with_props(proto, tmp_path / "format.onnx",
                            {"biosig.format": "biosig-model/9", CARD_PROP: good})
    assert "biosig-model/9" in _assert_one_line_error(path)
    for key in ("srate", "class_names", "ood", "pipeline"):
        card = _card()
        del card[key]
        path = _save_with_props(proto, tmp_path / f"no-{key}.onnx",
                                {"biosig.format": MODEL_FORMAT, CARD_PROP: json.dumps(card)})
        assert f"missing key(s) {key}" in _assert_one_line_error(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"modality": "EEG"}, "modality must be one of EMG, CTG \\(or 'features'"),
        ({"srate": -200}, "srate must be > 0"),
        ({"srate": "200"}, "srate must be a finite number"),
        ({"channels": ["emg1", "emg1"]}, "channels lists"),
        ({"class_names": ["only"]}, "class_names needs at least 2"),
        ({"class_labels": ["a"]}, "class_labels must be 4 strings"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"ood": {"threshold": 1.0, "score": "x"}}, "ood lacks percentile"),
        ({"ood": {"threshold": 1.0, "percentile": 120, "score": "x"}}, "ood.percentile"),
        ({"pipeline": {"window": {"length_s": "long"}}}, "pipeline: window length_s"),
        ({"pipeline": {"bogus": 1}}, "pipeline: unknown key 'bogus'"),
        ({"pipeline": {"window": [1, 2]}}, "pipeline: \\[window\\] must be a table"),
        ({"pipeline": {"preprocess": {"rectify": 1}}}, "pipeline: rectify must be true or false"),
        ({"pipeline": {"channels": ["x"]}}, "pipeline channels"),
        ({"training": []}, "training must be an object"),
    ],
)
def test_card_validation(changes, message):
    with pytest.raises(BiosigError, match=message):
        validate_model_card(_card(**changes))


def test_card_values_of_any_type_are_errors_not_crashes():
    rng = np.random.default_rng(5)
    oddities = [None, 0, -1.5, float("nan"), "", "x", [], [1, 2], {}, {"a": 1}, True]
    for key in _card():
        for value in oddities:
            try:
                validate_model_card(_card(**{key: value}))
            except BiosigError:
                pass
    for _ in range(50):
        pipeline = _card()["pipeline"]
        section = rng.choice(["preprocess", "window", "features"])
        field = rng.choice(sorted(pipeline[section]))
        pipeline[section][field] = oddities[int(rng.integers(len(oddities)))]
        try:
            validate_model_card(_card(pipeline=pipeline))
        except BiosigError:
            pass


def test_a_feature_table_model_runs_on_features_but_not_on_streams(tmp_path):
    card = _card(modality="features", srate=None, channels=[], pipeline=None,
                 feature_names=[f"col{i}" for i in range(5)])
    lin = Linear(tmp_path / "table.onnx", card=card)
    model = OnnxModel(lin.path)
    assert not model.runs_on_streams and model.srate is None
    assert "| feature table |" in repr(model)
    X = np.random.default_rng(2).normal(size=(9, 5))
    np.testing.assert_allclose(model.predict_proba(X), lin.posteriors(X), atol=1e-6)
    for call in (model.pipeline_config, lambda: model.check_stream(200.0, MYO_CHANNELS)):
        with pytest.raises(BiosigError, match="trained on a feature table"):
            call()
    with pytest.raises(BiosigError, match="trained on a feature table"):
        StreamProcessor(_myo_config(), MYO_RATE, MYO_CHANNELS, model)
    with pytest.raises(BiosigError, match="srate null, channels \\[\\] and pipeline null"):
        validate_model_card(dict(card, srate=200.0))


def _contract_model(path, *, input_name="features", input_shape=("N", 48), outputs=None):
    """A graph that breaks the contract in one chosen way (or not), with a valid card."""
    outputs = outputs or [("logits", ["N", len(CLASSES)]), ("ood_score", ["N"])]
    n_classes = outputs[0][1][1]
    w = numpy_helper.from_array(np.ones((input_shape[1], n_classes), np.float32), "W")
    axis = numpy_helper.from_array(np.array([1], np.int64), "axis")
    nodes = [
        helper.make_node("MatMul", [input_name, "W"], ["logits"]),
        helper.make_node("ReduceLogSumExp", ["logits", "axis"], ["lse"], keepdims=0),
        helper.make_node("Neg", ["lse"], ["ood_score"]),
    ]
    graph = helper.make_graph(
        nodes, "contract",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs],
        initializer=[w, axis],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 10
    onnx.save(attach_model_card(proto, _card()), str(path))
    return path


def test_contract_violations_are_named(tmp_path):
    OnnxModel(_contract_model(tmp_path / "ok.onnx"))
    path = _contract_model(tmp_path / "name.onnx", input_name="x")
    assert "one input named 'features'" in _assert_one_line_error(path)
    path = _contract_model(tmp_path / "fixed.onnx", input_shape=(1, 48))
    assert "dynamic first (batch) dimension" in _assert_one_line_error(path)
    path = _contract_model(tmp_path / "width.onnx", input_shape=("N", 47))
    assert "features must be [N, F] with size 48" in _assert_one_line_error(path)
    path = _contract_model(tmp_path / "ood.onnx", outputs=[("logits", ["N", 4])])
    assert "lacks output(s) ['ood_score']" in _assert_one_line_error(path)
    path = _contract_model(tmp_path / "classes.onnx",
                           outputs=[("logits", ["N", 5]), ("ood_score", ["N"])])
    assert "logits must be [N, C] with size 4" in _assert_one_line_error(path)


def test_card_files(tmp_path, linear, caplog):
    assert read_model_card(linear.path)["class_names"] == CLASSES
    sidecar = write_model_card(linear.path, _card())
    assert sidecar == linear.path.with_suffix(".json")
    card = read_model_card(sidecar)
    assert card == OnnxModel(linear.path).card
    assert card["class_labels"] == CLASSES and card["temperature"] == 1.0
    sidecar.write_text(json.dumps(_card(arch="changed")))
    with caplog.at_level("WARNING", logger="biosig.inference"):
        OnnxModel(linear.path)
    assert "differs from the card inside linear.onnx" in caplog.text


# -- in the pipeline, on a real recording ----------------------------------------------------


@pytest.fixture(scope="module")
def myo_stream():
    return read_recording(MYO_XDF).signal(type="EMG")


def _myo_model(tmp_path, myo_stream, **options) -> OnnxModel:
    """A linear model standardised on the recording's features, OOD at their 90th percentile."""
    features = process_recording(myo_stream, _myo_config()).features
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-12
    probe = Linear(tmp_path / "probe.onnx", mean=mean, scale=scale, seed=7)
    threshold = float(np.percentile(probe.ood_score(features), 90))
    card = _card(ood={"threshold": threshold, "percentile": 90.0, "score": "neg_logsumexp"},
                 temperature=1.3)
    lin = Linear(tmp_path / "myo.onnx", card=card, mean=mean, scale=scale, seed=7)
    return OnnxModel(lin.path, **options)


def test_model_in_the_pipeline_on_a_real_recording(tmp_path, myo_stream):
    model = _myo_model(tmp_path, myo_stream, reject_threshold=0.5, smoothing=3)
    offline = process_recording(myo_stream, classifier=model)  # the model's own settings
    assert len(offline) > 1000
    assert offline.has_ood
    np.testing.assert_allclose(offline.posteriors.sum(axis=1), 1.0, atol=1e-12)
    assert 0.05 < offline.ood_flag.mean() < 0.15  # ~10 % above the 90th percentile
    assert 0 < offline.rejected.sum() < len(offline)
    np.testing.assert_array_equal(offline.predicted[offline.rejected], -1)
    assert np.all(offline.entropy >= 0) and np.all(offline.entropy <= np.log(len(CLASSES)) + 1e-9)

    csv_path = tmp_path / "results.csv"
    csv_sink, collect = CSVSink(csv_path), CollectSink()
    source = RecordingSource(myo_stream, chunk_sizes=[7, 33, 1, 120, 64])
    pipeline = Pipeline(source, classifier=model, sinks=[collect, csv_sink])
    with pipeline:
        assert pipeline.wait(timeout=120)
    csv_sink.close()
    assert pipeline.stats.error is None and pipeline.stats.sink_errors == 0
    live = collect.results()
    assert len(live) == len(offline)
    assert not live.skipped.any()
    np.testing.assert_allclose(live.posteriors, offline.posteriors, atol=1e-5)
    np.testing.assert_allclose(live.ood_score, offline.ood_score, rtol=1e-5, atol=1e-5)
    assert np.mean(live.predicted == offline.predicted) > 0.99
    assert (live.latency_s > 0).all()
    assert pipeline.stats.windows_ood == int(live.ood_flag.sum())
    assert pipeline.stats.windows_rejected == int(live.rejected.sum())

    table = read_results_csv(csv_path)
    for column in ("ood_score", "ood", "rejected", "entropy", "predicted", "p(rest)"):
        assert column in table
    np.testing.assert_allclose(table["ood_score"], live.ood_score, rtol=1e-12)
    np.testing.assert_array_equal(table["ood"], live.ood_flag.astype(float))
    np.testing.assert_array_equal(table["rejected"], live.rejected.astype(float))
    np.testing.assert_allclose(table["entropy"], live.entropy, rtol=1e-12)
    names = np.array(CLASSES + [""], dtype=object)
    np.testing.assert_array_equal(table["predicted"], names[live.predicted])


def test_window_results_concat_keeps_the_new_columns():
    def part(n, with_ood):
        res = WindowResults(np.arange(n, dtype=float), np.zeros((n, 2)), np.zeros(n, bool),
                            ["a", "b"], posteriors=np.full((n, 2), 0.5), class_names=["x", "y"])
        if with_ood:
            res.ood_score, res.ood_flag = np.ones(n), np.ones(n, bool)
            res.rejected, res.decision = np.ones(n, bool), np.full(n, -1)
        return res

    joined = WindowResults.concat([part(2, True), part(0, True), part(3, True)])
    assert len(joined) == 5 and joined.ood_flag.all() and (joined.predicted == -1).all()
    mixed = WindowResults.concat([part(2, True), part(1, False)])
    np.testing.assert_array_equal(mixed.rejected, [True, True, False])
    assert np.isnan(mixed.ood_score[2]) and mixed.predicted.tolist() == [-1, -1, 0]
    plain = WindowResults.concat([part(2, False)])
    assert plain.ood_score is None and not plain.has_ood
    assert plain.predicted.tolist() == [0, 0]


def test_lsl_results_sink_carries_ood_and_rejection(tmp_path, myo_stream):
    model = _myo_model(tmp_path, myo_stream, reject_threshold=0.6)
    results = process_recording(myo_stream, classifier=model)
    name = f"biosig-test-{uuid.uuid4().hex[:10]}"
    sink = LSLResultsSink(list(model.classes_), name=name)
    (info,) = pylsl.resolve_byprop("name", name, 1, 5.0)
    (label_info,) = pylsl.resolve_byprop("name", f"{name}-labels", 1, 5.0)
    inlet, labels = pylsl.StreamInlet(info), pylsl.StreamInlet(label_info)
    labels_full = inlet.info(5.0).get_channel_labels()
    assert labels_full == [f"p({c})" for c in CLASSES] + [
        "entropy", "predicted", "ood_score", "ood", "rejected"]
    inlet.open_stream(5.0)
    labels.open_stream(5.0)
    rejected_i = int(np.flatnonzero(results.rejected)[0])
    accepted_i = int(np.flatnonzero(~results.rejected)[0])
    batch = WindowResults.concat([_slice(results, rejected_i), _slice(results, accepted_i)])
    sink(batch)
    got = [inlet.pull_sample(timeout=5.0)[0] for _ in range(2)]
    label = labels.pull_sample(timeout=5.0)[0]
    sink.close()
    n = len(CLASSES)
    assert got[0][n + 1] == -1 and got[0][n + 4] == 1  # rejected: no decision
    assert got[1][n + 1] == results.predicted[accepted_i] and got[1][n + 4] == 0
    for sample, i in zip(got, (rejected_i, accepted_i)):
        np.testing.assert_allclose(sample[:n], results.posteriors[i], rtol=1e-6)
        assert sample[n + 2] == pytest.approx(results.ood_score[i], rel=1e-6)
        assert sample[n + 3] == float(results.ood_flag[i])
    assert label == [CLASSES[results.predicted[accepted_i]]]  # only the decided window's label


def _slice(results: WindowResults, i: int) -> WindowResults:
    keep = slice(i, i + 1)
    return WindowResults(
        results.t_end[keep], results.features[keep], results.flagged[keep], results.feature_names,
        posteriors=results.posteriors[keep], class_names=results.class_names,
        skipped=results.skipped[keep], latency_s=results.latency_s[keep],
        ood_score=results.ood_score[keep], ood_flag=results.ood_flag[keep],
        rejected=results.rejected[keep], decision=results.decision[keep],
    )


# -- the live path stays light ---------------------------------------------------------------


def test_importing_and_running_the_engine_does_not_import_torch(linear):
    code = (
        "import sys\n"
        "import biosig.inference, biosig.stream.pipeline, biosig.stream.sinks\n"
        f"m = biosig.inference.OnnxModel({str(linear.path)!r})\n"
        "m.infer([[0.0] * 48])\n"
        "heavy = sorted(n for n in ('torch', 'PySide6', 'PyQt5', 'PyQt6') if n in sys.modules)\n"
        "print(','.join(heavy) or 'clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_a_model_opens_and_predicts_without_numba_or_scipy_signal():
    # What the explainer's worker process does: it must not pay for the DSP's compiled loops
    # (numba: ~0.3 s and ~120 MB) nor scipy.signal (~1 s) that it never runs.
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "models" / "myo-12345-jsu.onnx"
    code = (
        "import sys, numpy as np\n"
        "from biosig.inference import OnnxModel\n"
        f"m = OnnxModel({str(model)!r}, threads=1)\n"
        "p = m.predict_proba(np.ones((5, m.n_features)))\n"
        "assert p.shape == (5, 8)\n"
        "print(sorted(x for x in ('numba', 'scipy.signal', 'torch') if x in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
