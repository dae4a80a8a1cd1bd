"""The forecasts table's pandera model: one field covers every stored quantile column."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pandera.errors
import pytest

from planner.quantiles import QUANTILE_COLUMNS
from validation.forecasts import Forecasts


def _frame() -> pd.DataFrame:
    row: dict[str, object] = {
        "origin": pd.Timestamp("2024-06-10"),
        "hour": pd.Timestamp("2024-06-10 01:00"),
        "h": 1,
        "region": "eastus",
        "model": "llama2-70b",
        "tier": "IW-F",
        "metric": "token_rate",
        "point": 3.0,
        "forecaster": "snaive24",
    }
    row.update({c: float(i) for i, c in enumerate(QUANTILE_COLUMNS)})
    return pd.DataFrame([row])


def test_a_complete_ordered_frame_passes() -> None:
    Forecasts.validate(_frame(), lazy=True)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda d: d.drop(columns=["q_0_9"]), "every quantile column is present"),
        (lambda d: d.assign(q_0_025=-1.0), "q_0_025"),
        (lambda d: d.assign(q_0_95=0.5), "quantiles must not cross"),
    ],
    ids=["missing", "negative", "crossing"],
)
def test_each_quantile_column_is_checked(
    break_it: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(pandera.errors.SchemaErrors, match=message):
        Forecasts.validate(break_it(_frame()), lazy=True)
