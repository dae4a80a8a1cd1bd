"""The nowcast measured on the accuracy bench's deployed rows (``bench/forecast_accuracy.py``):
each row corrected by the first minutes of its origin's hour, and the grid search that tuned
the nowcast on the tuning log (``--tune-nowcast``)."""

from __future__ import annotations

from typing import Any


def with_nowcast(con: Any, rows: Any, as_of: Any, settings: Any) -> Any:
    """Add ``offset`` (the product's, :func:`planner.forecast.bands.origin_offsets`),
    ``reading`` (what the hourly job had read of each origin's hour at its run time,
    :func:`flows.forecasting.origin_readings`) and ``nowcast_in_band`` (the forecast's own
    band moved by the nowcast's factor, for comparison with the nowcast's calibrated band).
    The nowcast's error itself is the selection's (``horizon.deployed_hours``)."""
    import numpy as np
    import pandas as pd

    from flows.forecasting import load_demand, origin_readings
    from planner.forecast.bands import origin_offsets
    from planner.forecast.nowcast import NowcastParams, apply_rows, reading_values
    from planner.forecast.series import build_panel

    if rows.empty:
        return rows
    panel = build_panel(load_demand(con, as_of, settings.history_h), as_of, settings.history_h)
    rows = rows.copy()
    rows["offset"] = origin_offsets(rows, panel)
    readings = origin_readings(con, pd.Timestamp(as_of), settings)
    rows["reading"] = reading_values(readings, pd.MultiIndex.from_frame(rows[["series", "origin"]]))
    nowcast = apply_rows(rows, readings, NowcastParams())
    # the forecast's band moved by the nowcast's factor (before the nowcast had its own)
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
