"""The sweep's frontier as a markdown table and plots (GPU-hours against IW-F and IW-N
attainment, one curve per family: each family's lower-left envelope)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from reports.plotting import save

FAMILY_ORDER = ("reactive", "slo-reactive", "plan", "siloed")


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def frontier_markdown(frontier: Mapping[str, Any], references: Mapping[str, float]) -> str:
    """Per family the cheapest point meeting the targets, with its saving and ratios."""
    lines = [
        "| family | cheapest point meeting IW-F ≥ 99 %, IW-N ≥ 99 %, NIW on time | GPU-h "
        "| vs reactive | vs clairvoyant | vs work bound | GPU utilisation |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fam in FAMILY_ORDER:
        if fam not in frontier:
            continue
        r = frontier[fam]
        if r is None:
            lines.append(f"| {fam} | none meets the targets | | | | | |")
            continue
        saving = r["saving_vs_reactive"]
        vs = "" if saving is None or fam == "reactive" else f"{-100 * saving:+.1f} %"
        lines.append(
            f"| {fam} | {_params(r['params'])} | {r['gpu_hours']:,.0f} | {vs} "
            f"| {r['vs_bound']:.2f} | {r['vs_work_bound']:.2f} | {100 * r['utilisation']:.0f} % |"
        )
    lines.append("")
    lines.append(
        f"References: clairvoyant fleet {references['clairvoyant_gpu_hours']:,.0f} GPU-h "
        f"(of which availability floors {references['floor_gpu_hours']:,.0f}), work bound "
        f"{references['work_bound_gpu_hours']:,.0f} GPU-h."
    )
    return "\n".join(lines)


def _envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (fewer misses, fewer GPU-hours), sorted
    by misses."""
    best: list[tuple[float, float]] = []
    for miss, gpu in sorted(points):
        if not best or gpu < best[-1][1]:
            best.append((miss, gpu))
    return best


FLOOR_MISS = 1e-3  # % of requests: points that missed none are drawn here (log axis)


def write_frontier_plots(
    rows: Sequence[Mapping[str, Any]], references: Mapping[str, float], out: Path
) -> dict[str, Path]:
    """Per interactive tier: GPU-hours against the share of requests missing the tier's
    target (log axis, so 1 % and 0.01 % are both readable), each family's points and its
    frontier, the clairvoyant fleet and the work bound as lines, the 1 % target marked."""
    paths: dict[str, Path] = {}
    for tier in ("IW-F", "IW-N"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for fam in FAMILY_ORDER:
            pts = [
                (max(100 * (1 - float(r[f"{tier}_sla"])), FLOOR_MISS), float(r["gpu_hours"]))
                for r in rows
                if r["family"] == fam
            ]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            sc = ax.scatter(xs, ys, s=14, alpha=0.45)
            env = _envelope(pts)
            colour = sc.get_facecolor()[0]
            ax.plot([e[0] for e in env], [e[1] for e in env], color=colour, label=fam, lw=1.5)
        ax.axhline(references["clairvoyant_gpu_hours"], ls="--", c="k", lw=0.8, label="clairvoyant")
        ax.axhline(references["work_bound_gpu_hours"], ls=":", c="k", lw=0.8, label="work bound")
        ax.axvline(1.0, ls="-", c="grey", lw=0.6)
        ax.set_xscale("log")
        ax.set_xlabel(f"{tier} requests missing their target (%, log; {FLOOR_MISS:g} = none)")
        ax.set_ylabel("GPU-hours")
        ax.set_ylim(bottom=0)
        ax.set_title(f"GPU-hours against {tier} misses (lines: each family's frontier)")
        ax.legend(fontsize=7)
        paths[f"frontier_{tier}_png"] = save(fig, out / f"frontier_{tier.lower()}.png")
    return paths
