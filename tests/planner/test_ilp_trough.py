"""Trough filling (planner.ilp.constraints.add_trough_filling) on the tiny fleet: NIW fills
what the interactive peak sizing leaves idle over the hour before anything is bought; its
deadline still binds. Hand-solvable (tests/planner/ilp_fixtures.py: 100 tokens/s per
instance, 2 instances per $10 VM, no VM can be added in hour 1)."""

from __future__ import annotations

import pandas as pd
import pytest

from planner.ilp.build import create_model
from planner.ilp.data import PlanningData, build_data, state_from_config
from planner.ilp.planner import make_plan
from planner.ilp.solve import SolverSettings
from planner.ilp.variables import FLOW_UNIT
from tests.planner.ilp_fixtures import T0, demand, tiny_config

EXACT = SolverSettings(time_limit_s=30, mip_gap=0.0)
# IW-F peaks at 200 tokens/s (2 instances) both hours, its mean is half that; 100 (tokens/s)·h
# of NIW arrive in hour 1, due by the end of hour 2 (deadline 2 h)
ROWS = [(1, "a", "IW-F", 200.0), (2, "a", "IW-F", 200.0), (1, "a", "NIW", 100.0)]
MEAN = [(1, "a", "IW-F", 100.0), (2, "a", "IW-F", 100.0)]


def _data(trough: bool, mean: list[tuple[int, str, str, float]] = MEAN) -> PlanningData:
    cfg = tiny_config(**{"fleet.0.spot_available": 0, "planner.trough_filling": trough})
    return build_data(
        cfg,
        demand(ROWS),
        state_from_config(cfg),
        T0,
        {("m", t): 0.5 for t in cfg.tier_ids},
        interactive_mean=demand(mean),
    )


def _solve(data: PlanningData) -> tuple[list[int], pd.DataFrame]:
    plan, check = make_plan(data, EXACT)
    assert check.ok, check.violations
    assert plan.solver.status == "optimal"
    vms = plan.vms[plan.vms["region"] == "a"].sort_values("hour")
    return [int(v) for v in vms["on_demand"]], plan.niw.sort_values("hour")


def test_niw_stacked_on_the_peak_buys_a_vm() -> None:
    vms, niw = _solve(_data(trough=False))
    # hour 1 is full with IW-F's peak; hour 2 needs 2 + 1 instances: a second VM
    assert vms == [1, 2]
    assert niw["late"].sum() == pytest.approx(0.0)


def test_niw_fills_the_idle_half_of_the_peak_capacity_first() -> None:
    vms, niw = _solve(_data(trough=True))
    # the 2 instances held for IW-F's peak are busy with its mean (1 instance) over the hour:
    # the idle instance-hour serves the 100 (tokens/s)·h of NIW, nothing is bought
    assert vms == [1, 1]
    assert niw["served"].sum() == pytest.approx(100.0)
    assert niw["late"].sum() == pytest.approx(0.0)


def test_the_deadline_still_binds_when_the_trough_is_too_small() -> None:
    # the mean equals the peak: no idle capacity, so NIW still gets capacity by its deadline
    vms, niw = _solve(_data(trough=True, mean=[(1, "a", "IW-F", 200.0), (2, "a", "IW-F", 200.0)]))
    assert vms == [1, 2]
    assert niw["late"].sum() == pytest.approx(0.0)


def test_rows_carry_the_mean_share_and_leave_the_peak_row() -> None:
    built = create_model(_data(trough=True))
    conss = {c.name: c for c in built.model.getConss()}
    assert built.constraints["trough_filling"] == 4  # regions a, b × hours 1, 2
    trough = built.model.getValsLinear(conss["trough_filling[a,m,v8,1]"])
    peak = built.model.getValsLinear(conss["capacity[a,m,v8,1]"])
    # α = mean / peak = 0.5 on IW-F's flow; NIW (v) only in the trough row, at 1/θ (kilotokens)
    # (rows as SCIP stores them: one side, so compare against the x coefficient)
    x = "x[a,m,v8,1]"
    assert peak["w[a,m,v8,IW-F,1]"] / -peak[x] == pytest.approx(FLOW_UNIT / 100.0)
    assert trough["w[a,m,v8,IW-F,1]"] / -trough[x] == pytest.approx(0.5 * FLOW_UNIT / 100.0)
    assert trough["v[a,m,v8,1]"] / -trough[x] == pytest.approx(FLOW_UNIT / 100.0)
    assert "v[a,m,v8,1]" not in peak
    assert create_model(_data(trough=False)).constraints["trough_filling"] == 0
