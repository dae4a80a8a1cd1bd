"""vLLM's paged KV cache in the iteration-level reference (planner.sim.instance_step), by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from planner.sim.fairness import Fcfs, Gateway
from planner.sim.instances import Requests, simulate_instances
from tests.planner.test_instances import toy


def _two() -> Requests:
    return Requests(np.array([0.0, 0.05]), np.array([100, 100]), np.array([5, 5]))


def test_reservation_makes_the_second_request_wait() -> None:
    """KV 205 tokens, reserve: A holds 100 + 5, B's 105 do not fit until A ends. A: prefill
    0→0.1, four 10-ms decodes → 0.14; B: prefill 0.14→0.24, four decodes → 0.28."""
    s = simulate_instances(_two(), toy(kv_tokens=205.0), 1)
    assert s.first_token_s == pytest.approx([0.1, 0.24])
    assert s.finish_s == pytest.approx([0.14, 0.28])


def test_paged_cache_admits_then_preempts_by_recompute() -> None:
    """KV 205 tokens, paged (watermark 2.05): at 0.1 B's prompt fits beside A (100 + 1 decode
    + 100 ≤ 202.95): one mixed iteration max(101 ms, 10 ms) → 0.201 (A 101 tokens, B 100, B's
    first token). The cache then holds 201: two decode iterations of both (20 ms each) fill it
    to 205 at 0.241; the next two decodes do not fit: B (admitted last) is preempted, having
    generated 3 tokens. A decodes its last token alone → 0.251 and frees 104. B is readmitted
    with a 103-token prompt (100 + its 3 tokens, recomputed): 0.251→0.354, then its last
    token → 0.364. Its first token keeps 0.201."""
    s = simulate_instances(_two(), replace(toy(kv_tokens=205.0), kv_paging=True), 1)
    assert s.first_token_s == pytest.approx([0.1, 0.201])
    assert s.finish_s == pytest.approx([0.251, 0.364])


def test_paged_equals_reserve_where_the_cache_never_binds() -> None:
    """Paging changes nothing while every reservation fits (as on Llama2-70B/A100, whose cache
    holds 64 × its 4,096-token window): same times to the last digit."""
    rng = np.random.default_rng(5)
    n = 400
    req = Requests(np.sort(rng.uniform(0, 4, n)), rng.integers(20, 900, n), rng.integers(1, 80, n))
    prof = toy(max_batch=8, token_budget=256, kv_tokens=8 * 1000.0 / 0.99)
    a = simulate_instances(req, prof, 3)
    b = simulate_instances(req, replace(prof, kv_paging=True), 3)
    assert np.array_equal(a.first_token_s, b.first_token_s)
    assert np.array_equal(a.finish_s, b.finish_s)


def test_paged_cache_under_pressure_serves_everything_once() -> None:
    """A cache of 3,000 tokens against batches of 8 requests up to 1,000 tokens: requests are
    preempted and recomputed, and every one still ends after its first token, with the
    outputs it asked for."""
    rng = np.random.default_rng(6)
    n = 300
    req = Requests(np.sort(rng.uniform(0, 2, n)), rng.integers(20, 600, n), rng.integers(1, 400, n))
    prof = replace(toy(max_batch=8, token_budget=256, kv_tokens=3000.0), kv_paging=True)
    s = simulate_instances(req, prof, 2)
    assert np.isfinite(s.finish_s).all()
    assert (s.finish_s >= s.first_token_s).all() and (s.first_token_s > req.arrival_s).all()
    assert (s.output == req.output).all()
    reserve = simulate_instances(req, replace(prof, kv_paging=False), 2)
    assert not np.array_equal(s.finish_s, reserve.finish_s)  # the cache did bind


def test_preemption_from_an_empty_queue_keeps_the_requests_routed_after_it() -> None:
    """A gateway releases requests as they arrive (0.01-s epochs), so the queue empties while
    requests run. A (100 + 100 tokens), B (100 + 100) and C (1 + 1) are admitted by 0.202,
    C ending at once; A and B decode 14 20-ms iterations until the 230-token cache holds 229
    (0.482): B, admitted last, is preempted with 15 tokens made, into the empty queue. D (1 +
    1) arrives at 0.6 and queues behind it (it used to be linked behind C, which had ended,
    and was never served). A ends at 1.322; B (a 115-token prompt now) and D prefill
    together, 116 ms: D's only token at 1.438, then B's last 84 tokens at 10 ms → 2.278."""
    req = Requests(
        np.array([0.0, 0.001, 0.002, 0.6]), np.array([100, 100, 1, 1]), np.array([100, 100, 1, 1])
    )
    prof = replace(toy(max_batch=3, kv_tokens=230.0), kv_paging=True)
    s = simulate_instances(req, prof, 1, Gateway(Fcfs(), depth=4, epoch_s=0.01))
    assert s.first_token_s == pytest.approx([0.1, 0.202, 0.202, 1.438])
    assert s.finish_s == pytest.approx([1.322, 2.278, 0.202, 1.438])
