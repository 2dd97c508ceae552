"""Probabilistic classifiers in torch, exported to ONNX for the live path.

- :class:`JSUClassifier`: the Johnson SU network, ``variant="shared"`` (convex, default) or
  ``"full"`` (class-specific translations) — :mod:`biosig.nets.jsu`;
- :class:`SDGMClassifier`: sparse discriminative Gaussian mixture, stand-alone or as the last
  layer of a small MLP — :mod:`biosig.nets.sdgm`;
- :class:`JSUSDGMClassifier`: a Johnson SU translation layer feeding an SDGM head —
  :mod:`biosig.nets.jsu_sdgm`;
- :class:`LDAClassifier`, :class:`MLPClassifier`: baselines — :mod:`biosig.nets.baselines`;
- :func:`export_onnx`: one ONNX file per model — :mod:`biosig.nets.export`.

This package imports torch; the live path (``biosig.stream``, ``biosig.dsp``, ``biosig.io``) only
runs the exported ONNX files and never imports it.
"""

from biosig.nets.estimators import (
    JSUClassifier,
    JSUSDGMClassifier,
    LDAClassifier,
    MLPClassifier,
    SDGMClassifier,
)
from biosig.nets.export import export_onnx

__all__ = [
    "JSUClassifier",
    "JSUSDGMClassifier",
    "LDAClassifier",
    "MLPClassifier",
    "SDGMClassifier",
    "export_onnx",
]
