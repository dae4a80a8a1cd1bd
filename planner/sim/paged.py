"""vLLM's paged KV cache in the iteration-level reference: allocation as tokens are computed,
preemption by recompute.

:mod:`planner.sim.instances` reserves a request's prompt + *true* output at admission (an
oracle: a server does not know the output). A pool whose profile has ``kv_paging`` runs this
subclass instead, as vLLM's scheduler (v0, chunked prefill; docs "Optimization and Tuning",
Preemption) does it, at token granularity (blocks of 16 tokens ignored):

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

import numpy as np
import numpy.typing as npt

from planner.sim.instances import _IDLE, _Pool
from planner.sim.profile import InstanceProfile
from planner.sim.served import Requests

IntArray = npt.NDArray[np.int64]
WATERMARK = 0.01  # vLLM's watermark: share of the KV blocks admissions leave free


class PagedPool(_Pool):
    """:class:`planner.sim.instances._Pool` with the paged cache (module docstring)."""

    def __init__(self, req: Requests, prof: InstanceProfile, n: int) -> None:
        super().__init__(req, prof, n)
        self.hold = np.zeros_like(self.slot)  # KV tokens each running request holds
        self.stamp = np.zeros_like(self.slot)  # admission order (the preemption victim: last)
        self.admissions = 0
        self.cap = float(prof.kv_tokens)
        self.admit_cap = self.cap * (1 - WATERMARK)

    def _fits(self, ii: IntArray, hs: IntArray) -> npt.NDArray[np.bool_]:
        fits: npt.NDArray[np.bool_] = (
            self.kv[ii] + self.ndec[ii] + self.prompt[hs] <= self.admit_cap
        )
        return fits

    def _hold(self, inst: IntArray, col: IntArray, r: IntArray) -> None:
        self.hold[inst, col] = self.prompt[r]
        self.kv[inst] += self.prompt[r]
        self.stamp[inst, col] = self.admissions + np.arange(1, len(r) + 1)
        self.admissions += len(r)

    def _release(self, inst: IntArray, col: IntArray, r: IntArray) -> None:
        np.subtract.at(self.kv, inst, self.hold[inst, col])
        self.hold[inst, col] = 0

    def _kv_run(self, ii: IntArray, k: IntArray, d: IntArray) -> IntArray:
        """Runs cut where the cache fills (at least one iteration: :meth:`_preempt` and
        :meth:`_fits` leave room for one), and the KV the decodes of the run add."""
        room = np.floor((self.cap - self.kv[ii]) / np.maximum(d, 1)).astype(np.int64)
        k = np.where(d > 0, np.minimum(k, np.maximum(room, 1)), k)
        decoding = (self.left[ii] < _IDLE // 2) & (d > 0)[:, None]
        self.hold[ii] += np.where(decoding, k[:, None], 0)
        self.kv[ii] += k * d
        return k

    def _preempt(self, ii: IntArray) -> None:
        """Recompute preemption (module docstring) until each instance's decodes fit."""
        while True:
            over = ii[self.kv[ii] + self.ndec[ii] > self.cap]
            if len(over) == 0:
                return
            col = np.argmax(np.where(self.slot[over] >= 0, self.stamp[over], -1), axis=1)
            self._evict(over, col)

    def _evict(self, inst: IntArray, col: IntArray) -> None:
        """Running requests in slots (inst, col) back to the front of their queues."""
        r = self.slot[inst, col]
        left = self.left[inst, col]
        decoding = left < _IDLE // 2
        dec_i, dec_r, dec_left = inst[decoding], r[decoding], left[decoding]
        # context = prompt + generated = prompt + output - left (instances._first_token)
        self.dctx[dec_i] -= self.prompt[dec_r] + self.output[dec_r] - dec_left
        self.ndec[dec_i] -= 1
        generated = self.output[dec_r] - dec_left
        self.prompt[dec_r] += generated
        self.output[dec_r] = dec_left
        pre = inst[~decoding]  # the prefill under way: its chunks are lost
        self.pcol[pre] = -1
        self.ppre[pre] = 0
        self._release(inst, col, r)
        self.slot[inst, col] = -1
        self.left[inst, col] = _IDLE
        self.nrun[inst] -= 1
        self.nxt[r] = self.head[inst]
        self.head[inst] = r
        self.tail[inst] = np.where(self.tail[inst] < 0, r, self.tail[inst])
        self.queued[inst] += 1
        self.queued_prompt[inst] += self.prompt[r]
