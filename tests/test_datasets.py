"""Labelled datasets from recordings and feature tables; probabilistic metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from biosig._checks import BiosigError
from biosig.config import PipelineConfig
from biosig.datasets import build_dataset, read_feature_table, recording_dataset, single_label_windows
from biosig.io import read_recording
from biosig.io.recording import Markers
from biosig.metrics import classification_report, expected_calibration_error
from conftest import RECORDINGS

MYO = RECORDINGS / "myo_12345-1.xdf"


def test_windows_spanning_a_label_change_are_dropped():
    markers = Markers("labels", timestamps=[0.0, 1.0, 1.0, 2.0], values=["a", "b", "b", "a"])
    t_end = np.array([0.5, 0.99, 1.0, 1.1, 1.19, 1.2, 1.21, 2.05])
    labels, pure = single_label_windows(t_end, 0.2, markers)
    assert list(labels) == ["a", "a", "b", "b", "b", "b", "b", "a"]
    # A window [t_end - 0.2, t_end] is pure when no change lies in (t_start, t_end].
    assert list(pure) == [True, True, False, False, False, True, True, False]


def test_recording_dataset_keeps_only_single_label_windows():
    recording = read_recording(MYO)
    stream = recording.signal()
    config = PipelineConfig.for_rate(stream.srate, modality="EMG")
    data = recording_dataset(recording, config)
    per_sample = recording.labels().label_at(stream.timestamps)
    length = round(config.window.length_s * stream.srate)
    ends = np.searchsorted(stream.timestamps, data.t_end)
    for end, label in zip(ends[::50], data.y[::50]):
        assert set(per_sample[end - length + 1 : end + 1]) == {label}
    assert set(data.y) == {str(k) for k in range(8)}
    assert data.X.shape == (len(data.y), len(data.feature_names))
    # Only windows straddling a change are gone: 195 ms / 50 ms hop = at most 4 per change.
    n_all = (stream.n_samples - length) // round(config.window.hop_s * stream.srate) + 1
    n_changes = len(recording.labels()) - 1
    assert n_all - 4 * n_changes <= len(data) <= n_all - 3 * n_changes


def test_build_dataset_fixes_rate_and_channels_in_the_config():
    data, config, info = build_dataset([MYO], progress=False)
    assert config.srate == 200.0 and config.channels == [f"emg{i}" for i in range(1, 9)]
    assert info["modality"] == "EMG" and len(data.classes) == 8
    with pytest.raises(BiosigError, match="no label markers"):
        build_dataset([RECORDINGS / "ctu-uhb_1001.xdf"], progress=False)


def test_feature_table(tmp_path, shared_data):
    table = shared_data / "uci-cardiotocography" / "CTG_train.csv"
    header = table.read_text().splitlines()[0].split(",")
    label = "NSP" if "NSP" in header else header[-1]
    others = [h for h in header if h in ("CLASS", "row_id")]
    data = read_feature_table(table, label_column=label, drop_columns=others)
    assert len(data) > 1000 and label not in data.feature_names
    assert np.isfinite(data.X).all()
    with pytest.raises(BiosigError, match="no column"):
        read_feature_table(table, label_column="nope")


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    classes = ["rest", "fist", "open"]
    posteriors = rng.dirichlet(np.ones(3), size=500)
    truth = rng.integers(0, 3, size=500)
    y_true = [classes[i] for i in truth]
    report = classification_report(y_true, posteriors, classes)
    predicted = posteriors.argmax(axis=1)
    assert report["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert report["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert report["nll"] == pytest.approx(log_loss(truth, posteriors, labels=[0, 1, 2]))
    assert np.asarray(report["confusion"]).sum() == 500


def test_ece_of_calibrated_and_overconfident_posteriors():
    rng = np.random.default_rng(1)
    n = 20000
    confidence = rng.uniform(0.5, 1.0, size=n)
    correct = rng.uniform(size=n) < confidence
    posteriors = np.column_stack([confidence, 1 - confidence])
    truth = np.where(correct, 0, 1)
    assert expected_calibration_error(posteriors, truth) < 0.02
    # Claiming 99 % while right 75 % of the time is off by about 0.24.
    sharp = np.column_stack([np.full(n, 0.99), np.full(n, 0.01)])
    truth = (rng.uniform(size=n) > 0.75).astype(int)
    assert expected_calibration_error(sharp, truth) == pytest.approx(0.24, abs=0.02)
