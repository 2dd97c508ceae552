"""``biosig selftest``: measure the live path's latency on this machine, with a pass/fail."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from biosig._checks import BiosigError, check_positive

DESCRIPTION = """\
Measure, on this machine, how long after a window's last sample arrives its posterior leaves
biosig's results LSL outlet, and whether the whole controller delay fits the 100-125 ms optimal
myoelectric controller delay (Farrell & Weir 2007).

By default the bundled Myo recording is replayed at real time on a loopback LSL outlet (in 5 ms
chunks, as a device sends them) through the bundled Johnson SU model: inlet -> pipeline ->
model -> results outlet, all on LSL, timed with pylsl.local_clock.

Reported (p50/p95/p99/max):
  end-to-end   replay: from the push of the chunk holding a window's last sample to the push of
               its posterior on the results outlet; --stream: from that sample's own timestamp
               (the source's clock mapped onto this one), so the device's delays are included
  processing   inside the pipeline: chunk received -> results ready

Controller delay budget = window + hop (+ smoothing) + end-to-end p99, against 125 ms.
Exit status 0 when the budget and the 5 ms p99 goal both pass and every posterior sent was
received, 1 otherwise, 2 on a usage error.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "selftest",
        help="latency of the live path (p50/p95/p99/max) and controller delay pass/fail",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stream", metavar="NAME", help="attach to this live LSL stream instead of replaying")
    where.add_argument("--replay", metavar="FILE", help="recording to replay (default: the bundled Myo session)")
    parser.add_argument("--model", metavar="M.onnx", help="model (default: the bundled Johnson SU model)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds to measure (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds left out at the start (default 1)")
    parser.add_argument("--chunk", type=float, default=0.005, help="replay chunk length in s (default 0.005)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.cli.demo import DEFAULT_MODEL, DEFAULT_RECORDING, bundled_models_dir, bundled_recordings_dir
    from biosig.inference import OnnxModel
    from biosig.selftest import LatencySelftest

    seconds = check_positive(args.seconds, "--seconds")
    model_path = Path(args.model) if args.model else bundled_models_dir() / DEFAULT_MODEL
    if not model_path.exists():
        raise BiosigError(f"model not found: {model_path}")
    model = OnnxModel(model_path)
    test = LatencySelftest(model, seconds=seconds, warmup_s=args.warmup, chunk_s=args.chunk)
    progress = _ProgressBar(disable=args.json)
    if args.stream:
        report = test.run_stream(args.stream, progress=progress)
    else:
        from biosig.io import read_recording

        path = Path(args.replay) if args.replay else bundled_recordings_dir() / DEFAULT_RECORDING
        stream = read_recording(path).signal()
        model.check_recording(stream)
        if seconds > stream.duration and not args.json:
            print(f"{path.name} holds {stream.duration:.1f} s: it is looped")
        report = test.run_replay(stream, str(path), progress=progress)
    progress.close()
    if report.n_windows == 0:
        raise BiosigError(f"no window was classified in {seconds:g} s: is the stream sending?")
    print(json.dumps(report.to_dict()) if args.json else report.format_table())
    return 0 if report.passed else 1


class _ProgressBar:
    """A tqdm bar of samples measured, fed by the self-test's progress callback."""

    def __init__(self, disable: bool):
        self.disable = disable
        self._bar = None

    def __call__(self, done: int, total) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="samples", desc="measuring", leave=False,
                             disable=self.disable)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
