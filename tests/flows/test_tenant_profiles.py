"""The tenant profile mart (sql/marts/tenant_profiles.sql) on rows computed by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest

from flows.fairness import learn_profiles
from flows.warehouse.sqlfiles import run

T0 = datetime(2024, 6, 3)


def insert(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, float, str, int, int]]) -> None:
    for i, (tenant, t, tier, inp, out) in enumerate(rows):
        con.execute(
            "INSERT INTO requests VALUES (?, ?, 'r', 'm', ?, ?, ?, ?, NULL, NULL, 1)",
            [f"q{i}", T0 + timedelta(seconds=t), tier, inp, out, tenant],
        )


def test_profile_mart_by_hand(warehouse: duckdb.DuckDBPyConnection) -> None:
    """Tenant a: two actions (0, 0.5, 0.9 s within 1 s of each other; then 100 s): 4 requests,
    2 actions → 2 per action; input mean 250, output mean 25; IW-F 3 of 4. Tenant b: one
    request. A row outside the window and a row without a tenant are left out."""
    insert(
        warehouse,
        [
            ("a", 0.0, "IW-F", 100, 10),
            ("a", 0.5, "IW-F", 200, 20),
            ("a", 0.9, "IW-F", 300, 30),
            ("a", 100.0, "NIW", 400, 40),
            ("b", 50.0, "IW-N", 1000, 5),
            ("a", 4000.0, "IW-F", 9999, 999),  # outside [0, 3600)
        ],
    )
    warehouse.execute(
        "INSERT INTO requests VALUES ('x', ?, 'r', 'm', 'IW-F', 1, 1, NULL, NULL, NULL, 1)",
        [T0],
    )
    df = run(
        warehouse,
        "marts/tenant_profiles",
        start=T0,
        end=T0 + timedelta(hours=1),
        action_gap_s=1.0,
    ).df()
    a = df.set_index("tenant").loc["a"]
    assert list(df["tenant"]) == ["a", "b"]
    assert a["requests"] == 4
    assert a["requests_per_s"] == pytest.approx(4 / 3600)
    assert a["mean_input"] == pytest.approx(250.0) and a["mean_output"] == pytest.approx(25.0)
    assert a["requests_per_action"] == pytest.approx(2.0)
    assert a["iwf_share"] == pytest.approx(0.75) and a["niw_share"] == pytest.approx(0.25)
    b = df.set_index("tenant").loc["b"]
    assert b["requests_per_action"] == pytest.approx(1.0) and b["iwn_share"] == pytest.approx(1.0)


def test_learn_profiles_from_scenario_rows() -> None:
    """The scenario's path: rows with seconds ``t`` into an in-memory warehouse, the mart out."""
    hist = pd.DataFrame(
        {
            "t": [0.0, 0.2, 10.0, 20.0],
            "region": "r",
            "model": "m",
            "tier": ["IW-F", "IW-F", "NIW", "IW-F"],
            "input_tokens": [10, 20, 30, 40],
            "output_tokens": [1, 2, 3, 4],
            "tenant": ["a", "a", "a", "b"],
        }
    )
    df = learn_profiles(hist).set_index("tenant")
    assert df.loc["a", "requests"] == 3 and df.loc["a", "requests_per_action"] == pytest.approx(1.5)
    assert df.loc["b", "mean_input"] == pytest.approx(40.0)


def test_tenant_traffic_of_the_hour_by_hand(warehouse: duckdb.DuckDBPyConnection) -> None:
    """Day before: a and b each cost 100 + 2·50 = 200 → usual shares 0.5 / 0.5. The hour: a
    sends 4 requests (800), b 1 (200), c 1 (200, never seen): shares 2/3, 1/6, 1/6. With
    headroom 1.2: a (0.667 > 0.6) and c (> 0) exceeded, b did not."""
    hour = 86_400.0
    insert(
        warehouse,
        [
            ("a", 100.0, "IW-F", 100, 50),
            ("b", 200.0, "IW-F", 100, 50),
            *[("a", hour + 10.0 * k, "IW-F", 100, 50) for k in range(4)],
            ("b", hour + 5.0, "IW-F", 100, 50),
            ("c", hour + 6.0, "IW-F", 100, 50),
        ],
    )
    start = T0 + timedelta(seconds=hour)
    df = run(
        warehouse,
        "reports/tenant_traffic",
        start=start,
        end=start + timedelta(hours=1),
        headroom=1.2,
    ).df()
    got = df.set_index("tenant")
    assert list(df["tenant"]) == ["a", "b", "c"]
    assert got.loc["a", "requests"] == 4 and got.loc["a", "cost"] == 800
    assert got.loc["a", "share"] == pytest.approx(2 / 3)
    assert got.loc["b", "usual_share"] == pytest.approx(0.5)
    assert got["exceeded"].tolist() == [True, False, True]
