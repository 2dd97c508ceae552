"""The plots of the live window: signals, envelopes, posteriors, uncertainty, explanations, CTG.

Drawing a 32 ch x 2048 Hz stream at 60 frames per second on a CPU (Qt's raster engine, no
OpenGL) comes down to doing almost nothing per frame:

- **Absolute time, a scrolling group.** Every time-series item sits in one
  :class:`pg.ItemGroup` per plot at x = recording time since the session's origin (in the
  axis unit, s or min). The view's x range never changes ("time before now", -view..0); each
  frame only moves the group left (:meth:`TimeMap.x_now`). So the axes and grids are painted
  once and kept as pixmaps, and curve data is never re-set just because time passed.
- **Bins from the writer.** The session's buffers keep the min and max of every
  samples-per-pixel-column bin as samples arrive, on the processing thread
  (:meth:`biosig.stream.live.SignalBuffer.set_bin_size`); a frame reads only the bins completed
  since the previous one.
- **Fixed segments.** A signal's curve is cut into segments of :data:`SEGMENT_BINS` bins
  (:class:`SegmentedLanes`). New bins go into the open segment, the only curve whose data is
  re-set; all lanes of one colour are one path per segment (NaN between lanes). A full
  segment is rendered once into one pixmap (all colours) shown by a ``QGraphicsPixmapItem`` at
  device resolution, which Qt re-blits while the group scrolls instead of stroking the paths
  again.
- **No Python while painting.** Curves, grids and shaded spans are Qt's own
  ``QGraphicsPathItem``/``QGraphicsRectItem`` (paths built once per data change with
  ``pg.arrayToQPath``), not pyqtgraph items: painting a frame then calls no Python
  ``paint``/``boundingRect``, which on a busy machine would each wait for the GIL held by the
  processing thread. Curves use 0-width (one-pixel, cosmetic) pens so Qt's bounding rectangle is
  the path's own, not a stroked outline. The grid is one path per plot (:class:`StaticGrid`)
  instead of the axes' grid, which pyqtgraph recomputes in Python at every paint.
- **Change-driven everything else.** Lane scales move in 1-1.5-2-3-5-7 steps with hysteresis,
  checked twice a second (a change redraws the segments once); posteriors, entropy and the
  OOD/rejected ticks use the same segments (one window per bin, :class:`ScrollingTraces`),
  extended when windows arrive; the MI heat map and prototype change only when the explainer
  published a new result, CTG overlays only when the CTG chain analysed a new window. Legends
  over the scrolling plots are cached as pixmaps (:func:`cache_tree`).

Anti-aliasing is off (``app.make_app``) and OpenGL is not used.
"""

from __future__ import annotations

import html
import math
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

#: Greys for a stream that is gone.
LOST_PEN = pg.mkPen((170, 170, 170), width=0)
GAP_BRUSH = pg.mkBrush(150, 150, 150, 60)
#: Views at least this long are labelled in minutes.
MINUTES_FROM_S = 120.0
#: Fixed display ranges of CTG channels (the paper scales of a cardiotocograph).
CTG_RANGES = {"fhr": (50.0, 210.0), "uc": (0.0, 100.0)}
#: Colours that stacked lanes cycle through (one curve each per segment).
LANE_COLORS = 4
#: Channels above this count are drawn as stacked lanes in one plot, not one plot each.
MAX_SEPARATE_PLOTS = 4
#: Bins per curve segment: a closed segment is a cached pixmap, the open one is redrawn.
SEGMENT_BINS = 64
#: Seconds between lane scale checks.
RESCALE_EVERY_S = 0.5
#: Steps of the lane scale within a decade.
SCALE_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)
#: A lane's scale shrinks when its signal uses less than this share of it.
SHRINK_BELOW = 0.35
#: Pixels a lane label needs (8 pt text).
LABEL_PX = 12
#: Text lines CTG event labels may use at the top of a plot (close events go lower).
LABEL_ROWS = 3
#: Extra history kept beyond the view (share of the view), so a scroll never shows a hole.
MARGIN = 0.05
_CACHED = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
#: Grid line colours per tick level (major, minor).
GRID_PENS = (pg.mkPen((0, 0, 0, 55), width=0), pg.mkPen((0, 0, 0, 25), width=0))


def hairline(color) -> QtGui.QPen:
    """A one-pixel cosmetic pen (width 0: Qt then bounds a path by its points, not a stroke)."""
    return pg.mkPen(color, width=0)


def path_item(parent, pen: QtGui.QPen, z: float = 0.0) -> QtWidgets.QGraphicsPathItem:
    """A Qt path item (painted without Python) under ``parent``."""
    item = QtWidgets.QGraphicsPathItem()
    item.setPen(pen)
    item.setZValue(z)
    item.setParentItem(parent)
    return item


def set_path(item: QtWidgets.QGraphicsPathItem, x, y, connect: str = "finite") -> None:
    """Draw ``(x, y)`` with ``item`` (NaN breaks the line with ``connect="finite"``)."""
    if len(x) == 0:
        item.setPath(QtGui.QPainterPath())
        return
    item.setPath(pg.arrayToQPath(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                                 connect=connect))


def cache_tree(item: QtWidgets.QGraphicsItem) -> None:
    """Keep ``item`` and everything in it as device pixmaps (a legend over a scrolling plot
    would otherwise lay out and draw its text again at every frame)."""
    item.setCacheMode(_CACHED)
    for child in item.childItems():
        cache_tree(child)


def legend_sample(pen: QtGui.QPen) -> pg.PlotDataItem:
    """An item that only gives a legend its line sample (never added to a plot)."""
    return pg.PlotDataItem(pen=pen)


def channel_color(i: int, n: int) -> QtGui.QColor:
    """A distinct, dark-enough colour for channel/class ``i`` of ``n`` on a white background."""
    return pg.intColor(i, hues=max(n, 1), values=1, maxValue=190, minValue=150, sat=230)


def time_unit(view_s: float) -> tuple[float, str]:
    """Divisor and axis label for a view of ``view_s`` seconds."""
    return (60.0, "min") if view_s >= MINUTES_FROM_S else (1.0, "s")


class TimeMap:
    """LSL times to plot x: recording time since ``origin`` in the axis unit.

    Parameters
    ----------
    origin : float
        LSL time (s) that maps to x = 0.
    time_scale : float
        Replay speed (recording seconds per LSL second).
    divisor : float
        Seconds per axis unit (1: s, 60: min).
    """

    def __init__(self, origin: float, time_scale: float, divisor: float):
        self.origin = origin
        self.time_scale = time_scale
        self.divisor = divisor
        self.per_s = time_scale / divisor

    def x(self, t):
        return (np.asarray(t, dtype=np.float64) - self.origin) * self.per_s

    def x_now(self, now: float) -> float:
        return (now - self.origin) * self.per_s


