"""The backtest's nowcasts read what the hourly job had read at its run time, never a later
minute (issue #18): the job runs at minute 60 - ``planner.plan_lead_min`` of hour t and
nowcasts hour t (lead 1) from its minutes so far; the selection calibrates the nowcast on
the same reading of each backtest origin's hour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.forecasting import minutes_so_far, origin_readings, run_minute, settings_from_config
from flows.warehouse.connection import connect
from flows.warehouse.sqlfiles import insert_frame
from planner.config import FleetConfig

AS_OF = pd.Timestamp("2024-06-05 00:00")
HOUR = AS_OF - pd.Timedelta(hours=24)  # a backtest origin of the selection at AS_OF
SERIES = "us-east|m1|IW-F|"


def _requests(start: pd.Timestamp, minutes: range, tokens: int, tag: str) -> pd.DataFrame:
    """One request per minute (tokens growing with the minute, so each minute is seen)."""
    times = [start + pd.Timedelta(minutes=m, seconds=30) for m in minutes]
    n = len(times)
    return pd.DataFrame(
        {
            "request_id": [f"{tag}{i}" for i in range(n)],
            "arrival_time": times,
            "region": "us-east",
            "model": "m1",
            "tier": "IW-F",
            "input_tokens": [tokens + m for m in minutes],
            "output_tokens": np.zeros(n, dtype=np.int64),
            "tenant": None,
            "ttft_ms": np.nan,
            "e2e_ms": np.nan,
            "file_key": 1,
        }
    )


@pytest.fixture
def late_cfg(cfg: FleetConfig) -> FleetConfig:
    """A plan made 25 minutes ahead: the job runs at minute 35, not the default 40."""
    return cfg.model_copy(update={"planner": cfg.planner.model_copy(update={"plan_lead_min": 25})})


def test_the_backtest_reads_the_minutes_the_hourly_job_had(
    tmp_path: Path, late_cfg: FleetConfig
) -> None:
    settings = settings_from_config(late_cfg)
    minute = run_minute(late_cfg)
    assert minute == 35 == settings.nowcast_minutes
    with connect(tmp_path / "wh.duckdb") as con:
        insert_frame(con, "requests", _requests(HOUR, range(60), 100, "a"))
        backtest = origin_readings(con, AS_OF, settings)
        live = minutes_so_far(con, HOUR, HOUR + pd.Timedelta(minutes=minute))
        assert live is not None
        for metric in ("token_rate", "request_rate", "peak_token_rate"):
            assert backtest[(SERIES + metric, HOUR)] == pytest.approx(live[SERIES + metric])
        # minutes 0..34: 35 requests, the busiest minute 134 tokens
        assert live[SERIES + "request_rate"] == pytest.approx(35 / (60 * 35))
        assert live[SERIES + "peak_token_rate"] == pytest.approx(134 / 60)

        # anything from the run time on (a burst in minutes 35-59) changes nothing
        insert_frame(con, "requests", _requests(HOUR, range(35, 60), 10**6, "b"))
        after = origin_readings(con, AS_OF, settings)
        pd.testing.assert_series_equal(after, backtest)
        assert minutes_so_far(con, HOUR, HOUR + pd.Timedelta(minutes=minute)) == live

        # a minute before it does (the reading is not blind)
        insert_frame(con, "requests", _requests(HOUR, range(34, 35), 10**6, "c"))
        before = origin_readings(con, AS_OF, settings)
        assert before[(SERIES + "peak_token_rate", HOUR)] > 10**4
