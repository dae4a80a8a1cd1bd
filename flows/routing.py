"""The routing scenario: one region × model pool of instances, every router on the same log.

From the warehouse (``sql/routing/*.sql``):

* the pool: the region and model with the most request rows (or the ones asked for);
* the evaluation log: its last ``windows`` × ``requests`` rows, cut into ``windows``
  consecutive held-out windows of ``requests`` rows, each time stretched so the pool runs at
  ``load`` (ρ = Σ busy_s / (instances × span), gaps' shape and request order kept); every
  router runs on every window, and the learned router's mean E2E is compared per window with
  each other router's (mean and standard deviation of the relative difference over windows,
  and the number of windows it wins);
* the length predictor: fitted on a subsample of the model's rows (every region) *before* the
  evaluation log's first arrival, scored on the evaluation rows (never trained on);
* the learned router's training traces: ``train_traces`` windows of the same pool's rows before
  the evaluation log, stretched to the same load, and one more window for validation. The
  policy is saved as ``<outputs>/routers/<artifact>.json`` and loaded by name when its training
  hash matches.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from planner.sim import learn_router, length
from planner.sim.instances import Requests, Served, simulate_instances
from planner.sim.profile import InstanceProfile, profiles_for_config
from planner.sim.routers import JoinShortestQueue, LeastTokens, LinearMix, constant_estimate
from planner.sim.routing import Arrivals, RoundRobin, Router

log = logging.getLogger(__name__)
ROUTERS = ("round-robin", "jsq", "least-tokens", "heuristic", "learned")
PERF_CSV = Path(__file__).resolve().parents[1].parent / "shared/data/sageserve_perf"


@dataclass(frozen=True)
class RoutingSpec:
    region: str = ""
    model: str = ""
    instances: int = 8
    load: float = 0.75
    requests: int = 20_000
    train_traces: int = 3
    train_requests: int = 4_000
    predictor_rows: int = 200_000
    seed: int = 0
    retrain: bool = False
    windows: int = 1
    search_rounds: int = learn_router.SearchSettings.rounds
    search_population: int = learn_router.SearchSettings.population


@dataclass(frozen=True)
class PolicyResult:
    name: str
    e2e_mean_s: float
    e2e_p95_s: float
    ttft_p95_s: float
    ttft_mean_s: float
    unserved: int


@dataclass(frozen=True)
class RoutingResult:
    region: str
    model: str
    profile: str
    instances: int
    load: float
    requests: int
    window: tuple[str, str]
    predictor: length.Score
    learned: dict[str, Any]
    policies: list[PolicyResult]  # means over the windows (unserved: summed)
    per_window: list[dict[str, Any]]
    comparison: dict[str, Any]
    bounds: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "routing",
            "region": self.region,
            "model": self.model,
            "profile": self.profile,
            "instances": self.instances,
            "load": self.load,
            "requests": self.requests,
            "window": list(self.window),
            "predictor": asdict(self.predictor),
            "learned": self.learned,
            "policies": [asdict(p) for p in self.policies],
            "windows": self.per_window,
            "learned_vs": self.comparison,
            "bounds": self.bounds,
        }


def stretch(arrival: pd.Series, busy: np.ndarray, instances: int, load: float) -> np.ndarray:
    """Arrival seconds scaled so that Σ busy / (instances × span) = load."""
    t = (arrival - arrival.iloc[0]).dt.total_seconds().to_numpy(float)
    span = float(t.max()) or 1.0
    return np.asarray(t * float(busy.sum()) / (instances * span * load), float)


def _requests(rows: pd.DataFrame, prof: InstanceProfile, spec: RoutingSpec) -> Requests:
    prompt = rows["input_tokens"].to_numpy(np.int64)
    output = rows["output_tokens"].to_numpy(np.int64)
    busy = prof.busy_s(prompt, output)
    arr = stretch(rows["arrival_time"], busy, spec.instances, spec.load)
    return Requests(arr, prompt, output)


def _indexed(est: np.ndarray) -> Any:
    def estimate(a: Arrivals) -> np.ndarray:
        return np.asarray(est[a.index], float)

    return estimate


def _result(name: str, s: Served) -> PolicyResult:
    ok = np.isfinite(s.e2e_s)
    e2e, ttft = s.e2e_s[ok], s.ttft_s[ok]
    return PolicyResult(
        name,
        float(e2e.mean()),
        float(np.percentile(e2e, 95)),
        float(np.percentile(ttft, 95)),
        float(ttft.mean()),
        int((~ok).sum()),
    )


def run_routing(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, spec: RoutingSpec, perf_csv: Path
) -> RoutingResult:
    pool = run(con, "routing/busiest_pool", model=spec.model, region=spec.region).fetchone()
    if pool is None:
        raise ValueError("the warehouse has no request rows for that region and model")
    region, model, _, first, last = pool
    g = cfg.model(model).vm_types
    profiles = profiles_for_config(cfg, perf_csv)
    prof = profiles[(model, next(iter(g)))]
    rows = run(
        con,
        "routing/request_rows",
        model=model,
        region=region,
        start=first,
        end=last + pd.Timedelta(milliseconds=1),
        keep_every=1,
    ).df()
    evaluated = spec.windows * spec.requests
    need = evaluated + (spec.train_traces + 1) * spec.train_requests
    if len(rows) < need:
        raise ValueError(
            f"pool {region}/{model} has {len(rows)} request rows; the scenario needs {need} "
            f"({spec.windows} × {spec.requests} evaluated + {spec.train_traces + 1} × "
            f"{spec.train_requests} training and validation)"
        )
    evaluation = rows.iloc[-evaluated:].reset_index(drop=True)
    eval_start: datetime = evaluation["arrival_time"].iloc[0]
    whole = run(con, "routing/busiest_pool", model=model, region="").fetchone()
    total = int(whole[2]) if whole else len(rows)
    keep = max(1, total // spec.predictor_rows)
    train_rows = run(
        con,
        "routing/request_rows",
        model=model,
        region="",
        start=first - pd.Timedelta(days=366),
        end=eval_start,
        keep_every=keep,
    ).df()
    log.info(
        "length predictor: %d training rows (1 in %d), before %s", len(train_rows), keep, eval_start
    )
    predictor = length.fit(train_rows, seed=spec.seed)
    score = length.score(predictor, train_rows, evaluation)
    mean_out = float(train_rows["output_tokens"].mean())

    traces = []
    before = rows[rows["arrival_time"] < eval_start].reset_index(drop=True)
    step = max(len(before) // (spec.train_traces + 1), spec.train_requests)
    for k in range(spec.train_traces + 1):
        w = before.iloc[k * step : k * step + spec.train_requests].reset_index(drop=True)
        traces.append(learn_router.Trace(_requests(w, prof, spec), predictor.expected_output(w)))
    settings = learn_router.SearchSettings(
        rounds=spec.search_rounds,
        population=spec.search_population,
        elite=max(1, spec.search_population // 3),
        seed=spec.seed,
    )
    traces, validation = traces[:-1], traces[-1:]
    wanted = learn_router.train_hash(traces + validation, prof, spec.instances, settings)
    path = Path(cfg.paths.outputs) / "routers" / f"{cfg.routing.artifact}.json"
    policy = None
    if path.exists() and not spec.retrain:
        policy = learn_router.load(path)
        if policy.config_hash != wanted:
            log.info(
                "%s was trained on other data (hash %s ≠ %s): retraining",
                path,
                policy.config_hash,
                wanted,
            )
            policy = None
    if policy is None:
        policy = learn_router.learn(traces, prof, spec.instances, mean_out, settings, validation)
        learn_router.save(policy, path)
        log.info("saved %s", path)

    flat = constant_estimate(mean_out)
    per_window: list[list[PolicyResult]] = []
    per_bound: list[dict[str, float]] = []
    spans = []
    for k in range(spec.windows):
        w = evaluation.iloc[k * spec.requests : (k + 1) * spec.requests].reset_index(drop=True)
        spans.append((str(w["arrival_time"].iloc[0]), str(w["arrival_time"].iloc[-1])))
        req = _requests(w, prof, spec)
        est = _indexed(predictor.expected_output(w))
        routers: dict[str, Router] = {
            "round-robin": RoundRobin(),
            "jsq": JoinShortestQueue(prof, flat, settings.epoch_s),
            "least-tokens": LeastTokens(prof, flat, settings.epoch_s),
            "heuristic": LinearMix(prof, est, settings.epoch_s, mean_output=mean_out),
            "learned": policy.router(prof, est),
        }
        results = []
        for name, router in routers.items():
            served = simulate_instances(req, prof, spec.instances, router)
            results.append(_result(name, served))
            log.info("window %d, %s: mean E2E %.3f s", k, name, results[-1].e2e_mean_s)
        per_window.append(results)
        per_bound.append(window_bounds(req, prof, spec.instances, settings.epoch_s, mean_out))
    return RoutingResult(
        region,
        model,
        prof.name,
        spec.instances,
        spec.load,
        len(evaluation),
        (str(eval_start), str(evaluation["arrival_time"].iloc[-1])),
        score,
        {
            "artifact": str(path),
            "version": policy.version,
            "config_hash": policy.config_hash,
            "weights": dict(zip(policy.features, policy.weights, strict=True)),
            "train_mean_e2e_s": policy.train_mean_e2e_s,
            "heuristic_train_mean_e2e_s": policy.heuristic_train_mean_e2e_s,
            "validation_mean_e2e_s": policy.validation_mean_e2e_s,
            "heuristic_validation_mean_e2e_s": policy.heuristic_validation_mean_e2e_s,
            "kept_heuristic": policy.kept_heuristic,
        },
        _mean_over(per_window),
        [
            {"window": list(span), "policies": [asdict(p) for p in res]}
            for span, res in zip(spans, per_window, strict=True)
        ],
        compare(per_window),
        {
            "note": "not routers: what no router beats (no contention) and the heuristic "
            "told each request's true output; means over the windows",
            **{k: float(np.mean([b[k] for b in per_bound])) for k in per_bound[0]},
        },
    )


def window_bounds(
    req: Requests, prof: InstanceProfile, instances: int, epoch_s: float, mean_out: float
) -> dict[str, float]:
    """References for one window, not routers:

    * ``no_contention_e2e_mean_s``: each request alone on an idle instance of the same model
      (one instance per request): its prefill in chunks and decode at batch 1. Contention for
      the iterations adds to it under any router; it is the bound no router beats;
    * ``round_robin_ttft_mean_s`` and ``no_contention_ttft_mean_s``: the part of round-robin's
      excess over that bound that is waiting for the first token (all a router can win by
      queueing alone) — the rest is decode slowed by the batch and the prefill chunks riding
      along;
    * ``heuristic_true_output_e2e_mean_s``: the heuristic given each request's true output
      instead of the predictor's estimate (a perfect length predictor)."""
    alone = simulate_instances(req, prof, len(req.arrival_s), RoundRobin())
    rr = simulate_instances(req, prof, instances, RoundRobin())
    true_out = LinearMix(prof, _indexed(req.output.astype(float)), epoch_s, mean_output=mean_out)
    told = simulate_instances(req, prof, instances, true_out)

    def mean(x: np.ndarray) -> float:
        return float(x[np.isfinite(x)].mean())

    return {
        "no_contention_e2e_mean_s": mean(alone.e2e_s),
        "no_contention_ttft_mean_s": mean(alone.ttft_s),
        "round_robin_ttft_mean_s": mean(rr.ttft_s),
        "heuristic_true_output_e2e_mean_s": mean(told.e2e_s),
    }