def scrolling_group(plot: pg.PlotItem) -> pg.ItemGroup:
    """An item group in ``plot``'s view, moved left as time passes (see the module docstring)."""
    group = pg.ItemGroup()
    plot.addItem(group, ignoreBounds=True)
    return group


class SpanPool:
    """Shaded x intervals (gaps, events) in a scrolling group, drawn with reused rect items."""

    def __init__(self, group: pg.ItemGroup, brush=GAP_BRUSH, z: float = -10):
        self.group = group
        self.brush = brush
        self.z = z
        self.items: list[QtWidgets.QGraphicsRectItem] = []
        self._shown: tuple | None = None

    def show(self, spans, y0: float, y1: float, brushes=None) -> None:
        """Shade ``spans`` ((x0, x1) in group x) from ``y0`` to ``y1`` (skipped if unchanged)."""
        key = (tuple(spans), y0, y1, None if brushes is None else tuple(id(b) for b in brushes))
        if key == self._shown:
            return
        self._shown = key
        for k, (x0, x1) in enumerate(spans):
            if k == len(self.items):
                item = QtWidgets.QGraphicsRectItem()
                item.setPen(pg.mkPen(None))
                item.setZValue(self.z)
                item.setParentItem(self.group)
                self.items.append(item)
            item = self.items[k]
            item.setBrush(self.brush if brushes is None else brushes[k])
            item.setRect(QtCore.QRectF(x0, y0, max(x1 - x0, 0.0), y1 - y0))
            item.show()
        for item in self.items[len(spans):]:
            item.hide()

    @property
    def visible(self) -> list[QtWidgets.QGraphicsRectItem]:
        return [item for item in self.items if item.isVisible()]


