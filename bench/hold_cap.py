"""Can hour-level knowledge release the capacity LT-F's layer holds? (issue #15, ServeGen track)

``bench/fleet_gap.py`` puts nearly all of the plan point's GPU-hours above the clairvoyant
fleet in *headroom*: capacity the SLO-aware layer keeps after a burst for its scale-in window
(180 min on ServeGen, which its frontier needs because traffic stops for hours and restarts
at full rate). This comparator (it sees the window's true demand: never a policy) replays the
cheapest plan point of a ``bench/levers.py --out`` JSON with its held capacity capped, every
minute the pool's pressure is below the layer's ``down``, at ``--scale`` × the clairvoyant
fleet's busiest minute of the hour (``--ahead``: of this hour and the next, what a plan made
before the hour could know), never below the availability floor. A cap only hands capacity
back; it never buys ahead. What it shows: a cap that knows each hour's true busiest minute
and only hands the hold back misses the targets on ServeGen (the 03:00 restart is served by
capacity held from the evening); a plan that also buys ahead is not tested here.

    .venv/bin/python bench/hold_cap.py --config configs/servegen.yaml --warehouse W \\
        --hours 24 --end 2024-06-13T06:00 --quantiles 0.5 --variants floor+trough \\
        --families reactive,slo-reactive --no-attainment-bound --slo-layer \\
        --plans-cache DIR --levers levers.json --scales 1,2.5,10 --ahead
"""

from __future__ import annotations

import logging
import sys
import time
from copy import deepcopy
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_gap import best_points
from levers import bench_plans, parser, setup

from flows.sweep import process_pool
from planner.sim.fleet import Targets
from planner.sim.fluid import Observation, simulate
from planner.sim.plan_ramp import PlanRamp
from planner.sim.sweep import build_policy, row

log = logging.getLogger("bench.hold_cap")


@dataclass
class Capped(PlanRamp):
    """LT-F whose pools are handed back to ``cap[hour]`` [r, m] when their pressure is low."""

    cap: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def decide(self, obs: Observation) -> Targets | None:
        out = super().decide(obs)
        back = self.hand_back(obs)
        return out if back is None else back

    def hand_back(self, obs: Observation) -> Targets | None:
        """Lower the layer's extra where the pool holds more than the hour's cap and its
        pressure is below ``down`` (never below the floor, never above what it held); the
        new targets, or None when nothing is handed back."""
        c = self.cap[min(obs.minute // 60, len(self.cap) - 1)]
        floor = self.floor().instances.sum(axis=2)
        pressure = np.where(np.isfinite(obs.pressure), obs.pressure, np.inf)
        over = (floor + self._extra > c + 1e-9) & (pressure < self.down)
        if not over.any():
            return None
        keep = np.maximum(np.maximum(c, self.min_instances) - floor, 0.0)
        self._extra = np.where(over, np.minimum(keep, self._extra), self._extra)
        return self.targets()


def capped(policy: PlanRamp, cap: np.ndarray) -> Capped:
    """``policy`` (its dials, plans and band) with its held capacity capped at ``cap``."""
    return Capped(**{f.name: getattr(policy, f.name) for f in fields(policy) if f.init}, cap=cap)


def caps(clair: np.ndarray, warm_h: int, scale: float, ahead: bool) -> np.ndarray:
    """[hours, r, m]: ``scale`` × each hour's busiest minute of the clairvoyant fleet
    ``clair`` [T, r, m] (of this hour and the next with ``ahead``), none in the warm-up."""
    T, nr, nm = clair.shape
    busiest = clair[: T - T % 60].reshape(-1, 60, nr, nm).max(axis=1) * scale
    if ahead:
        busiest = np.maximum(busiest, np.concatenate([busiest[1:], busiest[-1:]]))
    return np.concatenate([np.full((warm_h, nr, nm), np.inf), busiest])


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    ap.add_argument("--levers", required=True, help="a bench/levers.py --out JSON of the window")
    ap.add_argument("--scales", default="1,2.5,10")
    ap.add_argument("--ahead", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    clock = time.perf_counter()
    b = setup(a, clock)
    point = best_points(Path(a.levers), b.names[0])["plan"]
    if point.params.get("mode") != "lt-f":
        raise SystemExit(f"the cheapest plan point is not LT-F: {point.label}")
    with process_pool(a.workers) as pool:
        plans, _ = bench_plans(b, pool, clock)
    print(f"window {b.start} .. {b.stop}; {point.label}; clairvoyant {b.clair.gpu_hours:,.0f}")
    for scale in [None, *(float(x) for x in a.scales.split(",") if x)]:
        # a fresh copy each time: the policy writes its re-plans into the plan sequence
        policy = build_policy(point, b.p, b.replayed, deepcopy(plans[b.names[0]]))
        if not isinstance(policy, PlanRamp):
            raise SystemExit(f"not an LT-F policy: {point.label}")
        if scale is not None:
            policy = capped(policy, caps(b.clair.instances, b.warm, scale, a.ahead))
        res = simulate(b.p, b.replayed, policy, serving=b.serving, metered_from=60 * b.warm)
        r = row(point, res, b.wb, b.clair, b.p.tiers[b.p.deferrable])
        label = "as is" if scale is None else f"oracle cap {scale:g}x" + " (ahead)" * a.ahead
        print(
            f"{label:24s} {r['gpu_hours']:8,.0f} GPU-h  IW-F {r['IW-F_sla']:.4f}  "
            f"IW-N {r['IW-N_sla']:.4f}  NIW on time {r['niw_on_time']:.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
