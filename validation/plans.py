"""pandera models of the plan's detail tables, generated from the registry
(:data:`planner.ilp.plan_tables.PLAN_TABLES`: every column with its dtype, the key unique) plus
the rules a column's type cannot say; checked before a plan is stored."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from planner.ilp.plan_tables import DTYPES, PLAN_TABLES, PlanTable

ACTION_KINDS = [
    f"{verb}_{what}"
    for what in ("vm", "spot_vm", "model", "model_spot")
    for verb in (("add", "release") if "vm" in what else ("load", "unload"))
]
NON_NEGATIVE = pa.Check.ge(0)
# column rules beyond the dtype, per table
COLUMN_CHECKS: dict[str, dict[str, list[pa.Check]]] = {
    "vms": {"on_demand": [NON_NEGATIVE], "spot": [NON_NEGATIVE]},
    "instances": {"on_demand": [NON_NEGATIVE], "spot": [NON_NEGATIVE]},
    "routing": {"weight": [NON_NEGATIVE, pa.Check.le(1.000001)]},
    "actions": {"kind": [pa.Check.isin(ACTION_KINDS)], "count": [pa.Check.ge(1)]},
    "niw": {c: [pa.Check.ge(-1e-6)] for c in ("served", "backlog", "late")},
}


def _whole_when_committed(df: pd.DataFrame) -> pd.Series:
    whole = (df["on_demand"] % 1 == 0) & (df["spot"] % 1 == 0)
    return whole | ~df["committed"]


def _sums_to_one(df: pd.DataFrame) -> pd.Series:
    total = df.groupby(["hour", "source_region", "model", "tier"])["weight"].transform("sum")
    return (total - 1).abs() < 1e-6


def _starts_in_time(df: pd.DataFrame) -> pd.Series:
    return df["start_by"] <= df["hour"]


# rules across a row's columns or across rows, per table
FRAME_CHECKS: dict[str, list[pa.Check]] = {
    "instances": [pa.Check(_whole_when_committed, error="committed hours hold whole instances")],
    "routing": [
        pa.Check(_sums_to_one, error="routing weights of a source, model, tier and hour sum to 1")
    ],
    "actions": [
        pa.Check(_starts_in_time, error="an action starts no later than the hour it is for")
    ],
}


def schema(table: PlanTable) -> pa.DataFrameSchema:
    """The pandera model of one stored detail table (``plan_id`` and the registry's columns)."""
    checks = COLUMN_CHECKS.get(table.name, {})
    columns = {"plan_id": pa.Column(str)} | {
        c.name: pa.Column(DTYPES[c.kind], checks.get(c.name, []), nullable=c.nullable)
        for c in table.columns
    }
    unique = ["plan_id", *table.key] if table.key else None
    return pa.DataFrameSchema(
        columns, checks=FRAME_CHECKS.get(table.name, []), unique=unique, name=f"plan_{table.name}"
    )


SCHEMAS = {name: schema(table) for name, table in PLAN_TABLES.items()}


class PlanTables:
    """Validate a plan's detail frames."""

    @staticmethod
    def validate(frames: dict[str, pd.DataFrame]) -> None:
        for name, model in SCHEMAS.items():
            frame = frames.get(name)
            if frame is not None and not frame.empty:
                model.validate(frame, lazy=True)
