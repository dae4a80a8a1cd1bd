"""LT-F (``planner.sim.plan_ramp``): the plan buys ahead of its ramps, the SLO-aware layer holds
and hands back everything else (tiny fleet of tests/planner/ilp_fixtures.py: 100 tokens/s per
instance, 2 instances per VM, VM lead 15 min, load 6 min, plans bought 20 min ahead)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from planner.sim.fleet import FleetParams
from planner.sim.plan_ramp import PlanRamp
from planner.sim.plan_reactive import PlanReactive
from planner.sim.slo_policy import SloReactive
from planner.sim.sweep import PlanTargets, Point, build_policy
from tests.helpers import replay
from tests.planner.test_plan_reactive import recording
from tests.planner.test_sim import IWF, demand, p, targets

__all__ = ["p"]
DIALS: dict[str, Any] = {"target": 0.6, "up": 0.7, "down": 0.4, "cooldown_in_min": 5}


Recording = recording(PlanRamp)


def test_hands_the_plans_surplus_back_minute_by_minute(p: FleetParams) -> None:
    """The plan holds 4 instances in region a every hour for a load 1 instance carries
    (50 tokens/s). LT-R pays the plan's 2 VMs all day; LT-F hands the surplus back once the
    layer's cooldown has passed after the hand-over, down to the availability floor
    (1 instance per pool), and still serves every request on time."""
    d = demand(180, {(0, IWF): 50.0})
    plan = [targets(p, 4, 1)] * 3
    ramp = replay(p, d, PlanRamp(p, plan, name="lt-f", **DIALS), drain=False)
    hour = replay(p, d, PlanReactive(p, plan, name="lt-r", handover=False, **DIALS), drain=False)
    g = ramp.timeline["gpus"].to_numpy()
    assert g[-1] == pytest.approx(16.0)  # one 8-GPU VM per region: 1 instance in each pool
    assert hour.timeline["gpus"].to_numpy()[-1] == pytest.approx(24.0)  # 2 VMs in a, 1 in b
    assert ramp.gpu_hours < hour.gpu_hours
    assert ramp.tiers["IW-F"].sla_attainment == pytest.approx(1.0)


def test_buys_ahead_of_a_forecast_ramp_the_scaler_meets_late(p: FleetParams) -> None:
    """Region a's IW-F jumps from 50 to 500 tokens/s on hour 1, which hour 1's plan foresees
    (6 instances). The SLO-aware scaler sees the ramp only when it arrives and waits 21 min
    (lead + load) for its capacity; LT-F bought it at minute 40, so it serves from minute 61
    on and the ramp is met with the capacity the plan held."""
    d = demand(120, {(0, IWF): np.r_[np.full(60, 50.0), np.full(60, 500.0)]})
    plan = [targets(p, 1, 1), targets(p, 6, 1)]
    ramp = replay(p, d, PlanRamp(p, plan, name="lt-f", **DIALS), drain=False)
    slo = replay(p, d, SloReactive(p, np.zeros((2, 1, 3)), name="slo", **DIALS), drain=False)
    assert slo.tiers["IW-F"].sla_attainment < 0.9
    assert ramp.tiers["IW-F"].sla_attainment > slo.tiers["IW-F"].sla_attainment + 0.05


@pytest.mark.parametrize("delta", [False, True])
def test_never_below_the_plan_or_the_availability_floor(p: FleetParams, delta: bool) -> None:
    """Random demand around a plan that moves hour to hour: at every decision the fleet asked
    for holds one instance per pool and (``delta`` off) from the purchase (minute 40) to the
    hand-over (minute 15 of the next hour) at least the plan's counts; with ``delta`` at least
    the hour's rise on top of what it held before the purchase, up to the plan's count."""
    rng = np.random.default_rng(7)
    d = demand(360, {(0, IWF): rng.uniform(0, 400, 360), (1, IWF): rng.uniform(0, 150, 360)})
    plan = [targets(p, a, b) for a, b in ((4, 1), (1, 1), (6, 2), (2, 2), (1, 1), (3, 1))]
    lt_f = Recording(p, plan, name="lt-f", delta=delta, **DIALS)
    replay(p, d, lt_f, drain=False)
    assert len(lt_f.asked) > 10
    before: dict[int, np.ndarray] = {}
    for minute, asked, floor in lt_f.asked:
        h, into = divmod(minute, 60)
        assert (asked.instances >= floor.instances - 1e-9).all(), minute
        assert (asked.instances.sum(axis=2) >= 1).all(), minute
        due = h + 1 if into >= 40 else h if into < 15 else None
        held = asked.instances.sum(axis=2)
        if due is not None and 0 < due < len(plan):
            want = plan[due].instances.sum(axis=2)
            if delta:
                rise = np.maximum(want - plan[due - 1].instances.sum(axis=2), 0)
                want = np.minimum(before[due] + rise, want)
            assert (held >= want - 1e-9).all(), minute
        if into < 40:
            before[h + 1] = held
    # and it handed capacity back minute by minute, not only on the hour (can fail too)
    sizes = [(m, a.instances.sum()) for m, a, _ in lt_f.asked]
    assert any(n < n0 and m % 60 != 0 for (_, n0), (m, n) in pairwise(sizes))


def test_a_hand_over_after_the_next_purchase_is_refused(p: FleetParams) -> None:
    with pytest.raises(ValueError, match="release_min 40"):
        PlanRamp(p, [targets(p, 1)], release_min=40)


def test_a_pool_whose_plan_does_not_rise_is_not_frozen(p: FleetParams) -> None:
    """The plan holds 1 instance every hour; 500 tokens/s until minute 37, then 20. The layer
    scales out for the burst and, once it passes, sheds its own scale-outs through the
    purchase window (minute 40 to the hand-over): with ``delta`` the hold is the rise on top
    of what it held, up to the plan's count, so a plan that does not rise holds nothing above
    the plan, exactly as without ``delta`` (it once held the whole burst fleet ~35 minutes)."""
    d = demand(180, {(0, IWF): np.r_[np.full(37, 500.0), np.full(143, 20.0)]})
    plan = [targets(p, 1, 1)] * 3
    runs = {
        delta: replay(p, d, PlanRamp(p, plan, name="lt-f", delta=delta, **DIALS), drain=False)
        for delta in (False, True)
    }
    gpus = runs[True].timeline["gpus"].to_numpy()
    assert gpus[:37].max() > gpus[-1]  # the burst was served by the layer's scale-outs
    assert gpus[60] == pytest.approx(gpus[-1])  # shed before the hand-over at minute 75
    assert runs[True].gpu_hours == pytest.approx(runs[False].gpu_hours)


def test_a_ramp_that_does_not_come_is_handed_back_at_the_hand_over(p: FleetParams) -> None:
    """Hour 1's plan rises to 6 instances in region a; the load stays at 50 tokens/s (1
    instance carries it). The purchase is held to the hand-over (minute 75) and then is the
    layer's to keep or hand back on its own window: it is back at the availability floor
    minutes later, not ``cooldown_in_min`` (120) after the purchase, as when a purchase
    restarted the layer's scale-in window (``buy_is_step``)."""
    d = demand(240, {(0, IWF): 50.0})
    plan = [targets(p, 1, 1), targets(p, 6, 1), targets(p, 6, 1), targets(p, 6, 1)]
    dials = {**DIALS, "cooldown_in_min": 120}
    runs = {
        step: replay(p, d, PlanRamp(p, plan, name="lt-f", buy_is_step=step, **dials), drain=False)
        for step in (False, True)
    }
    gpus = {step: r.timeline["gpus"].to_numpy() for step, r in runs.items()}
    floor = gpus[False][-1]
    assert gpus[False][70] > floor  # bought ahead and held to the hand-over
    assert gpus[False][90] == pytest.approx(floor)
    assert gpus[True][90] > floor  # held on to minute 160 (40 + 120)
    assert runs[False].gpu_hours < runs[True].gpu_hours
    assert runs[False].tiers["IW-F"].sla_attainment == pytest.approx(1.0)


