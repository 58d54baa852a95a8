"""Fair sharing of the one model: who runs next, and how many may wait (the policy in full: docs/security.md).

One model call at a time (on 2 vCPUs overlapping calls only slow each other down). Bulk chunks and rounds of
interactive calls take turns, so an interactive call waits behind at most one chunk; background chunks (the search
index) go only when no other call waits, once no interactive call has ended for `quiet_s` or they have waited
`max_defer_s`. An interactive call is refused when its expected wait (the holder's rest, every interactive call
ahead, at most one bulk chunk, each a measured moving average) is over `max_wait_s`. No model code, no gradio.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..core.words import Refusal

__all__ = ["Priority", "ModelGate", "GateStats", "MAX_WAIT_S", "MAX_WAITING", "QUIET_S", "MAX_DEFER_S"]

MAX_WAIT_S = 30.0  # an interactive call expected to wait longer than this is refused (CLIPDEMO_MAX_WAIT_S)
MAX_WAITING = 256  # calls that may wait at once, of any kind (CLIPDEMO_MAX_WAITING): a bound for memory
QUIET_S = 0.5  # a background chunk waits until no interactive call has ended for this long ...
MAX_DEFER_S = 5.0  # ... or until it has waited this long (then it goes when no other call waits)


class Priority(enum.Enum):
    """How a model call is scheduled."""

    INTERACTIVE = "interactive"  # a visitor waits for this answer: predictions, views, ordinary label sets
    BULK = "bulk"  # one chunk of long work (evaluation, a large label set)
    BACKGROUND = "background"  # one chunk of work nobody waits for (the search index): after everything else


class GateStats:
    """Counters for tests and figures."""

    def __init__(self) -> None:
        self.grants = {p: 0 for p in Priority}
        self.refused = 0
        self.max_bulk_chunks_waited = 0  # the most chunks (bulk or background) any interactive call waited through
        # (goal: <= 1)


class ModelGate:
    """One model call at a time; bulk chunks and rounds of interactive calls take turns."""

    # What a call of each kind is taken to hold the model for before any has been measured (ViT-B/32 on 2
    # vCPUs: one image, or a bulk chunk of 8); each measured call then moves the average a fifth of the way.
    PRIOR_S = {Priority.INTERACTIVE: 0.1, Priority.BULK: 0.4, Priority.BACKGROUND: 0.4}

    def __init__(self, max_waiting: int = MAX_WAITING, max_wait_s: float = MAX_WAIT_S,
                 clock: Callable[[], float] = time.monotonic, quiet_s: float = QUIET_S,
                 max_defer_s: float = MAX_DEFER_S):
        self.max_waiting, self.max_wait_s, self._clock = max_waiting, max_wait_s, clock
        self.quiet_s, self.max_defer_s = quiet_s, max_defer_s
        self._took = dict(self.PRIOR_S)  # seconds a call of each kind holds the model (moving average)
        self._since = 0.0  # when the holder took the model
        self._cond = threading.Condition()
        self._holder: Priority | None = None
        self._bulk_done = 0  # chunks (bulk or background) finished so far
        self._interactive = collections.Counter()  # waiting interactive calls, by `_bulk_done` at arrival
        self._bulk_waiting = 0
        self._background_waiting = 0
        self._interactive_ended = float("-inf")  # when the last interactive call handed the model on
        self.stats = GateStats()

    @property
    def waiting(self) -> int:
        """How many calls wait for the model now."""
        with self._cond:
            return self._count_waiting()

    def _count_waiting(self) -> int:  # with self._cond held
        return sum(self._interactive.values()) + self._bulk_waiting + self._background_waiting

    def call_seconds(self, priority: Priority) -> float:
        """How long a call of `priority` holds the model, as measured (a moving average of the last ~5)."""
        with self._cond:
            return self._took[priority]

    def expected_wait(self, priority: Priority = Priority.INTERACTIVE) -> float:
        """Seconds a call of `priority` arriving now would wait for the model (see the module docstring)."""
        with self._cond:
            return self._expected_wait(priority)

    def _expected_wait(self, priority: Priority) -> float:  # with self._cond held
        took = self._took
        rest = 0.0 if self._holder is None else max(0.0, took[self._holder] - (self._clock() - self._since))
        ahead = sum(self._interactive.values()) * took[Priority.INTERACTIVE]
        if priority is Priority.INTERACTIVE:  # at most one bulk chunk goes before it (a background one never)
            return rest + ahead + (took[Priority.BULK] if self._bulk_waiting else 0.0)
        bulk = self._bulk_waiting * took[Priority.BULK]
        if priority is Priority.BULK:
            return rest + ahead + bulk
        return rest + ahead + bulk + self._background_waiting * took[Priority.BACKGROUND]

    def _bulk_may_start(self) -> bool:
        # Interactive calls that saw a bulk chunk finish while they waited go first.
        return self._holder is None and all(seen >= self._bulk_done for seen in self._interactive)

    def _background_may_start(self, arrived: float) -> tuple[bool, float]:
        """Whether a background chunk that arrived at `arrived` may start now, and else how long to sleep before
        asking again (its turn may come by the clock alone)."""
        if self._holder is not None or sum(self._interactive.values()) or self._bulk_waiting:
            return False, self.max_defer_s
        now = self._clock()
        quiet_in = self._interactive_ended + self.quiet_s - now
        defer_in = arrived + self.max_defer_s - now
        if quiet_in <= 0 or defer_in <= 0:
            return True, 0.0
        return False, min(quiet_in, defer_in)

    def _interactive_may_start(self) -> bool:
        # A bulk chunk whose turn has come (no interactive call waited through the last one) goes first:
        # the calls it passes have waited through no chunk yet, and will wait through this one only.
        return self._holder is None and not (self._bulk_waiting and self._bulk_may_start())

    @contextmanager
    def hold(self, priority: Priority = Priority.INTERACTIVE) -> Iterator[None]:
        """Wait for the model (refused as "busy" if the wait is expected to be too long, or too many already wait), hold it
        for one call, hand it on."""
        with self._cond:
            waiting = self._count_waiting()
            if self._holder is not None:
                expected = self._expected_wait(priority)
                too_long = priority is Priority.INTERACTIVE and expected > self.max_wait_s
                # a background job (one thread) is never refused: refused, it would end, and nobody would retry
                full = waiting >= self.max_waiting and priority is not Priority.BACKGROUND
                if too_long or full:
                    self.stats.refused += 1
                    raise Refusal("busy", f"{expected:.1f}" if expected < 10 else f"{expected:.0f}", waiting)
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
            elif priority is Priority.BACKGROUND:
                self._background_waiting += 1
                arrived = self._clock()
                try:
                    while not (turn := self._background_may_start(arrived))[0]:
                        self._cond.wait(turn[1])
                finally:
                    self._background_waiting -= 1
            else:
                self._bulk_waiting += 1
                try:
                    while not self._bulk_may_start():
                        self._cond.wait()
                finally:
                    self._bulk_waiting -= 1
            self._holder, self._since = priority, self._clock()
            self.stats.grants[priority] += 1
        try:
            yield
        finally:
            with self._cond:
                took = self._clock() - self._since
                self._took[priority] += (took - self._took[priority]) / 5  # a moving average of the last ~5 calls
                self._holder = None
                if priority is Priority.INTERACTIVE:
                    self._interactive_ended = self._clock()
                else:
                    self._bulk_done += 1
                self._cond.notify_all()
