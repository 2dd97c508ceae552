"""Faults on the live path: clock jumps, bad samples through a real model, untrusted inputs.

Covered elsewhere, not repeated here: outlets killed and restarted several times with every
sample received and each gap's length reported (``tests/test_lsl.py``,
``test_inlet_recovers_from_outlet_restarts``; through the pipeline:
``tests/test_pipeline.py::test_live_pipeline_survives_an_outlet_restart``); NaN/Inf counted and
flagged without a model (``tests/test_pipeline.py``); recorders killed with SIGKILL
(``tests/test_xdf.py``, ``tests/test_cli.py``); damaged ONNX files at the library level
(``tests/test_inference.py``). Damaged files through the command line: ``tests/test_fuzz.py``.
The clipped/flat window check in detail (rails, thresholds, chunking, rate changes):
``tests/test_quality.py``.
"""

from __future__ import annotations

import ast
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pylsl
import pytest

from biosig.dsp.quality import QUALITY_NONFINITE
from biosig.inference import OnnxModel
from biosig.io import read_recording
from biosig.stream.inlet import JUMP_TOLERANCE_S, Inlet
from biosig.stream.pipeline import CollectSink, Pipeline, process_recording
from biosig.stream.sources import RecordingSource

REPO = Path(__file__).resolve().parents[1]
SRATE = 200.0


# -- clock jumps -------------------------------------------------------------------------------


def _pull_all(inlet: Inlet, n: int, timeout: float = 5.0):
    data, stamps = [], []
    deadline = time.monotonic() + timeout
    while sum(len(t) for t in stamps) < n and time.monotonic() < deadline:
        d, t = inlet.pull(timeout=0.05)
        if len(t):
            data.append(d[:, 0])
            stamps.append(t)
    return np.concatenate(data), np.concatenate(stamps)


def _jumping_source(unique_name: str, inlet_policy: str):
    """Send 4 segments: normal, clock 100 s back, clock 150 s ahead, then 20 samples missing."""
    info = pylsl.StreamInfo(unique_name, "EMG", 1, SRATE, "float32", unique_name)
    outlet = pylsl.StreamOutlet(info)
    inlet = Inlet(name=unique_name, clock_jumps=inlet_policy).connect()
    assert outlet.wait_for_consumers(5.0)
    t0 = pylsl.local_clock()
    index = np.arange(800)
    source_t = t0 + index / SRATE
    source_t[200:] -= 100.0  # the source's clock steps back 100 s ...
    source_t[400:] += 150.0  # ... then 150 s ahead (50 s ahead of where it started)
    kept = np.ones(800, dtype=bool)
    kept[620:640] = False  # and 20 samples are really lost
    values = index.astype(np.float32)[:, None]
    outlet.push_chunk(values[:200], source_t[:200].tolist())
    first, first_t = _pull_all(inlet, 200)  # the inlet has seen the stream before the jumps
    rest = kept.copy()
    rest[:200] = False
    outlet.push_chunk(values[rest], source_t[rest].tolist())
    later, later_t = _pull_all(inlet, int(rest.sum()))
    inlet.close()
    received = np.concatenate([first, later])
    stamps = np.concatenate([first_t, later_t])
    return inlet, index[kept], received, stamps, source_t[kept]


def test_clock_jumps_are_rebased_reported_and_not_taken_for_gaps(unique_name):
    inlet, sent, received, stamps, _ = _jumping_source(unique_name, "rebase")
    np.testing.assert_array_equal(received, sent)  # nothing dropped, nothing reordered
    jumps = inlet.stats.clock_jumps
    assert [round(j.step_s, 3) for j in jumps] == [-100.0, 150.0]
    assert inlet.stats.clock_shift_s == pytest.approx(-50.0, abs=1e-6)
    # Delivered times continue one period on across both jumps; the real hole stays a gap.
    assert np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(stamps - stamps[0], sent / SRATE, atol=1e-4)
    assert [g.n_dropped for g in inlet.stats.gaps] == [20]
    assert inlet.stats.gaps[0].duration_s == pytest.approx(20 / SRATE, abs=1e-4)


def test_clock_jumps_keep_policy_delivers_source_times(unique_name):
    inlet, sent, received, stamps, source_t = _jumping_source(unique_name, "keep")
    np.testing.assert_array_equal(received, sent)
    assert [round(j.step_s, 3) for j in inlet.stats.clock_jumps] == [-100.0, 150.0]
    assert inlet.stats.clock_shift_s == 0.0
    offset = inlet.stats.clock_offset
    np.testing.assert_allclose(stamps, source_t + offset, atol=1e-6, rtol=0)
    assert [g.n_dropped for g in inlet.stats.gaps] == [20]


def test_a_long_outage_is_a_gap_not_a_clock_jump(unique_name):
    """A forward step no longer than the time that passed is missing data, however long."""
    info = pylsl.StreamInfo(unique_name, "EMG", 1, SRATE, "float32", unique_name)
    outlet = pylsl.StreamOutlet(info)
    inlet = Inlet(name=unique_name).connect()
    assert outlet.wait_for_consumers(5.0)
    t0 = pylsl.local_clock()
    outlet.push_chunk(np.zeros((10, 1), np.float32), (t0 + np.arange(10) / SRATE).tolist())
    _pull_all(inlet, 10)
    pause = JUMP_TOLERANCE_S + 0.3
    time.sleep(pause)
    t1 = t0 + 9 / SRATE + pause
    outlet.push_chunk(np.zeros((10, 1), np.float32), (t1 + np.arange(10) / SRATE).tolist())
    _pull_all(inlet, 10)
    inlet.close()
    assert inlet.stats.clock_jumps == []
    assert len(inlet.stats.gaps) == 1
    assert inlet.stats.gaps[0].duration_s == pytest.approx(pause - 1 / SRATE, abs=1e-3)


