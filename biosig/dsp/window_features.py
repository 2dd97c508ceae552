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
   computed once and summed with one matrix product into three rows per feature column:
   the block's full sum (``F``), its sum as the first block of a window (``A``: from row
   ``sigma + delta`` on, where ``delta`` is 0, 1 or 2 samples that the feature leaves out at
   the window start: a difference needs the previous sample, a slope change both
   neighbours), and as the second block (``B``: ``F``, or the rows left after ``delta``
   spills over the first block). The terms of the means (``env_mean``, ``rms``, ``mav``)
   are weighted by ``1 / length`` in that product; counts and sums are plain sums of terms,
   exact for the counts.
3. Window ``k`` is then ``A[k] + B[k + 1] + F[k + 2] + ... + F[k + nb - 1]``, added in this
   order (RMS then square-rooted).

Each sample's terms are computed once instead of ``length / hop`` times (4x with 200 ms
windows every 50 ms), the block sums are one BLAS call per block, and a push that completes
no block only copies its samples. A push that completes many blocks (an offline call) takes
them together: each feature's terms in one pass, its sums in one stacked product, and the
windows as whole-row additions. The arithmetic of a block and of a window depends only on
the samples and the block's position, so a stream fed in any chunks gives the same features
as one call over the whole recording.

Hops shorter than 3 samples (where ``delta`` could spill over more than one block) fall back
to :class:`~biosig.dsp.Windower` + :meth:`FeatureExtractor.transform`, with the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

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

# When a push completes many blocks (an offline call), their terms, block sums and windows are
# computed for this many values (samples x channels) at once: large enough that numpy's
# per-call cost vanishes, small enough that the scratch (a few such arrays) stays in the MB.
_BATCH_VALUES = 1 << 19

# dtypes compared by identity first (numpy's builtin dtypes are singletons): the common case
# of a live push costs no conversion and almost no checking.
_FLOAT = np.dtype(np.float64)
_BOOL = np.dtype(bool)

