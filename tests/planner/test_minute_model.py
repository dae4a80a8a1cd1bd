"""The per-minute latency model on hand-computed cases (a toy profile whose forward pass over T
tokens takes T ms and whose decode iteration takes 10 ms at any batch)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammainc

import planner.sim.minute_model as minute_model
from planner.sim.minute_model import (
    BURST_WINDOWS_S,
    MinuteState,
    burst_at,
    local_gap_cv2,
    minute_state,
    tier_attainment,
    tpot_ok,
)
from planner.sim.pool import minute_burst
from planner.sim.profile import InstanceProfile
from planner.sim.size_mix import MinuteMix, SizeBins, bin_points, minute_mix

BUDGET = 100


def flat() -> InstanceProfile:
    """prefill_s(T) = T ms (any T), decode_s(D) = 10 ms, budget 100 tokens, batch 64."""
    return InstanceProfile(
        name="flat",
        prefill_tokens=np.array([100.0, 200.0]),
        prefill_ms=np.array([100.0, 200.0]),
        decode_batch=np.array([1.0, 64.0]),
        decode_ms=np.array([10.0, 10.0]),
        context_tokens=np.array([1.0, 10_000.0]),
        context_factor=np.array([1.0, 1.0]),
        max_batch=64,
        kv_tokens=1e9,
        token_budget=BUDGET,
    )


def one_minute(prompt: list[int], output: list[int], bins: SizeBins, tiers: int = 1) -> MinuteMix:
    n = len(prompt)
    return minute_mix(np.zeros(n, np.int64), np.zeros(n, np.int64), prompt, output, 1, tiers, bins)


def test_bin_points_keep_the_bin_mean() -> None:
    """A bin [200, 300) whose mean is its middle: uniform weights at 212.5 … 287.5; a mean of
    262.5 tilts the weights to 1 + 0.8 z (z = ±0.25, ±0.75: 12.5 / (50 · 0.3125) = 0.8) so
    that the points keep the mean 262.5."""
    x, w = bin_points(np.array([[250.0, 0.0]]), np.array([[1.0, 0.0]]), (200, 300))
    assert x[0, 0] == pytest.approx([212.5, 237.5, 262.5, 287.5])
    assert w[0, 0] == pytest.approx([0.25] * 4)
    x, w = bin_points(np.array([[262.5, 0.0]]), np.array([[1.0, 0.0]]), (200, 300))
    assert float((x[0, 0] * w[0, 0]).sum()) == pytest.approx(262.5)


def test_a_lone_request_ttft_and_tpot_by_hand() -> None:
    """Almost no load (τ = 10 ms, no queue). Prompts in [200, 300) with mean 250 sit at
    212.5 … 287.5 tokens: two full 100-token chunks (100 ms each) and the rest (p − 200 ms),
    so the prefill takes p ms and TTFT = p ms + half an iteration (5 ms): 217.5 … 292.5 ms.
    A 0.25-s target is met by half of them, 0.3 s by all, 0.2 s by none. Outputs of 11
    tokens decode at 10 ms each: a 12-ms TPOT target is met, 9 ms is not."""
    bins = SizeBins(prompt_edges=(1, 200, 300), output_edges=(1, 2, 11, 12))
    mix = one_minute([250, 250], [11, 11], bins)
    rate = np.array([1e-6])
    cv = np.array([1.0])
    got = [
        float(
            tier_attainment(flat(), rate, mix, cv, np.array([t]), np.array([0.012]), bins=bins)[
                0, 0
            ]
        )
        for t in (0.2, 0.25, 0.3)
    ]
    assert got == pytest.approx([0.0, 0.5, 1.0], abs=1e-6)
    slow = tier_attainment(flat(), rate, mix, cv, np.array([1.0]), np.array([0.009]), bins=bins)
    assert float(slow[0, 0]) == 0.0


def test_the_state_is_the_fixed_point_of_the_hand_equations() -> None:
    """Prompts of 50 tokens (points 42.5 … 57.5 of the bin [40, 60)), outputs of 11 (10
    decodes), λ = 10 requests/s. With D decoders a prompt p < 100 − D is one chunk: its
    iteration lasts p + D ms, so alone it adds p + D − 10 ms, and packed p · 90 / (100 − D) ms;
    its prefill S = p + D ms, ρ_p = λ E[S]. Then E[cost] = (1 − ρ_p) E[p + D − 10] + ρ_p · 90
    E[p] / (100 − D), τ = 10 ms / (1 − λ E[cost]) and D = λ · 10 · τ."""
    bins = SizeBins(prompt_edges=(1, 40, 60), output_edges=(1, 2, 10, 12))
    mix = one_minute([50] * 4, [11] * 4, bins)
    lam = 10.0
    s = minute_state(flat(), np.array([lam]), mix, bins, steps=200)
    batch, tau = float(s.decode_batch[0]), float(s.iteration_s[0])
    rho = lam * (50.0 + batch) / 1000.0
    cost = ((1 - rho) * (50.0 + batch - 10.0) + rho * 90.0 * 50.0 / (BUDGET - batch)) / 1000.0
    assert tau == pytest.approx(0.010 / (1.0 - lam * cost), rel=1e-6)
    assert batch == pytest.approx(lam * 10.0 * tau, rel=1e-6)
    assert float(s.backlog[0]) == pytest.approx(rho, rel=1e-6)
    # the prompt queue in token time: a prompt holds it for p · prefill_s(B) / (B − D)
    assert float(s.pool_prefill[0, 0]) == pytest.approx(50.0 * 0.1 / (BUDGET - batch), rel=1e-6)
    assert batch > 1.0 and rho > 0.5  # a real load: not the trivial fixed point


def test_attainment_falls_with_load_and_follows_the_tier_mix() -> None:
    """More load: slower iterations and longer queues, never better. At the same load, a
    tier of one-token outputs (no TPOT) does better than one of long outputs."""
    bins = SizeBins()
    rng = np.random.default_rng(0)
    prompt = rng.integers(50, 2000, 400)
    output = np.where(np.arange(400) % 2 == 0, 1, rng.integers(50, 500, 400))
    tier = (np.arange(400) % 2).astype(np.int64)
    mix = minute_mix(np.zeros(400, np.int64), tier, prompt, output, 1, 2, bins)
    ttft, tpot = np.array([1.0, 1.0]), np.array([0.015, 0.015])
    shares = np.array(
        [
            tier_attainment(flat(), np.array([lam]), mix, np.array([1.0]), ttft, tpot)[0]
            for lam in (0.5, 1.0, 2.0, 3.0)
        ]
    )
    assert (np.diff(shares, axis=0) <= 1e-9).all(), shares
    assert shares[-1, 1] < shares[0, 1]
    assert (shares[:, 0] > shares[:, 1]).all()


def test_minute_burst_by_hand() -> None:
    """Minute 0: 600 arrivals evenly over its first 30 s, none in the last 30. Over 1-s
    windows the counts are 20 (30 windows) and 0 (30): mean 10, sample variance 100 · 60/59,
    so v = 60/59 − 1/10 (the Poisson part 1/mean removed); over 10-s windows 200 (3) and 0
    (3): v = 1.2 − 1/100. Minute 1, one arrival every 0.1 s: no variance beyond Poisson (0)."""
    t = np.r_[np.arange(600) * 0.05, 60.0 + np.arange(600) * 0.1]
    v = minute_burst(t, 2)
    assert BURST_WINDOWS_S[0] == 1.0 and BURST_WINDOWS_S[-1] == 10.0
    assert v[0, 0] == pytest.approx(60 / 59 - 0.1)
    assert v[0, -1] == pytest.approx(1.2 - 0.01)
    assert v[1] == pytest.approx(np.zeros(len(BURST_WINDOWS_S)))


def test_burst_at_interpolates_in_log_span() -> None:
    v = np.array([[0.4, 0.2, 0.1, 0.05]])  # at 1, 2, 5, 10 s
    got = burst_at(v, np.array([[0.5, 1.0, np.sqrt(2.0), 2.0, 10.0, 60.0]]))
    assert got[0] == pytest.approx([0.4, 0.4, 0.3, 0.2, 0.05, 0.05])


def test_bursts_over_disperse_the_prompts_a_request_decodes_beside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a local-rate variance v at every window, the count of prompts arriving over a
    request's decodes (m expected) has variance m c₀² + m² v, c₀² = (c² − v) / (1 + v) the
    gaps' squared CV at the local rate (the measured c² already holds v once): the same TPOT
    share as gaps of squared CV c₀² + m v (no backlog term, so the CV enters nowhere else).
    c = 0.8, v = 0.3: c₀² = 0.34 / 1.3. The old count, c² + m v, held v twice, and gives
    another share here."""
    monkeypatch.setattr(minute_model, "BACKLOG_WEIGHT", 0.0)
    bins = SizeBins(prompt_edges=(1, 40, 60), output_edges=(1, 2, 10, 12))
    mix = one_minute([50] * 4, [11] * 4, bins)
    rate, cv, v = np.array([10.0]), np.array([0.8]), 0.3
    s = minute_state(flat(), rate, mix, bins)
    out = np.array([[11.0]])
    burst = np.full((1, len(BURST_WINDOWS_S)), v)
    got = tpot_ok(flat(), s, rate, cv, out, 0.014, burst)
    m = 10.0 * 10.0 * float(s.iteration_s[0])
    same = tpot_ok(flat(), s, rate, np.sqrt(np.array([(0.64 - v) / (1 + v) + m * v])), out, 0.014)
    twice = tpot_ok(flat(), s, rate, np.sqrt(cv**2 + m * v), out, 0.014)
    assert float(got[0, 0]) == pytest.approx(float(same[0, 0]), rel=1e-9)
    assert abs(float(got[0, 0]) - float(twice[0, 0])) > 1e-3  # 0.240 vs 0.244
    assert 0.0 < float(got[0, 0]) < 1.0


