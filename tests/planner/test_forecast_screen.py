"""The backtest's screen (planner.forecast.backtest._screen_folds): its folds keep the
model's own intervals, and their MASE (all the screen reads) is the banded folds' bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.forecast.backtest import BacktestSettings, _screen_folds
from planner.forecast.bands import calibrate
from planner.forecast.scores import score
from planner.forecast.series import Panel
from planner.quantiles import QUANTILES

T0 = pd.Timestamp("2024-06-01")
KEY = ["series", "forecaster", "origin"]


def _rows(origins: int, seed: int) -> tuple[pd.DataFrame, Panel]:
    """Daily folds (24 leads) of two forecasters on 2 peer groups of 3 series, a daily
    cycle with noise; each forecaster's error grows with the lead at its own rate (so MASE
    depends on every lead and differs by forecaster). Rows in a shuffled order."""
    rng = np.random.default_rng(seed)
    series = [f"r{r}|m|T{g}|token_rate" for g in range(2) for r in range(3)]
    hours = pd.date_range(T0 - pd.Timedelta(days=2), periods=24 * (origins + 2), freq="h")
    cycle = 100.0 + 30.0 * np.sin(2 * np.pi * hours.hour.to_numpy() / 24)
    actual = cycle[:, None] * np.exp(rng.normal(0.0, 0.1, (len(hours), len(series))))
    wide = pd.DataFrame(actual, index=hours, columns=series)
    frames = []
    for k in range(origins):
        origin = T0 + pd.Timedelta(days=k)
        at = wide.loc[origin : origin + pd.Timedelta(hours=23)]
        for name, growth in (("ets", 0.01), ("theta", 0.03)):
            frame = at.stack().rename("actual").reset_index()
            frame.columns = ["hour", "series", "actual"]
            frame["h"] = ((frame["hour"] - origin) / pd.Timedelta(hours=1)).astype(int) + 1
            err = rng.normal(0.0, growth * frame["h"].to_numpy())
            frame["point"] = frame["actual"].to_numpy() * np.exp(err)
            frame["forecaster"], frame["origin"] = name, origin
            for tau in QUANTILES:
                frame[f"native_{tau}"] = frame["point"] * np.exp(0.2 * (tau - 0.5))
            frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    return rows.sample(frac=1.0, random_state=seed, ignore_index=True), Panel(wide, wide)


def test_the_screen_gives_the_banded_folds_mase_bit_for_bit() -> None:
    """6 daily origins: the banded folds (the old screen, score(calibrate(rows))) are
    conformal from the third origin on; the screen's own-interval folds give the same
    folds, in the same order, with the same MASE bit for bit."""
    rows, panel = _rows(6, seed=4)
    settings = BacktestSettings()
    banded = score(calibrate(rows.copy(), panel, settings), panel, settings.quantiles)
    assert banded["conformal"].any() and not banded["conformal"].all()
    screened = _screen_folds(rows, panel, settings)
    assert not screened["conformal"].any()
    cols = [*KEY, "mase"]
    pd.testing.assert_frame_equal(screened[cols], banded[cols], check_exact=True)
    assert banded["mase"].nunique() == len(banded)  # every fold's MASE its own
