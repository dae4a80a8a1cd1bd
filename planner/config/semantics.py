"""Checks that relate sections of the configuration to each other.

Each check yields a :class:`ConfigIssue` whose ``loc`` is the key path in the YAML file, so the
loader reports these the same way as single-field errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planner.config.forecast_settings import DEFAULT_FORECAST_CANDIDATES
from planner.config.models import FleetConfig
from planner.quantiles import QUANTILES

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    loc: Loc
    message: str
    value: Any = None


def semantic_issues(cfg: FleetConfig) -> list[ConfigIssue]:
    """All cross-section problems of a shape-valid configuration, in file order."""
    return [
        *_unique_ids(cfg),
        *_region_checks(cfg),
        *_fleet_checks(cfg),
        *_model_checks(cfg),
        *_tier_checks(cfg),
        *_forecast_checks(cfg),
        *_planner_checks(cfg),
        *_lt_f_checks(cfg),
    ]


def _unique_ids(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    sections: dict[str, list[str]] = {
        "regions": cfg.region_ids,
        "vm_types": cfg.vm_type_ids,
        "models": cfg.model_ids,
        "tiers": cfg.tier_ids,
    }
    for section, ids in sections.items():
        seen: Counter[str] = Counter()
        for i, ident in enumerate(ids):
            seen[ident] += 1
            if seen[ident] == 2:
                yield ConfigIssue((section, i, "id"), "duplicate id", ident)


def _region_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    known = set(cfg.region_ids)
    for i, region in enumerate(cfg.regions):
        try:
            ZoneInfo(region.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield ConfigIssue(("regions", i, "timezone"), "unknown IANA time zone", region.timezone)
        for other in region.latency_ms:
            if other not in known:
                yield ConfigIssue(("regions", i, "latency_ms", other), "unknown region", other)
        for missing in sorted(known - set(region.latency_ms)):
            yield ConfigIssue(
                ("regions", i, "latency_ms"), f"latency to region '{missing}' missing", None
            )
        own = region.latency_ms.get(region.id)
        if own is not None and own != 0:
            yield ConfigIssue(("regions", i, "latency_ms", region.id), "must be 0 to itself", own)


def _fleet_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    regions, vm_types = set(cfg.region_ids), set(cfg.vm_type_ids)
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(cfg.fleet):
        if entry.region not in regions:
            yield ConfigIssue(("fleet", i, "region"), "unknown region", entry.region)
        if entry.vm_type not in vm_types:
            yield ConfigIssue(("fleet", i, "vm_type"), "unknown VM type", entry.vm_type)
            continue
        key = (entry.region, entry.vm_type)
        if key in seen:
            yield ConfigIssue(("fleet", i), "duplicate region/vm_type pair", f"{key[0]}/{key[1]}")
        seen.add(key)
        if entry.running > entry.quota:
            yield ConfigIssue(
                ("fleet", i, "running"), f"must be ≤ quota ({entry.quota})", entry.running
            )
        if entry.spot_available > entry.quota:
            yield ConfigIssue(
                ("fleet", i, "spot_available"),
                f"must be ≤ quota ({entry.quota})",
                entry.spot_available,
            )
        yield from _fleet_instances(cfg, i)


def _fleet_instances(cfg: FleetConfig, i: int) -> Iterator[ConfigIssue]:
    entry = cfg.fleet[i]
    vm = cfg.vm_type(entry.vm_type)
    gpus_used = 0
    for model_id, count in entry.instances.items():
        loc: Loc = ("fleet", i, "instances", model_id)
        if model_id not in cfg.model_ids:
            yield ConfigIssue(loc, "unknown model", model_id)
            continue
        placement = cfg.model(model_id).vm_types.get(entry.vm_type)
        if placement is None:
            yield ConfigIssue(loc, f"model cannot run on {entry.vm_type}", model_id)
            continue
        if count < 0:
            yield ConfigIssue(loc, "must be ≥ 0", count)
        gpus_used += count * placement.tensor_parallel
    if gpus_used > entry.running * vm.gpus_per_vm:
        yield ConfigIssue(
            ("fleet", i, "instances"),
            f"instances need {gpus_used} GPUs but {entry.running} running VMs have "
            f"{entry.running * vm.gpus_per_vm}",
            gpus_used,
        )


def _model_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    vm_types, tiers, regions = set(cfg.vm_type_ids), set(cfg.tier_ids), set(cfg.region_ids)
    for i, model in enumerate(cfg.models):
        for j, region in enumerate(model.regions or []):
            if region not in regions:
                yield ConfigIssue(("models", i, "regions", j), "unknown region", region)
        for vm_id, placement in model.vm_types.items():
            loc: Loc = ("models", i, "vm_types", vm_id)
            if vm_id not in vm_types:
                yield ConfigIssue(loc, "unknown VM type", vm_id)
                continue
            vm = cfg.vm_type(vm_id)
            gpus = placement.tensor_parallel * placement.instances_per_vm
            if gpus > vm.gpus_per_vm:
                yield ConfigIssue(
                    (*loc, "instances_per_vm"),
                    f"tensor_parallel × instances_per_vm = {gpus} exceeds the VM's "
                    f"{vm.gpus_per_vm} GPUs",
                    placement.instances_per_vm,
                )
            shard = model.weights_gb / placement.tensor_parallel
            if shard > vm.gpu_memory_gb:
                yield ConfigIssue(
                    (*loc, "tensor_parallel"),
                    f"weights shard {shard:.0f} GB exceeds {vm.gpu_memory_gb:g} GB GPU memory",
                    placement.tensor_parallel,
                )
            for tier in sorted(tiers - set(placement.throughput)):
                yield ConfigIssue((*loc, "throughput"), f"tier '{tier}' missing", None)
            for tier in placement.throughput:
                if tier not in tiers:
                    yield ConfigIssue((*loc, "throughput", tier), "unknown tier", tier)


def _tier_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    for i, tier in enumerate(cfg.tiers):
        if tier.kind == "deferrable" and tier.deadline_h is None:
            yield ConfigIssue(("tiers", i, "deadline_h"), "required for a deferrable tier", None)
        if tier.kind == "interactive" and tier.ttft_p95_s is None:
            yield ConfigIssue(("tiers", i, "ttft_p95_s"), "required for an interactive tier", None)
        if tier.kind == "interactive" and tier.spot_allowed:
            yield ConfigIssue(
                ("tiers", i, "spot_allowed"), "interactive tiers cannot run on spot", True
            )


# every forecaster of planner.forecast.models.REGISTRY: the default candidates and ARIMA
KNOWN_FORECASTERS = frozenset({*DEFAULT_FORECAST_CANDIDATES, "arima"})


def _forecast_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    for i, name in enumerate(cfg.forecast.candidates):
        if name not in KNOWN_FORECASTERS:
            yield ConfigIssue(("forecast", "candidates", i), "unknown forecaster", name)
    if "snaive24" not in cfg.forecast.candidates:
        yield ConfigIssue(("forecast", "candidates"), "must include the snaive24 baseline", None)
    if cfg.forecast.champion not in cfg.forecast.candidates:
        yield ConfigIssue(
            ("forecast", "champion"), "must be one of the candidates", cfg.forecast.champion
        )


def _planner_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    for i, tier in enumerate(cfg.tiers):
        if tier.planning_quantile not in QUANTILES:
            yield ConfigIssue(
                ("tiers", i, "planning_quantile"),
                f"must be one of the stored forecast quantiles {list(QUANTILES)}",
                tier.planning_quantile,
            )
        if tier.id not in cfg.planner.unmet_penalty:
            yield ConfigIssue(("planner", "unmet_penalty"), f"tier '{tier.id}' missing", None)
        if tier.kind == "deferrable":
            # the planner pools deferrable backlog globally: every region must reach every other
            worst = max(max(r.latency_ms.values()) for r in cfg.regions)
            if worst > tier.routing_budget_ms:
                yield ConfigIssue(
                    ("tiers", i, "routing_budget_ms"),
                    f"a deferrable tier must reach every region (worst latency {worst:g} ms)",
                    tier.routing_budget_ms,
                )


def _lt_f_checks(cfg: FleetConfig) -> Iterator[ConfigIssue]:
    """LT-F hands over before the next hour's plan is bought; its scaler scales in below
    where it scales out."""
    lt_f, lead = cfg.lt_f, cfg.planner.plan_lead_min
    if lt_f.release_min >= 60 - lead:
        message = f"must be < {60 - lead} (60 - planner.plan_lead_min: before the next purchase)"
        yield ConfigIssue(("lt_f", "release_min"), message, lt_f.release_min)
    if lt_f.down >= lt_f.up:
        yield ConfigIssue(("lt_f", "down"), f"must be below lt_f.up ({lt_f.up:g})", lt_f.down)
