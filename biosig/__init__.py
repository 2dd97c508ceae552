"""biosig: real-time biosignal classification with probabilistic, explainable networks.

The core package imports neither Qt nor torch, so the live path starts fast.
"""

from biosig._checks import BiosigError
from biosig.io.recording import Markers, Recording, Stream

__version__ = "0.1.0"

__all__ = ["BiosigError", "Markers", "Recording", "Stream", "__version__"]
