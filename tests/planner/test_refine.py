"""The refinement of each family's best point (planner.sim.refine): never worse than the coarse
best, the same rule and the same number of added points for every family, the grid's own
derivation rules kept. Rows come from a made-up cost over the real grids (no replay)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from planner.sim.refine import STEPS, group, refine
from planner.sim.sweep import (
    Point,
    frontier,
    grid,
    layer_grid,
    plan_grid,
    ramp_grid,
    slo_levels,
)

Cost = Callable[[Point], tuple[float, bool]]


def row(pt: Point, cost: Cost) -> dict[str, Any]:
    gpu, ok = cost(pt)
    sla = 0.995 if ok else 0.98
    return {
        "policy": pt.label,
        "family": pt.family,
        "params": dict(pt.params),
        "gpu_hours": gpu,
        "IW-F_sla": sla,
        "IW-N_sla": sla,
        "niw_on_time": 1.0,
        "vs_bound": 1.0,
        "vs_work_bound": 1.0,
        "utilisation": 0.5,
    }


def hot_is_cheap(limit: float) -> Cost:
    """Hotter pools cost less; the targets are met up to ``limit`` of target pressure (or of
    the plan's ``ahead`` over 1)."""

    def cost(pt: Point) -> tuple[float, bool]:
        x = float(pt.params.get("target", pt.params.get("ahead", 1.0) - 1.0))
        extra = 3.0 * float(pt.params.get("cooldown_in_min", 0)) / 180 + float(
            "niw_cap" not in pt.params
        )
        return 1000.0 * (1.0 - x) + extra, x <= limit + 1e-9

    return cost


def every_point() -> list[Point]:
    return grid(["reactive", "slo-reactive"], [0.5]) + plan_grid([0.5], slo_layer=True)


def refined_rows(cost: Cost) -> tuple[list[dict[str, Any]], list[Point]]:
    coarse = [row(pt, cost) for pt in every_point()]
    return coarse, refine(coarse)


@pytest.mark.parametrize("limit", [0.05, 0.12, 0.43, 0.61, 0.9])
def test_the_refined_best_is_never_dearer_than_the_coarse_best(limit: float) -> None:
    cost = hot_is_cheap(limit)
    coarse, added = refined_rows(cost)
    before = frontier(coarse)
    after = frontier(coarse + [row(pt, cost) for pt in added])
    for fam, best in before.items():
        if best is None:
            assert after[fam] is None or after[fam]["gpu_hours"] > 0
            continue
        assert after[fam]["gpu_hours"] <= best["gpu_hours"]


def test_a_best_point_between_grid_steps_is_found() -> None:
    """Met up to target 0.43: the coarse grid stops at 0.4, the refinement reaches 0.425 for
    the SLO-aware scaler and for the plan family alike."""
    cost = hot_is_cheap(0.43)
    coarse, added = refined_rows(cost)
    after = frontier(coarse + [row(pt, cost) for pt in added])
    assert frontier(coarse)["slo-reactive"]["params"]["target"] == 0.4
    assert after["slo-reactive"]["params"]["target"] == 0.425
    assert after["plan"]["params"]["target"] == 0.425


@pytest.mark.parametrize(("limit", "each"), [(0.43, 2 * len(STEPS)), (0.9, len(STEPS))])
def test_every_family_gets_the_same_number_of_points(limit: float, each: int) -> None:
    """An interior best point: ½ and ¼ of the way to both neighbours; at the grid's top edge
    (target 0.9): to the lower neighbour only. The same for every family and plan mode."""
    pts = [
        pt
        for pt in grid(["slo-reactive"], [0.5]) + layer_grid([0.5]) + ramp_grid([0.5])
        if "niw_cap" not in pt.params
    ]
    coarse = [row(pt, hot_is_cheap(limit)) for pt in pts]
    counts = Counter(pt.family for pt in refine(coarse))
    assert counts == {"slo-reactive": each, "plan": each}
    assert len({group(pt.family, pt.params) for pt in refine(coarse)}) == 2


def test_the_plan_family_gets_no_more_points_than_a_baseline() -> None:
    """The plan family has several modes with a continuous dial (LT-UA, LT-R, LT-R at the SLO
    dials, LT-F): only the mode holding its cheapest point is refined, so its best point is
    not the minimum over more draws than a baseline's."""
    counts = Counter(pt.family for pt in refined_rows(hot_is_cheap(0.43))[1])
    assert counts == {
        "reactive": 2 * len(STEPS),
        "slo-reactive": 2 * len(STEPS),
        "plan": 2 * len(STEPS),
    }


def test_refined_slo_points_keep_the_grid_rules() -> None:
    """Scale-out and scale-in follow the target as in the grid (+0.1 capped, or 1.0 on
    queueing only; 0.7 ×); every other dial is the group's best point's."""
    cost = hot_is_cheap(0.43)
    coarse, added = refined_rows(cost)
    slo = [pt for pt in added if "up" in pt.params and pt.family != "reactive"]
    groups = {group(pt.family, pt.params) for pt in slo}
    assert "slo-reactive" in groups and len(groups) == 2  # and the plan family's best mode

    def others(params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in ("target", "up", "down")}

    for g in groups:
        mine = [r for r in coarse if group(r["family"], r["params"]) == g]
        best = frontier(mine)[mine[0]["family"]]["params"]
        for pt in [pt for pt in slo if group(pt.family, pt.params) == g]:
            t = pt.params["target"]
            assert pt.params["up"] == round(min(t + 0.1, 0.98), 4) != best["up"]
            assert pt.params["down"] == round(0.7 * t, 4)
            assert others(dict(pt.params)) == others(best)
    targets = sorted({pt.params["target"] for pt in slo if pt.family == "slo-reactive"})
    assert targets == [0.35, 0.375, 0.425, 0.45]
    assert slo_levels(0.425, queue_only=True) == {"target": 0.425, "up": 1.0, "down": 0.2975}


def test_refined_reactive_levels_lie_between_the_grid_levels() -> None:
    """The reactive levels are interpolated (every threshold between the best level's and
    its neighbour's), its cooldowns and NIW cap kept."""
    cost = hot_is_cheap(0.43)
    coarse, added = refined_rows(cost)
    best = frontier(coarse)["reactive"]["params"]
    mine = [pt.params for pt in added if pt.family == "reactive"]
    assert len(mine) == 2 * len(STEPS)
    levels = {
        (r["params"]["up"], r["params"]["target"], r["params"]["down"])
        for r in coarse
        if r["family"] == "reactive"
    }
    lo = max(lv for lv in levels if lv < (best["up"], best["target"], best["down"]))
    hi = min(lv for lv in levels if lv > (best["up"], best["target"], best["down"]))
    for p in mine:
        assert p["cooldown_in_min"] == best["cooldown_in_min"]
        assert p.get("niw_cap") == best.get("niw_cap")
        for i, key in enumerate(("up", "target", "down")):
            assert min(lo[i], best[key]) <= p[key] <= max(hi[i], best[key])
        assert p["up"] > p["target"] > p["down"]


def test_modes_without_a_continuous_dial_and_unmet_families_add_nothing() -> None:
    pts = [Point("plan", {"quantile": 0.5, "mode": m}) for m in ("lt-i", "lt-u")]
    assert refine([row(pt, lambda _: (10.0, True)) for pt in pts]) == []
    slo = grid(["slo-reactive"], [0.5])
    assert refine([row(pt, lambda _: (10.0, False)) for pt in slo]) == []
