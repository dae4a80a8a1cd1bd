"""Packing small models into idle VM slots (planner.ilp.packing, issue #15): the move itself,
hand-computed, and the plan on a hand-made fleet where packing is clearly cheaper.

The fleet: a fast type ``h8`` ($30/h) and a slow one ``v8`` ($10/h). ``big`` runs only on h8,
two instances per VM; ``small`` runs on both (4 per VM), at least as fast on h8. ``big``'s
demand needs one instance (half an h8 VM), and each model keeps one instance (the floor).
Unpacked: one h8 VM for big and one v8 VM for small, $40/h; packed: small in the idle half of
big's h8 VM, $30/h."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from planner.config import load_config
from planner.ilp.data import FleetState, PlanningData, build_data
from planner.ilp.greedy import greedy_values
from planner.ilp.objective import money_terms
from planner.ilp.packing import packed_starts, repack, vm_cost
from planner.ilp.planner import make_plan
from planner.ilp.solve import SolverSettings
from planner.sim.fleet import params_from_config
from planner.sim.policies import count_targets
from tests.planner.ilp_fixtures import T0, demand, tiny_config

IPV = {("big", "h8"): 2, ("small", "h8"): 4, ("small", "v8"): 4}
PRICE = {"h8": 30.0, "v8": 10.0}


def _faster(m: str, g: str, h: str) -> bool:
    return (g, h) == ("v8", "h8")


def test_small_pool_moves_into_the_idle_half_and_empties_its_vm() -> None:
    counts = {("big", "h8"): 1.0, ("small", "v8"): 1.0}
    assert vm_cost(counts, IPV, PRICE) == 40.0
    packed = repack(counts, IPV, PRICE, _faster, integer=True)
    assert packed == {("big", "h8"): 1.0, ("small", "v8"): 0.0, ("small", "h8"): 1.0}
    assert vm_cost(packed, IPV, PRICE) == 30.0


def test_no_move_that_needs_a_vm_or_a_slower_type() -> None:
    full = {("big", "h8"): 2.0, ("small", "v8"): 1.0}  # big fills its h8 VM: no idle slot
    assert repack(full, IPV, PRICE, _faster, integer=True) == full
    slower = {("big", "h8"): 1.0, ("small", "v8"): 1.0}  # h8 not at least as fast for small
    assert repack(slower, IPV, PRICE, lambda m, g, h: False, integer=True) == slower


def _fleet() -> Any:
    flat = {"input": 100.0, "output": 100.0}
    fast = {"input": 200.0, "output": 200.0}

    def placement(ipv: int, tp: int, rate: dict[str, float]) -> dict[str, Any]:
        tiers = {k: rate for k in ("IW-F", "IW-N", "NIW")}
        return {
            "tensor_parallel": tp,
            "instances_per_vm": ipv,
            "load_time_min": 1,
            "throughput": tiers,
        }

    vm = {"gpus_per_vm": 8, "gpu_memory_gb": 80, "lead_time_min": 15}
    cfg = tiny_config(
        **{
            "vm_types": [
                {
                    **vm,
                    "id": g,
                    "gpu": gpu,
                    "price_per_hour": price,
                    "spot_price_per_hour": 0.4 * price,
                }
                for g, gpu, price in (("v8", "A100-80GB", 10.0), ("h8", "H100-80GB", 30.0))
            ],
            "fleet": [
                {
                    "region": "a",
                    "vm_type": "v8",
                    "quota": 4,
                    "spot_available": 0,
                    "running": 1,
                    "instances": {"small": 1},
                },
                {
                    "region": "a",
                    "vm_type": "h8",
                    "quota": 4,
                    "spot_available": 0,
                    "running": 1,
                    "instances": {"big": 1},
                },
            ],
            "regions": [{"id": "a", "name": "A", "timezone": "UTC", "latency_ms": {"a": 0}}],
            "models": [
                {
                    "id": "big",
                    "name": "Big",
                    "weights_gb": 100,
                    "min_instances": 1,
                    "vm_types": {"h8": placement(2, 4, fast)},
                },
                {
                    "id": "small",
                    "name": "Small",
                    "weights_gb": 10,
                    "min_instances": 1,
                    "vm_types": {"v8": placement(4, 2, flat), "h8": placement(4, 2, fast)},
                },
            ],
            "planner.horizon_h": 3,
            "planner.integer_placement_h": 2,
        }
    )
    return cfg


def _data() -> PlanningData:
    cfg = _fleet()
    rows = demand([(t, "a", "IW-F", 150.0) for t in (1, 2, 3)]).assign(model="big")
    state = FleetState(
        vms={("a", "v8"): 1, ("a", "h8"): 1},
        instances={("a", "small", "v8"): 1, ("a", "big", "h8"): 1},
    )
    shares = {(m, k): 0.5 for m in ("big", "small") for k in cfg.tier_ids}
    return build_data(cfg, rows, state, T0, shares)


def test_the_plan_packs_the_small_floor_into_the_big_models_idle_slots() -> None:
    data = _data()
    plan, check = make_plan(data, SolverSettings(time_limit_s=2.0, mip_gap=0.0))
    assert check.ok, check.violations
    for hour in data.hours:
        view = plan.at(hour)
        assert view.vms.get(("a", "v8"), (0, 0))[0] == 0  # the slow type's VM is released
        assert view.vms[("a", "h8")][0] == 1
        assert view.instances[("a", "small", "h8")][0] >= 1


def test_the_greedy_start_repacked_is_complete_and_cheaper() -> None:
    """The greedy start holds small on its cheapest type per token (v8); repacked and
    completed by the fixed-count LP, it holds no v8 VM and costs $10/h less."""
    data = _data()
    greedy = greedy_values(data)
    assert all(greedy["y"][("a", "v8", t)] == 1 for t in data.T)
    [(name, packed)] = packed_starts(data, [("greedy plan", greedy)], time_limit_s=10.0)
    assert name == "greedy plan, repacked"
    assert all(packed["y"][("a", "v8", t)] == 0 for t in data.T)
    assert all(packed["x"][("a", "small", "h8", t)] == 1 for t in data.T)
    before = sum(money_terms(data, greedy, sum).values())
    after = sum(money_terms(data, packed, sum).values())
    assert after < before - 0.9 * 10.0 * len(data.T)


def test_reactive_floors_fill_the_idle_half_h100_and_running_instances_stay() -> None:
    """The reactive families' placement (planner.sim.policies.packed) on the default fleet:
    Bloom (a whole H100 VM) and Llama2-70B (half of one) on H100, their preferred type here; the
    8B and 3B floors go into the idle half instead of an A100 VM of their own. Growing 8B to
    3 then adds on its preferred A100 without moving the instance already running."""
    p = params_from_config(load_config("configs/default.yaml"))
    a100, h100 = p.vm_types.index("a100x8"), p.vm_types.index("h100x8")
    idx = {name: i for i, name in enumerate(p.models)}
    big = [idx["llama2-70b"], idx["bloom-176b"]]
    small = [idx["llama3.1-8b"], idx["llama3.2-3b"]]
    preferred = np.full((len(p.regions), len(p.models)), a100)
    preferred[:, big] = h100  # as on the demo replay's calibrated θ (IW-F needs H100)
    p = replace(p, preferred=preferred)
    floors = np.ones((len(p.regions), len(p.models)))
    first = count_targets(p, floors, np.zeros(p.shape_rmg))
    assert (first.instances[:, small, h100] == 1).all()
    assert (first.vms[:, a100] == 0).all() and (first.vms[:, h100] == 2).all()
    unpacked = count_targets(p, floors)  # each model on its preferred type
    assert (unpacked.vms[:, a100] == 1).all() and (unpacked.vms[:, h100] == 2).all()
    more = floors.copy()
    more[:, idx["llama3.1-8b"]] = 3
    grown = count_targets(p, more, first.instances)
    assert (grown.instances[:, idx["llama3.1-8b"], h100] == 1).all()  # the running one stays
    assert (grown.instances[:, idx["llama3.1-8b"], a100] == 2).all()
