"""pandera models of the plan tables (``plans`` and its detail tables), checked before a plan
is stored."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class PlanVms(pa.DataFrameModel):
    plan_id: Series[str]
    hour: Series[pa.DateTime]
    region: Series[str]
    vm_type: Series[str]
    on_demand: Series[int] = pa.Field(ge=0)
    spot: Series[int] = pa.Field(ge=0)

    class Config:
        unique = ["plan_id", "hour", "region", "vm_type"]  # noqa: RUF012


class PlanInstances(pa.DataFrameModel):
    plan_id: Series[str]
    hour: Series[pa.DateTime]
    model: Series[str]
    on_demand: Series[float] = pa.Field(ge=0)
    spot: Series[float] = pa.Field(ge=0)
    committed: Series[bool]

    @pa.dataframe_check(error="committed hours hold whole instances")
    @classmethod
    def whole_when_committed(cls, df: pd.DataFrame) -> pd.Series:
        whole = (df["on_demand"] % 1 == 0) & (df["spot"] % 1 == 0)
        return whole | ~df["committed"]


class PlanRouting(pa.DataFrameModel):
    plan_id: Series[str]
    hour: Series[pa.DateTime]
    weight: Series[float] = pa.Field(ge=0, le=1.000001)

    @pa.dataframe_check(error="routing weights of a source, model, tier and hour sum to 1")
    @classmethod
    def sums_to_one(cls, df: pd.DataFrame) -> pd.Series:
        total = df.groupby(["hour", "source_region", "model", "tier"])["weight"].transform("sum")
        return (total - 1).abs() < 1e-6


class PlanActions(pa.DataFrameModel):
    plan_id: Series[str]
    kind: Series[str] = pa.Field(
        isin=[
            "add_vm",
            "release_vm",
            "add_spot_vm",
            "release_spot_vm",
            "load_model",
            "unload_model",
            "load_model_spot",
            "unload_model_spot",
        ]
    )
    count: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check(error="an action starts no later than the hour it is for")
    @classmethod
    def starts_in_time(cls, df: pd.DataFrame) -> pd.Series:
        return df["start_by"] <= df["hour"]


class PlanNiw(pa.DataFrameModel):
    plan_id: Series[str]
    served: Series[float] = pa.Field(ge=-1e-6)
    backlog: Series[float] = pa.Field(ge=-1e-6)
    late: Series[float] = pa.Field(ge=-1e-6)


SCHEMAS = {
    "vms": PlanVms,
    "instances": PlanInstances,
    "routing": PlanRouting,
    "actions": PlanActions,
    "niw": PlanNiw,
}


class PlanTables:
    """Validate a plan's detail frames (those with a model above)."""

    @staticmethod
    def validate(frames: dict[str, pd.DataFrame]) -> None:
        for name, schema in SCHEMAS.items():
            frame = frames.get(name)
            if frame is not None and not frame.empty:
                schema.validate(frame, lazy=True)
