"""The request-level fluid on hand-computed cases, beside the iteration-level reference (a toy
profile whose forward pass over T tokens takes T ms and whose decode iteration takes 10 ms at
any batch, budget 100 tokens)."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sim.instances import Requests, simulate_instances
from planner.sim.minute_model import MinuteState
from planner.sim.pool import PoolRows, admission, on_time_shares, pool_minutes
from planner.sim.request_fluid import (
    Admission,
    RequestLatency,
    StepIntegral,
    admission_wait,
    by_instance,
    fcfs_start,
    from_instance,
    joining_tokens,
    mean_batch,
    request_latency,
)
from tests.planner.test_minute_model import flat


def state(decodes: float, residual_s: float = 0.0) -> MinuteState:
    """One minute of the toy profile beside ``decodes`` decodes: t_d 10 ms, a full iteration
    100 ms, no prompt queue; τ = 2 · ``residual_s`` (the wait for the iteration under way)."""
    one = np.ones(1)
    return MinuteState(
        decode_batch=one * decodes,
        iteration_s=one * 2 * residual_s,
        decode_s=one * 0.01,
        full_s=one * 0.1,
        backlog=one * 0.0,
        pool_cost=np.zeros((1, 2)),
        pool_prefill=np.zeros((1, 2)),
        costs=np.zeros((1, 1)),
        cost_weights=np.ones((1, 1)),
        context=one * 100.0,
    )


def test_rows_go_round_robin_and_back() -> None:
    x = np.arange(7.0)
    rows = by_instance(x, 3, pad=-1.0)
    assert rows.tolist() == [[0.0, 3.0, 6.0], [1.0, 4.0, -1.0], [2.0, 5.0, -1.0]]
    assert from_instance(rows, 7).tolist() == x.tolist()


def test_fcfs_start_is_lindleys_recursion() -> None:
    """s_i = max(a_i, s_{i−1} + S_{i−1}) per instance, against the loop."""
    rng = np.random.default_rng(3)
    arrival = np.sort(rng.exponential(1.0, (4, 50)).cumsum(axis=1), axis=1)
    hold = rng.exponential(0.9, (4, 50))
    got = fcfs_start(arrival, hold)
    for i in range(4):
        s = arrival[i, 0]
        for k in range(50):
            s = max(arrival[i, k], s) if k == 0 else max(arrival[i, k], s + hold[i, k - 1])
            assert got[i, k] == pytest.approx(s)


def test_joining_tokens_count_later_arrivals_of_the_same_instance() -> None:
    arrival = np.array([[0.0, 0.1, 0.2, 0.5], [0.0, 0.05, 0.06, 0.07]])
    prompt = np.array([[100.0, 200.0, 300.0, 400.0], [1.0, 2.0, 4.0, 8.0]])
    until = np.array([[0.25, 0.1, 0.3, 9.0], [0.0, 0.065, 0.06, 0.07]])
    got = joining_tokens(arrival, prompt, until)
    assert got.tolist() == [[500.0, 0.0, 0.0, 0.0], [0.0, 4.0, 0.0, 0.0]]


def test_step_integral_reads_and_inverts() -> None:
    """Rates 0.5 on [1, 3] and 0.25 on [2, 6] on one instance, the other instance apart."""
    start = np.array([[1.0, 2.0], [0.0, 0.0]])
    end = np.array([[3.0, 6.0], [10.0, 10.0]])
    rate = np.array([[0.5, 0.25], [0.9, 0.05]])
    integral = StepIntegral.of(start, end, rate, end)
    lo, hi = np.array([[0.0, 2.5], [0.0, 0.0]]), np.array([[4.0, 8.0], [1.0, 1.0]])
    assert integral.over(lo, hi) == pytest.approx(np.array([[1.5, 1.125], [0.95, 0.95]]))
    # the span from lo that holds ``excess`` seconds besides what the rate adds: from 0 with
    # 1.8 s it passes [1, 2] at 0.5 and [2, 3] at 0.75 and ends in [3, 6] at 0.25: 0.75 e −
    # 0.5 = 1.8; from 7 nothing is left to add; the other instance's 0.95 ends at 10, where
    # 0.5 s of the excess is held, so 0.5 more
    got = integral.reach(np.array([[0.0, 7.0], [0.0, 0.0]]), np.array([[1.8, 1.0], [1.0, 1.0]]))
    assert got == pytest.approx(np.array([[2.3 / 0.75, 8.0], [10.5, 10.5]]))


def test_mean_batch_counts_the_requests_decoding_over_each_span() -> None:
    first = np.array([[0.0, 1.0, 5.0]])
    end = np.array([[2.0, 3.0, 5.0]])
    assert mean_batch(first, end).tolist() == [[1.5, 1.5, 1.0]]


def test_a_long_prompts_last_iteration_carries_the_prompt_behind_it() -> None:
    """350 tokens at 0, 60 at 0.05, budget 100, no decodes. The reference: three full chunks
    (0.1 s each), then its last 50 tokens beside the first 50 of the other prompt: first token
    at 0.4 (alone it would be 0.35); the second prompt's last 10 tokens at 0.41. The fluid
    charges the last iteration with min(B, 50 + 60) tokens and queues the second prompt
    behind 350 tokens of token time (0.35 s), then its own 60 tokens."""
    arrival, prompt, output = np.array([0.0, 0.05]), np.array([350, 60]), np.array([1, 1])
    ref = simulate_instances(Requests(arrival, prompt, output), flat(), 1)
    assert ref.first_token_s.tolist() == pytest.approx([0.4, 0.41])
    fluid = request_latency(flat(), state(0.0), arrival, prompt, output, np.zeros(2, np.int64), 1)
    assert (arrival + fluid.ttft_s).tolist() == pytest.approx([0.4, 0.41])


def test_a_prompt_prefilled_beside_a_decode_slows_its_tokens_by_its_chunks() -> None:
    """A request decodes 100 tokens from 0.01 s; a 250-token prompt arrives at 0.5 and is
    prefilled in chunks of 99 beside it (budget 100 less one decode): two full iterations
    (0.1 s) and one of 52 + 1 tokens (0.053 s) replace three 10-ms decode iterations:
    TPOT = (97 · 0.01 + 0.253) / 100 = 12.23 ms, in the reference and in the fluid."""
    arrival, prompt, output = np.array([0.0, 0.5]), np.array([10, 250]), np.array([101, 1])
    ref = simulate_instances(Requests(arrival, prompt, output), flat(), 1)
    assert ref.tpot_s[0] == pytest.approx(0.01223)
    fluid = request_latency(flat(), state(1.0), arrival, prompt, output, np.zeros(2, np.int64), 1)
    assert fluid.tpot_s.tolist() == pytest.approx([0.01223, 0.0])
    alone = request_latency(
        flat(), state(1.0), arrival[:1], prompt[:1], output[:1], np.zeros(1, np.int64), 1
    )
    assert alone.tpot_s.tolist() == pytest.approx([0.01])


def test_the_iteration_under_way_and_other_instances() -> None:
    """Three lone 50-token prompts on two instances (rows 0 and 2 on one, row 1 on the
    other): each waits for the iteration under way (τ / 2 = 20 ms) and prefills alone (50
    ms); the padded position of the second instance changes nothing. Given out of order,
    the rows are dealt out in arrival order."""
    arrival, prompt, output = np.array([0.0, 1.0, 2.0]), np.array([50, 50, 50]), np.ones(3)
    minute = np.zeros(3, np.int64)
    got = request_latency(flat(), state(0.0, 0.02), arrival, prompt, output, minute, 2)
    assert got.ttft_s.tolist() == pytest.approx([0.07, 0.07, 0.07])
    # a fourth prompt at 2.01 goes to the second instance (0.07 s); given first, it still does
    arrival = np.array([2.01, 0.0, 1.0, 2.0])
    prompt, output, minute = np.full(4, 50), np.ones(4), np.zeros(4, np.int64)
    got = request_latency(flat(), state(0.0, 0.02), arrival, prompt, output, minute, 2)
    assert got.ttft_s.tolist() == pytest.approx([0.07] * 4)
    with pytest.raises(ValueError, match="finite"):
        request_latency(flat(), state(0.0), np.array([np.nan]), [1], [1], minute[:1], 1)
    empty = request_latency(flat(), state(0.0), np.zeros(0), [], [], minute[:0], 2)
    assert len(empty.ttft_s) == 0


def test_an_overloaded_instance_admits_after_the_work_ahead_less_a_batchs_hold() -> None:
    """Three requests at 0 on one instance, 10 s of work each, a batch holding 5 s: the work
    ahead of them is 0, 10 and 20 s, so they wait 0, 5 and 15 s; on two instances (rows 0
    and 2 on one) only row 2 waits. Their 50-token prompts join the prompt queue when they
    are admitted, so each prefills alone (50 ms) and the TTFT counts the wait."""
    arrival = np.zeros((1, 3))
    work, hold = np.full((1, 3), 10.0), np.full((1, 3), 5.0)
    assert admission_wait(arrival, work, hold).tolist() == [[0.0, 5.0, 15.0]]
    assert admission_wait(arrival, work, hold * 0.0).tolist() == [[0.0, 10.0, 20.0]]
    rows = np.zeros(3), np.full(3, 50), np.ones(3), np.zeros(3, np.int64)
    overload = Admission(np.full(3, 10.0), np.full(3, 5.0))
    got = request_latency(flat(), state(0.0), *rows, 1, overload)
    assert got.wait_s.tolist() == pytest.approx([0.0, 5.0, 15.0])
    assert got.ttft_s.tolist() == pytest.approx([0.05, 5.05, 15.05])
    two = request_latency(flat(), state(0.0), *rows, 2, overload)
    assert two.wait_s.tolist() == pytest.approx([0.0, 0.0, 5.0])


def test_admission_never_overtakes_the_request_ahead_when_the_hold_grows() -> None:
    """A request every second, 3 s of work each (the work ahead grows by 2 s a second), a
    batch holding 10 s in minute 0 and 14 s in minute 1: the row at 59 s (118 s ahead) is
    admitted at 59 + 118 − 10 = 167 s; the row at 60 s (120 s ahead, hold 14) would be
    admitted at 166 s, before it: it waits for it instead, and the rows after it keep their
    order."""
    arrival = np.arange(70.0)[None, :]
    hold = np.where(arrival < 60.0, 10.0, 14.0)
    admitted = arrival + admission_wait(arrival, np.full((1, 70), 3.0), hold)
    assert np.all(np.diff(admitted) >= 0.0)
    assert admitted[0, 59:62].tolist() == [167.0, 167.0, 169.0]


def test_admission_is_the_work_at_the_minutes_kappa_and_half_a_full_batch() -> None:
    """Busy seconds 2 and 0.5 in minute 0 (κ 2), 2 in minute 1 (κ 4), flat profile (64 slots):
    work b / κ = 1, 0.25, 0.5 s; hold 64 · E[b] / (2κ) = 64 · 1.25 / 4 = 20 s and 64 · 2 / 8 =
    16 s; at one κ of 2 for both minutes, 0.25 s and 32 s in minute 1."""
    rows = PoolRows(
        np.array([0.0, 1.0, 61.0]),
        np.array([1000, 500, 1000]),
        np.array([6400, 0, 6400]),
        np.zeros(3, np.int64),
        np.array([0, 0, 1]),
    )
    busy = flat().busy_s(rows.prompt, rows.output)
    traffic = pool_minutes(rows.arrival_s, rows.tier, busy, 3, 2, 1)
    got = admission(rows, traffic, flat(), np.array([2.0, 4.0]))
    assert got.work_s.tolist() == pytest.approx([1.0, 0.25, 0.5])
    assert got.hold_s.tolist() == pytest.approx([20.0, 20.0, 16.0])
    one = admission(rows, traffic, flat(), 2.0)
    assert one.work_s.tolist() == pytest.approx([1.0, 0.25, 1.0])
    assert one.hold_s.tolist() == pytest.approx([20.0, 20.0, 32.0])


def test_rows_out_of_order_keep_their_own_admission() -> None:
    """Four requests, 10 s of work each but the last (4 s), a batch holding 5 s: work ahead
    0, 9.75, 19.5 and 29 s. Given in another order (each row's work and hold with it), each
    row gets the wait and TTFT it has in arrival order."""
    arrival = np.array([0.0, 0.25, 0.5, 1.0])
    rows = np.full(4, 50), np.ones(4), np.zeros(4, np.int64)
    work, hold = np.array([10.0, 10.0, 10.0, 4.0]), np.array([5.0, 5.0, 5.0, 5.0])
    sorted_ = request_latency(flat(), state(0.0), arrival, *rows, 1, Admission(work, hold))
    assert sorted_.wait_s.tolist() == pytest.approx([0.0, 4.75, 14.5, 24.0])
    order = np.array([3, 1, 0, 2])
    got = request_latency(
        flat(), state(0.0), arrival[order], *rows, 1, Admission(work[order], hold[order])
    )
    assert got.wait_s.tolist() == pytest.approx(sorted_.wait_s[order].tolist())
    assert got.ttft_s.tolist() == pytest.approx(sorted_.ttft_s[order].tolist())


def test_on_time_shares_count_a_request_whose_ttft_and_tpot_meet_its_tiers_targets() -> None:
    """Two minutes; IW-F (targets 1 s, 60 ms) rows at 10 s and 50 s, a tier-1 row (10 s,
    120 ms) at 50 s and one at 70 s. The IW-F row at 50 s waited 0.5 s for admission, within
    its TTFT of 0.9 s: on time (the wait is not counted twice); the tier-1 row at 50 s misses
    on TPOT; minute 1 has no IW-F row; the IW-F row at 10 s misses on TTFT."""
    rows = PoolRows(
        np.array([10.0, 50.0, 50.0, 70.0]),
        np.zeros(4, np.int64),
        np.zeros(4, np.int64),
        np.array([0, 0, 1, 1]),
        np.array([0, 0, 0, 1]),
    )
    latency = RequestLatency(
        np.array([1.2, 0.9, 0.2, 0.2]), np.array([0.05, 0.05, 0.2, 0.1]), np.array([0, 0.5, 0, 0])
    )
    requests = np.array([[2.0, 1.0], [0.0, 1.0]])
    got = on_time_shares(rows, latency, np.array([1.0, 10.0]), np.array([0.06, 0.12]), requests)
    assert got.tolist() == [[0.5, 0.0], [1.0, 1.0]]