class _Segment:
    """Up to ``capacity`` bins of every lane, drawn as one path per colour group while open,
    then frozen into one pixmap (:meth:`freeze`)."""

    def __init__(self, group, pens, lane_sets, n_lanes: int, capacity: int):
        self.capacity = capacity
        rows = capacity + 1  # + the bin being filled, shown in the open segment only
        self.x0 = np.empty(rows)
        self.x1 = np.empty(rows)
        self.low = np.empty((rows, n_lanes))
        self.high = np.empty((rows, n_lanes))
        self.n = 0
        self.lane_sets = lane_sets
        self.curves = [path_item(group, pen) for pen in pens]
        self.buffers = []
        for lanes in lane_sets:
            k = len(range(*lanes.indices(n_lanes)))
            self.buffers.append((np.empty(k * (2 * rows + 1)), np.empty(k * (2 * rows + 1)), k))
        self.pixmap = QtWidgets.QGraphicsPixmapItem()
        # Drawn 1:1 in device pixels at its position (which follows the scrolling group).
        self.pixmap.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.pixmap.setParentItem(group)
        self.pixmap.hide()

    @property
    def room(self) -> int:
        return self.capacity - self.n

    @property
    def x_end(self) -> float:
        return self.x1[self.n - 1] if self.n else -math.inf

    def restart(self, pens, carry=None) -> None:
        """Empty the segment; ``carry`` (x0, x1, low, high) of one bin starts it, so the line
        continues from the previous segment without a break."""
        self.n = 0
        self.pixmap.hide()
        for curve, pen in zip(self.curves, pens):
            curve.setPen(pen)
            curve.show()
        if carry is not None:
            self.put(*carry)

    def put(self, x0, x1, low, high) -> None:
        m = np.size(x0)
        at = slice(self.n, self.n + m)
        self.x0[at], self.x1[at], self.low[at], self.high[at] = x0, x1, low, high
        self.n += m

    def last(self):
        k = self.n - 1
        return self.x0[k], self.x1[k], self.low[k:k + 1], self.high[k:k + 1]

    def draw(self, partial=None) -> None:
        """Set each colour group's path: per lane, (x0, low), (x1, high) per bin, then NaN."""
        m = self.n
        if partial is not None:
            self.x0[m], self.x1[m], self.low[m], self.high[m] = partial
            m += 1
        if m == 0:
            for curve in self.curves:
                curve.setPath(QtGui.QPainterPath())
            return
        width = 2 * m + 1
        for curve, lanes, (xb, yb, k) in zip(self.curves, self.lane_sets, self.buffers):
            x = xb[:k * width].reshape(k, width)
            y = yb[:k * width].reshape(k, width)
            x[:, 0:2 * m:2] = self.x0[:m]
            x[:, 1:2 * m:2] = self.x1[:m]
            x[:, 2 * m] = self.x1[m - 1]
            y[:, 0:2 * m:2] = self.low[:m, lanes].T
            y[:, 1:2 * m:2] = self.high[:m, lanes].T
            y[:, 2 * m] = np.nan
            set_path(curve, xb[:k * width], yb[:k * width])

    def freeze(self, scale_x: float, scale_y: float) -> None:
        """Render the full segment's paths once into one pixmap and show that instead.

        ``scale_x``/``scale_y``: device pixels per x/y unit (``scale_y`` < 0: y points up).
        One pixmap per segment, all colours in it, is one blit of the segment's area per frame
        (a cached item per colour would be one per colour), and Qt draws it without Python.
        """
        self.draw()
        bounds = QtCore.QRectF()
        for curve in self.curves:
            bounds = bounds.united(curve.path().controlPointRect())
        pad = 2
        width = max(int(math.ceil(bounds.width() * abs(scale_x))), 1) + 2 * pad
        height = max(int(math.ceil(bounds.height() * abs(scale_y))), 1) + 2 * pad
        # Row 0 is the top: the largest y when y points up.
        top = bounds.bottom() if scale_y < 0 else bounds.top()
        image = QtGui.QImage(width, height, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(0)
        painter = QtGui.QPainter(image)
        painter.setTransform(QtGui.QTransform(scale_x, 0.0, 0.0, scale_y,
                                              pad - bounds.left() * scale_x, pad - top * scale_y))
        for curve in self.curves:
            painter.setPen(curve.pen())
            painter.drawPath(curve.path())
        painter.end()
        self.pixmap.setPixmap(QtGui.QPixmap.fromImage(image))
        self.pixmap.setPos(bounds.left() - pad / scale_x, top - pad / scale_y)
        self.pixmap.show()
        for curve in self.curves:
            curve.hide()
            curve.setPath(QtGui.QPainterPath())

    def retire(self) -> None:
        self.pixmap.hide()
        self.pixmap.setPixmap(QtGui.QPixmap())
        for curve in self.curves:
            curve.hide()


class SegmentedLanes:
    """Signal lanes in absolute time, as fixed segments (see the module docstring).

    Parameters
    ----------
    group : pg.ItemGroup
        The plot's scrolling group.
    pens : list of QPen
        One per colour group.
    lane_sets : list of slice
        Lanes (columns of the values appended) drawn by each colour group's curve.
    n_lanes : int
    segment_bins : int
    """

    def __init__(self, group, pens, lane_sets, n_lanes: int, segment_bins: int = SEGMENT_BINS):
        self.group = group
        self.pens = list(pens)
        self.lane_sets = list(lane_sets)
        self.n_lanes = n_lanes
        self.segment_bins = segment_bins
        self._closed: deque[_Segment] = deque()
        self._open: _Segment | None = None
        self._pool: list[_Segment] = []
        self._partial = None
        self._dirty = False
        self._scale = (1.0, -1.0)
        self.redraws = 0  # open-segment redraws, for tests and profiling

    def set_device_scale(self, scale_x: float, scale_y: float) -> bool:
        """Device pixels per x and y unit, for frozen segments; True if they changed (the
        caller then redraws: frozen pixmaps are at the old scale)."""
        changed = not (math.isclose(scale_x, self._scale[0], rel_tol=1e-6)
                       and math.isclose(scale_y, self._scale[1], rel_tol=1e-6))
        self._scale = (scale_x, scale_y)
        return changed

    def append(self, x0, x1, low, high) -> None:
        """Add complete bins: ``x0``/``x1`` (m,) their first/last x, ``low``/``high`` (m, n_lanes)
        their extremes in plot y."""
        i, m = 0, len(x0)
        while i < m:
            segment = self._open if self._open is not None else self._new_segment()
            take = min(segment.room, m - i)
            segment.put(x0[i:i + take], x1[i:i + take], low[i:i + take], high[i:i + take])
            i += take
            self._dirty = True
            if segment.room == 0:
                segment.freeze(*self._scale)
                self._closed.append(segment)
                self._open = None
                self._new_segment(carry=segment.last())

    def set_partial(self, partial) -> None:
        """The bin being filled, ``(x0, x1, low (n_lanes,), high (n_lanes,))`` or None."""
        if partial is None and self._partial is None:
            return
        self._partial = partial
        self._dirty = True

    def flush(self) -> None:
        """Redraw the open segment if something was added since the last flush."""
        if self._dirty and self._open is not None:
            self._open.draw(self._partial)
            self.redraws += 1
        self._dirty = False

    def trim(self, x_min: float) -> None:
        """Drop closed segments that ended before ``x_min`` (scrolled out of the view)."""
        while self._closed and self._closed[0].x_end < x_min:
            segment = self._closed.popleft()
            segment.retire()
            self._pool.append(segment)

    def reset(self) -> None:
        """Forget every bin (a rescale, a new resolution, another stream)."""
        for segment in self.segments:
            segment.retire()
            self._pool.append(segment)
        self._closed.clear()
        self._open = None
        self._partial = None
        self._dirty = False

    def set_pens(self, pens) -> None:
        """Pens of the colour groups from the next segment on (redraw to apply to all)."""
        self.pens = list(pens)
        if self._open is not None:
            for curve, pen in zip(self._open.curves, self.pens):
                curve.setPen(pen)

    @property
    def segments(self) -> list[_Segment]:
        return list(self._closed) + ([self._open] if self._open is not None else [])

    @property
    def items(self) -> list[QtWidgets.QGraphicsItem]:
        """The items showing the lanes now: a pixmap per closed segment, the open paths."""
        out = [segment.pixmap for segment in self._closed]
        if self._open is not None:
            out += self._open.curves
        return out

    def points(self) -> int:
        """Bins drawn per lane (all segments)."""
        return sum(s.n for s in self.segments)

    def x_range(self) -> tuple[float, float]:
        segments = [s for s in self.segments if s.n]
        if not segments:
            return (math.nan, math.nan)
        return (float(segments[0].x0[0]), float(segments[-1].x_end))

    def _new_segment(self, carry=None) -> _Segment:
        if self._pool:
            segment = self._pool.pop()
        else:
            segment = _Segment(self.group, self.pens, self.lane_sets, self.n_lanes,
                               self.segment_bins + 1)
        segment.restart(self.pens, carry)
        self._open = segment
        return segment


class _BinStore:
    """The display bins of the view (plus margin) in signal units, for redraws after a rescale."""

    def __init__(self, n_channels: int, capacity: int):
        self.x0 = np.empty(capacity)
        self.x1 = np.empty(capacity)
        self.low = np.empty((capacity, n_channels), dtype=np.float32)
        self.high = np.empty((capacity, n_channels), dtype=np.float32)
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, x0, x1, low, high) -> None:
        m, capacity = len(x0), len(self.x0)
        if m > capacity:
            x0, x1, low, high = x0[-capacity:], x1[-capacity:], low[-capacity:], high[-capacity:]
            m = capacity
            self.start = self.end = 0
        if self.end + m > capacity:  # move what is kept to the front (amortised O(1))
            keep = min(len(self), capacity - m)
            for a in (self.x0, self.x1, self.low, self.high):
                a[:keep] = a[self.end - keep:self.end]
            self.start, self.end = 0, keep
        at = slice(self.end, self.end + m)
        self.x0[at], self.x1[at], self.low[at], self.high[at] = x0, x1, low, high
        self.end += m

    def trim(self, x_min: float) -> None:
        self.start += int(np.searchsorted(self.x1[self.start:self.end], x_min))

    def since(self, x_min: float):
        """``(x0, x1, low, high)`` of the bins ending at or after ``x_min`` (views)."""
        first = self.start + int(np.searchsorted(self.x1[self.start:self.end], x_min))
        at = slice(first, self.end)
        return self.x0[at], self.x1[at], self.low[at], self.high[at]


