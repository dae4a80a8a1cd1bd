"""Routers over the iteration-level instance model, the length predictor and the learned
policy's training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.sim import learn_router, length
from planner.sim.instances import Requests, simulate_instances
from planner.sim.profile import InstanceProfile
from planner.sim.routers import (
    FEATURES,
    HEURISTIC_WEIGHTS,
    JoinShortestQueue,
    LeastTokens,
    LinearMix,
    LoadAware,
    _Ledger,
    chunked_s,
    constant_estimate,
    mix_features,
)
from planner.sim.routing import Arrivals, PoolView


def toy(max_batch: int = 4, kv_tokens: float = 10_000.0) -> InstanceProfile:
    return InstanceProfile(
        name="toy",
        prefill_tokens=np.array([100.0, 1000.0]),
        prefill_ms=np.array([20.0, 200.0]),
        decode_batch=np.array([1.0, 4.0]),
        decode_ms=np.array([10.0, 16.0]),
        context_tokens=np.array([1.0, 10_000.0]),
        context_factor=np.array([1.0, 1.0]),
        max_batch=max_batch,
        kv_tokens=kv_tokens,
    )


def routers(prof: InstanceProfile) -> list[LoadAware]:
    flat = constant_estimate(100.0)
    return [
        JoinShortestQueue(prof, flat),
        LeastTokens(prof, flat),
        LinearMix(prof, flat, mean_output=100.0),
        LinearMix(prof, flat, weights=np.eye(len(FEATURES))[FEATURES.index("tokens_1e4")] * 5),
        LinearMix(prof, flat, weights=np.eye(len(FEATURES))[FEATURES.index("long_x_queue")]),
    ]


def one(prompt: int = 200) -> Arrivals:
    z = np.zeros(1, np.int64)
    return Arrivals(z, np.zeros(1), np.array([prompt]), np.array([100]), z, z)


@pytest.mark.parametrize("full", ["waiting", "batch", "kv"])
def test_router_never_sends_to_a_full_instance_while_another_has_room(full: str) -> None:
    """Instance 0 is the policies' favourite on every score (least loaded by tokens, queue,
    costs) but has no room; instance 1 has room and is loaded: every router picks 1."""
    prof = toy()
    waiting = np.array([0, 0], np.int64)
    running = np.array([1, 3], np.int64)
    kv = np.array([300.0, 1200.0])
    if full == "waiting":
        waiting[0] = 1
    elif full == "batch":
        running[0] = prof.max_batch
    else:
        kv[0] = prof.kv_tokens - 100
    view = PoolView(0.0, waiting, running, kv, np.array([10.0, 5000.0]), np.zeros(2))
    for r in routers(prof):
        assert list(r.route(one(), view)) == [1], type(r).__name__


def test_no_room_anywhere_still_routes_by_policy() -> None:
    prof = toy()
    view = PoolView(
        0.0,
        np.array([2, 1], np.int64),
        np.array([4, 4], np.int64),
        np.zeros(2),
        np.array([900.0, 100.0]),
    )
    z = np.zeros(2, np.int64)
    two = Arrivals(np.arange(2), np.zeros(2), np.array([900, 100]), np.full(2, 10), z, z)
    # least-tokens: its own outstanding tokens (the first request makes instance 0 the fuller)
    assert list(LeastTokens(prof, constant_estimate(10.0)).route(two, view)) == [0, 1]
    assert list(JoinShortestQueue(prof, constant_estimate(10.0)).route(one(), view)) == [1]


def test_routers_do_not_read_the_true_output() -> None:
    """Same arrivals with different true outputs: the same decisions (fresh routers each:
    a router remembers the estimates it sent)."""
    prof = toy()
    view = PoolView(0.0, np.zeros(3, np.int64), np.array([1, 2, 0]), np.zeros(3), np.zeros(3))
    z = np.zeros(5, np.int64)
    a = Arrivals(np.arange(5), np.zeros(5), np.full(5, 300), np.full(5, 10), z, z)
    b = Arrivals(np.arange(5), np.zeros(5), np.full(5, 300), np.full(5, 5000), z, z)
    for ra, rb in zip(routers(prof), routers(prof), strict=True):
        assert list(ra.route(a, view)) == list(rb.route(b, view))


def test_within_an_epoch_the_ledger_spreads_a_burst() -> None:
    prof = toy(max_batch=8)
    view = PoolView(0.0, np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros(4), np.zeros(4))
    z = np.zeros(4, np.int64)
    burst = Arrivals(np.arange(4), np.zeros(4), np.full(4, 100), np.full(4, 50), z, z)
    for r in routers(prof):
        assert sorted(r.route(burst, view)) == [0, 1, 2, 3]


def test_chunked_prefill_is_priced_by_chunks_not_as_a_pause_of_the_batch() -> None:
    """Toy profile: prefill_s(512) = 102.4 ms, prefill_s(112) = 22.4 ms, prefill_s(88) =
    17.6 ms (below the first knot), decode_s(12) = 16 ms; token budget 512.

    * 1,000 tokens beside 12 decoders: 2 iterations of 500 chunk tokens + 12 decodes, 102.4 ms
      each (204.8 ms); each decoder loses 2 × (102.4 − 16) = 172.8 ms;
    * 600 tokens beside 12: 500 + 100 → 102.4 + 22.4 = 124.8 ms, each decoder loses 92.8 ms;
    * 600 tokens alone: 512 + 88 → 102.4 + 17.6 = 120 ms."""
    prof = toy(max_batch=16)
    t, extra = chunked_s(prof, np.array([1000.0, 600.0, 600.0]), np.array([12.0, 12.0, 0.0]))
    assert t * 1000 == pytest.approx([204.8, 124.8, 120.0])
    assert extra * 1000 == pytest.approx([172.8, 92.8, 120.0])
    # the heuristic's stall: the decoders' loss, below "the batch waits for the whole prefill"
    running = np.array([12.0, 0.0])
    view = PoolView(0.0, np.zeros(2, np.int64), running.astype(np.int64), np.zeros(2), np.zeros(2))
    router = LinearMix(prof, constant_estimate(100.0))
    phi = mix_features(prof, _Ledger.of(view, np.zeros(2)), 1000.0, 100.0, 100.0)
    stall = phi[:, FEATURES.index("stall")]
    assert stall[0] == pytest.approx(12 * 0.1728) and stall[1] == 0.0
    assert stall[0] < 12 * float(prof.prefill_s(1000.0))
    assert list(router.route(one(1000), view)) == [1]


def test_predicted_decode_memory_holds_estimates_and_drains_with_the_batch() -> None:
    """The router's memory of the decode it sent: the estimates (never the true outputs),
    drained at one token per running request per decode iteration; empty instances forget."""
    prof = toy(max_batch=8)
    router = LinearMix(prof, constant_estimate(100.0))
    idle = PoolView(0.0, np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(2), np.zeros(2))
    z = np.zeros(2, np.int64)
    router.route(Arrivals(np.arange(2), np.zeros(2), np.full(2, 50), np.full(2, 7), z, z), idle)
    assert list(router._pred) == [100.0, 100.0]  # type: ignore[arg-type]
    # 0.1 s later: instance 0 runs one request (10 ms per decode: 10 tokens), instance 1 empty
    later = PoolView(0.1, np.zeros(2, np.int64), np.array([1, 0]), np.zeros(2), np.zeros(2))
    router.route(Arrivals(z[:0], np.zeros(0), z[:0], z[:0], z[:0], z[:0]), later)
    assert router._pred is not None
    assert router._pred[0] == pytest.approx(90.0) and router._pred[1] == 0.0


def _rows(n: int, seed: int) -> pd.DataFrame:
    """Tenant a answers short, tenant b long; input tokens say nothing."""
    rng = np.random.default_rng(seed)
    tenant = rng.choice(["a", "b"], n)
    out = np.where(tenant == "a", rng.integers(5, 60, n), rng.integers(300, 900, n))
    return pd.DataFrame(
        {
            "arrival_time": pd.Timestamp("2024-06-03") + pd.to_timedelta(np.arange(n), unit="s"),
            "input_tokens": rng.integers(10, 2000, n),
            "output_tokens": out,
            "tenant": tenant,
            "model": "m",
            "tier": rng.choice(["IW-F", "NIW"], n),
        }
    )


def test_predictor_scored_only_on_rows_it_never_saw() -> None:
    rows = _rows(2000, 0)
    early = rows["arrival_time"] < rows["arrival_time"].quantile(0.75)
    train, test = rows[early], rows[~early]
    assert len(test) == 500
    assert train["arrival_time"].max() < test["arrival_time"].min()
    assert not set(train.index) & set(test.index)
    pred = length.fit(train, seed=0, max_iter=20)
    assert pred.trained_rows == len(train)
    s = length.score(pred, train, test)
    assert s.test_rows == 500 and sum(s.rows) == 500
    # the tenant carries the bucket: far better than the majority bucket
    assert s.overall > 0.95 > s.majority_baseline + 0.3
    assert s.accuracy[0] > 0.95 and s.accuracy[2] > 0.95


def test_predictor_unseen_tenant_is_missing_not_an_error() -> None:
    rows = _rows(500, 1)
    pred = length.fit(rows, seed=0, max_iter=10)
    new = rows.head(3).assign(tenant="never-seen")
    assert pred.expected_output(new).shape == (3,)


def _traces(seed: int) -> list[learn_router.Trace]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        n = 300
        prompt = rng.integers(50, 900, n)
        output = rng.integers(5, 200, n)
        arr = np.sort(rng.uniform(0, 12.0, n))
        out.append(learn_router.Trace(Requests(arr, prompt, output), output * 0.8 + 10))
    return out


def test_training_reproducible_from_its_seed_and_never_worse_than_the_heuristic(
    tmp_path: Path,
) -> None:
    prof = toy(max_batch=8, kv_tokens=20_000)
    s = learn_router.SearchSettings(rounds=2, population=4, elite=2, seed=3)
    a = learn_router.learn(_traces(0), prof, 3, 100.0, s)
    b = learn_router.learn(_traces(0), prof, 3, 100.0, s)
    assert a == b
    assert a.train_mean_e2e_s <= a.heuristic_train_mean_e2e_s
    c = learn_router.learn(_traces(0), prof, 3, 100.0, learn_router.SearchSettings(2, 4, 2, seed=4))
    assert c.config_hash != a.config_hash
    path = learn_router.save(a, tmp_path / "routers" / "r.json")
    assert learn_router.load(path) == a
    routed = simulate_instances(
        _traces(0)[0].requests,
        prof,
        3,
        learn_router.load(path).router(prof, constant_estimate(100.0)),
    )
    assert np.isfinite(routed.e2e_s).all()


def test_artifact_of_another_version_is_refused(tmp_path: Path) -> None:
    prof = toy()
    s = learn_router.SearchSettings(rounds=1, population=2, elite=1)
    p = learn_router.save(learn_router.learn(_traces(1), prof, 2, 100.0, s), tmp_path / "r.json")
    v = learn_router.ARTIFACT_VERSION
    p.write_text(p.read_text().replace(f'"version": {v}', '"version": 99'))
    with pytest.raises(ValueError, match="version 99"):
        learn_router.load(p)
    with pytest.raises(FileNotFoundError, match="train it first"):
        learn_router.load(tmp_path / "missing.json")


def test_an_improvement_that_fails_validation_ships_the_heuristic() -> None:
    """Validated on its own training traces, the search's best is kept exactly when it beat the
    heuristic there; otherwise the policy is the heuristic's weights."""
    prof = toy(max_batch=8, kv_tokens=20_000)
    s = learn_router.SearchSettings(rounds=2, population=4, elite=2, seed=3)
    tr = _traces(0)
    p = learn_router.learn(tr, prof, 3, 100.0, s, validation=tr)
    improved = p.train_mean_e2e_s < p.heuristic_train_mean_e2e_s
    assert p.heuristic_validation_mean_e2e_s == pytest.approx(p.heuristic_train_mean_e2e_s)
    assert p.validation_mean_e2e_s == pytest.approx(p.train_mean_e2e_s)
    assert p.kept_heuristic is (not improved)
    assert (p.weights == list(HEURISTIC_WEIGHTS)) is (not improved)


