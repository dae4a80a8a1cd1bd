"""The daily-retrain flow run end to end (real Prefect, ephemeral API) on a tiny log: the
selection at midnight of ``as_of`` is stored where the hourly forecast finds it, and its
backtest report is written under ``out``."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.warehouse.connection import connect
from flows.warehouse.selections import load_models
from planner.config import FleetConfig
from planner.workload.synth import SynthSpec
from tests.flows.warehouses import synth_warehouse

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_daily_retrain_stores_the_selection_the_next_hours_forecast_from(
    tmp_path: Path, cfg: FleetConfig, shared_data: Path
) -> None:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from flows.scheduled import daily_retrain

    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    data["forecast"].update(  # the two seasonal baselines, a short history, one process
        candidates=["snaive24", "snaive168"],
        champion="snaive24",
        history_days=8,
        backtest_days=2,
        screen_origins=1,
        min_folds=1,
        workers=1,
    )
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(data))
    spec = SynthSpec(days=9, seed=7, requests_per_day=8_000)
    wh = synth_warehouse(tmp_path / "logs", cfg, shared_data, spec, tmp_path / "wh.duckdb")

    out = daily_retrain(str(small), str(wh), str(tmp_path / "out"), "2024-06-11T07:30")

    series = len(cfg.region_ids) * len(cfg.model_ids) * len(cfg.tier_ids)
    assert out["as_of"] == "2024-06-11 00:00:00"  # midnight UTC of as_of
    assert out["series"] > 0 and sum(out["chosen"].values()) == out["series"]
    assert set(out["chosen"]) <= {"snaive24", "snaive168"}
    assert Path(out["report"]).is_file()
    with connect(wh, read_only=True) as con:
        selected_at, models = load_models(con, pd.Timestamp("2024-06-11 09:00"))
        assert load_models(con, pd.Timestamp("2024-06-10 23:00"))[0] is None
    assert selected_at == pd.Timestamp("2024-06-11")
    assert len(models) == out["series"] and out["series"] % series == 0
