"""The policy comparison as plots and a markdown table (values in, files out)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from reports.plotting import save


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table of ``frame`` (floats to 4 significant digits)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|")  # a | inside a cell would end it

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def write_plots(results: Sequence[Any], out: Path) -> dict[str, Path]:
    """GPUs over time per policy; instances per model and region; SLA attainment per tier.
    ``results``: planner.sim.fluid.SimResult values."""
    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in results:
        hourly = r.timeline.set_index("minute")["gpus"].resample("1h").mean()
        ax.plot(hourly.index, hourly.to_numpy(), label=f"{r.policy} ({r.gpu_hours:,.0f} GPU-h)")
    ax.set_ylabel("GPUs allocated (hourly mean)")
    ax.set_title("GPU allocation over time per policy")
    ax.legend(fontsize=7)
    paths["gpus_png"] = save(fig, out / "gpus_over_time.png")

    models = sorted({m for r in results for m in r.instances["model"].unique()})
    regions = sorted({g for r in results for g in r.instances["region"].unique()})
    fig, axes = plt.subplots(
        len(models), len(regions), figsize=(4 * len(regions), 2.2 * len(models)), squeeze=False
    )
    for i, m in enumerate(models):
        for j, g in enumerate(regions):
            ax = axes[i][j]
            for r in results:
                sel = r.instances[(r.instances["model"] == m) & (r.instances["region"] == g)]
                ax.plot(sel["hour"], sel["instances"], label=r.policy)
            ax.set_title(f"{m} in {g}", fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("serving instances per model and region (hourly mean)")
    paths["instances_png"] = save(fig, out / "instances.png")

    tiers = list(results[0].tiers) if results else []
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(len(results), 1)
    for n, r in enumerate(results):
        xs = [t + n * width for t in range(len(tiers))]
        ax.bar(xs, [100 * r.tiers[k].sla_attainment for k in tiers], width, label=r.policy)
    ax.set_xticks([t + 0.4 - width / 2 for t in range(len(tiers))], tiers)
    ax.set_ylabel("SLA attainment (%)")
    ax.set_ylim(0, 101)
    ax.legend(fontsize=7)
    paths["sla_png"] = save(fig, out / "sla.png")
    return paths
