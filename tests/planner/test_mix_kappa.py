"""κ per minute from the minute's mix, and the minute queue serving at it."""

from __future__ import annotations

import numpy as np
import pytest

from planner.config import load_config
from planner.sim.latency import saturation
from planner.sim.mix_kappa import KappaTable, kappa_table, minute_kappa, prefill_share
from planner.sim.pool import PoolMinutes, spread_queue
from planner.sim.profile import profiles_for_config
from tests.planner.test_instances import PERF_CSV


def test_the_queue_serves_each_minute_at_its_own_capacity() -> None:
    """One instance, 100 busy seconds arriving in minute 0, κ 1 then 0.25: 60 s served in
    minute 0, 15 in minute 1 and 2 (the backlog even: no spread). The last position of
    minute 0 (15.5 / 16) finds (100 − 60) · 15.5/16 = 38.75 s of work ahead of it: 1.875 s
    of it served in the 1.875 s left of minute 0 at κ 1, the other 36.875 at κ 0.25 (147.5
    s): a wait of 149.375 s. At one κ of 1 all of it is served by the end of minute 1."""
    traffic = PoolMinutes(np.array([100.0, 0.0, 0.0]), np.array([[1.0], [0.0], [0.0]]), np.ones(3))
    served, wait = spread_queue(traffic, 1, np.array([1.0, 0.25, 0.25]))
    assert served.tolist() == pytest.approx([60.0, 15.0, 15.0])
    assert wait[0, -1] == pytest.approx(149.375)
    assert wait[1, 0] == pytest.approx((40.0 - 15.0 / 32) / 0.25)  # 40 s ahead, served at κ 0.25
    served, _ = spread_queue(traffic, 1, 1.0)
    assert served.tolist() == pytest.approx([60.0, 40.0, 0.0])


def test_minute_kappa_reads_the_table_at_each_minutes_prefill_share() -> None:
    """Table κ = 1 + π over π in [0.2, 0.8], the rows' own π 0.3. Minute 0: prefill 1 of 2
    busy seconds (π 0.5); minute 1 empty (the rows' own κ); minute 2: π 0.9, clipped to the
    table's last point."""
    table = KappaTable(np.array([0.2, 0.8]), np.array([1.2, 1.8]), np.array([0.0, 1.0, 1.0]), 0.3)
    minute = np.array([0, 0, 2])
    kappa = minute_kappa(table, minute, np.array([1.0, 0.0, 0.9]), np.array([1.0, 1.0, 1.0]), 3)
    assert kappa.tolist() == pytest.approx([1.5, 1.3, 1.8])
    assert table.own == pytest.approx(1.3)


@pytest.mark.skipif(not PERF_CSV.exists(), reason="shared perf profile not present")
def test_kappa_table_follows_the_mix() -> None:
    """Llama2-70B/A100, 4,000 requests (log-normal prompts, geometric outputs). The table
    (one saturation run on draws tilted to eight prefill shares) gives the rows' own κ and,
    at the prefill share of a sub-mix that leans to decodes (the 85 % of requests with the
    lowest prefill share: π 0.43 against 0.52), that sub-mix's own measured κ within 1 %,
    while a single κ for the rows is 4 % off it (1.364 vs 1.308)."""
    prof = profiles_for_config(load_config(), PERF_CSV)[("llama2-70b", "a100x8")]
    rng = np.random.default_rng(0)
    prompt = np.minimum(np.exp(rng.normal(5.8, 1.1, 4000)), 3500).astype(np.int64) + 1
    output = np.minimum(rng.geometric(1 / 120, 4000), 500).astype(np.int64)
    table = kappa_table(prof, prompt, output, requests=1000)
    whole = saturation(prof, prompt, output, requests=1000)
    assert table.own == pytest.approx(whole, rel=0.01)
    share = prefill_share(prof, prompt, output)
    sub = share < np.quantile(share, 0.85)
    busy = prof.busy_s(prompt[sub], output[sub])
    pi = float((busy * share[sub]).sum() / busy.sum())
    measured = saturation(prof, prompt[sub], output[sub], requests=1000)
    assert float(table(pi)) == pytest.approx(measured, rel=0.01)
    assert whole > measured * 1.03  # the mix matters: one κ for the rows is off
