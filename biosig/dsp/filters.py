"""Causal IIR filtering of multichannel chunks: filter design in Hz and a stateful SOS filter.

Every design helper takes the sampling rate ``fs`` explicitly and refuses a frequency at or
above Nyquist. :class:`SOSFilter` keeps the per-section state of :func:`scipy.signal.sosfilt`
(``zi``) between chunks, so filtering a stream chunk by chunk gives the same output as one
``sosfilt`` call over the whole recording.
"""

from __future__ import annotations

import functools

import numpy as np

# scipy.signal is imported inside the functions that use it: it takes ~1 s to import, which
# every process that only reads a configuration or opens a model would otherwise pay (the
# explainer worker, most commands).
from biosig._checks import (
    BiosigError,
    check_below_nyquist,
    check_int,
    check_option,
    check_positive,
    check_samples,
)

#: How a filter's state starts: all zeros, or the steady state for a constant input equal to
#: the first sample (removes the start-up transient of a high-pass on a signal with an offset).
FILTER_INITS = ("zeros", "steady")

#: How :class:`SOSFilter` evaluates a chunk (see its docstring).
FILTER_ENGINES = ("compiled", "sosfilt")


def design_highpass(cutoff_hz: float, fs: float, order: int = 4) -> np.ndarray:
    """Butterworth high-pass as second-order sections.

    Parameters
    ----------
    cutoff_hz : float
        -3 dB frequency in Hz; must be below Nyquist (``fs / 2``).
    fs : float
        Sampling rate in Hz.
    order : int
        Filter order (>= 1).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
    """
    return _butter_single_edge(cutoff_hz, fs, order, "highpass", "high-pass cutoff")


def design_lowpass(cutoff_hz: float, fs: float, order: int = 4) -> np.ndarray:
    """Butterworth low-pass as second-order sections.

    Parameters
    ----------
    cutoff_hz : float
        -3 dB frequency in Hz; must be below Nyquist (``fs / 2``).
    fs : float
        Sampling rate in Hz.
    order : int
        Filter order (>= 1).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
    """
    return _butter_single_edge(cutoff_hz, fs, order, "lowpass", "low-pass cutoff")


def _butter_single_edge(cutoff_hz, fs, order, btype: str, name: str) -> np.ndarray:
    fs = check_positive(fs, "fs")
    cutoff_hz = check_below_nyquist(cutoff_hz, fs, name)
    order = check_int(order, "filter order", minimum=1)
    return _butter_sos(order, (cutoff_hz,), btype, fs).copy()


def design_bandpass(low_hz: float, high_hz: float, fs: float, order: int = 4) -> np.ndarray:
    """Butterworth band-pass as second-order sections.

    Parameters
    ----------
    low_hz, high_hz : float
        Lower and upper -3 dB edges in Hz, ``0 < low_hz < high_hz < fs / 2``.
    fs : float
        Sampling rate in Hz.
    order : int
        Order of the low-pass prototype (>= 1); the band-pass has twice as many poles.

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
    """
    fs = check_positive(fs, "fs")
    low_hz = check_below_nyquist(low_hz, fs, "band-pass lower edge")
    high_hz = check_below_nyquist(high_hz, fs, "band-pass upper edge")
    if low_hz >= high_hz:
        raise BiosigError(
            f"band-pass lower edge ({low_hz:g} Hz) must be below its upper edge ({high_hz:g} Hz)"
        )
    order = check_int(order, "filter order", minimum=1)
    return _butter_sos(order, (low_hz, high_hz), "bandpass", fs).copy()


# Designs and block matrices are cached (read-only; callers get copies of designs): every
# recording of an offline analysis builds the same filters, and designing them costs ~1 ms.
@functools.lru_cache(maxsize=64)
def _butter_sos(order: int, edges: tuple, btype: str, fs: float) -> np.ndarray:
    from scipy import signal  # noqa: PLC0415

    sos = signal.butter(order, edges[0] if len(edges) == 1 else list(edges), btype=btype,
                        fs=fs, output="sos")
    sos.setflags(write=False)
    return sos


@functools.lru_cache(maxsize=64)
def _notch_sos(f0_hz: float, quality: float, fs: float) -> np.ndarray:
    from scipy import signal  # noqa: PLC0415

    sos = signal.tf2sos(*signal.iirnotch(f0_hz, quality, fs=fs))
    sos.setflags(write=False)
    return sos


