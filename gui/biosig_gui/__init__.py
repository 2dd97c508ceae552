"""The biosig live GUI (PySide6 + pyqtgraph), a thin layer over biosig.stream.pipeline.

:mod:`biosig_gui.window` holds the main window, :mod:`biosig_gui.plots` its plot panels and
:mod:`biosig_gui.app` the application start-up (``biosig gui``). The state it shows lives in
:mod:`biosig.stream.live` (no Qt), filled by the pipeline's threads.
"""

from biosig_gui.window import GuiOptions, MainWindow

__all__ = ["GuiOptions", "MainWindow"]
