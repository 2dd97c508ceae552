"""``biosig selftest``: the latency it reports is the latency there is, and it says pass/fail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from biosig.cli import main
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.io.recording import Recording
from biosig.selftest import OPTIMAL_DELAY_S, LatencySelftest
from biosig.stream.replay import Player

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "myo-12345-jsu.onnx"


@pytest.fixture(scope="module")
def myo():
    return read_recording(REPO / "recordings" / "myo_12345-1.xdf").signal()


class _Slowed:
    """The real model, with ``delay_s`` of extra work in every inference call."""

    def __init__(self, model, delay_s: float):
        self._model, self.delay_s = model, delay_s

    def infer(self, features):
        time.sleep(self.delay_s)
        return self._model.infer(features)

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_replay_measures_every_window_and_loses_nothing(myo):
    model = OnnxModel(MODEL)
    report = LatencySelftest(model, seconds=3.0, warmup_s=0.5).run_replay(myo, "myo")
    assert report.error is None and report.unmatched == 0
    assert report.samples_sent == report.samples_received == 600
    assert report.results_sent == report.results_received > 0
    # 3 s, hop 50 ms, first window at 200 ms: 57 windows, those ending in the first 0.5 s aside.
    assert report.n_windows + report.warmup_windows == 57
    assert report.warmup_windows == 7
    assert np.all(report.latency_s > 0) and np.all(report.latency_s < 0.5)
    # End to end includes the processing interval (and LSL on top of it).
    assert np.median(report.latency_s) > np.median(report.processing_s) > 0
    assert np.all(np.diff(report.sample_index) == 10)  # one window per hop, in order
    p99 = report.summary(report.latency_s)["p99"]
    assert report.budget_s == pytest.approx(0.2 + 0.05 + p99)
    assert not report.budget_pass  # a 200 ms window alone exceeds the 125 ms optimum
    table = report.format_table()
    assert "FAIL" in table and "end-to-end" in table and "Farrell & Weir" in table


def test_added_work_shows_up_in_the_latency(myo):
    slowed = _Slowed(OnnxModel(MODEL), delay_s=0.02)
    report = LatencySelftest(slowed, seconds=2.0, warmup_s=0.5).run_replay(myo, "myo")
    e2e, proc = report.summary(report.latency_s), report.summary(report.processing_s)
    assert 0.02 <= e2e["p50"] < 0.2
    assert proc["p50"] >= 0.02
    assert not report.processing_pass


def test_live_stream_latency_counts_from_the_sample_timestamps(myo, unique_name):
    clip = myo.pick_channels(myo.channel_labels)
    clip.data, clip.timestamps = myo.data[:1200], myo.timestamps[:1200]
    clip.name = unique_name
    player = Player(Recording(streams={unique_name: clip}), speed=1.0).open()
    player.start()
    try:
        report = LatencySelftest(OnnxModel(MODEL), seconds=2.0, warmup_s=0.3).run_stream(unique_name)
    finally:
        player.stop()
    assert report.mode == "stream" and report.error is None
    assert report.n_windows >= 25
    assert np.all(report.sample_index == -1)
    # The player sends each sample when due, so a window's posterior leaves milliseconds later.
    assert 0 < report.summary(report.latency_s)["p50"] < 0.1
    assert report.results_received == report.results_sent


def test_cli_prints_json_and_exits_by_the_verdict(capsys):
    code = main(["selftest", "--seconds", "2", "--warmup", "0.5", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == (0 if out["passed"] else 1)
    assert out["budget_pass"] is False and out["budget_limit_s"] == OPTIMAL_DELAY_S[1]
    assert out["n_windows"] > 20 and out["results_sent"] == out["results_received"]
    assert set(out["end_to_end_s"]) == {"p50", "p95", "p99", "max"}
    assert out["end_to_end_s"]["p50"] <= out["end_to_end_s"]["p99"] <= out["end_to_end_s"]["max"]


@pytest.mark.parametrize("args, message", [
    (["--replay", str(REPO / "recordings" / "grabmyo_session1_participant1_gesture11_trial1.xdf")],
     "2048"),
    (["--model", "absent.onnx"], "model not found"),
    (["--seconds", "0"], "--seconds"),
])
def test_cli_mistakes_are_one_line(args, message, capsys):
    assert main(["selftest", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