# Longest push handled in one piece (longer ones are cut): bounds the buffers. Pieces this
# short keep an offline call's arrays in the CPU caches (about as fast as 4-16x longer ones).
_MAX_PUSH = 4096


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

    Storage shape (n_planes, size, width); appends go to plane 0, the other planes are scratch
    rows aligned with it. Storage row ``i`` holds absolute row ``origin + i``; rows
    ``[start, end)`` are kept. Dropping only moves ``start``; the kept rows move to the front
    when an append does not fit (rarely: the storage holds many pushes).
    """

    def __init__(self, width: int, size: int, n_planes: int = 1):
        self._size = size
        self.rows = np.zeros((n_planes, size, width))
        self.origin = 0
        self.start = 0
        self.end = 0

    def make_room(self, n: int) -> None:
        """Move the kept rows to the front of a storage with room for ``n`` more."""
        kept = self.end - self.start
        planes, size, width = self.rows.shape
        if kept + n <= self._size:  # back to the usual size after a long push
            want = self._size
        elif kept + n <= size:  # a long push after another: reuse the grown storage
            want = size
        else:
            want = 2 * (kept + n)
        rows = self.rows if want == size else np.zeros((planes, want, width))
        rows[:, :kept] = self.rows[:, self.start : self.end]
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
        # Terms are computed per feature, in FEATURE_NAMES order, so that |x| and |dx|, and
        # the two sign-change products, are each one operation on adjacent slots.
        slots = [name for name in FEATURE_NAMES if name in features]
        self._slot = {name: i for i, name in enumerate(slots)}
        self._slot_of = [self._slot.get(name, -1) for name in FEATURE_NAMES]
        self._n_slots = len(slots)
        self._needs_diffs = bool({"wl", "zc", "ssc"} & set(features))
        self._pair_abs = "mav" in self._slot and "wl" in self._slot
        self._zc_threshold = self.extractor.zc_threshold
        self._ssc_threshold = self.extractor.ssc_threshold
        self._pair_sign = (
            "zc" in self._slot
            and "ssc" in self._slot
            and self._zc_threshold == 0
            and self._ssc_threshold == 0
        )
        # Rows of the block matrix G: row r sums rows [starts[r], hop) of a block's terms.
        starts = [0]  # F
        a_rows, b_rows = {}, {}
        for name in slots:
            first = self._sigma + _LEFT_OUT[name]
            if first < hop:  # the left-out samples are in the first block
                a_start, b_start = first, 0
            else:  # they spill into the second (or the window is all left out)
                a_start, b_start = hop, first - hop
            for start, rows in ((a_start, a_rows), (b_start, b_rows)):
                if start not in starts:
                    starts.append(start)
                rows[name] = starts.index(start)
        matrix = np.zeros((len(starts), hop))
        for r, start in enumerate(starts):
            matrix[r, start:] = 1.0
        # One matrix per slot: the means' is divided by the window length, so that a window's
        # sum of block sums is already the mean (counts and sums stay exact sums of terms).
        self._block_matrix = np.stack(
            [matrix / length if name in _MEANS else matrix for name in slots]
        )
        # A block's sums come out of the product as (n_slots, n_rows, n_channels): flat
        # indices into them pick each output column's A, B and F, in the output's order.
        n_rows = len(starts)
        channel = np.arange(n_ch)

        def pick(rows: dict) -> np.ndarray:
            return np.concatenate(
                [(self._slot[name] * n_rows + rows[name]) * n_ch + channel for name in features]
            )

        self._pick = np.stack([pick(a_rows), pick(b_rows), pick(dict.fromkeys(slots, 0))])
        # The same choice for pushes that complete many blocks: per slot, its feature, that
        # feature's output column (features are distinct: one per slot) and the A, B and F
        # rows of its block matrix.
        self._slot_sums = [
            (name, features.index(name), self._block_matrix[slot][[a_rows[name], b_rows[name], 0]])
            for slot, name in enumerate(slots)
        ]
        self._batch_blocks = max(_BLOCKS_PER_BATCH, _BATCH_VALUES // (hop * n_ch))
        self._pick_slot, self._pick_rest = np.divmod(self._pick, n_rows * n_ch)
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
        self._rms_columns = None
        for f, name in enumerate(features):
            if name == "rms":
                self._rms_columns = slice(f * n_ch, (f + 1) * n_ch)
        self._scratch: dict[int, np.ndarray] = {}

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
        self._signal = _Rows(n_ch, capacity, n_planes=2 if self._needs_diffs else 1)
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

    def _reserve(self, n: int, extra: int = 0):
        """Rows where the next ``n`` samples go: (signal, envelope or None) views.

        The signal view has ``extra`` more rows, scratch for the writer. For
        :class:`biosig.dsp.FeatureChain`, which writes its outputs there directly; then
        :meth:`_commit`.
        """
        rows = self._signal
        if rows.end + n + extra > rows.rows.shape[1]:
            rows.make_room(n + extra)
        signal = rows.rows[0, rows.end : rows.end + n + extra]
        rows = self._envelope
        if rows is None:
            return signal, None
        if rows.end + n > rows.rows.shape[1]:
            rows.make_room(n)
        return signal, rows.rows[0, rows.end : rows.end + n]

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
        # abf[role, j]: the A, B or F row (output column order) of block first + j.
        abf = np.empty((3, b1 - first, self._n_cols))
        if b0 > first:
            abf[:, : b0 - first] = self._sums[np.arange(first, b0) % ring].transpose(1, 0, 2)
        self._many_block_sums(b0, b1, abf[:, b0 - first :])
        tail = np.arange(max(b1 - keep, first), b1)  # what later windows need, to the ring
        self._sums[tail % ring] = abf[:, tail - first].transpose(1, 0, 2)
        last = b1 - n_blocks  # windows first .. last end in [b0, b1): window k starts at block k
        if last < first:
            return None
        count = last - first + 1
        out = abf[0, :count].copy()
        if n_blocks > 1:
            out += abf[1, 1 : count + 1]
        for j in range(2, n_blocks):
            out += abf[2, j : count + j]
        return self._finish_windows(out, first, last, t, t_first)

    def _many_block_sums(self, b0: int, b1: int, abf: np.ndarray) -> None:
        """A, B, F rows of blocks [b0, b1) into ``abf``, shape (3, b1 - b0, n_cols).

        One slot at a time: its terms (in one scratch array; the envelope's are its rows),
        then one stacked matrix product of the A, B and F rows of its block matrix with every
        block's terms, written straight into the feature's columns.
        """
        hop, n_ch = self.hop, self.n_channels
        n_new = b1 - b0
        start = b0 * hop - 2 - self._signal.origin
        planes = self._signal.rows[:, start : start + n_new * hop + 2]
        if self._needs_diffs:
            samples = planes[0]
            np.subtract(samples[1:], samples[:-1], out=planes[1, 1:])
        scratch = np.empty((n_new * hop, n_ch))
        for name, f, matrix in self._slot_sums:
            if name == "env_mean":
                first = b0 * hop - self._envelope.origin
                terms = self._envelope.rows[0, first : first + n_new * hop]
            else:
                terms = self._slot_terms(name, planes, scratch)
            out = abf[:, :, f * n_ch : (f + 1) * n_ch].transpose(1, 0, 2)
            np.matmul(matrix, terms.reshape(n_new, hop, n_ch), out=out)

    def _slot_terms(self, name: str, planes: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Per-sample terms of feature ``name`` for the rows of ``planes`` past its first 2.

        ``planes[0]``: the samples, ``planes[1]``: their differences (row i: x[i] - x[i-1]);
        the same expressions as :meth:`_block_sums` and :meth:`_sign_terms`.
        """
        x, diffs = planes[0], planes[1] if self._needs_diffs else None
        if name == "rms":
            return np.multiply(x[2:], x[2:], out=out)
        if name == "mav":
            return np.abs(x[2:], out=out)
        if name == "wl":
            return np.abs(diffs[2:], out=out)
        if name == "zc":
            if self._zc_threshold > 0:
                out[...] = ((x[1:-1] * x[2:]) < 0) & (np.abs(diffs[2:]) >= self._zc_threshold)
                return out
            np.multiply(x[1:-1], x[2:], out=out)
            return np.less(out, 0.0, out=out)
        # ssc, centred on the previous sample
        before, after = diffs[1:-1], diffs[2:]
        if self._ssc_threshold > 0:
            out[...] = ((before * after) < 0) & (
                np.maximum(np.abs(before), np.abs(after)) >= self._ssc_threshold
            )
            return out
        np.multiply(before, after, out=out)
        return np.less(out, 0.0, out=out)

    def _block_sums(self, b0: int, b1: int, out: np.ndarray) -> None:
        """A, B, F rows of blocks [b0, b1) into ``out``, shape (b1 - b0, 3, n_cols)."""
        hop, n_ch = self.hop, self.n_channels
        n_new = b1 - b0
        terms = self._scratch.get(n_new)
        if terms is None:
            terms = np.empty((self._n_slots, n_new * hop, n_ch))
            if n_new == 1:  # the live case: keep it
                self._scratch[n_new] = terms
        # Plane 0: the 2 samples before the blocks, then the blocks; plane 1: differences,
        # row i holding x[i] - x[i - 1] (row 0 unused).
        start = b0 * hop - 2 - self._signal.origin
        planes = self._signal.rows[:, start : start + n_new * hop + 2]
        samples = planes[0]
        x = samples[2:]
        if self._needs_diffs:
            np.subtract(samples[1:], samples[:-1], out=planes[1, 1:])
        slot = self._slot_of
        if slot[0] >= 0:  # env_mean
            first = b0 * hop - self._envelope.origin
            terms[slot[0]] = self._envelope.rows[0, first : first + n_new * hop]
        if slot[1] >= 0:  # rms
            np.multiply(x, x, out=terms[slot[1]])
        if self._pair_abs:  # |x| and |dx| (mav, wl)
            np.abs(planes[:, 2:], out=terms[slot[2] : slot[2] + 2])
        else:
            if slot[2] >= 0:
                np.abs(x, out=terms[slot[2]])
            if slot[3] >= 0:
                np.abs(planes[1, 2:], out=terms[slot[3]])
        if self._pair_sign:  # x[i-1] * x[i] < 0 and dx[i-1] * dx[i] < 0 (zc, ssc)
            products = terms[slot[4] : slot[4] + 2]
            np.multiply(planes[:, 1:-1], planes[:, 2:], out=products)
            np.less(products, 0.0, out=products)
        elif slot[4] >= 0 or slot[5] >= 0:
            self._sign_terms(planes, terms)
        if n_new == 1:
            sums = np.matmul(self._block_matrix, terms)  # (n_slots, n_rows, n_channels)
            sums.reshape(-1).take(self._pick, out=out[0])
            return
        # (n_slots, n_new, n_rows, n_channels): each block's sums at block * block_size
        sums = np.matmul(
            self._block_matrix[:, None], terms.reshape(self._n_slots, n_new, hop, n_ch)
        )
        block_size = sums[0, 0].size
        index = self._pick_slot * (n_new * block_size) + self._pick_rest
        sums.reshape(-1).take(np.arange(n_new)[:, None, None] * block_size + index, out=out)

    def _sign_terms(self, planes: np.ndarray, terms: np.ndarray) -> None:
        """Zero-crossing and slope-sign-change terms one by one (with thresholds)."""
        slot = self._slot
        x, diffs = planes[0], planes[1]
        if "zc" in slot:
            term = terms[slot["zc"]]
            if self._zc_threshold > 0:
                term[...] = ((x[1:-1] * x[2:]) < 0) & (np.abs(diffs[2:]) >= self._zc_threshold)
            else:
                np.multiply(x[1:-1], x[2:], out=term)
                np.less(term, 0.0, out=term)
        if "ssc" in slot:  # centred on the previous sample
            term = terms[slot["ssc"]]
            before, after = diffs[1:-1], diffs[2:]
            if self._ssc_threshold > 0:
                term[...] = ((before * after) < 0) & (
                    np.maximum(np.abs(before), np.abs(after)) >= self._ssc_threshold
                )
            else:
                np.multiply(before, after, out=term)
                np.less(term, 0.0, out=term)

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
    def _finish_windows(self, out: np.ndarray, first: int, last: int, t,
                        t_first: int) -> FeatureBatch:
        """Windows ``first``..``last`` from their summed features ``out`` (RMS still squared)."""
        if self._rms_columns is not None:
            rms = out[:, self._rms_columns]
            np.sqrt(rms, out=rms)
        starts = np.arange(first * self.hop, (last + 1) * self.hop, self.hop, dtype=np.int64)
        return FeatureBatch(
            t_end=t[starts + (self.length - 1 - t_first)],
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
