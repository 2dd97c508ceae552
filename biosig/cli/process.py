"""``biosig process``: run the preprocessing, windowing and feature pipeline on a file or stream."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from biosig._checks import BiosigError, check_positive

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Run biosig's streaming pipeline (filters, envelopes, windows, features) and write one row per
window to a CSV file: t_end (timestamp of the window's last sample, s), flagged (window held
non-finite samples, or a clipped or flat channel; the column 'quality' says which), label (from the recording's markers, when it has them) and the features
("<feature>:<channel>").

On a file, the pipeline runs offline in one pass; the results are identical to what the live
path computes on the same samples. With --lsl-name/--lsl-type it attaches to a live LSL stream
and runs until --duration has passed or Ctrl-C.

Settings come from --config (a TOML file with [preprocess], [window] and [features] tables)
or the default for the stream's rate and type; --window and --hop override the window.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "process",
        help="compute per-window features from a recording or a live stream",
        description=DESCRIPTION,
        formatter_class=_raw_formatter(),
    )
    parser.add_argument("input", nargs="?", help="recording (XDF, WFDB .hea, Myo .txt or session folder, CSV)")
    parser.add_argument("--out", required=True, help="output CSV file (refused if it exists, unless --overwrite)")
    parser.add_argument("--model", help="trained model (.onnx): adds posteriors, entropy, OOD flag; its settings replace --config")
    parser.add_argument("--publish", metavar="NAME", help="also publish results on an LSL outlet of this name (live mode)")
    parser.add_argument("--config", help="pipeline configuration (TOML)")
    parser.add_argument("--stream", help="signal stream to use in a multi-stream recording")
    parser.add_argument("--lsl-name", help="attach to the live LSL stream with this name")
    parser.add_argument("--lsl-type", help="attach to the live LSL stream with this type (e.g. EMG)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to record from a live stream (default 10)")
    parser.add_argument("--window", type=float, help="window length in s")
    parser.add_argument("--hop", type=float, help="window hop in s")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(func=run)


def _raw_formatter():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _load_model(args):
    if not args.model:
        return None
    from biosig.inference import OnnxModel

    return OnnxModel(args.model)


def _config_for(args, stream_srate: float, stream_type: str, model=None):
    from biosig.config import PipelineConfig, load_config

    if model is not None:
        if args.config:
            raise BiosigError("--model carries its own pipeline settings; leave out --config")
        config = model.pipeline_config()
    elif args.config:
        config = load_config(args.config)
    else:
        config = PipelineConfig.for_rate(stream_srate, modality=stream_type)
    if args.window is not None:
        config.window.length_s = check_positive(args.window, "--window")
    if args.hop is not None:
        config.window.hop_s = check_positive(args.hop, "--hop")
    config.validate(stream_srate)
    return config


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise BiosigError(f"{out} exists; choose another --out or pass --overwrite")
    live = args.lsl_name is not None or args.lsl_type is not None
    if live == (args.input is not None):
        raise BiosigError("give either an INPUT file or --lsl-name/--lsl-type, not both or neither")
    if live:
        return _run_live(args, out)
    return _run_file(args, out)


def _run_file(args, out: Path) -> int:
    from biosig.io import read_recording
    from biosig.stream.pipeline import process_recording
    from biosig.stream.sinks import write_results_csv

    model = _load_model(args)
    recording = read_recording(args.input)
    stream = recording.signal(args.stream)
    if model is not None:
        model.check_recording(stream)
    config = _config_for(args, stream.srate, stream.type, model)
    started = time.perf_counter()
    results = process_recording(stream, config, classifier=model)
    elapsed = time.perf_counter() - started
    markers = recording.labels()
    labels = markers.label_at(results.t_end) if markers is not None else None
    write_results_csv(results, out, labels=labels)
    print(
        f"{len(results)} windows x {results.features.shape[1]} features from {stream.name!r} "
        f"({stream.duration:.1f} s, {stream.n_channels} ch @ {stream.srate:g} Hz) in {elapsed:.2f} s "
        f"-> {out}"
    )
    if results.flagged.any():
        print(f"{int(results.flagged.sum())} windows flagged: non-finite samples, clipped or flat "
              f"channels (columns 'flagged', 'quality')")
    return 0


def _run_live(args, out: Path) -> int:
    from biosig.stream.inlet import Inlet
    from biosig.stream.pipeline import Pipeline
    from biosig.stream.sinks import CSVSink
    from biosig.stream.sources import LSLSource

    duration = check_positive(args.duration, "--duration")
    model = _load_model(args)
    inlet = Inlet(name=args.lsl_name, type=args.lsl_type)
    source = LSLSource(inlet)
    source.open()
    if model is not None:
        model.check_stream(inlet.srate, inlet.channel_labels)
    config = _config_for(args, inlet.srate, inlet.type, model)
    sink = CSVSink(out, overwrite=args.overwrite)
    sinks = [sink]
    if args.publish:
        if model is None:
            raise BiosigError("--publish sends posteriors: it needs --model")
        from biosig.stream.sinks import LSLResultsSink

        sinks.append(LSLResultsSink(list(model.classes_), name=args.publish))
    pipeline = Pipeline(source, config, classifier=model, sinks=sinks)
    print(f"attached to {inlet!r}; recording features for {duration:g} s (Ctrl-C stops)")
    try:
        pipeline.start()
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and pipeline.running:
            time.sleep(0.1)
    except KeyboardInterrupt:
        logger.info("interrupted; closing the output")
    finally:
        pipeline.stop()
        sink.close()
    stats = pipeline.stats
    p50, p99 = stats.latency_percentiles()
    print(
        f"{stats.windows} windows from {stats.samples_in} samples -> {out}; "
        f"dropped chunks {stats.chunks_dropped}, non-finite samples {stats.nonfinite_samples}, "
        f"latency p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
    )
    return 1 if stats.error else 0
