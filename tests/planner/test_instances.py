"""The iteration-level instance model on batches small enough to compute by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from planner.config import load_config
from planner.config.throughput import batch_curve, read_profile
from planner.sim.instances import Requests, simulate_instances
from planner.sim.iteration_tables import timing
from planner.sim.profile import InstanceProfile, instance_profile, profiles_for_config
from planner.sim.routing import REJECT, Arrivals, PoolView

PERF = Path(__file__).resolve().parents[2].parent / "shared/data/sageserve_perf"
PERF_CSV = PERF / "perf_model_4_models.csv"


def toy(
    max_batch: int = 2,
    kv_tokens: float = 10_000.0,
    token_budget: int = 512,
    decode_ms: tuple[float, float] = (10.0, 20.0),
) -> InstanceProfile:
    """A forward pass over T tokens takes T ms (the line through the knots, extended below
    the first); decode 10 ms at batch 1, 20 ms at batch 2."""
    return InstanceProfile(
        name="toy",
        prefill_tokens=np.array([100.0, 200.0]),
        prefill_ms=np.array([100.0, 200.0]),
        decode_batch=np.array([1.0, 2.0]),
        decode_ms=np.array(decode_ms),
        context_tokens=np.array([1.0, 10_000.0]),
        context_factor=np.array([1.0, 1.0]),
        max_batch=max_batch,
        kv_tokens=kv_tokens,
        token_budget=token_budget,
    )


def two(arrival_b: float = 0.05) -> Requests:
    return Requests(np.array([0.0, arrival_b]), np.array([100, 100]), np.array([3, 2]))


def test_two_requests_one_instance_by_hand() -> None:
    """A: prefill 0→0.1 (first token). B arrived at 0.05: at 0.1 one mixed iteration of B's
    100 prompt tokens and A's decode, max(prefill 101 tokens, decode b=1) = 0.101 s → 0.201
    (A's second token, B's first). Decode at batch 2 (20 ms): 0.201→0.221, both last."""
    s = simulate_instances(two(), toy(), 1)
    assert s.first_token_s == pytest.approx([0.1, 0.201])
    assert s.finish_s == pytest.approx([0.221, 0.221])
    assert s.ttft_s == pytest.approx([0.1, 0.151])
    assert s.tpot_s == pytest.approx([0.0605, 0.02])


def test_two_requests_round_robin_on_two_instances() -> None:
    """Each alone on its instance: A 0→0.1 prefill, two 10 ms decodes → 0.12; B 0.05→0.15,
    one decode → 0.16."""
    s = simulate_instances(two(), toy(), 2)
    assert list(s.instance) == [0, 1]
    assert s.first_token_s == pytest.approx([0.1, 0.15])
    assert s.finish_s == pytest.approx([0.12, 0.16])


def test_arrival_at_an_iteration_boundary_joins_it() -> None:
    s = simulate_instances(two(arrival_b=0.1), toy(), 1)
    assert s.first_token_s == pytest.approx([0.1, 0.201])
    # arriving just after the boundary misses that iteration and joins the next one
    late = simulate_instances(two(arrival_b=0.1001), toy(), 1)
    assert late.first_token_s[1] == pytest.approx(0.211)  # after A's first decode (10 ms)


def test_long_prompt_is_chunked_while_a_decode_continues() -> None:
    """Budget 100 tokens. A (50 prompt, 4 output) prefills 0→0.05, decodes one token alone
    0.05→0.06. B (250 prompt, 2 output) arrived at 0.055: from 0.06 three iterations of 99 +
    99 + 52 chunk tokens; the first two carry A's decodes (max(100 tokens, decode b=1) = 0.1
    s each: A's last token at 0.26), the third is B's alone (52 tokens: 0.052 s, B's first
    token at 0.312); B's last decode 0.312→0.322. Unchunked, B's 250-token prefill would
    have stalled A for 0.25 s."""
    req = Requests(np.array([0.0, 0.055]), np.array([50, 250]), np.array([4, 2]))
    s = simulate_instances(req, toy(token_budget=100), 1)
    assert s.first_token_s == pytest.approx([0.05, 0.312])
    assert s.finish_s == pytest.approx([0.26, 0.322])
    assert s.tpot_s[0] == pytest.approx(0.07)


def test_mixed_iteration_takes_the_slower_regime() -> None:
    """Decode 150 ms at batch 1: A (10 prompt, 3 output) prefills 0→0.01; B (20 prompt, 1
    output, arrived 0.005) joins at 0.01 with A's decode: max(prefill 21 tokens = 0.021 s,
    decode b=1 = 0.15 s) = 0.15 s → B's only token at 0.16; A decodes alone to 0.31."""
    req = Requests(np.array([0.0, 0.005]), np.array([10, 20]), np.array([3, 1]))
    s = simulate_instances(req, toy(decode_ms=(150.0, 300.0)), 1)
    assert s.first_token_s == pytest.approx([0.01, 0.16])
    assert s.finish_s == pytest.approx([0.31, 0.16])


