"""Each request's TTFT and TPOT from the request rows themselves: the pool replay where there
are rows (:func:`planner.sim.pool.pool_sla_requests`), an overload across minutes included.

The per-minute model (:mod:`planner.sim.minute_model`) reads a minute's aggregates only, so
two minutes with the same aggregates get the same attainment, whichever arrival carries
which request. The iteration-level reference does not: on ServeGen traffic the interactive
tiers' arrivals fall where the pool is calmer than the average arrival sees it, and a long
prompt is slow for the decodes beside it only while it is being prefilled (README, "Serving
model": the twins). Here every request keeps its own arrival, prompt and output; the
minute's mean-value state (:func:`planner.sim.minute_model.minute_state`: decode batch D,
iteration τ, decode iteration t_d, full iteration f = max(prefill_s(B), t_d), the prompt
queue's busy share) sets the iteration times. Round robin sends request i (in arrival order)
to instance i mod n, so each instance's requests are known; all instances are computed
together (arrays [n, K], instance by position).

**Prompt queue** (:func:`fcfs_start`): an instance prefills its prompts first come,
first served, B − D prompt tokens per full iteration, so prompt i holds the queue for S_i =
p_i f / (B − D) (token time, as the minute model's prompt queue). A prompt joins it when its
request is admitted, at A_i = a_i + W_i (a_i its arrival, W_i its wait for admission: 0
unless the instance is overloaded, below). Its prefill starts at Lindley's s_i = max(A_i,
s_{i−1} + S_{i−1}); with C_i = Σ_{j<i} S_j that is ``s_i = C_i + max_{j≤i}(A_j − C_j)``, one
cumulative maximum per instance.

**TTFT** = s_i − a_i + τ / 2 (the iteration under way when it is admitted) + its own prefill:
its whole chunks (w = ⌊(p − 1) / (B − D)⌋ full iterations) and its last one. The last
iteration also carries the prompts admitted on the instance after it, while it queued and
while its whole chunks ran (nothing joins a full iteration; they join at the first
iteration with budget left), so it lasts ``max(prefill_s(min(B, r + D + Q_i)), t_d)``, r its
last chunk's tokens and Q_i the prompt tokens of its instance's later admissions before that
iteration starts (:func:`joining_tokens`). Alone it would last max(prefill_s(r + D), t_d):
on Llama2-70B / A100 a 3,000-token prompt beside 20 decodes has six whole chunks of 492
tokens and a last one of 48, 57 ms alone and 127 ms beside a queued prompt, on IW-F's 1-s
target. The TTFT counts from the arrival, so it includes W_i.

**TPOT** = t_d(d̄_i) + X_i / n_i for n_i = o_i − 1 ≥ 1 decodes over [F_i, E_i], F_i the first
token, E_i = F_i + n_i TPOT_i:
- X_i: what the prompts being prefilled on its instance meanwhile add to its iterations:
  prompt j adds c_j (:func:`planner.sim.minute_model.prompt_costs`: its chunks' excess over a
  decode-only iteration, alone or packed behind queued prompts by the minute's busy share),
  spread evenly over its prefill [s_j + τ/2, F_j]; X_i is that rate integrated over [F_i,
  E_i] (:class:`StepIntegral`); TPOT is at most max(prefill_s(B), t) (no iteration is
  longer than a full one);
- d̄_i: the mean decode batch over its span, the number of its instance's requests decoding
  (F_j ≤ t < E_j) integrated over [F_i, E_i] / (E_i − F_i); t_d at d̄_i and the minute's mean
  context.

E depends on TPOT: for a given t, E is read off the inverse of t − X(t) (exact on the
piecewise-linear integral; :meth:`StepIntegral.reach`); t is taken at the mean batch over
the spans that t_d at the minute's D gives (one step, :func:`decode_times`). A one-token
output has no TPOT (0). No constant is fitted to a trace: everything comes from the profile,
the minute's state and the rows; two modelling choices, ``CEILING`` and the overload's hold
of half a batch (below), were made on the calibration day and the training traces.

**Overload** (:func:`admission_wait`, with :class:`Admission`): a request joins its
instance's batch when a slot frees, after the requests ahead of it in the instance's queue.
Each instance is a first-come-first-served queue of work served at the minute's κ (busy
seconds at the best rates per second, :mod:`planner.sim.mix_kappa`): request i brings w_i =
b_i / κ seconds, and V_i, the work ahead of it not yet done when it arrives, is the same
Lindley recursion as the prompt queue's. V_i includes what the batch is serving, which does
not hold the request back: a full batch holds ``max_batch`` requests, half done on average,
h_i = max_batch · E[b] / (2κ) at its minute (E[b] the minute's mean busy seconds per
request). It is admitted at A_i = max(a_i + max(V_i − h_i, 0), A_{i−1}): not before the
request ahead of it, where the hold grows from one minute to the next. Its prompt joins the
prompt queue then, so in an overload the prefills, and what they cost the decodes, come at
the rate the instance serves, not at the rate the requests arrive (fed at the arrivals, the
prompt queue prefilled a burst at once and every decode beside it ran at a full iteration).
Each instance's own queue, from its own requests, replaces the pool's minute queue with its
spread of backlogs here (the per-minute model keeps that; README, "Serving model",
fifteenth session). Requests must be sorted by arrival: round robin deals them out in that
order (:func:`request_latency` sorts them if not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.minute_model import MinuteState, chunk_split, prompt_costs
from planner.sim.profile import InstanceProfile

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# the summed rate at which prefills slow the decodes beside them is capped just below 1: the
# decode span is read off t − X(t), which must increase (:meth:`StepIntegral.reach`). The
# alternative, capping it at the physical share of a full iteration's excess, max(1 − t_d /
# f) ≈ 0.62 (where prefills overlap, their costs would not add up), was chosen against on
# the traces that are not held out (interactive rows within 1 point / mean absolute error,
# cap at 0.62 against 0.999): day 2 (calibration) 5 / 8, 1.09 against 8 / 8, 0.53; the
# eleven training traces of the twelfth session 65 / 110, 1.66 against 73 / 110, 1.25
CEILING = 0.999


@dataclass(frozen=True)
class RequestLatency:
    """Per request (the rows' order): TTFT from its arrival, mean time per output token, and
    the part of the TTFT it waited to be admitted to its instance's batch (overload)."""

    ttft_s: Array
    tpot_s: Array
    wait_s: Array


@dataclass(frozen=True)
class Admission:
    """Per request (the rows' order), what admission to its instance's batch turns on in an
    overload (:func:`admission_wait`): its work in seconds of instance time, b / κ, and the
    work a full batch holds in service, max_batch · E[b] / (2κ), at its minute's κ."""

    work_s: Array
    hold_s: Array

    def take(self, order: IntArray) -> Admission:
        return Admission(self.work_s[order], self.hold_s[order])


def by_instance(x: npt.ArrayLike, instances: int, pad: float = 0.0) -> Array:
    """[n, K] the rows' values per round-robin instance (row i mod n), in arrival order;
    the last positions of some instances padded with ``pad``."""
    v = np.asarray(x, float)
    K = -(-len(v) // instances)
    out = np.full(K * instances, pad)
    out[: len(v)] = v
    return np.ascontiguousarray(out.reshape(K, instances).T)


def from_instance(y: Array, count: int) -> Array:
    """The inverse of :func:`by_instance`: [n, K] back to the rows' order."""
    return np.asarray(y.T.ravel()[:count], dtype=float)


def fcfs_start(arrival: Array, hold: Array) -> Array:
    """[n, K] when each request starts in its instance's first-come-first-served queue, each
    holding it ``hold`` seconds: Lindley's s_i = max(a_i, s_{i−1} + S_{i−1}), as s = C +
    max(a − C) (module docstring)."""
    before = np.cumsum(hold, axis=1) - hold
    return np.asarray(before + np.maximum.accumulate(arrival - before, axis=1), dtype=float)


def admission_wait(arrival: Array, work: Array, hold: Array) -> Array:
    """[n, K] how long each request waits to be admitted to its instance's batch: the work
    ahead of it in the instance's queue (:func:`fcfs_start` over ``work``) less the work a
    full batch holds in service, ``hold``; never admitted before the request ahead of it
    (module docstring, "Overload")."""
    ready = arrival + np.maximum(fcfs_start(arrival, work) - arrival - hold, 0.0)
    return np.asarray(np.maximum.accumulate(ready, axis=1) - arrival, dtype=float)


def _offsets(*times: Array) -> Array:
    """[n, 1] a time offset per instance that keeps the instances' times apart in one sort."""
    top = max(float(np.max(t)) for t in times) - min(float(np.min(t)) for t in times)
    return np.arange(times[0].shape[0], dtype=float)[:, None] * (top + 1.0)


def joining_tokens(arrival: Array, prompt: Array, until: Array) -> Array:
    """[n, K] the prompt tokens of the requests that join each request's instance after it
    (``arrival``: when they join, sorted per instance) and before ``until`` (the start of its
    last prefill iteration)."""
    off = _offsets(arrival, until)
    a = (arrival + off).ravel()
    tokens = np.concatenate([[0.0], np.cumsum(prompt.ravel())])
    last = np.searchsorted(a, (until + off).ravel(), side="right")
    own = np.arange(1, a.size + 1)
    return np.asarray((tokens[np.maximum(last, own)] - tokens[own]).reshape(arrival.shape))


def _sweep(
    start: Array, end: Array, rate: Array, ceiling: float = np.inf
) -> tuple[IntArray, Array, Array]:
    """The intervals' starts and ends (already offset per instance) as one sorted sweep: the
    sort order of [starts, ends], the sorted events, and the integral of the summed rate
    (capped at ``ceiling``) from the first event to each."""
    ev = np.concatenate([start.ravel(), end.ravel()])
    step = np.concatenate([rate.ravel(), -rate.ravel()])
    order = np.argsort(ev, kind="stable")
    ev, level = ev[order], np.minimum(np.cumsum(step[order]), ceiling)
    return order, ev, np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(ev))])


