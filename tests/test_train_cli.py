"""`biosig train` / `biosig evaluate` / `biosig process --model` as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biosig.cli import main
from biosig.inference import OnnxModel, read_model_card
from biosig.stream.sinks import read_results_csv
from conftest import RECORDINGS

MYO = RECORDINGS / "myo_12345-1.xdf"
GRABMYO = RECORDINGS / "grabmyo_session1_participant1_gesture11_trial1.xdf"


@pytest.fixture(scope="module")
def lda_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "myo-lda.onnx"
    assert main(["train", str(MYO), "--arch", "lda", "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_one_self_describing_model(lda_model):
    card = read_model_card(lda_model)
    assert card == json.loads(lda_model.with_suffix(".json").read_text())
    assert card["arch"] == "lda" and card["modality"] == "EMG" and card["srate"] == 200.0
    assert card["channels"] == [f"emg{i}" for i in range(1, 9)]
    assert card["class_names"] == [str(k) for k in range(8)]
    # Human-readable names come from the recording's label_names metadata.
    assert card["class_labels"][0] == "rest" and card["class_labels"][7] == "fist"
    assert len(card["feature_names"]) == 48 and card["pipeline"]["window"]["length_s"] == 0.2
    assert card["temperature"] > 0 and np.isfinite(card["ood"]["threshold"])
    assert card["training"]["seed"] == 0 and "myo_12345-1.xdf" in card["training"]["data"][0]
    assert 0.5 < card["metrics"]["calibration_set"]["accuracy"] <= 1.0


def test_training_is_reproducible_from_the_seed(lda_model, tmp_path):
    again = tmp_path / "again.onnx"
    assert main(["train", str(MYO), "--arch", "lda", "--out", str(again), "--quiet"]) == 0
    x = np.random.default_rng(0).normal(size=(20, 48)) * 10
    np.testing.assert_array_equal(OnnxModel(again).predict_proba(x), OnnxModel(lda_model).predict_proba(x))


def test_evaluate_prints_metrics_and_a_json_last_line(lda_model, capsys):
    assert main(["evaluate", str(lda_model), str(MYO), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert set(report) >= {"accuracy", "macro_f1", "nll", "ece", "confusion"}
    assert report["accuracy"] > 0.8  # its own training session
    assert np.asarray(report["confusion"]).shape == (8, 8)


def test_a_model_refuses_a_recording_that_does_not_match(lda_model, tmp_path, capsys):
    assert main(["process", str(GRABMYO), "--model", str(lda_model), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2048" in err[0] and "200" in err[0]


def test_process_with_a_model_writes_posteriors(lda_model, tmp_path):
    out = tmp_path / "results.csv"
    assert main(["process", str(MYO), "--model", str(lda_model), "--out", str(out)]) == 0
    table = read_results_csv(out)
    p = np.column_stack([table[f"p({k})"] for k in range(8)])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(table["entropy"] >= 0) and "ood" in table


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "nope"], "--arch"),
        (["--label-column", "NSP"], "one file"),
        (["--calibration-fraction", "0.9"], "calibration"),
        (["--device", "warp-drive"], "device must be"),
    ],
)
def test_train_user_mistakes(args, message, tmp_path, capsys):
    argv = ["train", str(MYO), str(MYO), "--out", str(tmp_path / "m.onnx"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_two_recordings_calibrate_across_recordings(shared_data, tmp_path, capsys):
    sessions = [shared_data / "myo-readings-dataset" / f"12345-{s}" for s in (1, 2)]
    out = tmp_path / "two.onnx"
    assert main(["train", *map(str, sessions), "--arch", "lda", "--out", str(out), "--quiet"]) == 0
    assert "cross-recording predictions" in capsys.readouterr().out
    card = read_model_card(out)
    metrics = card["metrics"]["calibration_set"]
    assert metrics["calibrated_by"] == "recordings" and metrics["calibration_folds"] == 2
    # Every window is predicted once by the fold model that did not see its session, and the
    # final model is fitted on all of them.
    assert card["training"]["n_fit"] == card["training"]["n_calibration"] == card["training"]["n_windows"]
    # A new session makes LDA over-confident: the cross-session temperature softens it.
    assert card["temperature"] > 1.5
    assert metrics["ece"] < metrics["uncalibrated_ece"]


def test_recording_calibration_needs_two_recordings(tmp_path, capsys):
    out = tmp_path / "one.onnx"
    assert main(["train", str(MYO), "--arch", "lda", "--calibration", "recordings",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two or more recordings" in err[0]
    assert not out.exists()
    assert main(["train", str(MYO), "--arch", "lda", "--out", str(out), "--quiet"]) == 0
    assert read_model_card(out)["metrics"]["calibration_set"]["calibrated_by"] == "windows"
