"""Forecasting against a real warehouse: selection stored, forecasts stored idempotently, no
selection from the future, the CLI's JSON outputs and reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.forecasting import load_models, run_forecast, run_selection
from flows.warehouse.connection import connect
from planner.config import FleetConfig
from planner.workload.synth import SynthSpec
from tests.flows.warehouses import synth_warehouse

pytestmark = pytest.mark.slow
START = datetime(2024, 6, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def warehouse_path(
    tmp_path_factory: pytest.TempPathFactory, cfg: FleetConfig, shared_data: Path
) -> Path:
    root = tmp_path_factory.mktemp("fc")
    return synth_warehouse(
        root, cfg, shared_data, SynthSpec(days=9, seed=3, requests_per_day=30_000)
    )


def test_selection_and_forecast_are_stored_and_rerun_safely(
    warehouse_path: Path, cfg: FleetConfig
) -> None:
    as_of = START + pd.Timedelta(days=8)
    with connect(warehouse_path) as con:
        selection = run_selection(con, cfg, as_of, workers=2)
        assert len(selection.fitted) == 36 * 3
        frame, info = run_forecast(con, cfg, as_of + pd.Timedelta(hours=2), horizon=12)
        assert not info.get("selection_ran")  # the stored selection (2 h old) was used
        again, _ = run_forecast(con, cfg, as_of + pd.Timedelta(hours=2), horizon=12)
        rows = con.execute("SELECT count(*) FROM forecasts").fetchone()
        assert rows == (len(frame),) and len(again) == len(frame) == 108 * 12
        chosen = con.execute("SELECT count(*) FROM forecast_backtests WHERE chosen").fetchone()
        assert chosen == (108,)
        bad = con.execute(
            "SELECT count(*) FROM forecasts WHERE NOT (q_0_025 <= q_0_5 AND q_0_5 <= q_0_99)"
        ).fetchone()
        assert bad == (0,)


def test_a_forecast_never_uses_a_selection_made_after_its_origin(
    warehouse_path: Path, cfg: FleetConfig
) -> None:
    with connect(warehouse_path) as con:
        later = START + pd.Timedelta(days=9)
        run_selection(con, cfg, later, workers=1)
        selected_at, _ = load_models(con, START + pd.Timedelta(days=8, hours=5))
        assert selected_at == pd.Timestamp("2024-06-11")  # not the one at 06-12
        selected_at, _ = load_models(con, START + pd.Timedelta(days=1))
        assert selected_at is None


def test_cli_backtest_forecast_characterize(warehouse_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    wh = ["--warehouse", str(warehouse_path)]
    result = runner.invoke(app, [*wh, "backtest", "--out", str(tmp_path / "bt"), "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload["by_metric"]) == {"token_rate", "request_rate", "peak_token_rate"}
    assert Path(payload["plot"]).stat().st_size > 10_000
    assert "| metric | folds |" in Path(payload["report"]).read_text()

    result = runner.invoke(app, [*wh, "forecast", "--as-of", "2024-06-12T00:00Z", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    iwf = next(s for s in out["series"] if s["tier"] == "IW-F" and s["metric"] == "peak_token_rate")
    assert iwf["planning_quantile"] == 0.5 and iwf["planning_value_h1"] >= iwf["point_h1"] * 0.5

    result = runner.invoke(app, [*wh, "characterize", "--out", str(tmp_path / "ch"), "--json"])
    assert result.exit_code == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures["peak_hour_local"]) == {"us-east", "us-central", "us-west"}
    assert all(9 <= h <= 16 for h in figures["peak_hour_local"].values())
    assert len({*figures["peak_hour_utc"].values()}) > 1  # shifted by the time zones
    assert figures["hardest_series"]
    for png in figures["plots"].values():
        assert Path(png).stat().st_size > 5_000


def test_forecast_with_an_empty_mart_says_what_to_do(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["--warehouse", str(tmp_path / "empty.duckdb"), "backtest", "--json"]
    )
    assert result.exit_code == 1
    assert "ingest request logs first" in result.stderr
