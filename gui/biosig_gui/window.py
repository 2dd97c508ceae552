"""The main window: controls, plots and status bar over one :class:`~biosig.stream.live.LiveSession`.

Threads: the session's pipeline and explainer run on their own threads; connecting to a stream
and listing streams run on helper threads; this window only reads their state from a
``QTimer`` (:meth:`MainWindow.refresh`) and draws it. Nothing here waits for the network or
computes a feature. A frame reads the display bins completed since the previous one, scrolls
the plots, and re-sets only what changed (see :mod:`biosig_gui.plots`); the side panel is
refreshed at :data:`SIDE_EVERY_S`, the status bar at :data:`STATUS_EVERY_S`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pylsl
from PySide6 import QtCore, QtWidgets

from biosig._checks import BiosigError
from biosig.stream.live import LiveSession, ReplayFeed, _modality

from biosig_gui.plots import (
    MARGIN,
    CTGOverlay,
    ExplanationPanel,
    PosteriorPanel,
    SignalPanel,
    TimeMap,
    UncertaintyPanel,
    channel_color,
    time_unit,
)

logger = logging.getLogger(__name__)

#: Frame period of the display timer in ms (60 frames per second).
FRAME_MS = 16
#: Seconds between status bar refreshes.
STATUS_EVERY_S = 0.5
#: Seconds between refreshes of the decision and explanation panel.
SIDE_EVERY_S = 0.1
NO_MODEL = "(no model)"


@dataclass
class GuiOptions:
    """What ``biosig gui`` was asked to show.

    Attributes
    ----------
    stream, stream_type : str or None
        LSL stream to attach to (by name and/or type).
    model : str or None
        Model (.onnx) for the inference slot.
    replay : str or None
        Recording to replay on LSL and attach to (looping).
    speed, start_s : float
        Replay speed multiple and where the replay starts (s).
    view_s : float or None
        Seconds of signal shown (None: 10 s, or 20 min for CTG).
    n_channels : int or None
        Replay this many channels (repeating recorded ones); for load tests.
    explain : bool
        Run the explainers beside a model.
    record_dir : str
        Folder the record button writes to.
    models_dir : str or None
        Folder whose ``*.onnx`` files the model picker offers.
    frame_ms : int
        Display timer period in ms (0: as fast as possible, for benchmarks).
    """

    stream: str | None = None
    stream_type: str | None = None
    model: str | None = None
    replay: str | None = None
    speed: float = 1.0
    start_s: float = 0.0
    view_s: float | None = None
    n_channels: int | None = None
    explain: bool = True
    record_dir: str = "."
    models_dir: str | None = None
    frame_ms: int = FRAME_MS


class _CountingLayout(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that counts the frames it actually painted."""

    painted = 0

    def paintEvent(self, event):  # noqa: N802 - Qt's name
        super().paintEvent(event)
        self.painted += 1