@dataclass(frozen=True)
class StepIntegral:
    """∫ Σ_j rate_j · 1[start_j ≤ t < end_j] dt over each instance's own intervals (all
    [n, K]; end ≥ start), the summed rate capped at ``ceiling``: the intervals sorted once,
    read over any (lo, hi) by :meth:`over`."""

    events: Array  # the intervals' ends, offset per instance, sorted
    area: Array  # the integral from the first event to each
    offset: Array  # [n, 1]

    @classmethod
    def of(
        cls, start: Array, end: Array, rate: Array, horizon: Array, ceiling: float = np.inf
    ) -> StepIntegral:
        """``horizon``: the latest time it will be read at (keeps the instances apart)."""
        off = _offsets(start, end, horizon)
        _, ev, area = _sweep(start + off, end + off, rate, ceiling)
        return cls(ev, area, off)

    def at(self, t: Array) -> Array:
        """[n, K] the integral up to ``t`` (offset per instance, as the events)."""
        flat = np.interp((t + self.offset).ravel(), self.events, self.area)
        return np.asarray(flat.reshape(t.shape), dtype=float)

    def over(self, lo: Array, hi: Array) -> Array:
        """[n, K] the integral from ``lo`` to ``hi``."""
        return self.at(hi) - self.at(lo)

    def reach(self, lo: Array, excess: Array, upto_lo: Array | None = None) -> Array:
        """[n, K] the least e with e − lo − (integral from lo to e) = ``excess`` ≥ 0: where a
        span from ``lo`` ends when it must hold ``excess`` seconds besides what the rate adds
        to it. t − integral(t) increases while the rate stays below 1 (the ceiling), so it is
        read off inversely; past the last event the rate is 0. ``upto_lo``: :meth:`at` of
        ``lo``, if known."""
        rise = self.events - self.area  # t − integral(t) at the events
        upto = self.at(lo) if upto_lo is None else upto_lo
        want = (lo + self.offset - upto + excess).ravel()
        e = np.interp(want, rise, self.events)
        e = np.where(want > rise[-1], self.events[-1] + want - rise[-1], e)
        return np.asarray(e.reshape(lo.shape) - self.offset, dtype=float)


