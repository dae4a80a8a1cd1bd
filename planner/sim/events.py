"""Event-driven reference for the fluid simulator: single requests through one serving pool.

The pool is the server the fluid model abstracts (rate C(t) tokens/s, piecewise constant per
minute; tiers by priority, FIFO within a tier), but requests are individual, with their own
arrival instants and token counts, and the rate is shared by a fixed number of concurrent
slots, as continuous batching shares an instance among the requests in its batch. It is slow
(a heap event per request) and exists to check the fluid model:
``tests/planner/test_sim.py::test_fluid_agrees_with_the_event_reference`` replays the same
small trace through both and bounds the difference.

Events at the same instant are ordered by an explicit key ``(time, rank, seq)``: capacity
changes first (rank 0: a minute's new rate applies to everything at that instant), then
completions (rank 1: work that finishes frees the server before anyone new queues), then
arrivals (rank 2), each in the order they were scheduled (``seq``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Kind(IntEnum):
    CAPACITY = 0
    COMPLETION = 1
    ARRIVAL = 2


@dataclass(order=True)
class Event:
    time: float
    rank: int
    seq: int
    kind: Kind = field(compare=False)
    payload: int = field(compare=False, default=-1)  # request index or minute


class EventQueue:
    """A heap of events with the explicit tie-break above."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._seq = itertools.count()

    def push(self, time: float, kind: Kind, payload: int = -1) -> Event:
        event = Event(time, int(kind), next(self._seq), kind, payload)
        heapq.heappush(self._heap, event)
        return event

    def pop(self) -> Event:
        return heapq.heappop(self._heap)

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(frozen=True)
class Requests:
    arrival_s: npt.NDArray[np.float64]  # seconds from the start
    tier: npt.NDArray[np.int64]  # priority: lower serves first
    work: npt.NDArray[np.float64]  # tokens


def simulate_pool(
    requests: Requests,
    capacity_per_minute: npt.NDArray[np.float64],
    max_minutes: int,
    slots: int = 1,
) -> npt.NDArray[np.float64]:
    """Start-of-service time (s) per request (inf if never started within ``max_minutes``).

    The pool has ``slots`` concurrent request slots (instances × batch size) sharing its rate
    C(t) equally (C/slots each); a free slot takes the head of the highest-priority queue,
    FIFO within a tier, without preemption. A request's start of service is when it gets a
    slot; like the fluid model, its time to first token is that wait plus prefill."""
    n = len(requests.arrival_s)
    start = np.full(n, np.inf)
    remaining = requests.work.astype(float).copy()
    queues: dict[int, deque[int]] = {}
    busy: set[int] = set()
    due: dict[int, Event] = {}  # the live completion event per request in service
    events = EventQueue()
    for i in np.argsort(requests.arrival_s, kind="stable"):
        events.push(float(requests.arrival_s[i]), Kind.ARRIVAL, int(i))
    for minute in range(max_minutes):
        events.push(60.0 * minute, Kind.CAPACITY, minute)
    rate = 0.0  # per slot
    now = 0.0

    def schedule(i: int) -> None:
        if rate > 0:
            due[i] = events.push(now + remaining[i] / rate, Kind.COMPLETION, i)
        else:
            due.pop(i, None)

    def fill() -> None:
        while len(busy) < slots:
            tier = next((t for t in sorted(queues) if queues[t]), None)
            if tier is None:
                return
            i = queues[tier].popleft()
            start[i] = now
            busy.add(i)
            schedule(i)

    while events:
        event = events.pop()
        if event.time > 60.0 * max_minutes:
            break
        if event.kind is Kind.COMPLETION and due.get(event.payload) is not event:
            continue  # superseded by a rate change
        for i in busy:
            remaining[i] = max(remaining[i] - rate * (event.time - now), 0.0)
        now = event.time
        if event.kind is Kind.CAPACITY:
            minute = min(event.payload, len(capacity_per_minute) - 1)
            rate = float(capacity_per_minute[minute]) / slots
            for i in busy:
                schedule(i)
        elif event.kind is Kind.COMPLETION:
            busy.discard(event.payload)
            due.pop(event.payload, None)
            remaining[event.payload] = 0.0
        else:
            queues.setdefault(int(requests.tier[event.payload]), deque()).append(event.payload)
        fill()
    return start
