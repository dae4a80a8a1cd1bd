"""Each constraint family on a tiny model, without solving: the rows exist where they should,
carry the documented coefficients, and are absent where they should be."""

from __future__ import annotations

from typing import Any

import pytest

from planner.ilp.build import create_model
from planner.ilp.variables import FAMILIES, FLOW_UNIT, routes
from tests.planner.ilp_fixtures import tiny_config, tiny_data


def _conss(built: Any) -> dict[str, Any]:
    return {c.name: c for c in built.model.getConss()}


def _coefs(built: Any, cons: Any) -> dict[str, float]:
    return built.model.getValsLinear(cons)


@pytest.fixture
def built() -> Any:
    cfg = tiny_config(**{"planner.horizon_h": 2})
    rows = [(1, "a", "IW-F", 150.0), (1, "b", "IW-N", 80.0), (2, "a", "NIW", 60.0)]
    return create_model(tiny_data(cfg, rows))


def test_family_counts_are_reported(built: Any) -> None:
    assert built.constraints["demand_cover"] == 2
    assert built.constraints["niw_backlog"] == 2  # model m, hours 1 and 2
    assert built.constraints["availability"] == 0  # min_instances 0 in the tiny fleet


def test_demand_cover_routes_or_counts_unmet(built: Any) -> None:
    conss = _conss(built)
    cover = conss["demand_cover[a,m,IW-F,1]"]
    assert built.model.getRhs(cover) == pytest.approx(150.0 / FLOW_UNIT)
    assert set(_coefs(built, cover)) == {"f[a,a,m,IW-F,1]", "e[a,m,IW-F,1]"}
    # IW-N from b may be served in a (30 ms ≤ 50 ms) or at home
    tolerant = _coefs(built, conss["demand_cover[b,m,IW-N,1]"])
    assert {"f[b,a,m,IW-N,1]", "f[b,b,m,IW-N,1]"} <= set(tolerant)


def test_routing_budget_is_the_domain_of_the_flows(built: Any) -> None:
    allowed = routes(built.data)
    assert ("a", "b", "m", "IW-F", 1) not in allowed  # 30 ms > IW-F's 20 ms
    assert not any(k[:2] == ("a", "b") and k[3] == "IW-F" for k in built.vars.f)


def test_capacity_rows_carry_throughput_and_load_loss(built: Any) -> None:
    cap = _coefs(built, _conss(built)["capacity[a,m,v8,1]"])
    # load ≤ x, whichever side SCIP keeps it on: coefficients relative to x's
    x = cap["x[a,m,v8,1]"]
    assert cap["w[a,m,v8,IW-F,1]"] / -x == pytest.approx(FLOW_UNIT / 100.0)
    assert cap["u[a,m,v8,1]"] / -x == pytest.approx(0.1)  # 6 of 60 minutes loading


def test_packing_uses_instances_per_vm(built: Any) -> None:
    pack = _coefs(built, _conss(built)["vm_packing[a,v8,1]"])
    assert pack["x[a,m,v8,1]"] / -pack["y[a,v8,1]"] == pytest.approx(0.5)


def test_lead_time_binds_only_where_the_vm_cannot_arrive(built: Any) -> None:
    conss = _conss(built)
    assert "vm_lead_time[a,v8,1]" in conss  # planning at the hour: no VM for hour 1
    assert "vm_lead_time[a,v8,2]" not in conss
    ahead = create_model(tiny_data(tiny_config(), [(1, "a", "IW-F", 1.0)], minutes_before=20))
    assert "vm_lead_time[a,v8,1]" not in _conss(ahead)  # 20 min ≥ 15 min lead time


def test_niw_deadline_window(built: Any) -> None:
    conss = _conss(built)
    # W = 2 h: the backlog at the end of hour 2 may hold hour 2's arrivals only
    assert built.model.getRhs(conss["niw_deadline[m,2]"]) == pytest.approx(60.0 / FLOW_UNIT)
    assert built.model.getRhs(conss["niw_deadline[m,1]"]) == pytest.approx(0.0)
    balance = _coefs(built, conss["niw_balance[m,2]"])
    assert balance["b[m,1]"] == pytest.approx(-1.0) and balance["b[m,2]"] == pytest.approx(1.0)


def test_quota_and_spot_only_where_spot_exists(built: Any) -> None:
    conss = _conss(built)
    assert "quota[a,v8,1]" in conss
    assert "quota[b,v8,1]" not in conss  # no spot in b: y ≤ Q is a bound
    assert built.model.getRhs(conss["quota[a,v8,1]"]) == pytest.approx(4.0)


def test_availability_floor_when_configured() -> None:
    cfg = tiny_config(**{"models.0.min_instances": 1, "planner.horizon_h": 1})
    model = create_model(tiny_data(cfg, [(1, "a", "IW-F", 10.0)]))
    floor = _conss(model)["availability[a,m,1]"]
    assert model.model.getLhs(floor) == pytest.approx(1.0)
    assert set(_coefs(model, floor)) == {"x[a,m,v8,1]", "sa[a,m,1]"}


def test_stability_cap_when_configured() -> None:
    cfg = tiny_config(**{"planner.max_vm_change_per_hour": 1})
    model = create_model(tiny_data(cfg, [(1, "a", "IW-F", 10.0)]))
    assert model.model.getRhs(_conss(model)["stability[a,v8,2]"]) == pytest.approx(1.0)
    assert "stability[a,v8,2]" not in _conss(
        create_model(tiny_data(tiny_config(), [(1, "a", "IW-F", 10.0)]))
    )


def test_committed_hours_are_integer_later_hours_capacity() -> None:
    cfg = tiny_config(**{"planner.integer_placement_h": 1})
    model = create_model(tiny_data(cfg, [(1, "a", "IW-F", 10.0)]))
    assert model.vars.x[("a", "m", "v8", 1)].vtype() == "INTEGER"
    assert model.vars.x[("a", "m", "v8", 2)].vtype() == "CONTINUOUS"
    assert model.vars.y[("a", "v8", 2)].vtype() == "INTEGER"  # VMs are always whole


def test_the_variable_registry_describes_what_the_build_creates() -> None:
    """planner.ilp.variables.FAMILIES: every family built is registered, its index has the
    registered dimensions and its integrality is the registered one."""
    cfg = tiny_config(**{"planner.integer_placement_h": 1, "planner.horizon_h": 2})
    rows = [(1, "a", "IW-F", 150.0), (1, "b", "IW-N", 80.0), (2, "a", "NIW", 60.0)]
    built = create_model(tiny_data(cfg, rows))
    assert list(built.vars) == list(FAMILIES)
    for name, variables in built.vars.items():
        for key, var in variables.items():
            assert len(key) == len(FAMILIES[name].dims), name
            integer = {"always": True, "committed": key[-1] <= 1, "never": False}
            assert (var.vtype() == "INTEGER") == integer[FAMILIES[name].integer], (name, key)
    assert {n for n, v in built.vars.items() if v} >= {"y", "x", "f", "w", "v", "b", "e", "u"}
