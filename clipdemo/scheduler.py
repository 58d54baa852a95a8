"""Fair sharing of the one model: who runs next, and how many may wait.

Holds `Priority` (interactive or bulk), `ModelGate` and `Busy`. The gate runs one model call at a
time (on 2 vCPUs overlapping calls only slow each other down). Long work is cut into bulk chunks of
well under a second, and the two kinds take turns: when a chunk ends, every interactive call that
waited through it goes first; then the next chunk goes before interactive calls that came later. So
no interactive call ever waits behind more than one chunk of bulk work, and bulk work gets one chunk
in after each round of interactive calls, however many visitors there are. At most `max_waiting`
calls may wait; one more is refused with a sentence. No model code, no gradio: `clipdemo.service` holds the gate around every
model call.
"""

from __future__ import annotations

import collections
import enum
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Priority", "ModelGate", "Busy", "GateStats"]


class Priority(enum.Enum):
    """How a model call is scheduled."""

    INTERACTIVE = "interactive"  # a visitor waits for this answer: predictions, views, ordinary label sets
    BULK = "bulk"  # one chunk of long work (evaluation, a large label set)


class Busy(RuntimeError):
    """Too many model calls are already waiting; the message is the sentence to show."""


class GateStats:
    """Counters for tests and figures."""

    def __init__(self) -> None:
        self.grants = {p: 0 for p in Priority}
        self.refused = 0
        self.max_bulk_chunks_waited = 0  # the most bulk chunks any interactive call waited through (goal: <= 1)


class ModelGate:
    """One model call at a time; bulk chunks and rounds of interactive calls take turns."""

    def __init__(self, max_waiting: int = 32):
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._holder: Priority | None = None
        self._bulk_done = 0  # bulk chunks finished so far
        self._interactive = collections.Counter()  # waiting interactive calls, by `_bulk_done` at arrival
        self._bulk_waiting = 0
        self.stats = GateStats()

    @property
    def waiting(self) -> int:
        """How many calls wait for the model now."""
        with self._cond:
            return self._count_waiting()

    def _count_waiting(self) -> int:  # with self._cond held
        return sum(self._interactive.values()) + self._bulk_waiting

    def _bulk_may_start(self) -> bool:
        # Interactive calls that saw a bulk chunk finish while they waited go first.
        return self._holder is None and all(seen >= self._bulk_done for seen in self._interactive)

    def _interactive_may_start(self) -> bool:
        # A bulk chunk whose turn has come (no interactive call waited through the last one) goes first:
        # the calls it passes have waited through no chunk yet, and will wait through this one only.
        return self._holder is None and not (self._bulk_waiting and self._bulk_may_start())

    @contextmanager
    def hold(self, priority: Priority = Priority.INTERACTIVE) -> Iterator[None]:
        """Wait for the model (Busy if too many already wait), hold it for one call, hand it on."""
        with self._cond:
            waiting = self._count_waiting()
            if self._holder is not None and waiting >= self.max_waiting:
                self.stats.refused += 1
                raise Busy(f"The Space is busy: {waiting} requests are waiting for the model; "
                           "try again in a minute.")
            if priority is Priority.INTERACTIVE:
                arrival = self._bulk_done  # a chunk running now finishes later, so it counts as one waited through
                self._interactive[arrival] += 1
                try:
                    while not self._interactive_may_start():
                        self._cond.wait()
                finally:
                    self._interactive[arrival] -= 1
                    if not self._interactive[arrival]:
                        del self._interactive[arrival]
                self.stats.max_bulk_chunks_waited = max(self.stats.max_bulk_chunks_waited, self._bulk_done - arrival)
            else:
                self._bulk_waiting += 1
                try:
                    while not self._bulk_may_start():
                        self._cond.wait()
                finally:
                    self._bulk_waiting -= 1
            self._holder = priority
            self.stats.grants[priority] += 1
        try:
            yield
        finally:
            with self._cond:
                self._holder = None
                if priority is Priority.BULK:
                    self._bulk_done += 1
                self._cond.notify_all()
