"""The two references: the work bound is below every policy on every trace (adversarial ones
included) at that policy's own misses, and tight where a fleet runs flat out; the clairvoyant
fleet by hand, above the work bound.

Tiny fleet (tests/planner/ilp_fixtures.py): 100 tokens/s per instance in every tier, 2
instances (4 GPUs each) per 8-GPU VM, NIW deadline 2 h. Requests carry 100 tokens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.config import FleetConfig
from planner.sim.bounds import clairvoyant_fleet, gpu_seconds_per_token, work_bound
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, Targets, home_routing, params_from_config
from planner.sim.fluid import Policy, SimResult
from planner.sim.latency import Curve
from planner.sim.plan_reactive import PlanReactive
from planner.sim.policies import PlanFollowing, Reactive, Siloed
from planner.sim.serving import ServingModel, ideal
from planner.sim.slo_policy import SloReactive
from tests.helpers import replay
from tests.planner.ilp_fixtures import tiny_config

START = pd.Timestamp("2024-06-03 10:00")
IWF, IWN, NIW = 0, 1, 2
TARGET_MISS = {"IW-F": 0.01, "IW-N": 0.01, "NIW": 0.0}


@pytest.fixture(scope="module")
def p() -> FleetParams:
    return params_from_config(tiny_config(), {("m", k): 0.1 for k in ("IW-F", "IW-N", "NIW")})


def demand(minutes: int, rates: dict[tuple[int, int], float | np.ndarray]) -> MinuteDemand:
    req = np.zeros((minutes, 2, 1, 3))
    for (r, k), rate in rates.items():
        req[:, r, 0, k] = np.broadcast_to(np.asarray(rate, dtype=float), (minutes,)) * 60 / 100
    return MinuteDemand(START, req, req * 10, req * 90)


def fixed(p: FleetParams, a: int, b: int = 0) -> Targets:
    inst = np.zeros((2, 1, 1))
    inst[0, 0, 0], inst[1, 0, 0] = a, b
    return Targets(
        np.ceil(inst[:, :, 0] / 2), np.zeros((2, 1)), inst, np.zeros_like(inst), home_routing(p)
    )


def static(p: FleetParams, a: int, b: int = 0) -> PlanFollowing:
    return PlanFollowing(p, [fixed(p, a, b)], np.zeros((1, 2, 1)), name=f"static-{a}-{b}")


def plan_modes(p: FleetParams, hours: int) -> list[Policy]:
    """Every way the plan family carries out a plan (LT-I, LT-U, LT-UA, LT-R with and without
    make before break), on a plan that is wrong on purpose: one instance an hour, moving
    between the regions each hour, whatever the trace does."""
    hourly = [fixed(p, 1, 0) if h % 2 else fixed(p, 0, 1) for h in range(hours)]
    expected = np.full((hours, 2, 1), 0.5)
    return [
        PlanFollowing(p, hourly, expected, mode="lt-u", name="lt-u"),
        PlanFollowing(p, hourly, expected, mode="lt-ua", name="lt-ua", ahead=1.05),
        PlanReactive(p, hourly, name="lt-r", target=0.3, up=0.4, down=0.21),
        PlanReactive(p, hourly, name="lt-r-break", handover=False),
    ]


def traces() -> dict[str, MinuteDemand]:
    rng = np.random.default_rng(5)
    T = 240
    t = np.arange(T)
    spike = np.zeros(T)
    spike[100] = 6000.0  # one minute at 60× the fleet's rate
    huge = demand(T, {(0, IWF): 100.0})
    every_tenth = t % 10 == 0
    huge.requests[every_tenth, 0, 0, IWF] += 1.0  # one request of 180 k tokens a minute
    huge.input_tokens[every_tenth, 0, 0, IWF] += 18_000.0
    huge.output_tokens[every_tenth, 0, 0, IWF] += 162_000.0
    return {
        "a few huge requests": huge,
        "steady": demand(T, {(0, IWF): 150.0, (1, IWN): 80.0, (0, NIW): 50.0}),
        "one-minute spike": demand(T, {(0, IWF): spike + 20.0}),
        "sawtooth": demand(T, {(0, IWF): 40.0 * (t % 30), (1, NIW): 300.0 * (t % 90 < 5)}),
        "heavy tail": demand(
            T, {(0, IWF): rng.pareto(1.2, T) * 60.0, (1, IWN): rng.pareto(1.5, T) * 90.0}
        ),
        "niw only, end-loaded": demand(T, {(0, NIW): np.where(t > 200, 2000.0, 0.0)}),
        "silence then flood": demand(T, {(0, IWF): np.where(t > 120, 900.0, 0.0)}),
    }


def policies(p: FleetParams, d: MinuteDemand) -> list[Policy]:
    first = d.tokens[:60].mean(axis=0) / 60.0
    peak = d.tokens.max(axis=0) / 60.0
    inter = peak.copy()
    inter[:, :, NIW] = 0.0
    niw = d.hourly_tokens_per_s("mean")[:, :, :, NIW].max(axis=0)
    return [
        Reactive(p, first),
        Reactive(p, first, up=0.95, down=0.9, target=0.95, cooldown_in_min=1, min_instances=0),
        Reactive(p, first, up=0.5, down=0.25, target=0.4),
        Siloed(p, inter, niw),
        static(p, 1),
        static(p, 2, 1),
        static(p, 0),
        SloReactive(p, first, name="slo-cold", target=0.1, up=0.2, down=0.07),
        SloReactive(p, first, name="slo-hot", target=0.9, up=1.0, down=0.63, min_instances=0),
        *plan_modes(p, d.minutes // 60),
    ]


def misses(r: SimResult) -> dict[str, float]:
    return {k: 1.0 - o.sla_attainment for k, o in r.tiers.items()}


@pytest.mark.parametrize("name", list(traces()))
def test_no_policy_goes_below_the_work_bound_at_its_own_misses(p: FleetParams, name: str) -> None:
    d = traces()[name]
    bound_at_target = work_bound(p, d, TARGET_MISS)
    for policy in policies(p, d):
        r = replay(p, d, policy)
        bound = work_bound(p, d, misses(r))
        assert r.gpu_hours >= bound - 1e-9, (name, policy.name, r.gpu_hours, bound)
        assert r.gpu_hours_busy >= bound - 1e-9, (name, policy.name)
        if all(misses(r)[k] <= TARGET_MISS[k] + 1e-12 for k in TARGET_MISS):
            assert r.gpu_hours >= bound_at_target - 1e-9
    c = clairvoyant_fleet(p, d, np.zeros((2, 1)), ideal(p))
    assert c.gpu_hours >= work_bound(p, d, {}) - 1e-9


def test_work_bound_is_tight_on_a_fleet_running_flat_out(p: FleetParams) -> None:
    """200 tokens/s on exactly 2 instances (one VM, 8 GPUs) for 2 h: 16 GPU-h allocated, all
    busy; the bound is the same work less the last minute and one request."""
    d = demand(120, {(0, IWF): 200.0})
    r = replay(p, d, static(p, 2), drain=False)
    assert r.tiers["IW-F"].sla_attainment == pytest.approx(1.0)
    bound = work_bound(p, d, TARGET_MISS)
    request = 100 * 4 / 100 / 3600  # GPU-h of one 100-token request on 4 GPUs at 100 tokens/s
    assert r.gpu_hours == pytest.approx(16.0)
    # misses take the largest requests; all are equal here: 1 % of them
    assert bound == pytest.approx((119 * 120 - 144) * request - 2 * request, rel=1e-9)
    assert work_bound(p, d, {}) == pytest.approx(16.0 * 119 / 120 - 2 * request, rel=1e-6)


def test_work_bound_counts_only_niw_due_inside_the_window(p: FleetParams) -> None:
    """NIW arriving after minute T − 120 (deadline 2 h) may be served after the window."""
    d = demand(180, {(0, NIW): 100.0})
    one_minute = 100 * 60 * 4 / 100 / 3600  # GPU-h of a minute of 100 tokens/s
    assert work_bound(p, d, {}) == pytest.approx(61 * one_minute)


def test_work_bound_prefers_the_most_efficient_vm_type(cfg: FleetConfig) -> None:
    """Default fleet: per token, an H100 instance needs fewer GPU-seconds than an A100 one."""
    p = params_from_config(cfg)
    cost = gpu_seconds_per_token(p)
    m, a100, h100 = (
        p.models.index("llama2-70b"),
        p.vm_types.index("a100x8"),
        p.vm_types.index("h100x8"),
    )
    k = p.tiers.index("IW-F")
    per = p.gpus_per_instance[m] / p.theta[m, :, k]
    assert cost[m, k] == pytest.approx(min(per[a100], per[h100]))
    assert per[h100] < per[a100]


def test_clairvoyant_fleet_by_hand(p: FleetParams) -> None:
    """Region a: 150 tokens/s IW-F → 2 instances (1 VM); 30 tokens/s of NIW fits in the 0.5
    spare instance (50 tokens/s): nothing added. Region b: floor 1 instance, no demand → 1 VM.
    2 VMs × 8 GPUs × 3 h = 48 GPU-h; floors alone 1 VM each region: 48 GPU-h too."""
    d = demand(180, {(0, IWF): 150.0, (0, NIW): 30.0})
    c = clairvoyant_fleet(p, d, np.ones((2, 1)), ideal(p))
    assert c.gpu_hours == pytest.approx(48.0)
    assert c.floor_gpu_hours == pytest.approx(48.0)
    assert (c.instances[:, 0, 0] == 2).all() and (c.instances[:, 1, 0] == 1).all()
    assert c.cost == pytest.approx(2 * 10.0 * 3)


def test_clairvoyant_adds_niw_capacity_only_at_deadlines(p: FleetParams) -> None:
    """A 10-minute NIW burst of 1,200 tokens/s (720 k tokens) on a fleet with no spare: at its
    deadline (2 h later) each minute's 72 k tokens needs 12 extra instances for that minute."""
    t = np.arange(180)
    d = demand(180, {(0, NIW): np.where(t < 10, 1200.0, 0.0)})
    c = clairvoyant_fleet(p, d, np.zeros((2, 1)), ideal(p))
    extra = c.instances[:, 0, 0]
    assert (extra[:120] == 0).all()
    assert (extra[120:130] == 12).all() and (extra[130:] == 0).all()
    assert c.gpu_hours == pytest.approx(10 * 6 * 8 / 60)


