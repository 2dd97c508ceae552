"""The live explainer service inside a running pipeline (worker thread and worker process),
and `biosig explain`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import biosig.cli
from biosig.explain.ring import SharedWindowRing
from biosig.explain.service import ExplainerResult, ExplainerService, WindowRing
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.pipeline import Pipeline, process_recording
from biosig.stream.results import WindowResults
from biosig.stream.sources import RecordingSource
from conftest import RECORDINGS

MYO = RECORDINGS / "myo_12345-1.xdf"
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "myo-12345-jsu.onnx"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHM_DIR = Path("/dev/shm")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    # A private copy: the worker process opens the file again, so it must not change meanwhile.
    path = tmp_path_factory.mktemp("explain") / "myo-jsu.onnx"
    shutil.copy(BUNDLED_MODEL, path)
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


def _pipeline(stream, model, sinks, speed=10.0):
    # x10: 48 s of replay, windows keep coming while a slow (loaded) machine starts the worker.
    return Pipeline(RecordingSource(stream, realtime=True, speed=speed), classifier=model,
                    sinks=sinks)


def _child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _shm_linked(name: str) -> bool:
    if not SHM_DIR.is_dir():  # not Linux: nothing to look at
        pytest.skip("no /dev/shm")
    return (SHM_DIR / name).exists()


def test_service_publishes_mi_and_prototypes_from_a_worker_process(model_path, stream):
    model = OnnxModel(model_path)
    received: list[ExplainerResult] = []
    service = ExplainerService(model, mi_interval_s=0.3, buffer_windows=400, min_windows=100,
                               on_result=received.append)
    assert service.uses_process  # the default for a model read from a file
    pipeline = _pipeline(stream, model, [service.sink])
    with service, pipeline:
        assert _wait_for(lambda: service.stats.runs["mi"] >= 2, 30.0), service.stats
        assert _wait_for(lambda: service.latest("prototypes") is not None, 10.0), service.stats
        assert pipeline.running
        pid, shm_name = service.worker_pid, service.shared_memory_name
        assert pid in _child_pids() and _shm_linked(shm_name)
        if hasattr(os, "SCHED_IDLE"):  # it computes only on CPU time the pipeline leaves
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    # stop() ended the process and unlinked the shared memory.
    assert pid not in _child_pids() and not _shm_linked(shm_name)
    assert not service.running and service.shared_memory_name is None
    mi = service.latest("mi")
    assert mi.kind == "mi" and mi.payload.mi.shape == (48, 8)
    assert np.all(np.isfinite(mi.payload.mi)) and np.all(mi.payload.mi >= 0)
    assert mi.payload.feature_names == model.feature_names
    assert 100 <= mi.n_windows <= 400 and np.isfinite(mi.t_end)
    prototypes = service.latest("prototypes").payload
    assert sorted(prototypes) == [str(c) for c in range(8)]
    assert prototypes["3"].mean.shape == (48,)
    assert all(p.converged for p in prototypes.values())
    assert {r.kind for r in received} == {"mi", "prototypes"}
    assert not service.results.empty()
    assert json.dumps(mi.to_dict()) and json.dumps(service.latest("prototypes").to_dict())
    assert service.stats.errors == 0 and pipeline.stats.sink_errors == 0
    assert service.stats.last_duration_s["mi"] > 0
    # The live path's worker never imports torch (nor Qt, nor scikit-learn).
    assert service.stats.worker_imports == [] and service.stats.worker_starts == 1
    assert service.stats.worker_exits == 0


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_stop_during_a_computation_returns_quickly(model_path, stream, worker):
    model = OnnxModel(model_path)
    service = ExplainerService(model, mi_interval_s=0.05, buffer_windows=1000, min_windows=100,
                               compute_prototypes=False, worker=worker)
    with _pipeline(stream, model, [service.sink]) as pipeline:
        service.start()
        assert _wait_for(lambda: len(service.buffer) >= 600 and service.worker_ready, 30.0)
        time.sleep(0.3)  # an MI refresh of ~1 s is under way
        started = time.perf_counter()
        assert service.stop(timeout=2.0)
        elapsed = time.perf_counter() - started
        assert pipeline.running
    assert elapsed < 1.0, elapsed
    assert not service.running


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_an_explainer_failure_is_counted_and_the_pipeline_goes_on(model_path, stream, worker):
    model = OnnxModel(model_path)
    # n_mc=0 is refused by the MI tracker, inside the worker, on every refresh.
    service = ExplainerService(model, mi_interval_s=0.1, min_windows=50,
                               compute_prototypes=False, mi_options={"n_mc": 0}, worker=worker)
    pipeline = _pipeline(stream, model, [service.sink])
    with service, pipeline:
        assert _wait_for(lambda: service.stats.errors >= 2, 30.0), service.stats
        windows = pipeline.stats.windows
        assert _wait_for(lambda: pipeline.stats.windows > windows + 50, 5.0)
        assert service.running and pipeline.running
    assert "n_mc" in service.stats.last_error and service.stats.last_error.startswith("mi:")
    assert service.latest("mi") is None and pipeline.stats.sink_errors == 0
    assert service.stats.worker_exits == 0


def test_a_failing_result_callback_is_counted(model_path):
    model = OnnxModel(model_path)
    calls = threading.Event()

    def callback(result):
        calls.set()
        raise ValueError("consumer bug")

    service = ExplainerService(model, on_result=callback, compute_prototypes=True,
                               worker="thread")
    with service:
        assert calls.wait(10.0)
        assert _wait_for(lambda: service.stats.callback_errors == 1, 2.0)
    assert service.latest("prototypes") is not None and service.stats.errors == 0


def test_process_and_thread_workers_give_the_same_results(model_path, stream):
    model = OnnxModel(model_path)
    windows = process_recording(stream, classifier=model)
    found = {}
    for worker in ("thread", "process"):
        service = ExplainerService(model, mi_interval_s=600.0, buffer_windows=300,
                                   min_windows=100, worker=worker)
        service.sink(windows)  # the same 300 newest windows in both rings
        with service:
            assert _wait_for(lambda: service.latest("prototypes") is not None, 30.0)
            service.refresh_now()
            assert _wait_for(lambda: service.latest("mi") is not None, 30.0), service.stats
        found[worker] = service.latest()
    thread, process = found["thread"], found["process"]
    assert thread["mi"].n_windows == process["mi"].n_windows == 300
    np.testing.assert_array_equal(process["mi"].payload.mi, thread["mi"].payload.mi)
    assert process["mi"].payload.class_mi == thread["mi"].payload.class_mi
    assert process["mi"].t_end == thread["mi"].t_end
    for name, prototype in thread["prototypes"].payload.items():
        other = process["prototypes"].payload[name]
        np.testing.assert_array_equal(other.mean, prototype.mean)
        np.testing.assert_array_equal(other.std, prototype.std)
        assert other.n_iter == prototype.n_iter


def test_prototypes_on_the_buffer_are_refreshed_with_the_mi(model_path, stream):
    model = OnnxModel(model_path)
    service = ExplainerService(model, mi_interval_s=600.0, buffer_windows=1000, min_windows=100,
                               compute_prototypes=False, worker="thread",
                               prototype_options={"prior": "empirical"})
    service.sink(process_recording(stream, classifier=model))
    with service:
        service.refresh_now()
        assert _wait_for(lambda: service.latest("prototypes") is not None, 20.0), service.stats
    result = service.latest("prototypes")
    assert result.n_windows == 1000 and service.stats.runs == {"mi": 1, "prototypes": 1}
    features, posteriors = service.buffer.snapshot()[:2]
    spread = features.std(axis=0) + 1e-12
    for index, (name, proto) in enumerate(result.payload.items()):
        assert proto.prior == "empirical" and 1.0 <= proto.n_effective <= 1000
        chosen = posteriors.argmax(axis=1) == index
        if proto.n_effective < 10 or chosen.sum() < 10:
            continue  # class hardly in these 50 s of recording
        # Reweighting by p(c|x) lands among the windows the model gives to that class.
        to_class = np.linalg.norm((proto.mean - features[chosen].mean(axis=0)) / spread)
        to_all = np.linalg.norm((proto.mean - features.mean(axis=0)) / spread)
        assert to_class < to_all and proto.target_probability > 0.5, name


def test_a_killed_worker_process_is_counted_and_restarted(model_path, stream):
    model = OnnxModel(model_path)
    service = ExplainerService(model, mi_interval_s=0.2, buffer_windows=300, min_windows=100,
                               compute_prototypes=False)
    pipeline = _pipeline(stream, model, [service.sink])
    with service, pipeline:
        assert _wait_for(lambda: service.worker_ready, 30.0), service.stats
        first = service.worker_pid
        os.kill(first, signal.SIGKILL)
        assert _wait_for(lambda: service.stats.worker_exits == 1 and service.worker_ready,
                         30.0), service.stats
        second = service.worker_pid
        assert second != first and "exit code -9" in service.stats.last_error
        runs = service.stats.runs["mi"]
        assert _wait_for(lambda: service.stats.runs["mi"] > runs, 20.0), service.stats
        windows = pipeline.stats.windows
        assert _wait_for(lambda: pipeline.stats.windows > windows + 50, 5.0)
        shm_name = service.shared_memory_name
    assert pipeline.stats.sink_errors == 0 and service.stats.worker_starts == 2
    assert not {first, second} & _child_pids() and not _shm_linked(shm_name)


def test_a_worker_that_cannot_open_the_model_is_reported_and_cleaned_up(model_path, tmp_path):
    path = tmp_path / "soon-gone.onnx"
    shutil.copy(model_path, path)
    model = OnnxModel(path)
    path.unlink()  # the worker process opens the file again, and fails
    service = ExplainerService(model).start()
    try:
        shm_name = service.shared_memory_name
        assert _wait_for(lambda: not service.running, 30.0), service.stats
        assert service.stats.errors == 1 and service.stats.worker_starts == 1  # no restarts
        assert "could not start" in service.stats.last_error
        assert "soon-gone.onnx" in service.stats.last_error
        service.sink(process_recording(read_recording(MYO).signal(), classifier=model))
        assert len(service.buffer) == 1000  # the sink works on, with nobody reading
    finally:
        assert service.stop(timeout=1.0)
    assert not _shm_linked(shm_name)


def test_process_worker_needs_a_model_file():
    with pytest.raises(ValueError, match="worker='process' needs an OnnxModel"):
        ExplainerService(object(), worker="process")
    with pytest.raises(ValueError, match="worker must be one of"):
        ExplainerService(object(), worker="fiber")
    with pytest.raises(ValueError, match="worker_priority must be one of"):
        ExplainerService(object(), worker_priority="realtime")
    assert not ExplainerService(object()).uses_process


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


def test_the_sink_leaves_out_windows_with_non_finite_features():
    # A CTG window with too little valid FHR: flagged, NaN level features, finite posteriors.
    service = ExplainerService(object(), buffer_windows=50, min_windows=20)
    batch = _batch(10)
    batch.features[2:5, 0] = np.nan
    batch.flagged[2:5] = True
    service.sink(batch)
    assert len(service.buffer) == 7 and service.stats.windows_skipped == 3
    assert np.all(np.isfinite(service.buffer.snapshot()[0]))


def test_the_shared_ring_keeps_what_the_local_ring_keeps_and_another_handle_sees_it():
    local, shared = WindowRing(50), SharedWindowRing.create(50, 3, 2)
    try:
        reader = SharedWindowRing.attach(*shared.layout)
        for k in range(7):
            batch = _batch(13, start=13 * k)
            for ring in (local, shared):
                ring.push(batch.features, batch.posteriors, batch.t_end)
        big = _batch(120, start=1000)
        for ring in (local, shared):
            ring.push(big.features[:30], big.posteriors[:30], big.t_end[:30])
        expected = local.snapshot()
        for ring in (shared, reader):
            got = ring.snapshot()
            assert len(ring) == 50 and got[3] == expected[3] == 121
            for a, b in zip(got[:3], expected[:3]):
                np.testing.assert_array_equal(a, b)
        reader.close()
    finally:
        shared.unlink()
    assert not _shm_linked(shared.name)


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


def test_explain_command_with_the_empirical_prior_puts_prototypes_among_real_windows(
        model_path, tmp_path, monkeypatch):
    if "explain" not in biosig.cli.COMMANDS:
        monkeypatch.setattr(biosig.cli, "COMMANDS", (*biosig.cli.COMMANDS, "explain"))
    documents = {}
    for prior in ("gaussian", "empirical"):
        out = tmp_path / prior
        argv = ["explain", str(model_path), str(MYO), "--out", str(out), "--max-windows", "200",
                "--mc-draws", "500", "--quiet", "--prior", prior]
        assert biosig.cli.main(argv) == 0
        documents[prior] = json.loads((out / "explain.json").read_text())
    for name, proto in documents["empirical"]["prototypes"].items():
        assert proto["prior"] == "empirical"
        data_mean = np.asarray(documents["empirical"]["class_data_means"][name])
        empirical = np.asarray(proto["mean"])
        gaussian = np.asarray(documents["gaussian"]["prototypes"][name]["mean"])
        # The empirical prototype is a reweighting of real windows: nearer the class's data.
        assert np.linalg.norm(empirical - data_mean) < np.linalg.norm(gaussian - data_mean)
