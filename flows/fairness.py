"""The fairness scenario: one pool, the ServeGen clients plus one flooding tenant, four runs.

* Log: ServeGen ``language/m-mid`` request rows (every client's local clock kept, one pool), a
  *history* window (day 1, 10:00–13:00) and a *test* window (day 2, 10:00–13:00).
* Profiles: the history rows are loaded into an in-memory warehouse (the real migrations) and
  ``sql/marts/tenant_profiles.sql`` learns each tenant's application profile from them.
* Pool: two ``llama2-70b`` instances; the log's volume scale is set so that the offered load
  without the flood is 80 % of the pool's capacity on this log's request mix (capacity: the
  best-rate work, :meth:`InstanceProfile.busy_s`, the pool completes per second when saturated,
  measured by a simulated hour at twice the load; long prompts without chunked prefill keep it
  well below 1).
* Flood: the client whose usual token share (from its profile) is closest to 5 % sends at 10×
  its usual rate for two hours (0:15 to 2:15): Poisson arrivals at 9× its profile's request
  rate on top of its own rows, each drawn from its history rows (tokens, tier).
* Request sizes: as the deployment receives them, fitted to the model's context window
  (:func:`planner.sim.profile.fit_context`, as the calibration traces are): ServeGen prompts
  reach 78 k tokens, and a request the server refuses would count as service denied.
* Runs: no flood (FCFS gateway) as the reference; FCFS, VTC (actual tokens charged) and
  FairServe (expected tokens, from the profiles) with the flood.
* Figures over the flood span, per well-behaved tenant with at least ``min_requests``
  requests arriving in it: **service received** = prompt + output tokens of its requests
  served within their tier's target (TTFT, and the deadline for the deferrable tier; the
  goodput the tenant cares about), **entitled** = what it received in the no-flood run (what
  it gets when nobody sends above their share); Jain's index of received ÷ entitled (1 when
  every well-behaved tenant keeps the same fraction of its no-flood service, however much the
  flood costs them all; the mean and minimum of the ratios say how much) — and, as before,
  Jain over tokens served in the span ÷ tokens demanded (``jain_index_tokens``, near 1 for
  every policy: the pool keeps up in tokens over two hours); TTFT p95 and the IW-F SLA (share
  of IW-F requests meeting the tier's TTFT target); the flooding tenant's throttled share
  (rejected over its requests in the span); well-behaved requests turned away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.warehouse.connection import connect
from flows.warehouse.sqlfiles import run
from planner.config import load_config
from planner.config.models import FleetConfig
from planner.sim.fairness import FairServe, Fcfs, Gateway, Scheduler, TenantProfile, Vtc, jain
from planner.sim.instances import Requests, simulate_instances
from planner.sim.latency import tier_targets
from planner.sim.profile import InstanceProfile, fit_context, profiles_for_config
from planner.workload.servegen import (
    ServeGenClient,
    ServeGenSpec,
    load_source,
    local_window,
)

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MODEL = "llama2-70b"
HOUR = 3600.0


@dataclass(frozen=True)
class FairnessSpec:
    source: Path = SHARED / "servegen/language/m-mid"
    perf_csv: Path = SHARED / "sageserve_perf/perf_model_4_models.csv"
    scale: float = 0.001  # first guess; rescaled so that ``instances`` are ``busy``
    instances: int = 2
    flood_share: float = 0.05  # the flooding tenant: usual token share closest to this
    seed: int = 7
    start_h: float = 10.0
    hours: float = 2.5
    flood_from_h: float = 0.25
    flood_hours: float = 2.0
    flood_factor: int = 10
    busy: float = 0.8
    min_requests: int = 20  # a tenant counts in Jain's index with this many requests in the span
    depth: int = 4  # the gateway's per-instance queue depth (every policy)
    fairserve: tuple[tuple[str, float], ...] = ()  # FairServe settings other than the defaults
    policies: tuple[str, ...] = ("fcfs", "vtc", "fairserve")


def servegen_window(
    cfg: FleetConfig,
    clients: list[ServeGenClient],
    start_s: float,
    hours: float,
    spec: FairnessSpec,
) -> pd.DataFrame:
    """:func:`planner.workload.servegen.local_window` for the scenario's model, scale and seed."""
    return local_window(
        cfg, clients, ServeGenSpec(MODEL, scale=spec.scale, seed=spec.seed), start_s, hours
    )


