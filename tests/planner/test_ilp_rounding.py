"""LP rounding's consolidated start (planner.ilp.rounding.single_type_pools) on a two-type
fleet: the relaxation splits a pool by each type's cost per token of each tier (IW-F on the
dear type that serves it well, IW-N on the cheap one), rounding that up holds a whole
instance on each type, and the consolidated rounding holds the one instance that carries the
pool. Hand-solvable: cheap type c ($10/h, 1 instance per VM: IW-F 10, IW-N and NIW 100
tokens/s), dear type d ($30/h, 1 per VM: 250 tokens/s in every tier)."""

from __future__ import annotations

from typing import Any

import pytest

from planner.ilp.rounding import _lp_values, lp_rounding_start, round_up, single_type_pools
from tests.planner.ilp_fixtures import tiny_config, tiny_data

ROWS = [(t, "a", k, v) for t in (1, 2) for k, v in (("IW-F", 150.0), ("IW-N", 60.0))]


def _config() -> Any:
    def vm(name: str, price: float) -> dict[str, Any]:
        return {
            "id": name,
            "gpu": "A100-80GB",
            "gpus_per_vm": 8,
            "gpu_memory_gb": 80,
            "price_per_hour": price,
            "spot_price_per_hour": price,
            "lead_time_min": 15,
        }

    def placement(iw_f: float, other: float) -> dict[str, Any]:
        rate = {"IW-F": iw_f, "IW-N": other, "NIW": other}
        return {
            "tensor_parallel": 8,
            "instances_per_vm": 1,
            "load_time_min": 6,
            "throughput": {k: {"input": r, "output": r} for k, r in rate.items()},
        }

    fleet = [
        {"region": r, "vm_type": g, "quota": 4, "spot_available": 0, "running": 0}
        for r in ("a", "b")
        for g in ("c", "d")
    ]
    return tiny_config(
        vm_types=[vm("c", 10.0), vm("d", 30.0)],
        fleet=fleet,
        **{"models.0.vm_types": {"c": placement(10.0, 100.0), "d": placement(250.0, 250.0)}},
    )


def _pool(values: dict[str, Any], t: int) -> dict[str, float]:
    return {g: values["x"][("a", "m", g, t)] for g in ("c", "d")}


def test_the_relaxation_splits_the_pool_and_plain_rounding_holds_both_types() -> None:
    data = tiny_data(_config(), ROWS, minutes_before=20)
    lp = _lp_values(data)
    assert lp is not None
    # IW-F on d, IW-N on c (each type at its cheapest per token): a fraction of each
    assert all(0.3 < n < 0.9 for n in _pool(lp, 1).values()), _pool(lp, 1)
    assert _pool(round_up(data, lp), 1) == {"c": 1, "d": 1}


def test_the_consolidated_start_holds_one_instance_on_one_type() -> None:
    data = tiny_data(_config(), ROWS, minutes_before=20)
    lp = _lp_values(data)
    assert lp is not None
    # (150 + 60) / 250 = 0.84 instance of d ($30) against 150 / 10 + 0.6 = 16 of c
    assert _pool(single_type_pools(data, lp), 1) == {"c": 0.0, "d": 1.0}
    start = lp_rounding_start(data)
    assert start is not None
    for t in (1, 2):
        assert _pool(start, t) == {"c": 0.0, "d": 1.0}
    assert start["e"] == pytest.approx({k: 0.0 for k in start["e"]})  # nothing unmet


def test_where_no_vm_can_be_added_the_instance_rounded_up_furthest_is_dropped() -> None:
    """Region a runs one VM of 2 instances and none can be added in hour 1; the LP holds
    1.9 instances of m and 0.1 of m2 there. Rounded up (2 + 1) they need 1.5 VMs, so one
    instance goes: m2's (0.9 above its LP value), not m's (0.1 above; dropping it leaves m
    0.9 of an instance short, demand booked as unmet)."""
    m = tiny_config().model_dump()["models"][0]
    cfg = tiny_config(models=[m, {**m, "id": "m2", "name": "M2"}])
    data = tiny_data(cfg, [(1, "a", "IW-N", 100.0)])
    assert data.committed(1) and not data.can_add_vm("v8", 1)
    x = {("a", "m", "v8", 1): 1.9, ("a", "m2", "v8", 1): 0.1}
    out = round_up(data, {"x": x, "xs": {}, "y": {("a", "v8", 1): 1.0}, "z": {}})
    assert out["y"][("a", "v8", 1)] == 1
    assert out["x"][("a", "m", "v8", 1)] == 2 and out["x"][("a", "m2", "v8", 1)] == 0