def test_buys_only_the_rise_the_lower_plans_support(p: FleetParams) -> None:
    """Hour 1's plan rises from 1 to 6 instances in region a. With ``lower`` (the plans of a
    lower quantile of the same forecasts) rising to 3, the purchase is 2 instances (2 VMs in
    a, one in b, from minute 40 to the hand-over); lower plans that do not rise buy nothing
    (the layer's one instance per pool); without them the whole rise (3 VMs in a)."""
    d = demand(120, {(0, IWF): 50.0})
    plan = [targets(p, 1, 1), targets(p, 6, 1)]
    gpus = {
        name: replay(p, d, PlanRamp(p, plan, name="lt-f", lower=low, **DIALS), drain=False)
        .timeline["gpus"]
        .to_numpy()
        for name, low in {
            "plan": None,
            "band": [targets(p, 1, 1), targets(p, 3, 1)],
            "flat": [targets(p, 2, 1), targets(p, 2, 1)],
        }.items()
    }
    assert gpus["plan"][70] == pytest.approx(32.0)
    assert gpus["band"][70] == pytest.approx(24.0)
    assert gpus["flat"][70] == pytest.approx(16.0)


def test_a_sweep_point_with_a_rise_quantile_reads_that_quantiles_plans(p: FleetParams) -> None:
    """``build_policy``: an LT-F point with ``rise_quantile`` gets the plans at that quantile as
    ``lower``; without it, none (the whole rise is bought)."""
    d = demand(60, {(0, IWF): 50.0})
    expected = np.zeros((2, 2, 1))
    plans = {
        0.5: PlanTargets([targets(p, 1, 1), targets(p, 6, 1)], expected),
        0.05: PlanTargets([targets(p, 1, 1), targets(p, 3, 1)], expected),
    }
    params = {"quantile": 0.5, "mode": "lt-f", "release_min": 15, **DIALS}
    banded = build_policy(Point("plan", {**params, "rise_quantile": 0.05}), p, d, plans)
    whole = build_policy(Point("plan", params), p, d, plans)
    assert isinstance(banded, PlanRamp) and isinstance(whole, PlanRamp)
    assert banded.lower is plans[0.05].hourly
    assert whole.lower is None