def nice_scale(value: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 5, 7 (x 10^k) at or above ``value`` (> 0)."""
    decade = 10.0 ** math.floor(math.log10(value))
    for step in SCALE_STEPS:
        if step * decade >= value * (1 - 1e-9):
            return step * decade
    return 10 * decade


class StaticGrid:
    """Grid lines at the axes' ticks as one Qt path item in the view (not scrolling).

    Rebuilt only when the view's range or size changes; pyqtgraph's own grid (drawn by the
    axes) would be recomputed in Python at every paint of a scrolling plot.
    """

    def __init__(self, plot: pg.PlotItem, x: bool = True, y: bool = False):
        self.plot = plot
        self.x, self.y = x, y
        self.items = [path_item(None, pen, z=-20) for pen in GRID_PENS]
        for item in self.items:
            plot.addItem(item, ignoreBounds=True)
        plot.getViewBox().sigResized.connect(self.update)
        plot.getViewBox().sigRangeChanged.connect(self.update)

    def set_axes(self, x: bool, y: bool) -> None:
        self.x, self.y = x, y
        self.update()

    def update(self, *_) -> None:
        vb = self.plot.getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        lines = [([], []) for _ in self.items]
        for on, axis, lo, hi, size in ((self.x, "bottom", x0, x1, vb.width()),
                                       (self.y, "left", y0, y1, vb.height())):
            if not on or size <= 0 or not hi > lo:
                continue
            for level, (_, values) in enumerate(self.plot.getAxis(axis).tickValues(lo, hi, size)[:2]):
                xs, ys = lines[level]
                for v in values:
                    if axis == "bottom":
                        xs += [v, v]
                        ys += [y0, y1]
                    else:
                        xs += [x0, x1]
                        ys += [v, v]
        for item, (xs, ys) in zip(self.items, lines):
            set_path(item, xs, ys, connect="pairs")


def _new_plot(layout: pg.GraphicsLayout, row: int, title: str | None = None) -> pg.PlotItem:
    plot = layout.addPlot(row=row, col=0, title=title)
    plot.setMenuEnabled(False)
    plot.grid = StaticGrid(plot, x=True, y=False)
    plot.hideButtons()
    plot.getAxis("left").setWidth(110)
    plot.getViewBox().disableAutoRange()
    plot.getViewBox().setMouseEnabled(x=False, y=False)
    for name in ("left", "bottom"):
        # The axes (and the grid they draw) change only when the view or a scale changes:
        # Qt keeps them as pixmaps instead of replaying them at every frame.
        plot.getAxis(name).setCacheMode(_CACHED)
    return plot


class SignalPanel:
    """Raw signals (and envelopes) of one stream, from a buffer's display bins.

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
        self._scale = np.full(self.n, np.nan)
        self._center = np.zeros(self.n)
        self._lost = False
        self.plots: list[pg.PlotItem] = []
        self.groups: list[pg.ItemGroup] = []
        self.traces: list[SegmentedLanes] = []
        self._fixed_range: list[tuple[float, float] | None] = []
        if self.lanes:
            plot = _new_plot(layout, first_row, title)
            plot.setYRange(-self.n + 0.5, 0.5, padding=0.0)
            plot.getAxis("left").setStyle(tickFont=_small_font())
            self.plots.append(plot)
            # Neighbouring lanes differ in colour; all lanes of one colour are one curve.
            n_groups = min(self.n, LANE_COLORS)
            self._pens = [hairline(channel_color(g, n_groups)) for g in range(n_groups)]
            group = scrolling_group(plot)
            self.groups.append(group)
            self.traces.append(SegmentedLanes(group, self._pens,
                                              [slice(g, None, n_groups) for g in range(n_groups)],
                                              self.n))
            self._fixed_range.append((-self.n + 0.5, 0.5))
            unit = _common_unit(self.units)
            plot.setLabel("left", f"{'lane' if kind == 'raw' else 'envelope'} ({unit})" if unit else "lane")
            self._set_lane_ticks()
        else:
            self._pens = [hairline(channel_color(i, self.n)) for i in range(self.n)]
            for i in range(self.n):
                plot = _new_plot(layout, first_row + i, title if i == 0 else None)
                unit = self.units[i]
                plot.getAxis("left").setLabel(f"{self.labels[i]} ({unit})" if unit else self.labels[i])
                plot.grid.set_axes(x=True, y=True)
                fixed = CTG_RANGES.get(self.labels[i].lower()) if modality == "ctg" else None
                # A little room beyond the paper scale keeps the edge labels of stacked plots
                # (FHR 50, UC 100) apart.
                plot.setYRange(*(fixed or (-1.0, 1.0)), padding=0.03 if fixed else 0.0)
                self._fixed_range.append(fixed)
                group = scrolling_group(plot)
                self.plots.append(plot)
                self.groups.append(group)
                self.traces.append(SegmentedLanes(group, [self._pens[i]], [slice(0, 1)], 1))
        self.gaps = [SpanPool(g) for g in self.groups]
        self.banner = pg.TextItem("", color=(200, 0, 0), anchor=(0.5, 0.5))
        self.banner.setFont(_bold_font(14))
        self.plots[0].addItem(self.banner, ignoreBounds=True)
        self.banner.hide()
        self._generation = None
        self._cursor = 0
        self._store: _BinStore | None = None
        self._next_rescale = 0.0
        self._width_px = 0
        self._time: TimeMap | None = None

    # -- drawing --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget what was drawn: the next :meth:`update` re-reads every bin."""
        self._generation = None
        for trace in self.traces:
            trace.reset()
        self._store = None

    def update(self, buffer, time_map: TimeMap, now: float, view_s: float, divisor: float,
               clock_now: float) -> None:
        """One frame: take the bins ``buffer`` completed since the last frame and scroll.

        Parameters
        ----------
        buffer : biosig.stream.live.SignalBuffer
        time_map : TimeMap
            Times to x (a new map, e.g. after a view change, redraws everything).
        now : float
            LSL time at the right edge of the view.
        view_s, divisor : float
            View length in recording seconds, and seconds per axis unit.
        clock_now : float
            Monotonic time (s), for the rescale schedule.
        """
        if time_map is not self._time:
            self._time = time_map
            self.reset()
        if self._device_scale_changed():
            self._set_lane_ticks()  # a resize: as many lane labels as fit
            self._redraw()  # and the frozen segments are at the old scale
        view_x = view_s / divisor
        x_now = time_map.x_now(now)
        x_min = x_now - view_x * (1 + MARGIN)
        self._set_resolution(buffer, view_s, time_map)
        bins = buffer.read_bins(self._cursor, self._generation)
        if bins is None:
            return
        if bins.generation != self._generation:
            self.reset()
            self._generation = bins.generation
            self._store = _BinStore(self.n, 4 * max(self._width_px, 200) + 4 * SEGMENT_BINS)
        self._cursor = bins.end
        if len(bins):
            x0, x1 = time_map.x(bins.t_first), time_map.x(bins.t_last)
            keep = x1 >= x_min
            if not keep.all():
                x0, x1 = x0[keep], x1[keep]
                low, high = self._display(bins.low[keep]), self._display(bins.high[keep])
            else:
                low, high = self._display(bins.low), self._display(bins.high)
            if len(x0):
                self._store.append(x0, x1, low, high)
                # The first bins choose the scales (a redraw from the store draws them too).
                if not (np.isnan(self._scale).all() and self._rescale(x_now - view_x)):
                    self._append(x0, x1, low, high)
        self._set_partial(bins.partial, time_map)
        if clock_now >= self._next_rescale:
            self._next_rescale = clock_now + RESCALE_EVERY_S
            self._rescale(x_now - view_x)
        for trace in self.traces:
            trace.flush()
            trace.trim(x_min)
        self._store.trim(x_min)
        for group in self.groups:
            group.setPos(-x_now, 0.0)

    def _device_scale_changed(self) -> bool:
        changed = False
        for group, trace in zip(self.groups, self.traces):
            t = group.parentItem().sceneTransform()  # the view's data-to-pixel scale
            changed |= trace.set_device_scale(t.m11(), t.m22())
        return changed

    def _set_resolution(self, buffer, view_s: float, time_map: TimeMap) -> None:
        """Ask the buffer for about one bin per pixel column of the plot."""
        width = int(self.plots[0].getViewBox().width())
        if width < 50:
            width = 1000  # not laid out yet
        if abs(width - self._width_px) > 8:
            self._width_px = width
        # Samples per recording second (the buffer's period is in LSL seconds).
        rate = 1.0 / (buffer.period_s * time_map.time_scale)
        per_bin = max(1, int(round(view_s * rate / self._width_px)))
        if buffer.bin_size != per_bin:
            buffer.set_bin_size(per_bin)

    def _display(self, values: np.ndarray) -> np.ndarray:
        """Values as drawn: a CTG's FHR of 0 bpm is signal loss, not a value."""
        if self.modality != "ctg":
            return values
        out = values
        for i, label in enumerate(self.labels):
            if label.lower() == "fhr":
                if out is values:
                    out = values.copy()
                column = out[:, i]
                column[column <= 0] = np.nan
        return out

    def _lane_map(self) -> tuple[np.ndarray, np.ndarray]:
        """``gain``, ``shift``: channel ``i`` at value v is drawn at ``v * gain + shift``."""
        scale = np.where(np.isfinite(self._scale) & (self._scale > 0), self._scale, 1.0)
        offsets = -np.arange(self.n, dtype=float)
        if self.kind == "envelope":
            return 0.9 / scale, offsets - 0.45
        return 0.45 / scale, offsets - 0.45 * self._center / scale

    def _append(self, x0, x1, low, high) -> None:
        if self.lanes:
            gain, shift = self._lane_map()
            self.traces[0].append(x0, x1, low * gain + shift, high * gain + shift)
            return
        for i, trace in enumerate(self.traces):
            trace.append(x0, x1, low[:, i:i + 1], high[:, i:i + 1])

    def _set_partial(self, partial, time_map: TimeMap) -> None:
        if partial is None:
            for trace in self.traces:
                trace.set_partial(None)
            return
        t0, t1, low, high = partial
        x0, x1 = time_map.x_now(t0), time_map.x_now(t1)
        low, high = self._display(low[None])[0], self._display(high[None])[0]
        if self.lanes:
            gain, shift = self._lane_map()
            self.traces[0].set_partial((x0, x1, low * gain + shift, high * gain + shift))
            return
        for i, trace in enumerate(self.traces):
            trace.set_partial((x0, x1, low[i:i + 1], high[i:i + 1]))

    def _rescale(self, x_view_start: float) -> bool:
        """Choose each lane's scale (and centre) from what is in view; True if it redrew.

        A scale grows as soon as the signal exceeds it and shrinks only when the signal uses
        less than :data:`SHRINK_BELOW` of it, in 1-1.5-2-3-5-7 steps, so lanes do not flicker
        and a redraw is rare. A raw lane whose centre drifted by a quarter of its scale is
        recentred. Separate plots change their y range instead (no redraw).
        """
        if self._store is None or not len(self._store):
            return False
        if self.modality == "ctg" and all(r is not None for r in self._fixed_range):
            return False  # the cardiotocograph's fixed scales
        _, _, low, high = self._store.since(x_view_start)
        if not len(low):
            return False
        with np.errstate(all="ignore"):
            top, bottom = np.nanmax(high, axis=0), np.nanmin(low, axis=0)
        if self.kind == "envelope":
            center, spread = np.zeros(self.n), top
        else:
            center, spread = (top + bottom) / 2, (top - bottom) / 2
        known = np.isfinite(spread)
        spread = np.where(known & (spread > 0), spread, 1.0)
        current = self._scale
        if self.fixed_scale is not None:
            changed = current != float(self.fixed_scale)  # NaN != x: True
            scale = np.full(self.n, float(self.fixed_scale))
        else:
            changed = known & (~np.isfinite(current) | (spread > current)
                               | (spread < SHRINK_BELOW * current))
            scale = np.where(changed, [nice_scale(v) for v in spread], current)
        recentre = np.zeros(self.n, dtype=bool)
        if self.kind == "raw":
            limit = np.where(np.isfinite(scale), 0.25 * scale, np.inf)
            recentre = known & (changed | (np.abs(center - self._center) > limit))
        if not (changed.any() or recentre.any()):
            return False
        self._scale = scale
        self._center = np.where(recentre, center, self._center)
        if not self.lanes:
            for i, plot in enumerate(self.plots):
                if self._fixed_range[i] is None and np.isfinite(self._scale[i]):
                    scale = self._scale[i]
                    if self.kind == "envelope":  # non-negative
                        plot.setYRange(-0.05 * scale, 1.05 * scale, padding=0.0)
                    else:
                        plot.setYRange(self._center[i] - 1.05 * scale,
                                       self._center[i] + 1.05 * scale, padding=0.0)
            self._device_scale_changed()
            self._redraw()  # frozen segments are pixmaps at the old y scale
            return True
        self._set_lane_ticks()
        self._redraw()
        return True

    def _redraw(self) -> None:
        """Re-draw every kept bin (new lane scales, pens or device scale)."""
        if self._store is None:
            return
        for trace in self.traces:
            trace.reset()
        x0, x1, low, high = self._store.since(-math.inf)
        if len(x0):
            self._append(x0, x1, low, high)

    def _set_lane_ticks(self) -> None:
        if not self.lanes:
            return
        # Label every lane while there is room for a line of text per lane, else every k-th.
        lane_px = self.plots[0].getViewBox().height() / self.n
        every = max(1, math.ceil(LABEL_PX / lane_px)) if lane_px > 0 else 1
        ticks = []
        for i, label in enumerate(self.labels):
            if i % every:
                continue
            amp = _short_number(self._scale[i])
            ticks.append((-i, f"{label}  ±{amp}" if self.kind == "raw" else f"{label}  {amp}"))
        self.plots[0].getAxis("left").setTicks([ticks, []])

    def set_fixed_scale(self, value: float | None) -> None:
        """Fixed ± amplitude of every lane (None: auto per channel); applied at once."""
        self.fixed_scale = value
        if value is None:
            self._scale[:] = np.nan  # chosen again from the data
        self._next_rescale = 0.0  # applied at the next frame

    def set_lost(self, lost: bool, message: str = "") -> None:
        """Grey the curves and show ``message`` while the stream is lost."""
        if lost != self._lost:
            self._lost = lost
            for i, trace in enumerate(self.traces):
                pens = self._pens if self.lanes else [self._pens[i]]
                trace.set_pens([LOST_PEN] * len(pens) if lost else pens)
            self._redraw()
        if lost:
            self.banner.setText(message)
            self.banner.show()
        else:
            self.banner.hide()

    def place_banner(self, x: float) -> None:
        y_range = self.plots[0].viewRange()[1]
        self.banner.setPos(x, sum(y_range) / 2)

    def show_gaps(self, spans) -> None:
        """Shade ``spans`` ((x0, x1) in absolute x) on every plot, full height."""
        for pool, plot in zip(self.gaps, self.plots):
            y0, y1 = plot.viewRange()[1]
            pool.show(spans, y0, y1)

    # -- for tests and the window ---------------------------------------------------------------
    @property
    def items(self) -> list[QtWidgets.QGraphicsItem]:
        """Every item showing the signal now (all segments, all plots)."""
        return [item for trace in self.traces for item in trace.items]

    @property
    def pens(self) -> list[QtGui.QPen]:
        """The pens the signal is drawn with now (grey while the stream is lost)."""
        return [pen for trace in self.traces for pen in trace.pens]

    def points(self) -> int:
        """Bins drawn per lane in the first plot."""
        return self.traces[0].points()

    def visible_x_range(self) -> tuple[float, float]:
        """x span of the drawn data in view coordinates (axis units before now)."""
        x0, x1 = self.traces[0].x_range()
        shift = self.groups[0].pos().x()
        return (x0 + shift, x1 + shift)


class ScrollingTraces:
    """Values per analysis window (one column per trace) in absolute time, in frozen segments
    like the signals: a window arriving redraws only the open segment, and wide pens are
    stroked once per segment instead of at every frame.

    Parameters
    ----------
    plot : pg.PlotItem
    pens : list of QPen
        One per trace (column).
    capacity : int
        Windows kept for redraws (after a resize).
    """

    def __init__(self, plot: pg.PlotItem, pens, capacity: int = 1 << 16):
        self.plot = plot
        self.group = scrolling_group(plot)
        n = len(pens)
        self.lanes = SegmentedLanes(self.group, pens, [slice(i, i + 1) for i in range(n)], n)
        self.n = n
        self.capacity = capacity
        self.store = _BinStore(n, capacity)

    def reset(self) -> None:
        self.lanes.reset()
        self.store = _BinStore(self.n, self.capacity)

    def append(self, x, low, high=None) -> None:
        """Add windows at ``x`` (m,): ``low`` (m, n) values, ``high`` (m, n) the other end of a
        vertical tick (None: a point)."""
        high = low if high is None else high
        self.store.append(x, x, low, high)
        self.lanes.append(x, x, low, high)

    def scroll(self, x_now: float, x_min: float) -> None:
        t = self.group.parentItem().sceneTransform()
        if self.lanes.set_device_scale(t.m11(), t.m22()):
            self.lanes.reset()  # a resize: the frozen segments are at the old scale
            x0, x1, low, high = self.store.since(-math.inf)
            if len(x0):
                self.lanes.append(x0, x1, low, high)
        self.lanes.flush()
        self.lanes.trim(x_min)
        self.store.trim(x_min)
        self.group.setPos(-x_now, 0.0)

    def visible_x(self) -> np.ndarray:
        """x of the kept windows in view coordinates (axis units before now)."""
        x0, _, _, _ = self.store.since(-math.inf)
        return x0 + self.group.pos().x()

    def values(self) -> np.ndarray:
        """The kept windows' values (m, n)."""
        return self.store.since(-math.inf)[2]


class PosteriorPanel:
    """Class posteriors over time (one trace per class) and the rejection threshold."""

    def __init__(self, layout, row: int, class_names):
        self.class_names = list(class_names)
        n = len(self.class_names)
        self.plot = _new_plot(layout, row, "Class posteriors")
        self.plot.setYRange(0, 1.42, padding=0.0)  # the legend sits above p = 1
        self.plot.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)], []])
        self.plot.setLabel("left", "p(class | window)")
        self.legend = self.plot.addLegend(offset=(4, 2), colCount=min(n, 8), labelTextSize="8pt",
                                          brush=None)  # no box: the traces stay visible below it
        pens = [pg.mkPen(channel_color(i, n), width=2) for i in range(n)]
        self.traces = ScrollingTraces(self.plot, pens)
        for pen, name in zip(pens, self.class_names):
            # pyqtgraph labels are HTML: a class named "pH < 7.15" must be escaped.
            self.legend.addItem(legend_sample(pen), html.escape(str(name)))
        cache_tree(self.legend)
        self.threshold = pg.InfiniteLine(angle=0, movable=False,
                                         pen=pg.mkPen((230, 120, 0), width=1, style=QtCore.Qt.DashLine))
        self.plot.addItem(self.threshold, ignoreBounds=True)
        self.threshold.hide()

    def append(self, x: np.ndarray, posteriors: np.ndarray | None) -> None:
        """Add new windows (absolute x)."""
        if posteriors is None or posteriors.shape[1] != len(self.class_names):
            return
        self.traces.append(x, posteriors)

    def set_threshold(self, value) -> None:
        if value is None:
            self.threshold.hide()
        else:
            self.threshold.setValue(value)
            self.threshold.show()


