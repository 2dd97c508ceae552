"""Window features straight from the stream, without cutting the windows.

:class:`WindowFeatures` gives, for every window a :class:`~biosig.dsp.Windower` with the same
length and hop would complete, the row :meth:`FeatureExtractor.transform` would compute from
it (to ~1e-15 relative; counts exactly), but it never builds the windows. Every feature is a
sum over the window of a per-sample term (``|x|``, ``x**2``, ``|x[i] - x[i-1]|``, a crossing
or slope-change indicator, the envelope), so:

1. The stream is cut into *blocks* of ``hop`` samples laid so that every window ends where a
   block ends: window ``k`` is the last ``length`` samples of blocks ``k .. k + nb - 1``
   (``nb = ceil(length / hop)``; the first block of the window is used from row
   ``sigma = nb * hop - length`` on). Block boundaries sit at fixed sample positions counted
   from the stream's first sample, whatever the chunking.
2. When a block's last sample arrives, the per-sample terms of its ``hop`` samples are
   computed once and summed into three rows per feature column: the block's full sum
   (``F``), its sum as the first block of a window (``A``: from row ``sigma + delta`` on,
   where ``delta`` is 0, 1 or 2 samples that the feature leaves out at the window start: a
   difference needs the previous sample, a slope change both neighbours), and as the second
   block (``B``: ``F``, or the rows left after ``delta`` spills over the first block). The
   sums of the means (``env_mean``, ``rms``, ``mav``) are multiplied by ``1 / length``;
   counts and sums are plain sums of terms, exact for the counts.
3. Window ``k`` is then ``A[k] + B[k + 1] + F[k + 2] + ... + F[k + nb - 1]``, added in this
   order (RMS then square-rooted).

Each sample's terms are computed once instead of ``length / hop`` times (4x with 200 ms
windows every 50 ms), and a push that completes no block only copies its samples. The terms
and block sums are compiled loops (numba, :func:`_block_sums_kernel`): one call per push that
completes blocks, however many; the windows are then whole-row additions. The arithmetic of a
block and of a window depends only on the samples and the block's position, so a stream fed in
any chunks gives the same features, to the bit, as one call over the whole recording.

Hops shorter than 3 samples (where ``delta`` could spill over more than one block) fall back
to :class:`~biosig.dsp.Windower` + :meth:`FeatureExtractor.transform`, with the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from biosig._checks import BiosigError, check_positive
from biosig.dsp.features import FEATURE_NAMES, FeatureExtractor
from biosig.dsp.windows import Windower, window_lengths

# Samples each feature's terms leave out at the start of a window: its first term needs that
# many samples before it inside the window.
_LEFT_OUT = {"env_mean": 0, "rms": 0, "mav": 0, "wl": 1, "zc": 1, "ssc": 2}

# Features that are means over the window (the others are sums or counts).
_MEANS = ("env_mean", "rms", "mav")

# Blocks kept in the ring beyond the n_blocks - 1 that the next window needs.
_BLOCKS_PER_BATCH = 4

# When a push completes many blocks (an offline call), their block sums and windows are
# computed for this many values (samples x channels) at once: the scratch stays in the MB.
_BATCH_VALUES = 1 << 19

# dtypes compared by identity first (numpy's builtin dtypes are singletons): the common case
# of a live push costs no conversion and almost no checking.
_FLOAT = np.dtype(np.float64)
_BOOL = np.dtype(bool)

# Longest push handled in one piece (longer ones are cut): bounds the buffers. Pieces this
# short keep an offline call's arrays in the CPU caches (about as fast as 4-16x longer ones).
_MAX_PUSH = 4096


# Codes of the per-sample terms in the block-sum kernel.
_TERM_CODES = {"env_mean": 0, "rms": 1, "mav": 2, "wl": 3, "zc": 4, "ssc": 5}


# The per-sample terms, one compiled loop per feature (a branch inside the loop would keep
# it from being vectorised). ``samples`` holds 2 samples before those the ``out`` rows are
# for; the expressions are those of FeatureExtractor._write_terms.


@numba.njit(cache=True, nogil=True)
def _square_terms(samples, out):  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[i, c] = samples[i + 2, c] * samples[i + 2, c]


@numba.njit(cache=True, nogil=True)
def _abs_terms(samples, out):  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[i, c] = abs(samples[i + 2, c])


@numba.njit(cache=True, nogil=True)
def _length_terms(samples, out):  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[i, c] = abs(samples[i + 2, c] - samples[i + 1, c])


@numba.njit(cache=True, nogil=True)
def _crossing_terms(samples, threshold, out):  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            before, x = samples[i + 1, c], samples[i + 2, c]
            crossing = before * x < 0.0
            if threshold > 0.0:
                crossing = crossing and abs(x - before) >= threshold
            out[i, c] = 1.0 if crossing else 0.0


@numba.njit(cache=True, nogil=True)
def _slope_change_terms(samples, threshold, out):  # pragma: no cover - compiled
    # Centred on the sample before the row's.
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            d_before = samples[i + 1, c] - samples[i, c]
            d_after = samples[i + 2, c] - samples[i + 1, c]
            change = d_before * d_after < 0.0
            if threshold > 0.0:
                change = change and max(abs(d_before), abs(d_after)) >= threshold
            out[i, c] = 1.0 if change else 0.0


@numba.njit(cache=True, nogil=True)
def _add_blocks(terms, hop, a_start, b_start, weight, feature, abf):  # pragma: no cover
    """A, B and F sums of each block of ``hop`` rows of ``terms``, scaled, into ``abf``.

    ``abf`` has shape (blocks, 3, features, channels). One running total per block, each row
    added once: first the rows from the later of the A and B starts on, then those from the
    earlier one, then the rest (F). A or B stays 0 where it starts past the block (the window
    leaves the whole block out).
    """
    # Loops written out and ``abf`` indexed in full: a view of a row, or a call, per block and
    # role took a third of the time.
    n_ch = terms.shape[1]
    total = np.empty(n_ch)
    late, early = min(max(a_start, b_start), hop), min(a_start, b_start, hop)
    role_late, role_early = (0, 1) if a_start >= b_start else (1, 0)
    for block in range(abf.shape[0]):
        first = block * hop
        for c in range(n_ch):
            total[c] = 0.0
        for row in range(first + late, first + hop):
            for c in range(n_ch):
                total[c] += terms[row, c]
        for c in range(n_ch):
            abf[block, role_late, feature, c] = total[c] * weight
        for row in range(first + early, first + late):
            for c in range(n_ch):
                total[c] += terms[row, c]
        for c in range(n_ch):
            abf[block, role_early, feature, c] = total[c] * weight
        for row in range(first, first + early):
            for c in range(n_ch):
                total[c] += terms[row, c]
        for c in range(n_ch):
            abf[block, 2, feature, c] = total[c] * weight


@numba.njit(cache=True, nogil=True)
def _block_sums_kernel(samples, envelope, hop, codes, columns, a_start, b_start, weights,
                       zc_threshold, ssc_threshold, abf):  # pragma: no cover - compiled
    """The A, B and F sums of consecutive blocks, every feature, into ``abf``, shape (blocks, 3,
    features, channels).

    ``samples`` holds the 2 samples before the first block, then the blocks' samples; the
    envelope holds the blocks' samples only. The terms of ``codes[s]`` (:data:`_TERM_CODES`)
    go to the output columns of feature ``columns[s]`` (one per channel), with the A sum from
    block row ``a_start[s]`` on, B from ``b_start[s]`` on, F over the whole block, all scaled
    by ``weights[s]``.
    """
    terms = np.empty((abf.shape[0] * hop, samples.shape[1]))
    for slot in range(codes.shape[0]):
        code = codes[slot]
        if code == 0:
            _add_blocks(envelope, hop, a_start[slot], b_start[slot], weights[slot],
                        columns[slot], abf)
            continue
        if code == 1:
            _square_terms(samples, terms)
        elif code == 2:
            _abs_terms(samples, terms)
        elif code == 3:
            _length_terms(samples, terms)
        elif code == 4:
            _crossing_terms(samples, zc_threshold, terms)
        else:
            _slope_change_terms(samples, ssc_threshold, terms)
        _add_blocks(terms, hop, a_start[slot], b_start[slot], weights[slot], columns[slot],
                    abf)


@numba.njit(cache=True, nogil=True)
def _window_sums(abf, n_blocks, root_start, root_stop, out):  # pragma: no cover - compiled
    """Window ``k`` of ``out``: A of block ``k``, B of block ``k + 1``, F of the others
    (``abf`` (blocks, 3, columns)), added in this order, as :meth:`WindowFeatures._windows`;
    then the square roots of columns ``[root_start, root_stop)`` (RMS)."""
    for k in range(out.shape[0]):
        if n_blocks > 1:
            for col in range(out.shape[1]):
                out[k, col] = abf[k, 0, col] + abf[k + 1, 1, col]
        else:
            out[k] = abf[k, 0]
        for j in range(2, n_blocks):
            for col in range(out.shape[1]):
                out[k, col] += abf[k + j, 2, col]
        for col in range(root_start, root_stop):
            out[k, col] = np.sqrt(out[k, col])


@dataclass
class FeatureBatch:
    """The windows completed by one push of :class:`WindowFeatures`, as features.

    Attributes
    ----------
    t_end : ndarray, shape (n_windows,)
        Timestamp of each window's last sample, in seconds.
    features : ndarray, shape (n_windows, n_features)
        One row per window, columns as :attr:`FeatureExtractor.feature_names`.
    flags : ndarray of bool, shape (n_windows,)
        True where the window contains a sample flagged in the push's ``mask``.
    start_index : ndarray of int64, shape (n_windows,)
        Index of each window's first sample, counted from the stream's first sample.
    """

    t_end: np.ndarray
    features: np.ndarray
    flags: np.ndarray
    start_index: np.ndarray

    @property
    def n_windows(self) -> int:
        return int(self.t_end.shape[0])

    def __len__(self) -> int:
        return self.n_windows

    @classmethod
    def concatenate(cls, batches) -> "FeatureBatch":
        """Join batches of the same stream in time order."""
        batches = list(batches)
        if not batches:
            raise BiosigError("no feature batches to concatenate")
        return cls(
            t_end=np.concatenate([b.t_end for b in batches]),
            features=np.concatenate([b.features for b in batches]),
            flags=np.concatenate([b.flags for b in batches]),
            start_index=np.concatenate([b.start_index for b in batches]),
        )

    def __repr__(self) -> str:
        return f"<FeatureBatch | {self.n_windows} windows x {self.features.shape[1]} features>"


class _Rows:
    """Rows of a stream kept from some absolute row on: appended in place, dropped in front.

    Storage shape (size, width). Storage row ``i`` holds absolute row ``origin + i``; rows
    ``[start, end)`` are kept. Dropping only moves ``start``; the kept rows move to the front
    when an append does not fit (rarely: the storage holds many pushes).
    """

    def __init__(self, width: int, size: int):
        self._size = size
        self.rows = np.zeros((size, width))
        self.origin = 0
        self.start = 0
        self.end = 0

    def make_room(self, n: int) -> None:
        """Move the kept rows to the front of a storage with room for ``n`` more."""
        kept = self.end - self.start
        size, width = self.rows.shape
        if kept + n <= self._size:  # back to the usual size after a long push
            want = self._size
        elif kept + n <= size:  # a long push after another: reuse the grown storage
            want = size
        else:
            want = 2 * (kept + n)
        rows = self.rows if want == size else np.zeros((want, width))
        rows[:kept] = self.rows[self.start : self.end]
        self.rows = rows
        self.origin += self.start
        self.start = 0
        self.end = kept

    def drop_before(self, index: int) -> None:
        """Forget the rows before absolute row ``index``."""
        self.start = max(self.start, min(index - self.origin, self.end))


class WindowFeatures:
    """Streaming features of sliding windows, without building the windows.

    Same windows as :class:`~biosig.dsp.Windower` (``fs``, ``length_s``, ``hop_s``), same
    features as ``extractor.transform`` on them (see the module docstring for how), for the
    processing chain that needs only the features (:class:`biosig.stream.StreamProcessor`).

    Parameters
    ----------
    extractor : FeatureExtractor
        Which features, thresholds and channel labels (read once, here).
    fs : float
        Sampling rate of the pushed samples in Hz.
    length_s, hop_s : float
        Window length and hop in seconds.

    Attributes
    ----------
    length, hop : int
        In samples.
    feature_names : list of str
        Columns of :attr:`FeatureBatch.features`.
    """

    def __init__(self, extractor: FeatureExtractor, fs: float, length_s: float, hop_s: float):
        if not isinstance(extractor, FeatureExtractor):
            raise BiosigError(f"extractor must be a FeatureExtractor, got {type(extractor)}")
        self.extractor = extractor
        self.fs = check_positive(fs, "fs")
        self.length_s = length_s
        self.hop_s = hop_s
        self.length, self.hop = window_lengths(fs, length_s, hop_s)
        self.n_channels = len(extractor.channel_labels)
        self.feature_names = extractor.feature_names
        self._needs_envelope = "env_mean" in extractor.features
        self._fallback = self.hop < 3
        if not self._fallback:
            self._plan()
        self.reset()

    # -- set-up ----------------------------------------------------------------------------
    def _plan(self) -> None:
        length, hop, n_ch = self.length, self.hop, self.n_channels
        features = self.extractor.features
        self._n_blocks = n_blocks = -(-length // hop)  # blocks a window touches
        self._sigma = n_blocks * hop - length  # first row of a window in its first block
        self._n_cols = n_cols = len(features) * n_ch
        slots = [name for name in FEATURE_NAMES if name in features]
        # Per slot, the kernel's description of its A and B rows: the block rows from which
        # the slot's terms count as a window's first block (A) and second block (B).
        a_start, b_start = [], []
        for name in slots:
            first = self._sigma + _LEFT_OUT[name]
            if first < hop:  # the left-out samples are in the first block
                a_start.append(first)
                b_start.append(0)
            else:  # they spill into the second (or the window is all left out)
                a_start.append(hop)
                b_start.append(first - hop)
        self._kernel_plan = (
            np.array([_TERM_CODES[name] for name in slots], dtype=np.int64),
            np.array([features.index(name) for name in slots], dtype=np.int64),
            np.array(a_start, dtype=np.int64),
            np.array(b_start, dtype=np.int64),
            # The means are sums over the window divided by its length; counts stay exact.
            np.array([1.0 / length if name in _MEANS else 1.0 for name in slots]),
            float(self.extractor.zc_threshold),
            float(self.extractor.ssc_threshold),
        )
        self._batch_blocks = max(_BLOCKS_PER_BATCH, _BATCH_VALUES // (hop * n_ch))
        # Block sums live in a ring: block b in slot b % ring, as rows A, B, F. A window needs
        # its n_blocks blocks, and a push adds up to _BLOCKS_PER_BATCH at a time.
        self._ring = ring = n_blocks - 1 + _BLOCKS_PER_BATCH
        self._slot_size = 3 * n_cols
        # Flat offsets, within the rows of its blocks, of what window k adds up: A of its first
        # block, B of the second, F of the others; shape (n_blocks, n_cols).
        role = np.minimum(np.arange(n_blocks), 2)
        self._role_offsets = role[:, None] * n_cols + np.arange(n_cols)[None, :]
        # ... and the flat indices into the ring for each phase k % ring, precomputed unless
        # that table would be large (windows of very many hops).
        self._window_index = None
        if ring * self._role_offsets.size <= 1 << 20:
            blocks = (np.arange(ring)[:, None] + np.arange(n_blocks)[None, :]) % ring
            self._window_index = (
                blocks[:, :, None] * self._slot_size + self._role_offsets[None]
            )[:, None]
        self._root_columns = (0, 0)  # [start, stop) of the RMS columns (square-rooted last)
        if "rms" in features:
            f = features.index("rms")
            self._root_columns = (f * n_ch, (f + 1) * n_ch)

    def reset(self) -> "WindowFeatures":
        """Forget the stream: the next sample is the first of the first window again."""
        self._n_seen = 0
        self._flagged = np.zeros(0, dtype=np.int64)  # flagged samples not yet windowed
        # Most live pushes complete no window: they all return this read-only empty batch.
        parts = [
            np.empty(0),
            np.empty((0, len(self.feature_names))),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=np.int64),
        ]
        for part in parts:
            part.setflags(write=False)
        self._empty = FeatureBatch(*parts)
        if self._fallback:
            self._windower = Windower(self.fs, self.length_s, self.hop_s)
            return self
        hop, n_ch = self.hop, self.n_channels
        capacity = 4 * hop + 1024
        # Samples in "block coordinates": sample i is row i + sigma, so block b is rows
        # [b * hop, (b + 1) * hop). The filtered signal also keeps the 2 rows before the
        # first unfinished block (for differences, computed in its second plane); rows
        # before the stream are zeros.
        self._signal = _Rows(n_ch, capacity)
        self._signal.origin = -2
        self._signal.end = self._sigma + 2
        self._envelope = None
        if self._needs_envelope:
            self._envelope = _Rows(n_ch, capacity)
            self._envelope.end = self._sigma
        self._blocks_done = 0
        self._next_block_at = hop - self._sigma  # samples seen when the next block completes
        self._sums = np.zeros((self._ring, 3, self._n_cols))  # the ring of block sums
        self._sums_flat = self._sums.reshape(-1)
        return self

    @property
    def next_window_end(self) -> int:
        """Samples pushed (since the start or :meth:`reset`) once the next window is complete."""
        if self._fallback:
            return self._windower._next_start + self.length
        return max(self._blocks_done - self._n_blocks + 1, 0) * self.hop + self.length

    # -- streaming ---------------------------------------------------------------------------
    def push(self, timestamps, filtered, envelope=None, *, mask=None) -> FeatureBatch:
        """Add samples; return the features of the windows completed by them.

        Parameters
        ----------
        timestamps : array_like, shape (n_samples,)
            Sample times in seconds (``n_samples`` may be 0).
        filtered : array_like, shape (n_samples, n_channels)
            The filtered signal.
        envelope : array_like, shape (n_samples, n_channels), optional
            Its envelope; required for ``env_mean`` (ignored otherwise).
        mask : array_like of bool, shape (n_samples,) or (n_samples, n_channels), optional
            Samples to flag (e.g. :attr:`Preprocessor.last_replaced`); a window's flag is True
            if it contains any.

        Returns
        -------
        FeatureBatch
        """
        t = timestamps
        if type(t) is not np.ndarray or t.dtype is not _FLOAT or t.ndim != 1:
            t = np.asarray(timestamps, dtype=np.float64)
            if t.ndim != 1:
                raise BiosigError(f"timestamps must be 1-D, got shape {t.shape}")
        n = t.shape[0]
        x = filtered
        if type(x) is not np.ndarray or x.dtype is not _FLOAT or x.shape != (n, self.n_channels):
            x = self._as_samples(filtered, n, "filtered")
        env = envelope
        if self._needs_envelope:
            if env is None:
                raise BiosigError("feature 'env_mean' needs the envelope")
            if type(env) is not np.ndarray or env.dtype is not _FLOAT or env.shape != x.shape:
                env = self._as_samples(envelope, n, "envelope")
        if self._fallback:
            return self._push_fallback(t, x, env, mask)
        if n > _MAX_PUSH:  # a long recording: in pieces, so the buffers stay small
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)
            pieces = [
                self._push(t[a : a + _MAX_PUSH], x[a : a + _MAX_PUSH],
                           None if env is None else env[a : a + _MAX_PUSH],
                           None if mask is None else mask[a : a + _MAX_PUSH])
                for a in range(0, n, _MAX_PUSH)
            ]
            pieces = [piece for piece in pieces if piece.n_windows]
            return FeatureBatch.concatenate(pieces) if pieces else self._empty_batch()
        return self._push(t, x, env, mask)

    def _push(self, t, x, env, mask) -> FeatureBatch:
        n = x.shape[0]
        if n == 0:
            if mask is not None:
                self._note_flags(mask, 0, self._n_seen)
            return self._empty_batch()
        signal_rows, envelope_rows = self._reserve(n)
        signal_rows[:n] = x
        if envelope_rows is not None:
            envelope_rows[...] = env
        return self._commit(n, t, self._n_seen, mask)

    def _reserve(self, n: int):
        """Rows where the next ``n`` samples go: (signal, envelope or None) views.

        For :class:`biosig.dsp.FeatureChain`, which writes its outputs there directly; then
        :meth:`_commit`.
        """
        rows = self._signal
        if rows.end + n > rows.rows.shape[0]:
            rows.make_room(n)
        signal = rows.rows[rows.end : rows.end + n]
        rows = self._envelope
        if rows is None:
            return signal, None
        if rows.end + n > rows.rows.shape[0]:
            rows.make_room(n)
        return signal, rows.rows[rows.end : rows.end + n]

    def _commit(self, n: int, t: np.ndarray, t_first: int, mask=None) -> FeatureBatch:
        """Take the ``n`` samples written in the reserved rows; return the windows completed.

        ``t`` holds the timestamps of samples ``t_first``, ``t_first + 1``, ... (counted from
        the stream start), at least up to the last window end in these samples.
        """
        before = self._n_seen
        if mask is not None:
            self._note_flags(mask, n, before)
        self._signal.end += n
        if self._envelope is not None:
            self._envelope.end += n
        self._n_seen = seen = before + n
        if seen < self._next_block_at:  # most live pushes: no block completed
            return self._empty_batch()
        return self._complete_blocks((seen + self._sigma) // self.hop, t, t_first)

    def _complete_blocks(self, blocks_done: int, t: np.ndarray, t_first: int) -> FeatureBatch:
        hop, n_blocks, ring = self.hop, self._n_blocks, self._ring
        block = self._blocks_done
        if blocks_done == block + 1:  # the live case: one block, at most one window
            slot = block % ring
            self._block_sums(block, blocks_done, self._sums[slot : slot + 1])
            window = blocks_done - n_blocks  # the window ending with this block
            batch = self._windows(window, window, t, t_first) if window >= 0 else self._empty
            self._blocks_done = blocks_done
            self._next_block_at += hop
            self._signal.drop_before(blocks_done * hop - 2)
            if self._envelope is not None:
                self._envelope.drop_before(blocks_done * hop)
            return batch
        batches = []
        for b0 in range(block, blocks_done, self._batch_blocks):
            b1 = min(b0 + self._batch_blocks, blocks_done)
            batch = self._complete_many(b0, b1, t, t_first)
            if batch is not None:
                batches.append(batch)
        self._blocks_done = blocks_done
        self._next_block_at = (blocks_done + 1) * hop - self._sigma
        # Only the rows the next block needs are kept.
        self._signal.drop_before(blocks_done * hop - 2)
        if self._envelope is not None:
            self._envelope.drop_before(blocks_done * hop)
        if len(batches) == 1:
            return batches[0]
        return FeatureBatch.concatenate(batches) if batches else self._empty_batch()

    def _complete_many(self, b0: int, b1: int, t, t_first: int) -> FeatureBatch | None:
        """Blocks [b0, b1) at once (an offline call); the windows ending in them, or None.

        The same block sums as :meth:`_block_sums` and the same additions per window as
        :meth:`_windows` (A, B, then F, in this order), laid out so that every operation runs
        over whole rows of features: no index gathers, which would cost more than the sums.
        """
        n_blocks, ring = self._n_blocks, self._ring
        keep = n_blocks - 1  # earlier blocks the first window ending here needs
        first = max(b0 - keep, 0)
        # abf[j, role]: the A, B or F row (output column order) of block first + j.
        abf = np.empty((b1 - first, 3, self._n_cols))
        if b0 > first:
            abf[: b0 - first] = self._sums[np.arange(first, b0) % ring]
        self._block_sums(b0, b1, abf[b0 - first :])
        tail = np.arange(max(b1 - keep, first), b1)  # what later windows need, to the ring
        self._sums[tail % ring] = abf[tail - first]
        last = b1 - n_blocks  # windows first .. last end in [b0, b1): window k starts at block k
        if last < first:
            return None
        out = np.empty((last - first + 1, self._n_cols))
        _window_sums(abf, n_blocks, *self._root_columns, out)
        return self._finish_windows(out, first, last, t, t_first, rooted=True)

    def _block_sums(self, b0: int, b1: int, out: np.ndarray) -> None:
        """A, B, F rows of blocks [b0, b1) into ``out``, shape (b1 - b0, 3, n_cols),
        C-contiguous (one compiled kernel for the live and the offline case)."""
        hop = self.hop
        start = b0 * hop - 2 - self._signal.origin
        samples = self._signal.rows[start : start + (b1 - b0) * hop + 2]
        if self._envelope is not None:
            first = b0 * hop - self._envelope.origin
            envelope = self._envelope.rows[first : first + (b1 - b0) * hop]
        else:
            envelope = samples[:0]
        # By feature and channel: the same memory.
        by_feature = out.reshape(b1 - b0, 3, len(self.feature_names) // self.n_channels, -1)
        _block_sums_kernel(samples, envelope, hop, *self._kernel_plan, by_feature)

    def _windows(self, first: int, last: int, t, t_first: int) -> FeatureBatch:
        ring = self._ring
        if self._window_index is None:
            windows = np.arange(first, last + 1)
            blocks = (windows[:, None] + np.arange(self._n_blocks)[None, :]) % ring
            index = blocks[:, :, None] * self._slot_size + self._role_offsets[None]
        elif first == last:
            index = self._window_index[first % ring]
        else:
            index = self._window_index[np.arange(first, last + 1) % ring, 0]
        # Window k: A of block k, B of block k + 1, F of the others, added in this order.
        parts = self._sums_flat.take(index)  # (count, n_blocks, n_cols)
        out = np.add.reduce(parts, axis=1)
        return self._finish_windows(out, first, last, t, t_first)

    # -- helpers ---------------------------------------------------------------------------
    def _finish_windows(self, out: np.ndarray, first: int, last: int, t, t_first: int, *,
                        rooted: bool = False) -> FeatureBatch:
        """Windows ``first``..``last`` from their summed features ``out`` (RMS still squared
        unless ``rooted``)."""
        start, stop = self._root_columns
        if stop > start and not rooted:
            rms = out[:, start:stop]
            np.sqrt(rms, out=rms)
        starts = np.arange(first * self.hop, (last + 1) * self.hop, self.hop, dtype=np.int64)
        end = first * self.hop + self.length - 1 - t_first  # in t, of the first window's end
        return FeatureBatch(
            t_end=t[end : end + starts.shape[0] * self.hop : self.hop].copy(),
            features=out,
            flags=self._window_flags(starts),
            start_index=starts,
        )

    def _as_samples(self, array, n: int, name: str) -> np.ndarray:
        arr = np.asarray(array, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise BiosigError(f"{name} must be 2-D (n_samples, n_channels), got shape {arr.shape}")
        if arr.shape[0] != n:
            raise BiosigError(f"{name} has {arr.shape[0]} samples but timestamps have {n}")
        if arr.shape[1] != self.n_channels:
            raise BiosigError(
                f"{name} has {arr.shape[1]} channels but {self.n_channels} channel labels "
                "were given"
            )
        return arr

    def _note_flags(self, mask, n: int, before: int) -> None:
        if type(mask) is not np.ndarray or mask.dtype is not _BOOL:
            mask = np.asarray(mask, dtype=bool)
        if mask.ndim == 2 or mask.ndim == 1:
            if mask.shape[0] == n:
                if not np.count_nonzero(mask):
                    return
                rows = np.flatnonzero(mask.any(axis=1) if mask.ndim == 2 else mask)
                self._flagged = np.concatenate((self._flagged, rows + before))
                return
        raise BiosigError(f"mask must have {n} samples (1-D or 2-D), got shape {mask.shape}")

    def _window_flags(self, starts: np.ndarray) -> np.ndarray:
        flagged = self._flagged
        if not flagged.shape[0]:
            return np.zeros(starts.shape[0], dtype=bool)
        first = np.searchsorted(flagged, starts, side="left")
        past = np.searchsorted(flagged, starts + (self.length - 1), side="right")
        # Samples before the next window's start are never looked at again.
        self._flagged = flagged[flagged >= starts[-1] + self.hop]
        return past > first

    def _empty_batch(self) -> FeatureBatch:
        return self._empty

    def _push_fallback(self, t, x, env, mask) -> FeatureBatch:
        arrays = (x,) if env is None else (x, env)
        batch = self._windower.push(t, *arrays, mask=mask)
        self._n_seen += x.shape[0]
        if not batch.n_windows:
            return self._empty_batch()
        features = self.extractor.transform(*batch.arrays)
        return FeatureBatch(batch.t_end, features, batch.flags, batch.start_index)

    def __repr__(self) -> str:
        return (
            f"<WindowFeatures | {self.length} samples ({self.length_s:g} s), hop {self.hop} "
            f"({self.hop_s:g} s) @ {self.fs:g} Hz | {len(self.feature_names)} features>"
        )
