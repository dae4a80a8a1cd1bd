"""The printed tables of ``bench/levers.py``: per variant each family's cheapest point meeting
the targets, and the plan family's best point per mode."""

from __future__ import annotations

from typing import Any

from flows.plan_variants import plan_kind
from planner.sim.sweep import frontier


def print_frontiers(out: dict[str, Any], names: list[str]) -> None:
    """Per variant the plan family's cheapest point meeting the targets (the reactive
    families' once) against the reactive families, the clairvoyant fleet and the bound."""
    print(f"window {out['window'][0]} .. {out['window'][1]}; references {out['references']}")
    for v, fr in out["frontier"].items():
        for fam, best in fr.items():
            if fam != "plan" and v != names[0]:
                continue
            label = f"plan[{v}]" if fam == "plan" else fam
            if best is None:
                print(f"{label:24s} none meets the targets")
                continue
            print(
                f"{label:24s} {best['gpu_hours']:>10,.0f} GPU-h  vs reactive families "
                f"{-100 * (best['saving_vs_reactive_families'] or 0):+.1f} %  vs clairvoyant "
                f"{best['vs_bound']:.2f}  vs attainment bound {best['vs_attainment_bound']:.2f}"
                f"  util {best['utilisation']:.2f}  {best['policy']}"
            )


def print_plan_modes(rows: list[dict[str, Any]], names: list[str]) -> None:
    """Per variant the plan family's highest attainment (met or not) and its best point per
    plan mode (LT-R with the SLO dials apart)."""
    base_rows = [r for r in rows if r["family"] != "plan"]
    for v in names:
        mine = [r for r in rows if r.get("variant") == v]
        top = max(mine, key=lambda r: (r["IW-F_sla"] + r["IW-N_sla"], -r["gpu_hours"]))
        print(
            f"plan[{v}] highest attainment: IW-F {top['IW-F_sla']:.4f} IW-N {top['IW-N_sla']:.4f}"
            f" NIW {top['niw_on_time']:.4f} at {top['gpu_hours']:,.0f} GPU-h ({top['policy']})"
        )
    for v in names:
        for kind in ("lt-i", "lt-u", "lt-ua", "lt-r", "lt-r+slo-dials", "lt-f"):
            mine = [r for r in rows if r.get("variant") == v and plan_kind(r) == kind]
            best = frontier(base_rows + mine).get("plan")
            text = "none meets" if best is None else f"{best['gpu_hours']:,.0f} GPU-h"
            extra = "" if best is None else f" ({best['policy']})"
            print(f"plan[{v}] {kind:15s} {text}{extra}")
