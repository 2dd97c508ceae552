"""``biosig streams``: list the Lab Streaming Layer streams visible from this machine."""

from __future__ import annotations

from biosig._checks import check_positive

#: Table columns: (header, key in the stream dict).
COLUMNS = (
    ("NAME", "name"),
    ("TYPE", "type"),
    ("CH", "channels"),
    ("RATE", "rate"),
    ("FORMAT", "format"),
    ("SOURCE ID", "source_id"),
    ("HOST", "hostname"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "streams",
        help="list the LSL streams visible on the network",
        description=(
            "Listen for Lab Streaming Layer streams for a moment and print a table of those "
            "found: name, content type, channel count, nominal rate (Hz; 'irregular' for "
            "markers), value format, source id and host. Use a name or source id from it with "
            "'biosig process --lsl-name'."
        ),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds to listen for streams (default 1.0; streams on other hosts may need more)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from biosig.stream.discovery import list_streams

    timeout = check_positive(args.timeout, "--timeout")
    streams = list_streams(timeout)
    if not streams:
        print(f"no LSL streams found within {timeout:g} s")
        return 0
    print(format_table(streams))
    return 0


def format_table(streams: list[dict]) -> str:
    """Return the streams as an aligned text table, one row per stream."""
    rows = [[header for header, _ in COLUMNS]]
    for stream in streams:
        rows.append([_cell(key, stream[key]) for _, key in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def _cell(key: str, value) -> str:
    if key == "rate":
        return f"{value:g} Hz" if value > 0 else "irregular"
    return str(value) if value != "" else "-"
