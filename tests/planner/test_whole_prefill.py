"""vLLM v0's default scheduler (chunked prefill off) in the iteration-level reference, by hand:
whole prompts in prefill-only iterations that pause the decodes (planner.sim.instances)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from planner.sim.instances import Requests, simulate_instances
from planner.sim.routers import chunked_s
from tests.planner.test_instances import toy, two
from tests.planner.test_routers import toy as router_toy


def test_a_whole_prefill_pauses_the_decodes() -> None:
    """A: prefill 0→0.1 (first token). B arrived at 0.05: at 0.1 a prefill-only iteration of
    B's 100 tokens, 0.1 s, A paused → 0.2 (B's first token; chunked, A would have decoded
    beside it). Decode at batch 2 (20 ms) → 0.22: B's last token, A's second; A alone → 0.23."""
    prof = toy().whole_prefill()
    assert not prof.chunked_prefill and prof.token_budget >= 2048
    s = simulate_instances(two(), prof, 1)
    assert s.first_token_s == pytest.approx([0.1, 0.2])
    assert s.finish_s == pytest.approx([0.23, 0.22])
    chunked = simulate_instances(two(), toy(), 1)
    assert chunked.finish_s == pytest.approx([0.221, 0.221])


def test_whole_prompts_share_an_iteration_up_to_the_budget() -> None:
    """Budget 150: A (100) and B (40) prefill together, 140 ms; C (100) does not fit beside
    them and prefills alone next, 0.14→0.24 (A and B paused); then one decode at batch 3
    (20 ms) gives each its second and last token at 0.26."""
    prof = replace(toy(max_batch=3), chunked_prefill=False, token_budget=150)
    req = Requests(np.zeros(3), np.array([100, 40, 100]), np.array([2, 2, 2]))
    s = simulate_instances(req, prof, 1)
    assert s.first_token_s == pytest.approx([0.14, 0.14, 0.24])
    assert s.finish_s == pytest.approx([0.26, 0.26, 0.26])


def test_a_prompt_longer_than_the_budget_prefills_whole() -> None:
    """Budget 150, A's prompt 200: the first prompt of a whole-prefill iteration is always
    admitted, so A prefills alone, 0→0.2; B (40) next, 0.2→0.24 (A paused), B's only token;
    then A's last token, 10 ms → 0.25."""
    prof = replace(toy(max_batch=3), chunked_prefill=False, token_budget=150)
    req = Requests(np.zeros(2), np.array([200, 40]), np.array([2, 1]))
    s = simulate_instances(req, prof, 1)
    assert s.first_token_s == pytest.approx([0.2, 0.24])
    assert s.finish_s == pytest.approx([0.25, 0.24])


def test_paged_cache_with_whole_prefill_serves_everything_once() -> None:
    """Paged KV under pressure with whole prefill: preemptions and recomputes, and every
    request still ends once after its first token; the schedule differs from chunked."""
    rng = np.random.default_rng(6)
    n = 300
    req = Requests(np.sort(rng.uniform(0, 2, n)), rng.integers(20, 600, n), rng.integers(1, 400, n))
    prof = replace(toy(max_batch=8, token_budget=256, kv_tokens=3000.0), kv_paging=True)
    s = simulate_instances(req, prof.whole_prefill(), 2)
    assert np.isfinite(s.finish_s).all()
    assert (s.finish_s >= s.first_token_s).all() and (s.first_token_s > req.arrival_s).all()
    chunked = simulate_instances(req, prof, 2)
    assert not np.array_equal(s.finish_s, chunked.finish_s)


def test_the_heuristic_prices_a_whole_prefill_as_a_full_stall() -> None:
    """Whole prefill: 500 prompt tokens take prefill_s(500) = 100 ms whatever decodes, and
    each decoder loses all of it. Chunked: one iteration of 500 + 3 tokens, 100.6 ms, in which
    each decoder still gets its token (decode_s(3) = 14 ms): it loses 86.6 ms."""
    prof = router_toy()
    tokens, decoders = np.array([500.0]), np.array([3.0])
    time, stall = chunked_s(prof.whole_prefill(), tokens, decoders)
    assert time == pytest.approx([0.1]) and stall == pytest.approx([0.1])
    c_time, c_stall = chunked_s(prof, tokens, decoders)
    assert c_time == pytest.approx([0.1006]) and c_stall == pytest.approx([0.0866])