class UncertaintyPanel:
    """Posterior entropy over time, with OOD and rejected windows marked on the time axis
    (vertical ticks; runs of flagged windows become bars)."""

    def __init__(self, layout, row: int, n_classes: int):
        self.plot = _new_plot(layout, row, "Uncertainty")
        self.max_entropy = math.log(max(n_classes, 2))
        self.plot.setYRange(0, self.max_entropy * 1.45, padding=0.0)  # legend above log C
        self.plot.setLabel("left", "entropy (nats)")
        legend = self.plot.addLegend(offset=(4, 2), colCount=3, labelTextSize="8pt",
                                     brush=None)  # no box: the traces stay visible below it
        pens = {"entropy": pg.mkPen((40, 40, 160), width=2),
                "out of distribution": pg.mkPen((220, 0, 0), width=3),
                "rejected": pg.mkPen((240, 150, 0), width=3)}
        self.traces = ScrollingTraces(self.plot, list(pens.values()))
        for name, pen in pens.items():
            legend.addItem(legend_sample(pen), name)
        cache_tree(legend)
        ceiling = pg.InfiniteLine(self.max_entropy, angle=0, movable=False,
                                  pen=pg.mkPen((120, 120, 120), style=QtCore.Qt.DotLine))
        self.plot.addItem(ceiling, ignoreBounds=True)

    def append(self, x, entropy, ood, rejected) -> None:
        """Add new windows (absolute x): entropy, and ticks where flagged."""
        top = self.max_entropy
        low = np.column_stack([entropy, np.where(ood, 0.0, np.nan),
                               np.where(rejected, 0.85 * top, np.nan)])
        high = np.column_stack([entropy, np.where(ood, 0.15 * top, np.nan),
                                np.where(rejected, top, np.nan)])
        self.traces.append(x, low, high)


