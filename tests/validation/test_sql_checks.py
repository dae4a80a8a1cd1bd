"""The pandera schema compiled to SQL flags exactly what pandera's own polars backend flags."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandera.polars as pa
import polars as pl
import pytest

from validation.requests import requests_schema
from validation.sql_checks import UnsupportedCheck, compile_schema

REGIONS, MODELS, TIERS = ["east", "west"], ["m1", "m2"], ["IW-F", "NIW"]
LOW, HIGH = datetime(2020, 1, 1), datetime(2025, 1, 1)


def _schema() -> pa.DataFrameSchema:
    return requests_schema(REGIONS, MODELS, TIERS, LOW, HIGH, max_tokens=10_000)


def _random_frame(seed: int, n: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(seed)

    def pick(good: list[str], bad: list[str]) -> list[str | None]:
        out: list[str | None] = []
        for _ in range(n):
            r = rng.random()
            out.append(None if r < 0.03 else rng.choice(bad) if r < 0.1 else rng.choice(good))
        return out

    times = [
        LOW + timedelta(days=int(d)) for d in rng.integers(-30, (HIGH - LOW).days + 30, size=n)
    ]
    return pl.DataFrame(
        {
            "request_id": [
                None if rng.random() < 0.02 else ("" if rng.random() < 0.02 else f"r{i}")
                for i in range(n)
            ],
            "arrival_time": times,
            "region": pick(REGIONS, ["mars", "EAST"]),
            "model": pick(MODELS, ["m3"]),
            "tier": pick(TIERS, ["gold"]),
            "input_tokens": rng.integers(-50, 10_050, size=n),
            "output_tokens": rng.integers(-5, 10_005, size=n),
            "ttft_ms": np.where(rng.random(n) < 0.1, -1.0, rng.random(n) * 1000),
        },
        schema_overrides={"arrival_time": pl.Datetime("us")},
    )


def _pandera_failures(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> set[tuple[int, str, str]]:
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return {
            (int(row["index"]) + 1, row["column"], row["check"])
            for row in cases.iter_rows(named=True)
            if row["index"] is not None and row["check"] != "field_uniqueness"
        }
    return set()


def _sql_failures(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> set[tuple[int, str, str]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("frame", frame.to_arrow())
    source = "SELECT row_number() OVER () AS _row, * FROM frame"
    present = {r[0]: r[1] for r in con.execute(f"DESCRIBE {source}").fetchall()}
    compiled = compile_schema(schema, present, source)
    rows = con.execute(compiled.sql, compiled.params).fetchall()
    names = [d[0] for d in con.description or []]
    out = set()
    for row in rows:
        record = dict(zip(names, row, strict=True))
        for part in filter(None, record["_reason"].split("; ")):
            column, rest = part.split(": ", 1)
            check = rest.rsplit(", got ", 1)[0]
            out.add((record["_row"], column, check))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_compiled_sql_agrees_with_pandera(seed: int) -> None:
    schema = _schema()
    frame = _random_frame(seed)
    expected = _pandera_failures(schema, frame)
    assert expected, "the random frame must contain failures for the test to mean anything"
    assert _sql_failures(schema, frame) == expected


def _passing_rows(con: duckdb.DuckDBPyConnection, source: str) -> tuple[set[int], set[int]]:
    """(rows ``passing_sql`` selects, rows whose ``_reason`` is empty) over ``source``."""
    present = {r[0]: r[1] for r in con.execute(f"DESCRIBE {source}").fetchall()}
    compiled = compile_schema(_schema(), present, source)
    passing = {r[0] for r in con.execute(compiled.passing_sql, compiled.params).fetchall()}
    clean = con.execute(
        f"SELECT _row FROM ({compiled.sql}) WHERE _reason = ''", compiled.params
    ).fetchall()
    return passing, {r[0] for r in clean}


@pytest.mark.parametrize("seed", range(3))
def test_passing_select_is_exactly_the_rows_without_a_reason(seed: int) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    frame = _random_frame(seed)
    con.register("frame", frame.to_arrow())
    passing, clean = _passing_rows(con, "SELECT row_number() OVER () AS _row, * FROM frame")
    assert 0 < len(passing) < frame.height
    assert passing == clean


def test_passing_select_over_text_with_parse_errors() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    good = "'r1', '2024-01-01 10:00', 'east', 'm1', 'NIW', '12', '3'"
    source = (
        "SELECT * FROM (VALUES "
        f"(1, {good}, NULL), "
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'malformed JSON: {'), "
        "(3, 'r3', 'yesterday', 'east', 'm1', 'NIW', '1.5x', '3', NULL), "
        f"(4, {good}, '')"
        ") AS t(_row, request_id, arrival_time, region, model, tier, input_tokens, "
        "output_tokens, _parse_error)"
    )
    passing, clean = _passing_rows(con, source)
    assert passing == clean == {1, 4}


def test_raw_text_values_get_dtype_failures_with_the_value() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    source = (
        "SELECT 1 AS _row, 'r1' AS request_id, 'yesterday' AS arrival_time, 'east' AS region, "
        "'m1' AS model, 'NIW' AS tier, '12x' AS input_tokens, '3' AS output_tokens"
    )
    present = {r[0]: r[1] for r in con.execute(f"DESCRIBE {source}").fetchall()}
    compiled = compile_schema(_schema(), present, source)
    row = con.execute(compiled.sql, compiled.params).fetchone()
    assert row is not None
    reason = row[list(d[0] for d in con.description or []).index("_reason")]
    assert "arrival_time: expected TIMESTAMP, got yesterday" in reason
    assert "input_tokens: expected BIGINT, got 12x" in reason
    assert "output_tokens" not in reason


def test_typed_source_columns_are_not_recast() -> None:
    present = {
        "_row": "BIGINT",
        "request_id": "VARCHAR",
        "arrival_time": "TIMESTAMP",
        "region": "VARCHAR",
        "model": "VARCHAR",
        "tier": "VARCHAR",
        "input_tokens": "BIGINT",
        "output_tokens": "INTEGER",
    }
    sql = compile_schema(_schema(), present, "SELECT 1").sql
    assert 'stage."arrival_time" AS "arrival_time"' in sql
    assert 'CAST(stage."output_tokens" AS BIGINT)' in sql
    assert "expected TIMESTAMP" not in sql


def test_a_check_without_sql_is_refused_not_skipped() -> None:
    schema = pa.DataFrameSchema(
        {"x": pa.Column(pl.Int64, pa.Check(lambda d: d.lazyframe.select(pl.lit(True))))}
    )
    with pytest.raises(UnsupportedCheck):
        compile_schema(schema, {"x": "BIGINT"}, "SELECT 1 AS _row, 1 AS x")


def test_missing_required_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="required column 'arrival_time'"):
        compile_schema(_schema(), {"request_id": "VARCHAR"}, "SELECT 1")
