"""The refinement step of ``bench/levers.py``: each family's best point refined on its
continuous dial (``planner.sim.refine``, the same rule for every family), and the coarse rows
it starts from, replayed now or (``--coarse-from``) read back from an earlier ``--out`` JSON of
the same window and plans, checked by replaying every family's coarse best point again."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from planner.sim.refine import refine
from planner.sim.sweep import PlanTargets, Point, frontier

log = logging.getLogger("bench.levers")

Plans = dict[str, dict[float, PlanTargets]]
Submit = Callable[[Point, dict[float, PlanTargets]], Future[dict[str, Any]]]
CHECKED = ("gpu_hours", "IW-F_sla", "IW-N_sla", "niw_on_time")


def collect(futures: Sequence[tuple[str, Future[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The rows of ``futures``, each plan row naming its variant."""
    rows = []
    for v, f in futures:
        r = f.result()
        if v:
            r["variant"] = v
        rows.append(r)
    return rows


def _by_variant(rows: list[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    out = {"": [r for r in rows if "variant" not in r]}
    return out | {v: [r for r in rows if r.get("variant") == v] for v in names}


def refined(
    rows: list[dict[str, Any]], names: Sequence[str], plans: Plans, submit: Submit
) -> list[dict[str, Any]]:
    """Each family's best point refined (the reactive families once, the plan family per
    variant), replayed; the rows marked ``refined``."""
    futures = [
        (v, submit(pt, plans[v] if v else {}))
        for v, mine in _by_variant(rows, names).items()
        for pt in refine(mine)
    ]
    log.info("refining: %d points", len(futures))
    out = collect(futures)
    for r in out:
        r["refined"] = True
    return out


def coarse_from(
    path: Path,
    names: Sequence[str],
    plans: Plans,
    submit: Submit,
    expect: tuple[int, set[tuple[str, str]]],
) -> list[Any]:
    """The coarse rows of an earlier ``--out`` JSON (its refined rows left out), after its
    warm-up and its (variant, policy) set equal ``expect`` (this run's warm-up hours and coarse
    points) and every family's best point in it replays to the same GPU-hours and attainments
    now (else the file is of another window, other plans, another grid or other code:
    SystemExit naming what differs)."""
    doc = json.loads(path.read_text())
    rows = [r for r in doc["results"] if not r.get("refined")]
    warm, want = expect
    if doc.get("warmup_hours") != warm:
        raise SystemExit(f"{path}: warmup_hours {doc.get('warmup_hours')}, this run's {warm}")
    have = {(str(r.get("variant", "")), str(r["policy"])) for r in rows}
    if have != want:
        missing, extra = sorted(want - have), sorted(have - want)
        raise SystemExit(
            f"{path}: its coarse rows are not this run's grid: {len(missing)} missing "
            f"(e.g. {missing[:1]}), {len(extra)} not in it (e.g. {extra[:1]})"
        )
    parts = _by_variant(rows, names)
    checks = []
    for v, mine in parts.items():
        base = mine if not v else parts[""] + mine
        for fam, best in frontier(base).items():
            if best is None or (v and fam != "plan"):
                continue
            stored = next(r for r in mine if r["policy"] == best["policy"])
            pt = Point(stored["family"], stored["params"])
            checks.append((stored, submit(pt, plans[v] if v else {})))
    for stored, f in checks:
        now = f.result()
        if any(abs(now[k] - stored[k]) > 1e-6 for k in CHECKED):
            got = {k: now[k] for k in CHECKED}
            raise SystemExit(f"{path}: {stored['policy']} replays to {got}, stored {stored}")
        log.info("coarse row reproduced: %s %.2f GPU-h", stored["policy"], now["gpu_hours"])
    return rows
