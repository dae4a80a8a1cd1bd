"""How often the forecast sanity guard fires on a warehouse's published forecasts, and what it
does to their scores (issue #18).

Replays :mod:`planner.forecast.sanity` on every stored hourly forecast row: ``M`` is the
series' largest observed hour in the week before the row's origin, from the same panel the
forecaster reads (:func:`planner.forecast.series.build_panel`). A series-origin whose point
peaks above 2.5 M takes seasonal naive (sp = 24, from the panel); quantiles above 2.5 M are
capped. Scores against the hours observed since: mean absolute error of the point, mean
pinball loss over the stored quantiles, and coverage of q 0.9 / 0.95 / 0.99, before and after,
over all rows and over the rows of series-origins where the guard fired. Approximation: after
a point fallback the stored quantiles are kept (then capped), not re-derived from the naive
point (the live guard re-derives them).

    .venv/bin/python bench/forecast_sanity.py --warehouse W [--since 2024-06-12] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.warehouse.sqlfiles import sql
from planner.forecast import sanity
from planner.forecast.series import build_panel
from planner.quantiles import QUANTILES, quantile_column

COLUMNS = [quantile_column(t) for t in QUANTILES]


def guarded(rows: pd.DataFrame, demand: pd.DataFrame) -> pd.DataFrame:
    """The stored rows with the guard's point and quantiles (``*_g``), the actual and flags."""
    parts = []
    actual = build_panel(demand, demand["hour"].max() + pd.Timedelta(hours=1)).observed
    for origin in sorted(rows["origin"].unique()):
        at = rows[rows["origin"] == origin]
        panel = build_panel(demand, pd.Timestamp(origin))
        for series, one in at.groupby("series"):
            one = one.sort_values("h").copy()
            cap_of = 0.0
            if series in panel.observed:
                cap_of = sanity.recent_max(panel.observed[series].to_numpy(dtype=float))
            point = one["point"].to_numpy(dtype=float)
            one["point_fired"] = sanity.point_exceeds(point, cap_of) is not None
            if one["point_fired"].iloc[0]:
                filled = panel.filled[series].to_numpy(dtype=float)
                point = filled[-24:][(one["h"].to_numpy() - 1) % 24]
            one["point_g"] = point
            stored = {
                t: one[c].to_numpy(dtype=float) for t, c in zip(QUANTILES, COLUMNS, strict=True)
            }
            capped, why = sanity.cap_quantiles(stored, cap_of)
            one["band_fired"] = why is not None
            for t, c in zip(QUANTILES, COLUMNS, strict=True):
                one[c + "_g"] = capped[t]
            col = actual[series] if series in actual else pd.Series(dtype=float)
            one["actual"] = col.reindex(pd.DatetimeIndex(one["hour"])).to_numpy()
            parts.append(one)
    out: pd.DataFrame = pd.concat(parts, ignore_index=True)
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
    keys = g.groupby(["origin", "series"])[["point_fired", "band_fired"]].first()
    fired = g["point_fired"] | g["band_fired"]
    scored = g.dropna(subset=["actual"])
    hit = scored[fired.loc[scored.index]]
    return {
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
            f"{t:g}": round(float((g[c + "_g"] < g[c]).mean()), 4)
            for t, c in zip(QUANTILES, COLUMNS, strict=True)
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--since", default="2000-01-01")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    con = duckdb.connect(a.warehouse, read_only=True)
    since = pd.Timestamp(a.since).to_pydatetime()
    rows = con.execute(sql("forecast/stored_forecasts"), {"since": since}).df()
    start = (rows["origin"].min() - pd.Timedelta(days=30)).to_pydatetime()
    end = (rows["hour"].max() + pd.Timedelta(hours=1)).to_pydatetime()
    demand = con.execute(sql("forecast/demand_history"), {"since": start, "as_of": end}).df()
    con.close()
    out = report(guarded(rows, demand))
    if a.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    print(
        f"series-origins {out['series_origins']}: point guard fired {out['point_fired']}, "
        f"band cap fired {out['band_fired']} ({len(out['fired_series'])} series)"
    )
    print(f"share of rows capped per quantile {out['rows_capped_share']}")
    for name in ("all", "fired"):
        print(f"{name:5s} before {out[name + '_before']}")
        print(f"{name:5s} after  {out[name + '_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