def notch_frequencies(
    f0_hz: float, fs: float, n_harmonics: int | None = None, max_hz: float | None = None
) -> list[float]:
    """Frequencies a mains notch removes: ``f0`` and its multiples below Nyquist.

    Parameters
    ----------
    f0_hz : float
        Mains frequency in Hz (typically 50 or 60); must be below Nyquist.
    fs : float
        Sampling rate in Hz.
    n_harmonics : int or None
        At most this many frequencies (``f0`` counts as the first); None: every multiple of
        ``f0`` below Nyquist.
    max_hz : float or None
        Also leave out multiples above this frequency (e.g. above a band-pass upper edge).

    Returns
    -------
    list of float
        In Hz, ascending; always contains ``f0``.
    """
    fs = check_positive(fs, "fs")
    f0_hz = check_below_nyquist(f0_hz, fs, "notch frequency")
    limit = fs / 2
    if max_hz is not None:
        limit = min(limit, check_positive(max_hz, "notch max_hz"))
    count = int(np.floor(limit / f0_hz))
    if count * f0_hz >= fs / 2:  # a notch exactly at Nyquist cannot be designed
        count -= 1
    if n_harmonics is not None:
        count = min(count, check_int(n_harmonics, "notch harmonics", minimum=1))
    return [f0_hz * k for k in range(1, max(count, 1) + 1)]


def design_notch(
    f0_hz: float,
    fs: float,
    quality: float = 30.0,
    n_harmonics: int | None = None,
    max_hz: float | None = None,
) -> np.ndarray:
    """IIR notch (:func:`scipy.signal.iirnotch`) at ``f0`` and its harmonics, as one cascade.

    Parameters
    ----------
    f0_hz : float
        Mains frequency in Hz; must be below Nyquist.
    fs : float
        Sampling rate in Hz.
    quality : float
        Quality factor of each notch: its -3 dB width is ``f / quality`` Hz.
    n_harmonics, max_hz
        Which multiples of ``f0`` to notch; see :func:`notch_frequencies`.

    Returns
    -------
    sos : ndarray, shape (n_frequencies, 6)
    """
    quality = check_positive(quality, "notch quality")
    freqs = notch_frequencies(f0_hz, fs, n_harmonics=n_harmonics, max_hz=max_hz)
    return np.vstack([_notch_sos(float(f), quality, fs) for f in freqs])


def cascade(*sos_parts: np.ndarray | None) -> np.ndarray:
    """Join SOS arrays into one cascade (``None`` parts are skipped).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
        Possibly with 0 sections when every part is None.
    """
    parts = [np.asarray(p, dtype=np.float64).reshape(-1, 6) for p in sos_parts if p is not None]
    if not parts:
        return np.zeros((0, 6))
    return np.vstack(parts)


