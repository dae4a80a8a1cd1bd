"""`sageserve demo` end to end on a small log, twice (the second run must be a safe no-op)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.schema_check import check_executor_folder

ROOT = Path(__file__).resolve().parents[1]
SAGESERVE = str(Path(sys.executable).with_name("sageserve"))


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reruns_safely(tmp_path: Path, shared_data: Path) -> None:
    args = [
        SAGESERVE,
        "demo",
        "--shared",
        str(shared_data.parent),
        "--workdir",
        str(tmp_path),
        "--days",
        "2",
        "--requests-per-day",
        "20000",
    ]
    first = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "demand by series" in first.stdout
    assert f"warehouse {tmp_path / 'warehouse.duckdb'}" in first.stdout.replace("\n", " ")
    latest = tmp_path / "out" / "plans" / "latest"
    assert (latest / "manifest.json").is_file(), "the demo ends with a published plan"
    assert "verified True" in first.stdout.replace("\n", " ")
    metrics = subprocess.run(
        [
            SAGESERVE,
            "--warehouse",
            str(tmp_path / "warehouse.duckdb"),
            "metrics",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert metrics.returncode == 0, metrics.stderr[-2000:]
    families = {f.name: f for f in text_string_to_metric_families(metrics.stdout)}
    assert families["sageserve_last_run_success"].samples[0].value == 1  # the hourly flow ran
    assert families["sageserve_quality_gate_success"].samples
    assert any(n.endswith("gap") and f.type == "gauge" for n, f in families.items())
    executor = tmp_path / "out" / "executor"
    assert check_executor_folder(executor) > 0  # every desired-state document follows the schema
    assert not (executor / "applied").exists()  # no target configured: nothing applied
    again = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0
    assert "(2 files already loaded)" in again.stdout.replace("\n", " ")
