"""The iteration-level reference: requests through continuously batching model instances.

This is the simulator's one reference for how load turns into latency (it replaced the
per-request heap of the first version). One pool of ``n`` identical instances of one model on
one VM type, each running the loop of a vLLM-style server (iteration times from
:class:`planner.sim.profile.InstanceProfile`):

* a request is routed to an instance on arrival (:mod:`planner.sim.routing`) and waits in that
  instance's FIFO queue (first come, first served across tiers, as vLLM schedules);
* at every iteration boundary the instance admits waiting requests that have arrived, in order,
  while the batch has fewer than ``max_batch`` requests, their KV reservation (prompt + output
  tokens) fits in ``kv_tokens``, and the iteration's prompt tokens stay within
  ``max_prefill_tokens`` (one request always may); a request arriving exactly at a boundary is
  admitted there;
* if it admitted any, the iteration is a **prefill** of those requests (decodes pause, as in a
  server without chunked prefill): it lasts ``prefill_s(Σ prompt)`` and ends with each new
  request's first token;
* otherwise, if the batch is not empty, it is a **decode** iteration: every request in the batch
  gets one token; it lasts ``decode_s(batch size, mean context)``; a request leaves the batch
  (and frees its KV) with its last token;
* an idle instance waits for its next request.

Vectorised across instances: every step advances *each* instance by one prefill, or by a run of
identical decode iterations up to its next event (the first completion in its batch, or the
first iteration boundary at or after its next queued request arrives), so the step count is
about the largest number of events of one instance, not of iterations. The decode time of such a
run is taken at its start (the mean context grows by a few tokens within it).

A request with a KV reservation larger than the whole cache, or longer than the model's context
window (prompt + output > ``max_context``: vLLM refuses it), is rejected (never served).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planner.sim.profile import InstanceProfile
from planner.sim.routing import DEFER, REJECT, Arrivals, PoolView, RoundRobin, Router

log = logging.getLogger(__name__)
Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Requests:
    """A trace of single requests (any order; times in seconds from the start)."""

    arrival_s: Array
    prompt: IntArray
    output: IntArray
    tier: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    tenant: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if len(self.prompt) != n or len(self.output) != n:
            raise ValueError("arrival_s, prompt and output must have the same length")
        if n and (np.min(self.prompt) < 1 or np.min(self.output) < 1):
            raise ValueError("every request needs at least one prompt and one output token")
        for name in ("tier", "tenant"):
            if len(getattr(self, name)) == 0:
                object.__setattr__(self, name, np.zeros(n, np.int64))


@dataclass(frozen=True)
class Served:
    """Per request (trace order): the instance (``REJECT`` if turned away), the time of its
    first and last token (inf if never); and the number of vectorised steps taken."""

    instance: IntArray
    arrival_s: Array
    first_token_s: Array
    finish_s: Array
    output: IntArray
    steps: int

    @property
    def ttft_s(self) -> Array:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> Array:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> Array:
        """Mean time per output token after the first (0 for one-token outputs)."""
        with np.errstate(invalid="ignore"):
            return np.where(
                self.output > 1,
                (self.finish_s - self.first_token_s) / np.maximum(self.output - 1, 1),
                0.0,
            )


class _Pool:
    """Mutable state of ``n`` instances: per-instance FIFO queues as linked lists over request
    positions, and a [n, max_batch] slot table of the running batch."""

    def __init__(self, req: Requests, prof: InstanceProfile, n: int) -> None:
        N, B = len(req.arrival_s), prof.max_batch
        self.req, self.prof, self.n = req, prof, n
        self.arrival = req.arrival_s.astype(float)
        self.prompt = req.prompt.astype(np.int64)
        self.output = req.output.astype(np.int64)
        self.need = (self.prompt + self.output).astype(float)
        self.nxt = np.full(N, -1, np.int64)
        self.head = np.full(n, -1, np.int64)
        self.tail = np.full(n, -1, np.int64)
        self.clock = np.zeros(n)
        self.slot = np.full((n, B), -1, np.int64)
        self.left = np.zeros((n, B), np.int64)
        self.ctx = np.zeros((n, B))
        self.nrun = np.zeros(n, np.int64)
        self.kv = np.zeros(n)
        self.first = np.full(N, np.inf)
        self.finish = np.full(N, np.inf)
        self.where = np.full(N, REJECT, np.int64)
        self.queued = np.zeros(n, np.int64)
        self.queued_tokens = np.zeros(n)
        self.queued_prompt = np.zeros(n)
        self.steps = 0

    def view(self, t: float) -> PoolView:
        occ = self.slot >= 0
        running_left = np.where(occ, self.left, 0).sum(axis=1).astype(float)
        return PoolView(
            t,
            self.queued.copy(),
            self.nrun.copy(),
            self.kv.copy(),
            running_left + self.queued_tokens,
            self.queued_prompt.copy(),
        )

    def enqueue(self, ids: IntArray, dest: IntArray) -> None:
        """Append ``ids`` (arrival order) to the queues of instances ``dest``."""
        if len(ids) == 0:
            return
        order = np.argsort(dest, kind="stable")
        ids, dest = ids[order], dest[order]
        same = dest[1:] == dest[:-1]
        self.nxt[ids[:-1][same]] = ids[1:][same]
        starts = np.r_[0, np.flatnonzero(~same) + 1]
        ends = np.r_[starts[1:] - 1, len(ids) - 1]
        inst, first, last = dest[starts], ids[starts], ids[ends]
        empty = self.head[inst] < 0
        self.head[inst[empty]] = first[empty]
        self.nxt[self.tail[inst[~empty]]] = first[~empty]
        self.tail[inst] = last
        self.where[ids] = dest
        self.queued += np.bincount(dest, minlength=self.n)
        self.queued_tokens += np.bincount(dest, weights=self.need[ids], minlength=self.n)
        self.queued_prompt += np.bincount(dest, weights=self.prompt[ids], minlength=self.n)

    def advance(self, until: float) -> None:
        """Run every instance until its clock reaches ``until`` or it has nothing to do."""
        while True:
            live = ((self.nrun > 0) | (self.head >= 0)) & (self.clock < until)
            if not live.any():
                return
            self.steps += 1
            h = np.maximum(self.head, 0)
            head_arrival = np.where(self.head >= 0, self.arrival[h], np.inf)
            jump = live & (self.nrun == 0) & (head_arrival > self.clock)
            self.clock[jump] = head_arrival[jump]
            admitted = self._admit(live)
            if admitted.any():
                self._prefill(np.flatnonzero(admitted))
            decoding = live & ~admitted & (self.nrun > 0)
            if decoding.any():
                self._decode(np.flatnonzero(decoding), until)

    def _admit(self, live: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Admit arrived queue heads while batch, KV and prefill budget allow; returns which
        instances admitted any (their new requests carry ``ctx < 0`` until prefilled)."""
        p = self.prof
        tokens = np.zeros(self.n)
        count = np.zeros(self.n, np.int64)
        cand = live
        while True:
            h = self.head
            hs = np.maximum(h, 0)
            cand = (
                cand
                & (h >= 0)
                & (self.arrival[hs] <= self.clock)
                & (self.nrun < p.max_batch)
                & (self.kv + self.need[hs] <= p.kv_tokens)
                & ((count == 0) | (tokens + self.prompt[hs] <= p.max_prefill_tokens))
            )
            if not cand.any():
                return count > 0
            ii = np.flatnonzero(cand)
            r = h[ii]
            free = np.argmax(self.slot[ii] < 0, axis=1)
            self.slot[ii, free] = r
            self.left[ii, free] = self.output[r] - 1
            self.ctx[ii, free] = -1.0  # marks "admitted in this iteration"
            self.nrun[ii] += 1
            self.kv[ii] += self.need[r]
            tokens[ii] += self.prompt[r]
            count[ii] += 1
            self.head[ii] = self.nxt[r]
            self.queued[ii] -= 1
            self.queued_tokens[ii] -= self.need[r]
            self.queued_prompt[ii] -= self.prompt[r]

    def _prefill(self, ii: IntArray) -> None:
        new = self.ctx[ii] < 0
        rows, cols = np.nonzero(new)
        r = self.slot[ii[rows], cols]
        tokens = np.bincount(rows, weights=self.prompt[r], minlength=len(ii))
        self.clock[ii] += self.prof.prefill_s(tokens)
        self.first[r] = self.clock[ii[rows]]
        self.ctx[ii[rows], cols] = self.prompt[r] + 1.0
        self._retire(ii[rows], cols)

    def _decode(self, ii: IntArray, until: float) -> None:
        slot = self.slot[ii]
        occ = slot >= 0
        b = self.nrun[ii]
        left = self.left[ii]
        mean_ctx = np.where(occ, self.ctx[ii], 0.0).sum(axis=1) / b
        tp = self.prof.decode_s(b.astype(float), mean_ctx)
        k = np.where(occ, left, np.iinfo(np.int64).max).min(axis=1)
        h = self.head[ii]
        hs = np.maximum(h, 0)
        can_take = (
            (h >= 0)
            & (b < self.prof.max_batch)
            & (self.kv[ii] + self.need[hs] <= self.prof.kv_tokens)
        )
        to_arrival = np.maximum(np.ceil((self.arrival[hs] - self.clock[ii]) / tp), 1)
        k = np.where(can_take, np.minimum(k, to_arrival), k)
        if np.isfinite(until):
            k = np.minimum(k, np.maximum(np.ceil((until - self.clock[ii]) / tp), 1))
        k = k.astype(np.int64)
        self.clock[ii] += k * tp
        self.left[ii] = left - k[:, None] * occ
        self.ctx[ii] += k[:, None] * occ
        rows, cols = np.nonzero(occ & (self.left[ii] == 0))
        self._retire(ii[rows], cols)

    def _retire(self, inst: IntArray, cols: IntArray) -> None:
        """Requests in slots (inst, cols) with no tokens left finish at their instance's clock."""
        done = self.left[inst, cols] == 0
        inst, cols = inst[done], cols[done]
        r = self.slot[inst, cols]
        self.finish[r] = self.clock[inst]
        self.slot[inst, cols] = -1
        np.subtract.at(self.nrun, inst, 1)
        np.subtract.at(self.kv, inst, self.need[r])


