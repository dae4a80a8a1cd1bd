"""Warehouse lifecycle: migrations, a killed ingest leaves nothing behind, a locked file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flows.warehouse.connection import WarehouseError, connect
from flows.warehouse.migrations import MigrationError, migration_files, schema_version

SAGESERVE = str(Path(sys.executable).with_name("sageserve"))


def test_migrations_record_the_schema_version(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    latest = migration_files()[-1][0]
    assert schema_version(con) == latest
    con.close()
    again = connect(tmp_path / "w.duckdb")  # re-opening applies nothing new
    rows = again.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert rows == (len(migration_files()),)
    again.close()


def test_an_edited_applied_migration_is_refused(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    con.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 3")
    con.close()
    with pytest.raises(MigrationError, match=r"0003_create_requests\.sql was changed"):
        connect(tmp_path / "w.duckdb")


def test_read_only_open_of_a_missing_warehouse(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse at"):
        connect(tmp_path / "none.duckdb", read_only=True)


def _big_csv(path: Path, rows: int) -> None:
    duckdb.sql(
        f"""
        SELECT 'k' || i AS request_id,
               TIMESTAMP '2024-06-03' + to_milliseconds(i) AS arrival_time,
               'us-east' AS region, 'llama2-70b' AS model, 'IW-F' AS tier,
               i % 4000 AS input_tokens, i % 300 AS output_tokens
        FROM range({int(rows)}) AS r(i)
        """
    ).write_csv(str(path))


@pytest.mark.slow
def test_kill_mid_file_leaves_the_warehouse_as_before(tmp_path: Path) -> None:
    """SIGKILL while the file's transaction holds every row and the manifest row, not yet
    committed (the ``ingest-loaded`` barrier, see flows/barrier.py): nothing of it survives,
    and the next ingest loads the whole file."""
    warehouse = tmp_path / "w.duckdb"
    small = tmp_path / "small.csv"
    small.write_text(
        "request_id,arrival_time,region,model,tier,input_tokens,output_tokens\n"
        "s1,2024-06-02T10:00:00Z,us-west,llama3.2-3b,NIW,10,1\n"
    )
    big = tmp_path / "big.csv"
    rows = 20_000
    _big_csv(big, rows)
    base = [SAGESERVE, "--warehouse", str(warehouse), "ingest"]
    subprocess.run([*base, str(small)], check=True, capture_output=True)

    flag = tmp_path / "at-barrier"
    env = {**os.environ, "SAGESERVE_BARRIER": "ingest-loaded", "SAGESERVE_BARRIER_FILE": str(flag)}
    proc = subprocess.Popen(
        [*base, str(big)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    deadline = time.monotonic() + 300
    while not flag.exists():  # the process reports it is inside the file's transaction
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(
                f"exited {proc.returncode} before the barrier: {proc.stderr.read()}"
            )
        assert time.monotonic() < deadline, "never reached the ingest-loaded barrier"
        time.sleep(0.05)
    assert int(flag.read_text()) == proc.pid
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL

    con = connect(warehouse)
    assert con.execute("SELECT request_id FROM requests").fetchall() == [("s1",)]
    assert con.execute("SELECT count(*) FROM ingested_files").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM requests_quarantine").fetchone() == (0,)
    con.close()
    done = subprocess.run([*base, str(big), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f'"rows_loaded": {rows}' in done.stdout
    with connect(warehouse) as con:  # every row names its file's manifest row by its key
        keyed = "SELECT f.path, count(*) FROM requests JOIN ingested_files AS f USING (file_key)"
        assert con.execute(f"{keyed} GROUP BY ALL ORDER BY 2").fetchall() == [
            (str(small), 1),
            (str(big), rows),
        ]


def test_a_locked_warehouse_gives_a_clear_error(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    holder = connect(warehouse)
    try:
        out = subprocess.run(
            [SAGESERVE, "--warehouse", str(warehouse), "status"], capture_output=True, text=True
        )
    finally:
        holder.close()
    assert out.returncode == 1
    assert "in use by another process" in out.stderr
