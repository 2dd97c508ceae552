"""The plots of the live window: signals, envelopes, posteriors, uncertainty, explanations.

Every plot item is created once, when a stream's shape is known, and then only fed new arrays
with ``setData`` / ``setImage`` from the window's timer, as pyqtgraph's ``PlotSpeedTest`` and
``MultiPlotSpeedTest`` examples do. The arrays come from the session's display buffers already
computed; what happens here is drawing: thinning to the pixels (min/max per pixel, all channels
in one numpy call), lane offsets and scales.

Time runs along x in seconds before now (``(t - now) * time_scale``: recording seconds for a
sped-up replay), or minutes for long views (CTG), so every panel shares one axis.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from biosig.stream.live import minmax_decimate

#: Greys for a stream that is gone.
LOST_PEN = pg.mkPen((170, 170, 170), width=1)
GAP_BRUSH = pg.mkBrush(150, 150, 150, 60)
#: Views at least this long are labelled in minutes.
MINUTES_FROM_S = 120.0
#: Gap regions kept ready per plot (older gaps beyond these are not shaded).
MAX_GAP_REGIONS = 8
#: Fixed display ranges of CTG channels (the paper scales of a cardiotocograph).
CTG_RANGES = {"fhr": (50.0, 210.0), "uc": (0.0, 100.0)}
#: Colours that stacked lanes cycle through (one curve each).
LANE_COLORS = 4
#: Channels above this count are drawn as stacked lanes in one plot, not one plot each.
MAX_SEPARATE_PLOTS = 4


def channel_color(i: int, n: int) -> QtGui.QColor:
    """A distinct, dark-enough colour for channel/class ``i`` of ``n`` on a white background."""
    return pg.intColor(i, hues=max(n, 1), values=1, maxValue=190, minValue=150, sat=230)


def time_unit(view_s: float) -> tuple[float, str]:
    """Divisor and axis label for a view of ``view_s`` seconds."""
    return (60.0, "min") if view_s >= MINUTES_FROM_S else (1.0, "s")


class GapShading:
    """A pool of shaded regions on one plot, marking gaps in the stream."""

    def __init__(self, plot: pg.PlotItem):
        self.regions = []
        for _ in range(MAX_GAP_REGIONS):
            region = pg.LinearRegionItem(movable=False, brush=GAP_BRUSH,
                                         pen=pg.mkPen(None))
            region.setZValue(-10)
            region.hide()
            plot.addItem(region, ignoreBounds=True)
            self.regions.append(region)

    def show(self, spans) -> None:
        """Shade ``spans`` ((x0, x1) in plot units), the newest ones if there are too many."""
        spans = list(spans)[-MAX_GAP_REGIONS:]
        for region, span in zip(self.regions, spans):
            region.setRegion(span)
            region.show()
        for region in self.regions[len(spans):]:
            region.hide()


def _new_plot(layout: pg.GraphicsLayout, row: int, title: str | None = None) -> pg.PlotItem:
    plot = layout.addPlot(row=row, col=0, title=title)
    plot.setMenuEnabled(False)
    plot.setDownsampling(auto=True, mode="peak")
    plot.setClipToView(True)
    plot.showGrid(x=True, y=False, alpha=0.25)
    plot.hideButtons()
    plot.getAxis("left").setWidth(110)
    return plot


class SignalPanel:
    """Raw signals (and envelopes) of one stream.

    More than :data:`MAX_SEPARATE_PLOTS` channels are stacked as lanes of one plot, each
    scaled on its own (auto) or to one fixed amplitude, labelled with the channel and the
    lane's amplitude in the stream's unit; fewer get one plot each with a real unit axis (a CTG's
    FHR in bpm and UC on its pressure scale).

    Parameters
    ----------
    layout : pg.GraphicsLayout
        Where the plots go (rows from ``first_row``).
    labels, units : list of str
        Channel labels and units from the stream.
    title : str
        Shown above the (first) plot.
    kind : {"raw", "envelope"}
        An envelope is non-negative: its lanes start at their baseline.
    modality : {"emg", "ctg"}
    """

    def __init__(self, layout, first_row: int, labels, units, title: str, kind: str = "raw",
                 modality: str = "emg"):
        self.labels = list(labels)
        self.units = [u or "" for u in units] or [""] * len(self.labels)
        self.kind = kind
        self.modality = modality
        self.n = len(self.labels)
        self.lanes = self.n > MAX_SEPARATE_PLOTS
        self.fixed_scale: float | None = None
        self._scale = np.ones(self.n)
        self._center = np.zeros(self.n)
        self._pens = [pg.mkPen(channel_color(i, self.n), width=1) for i in range(self.n)]
        self._lost = False
        self._tick_update = 0
        self.plots: list[pg.PlotItem] = []
        self.curves: list[pg.PlotDataItem] = []
        if self.lanes:
            plot = _new_plot(layout, first_row, title)
            plot.setYRange(-self.n + 0.5, 0.5, padding=0.0)
            plot.getAxis("left").setStyle(tickFont=_small_font())
            plot.getViewBox().disableAutoRange()
            self.plots.append(plot)
            # One curve per colour, each drawing every LANE_COLORS-th lane with NaN breaks
            # between lanes (MultiPlotSpeedTest's single-curve trick): a few setData calls per
            # frame instead of one per channel. Neighbouring lanes still differ in colour.
            n_groups = min(self.n, LANE_COLORS)
            self._pens = [pg.mkPen(channel_color(g, n_groups), width=1) for g in range(n_groups)]
            self._groups = [np.arange(g, self.n, n_groups) for g in range(n_groups)]
            for g in range(n_groups):
                curve = plot.plot(pen=self._pens[g], connect="finite")
                # x restarts at each lane: clip-to-view and auto-downsampling assume it rises;
                # the lanes arrive thinned to the pixels by minmax_decimate instead.
                curve.setClipToView(False)
                curve.setDownsampling(auto=False)
                self.curves.append(curve)
            unit = _common_unit(self.units)
            plot.setLabel("left", f"{'lane' if kind == 'raw' else 'envelope'} ({unit})" if unit else "lane")
            self._set_lane_ticks()
        else:
            for i in range(self.n):
                plot = _new_plot(layout, first_row + i, title if i == 0 else None)
                plot.setLabel("left", self.labels[i], units=None)
                unit = self.units[i]
                plot.getAxis("left").setLabel(f"{self.labels[i]} ({unit})" if unit else self.labels[i])
                plot.showGrid(x=True, y=True, alpha=0.25)
                fixed = CTG_RANGES.get(self.labels[i].lower()) if modality == "ctg" else None
                if fixed is not None:
                    plot.setYRange(*fixed, padding=0.0)
                else:
                    plot.enableAutoRange(axis="y")
                curve = plot.plot(pen=self._pens[i])
                self.plots.append(plot)
                self.curves.append(curve)
        self.gaps = [GapShading(p) for p in self.plots]
        self.banner = pg.TextItem("", color=(200, 0, 0), anchor=(0.5, 0.5))
        self.banner.setFont(_bold_font(14))
        self.plots[0].addItem(self.banner, ignoreBounds=True)
        self.banner.hide()

    # -- drawing --------------------------------------------------------------------------------
    def update(self, t: np.ndarray, data: np.ndarray, x_of, width_px: int) -> None:
        """Draw samples ``data`` (n, n_channels) at times ``t``; ``x_of`` maps times to x."""
        if len(t) == 0:
            for curve in self.curves:
                curve.setData([], [])
            return
        t, data = minmax_decimate(t, data, max(2 * width_px, 200))
        x = x_of(t)
        has_gaps = bool(np.isnan(data).any())
        if self.modality == "ctg":
            data = _ctg_display(self.labels, data)
            has_gaps = True
        if self.lanes:
            y = self._lane_values(data)
            for curve, lanes in zip(self.curves, self._groups):
                curve.setData(*_joined(x, y[:, lanes]), connect="finite")
            return
        connect = "finite" if has_gaps else "all"
        for i, curve in enumerate(self.curves):
            curve.setSkipFiniteCheck(not has_gaps)
            curve.setData(x, data[:, i], connect=connect)

    def _lane_values(self, data: np.ndarray) -> np.ndarray:
        """Channel ``i`` mapped into lane ``-i`` (height 1, values within +-0.45)."""
        with np.errstate(all="ignore"):
            if self.kind == "envelope":
                center = np.zeros(self.n)
                spread = np.nanmax(data, axis=0)
            else:
                center = np.nanmean(data, axis=0)
                spread = np.nanmax(np.abs(data - center), axis=0)
        spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        if self.fixed_scale is not None:
            scale = np.full(self.n, self.fixed_scale)
        else:
            # Grow at once, shrink slowly: lanes do not flicker with every burst.
            scale = np.maximum(spread, 0.97 * self._scale)
        self._scale, self._center = scale, np.where(np.isfinite(center), center, 0.0)
        self._tick_update += 1
        if self._tick_update % 30 == 1:
            self._set_lane_ticks()
        offsets = -np.arange(self.n)
        if self.kind == "envelope":
            return (offsets - 0.45) + 0.9 * data / scale
        return offsets + 0.45 * (data - self._center) / scale

    def _set_lane_ticks(self) -> None:
        ticks = []
        for i, label in enumerate(self.labels):
            amp = _short_number(self._scale[i])
            ticks.append((-i, f"{label}  ±{amp}" if self.kind == "raw" else f"{label}  {amp}"))
        self.plots[0].getAxis("left").setTicks([ticks, []])

    def set_lost(self, lost: bool, message: str = "") -> None:
        """Grey the curves and show ``message`` while the stream is lost."""
        if lost != self._lost:
            self._lost = lost
            for pen, curve in zip(self._pens, self.curves):
                curve.setPen(LOST_PEN if lost else pen)
        if lost:
            self.banner.setText(message)
            self.banner.show()
        else:
            self.banner.hide()

    def place_banner(self, x: float) -> None:
        y_range = self.plots[0].viewRange()[1]
        self.banner.setPos(x, sum(y_range) / 2)

    def show_gaps(self, spans) -> None:
        for shading in self.gaps:
            shading.show(spans)


class PosteriorPanel:
    """Class posteriors over time (one trace per class) and the rejection threshold."""

    def __init__(self, layout, row: int, class_names):
        self.class_names = list(class_names)
        n = len(self.class_names)
        self.plot = _new_plot(layout, row, "Class posteriors")
        self.plot.setYRange(0, 1.3, padding=0.0)  # the legend sits above p = 1
        self.plot.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)], []])
        self.plot.setLabel("left", "p(class | window)")
        self.legend = self.plot.addLegend(offset=(4, 2), colCount=min(n, 8), labelTextSize="8pt",
                                          brush=pg.mkBrush(255, 255, 255, 200))
        self.curves = []
        for i, name in enumerate(self.class_names):
            curve = self.plot.plot(pen=pg.mkPen(channel_color(i, n), width=2), name=str(name))
            self.curves.append(curve)
        self.threshold = pg.InfiniteLine(angle=0, movable=False,
                                         pen=pg.mkPen((230, 120, 0), width=1, style=QtCore.Qt.DashLine))
        self.plot.addItem(self.threshold, ignoreBounds=True)
        self.threshold.hide()

    def update(self, x: np.ndarray, posteriors: np.ndarray | None) -> None:
        if posteriors is None or posteriors.shape[1] != len(self.curves):
            return
        for i, curve in enumerate(self.curves):
            curve.setData(x, posteriors[:, i], connect="finite")

    def set_threshold(self, value) -> None:
        if value is None:
            self.threshold.hide()
        else:
            self.threshold.setValue(value)
            self.threshold.show()


class UncertaintyPanel:
    """Posterior entropy over time, with OOD and rejected windows marked on the time axis."""

    def __init__(self, layout, row: int, n_classes: int):
        self.plot = _new_plot(layout, row, "Uncertainty")
        self.max_entropy = math.log(max(n_classes, 2))
        self.plot.setYRange(0, self.max_entropy * 1.45, padding=0.0)  # legend above log C
        self.plot.setLabel("left", "entropy (nats)")
        self.plot.addLegend(offset=(4, 2), colCount=3, labelTextSize="8pt",
                            brush=pg.mkBrush(255, 255, 255, 200))
        self.entropy = self.plot.plot(pen=pg.mkPen((40, 40, 160), width=2), name="entropy")
        ceiling = pg.InfiniteLine(self.max_entropy, angle=0, movable=False,
                                  pen=pg.mkPen((120, 120, 120), style=QtCore.Qt.DotLine))
        self.plot.addItem(ceiling, ignoreBounds=True)
        # Flags as vertical ticks: (x, y0), (x, y1) pairs.
        self.ood = self.plot.plot(pen=pg.mkPen((220, 0, 0), width=3), name="out of distribution")
        self.rejected = self.plot.plot(pen=pg.mkPen((240, 150, 0), width=3), name="rejected")

    def update(self, x, entropy, ood, rejected) -> None:
        self.entropy.setData(x, entropy, connect="finite")
        top = self.max_entropy
        self.ood.setData(*_ticks(x[ood], 0.0, 0.15 * top), connect="pairs")
        self.rejected.setData(*_ticks(x[rejected], 0.85 * top, top), connect="pairs")


def _joined(x: np.ndarray, y: np.ndarray):
    """Columns of ``y`` (n, k) one after the other as one line, NaN between them."""
    n, k = y.shape
    ys = np.full((k, n + 1), np.nan)
    ys[:, :n] = y.T
    xs = np.empty((k, n + 1))
    xs[:, :n] = x
    xs[:, n] = x[-1]
    return xs.reshape(-1), ys.reshape(-1)


def _ticks(x, y0: float, y1: float):
    xs = np.repeat(np.asarray(x, float), 2)
    ys = np.tile([y0, y1], len(x)).astype(float)
    return xs, ys


class ExplanationPanel:
    """The MI heat map (inputs x classes) beside the current class's prototype and the current
    input, row for row (same feature on the same line), in standard units of the training data."""

    def __init__(self, layout: pg.GraphicsLayout, feature_names, class_names, prior_mean=None,
                 prior_std=None):
        self.feature_names = list(feature_names)
        self.class_names = list(class_names)
        self.prior_mean = prior_mean
        self.prior_std = prior_std
        n_f = len(self.feature_names)
        self.heat = layout.addPlot(row=0, col=0, title="Mutual information (nats)")
        self.heat.setMenuEnabled(False)
        self.heat.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.heat.addItem(self.image)
        self.heat.invertY(True)
        self.heat.setLimits(xMin=0, xMax=len(self.class_names), yMin=0, yMax=n_f)
        self.heat.setRange(xRange=(0, len(self.class_names)), yRange=(0, n_f), padding=0)
        self.heat.getAxis("bottom").setTicks([[(i + 0.5, str(c)) for i, c in
                                               enumerate(self.class_names)], []])
        self.heat.setLabel("bottom", "class")
        every = max(1, math.ceil(n_f / 48))
        left = self.heat.getAxis("left")
        left.setStyle(tickFont=_small_font(7))
        left.setTicks([[(i + 0.5, name) for i, name in enumerate(self.feature_names)
                        if i % every == 0], []])
        self.colorbar = pg.ColorBarItem(values=(0, 0.5), colorMap=pg.colormap.get("viridis"),
                                        width=10, interactive=False, orientation="horizontal")
        self.colorbar.setImageItem(self.image)
        layout.addItem(self.colorbar, row=1, col=0)
        self.proto = layout.addPlot(row=0, col=1, title="Prototype vs input")
        self.proto.setMenuEnabled(False)
        self.proto.hideButtons()
        self.proto.setYLink(self.heat)
        self.proto.invertY(True)
        self.proto.getAxis("left").setStyle(showValues=False)
        self.proto.getAxis("left").setWidth(4)
        # z: standard units of the training data (the model card's feature mean and variance).
        self.proto.setLabel("bottom", "bars: class, dots: input" + (" (z)" if prior_mean is not None else ""))
        self.proto.addItem(pg.InfiniteLine(0, angle=90, movable=False,
                                           pen=pg.mkPen((150, 150, 150))))
        rows = np.arange(n_f) + 0.5
        self._rows = rows
        self.bars = pg.BarGraphItem(x0=np.zeros(n_f), y=rows, height=0.7, width=np.zeros(n_f),
                                    brush=pg.mkBrush(90, 140, 220, 170), pen=pg.mkPen(None),
                                    name="class prototype")
        self.proto.addItem(self.bars)
        self.current = self.proto.plot(pen=None, symbol="o", symbolSize=5,
                                       symbolBrush=(200, 30, 30), symbolPen=None,
                                       name="current input")
        # The heat map's tick labels would otherwise take the prototype column's room.
        self.proto.setMinimumWidth(200)
        self.proto.setMaximumWidth(240)
        self.mi_caption = ""
        self._mi_version = None
        self._proto_key = None

    def _z(self, values):
        values = np.asarray(values, float)
        if self.prior_mean is None:
            return values
        return (values - self.prior_mean) / self.prior_std

    def update_mi(self, result) -> None:
        """Show an :class:`~biosig.explain.service.ExplainerResult` of kind "mi" (once each)."""
        if result is None or result is self._mi_version:
            return
        self._mi_version = result
        mi = np.asarray(result.payload.mi, float)
        if mi.shape != (len(self.feature_names), len(self.class_names)):
            return
        top = float(np.nanmax(mi)) if np.isfinite(mi).any() else 1.0
        self.image.setImage(mi, autoLevels=False)
        # After setImage: setRect scales by the image's size in pixels (unknown before).
        self.image.setRect(QtCore.QRectF(0, 0, mi.shape[1], mi.shape[0]))
        self.colorbar.setLevels((0.0, max(top, 1e-3)))
        self.heat.setTitle(f"MI (nats), last {result.n_windows} windows")

    def update_prototype(self, prototypes, class_index: int, features) -> None:
        """Bars: the prototype of class ``class_index``; dots: the current feature vector."""
        if features is not None and len(features) == len(self._rows):
            self.current.setData(self._z(features), self._rows)
        if prototypes is None or class_index < 0 or class_index >= len(self.class_names):
            return
        key = (id(prototypes), class_index)
        if key == self._proto_key:
            return
        prototype = prototypes.payload.get(self.class_names[class_index])
        if prototype is None:
            return
        self._proto_key = key
        self.bars.setOpts(width=self._z(prototype.mean))
        self.proto.setTitle(f"Prototype of {self.class_names[class_index]} vs input")


# -- helpers ---------------------------------------------------------------------------------


def _ctg_display(labels, data: np.ndarray) -> np.ndarray:
    """CTG traces as a cardiotocograph draws them: an FHR of 0 bpm is signal loss, not a value."""
    out = data
    for i, label in enumerate(labels):
        if label.lower() == "fhr":
            if out is data:
                out = data.copy()
            column = out[:, i]
            column[column <= 0] = np.nan
    return out


def _common_unit(units) -> str:
    distinct = {u for u in units if u}
    return distinct.pop() if len(distinct) == 1 else ""


def _short_number(value: float) -> str:
    if not np.isfinite(value):
        return "?"
    return f"{value:.3g}"


def _small_font(size: int = 8) -> QtGui.QFont:
    font = QtGui.QFont()
    font.setPointSize(size)
    return font


def _bold_font(size: int) -> QtGui.QFont:
    font = QtGui.QFont()
    font.setPointSize(size)
    font.setBold(True)
    return font