def test_ceiling_is_the_modal_bucket_per_tenant_and_window() -> None:
    """Tenant a, first 6 h: buckets 0, 0, 1 (modal 0: 2 of 3 right); next window: 1, 1
    (both right); tenant b: 3 alone (right). 5 of 6 overall; bucket 1: 2 of 3."""
    t0 = pd.Timestamp("2024-06-03")
    rows = pd.DataFrame(
        {
            "arrival_time": [t0 + pd.Timedelta(hours=h) for h in (0, 1, 2, 7, 8, 0)],
            "tenant": ["a", "a", "a", "a", "a", "b"],
            "output_tokens": [10, 20, 100, 70, 80, 5000],
        }
    )
    overall, per = length.ceiling(rows)
    assert overall == pytest.approx(5 / 6)
    assert per[0] == 1.0 and per[1] == pytest.approx(2 / 3) and per[3] == 1.0
    assert np.isnan(per[2])


def test_view_reports_the_prefill_under_way() -> None:
    """A 1,200-token prompt on instance 0 (toy: budget 512, prefill_s(512) = 102.4 ms): the
    router polled at 0.01 s sees 688 tokens left (the first chunk's iteration runs to 0.1024 s),
    at 0.11 s 176; small requests to instance 1 make the router be called."""
    seen: list[tuple[float, float]] = []

    class Recorder:
        epoch_s = 0.01

        def route(self, arrivals: Arrivals, view: PoolView) -> np.ndarray:
            seen.append((view.time_s, float(view.prefill_left[0])))
            return np.where(arrivals.prompt > 1000, 0, 1).astype(np.int64)

    req = Requests(np.array([0.0, 0.01, 0.11]), np.array([1200, 10, 10]), np.array([5, 5, 5]))
    simulate_instances(req, toy(), 2, Recorder())
    assert seen[0] == (0.0, 0.0)
    assert seen[1][1] == 688.0 and seen[2][1] == 176.0


def test_least_tokens_counts_requests_in_flight_until_they_end() -> None:
    """Request 0 goes to instance 0 (a tie: the first); while it is in flight the next goes
    to instance 1; once the view reports it ended, instance 0 is empty again."""
    prof = toy(max_batch=8)
    z = np.zeros(1, np.int64)

    def arrival(i: int) -> Arrivals:
        return Arrivals(np.array([i]), np.zeros(1), np.array([300]), np.array([10]), z, z)

    def view(t: float, ended: list[int]) -> PoolView:
        zero = np.zeros(2, np.int64)
        return PoolView(t, zero, zero, np.zeros(2), np.zeros(2), ended=np.array(ended, np.int64))

    r = LeastTokens(prof, constant_estimate(100.0))
    assert list(r.route(arrival(0), view(0.0, []))) == [0]
    assert list(r.route(arrival(1), view(0.25, []))) == [1]
    assert list(r.route(arrival(2), view(0.5, [0]))) == [0]
