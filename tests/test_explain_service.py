"""The live explainer service inside a running pipeline, and `biosig explain`."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import biosig.cli
from biosig.datasets import build_dataset
from biosig.explain.service import ExplainerResult, ExplainerService, WindowRing
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.pipeline import Pipeline
from biosig.stream.results import WindowResults
from biosig.stream.sources import RecordingSource
from biosig.training import train_model
from conftest import RECORDINGS

MYO = RECORDINGS / "myo_12345-1.xdf"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    dataset, config, info = build_dataset([MYO], progress=False)
    path = tmp_path_factory.mktemp("explain") / "m.onnx"
    train_model(dataset, arch="lda", out=path, pipeline_config=config, stream_info=info,
                verbose=False)
    return path


@pytest.fixture(scope="module")
def stream():
    return read_recording(MYO).signal()


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _pipeline(stream, model, sinks, speed=40.0):
    return Pipeline(RecordingSource(stream, realtime=True, speed=speed), classifier=model,
                    sinks=sinks)


def test_service_publishes_mi_and_prototypes_while_the_pipeline_runs(model_path, stream):
    model = OnnxModel(model_path)
    received: list[ExplainerResult] = []
    service = ExplainerService(model, mi_interval_s=0.3, buffer_windows=400, min_windows=100,
                               on_result=received.append)
    pipeline = _pipeline(stream, model, [service.sink])
    with service, pipeline:
        assert _wait_for(lambda: service.stats.runs["mi"] >= 2, 15.0), service.stats
        assert _wait_for(lambda: service.latest("prototypes") is not None, 5.0), service.stats
        assert pipeline.running
    mi = service.latest("mi")
    assert mi.kind == "mi" and mi.payload.mi.shape == (48, 8)
    assert np.all(np.isfinite(mi.payload.mi)) and np.all(mi.payload.mi >= 0)
    assert mi.payload.feature_names == model.feature_names
    assert 100 <= mi.n_windows <= 400 and np.isfinite(mi.t_end)
    prototypes = service.latest("prototypes").payload
    assert sorted(prototypes) == [str(c) for c in range(8)]
    assert prototypes["3"].mean.shape == (48,)
    assert {r.kind for r in received} == {"mi", "prototypes"}
    assert not service.results.empty()
    assert json.dumps(mi.to_dict()) and json.dumps(service.latest("prototypes").to_dict())
    assert service.stats.errors == 0 and pipeline.stats.sink_errors == 0
    assert service.stats.last_duration_s["mi"] > 0


def test_stop_during_a_computation_returns_quickly(model_path, stream):
    model = OnnxModel(model_path)
    service = ExplainerService(model, mi_interval_s=0.05, buffer_windows=1000, min_windows=100,
                               compute_prototypes=False)
    with _pipeline(stream, model, [service.sink]) as pipeline:
        service.start()
        assert _wait_for(lambda: len(service.buffer) >= 600, 15.0)
        time.sleep(0.3)  # an MI refresh of ~1 s is under way
        started = time.perf_counter()
        assert service.stop(timeout=2.0)
        elapsed = time.perf_counter() - started
        assert pipeline.running
    assert elapsed < 1.0, elapsed
    assert not service.running


def test_an_explainer_failure_is_counted_and_the_pipeline_goes_on(model_path, stream,
                                                                  monkeypatch):
    model = OnnxModel(model_path)
    service = ExplainerService(model, mi_interval_s=0.1, min_windows=50,
                               compute_prototypes=False)

    def broken(*args, **kwargs):
        raise RuntimeError("explainer bug")

    monkeypatch.setattr("biosig.explain.service.ModelMITracker.update", broken)
    pipeline = _pipeline(stream, model, [service.sink])
    with service, pipeline:
        assert _wait_for(lambda: service.stats.errors >= 2, 10.0), service.stats
        windows = pipeline.stats.windows
        assert _wait_for(lambda: pipeline.stats.windows > windows + 50, 5.0)
        assert service.running and pipeline.running
    assert "explainer bug" in service.stats.last_error
    assert service.latest("mi") is None and pipeline.stats.sink_errors == 0


def test_a_failing_result_callback_is_counted(model_path):
    model = OnnxModel(model_path)
    calls = threading.Event()

    def callback(result):
        calls.set()
        raise ValueError("consumer bug")

    service = ExplainerService(model, on_result=callback, compute_prototypes=True)
    with service:
        assert calls.wait(10.0)
        assert _wait_for(lambda: service.stats.callback_errors == 1, 2.0)
    assert service.latest("prototypes") is not None and service.stats.errors == 0


def _batch(n, n_features=3, n_classes=2, start=0.0):
    t = start + np.arange(n, dtype=float)
    features = np.column_stack([t + k for k in range(n_features)])
    posteriors = np.full((n, n_classes), 1.0 / n_classes)
    return WindowResults(t_end=t, features=features, flagged=np.zeros(n, bool),
                         feature_names=[f"f{k}" for k in range(n_features)],
                         posteriors=posteriors, class_names=["a", "b"][:n_classes])


def test_the_buffer_is_bounded_and_keeps_the_newest_windows_in_order():
    service = ExplainerService(object(), buffer_windows=50, min_windows=20)
    for k in range(7):
        service.sink(_batch(13, start=13 * k))
    features, posteriors, t_end, total = service.buffer.snapshot()
    assert features.shape == (50, 3) and posteriors.shape == (50, 2) and total == 91
    np.testing.assert_array_equal(t_end, np.arange(41, 91))
    np.testing.assert_array_equal(features[:, 1], np.arange(41, 91) + 1)
    service.sink(_batch(120, start=1000))  # larger than the buffer: its newest rows
    np.testing.assert_array_equal(service.buffer.snapshot()[2], 1000 + np.arange(70, 120))


def test_the_sink_leaves_out_skipped_windows():
    service = ExplainerService(object(), buffer_windows=50, min_windows=20)
    batch = _batch(10)
    batch.skipped[:4] = True
    batch.posteriors[:4] = np.nan
    service.sink(batch)
    assert len(service.buffer) == 6 and service.stats.windows_skipped == 4
    assert np.all(np.isfinite(service.buffer.snapshot()[1]))


def test_ring_refuses_a_zero_capacity():
    with pytest.raises(ValueError):
        WindowRing(0)


def test_explain_command_writes_heatmap_prototypes_and_json(model_path, tmp_path, monkeypatch):
    if "explain" not in biosig.cli.COMMANDS:  # until the command is registered
        monkeypatch.setattr(biosig.cli, "COMMANDS", (*biosig.cli.COMMANDS, "explain"))
    out = tmp_path / "explained"
    argv = ["explain", str(model_path), str(MYO), "--out", str(out), "--max-windows", "300",
            "--mc-draws", "2000", "--quiet"]
    assert biosig.cli.main(argv) == 0
    for name in ("mi_heatmap.png", "prototypes.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    document = json.loads((out / "explain.json").read_text())
    assert np.asarray(document["mi"]["mi"]).shape == (48, 8)
    assert document["mi"]["units"] == "nats" and document["n_windows"] == 300
    assert len(document["prototypes"]) == 8
    assert len(document["prototypes"]["0"]["mean"]) == 48
    assert len(document["label_mi"]["mi"]) == 48


def test_explain_command_reports_a_bad_bootstrap_in_one_line(model_path, tmp_path, capsys,
                                                            monkeypatch):
    if "explain" not in biosig.cli.COMMANDS:
        monkeypatch.setattr(biosig.cli, "COMMANDS", (*biosig.cli.COMMANDS, "explain"))
    argv = ["explain", str(model_path), str(MYO), "--out", str(tmp_path), "--bootstrap", "3"]
    assert biosig.cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bootstrap" in err[0]
