"""Metrics end to end: a real warehouse with a real plan, `sageserve metrics` parsed with
prometheus_client's parser, and a real Prometheus (Debian's package, on 127.0.0.1, started
here with its own config and storage) scraping the endpoint and answering PromQL."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from flows.cli import app
from flows.metrics import WarehouseSource
from flows.metrics.server import start
from flows.pipeline import forecast_and_plan
from flows.planning import PlanRun
from flows.run_status import record_run
from flows.warehouse.connection import connect
from planner.config import FleetConfig
from tests.flows.warehouses import SynthLog

pytestmark = pytest.mark.slow
AS_OF = datetime(2024, 6, 11, 0, 5, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def planned(
    tmp_path_factory: pytest.TempPathFactory, cfg: FleetConfig, demo_log_selected: SynthLog
) -> tuple[Path, Path, PlanRun]:
    root = tmp_path_factory.mktemp("metrics")
    warehouse = demo_log_selected.copy_warehouse(root / "wh.duckdb")
    out = root / "out"
    small = cfg.model_copy(  # a short horizon and solve: the metrics, not the plan, are tested
        update={"planner": cfg.planner.model_copy(update={"horizon_h": 6, "time_limit_s": 3.0})}
    )
    with connect(warehouse) as con:
        result = forecast_and_plan(con, small, AS_OF, out / "plans")
    assert result.check.ok
    record_run(
        out,
        flow="hourly-plan",
        started=datetime.now(UTC) - timedelta(seconds=30),
        outcome="completed",
        plan_id=result.plan.plan_id,
        quality={"success": True, "checked": 12, "failed": [], "hour": "2024-06-10T23:00:00"},
    )
    return warehouse, out, result


def first_hour_vms(result: PlanRun) -> float:
    vms = result.plan.vms[result.plan.vms["hour"] == result.plan.start]
    return float(vms["on_demand"].sum() + vms["spot"].sum())


def test_cli_metrics_parses_and_holds_the_plan(planned: tuple[Path, Path, PlanRun]) -> None:
    warehouse, out, result = planned
    done = CliRunner().invoke(app, ["--warehouse", str(warehouse), "metrics", "--out", str(out)])
    assert done.exit_code == 0, done.output
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    gap = families["sageserve_plan_gap"]
    assert gap.type == "gauge" and gap.name.endswith("gap")
    expected = result.plan.solver.as_dict()["gap"]  # as published (None: gap unknown)
    value = gap.samples[0].value
    assert gap.samples[0].labels["bound_source"] == result.plan.solver.bound_source
    assert result.plan.solver.bound_source in ("root relaxation", "search tree", "none")
    assert math.isnan(value) if expected is None else value == pytest.approx(expected)
    planned_vms = sum(s.value for s in families["sageserve_planned_vms"].samples)
    assert planned_vms == first_hour_vms(result)
    assert {s.labels["region"] for s in families["sageserve_running_vms"].samples} == set(
        result.plan.vms["region"]
    )
    actual = families["sageserve_demand_actual_tokens_per_second"].samples
    assert len(actual) > 0 and all(s.value >= 0 for s in actual)
    nxt = [
        s
        for s in families["sageserve_demand_forecast_tokens_per_second"].samples
        if s.labels["for_hour"] == "plan_first"
    ]
    assert nxt, "the plan's first hour has forecasts"
    assert families["sageserve_last_run_success"].samples[0].value == 1
    up = {s.labels["source"]: s.value for s in families["sageserve_metrics_source_up"].samples}
    assert up == {"warehouse": 1, "run_status": 1}
    as_json = CliRunner().invoke(
        app, ["--warehouse", str(warehouse), "metrics", "--out", str(out), "--json"]
    )
    rows = json.loads(as_json.stdout)
    assert any(r["name"] == "sageserve_plan_gap" for r in rows)


def test_busy_warehouse_serves_the_last_read(planned: tuple[Path, Path, PlanRun]) -> None:
    warehouse, out, _ = planned
    source = WarehouseSource(warehouse, out)
    first = source.load()
    assert first.up["warehouse"] and first.warehouse.plan is not None
    with connect(warehouse) as con:  # a writer in this process: a read-only open conflicts
        unchanged = source.load()  # nothing changed: not even opened
        assert unchanged.up["warehouse"] and not unchanged.errors
        con.execute("CHECKPOINT")
        os.utime(warehouse)  # a write happened
        again = source.load()
    assert not again.up["warehouse"] and "warehouse" in again.errors
    assert again.warehouse.plan == first.warehouse.plan
    assert source.load().up["warehouse"]  # the writer is gone: read again


def test_the_endpoint_waits_for_a_quiet_warehouse(planned: tuple[Path, Path, PlanRun]) -> None:
    warehouse, out, _ = planned
    source = WarehouseSource(warehouse, out, quiet_s=3600)
    first = source.load()
    with connect(warehouse):  # a writer is active and the file just changed
        os.utime(warehouse)
        during = source.load()
    assert during.up["warehouse"] and not during.errors  # no open attempted: no conflict
    assert during.warehouse is first.warehouse


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_real_prometheus_scrapes_the_endpoint(
    planned: tuple[Path, Path, PlanRun], tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it as root)")
    warehouse, out, result = planned
    server, _ = start(WarehouseSource(warehouse, out), port=0)
    target = f"127.0.0.1:{server.server_port}"
    asked = urllib.request.Request(
        f"http://{target}/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    with urllib.request.urlopen(asked, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        names = {f.name for f in parse_openmetrics(response.read().decode())}
    assert {"sageserve_plan_gap", "sageserve_planned_vms"} <= names
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: sageserve\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not found:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            with contextlib.suppress(OSError):
                found = query(prom_port, "sageserve_plan_gap")
            if not found:
                time.sleep(0.5)
        assert found, "no scrape within 90 s: " + (tmp_path / "prometheus.log").read_text()[-2000:]
        sample = found[0]
        assert sample["metric"]["job"] == "sageserve"
        assert sample["metric"]["instance"] == target
        value = float(sample["value"][1])
        assert sample["metric"]["bound_source"] == result.plan.solver.bound_source
        expected = result.plan.solver.as_dict()["gap"]
        assert math.isnan(value) if expected is None else value == pytest.approx(expected)
        vms = query(prom_port, "sum(sageserve_planned_vms)")
        assert float(vms[0]["value"][1]) == first_hour_vms(result)
        regions = query(prom_port, "sum by (region) (sageserve_running_vms)")
        assert {r["metric"]["region"] for r in regions} == set(result.plan.vms["region"])
        info = query(prom_port, "sageserve_plan_info")
        assert info[0]["metric"]["plan_id"] == result.plan.plan_id
        run = query(prom_port, 'sageserve_last_run_outcome{outcome="completed"}')
        assert float(run[0]["value"][1]) == 1
        targets = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/targets", timeout=5).read()
        )
        active = targets["data"]["activeTargets"]
        assert [t["health"] for t in active] == ["up"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()
