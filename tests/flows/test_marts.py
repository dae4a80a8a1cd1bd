"""The hourly demand mart on hand-computable rows: rates, the peak minute, gaps vs zeros."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.marts import refresh_demand

HEADER = "request_id,arrival_time,region,model,tier,input_tokens,output_tokens\n"
NOW = datetime(2024, 7, 1, tzinfo=UTC)


def _file(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    first = _file(
        tmp_path / "f1.csv",
        [
            "r1,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,100,20",
            "r2,2024-06-03T10:00:30Z,us-east,llama2-70b,IW-F,200,40",
            "r3,2024-06-03T10:45:00Z,us-east,llama2-70b,IW-F,60,0",
            "r4,2024-06-03T10:30:00Z,us-west,llama3.2-3b,NIW,1000,10",
        ],
    )
    second = _file(
        tmp_path / "f2.csv",
        [
            "r5,2024-06-03T12:10:00Z,us-east,llama2-70b,IW-F,30,30",
            "r6,2024-06-03T12:40:00Z,us-east,llama2-70b,IW-F,30,30",
        ],
    )
    return first, second


def _mart(con, series: tuple[str, str, str]) -> dict[int, tuple]:  # type: ignore[no-untyped-def]
    rows = con.execute(
        "SELECT hour, requests, input_tokens, output_tokens, token_rate, peak_minute_token_rate, "
        "peak_minute_requests, coverage FROM demand_hourly "
        "WHERE region = ? AND model = ? AND tier = ? ORDER BY hour",
        list(series),
    ).fetchall()
    return {r[0].hour: r[1:] for r in rows}


def test_hourly_figures_by_hand(warehouse, contract, two_files) -> None:  # type: ignore[no-untyped-def]
    ingest_paths(warehouse, list(two_files), SourceSpec(), contract, NOW)
    refreshed = refresh_demand(warehouse)
    assert (refreshed.start_hour, refreshed.end_hour) == (
        datetime(2024, 6, 3, 10),
        datetime(2024, 6, 3, 12),
    )
    east = _mart(warehouse, ("us-east", "llama2-70b", "IW-F"))
    requests, tin, tout, rate, peak, peak_req, coverage = east[10]
    assert (requests, tin, tout, peak_req) == (3, 360, 60, 2)
    assert coverage == pytest.approx(45 / 60)  # file 1 spans 10:00-10:45
    assert rate == pytest.approx(420 / (0.75 * 3600))  # tokens per observed second
    assert peak == pytest.approx((100 + 20 + 200 + 40) / 60)  # the 10:00 minute
    # 11:00 lies in no file's span: a collection gap, not zero demand
    assert east[11][0] == 0 and east[11][-1] == 0
    # 12:00: file 2 spans 12:10-12:40, half the hour
    assert east[12][:3] == (2, 60, 60) and east[12][-1] == pytest.approx(0.5)
    # us-west had no requests at 10:00-10:45 except r4; at 12:00 it is a real zero
    west = _mart(warehouse, ("us-west", "llama3.2-3b", "NIW"))
    assert west[12][0] == 0 and west[12][-1] == pytest.approx(0.5)


def test_incremental_refresh_equals_full_refresh(warehouse, contract, two_files) -> None:  # type: ignore[no-untyped-def]
    first, second = two_files
    ingest_paths(warehouse, [first], SourceSpec(), contract, NOW)
    refresh_demand(warehouse)
    ingest_paths(warehouse, [second], SourceSpec(), contract, NOW)
    refresh_demand(warehouse)
    incremental = warehouse.execute("SELECT * FROM demand_hourly ORDER BY ALL").fetchall()
    refresh_demand(warehouse, full=True)
    full = warehouse.execute("SELECT * FROM demand_hourly ORDER BY ALL").fetchall()
    assert incremental == full
    assert refresh_demand(warehouse).rows == 0  # nothing pending: a no-op
