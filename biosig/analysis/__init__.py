"""Offline batch analysis: many recordings through a model, with results, summaries and a report.

``biosig analyze`` is the command; the pieces are:

- :mod:`~biosig.analysis.batch`: one recording through the live path's objects, offline, with
  large onnxruntime batches (:func:`analyze_recording`);
- :mod:`~biosig.analysis.quality`: signal-quality shares (non-finite, clipped, flat, dropped);
- :mod:`~biosig.analysis.summary`: per-recording summaries, their aggregate, the table;
- :mod:`~biosig.analysis.output`: the output folder, atomic writes, completion markers;
- :mod:`~biosig.analysis.runner`: the loop over recordings, here, in a process pool or on a
  Dask cluster (:func:`run_analysis`);
- :mod:`~biosig.analysis.report`: the self-contained HTML report.

Imports neither Qt nor torch (nor Dask, until a scheduler is named).
"""

from biosig.analysis.batch import (
    ModelSettings,
    RecordingFailure,
    RecordingResult,
    RecordingTask,
    analyze_recording,
    results_table,
)
from biosig.analysis.quality import signal_quality
from biosig.analysis.runner import AnalysisRun, run_analysis

__all__ = [
    "AnalysisRun",
    "ModelSettings",
    "RecordingFailure",
    "RecordingResult",
    "RecordingTask",
    "analyze_recording",
    "results_table",
    "run_analysis",
    "signal_quality",
]