def _check_sos(sos) -> np.ndarray:
    sos = np.array(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
        raise BiosigError(f"sos must have shape (n_sections >= 1, 6), got {sos.shape}")
    if not np.all(np.isfinite(sos)):
        raise BiosigError("sos contains non-finite coefficients")
    if np.any(sos[:, 3] == 0):
        raise BiosigError("sos has a section whose a0 coefficient is 0")
    return sos / sos[:, 3:4]  # normalise a0 = 1, as sosfilt does


class SOSFilter:
    """Stateful causal IIR filter over chunks of shape (n_samples, n_channels).

    The state is that of :func:`scipy.signal.sosfilt` (``zi``, shape
    ``(n_sections, 2, n_channels)``), carried from one chunk to the next, so the output of a
    stream fed in chunks of any size equals one ``sosfilt`` call over the whole signal.

    Parameters
    ----------
    sos : array_like, shape (n_sections, 6)
        Second-order sections, e.g. from :func:`design_bandpass` or :func:`cascade`.
    n_channels : int
        Number of channels; each is filtered independently.
    init : {"zeros", "steady"}
        Initial state: zeros, or ``sosfilt_zi(sos) * x0``, the steady state for a constant
        input equal to the first sample ``x0`` of each channel.
    engine : {"compiled", "sosfilt"}
        How a chunk is evaluated. ``"sosfilt"`` calls :func:`scipy.signal.sosfilt` with the
        carried ``zi``. ``"compiled"`` (default) runs sosfilt's recurrence (transposed direct
        form II, the same operations in the same order, so the output is bit-identical) as a
        compiled loop over samples with all channels side by side and the state in local
        arrays, so that the compiler vectorises across channels. Why: ``sosfilt`` spends ~50 us
        of fixed cost per call, which dominates at live chunk sizes (32 samples at 2 kHz); the
        compiled loop costs ~1 us per call and, on whole recordings, runs 1.1-3x faster than
        the block-matrix products biosig used before (8-64 channels, 3-9 sections; see
        docs/benchmarks.md).
    """

    def __init__(self, sos, n_channels: int, *, init: str = "zeros", engine: str = "compiled"):
        self.sos = _check_sos(sos)
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.init = check_option(init, "filter init", FILTER_INITS)
        self.engine = check_option(engine, "filter engine", FILTER_ENGINES)
        self._n_sections = self.sos.shape[0]
        self.reset()

    @property
    def zi(self) -> np.ndarray:
        """Current filter state, shape (n_sections, 2, n_channels) (a copy)."""
        return self._zi.copy()

    def reset(self) -> "SOSFilter":
        """Forget the stream: the next chunk starts from the initial state again."""
        self._zi = np.zeros((self._n_sections, 2, self.n_channels))
        self._started = False
        return self

    def process(self, x) -> np.ndarray:
        """Filter the next chunk.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_channels)
            The next samples (may be 0 rows). Must be finite: see
            :class:`biosig.dsp.NonFiniteGuard`.

        Returns
        -------
        y : ndarray, shape (n_samples, n_channels)
        """
        return self._process(check_samples(x, self.n_channels, "filter input"))

    def _process(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Filter ``x`` (finite, float64, (n, n_channels)); return y, shape (n, n_channels).

        ``out``, if given, receives y in its first n rows; y is then a view of it.
        """
        n = x.shape[0]
        if n == 0:
            return np.empty((0, self.n_channels)) if out is None else out[:0]
        if not self._started:
            self._started = True
            if self.init == "steady":
                from scipy import signal  # noqa: PLC0415

                self._zi = signal.sosfilt_zi(self.sos)[:, :, None] * x[0][None, None, :]
        if self.engine == "sosfilt":
            from scipy import signal  # noqa: PLC0415

            y, self._zi = signal.sosfilt(self.sos, x, axis=0, zi=self._zi)
            if out is None:
                return y
            out[:n] = y
            return out[:n]
        if out is None:
            out = np.empty((n, self.n_channels))
        _compiled_sosfilt()(x, self.sos, self._zi, out)
        return out[:n]

    def __repr__(self) -> str:
        return (
            f"<SOSFilter | {self._n_sections} sections | {self.n_channels} ch | "
            f"init={self.init} | engine={self.engine}>"
        )


@functools.cache
def _compiled_sosfilt():
    """:func:`_sosfilt_rows` compiled by numba (on first use: importing numba costs ~0.3 s,
    which a process that only designs filters or reads a configuration should not pay)."""
    import numba  # noqa: PLC0415

    return numba.njit(cache=True, nogil=True)(_sosfilt_rows)


def _sosfilt_rows(x, sos, zi, out):  # pragma: no cover - compiled
    """``y, zi = sosfilt(sos, x, axis=0, zi=zi)`` with ``y`` into ``out`` and ``zi`` in place.

    Sample after sample, each section over all channels at once. The state is copied into
    local arrays for the loop: through ``zi`` itself, every store would have to reach memory
    before the next sample's load (2.5x slower at 8 channels).
    """
    n_sections, n_channels = sos.shape[0], x.shape[1]
    z0 = zi[:, 0, :].copy()
    z1 = zi[:, 1, :].copy()
    value = np.empty(n_channels)
    for i in range(x.shape[0]):
        for c in range(n_channels):
            value[c] = x[i, c]
        for s in range(n_sections):
            b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
            for c in range(n_channels):
                v = value[c]
                y = b0 * v + z0[s, c]
                z0[s, c] = b1 * v - a1 * y + z1[s, c]
                z1[s, c] = b2 * v - a2 * y
                value[c] = y
        for c in range(n_channels):
            out[i, c] = value[c]
    zi[:, 0, :] = z0
    zi[:, 1, :] = z1


def sosfilt_offline(sos, x, *, init: str = "zeros") -> np.ndarray:
    """Filter a whole recording in one :func:`scipy.signal.sosfilt` call (the offline reference).

    Uses the same initial state as :class:`SOSFilter` with the same ``init``.

    Parameters
    ----------
    sos : array_like, shape (n_sections, 6)
    x : array_like, shape (n_samples, n_channels)
    init : {"zeros", "steady"}

    Returns
    -------
    y : ndarray, shape (n_samples, n_channels)
    """
    from scipy import signal  # noqa: PLC0415

    sos = _check_sos(sos)
    x = check_samples(x)
    check_option(init, "filter init", FILTER_INITS)
    if x.shape[0] == 0:
        return x.copy()
    zi = np.zeros((sos.shape[0], 2, x.shape[1]))
    if init == "steady":
        zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    y, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    return y
