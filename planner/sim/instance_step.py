"""The reference's iteration loop (:mod:`planner.sim.instances`), compiled with numba, and
its two KV accountings.

:func:`advance` runs each instance of the pool in turn, iteration by iteration (or a run of
identical iterations up to its next event), until its clock reaches ``until`` or it has
nothing to do: instances do not interact between two routing epochs, so one at a time is the
same replay as all in step. The scheduling rules, iteration times and run lengths are those
of the module docstring of :mod:`planner.sim.instances`.

Compiled (``cache=True``: once per machine, in ``__pycache__``) because an iteration touches
a few scalars per instance: as numpy calls over the instances their overhead was the whole
cost (about 30 calls of a few µs each per step). Every compiled function, and the two
records it reads (:class:`PoolState`, :class:`Timing`), live in this one module: numba checks a
cached function against its own file only, so a callee edited in another module, or a
record's fields reordered there, would leave the cache stale and the loop reading the wrong
arrays.

**KV.** By default a request reserves prompt + *true* output at admission (an oracle: a
server does not know the output) and frees it when it ends. A profile with ``kv_paging``
runs vLLM's paged cache instead (the hooks :func:`paged_fits`, :func:`paged_hold`,
:func:`paged_release`, :func:`paged_kv_run`, :func:`preempt`): allocation as tokens are
computed, preemption by recompute, as vLLM's scheduler (v0, chunked prefill; docs
"Optimization and Tuning", Preemption) does it, at token granularity (blocks of 16 tokens
ignored):

* **admission** of a queue head needs its prompt's KV, and room for this iteration's decodes,
  free above a watermark: ``held + D + prompt ≤ kv_tokens − 0.01 · kv_tokens`` (vLLM's
  ``can_allocate`` keeps 1 % of the blocks free for the running requests);
* **growth:** every decode iteration adds one KV token per decoding request, so a run of ``k``
  decode iterations needs ``k · D`` free tokens; runs stop where the cache is full;
* **preemption:** before an iteration whose ``D`` decodes do not fit (``held + D >
  kv_tokens``), the most recently admitted running request is preempted (vLLM pops the tail of
  its running queue) until they do: its KV is freed and it goes back to the *front* of its
  instance's queue. On re-admission it prefills its prompt *and the tokens it had generated*
  (recompute), then generates the rest: here its prompt becomes prompt + generated and its
  output what it still had to generate, so the instance loop serves it unchanged; its first
  token keeps its first time. A prefill cut short loses its chunks.

Admission never looks at the output, so a router's placement decides how many long decodes
share a cache, which is what makes placement by predicted length matter where the cache binds
(Bloom-176B/A100 TP8: 55,804 KV tokens, 64 requests × a 2,048 window = 131,072).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
IDLE = np.int64(1) << 60  # ``left`` of a slot that is empty or still prefilling
F = TypeVar("F", bound=Callable[..., Any])


class PoolState(NamedTuple):
    """The pool's state. Per request [N]: sizes (a preempted request's prompt grows by what
    it had generated: the paged cache, module docstring), KV reservation, FIFO links, first
    and last token. Per instance [n]: queue head and tail, clock, running
    and decoding counts, the decoders' Σ context, the prefill under way (slot, prompt tokens
    left), KV held, queue length and prompt tokens queued. Per slot [n, max_batch]: request,
    output tokens left (``IDLE`` while empty or prefilling), KV held and admission stamp
    (paged)."""

    arrival: Array
    prompt: IntArray
    output: IntArray
    need: Array
    nxt: IntArray
    first: Array
    finish: Array
    head: IntArray
    tail: IntArray
    clock: Array
    nrun: IntArray
    ndec: IntArray
    dctx: IntArray
    pcol: IntArray
    ppre: IntArray
    kv: Array
    queued: IntArray
    queued_prompt: Array
    slot: IntArray
    left: IntArray
    hold: IntArray
    stamp: IntArray
    # counters: [0] admissions so far (the paged cache's stamps), [1] runs simulated,
    # [2] requests in ``ended`` not yet read by the pool
    tally: IntArray
    ended: IntArray  # requests that ended, in the order the loop ended them


class Timing(NamedTuple):
    """One instance's iteration times and limits, as the loop reads them."""

    prefill_s: Array  # [T + 1] seconds of a forward pass over 0..T tokens (T: the most an
    # iteration of this replay can carry, planner.sim.iteration_tables.timing)
    decode_ms: Array  # [max_batch + 1] decode iteration ms at batch b (512-token context)
    context_tokens: Array  # knots of the context factor
    context_factor: Array
    max_batch: int
    token_budget: int
    kv_tokens: float
    admit_kv: float  # paged: the KV an admission may fill up to (below the watermark)
    chunked: bool
    paged: bool


