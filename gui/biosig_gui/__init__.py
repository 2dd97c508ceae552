"""The biosig live GUI (PySide6 + pyqtgraph), a thin layer over biosig.stream.pipeline."""
