"""Coherent totals measured (``bench/forecast_accuracy.py --reconcile``): the selection on
the additive metrics with region × model and model totals added as series, each node's
deployed forecasts reconciled (:mod:`planner.forecast.reconcile`) and scored per level."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any


def evaluate_reconciliation(
    wh: Path, workers: int = 2, shifts: tuple[int, ...] = (0,)
) -> dict[str, Any]:
    """The selection on the additive metrics with region × model and model totals added as
    series; the deployed base forecasts of every node reconciled (bottom-up, OLS, WLS) per
    origin and lead; MASE per level, lead and method on the same points (scale: each node's
    in-sample seasonal-naive MAE before the origin)."""
    import numpy as np
    import pandas as pd

    from flows.forecasting import load_demand, process_mapper, settings_from_config
    from flows.warehouse.connection import connect
    from planner.config import load_config
    from planner.forecast.horizon import deployed_hours
    from planner.forecast.pipeline import select_models
    from planner.forecast.reconcile import ADDITIVE, METHODS, level_of, reconcile_rows, with_totals

    cfg = load_config()
    settings = settings_from_config(cfg)
    settings = dataclasses.replace(settings, metrics=ADDITIVE)
    frames, origins, walls = [], [], []
    with connect(wh) as con:
        row = con.execute("SELECT max(hour) FROM demand_hourly WHERE coverage > 0").fetchone()
        if row is None or row[0] is None:
            raise SystemExit(f"{wh}: no complete hour of demand to reconcile")
        end = row[0]
        for shift in shifts:
            as_of = pd.Timestamp(end) + pd.Timedelta(hours=1 - shift)
            demand = with_totals(load_demand(con, as_of, settings.history_h))
            started = time.perf_counter()
            sel = select_models(demand, as_of, settings, process_mapper(workers))
            walls.append(time.perf_counter() - started)
            rows = deployed_hours(sel.hours, sel.folds, sel.deployed)
            for method in METHODS:
                rec = reconcile_rows(rows, method)
                rows[f"{method}_err"] = np.abs(rows["actual"] - rec) / rows["scale"]
            frames.append(rows)
            origins += [str(o) for o in rows["origin"].unique()]
    rows = pd.concat(frames, ignore_index=True)
    rows["level"] = rows["series"].map(level_of)
    out: dict[str, Any] = {"origins": sorted(set(origins)), "selection_s": walls}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for level, group in rows.groupby("level"):
        per: dict[str, dict[str, float]] = {}
        for lead in ("1", "6", "24", "1-24"):
            g = group if lead == "1-24" else group[group["h"] == int(lead)]
            g = g.dropna(subset=["snaive24_err"])
            per[lead] = {
                "points": float(len(g)),
                "base": float(g["err"].mean()),
                "snaive24": float(g["snaive24_err"].mean()),
                **{m: float(g[f"{m}_err"].mean()) for m in METHODS},
            }
        table[str(level)] = per
    out["by_level"] = table
    return out


def print_reconciliation(label: str, result: dict[str, Any]) -> None:
    origins = result["origins"]
    print(
        f"\n== reconciliation, {label}: token and request rate; figures rest on {len(origins)} "
        f"origins ({origins[0]} .. {origins[-1]}); selections {result['selection_s']} s"
    )
    print(
        f"{'level':13s} {'lead':>5s} {'points':>6s} {'sn24':>6s} {'base':>6s} "
        f"{'bu':>6s} {'ols':>6s} {'wls':>6s}  (MASE; best reconciled vs base)"
    )
    for level, leads in result["by_level"].items():
        for lead, s in leads.items():
            best = min(("bu", "ols", "wls"), key=lambda m: s[m])
            print(
                f"{level:13s} {lead:>5s} {s['points']:6.0f} {s['snaive24']:6.3f} {s['base']:6.3f} "
                f"{s['bu']:6.3f} {s['ols']:6.3f} {s['wls']:6.3f}  "
                f"{best} {1 - s[best] / s['base']:+.1%}"
            )
