"""Workload characterisation, as the SageServe paper reports it for O365: daily and weekly
profiles per region (in UTC and local time, so the time-zone shift shows), per model and tier,
peak-to-mean ratios, the interactive share over the day, token-length distributions, and the
series that are hardest to forecast. The forecaster's choices should be explainable from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from reports.plotting import plt, save, write_text


def _local(hours: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(hours).dt.tz_localize("UTC").dt.tz_convert(ZoneInfo(tz))


def hour_of_day_profiles(demand: pd.DataFrame, timezones: dict[str, str]) -> pd.DataFrame:
    """Mean token rate by hour of day per region, UTC and local (columns: region, clock)."""
    d = demand[demand["coverage"] > 0]
    total = d.groupby(["hour", "region"], as_index=False)["token_rate"].sum()
    parts = {}
    for region, g in total.groupby("region"):
        utc = pd.to_datetime(g["hour"]).dt.hour
        local = _local(g["hour"], timezones[str(region)]).dt.hour
        parts[(region, "UTC")] = g.groupby(utc.to_numpy())["token_rate"].mean()
        parts[(region, "local")] = g.groupby(local.to_numpy())["token_rate"].mean()
    return pd.DataFrame(parts).reindex(range(24))


def day_of_week_profiles(demand: pd.DataFrame, timezones: dict[str, str]) -> pd.DataFrame:
    d = demand[demand["coverage"] > 0]
    out = {}
    for tier, g in d.groupby("tier"):
        daily = []
        for region, gr in g.groupby("region"):
            dow = _local(gr["hour"], timezones[str(region)]).dt.dayofweek.to_numpy()
            daily.append(gr.groupby(dow)["token_rate"].sum())
        out[tier] = pd.concat(daily, axis=1).sum(axis=1)
    frame = pd.DataFrame(out).reindex(range(7))
    return frame / frame.mean()


def peak_to_mean(demand: pd.DataFrame) -> pd.DataFrame:
    d = demand[demand["coverage"] > 0]
    g = d.groupby(["region", "model", "tier"])
    out = pd.DataFrame(
        {
            "mean_token_rate": g["token_rate"].mean(),
            "p95_hour_token_rate": g["token_rate"].quantile(0.95),
            "peak_minute_p95": g["peak_minute_token_rate"].quantile(0.95),
        }
    )
    out["peak_minute_to_mean"] = g["peak_minute_token_rate"].mean() / out["mean_token_rate"]
    out["daily_peak_to_mean"] = out["p95_hour_token_rate"] / out["mean_token_rate"]
    return out.reset_index()


def interactive_share(
    demand: pd.DataFrame, timezones: dict[str, str], kinds: dict[str, str]
) -> pd.DataFrame:
    d = demand[demand["coverage"] > 0].copy()
    d["interactive"] = d["tier"].map(kinds).eq("interactive")
    rows = {}
    for region, g in d.groupby("region"):
        local = _local(g["hour"], timezones[str(region)]).dt.hour.to_numpy()
        tot = g.groupby(local)["token_rate"].sum()
        inter = g[g["interactive"]].groupby(local[g["interactive"].to_numpy()])["token_rate"].sum()
        rows[region] = (inter / tot).reindex(range(24))
    return pd.DataFrame(rows)


def write_report(
    demand: pd.DataFrame,
    tokens: pd.DataFrame,
    histogram: pd.DataFrame,
    hardest: pd.DataFrame,
    timezones: dict[str, str],
    kinds: dict[str, str],
    out_dir: Path,
) -> dict[str, Any]:
    """``characterization.md`` and its PNGs under ``out_dir``; returns the key figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hod = hour_of_day_profiles(demand, timezones)
    dow = day_of_week_profiles(demand, timezones)
    ptm = peak_to_mean(demand)
    share = interactive_share(demand, timezones, kinds)
    plots = {
        "hour_of_day": _plot_hod(hod, out_dir / "hour_of_day_by_region.png"),
        "day_of_week": _plot_dow(dow, out_dir / "day_of_week_by_tier.png"),
        "model_tier": _plot_model_tier(demand, out_dir / "hour_of_day_by_model_tier.png"),
        "interactive_share": _plot_share(share, out_dir / "interactive_share_by_hour.png"),
        "tokens": _plot_tokens(histogram, out_dir / "token_lengths.png"),
    }
    peaks_utc = {r: int(hod[(r, "UTC")].idxmax()) for r in timezones if (r, "UTC") in hod}
    peaks_local = {r: int(hod[(r, "local")].idxmax()) for r in timezones if (r, "local") in hod}
    figures = {
        "hours": int(demand["hour"].nunique()),
        "series": int(demand.groupby(["region", "model", "tier"]).ngroups),
        "peak_hour_utc": peaks_utc,
        "peak_hour_local": peaks_local,
        "weekend_vs_weekday": {
            t: float(dow[t].iloc[5:].mean() / dow[t].iloc[:5].mean()) for t in dow.columns
        },
        "peak_minute_to_mean_median": float(ptm["peak_minute_to_mean"].median()),
        "interactive_share_min_max": {
            r: [float(share[r].min()), float(share[r].max())] for r in share.columns
        },
        "hardest_series": hardest.head(5)[["series", "forecaster", "mase"]].to_dict("records")
        if not hardest.empty
        else [],
    }
    _write_markdown(out_dir, figures, ptm, tokens, hardest, plots)
    figures["report"] = str(out_dir / "characterization.md")
    figures["plots"] = {k: str(v) for k, v in plots.items()}
    return figures


