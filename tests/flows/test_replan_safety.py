"""Re-planning an hour and publishing, as ops do it: a rerun of an hour starts from the fleet
the first run started from (what was applied), a plan id changes with its content, and a
process killed (SIGKILL, at a named barrier) anywhere in store → export → pointers leaves
warehouse and published files in agreement, or one plan apart in the only direction the next
run repairs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.pipeline import forecast_and_plan
from flows.planning import MissingForecasts, record_application, run_plan, starting_state
from flows.publish import published_plan_id, verify_manifest
from flows.warehouse.connection import connect
from planner.config import FleetConfig, load_config
from planner.executors import AppliedState, desired_states
from tests.flows.warehouses import SynthLog

pytestmark = pytest.mark.slow
AS_OF = datetime(2024, 6, 11, 0, 5, tzinfo=UTC)  # plans 01:00 ..
NEXT = datetime(2024, 6, 11, 1, 5, tzinfo=UTC)  # plans 02:00 ..
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_cfg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo fleet over a 3-hour horizon, solved to proven optimality (gap 0)."""
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    data["planner"].update(horizon_h=3, integer_placement_h=3, mip_gap=0.0, time_limit_s=120)
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def small_cfg(small_cfg_path: Path) -> FleetConfig:
    return load_config(small_cfg_path)


@pytest.fixture
def wh(demo_log_selected: SynthLog, tmp_path: Path) -> Path:
    return demo_log_selected.copy_warehouse(tmp_path / "wh.duckdb")


def _first_hour_actions(plan) -> list[tuple]:  # type: ignore[no-untyped-def]
    first = plan.actions[plan.actions["hour"] == plan.start]
    cols = ["kind", "region", "vm_type", "model", "count"]
    return sorted(tuple(str(v) for v in r) for r in first[cols].itertuples(index=False))


def test_a_rerun_of_an_hour_starts_from_the_same_fleet_and_repeats_its_actions(
    wh: Path, small_cfg: FleetConfig, tmp_path: Path
) -> None:
    """The issue's case: a plan made on the hour covers that hour, so the old query took the
    plan being replaced as the fleet running now (0 first-hour actions on the rerun)."""
    out = tmp_path / "plans"
    on_hour = datetime(2024, 6, 11, 1, 0, tzinfo=UTC)
    with connect(wh) as con:
        first = forecast_and_plan(con, small_cfg, on_hour, out)
        assert first.plan.solver.status == "optimal"
        rerun = forecast_and_plan(con, small_cfg, on_hour, out)
        assert rerun.plan.solver.status == "optimal"
        states = dict(con.execute("SELECT plan_id, state FROM plans").fetchall())
    assert first.previous_plan_id is None and rerun.previous_plan_id is None
    assert first.forecast["state_source"] == rerun.forecast["state_source"] == "configuration"
    assert states[rerun.plan.plan_id] == states[first.plan.plan_id]
    assert len(_first_hour_actions(first.plan)) > 0
    assert _first_hour_actions(rerun.plan) == _first_hour_actions(first.plan)
    assert rerun.plan.plan_id == first.plan.plan_id  # same content, same id
    assert published_plan_id(out) == first.plan.plan_id


def test_a_rerun_after_the_next_plan_replaces_only_its_own_hour(
    wh: Path, small_cfg: FleetConfig, tmp_path: Path
) -> None:
    out = tmp_path / "plans"
    with connect(wh) as con:
        before = forecast_and_plan(con, small_cfg, AS_OF, out)  # the plan in force for 01:00
        first = forecast_and_plan(con, small_cfg, NEXT, out)
        rerun = forecast_and_plan(con, small_cfg, NEXT, out)
        states = dict(con.execute("SELECT plan_id, state FROM plans").fetchall())
    assert rerun.previous_plan_id == first.previous_plan_id == before.plan.plan_id
    assert states[rerun.plan.plan_id] == states[first.plan.plan_id]
    assert _first_hour_actions(rerun.plan) == _first_hour_actions(first.plan)


