"""Input paths name files literally: glob characters in a name are part of the name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandera.polars as pa
import pytest

from flows.warehouse.ingest import SourceSpec, ingest_paths

HEADER = "request_id,arrival_time,region,model,tier,input_tokens,output_tokens"
NOW = datetime(2024, 7, 1, tzinfo=UTC)


def _csv(path: Path, ids: list[str]) -> Path:
    rows = [f"{i},2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,100,20" for i in ids]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "decoys"),
    [
        ("req[1].csv", ["req1.csv"]),
        ("req*.csv", ["req-a.csv", "req-b.csv"]),
        ("req?.csv", ["reqa.csv"]),
        ("req{a,b}.csv", ["reqa.csv", "reqb.csv"]),
    ],
)
def test_a_path_with_glob_characters_reads_that_one_file(
    warehouse: duckdb.DuckDBPyConnection,
    contract: pa.DataFrameSchema,
    tmp_path: Path,
    name: str,
    decoys: list[str],
) -> None:
    for i, decoy in enumerate(decoys):
        _csv(tmp_path / decoy, [f"decoy{i}-1", f"decoy{i}-2", f"decoy{i}-3"])
    target = _csv(tmp_path / name, ["real-1"])
    report = ingest_paths(warehouse, [target], SourceSpec(), contract, NOW)
    (file,) = report.files
    assert file.status == "loaded", file
    assert file.path == str(target)
    assert (file.rows_read, file.rows_loaded) == (1, 1)
    ids = [r[0] for r in warehouse.execute("SELECT request_id FROM requests").fetchall()]
    assert ids == ["real-1"]
    recorded = warehouse.execute("SELECT path FROM ingested_files").fetchall()
    assert recorded == [(str(target),)]


def test_a_folder_with_glob_characters_in_its_name_loads_its_files(
    warehouse: duckdb.DuckDBPyConnection, contract: pa.DataFrameSchema, tmp_path: Path
) -> None:
    folder = tmp_path / "logs[2024]"
    folder.mkdir()
    _csv(folder / "a.csv", ["x1", "x2"])
    (tmp_path / "logs2").mkdir()
    _csv(tmp_path / "logs2" / "a.csv", ["decoy"])
    report = ingest_paths(warehouse, [folder], SourceSpec(), contract, NOW)
    assert [f.rows_loaded for f in report.files] == [2]


def test_fractional_token_counts_are_quarantined_not_rounded(
    warehouse: duckdb.DuckDBPyConnection, contract: pa.DataFrameSchema, tmp_path: Path
) -> None:
    path = tmp_path / "frac.csv"
    path.write_text(
        HEADER
        + "\nf1,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,100.5,20"
        + "\nf2,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,100,20.0"
        + "\nf3,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,100,7\n"
    )
    (file,) = ingest_paths(warehouse, [path], SourceSpec(), contract, NOW).files
    assert (file.rows_read, file.rows_loaded, file.rows_quarantined) == (3, 2, 1)
    loaded = warehouse.execute(
        "SELECT request_id, input_tokens, output_tokens FROM requests ORDER BY request_id"
    ).fetchall()
    assert loaded == [("f2", 100, 20), ("f3", 100, 7)]
    (reason,) = warehouse.execute("SELECT reason FROM requests_quarantine").fetchone()  # type: ignore[misc]
    assert "input_tokens" in reason
