"""The live window, driven offscreen with pytest-qt: real window, real LSL, real model.

Streams are bundled recordings replayed on loopback under names unique to each test.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from biosig.cli import main  # noqa: E402
from biosig.inference import OnnxModel  # noqa: E402
from biosig.io import read_recording  # noqa: E402
from biosig.stream.live import ReplayFeed  # noqa: E402

from conftest import RECORDINGS, REPO_ROOT  # noqa: E402

MYO = RECORDINGS / "myo_12345-1.xdf"
CTG = RECORDINGS / "ctu-uhb_1001.xdf"
MODEL = REPO_ROOT / "models" / "myo-12345-jsu.onnx"


@pytest.fixture
def window(qtbot, tmp_path):
    from biosig_gui.app import make_app
    from biosig_gui.window import GuiOptions, MainWindow

    make_app(headless=True)
    win = MainWindow(GuiOptions(record_dir=str(tmp_path), explain=False))
    win.resize(1200, 800)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


@pytest.fixture
def feed(unique_name):
    feeds = []

    def start(path=MYO, **kwargs):
        kwargs.setdefault("name", unique_name)
        replay = ReplayFeed(path, **kwargs).start()
        feeds.append(replay)
        return replay

    yield start
    for replay in feeds:
        replay.stop()


def _posterior_points(win) -> int:
    panel = win._posteriors
    return 0 if panel is None else len(panel.traces.values())


def test_posteriors_update_and_lanes_scroll_during_a_replay(window, qtbot):
    window.select_model(MODEL, restart=False)
    window.scale_spin.setValue(400.0)  # a fixed lane scale: no rescale redraws while we look
    window.scale_box.setCurrentIndex(1)
    window.start_replay(MYO, speed=2, start_s=60)
    qtbot.waitUntil(lambda: _posterior_points(window) > 5, timeout=10_000)
    first_points = _posterior_points(window)
    first_end = window._posteriors.traces.visible_x()[-1]
    first_t = window.session.results.snapshot()["t_end"][-1]
    qtbot.waitUntil(lambda: window.session.results.snapshot()["t_end"][-1] > first_t + 0.5,
                    timeout=5_000)
    qtbot.wait(100)  # a frame or two
    assert _posterior_points(window) > first_points
    y = window._posteriors.traces.values()
    finite = np.isfinite(y).all(axis=1)
    assert finite.sum() > 5
    np.testing.assert_allclose(y[finite].sum(axis=1), 1.0, atol=1e-4)  # one distribution per window
    x = window._posteriors.traces.visible_x()
    assert -window.view_s < x[0] < x[-1] <= 0 and first_end <= 0  # seconds before now
    # The decision shows the model card's class label (the bundled Myo model names its gestures).
    labels = OnnxModel(MODEL).card["class_labels"]
    assert window.decision_label.text() in [*labels, "uncertain"]
    assert "nats" in window.decision_detail.text()
    assert "200 Hz nominal" in window.rate_label.text()
    assert "latency p50" in window.latency_label.text()
    # Signal lanes: full segments are drawn once into pixmaps that then only move; the newest
    # bins (the open segment) are the only path re-set per frame.
    trace, group = window._signal.traces[0], window._signal.groups[0]
    qtbot.waitUntil(lambda: len(trace._closed) >= 3, timeout=5_000)
    frozen = trace._closed[-1]
    key, pos, redraws = frozen.pixmap.pixmap().cacheKey(), group.pos().x(), trace.redraws
    assert not frozen.pixmap.pixmap().isNull() and frozen.pixmap.isVisible()
    assert not any(curve.isVisible() for curve in frozen.curves)
    qtbot.wait(300)
    assert group.pos().x() < pos  # scrolled left as time passed ...
    assert frozen.pixmap.pixmap().cacheKey() == key  # ... without redrawing the frozen segment
    assert trace.redraws > redraws  # while the open segment took the new bins
    start, end = window._signal.visible_x_range()
    assert -window.view_s <= start < end <= 0 and end > -1.0  # the newest bins are near "now"
    # About one bin per pixel column: the 10 s view is not drawn at 400 samples/s.
    width = window._signal.plots[0].getViewBox().width()
    assert window.session.signal.bin_size >= 2 and trace.points() < 2 * width
    assert window._signal.plots[0].getAxis("left")._tickLevels[0][0][1].endswith("±400")


def test_picker_attaches_to_a_newly_started_outlet(window, qtbot, feed, unique_name):
    window.resolve_streams()
    qtbot.waitUntil(lambda: window.resolve_button.isEnabled(), timeout=5_000)
    assert window.stream_box.findText(unique_name, flags=_contains()) < 0
    feed(CTG, speed=50)  # started after the window: only a re-resolve can show it
    window.resolve_button.click()
    qtbot.waitUntil(lambda: window.stream_box.findText(unique_name, flags=_contains()) >= 0,
                    timeout=5_000)
    index = window.stream_box.findText(unique_name, flags=_contains())
    window.stream_box.setCurrentIndex(index)
    window.stream_box.activated.emit(index)
    qtbot.waitUntil(lambda: window._built_for is not None and window.session is not None
                    and len(window.session.signal) > 50, timeout=8_000)
    status = window.session.status()
    assert status.stream == unique_name and status.stream_type == "CTG"
    # CTG: one plot per channel with its unit, on the cardiotocograph's scales; no envelope.
    axes = [p.getAxis("left").labelText for p in window._signal.plots]
    assert axes == ["FHR (bpm)", "UC (nd)"]
    low, high = window._signal.plots[0].viewRange()[1]
    assert 40 < low <= 50 and 210 <= high < 220
    assert window._envelope is None and window._posteriors is None
    assert window.view_s == 1200  # 20 min view for CTG
    qtbot.waitUntil(lambda: window._signal.points() > 10, timeout=5_000)


def test_disconnect_and_reconnect_are_shown(window, qtbot, feed, unique_name):
    replay = feed(speed=2, start_s=60)
    window.attach(name=unique_name, time_scale=2)
    qtbot.waitUntil(lambda: window._built_for is not None and "RUNNING" in window.state_label.text(),
                    timeout=8_000)
    assert not window._signal._lost and not window._signal.banner.isVisible()
    replay.stop()
    qtbot.waitUntil(lambda: "LOST" in window.state_label.text(), timeout=5_000)
    qtbot.wait(100)
    assert window._signal._lost and window._signal.banner.isVisible()
    assert all(pen.color().getRgb()[:3] == (170, 170, 170) for pen in window._signal.pens)
    assert _open_pens(window._signal) == {(170, 170, 170)}
    assert window._signal.gaps[0].visible  # the outage, shaded up to now
    assert "lost" in window.message_label.text()
    feed(speed=2, start_s=60)  # the same stream comes back
    qtbot.waitUntil(lambda: "RUNNING" in window.state_label.text(), timeout=8_000)
    qtbot.wait(100)
    assert not window._signal._lost and not window._signal.banner.isVisible()
    assert (170, 170, 170) not in _open_pens(window._signal)
    assert window._signal.gaps[0].visible  # the gap stays marked in the view
    assert "disconnects" in window.loss_label.text()


def test_ctg_overlay_shows_the_events_of_a_real_replay(window, qtbot):
    """CTU-UHB record 1001 at 300x: baseline, events and FIGO features drawn from the CTG chain."""
    window.start_replay(CTG, speed=300, start_s=600)
    qtbot.waitUntil(lambda: window._ctg is not None and len(window._ctg.shown_events) >= 4,
                    timeout=15_000)
    overlay, time_map = window._ctg, window._time_map
    events = overlay.shown_events
    kinds = {e.kind for e in events}
    assert "contraction" in kinds and any("deceleration" in k for k in kinds), kinds
    # Each event is a shaded span on its channel's plot, where its times map to.
    on_fhr = [e for e in events if e.kind != "contraction"]
    spans = overlay.fhr_spans.visible
    assert len(spans) == len(on_fhr)
    for event, span in zip(on_fhr, spans):
        assert span.rect().left() == pytest.approx(time_map.x(event.t_start))
        assert span.rect().width() == pytest.approx(time_map.x(event.t_end) - time_map.x(event.t_start))
    assert len(overlay.uc_spans.visible) == len(events) - len(on_fhr)
    assert "C" in overlay.visible_labels
    assert any(label.startswith(("VD", "LD", "ED", "PD", "D")) for label in overlay.visible_labels)
    assert overlay.baseline.path().elementCount() > 100
    # The FIGO features of the latest window as the FHR plot's title.
    title = overlay.fhr_plot.titleLabel.text
    assert "FIGO" in title and "bpm" in title and "STV" in title and "contractions" in title


def test_record_button_writes_a_readable_xdf(window, qtbot, feed, unique_name, tmp_path):
    feed(speed=1, start_s=60)
    window.attach(name=unique_name)
    qtbot.waitUntil(lambda: window._built_for is not None, timeout=8_000)
    window.record_button.click()
    assert window.session.recorder is not None, window.message_label.text()
    path = window.session.recorder.path
    assert path.parent == tmp_path
    qtbot.wait(1_000)
    window.record_button.click()
    assert window.session.recorder is None and not window.record_button.isChecked()
    recording = read_recording(path)
    stream = recording.streams[unique_name]
    assert stream.srate == 200 and stream.channel_labels[0] == "emg1"
    assert 100 <= stream.n_samples <= 400  # about a second at 200 Hz
    assert np.all(np.diff(stream.timestamps) > 0)
    # A second recording in the same second gets a new name: nothing is overwritten.
    window.record_button.click()
    second = window.session.recorder.path
    window.record_button.click()
    assert second != path and path.exists() and second.exists()


def test_cli_screenshot_headless(tmp_path):
    png = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "biosig", "gui", "--screenshot", str(png), "--quit-after", "2",
         "--no-model", "--size", "1000x700"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert (width, height) == (1000, 700)


def test_cli_gui_user_errors(capsys, tmp_path):
    assert main(["gui", "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["gui", "--screenshot", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err


def _open_pens(panel) -> set:
    from PySide6 import QtWidgets

    return {item.pen().color().getRgb()[:3] for item in panel.items
            if isinstance(item, QtWidgets.QGraphicsPathItem)}


def _contains():
    from PySide6 import QtCore

    return QtCore.Qt.MatchContains
