"""The forecasting issue's bar on the real-traffic test bed: on 10 days of ServeGen-derived
logs the deployed selection beats seasonal naive by ≥ 15 % on aggregate MASE for the demand
the planner sizes on (token rate, peak-minute token rate) and the 95 % band covers 90-98 %.
Deterministic (seeded data, deterministic models), so a drop is a regression, not noise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from forecast_accuracy import build, evaluate


@pytest.mark.slow
def test_servegen_backtest_beats_seasonal_naive(tmp_path: Path, shared_data: Path) -> None:
    result = evaluate(build(tmp_path, scale=0.002, seed=7))
    for metric in ("token_rate", "peak_token_rate"):
        s = result["by_metric"][metric]
        assert s["improvement_vs_snaive24"] >= 0.15, (metric, s)
        assert 0.90 <= s["band95_coverage"] <= 0.98, (metric, s)
        assert 0.90 <= s["p95_coverage"] <= 0.98, (metric, s)
