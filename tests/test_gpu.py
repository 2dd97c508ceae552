"""The CUDA paths: training on a GPU, and offline batches by torch on a GPU (biosig analyze).

Skipped where torch sees no CUDA GPU (CI). ``BIOSIG_TEST_DEVICE=cpu`` runs them on the CPU
instead, which checks the tests themselves on a machine without a GPU.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from biosig.analysis import ModelSettings, run_analysis  # noqa: E402
from biosig.analysis.output import WINDOWS_PARQUET  # noqa: E402
from biosig.cli import main  # noqa: E402
from biosig.datasets import build_dataset  # noqa: E402
from biosig.inference import OnnxModel, softmax_with_entropy  # noqa: E402
from biosig.nets import export_onnx  # noqa: E402
from biosig.torch_graph import TorchGraph  # noqa: E402
from biosig.training import make_estimator  # noqa: E402
from conftest import RECORDINGS, REPO_ROOT  # noqa: E402

DEVICE = os.environ.get("BIOSIG_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="torch sees no CUDA GPU")

MYO = RECORDINGS / "myo_12345-1.xdf"
BUNDLED = [REPO_ROOT / "models" / name for name in ("myo-12345-jsu.onnx", "myo-12345-sdgm.onnx")]


@pytest.fixture(scope="module")
def myo_windows():
    """Labelled windows of the bundled Myo recording: first two thirds train, the rest test."""
    dataset, _, _ = build_dataset([MYO], progress=False)
    split = int(len(dataset) * 2 / 3)
    y = np.asarray(dataset.y).astype(str)
    return dataset.X[:split], y[:split], dataset.X[split:], y[split:]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_the_bundled_networks_run_on_the_device_as_on_onnxruntime(path, myo_windows):
    features = np.concatenate([myo_windows[0], myo_windows[2]]).astype(np.float32)
    model = OnnxModel(path, threads=1)
    logits, ood = model._run(features)
    device_logits, device_ood = TorchGraph(path.read_bytes(), DEVICE)(features)
    # float32 on both sides; a GPU sums in another order than onnxruntime's CPU kernels.
    p_onnx = softmax_with_entropy(logits, model.temperature)[0]
    p_device = softmax_with_entropy(device_logits, model.temperature)[0]
    np.testing.assert_allclose(p_device, p_onnx, rtol=0, atol=2e-5)
    np.testing.assert_allclose(device_ood, ood, rtol=2e-5, atol=2e-4)


def test_analyze_batches_on_the_device_give_the_onnxruntime_results(tmp_path):
    reference = run_analysis(BUNDLED[0], [MYO], tmp_path / "ort", jobs=1, progress=False,
                             report=False, settings=ModelSettings(torch_device=None))
    device_run = run_analysis(BUNDLED[0], [MYO], tmp_path / "device", jobs=1, progress=False,
                              report=False, settings=ModelSettings(torch_device=DEVICE))
    assert reference.ok and device_run.ok
    a = pq.read_table(tmp_path / "ort" / "recordings" / MYO.stem / WINDOWS_PARQUET)
    b = pq.read_table(tmp_path / "device" / "recordings" / MYO.stem / WINDOWS_PARQUET)
    assert a.column_names == b.column_names and a.num_rows == b.num_rows > 100
    posterior = [c for c in a.column_names if c.startswith("p(")]
    pa, pb = (np.column_stack([t.column(c).to_numpy() for c in posterior]) for t in (a, b))
    np.testing.assert_allclose(pb, pa, rtol=0, atol=2e-5)
    # A decision may differ only where the two best classes tie to float32 precision.
    top2 = np.sort(pa, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    decisions_a = np.asarray(a.column("decision").to_pylist(), dtype=object)
    decisions_b = np.asarray(b.column("decision").to_pylist(), dtype=object)
    assert clear.mean() > 0.95
    assert np.array_equal(decisions_a[clear], decisions_b[clear])
    summary = json.loads((tmp_path / "device" / "summary.json").read_text())
    assert summary["recordings"][0]["provider"].startswith(f"torch {DEVICE}")


@pytest.mark.parametrize("arch", ["jsu", "jsu-full", "sdgm", "jsu-sdgm", "mlp"])
def test_a_network_trained_on_the_device_exports_and_runs_on_the_cpu(arch, myo_windows, tmp_path,
                                                                      caplog):
    X_train, y_train, X_test, y_test = myo_windows
    params = {"jsu": {}, "jsu-full": {"epochs": 5}}.get(arch, {"max_iter": 40})
    with caplog.at_level("INFO", logger="biosig.nets.estimators"):
        on_device = make_estimator(arch, random_state=0, device=DEVICE, **params).fit(X_train,
                                                                                     y_train)
    assert f"({DEVICE}" in caplog.text  # the fit's log line names the device it ran on
    on_cpu = make_estimator(arch, random_state=0, device="cpu", **params).fit(X_train, y_train)
    path = export_onnx(on_device, tmp_path / f"{arch}.onnx", model_card={"arch": arch})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    features = X_test.astype(np.float32)
    logits, _ = session.run(None, {"features": features})
    posterior = softmax_with_entropy(logits, 1.0)[0]
    np.testing.assert_allclose(posterior, on_device.predict_proba(features), rtol=0, atol=1e-5)
    # The device's fit is as good as the CPU's (same seed; not the same bits: other kernels).
    accuracy = {name: float(np.mean(m.predict(X_test) == y_test))
                for name, m in (("device", on_device), ("cpu", on_cpu))}
    assert accuracy["device"] > 0.5 and abs(accuracy["device"] - accuracy["cpu"]) < 0.05, accuracy
    if arch == "jsu":
        # The shared JSU's optimum is unique (convex): both devices find the same posterior.
        np.testing.assert_allclose(on_device.predict_proba(X_test), on_cpu.predict_proba(X_test),
                                   rtol=0, atol=1e-3)


def test_biosig_train_on_the_device(myo_windows, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = main(["train", str(MYO), "--arch", "sdgm", "--out", str(out), "--device", DEVICE,
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["metrics"]["calibration_set"]["accuracy"] > 0.5
    assert OnnxModel(out, threads=1).predict_proba(myo_windows[2][:8]).shape[0] == 8
