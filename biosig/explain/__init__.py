"""Explanations of biosig models: which inputs each output depends on (METHODS.md §5-6).

Imports neither torch nor Qt: the explainers run in background workers (a thread or a process) of
the live path.
"""

from biosig.explain.mutual_info import (
    MIWithCI,
    ModelMIResult,
    ModelMITracker,
    class_mutual_information,
    model_mutual_information,
    mutual_information,
    predictive_class_information,
)

__all__ = [
    "MIWithCI",
    "ModelMIResult",
    "ModelMITracker",
    "class_mutual_information",
    "model_mutual_information",
    "mutual_information",
    "predictive_class_information",
]
from biosig.explain.inverse import Prototype, inverse_inference, prototypes  # noqa: E402

__all__ += ["Prototype", "inverse_inference", "prototypes"]
