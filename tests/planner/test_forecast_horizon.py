"""The coverage report per lead: where the band misses, and how much a coverage figure can
resolve when its points share a few origins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.forecast.horizon import band_misses, lead_definitions, lead_summary


def _rows(hits_per_origin: list[list[int]], below: bool = True) -> pd.DataFrame:
    """Deployed rows at one lead: per origin, 1 = inside the band [9, 11], 0 = a miss."""
    frames = []
    for k, hits in enumerate(hits_per_origin):
        hit = np.asarray(hits, dtype=bool)
        miss = 5.0 if below else 15.0
        actual = np.where(hit, 10.0, miss)
        frames.append(
            pd.DataFrame(
                {
                    "series": [f"s{i}|token_rate" for i in range(len(hits))],
                    "origin": pd.Timestamp("2024-06-05") + pd.Timedelta(days=k),
                    "h": 24,
                    "actual": actual,
                    "point": 10.0,
                    "q_0_025": 9.0,
                    "q_0_975": 11.0,
                    "in_band": hit,
                    "conformal": True,
                    "err": np.abs(actual - 10.0),
                    "snaive24_err": 1.0,
                    "snaive168_err": 1.0,
                    "pinball": 0.1,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_misses_are_split_below_and_above_and_located_by_origin() -> None:
    rows = _rows([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    out = band_misses(rows)
    assert out["band95_below"] == pytest.approx(3 / 12)
    assert out["band95_above"] == 0.0
    assert out["band95_worst_origin_miss_share"] == 1.0  # every miss on one day
    above = band_misses(_rows([[0, 1], [1, 0]], below=False))
    assert above["band95_above"] == 0.5 and above["band95_below"] == 0.0
    assert above["band95_worst_origin_miss_share"] == 0.5


def test_coverage_error_counts_origins_not_points() -> None:
    """The same 75 % coverage: misses spread evenly over origins leave no doubt about it;
    misses that all fall on one of four origins make it uncertain, however many points."""
    spread = _rows([[1, 1, 1, 0]] * 4)
    clustered = _rows([[1, 1, 1, 1]] * 3 + [[0, 0, 0, 0]])
    assert spread["in_band"].mean() == clustered["in_band"].mean() == 0.75
    assert band_misses(spread)["band95_coverage_se"] == pytest.approx(0.0)
    # four origins at 1, 1, 1, 0: the standard error of their mean, sqrt(0.75·0.25/3)
    assert band_misses(clustered)["band95_coverage_se"] == pytest.approx(np.sqrt(0.1875 / 3))
    summary = lead_summary(clustered)
    assert summary["band95_coverage"] == 0.75 and "band95_coverage_se" in summary
    # no conformal row: the keys are there, without a figure
    empty = band_misses(clustered.iloc[:0])
    assert set(empty) == set(band_misses(clustered)) and all(np.isnan(v) for v in empty.values())


def test_the_band_states_the_origins_it_rests_on_and_the_reading_stays_at_lead_1() -> None:
    rows = _rows([[1, 1], [1, 0], [1, 1]])
    rows["conformal"] = rows["origin"] != rows["origin"].min()  # the first origin: native
    summary = lead_summary(rows)
    assert summary["origins"] == 3 and summary["points"] == 6
    assert summary["band95_origins"] == 2 and summary["band95_points"] == 4
    assert summary["band95_coverage"] == 0.75
    rows["nowcast_err"] = 0.5
    rows["reading_err"] = 0.25
    assert "reading_mase" not in lead_summary(rows)  # lead 24 rows: no reading figure
    first = rows.assign(h=1)
    assert lead_summary(first)["reading_improvement_vs_snaive24"] == pytest.approx(0.75)
    assert lead_summary(first)["nowcast_mase"] == pytest.approx(0.5)
    pooled = pd.concat([first, rows], ignore_index=True)
    assert "reading_mase" not in lead_summary(pooled)  # not in a pool over leads


def test_lead_definitions_say_what_the_hourly_job_has_read() -> None:
    leads = lead_definitions(35)
    assert set(leads) == {"1", "2", "6", "24", "1-24"}
    assert "hour in progress" in leads["1"] and "35 minutes read" in leads["1"]
    assert "minutes 0-34" in leads["1"] and "carries out" in leads["2"]