#: CTG event kinds: (short label, family colour).
CTG_EVENT_STYLE = {
    "acceleration": ("A", (0, 150, 60)),
    "early_deceleration": ("ED", (220, 40, 40)),
    "late_deceleration": ("LD", (220, 40, 40)),
    "variable_deceleration": ("VD", (220, 40, 40)),
    "prolonged_deceleration": ("PD", (220, 40, 40)),
    "deceleration": ("D", (220, 40, 40)),
    "contraction": ("C", (40, 90, 220)),
    "maternal": ("M", (120, 120, 120)),
}
BASELINE_PEN = pg.mkPen((20, 20, 20), width=2)


class CTGOverlay:
    """The CTG chain's findings over the FHR and UC plots, from the session's annotations.

    The FHR baseline (a dark line), events as shaded spans labelled at the top of their plot
    (A: acceleration; ED/LD/VD/PD/D: early/late/variable/prolonged/unclassified
    deceleration, with its depth in bpm; C: contraction, on UC; M: maternal heart rate), and
    the FIGO features of the latest window as the FHR plot's title. Redrawn only when the
    annotations change (once per analysed window).
    """

    def __init__(self, fhr_plot, fhr_group, uc_plot=None, uc_group=None, layout=None,
                 legend_row: int | None = None):
        self.fhr_plot, self.uc_plot = fhr_plot, uc_plot
        self.fhr_group, self.uc_group = fhr_group, uc_group
        self.baseline = path_item(fhr_group, BASELINE_PEN, z=5)
        self.fhr_spans = SpanPool(fhr_group, z=-5)
        self.uc_spans = SpanPool(uc_group, z=-5) if uc_group is not None else None
        self.labels: list[pg.TextItem] = []
        self._brushes = {kind: pg.mkBrush(*color, 45) for kind, (_, color) in CTG_EVENT_STYLE.items()}
        self._version = None
        self._time: TimeMap | None = None
        self.shown_events: list = []
        self.legend = None
        if layout is not None and legend_row is not None:
            self.legend = layout.addLabel(_ctg_legend_html(), row=legend_row, col=0, size="9pt")
            self.legend.setMinimumWidth(0)
        self._set_title("FIGO features: waiting for the first 10-min window…<br>&nbsp;")

    def update(self, annotations, time_map: TimeMap, since: float) -> None:
        """Redraw if the annotations changed (or the time map did)."""
        if annotations.version == self._version and time_map is self._time:
            return
        self._version, self._time = annotations.version, time_map
        traces = annotations.traces()
        if "baseline" in traces:
            _, t, bpm = traces["baseline"]
            keep = t >= since
            set_path(self.baseline, time_map.x(t[keep]), bpm[keep])
        events = annotations.events(since)
        self.shown_events = events
        fhr_range = self.fhr_plot.viewRange()[1]
        on_fhr = [e for e in events if e.kind != "contraction"]
        on_uc = [e for e in events if e.kind == "contraction"] if self.uc_spans is not None else []
        self._shade(self.fhr_spans, on_fhr, fhr_range, time_map)
        if self.uc_spans is not None:
            self._shade(self.uc_spans, on_uc, self.uc_plot.viewRange()[1], time_map)
        self._label(on_fhr, on_uc, time_map)
        readings = annotations.readings()
        if "figo" in readings:
            self._set_title(_figo_html(*readings["figo"]))

    def _set_title(self, html: str) -> None:
        self.fhr_plot.setTitle(html, size="10pt")
        # The layout must not widen the plots to fit a long line: a narrow window clips it.
        self.fhr_plot.titleLabel.setMinimumWidth(0)

    def _shade(self, pool: SpanPool, events, y_range, time_map: TimeMap) -> None:
        spans = [(float(time_map.x(e.t_start)), float(time_map.x(e.t_end))) for e in events]
        pool.show(spans, y_range[0], y_range[1], [self._brushes.get(e.kind, GAP_BRUSH) for e in events])

    def _label(self, on_fhr, on_uc, time_map: TimeMap) -> None:
        """A short label at the top of each event's span; labels that would touch the one
        before them on the same plot go a text line lower (up to :data:`LABEL_ROWS`)."""
        placed = [(e, self.fhr_plot, self.fhr_group) for e in on_fhr]
        if self.uc_plot is not None:
            placed += [(e, self.uc_plot, self.uc_group) for e in on_uc]
        row_end: dict = {}  # (plot, row) -> right edge (px) of the last label in that row
        for k, (event, plot, group) in enumerate(placed):
            if k == len(self.labels):
                label = pg.TextItem("", anchor=(0.5, 0.0))
                label.setFont(_bold_font(8))
                cache_tree(label)
                self.labels.append(label)
            label = self.labels[k]
            short, color = CTG_EVENT_STYLE.get(event.kind, (event.kind[:2].upper(), (90, 90, 90)))
            if "deceleration" in event.kind and np.isfinite(event.value):
                short = f"{short} {event.value:.0f}"
            label.setText(short, color=color)
            if label.parentItem() is not group:
                label.setParentItem(group)
            vb = plot.getViewBox()
            (x0, x1), (y0, y1) = vb.viewRange()
            px_per_x = vb.width() / (x1 - x0) if x1 > x0 else 1.0
            x = float(time_map.x((event.t_start + event.t_end) / 2))
            half_px = 4 * len(short) + 3  # about half the label's width in 8 pt bold
            row = 0
            while row < LABEL_ROWS - 1 and row_end.get((id(plot), row), -math.inf) > x * px_per_x - half_px:
                row += 1
            row_end[(id(plot), row)] = x * px_per_x + half_px
            line = LABEL_PX * (y1 - y0) / vb.height() if vb.height() > 0 else 0.0
            label.setPos(x, y1 - row * line)
            label.show()
        for label in self.labels[len(placed):]:
            label.hide()

    @property
    def visible_labels(self) -> list[str]:
        return [label.toPlainText() for label in self.labels if label.isVisible()]


