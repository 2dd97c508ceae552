"""``biosig record``: record live LSL streams to an XDF file."""

from __future__ import annotations

import time

from biosig._checks import BiosigError, check_positive


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record live LSL streams (signals and markers) to an XDF file",
        description=(
            "Record one or more live LSL streams to an XDF file with biosig's writer. Each "
            "received chunk is written and synced to disk at once, so a recording killed at any "
            "moment reads back up to its last complete chunk. Timestamps are stored on this "
            "machine's LSL clock (clock offsets already applied). An existing file is never "
            "overwritten. Stops after --duration seconds or on Ctrl-C."
        ),
    )
    parser.add_argument("--name", action="append", default=[], help="stream name to record (repeatable)")
    parser.add_argument("--type", action="append", default=[], help="stream type to record, e.g. EMG, Markers (repeatable)")
    parser.add_argument("--out", required=True, help="output .xdf file (must not exist)")
    parser.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each stream (default 5)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.stream.inlet import Inlet
    from biosig.stream.recorder import Recorder

    if not args.name and not args.type:
        raise BiosigError("name at least one stream with --name or --type ('biosig streams' lists them)")
    duration = check_positive(args.duration, "--duration") if args.duration is not None else None
    timeout = check_positive(args.timeout, "--timeout")
    inlets = [Inlet(name=n, resolve_timeout=timeout) for n in args.name]
    inlets += [Inlet(type=t, resolve_timeout=timeout) for t in args.type]
    for inlet in inlets:
        inlet.connect()
    recorder = Recorder(args.out, inlets).start()
    print(f"recording {', '.join(repr(i.name) for i in inlets)} to {args.out} (Ctrl-C stops)")
    started = time.monotonic()
    try:
        while recorder.running and (duration is None or time.monotonic() - started < duration):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        recorder.stop()
        for inlet in inlets:
            inlet.close()
    counts = ", ".join(f"{name}: {n} samples" for name, n in recorder.samples_written.items())
    print(f"wrote {args.out} ({counts})")
    return 1 if recorder.error else 0
