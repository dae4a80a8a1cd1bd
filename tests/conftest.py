"""Shared fixtures: the default config, the shared public data, a fresh warehouse per test."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from flows.warehouse import requests_contract
from flows.warehouse.connection import connect
from planner.config import FleetConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SAGESERVE_SHARED", ROOT.parent / "shared")) / "data"
NOW = datetime(2024, 7, 1, tzinfo=UTC)

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Flows run in-process (tests/flows/test_run_status.py, test_fanout_dask.py) start Prefect's
# ephemeral API on $PREFECT_HOME/prefect.db: one home per test process, not ~/.prefect shared
# with other test runs (or pytest-xdist workers) on the machine, whose writers lock SQLite.
# An xdist worker inherits the controller's environment, the controller's home included (this
# file runs there first): a home this file made is replaced by the worker's own.
_MADE_HOME = "SAGESERVE_TEST_PREFECT_HOME"
if "PREFECT_HOME" not in os.environ or os.environ["PREFECT_HOME"] == os.environ.get(_MADE_HOME):
    _prefect_home = tempfile.mkdtemp(prefix="sageserve-test-prefect-")
    os.environ["PREFECT_HOME"] = os.environ[_MADE_HOME] = _prefect_home
    atexit.register(shutil.rmtree, _prefect_home, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test`: two workers on two cores) every process keeps to one
    OpenMP and BLAS thread: two workers' thread teams on two cores spin-wait for each other
    (scikit-learn's histogram boosting in the length predictor ran 3-12x slower; LightGBM is
    already pinned to one thread, planner/forecast/gbm.py). Set here, in the controller,
    before the workers start: they and their subprocesses inherit it."""
    if config.getoption("numprocesses", default=None):
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules holding a slow-marked test run first, then the others; each module's tests
    stay together and in their order. `make test` hands whole modules to two xdist workers in
    this order (``--dist loadfile --no-loadscope-reorder``): the long modules start early and
    the many short ones fill in at the end, so both workers finish about together."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)  # stable


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop Prefect's temporary API server (a flow run in-process starts one) while the test
    process's streams are still open. Prefect stops it at exit otherwise, and its "Stopping
    temporary server" line then goes to a stream pytest has closed: a "--- Logging error ---"
    traceback at the end of every run that started one. The flow runs' queued log lines are
    sent first, while the API still answers."""
    server = sys.modules.get("prefect.server.api.server")
    if server is None:  # no flow ran in this process: nothing was started
        return
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is not None:  # send the flow runs' queued log lines while the API is up
        handlers.APILogWorker.drain_all(timeout=5)
    logger = server.subprocess_server_logger  # its INFO line would go to the API it stops
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        for instance in list(server.SubprocessASGIServer._instances.values()):
            instance.stop()
    finally:
        logger.setLevel(level)


@pytest.fixture(scope="session")
def cfg() -> FleetConfig:
    return load_config()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: CI places it beside the clone; tests that need it fail without it."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(
            f"{SHARED_DATA} not found: the shared public traces must sit beside the repository "
            "(or set SAGESERVE_SHARED)"
        )
    return SHARED_DATA


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(tmp_path / "wh.duckdb", memory_limit="512MB")
    yield con
    con.close()


@pytest.fixture
def contract(cfg: FleetConfig):  # type: ignore[no-untyped-def]
    return requests_contract(cfg, NOW)