def test_policies_meeting_the_targets_cost_at_least_the_clairvoyant_floor_share(
    p: FleetParams,
) -> None:
    """The floors are GPU-hours no policy can shed: a reactive fleet with min 1 instance per
    region pays at least them."""
    d = traces()["steady"]
    c = clairvoyant_fleet(p, d, np.ones((2, 1)), ideal(p))
    r = replay(p, d, Reactive(p, d.tokens[:60].mean(axis=0) / 60.0))
    assert r.gpu_hours >= c.floor_gpu_hours


def _serving(p: FleetParams, top: float) -> ServingModel:
    """The tiny fleet's θ with an IW-F curve on time for a share ``top`` up to ρ = 0.5, then
    falling linearly to 0.9 at ρ = 1 (CV-independent); IW-N always on time."""
    hot = Curve(
        np.array([0.0, 0.5, 1.0]), np.array([0.0, 4.0]), np.array([[top] * 2, [top] * 2, [0.9] * 2])
    )
    flat = Curve(np.array([0.0, 1.0]), np.array([0.0, 4.0]), np.ones((2, 2)))
    return ServingModel(np.asarray(p.theta, float), {(0, 0, IWF): hot, (0, 0, IWN): flat})


def test_clairvoyant_fleet_on_the_latency_curves_by_hand(p: FleetParams) -> None:
    """150 tokens/s of IW-F (1.5 instances busy) at 99 %: the curve allows ρ ≤ 0.55, so 3
    instances (2 would run at 0.75: 95 %). NIW may raise ρ to 0.55 too: 3 × 0.55 − 1.5 = 0.15
    instances, 15 tokens/s: 10 tokens/s of NIW fit, nothing is added for it."""
    serving = _serving(p, 1.0)
    d = demand(60, {(0, IWF): 150.0, (0, NIW): 10.0})
    c = clairvoyant_fleet(p, d, np.zeros((2, 1)), serving, {"IW-F": 0.99, "IW-N": 0.99})
    assert c.reachable and (c.instances[:, 0, 0] == 3).all() and (c.instances[:, 1, 0] == 0).all()
    rho = np.array([1.5 / 3, 1.5 / 2])
    assert serving.curves[(0, 0, IWF)](rho, 0.0) == pytest.approx([1.0, 0.95])
    more = clairvoyant_fleet(
        p, demand(60, {(0, IWF): 150.0, (0, NIW): 20.0}), np.zeros((2, 1)), serving
    )
    assert more.instances[-1, 0, 0] == 3  # 5 tokens/s short each minute, due only at the deadline
    assert c.gpu_hours == pytest.approx(2 * 8.0)  # 3 instances: 2 VMs for the hour


def test_clairvoyant_fleet_says_when_the_curve_cannot_meet_the_target(p: FleetParams) -> None:
    """A curve that tops out at 95 %: no pool meets 99 %; the fleet is sized at the curve's
    best (ρ ≤ 0.5: 3 instances for 1.5 busy) and says it is not reachable."""
    d = demand(60, {(0, IWF): 150.0})
    c = clairvoyant_fleet(p, d, np.zeros((2, 1)), _serving(p, 0.95), {"IW-F": 0.99})
    assert not c.reachable and (c.instances[:, 0, 0] == 3).all()
