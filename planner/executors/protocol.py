"""The executor interface and the per-region desired-state document both executors use.

A desired-state document says what one region should run in the plan's first hour:

    {"plan_id": …, "hour": "2024-06-17T00:00:00", "region": "us-east", "config_hash": …,
     "vms": {"a100x8": {"on_demand": 6, "spot": 1}, …},
     "instances": {"llama2-70b": {"a100x8": {"on_demand": 4, "spot": 0}}, …},
     "routing": [{"model": …, "tier": …, "target_region": …, "weight": 0.8}, …],
     "actions": [{"kind": "buy_vm", "vm_type": …, "count": 2, "start_by": …}, …],
     "admission": {"IW-F": "fairserve", …},   (optional: per tier, the admission policy)
     "lt_f": {"hold_from": …, "hold_until": …, "release_min": 15, "scaler": {…},
              "pools": {"llama2-70b": {"count": 4, "rise": 1}, …}}}   (optional, below)

``lt_f`` (when the config carries plans out as LT-F, ``planner.sim.plan_ramp``): per model the
plan's on-demand instance count for the hour (``count``, the most the purchase buys to) and
its rise over the region's last document (``rise``; null when none is known: then grow to
``count``). From ``hold_from`` (the plan's making, ``plan_lead_min`` before the hour) each
pool grows by ``rise``, up to ``count``, and keeps at least that until ``hold_until``
(``release_min`` into the hour); everything else is the SLO-aware scaler at ``scaler``'s dials.

``routing`` holds the weights for traffic *originating* in the region (summing to 1 per model
and tier); ``actions`` are the plan's actions for the region and hour, with their start times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from planner.ilp.plan import HourView, Plan


@dataclass(frozen=True)
class AppliedState:
    """What an executor reports back: per region, what runs (or what the target accepted),
    and per region that was not delivered, why (``failed``)."""

    plan_id: str
    hour: datetime
    regions: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    def apply(self, plan: Plan) -> AppliedState:
        """Carry out the plan's first hour (its actions and routing weights)."""
        ...


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    return pd.Timestamp(value).isoformat()


