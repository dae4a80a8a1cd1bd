"""One quantile list, one column spelling: the warehouse's (migration 0009)."""

from __future__ import annotations

from pathlib import Path

from planner.quantiles import QUANTILE_COLUMNS, QUANTILES, column_quantile, quantile_column


def test_columns_round_trip_and_match_the_forecasts_table() -> None:
    assert quantile_column(0.95) == "q_0_95" and quantile_column(0.025) == "q_0_025"
    assert [column_quantile(c) for c in QUANTILE_COLUMNS] == list(QUANTILES)
    ddl = (Path(__file__).parents[2] / "sql/migrations/0009_create_forecasts.sql").read_text()
    stored = [w for w in ddl.replace(",", " ").split() if w.startswith("q_")]
    assert stored == list(QUANTILE_COLUMNS)
