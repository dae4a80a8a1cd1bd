"""Bands made again on a selection's rows, scored side by side (``bench/forecast_accuracy.py
--bands``): the plain band (``none``, checked equal to the selection's own), the pooled ones
(:class:`planner.forecast.calibration.Pooling`: ``pool:...``) and the day-shift band
(:class:`planner.forecast.dayshift.DayShift`: ``dayshift:width=6/pool=all``, its day shifts
from every series of the selection, as :func:`planner.forecast.pipeline.reband_selection`)."""

from __future__ import annotations

from typing import Any


def band_rows(selection: Any, panel: Any, settings: Any, specs: tuple[str, ...]) -> dict[str, Any]:
    """Per band: the selection's deployed rows with that band."""
    from planner.forecast.horizon import deployed_hours

    return {
        spec: deployed_hours(
            recalibrated(selection, panel, settings, spec), selection.folds, selection.deployed
        )
        for spec in specs
    }


def score_bands(rows: dict[str, list[Any]], leads: tuple[int, ...]) -> dict[str, Any]:
    """Per band, its pooled rows summarised per lead (``bands``) and the pinball change
    against the first band listed (``bands_base``, e.g. ``none``) on the same points
    (``bands_pinball_change``)."""
    import pandas as pd

    from planner.forecast.horizon import summarize

    pooled = {b: pd.concat(r, ignore_index=True) for b, r in rows.items()}
    out: dict[str, Any] = {"bands": {b: summarize(r, leads) for b, r in pooled.items()}}
    if pooled:
        base = next(iter(pooled))
        out["bands_base"] = base
        out["bands_pinball_change"] = {
            b: pinball_change(pooled[base], r, leads) for b, r in pooled.items() if b != base
        }
    return out


def recalibrated(selection: Any, panel: Any, settings: Any, spec: str) -> Any:
    """The selection's hourly rows with the band made again: plain (``none``, which must give
    the selection's own quantiles when it was made without day shifts), pooled
    (``pool:own=0.25/group=metric/tail=0.8``: :class:`planner.forecast.calibration.Pooling`)
    or the day-shift band (``dayshift:...``)."""
    import dataclasses

    import numpy as np

    from planner.forecast.bands import recalibrate
    from planner.forecast.calibration import Pooling
    from planner.forecast.dayshift import DayShift

    if spec.startswith("dayshift"):
        day = dataclasses.replace(settings, day_shift=DayShift.parse(spec))
        return day_shift_bands(recalibrate(selection.hours, panel, settings), panel, day)
    pool = None if spec == "none" else Pooling.parse(spec)
    out = recalibrate(selection.hours, panel, settings, pool)
    if spec == "none" and settings.day_shift is None:
        key = ["series", "forecaster", "origin", "h"]
        own = selection.hours.merge(out[[*key, "q_0_975"]], on=key, suffixes=("", "_again"))
        if not np.allclose(own["q_0_975"], own["q_0_975_again"], equal_nan=True):
            raise SystemExit("re-calibrating the plain band did not give the selection's own")
    return out


def day_shift_bands(hours: Any, panel: Any, settings: Any) -> Any:
    """A whole selection's rows (banded as in use) with the day-shift band of ``settings``
    (:class:`BacktestSettings`; its ``day_shift`` None: the rows as they are)."""
    from planner.forecast.dayshift import DayShifts
    from planner.forecast.reband import with_day_shifts

    if settings.day_shift is None:
        return hours
    return with_day_shifts(hours, panel, settings, DayShifts.of(hours, settings.day_shift))


def pinball_change(before: Any, after: Any, leads: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Per lead (and 1-24): the scaled pinball loss after − before on the same conformal points
    (relative), with its standard error clustered by origin (paired)."""
    import numpy as np
    import pandas as pd

    key = ["series", "origin", "h"]
    both = before[[*key, "pinball", "conformal"]].merge(
        after[[*key, "pinball"]], on=key, suffixes=("_before", "_after")
    )
    both = both[both["conformal"]]
    out: dict[str, dict[str, float]] = {}
    for lead in (*(str(h) for h in leads), "1-24"):
        g = both if lead == "1-24" else both[both["h"] == int(lead)]
        if g.empty:
            continue
        diff = g["pinball_after"] - g["pinball_before"]
        per = pd.DataFrame({"o": g["origin"], "d": diff}).groupby("o")["d"].agg(["sum", "size"])
        mean = float(diff.mean())
        k = len(per)
        se = float(np.sqrt(k / max(k - 1, 1) * ((per["sum"] - per["size"] * mean) ** 2).sum()))
        base = float(g["pinball_before"].mean())
        out[lead] = {"change": mean / base, "se": se / len(g) / base}
    return out


def print_bands(result: dict[str, Any]) -> None:
    """The pooled bands side by side with the plain one (all metrics), per lead."""
    print(
        "band re-calibrated (all metrics): 95 % coverage ±se by origin [below/above], scaled "
        f"pinball, pinball change vs {result.get('bands_base')} ±se by origin (paired)"
    )
    changes = result.get("bands_pinball_change", {})
    for spec, per_metric in result["bands"].items():
        leads = per_metric.get("all", {})
        cells = []
        for lead in ("1", "6", "24", "1-24"):
            s = leads.get(lead)
            if not s:
                continue
            c = changes.get(spec, {}).get(lead)
            delta = f" {c['change']:+.1%}±{c['se']:.1%}" if c else ""
            cells.append(
                f"{lead}: {s['band95_coverage']:.1%}±{s['band95_coverage_se']:.1%} "
                f"[{s['band95_below']:.1%}/{s['band95_above']:.1%}] "
                f"pin {s['scaled_pinball']:.3f}{delta} "
                f"({s['band95_points']:.0f} pts/{s['band95_origins']:.0f} orig)"
            )
        print(f"  {spec:14s} " + " | ".join(cells))


def refinished(selection: Any, con: Any, panel: Any, settings: Any) -> Any:
    """The selection with its bands and nowcasts made again by the current code on its own
    backtest rows (``--refinish``): the forecasts, folds and choices are the kept selection's
    (neither bands nor nowcasts enter a choice), the q_<τ> columns, each row's nowcast and
    the nowcast's band are what :func:`planner.forecast.pipeline.select_models` would make of
    those rows now. ``settings``: the :class:`ForecastSettings`."""
    import dataclasses

    import pandas as pd

    from flows.forecasting import origin_readings
    from planner.forecast.bands import calibrate_nowcast, recalibrate

    hours = selection.hours.drop(
        columns=[c for c in selection.hours.columns if c.startswith("nowcast_")]
    )
    hours = recalibrate(hours, panel, settings.backtest)
    readings = origin_readings(con, pd.Timestamp(selection.as_of), settings)
    hours = calibrate_nowcast(hours, panel, settings.backtest, readings)
    hours = day_shift_bands(hours, panel, settings.backtest)
    return dataclasses.replace(selection, hours=hours)
