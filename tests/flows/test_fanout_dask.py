"""The forecast fan-out on a local Dask cluster gives what the default thread pool gives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.hourly_plan import fanout_flow
from flows.run_context import run_context
from planner.config import FleetConfig
from planner.workload.synth import SynthSpec
from tests.flows.warehouses import synth_warehouse

pytestmark = pytest.mark.slow


def test_fanout_on_dask_matches_threads(
    tmp_path: Path, cfg: FleetConfig, shared_data: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    spec = SynthSpec(days=5, seed=2, requests_per_day=20_000)
    wh = synth_warehouse(tmp_path / "logs", cfg, shared_data, spec)
    with run_context(cfg, str(wh), str(tmp_path), "2024-06-08T00:00:00") as ctx:
        threads = fanout_flow(None)(ctx, 25)
        first = ctx.warehouse.forecasts_at(pd.Timestamp(threads["origin"]))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
            on_dask = fanout_flow(cluster.scheduler_address)(ctx, 25)
        second = ctx.warehouse.forecasts_at(pd.Timestamp(on_dask["origin"]))
    assert on_dask["rows"] == threads["rows"] == len(first) > 0
    keys = ["region", "model", "tier", "metric", "hour"]
    a = first.sort_values(keys).reset_index(drop=True)
    b = second.sort_values(keys).reset_index(drop=True)
    assert (
        a[["point", "q_0_5", "q_0_95"]].to_numpy() == b[["point", "q_0_5", "q_0_95"]].to_numpy()
    ).all()
