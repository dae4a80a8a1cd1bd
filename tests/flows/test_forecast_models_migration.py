"""Migration 0050: a warehouse whose ``forecast_models`` holds pickles is opened with the table
recreated empty with a JSON ``state`` (the pickles are never read), the selection's backtest
rows kept; opening again changes nothing; the next forecast then runs the selection first."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from flows.warehouse import migrations
from flows.warehouse.connection import connect
from flows.warehouse.selections import load_models

T = datetime(2024, 6, 17)


def test_pickled_selections_are_dropped_and_the_rest_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.duckdb"
    old = [(v, f) for v, f in migrations.migration_files() if v < 50]
    with monkeypatch.context() as m:
        m.setattr(migrations, "migration_files", lambda: old)
        con = connect(path)
    con.execute(
        "INSERT INTO forecast_models VALUES (?, 'us-east|m1|IW-F|token_rate', 'ets', NULL, NULL, "
        "NULL, 'test', '\\x80\\x05N.'::BLOB)",  # pickle.dumps(None)
        [T],
    )
    con.execute(
        "INSERT INTO forecast_backtests (selected_at, series, region, model, tier, metric, "
        "forecaster, folds, chosen, champion) VALUES (?, 'us-east|m1|IW-F|token_rate', "
        "'us-east', 'm1', 'IW-F', 'token_rate', 'ets', 3, true, 'ets')",
        [T],
    )
    con.close()
    for _ in range(2):
        with connect(path) as con:
            described = con.execute("DESCRIBE forecast_models").fetchall()
            columns = {row[0]: row[1] for row in described}
            assert "payload" not in columns and columns["state"] == "JSON"
            assert con.execute("SELECT count(*) FROM forecast_models").fetchone() == (0,)
            assert con.execute("SELECT count(*) FROM forecast_backtests").fetchone() == (1,)
            assert load_models(con, T) == (None, {})
