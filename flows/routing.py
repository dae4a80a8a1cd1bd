"""The routing scenario: one region × model pool of instances, every router on the same log.

From the warehouse (``sql/routing/*.sql``):

* the pool: the region and model with the most request rows (or the ones asked for);
* the evaluation log: its last ``windows`` × ``requests`` rows, cut into ``windows``
  consecutive held-out windows of ``requests`` rows, each time stretched so the pool runs at
  ``load`` of its maximum sustainable rate (:func:`load_work`; ρ = Σ work / (instances ×
  span), gaps' shape and request order kept); every
  router runs on every window, and the learned router's mean E2E is compared per window with
  each other router's (mean and standard deviation of the relative difference over windows,
  and the number of windows it wins);
* the length predictor: fitted on a subsample of the model's rows (every region) *before* the
  evaluation log's first arrival, scored on the evaluation rows (never trained on);
* the learned router's training traces: ``train_traces`` windows of the same pool's rows before
  the evaluation log, stretched to the same load, and one more window for validation. The
  policy is saved as ``<outputs>/routers/<artifact>.json`` and loaded by name when its training
  hash matches.

Split by responsibility: the load definition in :mod:`flows.routing_load`, the length
predictor's cache in :mod:`flows.routing_predictor`, the figures in :mod:`flows.routing_results`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.routing_load import LOAD_BASES, stretch, window_load
from flows.routing_predictor import predictions
from flows.routing_results import (
    PolicyResult,
    RoutingResult,
    compare,
    indexed,
    mean_over,
    policy_result,
    window_bounds,
)
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig, load_config
from planner.sim import learn_router, length
from planner.sim.instances import Requests, simulate_instances
from planner.sim.latency import saturation
from planner.sim.profile import InstanceProfile, fit_context, profiles_for_config
from planner.sim.routers import JoinShortestQueue, LeastTokens, LinearMix, constant_estimate
from planner.sim.routing import RoundRobin, Router

log = logging.getLogger(__name__)
ROUTERS = ("round-robin", "jsq", "least-tokens", "heuristic", "learned")
KV_MODES = ("paged", "reserve")
PREFILL_MODES = ("chunked", "whole")
PERF_CSV = Path(__file__).resolve().parents[1].parent / "shared/data/sageserve_perf"
__all__ = [
    "PERF_CSV",
    "ROUTERS",
    "PolicyResult",
    "RoutingResult",
    "RoutingSpec",
    "compare",
    "run_routing",
    "stretch",
    "window_load",
]


@dataclass(frozen=True)
class RoutingSpec:
    region: str = ""
    model: str = ""
    instances: int = 8
    load: float = 0.9
    load_basis: str = "peak"
    requests: int = 20_000
    train_traces: int = 3
    train_requests: int = 4_000
    predictor_rows: int = 200_000
    seed: int = 0
    retrain: bool = False
    windows: int = 1
    search_rounds: int = learn_router.SearchSettings.rounds
    search_population: int = learn_router.SearchSettings.population
    serve_on: str = ""  # a model whose instances serve the pool's log ("": the pool's model)
    kv: str = "paged"  # the KV cache: vLLM's paged allocation, or "reserve" (prompt + output)
    prefill: str = "chunked"  # the scheduler: chunked prefill, or "whole" (vLLM v0's default)


@dataclass(frozen=True)
class _Pool:
    """The pool's rows: its evaluation windows, the rows before them (the learned router's
    training windows) and the length predictor's training rows."""

    region: str
    model: str
    profile: InstanceProfile
    evaluation: pd.DataFrame
    eval_start: datetime
    trace_rows: list[pd.DataFrame]
    predictor_rows: pd.DataFrame

    @property
    def mean_output(self) -> float:
        return float(self.predictor_rows["output_tokens"].mean())


