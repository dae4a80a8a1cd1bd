"""Scores of the deployed choice per hour ahead (lead), from the backtest's hourly rows.

``select.deployed_scores`` pools the 24 leads of a fold, as ``overall.mase`` reports it. A plan
is carried out for its first hour only and re-made every hour, so the lead-1 error matters
most; these figures say how the error grows with the lead. For each (series, origin) the
deployed forecaster (chosen from earlier folds only) is scored at each lead ``h`` on the same
scale as the fold's MASE (in-sample MAE of seasonal naive before the origin), next to both
seasonal-naive baselines at the same (series, origin, h).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from planner.forecast.scores import pinball
from planner.quantiles import HIGH, LOW, column_quantile, is_quantile_column, quantile_column

LEADS = (1, 2, 6, 24)


def lead_definitions(minutes: int) -> dict[str, str]:
    """What each lead of ``by_horizon`` is, as the hourly job meets it. The job runs at minute
    ``minutes`` of hour t (cron ``60 - planner.plan_lead_min``) and forecasts from origin t,
    the newest complete hour: lead h is the hour [t + h − 1, t + h)."""
    made = "the forecast made at the origin, 0 minutes of the origin's hour read"
    now = f"`nowcast_*`: as the hourly job publishes it at minute {minutes}, {minutes} minutes read"
    return {
        "1": f"the hour in progress [t, t+1h): {made}; {now} (minutes 0-{minutes - 1} of this "
        f"very hour: {minutes}/60 of it observed); `reading_*`: those minutes alone as the value",
        "2": f"the hour a plan made at minute {minutes} of hour t carries out, [t+1h, t+2h): "
        f"{made}; {now}",
        "6": f"[t+5h, t+6h): {made}; {now}",
        "24": f"[t+23h, t+24h): {made}; {now}",
        "1-24": "every lead 1..24 pooled (as `overall.mase`, per point)",
    }


def deployed_hours(
    hours: pd.DataFrame, folds: pd.DataFrame, deployed: pd.DataFrame
) -> pd.DataFrame:
    """One row per deployed (series, origin, h): actual, scaled error and band hit of the
    deployed forecaster, and the scaled errors of ``snaive24``/``snaive168`` there."""
    if hours.empty or deployed.empty or folds.empty:
        return pd.DataFrame()
    key = ["series", "origin", "forecaster"]
    known = hours[hours["actual"].notna()]
    scale = folds.drop_duplicates(["series", "origin"]).set_index(["series", "origin"])["scale"]
    chosen = known.merge(deployed[key], on=key, how="inner")
    chosen = chosen.join(scale, on=["series", "origin"])
    out = chosen[["series", "origin", "h", "forecaster", "actual", "point", "scale"]].copy()
    out["err"] = (chosen["actual"] - chosen["point"]).abs() / chosen["scale"]
    taus = sorted(column_quantile(c) for c in chosen.columns if is_quantile_column(c))
    actual = chosen["actual"].to_numpy(dtype=float)
    pins = [pinball(actual, chosen[quantile_column(t)].to_numpy(dtype=float), t) for t in taus]
    out["pinball"] = np.mean(pins, axis=0) / chosen["scale"].to_numpy(dtype=float)
    out["in_band"] = (chosen["actual"] >= chosen[LOW]) & (chosen["actual"] <= chosen[HIGH])
    out["conformal"] = chosen["quantile_method"] == "conformal"
    for edge in (LOW, HIGH):  # the band's edges (the nowcast moves them with the point)
        out[edge] = chosen[edge].to_numpy(dtype=float)
    if "nowcast_point" in chosen:  # the selection read the origin hours: its nowcasts
        _nowcast_columns(out, chosen)
    out["band_width"] = ((chosen[HIGH] - chosen[LOW]) / chosen["scale"]).to_numpy(dtype=float)
    for base in ("snaive24", "snaive168"):
        b = known[known["forecaster"] == base].set_index(["series", "origin", "h"])
        idx = pd.MultiIndex.from_frame(out[["series", "origin", "h"]])
        point = b["point"].reindex(idx).to_numpy(dtype=float)
        out[f"{base}_err"] = np.abs(out["actual"].to_numpy() - point) / out["scale"].to_numpy()
    kept: pd.DataFrame = out[np.isfinite(out["err"])].reset_index(drop=True)
    return kept


def _nowcast_columns(out: pd.DataFrame, chosen: pd.DataFrame) -> None:
    """The backtest's own nowcast of each row (the origin hour's minutes the hourly job had
    read at its run time): scaled error, calibrated band hit and width; at lead 1 also the
    error of those minutes alone taken as the hour's value (``reading_err``)."""
    scale = chosen["scale"].to_numpy(dtype=float)
    actual = chosen["actual"].to_numpy(dtype=float)
    ok = chosen["nowcast_quantile_method"].eq("conformal").to_numpy()
    inside = (actual >= chosen["nowcast_q_0_025"].to_numpy(dtype=float)) & (
        actual <= chosen["nowcast_q_0_975"].to_numpy(dtype=float)
    )
    out["nowcast_conformal"] = ok
    out["nowcast_cal_in_band"] = inside & ok
    width = (chosen["nowcast_q_0_975"] - chosen["nowcast_q_0_025"]).to_numpy(dtype=float)
    out["nowcast_band_width"] = width / scale
    out["nowcast_err"] = np.abs(actual - chosen["nowcast_point"].to_numpy(dtype=float)) / scale
    if "nowcast_reading" in chosen:
        reading = chosen["nowcast_reading"].where(chosen["h"] == 1).to_numpy(dtype=float)
        out["reading_err"] = np.abs(actual - reading) / scale


