"""Fixtures shared by the flows tests: the 8-day demo log, built once per session."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.warehouse.connection import connect
from planner.config import FleetConfig
from tests.flows.warehouses import DEMO_LOG, SynthLog, synth_warehouse

# the end of DEMO_LOG: the daily job's selection there serves every plan of the next 24 h
SELECTED_AT = datetime(2024, 6, 11, tzinfo=UTC)


@pytest.fixture(scope="session")
def demo_log(
    tmp_path_factory: pytest.TempPathFactory, cfg: FleetConfig, shared_data: Path
) -> SynthLog:
    """``DEMO_LOG`` synthesized and ingested once; tests read its day files and take a copy of
    its warehouse (``copy_warehouse``), never write to it. No forecast selection is stored."""
    root = tmp_path_factory.mktemp("demo-log")
    logs = root / "logs"
    warehouse = synth_warehouse(logs, cfg, shared_data, DEMO_LOG, root / "wh.duckdb")
    return SynthLog(DEMO_LOG, logs, warehouse)


@pytest.fixture(scope="session")
def demo_log_selected(
    tmp_path_factory: pytest.TempPathFactory, demo_log: SynthLog, cfg: FleetConfig
) -> SynthLog:
    """``demo_log`` after the daily job at its end (as `make demo` leaves a warehouse): the
    default config's forecast selection at ``SELECTED_AT`` is stored, so a plan made in the
    following 24 h forecasts from it instead of running its own selection first. Take a copy."""
    from flows.forecasting import run_selection

    warehouse = demo_log.copy_warehouse(tmp_path_factory.mktemp("demo-selected") / "wh.duckdb")
    with connect(warehouse) as con:
        run_selection(con, cfg, SELECTED_AT)
    return replace(demo_log, warehouse=warehouse)
