"""Coherent totals: reconciled forecasts add up at every level; totals built from the mart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.forecast.reconcile import (
    level_of,
    projection,
    reconcile_rows,
    summing_matrix,
    with_totals,
)
from tests.helpers import demand_frame

BOTTOMS = ["a|m|IW-F|token_rate", "a|m|NIW|token_rate", "b|m|IW-F|token_rate"]
TOTAL, REGION_A, REGION_B = "*|m|*|token_rate", "a|m|*|token_rate", "b|m|*|token_rate"


def _rows(points: dict[str, list[float]], metric: str = "token_rate") -> pd.DataFrame:
    frames = []
    for series, values in points.items():
        frames.append(
            pd.DataFrame(
                {
                    "series": series.replace("token_rate", metric),
                    "origin": pd.Timestamp("2024-06-10"),
                    "h": np.arange(1, len(values) + 1),
                    "point": values,
                    "scale": {TOTAL: 4.0, REGION_A: 3.0, REGION_B: 1.0}.get(series, 1.0),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


INCOHERENT = {
    TOTAL: [12.0, 20.0],  # bottoms add up to 10 and 16
    REGION_A: [7.0, 9.0],
    REGION_B: [3.0, 5.0],
    BOTTOMS[0]: [4.0, 6.0],
    BOTTOMS[1]: [2.0, 4.0],
    BOTTOMS[2]: [4.0, 6.0],
}


def test_summing_matrix_orders_total_regions_then_bottoms() -> None:
    nodes, s = summing_matrix(BOTTOMS)
    assert nodes == [TOTAL, REGION_A, REGION_B, *BOTTOMS]
    np.testing.assert_array_equal(s[0], [1, 1, 1])
    np.testing.assert_array_equal(s[1], [1, 1, 0])
    np.testing.assert_array_equal(s[3:], np.eye(3))
    assert [level_of(n) for n in nodes] == ["model", "region_model", "region_model"] + [
        "bottom"
    ] * 3


@pytest.mark.parametrize("method", ["bu", "ols", "wls"])
def test_reconciled_totals_add_up(method: str) -> None:
    rows = _rows(INCOHERENT)
    rows["reconciled"] = reconcile_rows(rows, method)
    wide = rows.pivot_table(index="h", columns="series", values="reconciled")
    np.testing.assert_allclose(wide[TOTAL], wide[BOTTOMS].sum(axis=1))
    np.testing.assert_allclose(wide[REGION_A], wide[BOTTOMS[:2]].sum(axis=1))
    np.testing.assert_allclose(wide[REGION_B], wide[BOTTOMS[2]])
    # the base forecasts were not coherent, so something moved
    assert not np.allclose(rows["reconciled"], rows["point"])


def test_bottom_up_keeps_bottoms_and_ols_moves_them() -> None:
    rows = _rows(INCOHERENT)
    bu = reconcile_rows(rows, "bu")
    ols = reconcile_rows(rows, "ols")
    bottom = rows["series"].isin(BOTTOMS)
    np.testing.assert_allclose(bu[bottom], rows.loc[bottom, "point"])
    assert not np.allclose(ols[bottom], rows.loc[bottom, "point"])
    # the totals said "more": OLS raises the bottoms' sum above bottom-up's
    assert ols[rows["series"] == TOTAL].iloc[0] > bu[rows["series"] == TOTAL].iloc[0]


@pytest.mark.parametrize("method", ["ols", "wls"])
def test_coherent_forecasts_are_left_unchanged(method: str) -> None:
    coherent = dict(INCOHERENT) | {TOTAL: [10.0, 16.0], REGION_A: [6.0, 10.0], REGION_B: [4, 6]}
    rows = _rows(coherent)
    np.testing.assert_allclose(reconcile_rows(rows, method), rows["point"])


def test_peak_minute_and_incomplete_hierarchies_keep_their_base_points() -> None:
    peak = _rows(INCOHERENT, metric="peak_token_rate")
    np.testing.assert_allclose(reconcile_rows(peak, "ols"), peak["point"])
    missing = _rows({k: v for k, v in INCOHERENT.items() if k != REGION_B})
    np.testing.assert_allclose(reconcile_rows(missing, "ols"), missing["point"])
    # a lead where one node has no point keeps its base points; the other lead is reconciled
    rows = _rows(INCOHERENT)
    gap = rows[~((rows["series"] == REGION_B) & (rows["h"] == 2))].reset_index(drop=True)
    out = reconcile_rows(gap, "ols")
    second = (gap["h"] == 2).to_numpy()
    np.testing.assert_allclose(out[second], gap.loc[second, "point"])
    assert not np.allclose(out[~second], gap.loc[~second, "point"])


def test_wls_trusts_the_node_with_the_smaller_scale_more() -> None:
    _, s = summing_matrix(BOTTOMS)
    p = projection(s, "wls", np.array([100.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    y = np.array([50.0, 7.0, 3.0, 4.0, 2.0, 4.0])  # a far-off total with a huge scale
    ols = projection(s, "ols") @ y
    assert abs((p @ y)[0] - 10.0) < 0.5 < abs(ols[0] - 10.0)
    with pytest.raises(ValueError, match="scale"):
        projection(s, "wls", np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0]))


def test_with_totals_adds_region_and_model_totals_of_the_mart() -> None:
    demand = demand_frame(days=1)
    out = with_totals(demand)
    hour = out[out["hour"] == out["hour"].min()]
    total = hour[(hour["region"] == "*") & (hour["tier"] == "*")]
    assert len(total) == 1
    assert (
        total["requests"].iloc[0]
        == demand[demand["hour"] == hour["hour"].iloc[0]]["requests"].sum()
    )
    east = hour[(hour["region"] == "us-east") & (hour["tier"] == "*")]
    parts = hour[(hour["region"] == "us-east") & (hour["tier"] != "*")]
    assert east["token_rate"].iloc[0] == pytest.approx(parts["token_rate"].sum())
    assert len(out) == len(demand) + 24 * 3  # 2 region totals + 1 model total per hour
