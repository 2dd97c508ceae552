"""Signal-quality shares of a recorded stream: non-finite, clipped, flat and dropped samples.

Modality-agnostic: each figure is a share (0 … 1) computed from the samples and timestamps
alone, so it means the same for an EMG armband and a CTG monitor.

- **NaN share**: non-finite samples (NaN, ±inf) / all samples. The pipeline replaces them
  before filtering and flags the windows that held them.
- **Clipping share**: samples held at the channel's extreme value. For integer data
  (``channel_format`` int8 … int64) the extreme is the format's rail (e.g. -128 and 127 for the
  Myo armband's int8), where every finite sample counts: the rule the live per-window check
  uses (:func:`biosig.dsp.quality.at_rails`, which flags a window when more than a share of
  its samples are at a rail). For float data the rail is unknown, so the
  observed minimum and maximum count, but only in runs of at least ``min_run`` equal samples
  (a natural peak is a single sample; a saturated amplifier holds its value). A run of zeros is
  not clipping: that is a lost signal (e.g. CTG FHR = 0), which the flat share counts.
- **Flat share**: blocks of ``block_s`` seconds (at least 16 samples) x channels in which a channel does not change
  at all (peak-to-peak 0): a disconnected electrode or a lost trace. ``flat_channels`` lists the
  channels flat over the whole recording.
- **Dropout share**: samples missing from the timestamp sequence (gaps longer than 1.5 sample
  periods) / the samples the nominal rate expects. NaN for irregular streams (rate 0).
"""

from __future__ import annotations

import warnings

import numpy as np

from biosig.dsp.quality import at_rails, integer_rails
from biosig.io.recording import Stream

#: Fewest samples in a flat-test block.
MIN_BLOCK = 16


def nonfinite_share(data: np.ndarray) -> np.ndarray:
    """Share of non-finite samples per channel, shape (n_channels,)."""
    if data.shape[0] == 0:
        return np.zeros(data.shape[1])
    return np.mean(~np.isfinite(data), axis=0)


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each True of a 1-D mask, the length of the run of Trues it belongs to (0 elsewhere)."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    lengths = np.zeros(mask.shape[0], dtype=np.int64)
    # The Trues of the mask are the runs' samples in order: each run repeats its length.
    lengths[mask] = np.repeat(stops - starts, stops - starts)
    return lengths


def clipping_share(data: np.ndarray, channel_format: str = "double64", min_run: int = 3) -> np.ndarray:
    """Share of samples held at the channel's extreme value, per channel (see module docstring).

    Parameters
    ----------
    data : ndarray, shape (n_samples, n_channels)
        Samples in the channels' units.
    channel_format : str
        The stream's value format; integer formats clip at their rails.
    min_run : int
        For float data: fewest consecutive equal samples at an extreme that count as clipped.
    """
    n, n_channels = data.shape
    out = np.zeros(n_channels)
    if n == 0:
        return out
    rails = integer_rails(channel_format)
    if rails is not None:
        return np.mean(at_rails(data, *rails), axis=0)
    for ch in range(n_channels):
        x = data[:, ch]
        finite = np.isfinite(x)
        if not finite.any():
            continue
        clipped = np.zeros(n, dtype=bool)
        for extreme in {float(np.min(x[finite])), float(np.max(x[finite]))}:
            if extreme == 0.0:
                continue  # a zero trace is a lost signal, counted as flat
            at = x == extreme
            clipped |= at & (_run_lengths(at) >= min_run)
        out[ch] = clipped.mean()
    return out


def flat_block_share(data: np.ndarray, srate: float, block_s: float = 1.0) -> np.ndarray:
    """Share of ``block_s`` blocks in which each channel does not change at all, per channel.

    A block made only of non-finite samples is not flat (the NaN share counts it); an
    incomplete last block counts only if it holds at least two samples.
    """
    n, n_channels = data.shape
    # At least MIN_BLOCK samples: a few samples of a slow trace (CTG at 4 Hz) are often equal
    # by quantisation alone.
    size = max(MIN_BLOCK, int(round(block_s * srate))) if srate > 0 else max(2, n)
    n_blocks = n // size
    tails = [data[n_blocks * size:]] if n - n_blocks * size >= 2 else []
    blocks = [data[: n_blocks * size].reshape(n_blocks, size, n_channels)] if n_blocks else []
    flat_counts = np.zeros(n_channels)
    total = 0
    with warnings.catch_warnings():
        # An all-NaN block is expected here (the NaN share counts it), not worth a warning.
        warnings.filterwarnings("ignore", message="All-NaN slice")
        for part in blocks + [t[None] for t in tails]:
            ptp = np.nanmax(part, axis=1) - np.nanmin(part, axis=1)
            flat_counts += np.sum(ptp == 0, axis=0)
            total += part.shape[0]
    return flat_counts / total if total else np.zeros(n_channels)


def dropout_share(timestamps: np.ndarray, srate: float) -> tuple[float, int]:
    """Share of samples missing from gaps in the timestamps, and their count.

    A gap longer than 1.5 sample periods is missing ``round(gap * srate) - 1`` samples.

    Returns
    -------
    share : float
        Missing / (present + missing); NaN for an irregular stream (``srate`` 0).
    n_missing : int
    """
    if srate <= 0:
        return float("nan"), 0
    n = timestamps.shape[0]
    if n < 2:
        return 0.0, 0
    gaps = np.diff(timestamps) * srate
    long = gaps > 1.5
    missing = int(np.sum(np.round(gaps[long]) - 1))
    return missing / (n + missing), missing


def signal_quality(stream: Stream, channels=None, *, block_s: float = 1.0, min_run: int = 3) -> dict:
    """Quality figures of one stream (see the module docstring).

    Parameters
    ----------
    stream : Stream
        The recorded signal.
    channels : sequence of str or None
        Channels to assess (those the model uses); None: all.
    block_s : float
        Block length of the flat-channel test in seconds.
    min_run : int
        Shortest run at a float channel's extreme that counts as clipping.

    Returns
    -------
    dict
        ``nan_share``, ``clipping_share``, ``flat_share``, ``dropout_share`` (floats in [0, 1]
        over all assessed channels), ``n_missing_samples``, ``flat_channels`` (channels flat
        over the whole recording) and ``per_channel`` ({label: {nan, clipping, flat}}).
    """
    labels = list(stream.channel_labels if channels is None else channels)
    index = [stream.channel_labels.index(c) for c in labels]
    data = stream.data[:, index]
    nan = nonfinite_share(data)
    clip = clipping_share(data, stream.channel_format, min_run)
    flat = flat_block_share(data, stream.srate, block_s)
    drop, n_missing = dropout_share(stream.timestamps, stream.srate)
    whole_flat = [label for label, share in zip(labels, flat) if share == 1.0]
    return {
        "nan_share": float(np.mean(nan)) if labels else 0.0,
        "clipping_share": float(np.mean(clip)) if labels else 0.0,
        "flat_share": float(np.mean(flat)) if labels else 0.0,
        "dropout_share": float(drop),
        "n_missing_samples": int(n_missing),
        "flat_channels": whole_flat,
        "per_channel": {
            label: {"nan": float(a), "clipping": float(b), "flat": float(c)}
            for label, a, b, c in zip(labels, nan, clip, flat)
        },
    }