def test_the_fleet_a_plan_starts_from_is_what_was_applied(
    wh: Path, small_cfg: FleetConfig, tmp_path: Path
) -> None:
    out = tmp_path / "plans"
    with connect(wh) as con:
        in_force = forecast_and_plan(con, small_cfg, AS_OF, out)
        docs = desired_states(in_force.plan)
        # the target accepted one region's document only, and what it accepted differs from
        # the plan (say, an operator capped it): the next plan must start from the record
        region = sorted(docs)[0]
        doc = json.loads(json.dumps(docs[region]))
        for counts in doc["vms"].values():
            counts["on_demand"] = 0
        doc["instances"] = {}
        applied = AppliedState(in_force.plan.plan_id, in_force.plan.start, {region: doc}, [])
        record_application(con, applied)
        now = pd.Timestamp(NEXT).tz_convert("UTC").tz_localize(None)
        from flows.planning import previous_plan

        state, source = starting_state(con, small_cfg, now, previous_plan(con, now))
        assert source.startswith("applied")
        assert all(n == 0 for (r, _), n in state.vms.items() if r == region)
        assert not [k for k in state.instances if k[0] == region]
        others = in_force.plan.state_at(in_force.plan.start)
        assert {k: v for k, v in state.vms.items() if k[0] != region} == {
            k: v for k, v in others.vms.items() if k[0] != region
        }
        nxt = forecast_and_plan(con, small_cfg, NEXT, out)
        assert nxt.forecast["state_source"].startswith("applied")
        buys = nxt.plan.actions[
            (nxt.plan.actions["hour"] == nxt.plan.start)
            & (nxt.plan.actions["region"] == region)
            & (nxt.plan.actions["kind"].str.contains("buy|start|add"))
        ]
        assert len(buys) > 0  # the capped region is scaled back up


def test_a_plan_id_changes_whenever_its_content_does(
    wh: Path, small_cfg: FleetConfig, tmp_path: Path
) -> None:
    from dataclasses import replace

    from planner.ilp.readback import plan_id

    out = tmp_path / "plans"
    with connect(wh) as con:
        made = forecast_and_plan(con, small_cfg, AS_OF, out).plan
    frames = {
        name: getattr(made, name)
        for name in ("vms", "instances", "assignments", "routing", "niw", "actions", "costs")
    }
    frames["unmet"] = made.unmet

    class Data:  # the header fields plan_id reads
        config_hash = made.solver.config_hash
        as_of = made.as_of
        start = made.start
        hours = made.hours
        forecast_origin = made.forecast_origin

    same = plan_id(Data, frames, made.solver)  # type: ignore[arg-type]
    assert same == made.plan_id
    routing = frames["routing"].copy()
    routing.loc[routing.index[0], "weight"] = routing["weight"].iloc[0] * 0.5
    assert plan_id(Data, {**frames, "routing": routing}, made.solver) != same  # type: ignore[arg-type]
    fallback = replace(made.solver, status="timelimit", fallback=True)
    assert plan_id(Data, frames, fallback) != same  # type: ignore[arg-type]


