"""The hourly flow's status file on failure: a run that fails (here at once, on a bad
parameter) is recorded as `failed` with its error by the flow's on_failure hook, and the
metrics say so. Runs the real flow on Prefect's ephemeral API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flows.metrics import WarehouseSource, build_registry

pytestmark = pytest.mark.slow


def test_a_failed_run_is_recorded_and_exported(tmp_path: Path) -> None:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from flows.hourly_plan import hourly_plan

    out = tmp_path / "out"
    with pytest.raises(ValueError, match="on_quality_failure must be"):
        hourly_plan(out=str(out), warehouse=str(tmp_path / "none.duckdb"), on_quality_failure="x")
    status = json.loads((out / "status" / "hourly-plan.json").read_text())
    assert status["outcome"] == "failed" and "on_quality_failure" in status["error"]
    assert status["run_id"] and status["quality"] is None
    text = generate_latest(build_registry(WarehouseSource(tmp_path / "none.duckdb", out)))
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    }
    flow = ("flow", "hourly-plan")
    assert got[("sageserve_last_run_success", (flow,))] == 0
    assert got[("sageserve_last_run_outcome", (flow, ("outcome", "failed")))] == 1
    assert got[("sageserve_metrics_source_up", (("source", "warehouse"),))] == 0
