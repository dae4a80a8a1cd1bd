"""The fleet index: a ``FleetConfig``'s numbers built once, as arrays over positions (r
region, m model, g VM type, k tier, in the config's order). The ILP's data builder and greedy
plan, the simulator's parameters and its policies read it; nothing else derives them.

θ, per instance, blends the configured rates at the token mix φ (share of input tokens); the
planner derates it by the tier's headroom h, the simulator does not (h = 0):

    θ[m,g,k] = (1 − h_k) / (φ[m,k] / θ_in[m,g,k] + (1 − φ[m,k]) / θ_out[m,g,k])

The cheapest VM type of model m in region r minimises price[r,g] / (ipv[m,g] · θ[m,g,k*])
over the types that run m and have quota in r (any that runs m if none has); k* is the first
interactive tier in priority order (tightest TTFT): a one-type pool must hold that tier's SLA
and its θ is the one the SLA limits. (The greedy plan used to take the last interactive tier
in YAML order, the policies k*; the shipped configs pick the same types either way.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.config import FleetConfig

Array = npt.NDArray[np.float64]
Shares = Mapping[tuple[str, str], float]


@dataclass(frozen=True)
class FleetIndex:
    regions: tuple[str, ...]
    models: tuple[str, ...]
    vm_types: tuple[str, ...]
    tiers: tuple[str, ...]
    ipv: Array  # [m, g] instances per VM (0: the model does not run there)
    load_min: Array  # [m, g] model load time, minutes
    lead_min: Array  # [g] VM lead time, minutes
    gpus_per_vm: Array  # [g]
    price: Array  # [r, g] $/VM-hour on demand (the fleet entry's, else the type's)
    spot_price: Array  # [r, g]
    quota: Array  # [r, g] (0 where the fleet has no entry)
    spot_available: Array  # [r, g]
    theta_in: Array  # [m, g, k] configured input tokens/s per instance (0: cannot run)
    theta_out: Array  # [m, g, k] configured output tokens/s per instance
    headroom: Array  # [k]
    interactive: tuple[int, ...]  # interactive tier positions, tightest TTFT first
    deferrable: int | None
    default_input_share: float

    @cached_property
    def position(self) -> dict[str, dict[str, int]]:
        """``position["models"]["llama2-70b"]`` → 0 (regions, models, vm_types, tiers)."""
        names = ("regions", "models", "vm_types", "tiers")
        return {n: {x: i for i, x in enumerate(getattr(self, n))} for n in names}

    def shares(self, input_share: Shares | None = None) -> Array:
        """φ [m, k]: the given share per (model, tier), the config's default elsewhere."""
        share = input_share or {}
        return np.array(
            [[share.get((m, k), self.default_input_share) for k in self.tiers] for m in self.models]
        )

    def theta(self, input_share: Shares | None = None, headroom: bool = False) -> Array:
        """θ [m, g, k] of the module docstring (0 where the model does not run on g)."""
        phi = self.shares(input_share)[:, None, :]
        runs = self.ipv[:, :, None] > 0
        keep = (1 - self.headroom)[None, None, :] if headroom else 1.0
        out = np.where(runs, keep * blend(phi, self.theta_in, self.theta_out), 0.0)
        return np.asarray(out, dtype=float)

    def cheapest_vm_type(self, theta: Array) -> npt.NDArray[np.int64]:
        """[r, m]: the VM type position of the module docstring, for ``theta`` [m, g, k]
        (with or without headroom: it scales a tier's θ alike on every type)."""
        k = self.interactive[0] if self.interactive else self.deferrable or 0
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = self.price[:, None, :] / (self.ipv * theta[:, :, k])[None]  # [r, m, g]
        runs = (self.ipv > 0)[None] & (theta[:, :, k] > 0)[None]
        placeable = runs & (self.quota > 0)[:, None, :]
        anywhere = placeable.any(axis=2, keepdims=True)
        allowed = np.where(anywhere, placeable, runs)
        return np.asarray(np.argmin(np.where(allowed, cost, np.inf), axis=2), dtype=np.int64)