def lead_summary(rows: pd.DataFrame) -> dict[str, float]:
    """MASE of the deployed choice and of both baselines over ``rows`` (one lead or a pool),
    improvement vs each, scaled pinball and 95 % band coverage (conformal rows only)."""
    if rows.empty:
        return {}
    d24 = rows.dropna(subset=["snaive24_err"])
    conf = rows[rows["conformal"]]
    out = _forecast_scores(rows, d24, conf)
    out |= _nowcast_scores(rows, d24, conf)
    out |= _snaive168_scores(rows.dropna(subset=["snaive168_err"]))
    return out


def _forecast_scores(rows: pd.DataFrame, d24: pd.DataFrame, conf: pd.DataFrame) -> dict[str, float]:
    """The deployed choice's MASE and improvement vs seasonal naive 24 (``d24``: rows with a
    naive-24 error), and its band's pinball, coverage and misses over conformal rows."""
    return {
        "points": float(len(rows)),
        "origins": float(rows["origin"].nunique()),
        "mase": float(d24["err"].mean()),
        "snaive24_mase": float(d24["snaive24_err"].mean()),
        "improvement_vs_snaive24": float(1 - d24["err"].mean() / d24["snaive24_err"].mean()),
        "scaled_pinball": float(conf["pinball"].mean()) if len(conf) else float("nan"),
        "band95_coverage": float(conf["in_band"].mean()) if len(conf) else float("nan"),
        # the band is scored where it is conformal: an origin with earlier folds to calibrate
        # on (a selection's first origin has none), so on fewer points and origins
        "band95_points": float(len(conf)),
        "band95_origins": float(conf["origin"].nunique()),
        **band_misses(conf),
    }


def _nowcast_scores(rows: pd.DataFrame, d24: pd.DataFrame, conf: pd.DataFrame) -> dict[str, float]:
    """The nowcast's and the raw reading's MASE and improvement vs seasonal naive 24, and the
    nowcast's band coverage and width (moved and self-calibrated), where the rows have them."""
    out: dict[str, float] = {}
    if "nowcast_err" in rows:
        nc = d24.dropna(subset=["nowcast_err"])
        out["nowcast_points"] = float(len(nc))
        out["nowcast_origins"] = float(nc["origin"].nunique())
        out["nowcast_mase"] = float(nc["nowcast_err"].mean())
        out["nowcast_improvement_vs_snaive24"] = float(
            1 - nc["nowcast_err"].mean() / nc["snaive24_err"].mean()
        )
    if "reading_err" in rows and rows["h"].eq(1).all():  # lead 1 alone, not in a pool
        rd = d24.dropna(subset=["reading_err"])
        if len(rd):
            out["reading_mase"] = float(rd["reading_err"].mean())
            out["reading_improvement_vs_snaive24"] = float(
                1 - rd["reading_err"].mean() / rd["snaive24_err"].mean()
            )
    return out | _nowcast_band_scores(rows, conf)


