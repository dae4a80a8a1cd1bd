"""The plan report for ops, per plan hour: static HTML with PNG plots (VMs per region over the
horizon, the largest series' forecast band against recent actuals, routing flows)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from reports.plotting import save, write_text


def _vms_plot(plan: Any, folder: Path) -> Path:
    vms = plan.vms.assign(total=plan.vms["on_demand"] + plan.vms["spot"])
    regions = sorted(vms["region"].unique())
    fig, axes = plt.subplots(1, len(regions), figsize=(4 * len(regions), 3), squeeze=False)
    for ax, region in zip(axes[0], regions, strict=True):
        sel = vms[vms["region"] == region]
        for vm_type, part in sel.groupby("vm_type"):
            ax.step(part["hour"], part["on_demand"], where="post", label=f"{vm_type} on-demand")
            if part["spot"].any():
                ax.step(part["hour"], part["spot"], where="post", ls="--", label=f"{vm_type} spot")
        ax.set_title(region)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes[0][0].set_ylabel("VMs")
    axes[0][0].legend(fontsize=7)
    return save(fig, folder / "vms.png")


def _forecast_plot(recent: pd.DataFrame, forecasts: pd.DataFrame, folder: Path) -> Path | None:
    sel = forecasts[forecasts["metric"] == "token_rate"]
    if sel.empty or recent.empty:
        return None
    keys = ["region", "model", "tier"]
    largest = sel.groupby(keys)["point"].sum().idxmax()
    f = sel.set_index(keys).loc[largest].sort_values("hour")
    a = (
        recent.set_index(keys).loc[[largest]].sort_values("hour")
        if largest in recent.set_index(keys).index
        else recent.iloc[0:0]
    )
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(pd.to_datetime(a["hour"]), a["token_rate"], color="k", label="actual")
    ax.plot(pd.to_datetime(f["hour"]), f["point"], label="forecast")
    ax.fill_between(pd.to_datetime(f["hour"]), f["q_0_05"], f["q_0_95"], alpha=0.3, label="p5-p95")
    ax.set_title(" / ".join(largest) + ": mean token rate (tokens/s)")
    ax.legend(fontsize=7)
    return save(fig, folder / "forecast.png")


def _routing_plot(plan: Any, folder: Path) -> Path | None:
    first = plan.routing[(plan.routing["hour"] == plan.start)]
    cross = first[first["source_region"] != first["target_region"]]
    fig, ax = plt.subplots(figsize=(8, 3))
    if cross.empty:
        ax.text(0.5, 0.5, "no cross-region routing in the first hour", ha="center")
        ax.axis("off")
    else:
        labels = [
            f"{r.source_region}→{r.target_region} {r.model} {r.tier}" for r in cross.itertuples()
        ]
        ax.barh(labels, cross["weight"])
        ax.set_xlabel("share of the source region's demand")
        ax.tick_params(axis="y", labelsize=6)
    return save(fig, folder / "routing.png")


def write_plan_report(
    plan: Any, recent: pd.DataFrame, forecasts: pd.DataFrame, folder: Path
) -> Path:
    """``folder/report.html`` with its PNGs; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    images = [
        p
        for p in (
            _vms_plot(plan, folder),
            _forecast_plot(recent, forecasts, folder),
            _routing_plot(plan, folder),
        )
        if p is not None
    ]
    s = plan.summary()
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in s.items()
    )
    first = plan.actions[plan.actions["hour"] == plan.start]
    body = (
        f"<h1>Plan {html.escape(s['plan_id'])}</h1><table>{rows}</table>"
        "<h2>Actions for the first hour</h2>"
        + first.to_html(index=False, border=0)
        + "".join(f'<h2>{p.stem}</h2><img src="{p.name}" alt="{p.stem}">' for p in images)
    )
    return write_text(
        folder / "report.html",
        f"<!doctype html><html><head><meta charset='utf-8'><title>{s['plan_id']}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        f"</style></head><body>{body}</body></html>",
    )