def mean_batch(first: Array, end: Array) -> Array:
    """[n, K] the mean number of its instance's requests decoding (F_j ≤ t < E_j, itself
    included) over each request's own span [F, E] (1 where the span is empty): the count's
    integral read at the spans' own ends, which are the events."""
    off = _offsets(first, end)
    order, _, sorted_area = _sweep(first + off, end + off, np.ones_like(first))
    area = np.empty(sorted_area.size)
    area[order] = sorted_area  # back at each interval's own start and end
    span = (end - first).ravel()
    inside = area[first.size :] - area[: first.size]
    mean = np.where(span > 0, inside / np.where(span > 0, span, 1.0), 1.0)
    return np.asarray(np.maximum(mean, 1.0).reshape(first.shape), dtype=float)


def _spans(
    first: Array, decodes: Array, t_decode: Array, full: float, added: StepIntegral, upto: Array
) -> Array:
    """[n, K] where each decode span ends at decode iteration ``t_decode``: E − F − X(F, E)
    = n t (:meth:`StepIntegral.reach`), or F + n max(``full``, t) where no longer iterations
    are possible first (also the bound that keeps the answer within the integral's horizon)."""
    free = added.reach(first, decodes * t_decode, upto)
    return np.minimum(free, first + decodes * np.maximum(full, t_decode))


