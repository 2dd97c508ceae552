"""``biosig demo``: the whole spine on a bundled recording, no sensor needed.

It replays a bundled recording as a live LSL stream (as a sensor would send it), attaches
biosig's inlet and pipeline to that stream, and at the end checks that the live results equal
the offline pipeline run on the file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_positive

logger = logging.getLogger(__name__)

#: Bundled recording and model, relative to the source checkout (editable install).
DEFAULT_RECORDING = "myo_12345-1.xdf"
DEFAULT_MODEL = "myo-12345-jsu.onnx"


def bundled_recordings_dir() -> Path:
    """The ``recordings/`` folder of a source checkout (editable install)."""
    return Path(__file__).resolve().parents[2] / "recordings"


def bundled_models_dir() -> Path:
    """The ``models/`` folder of a source checkout (editable install)."""
    return Path(__file__).resolve().parents[2] / "models"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="replay a bundled recording over LSL and run the live pipeline on it",
        description=(
            "Replays a bundled recording (default: a Myo armband session, 8 ch EMG @ 200 Hz) as "
            "a live LSL stream, runs biosig's live pipeline on that stream (inlet, filters, "
            "envelopes, windows, features), reports throughput, latency and sample accounting, "
            "and checks that the live features equal the offline pipeline's on the same file."
        ),
    )
    parser.add_argument("recording", nargs="?", help="recording to replay (default: bundled Myo session)")
    parser.add_argument("--model", help="model (.onnx) for the inference slot (default: the bundled Johnson SU model)")
    parser.add_argument("--no-model", action="store_true", help="features only, no classifier")
    parser.add_argument("--start", type=float, default=60.0,
                        help="where to start in the recording, s (default 60: rest/wrist-flexion cues)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of recording to replay (default 20)")
    parser.add_argument("--speed", type=float, default=4.0, help="replay speed multiple (default 4x real time)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.io import read_recording
    from biosig.io.recording import Recording
    from biosig.stream.inlet import Inlet
    from biosig.stream.pipeline import CollectSink, Pipeline, process_recording
    from biosig.stream.replay import Player
    from biosig.stream.sources import LSLSource

    path = Path(args.recording) if args.recording else bundled_recordings_dir() / DEFAULT_RECORDING
    if not path.exists():
        raise BiosigError(f"recording not found: {path}")
    seconds = check_positive(args.seconds, "--seconds")
    speed = check_positive(args.speed, "--speed")
    start = check_positive(args.start, "--start", allow_zero=True)
    model = None if args.no_model else _load_model(args.model)
    recording = read_recording(path)
    stream = recording.signal()
    first = min(int(round(start * stream.srate)), max(stream.n_samples - 1, 0))
    n = min(stream.n_samples - first, int(round(seconds * stream.srate)))
    clip = stream.pick_channels(stream.channel_labels)
    clip.data, clip.timestamps = clip.data[first:first + n], clip.timestamps[first:first + n]
    clip.name = f"{stream.name}-demo-{np.random.default_rng().integers(1 << 30):x}"
    print(f"replaying {n / stream.srate:.1f} s of {stream!r} at {speed:g}x as LSL stream {clip.name!r}")

    player = Player(Recording(streams={clip.name: clip}), speed=speed)
    sink = CollectSink()
    pipeline = Pipeline(LSLSource(Inlet(name=clip.name)), classifier=model, sinks=[sink])
    if model is not None:
        print(f"classifier: {model!r}")
    player.open()  # outlets visible, nothing sent until the pipeline listens
    try:
        pipeline.start()
        if not player.wait_for_consumers(5.0):
            raise BiosigError("the pipeline did not subscribe to the replayed stream within 5 s")
        player.start()
        _progress(player, pipeline, n)
        time.sleep(0.5)  # the last chunks are in flight after the player finishes
    finally:
        pipeline.stop()
        player.stop()
    live = sink.results()
    offline = process_recording(clip, pipeline.config, classifier=model)
    code = _report(pipeline, live, offline, n)
    if model is not None:
        _report_decisions(live, offline, recording.labels())
    return code


def _load_model(path):
    from biosig.inference import OnnxModel

    if path is None:
        default = bundled_models_dir() / DEFAULT_MODEL
        if not default.exists():
            logger.warning("no bundled model at %s: features only", default)
            return None
        path = default
    return OnnxModel(path)


def _report_decisions(live, offline, markers) -> None:
    names = live.class_names
    labels = markers.label_at(offline.t_end) if markers is not None else None
    if labels is not None:
        truth = np.asarray(labels, dtype=str)
        decided = offline.predicted >= 0
        hits = np.asarray(names, dtype=str)[offline.predicted[decided]] == truth[decided]
        print(f"decisions vs the recording's labels: {hits.mean():.3f} accuracy over "
              f"{decided.sum()} windows (this model was trained on this session)")
    same = np.array_equal(live.predicted, offline.predicted)
    print(f"live decisions equal offline decisions: {'yes' if same else 'NO'}; "
          f"mean entropy {np.nanmean(live.entropy):.3f} nats; "
          f"OOD windows {int(np.sum(live.ood_flag)) if live.ood_flag is not None else 0}")


def _progress(player, pipeline, n_samples: int) -> None:
    from tqdm import tqdm

    with tqdm(total=n_samples, unit="samples", desc="live", leave=False) as bar:
        while player.is_alive:
            bar.update(pipeline.stats.samples_in - bar.n)
            time.sleep(0.1)
        bar.update(pipeline.stats.samples_in - bar.n)


def _report(pipeline, live, offline, n_sent: int) -> int:
    stats = pipeline.stats
    p50, p99 = stats.latency_percentiles()
    same = len(live) == len(offline) and np.allclose(live.features, offline.features, atol=1e-9, rtol=0)
    print(f"samples sent {n_sent}, received {stats.samples_in}, dropped chunks {stats.chunks_dropped}")
    print(f"windows {stats.windows} ({len(live.feature_names)} features each), stale {stats.windows_skipped}")
    print(f"processing latency p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
    print(f"live features equal offline features: {'yes' if same else 'NO'}")
    return 0 if same and stats.samples_in == n_sent else 1
