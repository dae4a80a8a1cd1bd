"""The registry of the plan's tables: every detail frame of a :class:`planner.ilp.plan.Plan`,
its columns in order, their kinds and their meaning. The read-back builds the frames through
it, the warehouse stores and loads them by it (``plan_<name>``), the export writes them and
their column dictionary from it, and the pandera models in ``validation.plans`` are generated
from it, so the four can no longer disagree and a stored plan loads back equal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

Kind = Literal["time", "text", "int", "float", "bool"]
# the pandas dtype each kind is held in (text: object, None where the column is nullable)
DTYPES: dict[str, str] = {
    "time": "datetime64[ns]",
    "text": "object",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
}
HOUR = "start of the planned hour, UTC (ISO 8601, Z)"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    meaning: str
    nullable: bool = False


@dataclass(frozen=True)
class PlanTable:
    """One detail frame: its columns and (``key``) the columns that identify a row."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def frame(self, records: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
        """The frame of ``records`` (tuples in column order), typed."""
        return self.coerce(pd.DataFrame(list(records), columns=self.names))

    def coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``'s columns in registry order and dtypes (other columns dropped)."""
        missing = [c for c in self.names if c not in frame.columns]
        if missing:
            raise ValueError(f"plan table {self.name}: columns {missing} missing")
        out = frame[self.names].reset_index(drop=True)
        out = out.astype({c.name: DTYPES[c.kind] for c in self.columns})
        for c in self.columns:
            if c.kind == "text":  # None, not NaN, where a text is missing
                values = [None if pd.isna(v) else v for v in out[c.name]]
                out[c.name] = pd.Series(values, index=out.index, dtype=object)
        return out


def _table(
    name: str, *columns: tuple[str, Kind, str] | Column, key: tuple[str, ...] = ()
) -> PlanTable:
    return PlanTable(name, tuple(c if isinstance(c, Column) else Column(*c) for c in columns), key)


PLAN_TABLES: dict[str, PlanTable] = {
    t.name: t
    for t in (
        _table(
            "vms",
            ("hour", "time", HOUR),
            ("region", "text", "region id"),
            ("vm_type", "text", "VM type id"),
            ("on_demand", "int", "on-demand VMs running in the hour (integer)"),
            ("spot", "int", "spot VMs running in the hour (integer; NIW only)"),
            key=("hour", "region", "vm_type"),
        ),
        _table(
            "instances",
            ("hour", "time", HOUR),
            ("region", "text", "region id"),
            ("model", "text", "model id"),
            ("vm_type", "text", "VM type the instances run on"),
            ("on_demand", "float", "instances on on-demand VMs"),
            ("spot", "float", "instances on spot VMs"),
            (
                "committed",
                "bool",
                "true: integer placement the plan commits to; false: indicative capacity "
                "for later hours (may be fractional), re-planned every hour before it is used",
            ),
            key=("hour", "region", "model", "vm_type"),
        ),
        _table(
            "routing",
            ("hour", "time", HOUR),
            ("source_region", "text", "region the requests come from"),
            ("model", "text", "model id"),
            ("tier", "text", "tier id"),
            ("target_region", "text", "region that serves them"),
            ("weight", "float", "share of the source region's demand of this model and tier"),
            ("tokens_per_s", "float", "tokens/s routed (mean over the hour)"),
        ),
        _table(
            "niw",
            ("hour", "time", HOUR),
            ("model", "text", "model id"),
            ("arrivals", "float", "NIW demand arriving, (tokens/s)·h (× 3600 = tokens)"),
            ("served", "float", "NIW work served in the hour, (tokens/s)·h"),
            ("backlog", "float", "NIW work waiting at the end of the hour, (tokens/s)·h"),
            ("late", "float", "NIW work past its deadline, (tokens/s)·h"),
        ),
        _table(
            "actions",
            (
                "kind",
                "text",
                "add_vm, release_vm, add_spot_vm, release_spot_vm, load_model(_spot), "
                "unload_model(_spot)",
            ),
            ("region", "text", "region id"),
            ("vm_type", "text", "VM type id"),
            Column("model", "text", "model id (model actions only)", nullable=True),
            ("count", "int", "VMs or instances to add or remove"),
            ("hour", "time", "the planned hour the action serves, UTC"),
            ("start_by", "time", "latest time to start it, UTC (VM lead / model load time before)"),
            ("ready_at", "time", "when it is done and serving, UTC"),
        ),
        _table(
            "costs",
            ("hour", "time", HOUR),
            ("component", "text", "cost component (on-demand, spot, ...)"),
            ("dollars", "float", "US$ for the hour"),
        ),
        _table(
            "unmet",
            ("hour", "time", HOUR),
            ("region", "text", "region id"),
            ("model", "text", "model id"),
            ("tier", "text", "tier id"),
            ("tokens_per_s", "float", "forecast demand the plan cannot serve (tokens/s): SLA risk"),
        ),
        _table(
            "assignments",
            ("hour", "time", HOUR),
            ("region", "text", "serving region"),
            ("model", "text", "model id"),
            ("vm_type", "text", "VM type"),
            ("tier", "text", "tier id"),
            ("tokens_per_s", "float", "tokens/s of the tier served on these instances"),
            ("spot", "bool", "true when served on spot VMs"),
        ),
    )
}


def column_dictionary() -> str:
    """COLUMNS.md, written beside the exported tables."""
    lines = [
        "# Plan tables: column dictionary",
        "",
        "Times are UTC (ISO 8601 with Z in CSV, UTC timestamps in Parquet).",
    ]
    for table in PLAN_TABLES.values():
        lines += ["", f"## {table.name} (`{table.name}.csv`, `{table.name}.parquet`)", ""]
        lines += [f"- `{c.name}`: {c.meaning}" for c in table.columns]
    return "\n".join(lines) + "\n"
