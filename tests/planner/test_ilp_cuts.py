"""The valid inequalities of planner.ilp.cuts: their coefficients on a hand-solvable instance,
what they do to its relaxation, and that they never remove the optimum of small instances
solved to optimality (same optimal objective with and without them, and the optimum found
without them stays feasible with them)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from planner.config.loader import parse_config
from planner.ilp import cuts
from planner.ilp.build import create_model
from planner.ilp.data import PlanningData
from planner.ilp.solve import SolverSettings, solve
from tests.planner.ilp_fixtures import tiny_config, tiny_data

EXACT = SolverSettings(time_limit_s=60, mip_gap=0.0)


def _coefficients(built: Any, name: str) -> tuple[dict[str, float], float]:
    cons = next(c for c in built.model.getConss() if c.name == name)
    return built.model.getValsLinear(cons), built.model.getLhs(cons)


def test_mir_coefficient_matches_the_textbook_formula() -> None:
    # ⌊a⌋ + min(frac(a), φ)/φ for a fractional coefficient, a itself when integer
    assert cuts.mir_coefficient(1.0, 0.25) == 1.0
    assert cuts.mir_coefficient(2.0, 0.6) == 2.0
    assert cuts.mir_coefficient(2.43, 0.25) == pytest.approx(3.0)  # frac 0.43 ≥ φ
    assert cuts.mir_coefficient(2.1, 0.25) == pytest.approx(2 + 0.1 / 0.25)


def _tiny_250() -> PlanningData:
    # one VM type: an instance serves 100 tok/s, a VM holds 2; 250 tok/s of IW-F in region a
    # (its 20 ms budget keeps it there); instances continuous, VMs integer; 30 min ahead, so
    # a VM can still be added for hour 1
    cfg = tiny_config(**{"planner.horizon_h": 1, "planner.integer_placement_h": 0})
    return tiny_data(cfg, [(1, "a", "IW-F", 250.0)], minutes_before=30)


def test_the_cut_on_a_hand_solvable_instance() -> None:
    built = create_model(_tiny_250())
    # β = 250 tok/s × 1/(2 × 100) VMs per tok/s = 1.25, φ = 0.25: y + (0.005 × 1000 / 0.25)·e ≥ 2
    # (e in thousands of tok/s inside the model); the same row for {a, b}, with y of b too
    coefs, lhs = _coefficients(built, "vm_rounding[a,1]")
    assert lhs == pytest.approx(2.0)
    assert coefs == pytest.approx({"y[a,v8,1]": 1.0, "e[a,m,IW-F,1]": 20.0})
    coefs, lhs = _coefficients(built, "vm_rounding[a+b,1]")
    assert lhs == pytest.approx(2.0)
    assert coefs == pytest.approx({"y[a,v8,1]": 1.0, "y[b,v8,1]": 1.0, "e[a,m,IW-F,1]": 20.0})
    assert built.constraints["vm_rounding"] == 2
    assert built.constraints["vm_rounding_home"] == 0  # IW-F cannot leave a: same rows


def test_the_home_cut_counts_traffic_routed_away_as_slack() -> None:
    # 250 tok/s of IW-N from a (its 50 ms budget allows b): not pinned to a, so no
    # vm_rounding row for {a}; the home row says a buys 2 VMs unless the excess is unmet or
    # routed to b: y[a] + 20·e + 20·f[a→b] ≥ 2
    cfg = tiny_config(**{"planner.horizon_h": 1, "planner.integer_placement_h": 0})
    built = create_model(tiny_data(cfg, [(1, "a", "IW-N", 250.0)], minutes_before=30))
    assert "vm_rounding[a,1]" not in {c.name for c in built.model.getConss()}
    coefs, lhs = _coefficients(built, "vm_rounding_home[a,1]")
    assert lhs == pytest.approx(2.0)
    assert coefs == pytest.approx(
        {"y[a,v8,1]": 1.0, "e[a,m,IW-N,1]": 20.0, "f[a,b,m,IW-N,1]": 20.0}
    )
    coefs, _ = _coefficients(built, "vm_rounding[a+b,1]")
    assert coefs == pytest.approx({"y[a,v8,1]": 1.0, "y[b,v8,1]": 1.0, "e[a,m,IW-N,1]": 20.0})
    assert built.constraints["vm_rounding_home"] == 1


def test_the_cut_closes_the_tiny_relaxation_gap() -> None:
    data = _tiny_250()
    # by hand: the relaxation buys 1.25 VMs ($12.50 + a quarter VM provisioning 15 min at
    # $10/h: $0.625); a plan buys 2 ($20 + $2.50): the cut makes the relaxation buy 2
    plain = create_model(data, relax=True, valid_cuts=False)
    plain.model.optimize()
    assert plain.model.getObjVal() == pytest.approx(12.5 + 0.625)
    tight = create_model(data, relax=True)
    tight.model.optimize()
    assert tight.model.getVal(tight.vars.y[("a", "v8", 1)]) == pytest.approx(2.0)
    assert tight.model.getObjVal() == pytest.approx(22.5)
    result = solve(create_model(data), EXACT)
    assert result.status == "optimal" and result.objective == pytest.approx(22.5)


def test_instance_rounding_in_committed_hours() -> None:
    # instances integer in hour 1: 250 tok/s of IW-F at 100 tok/s per instance is 2.5
    # instances, φ = 0.5: x + (0.01 × 1000 / 0.5)·e ≥ 3; none in hour 2 (capacity hours)
    cfg = tiny_config(**{"planner.horizon_h": 2, "planner.integer_placement_h": 1})
    rows = [(1, "a", "IW-F", 250.0), (2, "a", "IW-F", 250.0)]
    built = create_model(tiny_data(cfg, rows, minutes_before=30))
    coefs, lhs = _coefficients(built, "instance_rounding[a,m,1]")
    assert lhs == pytest.approx(3.0)
    assert coefs == pytest.approx({"x[a,m,v8,1]": 1.0, "e[a,m,IW-F,1]": 20.0})
    assert built.constraints["instance_rounding"] == 1
    relaxed = create_model(tiny_data(cfg, rows, minutes_before=30), relax=True)
    relaxed.model.optimize()
    assert relaxed.model.getVal(relaxed.vars.x[("a", "m", "v8", 1)]) == pytest.approx(3.0)


def _two_type_config(seed: int) -> Any:
    """The tiny fleet plus a faster, dearer VM type (κ not integer), availability floors,
    NIW and three hours, for the validity check."""
    base = tiny_config(
        **{"planner.horizon_h": 3, "planner.integer_placement_h": 1, "models.0.min_instances": 1}
    ).model_dump()
    fast = dict(base["vm_types"][0], id="v8h", price_per_hour=27.0, spot_price_per_hour=11.0)
    base["vm_types"].append(fast)
    placement = base["models"][0]["vm_types"]["v8"]
    speed = 2.3 + 0.2 * (seed % 3)
    base["models"][0]["vm_types"]["v8h"] = {
        **placement,
        "throughput": {
            k: {"input": tp["input"] * speed, "output": tp["output"] * speed}
            for k, tp in placement["throughput"].items()
        },
    }
    for region in ("a", "b"):
        base["fleet"].append(
            {"region": region, "vm_type": "v8h", "quota": 2, "spot_available": 1, "running": 0}
        )
    return parse_config(base)


@pytest.mark.parametrize("seed", range(6))
def test_cuts_never_remove_the_optimum(seed: int) -> None:
    rng = random.Random(seed)
    cfg = _two_type_config(seed)
    rows = [
        (t, r, k, rng.uniform(30, 420))
        for t in (1, 2, 3)
        for r in ("a", "b")
        for k in ("IW-F", "IW-N", "NIW")
        if rng.random() < 0.85
    ]
    data = tiny_data(cfg, rows, minutes_before=rng.choice([0, 30]))
    with_cuts = create_model(data)
    assert with_cuts.constraints["vm_rounding"] > 0
    assert with_cuts.constraints["vm_rounding_home"] > 0
    assert with_cuts.constraints["instance_rounding"] > 0
    tight = solve(with_cuts, EXACT)
    plain = solve(create_model(data, valid_cuts=False), EXACT)
    assert tight.status == plain.status == "optimal"
    assert tight.objective == pytest.approx(plain.objective, rel=1e-6, abs=1e-6)
    # the optimum found without the cuts, its integers fixed, is still feasible with them
    fixed = create_model(data, relax=True)
    for family in ("y", "z", "x", "xs"):
        variables = getattr(fixed.vars, family)
        for key, value in plain.values[family].items():
            if family in ("x", "xs") and not data.committed(key[3]):
                continue
            fixed.model.chgVarLb(variables[key], round(value))
            fixed.model.chgVarUb(variables[key], round(value))
    fixed.model.optimize()
    assert fixed.model.getStatus() == "optimal"
    assert fixed.model.getObjVal() == pytest.approx(plain.objective, rel=1e-6, abs=1e-6)
