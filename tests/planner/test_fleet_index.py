"""The fleet index: one θ, one cheapest VM type and one input share for the ILP and the
simulator alike."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from planner.config import FleetConfig
from planner.config.loader import parse_config
from planner.fleet_index import fleet_index, input_shares
from planner.ilp.data import build_data, state_from_config
from planner.sim.fleet import params_from_config

MODEL = "llama2-70b"


@pytest.fixture(scope="module")
def skewed(cfg: FleetConfig) -> FleetConfig:
    """H100 cheapest per token for IW-N only; us-west has no A100 quota."""
    data = cfg.model_dump(mode="json")
    model = next(m for m in data["models"] if m["id"] == MODEL)
    model["vm_types"]["h100x8"]["throughput"]["IW-N"] = {"input": 40000.0, "output": 20000.0}
    for entry in data["fleet"]:
        if (entry["region"], entry["vm_type"]) == ("us-west", "a100x8"):
            entry.update(quota=0, spot_available=0, running=0, instances={})
    return parse_config(data)


def test_the_ilp_and_the_simulator_pick_the_same_cheapest_vm_type(skewed: FleetConfig) -> None:
    """Priced at the tightest interactive tier (IW-F: A100), per region where it has quota
    (us-west: H100). IW-N alone (the greedy plan's old tier) would pick H100 everywhere."""
    data = build_data(skewed, pd.DataFrame(), state_from_config(skewed), datetime(2024, 6, 10))
    p = params_from_config(skewed)
    m = p.models.index(MODEL)
    expected = ["a100x8", "a100x8", "h100x8"]
    assert [data.cheapest_vm_type[(r, MODEL)] for r in p.regions] == expected
    assert [p.vm_types[g] for g in p.preferred[:, m]] == expected


def test_one_theta_the_planner_derates_by_headroom(skewed: FleetConfig) -> None:
    shares = {(MODEL, "IW-F"): 0.6}
    data = build_data(
        skewed, pd.DataFrame(), state_from_config(skewed), datetime(2024, 6, 10), shares
    )
    p = params_from_config(skewed, shares)
    f = fleet_index(skewed)
    for (m, g, k), theta in data.theta.items():
        i, j, q = p.models.index(m), p.vm_types.index(g), p.tiers.index(k)
        assert theta == pytest.approx((1 - f.headroom[q]) * p.theta[i, j, q], rel=1e-12)
    tp = skewed.model(MODEL).vm_types["a100x8"].throughput["IW-F"]
    blended = 1 / (0.6 / tp.input + 0.4 / tp.output)
    assert p.theta[p.models.index(MODEL), 0, p.tiers.index("IW-F")] == pytest.approx(blended)


def test_input_shares_leave_out_pairs_without_tokens() -> None:
    rows = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "tier": ["IW-F", "IW-F", "NIW"],
            "input_tokens": [30.0, 50.0, 0.0],
            "output_tokens": [10.0, 10.0, 0.0],
        }
    )
    assert input_shares(rows) == {("a", "IW-F"): 0.8}