# -- bad samples through the real model ----------------------------------------------------------


def test_nan_inf_clipped_and_flat_channels_through_the_onnx_model():
    model = OnnxModel(REPO / "models" / "myo-12345-jsu.onnx")
    stream = read_recording(REPO / "recordings" / "myo_12345-1.xdf").signal()
    start = int(60 * SRATE)
    data = stream.data[start:start + int(40 * SRATE)].copy()
    data[1000:1050, :] = np.nan  # a 0.25 s burst on every channel
    data[2000:2003, 3] = np.inf
    data[2003, 5] = -np.inf
    data[3000:5000, 2] = np.clip(data[3000:5000, 2] * 128, -128, 127)  # a saturating channel
    data[5000:7000, 4] = data[5000, 4]  # a channel stuck at one value (electrode off)
    bad = replace(stream, data=data, timestamps=stream.timestamps[start:start + data.shape[0]])
    sink = CollectSink()
    source = RecordingSource(bad, chunk_sizes=[7, 23, 1, 64])
    pipeline = Pipeline(source, classifier=model, sinks=[sink])
    with pipeline:
        assert pipeline.wait(timeout=60)
    live = sink.results()
    offline = process_recording(bad, model.pipeline_config(), model)
    assert pipeline.stats.error is None
    assert len(live) == len(offline) > 700  # kept running to the end
    assert pipeline.stats.nonfinite_samples == 50 * 8 + 3 + 1
    assert np.isfinite(live.posteriors).all()
    np.testing.assert_allclose(live.posteriors.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(live.features).all()
    # Windows holding a non-finite sample are flagged for it, and only those.
    t = bad.timestamps
    length = model.pipeline_config().window.length_s
    holds = np.zeros(len(live), dtype=bool)
    for i in (1000, 1049, 2000, 2003):
        holds |= (live.t_end >= t[i] - 1e-9) & (live.t_end - length < t[i] - 1e-9)
    np.testing.assert_array_equal((live.quality & QUALITY_NONFINITE) > 0, holds)
    # The saturating channel is flagged where more than half a window's samples sit at the
    # int8 rails, the stuck one where a window lies inside its stretch; each names its channel.
    ends = np.searchsorted(t, live.t_end)
    starts = ends - int(round(length * SRATE)) + 1
    at_rail = np.r_[0, np.cumsum((data[:, 2] <= -128) | (data[:, 2] >= 127))]
    clipped = (at_rail[ends + 1] - at_rail[starts]) > 0.5 * (ends + 1 - starts)
    stuck = (starts >= 5000) & (ends < 7000)
    assert clipped.sum() == 199 and stuck.sum() == 197  # windows 299-497 and 500-696
    np.testing.assert_array_equal(live.clipped, np.outer(clipped, np.arange(8) == 2))
    np.testing.assert_array_equal(live.flat, np.outer(stuck, np.arange(8) == 4))
    np.testing.assert_array_equal(live.flagged, holds | clipped | stuck)
    assert pipeline.stats.windows_flagged == int((holds | clipped | stuck).sum())
    assert (pipeline.stats.windows_clipped, pipeline.stats.windows_flat) == (clipped.sum(), 197)
    assert live.flag_reasons(int(np.argmax(stuck))) == [f"flat:{bad.channel_labels[4]}"]
    # Live (random chunks) and offline (one call) agree on every flag and decision.
    for name in ("flagged", "quality", "clipped", "flat", "predicted", "ood_flag"):
        np.testing.assert_array_equal(getattr(live, name), getattr(offline, name))


# -- untrusted inputs ------------------------------------------------------------------------------

#: Modules that deserialise arbitrary Python objects.
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                    "marshal", "jsonpickle"}


def _dotted(node) -> str:
    """``a.b.c`` for a Name/Attribute chain, "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([node.id, *reversed(parts)])


def _pickle_uses(path: Path, root: Path = REPO) -> list[str]:
    """Places in ``path`` that import a pickling module or load with pickle enabled."""
    text = path.read_text(encoding="utf-8")
    if not any(word in text for word in (*PICKLING_MODULES, "pickle", "load(")):
        return []  # cannot hold any of it: skip the parse
    tree = ast.parse(text, filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names
                      if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING_MODULES:
            found.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if not name:
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            flag = lambda key: isinstance(keywords.get(key), ast.Constant) and keywords[key].value  # noqa: E731
            if name.endswith(("read_pickle", "to_pickle", "jit.load")):
                found.append(f"{where} {name}")
            if name.endswith("torch.load") and flag("weights_only") is not True:
                found.append(f"{where} torch.load without weights_only=True")
            if name in ("np.load", "numpy.load") and "allow_pickle" in keywords and \
                    flag("allow_pickle") is not False:
                found.append(f"{where} {name} with allow_pickle")
    return found


def test_no_pickle_anywhere_in_the_package():
    files = sorted((REPO / "biosig").rglob("*.py")) + sorted((REPO / "gui").rglob("*.py"))
    assert len(files) > 40
    uses = [use for path in files for use in _pickle_uses(path)]
    assert uses == []


def test_the_pickle_check_catches_what_it_looks_for(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pickle\nfrom joblib import load\nimport numpy as np\nimport torch\n"
        "np.load('a', allow_pickle=True)\ntorch.load('m')\ntorch.load('m', weights_only=True)\n"
        "np.load('b')\nnp.load('c', allow_pickle=False)\n"
    )
    uses = _pickle_uses(probe, tmp_path)
    assert len(uses) == 4, uses
    assert any("allow_pickle" in u for u in uses)
    assert sum("torch.load" in u for u in uses) == 1