def decode_times(
    profile: InstanceProfile,
    first: Array,
    decodes: Array,
    t_decode: Array,
    context: Array,
    added: StepIntegral,
) -> Array:
    """[n, K] each request's TPOT = t + X / n (module docstring), X the prompts' cost over
    its own span [F, E = F + n · TPOT]. t is the decode iteration at the mean batch over the
    spans that the minute's decode iteration ``t_decode`` gives (:func:`mean_batch`): one
    step, not iterated. Iterating to the fixed point of spans and batch took four times as
    long and moved the agreement rows by up to 0.4 point, not closer (README, "Serving
    model", fourteenth session)."""
    full = float(profile.prefill_s(float(profile.token_budget)))
    upto = added.at(first)
    end = _spans(first, decodes, t_decode, full, added, upto)
    t_decode = profile.decode_s(mean_batch(first, end), context)
    end = _spans(first, decodes, t_decode, full, added, upto)
    return np.asarray(np.where(decodes > 0, (end - first) / np.maximum(decodes, 1.0), 0.0))


def request_latency(
    profile: InstanceProfile,
    state: MinuteState,
    arrival_s: Array,
    prompt: npt.ArrayLike,
    output: npt.ArrayLike,
    minute: IntArray,
    instances: int,
    admission: Admission | None = None,
) -> RequestLatency:
    """Each request's TTFT and TPOT on ``instances`` round-robin instances (module
    docstring), in the rows' order; ``minute``: each row's minute, the index into ``state``;
    ``admission``: what an overload holds it back by (none if None). Round robin deals the
    requests out in arrival order, so rows that are not sorted are sorted first (stably, as
    the reference does)."""
    a = np.asarray(arrival_s, float)
    if not np.all(np.isfinite(a)):
        raise ValueError("request_latency: arrival times must be finite")
    if len(a) == 0:
        return RequestLatency(np.zeros(0), np.zeros(0), np.zeros(0))
    if admission is None:
        admission = Admission(np.zeros(len(a)), np.zeros(len(a)))
    if np.all(a[1:] >= a[:-1]):
        m = np.asarray(minute, np.int64)
        return _sorted_latency(profile, state, a, prompt, output, m, instances, admission)
    order = np.argsort(a, kind="stable")
    p, o, m = (np.asarray(x)[order] for x in (prompt, output, minute))
    lat = _sorted_latency(
        profile, state, a[order], p, o, m.astype(np.int64), instances, admission.take(order)
    )
    back = np.empty_like(order)
    back[order] = np.arange(len(a))
    return RequestLatency(lat.ttft_s[back], lat.tpot_s[back], lat.wait_s[back])


def _sorted_latency(
    profile: InstanceProfile,
    state: MinuteState,
    arrival_s: Array,
    prompt: npt.ArrayLike,
    output: npt.ArrayLike,
    m: IntArray,
    n: int,
    admission: Admission,
) -> RequestLatency:
    """:func:`request_latency` on rows sorted by arrival (module docstring)."""
    count = len(arrival_s)
    arrived = by_instance(arrival_s, n, float(np.max(arrival_s)))
    work, hold = by_instance(admission.work_s, n), by_instance(admission.hold_s, n)
    wait = admission_wait(arrived, work, hold)
    a = arrived + wait  # admitted: the prompt joins the prompt queue
    D, td = state.decode_batch[m], state.decode_s[m]
    full, tau = state.full_s[m], state.iteration_s[m]
    p = np.asarray(prompt, float)
    room, whole, rest = (x[:, 0] for x in chunk_split(profile, p[:, None], D))
    cost = prompt_costs(profile, p[:, None], D, td, state.backlog[m])[0][:, 0]
    start = fcfs_start(a, by_instance(p * full / room, n))
    last_starts = start + by_instance(0.5 * tau + whole * full, n)
    joined = from_instance(joining_tokens(a, by_instance(p, n), last_starts), count)
    B = float(profile.token_budget)
    last = np.maximum(profile.prefill_s(np.minimum(B, rest + D + joined)), td)
    prefill_from = start + by_instance(0.5 * tau, n)  # its prefill's first iteration
    first = prefill_from + by_instance(whole * full + last, n)
    decodes = by_instance(np.maximum(np.asarray(output, float) - 1.0, 0.0), n)
    spread = by_instance(cost, n) / np.maximum(first - prefill_from, 1e-9)  # c_j per second
    context = by_instance(state.context[m], n)
    longest = np.maximum(float(profile.prefill_s(B)), profile.decode_s(profile.max_batch, context))
    added = StepIntegral.of(prefill_from, first, spread, first + decodes * longest, CEILING)
    tpot = decode_times(profile, first, decodes, by_instance(td, n), context, added)
    return RequestLatency(
        from_instance(first - arrived, count),
        from_instance(tpot, count),
        from_instance(wait, count),
    )
