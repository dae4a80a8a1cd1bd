"""bench/twins.py (issue #13): a trace's within-window twin keeps every input of the fluid's
per-minute model and changes only which arrival carries which request."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from bench.twins import summary, twin_index
from planner.sim.agreement import replay_arrivals
from planner.sim.pool import pool_minutes
from planner.sim.size_mix import minute_mix


def _trace(n: int = 3000, seed: int = 3) -> tuple[np.ndarray, ...]:
    """Bursty sorted arrivals over 10 minutes, with sizes and tiers tied to the arrival (a
    burst's requests are short, the rest long), as a client's bursts carry its own sizes."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.gamma(0.3, 600.0 / n / 0.3, n).cumsum())
    t = t * 600.0 / t[-1] * 0.999
    gap = np.r_[1.0, np.diff(t)]
    burst = gap < np.quantile(gap, 0.4)
    prompt = np.where(burst, rng.integers(10, 100, n), rng.integers(1000, 3000, n))
    output = np.where(burst, rng.integers(5, 50, n), rng.integers(100, 400, n))
    tier = np.where(burst, 0, rng.integers(0, 3, n)).astype(np.int64)
    return t, prompt, output, tier


@pytest.mark.parametrize("window", [60.0, 10.0])
def test_twin_keeps_each_windows_requests_and_moves_them(window: float) -> None:
    t, *_ = _trace()
    idx = twin_index(t, window, np.random.default_rng(0))
    assert np.array_equal(np.sort(idx), np.arange(len(t)))  # a permutation
    assert np.array_equal(t[idx] // window, t // window)  # every donor is in its slot's window
    assert (idx != np.arange(len(t))).mean() > 0.9  # and most requests move


def test_twin_within_groups_keeps_each_requests_group() -> None:
    t, *_ = _trace()
    group = np.random.default_rng(1).choice(np.array(["a", "b", "c"]), len(t))
    idx = twin_index(t, 60.0, np.random.default_rng(0), group)
    assert np.array_equal(group[idx], group)
    assert np.array_equal(t[idx] // 60.0, t // 60.0)
    assert (idx != np.arange(len(t))).mean() > 0.9


def test_two_twin_draws_differ() -> None:
    t, *_ = _trace()
    a = twin_index(t, 60.0, np.random.default_rng(0))
    b = twin_index(t, 60.0, np.random.default_rng(1))
    assert (a != b).mean() > 0.9


def test_replay_arrivals_reach_the_utilisation() -> None:
    t, prompt, output, _ = _trace()
    busy = (prompt * 2e-4 + output * 0.05).astype(float)
    for u in (0.5, 0.95):
        arr = replay_arrivals(t - t[0], busy, 4, 1.3, u)
        assert busy.sum() / (4 * 1.3 * arr.max()) == pytest.approx(u)


def test_the_fluids_minute_inputs_are_the_same_for_the_twin() -> None:
    """Every aggregate the per-minute model reads (planner.sim.pool's PoolMinutes: work,
    requests per tier, CV, burst variances, work variance; size_mix's histogram) is the
    trace's, on the replayed (stretched) arrivals as the bench builds them, while the
    requests' order within the minute is not."""
    t, prompt, output, tier = _trace()
    t = t - t[0]
    busy = (prompt * 2e-4 + output * 0.05).astype(float)
    arr = replay_arrivals(t, busy, 4, 1.3, 0.7)  # a replayed minute: ~5 s of the trace
    idx = twin_index(arr, 60.0, np.random.default_rng(0))
    minutes = int(arr.max() // 60) + 1
    minute = (arr // 60).astype(np.int64)
    a = pool_minutes(arr, tier, busy, 3, minutes, 4)
    b = pool_minutes(arr, tier[idx], busy[idx], 3, minutes, 4)
    for f in fields(a):
        np.testing.assert_allclose(getattr(b, f.name), getattr(a, f.name), rtol=1e-9)
    ma = minute_mix(minute, tier, prompt, output, minutes, 3)
    mb = minute_mix(minute, tier[idx], prompt[idx], output[idx], minutes, 3)
    for f in fields(ma):
        np.testing.assert_allclose(getattr(mb, f.name), getattr(ma, f.name), rtol=1e-9)
    # what the twin does change: the busy seconds arriving in 5-s windows within the minutes
    five = (arr // 5).astype(np.int64)
    assert np.abs(np.bincount(five, busy[idx]) - np.bincount(five, busy)).max() > 1.0


def test_summary_scores_each_fluid_on_the_trace_and_its_twin() -> None:
    """Two interactive rows and a NIW row (left out): the reference moves 3 and 0.5 points;
    the request-level fluid is within 1 point on two of the four (trace, twin) cells, the
    per-minute model does not move and is within 1 point on one."""
    row = {"utilisation": 0.5}
    out = [
        {**row, "tier": "IW-F", "reference_sla": 0.60, "twin_reference_sla": 0.57,
         "fluid_sla": 0.605, "twin_fluid_sla": 0.585,
         "minute_sla": 0.595, "twin_minute_sla": 0.595},
        {**row, "tier": "IW-N", "reference_sla": 0.90, "twin_reference_sla": 0.905,
         "fluid_sla": 0.92, "twin_fluid_sla": 0.90, "minute_sla": 0.93, "twin_minute_sla": 0.93},
        {**row, "tier": "NIW", "reference_sla": 1.0, "twin_reference_sla": 0.0,
         "fluid_sla": 0.0, "twin_fluid_sla": 1.0, "minute_sla": 0.0, "twin_minute_sla": 1.0},
    ]  # fmt: skip
    got = summary(out, "NIW")
    assert got["rows_apart_over_2"] == 1
    assert got["max_apart_points"] == pytest.approx(3.0)
    assert got["minute_moved_points"] == 0.0
    assert got["fluid_moved_points"] == pytest.approx(2.0)
    assert got["fluid_rows_within_1_point"] == 2
    assert got["fluid_max_abs_error_points"] == pytest.approx(2.0)
    assert got["minute_rows_within_1_point"] == 1
    assert got["minute_mean_abs_error_points"] == pytest.approx((0.5 + 2.5 + 3 + 2.5) / 4, abs=0.01)
