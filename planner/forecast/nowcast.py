"""Nowcasting the hour in progress from its minutes so far.

The hourly job forecasts from the newest complete hour (origin ``t``: hours before ``t`` are
known) and plans about 20 minutes before the next hour, when the hour in progress (lead 1) has
already shown ``minutes`` minutes. The hour the plan carries out is lead 2. The minutes so far
give a noisy reading ``p`` of lead 1; its log residual against the lead-1 forecast,

    r₀ = log((p + c) / (ŷ₁ + c)) − b_m,        clipped to ±``max_abs``,

(``c`` the series' calibration offset, ``b_m`` the metric's bias: the busiest of 40 minutes is
below the busiest of 60) is carried to lead ``h`` with a weight that decays with the lead:

    ŷ_h ← (ŷ_h + c) · exp(w_m · ρ^(h−1) · r₀) − c,    clipped at 0.

``w_m``, ``ρ`` and ``b_m`` were tuned on the m-mid ServeGen log only (bench/forecast_accuracy.py
reports the effect on m-large clients). Nothing after ``t + minutes`` is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from planner.forecast.series import METRICS, SEP

MINUTES = 40  # 60 - planner.plan_lead_min's default (20): the hourly job's cron minute


# Tuned on the m-mid log (bench/forecast_accuracy.py --logs m-mid:7 --tune-nowcast: grid over
# weight 0..1 and decay 0.5..0.95 per metric, pooled 1-24 MASE; bias: median r₀ there). A weight
# of 1 trusts the 40-minute reading fully for the hour in progress; the grid stops there.
def _default_weight() -> dict[str, float]:
    return {"token_rate": 1.0, "request_rate": 0.9, "peak_token_rate": 1.0}


def _default_decay() -> dict[str, float]:
    return {"token_rate": 0.8, "request_rate": 0.8, "peak_token_rate": 0.7}


def _default_bias() -> dict[str, float]:
    return {"token_rate": 0.0, "request_rate": 0.0, "peak_token_rate": -0.163}


@dataclass(frozen=True)
class NowcastParams:
    weight: dict[str, float] = field(default_factory=_default_weight)
    bias: dict[str, float] = field(default_factory=_default_bias)
    decay: dict[str, float] = field(default_factory=_default_decay)
    max_abs: float = 1.0


def partial_values(partial: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Wide frame (index: hour, columns: series ids) of the metrics read from the first
    ``minutes`` minutes of each hour (rows of ``sql/forecast/partial_hours.sql``)."""
    if partial.empty:
        return pd.DataFrame()
    seconds = 60.0 * minutes
    values = {
        "token_rate": partial["tokens"] / seconds,
        "request_rate": partial["requests"] / seconds,
        "peak_token_rate": partial["peak_minute_token_rate"],
    }
    frames = []
    base = partial["region"] + SEP + partial["model"] + SEP + partial["tier"] + SEP
    for metric in METRICS:
        frames.append(
            pd.DataFrame(
                {"hour": partial["hour"], "series": base + metric, "value": values[metric]}
            )
        )
    long = pd.concat(frames, ignore_index=True)
    wide = long.pivot_table(index="hour", columns="series", values="value", aggfunc="sum")
    wide.index = pd.DatetimeIndex(wide.index)
    return wide


def correction(
    lead1: np.ndarray, reading: np.ndarray, offset: np.ndarray, metric: str, params: NowcastParams
) -> np.ndarray:
    """r₀ per row (0 where the reading is missing)."""
    r0 = np.log((reading + offset) / (np.maximum(lead1, 0.0) + offset)) - params.bias.get(
        metric, 0.0
    )
    r0 = np.where(np.isfinite(r0), r0, 0.0)
    out: np.ndarray = np.clip(r0, -params.max_abs, params.max_abs)
    return out


def apply(
    point: np.ndarray,
    reading: float | None,
    offset: float,
    metric: str,
    params: NowcastParams | None = None,
) -> np.ndarray:
    """One series' point forecast (leads 1..H) corrected by the minutes-so-far reading."""
    params = params or NowcastParams()
    point = np.asarray(point, dtype=float)
    if reading is None or not np.isfinite(reading) or len(point) == 0:
        return point
    r0 = float(correction(point[:1], np.array([reading]), np.array([offset]), metric, params)[0])
    w = params.weight.get(metric, 0.0) * params.decay.get(metric, 0.0) ** np.arange(len(point))
    out: np.ndarray = np.maximum((np.maximum(point, 0.0) + offset) * np.exp(w * r0) - offset, 0.0)
    return out


def apply_rows(rows: pd.DataFrame, readings: pd.Series, params: NowcastParams) -> np.ndarray:
    """:func:`apply` over backtest rows (columns series, origin, h, point, offset); readings
    indexed by (series, origin): the minutes of the origin's hour read before the hourly job
    ran (``ForecastSettings.nowcast_minutes``)."""
    key = pd.MultiIndex.from_frame(rows[["series", "origin"]])
    lead1 = rows[rows["h"] == 1].set_index(["series", "origin"])["point"]
    first = lead1.reindex(key).to_numpy(dtype=float)
    reading = readings.reindex(key).to_numpy(dtype=float)
    offset = rows["offset"].to_numpy(dtype=float)
    metric = rows["series"].str.rsplit(SEP, n=1).str[1].to_numpy()
    r0 = np.zeros(len(rows))
    weight = np.zeros(len(rows))
    decay = np.zeros(len(rows))
    for m in np.unique(metric):
        sel = metric == m
        r0[sel] = correction(first[sel], reading[sel], offset[sel], str(m), params)
        weight[sel] = params.weight.get(str(m), 0.0)
        decay[sel] = params.decay.get(str(m), 0.0)
    w = weight * decay ** (rows["h"].to_numpy(dtype=float) - 1)
    point = np.maximum(rows["point"].to_numpy(dtype=float), 0.0)
    out: np.ndarray = np.maximum((point + offset) * np.exp(w * r0) - offset, 0.0)
    return out