def _plot_hod(hod: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5), sharey=True)
    for ax, clock in zip(axes, ("UTC", "local"), strict=True):
        for region in hod.columns.get_level_values(0).unique():
            ax.plot(hod.index, hod[(region, clock)], marker=".", label=region)
        ax.set_title(f"mean token rate by hour of day ({clock} time)")
        ax.set_xlabel(f"hour ({clock})")
    axes[0].set_ylabel("tokens/s")
    axes[1].legend()
    return save(fig, path)


def _plot_dow(dow: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3))
    dow.index = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    dow.plot(ax=ax, marker="o")
    ax.set_title("day-of-week profile per tier (local days, 1 = weekly mean)")
    return save(fig, path)


def _plot_model_tier(demand: pd.DataFrame, path: Path) -> Path:
    d = demand[demand["coverage"] > 0]
    hod = (
        d.assign(h=pd.to_datetime(d["hour"]).dt.hour)
        .groupby(["model", "tier", "h"])["token_rate"]
        .sum()
        .unstack(["model", "tier"])
    )
    pairs = cast("list[tuple[str, str]]", list(hod.columns))
    models = sorted({m for m, _ in pairs})
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3), sharex=True)
    for ax, model in zip(np.atleast_1d(axes), models, strict=True):
        for m, tier in pairs:
            if m == model:
                ax.plot(hod.index, hod[(m, tier)] / hod[(m, tier)].mean(), label=tier)
        ax.set_title(model)
        ax.set_xlabel("hour (UTC)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("hour-of-day shape per model and tier (1 = daily mean)")
    return save(fig, path)


def _plot_share(share: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3))
    share.plot(ax=ax, marker=".")
    ax.set_ylim(0, 1)
    ax.set_title("interactive share of tokens by local hour")
    ax.set_xlabel("hour (local)")
    return save(fig, path)


def _plot_tokens(histogram: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    for ax, kind in zip(axes, ("input", "output"), strict=True):
        h = histogram[histogram["kind"] == kind]
        for (model, tier), g in h.groupby(["model", "tier"]):
            share = g["requests"] / g["requests"].sum()
            ax.plot(2 ** g["bucket"], share, marker=".", label=f"{model} {tier}", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{kind} tokens per request (share per power-of-two bucket)")
    axes[1].legend(fontsize=6, ncol=2)
    return save(fig, path)


_REPORT = """\
# Workload characterisation

{series} series (region × model × tier) over {hours} hours.

## Daily cycles and time zones

Busiest hour per region, UTC: {peak_hour_utc}; local: {peak_hour_local}. The local peaks line up \
while the UTC peaks are shifted by the time zones: one region's trough is another's peak, which \
is what cross-region routing of tolerant tiers exploits.

![hour of day]({hour_of_day})
![model and tier]({model_tier})

## Weekly cycle

Weekend / weekday volume per tier: {weekend}. A weekly cycle is why seasonal naive at one week \
and MSTL (daily + weekly) are candidates once two weeks of history exist.

![day of week]({day_of_week})

## Interactive vs non-interactive over the day

![interactive share]({interactive_share})

## Peak-to-mean

Capacity must absorb the busiest minute, not the hourly mean; the planner sizes
interactive tiers on the forecast peak minute. Median peak-minute / mean ratio: \
{peak_minute_to_mean_median:.2f}.

| region | model | tier | mean tok/s | p95 hour / mean | peak minute / mean |
|---|---|---|---:|---:|---:|
{peaks}
## Token lengths

| model | tier | requests | input mean | input p10/p50/p90/p99 | output mean | \
output p10/p50/p90/p99 |
|---|---|---:|---:|---|---:|---|
{lengths}
![token lengths]({tokens})

## Hardest to forecast

{hardest}
"""


def _write_markdown(
    out_dir: Path,
    figures: dict[str, Any],
    ptm: pd.DataFrame,
    tokens: pd.DataFrame,
    hardest: pd.DataFrame,
    plots: dict[str, Path],
) -> None:
    """``characterization.md``: :data:`_REPORT` with the figures, tables and plots."""
    peaks = [
        f"| {r.region} | {r.model} | {r.tier} | {r.mean_token_rate:,.0f} | "
        f"{r.daily_peak_to_mean:.2f} | {r.peak_minute_to_mean:.2f} |\n"
        for r in ptm.itertuples()
    ]
    summary: list[Any] = list(tokens.itertuples())  # input_q/output_q hold lists
    lengths = [
        f"| {row.model} | {row.tier} | {row.requests:,} | {row.input_mean:,.0f} | "
        f"{'/'.join(f'{v:,.0f}' for v in row.input_q)} | {row.output_mean:,.0f} | "
        f"{'/'.join(f'{v:,.0f}' for v in row.output_q)} |\n"
        for row in summary
    ]
    text = _REPORT.format(
        **figures,
        weekend=", ".join(f"{t}: {v:.2f}" for t, v in figures["weekend_vs_weekday"].items()),
        peaks="".join(peaks),
        lengths="".join(lengths),
        hardest=_hardest_table(hardest),
        **{name: path.name for name, path in plots.items()},
    )
    write_text(out_dir / "characterization.md", text)


def _hardest_table(hardest: pd.DataFrame) -> str:
    """The ten series with the highest MASE of their chosen forecaster."""
    if hardest.empty:
        return "No model selection has run yet (`sageserve backtest`)."
    rows = [
        f"| {str(r.series).replace('|', chr(92) + '|')} | {r.forecaster} | {r.mase:.3f} | "
        f"{r.band95_coverage:.1%} |"
        for r in hardest.head(10).itertuples()
    ]
    head = ["| series | chosen forecaster | MASE | 95 % band coverage |", "|---|---|---:|---:|"]
    return "\n".join(head + rows)