def compiled(fn: F) -> F:
    """``fn`` compiled by numba (nopython, cached on disk), typed as itself."""
    return cast(F, numba.njit(cache=True)(fn))


def inlined(fn: F) -> F:
    """``fn`` compiled by numba and inlined where the loop calls it."""
    return cast(F, numba.njit(cache=True, inline="always")(fn))


@compiled
def advance(s: PoolState, m: Timing, until: float) -> None:
    """Run every instance until its clock reaches ``until`` or it has nothing to do."""
    cols = np.empty(m.max_batch + 1, np.int64)  # this iteration's admissions: slots
    reqs = np.empty(m.max_batch + 1, np.int64)  # ... requests
    takes = np.empty(m.max_batch + 1, np.int64)  # ... and their first chunks
    for i in range(len(s.clock)):
        while (s.nrun[i] > 0 or s.head[i] >= 0) and s.clock[i] < until:
            s.tally[1] += 1
            h = s.head[i]
            if s.nrun[i] == 0 and s.arrival[h] > s.clock[i]:  # idle: on to the next arrival
                s.clock[i] = s.arrival[h]
            if m.paged:
                preempt(s, m, i)
            chunk, part, n = schedule(s, m, i, cols, reqs, takes)
            iterate(s, m, i, (chunk, part, n), (cols, reqs, takes), until)


@inlined
def _fits(s: PoolState, m: Timing, i: int, r: int) -> bool:
    """Whether request ``r`` fits in instance ``i``'s KV cache."""
    if m.paged:
        return paged_fits(s, m, i, r)
    return bool(s.kv[i] + s.need[r] <= m.kv_tokens)


@inlined
def _hold(s: PoolState, m: Timing, i: int, c: int, r: int) -> None:
    """Request ``r`` admitted to slot ``c`` of instance ``i`` takes its KV."""
    if m.paged:
        paged_hold(s, i, c, r)
    else:
        s.kv[i] += s.need[r]


@inlined
def _release(s: PoolState, m: Timing, i: int, c: int, r: int) -> None:
    """Request ``r`` leaving slot ``c`` of instance ``i`` frees its KV."""
    if m.paged:
        paged_release(s, i, c)
    else:
        s.kv[i] -= s.need[r]


@inlined
def schedule(
    s: PoolState, m: Timing, i: int, cols: IntArray, reqs: IntArray, takes: IntArray
) -> tuple[int, int, int]:
    """The prefill chunks of instance ``i``'s next iteration: the prefill under way first,
    then arrived queue heads admitted in order while budget, batch and KV allow (whole
    prompts: the first, then those that fit). Returns the chunk tokens, the prefill under
    way's share of them and the number of admissions, written to ``cols``, ``reqs`` and
    ``takes`` (slot, request, tokens of its first chunk)."""
    room = m.token_budget - (s.ndec[i] if m.chunked else 0)
    part = min(max(room, 0), s.ppre[i]) if s.pcol[i] >= 0 else 0
    room -= part
    chunk, n = part, 0
    while room > 0:
        h = s.head[i]
        if h < 0 or s.arrival[h] > s.clock[i] or s.nrun[i] >= m.max_batch:
            break
        if not _fits(s, m, i, h) or not (m.chunked or s.prompt[h] <= room or chunk == 0):
            break
        free = 0
        while s.slot[i, free] >= 0:
            free += 1
        take = min(s.prompt[h], room) if m.chunked else s.prompt[h]
        chunk += take
        room -= take
        s.slot[i, free] = h
        s.nrun[i] += 1
        _hold(s, m, i, free, h)
        s.head[i] = s.nxt[h]
        s.queued[i] -= 1
        s.queued_prompt[i] -= s.prompt[h]
        cols[n], reqs[n], takes[n] = free, h, take
        n += 1
    return chunk, part, n


