"""Record live LSL streams to an XDF file with biosig's own writer.

Every pulled chunk is written and flushed to disk at once (:class:`~biosig.io.xdf.XDFWriter`
fsyncs each chunk), so a recorder killed at any moment leaves a file that reads back up to its
last complete chunk. Timestamps are stored already clock-corrected by the inlet (this machine's
LSL clock), so the file's clock offsets are zero.

LabRecorder is the ecosystem's general recorder; this one exists so that biosig (the CLI and
the GUI's record button) can record what it is looking at without another program, and so that
every file it writes is one pyxdf reads exactly.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from biosig._checks import BiosigError, check_positive
from biosig.io.recording import Markers
from biosig.io.xdf import XDFWriter

logger = logging.getLogger(__name__)


class Recorder:
    """Write what a set of connected inlets receive to one XDF file, on a background thread.

    Parameters
    ----------
    path : str or Path
        Output file; an existing file is never overwritten.
    inlets : list of Inlet
        Connected :class:`~biosig.stream.inlet.Inlet` objects (numeric or marker streams).
    poll_s : float
        Seconds between pulls.
    metadata : dict or None
        Recording-level metadata stored in the file header.
    """

    def __init__(self, path, inlets, *, poll_s: float = 0.05, metadata=None):
        self.path = Path(path)
        self.inlets = list(inlets)
        self.poll_s = poll_s
        self.metadata = dict(metadata or {})
        self.samples_written: dict[str, int] = {}
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "Recorder":
        """Create the file, write the stream headers and start recording."""
        if not self.inlets:
            raise BiosigError("nothing to record: no streams given")
        check_positive(self.poll_s, "poll_s")
        if self.path.exists():
            raise BiosigError(f"{self.path} exists; biosig never overwrites a recording")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = XDFWriter(self.path, metadata=self.metadata).open()
        self._ids = []
        for inlet in self.inlets:
            self._ids.append(self._writer.add_stream(_header_of(inlet)))
            self.samples_written[inlet.name] = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="biosig-recorder", daemon=True)
        self._thread.start()
        logger.info("recording %d stream(s) to %s", len(self.inlets), self.path)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> Path:
        """Write what is still buffered, close the file (footers) and return its path."""
        if self._thread is None:
            return self.path
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None
        self._writer.close()
        return self.path

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                for inlet, stream_id in zip(self.inlets, self._ids):
                    self._drain(inlet, stream_id)
                if stopping:
                    return
                self._stop.wait(self.poll_s)
        except Exception as err:  # noqa: BLE001 - keep what was written; report the cause
            logger.exception("recording failed")
            self.error = str(err)

    def _drain(self, inlet, stream_id: int) -> None:
        data, timestamps = inlet.pull()
        if timestamps.shape[0] == 0:
            return
        if inlet.info.is_numeric:
            self._writer.write_chunk(stream_id, data, timestamps)
        else:
            self._writer.write_markers(stream_id, timestamps, [str(v) for v in data.reshape(-1)])
        self.samples_written[inlet.name] += int(timestamps.shape[0])

    def __repr__(self) -> str:
        state = "REC" if self.running else "OFF"
        return f"<Recorder {self.path.name!r} | {state} | {len(self.inlets)} streams>"


def _header_of(inlet):
    """A zero-sample Stream/Markers carrying the inlet's description, for the XDF header."""
    import numpy as np

    desc = inlet.info
    if desc.is_numeric:
        return desc.to_stream(np.zeros((0, desc.n_channels)), np.zeros(0))
    return Markers(name=desc.name, timestamps=np.zeros(0), values=[], type=desc.type,
                   source_id=desc.source_id)
