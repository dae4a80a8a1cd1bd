"""One naive-UTC helper: an aware time is converted before its zone is dropped."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from planner.utc import naive_utc


def test_aware_times_are_converted_naive_ones_mean_utc() -> None:
    ny = datetime(2024, 6, 10, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    assert naive_utc(ny) == pd.Timestamp("2024-06-10 12:00")
    assert naive_utc("2024-06-10T14:00+02:00") == pd.Timestamp("2024-06-10 12:00")
    assert naive_utc("2024-06-10 12:00") == pd.Timestamp("2024-06-10 12:00")
    assert naive_utc(ny).tzinfo is None
