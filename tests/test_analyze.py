"""biosig analyze: outputs, identity with the live path, broken files, resume, pool and Dask."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from biosig.analysis import ModelSettings, run_analysis, signal_quality
from biosig.analysis.output import MARKER, WINDOWS_PARQUET, recording_names
from biosig.cli import main
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.io.recording import Stream
from conftest import RECORDINGS, REPO_ROOT

MYO_MODEL = REPO_ROOT / "models" / "myo-12345-jsu.onnx"
MYO = RECORDINGS / "myo_12345-1.xdf"
CTG = RECORDINGS / "ctu-uhb_1001.xdf"
GRABMYO = RECORDINGS / "grabmyo_session1_participant1_gesture11_trial1.xdf"


def assert_same_table(a, b):
    """Same columns and values (NaN equal to NaN, unlike pyarrow's Table.equals)."""
    assert a.column_names == b.column_names
    for name in a.column_names:
        np.testing.assert_array_equal(a.column(name).to_numpy(zero_copy_only=False),
                                      b.column(name).to_numpy(zero_copy_only=False), err_msg=name)


def _posterior_columns(table):
    return [c for c in table.column_names if c.startswith("p(")]


@pytest.fixture(scope="module")
def myo_run(tmp_path_factory):
    """One CLI run over the Myo recording, two broken files and one that does not fit the model."""
    base = tmp_path_factory.mktemp("myo_run")
    garbage = base / "garbage.xdf"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    truncated = base / "truncated.xdf"
    truncated.write_bytes(MYO.read_bytes()[:300])  # ends inside the first chunk
    out = base / "out"
    code = main(["analyze", str(MYO_MODEL), str(MYO), str(garbage), str(truncated), str(GRABMYO),
                 "--out", str(out), "--csv", "--jobs", "1", "--quiet"])
    return code, out


@pytest.fixture(scope="module")
def ctg_model(tmp_path_factory):
    """A real linear CTG model (ONNX, biosig card) on the default CTG pipeline of the recording."""
    import onnx

    from biosig.config import PipelineConfig
    from biosig.inference import build_linear_model
    from biosig.stream.pipeline import process_recording

    config = PipelineConfig.ctg_default(4.0)
    stream = read_recording(CTG).signal()
    config.channels = list(stream.channel_labels)
    config.srate = 4.0
    results = process_recording(stream, config)
    X = results.features[~results.flagged]
    mean, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0) + 1e-9
    weights = np.random.default_rng(1).normal(size=(X.shape[1], 3))
    card = {
        "format": "biosig-model/1", "biosig_version": "0.1.0", "arch": "lda", "modality": "CTG",
        "srate": 4.0, "channels": config.channels, "pipeline": config.to_dict(),
        "feature_names": list(results.feature_names),
        "class_names": ["normal", "suspicious", "pathological"],
        "ood": {"threshold": -2.0, "percentile": 95.0, "score": "neg_logsumexp"},
    }
    path = tmp_path_factory.mktemp("ctg_model") / "ctg-linear.onnx"
    onnx.save(build_linear_model(weights, np.zeros(3), card, mean=mean, scale=scale), path)
    return path