def _ctg_legend_html() -> str:
    def swatch(color, text):
        r, g, b = color
        return f'<span style="color: rgb({r},{g},{b})">■</span> {text}'

    line = " &nbsp; ".join([
        '<span style="color: rgb(20,20,20)"><b>━</b></span> FHR baseline',
        swatch((0, 150, 60), "A acceleration"),
        swatch((40, 90, 220), "C contraction"),
        swatch((120, 120, 120), "M maternal heart rate"),
    ])
    return line + "<br>" + swatch((220, 40, 40), "decelerations, with depth (bpm): ED early, "
                                                 "LD late, VD variable, PD prolonged, D other")


def _figo_html(t_end: float, features: dict) -> str:
    """One line of the latest window's FIGO features."""
    def num(name, spec, unit=""):
        value = features.get(name)
        if value is None or not np.isfinite(value):
            return "–"
        return f"{value:{spec}}{unit}"

    window_min = features.get("window_s", 600.0) / 60.0
    decels = num("decelerations", ".0f")
    kinds = [(name, key) for name, key in (("early", "early_decels"), ("late", "late_decels"),
                                           ("variable", "variable_decels"),
                                           ("prolonged", "prolonged_decels"))
             if np.isfinite(features.get(key, np.nan)) and features.get(key, 0) > 0]
    if kinds:
        decels += " (" + ", ".join(f"{features[key]:.0f} {name}" for name, key in kinds) + ")"
    first = [
        f"baseline {num('baseline', '.0f', ' bpm')}",
        f"STV {num('stv', '.1f', ' ms')}",
        f"LTV {num('ltv', '.0f', ' bpm')}",
    ]
    second = [
        f"accelerations {num('accelerations', '.0f')}",
        f"decelerations {decels}",
        f"contractions {num('contractions', '.0f')}",
        f"signal loss {num('loss', '.0%')}",
    ]
    for name in ("tachycardia", "bradycardia"):
        value = features.get(name)
        if value is not None and np.isfinite(value) and value > 0:
            second.append(f"{name} {value:.0%}")
    return (f"<b>FIGO features, last {window_min:g}-min window:</b> " + " · ".join(first)
            + "<br>" + " · ".join(second))


