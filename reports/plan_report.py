"""The plan report for ops, per plan hour: static HTML with PNG plots (VMs per region over the
horizon, the largest series' forecast band against recent actuals, routing flows)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from reports.operator import OperatorView
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
    if forecasts.empty or recent.empty:
        return None
    sel = forecasts[forecasts["metric"] == "token_rate"]
    if sel.empty:
        return None
    keys = ["region", "model", "tier"]
    largest: tuple[str, str, str] = sel.groupby(keys)["point"].sum().idxmax()  # type: ignore[assignment]
    f = sel.set_index(keys).loc[[largest]].sort_values("hour")
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


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#1d2433;max-width:1400px}
h1{font-size:1.4em;margin-bottom:.2em}
h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #d0d7e2;border-radius:6px;padding:.6em .9em;min-width:14em;flex:1}
.card b{display:block;font-size:.75em;text-transform:uppercase;color:#5a6478}
.card.bad{border-color:#c62828;background:#fdecea}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
td,th{padding:3px 9px;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f3f5f9} .note{color:#5a6478;font-size:.85em} img{max-width:100%}
"""


def _is_bad(label: str, value: str) -> bool:
    return (
        (label == "SLA risk" and not value.startswith("none"))
        or (label == "data quality" and value.startswith("FAILED"))
        or (label == "verified" and value != "yes")
    )


def _html_table(frame: pd.DataFrame, empty: str) -> str:
    if frame.empty:
        return f"<p class='note'>{html.escape(empty)}</p>"
    return frame.to_html(index=False, border=0, escape=True)


def write_plan_report(
    view: OperatorView, plan: Any, recent: pd.DataFrame, forecasts: pd.DataFrame, folder: Path
) -> Path:
    """``folder/report.html`` (the plan's operator page) with its PNGs; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    band = _forecast_plot(recent, forecasts, folder)
    vms = _vms_plot(plan, folder)
    routing = _routing_plot(plan, folder)
    cards = "".join(
        f"<div class='card{' bad' if _is_bad(k, v) else ''}'><b>{html.escape(k)}</b>"
        f"{html.escape(v)}</div>"
        for k, v in view.headline
    )
    sections = [
        f"<h1>{html.escape(view.title)}</h1><div class='cards' id='headline'>{cards}</div>",
        "<h2 id='actions'>Next hour's actions (start before the next plan)</h2>",
        _html_table(view.actions, "No action to start before the next plan: keep the fleet."),
        "<h2 id='fleet'>Fleet: VMs now → next hour, per region and VM type</h2>",
        _html_table(view.fleet, "No VMs planned."),
        "<h2>VMs over the horizon</h2>" + f'<img src="{vms.name}" alt="VMs per region">',
        "<h2 id='versus'>Demand in the last hour vs its forecast</h2>",
        _html_table(view.versus, "No demand measured for the last hour."),
        "<h2 id='band'>Forecast band vs actuals (largest series)</h2>",
        f'<img src="{band.name}" alt="forecast band">' if band else "<p class='note'>no data</p>",
        "<h2 id='niw'>NIW schedule</h2>",
        _html_table(view.niw, "No NIW demand in the plan."),
        "<h2 id='routing'>Routing per hour</h2>",
        _html_table(view.routing, "No routing."),
        f'<img src="{routing.name}" alt="routing">' if routing else "",
        "".join(f"<p class='note'>{html.escape(n)}</p>" for n in view.notes),
        "<p class='note'>Times are UTC. Plan files: <a href='../../plans/'>plans/</a>; "
        "<a href='../'>all plan pages</a>.</p>",
    ]
    return write_text(
        folder / "report.html",
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(view.plan_id)}"
        f"</title><style>{CSS}</style></head><body>{''.join(sections)}</body></html>",
    )
