"""Fair admission across tenants on the iteration-level instance model: FCFS, VTC, FairServe.

A :class:`Gateway` is a router (:mod:`planner.sim.routing`) with a front-end queue: every routing
epoch it sees the requests waiting at the gateway plus the epoch's arrivals, releases as many as
the instances have room for (each instance keeps at most ``depth`` requests waiting in its own
FIFO; the released ones go to the instances with the fewest waiting) in the order its
:class:`Scheduler` chooses, holds the rest back (``DEFER``) and may turn some away (``REJECT``,
an admission throttle). Three schedulers:

* :class:`Fcfs` — arrival order (the baseline; what a vLLM-style server does alone);
* :class:`Vtc` — the Virtual Token Counter (Sheng et al., OSDI 2024): a counter per tenant of the
  service it received, ``c_u += w_in · prompt + w_out · output`` (``w_in = 1``, ``w_out = 2``
  as in the paper); the next request released is the oldest one of the *backlogged* tenant with
  the least counter; a tenant that becomes backlogged has its counter lifted to the least
  counter among the tenants already backlogged (to the floor of the last backlogged period when
  none is), so idling banks no credit. The paper counts output tokens as they are generated,
  from the real decode; the gateway sees no per-token progress, so plain VTC (no
  ``expected_output``) charges each request's *actual* output at release: the same totals,
  counted ahead of generation, never a prediction;
* :class:`FairServe` — after FairServe (arXiv 2411.15997): the same counter *weighted* by the
  tenant's entitlement learned from its application profile, ``c_u += cost / w_u`` with
  ``w_u`` the tenant's usual token rate (so tenants with heavy applications are not held to an
  equal absolute share), plus application-aware throttling: a tenant whose share of the cost
  admitted over the last ``window_s`` (all tenants) exceeds ``headroom`` × its usual share
  (from the profiles; a share, so a level shift of every tenant's traffic throttles nobody),
  while other tenants have requests waiting, has its new user actions turned away (every
  tenant keeps an allowance of ``min_allowance`` requests of its mean cost per window); a
  request arriving within ``action_gap_s`` of the tenant's previous admitted request, while
  that action has fewer than the profile's requests per action (rounded up), belongs to the
  same user action and is never cut off mid-action. *Others wait* is read over a window, not
  at the instant (``contention_s``): the throttle acts while the pool was contended at any
  epoch of the last ``contention_s`` (another tenant held back at the gateway, or requests
  waiting in the instances' own queues, :meth:`FairServe.observe`), since a flood hurts the
  others through the batches it fills long before anyone waits at the gateway.

FairServe charges service when a request is released, at ``prompt`` plus the tenant's
*expected* output (the profile's mean; it does not know a request's output length in advance).
Costs are in token units ``w_in · prompt + w_out · output``.

The gateway sees an epoch's arrivals at the epoch's start (as every router of the model does),
so a request may be released up to ``epoch_s`` before it arrives; the instance admits it no
earlier than its arrival.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from planner.sim.routing import DEFER, REJECT, Arrivals, PoolView

IntArray = npt.NDArray[np.int64]
Array = npt.NDArray[np.float64]
W_IN, W_OUT = 1.0, 2.0


@dataclass(frozen=True)
class TenantProfile:
    """A tenant's application profile as learned by ``sql/marts/tenant_profiles.sql``."""

    tenant: int
    requests_per_s: float
    mean_input: float
    mean_output: float
    requests_per_action: float = 1.0
    iwf_share: float = 0.0

    @property
    def cost_per_s(self) -> float:
        """Usual service rate in token units (the tenant's entitlement)."""
        return self.requests_per_s * (W_IN * self.mean_input + W_OUT * self.mean_output)


def cost(prompt: npt.ArrayLike, output: npt.ArrayLike) -> Array:
    return np.asarray(W_IN * np.asarray(prompt) + W_OUT * np.asarray(output), dtype=float)


