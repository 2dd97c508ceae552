"""Validation helpers used at every public boundary.

Errors raised here are :class:`BiosigError`: a user mistake, reported by the CLI as one line on
stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class BiosigError(ValueError):
    """A problem with the user's input (file, option, stream) rather than a bug in biosig."""


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is a finite number > 0 (or >= 0)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise BiosigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(out) or out < 0 or (out == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise BiosigError(f"{name} must be a finite number {bound}, got {value!r}")
    return out


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as int if it is integral (and >= ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise BiosigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise BiosigError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_option(value, name: str, allowed) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise BiosigError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_names(names, valid, what: str) -> tuple[str, ...]:
    """Return ``names`` (one name or several) as a tuple, refusing unknown or repeated ones.

    ``what`` names the kind in the messages ("feature", "CTG feature").
    """
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise BiosigError(f"give at least one {what}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise BiosigError(f"unknown {what}{plural} {listed}; valid {what}s: {', '.join(valid)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BiosigError(f"{what}(s) listed twice: {', '.join(repeated)}")
    return names


def check_existing_file(path, name: str = "file") -> Path:
    """Return ``path`` as a :class:`Path` if it names an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise BiosigError(f"{name} not found: {p}")
    if not p.is_file():
        raise BiosigError(f"{name} is not a file: {p}")
    return p


def check_samples(data, n_channels: int | None = None, name: str = "data") -> np.ndarray:
    """Return ``data`` as a C-contiguous float64 array of shape (n_samples, n_channels)."""
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BiosigError(f"{name} must be 2-D (n_samples, n_channels), got shape {arr.shape}")
    if n_channels is not None and arr.shape[1] != n_channels:
        raise BiosigError(
            f"{name} has {arr.shape[1]} channels but {n_channels} were configured"
        )
    return np.ascontiguousarray(arr)


def check_below_nyquist(freq_hz: float, fs: float, name: str) -> float:
    """Refuse a frequency at or above Nyquist (fs / 2) with a message naming both."""
    freq_hz = check_positive(freq_hz, name)
    if freq_hz >= fs / 2:
        raise BiosigError(
            f"{name} = {freq_hz:g} Hz is at or above the Nyquist frequency "
            f"({fs / 2:g} Hz for a sampling rate of {fs:g} Hz)"
        )
    return freq_hz
