"""`sageserve demo` end to end on a small log, twice (the second run must be a safe no-op)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    again = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0
    assert "(2 files already loaded)" in again.stdout.replace("\n", " ")