def test_the_count_reads_v_at_the_instance_gap_and_at_the_request_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Local-rate variance that differs by window: the gaps' c₀² reads v at one instance's gap
    (λ = 0.5/s: 2 s, v = 0.2), the count's m² v term at the request's decode span (n τ). A
    call site reading v at the pool's rate, or m v at the gap, gives another share."""
    monkeypatch.setattr(minute_model, "BACKLOG_WEIGHT", 0.0)
    bins = SizeBins(prompt_edges=(1, 40, 60), output_edges=(1, 2, 10, 12))
    mix = one_minute([50] * 4, [11] * 4, bins)
    rate, cv = np.array([0.5]), np.array([0.8])
    s = minute_state(flat(), rate, mix, bins)
    burst = np.array([[0.4, 0.2, 0.1, 0.05]])  # at 1, 2, 5, 10 s
    out = np.array([[11.0]])
    span = 10.0 * float(s.iteration_s[0])
    v_span = float(burst_at(burst, np.array([[span]]))[0, 0])
    got = tpot_ok(flat(), s, rate, cv, out, 0.014, burst)
    c2 = (0.64 - 0.2) / 1.2 + 0.5 * span * v_span
    same = tpot_ok(flat(), s, rate, np.sqrt(np.array([c2])), out, 0.014)
    assert float(got[0, 0]) == pytest.approx(float(same[0, 0]), rel=1e-9)


