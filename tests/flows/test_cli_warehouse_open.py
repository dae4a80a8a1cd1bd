"""Read-only commands never create a warehouse and take no write lock; only ingest creates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.warehouse.connection import connect
from flows.warehouse.migrations import latest_version, schema_version

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [["status"], ["summary"], ["explain", "plan-x"], ["characterize"], ["refresh-marts"]],
)
def test_a_mistyped_warehouse_is_refused_and_not_created(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "typo" / "wh.duckdb"
    result = runner.invoke(app, ["--warehouse", str(missing), *command])
    assert result.exit_code == 1, result.stdout
    assert f"no warehouse at {missing}" in result.stderr
    assert not missing.parent.exists()


def test_status_reads_beside_another_reader(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    connect(path).close()
    holder = _hold_open(path)
    try:
        result = runner.invoke(app, ["--warehouse", str(path), "status", "--json"])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["overview"]["requests"] == 0
    finally:
        holder.communicate("")


def _hold_open(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path`` open read-only (a shared lock) until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True);"
            " print('open', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder


def test_a_read_of_an_older_warehouse_migrates_it_first(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    duckdb.connect(str(path)).close()  # a DuckDB file no migration has touched yet
    result = runner.invoke(app, ["--warehouse", str(path), "status", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["overview"]["requests"] == 0
    with duckdb.connect(str(path), read_only=True) as con:
        assert schema_version(con) == latest_version()


def test_an_older_warehouse_held_elsewhere_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    duckdb.connect(str(path)).close()
    holder = _hold_open(path)
    try:
        result = runner.invoke(app, ["--warehouse", str(path), "status"])
        assert result.exit_code == 1
        assert "in use by another process (to migrate its schema)" in result.stderr
    finally:
        holder.communicate("")
    with duckdb.connect(str(path), read_only=True) as con:
        assert schema_version(con) == 0  # left as it was


def test_ingest_creates_the_warehouse_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "new" / "wh.duckdb"
    log = tmp_path / "a.csv"
    log.write_text(
        "request_id,arrival_time,region,model,tier,input_tokens,output_tokens\n"
        "x1,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,10,2\n"
    )
    result = runner.invoke(app, ["--warehouse", str(path), "ingest", str(log)])
    assert result.exit_code == 0, result.stderr
    assert path.exists()


def test_plan_out_naming_a_file_fails_before_solving(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    connect(path).close()
    taken = tmp_path / "taken.txt"
    taken.write_text("x")
    args = ["--warehouse", str(path), "plan", "--as-of", "2024-06-11T01:00Z", "--out", str(taken)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "exists and is not a folder" in result.stderr
