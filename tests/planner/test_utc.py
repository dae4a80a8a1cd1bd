"""One naive-UTC helper: an aware time is converted before its zone is dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from planner.utc import aware_utc, naive_utc


def test_aware_times_are_converted_naive_ones_mean_utc() -> None:
    ny = datetime(2024, 6, 10, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    assert naive_utc(ny) == pd.Timestamp("2024-06-10 12:00")
    assert naive_utc("2024-06-10T14:00+02:00") == pd.Timestamp("2024-06-10 12:00")
    assert naive_utc("2024-06-10 12:00") == pd.Timestamp("2024-06-10 12:00")
    assert naive_utc(ny).tzinfo is None


def test_aware_utc_converts_aware_times_and_reads_naive_ones_as_utc() -> None:
    ny = datetime(2024, 6, 10, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    assert aware_utc(ny) == datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
    assert aware_utc(ny).utcoffset() == timedelta(0)
    assert aware_utc(datetime(2024, 6, 10, 12, 0)) == datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