def test_local_gap_cv2_removes_the_local_rate_at_the_gaps_span() -> None:
    """c₀² = (c² − v(1/λ)) / (1 + v(1/λ)), v read at the gap's own span (held below 1 s):
    λ = 4/s reads v(1 s) = 0.4, λ = 0.5/s reads v(2 s) = 0.2; a minute whose gap CV is all
    local-rate variation (c² ≤ v) keeps the floor 1e-6."""
    burst = np.array([[0.4, 0.2, 0.1, 0.05]] * 3)  # at 1, 2, 5, 10 s
    c2 = np.array([[0.64], [0.64], [0.3]])
    got = local_gap_cv2(c2, burst, np.array([[4.0], [0.5], [4.0]]))
    assert got[:, 0] == pytest.approx([0.24 / 1.4, 0.44 / 1.2, 1e-6])


def test_arrivals_cost_by_hand_at_several_levels() -> None:
    """Every prompt costs 10 ms and the gaps are exponential (c² = 1): X = 10 ms × J, J
    Poisson. m = 3 prompts expected: P(X ≤ 25 ms) = P(J ≤ 2) = e⁻³ (1 + 3 + 4.5), P(X ≤ 0) =
    e⁻³. m = 12 (> MANY): one Gamma of mean 12 e, variance 12 e², P(X ≤ y) = P(Γ(12) ≤ y / e).
    The levels of one (m, c²) come from one evaluation of the count's law."""
    costs, w = np.array([[0.01, 0.01]]), np.array([[0.5, 0.5]])
    ec, z = np.array([[0.01, 0.0001]]), np.zeros(1)
    state = MinuteState(z, z, z, z, z, ec, np.zeros((1, 2)), costs, w, z)
    m, c2 = np.array([[3.0, 12.0]]), np.ones((1, 2))
    y = np.array([[[0.025, 0.0], [0.1, 0.15]]])
    got = minute_model._arrivals_cdf(state, m, c2, y)
    assert got[0, 0] == pytest.approx([np.exp(-3) * 8.5, np.exp(-3)], rel=1e-9)
    assert got[0, 1] == pytest.approx([gammainc(12, 10.0), gammainc(12, 15.0)], rel=1e-9)
    alone = minute_model._arrivals_cdf(state, m, c2, y[..., 1:])
    assert alone[..., 0].tolist() == got[..., 1].tolist()


