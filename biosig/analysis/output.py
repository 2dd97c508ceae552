"""The output folder of ``biosig analyze``: atomic writes and completion markers.

Layout::

    OUT/
      report.html                       self-contained report (figures embedded as PNG)
      summary.csv                       one row per recording, failed ones included
      summary.json                      run settings, aggregate, every recording's summary
      figures/*.png                     the report's figures as files
      recordings/<name>/
        windows.parquet                 one row per window (windows.csv too with --csv)
        summary.json                    the recording's summary
        .complete                       completion marker, written last

Every file is written to a temporary name in the same folder and moved into place with
:func:`os.replace` (atomic on POSIX and Windows), so a reader never sees half a file under the
final name. The marker of a recording is written after all its files and records their sizes
and a fingerprint of the inputs (model file hash, recording size and modification time, the
options that change results). A recording counts as complete only if its marker parses, the
fingerprint matches and every file it lists has the recorded size: an interrupted run (no
marker) or a damaged file (other size) is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

from biosig import __version__

logger = logging.getLogger(__name__)

MARKER = ".complete"
WINDOWS_PARQUET = "windows.parquet"
WINDOWS_CSV = "windows.csv"
RECORDING_SUMMARY = "summary.json"
RECORDINGS_DIR = "recordings"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, document) -> Path:
    """Write strict JSON (NaN and infinities become null) atomically."""
    return atomic_write_text(path, json.dumps(_plain(document), indent=1, allow_nan=False) + "\n")


def _plain(value):
    """A JSON-ready copy: numpy scalars as Python numbers, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_table(path, table, *, csv: bool = False) -> Path:
    """Write a pyarrow Table as Parquet (or CSV) atomically."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        if csv:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            # Dictionary encoding only for the text columns (labels, decisions): tried on the
            # float columns it only costs time (half the write) and bytes (~20 % more).
            text = [f.name for f in table.schema if pa.types.is_string(f.type)]
            pq.write_table(table, tmp, compression="zstd", use_dictionary=text)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# -- names and fingerprints -------------------------------------------------------------------

_FORMAT_SUFFIXES = (".xdf.gz", ".xdfz", ".xdf", ".hea", ".csv", ".txt")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _FORMAT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "recording"


def recording_names(paths) -> list[str]:
    """A distinct, file-system-safe output name per recording path.

    The file name without its format suffix; where two recordings share it, parent folder
    names are prefixed (``session1__0``) until the names differ.
    """
    paths = [Path(p).resolve() for p in paths]
    depth = [0] * len(paths)

    def name_of(i: int) -> str:
        parts = [p.name for p in paths[i].parents][: depth[i]][::-1]
        return _safe("__".join([*parts, _stem(paths[i])]))

    while True:
        names = [name_of(i) for i in range(len(paths))]
        seen: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            seen.setdefault(name, []).append(i)
        clashes = [idx for idx in seen.values() if len(idx) > 1]
        if not clashes:
            return names
        grew = False
        for idx in clashes:
            for i in idx:
                if depth[i] < len(paths[i].parents):
                    depth[i] += 1
                    grew = True
        if not grew:  # identical paths cannot happen (iter_inputs drops duplicates)
            return [f"{name}-{i}" for i, name in enumerate(names)]


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_identity(path) -> dict:
    """Size and modification time of a recording (every file of a folder recording)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if path.suffix.lower() == ".hea" and path.with_suffix(".dat").is_file():
        files.append(path.with_suffix(".dat"))
    return {
        "path": str(path.resolve()),
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def fingerprint(model_sha256: str, input_path, settings: dict, with_csv: bool) -> dict:
    """What a complete result depends on; a different fingerprint means redo."""
    return {
        "biosig_version": __version__,
        "model_sha256": model_sha256,
        "input": input_identity(input_path),
        "settings": settings,
        "csv": bool(with_csv),
    }


# -- one recording's folder -------------------------------------------------------------------


def recording_dir(out, name: str) -> Path:
    return Path(out) / RECORDINGS_DIR / name


def is_complete(folder, expected_fingerprint: dict) -> bool:
    """True if ``folder`` holds a finished result for this fingerprint (module docstring)."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("fingerprint") != expected_fingerprint:
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, size in files.items():
        target = folder / name
        try:
            if target.stat().st_size != size:
                logger.info("%s: %s has another size than when it was written; redoing",
                            folder.name, name)
                return False
        except OSError:
            return False
    return True


def clear_recording(folder) -> None:
    """Remove a previous (possibly partial) result, marker first."""
    folder = Path(folder)
    (folder / MARKER).unlink(missing_ok=True)
    if folder.is_dir():
        shutil.rmtree(folder)


def write_recording(out, result, fingerprint_doc: dict, *, with_csv: bool = False) -> Path:
    """Write one recording's table(s) and summary, then its completion marker."""
    folder = recording_dir(out, result.name)
    clear_recording(folder)
    folder.mkdir(parents=True)
    written = [atomic_write_table(folder / WINDOWS_PARQUET, result.table)]
    if with_csv:
        written.append(atomic_write_table(folder / WINDOWS_CSV, result.table, csv=True))
    written.append(atomic_write_json(folder / RECORDING_SUMMARY, result.summary))
    atomic_write_json(folder / MARKER, {
        "fingerprint": fingerprint_doc,
        "files": {p.name: p.stat().st_size for p in written},
    })
    return folder


def read_recording_summary(out, name: str) -> dict:
    return json.loads((recording_dir(out, name) / RECORDING_SUMMARY).read_text(encoding="utf-8"))
