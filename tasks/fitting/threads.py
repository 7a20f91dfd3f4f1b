"""How many BLAS threads a training uses: a fixed count, or ``"auto"``.

A training that runs alone should use the cores it has: with two threads, OpenBLAS
runs the minibatch products of the 784-300-10 network (``(128, 784) @ (784, 300)``
and its transposes) about 1.5 times faster than with one. But OpenBLAS threads
spin-wait for each other at the end of every product, and each product lasts
well under a millisecond: when other processes keep a core busy, a thread that
lost its core stalls every product, and two threads become several times *slower*
than one (``bench/thread_speed.py`` measures both, idle and with a core kept busy;
the README gives the figures). No OpenBLAS setting removes that wait (its
``OPENBLAS_THREAD_TIMEOUT`` only decides when idle threads go to sleep), and the
load average reacts within a minute, not a minibatch. So ``"auto"`` measures
instead: :class:`BlasPacer` runs between minibatches, times a window of steps
with one thread and a window with every core, keeps the one with the faster
typical step (the mean step less the slowest: the mean sets the pace, and under
contention the steps of several threads are fast most of the time and many times
slower now and then), and probes the other again after a hold that doubles each
time the probe loses (a losing probe is cut short after a few slow steps). While
it holds every core it keeps watching: ``early`` steps in a row, or a window of
steps, slower than ``margin`` times one thread's typical step (another process
took a core) send it back to one thread at once, not at the end of the hold. Even
a short probe costs tens of one-thread steps when the machine is busy, so while
the load average says other processes keep half a core or more busy, the pacer
stays at one thread without probing.

A thread count changes how OpenBLAS blocks the sum over the 784 inputs of the
first product, so 1 and 2 threads give weights that differ in the last bits
(about 1e-8 after an epoch) and metrics that agree to about the seed-to-seed
spread only; a fixed ``threads`` gives bit-identical runs for a seed. With
augmentation the next minibatch is prepared in a thread of its own
(:class:`nn.batches.Batches`), so ``"auto"`` leaves it a core: BLAS gets the
others (one on a two-core machine).
"""

from __future__ import annotations

import collections
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator

from threadpoolctl import ThreadpoolController

from nn.errors import ConfigError

__all__ = ["AUTO", "BlasPacer", "available_cores", "blas_threads", "others_load"]