class Scheduler(Protocol):
    name: str

    def order(self, arrivals: Arrivals, k: int) -> IntArray:
        """Positions into ``arrivals`` of the (at most ``k``) requests to release, in order."""
        ...

    def admit(self, arrivals: Arrivals, fresh: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Which of the ``fresh`` (first-offered) requests are admitted (others rejected)."""
        ...

    def observe(self, view: PoolView) -> None:
        """The pool's state at the epoch's start (before ``admit``)."""
        ...


@dataclass
class Fcfs:
    name: str = "fcfs"

    def order(self, arrivals: Arrivals, k: int) -> IntArray:
        return np.argsort(arrivals.arrival_s, kind="stable")[:k].astype(np.int64)

    def admit(self, arrivals: Arrivals, fresh: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        return np.ones(len(fresh), bool)

    def observe(self, view: PoolView) -> None:
        return None


@dataclass
class Vtc:
    """Weighted virtual token counters (weights 1 for plain VTC); see the module docstring."""

    expected_output: Mapping[int, float] = field(default_factory=dict)
    weight: Mapping[int, float] = field(default_factory=dict)
    name: str = "vtc"
    counter: dict[int, float] = field(default_factory=dict)
    backlogged: set[int] = field(default_factory=set)
    floor: float = 0.0

    def charge(self, tenant: int, prompt: int, output: float) -> float:
        out = self.expected_output.get(tenant, output)
        return float(cost(prompt, out)) / self.weight.get(tenant, 1.0)

    def lift(self, tenants: set[int]) -> None:
        """Counter lift of tenants becoming backlogged (VTC's rule, module docstring)."""
        still = self.backlogged & tenants
        base = min((self.counter.get(u, 0.0) for u in still), default=self.floor)
        for u in tenants - self.backlogged:
            self.counter[u] = max(self.counter.get(u, 0.0), base)

    def order(self, arrivals: Arrivals, k: int) -> IntArray:
        tenants = arrivals.tenant
        present = {int(u) for u in np.unique(tenants)}
        self.lift(present)
        by_arrival = np.argsort(arrivals.arrival_s, kind="stable")
        queues: dict[int, deque[int]] = {u: deque() for u in present}
        for i in by_arrival:
            queues[int(tenants[i])].append(int(i))
        heap = [(self.counter[u], u) for u in present]
        heapq.heapify(heap)
        out: list[int] = []
        while heap and len(out) < k:
            c, u = heapq.heappop(heap)
            i = queues[u].popleft()
            out.append(i)
            c += self.charge(u, int(arrivals.prompt[i]), float(arrivals.output[i]))
            self.counter[u] = c
            if queues[u]:
                heapq.heappush(heap, (c, u))
        self.backlogged = {u for u, q in queues.items() if q}
        if self.backlogged:
            self.floor = min(self.counter[u] for u in self.backlogged)
        return np.asarray(out, np.int64)

    def admit(self, arrivals: Arrivals, fresh: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        return np.ones(len(fresh), bool)

    def observe(self, view: PoolView) -> None:
        return None


@dataclass
class FairServe(Vtc):
    """Weighted service counter plus application-aware throttling (module docstring)."""

    profiles: Mapping[int, TenantProfile] = field(default_factory=dict)
    window_s: float = 600.0
    headroom: float = 3.0
    action_gap_s: float = 1.0
    min_allowance: float = 20.0  # requests of the tenant's mean cost, per window, always
    contention_s: float = 60.0  # the pool counts as contended this long after it last was
    flood_excess: float = 0.05  # offered share above usual (of the window's offered cost)
    flood_cap: float | None = 1.0  # admitted share limit while flooding, × usual share
    name: str = "fairserve"
    _admitted_w: _Window = field(default_factory=lambda: _Window())
    _offered_w: _Window = field(default_factory=lambda: _Window())
    _last: dict[int, float] = field(default_factory=dict)
    _in_action: dict[int, int] = field(default_factory=dict)
    _share: dict[int, float] = field(default_factory=dict)
    _contended_at: float = -np.inf  # the last epoch start at which the pool was contended
    _held: dict[int, float] = field(default_factory=dict)  # tenant -> last epoch it waited
    _now: float = -np.inf  # the current epoch's start (observe)

    def __post_init__(self) -> None:
        total = sum(p.cost_per_s for p in self.profiles.values()) or 1.0
        self._share = {u: p.cost_per_s / total for u, p in self.profiles.items()}

    throttled: int = 0

    @classmethod
    def from_profiles(cls, profiles: Mapping[int, TenantProfile], **kw: Any) -> FairServe:
        total = sum(p.cost_per_s for p in profiles.values()) or 1.0
        n = max(len(profiles), 1)
        weight = {u: max(p.cost_per_s / total * n, 1e-6) for u, p in profiles.items()}
        expected = {u: p.mean_output for u, p in profiles.items()}
        return cls(expected_output=expected, weight=weight, profiles=profiles, **kw)

    def observe(self, view: PoolView) -> None:
        """The pool is contended when requests wait in the instances' own queues."""
        self._now = view.time_s
        if int(np.sum(view.waiting)) > 0:
            self._contended_at = view.time_s

    def admit(self, arrivals: Arrivals, fresh: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        ok = np.ones(len(fresh), bool)
        waiting = {int(u) for u in arrivals.tenant[~fresh]}
        if (~fresh).any():  # requests held back at the gateway: their tenants wait now
            now = max(self._now, float(arrivals.arrival_s[~fresh].max()))
            for u in {int(u) for u in arrivals.tenant[~fresh]}:
                self._held[u] = now
        for i in np.flatnonzero(fresh)[np.argsort(arrivals.arrival_s[fresh], kind="stable")]:
            u, t = int(arrivals.tenant[i]), float(arrivals.arrival_s[i])
            c = float(cost(arrivals.prompt[i], self.expected_output.get(u, arrivals.output[i])))
            self._admitted_w.expire(t - self.window_s)
            self._offered_w.expire(t - self.window_s)
            self._offered_w.add(u, t, c)
            prof = self.profiles.get(u)
            in_action = t - self._last.get(u, -np.inf) <= self.action_gap_s and self._in_action.get(
                u, 0
            ) < np.ceil(prof.requests_per_action if prof else 1.0)
            if (
                prof is not None
                and not in_action
                and self._over(u, c, prof)
                and self._contended(u, t, waiting)
            ):
                ok[i] = False
                self.throttled += 1
                continue
            self._admitted_w.add(u, t, c)
            self._in_action[u] = self._in_action.get(u, 0) + 1 if in_action else 1
            self._last[u] = t
        return ok

    def _contended(self, u: int, t: float, waiting: set[int]) -> bool:
        """Another tenant waits at the gateway now; or, for a tenant :meth:`flooding`, others
        waited (instance queues, or another tenant held at the gateway) within the last
        ``contention_s``."""
        if waiting - {u}:
            return True
        if not (self.flood_cap is not None and self.flooding(u)):
            return False
        recent = t - self.contention_s
        return self._contended_at >= recent or any(
            at >= recent for v, at in self._held.items() if v != u
        )

    def flooding(self, u: int) -> bool:
        """The tenant's *offered* share of the window (rejected requests included) is above
        ``headroom`` × its usual share and above it by more than ``flood_excess`` of the
        window's offered cost."""
        share = self._share.get(u, 0.0)
        offered = self._offered_w.share(u)
        return offered > self.headroom * share and offered - share > self.flood_excess

    def _over(self, u: int, c: float, prof: TenantProfile) -> bool:
        """Admitting cost ``c`` would take the tenant's admitted share of the window above its
        limit: ``headroom`` × its usual share, or its usual share × ``flood_cap`` while it is
        :meth:`flooding`; never below ``min_allowance`` requests of its mean cost."""
        share = self._share.get(u, 0.0)
        limit = self.headroom * share
        if self.flood_cap is not None and self.flooding(u):
            limit = min(limit, self.flood_cap * share)
        mine = self._admitted_w.cost.get(u, 0.0) + c
        return mine > max(
            limit * (self._admitted_w.total + c),
            self.min_allowance * float(cost(prof.mean_input, prof.mean_output)),
        )


@dataclass
class _Window:
    """Cost per tenant and in total over a sliding time window."""

    cost: dict[int, float] = field(default_factory=dict)
    total: float = 0.0
    _events: deque[tuple[float, int, float]] = field(default_factory=deque)

    def add(self, u: int, t: float, c: float) -> None:
        self._events.append((t, u, c))
        self.cost[u] = self.cost.get(u, 0.0) + c
        self.total += c

    def expire(self, before: float) -> None:
        """Forget events at or before ``before``."""
        while self._events and self._events[0][0] <= before:
            _, u, c = self._events.popleft()
            self.cost[u] -= c
            self.total -= c

    def share(self, u: int) -> float:
        return self.cost.get(u, 0.0) / self.total if self.total > 0 else 0.0


@dataclass
class Gateway:
    """A front-end queue releasing requests to a pool in a scheduler's order (module docstring)."""

    scheduler: Scheduler
    depth: int = 4
    epoch_s: float = 0.25
    _seen: int = -1

    def route(self, arrivals: Arrivals, view: PoolView) -> IntArray:
        dest = np.full(len(arrivals.index), DEFER, np.int64)
        fresh = arrivals.index > self._seen
        if fresh.any():
            self._seen = int(arrivals.index[fresh].max())
        self.scheduler.observe(view)
        ok = self.scheduler.admit(arrivals, fresh)
        dest[~ok] = REJECT
        keep = np.flatnonzero(ok)
        room = np.maximum(self.depth - view.waiting, 0)
        k = int(room.sum())
        if k == 0 or len(keep) == 0:
            return dest
        sub = Arrivals(
            arrivals.index[keep],
            arrivals.arrival_s[keep],
            arrivals.prompt[keep],
            arrivals.output[keep],
            arrivals.tier[keep],
            arrivals.tenant[keep],
        )
        picked = keep[self.scheduler.order(sub, k)]
        # slots: instance i appears room[i] times, emptiest queues first
        slots = np.repeat(np.arange(len(room)), room)
        rank = np.concatenate([np.arange(r) for r in room]) if k else np.zeros(0, np.int64)
        slots = slots[np.lexsort((view.waiting[slots], rank))]
        dest[picked] = slots[: len(picked)]
        return dest


def jain(x: npt.ArrayLike) -> float:
    """Jain's fairness index (Σx)² / (n Σx²): 1 when all equal, 1/n when one gets everything."""
    a = np.asarray(x, float)
    if len(a) == 0 or not np.any(a):
        return float("nan")
    return float(a.sum() ** 2 / (len(a) * (a**2).sum()))
