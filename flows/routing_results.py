"""The routing scenario's figures: per router and window, their means over the windows, the
learned router compared with each other router, and the bounds no router beats
(:mod:`flows.routing`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from planner.sim import length
from planner.sim.instances import Requests, Served, simulate_instances
from planner.sim.profile import InstanceProfile
from planner.sim.routers import LinearMix
from planner.sim.routing import Arrivals, RoundRobin


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


def indexed(est: np.ndarray) -> Any:
    """An estimate function reading ``est`` at the arrivals' positions in the trace."""

    def estimate(a: Arrivals) -> np.ndarray:
        return np.asarray(est[a.index], float)

    return estimate


def policy_result(name: str, s: Served) -> PolicyResult:
    """One router's figures on one window (served requests; the unserved counted)."""
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
    true_out = LinearMix(prof, indexed(req.output.astype(float)), epoch_s, mean_output=mean_out)
    told = simulate_instances(req, prof, instances, true_out)

    def mean(x: np.ndarray) -> float:
        return float(x[np.isfinite(x)].mean())

    return {
        "no_contention_e2e_mean_s": mean(alone.e2e_s),
        "no_contention_ttft_mean_s": mean(alone.ttft_s),
        "round_robin_ttft_mean_s": mean(rr.ttft_s),
        "heuristic_true_output_e2e_mean_s": mean(told.e2e_s),
    }


def mean_over(per_window: list[list[PolicyResult]]) -> list[PolicyResult]:
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
