"""Bounded buffers of the latest windows' features and posteriors, for the live explainer.

Two implementations with one interface (``push``, ``snapshot``, ``len``, ``total``, ``clear``):

- :class:`WindowRing`: process-local, guarded by a :class:`threading.Lock` (the thread worker);
- :class:`SharedWindowRing`: in :mod:`multiprocessing.shared_memory`, written by the pipeline's
  processing thread and read by the explainer's worker process.

The shared ring has exactly one writer (the sink) and is read by a *sequence lock*: the writer
makes a sequence number odd, writes, and makes it even again; a reader copies the rows and
keeps the copy only if the number was even and unchanged across the copy, else copies again.
The writer therefore never waits on anything (a reader cannot block it, and a reader that dies
mid-copy leaves nothing locked), which is what the pipeline's processing thread needs: a
cross-process lock held by a worker killed at the wrong moment would stall it for good.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from biosig._checks import check_int

logger = logging.getLogger(__name__)

#: Header of the shared ring: int64 sequence, next slot, windows held, windows ever pushed.
_HEADER = 4
_SEQ, _NEXT, _COUNT, _TOTAL = range(_HEADER)
#: Copies a reader tries before it gives up on one snapshot (each retry sleeps briefly).
_SNAPSHOT_ATTEMPTS = 200
_RETRY_SLEEP_S = 2e-4


def _write_rows(dst_arrays, src_arrays, start: int, capacity: int) -> None:
    """Copy ``n`` rows into ring slots ``start, start+1, ...`` (wrapping at ``capacity``)."""
    n = src_arrays[0].shape[0]
    first = min(n, capacity - start)  # rows before the wrap-around
    for src, dst in zip(src_arrays, dst_arrays):
        dst[start:start + first] = src[:first]
        dst[:n - first] = src[first:]


def _ordered(arrays, next_slot: int, count: int, capacity: int):
    """The ``count`` held rows of each array, oldest first (copies)."""
    start = (next_slot - count) % capacity
    order = (np.arange(count) + start) % capacity
    return [a[order] for a in arrays]


class WindowRing:
    """Bounded FIFO of the latest windows' features and posteriors (thread-safe).

    Storage is allocated on the first batch (when the widths are known) and then reused: a
    push is at most two slice copies under the lock.

    Parameters
    ----------
    capacity : int
        Windows kept; older ones are overwritten.
    """

    def __init__(self, capacity: int):
        self.capacity = check_int(capacity, "buffer_windows", minimum=1)
        self._lock = threading.Lock()
        self._features: np.ndarray | None = None
        self._posteriors: np.ndarray | None = None
        self._t_end = np.full(self.capacity, np.nan)
        self._next = 0  # slot the next window goes to
        self._count = 0  # windows held (<= capacity)
        self.total = 0  # windows ever pushed

    def __len__(self) -> int:
        return self._count

    def push(self, features: np.ndarray, posteriors: np.ndarray, t_end: np.ndarray) -> None:
        """Append rows (only the last ``capacity`` of a larger batch are kept)."""
        n = features.shape[0]
        if n > self.capacity:
            features, posteriors, t_end = (a[-self.capacity:] for a in (features, posteriors, t_end))
        with self._lock:
            if self._features is None or self._features.shape[1] != features.shape[1] \
                    or self._posteriors.shape[1] != posteriors.shape[1]:
                self._allocate(features.shape[1], posteriors.shape[1])
            _write_rows((self._features, self._posteriors, self._t_end),
                        (features, posteriors, t_end), self._next, self.capacity)
            self._next = (self._next + features.shape[0]) % self.capacity
            self._count = min(self._count + features.shape[0], self.capacity)
            self.total += n

    def _allocate(self, n_features: int, n_classes: int) -> None:
        self._features = np.empty((self.capacity, n_features))
        self._posteriors = np.empty((self.capacity, n_classes))
        self._next = self._count = 0

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Copies of the held windows, oldest first: features, posteriors, t_end, total pushed."""
        with self._lock:
            if self._features is None or self._count == 0:
                return np.empty((0, 0)), np.empty((0, 0)), np.empty(0), self.total
            features, posteriors, t_end = _ordered(
                (self._features, self._posteriors, self._t_end), self._next, self._count,
                self.capacity)
            return features, posteriors, t_end, self.total

    def clear(self) -> None:
        with self._lock:
            self._next = self._count = 0