def _profile(
    cfg: FleetConfig, model: str, kv: str, perf_csv: Path, prefill: str = "chunked"
) -> InstanceProfile:
    """The instance profile of ``model`` on its first VM type: from ``cfg``, else from the
    default configuration (``--serve-on bloom-176b`` on the ServeGen config, whose fleet has
    no Bloom), with the KV cache ``kv`` ("paged": :mod:`planner.sim.instance_step`;
    "reserve": prompt + output reserved at admission) and the scheduler ``prefill``
    ("chunked", or "whole": :meth:`InstanceProfile.whole_prefill`)."""
    if kv not in KV_MODES:
        raise ValueError(f"--kv {kv!r}: choose from {', '.join(KV_MODES)}")
    if prefill not in PREFILL_MODES:
        raise ValueError(f"--prefill {prefill!r}: choose from {', '.join(PREFILL_MODES)}")
    if model not in cfg.model_ids:
        default = load_config()
        if model not in default.model_ids:
            raise ValueError(f"--serve-on {model!r}: no such model in the configuration")
        cfg = default
    g = next(iter(cfg.model(model).vm_types))
    prof = profiles_for_config(cfg, perf_csv)[(model, g)]
    # the name stays (the executor loads the artifact for this placement's profile); the
    # training hash tells a policy trained on the other KV rule or scheduler apart
    prof = replace(prof, kv_paging=kv == "paged")
    return prof.whole_prefill() if prefill == "whole" else prof


def load_work(prompt: np.ndarray, output: np.ndarray, prof: InstanceProfile) -> np.ndarray:
    """Each request's share of a saturated instance's time, so that Σ work / (instances ×
    seconds) is the arrival rate over the pool's **maximum sustainable rate** on this mix: its
    seconds at the instance's best rates (:meth:`InstanceProfile.busy_s`) over κ, the best-rate
    seconds one instance really serves per second when it never runs out of work
    (:func:`planner.sim.latency.saturation`: every instance backlogged, as round-robin leaves
    it at saturation; prefill chunks slowing the decodes beside them, long contexts, the KV
    cache and the batch cap all count). Load 1 is where round-robin's queues grow without
    bound. Measured on the served profile (its scheduler and KV rule), so a stated load is
    that server's own utilisation. κ is measured on a draw of as many requests per instance as
    the rows hold, 1,000 to 5,000. A request the instance refuses (beyond its context window)
    is no work."""
    fits = prompt + output <= prof.max_context
    if not fits.any():
        return np.zeros(len(prompt))  # nothing this server can take: no work to state
    draw = min(max(int(fits.sum()), 1_000), 5_000)
    kappa = saturation(prof, prompt[fits], output[fits], requests=draw)
    return np.asarray(np.where(fits, prof.busy_s(prompt, output), 0.0) / kappa, float)


def _requests(
    rows: pd.DataFrame, prof: InstanceProfile, spec: RoutingSpec
) -> tuple[Requests, np.ndarray]:
    """The rows as requests to ``prof``, stretched to the load, and each one's work
    (:func:`load_work`). Served on another model (``serve_on``), sizes are fitted to its context
    window as a client of a short-window model sends them (:func:`fit_context`); on the pool's
    own model a request beyond the window is refused, as before."""
    prompt = rows["input_tokens"].to_numpy(np.int64)
    output = rows["output_tokens"].to_numpy(np.int64)
    if spec.serve_on:
        prompt, output = fit_context(prompt, output, prof.max_context)
    work = load_work(prompt, output, prof)
    arr = stretch(rows["arrival_time"], work, spec.instances, spec.load, spec.load_basis)
    return Requests(arr, prompt, output), work


