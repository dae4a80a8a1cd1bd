"""The reactive layer above the plan (LT-R): it scales out beyond the plan on observed
pressure, hands the extra back when pressure passes, and the fleet it asks for is never below
the plan's floor (tiny fleet of tests/planner/ilp_fixtures.py: 100 tokens/s per instance,
2 instances per VM, lead time 15 min, load 6 min)."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sim.fleet import FleetParams, Targets
from planner.sim.fluid import Observation
from planner.sim.plan_reactive import PlanReactive
from planner.sim.slo_policy import MaxWindow
from tests.helpers import replay
from tests.planner.test_sim import IWF, NIW, demand, fixed, p, targets

__all__ = ["p"]


def recording(base: type[PlanReactive]) -> type[PlanReactive]:
    """``base`` (LT-R or a policy built on it) keeping every target it hands the simulator,
    with the floor then, in ``asked``."""

    class Recording(base):  # type: ignore[valid-type,misc]
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, **k)
            self.asked: list[tuple[int, Targets, Targets]] = []

        def decide(self, obs: Observation) -> Targets | None:
            out = super().decide(obs)
            if out is not None:
                self.asked.append((obs.minute, out.copy(), self.floor().copy()))
            return out

    return Recording


Recording = recording(PlanReactive)


def test_scales_above_the_plan_when_hot_and_hands_back(p: FleetParams) -> None:
    """The plan holds 2 instances; 500 tokens/s arrive for 60 min, then 50. LT-R adds
    instances beyond the plan (LT-I stays at the plan and misses), and once pressure has
    been low for the cooldown it gives them back, down to the plan and no lower."""
    rates = np.r_[np.full(60, 500.0), np.full(120, 50.0)]
    d = demand(180, {(0, IWF): rates})
    plan = [targets(p, 2)] * 3
    lt_r = Recording(p, plan, name="lt-r")
    r = replay(p, d, lt_r, drain=False)
    i = replay(p, d, fixed(p, *plan), drain=False)
    g = r.timeline["gpus"].to_numpy()
    assert g.max() > 8 * 2  # beyond the plan's 2 instances (8 GPUs)
    assert r.tiers["IW-F"].sla_attainment > i.tiers["IW-F"].sla_attainment
    assert g[-1] == pytest.approx(8.0)  # handed back to the plan's 2 instances (1 VM)
    assert any(t.instances.sum() > 2 for _, t, _ in lt_r.asked)


def test_never_below_the_plans_floor(p: FleetParams) -> None:
    """Random demand around a plan that moves hour to hour: at every decision, every count
    asked for is at least the plan's in force (LT-I's schedule)."""
    rng = np.random.default_rng(7)
    d = demand(360, {(0, IWF): rng.uniform(0, 900, 360), (1, IWF): rng.uniform(0, 300, 360)})
    plan = [targets(p, a, b) for a, b in ((4, 1), (1, 0), (6, 2), (2, 2), (0, 0), (3, 1))]
    lt_r = Recording(p, plan, name="lt-r", target=0.6, up=0.7, down=0.4, cooldown_in_min=5)
    replay(p, d, lt_r, drain=False)
    assert len(lt_r.asked) > 10
    for minute, asked, floor in lt_r.asked:
        h, into = divmod(minute, 60)
        plan_now = plan[min(h, len(plan) - 1)]
        assert (floor.instances >= plan_now.instances - 1e-9).all(), minute
        if into >= 40 and h + 1 < len(plan):  # bought ahead of the next hour
            assert (floor.instances >= plan[h + 1].instances - 1e-9).all(), minute
        assert (asked.instances >= floor.instances - 1e-9).all(), minute
        assert (asked.vms >= floor.vms - 1e-9).all(), minute
    # and it did go above the floor at some point (the test can fail the other way too)
    assert any((a.instances > f.instances).any() for _, a, f in lt_r.asked)


def test_make_before_break_when_the_plan_moves_capacity(p: FleetParams) -> None:
    """Hour 0 serves region a's IW-F in a (2 instances); hour 1's plan moves it to b (2
    instances in b, a's traffic routed there). Bought at minute 40, b's VM serves at 61
    (15 min lead + 6 min load). LT-I drops a on the hour and a's traffic waits on b; LT-R
    with make-before-break keeps a and its routing until b serves, so nothing is missed, for
    a few more GPU-minutes."""
    d = demand(120, {(0, IWF): 150.0})
    first = targets(p, 2, 0)
    second = targets(p, 0, 2)
    second.routing[0, :, 0, IWF] = [0.0, 1.0]
    plan = [first, second]
    mbb = replay(p, d, PlanReactive(p, plan, name="mbb"), drain=False)
    brk = replay(p, d, PlanReactive(p, plan, name="brk", handover=False), drain=False)
    lt_i = replay(p, d, fixed(p, *plan), drain=False)
    assert mbb.tiers["IW-F"].sla_attainment == pytest.approx(1.0)
    assert lt_i.tiers["IW-F"].sla_attainment < 1.0
    assert brk.tiers["IW-F"].sla_attainment < 1.0
    assert mbb.gpu_hours > lt_i.gpu_hours
    g = mbb.timeline["gpus"].to_numpy()
    assert g[-1] == pytest.approx(8.0)  # a handed back once b serves


def test_the_layer_carries_the_niw_rate_the_plan_left_out(p: FleetParams) -> None:
    """The plan holds 1 instance for a light IW-F load (30 tokens/s); NIW arrives at 300
    tokens/s for three hours (deadline 2 h in the tiny fleet). Interactive pressure stays near
    0.3, so a layer on pressure alone never scales and NIW falls behind, as it does under LT-I;
    LT-R sizes for the last hour's NIW rate on top (as the SLO-aware scaler) and serves it all
    on time, never below the plan."""
    d = demand(180, {(0, IWF): 30.0, (0, NIW): 300.0})
    plan = [targets(p, 1)] * 3
    lt_r = Recording(p, plan, name="lt-r")
    r = replay(p, d, lt_r, drain=True)
    i = replay(p, d, fixed(p, *plan), drain=True)
    assert i.tiers["NIW"].counts()["late"] > 0
    assert r.tiers["NIW"].counts()["late"] == pytest.approx(0.0)
    assert max(t.instances.sum() for _, t, _ in lt_r.asked) >= 4  # 3 for NIW, 1 for IW-F
    assert all((t.instances >= f.instances - 1e-9).all() for _, t, f in lt_r.asked)


def test_a_niw_cap_keeps_the_batch_cool_for_the_interactive_tiers(p: FleetParams) -> None:
    """A NIW batch (1,000 tokens/s for 10 min) lands on a plan of 4 instances (400 tokens/s)
    that IW-F shares at 30 tokens/s. Uncapped, NIW fills every idle share, so the pool runs
    at utilisation 1 for half an hour (where the latency curves charge IW-F for the hot
    batch; the tiny fleet has no curves, so only the utilisation is checked here). With
    ``niw_cap`` 0.5 NIW fills the shared pool only up to half its capacity: the pool never
    runs above 0.5 and NIW still finishes on time (it takes longer)."""
    rates = np.r_[np.full(10, 1000.0), np.zeros(110)]
    d = demand(120, {(0, IWF): 30.0, (0, NIW): rates})
    plan = [targets(p, 4)] * 2
    free = replay(p, d, fixed(p, *plan), drain=True)
    capped = replay(p, d, fixed(p, *plan, niw_cap=0.5), drain=True)
    busy = capped.timeline["gpus_busy"] / capped.timeline["gpus"]
    assert (free.timeline["gpus_busy"] / free.timeline["gpus"]).max() == pytest.approx(1.0)
    assert busy.max() == pytest.approx(0.5)
    assert capped.tiers["NIW"].counts()["late"] == pytest.approx(0.0)
    assert capped.tiers["NIW"].counts()["served"] == free.tiers["NIW"].counts()["served"]


@pytest.mark.parametrize("length", [0, 1, 4])
def test_the_scale_in_window_is_the_largest_of_the_last_values(length: int) -> None:
    """The one window LT-R, LT-F and the SLO-aware scaler share: after each push, the
    per-pool max of the last ``length`` pushes (at least one), as the stack it replaced."""
    rng = np.random.default_rng(0)
    window, pushed = MaxWindow(length, (2, 3)), []
    for _ in range(12):
        values = rng.integers(0, 9, (2, 3)).astype(float)
        pushed.append(values)
        expected = np.max(np.stack(pushed[-max(length, 1) :]), axis=0)
        np.testing.assert_array_equal(window.push(values), expected)
