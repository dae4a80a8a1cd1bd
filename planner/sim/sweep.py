"""Frontiers at equal SLA: every policy family run over its dial on the same replay, each
point read against the two references of ``planner.sim.bounds``, and per family the cheapest
point that meets the SLA targets.

Families and their dials (``grid``); every family but siloed also over NIW's cap (each point
with NIW uncapped and its twin with NIW capped at ``NIW_CAP`` utilisation of the shared pools,
:func:`with_niw_cap`: measured on the demo log, the cap moves every family's best point and
never made NIW later, so the baselines always have this dial):

* ``reactive``: scale-out threshold × target utilisation (the scale-in threshold below it) ×
  cooldowns (scale-in up to 480 min), from SageServe's own baseline (out above 0.5, in below
  0.25) to gauges run hot (out above 0.95); the product's default (0.8/0.3 → 0.6, 5/20 min)
  is one of the points;
* ``slo-reactive``: the backpressure scaler of ``planner.sim.slo_policy`` over its target
  pressure, scale-out level and scale-in stabilisation window (up to 180 min);
* ``plan``: the hourly plans at a planning quantile of the interactive tiers × how they are
  carried out (LT-I, LT-U, LT-UA and LT-UA's escape threshold ``ahead``); plans are made
  once per quantile and shared by its modes;
* ``siloed``: static pools over their headroom (a reference, not a contender).

A point meets the targets when IW-F and IW-N attain ≥ 99 % and every NIW request finishes
by its deadline; each family's best point is then refined on its dial by one rule for all
(``planner.sim.refine``). Pure: ``flows.sweep`` supplies the demand, plans and process pool.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from planner.config import FleetConfig
from planner.sim.bounds import Clairvoyant, clairvoyant_fleet, work_bound
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, Targets
from planner.sim.fluid import Policy, SimResult, default_serving, simulate
from planner.sim.plan_ramp import layered
from planner.sim.policies import PlanFollowing, Reactive, Siloed
from planner.sim.serving import ServingModel
from planner.sim.slo_policy import SloReactive

Array = npt.NDArray[np.float64]
FAMILIES = ("reactive", "slo-reactive", "plan", "siloed")
TARGETS = {"IW-F": 0.99, "IW-N": 0.99, "NIW": 1.0}
LT_R_TARGETS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.85)
SLO_WINDOWS_MIN = (10, 30, 180)  # the SLO-aware family's scale-in stabilisation windows
# NIW's ceiling on the shared pools' utilisation for the points that cap it: on the
# chunked-prefill curves IW-F meets 99 % up to ρ ≈ 0.66–0.83 on its reachable placements at
# instance CV 0 (README, serving model), less with bursts; 0.5 keeps clear of that
NIW_CAP = 0.5
PAPER_REACTIVE = dict(up=0.5, down=0.25, target=0.4, cooldown_out_min=5, cooldown_in_min=20)


@dataclass(frozen=True)
class Point:
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        inner = ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
        )
        return f"{self.family}({inner})"


def reactive_grid() -> list[Point]:
    """Out thresholds with a target below each and the in threshold below that, × cooldowns;
    plus the paper's point. The three coldest levels (out 0.2, 0.3 and 0.4) are there because on the
    calibrated serving model the tight tier meets 99 % only at low utilisation (out 0.2 too).
    The 480-min scale-in cooldown keeps a pool through traffic that stops for hours (this
    scaler drops to the current load once quiet for the cooldown, so only a cooldown longer
    than the gap holds it: on the ServeGen log the family meets the targets with it alone)."""
    levels = [
        (0.2, 0.12, 0.05),
        (0.3, 0.2, 0.1),
        (0.4, 0.3, 0.15),
        (0.6, 0.45, 0.25),
        (0.7, 0.55, 0.3),
        (0.8, 0.6, 0.3),
        (0.9, 0.75, 0.45),
        (0.95, 0.85, 0.55),
    ]
    cooldowns = [(5, 20), (2, 10), (10, 45), (2, 480)]
    pts = [Point("reactive", dict(PAPER_REACTIVE))]
    for (up, target, down), (c_out, c_in) in itertools.product(levels, cooldowns):
        pts.append(
            Point(
                "reactive",
                {
                    "up": up,
                    "down": down,
                    "target": target,
                    "cooldown_out_min": c_out,
                    "cooldown_in_min": c_in,
                },
            )
        )
    return with_niw_cap(pts)


def slo_grid() -> list[Point]:
    """Target pressure × scale-out level (just above the target, or only once work queues)
    × scale-in stabilisation window; targets down to 0.1 (the calibrated model's tight tier
    needs pools that cold); each point uncapped and with NIW capped at ``NIW_CAP``
    utilisation of the shared pools (:func:`with_niw_cap`). The 180-min window holds a
    pool through traffic that stops for hours and restarts at full rate (the ServeGen log:
    no window of 10–120 min meets IW-N ≥ 99 % there, the restart waiting a VM's lead time)."""
    targets = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    dials = itertools.product(targets, SLO_WINDOWS_MIN, (False, True))
    return with_niw_cap(
        [Point("slo-reactive", {**slo_levels(t, q), "cooldown_in_min": c}) for t, c, q in dials]
    )


def slo_levels(target: float, queue_only: bool = False) -> dict[str, float]:
    """The SLO-aware grid's rule at ``target``: scale out just above it (+0.1, at most 0.98)
    or (``queue_only``) only once work queues (1.0); scale in below 0.7 × ``target``."""
    up = 1.0 if queue_only else round(min(target + 0.1, 0.98), 4)
    return {"target": target, "up": up, "down": round(0.7 * target, 4)}


def layer_grid(quantiles: Sequence[float]) -> list[Point]:
    """Per quantile, the plan as a floor with the SLO-aware layer above it at **every** point
    of the SLO-aware family's own grid (:func:`slo_grid`: the same target, scale-out level,
    scale-in level, stabilisation window and NIW cap), so the plan family's layer has exactly
    the baseline's dials and the two families differ only by the floor the plan buys ahead.
    Mode ``lt-r`` without make before break (the plan's floor moves on the hour, as LT-I)."""
    pts = []
    for q in quantiles:
        for base in slo_grid():
            params = {"quantile": q, "mode": "lt-r", "handover": False, **base.params}
            pts.append(Point("plan", params))
    return pts


def ramp_grid(quantiles: Sequence[float], releases: Sequence[int] = (0, 15)) -> list[Point]:
    """Per quantile and hand-over minute, LT-F (``planner.sim.plan_ramp``: the plan buys ahead
    of its ramps, the SLO-aware layer holds and hands back everything else) at every point of
    the SLO-aware family's grid (:func:`slo_grid`), so the layer has the baseline's dials."""
    return [
        Point("plan", {"quantile": q, "mode": "lt-f", "release_min": rel, **base.params})
        for q in quantiles
        for rel in releases
        for base in slo_grid()
    ]


def plan_grid(
    quantiles: Sequence[float], reactive_layer: bool = True, slo_layer: bool = False
) -> list[Point]:
    """Per quantile: LT-I, LT-U, LT-UA over ``ahead``, and (``reactive_layer``) LT-R, the
    plan as a floor with the SLO-aware scaler above it (``planner.sim.plan_reactive``), over
    its target pressure (down to 0.1, as the SLO-aware family's grid: on the calibrated
    curves the tight tier needs cold pools); ``slo_layer`` adds :func:`layer_grid` (LT-R at
    every dial setting of the SLO-aware family) and :func:`ramp_grid` (LT-F at the same dials).
    Every point uncapped and with NIW capped at
    ``NIW_CAP`` (:func:`with_niw_cap`)."""
    pts = []
    for q in quantiles:
        for mode in ("lt-i", "lt-u"):
            pts.append(Point("plan", {"quantile": q, "mode": mode}))
        for ahead in (1.05, 1.1, 1.25):
            pts.append(Point("plan", {"quantile": q, "mode": "lt-ua", "ahead": ahead}))
        if reactive_layer:
            for target, handover in itertools.product(LT_R_TARGETS, (True, False)):
                params = {"quantile": q, "mode": "lt-r", "target": target, "handover": handover}
                pts.append(Point("plan", params))
    if slo_layer:
        pts += layer_grid(quantiles) + ramp_grid(quantiles)
    return with_niw_cap(pts)


def _key(pt: Point) -> tuple[str, frozenset[tuple[str, Any]]]:
    return pt.family, frozenset(pt.params.items())


def with_niw_cap(points: Sequence[Point], cap: float = NIW_CAP) -> list[Point]:
    """``points`` and, for each point without a NIW cap (siloed pools excepted: they hold
    their NIW apart), its twin with NIW capped at ``cap`` utilisation of the shared pools,
    unless ``points`` already hold that twin (so applying it twice adds nothing). Every
    family's default grid goes through it."""
    out = list(points)
    seen = {_key(pt) for pt in out}
    for pt in points:
        if pt.family != "siloed" and "niw_cap" not in pt.params:
            twin = Point(pt.family, {**pt.params, "niw_cap": cap})
            if _key(twin) not in seen:
                seen.add(_key(twin))
                out.append(twin)
    return out


def siloed_grid() -> list[Point]:
    return [Point("siloed", {"headroom": h}) for h in (0.0, 0.1, 0.2)]


def grid(families: Sequence[str], quantiles: Sequence[float]) -> list[Point]:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    make = {
        "reactive": reactive_grid,
        "slo-reactive": slo_grid,
        "plan": lambda: plan_grid(quantiles),
        "siloed": siloed_grid,
    }
    return [pt for f in families for pt in make[f]()]


@dataclass(frozen=True)
class PlanTargets:
    """One plan sequence as simulator targets: per hour the targets and the interactive load
    [r, m] it planned for."""

    hourly: list[Targets]
    expected: Array


def build_policy(
    point: Point,
    p: FleetParams,
    demand: MinuteDemand,
    plans: Mapping[Any, PlanTargets],
    name: str | None = None,
) -> Policy:
    """The policy at ``point`` over ``demand``, named ``name`` (default: the point's label):
    the baselines set up from the log's first hour and peaks; plan-carrying ones from
    ``plans[params["plans"]]`` (default: the plans at the point's quantile)."""
    first_hour = demand.tokens[:60].mean(axis=0) / 60.0
    a = dict(point.params)
    label = name or point.label
    if point.family == "reactive":
        return Reactive(p, first_hour, name=label, **a)
    if point.family == "slo-reactive":
        return SloReactive(p, first_hour, name=label, **a)
    if point.family == "siloed":
        inter = demand.tokens.max(axis=0) / 60.0
        inter[:, :, p.deferrable] = 0.0
        niw = demand.hourly_tokens_per_s("mean")[:, :, :, p.deferrable].max(axis=0)
        return Siloed(p, inter, niw, headroom=float(a["headroom"]), name=label)
    if point.family == "plan":
        seq = plans[a["plans"] if "plans" in a else float(a["quantile"])]
        if a["mode"] in ("lt-r", "lt-f"):
            band = plans[float(a["rise_quantile"])].hourly if "rise_quantile" in a else None
            return layered(a, p, seq.hourly, label, band)
        return PlanFollowing(
            p,
            seq.hourly,
            seq.expected,
            mode=str(a["mode"]),
            name=label,
            ahead=float(a.get("ahead", 1.10)),
            niw_cap=a.get("niw_cap"),
        )
    raise ValueError(f"unknown family {point.family!r}")


def row(
    point: Point, result: SimResult, work_bound: float, bound: Clairvoyant, niw_tier: str
) -> dict[str, Any]:
    """One JSON row of the sweep."""
    out: dict[str, Any] = {
        "policy": point.label,
        "family": point.family,
        "params": dict(point.params),
        "gpu_hours": round(result.gpu_hours, 2),
        "gpu_hours_serving": round(result.gpu_hours - result.gpu_hours_scaling, 2),
        "gpu_hours_scaling": round(result.gpu_hours_scaling, 2),
        "cost": round(result.cost_on_demand + result.cost_spot, 2),
        "utilisation": round(result.gpu_hours_busy / result.gpu_hours, 4)
        if result.gpu_hours
        else 0.0,
        "demand_driven_share": round(1 - bound.floor_gpu_hours / result.gpu_hours, 4)
        if result.gpu_hours
        else 0.0,
    }
    for tier, o in result.tiers.items():
        out[f"{tier}_sla"] = round(o.sla_attainment, 6)
    c = result.tiers[niw_tier].counts()
    out["niw_on_time"] = round(c["served"] / c["requests"], 6) if c["requests"] else 1.0
    out["vs_bound"] = round(result.gpu_hours / bound.gpu_hours, 4) if bound.gpu_hours else None
    out["vs_work_bound"] = round(result.gpu_hours / work_bound, 4) if work_bound else None
    return out


def run_point(
    point: Point,
    p: FleetParams,
    demand: MinuteDemand,
    plans: Mapping[float, PlanTargets],
    work_bound: float,
    bound: Clairvoyant,
    serving: ServingModel | None = None,
    metered_from: int = 0,
) -> dict[str, Any]:
    """Replay one point; its row (a process-pool task: every argument pickles). ``serving``:
    the replay's serving model (default: stored curves); ``metered_from``: warm-up minutes."""
    policy = build_policy(point, p, demand, plans)
    result = simulate(p, demand, policy, serving=serving, metered_from=metered_from)
    return row(point, result, work_bound, bound, p.tiers[p.deferrable])


def meets(r: Mapping[str, Any], targets: Mapping[str, float] = TARGETS) -> bool:
    """IW-F and IW-N at or above their targets, every NIW request on time."""
    for tier, goal in targets.items():
        value = r["niw_on_time"] if tier == "NIW" else r.get(f"{tier}_sla")
        if value is None or value < goal - 1e-9:
            return False
    return True


def frontier(
    rows: Sequence[Mapping[str, Any]], targets: Mapping[str, float] = TARGETS
) -> dict[str, Any]:
    """Per family, its cheapest point (GPU-hours) meeting ``targets``: params, GPU-hours,
    saving against the cheapest reactive point meeting them and against the cheaper of the
    two reactive families' (``saving_vs_reactive_families``), vs_bound; None if none does."""
    best: dict[str, Any] = {}
    for fam in FAMILIES:
        ok = [r for r in rows if r["family"] == fam and meets(r, targets)]
        best[fam] = min(ok, key=lambda r: r["gpu_hours"]) if ok else None
    base = best.get("reactive")
    reactive_family = [best[f] for f in ("reactive", "slo-reactive") if best.get(f)]
    both = min(reactive_family, key=lambda r: r["gpu_hours"]) if reactive_family else None
    out: dict[str, Any] = {}
    for fam, r in best.items():
        if not any(x["family"] == fam for x in rows):
            continue
        if r is None:
            out[fam] = None
            continue
        out[fam] = {
            "policy": r["policy"],
            "params": r["params"],
            "gpu_hours": r["gpu_hours"],
            "saving_vs_reactive": round(1 - r["gpu_hours"] / base["gpu_hours"], 4)
            if base
            else None,
            # issue #15's measure: against the cheaper of both reactive families' best points
            "saving_vs_reactive_families": round(1 - r["gpu_hours"] / both["gpu_hours"], 4)
            if both
            else None,
            "vs_bound": r["vs_bound"],
            "vs_work_bound": r["vs_work_bound"],
            "vs_attainment_bound": r.get("vs_attainment_bound"),
            "utilisation": r["utilisation"],
        }
    return out


def with_attainment_bound(rows: Sequence[dict[str, Any]], gpu_hours: float) -> None:
    """Each row's GPU-hours over the bound at per-window attainment
    (``planner.sim.attainment_bound``), as ``vs_attainment_bound`` (in place)."""
    for r in rows:
        r["vs_attainment_bound"] = round(r["gpu_hours"] / gpu_hours, 4) if gpu_hours else None


def floors(cfg: FleetConfig, p: FleetParams) -> Array:
    """[r, m]: each model's availability floor (``min_instances``) where it is offered."""
    out = np.zeros((len(p.regions), len(p.models)))
    for i, m in enumerate(p.models):
        model = cfg.model(m)
        for a, r in enumerate(p.regions):
            if model.regions is None or r in model.regions:
                out[a, i] = model.min_instances
    return out


def references(
    cfg: FleetConfig, p: FleetParams, demand: MinuteDemand, serving: ServingModel | None = None
) -> tuple[float, Clairvoyant]:
    """The work bound at the SLA targets' misses (at the throughput the replay serves, so it
    stays a lower bound on it), and the clairvoyant fleet on the same serving model, each
    interactive tier at its SLA target every minute."""
    serving = serving or default_serving(p, demand)
    miss = {k: 1.0 - TARGETS.get(k, 1.0) for k in p.tiers}
    served = replace(p, theta=serving.theta)
    clair = clairvoyant_fleet(p, demand, floors(cfg, p), serving, TARGETS)
    return work_bound(served, demand, miss), clair


def on_clairvoyant_types(
    cfg: FleetConfig, p: FleetParams, history: MinuteDemand, serving: ServingModel
) -> FleetParams:
    """``p`` with each region's and model's preferred VM type (the one the reactive,
    SLO-aware and siloed policies and LT-R's reactive layer scale on) set to the type the
    clairvoyant fleet picks for ``history`` on the calibrated serving model: the cheapest over
    that window among the types whose latency curves can meet the targets
    (``planner.sim.bounds``). ``history`` is the demand *before* the replayed window (the
    choice an operator makes from the last day), so no policy's type sees the window. The
    config's rule (lowest $ per token) would put Llama-2-70B on A100, where the IW-F curve
    never reaches 99 %: no reactive point could meet the targets there."""
    clair = clairvoyant_fleet(p, history, floors(cfg, p), serving, TARGETS)
    return replace(p, preferred=clair.vm_types)