def desired_states(
    plan: Plan,
    config_hash: str | None = None,
    admission: Mapping[str, str] | None = None,
    router: dict[str, Any] | None = None,
    lt_f: Mapping[str, Any] | None = None,
    previous: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """One desired-state document per region for the plan's first hour (see above); with
    ``admission`` (tier → policy, from the config) each document carries it too; with
    ``router`` (the config's ``routing`` section: router name, learned artifact, epoch) also
    ``instance_router``, the router spreading each pool's requests over its instances; with
    ``lt_f`` (``LtfSettings.dials()`` and ``lead_min``) also ``lt_f``, the ramp each pool
    buys over ``previous`` (region → the last hour's document, for the rise)."""
    hour = plan.start
    regions = sorted(
        set(plan.vms["region"]) | set(plan.instances["region"]) | set(plan.routing["source_region"])
    )
    extra: dict[str, Any] = {}
    if admission:
        extra["admission"] = dict(sorted(admission.items()))
    if router is not None:
        keys = {"router": str, "artifact": str, "epoch_s": float}
        extra["instance_router"] = {k: cast(router[k]) for k, cast in keys.items()}
    head = {"plan_id": plan.plan_id, "hour": _iso(hour)}
    config = config_hash or plan.solver.config_hash
    docs: dict[str, dict[str, Any]] = {
        r: {**head, "region": r, "config_hash": config, "vms": {}, "instances": {}}
        | {"routing": [], "actions": [], **{k: dict(v) for k, v in extra.items()}}
        for r in regions
    }
    view = plan.at(hour)
    for (r, g), (od, sp) in view.vms.items():
        docs[r]["vms"][g] = {"on_demand": int(od), "spot": int(sp)}
    for (r, m, g), (n, ns) in view.instances.items():
        if n or ns:
            docs[r]["instances"].setdefault(m, {})[g] = {"on_demand": round(n), "spot": round(ns)}
    for (r0, m, k), targets in view.routing.items():
        docs[r0]["routing"] += [
            {"model": m, "tier": k, "target_region": r, "weight": round(float(w), 6)}
            for r, w in targets.items()
        ]
    for a in view.actions:
        if a.region in docs:
            docs[a.region]["actions"].append(_action(a))
    if lt_f is not None:
        for r, doc in docs.items():
            doc["lt_f"] = _ramp(doc, hour, lt_f, (previous or {}).get(r))
    return docs


def _ramp(
    doc: Mapping[str, Any], hour: datetime, lt_f: Mapping[str, Any], last: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``lt_f`` entry of a region's document (module docstring)."""
    dials = dict(lt_f)
    lead, release = int(dials.pop("lead_min")), int(dials.pop("release_min"))
    start = pd.Timestamp(hour)
    pools: dict[str, dict[str, int | None]] = {}
    for m, per_type in doc["instances"].items():
        count = _on_demand(per_type)
        base = _base(m, start, last)
        pools[m] = {"count": count, "rise": None if base is None else max(count - base, 0)}
    return {
        "hold_from": _iso(start - pd.Timedelta(minutes=lead)),
        "hold_until": _iso(start + pd.Timedelta(minutes=release)),
        "release_min": release,
        "scaler": dials,
        "pools": pools,
    }


def _base(model: str, start: pd.Timestamp, last: Mapping[str, Any] | None) -> int | None:
    """What a pool's rise is measured from: the previous hour's on-demand count when ``last``
    is that hour's document; when ``last`` is an earlier document for this same hour (the plan
    applied again: a retry, a re-run), the base that document used, so the same plan sends the
    same body under the same idempotency key; otherwise unknown (``None``: grow to ``count``)."""
    if last is None:
        return None
    at = pd.Timestamp(last["hour"])
    if at == start - pd.Timedelta(hours=1):
        return _on_demand(last["instances"].get(model, {}))
    pool = (last.get("lt_f") or {}).get("pools", {}).get(model) if at == start else None
    if pool is None or pool["rise"] is None:
        return None
    return int(pool["count"]) - int(pool["rise"])


def _on_demand(per_type: Mapping[str, Mapping[str, int]]) -> int:
    """A model's on-demand instances over its VM types (what LT-F's purchase counts)."""
    return sum(int(n["on_demand"]) for n in per_type.values())


def _action(a: Any) -> dict[str, Any]:
    """One of the plan's actions (a row of ``Plan.actions``) as a document entry."""
    return {
        "kind": a.kind,
        "vm_type": a.vm_type,
        "model": None if pd.isna(a.model) else a.model,
        "count": int(a.count),
        "start_by": _iso(a.start_by),
        "ready_at": _iso(a.ready_at),
    }


def documents_view(docs: Mapping[str, Mapping[str, Any]], hour: datetime) -> HourView:
    """The hour's view of desired-state documents (region → document): the inverse of
    :func:`desired_states` for VMs, instances and routing (what an executor applied)."""
    vms: dict[tuple[str, str], tuple[int, int]] = {}
    inst: dict[tuple[str, str, str], tuple[float, float]] = {}
    routing: dict[tuple[str, str, str], dict[str, float]] = {}
    for r, doc in docs.items():
        for g, n in doc.get("vms", {}).items():
            vms[(r, g)] = (int(n.get("on_demand", 0)), int(n.get("spot", 0)))
        for m, per_type in doc.get("instances", {}).items():
            for g, n in per_type.items():
                inst[(r, m, g)] = (int(n.get("on_demand", 0)), int(n.get("spot", 0)))
        for w in doc.get("routing", []):
            routing.setdefault((r, w["model"], w["tier"]), {})[w["target_region"]] = w["weight"]
    return HourView(hour, vms, inst, routing, served={}, backlog={})


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human-readable changes from ``old`` to ``new`` (VM and instance counts, routing)."""
    if old is None:
        return [f"{new['region']}: first desired state (plan {new['plan_id']})"]
    region = new["region"]
    was, now = (documents_view({region: doc}, datetime.min) for doc in (old, new))
    out: list[str] = []
    for g in sorted(set(was.vms) | set(now.vms)):
        out += _changes(f"{region}: {g[1]}", "VMs", was.vms.get(g), now.vms.get(g))
    for i in sorted(set(was.instances) | set(now.instances)):
        what = f"{region}: {i[1]} on {i[2]}"
        out += _changes(what, "instances", was.instances.get(i), now.instances.get(i))
    before, after = (
        {(m, k, r): w for (_r0, m, k), ws in v.routing.items() for r, w in ws.items()}
        for v in (was, now)
    )
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, 0.0), after.get(key, 0.0)
        if abs(a - b) > 1e-6:
            out.append(f"{region}: route {key[0]}/{key[1]} → {key[2]} weight {a:.3f} → {b:.3f}")
    return out


def _changes(
    what: str, noun: str, old: tuple[Any, Any] | None, new: tuple[Any, Any] | None
) -> list[str]:
    """The on-demand and spot counts that differ, in words."""
    pairs = zip(("on_demand", "spot"), old or (0, 0), new or (0, 0), strict=True)
    return [f"{what} {kind} {noun} {a} → {b}" for kind, a, b in pairs if a != b]
