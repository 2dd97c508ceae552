"""The compiled loops of :class:`biosig.dsp.quality.WindowQuality` (numba).

A module of their own, imported when a quality check first reduces windows: numba costs ~0.3 s
and ~120 MB to import, which a process that only reads a configuration (it holds
:class:`~biosig.dsp.quality.QualityConfig`) should not pay.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Plain loops over the buffered samples (rows: samples, columns: channels), compiled once and
# cached on disk. Positions are in input samples relative to the buffer's first row.


@numba.njit(cache=True)
def _first_input(m, up, down):
    """``P(m)`` of the module docstring: index of the first input sample of output ``m``."""
    return max((m - 1) * down // up + 1, 0)


# Inlined: a call per block and segment costs more than its ~10 samples.
@numba.njit(cache=True, inline="always")
def _fold_samples(raw, start, stop, low, high, maxima, minima, counts, row):
    """Fold the finite samples of ``raw[start:stop]`` into the running per-channel maxima,
    minima and counts at a rail (``<= low`` or ``>= high``) of row ``row``; NaN/±Inf are the
    non-finite guard's."""
    for i in range(start, stop):
        for c in range(raw.shape[1]):
            value = raw[i, c]
            if math.isfinite(value):
                maxima[row, c] = max(maxima[row, c], value)
                minima[row, c] = min(minima[row, c], value)
                if value <= low or value >= high:
                    counts[row, c] += 1


@numba.njit(cache=True)
def _reduce_blocks(raw, raw_first, first_block, n_blocks, length, hop, up, down, low, high):
    """Maxima, minima and rail counts of ``n_blocks`` hop blocks from ``first_block`` on: of
    each block's head (``head_*``, shape ``(n_blocks, n_channels)``) and of the whole block
    (``block_*``, all but the last; none when the hop is longer than the window, which then is
    a head). A segment without finite samples keeps maximum -Inf and minimum +Inf."""
    q, r = length // hop, length % hop
    n_channels = raw.shape[1]
    head_max = np.full((n_blocks, n_channels), -np.inf)
    head_min = np.full((n_blocks, n_channels), np.inf)
    head_count = np.zeros((n_blocks, n_channels), np.int64)
    n_full = n_blocks - 1 if q > 0 else 0
    block_max = np.empty((n_full, n_channels))
    block_min = np.empty((n_full, n_channels))
    block_count = np.empty((n_full, n_channels), np.int64)
    for b in range(n_blocks):
        output = (first_block + b) * hop  # the block's first output sample
        start = _first_input(output, up, down) - raw_first
        middle = _first_input(output + r, up, down) - raw_first
        _fold_samples(raw, start, middle, low, high, head_max, head_min, head_count, b)
        if b < n_full:  # the whole block: its head, then its tail folded in
            for c in range(n_channels):  # element by element: a row view per block is slower
                block_max[b, c] = head_max[b, c]
                block_min[b, c] = head_min[b, c]
                block_count[b, c] = head_count[b, c]
            stop = _first_input(output + hop, up, down) - raw_first
            _fold_samples(raw, middle, stop, low, high, block_max, block_min, block_count, b)
    return head_max, head_min, head_count, block_max, block_min, block_count


@numba.njit(cache=True)
def _judge_windows(head_max, head_min, head_count, block_max, block_min, block_count,
                   first_window, length, hop, up, down, clip_share, flat_ptp, clipped, flat,
                   ends):
    """Write the clipped and flat flags and the last input index of each window from its hop
    blocks (as :func:`_reduce_blocks` returns them): window ``i`` combines blocks
    ``i .. i + q - 1`` and head ``i + q`` (``q = length // hop``)."""
    q = length // hop
    n_windows, n_channels = clipped.shape
    for i in range(n_windows):
        output = (first_window + i) * hop
        first = _first_input(output, up, down)
        stop = _first_input(output + length, up, down)
        span = stop - first  # input samples in the window
        ends[i] = stop - 1
        for c in range(n_channels):
            maximum, minimum, count = head_max[i + q, c], head_min[i + q, c], head_count[i + q, c]
            for b in range(i, i + q):
                maximum = max(maximum, block_max[b, c])
                minimum = min(minimum, block_min[b, c])
                count += block_count[b, c]
            clipped[i, c] = count > clip_share * span  # without rails count is 0: never
            # minimum > maximum: no finite sample, not flat; one sample is trivially constant.
            flat[i, c] = span >= 2 and minimum <= maximum and maximum - minimum <= flat_ptp


@numba.njit(cache=True)
def window_flags(raw, raw_first, first_window, length, hop, up, down, low, high, clip_share,
                  flat_ptp, clipped, flat, ends):
    """Judge the ``len(ends)`` windows from ``first_window`` on from the buffered samples
    (``raw[0]`` is input sample ``raw_first``), into ``clipped``, ``flat`` and ``ends``.
    Infinite rails turn the clipping check off, a negative ``flat_ptp`` the flat one."""
    head_max, head_min, head_count, block_max, block_min, block_count = _reduce_blocks(
        raw, raw_first, first_window, ends.shape[0] + length // hop, length, hop, up, down, low,
        high)
    _judge_windows(head_max, head_min, head_count, block_max, block_min, block_count,
                   first_window, length, hop, up, down, clip_share, flat_ptp, clipped, flat,
                   ends)
