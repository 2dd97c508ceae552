"""Streaming FHR/UC cleaning: signal loss, beat-to-beat artefacts, short-gap interpolation.

:class:`CTGPreprocessor` takes chunks of (FHR, UC) samples and returns the *cleaned* samples
it can settle, with the state carried between chunks, so a stream fed in chunks of any size
gives exactly the samples of a one-shot call. Per FHR sample, in order:

1. **Signal loss.** Non-finite values, 0 (the monitors' code for "no signal") and values
   outside ``[fhr_min_bpm, fhr_max_bpm]`` (50-240 bpm by default, the range kept by the
   CTU-UHB and FHRMA preprocessing) are lost (code :data:`LOSS`).
2. **Beat-to-beat artefacts** (Chudacek et al. 2011; Spilka et al. 2012, the rule used on
   CTU-UHB): a sample more than ``jump_bpm`` (25 bpm) from the previous sample, when that one
   was valid, starts an artefact (code :data:`ARTEFACT`). The artefact lasts until
   ``stable_samples`` (5) consecutive valid samples each differ from their predecessor by less
   than ``stable_bpm`` (10 bpm); the sample completing that run is the first accepted again.
   After signal loss the first valid sample is accepted (there is no neighbour to compare to).
3. **Gap interpolation.** A stretch of lost/artefact samples of at most ``max_gap_s`` (15 s)
   with valid samples on both sides is filled linearly between them; longer stretches (and a
   stretch at the start of the stream) stay NaN. The decision needs the end of the stretch, so
   samples of an open stretch are held back (at most ``max_gap_s``) and released when it
   closes or grows too long: output lags input by at most ``max_gap_s``.

UC samples that are non-finite or <= 0 (the CTU-UHB code for a missing tocogram) become NaN;
they travel with the FHR samples (same delay), never interpolated.

Maternal-heart-rate-like segments need both ends of a segment, so they are found per window
(:mod:`biosig.ctg.features`), not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from biosig._checks import BiosigError, check_positive
from biosig.ctg.config import CTGConfig

#: Sample codes of :attr:`CleanChunk.code`.
VALID, LOSS, ARTEFACT, MATERNAL = 0, 1, 2, 3


@dataclass
class CleanChunk:
    """Settled samples returned by :meth:`CTGPreprocessor.process`.

    Attributes
    ----------
    fhr : ndarray, shape (n,)
        Cleaned FHR in bpm: valid samples, interpolated short gaps, NaN elsewhere.
    code : ndarray of int8, shape (n,)
        :data:`VALID`, :data:`LOSS` or :data:`ARTEFACT` per sample (before interpolation).
    uc : ndarray, shape (n,)
        Tocogram, NaN where missing (all NaN without a UC channel).
    t : ndarray, shape (n,)
        Sample times in seconds.
    """

    fhr: np.ndarray
    code: np.ndarray
    uc: np.ndarray
    t: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D boolean array."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


class CTGPreprocessor:
    """Clean an FHR (+ UC) stream chunk by chunk.

    Parameters
    ----------
    config : CTGConfig
        Loss range, artefact rule and interpolation limit.
    fs : float
        Sampling rate in Hz (4 Hz for CTU-UHB).

    Attributes
    ----------
    n_in, n_out : int
        Samples received and settled so far.
    n_nonfinite : int
        Non-finite input values seen (both channels).
    """

    def __init__(self, config: CTGConfig, fs: float):
        if not isinstance(config, CTGConfig):
            raise BiosigError(f"config must be a CTGConfig, got {type(config).__name__}")
        self.config = config
        self.fs = check_positive(fs, "fs")
        self.max_gap = int(math.floor(config.max_gap_s * self.fs))
        self.reset()

    def reset(self) -> "CTGPreprocessor":
        """Forget the stream."""
        self.n_in = 0
        self.n_out = 0
        self.n_nonfinite = 0
        # artefact rule state
        self._prev = math.nan          # previous sample, NaN if it was lost
        self._rejecting = False
        self._stable = 0
        # gap state
        self._left = math.nan          # last settled valid FHR value
        self._run_before = 0           # settled missing samples just before the held ones
        self._held = CleanChunk(np.zeros(0), np.zeros(0, np.int8), np.zeros(0), np.zeros(0))
        return self

    @property
    def n_held(self) -> int:
        """Samples waiting for the end of an open gap."""
        return len(self._held)

    def process(self, fhr, uc, t) -> CleanChunk:
        """Add samples; return those that are settled (possibly fewer, possibly earlier ones).

        Parameters
        ----------
        fhr : array_like, shape (n,)
            Fetal heart rate in bpm.
        uc : array_like, shape (n,) or None
            Tocogram; None without a UC channel.
        t : array_like, shape (n,)
            Sample times in seconds.
        """
        fhr = np.asarray(fhr, dtype=np.float64).reshape(-1)
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        n = fhr.shape[0]
        uc = np.full(n, np.nan) if uc is None else np.asarray(uc, dtype=np.float64).reshape(-1)
        if t.shape[0] != n or uc.shape[0] != n:
            raise BiosigError(f"FHR, UC and timestamps differ in length: {n}, {uc.shape[0]}, {t.shape[0]}")
        self.n_in += n
        self.n_nonfinite += int(n - np.isfinite(fhr).sum()) + int(n - np.isfinite(uc).sum())
        code = self._classify(fhr)
        uc = np.where(np.isfinite(uc) & (uc > 0), uc, np.nan)
        held = self._held
        chunk = CleanChunk(
            fhr=np.concatenate((held.fhr, np.where(code == VALID, fhr, np.nan))),
            code=np.concatenate((held.code, code)),
            uc=np.concatenate((held.uc, uc)),
            t=np.concatenate((held.t, t)),
        )
        return self._settle(chunk)

    def _classify(self, fhr: np.ndarray) -> np.ndarray:
        """Loss and artefact code of each sample (sequential: the artefact rule has state)."""
        cfg = self.config
        lost = ~(np.isfinite(fhr) & (fhr >= cfg.fhr_min_bpm) & (fhr <= cfg.fhr_max_bpm))
        code = np.where(lost, LOSS, VALID).astype(np.int8)
        prev, rejecting, stable = self._prev, self._rejecting, self._stable
        jump, stable_bpm, need = cfg.jump_bpm, cfg.stable_bpm, cfg.stable_samples
        # Fast path: no artefact open and no jump anywhere in the chunk.
        steps = np.abs(np.diff(np.concatenate(([prev], np.where(lost, np.nan, fhr)))))
        if not rejecting and not np.any(steps > jump):
            if fhr.size:
                self._prev = math.nan if lost[-1] else float(fhr[-1])
            return code
        for i in range(fhr.shape[0]):
            if lost[i]:
                prev, stable = math.nan, 0
                continue
            x = float(fhr[i])
            step = abs(x - prev)  # NaN after a loss: comparisons are False
            if rejecting:
                stable = stable + 1 if step < stable_bpm else 1
                if stable >= need:
                    rejecting = False
                else:
                    code[i] = ARTEFACT
            elif step > jump:
                rejecting, stable = True, 1
                code[i] = ARTEFACT
            prev = x
        self._prev, self._rejecting, self._stable = prev, rejecting, stable
        return code

    def _settle(self, chunk: CleanChunk) -> CleanChunk:
        """Interpolate closed short gaps; hold an open gap that may still be interpolated."""
        n = len(chunk)
        fhr = chunk.fhr
        starts, ends = _runs(chunk.code != VALID)
        release = n
        for a, b in zip(starts.tolist(), ends.tolist()):
            length = b - a + (self._run_before if a == 0 else 0)
            left = self._left if a == 0 else fhr[a - 1]
            fillable = length <= self.max_gap and math.isfinite(left)
            if b < n:
                if fillable:
                    right = fhr[b]
                    fhr[a:b] = left + (right - left) * np.arange(1, b - a + 1) / (b - a + 1)
            elif fillable:
                release = a  # open gap: wait for its end
        out = CleanChunk(chunk.fhr[:release], chunk.code[:release], chunk.uc[:release], chunk.t[:release])
        self._held = CleanChunk(chunk.fhr[release:], chunk.code[release:], chunk.uc[release:], chunk.t[release:])
        if release:
            valid = np.flatnonzero(out.code == VALID)
            if valid.size:
                self._left = float(out.fhr[valid[-1]])
            if release < n:
                self._run_before = 0
            else:
                tail = release - 1 - (valid[-1] if valid.size else -1)
                self._run_before = tail + (self._run_before if not valid.size else 0)
        self.n_out += release
        return out

    def __repr__(self) -> str:
        return (f"<CTGPreprocessor | {self.fs:g} Hz | {self.n_in} in, {self.n_out} out, "
                f"{self.n_held} held>")
