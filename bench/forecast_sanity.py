"""How often the forecast sanity guard fires on a warehouse's hourly forecasts, and what it
does to their scores (issue #18).

Production's guard, not a replay of it: at each origin the hourly job's own function
(:func:`planner.forecast.pipeline.forecast`) runs twice on the newest stored selection at or
before the origin (as the hourly job reads it), the demand before the origin and the hour in
progress read ``--minutes`` into it (the sweep plans at hour − 20 min: 40 minutes read; 0: no
reading): once as published (guard on) and once with the guard off (``sanity_ratio`` = ∞).
Whether it fired is what the published rows record (``fallback``: ``implausible_point``,
``band_capped``). Origins: every stored forecast's (``--origins stored``), or each hour from
the first stored selection to the end of the demand (``--origins hourly``: the logs of
``bench/forecast_accuracy.py --keep DIR``, whose selections it stores).

Scores against the hours observed since: mean absolute error of the point, mean pinball loss
over the quantiles, coverage of q 0.9 / 0.95 / 0.99, guard off ("before") and on ("after"),
over all rows and over the rows of series-origins where the guard fired.

    .venv/bin/python bench/forecast_sanity.py --warehouse W [--config C]
        [--origins stored|hourly] [--minutes 40] [--since 2024-06-12] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.forecasting import load_demand, minutes_so_far, settings_from_config, timezones
from flows.warehouse.selections import load_models
from flows.warehouse.sqlfiles import sql
from planner.config import load_config
from planner.forecast.pipeline import ForecastSettings, forecast
from planner.forecast.series import build_panel
from planner.quantiles import QUANTILES, quantile_column

COLUMNS = [quantile_column(t) for t in QUANTILES]
KEY = ["origin", "series", "h"]


def origins_of(con: duckdb.DuckDBPyConnection, kind: str, since: pd.Timestamp) -> list[Any]:
    """The origins to forecast at: the stored forecasts', or every hour from the first stored
    selection (at or after ``since``) to the last hour with demand."""
    if kind == "stored":
        rows = con.execute(sql("forecast/stored_forecasts"), {"since": since.to_pydatetime()}).df()
        return sorted(pd.Timestamp(o) for o in rows["origin"].unique())
    first = con.execute("SELECT min(selected_at) FROM forecast_models").fetchone()
    last = con.execute("SELECT max(hour) FROM demand_hourly WHERE coverage > 0").fetchone()
    if not first or first[0] is None or not last or last[0] is None:
        raise SystemExit("no stored selection or no demand: run a selection first")
    start = max(pd.Timestamp(first[0]), since)
    return list(pd.date_range(start, pd.Timestamp(last[0]), freq="h"))


def _series(frame: pd.DataFrame) -> pd.Series:
    return frame["region"] + "|" + frame["model"] + "|" + frame["tier"] + "|" + frame["metric"]


def guarded(
    con: duckdb.DuckDBPyConnection,
    origins: list[Any],
    settings: ForecastSettings,
    zones: dict[str, str],
    minutes: int,
) -> pd.DataFrame:
    """Per origin, series and lead: the product's forecast with the guard off (point, q_*) and
    on (``*_g``), the published ``fallback`` and ``forecaster``, and the actual."""
    parts = []
    off = replace(settings, sanity_ratio=math.inf)
    for origin in origins:
        selected_at, models = load_models(con, origin)
        if selected_at is None:
            continue
        demand = load_demand(con, origin, settings.history_h)
        moment = origin + pd.Timedelta(minutes=minutes)
        readings = minutes_so_far(con, origin, moment) if minutes else None
        on = forecast(demand, models, origin, settings, zones, readings)
        plain = forecast(demand, models, origin, off, zones, readings)
        on["series"], plain["series"] = _series(on), _series(plain)
        kept = ["point", *COLUMNS, "forecaster", "fallback"]
        published = on[[*KEY, *kept]].rename(columns={c: c + "_g" for c in kept})
        both = plain[[*KEY, "hour", "point", *COLUMNS]].merge(published, on=KEY)
        parts.append(both)
    if not parts:
        raise SystemExit("no origin with a stored selection at or before it")
    out = pd.concat(parts, ignore_index=True)
    end = pd.Timestamp(out["hour"].max()) + pd.Timedelta(hours=1)
    demand = load_demand(con, end, int((end - out["origin"].min()) / pd.Timedelta(hours=1)))
    actual = build_panel(demand, end, len(demand["hour"].unique()) + 24).observed
    stacked = actual.stack(future_stack=True)
    out["actual"] = stacked.reindex(pd.MultiIndex.from_frame(out[["hour", "series"]])).to_numpy()
    fell = out["fallback_g"].fillna("")
    out["point_fired"] = fell.str.contains("implausible_point")
    out["band_fired"] = fell.str.contains("band_capped")
    return out


def scores(g: pd.DataFrame, suffix: str) -> dict[str, float]:
    """Point MAE, mean pinball over the quantiles, upper-quantile coverage (rows with actual)."""
    y = g["actual"].to_numpy(dtype=float)
    out = {"mae": float(np.mean(np.abs(g["point" + suffix].to_numpy() - y)))}
    losses = []
    for t, c in zip(QUANTILES, COLUMNS, strict=True):
        q = g[c + suffix].to_numpy(dtype=float)
        losses.append(np.maximum(t * (y - q), (t - 1) * (y - q)))
        if t in (0.9, 0.95, 0.99):
            out[f"cover_{t:g}"] = float(np.mean(y <= q))
    out["pinball"] = float(np.mean(losses))
    return {k: round(v, 4) for k, v in out.items()}


def report(g: pd.DataFrame) -> dict[str, Any]:
    keys = g.groupby(["origin", "series"])[["point_fired", "band_fired"]].any()
    fired = g["point_fired"] | g["band_fired"]
    scored = g.dropna(subset=["actual"])
    hit = scored[fired.loc[scored.index]]
    return {
        "origins": int(g["origin"].nunique()),
        "series_origins": len(keys),
        "point_fired": int(keys["point_fired"].sum()),
        "band_fired": int(keys["band_fired"].sum()),
        "fired_series": sorted(keys[keys.any(axis=1)].index.get_level_values(1).unique()),
        "rows_scored": len(scored),
        "all_before": scores(scored, ""),
        "all_after": scores(scored, "_g"),
        "fired_rows_scored": len(hit),
        "fired_before": scores(hit, "") if len(hit) else {},
        "fired_after": scores(hit, "_g") if len(hit) else {},
        "rows_capped_share": {
            f"{t:g}": round(float((g[c + "_g"] < g[c] - 1e-9).mean()), 4)
            for t, c in zip(QUANTILES, COLUMNS, strict=True)
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--config", help="the fleet config the warehouse was made with")
    ap.add_argument("--origins", choices=("stored", "hourly"), default="stored")
    ap.add_argument("--minutes", type=int, default=40, help="of the hour in progress read")
    ap.add_argument("--since", default="2000-01-01")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    con = duckdb.connect(a.warehouse, read_only=True)
    origins = origins_of(con, a.origins, pd.Timestamp(a.since))
    g = guarded(con, origins, settings_from_config(cfg), timezones(cfg), a.minutes)
    con.close()
    out = report(g)
    if a.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    print(
        f"{out['origins']} origins, series-origins {out['series_origins']}: point guard fired "
        f"{out['point_fired']}, band cap fired {out['band_fired']} "
        f"({len(out['fired_series'])} series)"
    )
    print(f"share of rows capped per quantile {out['rows_capped_share']}")
    for name in ("all", "fired"):
        print(f"{name:5s} before {out[name + '_before']}")
        print(f"{name:5s} after  {out[name + '_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
