"""`make serve` / `python -m flows.serve`: a local Prefect server (SQLite under
.sageserve/prefect), the process work pool, the warehouse concurrency limit, every deployment
of prefect.yaml, a worker, and the operator pages (one per plan) over HTTP. The UI is then at
http://127.0.0.1:4200, the pages at http://127.0.0.1:4280, and on its own port the OpenMetrics
endpoint (flows/metrics/server.py): http://127.0.0.1:9731/metrics (``SAGESERVE_METRICS_PORT``
moves it). With the replay clock (the demo) the clock is started and the demo deployments are
scheduled on intervals matching its speed. SIGTERM and SIGINT stop every child.

The server test (tests/flows/test_prefect_server.py) drives the same functions."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from flows.clock import Clock, start_replay, stop_replay
from flows.feed import prepare
from flows.run_context import run_config
from flows.warehouse.connection import connect
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from reports.pages import serve_pages

ROOT = Path(__file__).resolve().parents[1]
POOL = "sageserve-process"
LIMIT = "sageserve-warehouse"
log = logging.getLogger(__name__)


def prefect_env(home: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def prefect_bin() -> str:
    found = Path(sys.executable).with_name("prefect")
    return str(found) if found.exists() else (shutil.which("prefect") or "prefect")


def start_server(home: Path, port: int = 4200) -> subprocess.Popen[bytes]:
    """Start `prefect server start` and wait until /api/health answers (up to 120 s)."""
    home.mkdir(parents=True, exist_ok=True)
    out = (home / "server.log").open("ab")
    proc = subprocess.Popen(
        [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=prefect_env(home, port),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode}; see {out.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                    return proc
            except OSError:
                time.sleep(1)
    except BaseException:  # a signal while waiting: do not leave the server behind
        proc.terminate()
        proc.wait(timeout=30)
        raise
    proc.terminate()
    raise RuntimeError(f"prefect server not healthy within 120 s; see {out.name}")


def run_prefect(args: list[str], home: Path, port: int, check: bool = True) -> str:
    done = subprocess.run(
        [prefect_bin(), *args],
        env=prefect_env(home, port),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"prefect {' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done.stdout


def set_up(home: Path, port: int = 4200) -> None:
    """Work pool, concurrency limit and every deployment of prefect.yaml."""
    run_prefect(["work-pool", "create", POOL, "--type", "process", "--overwrite"], home, port)
    listed = run_prefect(["gcl", "ls"], home, port, check=False)
    if LIMIT not in listed:
        run_prefect(["gcl", "create", LIMIT, "--limit", "1"], home, port)
    run_prefect(["--no-prompt", "deploy", "--all"], home, port)


def start_worker(home: Path, port: int = 4200) -> subprocess.Popen[bytes]:
    out = (home / "worker.log").open("ab")
    return subprocess.Popen(
        [prefect_bin(), "worker", "start", "--pool", POOL, "--type", "process"],
        env=prefect_env(home, port),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def demo_schedules(cfg: FleetConfig, clock: Clock, home: Path, port: int) -> dict[str, float]:
    """Replay clock: the demo deployments on intervals matching its speed. `demo-feed` one
    demo minute past every demo hour, `hourly-plan` at the production cron's minute past it
    (60 - ``planner.plan_lead_min``, as prefect.yaml's cron),
    `daily-retrain` every demo day at 02:00; they replace prefect.yaml's cron schedules
    (wall-clock times)."""
    assert clock.started_at is not None
    hour_s = clock.real_seconds(3600)
    start = clock.started_at + timedelta(seconds=clock.real_seconds(60))  # demo HH:01
    plan_minute = 60 - cfg.planner.plan_lead_min
    plan_at = clock.started_at + timedelta(seconds=clock.real_seconds(60 * plan_minute))
    to_2am = (clock.anchor.normalize() + pd.Timedelta(hours=26) - clock.anchor) % pd.Timedelta(
        days=1
    )
    retrain_at = clock.started_at + timedelta(seconds=clock.real_seconds(to_2am.total_seconds()))
    wanted = {
        "demo-feed/demo-feed": (hour_s, start),
        "hourly-plan/hourly-plan": (hour_s, plan_at),
        "daily-retrain/daily-retrain": (24 * hour_s, retrain_at),
    }
    for name, (every, anchor) in wanted.items():
        run_prefect(
            [
                "deployment",
                "schedule",
                "create",
                name,
                "--interval",
                f"{every:g}",
                "--anchor-date",
                anchor.isoformat(),
                "--timezone",
                "UTC",
                "--replace",
                "-y",
            ],
            home,
            port,
        )
    return {name: every for name, (every, _) in wanted.items()}


def start_demo_clock(cfg: FleetConfig, shared: Path, delay_s: float = 15.0) -> Clock:
    """Start the replay clock at the end of the warehouse's data, ``delay_s`` from now (time
    to register the schedules: the first demo hour's runs are not in the past), and
    synthesise the day the first demo hours come from."""
    data_end = None
    if Path(cfg.paths.warehouse).exists():
        with connect(cfg.paths.warehouse, read_only=True) as con:
            last = run(con, "status/overview").df()["last_arrival"].iloc[0]
            data_end = None if pd.isna(last) else pd.Timestamp(last)
    clock = start_replay(cfg, data_end, datetime.now(UTC) + timedelta(seconds=delay_s))
    prepare(cfg, clock.anchor, shared)
    return clock


class Children:
    """The processes `make serve` started; SIGTERM and SIGINT stop them all (the worker with
    SIGINT: a process worker ignores SIGTERM for minutes), then the clock."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def add(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr, force=True
    )
    cfg = run_config(None)  # SAGESERVE_CONFIG, else the default
    port = int(os.environ.get("SAGESERVE_PREFECT_PORT", "4200"))
    pages_port = int(os.environ.get("SAGESERVE_PAGES_PORT", "4280"))
    home = Path(os.environ.get("SAGESERVE_PREFECT_HOME", ROOT / ".sageserve" / "prefect"))
    children = Children()
    signal.signal(signal.SIGTERM, children.on_signal)
    signal.signal(signal.SIGINT, children.on_signal)
    pages = None
    from flows.metrics.server import source_from_config
    from flows.metrics.server import start as start_metrics

    metrics, _ = start_metrics(source_from_config(cfg))
    try:
        pages = serve_pages(Path(cfg.paths.outputs), pages_port)
        os.environ["SAGESERVE_PAGES_URL"] = f"http://127.0.0.1:{pages_port}"
        log.info("operator pages: http://127.0.0.1:%d/", pages_port)
        children.add(start_server(home, port))
        log.info("Prefect server up: http://127.0.0.1:%d (data in %s)", port, home)
        set_up(home, port)
        if cfg.clock.kind == "replay":
            clock = start_demo_clock(cfg, Path(os.environ.get("SAGESERVE_SHARED", "../shared")))
            every = demo_schedules(cfg, clock, home, port)
            log.info(
                "%s; demo schedules: %s",
                clock.describe(),
                ", ".join(f"{k.split('/')[0]} every {v:g} s" for k, v in every.items()),
            )
        log.info("deployments registered; starting a worker on %s (Ctrl-C stops all)", POOL)
        worker = children.add(start_worker(home, port))
        worker.wait()
    except KeyboardInterrupt:
        log.info("stopping the worker, the server and the page server")
    finally:
        children.stop()
        if pages is not None:
            pages.shutdown()
        if cfg.clock.kind == "replay":
            stop_replay(cfg, datetime.now(UTC))
        metrics.shutdown()


if __name__ == "__main__":
    main()