def test_runs_of_iterations_change_nothing() -> None:
    """Runs of identical iterations are a speed-up, not a model: a round-robin router that
    cuts every run at 3-ms epochs gives the same times as one open-loop call."""
    from planner.sim.routing import RoundRobin

    rng = np.random.default_rng(4)
    n = 300
    req = Requests(np.sort(rng.uniform(0, 3, n)), rng.integers(20, 900, n), rng.integers(1, 60, n))
    prof = toy(max_batch=8, token_budget=128)
    whole = simulate_instances(req, prof, 3)
    cut = simulate_instances(req, prof, 3, RoundRobin(epoch_s=0.003))
    assert cut.steps > whole.steps
    assert cut.first_token_s == pytest.approx(whole.first_token_s, abs=1e-9)
    assert cut.finish_s == pytest.approx(whole.finish_s, abs=1e-9)


def test_batch_cap_serialises() -> None:
    """max_batch 1: B waits for A to finish (0.1 + 2 × 10 ms), then prefill + one decode."""
    s = simulate_instances(two(), toy(max_batch=1), 1)
    assert s.first_token_s == pytest.approx([0.1, 0.22])
    assert s.finish_s == pytest.approx([0.12, 0.23])


def test_kv_limit_holds_the_second_request_back() -> None:
    """A reserves 103 tokens, B 102; with 150 KV tokens B is admitted only after A leaves."""
    s = simulate_instances(two(), toy(kv_tokens=150.0), 1)
    assert s.finish_s[0] == pytest.approx(0.12)
    assert s.first_token_s[1] == pytest.approx(0.22)
    too_big = Requests(np.array([0.0]), np.array([200]), np.array([10]))
    rejected = simulate_instances(too_big, toy(kv_tokens=150.0), 1)
    assert rejected.instance[0] == REJECT and np.isinf(rejected.finish_s[0])


def test_kv_limit_respected_under_load() -> None:
    """Random heavy traffic on a small cache: at every first-token instant, the KV reserved
    by requests between their first and last token never exceeds the cache (a subset of
    their residency, so the bound must hold), and the cache is actually the binding limit."""
    rng = np.random.default_rng(5)
    n = 400
    req = Requests(np.sort(rng.uniform(0, 5, n)), rng.integers(50, 400, n), rng.integers(5, 60, n))
    prof = toy(max_batch=64, kv_tokens=1500.0)
    s = simulate_instances(req, prof, 2)
    assert np.isfinite(s.finish_s).all()
    need = (req.prompt + req.output).astype(float)
    for i in range(2):
        on = s.instance == i
        f, e, w = s.first_token_s[on], s.finish_s[on], need[on]
        held = ((f[None, :] <= f[:, None]) & (e[None, :] > f[:, None])) @ w
        assert held.max() <= prof.kv_tokens
        assert held.max() > 0.7 * prof.kv_tokens  # the limit bites


def test_fifo_and_every_request_served_once() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    arr = np.sort(rng.exponential(0.02, n).cumsum())
    req = Requests(arr, rng.integers(20, 300, n), rng.integers(1, 80, n))
    s = simulate_instances(req, toy(max_batch=8), 3)
    assert np.isfinite(s.finish_s).all()
    assert (s.first_token_s >= arr).all() and (s.finish_s >= s.first_token_s).all()
    for i in range(3):  # FIFO per instance: first tokens in arrival order
        f = s.first_token_s[s.instance == i]
        assert (np.diff(f) >= 0).all()


class _Shortest:
    """Join-the-shortest-queue every 50 ms: proves the router interface carries state."""

    epoch_s = 0.05

    def __init__(self) -> None:
        self.views: list[PoolView] = []

    def route(self, arrivals: Arrivals, view: PoolView) -> np.ndarray:
        self.views.append(view)
        load = view.outstanding_tokens.copy()
        out = np.empty(len(arrivals.index), np.int64)
        for j in range(len(out)):
            out[j] = int(np.argmin(load))
            load[out[j]] += arrivals.prompt[j] + arrivals.output[j]
        return out


def test_load_aware_router_sees_the_pool() -> None:
    rng = np.random.default_rng(3)
    n = 600
    arr = np.sort(rng.uniform(0, 6, n))
    req = Requests(arr, rng.integers(20, 300, n), rng.integers(1, 80, n))
    router = _Shortest()
    s = simulate_instances(req, toy(max_batch=8), 3, router)
    assert np.isfinite(s.finish_s).all()
    assert len(router.views) > 50
    assert any(v.running.sum() > 0 for v in router.views)


@pytest.mark.skipif(not PERF_CSV.exists(), reason="shared perf profile not present")
def test_profile_matches_the_throughput_derivation() -> None:
    """The instance profile uses the throughput module's converted curve: at 512-token
    prompts its decode knots are the curve's tpot, and its best decode rate is the profile's
    max b / tpot(b) (877.4 tokens/s for Llama2-70B on A100 TP4, as in the default config)."""
    profile = read_profile(PERF_CSV)
    prof = instance_profile(profile, "A", "a100-80gb", 4, 80.0, 140.0)
    curve = batch_curve(profile, "A", "a100-80gb", 4)
    assert prof.decode_ms == pytest.approx(np.maximum.accumulate(curve["tpot_ms"].to_numpy()))
    assert prof.decode_tokens_per_s == pytest.approx(877.4, abs=0.5)
    # KV: (4 × 80 × 0.9 − 140) GB over 327,680 bytes per token
    assert prof.kv_tokens == pytest.approx(148e9 / 327_680)
    assert (np.diff(prof.prefill_ms) >= 0).all()
    profs = profiles_for_config(load_config(), PERF_CSV)
    assert set(profs) >= {("llama2-70b", "a100x8"), ("llama3.2-3b", "h100x8")}