def test_analyze_writes_all_outputs_and_skips_broken_files(myo_run):
    code, out = myo_run
    assert code == 1  # some files failed: non-zero exit, but the good one finished
    folder = out / "recordings" / "myo_12345-1"
    for name in ("windows.parquet", "windows.csv", "summary.json", MARKER):
        assert (folder / name).is_file(), name
    for name in ("report.html", "summary.csv", "summary.json"):
        assert (out / name).is_file(), name
    table = pq.read_table(folder / "windows.parquet")
    summary = json.loads((folder / "summary.json").read_text())
    assert table.num_rows == summary["n_windows"] > 9000
    assert [f"p({c})" for c in "01234567"] == _posterior_columns(table)
    for column in ("t_end", "label", "entropy", "decision", "ood", "ood_score", "env_mean:emg1"):
        assert column in table.column_names
    assert pacsv.read_csv(folder / "windows.csv").num_rows == table.num_rows
    posteriors = np.column_stack([table.column(c).to_numpy() for c in _posterior_columns(table)])
    np.testing.assert_allclose(posteriors.sum(axis=1), 1.0, atol=1e-9)
    # The model was fitted on this session: its labelled windows must come out right.
    assert summary["labels"]["accuracy"] > 0.9
    assert summary["quality"]["nan_share"] == 0.0
    assert summary["timeline"][0][2] == "0"  # the session starts at rest
    run = json.loads((out / "summary.json").read_text())
    errors = {f["name"]: f["error"] for f in run["failed"]}
    assert set(errors) == {"garbage", "truncated", GRABMYO.stem}
    assert "not an XDF file" in errors["garbage"]
    assert "truncated" in errors["truncated"]
    assert "2048 Hz" in errors[GRABMYO.stem]
    assert run["computed"] == ["myo_12345-1"]
    rows = pacsv.read_csv(out / "summary.csv").to_pylist()
    assert sorted(r["status"] for r in rows) == ["failed", "failed", "failed", "ok"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6
    assert "<script" not in page and 'src="http' not in page  # opens from disk, no server
    assert "not an XDF file" in page


def test_results_equal_the_live_pipeline(myo_run):
    from biosig.stream.pipeline import CollectSink, Pipeline
    from biosig.stream.sources import RecordingSource

    _, out = myo_run
    table = pq.read_table(out / "recordings" / "myo_12345-1" / WINDOWS_PARQUET)
    model = OnnxModel(MYO_MODEL)
    full = model.check_recording(read_recording(MYO))
    # The first 150 s, in the live path's 50-ms chunks: the pipeline is causal, so its windows
    # must equal the first windows of the whole recording analysed offline (and it keeps the
    # test short: the live path classifies one window per chunk).
    n = 30_000
    stream = Stream(full.name, full.type, full.data[:n], full.timestamps[:n], full.srate,
                    full.channel_labels)
    sink = CollectSink()
    pipeline = Pipeline(RecordingSource(stream, realtime=False, chunk_s=0.05), classifier=model,
                        sinks=[sink])
    with pipeline:
        assert pipeline.wait(120)
    live = sink.results()
    assert pipeline.stats.error is None
    assert len(live) > 2900
    table = table.slice(0, len(live))
    np.testing.assert_array_equal(table.column("t_end").to_numpy(), live.t_end)
    offline = np.column_stack([table.column(c).to_numpy() for c in _posterior_columns(table)])
    np.testing.assert_allclose(offline, live.posteriors, rtol=0, atol=1e-6)
    names = [str(c) for c in model.classes_]
    live_decisions = [names[k] if k >= 0 else None for k in live.predicted]
    assert table.column("decision").to_pylist() == live_decisions
    np.testing.assert_array_equal(table.column("ood").to_numpy(), live.ood_flag)
    features = np.column_stack([table.column(c).to_numpy() for c in live.feature_names])
    np.testing.assert_allclose(features, live.features, rtol=1e-9, atol=1e-9)


def _mtime(out, name):
    return (out / "recordings" / name / WINDOWS_PARQUET).stat().st_mtime_ns


def test_resume_skips_complete_redoes_forced_and_damaged(ctg_model, tmp_path):
    out = tmp_path / "out"
    first = run_analysis(ctg_model, [CTG], out, jobs=1, progress=False)
    assert first.ok and first.computed == ["ctu-uhb_1001"] and not first.skipped
    table = pq.read_table(out / "recordings" / "ctu-uhb_1001" / WINDOWS_PARQUET)
    # The per-record feature table of a CTG archive: every feature the model's pipeline computes.
    assert set(OnnxModel(ctg_model).feature_names) <= set(table.column_names)
    assert table.column("label").null_count == table.num_rows  # CTG has no label markers
    stamp = _mtime(out, "ctu-uhb_1001")

    second = run_analysis(ctg_model, [CTG], out, jobs=1, progress=False, report=False)
    assert second.skipped == ["ctu-uhb_1001"] and not second.computed
    assert _mtime(out, "ctu-uhb_1001") == stamp
    assert second.summaries == first.summaries

    forced = run_analysis(ctg_model, [CTG], out, jobs=1, force=True, progress=False, report=False)
    assert forced.computed == ["ctu-uhb_1001"]

    # A damaged file under a valid marker (e.g. a copy cut short) is not complete.
    parquet = out / "recordings" / "ctu-uhb_1001" / WINDOWS_PARQUET
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    damaged = run_analysis(ctg_model, [CTG], out, jobs=1, progress=False, report=False)
    assert damaged.computed == ["ctu-uhb_1001"]

    # An interrupted run: half a file and no marker (the marker is always written last).
    (out / "recordings" / "ctu-uhb_1001" / MARKER).unlink()
    parquet.write_bytes(parquet.read_bytes()[:100])
    again = run_analysis(ctg_model, [CTG], out, jobs=1, progress=False, report=False)
    assert again.computed == ["ctu-uhb_1001"]
    assert_same_table(pq.read_table(parquet), table)
    leftovers = [p.name for p in out.rglob("*") if ".tmp-" in p.name]
    assert not leftovers

    # Other decision settings change the results: not taken as complete.
    changed = run_analysis(ctg_model, [CTG], out, jobs=1, progress=False,
                           settings=ModelSettings(smoothing=3), report=False)
    assert changed.computed == ["ctu-uhb_1001"]


def test_process_pool_and_dask_local_cluster_give_the_same_output(ctg_model, tmp_path):
    from distributed import LocalCluster

    inputs = tmp_path / "archive"
    (inputs / "a").mkdir(parents=True)
    (inputs / "b").mkdir()
    shutil.copy(CTG, inputs / "a" / "1001.xdf")
    shutil.copy(CTG, inputs / "b" / "1001.xdf")  # same name in two folders: distinct outputs
    here = run_analysis(ctg_model, [CTG], tmp_path / "here", jobs=1, progress=False, report=False)
    pool = run_analysis(ctg_model, [inputs], tmp_path / "pool", jobs=2, progress=False,
                        report=False)
    assert sorted(pool.computed) == ["a__1001", "b__1001"] and pool.ok
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        dask = run_analysis(ctg_model, [inputs], tmp_path / "dask", scheduler=cluster.scheduler_address,
                            progress=False)
    assert sorted(dask.computed) == ["a__1001", "b__1001"] and dask.ok
    reference = pq.read_table(tmp_path / "here" / "recordings" / "ctu-uhb_1001" / WINDOWS_PARQUET)
    for run_dir in ("pool", "dask"):
        for name in ("a__1001", "b__1001"):
            table = pq.read_table(tmp_path / run_dir / "recordings" / name / WINDOWS_PARQUET)
            assert_same_table(table, reference)
    assert (tmp_path / "dask" / "report.html").is_file()
    assert dask.aggregate["n_windows"] == 2 * here.aggregate["n_windows"]


def test_progress_in_a_log_is_one_plain_line_per_recording(ctg_model, tmp_path, capsys):
    # Under pytest stderr is no terminal, as in a batch job's log: no bars, no control codes.
    garbage = tmp_path / "garbage.xdf"
    garbage.write_bytes(b"not an XDF file at all")
    run_analysis(ctg_model, [CTG, garbage], tmp_path / "out", jobs=1, report=False)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and all(line.startswith(("[1/2] ", "[2/2] ")) for line in lines)
    assert any(line.endswith(" windows") and CTG.stem in line for line in lines)
    assert any("failed: " in line and "garbage.xdf" in line for line in lines)


def test_scheduler_without_dask_is_one_clear_line(ctg_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    code = main(["analyze", str(ctg_model), str(CTG), "--out", str(tmp_path / "out"),
                 "--scheduler", "tcp://127.0.0.1:8786", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "biosig[dask]"' in err[0]


def test_signal_quality_shares_on_a_known_signal():
    srate = 100.0
    n = 1000
    data = np.tile(np.sin(np.arange(n) / 3.0)[:, None] * 50, (1, 3)).round()
    data[:100, 0] = np.nan                 # 10 % non-finite on channel 0
    data[200:250, 1] = 127                 # 5 % at the int8 rail on channel 1
    data[:, 2] = 7.0                       # channel 2 flat throughout
    timestamps = np.arange(n) / srate
    timestamps[500:] += 0.5                # 50 samples missing
    stream = Stream("s", "EMG", data, timestamps, srate, channel_format="int8")
    quality = signal_quality(stream)
    per = quality["per_channel"]
    assert per["ch1"]["nan"] == pytest.approx(0.1)
    assert per["ch2"]["clipping"] == pytest.approx(0.05)
    assert quality["flat_channels"] == ["ch3"] and per["ch1"]["flat"] == 0.0
    assert quality["dropout_share"] == pytest.approx(50 / 1050)
    float_stream = Stream("f", "CTG", np.r_[np.zeros(20), np.linspace(1, 2, 60), [2.0] * 20],
                          np.arange(100) / 4.0, 4.0)
    # Held at the maximum is clipping; a run of zeros is a lost signal (flat), not clipping.
    assert signal_quality(float_stream)["clipping_share"] == pytest.approx(0.21)


def test_decision_timeline_runs_cover_every_window_in_order():
    from biosig.analysis.summary import decision_timeline

    rng = np.random.default_rng(0)
    decisions = np.repeat(rng.integers(-1, 3, 40), rng.integers(1, 6, 40))
    t_end = 0.5 + 0.05 * np.arange(decisions.shape[0])
    runs = decision_timeline(t_end, decisions, ["rest", "fist", "open"])
    # Rebuilt window by window from the runs: the same decisions, and no two runs alike in a row.
    rebuilt = []
    for first, last, name in runs:
        count = int(round((last - first) / 0.05)) + 1
        rebuilt += [name] * count
    names = ["rest", "fist", "open"]
    assert rebuilt == [names[k] if k >= 0 else None for k in decisions]
    assert all(a[2] != b[2] for a, b in zip(runs, runs[1:]))
    assert runs[0][0] == t_end[0] and runs[-1][1] == t_end[-1]
    assert decision_timeline(t_end[:0], decisions[:0], names) == []


def test_timeline_strips_show_each_blocks_most_frequent_class():
    from biosig.analysis.report import _block_modes

    rng = np.random.default_rng(1)
    codes = np.repeat(rng.integers(-1, 8, 3000), rng.integers(1, 9, 3000))
    size = int(np.ceil(codes.shape[0] / 700))
    expected = []
    for start in range(0, codes.shape[0], size):  # ties: the smallest code
        values, counts = np.unique(codes[start : start + size], return_counts=True)
        expected.append(values[np.argmax(counts)])
    assert np.array_equal(_block_modes(codes, 700), expected)
    assert np.array_equal(_block_modes(codes[:500], 700), codes[:500])


def test_recording_names_are_distinct_and_safe(tmp_path):
    paths = [tmp_path / "s1" / "0.txt", tmp_path / "s2" / "0.txt", tmp_path / "rec one.xdf"]
    assert recording_names(paths) == ["s1__0", "s2__0", "rec_one"]


def test_onnx_batches_are_small_on_the_cpu_and_whole_blocks_on_a_gpu():
    from biosig.analysis.batch import (
        CLASSIFY_WINDOWS,
        ONNX_BATCH,
        load_model,
        onnx_batch,
        torch_device_for,
    )

    assert onnx_batch("CPUExecutionProvider") == ONNX_BATCH < CLASSIFY_WINDOWS
    assert onnx_batch("CUDAExecutionProvider") == CLASSIFY_WINDOWS
    assert onnx_batch("torch cuda:0") == CLASSIFY_WINDOWS
    # onnxruntime's own CUDA provider, when present, is preferred to torch.
    assert torch_device_for("auto", "CUDAExecutionProvider") is None
    assert torch_device_for(None, "CPUExecutionProvider") is None
    assert torch_device_for("cuda:1", "CPUExecutionProvider") == "cuda:1"
    model = load_model(MYO_MODEL, ModelSettings(threads=1))
    assert model.batch_size == onnx_batch(model.engine)


def test_the_torch_engine_gives_the_onnxruntime_results(ctg_model, tmp_path):
    # What a GPU machine without onnxruntime-gpu runs (torch on CUDA), here on the CPU.
    reference = run_analysis(ctg_model, [CTG], tmp_path / "ort", jobs=1, progress=False,
                             report=False, settings=ModelSettings(torch_device=None))
    torch_run = run_analysis(ctg_model, [CTG], tmp_path / "torch", jobs=1, progress=False,
                             report=False, settings=ModelSettings(torch_device="cpu"))
    assert reference.ok and torch_run.ok
    name = "ctu-uhb_1001"
    a = pq.read_table(tmp_path / "ort" / "recordings" / name / WINDOWS_PARQUET)
    b = pq.read_table(tmp_path / "torch" / "recordings" / name / WINDOWS_PARQUET)
    assert a.column_names == b.column_names and a.num_rows == b.num_rows > 10
    for column in _posterior_columns(a) + ["ood_score"]:
        np.testing.assert_allclose(b.column(column).to_numpy(), a.column(column).to_numpy(),
                                   rtol=1e-6, atol=1e-7, err_msg=column)
    assert a.column("decision").to_pylist() == b.column("decision").to_pylist()
    summaries = {run: json.loads((tmp_path / run / "summary.json").read_text())
                 for run in ("ort", "torch")}
    assert summaries["torch"]["recordings"][0]["provider"] == "torch cpu"
    assert summaries["ort"]["recordings"][0]["provider"] == "CPUExecutionProvider"


def test_a_torch_device_that_does_not_exist_is_one_clear_line(tmp_path, capsys):
    code = main(["analyze", str(MYO_MODEL), str(MYO), "--out", str(tmp_path),
                 "--torch-device", "warp-drive", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warp-drive" in err[0]
