"""bench/levers.py's warm-up plumbing (issue #15 review): the oracle reads true demand over
warm-up and window, the plan cache keys every window apart, ``--no-deterministic`` clears a
configured work limit."""

from __future__ import annotations

import argparse

import duckdb
import pandas as pd

from bench.levers import cache_window, solve_limits
from flows.plan_cache import plan_report, solve_summary
from flows.sweep import oracle_actuals
from planner.config import load_config
from planner.config.work_limit import WorkLimit

T0 = pd.Timestamp("2026-01-01 00:00")


def test_the_oracle_reads_true_demand_from_the_warm_up_on() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE demand_hourly AS SELECT TIMESTAMP '2026-01-01' + INTERVAL (i) HOUR AS hour,"
        " 'r' AS region, 'm' AS model, 't' AS tier, 1.0 AS requests, 1.0 AS input_tokens,"
        " 1.0 AS output_tokens, 1.0 AS token_rate, 1.0 AS peak_minute_token_rate,"
        " 1.0 AS coverage FROM range(100) t(i)"
    )
    begin, stop = T0 + pd.Timedelta(hours=10), T0 + pd.Timedelta(hours=30)
    hours = pd.to_datetime(oracle_actuals(con, begin, stop)["hour"])
    assert hours.min() == begin - pd.Timedelta(hours=1)  # the warm-up's hours have true demand
    assert hours.max() == stop + pd.Timedelta(hours=47)


def _args(hours: int, warehouse: str = "/tmp/s32-15b/a.duckdb") -> argparse.Namespace:
    return argparse.Namespace(config="configs/default.yaml", warehouse=warehouse, hours=hours)


def test_the_plan_cache_keys_window_warm_up_and_warehouse_apart() -> None:
    # the same replayed span (33 h from T0), split differently into warm-up and window
    warm9 = cache_window(_args(24), T0 + pd.Timedelta(hours=9), 9)
    warm0 = cache_window(_args(33), T0, 0)
    assert warm9 != warm0
    other = cache_window(_args(24, "/tmp/s32-15b/b.duckdb"), T0 + pd.Timedelta(hours=9), 9)
    assert other != warm9
    assert cache_window(_args(24), T0 + pd.Timedelta(hours=9), 9) == warm9


def test_no_deterministic_clears_a_configured_work_limit() -> None:
    cfg = load_config()
    det = cfg.model_copy(
        update={"planner": cfg.planner.model_copy(update={"work_limit": WorkLimit(nodes=5)})}
    )
    a = argparse.Namespace(deterministic=False, time_limit=3.0)
    assert solve_limits(det, a).planner.work_limit is None
    assert solve_limits(det, a).planner.time_limit_s == 3.0


def _limits(**given: float | None) -> argparse.Namespace:
    flags = {"node_limit": None, "root_cut_rounds": None, "cap": None} | given
    return argparse.Namespace(deterministic=True, time_limit=3.0, **flags)


def test_the_configs_work_limit_holds_unless_a_flag_replaces_it() -> None:
    cfg = load_config()
    mine = WorkLimit(nodes=50, root_cut_rounds=3, cap_s=90.0)
    det = cfg.model_copy(update={"planner": cfg.planner.model_copy(update={"work_limit": mine})})
    assert solve_limits(det, _limits()).planner.work_limit == mine
    assert solve_limits(det, _limits(node_limit=7)).planner.work_limit == WorkLimit(
        nodes=7, root_cut_rounds=3, cap_s=90.0
    )
    # no work limit in the config: WorkLimit's defaults, a flag in its place
    assert solve_limits(cfg, _limits()).planner.work_limit == WorkLimit()
    assert solve_limits(cfg, _limits(root_cut_rounds=-1)).planner.work_limit == WorkLimit(
        root_cut_rounds=-1
    )


def test_the_plan_report_gives_each_sequences_gaps_and_solve_times() -> None:
    rec = {
        "ids": ["a", "b", "c"],
        "notes": ["", "", ""],
        "solves": ["x", "y", "z"],
        "gaps": [0.10, None, 0.02],
        "scip_seconds": [3.0, 5.0, 40.0],
    }
    lines, bad = plan_report({"floor q0.5": rec})
    assert lines[0].endswith(
        "; SCIP median 5.0 s, max 40.0 s; gap median 6.00%, max 10.00% (1 unknown)"
    )
    assert bad == []
    old = {k: rec[k] for k in ("ids", "notes", "solves")}  # stored before gaps were recorded
    assert solve_summary(old) == ""
