"""Per-minute aggregates as a first-class input: they reconcile with the request rows they
summarise (same demand mart, same replay buckets); bad rows are named and quarantined, good
ones kept; files reconcile; re-ingest is a no-op; a bad file does not stop the others."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pandera.polars as pa
import polars as pl
import pytest

from flows.warehouse.aggregates import ingest_minute_paths
from flows.warehouse.connection import connect
from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.marts import refresh_demand
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from validation.requests import ingested_files

NOW = datetime(2024, 7, 1, tzinfo=UTC)
HEADER = "minute,region,model,tier,requests,input_tokens,output_tokens,cv"


# The contracts of the per-minute tables (what `sageserve ingest --format minute-aggregates`
# loads and quarantines; the product checks rows in SQL, sql/aggregates/check.sql).
def demand_minutes_schema(
    regions: Sequence[str], models: Sequence[str], tiers: Sequence[str]
) -> pa.DataFrameSchema:
    """A loaded aggregate row: known ids, whole non-negative counts, CV ≥ 0 or missing."""
    return pa.DataFrameSchema(
        {
            "minute": pa.Column(pl.Datetime("us"), nullable=False),
            "region": pa.Column(pl.String, pa.Check.isin(list(regions)), nullable=False),
            "model": pa.Column(pl.String, pa.Check.isin(list(models)), nullable=False),
            "tier": pa.Column(pl.String, pa.Check.isin(list(tiers)), nullable=False),
            "requests": pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            "input_tokens": pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            "output_tokens": pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            "cv": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
            "file_id": pa.Column(pl.String, pa.Check.str_length(64, 64), nullable=False),
        },
        unique=["minute", "region", "model", "tier"],
        name="demand_minutes",
        strict=True,
    )


demand_minutes_quarantine = pa.DataFrameSchema(
    {
        "file_id": pa.Column(pl.String, nullable=False),
        "path": pa.Column(pl.String, nullable=False),
        "row_number": pa.Column(pl.Int64, pa.Check.ge(1), nullable=True),
        "reason": pa.Column(pl.String, pa.Check.str_length(1, None), nullable=False),
        "raw": pa.Column(pl.String, nullable=True),
        "quarantined_at": pa.Column(pl.Datetime("us"), nullable=False),
    },
    name="demand_minutes_quarantine",
    strict=True,
)


def _rows(seed: int = 4) -> pd.DataFrame:
    """Three hours of requests in three series, bursty, with a quiet hour in one."""
    rng = np.random.default_rng(seed)
    parts = []
    start = pd.Timestamp("2024-06-03 10:00")
    for region, model, tier, n in (
        ("us-east", "llama2-70b", "IW-F", 4000),
        ("us-west", "llama3.1-8b", "NIW", 2500),
        ("us-central", "llama2-70b", "IW-N", 300),
    ):
        offsets = np.sort(rng.gamma(0.3, 1.0, n).cumsum())
        offsets = offsets / offsets[-1] * (3 * 3600 - 1)
        if tier == "IW-N":  # nothing in the middle hour
            offsets = offsets[(offsets < 3600) | (offsets >= 7200)]
        parts.append(
            pd.DataFrame(
                {
                    "arrival_time": start + pd.to_timedelta(offsets, unit="s"),
                    "region": region,
                    "model": model,
                    "tier": tier,
                    "input_tokens": rng.integers(1, 4000, len(offsets)),
                    "output_tokens": rng.integers(1, 800, len(offsets)),
                }
            )
        )
    rows = pd.concat(parts, ignore_index=True)
    rows.insert(0, "request_id", [f"r{i}" for i in range(len(rows))])
    return rows


def _aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """What a metrics export holds for ``rows``: per minute and series, counts, token sums,
    inter-arrival CV."""
    rows = rows.sort_values("arrival_time")
    rows["minute"] = rows["arrival_time"].dt.floor("min")
    keys = ["minute", "region", "model", "tier"]

    def cv(times: pd.Series) -> float:
        gaps = times.diff().dt.total_seconds().dropna()
        return float(gaps.std(ddof=0) / gaps.mean()) if len(gaps) > 1 and gaps.mean() > 0 else 1.0

    out = rows.groupby(keys, as_index=False).agg(
        requests=("request_id", "size"),
        input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
    )
    out["cv"] = rows.groupby(keys)["arrival_time"].apply(cv).to_numpy()
    return out


def _mart(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT * FROM demand_hourly ORDER BY ALL").df()


def test_aggregates_reconcile_with_the_rows_they_summarise(
    tmp_path: Path, cfg: FleetConfig, contract: pa.DataFrameSchema
) -> None:
    rows = _rows()
    rows_path = tmp_path / "rows.parquet"
    rows.to_parquet(rows_path, index=False)
    agg_path = tmp_path / "minutes.parquet"
    _aggregate(rows).to_parquet(agg_path, index=False)
    with connect(tmp_path / "rows.duckdb") as a, connect(tmp_path / "agg.duckdb") as b:
        report_a = ingest_paths(a, [rows_path], SourceSpec(), contract, NOW)
        report_b = ingest_minute_paths(b, [agg_path], cfg, NOW)
        assert report_a.ok and report_b.ok
        assert report_b.totals["rows_loaded"] == len(_aggregate(rows))
        refresh_demand(a)
        refresh_demand(b)
        mart_a, mart_b = _mart(a), _mart(b)
        start, end = pd.Timestamp("2024-06-03 10:00"), pd.Timestamp("2024-06-03 13:00")
        buckets_a = run(a, "sim/minute_buckets", start=start, end=end).df()
        buckets_b = run(b, "sim/minute_buckets", start=start, end=end).df()
        span_a = run(a, "sim/log_span").fetchone()
        span_b = run(b, "sim/log_span").fetchone()
    assert len(mart_a) == 9 and (mart_a["requests"] > 0).sum() == 8  # the quiet IW-N hour
    exact = ["hour", "region", "model", "tier", "requests", "input_tokens", "output_tokens"]
    exact += ["peak_minute_token_rate", "peak_minute_requests"]
    pd.testing.assert_frame_equal(mart_a[exact], mart_b[exact], check_dtype=False)
    # an aggregate file speaks for whole minutes, a row file from its first to its last
    # arrival: coverage (and so the hour's mean rates) may differ by under a minute per hour
    assert np.allclose(mart_a["coverage"], mart_b["coverage"], rtol=0, atol=1 / 60)
    for col in ("input_rate", "output_rate", "token_rate"):
        assert np.allclose(mart_a[col], mart_b[col], rtol=1 / 59, atol=0), col
    # the CV: from the rows where a minute has 2 gaps or more (unknown otherwise: the replay
    # takes 1, as this export writes); microsecond timestamps: equal to 1e-4
    buckets_a["cv"] = buckets_a["cv"].fillna(1.0)
    pd.testing.assert_frame_equal(buckets_a, buckets_b, check_dtype=False, rtol=1e-4)
    assert int(buckets_b["requests"].sum()) == len(rows)
    assert span_a is not None and span_b is not None
    assert span_a[0].replace(second=0, microsecond=0) == span_b[0]
    assert span_a[1] <= span_b[1] < span_a[1] + pd.Timedelta(minutes=1)


def test_bad_aggregate_rows_are_named_and_good_ones_kept(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path, cfg: FleetConfig
) -> None:
    good = [
        "2024-06-03 10:00:00,us-east,llama2-70b,IW-F,12,4000,900,1.3",
        "2024-06-03 10:01:00,us-east,llama2-70b,IW-F,10,3500,800,",
    ]
    bad = [
        "2024-06-03 10:02:30,us-east,llama2-70b,IW-F,5,100,100,1.0",  # row 3: not a minute
        "2024-06-03 10:03:00,eu-north,llama2-70b,IW-F,5,100,100,1.0",  # row 4: unknown region
        "2024-06-03 10:04:00,us-east,llama2-70b,IW-F,-1,100,100,1.0",  # row 5: negative
        "2024-06-03 10:05:00,us-east,llama2-70b,IW-F,0,100,0,-2",  # row 6: tokens w/o requests, cv
        "2024-06-03 10:00:00,us-east,llama2-70b,IW-F,12,4000,900,1.3",  # row 7: duplicate of 1
        "2024-06-03 10:01:00,us-east,llama2-70b,IW-F,11,3500,800,",  # row 8: conflict with 2
        "not-a-time,us-east,llama2-70b,IW-F,x,100,100,1.0",  # row 9: minute, requests
    ]
    first = tmp_path / "a.csv"
    first.write_text("\n".join([HEADER, *good, *bad]) + "\n")
    missing = tmp_path / "b.csv"
    missing.write_text("minute,region,model,tier,requests\n2024-06-03 10:00:00,us-east,m,IW-F,1\n")
    empty = tmp_path / "c.csv"
    empty.write_text("")
    report = ingest_minute_paths(warehouse, [first, missing, empty], cfg, NOW)
    by_path = {Path(f.path).name: f for f in report.files}
    a = by_path["a.csv"]
    assert (a.status, a.rows_read, a.rows_loaded, a.rows_quarantined, a.duplicates_skipped) == (
        "loaded",
        9,
        2,
        6,
        1,
    )
    assert by_path["b.csv"].status == "rejected" and "missing required columns" in str(
        by_path["b.csv"].message
    )
    assert "output_tokens" in str(by_path["b.csv"].message)
    assert by_path["c.csv"].status == "rejected" and "empty" in str(by_path["c.csv"].message)
    assert not report.ok
    reasons = dict(
        warehouse.execute(
            "SELECT row_number, reason FROM demand_minutes_quarantine ORDER BY 1"
        ).fetchall()
    )
    assert set(reasons) == {3, 4, 5, 6, 8, 9}
    assert "not the start of a minute" in reasons[3]
    assert "region: unknown eu-north" in reasons[4]
    assert "requests" in reasons[5]
    assert "tokens without requests" in reasons[6] and "cv" in reasons[6]
    assert "repeats row 2" in reasons[8]
    assert "minute: missing or not a timestamp" in reasons[9] and "requests" in reasons[9]
    loaded = warehouse.execute("SELECT count(*), sum(requests) FROM demand_minutes").fetchone()
    assert loaded == (2, 22)
    # the tables hold what their contracts say
    schema = demand_minutes_schema(cfg.region_ids, cfg.model_ids, cfg.tier_ids)
    schema.validate(warehouse.execute("SELECT * FROM demand_minutes").pl())
    demand_minutes_quarantine.validate(
        warehouse.execute("SELECT * FROM demand_minutes_quarantine").pl()
    )
    ingested_files.validate(warehouse.execute("SELECT * FROM ingested_files").pl())
    # the same content again loads nothing; a later file conflicting with a loaded key is
    # quarantined with the file it conflicts with
    again = ingest_minute_paths(warehouse, [first], cfg, NOW)
    assert again.files[0].status == "skipped"
    later = tmp_path / "d.csv"
    later.write_text(HEADER + "\n" + good[0].replace(",12,", ",13,") + "\n" + good[1] + "\n")
    d = ingest_minute_paths(warehouse, [later], cfg, NOW).files[0]
    assert (d.rows_loaded, d.rows_quarantined, d.duplicates_skipped) == (0, 1, 1)
    assert "loaded before with other values" in d.problems[0]
    files = warehouse.execute(
        "SELECT count(*) FROM ingested_files WHERE format = 'minute-aggregates'"
    ).fetchone()
    assert files == (2,)


def test_a_failing_file_leaves_the_warehouse_as_it_was(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path, cfg: FleetConfig
) -> None:
    """A file whose columns cannot be read as their types at all is rejected whole."""
    broken = tmp_path / "broken.parquet"
    pd.DataFrame({"minute": [1, 2], "region": ["us-east"] * 2}).to_parquet(broken)
    report = ingest_minute_paths(warehouse, [broken], cfg, NOW)
    assert report.files[0].status == "rejected"
    assert warehouse.execute("SELECT count(*) FROM demand_minutes").fetchone() == (0,)
    assert warehouse.execute("SELECT count(*) FROM ingested_files").fetchone() == (0,)


@pytest.mark.parametrize("suffix", [".json"])
def test_unknown_file_types_are_named(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path, cfg: FleetConfig, suffix: str
) -> None:
    path = tmp_path / f"x{suffix}"
    path.write_text("{}")
    report = ingest_minute_paths(warehouse, [path], cfg, NOW)
    assert report.files[0].status == "rejected" and ".parquet or .csv" in str(
        report.files[0].message
    )