@inlined
def iteration_s(s: PoolState, m: Timing, i: int, chunk: int, runs: int) -> float:
    """Seconds of instance ``i``'s iteration: ``chunk`` prefill tokens beside ``runs``
    decodes at the decoders' mean context, the roofline of the two regimes."""
    d = max(s.ndec[i], 1)
    factor = np.interp(s.dctx[i] / d, m.context_tokens, m.context_factor)
    td = m.decode_ms[d] * factor / 1000.0  # InstanceProfile.decode_s
    if chunk == 0:
        return float(td)
    if chunk + runs >= len(m.prefill_s):
        raise ValueError("an iteration carries more tokens than its prefill table holds")
    tp = m.prefill_s[chunk + runs]
    return float(max(tp, td)) if runs > 0 else float(tp)


@inlined
def iterate(
    s: PoolState,
    m: Timing,
    i: int,
    planned: tuple[int, int, int],
    admitted: tuple[IntArray, IntArray, IntArray],
    until: float,
) -> None:
    """Instance ``i`` runs one iteration, or a run of identical ones up to its next event,
    with the ``planned`` chunk tokens (the prefill under way's ``part``, ``n`` admissions)."""
    chunk, part, n = planned
    cols, reqs, takes = admitted
    d = s.ndec[i]
    runs = d if (m.chunked or chunk == 0) else 0  # the decodes it carries
    t = iteration_s(s, m, i, chunk, runs)
    first_done = s.left[i].min()  # iterations to the first decode completion
    done = np.empty(n + 1, np.int64)  # slots whose prefill completes, in order
    nd = 0
    completes = s.pcol[i] >= 0 and part == s.ppre[i] and part > 0
    if completes:
        done[0], nd = s.pcol[i], 1
        s.pcol[i] = -1
    for a in range(n):
        if takes[a] < s.prompt[reqs[a]]:  # cut short: the prefill under way from now on
            s.pcol[i], s.ppre[i], part = cols[a], s.prompt[reqs[a]], takes[a]
        else:
            completes = True
            done[nd] = cols[a]
            nd += 1
    k = run_length(s, m, i, chunk, completes, first_done, t, until)
    if m.paged:
        k = paged_kv_run(s, m, i, k, runs)
    step = k if (m.chunked or runs > 0) else 0  # decode iterations
    s.clock[i] += k * t
    s.left[i] -= step
    s.dctx[i] += step * d
    s.ppre[i] -= k * part
    if first_done == step:
        for c in range(s.left.shape[1]):
            if s.left[i, c] == 0:
                retire(s, m, i, c)
    first_tokens(s, m, i, done[:nd])


