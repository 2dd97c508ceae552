"""Where ``biosig analyze`` spends its time on one recording, step by step.

Times the steps of :func:`biosig.analysis.batch.analyze_recording` on one recording (default:
the bundled Myo session with the bundled SDGM model), in one process, warm, best of
``--repeats`` rounds, and two of them against the way they were done before, measured in the
same rounds:

- reading the XDF file: biosig's in-memory parser of numeric Samples chunks
  (:mod:`biosig.io._xdf_samples`) against pyxdf alone;
- writing the per-window table: Parquet with dictionary encoding for the text columns only
  against dictionary encoding for every column (pyarrow's default), both zstd-compressed.

Run::

    python benchmarks/analysis_per_recording.py [--model M.onnx] [--recording R.xdf]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


READ = "read XDF (in-memory samples parser)"
READ_BEFORE = "read XDF (pyxdf alone; before)"
WINDOWS = "filters, features, quality, network"
SUMMARY = "table, signal-quality shares, summary"
WRITE = "write Parquet (dictionary for text only)"
WRITE_BEFORE = "write Parquet (dictionary for all; before)"


def step_functions(model_path: Path, recording_path: Path, scratch: Path) -> dict:
    """``name -> callable`` for each step; each call does the step once."""
    import pyarrow.parquet as pq

    from biosig.analysis.batch import (
        ModelSettings,
        chunk_samples,
        load_model,
        results_table,
        run_windows,
        window_labels,
    )
    from biosig.analysis.output import atomic_write_table
    from biosig.analysis.quality import signal_quality
    from biosig.analysis.summary import recording_summary
    from biosig.io import read_recording
    from biosig.io import xdf as xdf_module
    from biosig.stream.pipeline import StreamProcessor

    model = load_model(model_path, ModelSettings())
    recording = read_recording(recording_path)
    stream = model.check_recording(recording)
    config = model.pipeline_config()
    state = {}

    def read_in_memory():
        read_recording(recording_path)

    def read_pyxdf_alone():
        limit = xdf_module._IN_MEMORY_BYTES
        xdf_module._IN_MEMORY_BYTES = 0
        try:
            read_recording(recording_path)
        finally:
            xdf_module._IN_MEMORY_BYTES = limit

    def windows():
        processor = StreamProcessor(config, stream.srate, stream.channel_labels, model,
                                    channel_format=stream.channel_format)
        state["processor"] = processor
        state["results"] = run_windows(processor, stream,
                                       chunk_samples(config, stream.srate, 4096))

    def table_and_summary():
        results, processor = state["results"], state["processor"]
        labels = window_labels(recording, results, config, stream.srate)
        state["table"] = results_table(results, labels)
        quality = signal_quality(stream, processor.channel_labels)
        recording_summary("r", recording_path, model, stream, results, labels, quality,
                          elapsed_s=1.0, n_nonfinite=processor.n_nonfinite)

    def write_text_dictionary():
        atomic_write_table(scratch / "a.parquet", state["table"])

    def write_all_dictionary():
        path = scratch / "b.parquet"
        pq.write_table(state["table"], path, compression="zstd")
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())

    return {READ: read_in_memory, READ_BEFORE: read_pyxdf_alone, WINDOWS: windows,
            SUMMARY: table_and_summary, WRITE: write_text_dictionary,
            WRITE_BEFORE: write_all_dictionary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "myo-12345-sdgm.onnx")
    parser.add_argument("--recording", type=Path,
                        default=REPO / "recordings" / "myo_12345-1.xdf")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        steps = step_functions(args.model, args.recording, Path(scratch))
        for step in steps.values():  # warm: caches, compiled loops, imports
            step()
        best = dict.fromkeys(steps, float("inf"))
        for _ in range(args.repeats):
            for name, step in steps.items():
                started = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - started)
    print(f"{args.recording.name} with {args.model.name}; best of {args.repeats} rounds, "
          "the steps in turn")
    for name, seconds in best.items():
        print(f"{name:45s} {seconds * 1e3:8.1f} ms")
    total_now = sum(best[n] for n in (READ, WINDOWS, SUMMARY, WRITE))
    total_before = sum(best[n] for n in (READ_BEFORE, WINDOWS, SUMMARY, WRITE_BEFORE))
    print(f"{'per recording, now':45s} {total_now * 1e3:8.1f} ms")
    print(f"{'per recording, reading and writing as before':45s} {total_before * 1e3:8.1f} ms")
    print(f"ratios: read {best[READ_BEFORE] / best[READ]:.1f}x, "
          f"write {best[WRITE_BEFORE] / best[WRITE]:.1f}x, "
          f"per recording {total_before / total_now:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
