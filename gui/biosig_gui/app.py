"""Start the live window: the Qt application, the first source, and the headless screenshot mode."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from biosig._checks import BiosigError

logger = logging.getLogger(__name__)


def make_app(headless: bool = False):
    """The QApplication (created once), with pyqtgraph's light theme.

    ``headless`` selects Qt's offscreen platform unless a platform was chosen already; it must
    be decided before the first QApplication exists.
    """
    if headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6 import QtWidgets

    # Qt's raster engine, no anti-aliasing: see biosig_gui.plots for how frames stay cheap.
    pg.setConfigOptions(background="w", foreground="k", antialias=False, useOpenGL=False)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("biosig")
    check_binding_refcounts()
    return app


def check_binding_refcounts() -> None:
    """Refuse a Qt binding that drops a reference to None on every void call.

    PySide6 6.12.0 on Python 3.11 does (None is not immortal before 3.12): a live window makes
    thousands of such calls a second and the interpreter aborts within seconds
    ("deallocating None"). Measured here rather than matched on version numbers.
    """
    from PySide6 import QtCore

    probe = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("biosig")
    if sys.getrefcount(None) < before - 32:
        import PySide6

        raise BiosigError(
            f"PySide6 {PySide6.__version__} loses a reference to None on every call under "
            f"Python {sys.version_info.major}.{sys.version_info.minor} and would crash the "
            'window; pip install "PySide6-Essentials!=6.12.0" (6.11.2 works)'
        )


def open_window(options, *, size=(1600, 1000)):
    """Create and show a :class:`~biosig_gui.window.MainWindow` attached to ``options``' source."""
    from biosig_gui.window import MainWindow

    window = MainWindow(options)
    window.resize(*size)
    window.show()
    if options.replay:
        window.start_replay(options.replay, speed=options.speed, start_s=options.start_s,
                            n_channels=options.n_channels)
    elif options.stream or options.stream_type:
        window.attach(name=options.stream, type=options.stream_type)
    window.resolve_streams()
    return window


def run(options, *, screenshot=None, quit_after=None, size=(1600, 1000)) -> int:
    """Run the window until it is closed, or for ``quit_after`` seconds (then save
    ``screenshot``, a PNG of the whole window, if given). Returns the exit code."""
    from PySide6 import QtCore

    if screenshot is not None:
        screenshot = Path(screenshot)
        if screenshot.suffix.lower() != ".png":
            raise BiosigError(f"--screenshot must name a .png file, got {screenshot}")
        if not screenshot.parent.is_dir():
            raise BiosigError(f"folder of --screenshot does not exist: {screenshot.parent}")
    app = make_app(headless=screenshot is not None)
    window = open_window(options, size=size)
    outcome = {"code": 0}
    if quit_after is not None:
        def finish():
            if screenshot is not None:
                outcome["code"] = 0 if save_screenshot(window, screenshot) else 1
            window.shutdown()
            app.quit()

        QtCore.QTimer.singleShot(int(quit_after * 1000), finish)
    try:
        app.exec()
    finally:
        window.shutdown()
    return outcome["code"]


def save_screenshot(window, path) -> bool:
    """Render the whole window to a PNG at ``path`` (written atomically); True on success."""
    window.refresh()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    ok = window.grab().save(str(tmp), "PNG")
    if ok:
        os.replace(tmp, path)
        logger.info("screenshot saved to %s", path)
    else:
        logger.error("could not write the screenshot %s", path)
    return ok
