"""Learn the linear routing policy on the serving model, starting from the heuristic.

Policy: :class:`planner.sim.routers.LinearMix` with weights θ over the mixing-cost features.
Learning is direct policy search (the cross-entropy method) with the heuristic as guide:

1. the search distribution starts centred on the heuristic's weights (θ₀ = 1 on the four cost
   terms, 0 on the load terms): the heuristic is the prior the policy improves on;
2. each round draws ``population`` weight vectors from N(μ, σ²) (a fixed seed), replays each
   through the iteration-level serving model on the training traces (windows of the log
   disjoint from the evaluation window) and scores it by mean end-to-end latency;
3. μ moves to the mean of the ``elite`` best, σ shrinks by ``shrink``; the heuristic and every
   evaluated candidate stay in the running, so the search's best is never worse than the
   heuristic on the training traces;
4. the best ships only if it beats the heuristic on ``validation`` traces (windows used
   neither for training nor for evaluation) by the **shipping margin** ``ship_margin`` (1 %
   of the heuristic's mean E2E there, fixed before any figure on this rule was measured:
   about the spread of one router against another from window to window on the serving
   model, so that a validation edge within that noise is not taken for an improvement);
   otherwise the policy *is* the heuristic's weights, its prior (``kept_heuristic``).

The result is saved as a versioned JSON artifact (:func:`save` / :func:`load`) carrying the
weights, the feature names, the seed, the search settings and a hash of everything it was
trained from (config hash).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from planner.files import write_text_atomic
from planner.sim.instances import Requests, simulate_instances
from planner.sim.profile import InstanceProfile
from planner.sim.routers import FEATURES, HEURISTIC_WEIGHTS, LinearMix
from planner.sim.routing import Arrivals

log = logging.getLogger(__name__)
Array = npt.NDArray[np.float64]
ARTIFACT_VERSION = 5  # 2: the pool's profile and size; 3: chunk-aware features; 4: the view
# without true outputs (KV held, in-flight tokens at the router's estimates); 5: the scheduler
# and KV rule trained on, the shipping margin
SIGMA0 = np.array([0.5, 0.5, 0.5, 0.5, 0.02, 0.1, 0.5, 0.2, 0.2, 0.02, 0.2])


@dataclass(frozen=True)
class Trace:
    """One training window: requests and the predictor's expected output of each."""

    requests: Requests
    expected_output: Array


@dataclass(frozen=True)
class SearchSettings:
    rounds: int = 8
    population: int = 12
    elite: int = 4
    shrink: float = 0.7
    epoch_s: float = 0.25
    seed: int = 0
    ship_margin: float = 0.01  # the validation gain over the heuristic a policy needs to ship


@dataclass(frozen=True)
class LearnedPolicy:
    weights: list[float]
    features: list[str]
    mean_output: float
    settings: SearchSettings
    train_mean_e2e_s: float
    heuristic_train_mean_e2e_s: float
    config_hash: str
    validation_mean_e2e_s: float | None = None
    heuristic_validation_mean_e2e_s: float | None = None
    kept_heuristic: bool = False
    profile: str = ""  # the InstanceProfile.name of the pool it was trained on
    instances: int = 0  # the pool size it was trained on
    server: tuple[str, str] = ("chunked", "reserve")  # its scheduler and KV rule (server_of)
    version: int = ARTIFACT_VERSION

    @property
    def validation_gain(self) -> float | None:
        """The search's best against the heuristic on the validation traces (relative mean
        E2E saved; positive: better), or None without validation."""
        if self.validation_mean_e2e_s is None or not self.heuristic_validation_mean_e2e_s:
            return None
        return 1.0 - self.validation_mean_e2e_s / self.heuristic_validation_mean_e2e_s

    def router(
        self, profile: InstanceProfile, estimate: object, epoch_s: float | None = None
    ) -> LinearMix:
        return LinearMix(
            profile,
            estimate,  # type: ignore[arg-type]
            epoch_s or self.settings.epoch_s,
            np.asarray(self.weights, float),
            self.mean_output,
        )


def server_of(profile: InstanceProfile) -> tuple[str, str]:
    """The scheduler ("chunked" or "whole" prefill) and KV rule ("paged" or "reserve") of
    ``profile``: what a policy's weights were priced for beside the profile's name."""
    return (
        "chunked" if profile.chunked_prefill else "whole",
        "paged" if profile.kv_paging else "reserve",
    )


def _indexed(est: Array) -> object:
    return lambda a: est[a.index] if isinstance(a, Arrivals) else est


def mean_e2e(
    weights: Array,
    traces: list[Trace],
    profile: InstanceProfile,
    instances: int,
    mean_output: float,
    epoch_s: float,
) -> float:
    """Mean end-to-end latency over every request of every trace (unserved count as the
    trace's largest finite latency doubled, so dropping work never pays)."""
    total, count = 0.0, 0
    for tr in traces:
        # Sorted by arrival so that Arrivals.index (positions in the sorted trace) indexes est.
        router = LinearMix(profile, _indexed(tr.expected_output), epoch_s, weights, mean_output)  # type: ignore[arg-type]
        e2e = simulate_instances(tr.requests, profile, instances, router).e2e_s
        finite = np.isfinite(e2e)
        worst = 2 * float(e2e[finite].max()) if finite.any() else 0.0
        total += float(np.where(finite, e2e, worst).sum())
        count += len(e2e)
    return total / max(count, 1)


