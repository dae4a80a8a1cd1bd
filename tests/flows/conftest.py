"""Fixtures shared by the flows tests: the 8-day demo log, built once per session (once per
`make test` run, whichever of its xdist workers asks first; the other waits and reads it)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from flows.warehouse.connection import connect
from planner.config import FleetConfig, load_config
from tests.flows.warehouses import DEMO_LOG, SynthLog, synth_warehouse

ROOT = Path(__file__).resolve().parents[2]
# the end of DEMO_LOG: the daily job's selection there serves every plan of the next 24 h
SELECTED_AT = datetime(2024, 6, 11, tzinfo=UTC)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A folder ``name`` that ``build`` fills, once per test run. Alone, a fresh temp folder;
    under pytest-xdist, a folder of the run's base temp shared by the workers: the first
    worker builds it under an exclusive lock, the others wait on the lock and take it as
    built (a marker file says it is complete; a failed build leaves none and the next worker
    tries again). Tests only read what is there (they copy the warehouse to write)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        root = tmp_path_factory.mktemp(name)
        build(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent  # the run's base temp, one per run
    root, done = shared / name, shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed build left
            root.mkdir()
            build(root)
            done.touch()
    return root


@pytest.fixture(scope="session")
def demo_log(
    tmp_path_factory: pytest.TempPathFactory, cfg: FleetConfig, shared_data: Path
) -> SynthLog:
    """``DEMO_LOG`` synthesized and ingested once; tests read its day files and take a copy of
    its warehouse (``copy_warehouse``), never write to it. No forecast selection is stored."""

    def build(root: Path) -> None:
        synth_warehouse(root / "logs", cfg, shared_data, DEMO_LOG, root / "wh.duckdb")

    root = built_once(tmp_path_factory, "demo-log", build)
    return SynthLog(DEMO_LOG, root / "logs", root / "wh.duckdb")


@pytest.fixture(scope="session")
def demo_log_selected(
    tmp_path_factory: pytest.TempPathFactory, demo_log: SynthLog, cfg: FleetConfig
) -> SynthLog:
    """``demo_log`` after the daily job at its end (as `make demo` leaves a warehouse): the
    default config's forecast selection at ``SELECTED_AT`` is stored, so a plan made in the
    following 24 h forecasts from it instead of running its own selection first. Take a copy."""
    from flows.forecasting import run_selection

    def build(root: Path) -> None:
        with connect(demo_log.copy_warehouse(root / "wh.duckdb")) as con:
            run_selection(con, cfg, SELECTED_AT)

    root = built_once(tmp_path_factory, "demo-selected", build)
    return replace(demo_log, warehouse=root / "wh.duckdb")


@pytest.fixture(scope="session")
def quick_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/default.yaml with seasonal-naive forecasts only (snaive24 chosen, snaive168
    the other candidate), as a file for the CLI's ``--config``: for tests where a selection
    runs but which forecaster it picks is not under test (it runs in a fifth of the default
    grid's time; the default grid is selected in ``demo_log_selected``)."""
    document = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    document["forecast"]["candidates"] = ["snaive24", "snaive168"]
    document["forecast"]["champion"] = "snaive24"
    path = tmp_path_factory.mktemp("quick-config") / "quick.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def quick_cfg(quick_config: Path) -> FleetConfig:
    """``quick_config`` loaded: the default fleet with seasonal-naive forecasts."""
    return load_config(quick_config)
