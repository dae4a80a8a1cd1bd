"""The OpenMetrics HTTP endpoint: prometheus_client's server over a fresh registry holding the
SageServe collector, bound to 127.0.0.1 on its own port (default 9731, or
``SAGESERVE_METRICS_PORT``). Prometheus negotiates OpenMetrics through its Accept header;
plain clients get the Prometheus text format. ``make serve`` starts it beside the Prefect
server; ``python -m flows.metrics.server`` runs it alone."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from flows.metrics.collector import Source, build_registry
from flows.metrics.snapshot import WarehouseSource
from flows.run_context import run_config
from planner.config import FleetConfig

log = logging.getLogger(__name__)
DEFAULT_PORT = 9731
QUIET_S = 30.0  # the warehouse is re-read once it has been left alone this long


def default_port() -> int:
    return int(os.environ.get("SAGESERVE_METRICS_PORT", DEFAULT_PORT))


def source_from_config(cfg: FleetConfig, warehouse: Path | None = None) -> WarehouseSource:
    return WarehouseSource(
        Path(warehouse or cfg.paths.warehouse), Path(cfg.paths.outputs), quiet_s=QUIET_S
    )


def start(
    source: Source, port: int | None = None, host: str = "127.0.0.1"
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` (any path) on ``host:port`` in a daemon thread; returns the server
    (``shutdown()`` stops it) and its thread."""
    port = default_port() if port is None else port
    try:
        server, thread = start_http_server(port, addr=host, registry=build_registry(source))
    except OSError as exc:
        raise RuntimeError(
            f"metrics endpoint: cannot listen on {host}:{port} ({exc}); "
            "set SAGESERVE_METRICS_PORT to a free port"
        ) from exc
    log.info("metrics (OpenMetrics) at http://%s:%d/metrics", host, server.server_port)
    return server, thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--warehouse", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _, thread = start(source_from_config(run_config(args.config), args.warehouse), args.port)
    with contextlib.suppress(KeyboardInterrupt):
        thread.join()


if __name__ == "__main__":
    main()