def fit_window(df: pd.DataFrame, prof: InstanceProfile) -> pd.DataFrame:
    """Request sizes fitted to the model's context window (module docstring)."""
    inp, out = fit_context(df["input_tokens"], df["output_tokens"], prof.max_context)
    return df.assign(input_tokens=inp, output_tokens=out)


def learn_profiles(history: pd.DataFrame, action_gap_s: float = 1.0) -> pd.DataFrame:
    """The tenant profile mart over ``history`` (request rows), in an in-memory warehouse."""
    con = connect(":memory:")
    try:
        rows = history.assign(
            arrival_time=pd.Timestamp("2024-06-03") + pd.to_timedelta(history["t"], unit="s"),
            request_id=[f"history-{i}" for i in range(len(history))],
            file_key=0,  # a scratch warehouse: no manifest row to reference
            ttft_ms=np.nan,
            e2e_ms=np.nan,
        )
        cols = [
            "request_id", "arrival_time", "region", "model", "tier", "input_tokens",
            "output_tokens", "tenant", "ttft_ms", "e2e_ms", "file_key",
        ]  # fmt: skip
        con.register("hist", rows[cols])
        con.execute(f"INSERT INTO requests ({', '.join(cols)}) SELECT {', '.join(cols)} FROM hist")
        start = pd.Timestamp("2024-06-03").to_pydatetime()
        end = start + pd.Timedelta(seconds=float(np.ceil(history["t"].max() / HOUR) * HOUR))
        return run(
            con, "marts/tenant_profiles", start=start, end=end, action_gap_s=action_gap_s
        ).df()
    finally:
        con.close()


def _requests(df: pd.DataFrame, tenant_ids: dict[str, int], tiers: dict[str, int]) -> Requests:
    return Requests(
        df["t"].to_numpy(float),
        np.maximum(df["input_tokens"].to_numpy(np.int64), 1),
        np.maximum(df["output_tokens"].to_numpy(np.int64), 1),
        np.asarray(df["tier"].map(tiers), dtype=np.int64),
        np.asarray(df["tenant"].map(tenant_ids), dtype=np.int64),
    )


def add_flood(
    df: pd.DataFrame, history: pd.DataFrame, tenant: str, rate: float, spec: FairnessSpec
) -> pd.DataFrame:
    """The tenant's extra (factor − 1) × ``rate`` requests/s over the flood span: Poisson
    arrivals, rows (tokens, tier) drawn from its own history."""
    a, b = spec.flood_from_h * HOUR, (spec.flood_from_h + spec.flood_hours) * HOUR
    rng = np.random.default_rng(spec.seed)
    n = int(rng.poisson((spec.flood_factor - 1) * rate * (b - a)))
    own = history[history["tenant"] == tenant]
    extra = own.iloc[rng.integers(0, len(own), n)].assign(t=np.sort(rng.uniform(a, b, n)))
    return pd.concat([df, extra]).sort_values("t", kind="stable").reset_index(drop=True)