class _TenantGate:
    """Admission per tenant: tenant 1 is turned away, the rest round-robin."""

    epoch_s = float("inf")

    def route(self, arrivals: Arrivals, view: PoolView) -> np.ndarray:
        rr = np.arange(len(arrivals.index)) % len(view.waiting)
        return np.where(arrivals.tenant == 1, REJECT, rr)


def test_router_can_reject_per_tenant() -> None:
    req = Requests(
        np.array([0.0, 0.01, 0.02]),
        np.array([100, 100, 100]),
        np.array([2, 2, 2]),
        tenant=np.array([0, 1, 0]),
    )
    s = simulate_instances(req, toy(), 2, _TenantGate())
    assert list(s.instance) == [0, REJECT, 0]
    assert np.isinf(s.finish_s[1]) and np.isfinite(s.finish_s[[0, 2]]).all()


def test_context_window_refuses_longer_requests_and_fit_context_clips() -> None:
    """A 100 + 3-token request on a 102-token window is refused (never served, as vLLM
    refuses prompts beyond max_model_len); the other is served as by hand. ``fit_context``
    keeps the output (at most half the window) and the most recent prompt tokens."""
    from dataclasses import replace

    from planner.sim.profile import fit_context

    s = simulate_instances(two(), replace(toy(), max_context=102), 1)
    assert s.instance[0] == REJECT and np.isinf(s.first_token_s[0])
    assert s.first_token_s[1] == pytest.approx(0.15)  # B alone: prefill 0.05→0.15
    prompt, output = fit_context(np.array([5000, 100, 10]), np.array([100, 3000, 5]), 4096)
    assert prompt.tolist() == [3996, 100, 10] and output.tolist() == [100, 2048, 5]
    assert (
        profiles_for_config(load_config(), PERF_CSV)[("llama2-70b", "a100x8")].max_context == 4096
    )


class _Recorder:
    """Sends everything to instance 0 every 50 ms and keeps the views it was shown."""

    epoch_s = 0.05

    def __init__(self) -> None:
        self.views: list[PoolView] = []

    def route(self, arrivals: Arrivals, view: PoolView) -> np.ndarray:
        self.views.append(view)
        return np.zeros(len(arrivals.index), np.int64)


def test_the_pool_view_shows_no_output_still_to_come() -> None:
    """Two traces differing only in their true outputs (50–70 vs 500–700 tokens): until the
    first request of the short trace finishes, every view a router gets is the same (KV held,
    prompt tokens left: nothing a server cannot know), and the KV held grows as tokens are
    generated, below the short trace's whole reservation."""
    arrival, prompt = np.array([0.0, 0.01, 0.02, 0.26, 0.46, 0.66]), np.full(6, 100)
    short = Requests(arrival, prompt, np.array([50, 60, 70, 80, 90, 100]))
    long = Requests(arrival, prompt, short.output * 10)
    seen = []
    for req in (short, long):
        rec = _Recorder()
        s = simulate_instances(req, toy(max_batch=8), 1, rec)
        seen.append(rec.views)
        if req is short:
            until = float(s.finish_s.min())
    for a, b in zip(*seen, strict=False):
        if a.time_s >= until:
            break
        for f in ("waiting", "running", "kv_used", "outstanding_tokens", "prefill_left"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), (a.time_s, f)
    held = [float(v.kv_used[0]) for v in seen[0] if 0.3 <= v.time_s < until]
    assert len(held) >= 2 and held[-1] > held[0]
    assert max(held) < (prompt + short.output).sum()


def test_the_loop_charges_the_profiles_own_iteration_times() -> None:
    """The compiled loop reads tables made by the profile's own methods: prefill seconds at
    every token count an iteration can carry, decode ms at every batch size. A whole-prefill
    profile's budget is its context window (2**30 tokens here): its table stops at a full
    batch of the longest request instead."""
    prof = toy(max_batch=4)
    m = timing(prof, longest=300)
    tokens = np.arange(prof.token_budget + 1, dtype=float)
    assert np.array_equal(m.prefill_s, prof.prefill_s(tokens))
    assert np.array_equal(m.decode_ms, prof.decode_base_ms(np.arange(5.0)))
    assert prof.decode_s(2, 700.0) == pytest.approx(m.decode_ms[2] / 1000.0)
    whole = timing(prof.whole_prefill(), longest=300)
    assert prof.whole_prefill().token_budget == 1 << 30
    assert len(whole.prefill_s) == 4 * 301 + 1
