"""The data-quality gate: bands learned from history, a volume collapse caught, Data Docs
written (also to a relative folder, as `make demo` passes one)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from validation.quality import learn_bands, run_checkpoint

HOUR = pd.Timestamp("2024-06-10 12:00")
TIERS = ["IW-F", "IW-N", "NIW"]


def history() -> pd.DataFrame:
    rows = []
    for day in range(1, 8):
        hour = HOUR - pd.Timedelta(days=day)
        for tier, n in zip(TIERS, (400 + day, 300, 300), strict=True):
            rows.append({"hour": hour, "tier": tier, "requests": n})
        rows.append({"hour": hour + pd.Timedelta(hours=1), "tier": "IW-F", "requests": 5})
    return pd.DataFrame(rows)


def requests(n: int) -> pd.DataFrame:
    tiers = (TIERS * n)[:n]
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "arrival_time": [HOUR + pd.Timedelta(seconds=3600 * i / n) for i in range(n)],
            "region": "us-east",
            "model": "m",
            "tier": tiers,
            "input_tokens": 100,
            "output_tokens": 50,
        }
    )


def bands():  # type: ignore[no-untyped-def]
    return learn_bands(
        history(),
        HOUR,
        regions=["us-east"],
        models=["m"],
        tiers=TIERS,
        max_input_tokens=10_000,
        max_output_tokens=10_000,
    )


def test_bands_come_from_the_same_hour_of_past_days() -> None:
    b = bands()
    assert b.volume == pytest.approx((0.5 * 1001, 1.5 * 1007))  # not the 5-request hours
    lo, hi = b.tier_share["IW-F"]
    assert lo < 401 / 1001 and hi > 407 / 1007


def test_normal_hour_passes_and_collapse_fails_with_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files = pd.DataFrame(
        [{"path": "a.parquet", "status": "loaded", "rows_read": 10, "duplicates_skipped": 0}]
    )
    shares = pd.DataFrame([{"share_IW-F": 0.4, "share_IW-N": 0.3, "share_NIW": 0.3}])
    ok = run_checkpoint(
        {"requests_last_hour": requests(1000), "tier_shares": shares, "ingested_files": files},
        bands(),
        Path("docs"),  # relative, as `make demo` passes it
        "ok",
    )
    assert ok.success, ok.failed
    assert ok.docs_index == (tmp_path / "docs" / "index.html")
    resent = files.assign(duplicates_skipped=10)
    bad = run_checkpoint(
        {"requests_last_hour": requests(20), "tier_shares": shares, "ingested_files": resent},
        bands(),
        Path("docs"),
        "bad",
    )
    assert not bad.success
    assert any("expect_table_row_count_to_be_between" in f for f in bad.failed)
    assert any(f.startswith("ingested_files") and "duplicates_skipped" in f for f in bad.failed)