class ExplanationPanel:
    """The MI heat map (inputs x classes) beside the current class's prototype and the current
    input, row for row (same feature on the same line), in standard units of the training data.

    ``class_names`` are shown (the model card's labels); ``class_keys`` are the model's own
    class names, under which the explainer publishes prototypes (default: the shown names).
    """

    def __init__(self, layout: pg.GraphicsLayout, feature_names, class_names, prior_mean=None,
                 prior_std=None, class_keys=None):
        self.feature_names = list(feature_names)
        self.class_names = list(class_names)
        self.class_keys = list(class_keys) if class_keys is not None else list(self.class_names)
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
        short = short_labels(self.class_names)
        self.heat.getAxis("bottom").setTicks([[(i + 0.5, c) for i, c in enumerate(short)], []])
        self.heat.setLabel("bottom", "class" if short == self.class_names else "class (initials)")
        every = max(1, math.ceil(n_f / 48))
        left = self.heat.getAxis("left")
        left.setStyle(tickFont=_small_font(7))
        left.setTicks([[(i + 0.5, name) for i, name in enumerate(self.feature_names)
                        if i % every == 0], []])
        for name in ("left", "bottom"):
            self.heat.getAxis(name).setCacheMode(_CACHED)
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
        self._features = None
        self.mi_updates = 0

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
        self.mi_updates += 1

    def update_prototype(self, prototypes, class_index: int, features) -> None:
        """Bars: the prototype of class ``class_index``; dots: the current feature vector
        (each redrawn only when it changed)."""
        if (features is not None and len(features) == len(self._rows)
                and features is not self._features):
            self._features = features
            self.current.setData(self._z(features), self._rows)
        if prototypes is None or class_index < 0 or class_index >= len(self.class_names):
            return
        key = (id(prototypes), class_index)
        if key == self._proto_key:
            return
        payload = prototypes.payload
        prototype = payload.get(self.class_keys[class_index])
        if prototype is None and len(payload) == len(self.class_names):
            prototype = list(payload.values())[class_index]  # published in the model's order
        if prototype is None:
            return
        self._proto_key = key
        self.bars.setOpts(width=self._z(prototype.mean))
        # The class goes in the axis label: a long name in the title would run into the MI's.
        self.proto.setLabel("bottom", f"bars: {html.escape(str(self.class_names[class_index]))}, dots: input"
                            + (" (z)" if self.prior_mean is not None else ""))


# -- helpers ---------------------------------------------------------------------------------


def short_labels(names, max_chars: int = 5) -> list[str]:
    """Class names short enough for a narrow axis: kept if all fit in ``max_chars``, else a
    multi-word name becomes its initials ("wrist flexion" -> "WF"), a long word its first
    four letters."""
    names = [str(n) for n in names]
    if all(len(n) <= max_chars for n in names):
        return names
    out = []
    for name in names:
        words = name.replace("_", " ").replace("-", " ").split()
        if len(words) > 1:
            out.append("".join(w[0] for w in words).upper())
        else:
            out.append(name if len(name) <= max_chars else name[:4])
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