class SharedWindowRing:
    """A :class:`WindowRing` in shared memory: one writer process, readers anywhere.

    Create it with :meth:`create` in the process that pushes (it owns the block and must
    :meth:`unlink` it), open it elsewhere with :meth:`attach`. Widths are fixed at creation.

    Parameters
    ----------
    shm : multiprocessing.shared_memory.SharedMemory
        The block (header, features, posteriors, t_end, float64 / int64).
    capacity, n_features, n_classes : int
        Layout of the block.
    owner : bool
        Whether this handle created the block (and unlinks it).
    """

    def __init__(self, shm: shared_memory.SharedMemory, capacity: int, n_features: int,
                 n_classes: int, owner: bool):
        self._shm = shm
        self.capacity, self.n_features, self.n_classes = capacity, n_features, n_classes
        self.owner = owner
        self._writer_lock = threading.Lock()  # several threads of the owner may push
        buffer = shm.buf
        self._header = np.ndarray(_HEADER, dtype=np.int64, buffer=buffer)
        offset = self._header.nbytes
        self._features = np.ndarray((capacity, n_features), dtype=np.float64, buffer=buffer,
                                    offset=offset)
        offset += self._features.nbytes
        self._posteriors = np.ndarray((capacity, n_classes), dtype=np.float64, buffer=buffer,
                                      offset=offset)
        offset += self._posteriors.nbytes
        self._t_end = np.ndarray(capacity, dtype=np.float64, buffer=buffer, offset=offset)

    @staticmethod
    def nbytes(capacity: int, n_features: int, n_classes: int) -> int:
        return 8 * (_HEADER + capacity * (n_features + n_classes + 1))

    @classmethod
    def create(cls, capacity: int, n_features: int, n_classes: int) -> SharedWindowRing:
        """A new, empty ring in a fresh shared-memory block (the caller unlinks it)."""
        capacity = check_int(capacity, "buffer_windows", minimum=1)
        n_features = check_int(n_features, "n_features", minimum=1)
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        shm = shared_memory.SharedMemory(create=True,
                                         size=cls.nbytes(capacity, n_features, n_classes))
        ring = cls(shm, capacity, n_features, n_classes, owner=True)
        ring._header[:] = 0
        ring._t_end[:] = np.nan
        return ring

    @classmethod
    def attach(cls, name: str, capacity: int, n_features: int, n_classes: int, *,
               track: bool = True) -> SharedWindowRing:
        """Open a ring created elsewhere (its creator unlinks it).

        ``track=False`` in a process that is not a :mod:`multiprocessing` child of the creator:
        such a process has a resource tracker of its own, which would unlink the block when
        the process exits (a restarted worker would find it gone) and warn about a "leak".
        Within the creator's process or its multiprocessing children, keep the default: they
        share the creator's tracker, and untracking there would drop its registration.
        """
        if track:
            shm = shared_memory.SharedMemory(name=name)
        elif sys.version_info >= (3, 13):
            shm = shared_memory.SharedMemory(name=name, track=False)
        else:
            shm = shared_memory.SharedMemory(name=name)
            resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
        return cls(shm, capacity, n_features, n_classes, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def layout(self) -> tuple[str, int, int, int]:
        """What :meth:`attach` needs: name, capacity, n_features, n_classes."""
        return self.name, self.capacity, self.n_features, self.n_classes

    def __len__(self) -> int:
        return int(self._header[_COUNT])

    @property
    def total(self) -> int:
        """Windows ever pushed."""
        return int(self._header[_TOTAL])

    def fits(self, features: np.ndarray, posteriors: np.ndarray) -> bool:
        """Whether a batch has this ring's widths."""
        return features.shape[1] == self.n_features and posteriors.shape[1] == self.n_classes

    def push(self, features: np.ndarray, posteriors: np.ndarray, t_end: np.ndarray) -> None:
        """Append rows (the newest ``capacity`` of a larger batch). Never waits for a reader."""
        n = features.shape[0]
        if n > self.capacity:
            features, posteriors, t_end = (a[-self.capacity:] for a in (features, posteriors, t_end))
        header = self._header
        with self._writer_lock:
            header[_SEQ] += 1  # odd: a write is under way
            _write_rows((self._features, self._posteriors, self._t_end),
                        (features, posteriors, t_end), int(header[_NEXT]), self.capacity)
            header[_NEXT] = (header[_NEXT] + features.shape[0]) % self.capacity
            header[_COUNT] = min(int(header[_COUNT]) + features.shape[0], self.capacity)
            header[_TOTAL] += n
            header[_SEQ] += 1  # even again: consistent

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Copies of the held windows, oldest first: features, posteriors, t_end, total pushed.

        Raises
        ------
        TimeoutError
            If every one of many attempts overlapped a write (a writer pushing without pause).
        """
        header = self._header
        for _ in range(_SNAPSHOT_ATTEMPTS):
            sequence = int(header[_SEQ])
            if sequence % 2 == 0:
                next_slot, count, total = (int(v) for v in header[[_NEXT, _COUNT, _TOTAL]])
                if count == 0:
                    copies = [np.empty((0, 0)), np.empty((0, 0)), np.empty(0)]
                else:
                    copies = _ordered((self._features, self._posteriors, self._t_end), next_slot,
                                      count, self.capacity)
                if int(header[_SEQ]) == sequence:
                    return copies[0], copies[1], copies[2], total
            time.sleep(_RETRY_SLEEP_S)
        raise TimeoutError("the window ring was being written during every snapshot attempt")

    def clear(self) -> None:
        with self._writer_lock:
            self._header[_SEQ] += 1
            self._header[_NEXT] = self._header[_COUNT] = 0
            self._header[_SEQ] += 1

    def close(self) -> None:
        """Drop this handle's mapping; the ring is unusable afterwards (a reader's last step)."""
        self._header = self._features = self._posteriors = self._t_end = None
        try:
            self._shm.close()
        except BufferError:  # a view still exported: the mapping goes with the process
            logger.debug("shared ring %s: mapping still in use at close", self.name)

    def unlink(self) -> None:
        """Remove the block's name from the system (owner only; idempotent).

        The mapping stays valid in every process that has it open, so the owner's writer can
        go on pushing (nobody reads any more) until the ring is garbage-collected.
        """
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass
