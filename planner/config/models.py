"""The fleet configuration: one YAML file that drives every stage.

The models only describe shapes and single-field bounds; relations between sections (a model
refers to a VM type that exists, a latency matrix is complete, a model fits on its VM) are
checked in :mod:`planner.config.semantics` so that every error can name its key path.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from planner.config.forecast_settings import ForecastSettingsConfig
from planner.config.lt_f import LtfSettings
from planner.config.work_limit import WorkLimit

Identifier = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="a short id"),
]
NonNegative = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a YAML key must not silently fall back to a default.
    Numbers must be finite (YAML's ``.inf`` and ``.nan`` are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Region(_Strict):
    id: Identifier
    name: str = Field(description="display name")
    timezone: str = Field(description="IANA time zone of the region's users, e.g. America/Chicago")
    latency_ms: dict[str, NonNegative] = Field(
        description="network round-trip latency in ms to every region (itself included, 0)"
    )


class VmType(_Strict):
    id: Identifier
    gpu: str = Field(description="GPU model, e.g. A100-80GB")
    gpus_per_vm: int = Field(ge=1)
    gpu_memory_gb: float = Field(gt=0, description="memory of one GPU")
    price_per_hour: float = Field(gt=0, description="on-demand $ per VM-hour")
    spot_price_per_hour: float = Field(ge=0, description="spot $ per VM-hour")
    lead_time_min: float = Field(ge=0, description="minutes from request until a new VM can serve")


class RegionVmType(_Strict):
    """What one region holds of one VM type: quota, spot pool and the state right now."""

    region: Identifier
    vm_type: Identifier
    quota: int = Field(ge=0, description="max VMs (on-demand and spot together)")
    spot_available: int = Field(ge=0, description="max spot VMs obtainable")
    running: int = Field(ge=0, description="on-demand VMs running now")
    instances: dict[str, int] = Field(
        default_factory=dict, description="model id -> instances running now on these VMs"
    )
    price_per_hour: float | None = Field(default=None, gt=0, description="regional override")
    spot_price_per_hour: float | None = Field(default=None, ge=0, description="regional override")


class TokenThroughput(_Strict):
    """Sustainable tokens/s of one model instance when doing only prefill (input) or only
    decode (output) at a tier's latency target; an instance time-shares between the two, so the
    instance-load of a stream is ``in_rate / input + out_rate / output``."""

    input: float = Field(gt=0, description="input (prefill) tokens/s per instance")
    output: float = Field(gt=0, description="output (decode) tokens/s per instance")


class ModelOnVm(_Strict):
    tensor_parallel: int = Field(ge=1, description="GPUs per instance")
    instances_per_vm: int = Field(ge=1)
    load_time_min: float = Field(ge=0, description="minutes to load onto a running VM")
    throughput: dict[str, TokenThroughput] = Field(description="per tier id")


class Model(_Strict):
    id: Identifier
    name: str
    weights_gb: float = Field(gt=0, description="weights footprint (all shards)")
    regions: list[str] | None = Field(
        default=None,
        min_length=1,
        description="regions where the model is offered (omit the key for all; [] is an error)",
    )
    min_instances: int = Field(default=1, ge=0, description="availability floor per region")
    vm_types: dict[str, ModelOnVm] = Field(min_length=1)


class Tier(_Strict):
    id: Identifier
    kind: Literal["interactive", "deferrable"]
    ttft_p95_s: float | None = Field(default=None, gt=0, description="p95 time-to-first-token")
    tpot_ms: float | None = Field(
        default=None, gt=0, description="time per output token the throughput was derived at"
    )
    deadline_h: float | None = Field(default=None, gt=0, description="deferrable: hours")
    headroom: float = Field(ge=0, lt=1, description="fraction of capacity kept free")
    spot_allowed: bool = False
    routing_budget_ms: float = Field(
        ge=0, description="max network latency a request of this tier may be routed over"
    )
    planning_quantile: float = Field(
        default=0.5, gt=0, lt=1, description="demand quantile the planner covers"
    )
    planning_metric: Literal["token_rate", "peak_token_rate"] = Field(
        default="peak_token_rate",
        description="forecast the planner sizes capacity on: the hour's mean token rate, or "
        "its busiest minute (interactive tiers must absorb the peak; deferrable ones need not)",
    )
    admission: Literal["fcfs", "vtc", "fairserve"] = Field(
        default="fcfs",
        description="admission and queue order across tenants (planner.sim.fairness): arrival "
        "order, virtual token counters, or FairServe-style weighted counters with throttling",
    )


class PlannerSettings(_Strict):
    """The integer program (see planner.ilp): horizon, solver limits, penalties."""

    horizon_h: int = Field(default=24, ge=1, le=168)
    time_limit_s: float = Field(default=10.0, gt=0, description="SCIP limits/time")
    mip_gap: float = Field(default=0.005, ge=0, lt=1, description="SCIP limits/gap")
    plan_lead_min: int = Field(
        default=20,
        ge=1,
        le=59,
        description="minutes before an hour its plan is made: the hourly deployment's cron "
        "runs at minute 60 - this (prefect.yaml), backfill and the evaluation plan at it, and "
        "LT-I scale-outs start then",
    )
    integer_placement_h: int = Field(
        default=2,
        ge=0,
        le=168,
        description="hours whose model instances are integer; later hours plan instance "
        "capacity as continuous (VMs stay integer for every hour)",
    )
    threads: int = Field(default=1, ge=1, description="SCIP solves on one thread; kept for form")
    seed: int = Field(default=0, ge=0, description="SCIP randomization/randomseedshift")
    unmet_penalty: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"IW-F": 100.0, "IW-N": 50.0, "NIW": 20.0},
        description="$ per (token/s)·h of demand left unserved, per tier",
    )
    churn_cost_per_vm: float = Field(
        default=1.0, ge=0, description="$ per VM added or released (operational risk)"
    )
    latency_penalty_per_ms: float = Field(
        default=1e-4, ge=0, description="$ per (token/s)·h routed per ms of network latency"
    )
    max_vm_change_per_hour: int | None = Field(
        default=None, ge=0, description="cap on VMs added + released per region, type and hour"
    )
    default_input_share: float = Field(
        default=0.85, gt=0, lt=1, description="input share of tokens when history has none"
    )
    decompose_above_vars: int = Field(
        default=20_000,
        ge=0,
        description="programs estimated larger than this many variables are solved by "
        "their LP relaxation in HiGHS, a dive to a plan and Lagrangian rounds by region "
        "(planner.ilp.decompose), smaller ones by SCIP whole (the demo's ~6,600 variables; "
        "SCIP's root LP does not finish on the 8x10x3 rung's ~39,000)",
    )
    workers: int = Field(default=1, ge=1, description="processes for the region subproblems")
    interactive_sizing: Literal["headroom", "latency"] = Field(
        default="headroom",
        description="interactive capacity from each tier's busiest minute over its flat "
        "headroom ('headroom'), or from the interactive tiers' load together through the "
        "capacity curves, no headroom ('latency', planner.ilp.sizing)",
    )
    latency_attainment: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="with interactive_sizing latency: share of requests within the tier's "
        "targets the capacity curves size for (the targets are p95 latencies)",
    )
    arrival_cv: float = Field(
        default=1.0,
        ge=0,
        description="with interactive_sizing latency: inter-arrival CV of a pool's traffic "
        "(1: Poisson) the capacity curves are read at",
    )
    default_tokens_per_request: float = Field(
        default=640.0,
        gt=0,
        description="tokens per request where the forecast has no request rate",
    )
    trough_filling: bool = Field(
        default=False,
        description="NIW is served from the capacity the plan holds idle beyond the hour's "
        "mean interactive load (planner.ilp.constraints.add_trough_filling), not stacked on "
        "the interactive peak sizing",
    )
    dask_address: str | None = Field(
        default=None,
        description="Dask scheduler for the region subproblems (or SAGESERVE_DASK_ADDRESS)",
    )
    work_limit: WorkLimit | None = Field(
        default=None, description="deterministic limits instead of time_limit_s (work_limit.py)"
    )


class Paths(_Strict):
    warehouse: str = Field(default=".sageserve/warehouse.duckdb")
    outputs: str = Field(default=".sageserve/out")


class ReplayLog(_Strict):
    """The built-in log the replay clock continues: `sageserve synth` with these settings."""

    seed: int = Field(default=7, description="synthesis seed of the built-in log")
    requests_per_day: int = Field(default=2_000_000, ge=1)
    start: str = Field(default="2024-06-03T00:00:00Z", description="first day of the log (UTC)")
    days: int = Field(default=14, ge=1, description="days in the log; it ends at start + days")
    logs_dir: str = Field(
        default=".sageserve/logs/synth-seed7", description="day files (written by `make demo`)"
    )


class ClockSettings(_Strict):
    """Where "now" comes from. ``wall``: the wall clock (production). ``replay``: the demo's
    clock, anchored at the end of the built-in log (or of the warehouse's data, when `make
    serve` starts it) and running ``speed`` times faster than real time; an hourly feed drops
    the next hour of the built-in log into ``inbox``."""

    kind: Literal["wall", "replay"] = Field(default="wall")
    speed: float = Field(
        default=60.0, gt=0, le=3600, description="replay: demo seconds per real second"
    )
    state: str = Field(
        default=".sageserve/clock.json", description="replay: where the running clock is kept"
    )
    inbox: str = Field(default=".sageserve/inbox", description="replay: where the feed drops")
    log: ReplayLog = Field(default_factory=ReplayLog)


class WarehouseSettings(_Strict):
    memory_limit: str = Field(default="1GB", description="DuckDB memory_limit")
    threads: int | None = Field(default=None, ge=1)
    min_arrival: str = Field(default="2000-01-01T00:00:00Z", description="sane lower bound")
    max_future_h: float = Field(default=48, ge=0, description="arrivals later than now+this fail")
    max_tokens: int = Field(default=2_000_000, ge=1, description="per request, input or output")

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _SIZE.match(value):
            raise ValueError("must be a size such as 512MB, 1GB or 2.5GiB")
        return value

    @field_validator("min_arrival")
    @classmethod
    def _time(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an ISO-8601 time such as 2000-01-01T00:00:00Z") from None
        return value


_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


class ExecutorSettings(_Strict):
    """The ops target the plan's first hour is delivered to (planner.executors.webhook)."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="webhook URL (POST per region); none: documents are written only",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="per attempt")
    retries: int = Field(default=4, ge=0, le=10, description="after the first attempt")
    backoff_s: float = Field(default=0.5, ge=0, description="first retry delay, doubled each")
    auth_header: str = Field(
        default="Authorization", pattern=r"^[A-Za-z0-9-]+$", description="header name"
    )
    auth_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the header's value (never the value here)",
    )


class RoutingSettings(_Strict):
    """Which router spreads a pool's requests over its instances (planner.sim.routers)."""

    router: Literal["round-robin", "jsq", "least-tokens", "heuristic", "learned"] = Field(
        default="round-robin", description="the pools' request router"
    )
    artifact: str = Field(
        default="learned-router",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="name of the learned router's artifact: <outputs>/routers/<name>.json",
    )
    epoch_s: float = Field(default=0.25, gt=0, description="load-aware routers' polling period")


class FleetConfig(_Strict):
    """The whole configuration file."""

    version: Literal[1] = 1
    name: str
    regions: list[Region] = Field(min_length=1)
    vm_types: list[VmType] = Field(min_length=1)
    fleet: list[RegionVmType] = Field(min_length=1)
    models: list[Model] = Field(min_length=1)
    tiers: list[Tier] = Field(min_length=1)
    paths: Paths = Field(default_factory=Paths)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    forecast: ForecastSettingsConfig = Field(default_factory=ForecastSettingsConfig)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    lt_f: LtfSettings = Field(default_factory=LtfSettings)

    # Convenience lookups; the semantic checks guarantee the ids exist.
    @property
    def region_ids(self) -> list[str]:
        return [r.id for r in self.regions]

    @property
    def model_ids(self) -> list[str]:
        return [m.id for m in self.models]

    @property
    def tier_ids(self) -> list[str]:
        return [t.id for t in self.tiers]

    @property
    def vm_type_ids(self) -> list[str]:
        return [v.id for v in self.vm_types]

    def region(self, region_id: str) -> Region:
        return next(r for r in self.regions if r.id == region_id)

    def vm_type(self, vm_type_id: str) -> VmType:
        return next(v for v in self.vm_types if v.id == vm_type_id)

    def model(self, model_id: str) -> Model:
        return next(m for m in self.models if m.id == model_id)

    def tier(self, tier_id: str) -> Tier:
        return next(t for t in self.tiers if t.id == tier_id)

    def fleet_entry(self, region_id: str, vm_type_id: str) -> RegionVmType | None:
        for entry in self.fleet:
            if entry.region == region_id and entry.vm_type == vm_type_id:
                return entry
        return None
