"""Load-aware routers over the iteration-level instance model: JSQ, least outstanding tokens,
a prefill/decode-mix heuristic and a learned linear policy guided by it.

Every router here is called once per routing epoch (``epoch_s``) with the pool's state at the
epoch's start (:class:`planner.sim.routing.PoolView`) and keeps its own ledger of what it sent
within the epoch. None of them reads a request's true output length: the output is an estimate
from ``estimate`` (the response-length predictor, or a constant mean for the baselines).

**Room.** Instance j has room for request r when nothing waits there, its batch has a free slot
and the KV reservation fits: ``waiting_j = 0``, ``running_j < max_batch`` and ``kv_j + prompt_r
+ ô_r ≤ kv_tokens``. Every router picks among the instances with room when any has it, and among
all instances otherwise (a request is never sent to a full instance while another has room).

**Mixing cost** (the heuristic; features of the learned policy). Sending r (prompt p, estimated
output ô) to instance j with b requests running and w waiting (W prompt tokens) costs, in
seconds of request latency:

* ``own_ttft = prefill_s(W + p)``: its queued prefills and its own;
* ``own_decode = ô · decode_s(min(b + w + 1, B))``: its decode at the batch it joins;
* ``stall = (b + w) · prefill_s(p)``: the others in the batch pause during its prefill;
* ``slowdown = min(ô, m) · (b + w) · (decode_s(b + w + 1) − decode_s(b + w))``: the others
  decode slower while it runs (m: mean output estimate).

The heuristic sends r where the sum is least. The learned router scores ``w · φ`` over the same
four terms and three load features (queue length, outstanding tokens, KV share), w found by
policy search starting at the heuristic's weights (:mod:`planner.sim.learn_router`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planner.config.throughput import REF_PROMPT
from planner.sim.profile import InstanceProfile
from planner.sim.routing import Arrivals, PoolView

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Estimate = Callable[[Arrivals], Array]
FEATURES = ("own_ttft", "own_decode", "stall", "slowdown", "queue", "tokens_1e4", "kv_share")
HEURISTIC_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])


def constant_estimate(mean_output: float) -> Estimate:
    """The baselines' output estimate: the same mean for every request."""
    return lambda a: np.full(len(a.index), float(mean_output))


@dataclass
class _Ledger:
    """The epoch's view plus what this router sent during the epoch."""

    waiting: Array
    running: Array
    kv: Array
    tokens: Array
    waiting_prompt: Array

    @classmethod
    def of(cls, view: PoolView) -> _Ledger:
        return cls(
            view.waiting.astype(float),
            view.running.astype(float),
            view.kv_used.astype(float),
            view.outstanding_tokens.astype(float),
            view.waiting_prompt.astype(float),
        )

    def room(self, prof: InstanceProfile, need: float) -> npt.NDArray[np.bool_]:
        room = (
            (self.waiting == 0)
            & (self.running < prof.max_batch)
            & (self.kv + need <= prof.kv_tokens)
        )
        return np.asarray(room, bool)

    def add(self, j: int, prompt: float, out: float) -> None:
        self.waiting[j] += 1
        self.tokens[j] += prompt + out
        self.waiting_prompt[j] += prompt
        self.kv[j] += prompt + out


@dataclass
class LoadAware:
    """Base of the load-aware routers: the epoch loop, the room rule, the ledger."""

    profile: InstanceProfile
    estimate: Estimate
    epoch_s: float = 0.25

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        raise NotImplementedError

    def route(self, arrivals: Arrivals, view: PoolView) -> IntArray:
        led = _Ledger.of(view)
        est = np.asarray(self.estimate(arrivals), float)
        dest = np.empty(len(arrivals.index), np.int64)
        for i in range(len(arrivals.index)):
            p, o = float(arrivals.prompt[i]), float(est[i])
            room = led.room(self.profile, p + o)
            s = self.scores(led, p, o)
            if room.any():
                s = np.where(room, s, np.inf)
            j = int(np.argmin(s))
            dest[i] = j
            led.add(j, p, o)
        return dest


@dataclass
class JoinShortestQueue(LoadAware):
    """Fewest requests waiting or running."""

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        return led.waiting + led.running


@dataclass
class LeastTokens(LoadAware):
    """Fewest prompt + output tokens still to process (the view's count, which knows the
    running requests' remaining output, plus estimates for what this epoch sent)."""

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        return led.tokens


def mix_features(
    prof: InstanceProfile, led: _Ledger, prompt: float, out: float, mean_out: float
) -> npt.NDArray[np.float64]:
    """φ[j, k]: the :data:`FEATURES` of sending one request to each instance j."""
    others = led.running + led.waiting
    joined = np.minimum(others + 1, prof.max_batch)
    ctx = np.full_like(joined, REF_PROMPT)
    d_join = prof.decode_s(joined, ctx)
    d_now = prof.decode_s(np.maximum(np.minimum(others, prof.max_batch), 1), ctx)
    own_ttft = prof.prefill_s(led.waiting_prompt + prompt)
    own_decode = out * d_join
    stall = others * float(prof.prefill_s(prompt))
    slowdown = min(out, mean_out) * others * np.maximum(d_join - d_now, 0.0)
    return np.stack(
        [
            own_ttft,
            own_decode,
            stall,
            slowdown,
            others,
            led.tokens / 1e4,
            led.kv / prof.kv_tokens,
        ],
        axis=1,
    )


@dataclass
class LinearMix(LoadAware):
    """Score ``φ · weights`` (module docstring); the heuristic is ``HEURISTIC_WEIGHTS``."""

    weights: Array = field(default_factory=lambda: HEURISTIC_WEIGHTS.copy())
    mean_output: float = 200.0

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        phi = mix_features(self.profile, led, prompt, out, self.mean_output)
        return np.asarray(phi @ self.weights, float)
