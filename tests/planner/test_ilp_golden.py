"""Hand-solvable planning instances: the optimal counts and costs are known by hand
(see tests/planner/ilp_fixtures.py for the tiny fleet's numbers). Every plan is verified."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from planner.ilp.data import build_data, state_from_config
from planner.ilp.plan import Plan, SolverFacts
from planner.ilp.planner import make_plan
from planner.ilp.solve import SolverSettings
from planner.ilp.verify import verify
from tests.planner.ilp_fixtures import T0, demand, tiny_config, tiny_data

EXACT = SolverSettings(time_limit_s=30, mip_gap=0.0)


def _plan(data):  # type: ignore[no-untyped-def]
    plan, check = make_plan(data, EXACT)
    assert check.ok, check.violations
    assert plan.solver.status == "optimal"
    return plan


def _vms(plan: Plan, region: str = "a") -> list[tuple[int, int]]:
    rows = plan.vms[plan.vms["region"] == region].sort_values("hour")
    return list(zip(rows["on_demand"], rows["spot"], strict=True))


def _inst(plan: Plan, region: str = "a") -> list[float]:
    rows = plan.instances[plan.instances["region"] == region].sort_values("hour")
    return list(rows["on_demand"])


def test_steady_state_keeps_the_fleet() -> None:
    cfg = tiny_config(**{"planner.horizon_h": 1})
    plan = _plan(tiny_data(cfg, [(1, "a", "IW-F", 150.0)]))
    assert _vms(plan) == [(1, 0)]
    assert _inst(plan) == [2.0]  # 150 tok/s needs 2 instances of 100
    assert plan.total_cost == pytest.approx(10.0)
    assert plan.actions.empty and plan.unmet.empty


def test_lead_time_blocks_the_first_hour_then_scales() -> None:
    cfg = tiny_config()
    plan = _plan(tiny_data(cfg, [(1, "a", "IW-F", 300.0), (2, "a", "IW-F", 300.0)]))
    # hour 1 starts now: no VM can be added (15 min lead); loading onto the running VM loses
    # 0.1 of the hour per start, and the VM is full. Hour 2: one more VM, two starts:
    # 4 instances − 2 × 0.1 = 3.8 ≥ 3 needed (3 instances would give 2.9 < 3).
    assert _vms(plan) == [(1, 0), (2, 0)]
    assert _inst(plan) == [2.0, 4.0]
    unmet = plan.unmet.set_index("hour")["tokens_per_s"]
    assert unmet[T0] == pytest.approx(100.0)
    assert T0 + timedelta(hours=1) not in unmet.index
    # $10 + $20 VM-hours, $2.50 paying the new VM while it provisions (15 min), $1.00 for the
    # GPU time of two loads (2 × 0.1 h × $10 / 2 instances per VM), 100 tok/s·h × $100 unmet
    assert plan.solver.objective == pytest.approx(10 + 20 + 2.5 + 1.0 + 100 * 100, rel=1e-6)
    actions = {(a.kind, a.count): a for a in plan.actions.itertuples()}
    add = actions[("add_vm", 1)]
    assert add.hour == T0 + timedelta(hours=1)
    assert add.start_by == T0 + timedelta(minutes=45)
    load = actions[("load_model", 2)]
    assert load.ready_at == T0 + timedelta(hours=1, minutes=6)


def test_tolerant_traffic_is_routed_fast_traffic_is_not() -> None:
    cfg = tiny_config(
        **{
            "fleet.1.quota": 0,
            "fleet.0.quota": 1,
            "fleet.0.spot_available": 0,
            "planner.horizon_h": 1,
        }
    )
    plan = _plan(tiny_data(cfg, [(1, "b", "IW-N", 150.0), (1, "b", "IW-F", 50.0)]))
    routed = plan.routing[(plan.routing["source_region"] == "b")].set_index("tier")
    assert routed.loc["IW-N", "target_region"] == "a"
    assert routed.loc["IW-N", "weight"] == pytest.approx(1.0)
    assert routed.loc["IW-N", "tokens_per_s"] == pytest.approx(150.0)
    unmet = plan.unmet.set_index("tier")["tokens_per_s"]
    assert unmet["IW-F"] == pytest.approx(50.0)  # 30 ms to a exceeds IW-F's 20 ms budget


def test_niw_is_deferred_into_the_trough() -> None:
    # deadline 2 h: NIW of hour 1 may wait for hour 2, when the interactive peak is over
    # (no spot here: a $4 spot VM would otherwise replace the on-demand one in hour 2)
    cfg = tiny_config(**{"fleet.0.spot_available": 0})
    rows = [(1, "a", "IW-F", 200.0), (1, "a", "NIW", 100.0), (2, "a", "IW-F", 0.0)]
    plan = _plan(tiny_data(cfg, rows))
    niw = plan.niw.sort_values("hour")
    assert list(niw["served"]) == pytest.approx([0.0, 100.0])
    assert list(niw["backlog"]) == pytest.approx([100.0, 0.0])
    assert plan.unmet.empty and niw["late"].sum() == pytest.approx(0.0)
    assert _vms(plan) == [(1, 0), (1, 0)]


def test_niw_past_its_deadline_is_counted_late() -> None:
    cfg = tiny_config(**{"tiers.2.deadline_h": 1})
    rows = [(1, "a", "IW-F", 200.0), (1, "a", "NIW", 100.0)]
    plan = _plan(tiny_data(cfg, rows))
    first = plan.niw.sort_values("hour").iloc[0]
    assert first["late"] == pytest.approx(100.0)  # no capacity in hour 1, deadline 1 h


def test_spot_serves_niw_when_cheaper() -> None:
    cfg = tiny_config(**{"planner.horizon_h": 1, "tiers.2.deadline_h": 1})
    rows = [(1, "a", "IW-F", 200.0), (1, "a", "NIW", 200.0)]
    plan = _plan(tiny_data(cfg, rows, minutes_before=30))  # 30 min ahead: VMs can be added
    assert _vms(plan) == [(1, 1)]  # the interactive VM on demand, NIW on a $4 spot VM
    spot = plan.instances.set_index("region").loc["a"]
    assert (spot["on_demand"], spot["spot"]) == (2.0, 2.0)
    assert plan.assignments[plan.assignments["spot"]]["tier"].eq("NIW").all()
    assert plan.total_cost == pytest.approx(10 + 4 + 4 * 15 / 60)


def test_redeploying_onto_a_running_vm_beats_buying_one() -> None:
    # VM a runs 1 instance and has a free slot: a second instance loads there (0.1 h of GPU
    # time) instead of a new VM in region b.
    cfg = tiny_config(**{"fleet.0.instances": {"m": 1}, "planner.horizon_h": 1})
    plan = _plan(tiny_data(cfg, [(1, "a", "IW-N", 180.0)], minutes_before=30))
    assert _vms(plan) == [(1, 0)] and _inst(plan) == [2.0]
    assert _vms(plan, "b") == [(0, 0)]
    (load,) = plan.actions.itertuples()
    assert (load.kind, load.count) == ("load_model", 1)
    assert load.start_by == T0 - timedelta(minutes=6)  # loads before the hour: no loss


def test_demand_above_quota_leaves_unmet_per_tier_not_a_crash() -> None:
    cfg = tiny_config(**{"fleet.1.quota": 0, "planner.horizon_h": 1})
    rows = [(1, "a", "IW-F", 700.0), (1, "a", "IW-N", 500.0)]
    plan = _plan(tiny_data(cfg, rows, minutes_before=45))
    assert _vms(plan) == [(4, 0)]  # the whole quota: 8 instances, 800 tok/s
    unmet = plan.unmet.set_index("tier")["tokens_per_s"]
    assert unmet.sum() == pytest.approx(400.0)
    assert unmet.get("IW-F", 0.0) == pytest.approx(0.0)  # IW-N (cheaper penalty) gives way
    assert verify(plan, tiny_data(cfg, rows, minutes_before=45)).ok


def test_fallback_plan_when_scip_has_no_incumbent() -> None:
    cfg = tiny_config()
    data = tiny_data(cfg, [(1, "a", "IW-F", 150.0), (2, "a", "IW-F", 350.0)])
    plan, check = make_plan(data, SolverSettings(time_limit_s=0.0), primal_starts=False)
    assert plan.solver.fallback and "greedy" in (plan.solver.fallback_reason or "")
    assert check.ok, check.violations
    assert plan.unmet["tokens_per_s"].sum() < 350.0  # the greedy plan still serves demand
    summary = plan.summary()
    assert summary["gap"] is None and summary["gap_text"].startswith("unknown: SCIP returned no")


def test_gap_and_its_bound_source_are_reported() -> None:
    cfg = tiny_config(**{"planner.horizon_h": 1})
    plan = _plan(tiny_data(cfg, [(1, "a", "IW-F", 150.0)]))
    summary = plan.summary()
    assert summary["bound_source"] in ("root relaxation", "search tree")
    assert summary["gap"] == pytest.approx(0.0, abs=1e-9)
    assert summary["gap_text"].startswith("0.00%, bound from the ")


def test_no_dual_bound_means_the_gap_is_unknown_in_words() -> None:
    facts = SolverFacts(
        "timelimit", 120.0, math.inf, math.nan, 10.0, 0.1, "10", "h", bound_source="none"
    )
    assert not facts.gap_known
    assert facts.as_dict()["gap"] is None
    assert (
        facts.gap_text() == "unknown: SCIP has no dual bound (its root LP did not finish in time)"
    )


def test_warm_start_from_the_previous_plan() -> None:
    cfg = tiny_config(**{"planner.horizon_h": 3})
    rows = [(t, "a", "IW-F", 300.0) for t in (1, 2, 3, 4)]
    first, _ = make_plan(tiny_data(cfg, rows), EXACT)
    one_hour_later = build_data(
        cfg,
        demand(rows, start=T0 - timedelta(hours=1)),
        state_from_config(cfg),
        T0 + timedelta(hours=1),
        {("m", t): 0.5 for t in cfg.tier_ids},
    )
    plan, check = make_plan(one_hour_later, EXACT, previous=first)
    assert "previous plan" in plan.solver.warm_start and "accepted" in plan.solver.warm_start
    assert check.ok
