"""Latency curves, the calibrated pool fluid and the capacity curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.config import load_config
from planner.sim.agreement import compare
from planner.sim.capacity import (
    CAPACITY_CURVES,
    capacity_table,
    instances_needed,
    load_latency_curves,
)
from planner.sim.latency import (
    Curve,
    LatencyCurves,
    TierTarget,
    measure_curve,
    minute_attainment,
    monotone,
    saturation,
    tier_targets,
)
from planner.sim.pool import minute_cv, minute_index, pool_minutes, pool_sla
from planner.sim.profile import fit_context, profiles_for_config
from tests.planner.test_instances import PERF_CSV, toy

SERVEGEN = Path(__file__).resolve().parents[2].parent / "shared/data/servegen/language/m-mid"


def test_monotone_is_non_increasing_and_unbiased() -> None:
    rng = np.random.default_rng(0)
    # a gently falling surface: where noise dominates the slope, a running minimum is biased
    truth = 0.9 - 0.1 * np.linspace(0, 1, 13)[:, None] * np.linspace(0.2, 1, 9)[None, :]
    noisy = truth + rng.normal(0, 0.03, truth.shape)
    fit = monotone(noisy)
    assert (np.diff(fit, axis=0) <= 1e-12).all() and (np.diff(fit, axis=1) <= 1e-12).all()
    # an isotonic fit keeps the level; a running minimum of the noise would sit below it
    assert abs((fit - truth).mean()) < 0.01
    assert (np.minimum.accumulate(noisy, axis=0) - truth).mean() < -0.02


def test_curve_interpolates_and_clamps() -> None:
    c = Curve(
        np.array([0.1, 0.5, 1.0]),
        np.array([0.0, 1.0]),
        np.array([[1, 0.8], [0.6, 0.4], [0.2, 0.0]]),
    )
    assert c(0.5, 0.0) == pytest.approx(0.6)
    assert c(0.3, 0.5) == pytest.approx(0.7)  # mean of 0.9 and 0.5
    assert c(2.0, 9.0) == pytest.approx(0.0)  # beyond the grid: its edge


def test_minute_attainment_leaves_overload_to_the_minute_queue() -> None:
    """Below 1 the curve as measured; at ρ ≥ 0.95 (its last row below 1) the 0.95 row, never
    the never-draining ρ = 1 row: the fluid queue charges that wait."""
    c = Curve(
        np.array([0.5, 0.95, 1.0]),
        np.array([0.0, 1.0]),
        np.array([[0.9, 0.9], [0.8, 0.6], [0.1, 0.0]]),
    )
    assert minute_attainment(c, 0.7, 0.0) == pytest.approx(float(c(0.7, 0.0)))
    assert minute_attainment(c, np.array([0.95, 1.0, 1.3]), 0.5).tolist() == pytest.approx(
        [0.7] * 3
    )


def test_saturation_by_hand() -> None:
    """Batch 1, identical requests (100 prompt, 11 output tokens): each takes a 0.1 s prefill
    and 10 decodes of 10 ms = 0.2 s, while busy_s counts 100/1000 + 11/100 = 0.21 s: κ = 1.05
    (the first token comes with the prefill)."""
    ones = np.ones(1, np.int64)
    kappa = saturation(toy(max_batch=1), 100 * ones, 11 * ones, requests=2000, instances=2)
    assert kappa == pytest.approx(0.21 / 0.2, rel=1e-3)


@pytest.mark.skipif(not PERF_CSV.exists(), reason="shared perf profile not present")
@pytest.mark.parametrize(("prompt", "output"), [(1000, 10), (1000, 50), (2000, 100)])
def test_saturation_where_the_token_budget_binds(prompt: int, output: int) -> None:
    """Llama2-70B/A100, identical prompt-heavy requests: the batch never fills (about
    budget · (o − 1) / (p + o − 1) decoders, 24 at most here, of 64), so every iteration
    processes the full 512-token budget in prefill_s(512), whatever its split between chunk
    and decode tokens.
    A request costs p + o − 1 of those tokens (its first output token comes with its last
    chunk), so κ = (p / P + o / D) · (512 / prefill_s(512)) / (p + o − 1): the token mix alone
    sets κ in this regime."""
    prof = profiles_for_config(load_config(), PERF_CSV)[("llama2-70b", "a100x8")]
    rate = prof.token_budget / float(prof.prefill_s(prof.token_budget))
    ones = np.ones(1, np.int64)
    kappa = saturation(prof, prompt * ones, output * ones, requests=1000, instances=2)
    busy = float(prof.busy_s(prompt, output))
    assert kappa == pytest.approx(busy * rate / (prompt + output - 1), rel=2e-3)


def test_measured_curve_by_hand() -> None:
    """Evenly spaced toy requests at low load never queue: TTFT = 0.1 s prefill, TPOT 10 ms.
    A tier with TTFT ≤ 0.2 s is always met, one with TTFT ≤ 0.05 s never."""
    ones = np.ones(1, np.int64)
    targets = [TierTarget("loose", 0.2, 0.02), TierTarget("tight", 0.05, 0.02)]
    table = measure_curve(toy(), targets, 100 * ones, 11 * ones, 200, rhos=(0.1, 0.2), cvs=(0.0,))
    sla = table.set_index(["tier", "rho"])["sla"]
    assert sla["loose"].tolist() == [1.0, 1.0]
    assert sla["tight"].tolist() == [0.0, 0.0]


def test_minute_cv_from_rows() -> None:
    even = np.arange(0, 120, 0.5)
    assert minute_cv(even, 2) == pytest.approx([0.0, 0.0], abs=1e-9)
    rng = np.random.default_rng(1)
    poisson = np.cumsum(rng.exponential(0.01, 12_000))
    assert np.median(minute_cv(poisson, 2)) == pytest.approx(1.0, abs=0.05)
    assert minute_cv(np.array([1.0, 70.0]), 2, fallback=1.7).tolist() == [1.7, 1.7]


def test_minute_cv_matches_each_minute_by_hand() -> None:
    """The index-range sums give, minute by minute, the sample CV of the gaps spanning
    ``lag`` arrivals with both ends in the minute, whatever the rows' order; arrivals past
    the last minute count in it; the fallback where a minute has fewer than 3 such gaps."""
    rng = np.random.default_rng(3)
    t = np.r_[rng.uniform(0, 60, 40), rng.uniform(60, 120, 3), rng.uniform(120, 300, 500)]
    for lag in (1, 2, 5):
        gaps = [np.array([])] * 3
        for m in range(3):
            # minutes 0, 1 and everything from minute 2 on (folded into the last)
            mine = np.sort(t[(t // 60 == m) if m < 2 else (t >= 120)])
            if m == 2:
                same = (mine[lag:] // 60) == (mine[:-lag] // 60)
                gaps[m] = (mine[lag:] - mine[:-lag])[same]
            else:
                gaps[m] = mine[lag:] - mine[:-lag]
        expect = [g.std(ddof=1) / g.mean() if len(g) >= 3 else 0.9 for g in gaps]
        got = minute_cv(rng.permutation(t), 3, fallback=0.9, lag=lag)
        assert got == pytest.approx(expect, rel=1e-12), lag
    assert minute_cv(t, 3, fallback=0.9, lag=2)[1] == pytest.approx(0.9)  # 3 rows: 1 gap


def test_minute_index_sorted_or_not() -> None:
    rng = np.random.default_rng(4)
    t = np.r_[0.0, 59.999, 60.0, 60.000001, 119.0, 180.0, 400.0, rng.uniform(0, 500, 300)]
    for rows in (np.sort(t), rng.permutation(t)):
        expect = np.minimum(np.floor(rows / 60), 4).astype(np.int64)
        assert minute_index(rows, 5).tolist() == expect.tolist()


def test_pool_fluid_queues_only_in_overload() -> None:
    """A flat curve (attainment 1 everywhere): the only loss is the minute queue. Minute 0
    brings 3 minutes of work for one instance: requests wait up to 2 minutes; a TTFT of 30 s
    is met by the first ~quarter of them only."""
    flat = Curve(np.array([0.0, 1.0]), np.array([0.0, 4.0]), np.ones((2, 2)))
    traffic = pool_minutes(
        np.linspace(0, 59.9, 600), np.zeros(600, np.int64), np.full(600, 0.3), 1, 4, 1
    )
    total, per_minute = pool_sla(traffic, 1, [flat], np.array([30.0]))
    assert total[0] == pytest.approx(per_minute[0, 0])
    assert 0.1 < total[0] < 0.3
    light = pool_minutes(
        np.linspace(0, 59.9, 100), np.zeros(100, np.int64), np.full(100, 0.3), 1, 1, 1
    )
    assert pool_sla(light, 1, [flat], np.array([30.0]))[0][0] == pytest.approx(1.0)


def test_capacity_table_is_derived_from_the_stored_curves() -> None:
    stored = pd.read_csv(CAPACITY_CURVES)
    derived = capacity_table(load_latency_curves())
    pd.testing.assert_frame_equal(
        stored.reset_index(drop=True), derived.reset_index(drop=True), check_dtype=False
    )


def test_capacity_curves_are_monotone_in_rate_and_cv() -> None:
    table = pd.read_csv(CAPACITY_CURVES)
    assert (table["instances"] != 0).all()
    for _, g in table[table["instances"] > 0].groupby(["model", "vm_type", "tier"]):
        grid = g.pivot_table(index="rate_rps", columns="cv", values="instances")
        assert (grid.diff(axis=0).dropna() >= 0).all().all()  # rate ↑ ⇒ instances ↑
        assert (grid.diff(axis=1).dropna(axis=1) >= 0).all().all()  # cv ↑ ⇒ instances ↑
    # the steps show: at 100 requests/s burstier traffic needs more Llama2-70B instances
    n = [instances_needed("llama2-70b", "a100x8", "IW-N", 100.0, cv) for cv in (0.5, 4.0)]
    assert n[0] < n[1]
    assert instances_needed("llama2-70b", "a100x8", "IW-N", 0.0) == 0


def test_instances_needed_meets_the_target_and_no_fewer_would() -> None:
    curves = load_latency_curves()
    key = ("llama3.1-8b", "a100x8", "IW-N")
    curve = curves.curve(*key)
    busy = curves.busy_s[key[:2]] / curves.capacity[key[:2]]
    rate, cv = 40.0, 2.0
    n = instances_needed(*key, rate, cv, curves=curves)
    assert curve(rate * busy / n, cv / np.sqrt(n)) >= 0.95
    assert curve(rate * busy / (n - 1), cv / np.sqrt(n - 1)) < 0.95


def _servegen_trace(hours: float, scale: float) -> pd.DataFrame:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from calibrate import servegen_rows

    rows = servegen_rows(load_config(), SERVEGEN, "llama2-70b", 86400.0 + 36000.0, hours, scale)
    return rows[rows["t"] < hours * 3600.0]


@pytest.mark.slow
@pytest.mark.skipif(not SERVEGEN.exists() or not PERF_CSV.exists(), reason="no shared data")
def test_fluid_agrees_with_the_iteration_model_on_bursty_servegen_traffic() -> None:
    """ServeGen m-mid rows (2 h, ~60 k requests, bursty: per-minute CV ≈ 1.2, minute loads
    ±20 %), clipped to Llama-2-70B's 4,096-token window, through 8 round-robin Llama2-70B
    instances at utilisation 0.5 and 0.7. The request-level fluid (``fluid_sla``: each
    request's own arrival and sizes, the minute's mean-value state, each instance's queue at
    each minute's κ measured on these rows' sizes) agrees with the iteration-level model
    (chunked prefill) within the issue's 1 point on every interactive tier: IW-F −0.10 /
    −0.56, IW-N +0.41 / −0.98 at utilisation 0.5 / 0.7 (no sampling, so no seed noise; with
    the pool's minute queue instead, before the fifteenth session, IW-N was −1.33 at 0.7).
    The per-minute model (``minute_sla``: the minutes' aggregates only) within 1.5: IW-F
    +0.03 / +1.50, IW-N +0.51 / +0.53 (at the bound since the backlog weight was refitted on
    day 2; README, "Serving model"). The latency
    curves (``curve_sla``) within 2.5 points (with curve seeds 0-3 at 6,000 requests per
    curve point: IW-F −2.1 to −1.5 / −0.5 to +0.6, IW-N 0.0 to +0.4 / −2.5 to +1.4; the
    curve's sampling noise alone spans ~3 points on IW-N at 0.7)."""
    cfg = load_config()
    prof = profiles_for_config(cfg, PERF_CSV)[("llama2-70b", "a100x8")]
    rows = _servegen_trace(2.0, 0.006)
    targets = tier_targets(cfg)
    tier = np.asarray(rows["tier"].map({t.tier: i for i, t in enumerate(targets)}), np.int64)
    prompt, output = fit_context(
        rows["input_tokens"].to_numpy(np.int64),
        rows["output_tokens"].to_numpy(np.int64),
        prof.max_context,
    )
    table = measure_curve(prof, targets, prompt, output, 6000, tier=tier)
    lc = LatencyCurves.from_frame(table.assign(model="m", vm_type="g"))
    curves = [lc.curve("m", "g", t.tier) for t in targets]
    result = compare(
        rows["t"].to_numpy(float),
        prompt,
        output,
        tier,
        prof,
        targets,
        curves,
        lc.capacity[("m", "g")],
        8,
        (0.5, 0.7),
    )
    ref = {(r.utilisation, r.tier): r.reference_sla for r in result.rows}
    assert ref[(0.5, "IW-F")] > ref[(0.7, "IW-F")] + 0.05  # running hotter costs latency
    bounds = {"fluid_sla": 0.01, "minute_sla": 0.015, "curve_sla": 0.025}
    for fluid, bound in bounds.items():
        errors = {
            (r.utilisation, r.tier): round(getattr(r, fluid) - r.reference_sla, 4)
            for r in result.rows
        }
        assert all(abs(e) <= bound for e in errors.values()), (fluid, errors)
