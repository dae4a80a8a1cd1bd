"""The minute queue with the backlog uneven across a round-robin pool's instances."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sim.backlog import backlog_moments, carry, spread_waits
from planner.sim.pool import pool_minutes


def test_carry_is_the_truncated_gammas_moments() -> None:
    """(B − 40)⁺ for B a Gamma of mean 50 and variance 400 (shape 6.25): its mean, variance
    and P(B > 40) against a million draws; a deterministic backlog carries what is left."""
    rng = np.random.default_rng(0)
    b = rng.gamma(6.25, 8.0, 1_000_000)
    left = np.maximum(b - 40.0, 0.0)
    mean, var, busy = carry(50.0, 400.0, 40.0)
    assert mean == pytest.approx(left.mean(), rel=0.01)
    assert var == pytest.approx(left.var(), rel=0.01)
    assert busy == pytest.approx((b > 40.0).mean(), abs=0.002)
    assert carry(50.0, 0.0, 40.0) == (10.0, 0.0, 1.0)
    assert carry(30.0, 0.0, 40.0) == (0.0, 0.0, 0.0)


def test_the_spread_grows_through_an_overload_and_slows_the_recovery() -> None:
    """Two instances at κ 1 (60 busy s a minute each): 150 s a minute for three minutes, then
    90 s a minute. While every instance stays busy the backlog's mean grows by 15 s a minute
    and its variance by the minute's spread (400 s² a minute: 0, 400, 800, 1200). In
    the recovery the instances with less backlog empty first: the pool serves less than
    without a spread, the work is all served either way, and the waits spread out (some
    requests find an emptied instance)."""
    work = np.array([150.0, 150.0, 150.0, 90.0, 90.0, 90.0, 90.0])
    spread = np.full(7, 400.0)
    even, mu0, var0 = backlog_moments(work, np.zeros(7), 2, 1.0, drain=240)
    uneven, mu, var = backlog_moments(work, spread, 2, 1.0, drain=240)
    assert mu[:4].tolist() == pytest.approx([0.0, 15.0, 30.0, 45.0])
    assert var[:4].tolist() == pytest.approx([0.0, 400.0, 800.0, 1200.0])
    assert var0.tolist() == [0.0] * 7
    assert even[:3].tolist() == pytest.approx([120.0] * 3)
    assert uneven[4] < even[4] - 1.0  # the recovery: some instances already idle
    assert uneven.sum() == pytest.approx(work.sum()) and even.sum() == pytest.approx(work.sum())
    u = np.array([0.5])
    flat = spread_waits(work, mu0, var0, 2, 1.0, u)
    wide = spread_waits(work, mu, var, 2, 1.0, u)
    assert flat[5].min() > 1.0  # no spread: every instance still holds work in minute 5
    assert wide[5].min() == 0.0 and wide[5].max() > flat[5].max()


def test_pool_minutes_measure_the_work_spread_round_robin_hands_out() -> None:
    """Minute 0: four requests of 1, 1, 3 and 3 busy s over two instances: each gets two,
    so its work varies by (4 / 2) · Var(b) = 2 · 1 = 2 s²; minute 1 has one request: 0."""
    arrival = np.array([1.0, 2.0, 3.0, 4.0, 70.0])
    busy = np.array([1.0, 1.0, 3.0, 3.0, 5.0])
    traffic = pool_minutes(arrival, np.zeros(5, np.int64), busy, 1, 2, 2)
    assert traffic.work_var is not None
    assert traffic.work_var.tolist() == pytest.approx([2.0, 0.0])