def simulate_instances(
    requests: Requests,
    profile: InstanceProfile,
    instances: int,
    router: Router | None = None,
) -> Served:
    """Replay ``requests`` through a pool of ``instances`` instances (module docstring).

    ``router`` defaults to round-robin; a router with a finite ``epoch_s`` is called once per
    epoch with the pool's state at the epoch's start."""
    if instances < 1:
        raise ValueError("a pool needs at least one instance")
    router = router or RoundRobin()
    order = np.argsort(requests.arrival_s, kind="stable")
    sorted_req = Requests(
        requests.arrival_s[order],
        requests.prompt[order],
        requests.output[order],
        requests.tier[order],
        requests.tenant[order],
    )
    pool = _Pool(sorted_req, profile, instances)
    arr = pool.arrival
    if len(arr) == 0:
        edges = np.array([0.0])
    elif np.isfinite(router.epoch_s):
        edges = np.arange(arr[0], arr[-1] + router.epoch_s, router.epoch_s)
    else:
        edges = np.array([arr[0]])
    cuts = np.searchsorted(arr, edges, side="left")
    cuts = np.r_[cuts, len(arr)]
    pending = np.zeros(0, np.int64)  # requests a router deferred (a front-end queue)
    e = 0
    while e < len(edges) or len(pending):
        if e >= len(edges):  # only deferred requests left: keep polling the router
            edges = np.r_[edges, edges[-1] + router.epoch_s]
            cuts = np.r_[cuts, len(arr)]
        t = float(edges[e])
        pool.advance(t)
        new = np.arange(cuts[e], cuts[e + 1], dtype=np.int64)
        e += 1
        idx = np.r_[pending, new] if len(pending) else new
        if len(idx) == 0:
            continue
        dest = np.asarray(
            router.route(
                Arrivals(
                    idx,
                    arr[idx],
                    pool.prompt[idx],
                    pool.output[idx],
                    sorted_req.tier[idx],
                    sorted_req.tenant[idx],
                ),
                pool.view(t),
            ),
            dtype=np.int64,
        )
        deferred = dest == DEFER
        if deferred.any() and not np.isfinite(router.epoch_s):
            raise ValueError("a router that defers requests needs a finite epoch_s")
        pending = idx[deferred]
        ok = (
            (dest >= 0)
            & (pool.need[idx] <= profile.kv_tokens)
            & (pool.need[idx] <= profile.max_context)
        )
        if len(pending) or len(new) < len(idx):
            # a request released late starts no earlier than its release (idle clocks catch up)
            pool.clock = np.maximum(pool.clock, t)
        pool.enqueue(idx[ok], dest[ok])
    pool.advance(np.inf)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    log.debug("%d requests through %d instances in %d steps", len(arr), instances, pool.steps)
    return Served(
        instance=pool.where[back],
        arrival_s=requests.arrival_s.astype(float),
        first_token_s=pool.first[back],
        finish_s=pool.finish[back],
        output=requests.output.astype(np.int64),
        steps=pool.steps,
    )
