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
from flows.forecasting import run_forecast, run_selection
from flows.warehouse.connection import connect
from flows.warehouse.selections import load_models
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
    warehouse_path: Path, quick_cfg: FleetConfig
) -> None:
    # which forecasters the later selection holds is not under test, only when it was made:
    # a seasonal-naive one stands for it (the default grid's is the previous test's)
    with connect(warehouse_path) as con:
        later = START + pd.Timedelta(days=9)
        run_selection(con, quick_cfg, later, workers=1)
        selected_at, _ = load_models(con, START + pd.Timedelta(days=8, hours=5))
        assert selected_at == pd.Timestamp("2024-06-11")  # not the one at 06-12
        selected_at, _ = load_models(con, START + pd.Timedelta(days=1))
        assert selected_at is None


def test_cli_backtest_forecast_characterize(
    warehouse_path: Path, quick_config: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    # the commands' wiring and outputs are under test, not the grid's choice: the backtest
    # selects among the seasonal-naive candidates (the report's rows are the same per series)
    wh = ["--config", str(quick_config), "--warehouse", str(warehouse_path)]
    result = runner.invoke(app, [*wh, "backtest", "--out", str(tmp_path / "bt"), "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload["by_metric"]) == {"token_rate", "request_rate", "peak_token_rate"}
    assert {"mase", "snaive24_mase", "band95_coverage"} <= set(payload["overall"])
    assert set(payload["by_horizon"]) == {"token_rate", "request_rate", "peak_token_rate", "all"}
    lead1 = payload["by_horizon"]["all"]["1"]
    assert set(payload["by_horizon"]["all"]) == {"1", "2", "6", "24", "1-24"}
    assert lead1["points"] > 0 and lead1["snaive24_mase"] > 0 and "snaive168_mase" in lead1
    assert {"band95_below", "band95_above", "band95_coverage_se"} <= set(lead1)
    leads = payload["by_horizon_leads"]  # what each lead is, as the hourly job meets it
    assert "hour in progress" in leads["1"] and "40 minutes read" in leads["1"]
    assert "carries out" in leads["2"]
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
    missing = runner.invoke(
        app, ["--warehouse", str(tmp_path / "missing.duckdb"), "backtest", "--json"]
    )
    assert missing.exit_code == 1
    assert "no warehouse at" in missing.stderr  # a mistyped path is not an empty warehouse
    assert not (tmp_path / "missing.duckdb").exists()
    connect(tmp_path / "empty.duckdb", create=True).close()  # migrated, no requests
    result = runner.invoke(
        app, ["--warehouse", str(tmp_path / "empty.duckdb"), "backtest", "--json"]
    )
    assert result.exit_code == 1
    assert "ingest request logs first" in result.stderr


def test_the_hour_in_progress_is_nowcast_from_its_minutes_so_far(
    warehouse_path: Path, cfg: FleetConfig
) -> None:
    from flows.forecasting import minutes_so_far

    origin = pd.Timestamp("2024-06-11 10:00")
    with connect(warehouse_path) as con:
        readings = minutes_so_far(con, origin, origin + pd.Timedelta(minutes=40))
        assert readings is not None and len(readings) > 0
        # the reading is the arrivals before the moment, nothing later
        count = con.execute(
            "SELECT region, model, tier, count(*) FROM requests WHERE arrival_time >= ? "
            "AND arrival_time < ? GROUP BY ALL",
            [origin.to_pydatetime(), (origin + pd.Timedelta(minutes=40)).to_pydatetime()],
        ).fetchall()
        for region, model, tier, n in count:
            assert readings[f"{region}|{model}|{tier}|request_rate"] == pytest.approx(n / 2400)
        assert minutes_so_far(con, origin, origin + pd.Timedelta(minutes=5)) is None
        plain, info0 = run_forecast(con, cfg, origin, horizon=6)
        nowcast, info = run_forecast(con, cfg, origin + pd.Timedelta(minutes=40), horizon=6)
    assert info0["nowcast_minutes"] == 0 and info["nowcast_minutes"] == 40
    assert (nowcast["origin"] == origin).all()
    first = nowcast["h"] == 1
    assert not (
        nowcast.loc[first, "point"].to_numpy() == plain.loc[first, "point"].to_numpy()
    ).all()


def test_a_global_model_is_stored_once_and_relinked_on_load(
    warehouse_path: Path, cfg: FleetConfig
) -> None:
    from planner.forecast.gbm import GlobalGBM

    forecast_cfg = cfg.forecast.model_copy(update={"candidates": ["gbm"], "champion": "gbm"})
    gcfg = cfg.model_copy(update={"forecast": forecast_cfg})
    as_of = START + pd.Timedelta(days=8, hours=6)
    with connect(warehouse_path) as con:
        selection = run_selection(con, gcfg, as_of, workers=1)
        assert "gbm" in set(selection.folds["forecaster"])
        chose = [s for s, f in selection.fitted.items() if f.forecaster == "gbm"]
        assert len(chose) > 0
        stored = con.execute(
            "SELECT series, strlen(state::VARCHAR) FROM forecast_models WHERE selected_at = ?",
            [pd.Timestamp(as_of).tz_localize(None).to_pydatetime()],
        ).fetchall()
        shared = [size for series, size in stored if series.startswith("_shared|")]
        per_series = [size for series, size in stored if not series.startswith("_shared|")]
        assert len(shared) == 1 and max(per_series) < shared[0] / 5  # booster stored once
        _, models = load_models(con, as_of)
    assert set(models) == set(selection.fitted)
    for series in chose:
        assert isinstance(models[series].model, GlobalGBM)