@inlined
def run_length(
    s: PoolState, m: Timing, i: int, chunk: int, completes: bool, first_done: int,
    t: float, until: float,
) -> int:  # fmt: skip
    """Identical iterations instance ``i`` runs to its next event: a lone cut-short prefill
    repeats; decodes run to the first completion or the next queued request that can join;
    none past ``until``."""
    k = 1.0
    if chunk > 0 and not completes:
        k = float(min((s.ppre[i] - 1) // max(chunk, 1), first_done))
    if chunk == 0:
        k = float(first_done)
        h = s.head[i]
        joins = h >= 0 and s.nrun[i] < m.max_batch and s.ndec[i] < m.token_budget
        if joins and _fits(s, m, i, h):
            k = min(k, max(np.ceil((s.arrival[h] - s.clock[i]) / t), 1.0))
    if until < math.inf:
        k = min(k, max(np.ceil((until - s.clock[i]) / t), 1.0))
    return int(k)


@inlined
def first_tokens(s: PoolState, m: Timing, i: int, cols: IntArray) -> None:
    """Slots ``cols`` of instance ``i`` finished their prefill at its clock: first token (a
    recompute keeps the first), then decoding, or done if that was the last."""
    for c in cols:
        r = s.slot[i, c]
        s.first[r] = min(s.first[r], s.clock[i])
        s.left[i, c] = s.output[r] - 1
        s.ndec[i] += 1
        s.dctx[i] += s.prompt[r] + 1
    for c in cols:
        if s.output[s.slot[i, c]] == 1:
            retire(s, m, i, c)


@inlined
def retire(s: PoolState, m: Timing, i: int, c: int) -> None:
    """The decoding request in slot ``c`` of instance ``i`` finishes at its clock."""
    r = s.slot[i, c]
    s.finish[r] = s.clock[i]
    s.ended[s.tally[2]] = r
    s.tally[2] += 1
    s.slot[i, c] = -1
    s.left[i, c] = IDLE
    s.nrun[i] -= 1
    s.ndec[i] -= 1
    s.dctx[i] -= s.prompt[r] + s.output[r]
    _release(s, m, i, c, r)


@inlined
def paged_fits(s: PoolState, m: Timing, i: int, r: int) -> bool:
    """Whether queue head ``r`` of instance ``i`` may be admitted: its prompt's KV and this
    iteration's decodes fit below the watermark."""
    return bool(s.kv[i] + s.ndec[i] + s.prompt[r] <= m.admit_kv)


@inlined
def paged_hold(s: PoolState, i: int, c: int, r: int) -> None:
    """Request ``r`` admitted to slot ``c`` of instance ``i`` takes its prompt's KV and the
    next admission stamp."""
    s.hold[i, c] = s.prompt[r]
    s.kv[i] += s.prompt[r]
    s.tally[0] += 1
    s.stamp[i, c] = s.tally[0]


@inlined
def paged_release(s: PoolState, i: int, c: int) -> None:
    """The request leaving slot ``c`` of instance ``i`` frees the KV it holds."""
    s.kv[i] -= s.hold[i, c]
    s.hold[i, c] = 0


@inlined
def paged_kv_run(s: PoolState, m: Timing, i: int, k: int, d: int) -> int:
    """The iterations of a run of ``k`` (``d`` decodes each) the cache allows, at least one
    (:func:`preempt` and :func:`paged_fits` leave room for one), and the KV its decodes add."""
    room = int(np.floor((m.kv_tokens - s.kv[i]) / max(d, 1)))
    if d > 0:
        k = min(k, max(room, 1))
        for c in range(s.left.shape[1]):
            if s.left[i, c] < IDLE // 2:
                s.hold[i, c] += k
    s.kv[i] += k * d
    return k


@inlined
def preempt(s: PoolState, m: Timing, i: int) -> None:
    """Recompute preemption (module docstring: KV) until instance ``i``'s decodes fit: the
    running request admitted last goes back first."""
    while s.kv[i] + s.ndec[i] > m.kv_tokens:
        col, last = 0, np.int64(-1)
        for c in range(s.slot.shape[1]):
            if s.slot[i, c] >= 0 and s.stamp[i, c] > last:
                col, last = c, s.stamp[i, c]
        evict(s, i, col)


@inlined
def evict(s: PoolState, i: int, c: int) -> None:
    """The running request in slot ``c`` of instance ``i`` back to the front of its queue: a
    decoding one as prompt + generated to prefill, the rest of its output to generate; the
    prefill under way loses its chunks."""
    r = s.slot[i, c]
    left = s.left[i, c]
    if left < IDLE // 2:
        # context = prompt + generated = prompt + output - left (first_tokens)
        s.dctx[i] -= s.prompt[r] + s.output[r] - left
        s.ndec[i] -= 1
        s.prompt[r] += s.output[r] - left
        s.output[r] = left
    else:
        s.pcol[i] = -1
        s.ppre[i] = 0
    paged_release(s, i, c)
    s.slot[i, c] = -1
    s.left[i, c] = IDLE
    s.nrun[i] -= 1
    if s.head[i] < 0:  # an empty queue: it is its tail too (the old tail is not queued)
        s.tail[i] = r
    s.nxt[r] = s.head[i]
    s.head[i] = r
    s.queued[i] += 1
    s.queued_prompt[i] += s.prompt[r]
