"""End to end on a real Prefect server: `prefect server start` on 127.0.0.1, the deployments of
prefect.yaml registered, a process worker, `hourly-plan` triggered and watched to Completed,
its artifacts read through the API; then a data-quality failure (a volume collapse and a file
delivered twice) under the 'stop' policy; then the UI in a real browser (chromium)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.serve import run_prefect, set_up, start_server, start_worker
from flows.warehouse.connection import connect
from planner.config import load_config
from tests.flows.warehouses import SynthLog
from tests.schema_check import check_executor_folder

pytestmark = [pytest.mark.slow, pytest.mark.prefect_server]
# in the day after the stored selection (SELECTED_AT, the log's end): the run forecasts from it
# instead of running the daily selection first; the gate checks the log's last hour
AS_OF = "2024-06-11T00:05:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api"

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait(self, run_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/flow_runs/{run_id}", timeout=30) as r:
                    run = json.loads(r.read())
            except (TimeoutError, OSError):
                # the server shares two cores with the run's solver and process pool: a poll
                # that times out is retried until the deadline, not taken as the answer
                continue
            if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return dict(run)
            time.sleep(2)
        raise AssertionError(f"flow run {run_id} not finished within {timeout} s")

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
        )


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, demo_log_selected: SynthLog
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("served")
    logs = demo_log_selected.logs  # read only
    warehouse = demo_log_selected.copy_warehouse(root / "wh.duckdb")
    home, port = root / "prefect", free_port()
    server = start_server(home, port)
    worker = None
    try:
        set_up(home, port)
        # schedules stay registered but paused: a scheduled run must not touch the repo's
        # own warehouse while the test runs
        run_prefect(["--no-prompt", "deployment", "schedule", "pause", "--all"], home, port)
        worker = start_worker(home, port)
        yield {"root": root, "home": home, "port": port, "warehouse": warehouse, "logs": logs}
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def trigger(stack: dict[str, Any], params: dict[str, Any]) -> str:
    args = ["deployment", "run", "hourly-plan/hourly-plan"]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    out = run_prefect(args, stack["home"], stack["port"])
    # "UUID: 6b1…" is printed by `prefect deployment run`
    return next(line.split()[-1] for line in out.splitlines() if "UUID" in line)


def test_deployments_registered_with_schedules(stack: dict[str, Any]) -> None:
    api = Api(stack["port"])
    deployments = {d["name"]: d for d in api.post("/deployments/filter", {})}
    assert {"hourly-plan", "daily-retrain", "evaluate", "backfill", "ingest-logs"} <= set(
        deployments
    )
    schedules = deployments["hourly-plan"]["schedules"]
    lead = load_config().planner.plan_lead_min  # the plan is made plan_lead_min before the hour
    assert schedules[0]["schedule"]["cron"] == f"{60 - lead} * * * *"
    assert deployments["daily-retrain"]["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert deployments["hourly-plan"]["work_pool_name"] == "sageserve-process"


def test_hourly_plan_runs_to_completed_with_its_artifacts(stack: dict[str, Any]) -> None:
    api = Api(stack["port"])
    out = stack["root"] / "out"
    run_id = trigger(
        stack,
        {
            "warehouse": stack["warehouse"],
            "out": out,
            "as_of": AS_OF,
            "inbox": stack["root"] / "no-inbox",
            "on_quality_failure": "stop",
        },
    )
    run = api.wait(run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    artifacts = {a["key"]: a for a in api.artifacts(run_id) if a["key"]}
    assert {
        "hourly-plan",
        "plan-instances",
        "plan-files",
        "plan-report",
        "data-docs",
        "tenant-traffic",
    } <= set(artifacts)
    summary = artifacts["hourly-plan"]["data"]
    assert "**data quality**: passed" in summary and "(SCIP " in summary
    assert "## Next hour's actions" in summary
    assert artifacts["hourly-plan"]["description"].startswith("cost: $")
    # browsers refuse file:// links from the UI: every link is http
    for key in ("plan-files", "plan-report", "data-docs"):
        assert "http://127.0.0.1:" in artifacts[key]["data"], artifacts[key]["data"]
        assert "file://" not in artifacts[key]["data"]
    assert (out / "plans" / "latest" / "manifest.json").exists()
    assert (out / "data_docs" / "index.html").exists()
    table = json.loads(artifacts["plan-instances"]["data"])
    assert {"region", "model", "vm_type", "on_demand"} <= set(table[0])
    status = json.loads((out / "status" / "hourly-plan.json").read_text())
    assert status["outcome"] == "completed" and status["run_id"] == run_id
    assert status["quality"]["success"] is True and status["plan_id"]
    assert check_executor_folder(out / "executor") > 0


def test_quality_failure_stops_planning_and_shows_in_docs_and_artifacts(
    stack: dict[str, Any],
) -> None:
    """The checked hour (00:00-01:00 of 2024-06-11) collapses to a few percent of its volume,
    and one day's file arrives again under another name: the 'stop' policy fails the run
    before planning, the last good plan stays published, Data Docs and the run's artifact
    name the failed expectations."""
    api = Api(stack["port"])
    out = stack["root"] / "out"
    latest_before = (out / "plans" / "latest").resolve()
    hour = pd.Timestamp("2024-06-11 00:00")
    inbox = stack["root"] / "inbox"
    inbox.mkdir()
    # the same rows re-sent in another file (another byte content: rows in reverse order)
    day = pd.read_parquet(stack["logs"] / "day-20240605.parquet")
    day.iloc[::-1].to_parquet(inbox / "resent-20240605.parquet", index=False)
    with connect(stack["warehouse"]) as con:
        con.execute(
            "DELETE FROM requests WHERE arrival_time >= ? AND arrival_time < ? "
            "AND hash(request_id) % 50 <> 0",
            [hour, hour + pd.Timedelta(hours=1)],
        )
    run_id = trigger(
        stack,
        {
            "warehouse": stack["warehouse"],
            "out": out,
            "as_of": "2024-06-11T01:05:00",
            "inbox": inbox,
            "on_quality_failure": "stop",
        },
    )
    run = api.wait(run_id)
    assert run["state"]["type"] == "FAILED"
    artifacts = {a["key"]: a for a in api.artifacts(run_id) if a["key"]}
    text = artifacts["hourly-plan"]["data"]
    assert "Planning stopped by the data-quality gate" in text
    assert "expect_table_row_count_to_be_between" in text
    assert "ingested_files" in text and "duplicates_skipped" in text
    assert (out / "plans" / "latest").resolve() == latest_before
    docs = list((out / "data_docs" / "validations").rglob("*.html"))
    assert any("Failed" in p.read_text(errors="replace") for p in docs)
    status = json.loads((out / "status" / "hourly-plan.json").read_text())
    assert status["outcome"] == "stopped" and status["run_id"] == run_id
    assert status["quality"]["success"] is False and status["quality"]["failed"]


@pytest.mark.browser
def test_ui_shows_the_deployment_schedule_and_the_completed_run(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{stack['port']}"
    shots = Path(__file__).resolve().parents[2] / ".sageserve" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/deployments", wait_until="networkidle")
        page.get_by_text("hourly-plan").first.wait_for(timeout=60_000)
        page.get_by_text("hourly-plan").first.click()
        # the UI renders the cron in words ("At 40 minutes past the hour") or as written
        minute = 60 - load_config().planner.plan_lead_min
        schedule = re.compile(
            rf"\b{minute} \* \* \* \*|\b{minute} minutes past the hour", re.IGNORECASE
        )
        page.get_by_text(schedule).first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "deployment.png"), full_page=True)
        page.goto(f"{base}/runs", wait_until="networkidle")
        page.get_by_text("Completed").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "runs.png"), full_page=True)
        page.goto(f"{base}/artifacts", wait_until="networkidle")
        page.get_by_text("hourly-plan").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "artifacts.png"), full_page=True)
        browser.close()
    assert (shots / "runs.png").stat().st_size > 10_000