def _pool(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, spec: RoutingSpec, perf_csv: Path
) -> _Pool:
    """The region × model pool (module docstring) and its rows, split as the scenario uses
    them; a clear error when the pool has too few rows."""
    pool = run(con, "routing/busiest_pool", model=spec.model, region=spec.region).fetchone()
    if pool is None:
        raise ValueError("the warehouse has no request rows for that region and model")
    region, model, _, first, last = pool
    prof = _profile(cfg, spec.serve_on or model, spec.kv, perf_csv, spec.prefill)
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
    train_rows = _predictor_rows(con, model, first, eval_start, len(rows), spec.predictor_rows)
    before = rows[rows["arrival_time"] < eval_start].reset_index(drop=True)
    step = max(len(before) // (spec.train_traces + 1), spec.train_requests)
    trace_rows = [
        before.iloc[k * step : k * step + spec.train_requests].reset_index(drop=True)
        for k in range(spec.train_traces + 1)
    ]
    return _Pool(region, model, prof, evaluation, eval_start, trace_rows, train_rows)


def _predictor_rows(
    con: duckdb.DuckDBPyConnection,
    model: str,
    first: datetime,
    eval_start: datetime,
    pool_rows: int,
    wanted: int,
) -> pd.DataFrame:
    """The length predictor's training rows: the model's rows in every region before the
    evaluation starts (from a year before the pool's first row), one in every k so that
    about ``wanted`` are kept (k from the model's whole row count, else the pool's)."""
    whole = run(con, "routing/busiest_pool", model=model, region="").fetchone()
    total = int(whole[2]) if whole else pool_rows
    keep = max(1, total // wanted)
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
    return train_rows


def _policy(
    cfg: FleetConfig,
    spec: RoutingSpec,
    pool: _Pool,
    traces: list[learn_router.Trace],
    settings: learn_router.SearchSettings,
) -> tuple[learn_router.LearnedPolicy, Path]:
    """The learned policy: the saved artifact when its training hash matches (and no
    ``retrain``), else trained on all but the last trace (the last validates) and saved."""
    train, validation = traces[:-1], traces[-1:]
    wanted = learn_router.train_hash(train + validation, pool.profile, spec.instances, settings)
    path = Path(cfg.paths.outputs) / "routers" / f"{cfg.routing.artifact}.json"
    if path.exists() and not spec.retrain:
        try:
            policy = learn_router.load(path)
        except ValueError as exc:  # another artifact version: trained over
            log.info("%s: %s; retraining", path, exc)
        else:
            if policy.config_hash == wanted:
                return policy, path
            log.info(
                "%s was trained on other data (hash %s ≠ %s): retraining",
                path,
                policy.config_hash,
                wanted,
            )
    policy = learn_router.learn(
        train, pool.profile, spec.instances, pool.mean_output, settings, validation
    )
    learn_router.save(policy, path)
    log.info("saved %s", path)
    return policy, path


@dataclass(frozen=True)
class _Window:
    span: tuple[str, str]
    load: dict[str, float]
    results: list[PolicyResult]
    bounds: dict[str, float]


def _evaluate_window(
    k: int,
    spec: RoutingSpec,
    pool: _Pool,
    est: np.ndarray,
    policy: learn_router.LearnedPolicy,
    epoch_s: float,
) -> _Window:
    """Every router (:data:`ROUTERS`) on evaluation window ``k``, and its bounds."""
    prof, mean_out = pool.profile, pool.mean_output
    w = pool.evaluation.iloc[k * spec.requests : (k + 1) * spec.requests].reset_index(drop=True)
    span = (str(w["arrival_time"].iloc[0]), str(w["arrival_time"].iloc[-1]))
    req, work = _requests(w, prof, spec)
    load = window_load(w["arrival_time"], req.arrival_s, work, spec.instances)
    own = indexed(est[k * spec.requests : (k + 1) * spec.requests])
    flat = constant_estimate(mean_out)
    routers: dict[str, Router] = {
        "round-robin": RoundRobin(),
        "jsq": JoinShortestQueue(prof, flat, epoch_s),
        "least-tokens": LeastTokens(prof, flat, epoch_s),
        "heuristic": LinearMix(prof, own, epoch_s, mean_output=mean_out),
        "learned": policy.router(prof, own),
    }
    results = []
    for name, router in routers.items():
        served = simulate_instances(req, prof, spec.instances, router)
        results.append(policy_result(name, served))
        log.info("window %d, %s: mean E2E %.3f s", k, name, results[-1].e2e_mean_s)
    bounds = window_bounds(req, prof, spec.instances, epoch_s, mean_out)
    return _Window(span, load, results, bounds)


def _learned(policy: learn_router.LearnedPolicy, path: Path) -> dict[str, Any]:
    return {
        "artifact": str(path),
        "version": policy.version,
        "config_hash": policy.config_hash,
        "weights": dict(zip(policy.features, policy.weights, strict=True)),
        "train_mean_e2e_s": policy.train_mean_e2e_s,
        "heuristic_train_mean_e2e_s": policy.heuristic_train_mean_e2e_s,
        "validation_mean_e2e_s": policy.validation_mean_e2e_s,
        "heuristic_validation_mean_e2e_s": policy.heuristic_validation_mean_e2e_s,
        "ship_margin": policy.settings.ship_margin,
        "validation_gain": policy.validation_gain,
        "kept_heuristic": policy.kept_heuristic,
        "server": {"prefill": policy.server[0], "kv": policy.server[1]},
    }


def _training_traces(
    cfg: FleetConfig, spec: RoutingSpec, pool: _Pool
) -> tuple[length.Score, np.ndarray, list[learn_router.Trace]]:
    """The predictor's score, its output estimates for the evaluation rows, and the training
    traces with their estimates (every estimate out of sample: ``predictions``)."""
    score, (eval_est, *trace_est) = predictions(
        pool.predictor_rows,
        pool.evaluation,
        [pool.evaluation, *pool.trace_rows],
        spec.seed,
        Path(cfg.paths.outputs) / "routers",
    )
    if spec.serve_on:  # the client fitted outputs to the window (_requests): so are estimates
        cap = pool.profile.max_context // 2
        eval_est, trace_est = np.minimum(eval_est, cap), [np.minimum(e, cap) for e in trace_est]
    traces = [
        learn_router.Trace(_requests(w, pool.profile, spec)[0], est)
        for w, est in zip(pool.trace_rows, trace_est, strict=True)
    ]
    return score, eval_est, traces


def run_routing(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, spec: RoutingSpec, perf_csv: Path
) -> RoutingResult:
    """The routing scenario (module docstring) on the warehouse behind ``con``."""
    if spec.load_basis not in LOAD_BASES:
        raise ValueError(f"load basis {spec.load_basis!r}: choose from {', '.join(LOAD_BASES)}")
    pool = _pool(con, cfg, spec, perf_csv)
    score, eval_est, traces = _training_traces(cfg, spec, pool)
    settings = learn_router.SearchSettings(
        rounds=spec.search_rounds,
        population=spec.search_population,
        elite=max(1, spec.search_population // 3),
        seed=spec.seed,
    )
    policy, path = _policy(cfg, spec, pool, traces, settings)
    windows = [
        _evaluate_window(k, spec, pool, eval_est, policy, settings.epoch_s)
        for k in range(spec.windows)
    ]
    per_window = [w.results for w in windows]
    return RoutingResult(
        pool.region,
        pool.model,
        pool.profile.name,
        spec.instances,
        spec.load,
        spec.load_basis,
        len(pool.evaluation),
        (str(pool.eval_start), str(pool.evaluation["arrival_time"].iloc[-1])),
        score,
        _learned(policy, path),
        mean_over(per_window),
        [
            {"window": list(w.span), "load": w.load, "policies": [asdict(p) for p in w.results]}
            for w in windows
        ],
        compare(per_window),
        {
            "note": "not routers: what no router beats (no contention) and the heuristic "
            "told each request's true output; means over the windows",
            **{k: float(np.mean([w.bounds[k] for w in windows])) for k in windows[0].bounds},
        },
    )
