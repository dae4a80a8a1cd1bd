"""Per-minute aggregates from ServeGen rate series: the expected volume of the rate series,
the window's variability (a bursty window's minutes vary more, a smooth one's less), token
sums from the clients' means, deterministic from the seed, and the same demand shape as the
row generator on real clients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.config import FleetConfig
from planner.workload.servegen import (
    ServeGenClient,
    ServeGenSpec,
    load_source,
    synthesize_servegen,
)
from planner.workload.servegen_minutes import COLUMNS, synthesize_minutes


def _client(name: str, rate: float, cv: float, windows: int = 144) -> ServeGenClient:
    trace = pd.DataFrame(
        {
            "window_start_s": np.arange(windows) * 600,
            "rate": rate,
            "cv": cv,
            "dist": "Gamma",
            "shape": 1 / cv**2,
            "scale": cv**2 / rate,
        }
    )
    tok = (np.array([100, 300]), np.array([0.5, 0.5]), np.array([10]), np.array([1.0]))
    return ServeGenClient(name, trace, {w: tok for w in range(0, windows * 600, 21_600)})


@pytest.mark.parametrize("cv", [0.5, 1.0, 4.0, 40.0])
def test_volume_is_the_rate_series_and_variability_the_windows(cfg: FleetConfig, cv: float) -> None:
    """One client at 2 req/s (× 0.5) for 10 days: 864,000 requests expected, within 4
    standard deviations of the total (minute counts have dispersion c², or about the cap of
    1,001 a window allows where c² is larger); minute counts vary with the window's CV."""
    client = _client("1", 2.0, cv, windows=1440)
    frame = synthesize_minutes(cfg, [client], ServeGenSpec("llama3.1-8b", 0.5, 3))
    assert list(frame.columns) == COLUMNS
    n = 864_000
    sd = np.sqrt(min(cv**2, 1001) * n)
    assert abs(frame["requests"].sum() - n) <= 4 * sd
    assert (frame["minute"].dt.second == 0).all()
    per_minute = frame.set_index("minute")["requests"].reindex(
        pd.date_range(frame["minute"].min(), periods=14_400, freq="min"), fill_value=0
    )
    dispersion = per_minute.var() / per_minute.mean()
    if cv <= 4:
        assert dispersion == pytest.approx(cv**2, rel=0.15)
    else:  # capped at what a window can hold: still far burstier than Poisson
        assert dispersion > 16
    assert frame["cv"].to_numpy() == pytest.approx(cv)
    # tokens: the client's mean per request (200 in, 10 out) on every minute
    assert frame["input_tokens"].sum() == pytest.approx(200 * frame["requests"].sum(), rel=0.01)
    assert frame["output_tokens"].sum() == pytest.approx(10 * frame["requests"].sum(), rel=0.01)


def test_same_seed_same_minutes_and_clients_superpose(cfg: FleetConfig) -> None:
    clients = [_client(str(i), 0.5, 2.0) for i in range(6)]
    spec = ServeGenSpec("llama3.1-8b", 1.0, 5)
    a, b = synthesize_minutes(cfg, clients, spec), synthesize_minutes(cfg, clients, spec)
    pd.testing.assert_frame_equal(a, b)
    c = synthesize_minutes(cfg, clients, ServeGenSpec("llama3.1-8b", 1.0, 6))
    assert not a["requests"].equals(c["requests"])
    assert a.duplicated(["minute", "region", "model", "tier"]).sum() == 0
    # identical clients in a series: the superposed CV is theirs
    assert a["cv"].to_numpy() == pytest.approx(2.0)


def test_real_clients_give_the_shape_the_row_generator_gives(
    cfg: FleetConfig, shared_data: Path
) -> None:
    """Twelve m-mid clients: per hour and series, the aggregates and the sampled rows rise and
    fall together (correlation ≥ 0.85; 0.89 measured: the two draw independently, and the
    row path's volume departs from the rate where a window's fitted inter-arrival law has
    another mean), and the aggregates hold the rate series' volume."""
    clients = [c for c in load_source(shared_data / "servegen" / "language" / "m-mid")][:12]
    spec = ServeGenSpec("llama3.1-8b", 0.01, 7)
    agg = synthesize_minutes(cfg, clients, spec)
    expected = sum(float((c.trace["rate"].clip(lower=0) * 600 * 0.01).sum()) for c in clients)
    assert agg["requests"].sum() == pytest.approx(expected, rel=0.05)
    rows = pd.concat(list(synthesize_servegen(cfg, clients, spec)), ignore_index=True)
    rows["hour"] = rows["arrival_time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("h")
    keys = ["hour", "region", "tier"]
    sampled = rows.groupby(keys).size().rename("rows")
    summed = agg.assign(hour=agg["minute"].dt.floor("h")).groupby(keys)["requests"].sum()
    both = pd.concat([summed, sampled], axis=1).fillna(0)
    assert both.corr().iloc[0, 1] >= 0.85
