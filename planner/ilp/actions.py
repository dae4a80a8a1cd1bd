"""What operations must do and by when, derived from a plan's VMs and instances hour by hour
against the fleet running now (planning data's state) for hour 1."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from planner.ilp.data import PlanningData
from planner.ilp.frames import rows
from planner.ilp.plan_tables import PLAN_TABLES

Action = tuple[Any, ...]  # a row of the actions table


def derive_actions(data: PlanningData, vms: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """What operations must do and by when: VMs to request (lead time before the hour: ready
    at the hour) or release (at the hour), models to load (at the hour, or earlier for hour 1
    when there is time; ready ℓ later) or unload (at the hour). Compared hour by hour with the
    state now for hour 1."""
    records = _vm_actions(data, vms) + _model_actions(data, instances)
    frame = PLAN_TABLES["actions"].frame(records)
    return frame.sort_values(["start_by", "kind", "region"], ignore_index=True)


def _vm_actions(data: PlanningData, vms: pd.DataFrame) -> list[Action]:
    """add_(spot_)vm lead time before the hour it is needed in; release_(spot_)vm at it."""
    records: list[Action] = []
    prev = {(r, g): (n, data.state.spot_vms.get((r, g), 0)) for (r, g), n in data.state.vms.items()}
    for when in data.hours:
        for row in rows(vms[vms["hour"] == when]):
            before = prev.get((row.region, row.vm_type), (0, 0))
            lead = timedelta(minutes=data.lead_minutes[row.vm_type])
            for kind, after, was in (
                ("vm", row.on_demand, before[0]),
                ("spot_vm", row.spot, before[1]),
            ):
                delta = int(after - was)
                if delta != 0:
                    where = (row.region, row.vm_type, None)
                    if delta > 0:
                        records.append((f"add_{kind}", *where, delta, when, when - lead, when))
                    else:
                        records.append((f"release_{kind}", *where, -delta, when, when, when))
            prev[(row.region, row.vm_type)] = (row.on_demand, row.spot)
    return records


def _model_actions(data: PlanningData, instances: pd.DataFrame) -> list[Action]:
    """load_model(_spot) at the hour (hour 1: as early as the time to start allows), ready the
    load time later; unload_model(_spot) at the hour. Committed hours only: later placement is
    indicative and re-planned."""
    records: list[Action] = []
    prev = {k: (n, data.state.spot_instances.get(k, 0)) for k, n in data.state.instances.items()}
    for t, when in enumerate(data.hours, start=1):
        if not data.committed(t):
            break
        for row in rows(instances[instances["hour"] == when]):
            key = (row.region, row.model, row.vm_type)
            before = prev.get(key, (0, 0))
            minutes = data.load_minutes[(row.model, row.vm_type)]
            early = timedelta(minutes=min(minutes, data.minutes_to_start) if t == 1 else 0)
            for suffix, after, was in (
                ("", row.on_demand, before[0]),
                ("_spot", row.spot, before[1]),
            ):
                delta = int(after - was)
                if delta != 0:
                    records.append(_model_action(row, suffix, delta, when, early, minutes))
            prev[key] = (row.on_demand, row.spot)
    return records


def _model_action(
    row: Any, suffix: str, delta: int, when: datetime, early: timedelta, minutes: float
) -> Action:
    where = (row.region, row.vm_type, row.model)
    if delta < 0:
        return (f"unload_model{suffix}", *where, -delta, when, when, when)
    start = when - early
    return (f"load_model{suffix}", *where, delta, when, start, start + timedelta(minutes=minutes))
