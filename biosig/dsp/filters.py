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
FILTER_ENGINES = ("block", "sosfilt")

# Block sizes of the matrix engine: a chunk is cut into blocks of 64 samples plus one block of
# the remainder (1-63), so one chunk of up to 64 samples (a live chunk) is one matrix product,
# and at most 64 small matrices are ever built, whatever the chunk sizes a live stream
# delivers. 64 was the fastest block per sample on a 28-channel benchmark.
_LARGEST_BLOCK = 64

# A chunk of at least this many whole blocks (an offline call) takes them all at once
# (:meth:`SOSFilter._process_many`) instead of one matrix product after another, for filters
# of at most _MANY_STATES states (8 sections): the states then cost little next to the
# samples. (For 13 sections, 4th-order band-pass + 9 notches at 2 kHz, it would be slower.)
_MANY_BLOCKS = 4
_MANY_STATES = 16

# :meth:`SOSFilter._process_many` gets the states of a group of blocks from one matrix product
# of about this many rows (16 blocks for the 6 states of the Myo chain's 3 sections): larger
# matrices cost more than the loop over groups they save.
_STATE_GROUP_ROWS = 96


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
    engine : {"block", "sosfilt"}
        How a chunk is evaluated. ``"sosfilt"`` calls :func:`scipy.signal.sosfilt` with the
        carried ``zi``. ``"block"`` (default) applies the same linear map as a matrix product
        over blocks of up to 64 samples; the matrices are obtained by running ``sosfilt`` on
        unit inputs and unit states, so the two engines agree to rounding (~1e-14 relative).
        Why: ``sosfilt`` spends ~50 us of fixed cost per call, which dominates at live chunk
        sizes (32 samples at 2 kHz), whereas the block product is BLAS-bound and about 4-10x
        faster for 28 channels, for short and long chunks alike. A chunk of many blocks (an
        offline call) through a filter of up to 8 sections takes all its blocks at once
        (:meth:`_process_many`), ~2x faster again (Myo chain, 3 sections); its outputs then
        differ from block-by-block evaluation by rounding only (~1e-15 relative).
    """

    def __init__(self, sos, n_channels: int, *, init: str = "zeros", engine: str = "block"):
        self.sos = _check_sos(sos)
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.init = check_option(init, "filter init", FILTER_INITS)
        self.engine = check_option(engine, "filter engine", FILTER_ENGINES)
        self._n_sections = self.sos.shape[0]
        self._n_states = 2 * self._n_sections
        self._block_matrices: dict[int, np.ndarray] = {}
        self._state_maps: tuple[np.ndarray, np.ndarray] | None = None
        self.reset()

    @property
    def zi(self) -> np.ndarray:
        """Current filter state, shape (n_sections, 2, n_channels) (a copy)."""
        return self._state.reshape(self._n_sections, 2, self.n_channels).copy()

    @property
    def _state(self) -> np.ndarray:
        # The state lives in the last rows of the stacking buffer, right where the next block
        # product reads it: a block then needs one copy in (its samples) and one copy out.
        return self._stack[_LARGEST_BLOCK:]

    @_state.setter
    def _state(self, value) -> None:
        self._stack[_LARGEST_BLOCK:] = value

    def reset(self) -> "SOSFilter":
        """Forget the stream: the next chunk starts from the initial state again."""
        # Rows [64 - size, 64) take a block's samples, rows [64, 64 + S) hold the state.
        self._stack = np.zeros((_LARGEST_BLOCK + self._n_states, self.n_channels))
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

        ``out``, if given, receives y in its first n rows and must have ``n + 2 * n_sections``
        rows (the others are scratch); y is then a view of it.
        """
        n = x.shape[0]
        if n == 0:
            return np.empty((0, self.n_channels)) if out is None else out[:0]
        if not self._started:
            self._started = True
            if self.init == "steady":
                from scipy import signal  # noqa: PLC0415

                zi_unit = signal.sosfilt_zi(self.sos).reshape(self._n_states, 1)
                self._state = zi_unit * x[0][None, :]
        if self.engine == "sosfilt":
            from scipy import signal  # noqa: PLC0415

            zi = self._state.reshape(self._n_sections, 2, self.n_channels)
            y, zf = signal.sosfilt(self.sos, x, axis=0, zi=zi)
            self._state = zf.reshape(self._n_states, self.n_channels)
            if out is None:
                return y
            out[:n] = y
            return out[:n]
        return self._process_blocks(x, out)

    def _process_blocks(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        n = x.shape[0]
        n_states = self._n_states
        stack = self._stack
        if out is None:
            out = np.empty((n + n_states, self.n_channels))
        whole = n - n % _LARGEST_BLOCK
        if whole >= _MANY_BLOCKS * _LARGEST_BLOCK and n_states <= _MANY_STATES:
            self._process_many(x[:whole], out[:whole])
            if whole < n:
                self._process_blocks(x[whole:], out[whole:])
            return out[:n]
        # [y_block; new_state] = M @ [x_block; state]. Each product writes its block's
        # outputs, then the new state, straight into ``out``: the state rows are read back
        # into the stack before the next block overwrites them.
        start = 0
        while start < n:
            size = min(n - start, _LARGEST_BLOCK)
            matrix = self._block_matrices.get(size)
            if matrix is None:
                matrix = self._block_matrix(size)
            stacked = stack[_LARGEST_BLOCK - size :]
            stacked[:size] = x[start : start + size]
            if start:
                stacked[size:] = out[start : start + n_states]
            np.matmul(matrix, stacked, out=out[start : start + size + n_states])
            start += size
        stack[_LARGEST_BLOCK:] = out[n : n + n_states]
        return out[:n]

    def _process_many(self, x: np.ndarray, out: np.ndarray) -> None:
        """Whole blocks of ``_LARGEST_BLOCK`` samples at once: y into ``out``, state carried.

        With ``M = [[Myx, Mys], [Msx, Mss]]`` the block matrix, block ``b`` gives
        ``y_b = Myx x_b + Mys s_b`` and the next state ``s_{b+1} = Msx x_b + Mss s_b``. The
        input terms of every block come from one stacked product; the states then follow in
        groups of blocks, one product per group (:meth:`_group_state_maps`); last, the state
        terms are added to the outputs.
        """
        size, n_states, n_ch = _LARGEST_BLOCK, self._n_states, self.n_channels
        n_blocks = x.shape[0] // size
        matrix = self._block_matrix(size)
        # Per block: its outputs from a zero state, then its inputs' share of the next state.
        from_inputs = np.matmul(matrix[:, :size], x.reshape(n_blocks, size, n_ch))
        pushes = np.ascontiguousarray(from_inputs[:, size:]).reshape(n_blocks * n_states, n_ch)
        powers, convolution = self._group_state_maps()
        group = powers.shape[0] // n_states
        states = np.empty((n_blocks + 1, n_states, n_ch))  # states[b]: before block b
        states[0] = self._state
        flat = states.reshape(-1, n_ch)
        for first in range(0, n_blocks, group):
            rows = min(group, n_blocks - first) * n_states
            start = first * n_states
            after = flat[start + n_states : start + n_states + rows]
            np.matmul(powers[:rows], states[first], out=after)
            after += convolution[:rows, :rows] @ pushes[start : start + rows]
        # Written straight into ``out`` (row slices of the callers' buffers are contiguous).
        target = out if out.flags.c_contiguous else np.empty(out.shape)
        y = target.reshape(n_blocks, size, n_ch)
        np.matmul(matrix[:size, size:], states[:n_blocks], out=y)
        y += from_inputs[:, :size]
        if target is not out:
            out[...] = target
        self._state = states[n_blocks]

    def _group_state_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The maps from a group's first state and its blocks' pushes to the states after them.

        ``powers`` (G S x S) stacks ``Mss^1 .. Mss^G``; ``convolution`` (G S x G S) is block
        lower triangular with block ``(k, i) = Mss^(k - i)`` for ``i <= k``: the state after
        block ``k`` of a group is ``Mss^(k + 1) s_0 + sum_i Mss^(k - i) p_i``.
        """
        if self._state_maps is None:
            self._state_maps = _cached_state_maps(self.sos.tobytes(), self._n_sections)
        return self._state_maps

    def _block_matrix(self, size: int) -> np.ndarray:
        matrix = self._block_matrices.get(size)
        if matrix is None:
            matrix = _cached_block_matrix(self.sos.tobytes(), self._n_sections, size)
            self._block_matrices[size] = matrix
        return matrix

    def __repr__(self) -> str:
        return (
            f"<SOSFilter | {self._n_sections} sections | {self.n_channels} ch | "
            f"init={self.init} | engine={self.engine}>"
        )


@functools.lru_cache(maxsize=256)
def _cached_block_matrix(sos_bytes: bytes, n_sections: int, size: int) -> np.ndarray:
    """:func:`_sos_block_matrix` of the sections in ``sos_bytes``, read-only."""
    matrix = _sos_block_matrix(np.frombuffer(sos_bytes).reshape(n_sections, 6).copy(), size)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=64)
def _cached_state_maps(sos_bytes: bytes, n_sections: int) -> tuple[np.ndarray, np.ndarray]:
    """The matrices of :meth:`SOSFilter._group_state_maps` (read-only)."""
    n_states = 2 * n_sections
    group = max(2, _STATE_GROUP_ROWS // n_states)
    block = _cached_block_matrix(sos_bytes, n_sections, _LARGEST_BLOCK)
    transition = block[_LARGEST_BLOCK:, _LARGEST_BLOCK:]
    power = [np.eye(n_states)]
    for _ in range(group):
        power.append(transition @ power[-1])
    convolution = np.zeros((group * n_states, group * n_states))
    for k in range(group):
        for i in range(k + 1):
            convolution[k * n_states : (k + 1) * n_states,
                        i * n_states : (i + 1) * n_states] = power[k - i]
    powers = np.vstack(power[1:])
    for matrix in (powers, convolution):
        matrix.setflags(write=False)
    return powers, convolution


def _sos_block_matrix(sos: np.ndarray, size: int) -> np.ndarray:
    """The (size + S) x (size + S) matrix of ``sosfilt`` over one block of ``size`` samples.

    ``S = 2 * n_sections`` state values. Column j is sosfilt's response (outputs, then final
    state) to the j-th unit vector of [inputs; initial state]; sosfilt is linear in both.
    """
    from scipy import signal  # noqa: PLC0415

    n_sections = sos.shape[0]
    n_states = 2 * n_sections
    width = size + n_states
    unit_inputs = np.zeros((size, width))
    unit_inputs[:, :size] = np.eye(size)
    unit_states = np.zeros((n_states, width))
    unit_states[:, size:] = np.eye(n_states)
    y, zf = signal.sosfilt(
        sos, unit_inputs, axis=0, zi=unit_states.reshape(n_sections, 2, width)
    )
    return np.ascontiguousarray(np.vstack((y, zf.reshape(n_states, width))))


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
