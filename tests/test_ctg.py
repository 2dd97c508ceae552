"""CTG chain: preprocessing rules, FIGO features and events, chunked vs one-shot parity on real
CTU-UHB records, and its integration in the pipeline, config, CLI and the bundled CTG model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biosig._checks import BiosigError
from biosig.cli import main
from biosig.config import FeatureConfig, PipelineConfig, load_config
from biosig.ctg import (
    ARTEFACT,
    CTG_FEATURE_NAMES,
    LOSS,
    VALID,
    CTGConfig,
    CTGFeatureChain,
    CTGPreprocessor,
    analyse_stream,
    analyse_window,
)
from biosig.io import read_recording
from biosig.io.recording import Markers, Recording, Stream
from biosig.io.xdf import write_xdf
from biosig.stream.pipeline import CollectSink, Pipeline, StreamProcessor, process_recording
from biosig.stream.results import WindowResults
from biosig.stream.sources import RecordingSource
from conftest import RECORDINGS, REPO_ROOT

CTG_XDF = RECORDINGS / "ctu-uhb_1001.xdf"
CTG_MODEL = REPO_ROOT / "models" / "ctu-uhb-figo-lda.onnx"
FS = 4.0


@pytest.fixture(scope="module")
def record_1001():
    return read_recording(CTG_XDF).signal(None)


def _chunked(processor, stream, seed, max_chunk=400):
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    n = len(stream.timestamps)
    while i < n:
        k = int(rng.choice([1, 2, 7, int(rng.integers(1, max_chunk))]))
        parts.append(processor.process(stream.data[i:i + k], stream.timestamps[i:i + k]))
        i += k
    return WindowResults.concat(parts)


def _assert_same(a: WindowResults, b: WindowResults):
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.t_end, b.t_end)
    np.testing.assert_array_equal(a.flagged, b.flagged)
    np.testing.assert_array_equal(a.features, b.features)  # NaN == NaN here


# -- preprocessing rules ----------------------------------------------------------------------

def _clean(fhr, config=None, chunks=None):
    pre = CTGPreprocessor(config or CTGConfig(), FS)
    t = np.arange(len(fhr)) / FS
    if chunks is None:
        return pre.process(fhr, None, t)
    out, edges = [], [0, *chunks, len(fhr)]
    for a, b in zip(edges[:-1], edges[1:]):
        out.append(pre.process(fhr[a:b], None, t[a:b]))
    return type(out[0])(*(np.concatenate([getattr(o, k) for o in out]) for k in ("fhr", "code", "uc", "t")))


def test_signal_loss_and_out_of_range_are_missing_and_short_gaps_interpolated():
    fhr = np.full(400, 140.0)
    fhr[100:120] = 0.0            # 5 s of loss: interpolated
    fhr[130] = 300.0              # out of range: one lost sample, interpolated
    fhr[200:300] = 0.0            # 25 s of loss: longer than 15 s, stays missing
    fhr[320:330] = np.linspace(150, 160, 10)
    out = _clean(fhr)
    assert len(out) == 400
    assert np.all(out.code[100:120] == LOSS) and out.code[130] == LOSS
    np.testing.assert_allclose(out.fhr[100:120], 140.0)
    assert np.isnan(out.fhr[200:300]).all() and np.isfinite(out.fhr[300:]).all()
    # linear between the neighbours of the gap
    fhr2 = np.r_[np.full(10, 130.0), np.zeros(3), np.full(10, 150.0)]
    np.testing.assert_allclose(_clean(fhr2).fhr[10:13], [135.0, 140.0, 145.0])


def test_a_jump_starts_an_artefact_until_five_stable_samples():
    fhr = np.full(100, 140.0)
    fhr[50] = 175.0               # +35 bpm in one sample: artefact
    out = _clean(fhr)
    codes = out.code
    assert codes[49] == VALID and codes[50] == ARTEFACT
    # 51 steps back by 35 (a new run starts), 51-54 are the stable run, 55 completes it
    assert np.all(codes[51:55] == ARTEFACT) and np.all(codes[55:] == VALID)
    np.testing.assert_allclose(out.fhr[50:55], 140.0)  # interpolated over the artefact


def test_preprocessing_holds_an_open_gap_and_gives_the_same_samples_in_any_chunking():
    rng = np.random.default_rng(1)
    fhr = 140 + np.cumsum(rng.normal(0, 1, 3000))
    fhr[rng.integers(0, 3000, 40)] = 0.0
    fhr[500:530] = 0.0
    fhr[900:1000] = 0.0
    fhr[1500] += 60
    pre = CTGPreprocessor(CTGConfig(), FS)
    first = pre.process(fhr[:510], None, np.arange(510) / FS)
    assert len(first) == 500 and pre.n_held == 10  # the open gap waits for its end
    whole = _clean(fhr)
    for chunks in ([1, 2, 3, 510, 511, 999], list(range(7, 3000, 13))):
        part = _clean(fhr, chunks=chunks)
        np.testing.assert_array_equal(part.fhr, whole.fhr)
        np.testing.assert_array_equal(part.code, whole.code)


# -- features and events ----------------------------------------------------------------------

def _synthetic_window(with_uc=True, lag_s=40.0):
    n = int(600 * FS)
    t = np.arange(n) / FS
    rng = np.random.default_rng(3)
    fhr = 140 + rng.normal(0, 1.5, n)
    acc = (t >= 100) & (t < 130)
    fhr[acc] += 25.0
    # gradual deceleration 90 s long, nadir 40 bpm down at its middle (onset to nadir ~40 s)
    dec = (t >= 290) & (t < 380)
    fhr[dec] -= 40.0 * (1 - np.abs((t[dec] - 335.0) / 45.0))
    uc = np.full(n, 10.0)
    if with_uc:
        peak = 335.0 - lag_s
        uc += 50.0 * np.exp(-0.5 * ((t - peak) / 20.0) ** 2)
    code = np.zeros(n, dtype=np.int8)
    return fhr, code, uc, t


def test_baseline_accelerations_and_a_late_deceleration_are_found():
    fhr, code, uc, t = _synthetic_window(lag_s=40.0)
    a = analyse_window(fhr, code, uc, t, CTGConfig(), FS)
    assert a.features["baseline"] == pytest.approx(140.0, abs=1.5)
    kinds = [e.kind for e in a.events]
    assert kinds.count("acceleration") == 1 and kinds.count("contraction") == 1
    acc = next(e for e in a.events if e.kind == "acceleration")
    assert acc.t_start == pytest.approx(100, abs=2) and acc.t_end == pytest.approx(130, abs=2)
    assert acc.depth == pytest.approx(25, abs=5)
    dec = next(e for e in a.events if e.family == "deceleration")
    assert dec.kind == "late_deceleration" and dec.depth == pytest.approx(40, abs=5)
    assert dec.t_peak == pytest.approx(335, abs=5)
    assert a.features["late_decels"] == 1 and a.features["contractions"] == 1
    assert a.features["decel_depth"] == pytest.approx(dec.depth)
    assert a.features["decel_time"] == pytest.approx(dec.duration_s / 600, abs=0.01)
    assert a.features["loss"] == 0 and a.features["tachycardia"] == 0


def test_deceleration_kinds_follow_the_contraction():
    fhr, code, uc, t = _synthetic_window(lag_s=5.0)
    kinds = [e.kind for e in analyse_window(fhr, code, uc, t, CTGConfig(), FS).events]
    assert "early_deceleration" in kinds
    fhr, code, uc, t = _synthetic_window(with_uc=False)
    a = analyse_window(fhr, code, np.full_like(uc, np.nan), t, CTGConfig(), FS)
    assert "deceleration" in [e.kind for e in a.events] and np.isnan(a.features["contractions"])


def test_features_on_a_real_record_are_plausible(record_1001):
    config = PipelineConfig.ctg_default(FS)
    res = process_recording(record_1001, config)
    names = [n.split(":")[0] for n in res.feature_names]
    assert names == list(CTG_FEATURE_NAMES)
    assert res.feature_names[names.index("contractions")] == "contractions:UC"
    assert len(res) == (19200 - 2400) // 240 + 1
    np.testing.assert_allclose(np.diff(res.t_end), 60.0)
    ok = ~res.flagged
    col = {n: i for i, n in enumerate(names)}
    baseline = res.features[ok, col["baseline"]]
    assert np.all((baseline > 115) & (baseline < 165))
    assert np.all(res.features[:, col["loss"]] <= 1) and np.all(res.features[:, col["loss"]] >= 0)
    assert np.nanmedian(res.features[ok, col["stv"]]) > 2  # ms, labour-range variability
    assert res.features[:, col["decelerations"]].sum() > 0  # record 1001 has decelerations


def test_events_are_listed_once_with_times_and_depths(record_1001):
    analysis = analyse_stream(record_1001)
    events = analysis.snapshot.events
    assert events and all(e.t_start < e.t_end for e in events)
    for family in ("acceleration", "deceleration", "contraction"):
        fam = sorted((e for e in events if e.family == family), key=lambda e: e.t_start)
        assert fam, family
        assert all(a.t_end < b.t_start for a, b in zip(fam, fam[1:]))  # no duplicates
    for e in events:
        if e.family in ("acceleration", "deceleration"):
            assert e.depth >= 15 and e.duration_s >= 14.75
    snap = analysis.snapshot
    assert snap.baseline_t.shape == snap.baseline_bpm.shape == (19200,)
    np.testing.assert_array_equal(snap.baseline_t, record_1001.timestamps)
    assert set(snap.features) == set(CTG_FEATURE_NAMES) and snap.n_windows == len(analysis.results)


# -- parity (the pipeline's rule: chunked == one-shot) ------------------------------------------

def test_chunked_and_one_shot_give_identical_features_and_events(record_1001):
    config = PipelineConfig.ctg_default(FS)
    whole = StreamProcessor(config, FS, record_1001.channel_labels)
    one_shot = whole.process(record_1001.data, record_1001.timestamps)
    for seed in (0, 1):
        live = StreamProcessor(config, FS, record_1001.channel_labels)
        _assert_same(_chunked(live, record_1001, seed), one_shot)
        a, b = live.chain.snapshot(), whole.chain.snapshot()
        assert a.events == b.events
        np.testing.assert_array_equal(a.baseline_bpm, b.baseline_bpm)


@pytest.mark.parametrize("record", ["1004", "1007", "2003"])  # artefacts, scalp ECG, caesarean
def test_parity_on_shared_ctu_uhb_records(shared_data, record):
    stream = read_recording(shared_data / "ctu-uhb-ctgdb" / f"{record}.hea").signal(None)
    config = PipelineConfig.ctg_default(stream.srate)
    one_shot = process_recording(stream, config)
    live = StreamProcessor(config, stream.srate, stream.channel_labels)
    _assert_same(_chunked(live, stream, seed=int(record), max_chunk=2000), one_shot)


def test_the_threaded_pipeline_on_a_ctg_replay_picks_the_ctg_chain(record_1001):
    sink = CollectSink()
    source = RecordingSource(record_1001, chunk_sizes=[37, 5, 120])
    with Pipeline(source, sinks=[sink]) as pipeline:  # no config: the CTG preset
        assert pipeline.wait(30)
    assert isinstance(pipeline.processor.chain, CTGFeatureChain)
    _assert_same(sink.results(), process_recording(record_1001, PipelineConfig.ctg_default(FS)))


# -- configuration ------------------------------------------------------------------------------

def test_ctg_config_round_trips_and_refuses_mistakes(tmp_path):
    config = PipelineConfig.ctg_default(FS)
    assert config.features.is_ctg and not PipelineConfig.emg_default().features.is_ctg
    again = PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    toml = tmp_path / "ctg.toml"
    toml.write_text('stream_type = "CTG"\n[features]\nnames = ["baseline", "stv", "loss"]\n'
                    "[window]\nlength_s = 300.0\nhop_s = 30.0\n[ctg]\nmax_gap_s = 5.0\n")
    loaded = load_config(toml)
    assert loaded.ctg.max_gap_s == 5.0 and loaded.features.names == ("baseline", "stv", "loss")
    with pytest.raises(BiosigError, match="unknown key 'gap' in \\[ctg\\]"):
        PipelineConfig.from_dict({"ctg": {"gap": 3}})
    with pytest.raises(BiosigError, match="unknown feature"):
        FeatureConfig(names=("baseline", "rms"))
    with pytest.raises(BiosigError, match="fhr_min_bpm"):
        CTGConfig(fhr_min_bpm=250.0)
    with pytest.raises(BiosigError, match="FHR channel"):
        StreamProcessor(config, FS, ["HR", "UC"])


# -- CLI and the bundled model ------------------------------------------------------------------

def test_process_cli_writes_ctg_features(tmp_path):
    out = tmp_path / "ctg.csv"
    assert main(["process", str(CTG_XDF), "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0]
    assert "baseline:FHR" in header and "contractions:UC" in header


def test_train_on_labelled_ctg_recordings(record_1001, tmp_path):
    # A real CTG recording with two labels (first and second half): the recordings path of
    # `biosig train` must compute CTG features through the same pipeline.
    rec = Recording(metadata={})
    rec.add_stream(Stream(name="ctg", type="CTG", data=record_1001.data, timestamps=record_1001.timestamps,
                          srate=FS, channel_labels=["FHR", "UC"], channel_units=["bpm", "nd"],
                          channel_format="double64"))
    rec.add_markers(Markers(name="labels", timestamps=[0.0, 2400.0], values=["first", "second"]))
    path = write_xdf(rec, tmp_path / "labelled.xdf")
    model = tmp_path / "ctg-lda.onnx"
    assert main(["train", str(path), "--arch", "lda", "--out", str(model), "--quiet"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["modality"] == "CTG" and card["feature_names"][0] == "baseline:FHR"
    assert card["pipeline"]["window"]["length_s"] == 600.0


def test_bundled_ctg_model_runs_on_the_bundled_recording(record_1001):
    from biosig.inference import OnnxModel

    model = OnnxModel(CTG_MODEL)
    card = model.card
    assert card["modality"] == "CTG" and "record_level_cv" in card["metrics"]
    res = process_recording(record_1001, classifier=model)  # the model's own pipeline settings
    ok = ~res.flagged
    assert ok.sum() > 30
    np.testing.assert_allclose(res.posteriors[ok].sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(res.entropy[ok]).all() and res.has_ood
