"""Routers of the iteration-level instance model: which instance of a pool serves a request.

A router is called once per *routing epoch* with the requests arriving in it and a snapshot of
the pool's state at the epoch's start (:class:`PoolView`). ``epoch_s`` is how stale that state
may be: ``inf`` for open-loop routers (round-robin, hashing: one call for the whole trace, the
fastest path), a fraction of a second for load-aware ones (join-shortest-queue, least
outstanding tokens, a learned policy), as a real front end polls its replicas' load. A router
returns one instance index per request, or ``REJECT`` (an admission policy, e.g. per tenant,
turning the request away; the simulator records it as never served), or ``DEFER`` (a front-end
queue holding the request back: the simulator offers it again, with the next epoch's arrivals,
at the next epoch; the queue-ordering hook of :mod:`planner.sim.fairness`). Routers that never
defer see each request once, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
Array = npt.NDArray[np.float64]
REJECT = -1
DEFER = -2


@dataclass(frozen=True)
class Arrivals:
    """The requests of one routing epoch (positions into the trace, arrival order)."""

    index: IntArray
    arrival_s: Array
    prompt: IntArray
    output: IntArray
    tier: IntArray
    tenant: IntArray


@dataclass(frozen=True)
class PoolView:
    """The pool at the start of a routing epoch, one entry per instance: only what a server
    knows (:meth:`planner.sim.instances._Pool.view`). No field depends on an output length
    still to come; a router adds its own estimates of the decode work it sent."""

    time_s: float
    waiting: IntArray  # requests routed there and not yet admitted to the batch
    running: IntArray  # requests in the batch
    kv_used: Array  # KV tokens held: prompt tokens prefilled + tokens generated (running)
    outstanding_tokens: Array  # prompt tokens still to prefill (waiting and under way)
    waiting_prompt: Array = field(default_factory=lambda: np.zeros(0))  # prompt tokens queued
    prefill_left: Array = field(default_factory=lambda: np.zeros(0))  # of the prefill under way
    # requests (positions in the trace, as Arrivals.index) that ended since the previous view
    ended: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        for name in ("waiting_prompt", "prefill_left"):
            if len(getattr(self, name)) == 0:
                object.__setattr__(self, name, np.zeros(len(self.waiting)))


class Router(Protocol):
    epoch_s: float

    def route(self, arrivals: Arrivals, view: PoolView) -> IntArray: ...


@dataclass
class RoundRobin:
    """Request i of the trace to instance (start + i) mod n: open loop, one call."""

    start: int = 0
    epoch_s: float = float("inf")

    def route(self, arrivals: Arrivals, view: PoolView) -> IntArray:
        n = len(view.waiting)
        out = (self.start + np.arange(len(arrivals.index), dtype=np.int64)) % n
        self.start = int((self.start + len(arrivals.index)) % n)
        return out
