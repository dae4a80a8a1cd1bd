"""Conformal quantiles from out-of-sample residuals."""

from __future__ import annotations

import numpy as np
import pytest

from planner.forecast.calibration import (
    ResidualQuantiles,
    conformal_quantile,
    log_residuals,
    mixture_quantiles,
)


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
