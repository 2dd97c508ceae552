"""LSL outlets: publish a recorded stream, or the classifier's results for other programs.

* :func:`make_outlet` opens an outlet for a :class:`Stream` or :class:`Markers`, with its
  metadata and in its own value format (so samples stay bit-identical).
* :class:`ResultsOutlet` publishes one sample per classified window: the posterior of every
  class, the entropy of the posterior and the predicted class index (optionally the OOD score
  and flag and the rejection flag), plus a marker stream carrying the predicted label as text.
"""

from __future__ import annotations

import logging

import numpy as np
import pylsl

from biosig._checks import BiosigError, check_int
from biosig.io.recording import Markers, Stream
from biosig.stream.lsl_info import channel_info, default_source_id, stream_info_for

logger = logging.getLogger(__name__)

__all__ = ["ResultsOutlet", "make_outlet"]


def make_outlet(
    stream: Stream | Markers, *, source_id: str | None = None, chunk_size: int = 0
) -> pylsl.StreamOutlet:
    """Open an LSL outlet that publishes ``stream`` with its metadata.

    Parameters
    ----------
    stream : Stream or Markers
        A numeric stream is published with its name, type, nominal rate (Hz), channel labels,
        units and types, in its ``channel_format``; push its samples in that format's dtype
        (see :func:`biosig.stream.lsl_info.numpy_dtype`) to keep them bit-identical. A marker
        stream becomes a one-channel irregular string stream.
    source_id : str or None
        Source id of the outlet (lets inlets recover it when it is re-created). None uses the
        stream's own ``source_id``.
    chunk_size : int
        Preferred transmission chunk size in samples; 0 sends each push as one chunk.

    Returns
    -------
    pylsl.StreamOutlet
        The outlet; it is visible on the network until it is garbage collected.
    """
    chunk_size = check_int(chunk_size, "chunk_size", minimum=0)
    info = stream_info_for(stream, source_id=source_id)
    outlet = pylsl.StreamOutlet(info, chunk_size=chunk_size)
    logger.debug("opened outlet %r (source_id %r)", stream.name, info.source_id())
    return outlet


