"""`make serve` / `python -m flows.serve`: a local Prefect server (SQLite under
.sageserve/prefect), the process work pool, the warehouse concurrency limit, every deployment
of prefect.yaml, and a worker. The UI is then at http://127.0.0.1:4200. Beside it, on its own
port, the OpenMetrics endpoint (flows/metrics/server.py): http://127.0.0.1:9731/metrics
(``SAGESERVE_METRICS_PORT`` moves it).

The server test (tests/flows/test_prefect_server.py) drives the same functions."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def start_server(
    home: Path, port: int = 4200, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `prefect server start` and wait until /api/health answers (up to 120 s)."""
    home.mkdir(parents=True, exist_ok=True)
    out = (log_file or home / "server.log").open("ab")
    proc = subprocess.Popen(
        [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=prefect_env(home, port),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}; see {out.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return proc
        except OSError:
            time.sleep(1)
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


def start_worker(
    home: Path, port: int = 4200, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    out = (log_file or home / "worker.log").open("ab")
    return subprocess.Popen(
        [prefect_bin(), "worker", "start", "--pool", POOL, "--type", "process"],
        env=prefect_env(home, port),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    home = ROOT / ".sageserve" / "prefect"
    from flows.metrics.server import source_from_config
    from flows.metrics.server import start as start_metrics

    metrics, _ = start_metrics(source_from_config(os.environ.get("SAGESERVE_CONFIG")))
    server = start_server(home)
    log.info("Prefect server up: http://127.0.0.1:4200 (data in %s)", home)
    try:
        set_up(home)
        log.info("deployments registered; starting a worker on %s (Ctrl-C stops all)", POOL)
        worker = start_worker(home)
        worker.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(timeout=30)
        metrics.shutdown()


if __name__ == "__main__":
    main()
