"""Discrete-event engine: a virtual clock, one event heap, one seeded RNG.

Invariants
----------
* Time only moves forward, and only when an event is popped: ``now`` is the
  time of the event being processed. Nothing reads the wall clock.
* Events with equal times run in the order they were scheduled (a sequence
  number breaks ties), so a run is a pure function of its inputs and seed.
* All randomness of a simulation comes from :attr:`Engine.rng`, one
  ``random.Random`` seeded once; nothing touches the module-level ``random``.
* Every run loop is bounded by a time horizon and an event budget.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from hashmesh.errors import InvalidArgumentError

Callback = Callable[..., Any]


class Engine:
    """A virtual clock plus a heap of ``(time, seq, callback, args)`` entries."""

    __slots__ = ("_heap", "_seq", "events_run", "now", "rng", "seed")

    def __init__(self, seed: int, start: float = 0.0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = float(start)
        self._heap: list[tuple[float, int, Callback, tuple[Any, ...]]] = []
        self._seq = 0
        self.events_run = 0

    def at(self, when: float, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` at virtual time ``when`` (never in the past)."""
        if when < self.now:
            when = self.now
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, callback, args))

    def after(self, delay: float, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` ``delay`` seconds of virtual time from now."""
        if delay < 0:
            raise InvalidArgumentError(f"negative delay {delay}")
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay, self._seq, callback, args))

    def pending(self) -> int:
        """Number of scheduled events (including stale ones their owners will skip)."""
        return len(self._heap)

    def next_time(self) -> float | None:
        """Time of the earliest scheduled event, or None when idle."""
        return self._heap[0][0] if self._heap else None

    def run_until(self, horizon: float, max_events: int = 50_000_000) -> int:
        """Process events with time <= ``horizon``; then set the clock to ``horizon``.

        Returns the number of events processed. Raises :class:`InvalidArgumentError`
        if the event budget is exhausted (a runaway simulation).
        """
        heap = self._heap
        pop = heapq.heappop
        count = 0
        while heap and heap[0][0] <= horizon:
            if count >= max_events:
                raise InvalidArgumentError(f"event budget of {max_events} exhausted")
            when, _, callback, args = pop(heap)
            self.now = when
            callback(*args)
            count += 1
        if horizon > self.now:
            self.now = horizon
        self.events_run += count
        return count

    def run_while(
        self, condition: Callable[[], bool], horizon: float, max_events: int = 50_000_000
    ) -> int:
        """Process events while ``condition()`` holds and time <= ``horizon``.

        The clock stays at the last processed event (it does not jump to the horizon).
        """
        heap = self._heap
        pop = heapq.heappop
        count = 0
        while heap and heap[0][0] <= horizon and condition():
            if count >= max_events:
                raise InvalidArgumentError(f"event budget of {max_events} exhausted")
            when, _, callback, args = pop(heap)
            self.now = when
            callback(*args)
            count += 1
        self.events_run += count
        return count
