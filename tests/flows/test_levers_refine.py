"""bench/levers_refine.py: the refined rows are marked and cover every family; coarse rows
read back from an earlier JSON are checked by replaying each family's best point again (a
made-up replay stands in for the simulator: only the plumbing is under test)."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from bench.levers_refine import coarse_from, refined
from planner.sim.sweep import PlanTargets, Point, grid, plan_grid
from tests.planner.test_refine import row


def made_up(pt: Point, _plans: dict[float, PlanTargets], shift: float = 0.0) -> dict[str, Any]:
    """A replay row (:func:`tests.planner.test_refine.row`): cheaper when hotter, the targets
    met up to target 0.43."""
    t = float(pt.params.get("target", 0.5))
    gpu = 1000.0 * (1 - t) + float(pt.params.get("cooldown_in_min", 0)) + shift
    return row(pt, lambda _pt: (gpu, t <= 0.43))


def submit_with(shift: float = 0.0) -> Any:
    def submit(pt: Point, plans: dict[float, PlanTargets]) -> Future[dict[str, Any]]:
        f: Future[dict[str, Any]] = Future()
        f.set_result(made_up(pt, plans, shift))
        return f

    return submit


def coarse_rows() -> list[dict[str, Any]]:
    rows = [made_up(pt, {}) for pt in grid(["reactive", "slo-reactive"], [0.5])]
    plan = [made_up(pt, {}) | {"variant": "v"} for pt in plan_grid([0.5], slo_layer=True)]
    return rows + plan


def test_refined_rows_are_marked_and_cover_every_family() -> None:
    out = refined(coarse_rows(), ["v"], {"v": {}}, submit_with())
    assert out and all(r["refined"] for r in out)
    assert {r["family"] for r in out} == {"reactive", "slo-reactive", "plan"}
    assert all(r.get("variant") == "v" for r in out if r["family"] == "plan")
    assert not any("variant" in r for r in out if r["family"] != "plan")


def test_coarse_rows_are_read_back_only_if_their_best_points_replay_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "before.json"
    stored = coarse_rows()
    doc = {"warmup_hours": 9, "results": [*stored, {**stored[0], "refined": True}]}
    path.write_text(json.dumps(doc))
    expect = (9, {(str(r.get("variant", "")), str(r["policy"])) for r in stored})
    rows = coarse_from(path, ["v"], {"v": {}}, submit_with(), expect)
    assert rows == json.loads(json.dumps(stored))
    with pytest.raises(SystemExit, match="replays to"):
        coarse_from(path, ["v"], {"v": {}}, submit_with(shift=1.0), expect)


def test_coarse_rows_of_another_warm_up_or_grid_are_refused(tmp_path: Path) -> None:
    """A file of another warm-up, or whose coarse rows are not this run's grid (a family or
    the SLO layer missing), is refused naming what differs, before anything is replayed."""
    path = tmp_path / "before.json"
    stored = coarse_rows()
    want = {(str(r.get("variant", "")), str(r["policy"])) for r in stored}
    path.write_text(json.dumps({"warmup_hours": 9, "results": stored[1:]}))
    with pytest.raises(SystemExit, match="1 missing"):
        coarse_from(path, ["v"], {"v": {}}, submit_with(), (9, want))
    with pytest.raises(SystemExit, match="warmup_hours 9, this run's 18"):
        coarse_from(path, ["v"], {"v": {}}, submit_with(), (18, want - {stored_key(stored[0])}))


def stored_key(r: dict[str, Any]) -> tuple[str, str]:
    return (str(r.get("variant", "")), str(r["policy"]))
