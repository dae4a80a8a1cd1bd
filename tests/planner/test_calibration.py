"""Conformal quantiles from out-of-sample residuals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from planner.forecast.calibration import ResidualQuantiles, log_residuals
from planner.forecast.mixture import conformal_quantile, mixture_quantiles


def test_conformal_rank_rule() -> None:
    r = np.arange(1.0, 20.0)  # 19 residuals
    assert conformal_quantile(r, 0.5) == 10.0  # ceil(20 * 0.5) = 10th smallest
    assert conformal_quantile(r, 0.95) == 19.0  # ceil(20 * 0.95) = 19th
    assert conformal_quantile(r, 0.01) == 1.0


def test_mixture_gives_each_half_equal_weight() -> None:
    own = np.zeros(10)
    peers = np.ones(1000)
    low, high = mixture_quantiles(own, peers, [0.3, 0.7])
    assert (low, high) == (0.0, 1.0)
    assert mixture_quantiles(own, np.empty(0), [0.5]) == [0.0]


def test_quantiles_cover_iid_noise_at_their_nominal_level() -> None:
    rng = np.random.default_rng(3)
    truth = rng.lognormal(0, 0.3, size=20_000) * 100
    point = np.full_like(truth, 100.0)
    train, test = slice(0, 2000), slice(2000, None)
    rq = ResidualQuantiles.fit(log_residuals(truth[train], point[train], 5.0), 5.0)
    q = rq.apply(point[test])
    assert np.mean(truth[test] <= q[0.95]) == pytest.approx(0.95, abs=0.01)
    band = (truth[test] >= q[0.025]) & (truth[test] <= q[0.975])
    assert band.mean() == pytest.approx(0.95, abs=0.01)


def test_quantiles_are_ordered_and_non_negative() -> None:
    rq = ResidualQuantiles.fit(np.random.default_rng(0).normal(0, 1, 500), 1.0)
    q = rq.apply(np.array([0.0, 0.5, 10.0]))
    stacked = np.vstack([q[t] for t in rq.levels])
    assert (np.diff(stacked, axis=0) >= 0).all()
    assert (stacked >= 0).all()


def _leads(rng: np.random.Generator, n_per_h: int, spread: np.ndarray) -> tuple[np.ndarray, ...]:
    """Log residuals whose spread grows with the lead h = 1..len(spread)."""
    h = np.repeat(np.arange(1, len(spread) + 1), n_per_h)
    return rng.normal(0.0, spread[h - 1]), h


def test_per_horizon_bands_cover_at_every_lead() -> None:
    """Errors that grow with the lead (σ from 0.05 at h=1 to 0.6 at h=24): bands fitted per
    lead cover fresh errors at ~90 % at every lead; the pooled band over-covers the first
    leads (too wide where a plan is carried out) and under-covers the last."""
    rng = np.random.default_rng(11)
    spread = np.linspace(0.05, 0.6, 24)
    own, h_own = _leads(rng, 100, spread)
    peers, h_peer = _leads(rng, 1000, spread)
    rq = ResidualQuantiles.fit(own, 1.0, [0.05, 0.95], peers, h_own, h_peer)
    pooled = ResidualQuantiles.fit(own, 1.0, [0.05, 0.95], peers)
    fresh, h = _leads(rng, 4000, spread)
    point = np.full(len(fresh), 100.0)
    actual = (point + 1.0) * np.exp(fresh) - 1.0
    for band, name in ((rq, "by_h"), (pooled, "pooled")):
        q = band.apply(point, h)
        inside = (actual >= q[0.05]) & (actual <= q[0.95])
        cover = np.array([inside[h == k].mean() for k in range(1, 25)])
        if name == "by_h":
            assert np.all(np.abs(cover - 0.90) < 0.05), cover
            assert abs(cover.mean() - 0.90) < 0.01, cover
        else:
            assert cover[0] > 0.99 and cover[-1] < 0.80, cover
    # the band at lead 1 is far narrower than the pooled one
    assert rq.at(np.array([1]))[0, 1] < 0.3 * pooled.values[1]


def test_per_horizon_falls_back_to_the_pool_where_a_lead_is_thin() -> None:
    rng = np.random.default_rng(2)
    own = rng.normal(0, 0.2, 60)
    h = np.r_[np.full(50, 1), np.full(5, 2), np.full(5, 3)]
    rq = ResidualQuantiles.fit(own, 1.0, [0.5, 0.9], None, h, None)
    table = rq.at(np.array([1, 2, 3, 7]))
    assert table[1].tolist() == list(rq.values) == table[2].tolist() == table[3].tolist()
    assert table[0].tolist() != list(rq.values)
    with pytest.raises(ValueError, match="one lead per residual"):
        ResidualQuantiles.fit(own, 1.0, [0.5], None, h[:10], None)


def test_apply_defaults_to_leads_in_order() -> None:
    rng = np.random.default_rng(5)
    own, h = _leads(rng, 50, np.linspace(0.05, 0.5, 3))
    rq = ResidualQuantiles.fit(own, 1.0, [0.9], None, h, None)
    point = np.array([10.0, 10.0, 10.0])
    assert rq.apply(point)[0.9].tolist() == rq.apply(point, np.array([1, 2, 3]))[0.9].tolist()
    assert rq.apply(point)[0.9][0] < rq.apply(point)[0.9][2]


def test_mixture_own_weight_sets_each_sides_share() -> None:
    own = np.zeros(10)
    peers = np.ones(1000)
    assert mixture_quantiles(own, peers, [0.2, 0.3], own_weight=0.25) == [0.0, 1.0]
    assert mixture_quantiles(own, peers, [0.01, 0.5], own_weight=0.0) == [1.0, 1.0]
    assert mixture_quantiles(own, np.empty(0), [0.5], own_weight=0.0) == [0.0]


def sorted_mixture(
    own: np.ndarray, peers: np.ndarray, taus: Sequence[float], _: bool, own_weight: float
) -> list[float]:
    """The mixture's quantiles by their definition (and add7db1's way): a stable sort of
    [own, peers] with their weights, the conformal level on the cumulative weights (both
    sides non-empty, ``own_weight`` > 0)."""
    n, m = len(own), len(peers)
    values = np.concatenate([own, peers])
    weights = np.concatenate([np.full(n, own_weight / n), np.full(m, (1.0 - own_weight) / m)])
    order = np.argsort(values, kind="stable")
    n_eff = 1.0 / float(np.sum(weights**2))
    targets = np.minimum(np.asarray(taus) * (n_eff + 1) / n_eff, 1.0) - 1e-12
    idx = np.minimum(np.searchsorted(np.cumsum(weights[order]), targets), n + m - 1)
    return [float(v) for v in values[order][idx]]


@pytest.mark.parametrize(("own_weight", "levels"), [(0.5, 7), (0.25, 49), (0.8, 49)])
def test_the_mixture_is_its_stable_sort_bit_for_bit(own_weight: float, levels: int) -> None:
    """The own residuals placed into the sorted peers (before equal peers, their weights
    alike, the levels cached per sample size) give the quantiles of a stable sort of
    [own, peers] bit for bit: values on a 0.1 grid, so own and peer residuals tie."""
    rng = np.random.default_rng(7)
    taus = tuple((np.arange(levels) + 0.5) / levels)
    for _ in range(200):
        n, m = int(rng.integers(1, 15)), int(rng.integers(1, 200))
        own = np.round(rng.normal(0, 0.4, n), 1)
        peers = np.sort(np.round(rng.normal(0, 0.4, m), 1))
        got = mixture_quantiles(own, peers, taus, True, own_weight)
        assert got == sorted_mixture(own, peers, taus, True, own_weight), (n, m)
