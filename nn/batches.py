"""The minibatches of an epoch: shuffled, gathered, augmented, here or one step ahead.

:class:`Batches` draws each epoch's permutation from the caller's generator and
gathers each minibatch into a preallocated buffer, then ``augment``s it. With
``prefetch=True`` a background thread prepares up to :data:`DEPTH` minibatches ahead
(numpy releases the GIL in its array operations), making the same random draws in
the same order while the training thread draws none, so a seed gives the same
weights with or without prefetching.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from nn.errors import InputError

__all__ = ["Augment", "Batches"]

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""``augment(batch, rng) -> batch``: transforms one (b, d) minibatch."""

DEPTH = 2
"""How many prepared minibatches may wait for the training thread."""

_DONE = object()


class Batches:
    """The shuffled minibatches of ``X`` (n, d), one epoch per :meth:`epoch` call.

    Parameters
    ----------
    X:
        Training inputs (n, d) in ``dtype``; read only.
    batch_size:
        Rows per minibatch (the last one of an epoch may be shorter).
    augment:
        Optional transformation of each gathered minibatch.
    prefetch:
        Prepare minibatches in a background thread, up to :data:`DEPTH` ahead.
    """

    def __init__(
        self,
        X: np.ndarray,
        batch_size: int,
        augment: Augment | None = None,
        *,
        prefetch: bool = False,
    ) -> None:
        self.X = X
        self.batch_size = batch_size
        self.augment = augment
        self.prefetch = prefetch
        # Buffers in use at once: one in training, ``DEPTH`` queued, one being filled.
        count = DEPTH + 2 if prefetch else 1
        self._buffers = [np.empty((batch_size, X.shape[1]), dtype=X.dtype) for _ in range(count)]

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, Iterator[np.ndarray]]:
        """Draw the epoch's permutation; return it with an iterator over its minibatches.

        Each minibatch is (b, d) in ``X``'s dtype, rows ``order[start:start + b]`` of
        ``X``, augmented. Consume the iterator to its end (or close it) before the next
        call: with prefetching, closing it stops the background thread.
        """
        order = rng.permutation(self.X.shape[0])
        made = self._make(order, rng)
        return order, (self._ahead(made) if self.prefetch else made)

    def _make(self, order: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
        n, bs = self.X.shape[0], self.batch_size
        for number, start in enumerate(range(0, n, bs)):
            buffer = self._buffers[number % len(self._buffers)]
            rows = order[start : start + bs]
            out = buffer[: len(rows)]
            xb = np.take(self.X, rows, axis=0, out=out, mode="clip")  # valid indices
            if self.augment is not None:
                xb = np.asarray(self.augment(xb, rng))
                if xb.shape != out.shape:
                    raise InputError(f"augment returned shape {xb.shape}, expected {out.shape}")
                xb = xb.astype(self.X.dtype, copy=False)
            yield xb

    def _ahead(self, made: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """``made``'s items, produced by a background thread at most :data:`DEPTH` ahead."""
        ready: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in made:
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put(_DONE)
            except BaseException as exc:  # handed to the training thread, raised there
                ready.put(exc)

        thread = threading.Thread(target=produce, name="minibatch-prefetch", daemon=True)
        thread.start()
        try:
            while (item := ready.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()
