"""The iteration-level reference: requests through continuously batching model instances.

The simulator's one reference for how load turns into latency. One pool of ``n`` identical
instances of one model on one VM type, each running a vLLM-style server loop, iteration times
from :class:`planner.sim.profile.InstanceProfile`:

* a request is routed to an instance on arrival (:mod:`planner.sim.routing`) and waits in that
  instance's FIFO queue (first come, first served across tiers, as vLLM schedules);
* every iteration has a **token budget** ``B`` (vLLM's ``max_num_batched_tokens``).
  **Chunked prefill** (Sarathi-Serve, vLLM's ``enable_chunked_prefill``; the default): at each
  boundary (1) every running request past its prefill decodes one token (``D`` tokens); (2)
  the prefill under way (at most one) takes ``min(prompt tokens left, B − D)``; (3) arrived
  queue heads are admitted in order while budget is left, the batch has fewer than
  ``max_batch`` requests and their KV fits, each taking ``min(prompt, budget left)``.
  **Whole prefill** (vLLM v0's default scheduler, :meth:`InstanceProfile.whole_prefill`,
  ``B = max(window, 2048)``): when a queue head can be admitted the iteration only prefills,
  whole prompts admitted while they fit in ``B`` (the first always), batch cap and KV, and the
  ``D`` decodes **pause**; otherwise it decodes. An arrival at a boundary is admitted there;
* ``C`` prefill tokens and ``d`` decodes (``D``, or 0 in a whole-prefill iteration) at mean
  context ``x`` take the roofline of the two measured regimes (seconds)::

      t = decode_s(D, x)                          if C = 0  (a pure decode iteration)
      t = prefill_s(C + d)                        if d = 0  (a pure prefill iteration)
      t = max(prefill_s(C + d), decode_s(d, x))   otherwise

  ``prefill_s(T)``: a forward pass over ``T`` tokens (compute-bound: a decode token costs what
  a prompt token costs); ``decode_s(D, x)``: ``D`` decodes (memory-bound). Llama2-70B/A100:
  480 chunk tokens beside 32 decodes take ``max(127, 52) ms``; a whole 4,096-token prompt
  1.1 s, its instance's decodes waiting;
* a request's first token comes at the end of the iteration that prefills its last prompt
  token; each decode iteration gives it one more; it leaves (freeing its KV) with its last.

The loop (:mod:`planner.sim.instance_step`, compiled with numba) advances each instance by
one iteration or a run of identical ones up to its next event (decodes: the first
completion, or the first boundary at or after its next queued request arrives and fits;
full-budget chunks of one long prompt: its last chunk or the first completion), timed at the
run's start. Chunks are charged by their token count (8 × ``prefill_s(512)`` is within 9 % of
``prefill_s(4096)`` on every placement). A request whose KV reservation exceeds the cache, or
longer than the context window (prompt + output > ``max_context``: vLLM refuses it), is
rejected (never served).

**KV.** By default a request is admitted when prompt + *true* output fits (an oracle
reservation). ``kv_paging`` runs vLLM's paged cache instead (the ``paged_*`` hooks and
``preempt`` of :mod:`planner.sim.instance_step`); they differ only where the cache binds
before the batch cap: never on Llama2-70B/A100 TP4 (64 × 4,096 < 451,660 tokens;
the planner's curves and ``bench/simulate.py`` keep the default), on Bloom-176B/A100 it does.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from planner.sim import instance_step
from planner.sim.instance_step import IDLE, PoolState, Timing
from planner.sim.iteration_tables import timing
from planner.sim.profile import InstanceProfile
from planner.sim.routing import DEFER, REJECT, Arrivals, PoolView, RoundRobin, Router
from planner.sim.served import Requests, Served

log = logging.getLogger(__name__)
__all__ = ["Requests", "Served", "simulate_instances"]
Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class _Pool:
    """State of ``n`` instances (:class:`planner.sim.instance_step.PoolState`: FIFO queues as
    linked lists over request positions, a [n, max_batch] slot table of the batch, decoders'
    count and context, the prefill under way, KV), advanced by the compiled loop; what a
    router sees of it (:meth:`view`) and how arrivals join it (:meth:`receive`)."""

    def __init__(self, req: Requests, prof: InstanceProfile, n: int) -> None:
        N, B = len(req.arrival_s), prof.max_batch
        self.req, self.prof, self.n = req, prof, n
        need = req.prompt + req.output
        self.limit = min(prof.kv_tokens, prof.max_context)  # the most tokens it may admit
        admissible = need[need <= self.limit]
        longest = int(admissible.max()) if len(admissible) else 0
        self.timing: Timing = timing(prof, longest)
        self.state = PoolState(
            arrival=req.arrival_s.astype(float),
            prompt=req.prompt.astype(np.int64),
            output=req.output.astype(np.int64),
            need=need.astype(float),
            nxt=np.full(N, -1, np.int64),
            first=np.full(N, np.inf),
            finish=np.full(N, np.inf),
            head=np.full(n, -1, np.int64),
            tail=np.full(n, -1, np.int64),
            clock=np.zeros(n),
            nrun=np.zeros(n, np.int64),
            ndec=np.zeros(n, np.int64),
            dctx=np.zeros(n, np.int64),
            pcol=np.full(n, -1, np.int64),
            ppre=np.zeros(n, np.int64),
            kv=np.zeros(n),
            queued=np.zeros(n, np.int64),
            queued_prompt=np.zeros(n),
            slot=np.full((n, B), -1, np.int64),
            left=np.full((n, B), IDLE, np.int64),
            hold=np.zeros((n, B), np.int64),
            stamp=np.zeros((n, B), np.int64),
            tally=np.zeros(3, np.int64),
            ended=np.zeros(N, np.int64),
        )
        self.where = np.full(N, REJECT, np.int64)
        self.ended: list[IntArray] = []  # requests ended since the last view

    def view(self, t: float) -> PoolView:
        """What a front end can poll from its replicas at ``t``: queue and batch sizes, the
        KV *held* (prompt tokens prefilled + tokens generated: what a paged cache allocated),
        the prompt tokens still to prefill and the requests that ended since the last view.
        Nothing here depends on an output length a server cannot know before it ends."""
        s = self.state
        occupied = s.slot >= 0
        r = np.maximum(s.slot, 0)
        decoding = s.left < IDLE // 2
        generated = np.where(decoding, s.output[r] - s.left, 0)
        under_way = np.zeros_like(occupied)
        rows = np.flatnonzero(s.pcol >= 0)
        under_way[rows, s.pcol[rows]] = True
        partial = np.where(under_way, s.prompt[r] - s.ppre[:, None], 0)
        prefilled = np.where(decoding, s.prompt[r], partial)
        held = np.where(occupied, prefilled + generated, 0).sum(axis=1)
        prefill_left = np.where(s.pcol >= 0, s.ppre, 0).astype(float)
        ended = np.concatenate(self.ended) if self.ended else np.zeros(0, np.int64)
        self.ended = []
        return PoolView(
            t,
            s.queued.copy(),
            s.nrun.copy(),
            held.astype(float),
            s.queued_prompt + prefill_left,
            s.queued_prompt.copy(),
            prefill_left,
            ended,
        )

    def enqueue(self, ids: IntArray, dest: IntArray) -> None:
        """Append ``ids`` (arrival order) to the queues of instances ``dest``."""
        if len(ids) == 0:
            return
        s = self.state
        order = np.argsort(dest, kind="stable")
        ids, dest = ids[order], dest[order]
        same = dest[1:] == dest[:-1]
        s.nxt[ids[:-1][same]] = ids[1:][same]
        starts = np.r_[0, np.flatnonzero(~same) + 1]
        inst, first, last = dest[starts], ids[starts], ids[np.r_[starts[1:] - 1, -1]]
        empty = s.head[inst] < 0
        s.head[inst[empty]] = first[empty]
        s.nxt[s.tail[inst[~empty]]] = first[~empty]
        s.tail[inst] = last
        self.where[ids] = dest
        s.queued[:] += np.bincount(dest, minlength=self.n)
        s.queued_prompt[:] += np.bincount(dest, weights=s.prompt[ids], minlength=self.n)

    def receive(self, idx: IntArray, router: Router, t: float, late: bool) -> IntArray:
        """Route requests ``idx`` at ``t`` and queue them (refused ones answered at once);
        returns those deferred. ``late``: some were deferred before."""
        s = self.state
        a = Arrivals(
            idx, s.arrival[idx], s.prompt[idx], s.output[idx],
            self.req.tier[idx], self.req.tenant[idx],
        )  # fmt: skip
        dest = np.asarray(router.route(a, self.view(t)), dtype=np.int64)
        ok = (dest >= 0) & (s.need[idx] <= self.limit)
        deferred: IntArray = idx[dest == DEFER]
        if len(deferred) or late:
            # a request released late starts no earlier than its release (idle clocks catch up)
            np.maximum(s.clock, t, out=s.clock)
        self.ended.append(idx[(dest >= 0) & ~ok])  # refused by the instance: answered at once
        self.enqueue(idx[ok], dest[ok])
        return deferred

    def advance(self, until: float) -> None:
        """Run every instance until its clock reaches ``until`` or it has nothing to do."""
        s = self.state
        instance_step.advance(s, self.timing, float(until))
        if s.tally[2]:
            self.ended.append(s.ended[: s.tally[2]].copy())
            s.tally[2] = 0

    @property
    def steps(self) -> int:
        """Iterations and runs of identical iterations simulated, over all instances."""
        return int(self.state.tally[1])


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
    order = np.argsort(requests.arrival_s, kind="stable")
    sorted_req = Requests(
        *(getattr(requests, f)[order] for f in ("arrival_s", "prompt", "output", "tier", "tenant"))
    )
    pool = _Pool(sorted_req, profile, instances)
    _route_all(pool, router or RoundRobin())
    pool.advance(np.inf)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    log.debug("%d requests through %d instances in %d steps", len(order), instances, pool.steps)
    return Served(
        instance=pool.where[back],
        arrival_s=requests.arrival_s.astype(float),
        first_token_s=pool.state.first[back],
        finish_s=pool.state.finish[back],
        output=requests.output.astype(np.int64),
        steps=pool.steps,
    )


def _route_all(pool: _Pool, router: Router) -> None:
    """Offer the arrivals to ``router`` epoch by epoch (deferred ones again at the next epoch),
    advancing the pool to each epoch's start, and queue each routed request at its instance."""
    arr, epoch = pool.state.arrival, router.epoch_s
    if len(arr) == 0:
        edges = np.array([0.0])
    elif np.isfinite(epoch):
        edges = np.arange(arr[0], arr[-1] + epoch, epoch)
    else:
        edges = np.array([arr[0]])
    cuts = np.r_[np.searchsorted(arr, edges, side="left"), len(arr)]
    pending = np.zeros(0, np.int64)  # requests a router deferred (a front-end queue)
    e = 0
    while e < len(edges) or len(pending):
        if e >= len(edges):  # only deferred requests left: keep polling the router
            edges, cuts = np.r_[edges, edges[-1] + epoch], np.r_[cuts, len(arr)]
        t = float(edges[e])
        pool.advance(t)
        new = np.arange(cuts[e], cuts[e + 1], dtype=np.int64)
        e += 1
        idx = np.r_[pending, new] if len(pending) else new
        if len(idx):
            pending = pool.receive(idx, router, t, late=len(pending) > 0)
            if len(pending) and not np.isfinite(epoch):
                raise ValueError("a router that defers requests needs a finite epoch_s")
