"""A directory cache of solved plan sequences' targets (``planner.sim.plans.plan_targets``),
each file beside its record (the plans' ids, determinism notes and how each solve ended), so a
policy change is re-measured on the same plans without solving them again (``bench/levers.py
--plans-cache``). The caller names the files (window, variant, quantile, config hash)."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from statistics import median
from typing import Any

from flows.sweep import HourInputs, plan_sequence_from
from planner.config import FleetConfig
from planner.ilp.plan import Plan
from planner.sim.fleet import FleetParams
from planner.sim.plans import plan_targets
from planner.sim.sweep import PlanTargets

log = logging.getLogger(__name__)
PlanRecord = dict[str, list[Any]]


def plan_record(seq: list[Plan]) -> PlanRecord:
    """Each plan's id, its determinism note ("" when none), how its solve ended, its gap to
    its own dual bound (None when unknown) and SCIP's seconds."""
    notes = ["; ".join(n for n in pl.notes if n.startswith("determinism")) for pl in seq]
    facts = [pl.solver for pl in seq]
    ends = [f"{f.status} {f.nodes} nodes {f.solve_seconds:.1f} s" for f in facts]
    gaps = [round(f.gap, 6) if f.gap_known else None for f in facts]
    return {
        "ids": [pl.plan_id for pl in seq],
        "notes": notes,
        "solves": ends,
        "gaps": gaps,
        "scip_seconds": [round(f.solve_seconds, 2) for f in facts],
    }


def solve_summary(rec: PlanRecord) -> str:
    """The sequence's gaps and SCIP times (median and max) in words; "" for a record stored
    without them (before they were recorded)."""
    if "gaps" not in rec:
        return ""
    gaps = [g for g in rec["gaps"] if g is not None]
    secs = rec["scip_seconds"]
    unknown = len(rec["gaps"]) - len(gaps)
    text = f"; SCIP median {median(secs):.1f} s, max {max(secs):.1f} s" if secs else ""
    if gaps:
        text += f"; gap median {median(gaps):.2%}, max {max(gaps):.2%}"
    return text + (f" ({unknown} unknown)" if unknown else "")


def read_plans(path: Path) -> tuple[PlanTargets, PlanRecord | None] | None:
    """The targets stored at ``path`` and their record (None when none was stored); None when
    ``path`` does not exist."""
    if not path.exists():
        return None
    ids = path.with_suffix(".ids.json")
    record = json.loads(ids.read_text()) if ids.exists() else None
    return pickle.loads(path.read_bytes()), record


def write_plans(path: Path, targets: PlanTargets, record: PlanRecord) -> None:
    """Store ``targets`` at ``path`` and ``record`` beside it (``.ids.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(targets))
    path.with_suffix(".ids.json").write_text(json.dumps(record))


def plans_for(
    jobs: Sequence[tuple[FleetConfig, Path | None]],
    inputs: Sequence[HourInputs],
    p: FleetParams,
    pool: Executor,
    read: bool = True,
) -> tuple[list[PlanTargets], dict[int, PlanRecord]]:
    """Per job (a config and its cache file, None for none) the plan targets over ``inputs``:
    read from the file when it exists and ``read``, the rest solved on ``pool``
    (``flows.sweep.plan_sequence_from``) and stored; the records by job index, the cached
    ones first (a file stored without its record has none)."""
    hits = [read_plans(path) if path is not None and read else None for _, path in jobs]
    records = {i: h[1] for i, h in enumerate(hits) if h is not None and h[1] is not None}
    todo = [i for i, h in enumerate(hits) if h is None]
    seqs = pool.map(plan_sequence_from, [jobs[i][0] for i in todo], [inputs] * len(todo))
    targets = {i: h[0] for i, h in enumerate(hits) if h is not None}
    for i, seq in zip(todo, seqs, strict=True):
        targets[i], records[i] = plan_targets(seq, p), plan_record(seq)
        path = jobs[i][1]
        if path is not None:
            write_plans(path, targets[i], records[i])
    return [targets[i] for i in range(len(jobs))], records


def plan_report(records: dict[str, PlanRecord]) -> tuple[list[str], list[str]]:
    """A line per plan sequence with its digest (of its plans' ids: an id digests the plan's
    tables, config and status, so equal digests are equal plans); the ids of plans whose
    safety cap bound (their determinism note), logged as an error."""
    lines = []
    for k, rec in records.items():
        digest = hashlib.sha256("".join(rec["ids"]).encode()).hexdigest()[:16]
        text = f"plans[{k}] {len(rec['ids'])} plans, sequence digest {digest}"
        lines.append(text + solve_summary(rec))
    bad = [i for r in records.values() for i, n in zip(r["ids"], r["notes"], strict=True) if n]
    if bad:
        log.error("determinism lost (the safety cap bound) in %d plans: %s", len(bad), bad)
    return lines, bad
