"""``biosig replay``: publish a recording's streams on LSL, at real time or faster."""

from __future__ import annotations

import logging
import sys

from biosig._checks import check_existing_file, check_positive

logger = logging.getLogger(__name__)

#: Seconds between two progress-bar updates.
PROGRESS_INTERVAL_S = 0.1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recording as live LSL streams",
        description=(
            "Read a recording (XDF, WFDB, Myo text, CSV) and publish each of its streams, "
            "signals and markers, as a Lab Streaming Layer outlet with the recorded name, "
            "type, channel labels, nominal rate and value format. Samples are sent at their "
            "recorded pace times --speed, with timestamps on this machine's LSL clock, so any "
            "LSL program (biosig process, a viewer, LabRecorder) sees them as a live device. "
            "Stop with Ctrl-C."
        ),
        epilog=(
            "example: biosig replay session.xdf --speed 4 --stream MyoEMG --stream labels"
        ),
    )
    parser.add_argument("file", metavar="FILE", help="recording to replay")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="playback speed multiple, > 0 (default 1: real time; 10: ten times faster)",
    )
    parser.add_argument(
        "--loop", action="store_true", help="start over at the end, until interrupted"
    )
    parser.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        dest="streams",
        help="publish only this stream (signal or marker); repeat for several (default: all)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help=(
            "wait up to S seconds for a program to subscribe to every published stream "
            "before playing, so it misses no sample (default 0: play at once)"
        ),
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.stream.replay import Player

    speed = check_positive(args.speed, "--speed")
    wait = check_positive(args.wait, "--wait", allow_zero=True)
    path = check_existing_file(args.file)
    recording = _read_recording(path)
    player = Player(recording, speed=speed, loop=args.loop, streams=args.streams)
    try:
        player.open()
        print(describe(player, path))
        if wait > 0 and not player.wait_for_consumers(wait):
            print(f"no consumer on every stream after {wait:g} s; playing anyway", file=sys.stderr)
        player.start()
        _show_progress(player)
    finally:
        player.stop()
    if player.error is not None:
        raise player.error
    print(f"done: {player.duration_s:.1f} s of recording in {player.passes + 1} pass(es)")
    return 0


def _read_recording(path):
    """Read ``path`` with the io package's reader (separate so tests can substitute it)."""
    from biosig.io import read_recording

    return read_recording(path)


def describe(player, path) -> str:
    """Lines naming each published stream: channels, rate, format, duration."""
    lines = [
        f"replaying {path} at {player.speed:g}x{' in a loop' if player.loop else ''}: "
        f"{player.duration_s:.1f} s of recording"
    ]
    for stream in player.streams:
        if hasattr(stream, "n_channels"):
            rate = f"{stream.srate:g} Hz" if stream.srate > 0 else "irregular"
            what = (
                f"{stream.type}, {stream.n_channels} ch @ {rate}, {stream.channel_format}, "
                f"{stream.duration:.1f} s ({', '.join(stream.channel_labels)})"
            )
        else:
            what = f"{stream.type}, {len(stream)} markers"
        lines.append(f"  {stream.name}: {what}  [source_id {player.source_id_of(stream.name)}]")
    return "\n".join(lines)


def _show_progress(player) -> None:
    """A progress bar over the recording's duration on stderr, until playback ends."""
    from tqdm import tqdm

    total = round(player.duration_s, 1)
    with tqdm(total=total, unit="s", desc="replay", file=sys.stderr, leave=False,
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]") as bar:
        passes = 0
        while not player.finished.wait(PROGRESS_INTERVAL_S):
            if player.passes != passes:  # looping: a new pass restarts the bar
                passes = player.passes
                bar.reset(total=total)
                bar.set_description(f"replay (pass {passes + 1})")
            bar.n = round(player.position_s, 1)
            bar.refresh()
        bar.n = total
        bar.refresh()