AUTO = "auto"
"""``threads`` value: every core (less one for a prefetching thread), one when that is faster."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class BlasPacer:
    """Called before each minibatch: keeps BLAS at whichever of ``high`` and 1 threads is faster.

    It times the steps (from one call to the next): first ``window`` steps with one
    thread, then ``window`` with ``high`` threads; it keeps the count with the faster
    typical step (:func:`_typical`) for ``hold`` steps, then times the other again. A
    timing is cut short once ``early`` of its steps were all slower than ``margin``
    times the kept count's typical step: under load the slow count can be ten times
    slower, and the probe should cost a few steps, not a window. A hold of ``high``
    threads ends the same way as soon as ``early`` steps in a row, or the last
    ``window`` steps typically, were slower than ``margin`` times one thread's
    typical step (a core was taken while it held). The hold doubles, up to
    ``max_hold``, each time the other count loses, and starts over when it wins. The
    first ``skip`` steps after a change are not timed (the threads wake up).
    ``set_threads(n)`` applies a count; ``clock`` gives seconds. ``others(threads)``
    estimates how many cores other processes keep busy while this one runs
    ``threads`` (default: :func:`others_load`); while it is half a core or more,
    ``high`` is not even probed: under contention a probe of two threads was
    measured to cost tens of one-thread steps.
    """

    def __init__(
        self,
        high: int,
        set_threads: Callable[[int], None],
        *,
        window: int = 16,
        hold: int = 256,
        max_hold: int = 8192,
        skip: int = 1,
        early: int = 3,
        margin: float = 1.3,
        clock: Callable[[], float] = time.perf_counter,
        others: Callable[[int], float] | None = None,
    ) -> None:
        if high < 2:
            raise ConfigError(f"high={high} must be >= 2 threads (nothing to choose from)")
        self.high = high
        self.threads = 1
        self.seconds: dict[int, float] = {}
        """Typical seconds per step measured with each thread count (latest timing)."""
        self.switches = 0
        self._set = set_threads
        self._clock = clock
        self._window, self._base_hold, self._max_hold = window, hold, max_hold
        self._skip, self._early, self._margin = skip, early, margin
        self._hold = hold
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._last: float | None = None
        self._measuring = True
        self._left = window
        self._skipping = 0
        self._others = others_load if others is None else others
        set_threads(1)

    def __call__(self) -> None:
        now = self._clock()
        if self._last is not None:
            self._record(now - self._last)
        self._last = now

    def _other(self) -> int:
        return 1 if self.threads == self.high else self.high

    def _record(self, seconds: float) -> None:
        if self._skipping:
            self._skipping -= 1
            return
        self._recent.append(seconds)
        self._left -= 1
        kept = self.seconds.get(self._other()) if self._measuring else None
        if not self._measuring and self.threads == self.high:  # holding: still faster?
            one = self.seconds.get(1)
            slow = one is not None and (
                self._losing(one)
                or (
                    len(self._recent) == self._window
                    and self._left % self._window == 0
                    and _typical(self._recent) > self._margin * one
                )
            )
            if slow:  # the load changed: back to one thread now
                self.seconds[self.high] = _typical(self._recent)
                self._hold = min(2 * self._hold, self._max_hold)
                self._switch(1, measuring=False)
                return
        losing = kept is not None and self._losing(kept)
        if self._left > 0 and not losing:
            return
        self.seconds[self.threads] = _typical(self._recent)
        if not self._measuring or kept is None:  # time the other count (again)
            if self.threads == 1 and self._others(1) >= 0.5:  # busy: one thread, no probe
                self._hold = min(2 * self._hold, self._max_hold)
                self._switch(1, measuring=False)
            else:
                self._switch(self._other(), measuring=True)
            return
        if self.seconds[self.threads] < kept:  # the count just timed wins
            self._hold = self._base_hold
            self._switch(self.threads, measuring=False)
        else:
            self._hold = min(2 * self._hold, self._max_hold)
            self._switch(self._other(), measuring=False)

    def _losing(self, other: float) -> bool:
        """Whether the last ``early`` steps were all slower than ``margin`` times ``other``."""
        recent = self._recent
        return len(recent) >= self._early and min(list(recent)[-self._early :]) > (
            self._margin * other
        )

    def _switch(self, threads: int, *, measuring: bool) -> None:
        self._measuring = measuring
        self._left = self._window if measuring else max(self._hold, self._window)
        self._recent.clear()
        if threads != self.threads:
            self._set(threads)
            self.threads = threads
            self.switches += 1
            self._skipping = self._skip


def _typical(steps: Iterable[float]) -> float:
    """Mean seconds per step, less the slowest step when there are four or more.

    A mean, not a median: under contention the steps of several threads are fast
    most of the time and many times slower now and then (a thread waiting for its
    core), and it is the mean that sets the pace. Dropping the slowest step keeps a
    single hiccup (a page fault, a collection) from deciding.
    """
    values = sorted(steps)
    if len(values) >= 4:
        values.pop()
    return statistics.fmean(values)


def others_load(threads: int) -> float:
    """Cores kept busy by other processes: the 1-minute load average less ``threads``.

    0 where the system has no load average. The average lags by up to a minute,
    which the pacer's holds (hundreds to thousands of steps) absorb.
    """
    try:
        return max(0.0, os.getloadavg()[0] - threads)
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return 0.0


def check_threads(threads: int | str | None) -> None:
    """Refuse anything but None, ``"auto"`` or a count >= 1."""
    if threads is None or threads == AUTO:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads={threads!r} must be a number of threads >= 1, or 'auto'")


@contextlib.contextmanager
def blas_threads(
    threads: int | str | None, *, prefetch: bool = False
) -> Iterator[BlasPacer | None]:
    """BLAS threads inside the block; yields the pacer to call before each step, or None.

    Parameters
    ----------
    threads:
        None: leave BLAS as it is; a count: exactly that many; ``"auto"``: the
        available cores (less one with ``prefetch``), or one while that is faster
        (:class:`BlasPacer`).
    prefetch:
        Whether a thread of the training prepares minibatches besides BLAS.
    """
    check_threads(threads)
    if threads is None:
        yield None
        return
    controller = ThreadpoolController().select(user_api="blas")
    high = max(1, available_cores() - int(prefetch)) if threads == AUTO else int(threads)
    with controller.limit(limits=high):
        if threads != AUTO or high == 1:
            yield None
            return

        def set_threads(count: int) -> None:
            for library in controller.lib_controllers:
                library.set_num_threads(count)

        yield BlasPacer(high, set_threads)
