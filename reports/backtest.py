"""The backtest report: per-series and aggregate scores, and a plot of actual vs forecast with
the quantile band over the backtest folds of the largest series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from planner.forecast.horizon import by_horizon, lead_definitions
from planner.forecast.pipeline import Selection
from planner.forecast.select import summary
from reports.plotting import plt, save, write_text


def aggregate(selection: Selection) -> dict[str, Any]:
    """Headline figures: the deployed choice vs seasonal naive, per metric and overall, and
    each candidate's mean relative skill."""
    deployed = selection.deployed
    out: dict[str, Any] = {"overall": summary(deployed), "by_metric": {}}
    if not deployed.empty:
        metric = deployed["series"].str.rsplit("|", n=1).str[1]
        for name, group in deployed.groupby(metric):
            out["by_metric"][name] = summary(group)
    folds = selection.folds
    # per metric and lead (1, 6, 24 h and the 1-24 pool): deployed choice vs both baselines
    out["by_horizon"] = by_horizon(selection.hours, folds, deployed)
    out["by_horizon_leads"] = lead_definitions(selection.nowcast_minutes)
    if not folds.empty:
        out["candidates"] = (
            folds.groupby("forecaster")
            .agg(mase=("mase", "mean"), folds=("origin", "size"))
            .round(4)
            .to_dict(orient="index")
        )
        out["chosen"] = selection.chosen["forecaster"].value_counts().to_dict()
    out["origins"] = [str(o) for o in selection.origins]
    return out


def largest_series(selection: Selection, metric: str = "token_rate") -> str | None:
    hours = selection.hours
    if hours.empty:
        return None
    sel = hours[hours["series"].str.endswith(f"|{metric}")]
    if sel.empty:
        sel = hours
    return str(sel.groupby("series")["actual"].mean().idxmax())


def plot_series(selection: Selection, series: str, path: Path) -> Path:
    chosen = selection.chosen.set_index("series").loc[series, "forecaster"]
    rows = selection.hours[
        (selection.hours["series"] == series) & (selection.hours["forecaster"] == chosen)
    ].sort_values(["origin", "hour"])
    fig, ax = plt.subplots(figsize=(12, 4))
    for origin, fold in rows.groupby("origin"):
        first = origin == rows["origin"].iloc[0]
        for lo, hi, alpha, label in (
            ("q_0_025", "q_0_975", 0.15, "95 %"),
            ("q_0_05", "q_0_95", 0.2, "90 %"),
        ):
            ax.fill_between(
                fold["hour"],
                fold[lo],
                fold[hi],
                color="tab:blue",
                alpha=alpha,
                lw=0,
                label=f"{label} band" if first else None,
            )
        ax.plot(
            fold["hour"],
            fold["point"],
            color="tab:blue",
            lw=1.2,
            label="forecast (24 h from each origin)" if first else None,
        )
        ax.axvline(origin, color="grey", lw=0.5, alpha=0.5)
    ax.plot(rows["hour"], rows["actual"], color="black", lw=1, label="actual")
    ax.set_title(f"{series}: {chosen}, rolling-origin backtest (out of sample)")
    ax.set_ylabel("tokens/s" if "token" in series else "requests/s")
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, path)


def write_report(selection: Selection, out_dir: Path) -> dict[str, Any]:
    """``backtest.md``, ``backtest_scores.csv`` and the plot, under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(selection)
    scores = selection.scores()
    scores.to_csv(out_dir / "backtest_scores.csv", index=False)
    if scores.empty:
        write_text(
            out_dir / "backtest.md",
            f"# Forecast backtest at {selection.as_of}\n\nNo backtest folds: the history is "
            "shorter than the minimum training window (3 days). Every series uses the peer "
            "profile or its own level until then.\n",
        )
        return {**agg, "report": str(out_dir / "backtest.md"), "plot": None}
    series = largest_series(selection)
    plot = (
        plot_series(selection, series, out_dir / "backtest_largest_series.png") if series else None
    )
    write_text(out_dir / "backtest.md", _markdown(selection, agg, scores, plot))
    agg["report"] = str(out_dir / "backtest.md")
    agg["plot"] = str(plot) if plot else None
    agg["largest_series"] = series
    return agg


def deployed_rows(agg: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per metric and overall: folds, MASE, seasonal naive's MASE, the improvement, the 95 %
    band's coverage and the share at or below p95, formatted."""
    return [
        (
            name,
            f"{s['folds']:.0f}",
            f"{s['mase']:.3f}",
            f"{s['snaive24_mase']:.3f}",
            f"{s['improvement_vs_snaive24']:.1%}",
            f"{s['band95_coverage']:.1%}",
            f"{s['p95_coverage']:.1%}",
        )
        for name, s in [*agg["by_metric"].items(), ("all", agg["overall"])]
        if s
    ]


def _markdown(
    selection: Selection, agg: dict[str, Any], scores: pd.DataFrame, plot: Path | None
) -> str:
    """``backtest.md``: the deployed choice per metric vs seasonal naive, the candidates, the
    largest series' plot and the hardest series."""
    first = selection.origins[0] if selection.origins else "-"
    last = selection.origins[-1] if selection.origins else "-"
    lines = [
        f"# Forecast backtest at {selection.as_of}",
        "",
        f"Origins: {len(selection.origins)} daily, {first} .. {last}; horizon 24 h; strictly out of"
        " sample (parameters and states from data before each origin).",
        "",
        "## The deployed choice vs seasonal naive",
        "",
        "At every origin the selection rule chooses from earlier folds only; the table scores",
        "those choices on the fold itself (what the daily re-selection would have delivered).",
        "",
        "| metric | folds | MASE | seasonal naive MASE | better by | 95 % band coverage | ≤ p95 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in deployed_rows(agg)]
    lines += [
        "",
        "## Candidates (mean fold MASE)",
        "",
        "| forecaster | MASE | folds |",
        "|---|---:|---:|",
    ]
    for name, c in sorted(agg.get("candidates", {}).items(), key=lambda kv: kv[1]["mase"]):
        lines.append(f"| {name} | {c['mase']:.3f} | {c['folds']} |")
    lines += ["", f"Chosen per series: {agg.get('chosen', {})}", ""]
    if plot:
        lines += [f"![largest series]({plot.name})", ""]
    return "\n".join([*lines, *_hardest(scores)]) + "\n"


def _hardest(scores: pd.DataFrame) -> list[str]:
    """The ten series whose chosen model scores the highest MASE."""
    worst = scores[scores["chosen"]].sort_values("mase", ascending=False).head(10)
    rows = [f"| {r.series} | {r.forecaster} | {r.mase:.3f} |" for r in worst.itertuples()]
    head = ["## Hardest series (chosen model, highest MASE)", "", "| series | forecaster | MASE |"]
    return [*head, "|---|---|---:|", *rows]


__all__ = ["aggregate", "deployed_rows", "plot_series", "write_report"]