def _nowcast_band_scores(rows: pd.DataFrame, conf: pd.DataFrame) -> dict[str, float]:
    """The 95 % coverage and width of the nowcast's band: the forecast's band moved by the
    nowcast's factor (over conformal rows) and the band calibrated on nowcasts."""
    out: dict[str, float] = {}
    if "nowcast_in_band" in rows and len(conf):
        # the forecast's band moved by the nowcast's factor (its width from forecasts that
        # had not read the hour)
        out["nowcast_moved_band95_coverage"] = float(conf["nowcast_in_band"].mean())
        out["band_width"] = float(conf["band_width"].mean())
    if "nowcast_conformal" in rows:
        # calibrated on the backtest's own nowcasts (earlier folds only)
        nconf = rows[rows["nowcast_conformal"].fillna(False).astype(bool)]
        if len(nconf):
            out["nowcast_band95_coverage"] = float(nconf["nowcast_cal_in_band"].mean())
            out["nowcast_band_width"] = float(nconf["nowcast_band_width"].mean())
    return out


def _snaive168_scores(d168: pd.DataFrame) -> dict[str, float]:
    """Seasonal naive 168's MASE and the deployed choice's improvement vs it, over ``d168``
    (rows with a naive-168 error; none at the first week's origins)."""
    if not len(d168):
        return {}
    return {
        "snaive168_mase": float(d168["snaive168_err"].mean()),
        "improvement_vs_snaive168": float(1 - d168["err"].mean() / d168["snaive168_err"].mean()),
    }


def band_misses(conf: pd.DataFrame) -> dict[str, float]:
    """Where the 95 % band misses, over conformal rows: the share of points below and above
    it; the standard error of the coverage clustered by origin (an origin's points share one
    day's surprise, so the number of origins, not of points, bounds what a coverage figure
    can resolve); and the share of all misses that fall at the single worst origin."""
    keys = ("below", "above", "coverage_se", "worst_origin_miss_share")
    if conf.empty or LOW not in conf:
        return {f"band95_{k}": float("nan") for k in keys}
    actual = conf["actual"].to_numpy(dtype=float)
    below = actual < conf[LOW].to_numpy(dtype=float)
    above = actual > conf[HIGH].to_numpy(dtype=float)
    hit = conf["in_band"].to_numpy(dtype=float)
    per = pd.DataFrame({"origin": conf["origin"].to_numpy(), "hit": hit, "miss": 1 - hit})
    by_origin = per.groupby("origin").agg(
        n=("hit", "size"), hits=("hit", "sum"), miss=("miss", "sum")
    )
    total, mean = float(by_origin["n"].sum()), float(hit.mean())
    # cluster-robust (by origin) standard error of a mean of 0/1 hits
    resid = by_origin["hits"] - by_origin["n"] * mean
    k = len(by_origin)
    se = float(np.sqrt(k / max(k - 1, 1) * float((resid**2).sum())) / total)
    misses = float(by_origin["miss"].sum())
    return {
        "band95_below": float(below.mean()),
        "band95_above": float(above.mean()),
        "band95_coverage_se": se,
        "band95_worst_origin_miss_share": float(by_origin["miss"].max() / misses)
        if misses
        else 0.0,
    }


def by_horizon(
    hours: pd.DataFrame,
    folds: pd.DataFrame,
    deployed: pd.DataFrame,
    leads: Sequence[int] = LEADS,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{metric or "all": {"1": {...}, "6": {...}, "24": {...}, "1-24": {...}}}``."""
    return summarize(deployed_hours(hours, folds, deployed), leads)


def summarize(
    rows: pd.DataFrame, leads: Sequence[int] = LEADS
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`lead_summary` per metric (and all) and lead, of :func:`deployed_hours` rows
    (possibly pooled over several selections)."""
    if rows.empty:
        return {}
    metric = rows["series"].str.rsplit("|", n=1).str[1]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, group in [*rows.groupby(metric), ("all", rows)]:
        per = {str(h): lead_summary(group[group["h"] == h]) for h in leads}
        per["1-24"] = lead_summary(group)
        out[str(name)] = per
    return out