class ResultsOutlet:
    """Publish classification results on LSL, one sample per window.

    Two outlets are opened:

    * ``name`` (type ``"Classifier"``, irregular rate, float32): per window the posterior
      probability of each class, the entropy of the posterior and the predicted class index,
      in channels labelled ``p(<class>)`` …, ``entropy``, ``predicted``; with ``with_ood``
      also ``ood_score`` (the model's out-of-distribution score), ``ood`` (1 above the model's
      threshold) and ``rejected`` (1: no decision, ``predicted`` is -1);
    * ``<name>-labels`` (type ``"Markers"``, string): the predicted class name, with the same
      timestamp; nothing for a rejected window.

    Parameters
    ----------
    class_names : list of str
        Classes in posterior column order.
    name : str
        Name of the numeric results stream.
    source_id : str or None
        Source id of the results stream (the labels stream gets ``<source_id>-labels``).
        None uses ``"<name>@<hostname>"``.
    entropy_unit : str
        Unit written in the entropy channel's metadata (``"nat"`` for the natural logarithm,
        ``"bit"`` for log2), as computed by the caller.
    with_ood : bool
        Add the ``ood_score``, ``ood`` and ``rejected`` channels after ``predicted``.

    Examples
    --------
    >>> outlet = ResultsOutlet(["rest", "fist"])                       # doctest: +SKIP
    >>> outlet.push(pylsl.local_clock(), [0.2, 0.8], 0.50, 1)          # doctest: +SKIP
    """

    def __init__(
        self,
        class_names,
        name: str = "biosig-results",
        source_id: str | None = None,
        *,
        entropy_unit: str = "nat",
        with_ood: bool = False,
    ):
        self.class_names = [str(c) for c in class_names]
        if not self.class_names:
            raise BiosigError("ResultsOutlet needs at least one class name")
        if len(set(self.class_names)) != len(self.class_names):
            raise BiosigError(f"class names must be distinct, got {self.class_names}")
        self.name = str(name)
        self.source_id = default_source_id(self.name) if source_id is None else str(source_id)
        self.with_ood = bool(with_ood)
        self.channel_labels = [f"p({c})" for c in self.class_names] + ["entropy", "predicted"]
        n_classes = len(self.class_names)
        units = ["probability"] * n_classes + [entropy_unit, "index"]
        types = ["posterior"] * n_classes + ["entropy", "class"]
        if self.with_ood:
            self.channel_labels += ["ood_score", "ood", "rejected"]
            units += ["score", "flag", "flag"]
            types += ["ood_score", "ood", "rejected"]
        info = channel_info(
            self.name,
            "Classifier",
            self.channel_labels,
            channel_format="float32",
            source_id=self.source_id,
            channel_units=units,
            channel_types=types,
        )
        classes = info.desc().append_child("classes")
        for class_name in self.class_names:
            classes.append_child_value("class", class_name)
        self._values = pylsl.StreamOutlet(info)
        label_info = channel_info(
            f"{self.name}-labels",
            "Markers",
            ["predicted"],
            channel_format="string",
            source_id=f"{self.source_id}-labels",
        )
        self._labels = pylsl.StreamOutlet(label_info)
        # One reusable sample buffer: push() runs once per window on the live path.
        self._sample = np.zeros(len(self.channel_labels), dtype=np.float32)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def push(self, t_end: float, posteriors, entropy: float, predicted_index: int, *,
             ood_score: float = float("nan"), ood_flag: bool = False,
             rejected: bool = False) -> None:
        """Publish the result of one window.

        Parameters
        ----------
        t_end : float
            LSL time (seconds, ``pylsl.local_clock`` domain) of the window's last sample; used
            as the timestamp of both samples.
        posteriors : array_like, shape (n_classes,)
            Posterior probability of each class.
        entropy : float
            Entropy of the posterior, in ``entropy_unit``.
        predicted_index : int
            Index of the predicted class in ``class_names``; -1 when ``rejected``.
        ood_score : float
            The model's out-of-distribution score (sent only ``with_ood``).
        ood_flag : bool
            True if the window is out of distribution (sent only ``with_ood``).
        rejected : bool
            The model made no decision: ``predicted_index`` may be -1, and no label is sent.
        """
        if self._values is None:
            raise BiosigError(f"results outlet {self.name!r} is closed")
        posteriors = np.asarray(posteriors, dtype=np.float32).reshape(-1)
        if posteriors.shape[0] != self.n_classes:
            raise BiosigError(
                f"got {posteriors.shape[0]} posteriors for {self.n_classes} classes "
                f"{self.class_names}"
            )
        index = check_int(predicted_index, "predicted_index", minimum=-1 if rejected else 0)
        if index >= self.n_classes:
            raise BiosigError(
                f"predicted_index {index} is out of range for {self.n_classes} classes"
            )
        n = self.n_classes
        self._sample[:n] = posteriors
        self._sample[n] = entropy
        self._sample[n + 1] = -1 if rejected else index
        if self.with_ood:
            self._sample[n + 2 :] = (ood_score, bool(ood_flag), bool(rejected))
        timestamp = float(t_end)
        self._values.push_sample(self._sample, timestamp)
        if not rejected:
            self._labels.push_sample([self.class_names[index]], timestamp)

    def have_consumers(self) -> bool:
        """True if some inlet subscribes to the numeric results stream."""
        return self._values is not None and self._values.have_consumers()

    def close(self) -> None:
        """Take both outlets off the network."""
        # Dropping the last reference destroys the liblsl outlet, which unlists it.
        self._values = None
        self._labels = None

    def __enter__(self) -> "ResultsOutlet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "ON" if self._values is not None else "OFF"
        return f"<ResultsOutlet {self.name!r} | {state} | {self.n_classes} classes>"
