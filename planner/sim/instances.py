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

Vectorised across instances: each step advances *each* instance by one iteration or a run of
identical ones up to its next event (decodes: the first completion, or the first boundary at or
after its next queued request arrives and fits; full-budget chunks of one long prompt: its
last chunk or the first completion), timed at the run's start. Chunks are charged by their
token count (8 × ``prefill_s(512)`` is within 9 % of ``prefill_s(4096)`` on every placement).
A request whose KV reservation exceeds the cache, or longer than the context window (prompt +
output > ``max_context``: vLLM refuses it), is rejected (never served).

**KV.** By default a request is admitted when prompt + *true* output fits (an oracle
reservation). ``kv_paging`` runs vLLM's paged cache instead (:mod:`planner.sim.paged`, the
hooks ``_fits``, ``_hold``, ``_release``, ``_kv_run``, ``_preempt``); they differ only where the
cache binds before the batch cap: never on Llama2-70B/A100 TP4 (64 × 4,096 < 451,660 tokens;
the planner's curves and ``bench/simulate.py`` keep the default), on Bloom-176B/A100 it does.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from planner.sim.profile import InstanceProfile
from planner.sim.routing import DEFER, REJECT, Arrivals, PoolView, RoundRobin, Router
from planner.sim.served import Requests, Served

log = logging.getLogger(__name__)
__all__ = ["Requests", "Served", "simulate_instances"]
Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


_IDLE = np.int64(1) << 60  # ``left`` of a slot that is empty or still prefilling
_Admissions = tuple[IntArray, IntArray, IntArray, IntArray]  # rows, slots, requests, tokens


class _Pool:
    """State of ``n`` instances: FIFO queues (linked lists over request positions); a [n,
    max_batch] slot table of the batch (request; output tokens still to decode, ``_IDLE`` while
    empty or prefilling); decoders' count and context; the prefill under way and its rest."""

    def __init__(self, req: Requests, prof: InstanceProfile, n: int) -> None:
        N, B = len(req.arrival_s), prof.max_batch
        self.req, self.prof, self.n = req, prof, n
        self.arrival = req.arrival_s.astype(float)
        self.prompt = req.prompt.astype(np.int64)
        self.output = req.output.astype(np.int64)
        self.need = (self.prompt + self.output).astype(float)
        self.nxt = np.full(N, -1, np.int64)
        self.head, self.tail = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        self.clock = np.zeros(n)
        self.slot = np.full((n, B), -1, np.int64)
        self.left = np.full((n, B), _IDLE, np.int64)
        self.nrun, self.ndec = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.dctx = np.zeros(n, np.int64)  # Σ context of the decoding requests
        self.pcol = np.full(n, -1, np.int64)  # slot of the prefill under way
        self.ppre = np.zeros(n, np.int64)  # its prompt tokens still to prefill
        self.kv = np.zeros(n)
        self.first, self.finish = np.full(N, np.inf), np.full(N, np.inf)
        self.where = np.full(N, REJECT, np.int64)
        self.ended: list[IntArray] = []  # requests ended since the last view
        self.queued = np.zeros(n, np.int64)
        self.queued_prompt = np.zeros(n)
        self.steps = 0

    def view(self, t: float) -> PoolView:
        """What a front end can poll from its replicas at ``t``: queue and batch sizes, the
        KV *held* (prompt tokens prefilled + tokens generated: what a paged cache allocated),
        the prompt tokens still to prefill and the requests that ended since the last view.
        Nothing here depends on an output length a server cannot know before it ends."""
        occupied = self.slot >= 0
        r = np.maximum(self.slot, 0)
        decoding = self.left < _IDLE // 2
        generated = np.where(decoding, self.output[r] - self.left, 0)
        under_way = np.zeros_like(occupied)
        rows = np.flatnonzero(self.pcol >= 0)
        under_way[rows, self.pcol[rows]] = True
        partial = np.where(under_way, self.prompt[r] - self.ppre[:, None], 0)
        prefilled = np.where(decoding, self.prompt[r], partial)
        held = np.where(occupied, prefilled + generated, 0).sum(axis=1)
        prefill_left = np.where(self.pcol >= 0, self.ppre, 0).astype(float)
        ended = np.concatenate(self.ended) if self.ended else np.zeros(0, np.int64)
        self.ended = []
        return PoolView(
            t,
            self.queued.copy(),
            self.nrun.copy(),
            held.astype(float),
            self.queued_prompt + prefill_left,
            self.queued_prompt.copy(),
            prefill_left,
            ended,
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
        inst, first, last = dest[starts], ids[starts], ids[np.r_[starts[1:] - 1, -1]]
        empty = self.head[inst] < 0
        self.head[inst[empty]] = first[empty]
        self.nxt[self.tail[inst[~empty]]] = first[~empty]
        self.tail[inst] = last
        self.where[ids] = dest
        self.queued += np.bincount(dest, minlength=self.n)
        self.queued_prompt += np.bincount(dest, weights=self.prompt[ids], minlength=self.n)

    def receive(self, idx: IntArray, router: Router, t: float, late: bool) -> IntArray:
        """Route requests ``idx`` at ``t`` and queue them (refused ones answered at once);
        returns those deferred. ``late``: some were deferred before."""
        a = Arrivals(
            idx, self.arrival[idx], self.prompt[idx], self.output[idx],
            self.req.tier[idx], self.req.tenant[idx],
        )  # fmt: skip
        dest = np.asarray(router.route(a, self.view(t)), dtype=np.int64)
        ok = (dest >= 0) & (self.need[idx] <= min(self.prof.kv_tokens, self.prof.max_context))
        deferred: IntArray = idx[dest == DEFER]
        if len(deferred) or late:
            # a request released late starts no earlier than its release (idle clocks catch up)
            self.clock = np.maximum(self.clock, t)
        self.ended.append(idx[(dest >= 0) & ~ok])  # refused by the instance: answered at once
        self.enqueue(idx[ok], dest[ok])
        return deferred

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
            ii = live.nonzero()[0]
            self._preempt(ii)
            self._iterate(ii, *self._schedule(ii), until)

    # KV accounting, overridden by the paged cache (planner.sim.paged): here a reservation
    # of prompt + output at admission, released at the end; nothing is ever preempted.
    def _fits(self, ii: IntArray, hs: IntArray) -> npt.NDArray[np.bool_]:
        """Whether queue heads ``hs`` of instances ``ii`` fit in their KV cache."""
        fits: npt.NDArray[np.bool_] = self.kv[ii] + self.need[hs] <= self.prof.kv_tokens
        return fits

    def _hold(self, inst: IntArray, col: IntArray, r: IntArray) -> None:
        """Requests ``r`` admitted to slots (inst, col) take their KV."""
        self.kv[inst] += self.need[r]

    def _release(self, inst: IntArray, col: IntArray, r: IntArray) -> None:
        """Requests ``r`` leaving slots (inst, col) free their KV."""
        np.subtract.at(self.kv, inst, self.need[r])

    def _kv_run(self, ii: IntArray, k: IntArray, d: IntArray) -> IntArray:
        """The iterations of the runs ``k`` the KV cache allows (``d`` decodes each)."""
        return k

    def _preempt(self, ii: IntArray) -> None:
        """Make room for the next iteration's decodes of instances ``ii``."""

    def _schedule(self, ii: IntArray) -> tuple[IntArray, IntArray, _Admissions]:
        """The prefill chunks of the next iteration of instances ``ii`` (module docstring):
        the prefill under way first, then arrived queue heads admitted while budget, batch
        and KV allow. Returns the chunk tokens per instance, the prefill under way's share
        of them, and the admissions."""
        p = self.prof
        room = p.token_budget - (self.ndec[ii] if p.chunked_prefill else 0)
        part = np.where(self.pcol[ii] >= 0, np.minimum(np.maximum(room, 0), self.ppre[ii]), 0)
        room = room - part
        chunk = part.copy()
        admitted: list[_Admissions] = []
        cand = room > 0
        while True:
            h = self.head[ii]
            hs = np.maximum(h, 0)
            cand &= (
                (room > 0)
                & (h >= 0)
                & (self.arrival[hs] <= self.clock[ii])
                & (self.nrun[ii] < p.max_batch)
                & self._fits(ii, hs)
            )
            if not p.chunked_prefill:  # whole prompts: the first of the iteration, or fitting
                cand &= (self.prompt[hs] <= room) | (chunk == 0)
            if not cand.any():
                return chunk, part, _joined(admitted)
            rows = cand.nonzero()[0]
            inst, r = ii[rows], h[rows]
            free = np.argmax(self.slot[inst] < 0, axis=1)
            take = np.minimum(self.prompt[r], room[rows]) if p.chunked_prefill else self.prompt[r]
            chunk[rows] += take
            room[rows] -= take
            self.slot[inst, free] = r
            self.nrun[inst] += 1
            self._hold(inst, free, r)
            self.head[inst] = self.nxt[r]
            self.queued[inst] -= 1
            self.queued_prompt[inst] -= self.prompt[r]
            admitted.append((rows, free, r, take))

    def _iterate(
        self, ii: IntArray, chunk: IntArray, part: IntArray, admitted: _Admissions, until: float
    ) -> None:
        """Instances ``ii`` run one iteration, or a run of identical ones up to their next
        event (module docstring), with ``chunk`` prefill tokens each (``part`` of them the
        prefill under way's)."""
        p = self.prof
        d = self.ndec[ii]
        runs = d if p.chunked_prefill else np.where(chunk > 0, 0, d)  # decodes it carries
        td = p.decode_s(np.maximum(d, 1), self.dctx[ii] / np.maximum(d, 1))
        tp = p.prefill_s(chunk + runs)
        t = np.where(chunk == 0, td, np.where(runs > 0, np.maximum(tp, td), tp))
        first_done = self.left[ii].min(axis=1)  # iterations to the first decode completion
        # the prefill under way, before admissions: completes now, or is cut short again
        ongoing = self.pcol[ii] >= 0
        finishing = ongoing & (part == self.ppre[ii]) & (part > 0)
        done_rows = finishing.nonzero()[0]
        done_inst, done_col = ii[done_rows], self.pcol[ii[done_rows]]
        self.pcol[done_inst] = -1
        rows, cols, r, take = admitted
        new_partial = take < self.prompt[r]
        self.pcol[ii[rows[new_partial]]] = cols[new_partial]
        self.ppre[ii[rows[new_partial]]] = self.prompt[r[new_partial]]
        part = part.copy()
        part[rows[new_partial]] = take[new_partial]
        completes = finishing.copy()
        completes[rows[~new_partial]] = True
        k = self._run_length(ii, chunk, completes, first_done, t, until)
        k = self._kv_run(ii, k, runs)
        step = k if p.chunked_prefill else np.where(runs > 0, k, 0)  # decode iterations
        self.clock[ii] += k * t
        self.left[ii] -= step[:, None]
        self.dctx[ii] += step * d
        self.ppre[ii] -= k * part
        # decodes that end: the rows whose first completion came
        fin = (first_done == step).nonzero()[0]
        if len(fin):
            fr, fc = np.nonzero(self.left[ii[fin]] == 0)
            self._retire(ii[fin[fr]], fc)
        # prefills that complete: the first token, then decoding (or done if it was the last)
        if len(rows):
            done_inst = np.concatenate([done_inst, ii[rows[~new_partial]]])
            done_col = np.concatenate([done_col, cols[~new_partial]])
        if len(done_inst):
            self._first_token(done_inst, done_col)

    def _run_length(
        self, ii: IntArray, chunk: IntArray, completes: IntArray, first_done: IntArray,
        t: Array, until: float,
    ) -> IntArray:  # fmt: skip
        """Identical iterations instances ``ii`` run to their next event (module docstring): a
        lone cut-short prefill repeats; decodes run to the first completion or the next queued
        request that can join; none past ``until``."""
        p, d = self.prof, self.ndec[ii]
        lone = (chunk > 0) & ~completes
        k = np.where(lone, np.minimum((self.ppre[ii] - 1) // np.maximum(chunk, 1), first_done), 1)
        h, hs = self.head[ii], np.maximum(self.head[ii], 0)
        can_take = (h >= 0) & (self.nrun[ii] < p.max_batch) & (d < p.token_budget)
        can_take &= self._fits(ii, hs)
        to_arrival = np.maximum(np.ceil((self.arrival[hs] - self.clock[ii]) / t), 1)
        k_dec = np.where(can_take, np.minimum(first_done, to_arrival), first_done)
        k = np.where(chunk == 0, k_dec, k)
        if np.isfinite(until):
            k = np.minimum(k, np.maximum(np.ceil((until - self.clock[ii]) / t), 1))
        return k.astype(np.int64)

    def _first_token(self, inst: IntArray, col: IntArray) -> None:
        """Slots (inst, col) finished their prefill at their instance's clock."""
        r = self.slot[inst, col]
        self.first[r] = np.minimum(self.first[r], self.clock[inst])  # a recompute keeps the first
        self.left[inst, col] = self.output[r] - 1
        np.add.at(self.ndec, inst, 1)
        np.add.at(self.dctx, inst, self.prompt[r] + 1)
        last = self.output[r] == 1
        if last.any():
            self._retire(inst[last], col[last])

    def _retire(self, inst: IntArray, cols: IntArray) -> None:
        """Decoding requests in slots (inst, cols) finish at their instance's clock."""
        r = self.slot[inst, cols]
        self.finish[r] = self.clock[inst]
        self.ended.append(r)
        self.slot[inst, cols] = -1
        self.left[inst, cols] = _IDLE
        np.subtract.at(self.nrun, inst, 1)
        np.subtract.at(self.ndec, inst, 1)
        np.subtract.at(self.dctx, inst, self.prompt[r] + self.output[r])
        self._release(inst, cols, r)


def _joined(parts: list[_Admissions]) -> _Admissions:
    """Admissions of one scheduling pass, concatenated: rows (into the instances scheduled),
    slots, requests and their first chunk's tokens."""
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    rows, cols, r, take = (np.concatenate(x) for x in zip(*parts, strict=True))
    return rows, cols, r, take


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
    if profile.kv_paging:
        from planner.sim.paged import PagedPool

        pool: _Pool = PagedPool(sorted_req, profile, instances)
    else:
        pool = _Pool(sorted_req, profile, instances)
    _route_all(pool, router or RoundRobin())
    pool.advance(np.inf)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    log.debug("%d requests through %d instances in %d steps", len(order), instances, pool.steps)
    return Served(
        instance=pool.where[back],
        arrival_s=requests.arrival_s.astype(float),
        first_token_s=pool.first[back],
        finish_s=pool.finish[back],
        output=requests.output.astype(np.int64),
        steps=pool.steps,
    )


def _route_all(pool: _Pool, router: Router) -> None:
    """Offer the arrivals to ``router`` epoch by epoch (deferred ones again at the next epoch),
    advancing the pool to each epoch's start, and queue each routed request at its instance."""
    arr, epoch = pool.arrival, router.epoch_s
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