def _plan_in_subprocess(
    wh: Path, cfg_path: Path, out: Path, as_of: str, barrier: str, tmp: Path
) -> None:
    """`sageserve plan` in a real process, killed with SIGKILL at ``barrier``."""
    flag = tmp / f"barrier-{barrier}"
    env = {
        **os.environ,
        "SAGESERVE_BARRIER": barrier,
        "SAGESERVE_BARRIER_FILE": str(flag),
    }
    cmd = [
        str(Path(sys.executable).parent / "sageserve"),
        "--config",
        str(cfg_path),
        "--warehouse",
        str(wh),
        "plan",
        "--as-of",
        as_of,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not flag.exists():  # the process reports it is at the barrier
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {barrier}: {proc.stderr.read()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"never reached {barrier}"
        time.sleep(0.1)
    assert int(flag.read_text()) == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _published_and_stored(wh: Path, out: Path) -> tuple[str | None, set[str]]:
    with connect(wh, read_only=True) as con:
        stored = {r[0] for r in con.execute("SELECT plan_id FROM plans").fetchall()}
    return published_plan_id(out), stored


@pytest.mark.parametrize(
    ("barrier", "warehouse_has_new"),
    [
        ("plan-stored", False),
        ("plan-committed", True),
        ("plan-exported", True),
        ("latest-moved", True),
    ],
)
def test_a_kill_anywhere_in_publishing_never_publishes_what_the_warehouse_lacks(
    wh: Path,
    small_cfg: FleetConfig,
    small_cfg_path: Path,
    tmp_path: Path,
    barrier: str,
    warehouse_has_new: bool,
) -> None:
    out = tmp_path / "plans"
    with connect(wh) as con:
        good = forecast_and_plan(con, small_cfg, AS_OF, out)
    assert published_plan_id(out) == good.plan.plan_id

    _plan_in_subprocess(wh, small_cfg_path, out, "2024-06-11T01:05Z", barrier, tmp_path)

    published, stored = _published_and_stored(wh, out)
    assert published is None or published in stored  # never a plan the warehouse lacks
    new = stored - {good.plan.plan_id}
    assert bool(new) == warehouse_has_new
    if not warehouse_has_new:
        assert published == good.plan.plan_id  # as it was
        assert (out / "LATEST").read_text().strip() == good.export_path.name  # type: ignore[union-attr]

    # the next run repairs the mismatch (and clears temp leftovers) before planning
    with connect(wh) as con:
        from flows.planning import repair_publication

        repaired = repair_publication(con, out)
    published, stored = _published_and_stored(wh, out)
    if warehouse_has_new:
        (killed,) = new
        assert published == killed
        assert repaired == killed
        folder = out / "20240611T0200"
        assert verify_manifest(folder) == []
    else:
        assert published == good.plan.plan_id and repaired is None
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_plan_made_long_after_the_data_ends_says_so(
    wh: Path, small_cfg: FleetConfig, tmp_path: Path
) -> None:
    with connect(wh) as con:
        last = con.execute("SELECT max(hour) FROM demand_hourly").fetchone()[0]  # type: ignore[index]
        late = pd.Timestamp(last) + pd.Timedelta(hours=21)
        made = forecast_and_plan(con, small_cfg, late.tz_localize("UTC").to_pydatetime(), tmp_path)
        fresh = forecast_and_plan(con, small_cfg, AS_OF, tmp_path)
    (note,) = [n for n in made.plan.notes if n.startswith("STALE DATA")]
    assert "20.0 h before this plan" in note
    assert not [n for n in fresh.plan.notes if n.startswith("STALE DATA")]
    manifest = json.loads((made.export_path / "plan.json").read_text())  # type: ignore[operator]
    assert note in manifest["notes"]


def test_an_as_of_far_after_the_data_names_the_span_the_warehouse_holds(
    wh: Path, small_cfg: FleetConfig
) -> None:
    from flows.forecasting import run_selection

    with connect(wh) as con, pytest.raises(ValueError, match=r"the demand mart holds 2024-06-"):
        run_selection(con, small_cfg, datetime(2030, 1, 1, tzinfo=UTC))


def test_planning_never_forecasts_missing_forecasts_are_an_error(
    wh: Path, small_cfg: FleetConfig, tmp_path: Path
) -> None:
    """The plan step reads forecasts and makes none: without the forecast step it fails
    naming the origin and the step to run, and writes no forecast and no plan."""
    with connect(wh) as con:
        before = con.execute("SELECT count(*) FROM forecasts").fetchone()
        missing = r"origin 2024-06-11T00:00 covering 4 h.*forecast"
        with pytest.raises(MissingForecasts, match=missing):
            run_plan(con, small_cfg, AS_OF, tmp_path / "plans")
        assert con.execute("SELECT count(*) FROM forecasts").fetchone() == before
        assert con.execute("SELECT count(*) FROM plans").fetchone() == (0,)
        made = forecast_and_plan(con, small_cfg, AS_OF, tmp_path / "plans")
        assert made.check.ok and made.forecast["origin"] == pd.Timestamp("2024-06-11 00:00")


def test_backfill_runs_end_to_end_forecasting_before_each_plan(
    wh: Path, small_cfg_path: Path, tmp_path: Path
) -> None:
    """The backfill flow (real Prefect, ephemeral API) over one hour: the forecast step, then
    the plan made plan_lead_min before the hour, verified and published under backfill/."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from flows.scheduled import backfill

    out = backfill(
        "2024-06-11T01:00", "2024-06-11T02:00", str(small_cfg_path), str(wh), str(tmp_path)
    )
    assert [p["hour"] for p in out["plans"]] == ["2024-06-11 01:00:00"]
    assert out["plans"][0]["verified"]
    assert published_plan_id(tmp_path / "backfill") == out["plans"][0]["plan_id"]
    with connect(wh, read_only=True) as con:
        origin = con.execute("SELECT max(origin) FROM forecasts").fetchone()
    assert origin == (datetime(2024, 6, 11, 0, 0),)