def test_arrivals_cost_is_a_probability_on_bursty_traffic() -> None:
    """c² = 16, m = 8: the count's tail J ≥ MANY_TERMS − 1 holds ~22 % of the mass. Far above
    any cost the prompts can reach, P(X ≤ y) is 1 exactly (it was 1 + the tail when the tail
    was counted in the law's last column and again as the many-prompt Gamma), and it never
    exceeds 1 at any level."""
    costs, w = np.array([[0.01, 0.01]]), np.array([[0.5, 0.5]])
    ec, z = np.array([[0.01, 0.0001]]), np.zeros(1)
    state = MinuteState(z, z, z, z, z, ec, np.zeros((1, 2)), costs, w, z)
    m, c2 = np.array([[8.0]]), np.array([[16.0]])
    y = np.array([[[0.005, 0.05, 0.2, 100.0]]])
    got = minute_model._arrivals_cdf(state, m, c2, y)[0, 0]
    assert got[-1] == pytest.approx(1.0, abs=1e-9)
    assert np.all(got <= 1.0 + 1e-12) and np.all(np.diff(got) >= 0)


def test_arrivals_cost_below_zero_is_impossible() -> None:
    """X ≥ 0, so P(X ≤ y) = 0 for y < 0, at any count: a request whose queued backlog alone
    exceeds its slack cannot meet its TPOT. (The levels were once clipped to 0, which left
    such a request P(J = 0): e⁻³ here, and 0.89 for IW-F's shortest outputs on the bench
    trace at utilisation 0.7.) At y = 0 it is P(J = 0) = e⁻³ (Poisson, m = 3)."""
    costs, w = np.array([[0.01, 0.01]]), np.array([[0.5, 0.5]])
    ec, z = np.array([[0.01, 0.0001]]), np.zeros(1)
    state = MinuteState(z, z, z, z, z, ec, np.zeros((1, 2)), costs, w, z)
    m, c2 = np.array([[3.0, 12.0]]), np.ones((1, 2))
    y = np.array([[[-0.005, 0.0], [-1e-9, 0.05]]])
    got = minute_model._arrivals_cdf(state, m, c2, y)
    assert got[0, 0].tolist() == pytest.approx([0.0, np.exp(-3)], rel=1e-9)
    assert got[0, 1, 0] == 0.0 and got[0, 1, 1] > 0.0
