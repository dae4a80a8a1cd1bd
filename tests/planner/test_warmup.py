"""The warm-up before a metered window (``simulate(metered_from=...)``, issue #15): replayed,
never metered. Tiny fleet of tests/planner/test_bounds.py (100 tokens/s per instance, 2
instances of 4 GPUs per 8-GPU VM, IW-F TTFT 1 s); the stored curves' stand-in ``cliff``."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import simulate
from planner.sim.policies import Reactive
from planner.sim.sweep import Point
from planner.sim.warmup import warmup_hours
from tests.planner.ilp_fixtures import tiny_config
from tests.planner.test_attainment_bound import cliff
from tests.planner.test_bounds import IWF, IWN, demand, static


@pytest.fixture(scope="module")
def p() -> FleetParams:
    return params_from_config(tiny_config(), {("m", k): 0.1 for k in ("IW-F", "IW-N", "NIW")})


def test_the_metered_figures_exclude_the_warm_up(p: FleetParams) -> None:
    """Two hours on 2 instances in region 0: the first (warm-up) carries a burst 5x what they
    serve, so IW-F misses there; the second is light. Metered from minute 60, the figures are
    the second hour's alone: its requests, its GPU-hours, IW-F on time from its second minute."""
    rate = np.where(np.arange(120) < 60, 1000.0, 50.0)
    d = demand(120, {(0, IWF): rate, (1, IWN): 20.0})
    serving = cliff(p)
    whole = simulate(p, d, static(p, 2, 1), serving=serving)
    metered = simulate(p, d, static(p, 2, 1), serving=serving, metered_from=60)
    assert whole.tiers["IW-F"].sla_attainment < 0.5  # the warm-up's burst counts here
    # all on time but the first metered minute, behind the burst's backlog (carried over)
    assert metered.tiers["IW-F"].sla_attainment == pytest.approx(59 / 60)
    for k, tier in ((IWF, "IW-F"), (IWN, "IW-N")):
        assert metered.tiers[tier].requests == pytest.approx(d.requests[60:, :, :, k].sum())
    gpus = whole.timeline["gpus"].to_numpy()
    assert metered.gpu_hours == pytest.approx(gpus[60:].sum() / 60)
    assert metered.gpu_hours < whole.gpu_hours
    assert metered.minutes == 60
    assert metered.timeline["minute"].iloc[0] == d.start + np.timedelta64(60, "m")
    assert metered.instances["hour"].min() == d.start + np.timedelta64(60, "m")


def test_the_warm_up_is_replayed_not_skipped(p: FleetParams) -> None:
    """A scaler's decisions in the warm-up carry into the window: started on the burst's
    first hour, the metered hour differs from replaying the light hour alone."""
    rate = np.where(np.arange(120) < 60, 1000.0, 50.0)
    d = demand(120, {(0, IWF): rate})
    first = d.tokens[:60].mean(axis=0) / 60.0

    def scaler() -> Reactive:
        return Reactive(p, first, up=0.8, down=0.3, target=0.6, cooldown_in_min=480)

    warm = simulate(p, d, scaler(), serving=cliff(p), metered_from=60)
    assert warm.gpu_hours > 0
    late = demand(60, {(0, IWF): 50.0})
    alone = simulate(p, late, Reactive(p, late.tokens[:60].mean(axis=0) / 60.0), serving=cliff(p))
    assert warm.gpu_hours > alone.gpu_hours  # the burst's fleet is still held (480-min window)


def test_metered_from_must_fall_inside_the_replay(p: FleetParams) -> None:
    d = demand(60, {(0, IWF): 50.0})
    with pytest.raises(ValueError, match="metered_from 60 outside the 60 minutes"):
        simulate(p, d, static(p, 1), serving=cliff(p), metered_from=60)


def test_default_warm_up_covers_the_longest_scale_in_window_and_lead(p: FleetParams) -> None:
    """480-min window + the tiny fleet's lead time and load (whole hours, rounded up)."""
    lead = int(p.lead_min.max()) + int(p.load_min.max())
    points = [Point("reactive", {"cooldown_in_min": 480}), Point("slo-reactive", {})]
    assert warmup_hours(points, p) == -(-(480 + lead) // 60)
    assert warmup_hours([Point("plan", {"mode": "lt-u"})], p) == -(-lead // 60)
