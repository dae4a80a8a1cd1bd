"""Interactive capacity sized on the latency target (planner.ilp.sizing): the demand handed to
the program holds exactly the capacity curves' instances for the tiers' pooled load."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from planner.config import FleetConfig, load_config
from planner.fleet_index import blend, fleet_index
from planner.ilp.data import build_data, state_from_config
from planner.ilp.demand import planning_demand
from planner.ilp.sizing import UNREACHABLE, latency_theta, max_utilisation, pool_instances
from planner.sim.capacity import instances_needed, load_latency_curves

HOUR = datetime(2024, 6, 3, 10, 0)
MODEL = "llama3.1-8b"


def _cfg(sizing: str) -> FleetConfig:
    cfg = load_config("configs/default.yaml")
    planner = cfg.planner.model_copy(update={"interactive_sizing": sizing})
    return cfg.model_copy(update={"planner": planner})


def _forecasts(peaks: dict[str, float], rps: dict[str, float]) -> pd.DataFrame:
    rows = []
    for tier, peak in peaks.items():
        for metric, value in (
            ("peak_token_rate", peak),
            ("token_rate", peak / 2),
            ("request_rate", rps[tier] / 2),
        ):
            q = {c: value for c in ("q_0_5", "q_0_9", "q_0_95")}
            rows.append(
                {"hour": HOUR, "region": "us-east", "model": MODEL, "tier": tier, "metric": metric}
                | q
            )
    return pd.DataFrame(rows)


def test_latency_demand_holds_the_curves_instances_for_the_pooled_load() -> None:
    cfg = _cfg("latency")
    peaks, rps = {"IW-F": 40_000.0, "IW-N": 20_000.0}, {"IW-F": 40.0, "IW-N": 20.0}
    shares = {(MODEL, k): 0.8 for k in cfg.tier_ids}
    demand = planning_demand(_forecasts(peaks, rps), cfg, shares)
    data = build_data(cfg, demand, state_from_config(cfg), HOUR - timedelta(minutes=20), shares)
    sized = pool_instances(
        cfg, MODEL, peaks, {"IW-F": 1000.0, "IW-N": 1000.0}, {"IW-F": 0.8, "IW-N": 0.8}
    )
    assert sized is not None
    g, n = sized
    held = sum(data.demand[("us-east", MODEL, k, 1)] / data.theta[(MODEL, g, k)] for k in peaks)
    assert held == pytest.approx(n)
    # n is the larger tier's curve at the pooled rate (60 requests/s), not a sum per tier, with
    # a request's busy seconds in the curves' own unit (their best prefill and decode rates)
    lc = load_latency_curves()
    prefill, decode = lc.rates[(MODEL, g)]
    busy = 1000.0 * (0.8 / prefill + 0.2 / decode)
    want = max(instances_needed(MODEL, g, k, 60.0, 1.0, busy_s_per_request=busy) for k in peaks)
    assert n == want
    # no flat headroom: the program's θ is the calibrated one at the curve's on-target ρ*
    full = lc.capacity[(MODEL, g)] / (0.8 / prefill + 0.2 / decode)
    rho = max_utilisation(lc.curve(MODEL, g, "IW-F"), cfg.planner.latency_attainment)
    assert rho is not None and 0 < rho < 1
    assert data.theta[(MODEL, g, "IW-F")] == pytest.approx(rho * full)
    assert data.theta[(MODEL, g, "NIW")] == pytest.approx(full)


def test_a_type_whose_curve_never_meets_the_target_is_priced_out() -> None:
    """Llama-2-70B on A100 never reaches 99 % IW-F (its curve tops out below): the program
    sees 1 % of its rate there, so the cheapest type for the model is the H100."""
    cfg = _cfg("latency")
    cfg = cfg.model_copy(
        update={"planner": cfg.planner.model_copy(update={"latency_attainment": 0.99})}
    )
    theta = latency_theta(cfg, None)
    f = fleet_index(cfg)
    m, a100, h100 = (
        f.position["models"]["llama2-70b"],
        *(f.position["vm_types"][g] for g in ("a100x8", "h100x8")),
    )
    iwf = f.position["tiers"]["IW-F"]
    lc = load_latency_curves()
    assert max_utilisation(lc.curve("llama2-70b", "a100x8", "IW-F"), 0.99) is None
    full = lc.capacity[("llama2-70b", "a100x8")] * blend(
        f.default_input_share, *lc.rates[("llama2-70b", "a100x8")]
    )
    assert theta[m, a100, iwf] == pytest.approx(UNREACHABLE * full)
    assert theta[m, h100, iwf] > 0.1 * theta[m, h100, f.position["tiers"]["NIW"]]
    assert (f.cheapest_vm_type(theta)[:, m] == h100).all()


def test_headroom_sizing_is_each_tiers_peak() -> None:
    cfg = _cfg("headroom")
    peaks, rps = {"IW-F": 4000.0, "IW-N": 2000.0}, {"IW-F": 4.0, "IW-N": 2.0}
    demand = planning_demand(_forecasts(peaks, rps), cfg)
    got = dict(zip(demand["tier"], demand["value"], strict=True))
    assert got == peaks


def test_more_load_never_sizes_fewer_instances() -> None:
    cfg = _cfg("latency")
    tpr, share = {"IW-F": 1000.0, "IW-N": 1000.0}, {"IW-F": 0.8, "IW-N": 0.8}
    sizes = [
        pool_instances(cfg, MODEL, {"IW-F": p, "IW-N": p / 2}, tpr, share)
        for p in (1_000.0, 10_000.0, 100_000.0)
    ]
    counts = [s[1] for s in sizes if s is not None]
    assert len(counts) == 3 and counts == sorted(counts) and counts[0] < counts[-1]


def test_the_plan_as_a_floor_sizes_the_hours_mean_not_its_busiest_minute() -> None:
    """With the interactive tiers planning on ``token_rate`` (issue #15's floor: the hour's
    expected load, the reactive layer above it takes the bursts), latency sizing reads the
    forecast hour mean (half the busiest minute in these forecasts): the curves' instances
    for the mean load, fewer than for the busiest minute."""
    cfg = _cfg("latency")
    peaks, rps = {"IW-F": 40_000.0, "IW-N": 20_000.0}, {"IW-F": 40.0, "IW-N": 20.0}
    shares = {(MODEL, k): 0.8 for k in cfg.tier_ids}
    floor_cfg = cfg.model_copy(
        update={
            "tiers": [
                t.model_copy(update={"planning_metric": "token_rate"})
                if t.kind == "interactive"
                else t
                for t in cfg.tiers
            ]
        }
    )
    f = _forecasts(peaks, rps)

    def held(c: FleetConfig) -> float:
        d = planning_demand(f, c, shares)
        return float(d[d["tier"].isin(list(peaks))]["value"].sum())

    tpr, share = {"IW-F": 1000.0, "IW-N": 1000.0}, {"IW-F": 0.8, "IW-N": 0.8}
    at_mean = pool_instances(cfg, MODEL, {k: v / 2 for k, v in peaks.items()}, tpr, share)
    at_peak = pool_instances(cfg, MODEL, peaks, tpr, share)
    assert at_mean is not None and at_peak is not None and at_mean[1] < at_peak[1]
    assert 0 < held(floor_cfg) < held(cfg)
    assert held(floor_cfg) / held(cfg) == pytest.approx(at_mean[1] / at_peak[1])
