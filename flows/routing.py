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

import hashlib
import json
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
from planner.files import atomic_path
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
    load_basis: str
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
            "load_basis": self.load_basis,
            "requests": self.requests,
            "window": list(self.window),
            "predictor": asdict(self.predictor),
            "learned": self.learned,
            "policies": [asdict(p) for p in self.policies],
            "windows": self.per_window,
            "learned_vs": self.comparison,
            "bounds": self.bounds,
        }


LOAD_BASES = ("peak", "mean")
SEGMENT_S = 900.0  # the log's clock: the load is held over 15-minute segments


def _segments(t: np.ndarray, busy: np.ndarray, segment_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Busy seconds and duration of each ``segment_s`` segment of the log's clock from the
    window's first arrival (``t``: seconds from it). The last, partial segment counts with its
    own duration when it lasts at least half a segment, and is folded into the one before
    otherwise (a few seconds of log must not set the window's peak)."""
    span = float(t.max()) if len(t) else 0.0
    n = max(int(np.ceil(span / segment_s)), 1)
    k = np.minimum((t // segment_s).astype(np.int64), n - 1)
    b = np.bincount(k, weights=busy, minlength=n)
    dur = np.full(n, segment_s)
    dur[-1] = max(span - (n - 1) * segment_s, 1e-9)
    if n > 1 and dur[-1] < segment_s / 2:
        b[-2] += b[-1]
        dur[-2] += dur[-1]
        b, dur = b[:-1], dur[:-1]
    return b, dur


def stretch(
    arrival: pd.Series,
    busy: np.ndarray,
    instances: int,
    load: float,
    basis: str = "peak",
    segment_s: float = SEGMENT_S,
) -> np.ndarray:
    """Arrival seconds scaled by one factor c (t → c · t, gaps' shape and order kept) so that
    the pool runs at ``load``, ρ = Σ busy / (instances × duration), by ``basis``:

    * ``peak`` (the default): the window's busiest ``segment_s`` of the log's clock (15
      minutes) runs at ``load`` and every other one below it — the pool sized for the window's
      peak, as a capacity plan sizes it; no part of the window is above the stated load;
    * ``mean``: the whole window's average runs at ``load`` (the definition before; a peak of
      the log above the average then runs the pool above ``load``, beyond capacity if the peak
      is more than 1/``load`` times the average).

    The factor c is ``max_k busy_k / (instances × dur_k × load)`` over the segments
    (:func:`_segments`) for ``peak``, ``Σ busy / (instances × span × load)`` for ``mean``;
    segment k then runs at ``busy_k / (instances × c × dur_k)``."""
    if basis not in LOAD_BASES:
        raise ValueError(f"load basis {basis!r}: choose from {', '.join(LOAD_BASES)}")
    t = (arrival - arrival.iloc[0]).dt.total_seconds().to_numpy(float)
    span = float(t.max()) or 1.0
    if basis == "mean" or span <= segment_s:
        return np.asarray(t * float(busy.sum()) / (instances * span * load), float)
    b, dur = _segments(t, busy, segment_s)
    c = float((b / dur).max()) / (instances * load)
    return np.asarray(t * c, float)


def window_load(
    arrival: pd.Series,
    stretched: np.ndarray,
    busy: np.ndarray,
    instances: int,
    segment_s: float = SEGMENT_S,
) -> dict[str, float]:
    """The pool load a stretched window puts on ``instances``: over the whole window, and per
    ``segment_s`` of the log's clock (peak, least non-empty segment, and the share of the
    window's work done in segments between 0.6 and 0.9, the issue's range)."""
    t = (arrival - arrival.iloc[0]).dt.total_seconds().to_numpy(float)
    span = float(t.max()) or 1.0
    c = float(stretched.max()) / span if len(stretched) and stretched.max() > 0 else 1.0
    b, dur = _segments(t, busy, segment_s)
    rho = b / (instances * c * dur)
    busy_k = b > 0
    within = float(b[(rho >= 0.6 - 1e-9) & (rho <= 0.9 + 1e-9)].sum() / max(b.sum(), 1e-12))
    return {
        "mean": float(busy.sum()) / (instances * c * span),
        "peak_15min": float(rho.max()),
        "least_busy_15min": float(rho[busy_k].min()) if busy_k.any() else 0.0,
        "work_share_at_0.6_0.9": within,
    }


def _requests(rows: pd.DataFrame, prof: InstanceProfile, spec: RoutingSpec) -> Requests:
    prompt = rows["input_tokens"].to_numpy(np.int64)
    output = rows["output_tokens"].to_numpy(np.int64)
    busy = prof.busy_s(prompt, output)
    arr = stretch(rows["arrival_time"], busy, spec.instances, spec.load, spec.load_basis)
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
    if spec.load_basis not in LOAD_BASES:
        raise ValueError(f"load basis {spec.load_basis!r}: choose from {', '.join(LOAD_BASES)}")
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
    mean_out = float(train_rows["output_tokens"].mean())
    before = rows[rows["arrival_time"] < eval_start].reset_index(drop=True)
    step = max(len(before) // (spec.train_traces + 1), spec.train_requests)
    trace_rows = [
        before.iloc[k * step : k * step + spec.train_requests].reset_index(drop=True)
        for k in range(spec.train_traces + 1)
    ]
    score, (eval_est, *trace_est) = predictions(
        train_rows,
        evaluation,
        [evaluation, *trace_rows],
        spec.seed,
        Path(cfg.paths.outputs) / "routers",
    )
    traces = [
        learn_router.Trace(_requests(w, prof, spec), est)
        for w, est in zip(trace_rows, trace_est, strict=True)
    ]
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
    loads: list[dict[str, float]] = []
    spans = []
    for k in range(spec.windows):
        w = evaluation.iloc[k * spec.requests : (k + 1) * spec.requests].reset_index(drop=True)
        spans.append((str(w["arrival_time"].iloc[0]), str(w["arrival_time"].iloc[-1])))
        req = _requests(w, prof, spec)
        busy = prof.busy_s(req.prompt, req.output)
        loads.append(window_load(w["arrival_time"], req.arrival_s, busy, spec.instances))
        est = _indexed(eval_est[k * spec.requests : (k + 1) * spec.requests])
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
        spec.load_basis,
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
            {"window": list(span), "load": ld, "policies": [asdict(p) for p in res]}
            for span, ld, res in zip(spans, loads, per_window, strict=True)
        ],
        compare(per_window),
        {
            "note": "not routers: what no router beats (no contention) and the heuristic "
            "told each request's true output; means over the windows",
            **{k: float(np.mean([b[k] for b in per_bound])) for k in per_bound[0]},
        },
    )


PREDICTOR_CACHE_VERSION = 1  # bump when length.fit or length.score change what they return
_PREDICTOR_COLUMNS = ["arrival_time", "tenant", "model", "tier", "input_tokens", "output_tokens"]


def predictor_key(
    train: pd.DataFrame,
    scored: pd.DataFrame,
    predicted: list[pd.DataFrame],
    seed: int,
    max_iter: int = 100,
) -> str:
    """Hash of everything the length predictor's figures depend on: the rows it is fitted on,
    the rows it is scored on and the rows it predicts (each with every column the fit and the
    score read), the seed, the boosting rounds and :data:`PREDICTOR_CACHE_VERSION`."""
    h = hashlib.sha256(f"v{PREDICTOR_CACHE_VERSION}/seed{seed}/iter{max_iter}".encode())
    for i, df in enumerate([train, scored, *predicted]):
        h.update(f"/{i}:{len(df)}".encode())
        cols = df[_PREDICTOR_COLUMNS]
        h.update(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def predictions(
    train: pd.DataFrame,
    scored: pd.DataFrame,
    predicted: list[pd.DataFrame],
    seed: int,
    cache_dir: Path | None,
    max_iter: int = 100,
) -> tuple[length.Score, list[np.ndarray]]:
    """The length predictor fitted on ``train`` (seed ``seed``): its out-of-sample score on
    ``scored`` and its expected output for each frame of ``predicted``. Stored in
    ``cache_dir/length-<key>.npz`` (:func:`predictor_key`; numbers and the score's JSON, no
    pickled model) and read from there when the key matches, so the ~40-s fit runs once per
    warehouse data and seed; a file that cannot be read is refitted over."""
    key = predictor_key(train, scored, predicted, seed, max_iter)
    path = cache_dir / f"length-{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                score = length.Score(**json.loads(str(z["score"])))
                est = [np.asarray(z[f"est{i}"], float) for i in range(len(predicted))]
            if all(len(e) == len(df) for e, df in zip(est, predicted, strict=True)):
                log.info("length predictor: figures read from %s", path)
                return score, est
        except (OSError, KeyError, ValueError, TypeError) as exc:
            log.warning("%s unreadable (%s): refitting the length predictor", path, exc)
    predictor = length.fit(train, seed=seed, max_iter=max_iter)
    score = length.score(predictor, train, scored)
    est = [predictor.expected_output(df) for df in predicted]
    if path is not None:
        arrays: dict[str, Any] = {f"est{i}": e for i, e in enumerate(est)}
        arrays["score"] = np.array(json.dumps(asdict(score)))
        with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to other names
            np.savez(tmp, **arrays)
    return score, est


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
