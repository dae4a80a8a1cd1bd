"""What the compiled iteration loop (:mod:`planner.sim.instance_step`) reads and writes.

The reference's pool (:class:`planner.sim.instances._Pool`) owns these arrays; it hands them
to the loop as two named tuples, which numba compiles as records of arrays, so the loop
updates the pool's own arrays in place. :class:`Timing` is the instance's iteration times as
tables, taken from :class:`planner.sim.profile.InstanceProfile` itself so that the loop and
the fluid models charge the same seconds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from planner.sim.profile import InstanceProfile

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WATERMARK = 0.01  # vLLM's watermark: share of the KV blocks admissions leave free (paged)


class PoolState(NamedTuple):
    """The pool's state. Per request [N]: sizes (a preempted request's prompt grows by what
    it had generated: the paged cache of :mod:`planner.sim.instance_step`), KV reservation,
    FIFO links, first and last token. Per instance [n]: queue head and tail, clock, running
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

    prefill_s: Array  # [token_budget + 1] seconds of a forward pass over T tokens
    decode_ms: Array  # [max_batch + 1] decode iteration ms at batch b (512-token context)
    context_tokens: Array  # knots of the context factor
    context_factor: Array
    max_batch: int
    token_budget: int
    kv_tokens: float
    admit_kv: float  # paged: the KV an admission may fill up to (below the watermark)
    chunked: bool
    paged: bool


def timing(profile: InstanceProfile, longest: int) -> Timing:
    """The loop's tables of ``profile`` for requests of at most ``longest`` tokens (prompt +
    output): ``prefill_s`` at every token count an iteration can carry (never more than the
    budget, nor more than a full batch of such requests: the module docstring of
    :mod:`planner.sim.instances`) and the decode time at every batch size, both by the
    profile's own methods."""
    batch = np.arange(profile.max_batch + 1, dtype=float)
    most = min(profile.token_budget, profile.max_batch * (longest + 1))
    return Timing(
        prefill_s=profile.prefill_s(np.arange(most + 1, dtype=float)),
        decode_ms=profile.decode_base_ms(batch),
        context_tokens=np.asarray(profile.context_tokens, float),
        context_factor=np.asarray(profile.context_factor, float),
        max_batch=int(profile.max_batch),
        token_budget=int(profile.token_budget),
        kv_tokens=float(profile.kv_tokens),
        admit_kv=float(profile.kv_tokens) * (1 - WATERMARK),
        chunked=bool(profile.chunked_prefill),
        paged=bool(profile.kv_paging),
    )