def fairness_scenario(
    cfg: FleetConfig | None = None, spec: FairnessSpec | None = None
) -> dict[str, Any]:
    """Run the scenario (module docstring); the figures as a JSON-ready dict."""
    spec = spec or FairnessSpec()
    cfg = cfg or load_config()
    clients = load_source(spec.source)
    pool_prof = next(
        p for (m, _), p in profiles_for_config(cfg, spec.perf_csv).items() if m == MODEL
    )
    spec, capacity = _scale_to_load(cfg, clients, pool_prof, spec)
    start_s = spec.start_h * HOUR
    history = fit_window(servegen_window(cfg, clients, start_s, spec.hours, spec), pool_prof)
    test = fit_window(servegen_window(cfg, clients, 86400.0 + start_s, spec.hours, spec), pool_prof)
    prof = learn_profiles(history)
    names = sorted(set(test["tenant"]) | set(prof["tenant"]))
    tenant_ids = {n: i for i, n in enumerate(names)}
    targets = tier_targets(cfg)
    tiers = {t.tier: i for i, t in enumerate(targets)}
    profiles = _tenant_profiles(prof, tenant_ids)
    share = pd.Series({n: profiles[tenant_ids[n]].cost_per_s for n in prof["tenant"]})
    share = share / share.sum()
    flood_tenant = str((share - spec.flood_share).abs().idxmin())
    log.info(
        "%d requests, %d tenants, %d instances, flooding %s (usual share %.3f)",
        len(test), len(names), spec.instances, flood_tenant, share[flood_tenant],
    )  # fmt: skip
    rate = profiles[tenant_ids[flood_tenant]].requests_per_s
    flooded = _requests(add_flood(test, history, flood_tenant, rate, spec), tenant_ids, tiers)
    schedulers: list[tuple[str, Requests, Scheduler]] = [
        ("no_flood", _requests(test, tenant_ids, tiers), Fcfs(name="no_flood")),
        ("fcfs", flooded, Fcfs()),
        ("vtc", flooded, Vtc()),  # the paper's counters: the tokens actually served
        ("fairserve", flooded, FairServe.from_profiles(profiles, **dict(spec.fairserve))),
    ]
    schedulers = [x for x in schedulers if x[0] == "no_flood" or x[0] in spec.policies]
    flood = tenant_ids[flood_tenant]
    out, rho = _run_policies(schedulers, pool_prof, flood, tiers, targets, spec)
    return {
        "scenario": "fairness",
        "tenants": len(names),
        "requests": len(test),
        "flood_tenant": flood_tenant,
        "flood_usual_share": round(float(share[flood_tenant]), 4),
        "volume_scale": round(spec.scale, 6),
        "instances": spec.instances,
        "capacity_share_of_best_rate": round(capacity, 3),
        "utilisation_without_flood": round(rho / capacity, 3),
        "policies": out,
    }


def _run_policies(
    schedulers: list[tuple[str, Requests, Scheduler]],
    pool_prof: InstanceProfile,
    flood: int,
    tiers: dict[str, int],
    targets: list[Any],
    spec: FairnessSpec,
) -> tuple[list[dict[str, Any]], float]:
    """Each scheduler's run on the pool and its figures; the no-flood run (first) sets what
    every tenant is entitled to, and the pool's busy share without the flood."""
    n = spec.instances
    out = []
    rho = float("nan")
    entitled: dict[int, float] = {}
    for name, req, sched in schedulers:
        served = simulate_instances(req, pool_prof, n, Gateway(sched, depth=spec.depth))
        if name == "no_flood":
            rho = float(pool_prof.busy_s(req.prompt, req.output).sum()) / (n * spec.hours * HOUR)
            entitled = goodput(req, served, flood, targets, spec)
        out.append(_figures(name, req, served, flood, tiers, targets, spec, entitled))
        log.info("%s: %s", name, out[-1])
    return out, rho


def _scale_to_load(
    cfg: FleetConfig, clients: Any, pool_prof: InstanceProfile, spec: FairnessSpec
) -> tuple[FairnessSpec, float]:
    """``spec`` with the volume scale at which the offered load is ``busy`` × the pool's
    capacity on this log's request mix, and that capacity: the best-rate work
    (``profile.busy_s``) the pool completes per second when saturated (the first hour at 2×
    the best-rate guess, FCFS)."""
    start_s = 86400.0 + spec.start_h * HOUR
    probe = fit_window(servegen_window(cfg, clients, start_s, spec.hours, spec), pool_prof)
    busy = float(pool_prof.busy_s(probe["input_tokens"], probe["output_tokens"]).sum())
    guess = spec.scale * spec.busy * spec.instances * spec.hours * HOUR / busy
    sat = fit_window(
        servegen_window(cfg, clients, start_s, 1.0, replace(spec, scale=2 * guess)), pool_prof
    )
    sreq = _requests(sat, {t: 0 for t in sat["tenant"]}, {t: 0 for t in sat["tier"]})
    sserved = simulate_instances(sreq, pool_prof, spec.instances, Gateway(Fcfs()))
    done = sserved.finish_s <= HOUR
    capacity = float(pool_prof.busy_s(sreq.prompt[done], sreq.output[done]).sum()) / (
        spec.instances * HOUR
    )
    log.info("pool capacity %.2f of best-rate work; volume scale %.5f", capacity, guess * capacity)
    return replace(spec, scale=guess * capacity), capacity


