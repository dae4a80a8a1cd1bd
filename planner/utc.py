"""The warehouse's and planner's time convention: naive timestamps meaning UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd


def naive_utc(value: str | date | datetime | pd.Timestamp) -> pd.Timestamp:
    """``value`` as a naive UTC timestamp: an aware time is converted to UTC first (never
    just stripped of its zone); a naive one already means UTC."""
    t = pd.Timestamp(value)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def aware_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime: a naive one means UTC (the convention above), an
    aware one is converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
