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

#: Bundled recordings, relative to the repository / installed data root.
DEFAULT_RECORDING = "myo_12345-1.xdf"


def bundled_recordings_dir() -> Path:
    """The ``recordings/`` folder of a source checkout (editable install)."""
    return Path(__file__).resolve().parents[2] / "recordings"


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
    recording = read_recording(path)
    stream = recording.signal()
    n = min(stream.n_samples, int(round(seconds * stream.srate)))
    clip = stream.pick_channels(stream.channel_labels)
    clip.data, clip.timestamps = clip.data[:n], clip.timestamps[:n]
    clip.name = f"{stream.name}-demo-{np.random.default_rng().integers(1 << 30):x}"
    print(f"replaying {n / stream.srate:.1f} s of {stream!r} at {speed:g}x as LSL stream {clip.name!r}")

    player = Player(Recording(streams={clip.name: clip}), speed=speed)
    sink = CollectSink()
    pipeline = Pipeline(LSLSource(Inlet(name=clip.name)), sinks=[sink])
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
    offline = process_recording(clip, pipeline.config)
    return _report(pipeline, live, offline, n)


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