def blend(phi: npt.ArrayLike, rate_in: npt.ArrayLike, rate_out: npt.ArrayLike) -> Array:
    """Tokens/s of a server with prefill rate ``rate_in`` and decode rate ``rate_out`` on a
    mix whose share of input tokens is ``phi``: 1 / (φ / in + (1 − φ) / out) (broadcasts; 0
    where a rate is 0). The one place θ is blended: the config's θ here, the calibrated
    serving model's (``planner.sim.serving``) and the ILP's latency sizing read it."""
    p = np.asarray(phi, dtype=float)
    a, b = np.asarray(rate_in, dtype=float), np.asarray(rate_out, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((a > 0) & (b > 0), 1.0 / (p / a + (1 - p) / b), 0.0)
    return np.asarray(out, dtype=float)


def _placements(
    cfg: FleetConfig, models: tuple[str, ...], vms: tuple[str, ...], tiers: tuple[str, ...]
) -> tuple[Array, Array, Array, Array]:
    """Per model and VM type: instances per VM, load minutes, and per tier the configured
    input and output tokens/s (0 and 1 where the model does not run on the type)."""
    nm, ng, nk = len(models), len(vms), len(tiers)
    ipv, load = np.zeros((nm, ng)), np.zeros((nm, ng))
    t_in, t_out = np.zeros((nm, ng, nk)), np.ones((nm, ng, nk))
    for i, m in enumerate(models):
        for j, g in enumerate(vms):
            placement = cfg.model(m).vm_types.get(g)
            if placement is None:
                continue
            ipv[i, j], load[i, j] = placement.instances_per_vm, placement.load_time_min
            for q, k in enumerate(tiers):
                t_in[i, j, q] = placement.throughput[k].input
                t_out[i, j, q] = placement.throughput[k].output
    return ipv, load, t_in, t_out


def _regional(
    cfg: FleetConfig, regions: tuple[str, ...], vms: tuple[str, ...]
) -> tuple[Array, Array, Array, Array]:
    """Per region and VM type: on-demand and spot price (the fleet entry's, else the type's),
    quota and spot availability (0 where the fleet has no entry)."""
    types = [cfg.vm_type(g) for g in vms]
    nr, ng = len(regions), len(vms)
    price = np.tile([v.price_per_hour for v in types], (nr, 1)).astype(float)
    spot_price = np.tile([v.spot_price_per_hour for v in types], (nr, 1)).astype(float)
    quota, spot = np.zeros((nr, ng)), np.zeros((nr, ng))
    for a, r in enumerate(regions):
        for j, g in enumerate(vms):
            e = cfg.fleet_entry(r, g)
            if e is None:
                continue
            quota[a, j], spot[a, j] = e.quota, e.spot_available
            price[a, j] = e.price_per_hour or price[a, j]
            if e.spot_price_per_hour is not None:
                spot_price[a, j] = e.spot_price_per_hour
    return price, spot_price, quota, spot


def fleet_index(cfg: FleetConfig) -> FleetIndex:
    """Build the index of ``cfg`` (see the module docstring)."""
    regions, models = tuple(cfg.region_ids), tuple(cfg.model_ids)
    vms, tiers = tuple(cfg.vm_type_ids), tuple(cfg.tier_ids)
    ipv, load, t_in, t_out = _placements(cfg, models, vms, tiers)
    types = [cfg.vm_type(g) for g in vms]
    price, spot_price, quota, spot = _regional(cfg, regions, vms)
    tier_objs = [cfg.tier(k) for k in tiers]
    latency = cfg.planner.interactive_sizing == "latency"
    interactive = sorted(
        (q for q, t in enumerate(tier_objs) if t.kind == "interactive"),
        key=lambda q: tier_objs[q].ttft_p95_s or 0.0,
    )
    return FleetIndex(
        regions=regions,
        models=models,
        vm_types=vms,
        tiers=tiers,
        ipv=ipv,
        load_min=load,
        lead_min=np.array([v.lead_time_min for v in types], dtype=float),
        gpus_per_vm=np.array([v.gpus_per_vm for v in types], dtype=float),
        price=price,
        spot_price=spot_price,
        quota=quota,
        spot_available=spot,
        theta_in=t_in,
        theta_out=t_out,
        # sized on the latency target (planner.ilp.sizing), interactive demand already holds
        # what the target needs: no flat headroom on top
        headroom=np.array(
            [0.0 if t.kind == "interactive" and latency else t.headroom for t in tier_objs]
        ),
        interactive=tuple(interactive),
        deferrable=next((q for q, t in enumerate(tier_objs) if t.kind == "deferrable"), None),
        default_input_share=cfg.planner.default_input_share,
    )


def input_shares(tokens: pd.DataFrame) -> dict[tuple[str, str], float]:
    """φ per (model, tier): input tokens / all tokens, over rows ``model, tier,
    input_tokens, output_tokens`` (demand-mart rows, or a replay's sums); pairs without
    tokens are left out (the config's default applies)."""
    if tokens.empty:
        return {}
    g = tokens.groupby(["model", "tier"])[["input_tokens", "output_tokens"]].sum()
    total = g["input_tokens"] + g["output_tokens"]
    share = (g["input_tokens"] / total).where(total > 0)
    return {(str(key[0]), str(key[1])): float(v) for key, v in share.dropna().items()}  # type: ignore[index]