def _tenant_profiles(prof: pd.DataFrame, tenant_ids: dict[str, int]) -> dict[int, TenantProfile]:
    """The learned profiles (``sql/marts/tenant_profiles.sql`` rows) keyed by tenant id."""
    rows: list[Any] = list(prof.itertuples())
    return {
        tenant_ids[r.tenant]: TenantProfile(
            tenant_ids[r.tenant],
            float(r.requests_per_s),
            float(r.mean_input),
            float(r.mean_output),
            float(r.requests_per_action),
            float(r.iwf_share),
        )
        for r in rows
    }


def goodput(
    req: Requests, served: Any, flood: int, targets: list[Any], spec: FairnessSpec
) -> dict[int, float]:
    """Per well-behaved tenant with ≥ ``min_requests`` requests arriving in the flood span:
    prompt + output tokens of those served within their tier's target (module docstring)."""
    a, b = spec.flood_from_h * HOUR, (spec.flood_from_h + spec.flood_hours) * HOUR
    arrived = (req.arrival_s >= a) & (req.arrival_s < b) & (req.tenant != flood)
    ttft_target = np.array([t.ttft_s for t in targets])[req.tier]
    deadline = np.array([t.deadline_s for t in targets])[req.tier]
    met = (served.ttft_s <= ttft_target) & (served.e2e_s <= deadline)
    tokens = (req.prompt + req.output).astype(float)
    counts = np.bincount(req.tenant[arrived])
    return {
        int(u): float(tokens[arrived & met & (req.tenant == u)].sum())
        for u in np.flatnonzero(counts >= spec.min_requests)
    }


def _figures(
    name: str,
    req: Requests,
    served: Any,
    flood: int,
    tiers: dict[str, int],
    targets: list[Any],
    spec: FairnessSpec,
    entitled: dict[int, float],
) -> dict[str, Any]:
    a, b = spec.flood_from_h * HOUR, (spec.flood_from_h + spec.flood_hours) * HOUR
    received = goodput(req, served, flood, targets, spec)
    kept = np.array([received[u] / entitled[u] for u in sorted(entitled) if entitled[u] > 0])
    tokens = (req.prompt + req.output).astype(float)
    arrived = (req.arrival_s >= a) & (req.arrival_s < b)
    done = (served.finish_s >= a) & (served.finish_s < b)
    well = req.tenant != flood
    ratios = []
    tenants = np.unique(req.tenant[well & arrived])
    for u in tenants:
        mine = req.tenant == u
        ratios.append(tokens[mine & done].sum() / tokens[mine & arrived].sum())
    iwf = tiers["IW-F"]
    target = targets[iwf].ttft_s
    sel = well & arrived & (req.tier == iwf)
    ttft = served.ttft_s
    fl = (req.tenant == flood) & arrived
    rejected = served.instance < 0
    return {
        "name": name,
        "jain_index": round(jain(kept), 4),
        "service_vs_entitled_mean": round(float(kept.mean()), 4),
        "service_vs_entitled_min": round(float(kept.min()), 4),
        "tenants_in_jain": len(kept),
        "jain_index_tokens": round(jain(ratios), 4),
        "well_behaved_iwf_sla": round(float(np.mean(ttft[sel] <= target)), 4),
        "well_behaved_ttft_p95_s": round(float(np.quantile(ttft[well & arrived], 0.95)), 3)
        if np.isfinite(ttft[well & arrived]).all()
        else None,  # some were turned away (never served)
        "well_behaved_rejected": int(rejected[well & arrived].sum()),
        "flood_throttled_share": round(float(rejected[fl].mean()), 4) if fl.any() else 0.0,
        "tokens_served_vs_demanded_min": round(float(np.min(ratios)), 4),
        "flood_service_vs_usual": round(
            float(tokens[(req.tenant == flood) & done].sum())
            / max(float(tokens[fl].sum()) / spec.flood_factor, 1.0),
            3,
        ),
    }
