"""Load-aware routers over the iteration-level instance model: JSQ, least outstanding tokens,
a prefill/decode-mix heuristic and a learned linear policy guided by it.

Every router here is called once per routing epoch (``epoch_s``) with the pool's state at the
epoch's start (:class:`planner.sim.routing.PoolView`) and keeps its own ledger of what it sent
within the epoch. None of them reads a request's true output length: the output is an estimate
from ``estimate`` (the response-length predictor, or a constant mean for the baselines), and the
view holds only what a server knows (its KV held, prompt tokens still to prefill: no output
still to come, the requests that ended). An instance's outstanding tokens (least-tokens' score,
the ``tokens_1e4`` feature) are the prompt and *estimated* output of every request the router
sent there that has not ended (a front end sees each response end): never the running
requests' true remaining output.

**Room.** Instance j has room for request r when nothing waits there, its batch has a free slot
and r's prompt and estimated output fit in the KV cache free now: ``waiting_j = 0``,
``running_j < max_batch`` and ``kv_j + prompt_r + ô_r ≤ kv_tokens`` (``kv_j``: the KV held,
plus what the router sent this epoch at prompt + estimate). Every router picks among the
instances with room when any has it, and among all instances otherwise (a request is never sent
to a full instance while another has room).

**Mixing cost** (the heuristic; features of the learned policy), priced for the instance's
scheduler (:mod:`planner.sim.instances`: chunked prefill, an iteration carries at most ``B``
tokens, the decodes first; or whole prefill, prefill-only iterations pausing the decodes).
Sending r (prompt p, estimated output ô) to instance j with b requests running and w waiting
(W prompt tokens queued, L left of the prefill under way; D = b + w of them decoding while r's
prompt runs) costs, in seconds of request latency (:func:`chunked_s`: iterations of ``B − D``
chunk tokens, ``max(prefill_s(c + D), decode_s(D))`` each):

* ``own_ttft``: the chunked time of L + W + p tokens beside D decoders;
* ``own_decode = ô · decode_s(min(D + 1, max_batch))``: its decode at the batch it joins;
* ``stall = D · extra(p)``: each decoder loses, per iteration carrying r's chunks, that
  iteration's excess over a decode-only one (under whole prefill: the whole prefill time);
* ``slowdown = min(ô, m) · D · (decode_s(D + 1) − decode_s(D))``: the others decode slower
  while it runs (m: mean output estimate).

The heuristic sends r where the sum is least. The learned router scores ``w · φ`` over the same
four terms and seven more (queue length, outstanding tokens, KV share, the instance's predicted
decode tokens still to come — the router's memory of the estimates it sent, drained one token
per running request per decode iteration —, its queued prompt tokens, and queue and predicted
decode for a request predicted long), w found by policy search starting at the heuristic's
weights (:mod:`planner.sim.learn_router`).
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
FEATURES = (
    "own_ttft",
    "own_decode",
    "stall",
    "slowdown",
    "queue",
    "tokens_1e4",
    "kv_share",
    "predicted_decode_1e3",
    "queued_prompt_1e3",
    "long_x_queue",
    "long_x_predicted_decode",
)
HEURISTIC_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
LONG_OUTPUT = 256  # a request predicted to answer at least this many tokens is "long"


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
    prefill_left: Array
    predicted_decode: Array

    @classmethod
    def of(cls, view: PoolView, predicted_decode: Array, in_flight: Array | None = None) -> _Ledger:
        return cls(
            view.waiting.astype(float),
            view.running.astype(float),
            view.kv_used.astype(float),
            np.zeros(len(view.waiting)) if in_flight is None else in_flight.copy(),
            view.waiting_prompt.astype(float),
            view.prefill_left.astype(float),
            predicted_decode,
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
        self.predicted_decode[j] += out


@dataclass
class LoadAware:
    """Base of the load-aware routers: the epoch loop, the room rule, the ledger."""

    profile: InstanceProfile
    estimate: Estimate
    epoch_s: float = 0.25
    _pred: Array | None = field(default=None, init=False, repr=False)
    _pred_t: float = field(default=0.0, init=False, repr=False)
    _in_flight: Array | None = field(default=None, init=False, repr=False)
    _sent: dict[int, tuple[int, float]] = field(default_factory=dict, init=False, repr=False)

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        raise NotImplementedError

    def _predicted_decode(self, view: PoolView) -> Array:
        """Each instance's predicted decode tokens still to come (the router's memory of the
        estimates it sent, drained at the rate the instance's requests decode: one token per
        request per decode iteration; never the true outputs)."""
        n = len(view.waiting)
        if self._pred is None or len(self._pred) != n or view.time_s < self._pred_t:
            self._pred, self._pred_t = np.zeros(n), view.time_s
        b = np.minimum(view.running, self.profile.max_batch).astype(float)
        it = self.profile.decode_s(np.maximum(b, 1), np.full(n, REF_PROMPT))
        drained = (view.time_s - self._pred_t) * b / it
        self._pred = np.where(b + view.waiting > 0, np.maximum(self._pred - drained, 0.0), 0.0)
        self._pred_t = view.time_s
        return self._pred

    def _outstanding(self, view: PoolView) -> Array:
        """Each instance's outstanding tokens: prompt + estimated output of every request
        this router sent there that has not ended (``view.ended`` removes them)."""
        n = len(view.waiting)
        if self._in_flight is None or len(self._in_flight) != n or view.time_s < self._pred_t:
            self._in_flight, self._sent = np.zeros(n), {}
        for r in view.ended.tolist():
            sent = self._sent.pop(r, None)
            if sent is not None:
                self._in_flight[sent[0]] -= sent[1]
        return self._in_flight

    def route(self, arrivals: Arrivals, view: PoolView) -> IntArray:
        in_flight = self._outstanding(view)
        led = _Ledger.of(view, self._predicted_decode(view), in_flight)
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
            in_flight[j] += p + o
            self._sent[int(arrivals.index[i])] = (j, p + o)
        return dest


@dataclass
class JoinShortestQueue(LoadAware):
    """Fewest requests waiting or running."""

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        return led.waiting + led.running


@dataclass
class LeastTokens(LoadAware):
    """Fewest outstanding tokens: prompt + estimated output of the requests in flight there
    (module docstring)."""

    def scores(self, led: _Ledger, prompt: float, out: float) -> Array:
        return led.tokens


def chunked_s(prof: InstanceProfile, tokens: Array, decoders: Array) -> tuple[Array, Array]:
    """Prefilling ``tokens`` prompt tokens on an instance with ``decoders`` requests decoding
    (:mod:`planner.sim.instances`). Chunked prefill: iterations of ``B − D`` of them (B the
    token budget), ``max(prefill_s(c + D), decode_s(D))`` each; whole prefill: iterations of
    ``B`` of them, ``prefill_s(c)`` each, the decodes paused. Returns (the time of those
    iterations, their extra over as many decode-only iterations: what each decoding request
    loses to them; the whole time when the decodes pause)."""
    d = np.minimum(decoders, prof.max_batch)
    dec = np.where(d > 0, prof.decode_s(np.maximum(d, 1), np.full_like(d, REF_PROMPT)), 0.0)
    if not prof.chunked_prefill:  # the decodes neither share the budget nor advance
        d, dec = np.zeros_like(d), np.zeros_like(dec)
    per = np.maximum(prof.token_budget - d, 1.0)
    full = np.floor(tokens / per)
    rem = tokens - full * per
    t_full = np.maximum(prof.prefill_s(per + d), dec)
    t_rem = np.where(rem > 0, np.maximum(prof.prefill_s(rem + d), dec), 0.0)
    time = full * t_full + t_rem
    iters = full + (rem > 0)
    return time, np.maximum(time - iters * dec, 0.0)


def mix_features(
    prof: InstanceProfile, led: _Ledger, prompt: float, out: float, mean_out: float
) -> npt.NDArray[np.float64]:
    """φ[j, k]: the :data:`FEATURES` of sending one request to each instance j."""
    others = led.running + led.waiting
    joined = np.minimum(others + 1, prof.max_batch)
    ctx = np.full_like(joined, REF_PROMPT)
    d_join = prof.decode_s(joined, ctx)
    d_now = prof.decode_s(np.maximum(np.minimum(others, prof.max_batch), 1), ctx)
    own_ttft, _ = chunked_s(prof, led.prefill_left + led.waiting_prompt + prompt, others)
    _, stall_each = chunked_s(prof, np.full_like(others, prompt), others)
    long = float(out >= LONG_OUTPUT)
    pred_1e3 = led.predicted_decode / 1e3
    return np.stack(
        [
            own_ttft,
            out * d_join,
            others * stall_each,
            min(out, mean_out) * others * np.maximum(d_join - d_now, 0.0),
            others,
            led.tokens / 1e4,
            led.kv / prof.kv_tokens,
            pred_1e3,
            led.waiting_prompt / 1e3,
            long * others,
            long * pred_1e3,
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
