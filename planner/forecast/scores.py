"""The scores of a backtest's folds, per series, forecaster and origin.

* MASE: MAE over the fold's known hours ÷ the in-sample MAE of seasonal naive (sp = 24) over
  the training hours before that origin;
* pinball loss averaged over the quantile levels, divided by the same scale;
* coverage of the central 95 % band [q0.025, q0.975] and of the one-sided q0.95.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.forecast.series import Panel
from planner.quantiles import HIGH, LOW, quantile_column


def _scales(panel: Panel, origins: list[pd.Timestamp]) -> pd.DataFrame:
    """In-sample MAE of seasonal naive (sp = 24) over known hours before each origin
    (rows: origins, columns: series); NaN where undefined or zero."""
    y = panel.observed
    diff = (y - y.shift(24)).abs()
    total = diff.fillna(0.0).cumsum()
    count = diff.notna().cumsum()
    before = [o - pd.Timedelta(hours=1) for o in origins]
    scale = total.reindex(before) / count.reindex(before)
    scale.index = pd.DatetimeIndex(origins, name="origin")
    return scale.where(scale > 0)


def pinball(actual: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    diff = actual - q
    loss: np.ndarray = np.maximum(tau * diff, (tau - 1) * diff)
    return loss


def score(hours: pd.DataFrame, panel: Panel, quantiles: tuple[float, ...]) -> pd.DataFrame:
    """One row per series × forecaster × origin: MASE, scaled pinball and band coverage."""
    if hours.empty:
        return pd.DataFrame()
    known = hours[hours["actual"].notna()].copy()
    scales = _scales(panel, sorted(known["origin"].unique())).stack(future_stack=True)
    scales.index.names = ["origin", "series"]
    known["scale"] = scales.reindex(
        pd.MultiIndex.from_frame(known[["origin", "series"]])
    ).to_numpy()
    known["abs_err"] = (known["actual"] - known["point"]).abs()
    pin = np.mean(
        [
            pinball(known["actual"].to_numpy(), known[quantile_column(t)].to_numpy(), t)
            for t in quantiles
        ],
        axis=0,
    )
    known["pinball"] = pin
    known["in_band"] = (known["actual"] >= known[LOW]) & (known["actual"] <= known[HIGH])
    known["below_p95"] = known["actual"] <= known[quantile_column(0.95)]
    known["conformal"] = known["quantile_method"] == "conformal"
    folds = (
        known.groupby(["series", "forecaster", "origin"], sort=False)
        .agg(
            hours=("abs_err", "size"),
            mae=("abs_err", "mean"),
            scale=("scale", "first"),
            pinball=("pinball", "mean"),
            in_band=("in_band", "mean"),
            below_p95=("below_p95", "mean"),
            conformal=("conformal", "all"),
        )
        .reset_index()
    )
    folds["mase"] = folds["mae"] / folds["scale"]
    folds["scaled_pinball"] = folds["pinball"] / folds["scale"]
    return folds