class MainWindow(QtWidgets.QMainWindow):
    """The live view of one stream (see the module docstring)."""

    def __init__(self, options: GuiOptions | None = None):
        super().__init__()
        self.options = options or GuiOptions()
        self.setWindowTitle("biosig live")
        self.session: LiveSession | None = None
        self.feed: ReplayFeed | None = None
        self.record_dir = Path(self.options.record_dir)
        self.view_s = self.options.view_s
        self._query: dict = {}
        self._built_for = None  # the session the plots were built for
        self._signal = self._envelope = self._posteriors = self._uncertainty = None
        self._explanation = self._ctg = None
        self._time_map: TimeMap | None = None
        self._results_key = None
        self._results_seen = (-1, -math.inf)
        self._resolver: threading.Thread | None = None
        self._resolved: list | None = None
        self._frame_times: list[float] = []
        self._next_status = 0.0
        self.frames = 0
        self._hop_override = False
        self._axis = None
        self._message_transient = False
        self._decision_color = None
        self._next_side = 0.0
        self._build_controls()
        self._build_body()
        self._build_status_bar()
        self.timer = QtCore.QTimer(self)
        # Precise: a coarse timer may fire up to 5 % late, i.e. below 60 frames per second.
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(self.options.frame_ms)

    # -- layout --------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        top = self.addToolBar("Source")
        top.setMovable(False)
        top.addWidget(QtWidgets.QLabel(" Stream "))
        self.stream_box = QtWidgets.QComboBox()
        self.stream_box.setMinimumWidth(320)
        self.stream_box.setToolTip("LSL streams on the network; pick one to attach to it")
        self.stream_box.activated.connect(self._on_stream_picked)
        top.addWidget(self.stream_box)
        self.resolve_button = QtWidgets.QPushButton("Re-resolve")
        self.resolve_button.setToolTip("List the LSL streams visible now")
        self.resolve_button.clicked.connect(self.resolve_streams)
        top.addWidget(self.resolve_button)
        top.addSeparator()
        top.addWidget(QtWidgets.QLabel(" Model "))
        self.model_box = QtWidgets.QComboBox()
        self.model_box.setMinimumWidth(200)
        self.model_box.activated.connect(self._on_model_picked)
        top.addWidget(self.model_box)
        open_model = QtWidgets.QPushButton("Open…")
        open_model.clicked.connect(self._browse_model)
        top.addWidget(open_model)
        top.addSeparator()
        self.start_button = QtWidgets.QPushButton("Stop")
        self.start_button.clicked.connect(self._toggle_running)
        top.addWidget(self.start_button)
        self.record_button = QtWidgets.QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the stream to a new XDF file (never overwrites)")
        self.record_button.clicked.connect(self._toggle_recording)
        top.addWidget(self.record_button)

        self.addToolBarBreak()
        view = self.addToolBar("View")
        view.setMovable(False)
        view.addWidget(QtWidgets.QLabel(" View "))
        self.view_spin = _spin(1.0, 3600.0, 10.0, " s", decimals=0)
        self.view_spin.setToolTip("Seconds of signal shown")
        self.view_spin.valueChanged.connect(self._on_view_changed)
        view.addWidget(self.view_spin)
        view.addWidget(QtWidgets.QLabel("  Scale "))
        self.scale_box = QtWidgets.QComboBox()
        self.scale_box.addItems(["auto per channel", "fixed"])
        self.scale_box.currentIndexChanged.connect(self._on_scale_changed)
        view.addWidget(self.scale_box)
        self.scale_spin = _spin(1e-6, 1e6, 1.0, "", decimals=3)
        self.scale_spin.setToolTip("Fixed lane amplitude (± this, in the stream's unit)")
        self.scale_spin.setEnabled(False)
        self.scale_spin.valueChanged.connect(self._on_scale_changed)
        view.addWidget(self.scale_spin)
        view.addSeparator()
        view.addWidget(QtWidgets.QLabel(" Window "))
        self.window_label = QtWidgets.QLabel("–")
        self.window_label.setToolTip("Analysis window length (fixed by the model's training)")
        view.addWidget(self.window_label)
        view.addWidget(QtWidgets.QLabel("  Hop "))
        self.hop_spin = _spin(0.005, 600.0, 0.05, " s", decimals=3)
        self.hop_spin.setToolTip("Seconds between windows; applied by re-attaching")
        self.hop_spin.editingFinished.connect(self._on_hop_changed)
        view.addWidget(self.hop_spin)
        view.addSeparator()
        view.addWidget(QtWidgets.QLabel(" Reject below "))
        self.reject_spin = _spin(0.0, 1.0, 0.0, "", decimals=2)
        self.reject_spin.setSingleStep(0.05)
        self.reject_spin.setToolTip("No decision when the largest posterior is below this (0: off)")
        self.reject_spin.valueChanged.connect(self._on_reject_changed)
        view.addWidget(self.reject_spin)
        view.addWidget(QtWidgets.QLabel("  Smoothing "))
        self.smooth_spin = QtWidgets.QSpinBox()
        self.smooth_spin.setRange(1, 50)
        self.smooth_spin.setToolTip("Majority vote over this many windows (1: off)")
        self.smooth_spin.valueChanged.connect(self._on_smoothing_changed)
        view.addWidget(self.smooth_spin)
        self._fill_models()

    def _build_body(self) -> None:
        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.plots = _CountingLayout()
        self.plots.ci.setSpacing(4)
        splitter.addWidget(self.plots)
        side = self.side_panel = QtWidgets.QWidget()
        side_layout = QtWidgets.QVBoxLayout(side)
        side_layout.setContentsMargins(4, 4, 4, 4)
        self.decision_label = QtWidgets.QLabel("–")
        self.decision_label.setAlignment(QtCore.Qt.AlignCenter)
        self.decision_label.setTextFormat(QtCore.Qt.PlainText)  # class names are not markup
        font = self.decision_label.font()
        font.setPointSize(30)
        font.setBold(True)
        self.decision_label.setFont(font)
        self.decision_label.setMinimumHeight(70)
        side_layout.addWidget(self.decision_label)
        self.decision_detail = QtWidgets.QLabel("")
        self.decision_detail.setAlignment(QtCore.Qt.AlignCenter)
        side_layout.addWidget(self.decision_detail)
        self.explain_view = pg.GraphicsLayoutWidget()
        side_layout.addWidget(self.explain_view, stretch=1)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1040, 560])
        self.setCentralWidget(splitter)
        self._waiting = self.plots.addLabel("waiting for a stream…", size="14pt")

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = QtWidgets.QLabel("idle")
        self.state_label.setMinimumWidth(110)
        bar.addWidget(self.state_label)
        self.stream_label = QtWidgets.QLabel("")
        self.rate_label = QtWidgets.QLabel("")
        self.loss_label = QtWidgets.QLabel("")
        self.clock_label = QtWidgets.QLabel("")
        self.latency_label = QtWidgets.QLabel("")
        self.fps_label = QtWidgets.QLabel("")
        for label in (self.stream_label, self.rate_label, self.loss_label, self.clock_label,
                      self.latency_label, self.fps_label):
            bar.addWidget(_framed(label))
        self.message_label = QtWidgets.QLabel("")
        bar.addWidget(self.message_label, stretch=1)

    # -- sources -------------------------------------------------------------------------------
    def start_replay(self, path, *, speed: float = 1.0, start_s: float = 0.0, n_channels=None) -> None:
        """Replay a recording on LSL (looping) and attach to it."""
        self.stop_feed()
        self.feed = ReplayFeed(path, speed=speed, start_s=start_s, n_channels=n_channels).open()
        self.feed.start()
        self.attach(name=self.feed.name, time_scale=speed)

    def stop_feed(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None

    def attach(self, name=None, type=None, source_id=None, *, time_scale: float = 1.0) -> None:
        """Attach to the LSL stream matching the query (replacing the current session)."""
        self._query = {"name": name, "type": type, "source_id": source_id, "time_scale": time_scale}
        self._restart()

    def _restart(self) -> None:
        self.detach()
        if not self._query:
            return
        model = self.current_model()
        query = dict(self._query)
        time_scale = query.pop("time_scale")
        hop = self.hop_spin.value() if self._hop_override else None
        reject = self.reject_spin.value() or None
        history = None if self.view_s is None else max(60.0, self.view_s)
        self.session = LiveSession(
            **query, model=model, time_scale=time_scale, history_s=history,
            explain=self.options.explain, hop_s=hop, reject_threshold=reject,
            smoothing=self.smooth_spin.value(),
        )
        self.session.start_in_background()
        self.start_button.setText("Stop")

    def detach(self) -> None:
        """Stop the current session (the replay, if any, keeps playing)."""
        session, self.session = self.session, None
        if session is not None:
            if session.recorder is not None:
                self._finish_recording(session)
            session.stop()
        self.start_button.setText("Start")

    def resolve_streams(self) -> None:
        """List the streams on the network, on a helper thread (the timer fills the picker)."""
        if self._resolver is not None and self._resolver.is_alive():
            return
        from biosig.stream.discovery import list_streams

        def run():
            try:
                self._resolved = list_streams(timeout=1.0)
            except Exception as err:  # noqa: BLE001 - shown, never raised on the GUI
                logger.warning("resolving streams failed: %s", err)
                self._resolved = []

        self.resolve_button.setEnabled(False)
        self.resolve_button.setText("Resolving…")
        self._resolver = threading.Thread(target=run, name="biosig-gui-resolve", daemon=True)
        self._resolver.start()

    def _fill_streams(self, rows) -> None:
        self.stream_box.clear()
        current = self.session.status().stream if self.session else None
        for row in rows:
            if row["rate"] <= 0 or row["format"] == "string":
                continue  # markers and results: nothing to plot as a signal
            text = (f"{row['name']} — {row['type']}, {row['channels']} ch @ {row['rate']:g} Hz"
                    f" ({row['hostname']})")
            self.stream_box.addItem(text, row)
            if row["name"] == current:
                self.stream_box.setCurrentIndex(self.stream_box.count() - 1)
        if not self.stream_box.count():
            self.stream_box.addItem("no signal streams found", None)

    def _on_stream_picked(self, index: int) -> None:
        row = self.stream_box.itemData(index)
        if not row:
            return
        if self.feed is not None and row["name"] != self.feed.name:
            self.stop_feed()
        time_scale = self.feed.speed if self.feed is not None else 1.0
        self.attach(name=row["name"], source_id=row["source_id"] or None, time_scale=time_scale)

    # -- models --------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        from biosig.cli.demo import bundled_models_dir

        folder = Path(self.options.models_dir) if self.options.models_dir else bundled_models_dir()
        self.model_box.addItem(NO_MODEL, None)
        for path in sorted(folder.glob("*.onnx")) if folder.is_dir() else []:
            self.model_box.addItem(path.name, str(path))
        if self.options.model:
            self.select_model(self.options.model, restart=False)

    def current_model(self) -> str | None:
        return self.model_box.currentData()

    def select_model(self, path, *, restart: bool = True) -> None:
        """Use the model at ``path`` (None: none) from now on."""
        if path is None:
            self.model_box.setCurrentIndex(0)
        else:
            path = str(Path(path).resolve())
            index = self.model_box.findData(path)
            if index < 0:
                self.model_box.addItem(Path(path).name, path)
                index = self.model_box.count() - 1
            self.model_box.setCurrentIndex(index)
        if restart:
            self._restart()

    def _on_model_picked(self, index: int) -> None:
        self._restart()

    def _browse_model(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a biosig model", "",
                                                        "ONNX models (*.onnx)")
        if path:
            self.select_model(path)

    # -- controls ------------------------------------------------------------------------------
    def _toggle_running(self) -> None:
        if self.session is not None:
            self.detach()
        else:
            self._restart()

    def _toggle_recording(self) -> None:
        session = self.session
        if session is None:
            self.record_button.setChecked(False)
            return
        if session.recorder is not None:
            self._finish_recording(session)
            return
        try:
            path = session.record(self._new_recording_path(session))
        except BiosigError as err:
            self.record_button.setChecked(False)
            self._show_message(f"cannot record: {err}", error=True)
            return
        self.record_button.setChecked(True)
        self.record_button.setText("■ Stop recording")
        self._show_message(f"recording to {path}")

    def _finish_recording(self, session) -> Path | None:
        path = session.stop_recording()
        self.record_button.setChecked(False)
        self.record_button.setText("● Record")
        if path is not None:
            self._show_message(f"saved {path}")
        self.last_recording = path
        return path

    def _new_recording_path(self, session) -> Path:
        """``<stream>_<date-time>.xdf`` in the record folder; a suffix if that exists."""
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in session.status().stream)
        stem = f"{stem or 'stream'}_{time.strftime('%Y%m%d-%H%M%S')}"
        path = self.record_dir / f"{stem}.xdf"
        k = 1
        while path.exists():
            path = self.record_dir / f"{stem}-{k}.xdf"
            k += 1
        return path

    def _on_view_changed(self, value: float) -> None:
        self.view_s = float(value)

    def _on_scale_changed(self, *_) -> None:
        fixed = self.scale_box.currentIndex() == 1
        self.scale_spin.setEnabled(fixed)
        for panel in (self._signal,):
            if panel is not None:
                panel.set_fixed_scale(self.scale_spin.value() if fixed else None)

    def _on_hop_changed(self) -> None:
        self._hop_override = True
        self._restart()

    def _on_reject_changed(self, value: float) -> None:
        threshold = value or None
        if self.session is not None:
            try:
                self.session.set_reject_threshold(threshold)
            except BiosigError as err:
                self._show_message(str(err), error=True)
        if self._posteriors is not None:
            self._posteriors.set_threshold(threshold)

    def _on_smoothing_changed(self, value: int) -> None:
        if self.session is not None:
            self.session.set_smoothing(value)

    # -- building the plots for a stream -------------------------------------------------------
    def _build_plots(self, session: LiveSession) -> None:
        """(Re)create the plot items for the session's stream (once per attach)."""
        status = session.status()
        modality = _modality(status.stream_type)
        self.plots.clear()
        self.explain_view.clear()
        self._signal = self._envelope = self._posteriors = self._uncertainty = None
        self._explanation = self._ctg = None
        self._time_map = None
        self._results_key = None
        if self.view_s is None:
            self.view_s = 1200.0 if modality == "ctg" else 10.0
        self.view_spin.blockSignals(True)
        self.view_spin.setMaximum(session.history_s)
        self.view_spin.setValue(min(self.view_s, session.history_s))
        self.view_spin.blockSignals(False)
        self.view_s = self.view_spin.value()
        labels, units = status.channel_labels, status.channel_units
        title = f"{status.stream} — raw"
        row = 0
        self._signal = SignalPanel(self.plots.ci, row, labels, units, title, "raw", modality)
        row += len(self._signal.plots)
        if session.ctg_channels is not None:
            self._ctg = self._ctg_overlay(session.ctg_channels, row)
            row += 1
        if session.envelope is not None:
            pipeline_labels = session.pipeline.processor.channel_labels
            pipeline_units = [units[labels.index(c)] if c in labels else "" for c in pipeline_labels]
            self._envelope = SignalPanel(self.plots.ci, row, pipeline_labels, pipeline_units,
                                         "Envelope (pipeline filters, RMS)", "envelope", modality)
            row += len(self._envelope.plots)
        classifier = session.classifier
        if classifier is not None:
            names = _class_labels(classifier)
            self._posteriors = PosteriorPanel(self.plots.ci, row, names)
            self._posteriors.set_threshold(self.reject_spin.value() or None)
            row += 1
            self._uncertainty = UncertaintyPanel(self.plots.ci, row, len(names))
            row += 1
            if session.explainer is not None:
                mean, std = _prior(classifier)
                self._explanation = ExplanationPanel(
                    self.explain_view.ci, list(classifier.feature_names), names, mean, std,
                    class_keys=[str(c) for c in classifier.classes_])
        self._set_row_stretch()
        all_plots = self._time_plots()
        for plot in all_plots[1:]:
            plot.setXLink(all_plots[0])
        for plot in all_plots[:-1]:
            plot.getAxis("bottom").setStyle(showValues=False)
        self._on_scale_changed()
        config = session.pipeline.config
        self.window_label.setText(f"{config.window.length_s * 1e3:g} ms" if config.window.length_s < 1
                                  else f"{config.window.length_s:g} s")
        self.hop_spin.blockSignals(True)
        self.hop_spin.setValue(config.window.hop_s)
        self.hop_spin.blockSignals(False)
        self._set_time_axis()
        self._built_for = session
        # Without a model there is nothing to decide or explain: the signals get the width.
        self.side_panel.setVisible(classifier is not None)

    def _set_row_stretch(self) -> None:
        """Stacked lanes and a CTG's FHR get more height than the per-window plots."""
        layout = self.plots.ci.layout
        for row in range(layout.rowCount()):
            layout.setRowStretchFactor(row, 0)
        weights = []
        for panel, lanes_weight in ((self._signal, 3), (self._envelope, 2)):
            if panel is not None:
                for i, plot in enumerate(panel.plots):
                    weight = lanes_weight + (panel.n > 16) if panel.lanes else 2
                    if panel.modality == "ctg":
                        weight = 3 if panel.labels[i].lower() == "fhr" else 2
                    weights.append((plot, weight))
        for panel in (self._posteriors, self._uncertainty):
            if panel is not None:
                weights.append((panel.plot, 2))
        for plot, weight in weights:
            for row in range(layout.rowCount()):
                if layout.itemAt(row, 0) is plot:
                    layout.setRowStretchFactor(row, weight)

    def _ctg_overlay(self, channels, legend_row: int) -> CTGOverlay | None:
        """Baseline, events and FIGO features over the FHR (and UC) plots."""
        fhr, uc = channels
        lowered = [label.lower() for label in self._signal.labels]
        if self._signal.lanes or fhr.lower() not in lowered:
            return None
        i = lowered.index(fhr.lower())
        j = lowered.index(uc.lower()) if uc is not None and uc.lower() in lowered else None
        panel = self._signal
        return CTGOverlay(panel.plots[i], panel.groups[i],
                          None if j is None else panel.plots[j],
                          None if j is None else panel.groups[j],
                          layout=self.plots.ci, legend_row=legend_row)

    def _time_plots(self) -> list:
        plots = []
        for panel in (self._signal, self._envelope):
            if panel is not None:
                plots += panel.plots
        for panel in (self._posteriors, self._uncertainty):
            if panel is not None:
                plots.append(panel.plot)
        return plots

    def _set_time_axis(self) -> None:
        plots = self._time_plots()
        if not plots:
            return
        divisor, unit = time_unit(self.view_s)
        scale = self.session.time_scale if self.session else 1.0
        label = f"time before now ({unit}{', replay ×%g' % scale if scale != 1 else ''})"
        plots[-1].setLabel("bottom", label)
        plots[0].setXRange(-self.view_s / divisor, 0, padding=0.0)
        self._axis = (divisor, self.view_s)
        # Items sit at absolute x; a new map (new unit) makes every panel redraw once.
        origin = self._time_map.origin if self._time_map is not None else pylsl.local_clock()
        self._time_map = TimeMap(origin, scale, divisor)

    # -- the frame -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """One frame: read the session's buffers and redraw (called by the timer)."""
        started = time.perf_counter()
        if self._resolved is not None:
            rows, self._resolved = self._resolved, None
            self._fill_streams(rows)
            self.resolve_button.setEnabled(True)
            self.resolve_button.setText("Re-resolve")
        session = self.session
        state = session.state if session is not None else "stopped"
        if session is not None and state in ("running", "lost") and self._built_for is not session:
            self._build_plots(session)  # clears the "waiting for a stream" label
        if session is not None and self._built_for is session:
            self._draw(session, state)
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            self._update_status(session, state)
        self.frames += 1
        self._frame_times.append(time.perf_counter() - started)
        del self._frame_times[:-240]

    def _draw(self, session: LiveSession, state: str) -> None:
        if self._axis != (time_unit(self.view_s)[0], self.view_s):
            self._set_time_axis()
        divisor, view_s = self._axis
        time_map = self._time_map
        now = pylsl.local_clock()
        since = now - view_s * (1 + MARGIN) / session.time_scale
        clock = time.monotonic()
        self._signal.update(session.signal, time_map, now, view_s, divisor, clock)
        if self._envelope is not None:
            self._envelope.update(session.envelope, time_map, now, view_s, divisor, clock)
        lost = state == "lost"
        gaps = [(float(time_map.x(a)), float(time_map.x(b))) for a, b in session.gaps(since)]
        for panel in (self._signal, self._envelope):
            if panel is not None:
                panel.set_lost(lost, "stream lost — waiting for it to come back")
                panel.show_gaps(gaps)
                if lost:
                    panel.place_banner(-0.5 * view_s / divisor)
        if self._ctg is not None:
            self._ctg.update(session.annotations, time_map, since)
        if self._posteriors is not None:
            self._draw_results(session, since, time_map, time_map.x_now(now))

    def _draw_results(self, session, since: float, time_map: TimeMap, x_now: float) -> None:
        results = session.results
        if self._results_key is not time_map:  # a new time axis: draw the view again
            self._results_key = time_map
            self._results_seen = (-1, -math.inf)
            self._posteriors.traces.reset()
            self._uncertainty.traces.reset()
        total, last_t = self._results_seen
        if results.total != total:  # new windows: add them
            snap = results.snapshot(max(since, float(np.nextafter(last_t, math.inf))))
            if len(snap["t_end"]):
                x = time_map.x(snap["t_end"])
                self._posteriors.append(x, snap["posteriors"])
                self._uncertainty.append(x, snap["entropy"], snap["ood"], snap["rejected"])
                last_t = float(snap["t_end"][-1])
            self._results_seen = (results.total, last_t)
        x_min = x_now - self._axis[1] * (1 + MARGIN) / self._axis[0]
        self._posteriors.traces.scroll(x_now, x_min)
        self._uncertainty.traces.scroll(x_now, x_min)
        # The side panel (decision, explanations) changes at window rate, not frame rate.
        now = time.monotonic()
        if now < self._next_side:
            return
        self._next_side = now + SIDE_EVERY_S
        names = self._posteriors.class_names
        if results.latest_posteriors is not None:
            self._show_decision(results, names)
        if self._explanation is not None:
            latest = session.latest_explanations()
            self._explanation.update_mi(latest.get("mi"))
            decided = results.latest_decision
            latest_p = results.latest_posteriors
            if decided < 0 and latest_p is not None and np.isfinite(latest_p).any():
                decided = int(np.nanargmax(latest_p))
            self._explanation.update_prototype(latest.get("prototypes"), decided,
                                               results.latest_features)

    def _show_decision(self, results, names) -> None:
        p = results.latest_posteriors
        if not np.isfinite(p).any():
            return  # a stale window, left unclassified: keep the last decision shown
        best = int(np.nanargmax(p))
        entropy = float(-np.nansum(p * np.log(np.clip(p, 1e-300, 1))))
        if results.latest_rejected or results.latest_decision < 0:
            text, color = "uncertain", "rgb(230,120,0)"
            detail = f"no decision: max p = {p[best]:.2f}"
        else:
            k = results.latest_decision
            text = f"class {names[k]}" if names[k].isdigit() else names[k]
            color = channel_color(k, len(names)).name()
            detail = f"p = {p[k]:.2f}"
        detail += f" · H = {entropy:.2f} nats"
        if results.latest_ood:
            detail += " · OUT OF DISTRIBUTION"
            color = "rgb(220,0,0)" if results.latest_decision < 0 else color
        # Only what changed: a style sheet or text change re-lays out the side panel.
        if self.decision_label.text() != text:
            self.decision_label.setText(text)
        if self._decision_color != color:
            self._decision_color = color
            self.decision_label.setStyleSheet(f"color: {color}")
        if self.decision_detail.text() != detail:
            self.decision_detail.setText(detail)

    # -- status bar ----------------------------------------------------------------------------
    def _update_status(self, session, state: str) -> None:
        colors = {"running": "green", "lost": "red", "connecting": "darkorange", "error": "red"}
        recording = session is not None and session.recorder is not None
        _set_text(self.state_label, f"● {state.upper()}" + ("  REC" if recording else ""))
        style = f"color: {colors.get(state, 'gray')}; font-weight: bold"
        if self.state_label.styleSheet() != style:
            self.state_label.setStyleSheet(style)
        _set_text(self.fps_label, f"{self.fps():.0f} fps")
        if session is None:
            return
        s = session.status()
        if s.stream:
            _set_text(self.stream_label, f"{s.stream} @ {s.host}")
            _set_text(self.rate_label, f"{s.nominal_rate:g} Hz nominal / "
                                       f"{_num(s.measured_rate, '.1f')} Hz measured")
            _set_text(self.loss_label, f"dropped {s.dropped_samples} samples, {s.gaps} gaps"
                      + (f", {s.disconnects} disconnects" if s.disconnects else ""))
            _set_text(self.clock_label, f"clock offset {_num(s.clock_offset * 1e3, '.2f')} ms")
            _set_text(self.latency_label, f"latency p50 {_num(s.latency_p50 * 1e3, '.1f')} ms"
                                          f" / p99 {_num(s.latency_p99 * 1e3, '.1f')} ms")
        if state == "error":
            self._show_message(s.message, error=True)
        elif state == "connecting" and s.message:  # found, and starting
            self._show_message(s.message)
            self._set_waiting("preparing the signal processing…")
        elif state == "connecting":
            query = {k: v for k, v in self._query.items() if v and k != "time_scale"}
            self._show_message("looking for " + ", ".join(f"{k}={v!r}" for k, v in query.items()))
            self._set_waiting("waiting for a stream…")
        elif state == "lost":
            self._show_message("stream lost; it is picked up again when it returns", error=True)
        elif self._message_transient or self.message_label.text().startswith(
                ("looking for", "stream found")):
            self._show_message("")

    def _set_waiting(self, text: str) -> None:
        """Show ``text`` on the placeholder that stands where the plots go, until they are
        built (a no-op once they are, or when the text is already shown)."""
        if self._waiting.scene() is not None and self._waiting.text != text:
            self._waiting.setText(text, size="14pt")

    def _show_message(self, text: str, *, error: bool = False) -> None:
        _set_text(self.message_label, text)
        style = "color: red" if error else ""
        if self.message_label.styleSheet() != style:
            self.message_label.setStyleSheet(style)
        # A Python flag, not QObject.setProperty: reading a bool/None property back leaked a
        # reference under PySide6 6.12 (the interpreter aborted in bool_dealloc/none_dealloc).
        self._message_transient = bool(text) and error

    def fps(self) -> float:
        """Frames per second the timer managed over the last frames (wall clock)."""
        return self._fps_meter()

    def _fps_meter(self) -> float:
        now = time.perf_counter()
        stamps = getattr(self, "_fps_stamps", None)
        if stamps is None:
            stamps = self._fps_stamps = []
        stamps.append((now, self.frames))
        while len(stamps) > 2 and now - stamps[0][0] > 2.0:
            stamps.pop(0)
        (t0, f0), (t1, f1) = stamps[0], stamps[-1]
        return (f1 - f0) / (t1 - t0) if t1 > t0 else 0.0

    # -- closing -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the timer, the session (finishing a recording) and the replay."""
        self.timer.stop()
        self.detach()
        self.stop_feed()

    def closeEvent(self, event):  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)


