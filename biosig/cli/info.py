"""``biosig info``: print a summary of a recording (streams, rates, durations, labels, metadata)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from biosig.io import READERS, Recording, read_recording

#: Distinct marker values listed per marker stream before the list is cut short.
MAX_LISTED_VALUES = 20
#: Metadata values longer than this are cut short.
MAX_METADATA_CHARS = 100


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="summarise a recording: streams, channels, rates, durations, labels, metadata",
        description=(
            "Read a recording (XDF, WFDB, Myo text file or session folder, CSV) and print its "
            "signal streams (type, channels and units, rate, value format, samples, duration), "
            "its marker streams (events, and per label the number of events and the time it "
            "covers) and its metadata."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="recording to describe")
    parser.add_argument(
        "--format", choices=sorted(READERS), help="reader to use (default: guessed from the name)"
    )
    parser.add_argument("--fs", type=float, metavar="HZ", help="sampling rate for Myo/CSV inputs")
    parser.set_defaults(func=run)


def run(args) -> int:
    options = {"fs": args.fs} if args.fs is not None else {}
    recording = read_recording(args.file, format=args.format, **options)
    print(describe(recording))
    return 0


def describe(recording: Recording) -> str:
    """Return a multi-line, human-readable summary of ``recording``."""
    lines = [f"recording: {recording.source}"]
    lines.append(f"signal streams ({len(recording.streams)}):")
    for stream in recording.streams.values():
        rate = f"{stream.srate:g} Hz" if stream.srate > 0 else "irregular"
        lines.append(
            f"  {stream.name}: type {stream.type}, {stream.n_channels} ch @ {rate}, "
            f"{stream.channel_format}, {stream.n_samples} samples, {stream.duration:.2f} s"
        )
        lines.append(f"    channels: {_channel_list(stream)}")
    lines.append(f"marker streams ({len(recording.markers)}):")
    main_signal = recording.signal() if recording.streams else None
    for markers in recording.markers.values():
        lines.append(f"  {markers.name}: type {markers.type}, {_count(len(markers), 'event')}")
        lines.extend(_label_lines(markers, main_signal, _label_names(recording)))
    if recording.metadata:
        lines.append("metadata:")
        for key, value in recording.metadata.items():
            text = str(value)
            if len(text) > MAX_METADATA_CHARS:
                text = text[: MAX_METADATA_CHARS - 1] + "…"
            lines.append(f"  {key}: {text}")
    return "\n".join(lines)


def _channel_list(stream) -> str:
    units = set(stream.channel_units)
    if len(units) == 1:
        unit = units.pop()
        names = ", ".join(stream.channel_labels)
        return f"{names} [{unit}]" if unit else names
    return ", ".join(
        f"{label} [{unit}]" if unit else label
        for label, unit in zip(stream.channel_labels, stream.channel_units)
    )


def _label_names(recording) -> dict:
    # Readers store label -> name as a JSON object under "label_names" (Myo, GRABMyo).
    try:
        names = json.loads(recording.metadata.get("label_names", "{}"))
    except (TypeError, ValueError):
        return {}
    return names if isinstance(names, dict) else {}


def _label_lines(markers, signal, label_names) -> list[str]:
    """Per marker value: events, and the time it is in force on the main signal (regular only)."""
    if len(markers) == 0:
        return []
    events = Counter(markers.values)
    seconds = {}
    if signal is not None and signal.srate > 0 and signal.n_samples:
        in_force = markers.label_at(signal.timestamps)
        values, counts = np.unique(in_force.astype(str), return_counts=True)
        seconds = {value: count / signal.srate for value, count in zip(values, counts)}
    lines = []
    for value in _sorted_values(events)[:MAX_LISTED_VALUES]:
        covered = f", {seconds[value]:.1f} s" if value in seconds else ""
        name = f" ({label_names[value]})" if value in label_names else ""
        lines.append(f"    {value}{name}: {_count(events[value], 'event')}{covered}")
    if len(events) > MAX_LISTED_VALUES:
        lines.append(f"    … {len(events) - MAX_LISTED_VALUES} more values")
    return lines


def _sorted_values(events: Counter) -> list[str]:
    # Numeric labels in numeric order ("2" before "10"), text after them.
    def key(value):
        try:
            return (0, float(value), value)
        except ValueError:
            return (1, 0.0, value)

    return sorted(events, key=key)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
