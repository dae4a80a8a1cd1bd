"""The operator's day on the demo, end to end: `python -m flows.serve` (what `make serve` runs)
with a fast replay clock, the demo deployments scheduled by it; two scheduled hourly-plan runs
complete on their own, each planning the demo hour its schedule stands for; the operator page
opens over HTTP from the run's artifact link in the Prefect UI (chromium); SIGTERM stops the
server, the worker and the page server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from flows.clock import clock_for
from planner.config import load_config
from tests.flows.test_prefect_server import Api, free_port
from tests.flows.warehouses import SynthLog

pytestmark = [pytest.mark.slow, pytest.mark.prefect_server]
ROOT = Path(__file__).resolve().parents[2]
SPEED = 90.0  # one demo hour per 40 real seconds


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, demo_log_selected: SynthLog, shared_data: Path
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo-serve")
    spec = demo_log_selected.spec
    # the daily job has run at the end of the log (as `make demo` leaves it): the default
    # config's selection at 2024-06-11 00:00 (this config differs in paths, clock, time limit
    # and forecast candidates); the hourly runs forecast from it. The scheduled daily retrain
    # (demo 02:00, 80 s after the clock starts) selects among seasonal naive: it is not under
    # test, and the default grid's selection would share the two cores with the hourly runs
    warehouse = demo_log_selected.copy_warehouse(root / "wh.duckdb")
    document = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    document["paths"] = {"warehouse": str(warehouse), "outputs": str(root / "out")}
    document["planner"]["time_limit_s"] = 4
    document["forecast"]["candidates"] = ["snaive24", "snaive168"]
    document["forecast"]["champion"] = "snaive24"
    document["clock"] = {
        "kind": "replay",
        "speed": SPEED,
        "state": str(root / "clock.json"),
        "inbox": str(root / "inbox"),
        "log": {
            "seed": spec.seed,
            "requests_per_day": spec.requests_per_day,
            "start": spec.start.isoformat(),
            "days": spec.days,
            "logs_dir": str(root / "feed-days"),
        },
    }
    config = root / "demo.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    demo_cfg = load_config(config)
    port, pages, metrics = free_port(), free_port(), free_port()
    env = dict(os.environ)
    env.update(
        {
            "SAGESERVE_CONFIG": str(config),
            "SAGESERVE_PREFECT_PORT": str(port),
            "SAGESERVE_PAGES_PORT": str(pages),
            # not the default 9731: a `make serve` or another run on this machine may hold it
            "SAGESERVE_METRICS_PORT": str(metrics),
            "SAGESERVE_PREFECT_HOME": str(root / "prefect"),
            "SAGESERVE_SHARED": str(shared_data.parent),
        }
    )
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        yield {
            "root": root,
            "cfg": demo_cfg,
            "port": port,
            "pages": pages,
            "proc": proc,
            "log": root / "serve.log",
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()


def _runs(api: Api, deployment: str) -> list[dict[str, Any]]:
    deployments = {d["name"]: d["id"] for d in api.post("/deployments/filter", {})}
    return list(
        api.post(
            "/flow_runs/filter",
            {
                "flow_runs": {"deployment_id": {"any_": [deployments[deployment]]}},
                "sort": "EXPECTED_START_TIME_ASC",
            },
        )
    )


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_two_scheduled_hourly_runs_complete_and_the_page_opens_from_the_artifact(
    served: dict[str, Any],
) -> None:
    base = f"http://127.0.0.1:{served['port']}"
    deadline = time.monotonic() + 240
    while not _up(f"{base}/api/health"):
        assert served["proc"].poll() is None, served["log"].read_text()[-3000:]
        assert time.monotonic() < deadline, "server not up"
        time.sleep(2)
    api = Api(served["port"])
    completed: list[dict[str, Any]] = []
    deadline = time.monotonic() + 480
    while len(completed) < 2:
        assert served["proc"].poll() is None, served["log"].read_text()[-3000:]
        assert time.monotonic() < deadline, (
            f"two scheduled hourly runs not completed: "
            f"{[(r['state_type'], r['expected_start_time']) for r in _runs(api, 'hourly-plan')]}"
        )
        time.sleep(5)
        try:
            runs = _runs(api, "hourly-plan")
        except (OSError, KeyError):
            continue
        failed = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
        assert not failed, failed[0]["state"]
        completed = [r for r in runs if r["state_type"] == "COMPLETED" and r["auto_scheduled"]]
    cfg, clock = served["cfg"], clock_for(served["cfg"])
    assert clock.started_at is not None
    # each run planned the demo hour of its own scheduled start, at the production cron's
    # minute (60 - planner.plan_lead_min past it)
    hours = []
    for run in completed[:2]:
        when = clock.at(pd.Timestamp(run["expected_start_time"]).to_pydatetime()).round("min")
        assert when.minute == 60 - cfg.planner.plan_lead_min, when
        hours.append(when.floor("h"))
        summary = {a["key"]: a for a in api.artifacts(run["id"]) if a["key"]}["hourly-plan"]
        title = summary["data"].splitlines()[0]
        assert f"made at {when:%Y-%m-%d %H:%M} UTC" in title, title
        assert f"from {when.floor('h') + pd.Timedelta(hours=1):%Y-%m-%d %H:%M} UTC" in title
    assert hours[1] - hours[0] == pd.Timedelta(hours=1)
    assert hours[0] >= pd.Timestamp("2024-06-11 00:00")
    feeds = [r for r in _runs(api, "demo-feed") if r["state_type"] == "COMPLETED"]
    assert feeds, "the demo feed never ran"
    assert sorted(p.name for p in (served["root"] / "inbox").iterdir())[0].startswith("feed-")

    artifacts = {a["key"]: a for a in api.artifacts(completed[1]["id"]) if a["key"]}
    found = re.search(r"https?://[^)\s]+", str(artifacts["plan-report"]["data"]))
    assert found, artifacts["plan-report"]
    page_url = found.group(0)
    assert page_url.startswith(f"http://127.0.0.1:{served['pages']}/reports/")
    assert all("file://" not in str(a["data"]) for a in artifacts.values())
    summary = artifacts["hourly-plan"]
    assert summary["description"].startswith("cost: $")
    assert "Next hour's actions" in summary["data"] and page_url in summary["data"]
    with urllib.request.urlopen(page_url, timeout=10) as response:
        page = response.read().decode()
    assert "Next hour&#x27;s actions" in page or "Next hour's actions" in page

    _browse(base, page_url, artifacts["plan-report"]["id"])

    children = subprocess.run(
        ["pgrep", "-P", str(served["proc"].pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 2, children  # the Prefect server and the worker
    served["proc"].send_signal(signal.SIGTERM)
    assert served["proc"].wait(timeout=90) == 0
    time.sleep(1)
    assert not _up(f"{base}/api/health"), "Prefect server still up after SIGTERM"
    assert not _up(page_url), "page server still up after SIGTERM"
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert alive == [], f"children still running after SIGTERM: {alive}"
    assert clock_for(cfg).stopped_at is not None


def _browse(base: str, page_url: str, artifact_id: str) -> None:
    """The run's plan-report artifact in the Prefect UI; its link opens the operator page."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    shots = ROOT / ".sageserve" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/runs", wait_until="networkidle")
        page.get_by_text("Completed").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "demo-runs.png"), full_page=True)
        page.goto(f"{base}/artifacts/artifact/{artifact_id}", wait_until="networkidle")
        link = page.locator(f"a[href='{page_url}']").first
        link.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "demo-artifact-link.png"), full_page=True)
        try:  # the UI may open the link in a new tab or in this one
            with page.context.expect_page(timeout=10_000) as opened:
                link.click()
            operator = opened.value
        except PlaywrightTimeout:
            operator = page
        operator.wait_for_load_state()
        assert operator.url == page_url
        operator.locator("#headline").wait_for(timeout=30_000)
        operator.screenshot(path=str(shots / "demo-operator-page.png"), full_page=True)
        text = operator.locator("body").inner_text().lower()  # the cards' labels are upper case
        assert "cost" in text and "gap" in text and "sla risk" in text and "data quality" in text
        assert "next hour's actions" in text
        browser.close()
    assert (shots / "demo-operator-page.png").stat().st_size > 10_000