def _mean_over(per_window: list[list[PolicyResult]]) -> list[PolicyResult]:
    out = []
    for i, first in enumerate(per_window[0]):
        rs = [w[i] for w in per_window]
        out.append(
            PolicyResult(
                first.name,
                float(np.mean([r.e2e_mean_s for r in rs])),
                float(np.mean([r.e2e_p95_s for r in rs])),
                float(np.mean([r.ttft_p95_s for r in rs])),
                float(np.mean([r.ttft_mean_s for r in rs])),
                int(sum(r.unserved for r in rs)),
            )
        )
    return out


def compare(per_window: list[list[PolicyResult]], name: str = "learned") -> dict[str, Any]:
    """Per other router: the learned router's mean E2E relative to it in each window
    (learned / other − 1), their mean and sample standard deviation over windows, and how many
    windows the learned router wins; ``best_heuristic``: the load-aware router other than the
    learned one with the least mean E2E over the windows."""
    names = [p.name for p in per_window[0]]
    mine = np.array([w[names.index(name)].e2e_mean_s for w in per_window])
    out: dict[str, Any] = {}
    for i, other in enumerate(names):
        if other == name:
            continue
        theirs = np.array([w[i].e2e_mean_s for w in per_window])
        rel = mine / theirs - 1
        out[other] = {
            "mean_rel_diff": float(rel.mean()),
            "std_rel_diff": float(rel.std(ddof=1)) if len(rel) > 1 else float("nan"),
            "per_window": [float(x) for x in rel],
            "wins": int((rel < 0).sum()),
            "windows": len(rel),
        }
    means = {n: np.mean([w[i].e2e_mean_s for w in per_window]) for i, n in enumerate(names)}
    heuristics = [n for n in names if n not in (name, "round-robin")]
    out["best_heuristic"] = min(heuristics, key=lambda n: means[n]) if heuristics else None
    return out
