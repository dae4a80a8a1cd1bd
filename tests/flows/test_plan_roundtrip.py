"""A stored plan loads back equal: header, solver facts, notes and every table of the registry
(values and dtypes), for plans drawn by a seeded generator, empty tables and missing numbers
included. And the hour view reads the same fleet from a plan and from its desired-state
documents."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flows.planning import load_plan, store_plan
from flows.warehouse.connection import connect
from planner.executors import desired_states, documents_view
from planner.ilp.data import FleetState
from planner.ilp.plan import Plan, SolverFacts
from planner.ilp.plan_tables import PLAN_TABLES
from planner.ilp.verify import Verification

REGIONS, TYPES, MODELS, TIERS = ("r1", "r2"), ("g1", "g2"), ("m1", "m2"), ("IW-F", "NIW")
KINDS = ("add_vm", "release_spot_vm", "load_model", "unload_model_spot")


def _rows(rng: random.Random, hours: list[datetime], name: str) -> list[tuple[object, ...]]:
    """Rows of one table that satisfy its pandera model (keys unique, weights summing to 1)."""
    out: list[tuple[object, ...]] = []
    for h in hours:
        for r in REGIONS:
            if rng.random() < 0.2:
                continue
            for g in TYPES:
                od, sp = rng.randint(0, 9), rng.randint(0, 3)
                if name == "vms":
                    out.append((h, r, g, od, sp))
                for m in MODELS:
                    tokens = rng.uniform(0, 5e4)
                    if name == "instances":
                        committed = h == hours[0]
                        n = float(od) if committed else rng.uniform(0, 9)
                        out.append((h, r, m, g, n, float(sp), committed))
                    elif name == "assignments":
                        out.append((h, r, m, g, rng.choice(TIERS), tokens, rng.random() < 0.5))
                    elif name == "actions" and rng.random() < 0.3:
                        model = None if "vm" in (kind := rng.choice(KINDS)) else m
                        start = h - timedelta(minutes=rng.randint(0, 30))
                        out.append((kind, r, g, model, rng.randint(1, 4), h, start, h))
            for m in MODELS:
                w = rng.random()
                if name == "routing":
                    out += [(h, r, m, "IW-F", r, w, 1e3), (h, r, m, "IW-F", "r9", 1 - w, 0.0)]
                elif name == "unmet" and w < 0.3:
                    out.append((h, r, m, "IW-F", w * 100))
        if name == "niw":
            out += [(h, m, *(rng.uniform(0, 1e3) for _ in range(4))) for m in MODELS]
        elif name == "costs":
            out += [(h, c, rng.uniform(0, 500)) for c in ("vm_hours", "model_loads")]
    return out


def random_plan(seed: int) -> Plan:
    rng = random.Random(seed)
    start = datetime(2024, 6, 10) + timedelta(hours=rng.randint(0, 500))
    hours = [start + timedelta(hours=i) for i in range(rng.randint(1, 4))]
    frames = {
        name: table.frame([] if rng.random() < 0.15 else _rows(rng, hours, name))
        for name, table in PLAN_TABLES.items()
    }
    solver = SolverFacts(
        status=rng.choice(("optimal", "timelimit")),
        objective=rng.choice((float("nan"), rng.uniform(0, 1e5))),
        gap=rng.choice((float("nan"), rng.uniform(0, 0.1))),
        dual_bound=rng.uniform(0, 1e5),
        solve_seconds=rng.uniform(0, 60),
        build_seconds=rng.uniform(0, 5),
        scip_version="9.2",
        config_hash=f"{rng.getrandbits(64):016x}",
        fallback=rng.random() < 0.2,
        fallback_reason=rng.choice((None, "no incumbent")),
        warm_start=rng.choice(("none", "accepted")),
        variables=rng.randint(0, 10**6),
        constraints=rng.randint(0, 10**6),
        bound_source=rng.choice(("root relaxation", "search tree", "none")),
        nodes=rng.randint(0, 10**5),
        method=rng.choice(("monolithic SCIP", "lagrangian decomposition (4 regions)")),
    )
    return Plan(
        plan_id=f"plan-{start:%Y%m%dT%H%M}-{seed:012x}",
        as_of=start - timedelta(minutes=rng.randint(0, 59)),
        start=start,
        hours=tuple(hours),
        forecast_origin=rng.choice((None, start - timedelta(hours=1))),
        solver=solver,
        notes=tuple(
            rng.choice(("STALE DATA: …", "fallback", "ü")) for _ in range(rng.randint(0, 2))
        ),
        **frames,
    )


@pytest.mark.parametrize("seed", range(12))
def test_a_stored_plan_loads_back_equal(tmp_path: Path, seed: int) -> None:
    plan = random_plan(seed)
    state = FleetState(vms={("r1", "g1"): 2}, niw_backlog={"m1": 1.5})
    with connect(tmp_path / "wh.duckdb") as con:
        store_plan(con, plan, Verification(violations=[], warnings=[]), state)
        loaded = load_plan(con, plan.plan_id)
    assert loaded == plan
    for name, frame in loaded.frames().items():
        assert list(frame.dtypes.astype(str)) == list(plan.frames()[name].dtypes.astype(str))


def test_a_changed_table_is_not_equal() -> None:
    plan = random_plan(3)
    vms = plan.vms.copy()
    vms.loc[0, "on_demand"] += 1
    other = Plan(**{**plan.__dict__, "vms": vms})
    assert other != plan and random_plan(3) == plan


def test_documents_read_back_the_hour_they_were_made_from() -> None:
    plan = random_plan(5)
    docs = desired_states(plan)
    view, back = plan.at(plan.start), documents_view(docs, plan.start)
    assert back.state() == view.state({})
    assert back.routing == {
        k: {r: round(w, 6) for r, w in targets.items()} for k, targets in view.routing.items()
    }


def test_the_warehouse_tables_have_the_registry_columns(tmp_path: Path) -> None:
    """Each plan_<name> table holds plan_id and the registry's columns, in its kinds."""
    sql_kind = {"TIMESTAMP": "time", "VARCHAR": "text", "INTEGER": "int", "DOUBLE": "float"}
    sql_kind["BOOLEAN"] = "bool"
    with connect(tmp_path / "wh.duckdb") as con:
        for name, table in PLAN_TABLES.items():
            got = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position",
                [f"plan_{name}"],
            ).fetchall()
            kinds = [(c, sql_kind.get(t, t)) for c, t in got]
            assert kinds == [("plan_id", "text"), *((c.name, c.kind) for c in table.columns)]
