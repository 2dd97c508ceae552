"""Find the LSL streams visible from this machine."""

from __future__ import annotations

import logging

import pylsl

from biosig._checks import check_positive
from biosig.stream.lsl_info import StreamDescription

logger = logging.getLogger(__name__)

#: Keys of each stream's dict in :func:`list_streams`, in table order.
STREAM_FIELDS = ("name", "type", "channels", "rate", "format", "source_id", "hostname")


def list_streams(timeout: float = 1.0) -> list[dict]:
    """List the LSL streams visible on the network.

    Parameters
    ----------
    timeout : float
        Seconds to listen for answers. LSL resolves by multicast; below about 0.5 s some
        outlets, especially on other hosts, may not have answered yet.

    Returns
    -------
    list of dict
        One dict per stream, sorted by name then host, with keys ``name``, ``type``,
        ``channels`` (int), ``rate`` (nominal rate in Hz, 0 for irregular), ``format`` (LSL
        value format, e.g. ``"float32"``, ``"string"``), ``source_id`` and ``hostname``.
    """
    timeout = check_positive(timeout, "timeout")
    infos = pylsl.resolve_streams(wait_time=timeout)
    logger.debug("resolved %d stream(s) in %.2f s", len(infos), timeout)
    streams = [_as_row(StreamDescription.from_info(info)) for info in infos]
    return sorted(streams, key=lambda row: (row["name"], row["hostname"], row["source_id"]))


def _as_row(desc: StreamDescription) -> dict:
    return {
        "name": desc.name,
        "type": desc.type,
        "channels": desc.n_channels,
        "rate": desc.srate,
        "format": desc.channel_format,
        "source_id": desc.source_id,
        "hostname": desc.hostname,
    }