def train_hash(
    traces: list[Trace], profile: InstanceProfile, instances: int, s: SearchSettings
) -> str:
    h = hashlib.sha256()
    key: list[object] = [asdict(s), profile.name, instances, list(FEATURES)]
    if profile.kv_paging:  # (no entry otherwise: the hashes of reservation-trained policies stay)
        key.append("kv_paging")
    if not profile.chunked_prefill:
        key.append("whole_prefill")
    h.update(json.dumps(key).encode())
    for tr in traces:
        for a in (
            tr.requests.arrival_s,
            tr.requests.prompt,
            tr.requests.output,
            tr.expected_output,
        ):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def learn(
    traces: list[Trace],
    profile: InstanceProfile,
    instances: int,
    mean_output: float,
    settings: SearchSettings | None = None,
    validation: list[Trace] | None = None,
) -> LearnedPolicy:
    """Cross-entropy policy search from the heuristic (module docstring). Traces must be sorted
    by arrival."""
    s = settings or SearchSettings()

    def cost(w: Array, on: list[Trace]) -> float:
        return mean_e2e(w, on, profile, instances, mean_output, s.epoch_s)

    best_w, best, base = _search(lambda w: cost(w, traces), s)
    val: float | None = None
    val_base: float | None = None
    kept = False
    if validation:
        val_base, val = cost(HEURISTIC_WEIGHTS, validation), cost(best_w, validation)
        if not val <= val_base * (1.0 - s.ship_margin):
            kept, best_w = True, HEURISTIC_WEIGHTS.copy()
        log.info(
            "validation: %.3f s (heuristic %.3f s, gain %.2f %%, margin %.2f %%): %s",
            val,
            val_base,
            100 * (1 - val / val_base),
            100 * s.ship_margin,
            "the heuristic ships (the learned router's prior)" if kept else "the search ships",
        )
    return LearnedPolicy(
        [float(x) for x in best_w],
        list(FEATURES),
        mean_output,
        s,
        best,
        base,
        train_hash([*traces, *(validation or [])], profile, instances, s),
        val,
        val_base,
        kept,
        profile.name,
        instances,
        server_of(profile),
    )


def _search(cost: Callable[[Array], float], s: SearchSettings) -> tuple[Array, float, float]:
    """The cross-entropy rounds from the heuristic: (best weights, their cost, the heuristic's
    cost) on the training traces."""
    rng = np.random.default_rng(s.seed)
    started = time.perf_counter()
    base = cost(HEURISTIC_WEIGHTS)
    best_w, best = HEURISTIC_WEIGHTS.copy(), base
    mu, sigma = HEURISTIC_WEIGHTS.copy(), SIGMA0.copy()
    for r in range(s.rounds):
        cand = mu + sigma * rng.standard_normal((s.population, len(mu)))
        cand[:, :4] = np.maximum(cand[:, :4], 0.0)  # the cost terms keep their sign
        costs = np.array([cost(w) for w in cand])
        order = np.argsort(costs, kind="stable")
        if costs[order[0]] < best:
            best, best_w = float(costs[order[0]]), cand[order[0]].copy()
        mu = cand[order[: s.elite]].mean(axis=0)
        sigma = sigma * s.shrink
        log.info(
            "round %d: best %.3f s (heuristic %.3f s), %.0f s elapsed",
            r,
            best,
            base,
            time.perf_counter() - started,
        )
    return best_w, best, base


def save(policy: LearnedPolicy, path: Path | str) -> Path:
    return write_text_atomic(Path(path), json.dumps(asdict(policy), indent=2) + "\n")


def load(path: Path | str) -> LearnedPolicy:
    """A saved policy; a clear error if the file is missing, of another version or malformed."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no learned router artifact (train it first)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != ARTIFACT_VERSION:
        raise ValueError(
            f"{path}: artifact version {data.get('version')}, expected {ARTIFACT_VERSION}"
        )
    if data.get("features") != list(FEATURES):
        raise ValueError(f"{path}: features {data.get('features')} differ from {list(FEATURES)}")
    data["settings"] = SearchSettings(**data["settings"])
    data["server"] = tuple(data.get("server", ()))
    try:
        return LearnedPolicy(**data)
    except TypeError as exc:
        raise ValueError(f"{path}: malformed learned router artifact ({exc})") from None


def load_for(path: Path | str, profile: InstanceProfile, epoch_s: float) -> LearnedPolicy:
    """The saved policy for a pool of ``profile`` instances polled every ``epoch_s``: a clear
    error when it is missing, of another version, or was trained for another instance profile,
    scheduler, KV rule or routing epoch (its weights price that server's prefill and decode
    times and the stalls of its scheduler)."""
    policy = load(path)
    retrain = "retrain: sageserve evaluate-requests --scenario routing --retrain"
    if policy.profile != profile.name:
        raise ValueError(
            f"{path}: trained for instance profile {policy.profile!r}, this pool runs "
            f"{profile.name!r} ({retrain})"
        )
    if policy.server != server_of(profile):
        (p, k), (want_p, want_k) = policy.server, server_of(profile)
        raise ValueError(
            f"{path}: trained for {p} prefill with the {k} KV cache, this pool runs {want_p} "
            f"prefill with the {want_k} KV cache ({retrain} --prefill {want_p} --kv {want_k})"
        )
    if abs(policy.settings.epoch_s - epoch_s) > 1e-9:
        raise ValueError(
            f"{path}: trained with routing epoch {policy.settings.epoch_s:g} s, the config's "
            f"routing.epoch_s is {epoch_s:g} s"
        )
    return policy
