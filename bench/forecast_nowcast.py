"""The nowcast measured on the accuracy bench's deployed rows (``bench/forecast_accuracy.py``):
each row corrected by the first minutes of its origin's hour, and the grid search that tuned
the nowcast on the tuning log (``--tune-nowcast``)."""

from __future__ import annotations

from typing import Any, cast


def with_nowcast(con: Any, rows: Any, as_of: Any, params: Any = None) -> Any:
    """Add ``offset``, ``reading`` (the first minutes of each origin's hour, what the hourly
    job has seen when it plans) and ``nowcast_err`` (the deployed forecast corrected by it)."""
    import numpy as np
    import pandas as pd

    from flows.forecasting import load_demand
    from flows.warehouse.sqlfiles import run
    from planner.forecast.calibration import OFFSET_SHARE
    from planner.forecast.nowcast import NowcastParams, apply_rows, partial_values
    from planner.forecast.series import build_panel

    if rows.empty:
        return rows
    params = params or NowcastParams()
    origins = sorted(rows["origin"].unique())
    observed = build_panel(load_demand(con, as_of, 28 * 24), as_of).observed
    level = observed.rolling(168, min_periods=1).mean().shift(1)
    key = pd.MultiIndex.from_frame(rows[["origin", "series"]])
    stacked = level.stack(future_stack=True)
    rows = rows.copy()
    rows["offset"] = np.maximum(OFFSET_SHARE * stacked.reindex(key).to_numpy(dtype=float), 1e-6)
    partial = run(
        con,
        "forecast/partial_hours",
        since=pd.Timestamp(origins[0]),
        until=pd.Timestamp(origins[-1]) + pd.Timedelta(hours=1),
        minutes=params.minutes,
    ).df()
    wide = partial_values(partial, params.minutes)
    readings = cast("pd.Series[float]", wide.stack(future_stack=True).swaplevel())
    readings.index.names = ["series", "origin"]
    rows["reading"] = readings.reindex(
        pd.MultiIndex.from_frame(rows[["series", "origin"]])
    ).to_numpy(dtype=float)
    nowcast = apply_rows(rows, readings, params)
    rows["nowcast_err"] = np.abs(rows["actual"] - nowcast) / rows["scale"]
    # the product widens the nowcast point with the same log-residual quantiles: the band's
    # edges move by the point's factor (offset: 5 % of the week's level, as the calibration's)
    offset = rows["offset"].to_numpy(dtype=float)
    factor = (nowcast + offset) / (np.maximum(rows["point"].to_numpy(dtype=float), 0) + offset)
    low = (rows["q_0_025"].to_numpy(dtype=float) + offset) * factor - offset
    high = (rows["q_0_975"].to_numpy(dtype=float) + offset) * factor - offset
    rows["nowcast_in_band"] = (rows["actual"] >= low) & (rows["actual"] <= high)
    return rows


def tune_nowcast(rows: Any) -> Any:
    """Grid search of the nowcast's weight per metric and decay on pooled 1-24 MASE (run on
    the tuning log only)."""
    import numpy as np
    import pandas as pd

    from planner.forecast.nowcast import NowcastParams, apply_rows, correction

    metric = rows["series"].str.rsplit("|", n=1).str[1]
    readings = rows[rows["h"] == 1].set_index(["series", "origin"])["reading"]
    bias = {}
    for m in sorted(metric.unique()):
        first = rows[(rows["h"] == 1) & (metric == m)]
        r0 = correction(
            first["point"].to_numpy(),
            first["reading"].to_numpy(),
            first["offset"].to_numpy(),
            m,
            NowcastParams(bias={}),
        )
        bias[m] = round(float(np.median(r0)), 3)
    best: dict[str, tuple[float, float, float]] = {}
    for decay in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        for w in np.round(np.arange(0.0, 1.01, 0.1), 2):
            p = NowcastParams(
                weight={m: float(w) for m in bias},
                bias=bias,
                decay={m: decay for m in bias},
            )
            err = np.abs(rows["actual"] - apply_rows(rows, readings, p)) / rows["scale"]
            for m, e in pd.Series(err.to_numpy(), index=metric.to_numpy()).groupby(level=0):
                score = float(e.mean())
                if str(m) not in best or score < best[str(m)][0]:
                    best[str(m)] = (score, float(w), decay)
    return {"bias": bias, "best (mase, weight, decay)": best}