# -- helpers ---------------------------------------------------------------------------------


def _spin(low: float, high: float, value: float, suffix: str, *, decimals: int) -> QtWidgets.QDoubleSpinBox:
    spin = QtWidgets.QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setKeyboardTracking(False)
    return spin


def _set_text(label: QtWidgets.QLabel, text: str) -> None:
    """Set ``text`` only if it differs: every setText re-lays out and repaints the status bar."""
    if label.text() != text:
        label.setText(text)


def _framed(label: QtWidgets.QLabel) -> QtWidgets.QLabel:
    label.setContentsMargins(6, 0, 6, 0)
    return label


def _num(value: float, spec: str) -> str:
    return format(value, spec) if value is not None and math.isfinite(value) else "–"


def _class_labels(classifier) -> list[str]:
    card = getattr(classifier, "card", None) or {}
    labels = card.get("class_labels") or [str(c) for c in classifier.classes_]
    return [str(label) for label in labels]


def _prior(classifier):
    """Training feature mean and standard deviation from the model card (None, None if absent)."""
    training = (getattr(classifier, "card", None) or {}).get("training") or {}
    mean, var = training.get("feature_mean"), training.get("feature_var")
    if mean is None or var is None:
        return None, None
    return np.asarray(mean, float), np.sqrt(np.maximum(np.asarray(var, float), 1e-24))
