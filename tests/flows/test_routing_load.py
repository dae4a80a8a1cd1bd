"""The routing scenario's load: arrival rate over the pool's maximum sustainable rate."""

from __future__ import annotations

import numpy as np

from flows.routing import load_work
from planner.sim.instances import Requests, simulate_instances
from tests.planner.test_routers import toy


def _ttft_growth(load: float, prompt: np.ndarray, output: np.ndarray) -> tuple[float, float]:
    """Mean TTFT of the first and last sixth of evenly spaced arrivals at ``load`` on two
    round-robin instances (load from :func:`load_work`)."""
    prof = toy(max_batch=8, kv_tokens=20_000)
    work = load_work(prompt, output, prof)
    gap = float(work.mean()) / (2 * load)  # 2 instances: Σ work / (2 × span) = load
    served = simulate_instances(Requests(np.arange(len(prompt)) * gap, prompt, output), prof, 2)
    q = len(prompt) // 6
    return float(served.ttft_s[:q].mean()), float(served.ttft_s[-q:].mean())


def test_load_one_is_where_round_robin_queues_grow_without_bound() -> None:
    """Below 1 the queues stay bounded (the last arrivals wait as long as the first), above it
    they grow all along; the best-rate unit alone (busy_s) is not that boundary on this mix
    (κ ≠ 1: prefill chunks slow the decodes they share an iteration with)."""
    rng = np.random.default_rng(0)
    prompt, output = rng.integers(50, 900, 1500), rng.integers(5, 200, 1500)
    first, last = _ttft_growth(0.8, prompt, output)
    assert last < 2 * first + 0.1
    first, last = _ttft_growth(1.2, prompt, output)
    assert last > 5 * first + 1.0
    prof = toy(max_batch=8, kv_tokens=20_000)
    kappa = prof.busy_s(prompt, output).sum() / load_work(prompt, output, prof).sum()
    assert abs(kappa - 1) > 0.05


def test_a_request_beyond_the_window_is_no_work() -> None:
    from dataclasses import replace

    prof = replace(toy(max_batch=8, kv_tokens=20_000), max_context=1000)
    prompt, output = np.array([100, 950, 300] * 50), np.array([50, 100, 20] * 50)
    work = load_work(prompt, output, prof)
    assert (work[1::3] == 0).all() and (work[0::3] > 0).all()
