"""The synthetic O365-shaped log and the ServeGen conversion."""

from __future__ import annotations

import ast
import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from planner.config import FleetConfig
from planner.workload.servegen import (
    ServeGenClient,
    ServeGenSpec,
    _distribution,
    assign,
    load_source,
    synthesize_servegen,
)
from planner.workload.synth import SynthSpec, synthesize
from planner.workload.tokens import TokenSampler


@pytest.fixture(scope="module")
def tokens(shared_data: Path) -> TokenSampler:
    return TokenSampler.from_azure(shared_data / "azure2023")


@pytest.fixture(scope="module")
def week(cfg: FleetConfig, tokens: TokenSampler) -> pd.DataFrame:
    spec = SynthSpec(days=7, seed=3, requests_per_day=150_000)
    return pd.concat([f for _, f in synthesize(cfg, spec, tokens)], ignore_index=True)


def test_same_seed_same_rows_and_days_are_independent(
    cfg: FleetConfig, tokens: TokenSampler
) -> None:
    one = dict(synthesize(cfg, SynthSpec(days=1, seed=5, requests_per_day=20_000), tokens))
    two = dict(synthesize(cfg, SynthSpec(days=2, seed=5, requests_per_day=20_000), tokens))
    other = dict(synthesize(cfg, SynthSpec(days=1, seed=6, requests_per_day=20_000), tokens))
    (day,) = one
    pd.testing.assert_frame_equal(one[day], two[day])
    assert not one[day]["input_tokens"].equals(other[day]["input_tokens"])
    assert one[day]["arrival_time"].is_monotonic_increasing
    assert one[day]["request_id"].is_unique


def test_every_request_has_a_tenant_of_its_kind(week: pd.DataFrame) -> None:
    """Interactive tiers come from teams, NIW from batch owners; shares fall off like 1/k."""
    tenant = week["tenant"].astype(str)
    niw = week["tier"] == "NIW"
    assert tenant[~niw].str.startswith("team-").all()
    assert tenant[niw].str.startswith("batch-").all()
    shares = tenant[~niw].value_counts(normalize=True)
    assert shares.index[0] == "team-01"
    assert shares["team-01"] == pytest.approx(shares["team-02"] * 2, rel=0.1)


def test_a_bulk_job_belongs_to_one_tenant() -> None:
    """_bulk_jobs returns each request's job; a job's requests share their owner."""
    from planner.workload.synth import _bulk_jobs, _tenants

    rng = np.random.default_rng(1)
    hours = np.array([0, 3_600_000], dtype=np.int64)
    times, job = _bulk_jobs(hours, np.array([4_000.0, 4_000.0]), rng)
    assert len(times) == len(job) and job.max() >= 2
    owner = _tenants("batch", 6, int(job.max()) + 1, np.random.default_rng(2))
    by_job = pd.DataFrame({"job": job, "tenant": owner[job]}).groupby("job")["tenant"].nunique()
    assert (by_job == 1).all()
    # a job's requests arrive within its 1-3 minute spread
    spans = pd.DataFrame({"job": job, "t": times}).groupby("job")["t"].agg(np.ptp)
    assert (spans < 180_000).all()


def test_volume_is_close_to_the_requested_rate(week: pd.DataFrame) -> None:
    per_day = len(week) / 7
    assert 0.85 * 150_000 < per_day < 1.15 * 150_000


def test_regional_peaks_follow_local_time(cfg: FleetConfig, week: pd.DataFrame) -> None:
    interactive = week[week["tier"] != "NIW"]
    peaks = {}
    for region in cfg.regions:
        rows = interactive[interactive["region"] == region.id]
        utc_hour = rows["arrival_time"].dt.hour.value_counts().idxmax()
        local = rows["arrival_time"].dt.tz_convert(ZoneInfo(region.timezone)).dt.hour.value_counts()
        peaks[region.id] = (utc_hour, local.idxmax())
    # In local time every region peaks in working hours; in UTC the peaks are shifted.
    assert all(9 <= local <= 16 for _, local in peaks.values())
    assert len({utc for utc, _ in peaks.values()}) > 1


def test_weekends_are_quieter_for_interactive_traffic(week: pd.DataFrame) -> None:
    local = week["arrival_time"].dt.tz_convert("America/New_York")
    interactive = week["tier"] != "NIW"
    weekday = local.dt.dayofweek < 5
    per_weekday = (interactive & weekday).sum() / 5
    per_weekend = (interactive & ~weekday).sum() / 2
    assert per_weekend < 0.6 * per_weekday


def test_interactive_share_peaks_in_working_hours(week: pd.DataFrame) -> None:
    east = week[week["region"] == "us-east"]
    hour = east["arrival_time"].dt.tz_convert("America/New_York").dt.hour
    share = (east["tier"] != "NIW").groupby(hour).mean()
    assert share.loc[11] > share.loc[3] + 0.2


def test_niw_arrives_in_bulk(week: pd.DataFrame) -> None:
    minute = week["arrival_time"].dt.floor("min")
    counts = week.groupby([minute, week["tier"]], observed=True).size().unstack(fill_value=0)
    burst = counts.max() / counts.mean()
    assert burst["NIW"] > 3 * burst["IW-F"]


def test_token_lengths_come_from_the_azure_traces(week: pd.DataFrame, tokens: TokenSampler) -> None:
    conv_in, conv_out = tokens.mean("conversation")
    code_in, _ = tokens.mean("code")
    interactive = week[week["tier"] != "NIW"]
    assert interactive["input_tokens"].mean() == pytest.approx(conv_in, rel=0.05)
    assert interactive["output_tokens"].mean() == pytest.approx(conv_out, rel=0.05)
    assert week[week["tier"] == "NIW"]["input_tokens"].mean() == pytest.approx(code_in, rel=0.05)


# ---- ServeGen ----------------------------------------------------------------------------------


def test_distribution_parser_reads_what_literal_eval_reads(shared_data: Path) -> None:
    path = shared_data / "servegen" / "language" / "m-mid" / "chunk-60-dataset.json.gz"
    with gzip.open(path, "rt") as fh:
        entry = next(iter(json.load(fh).values()))
    text = entry["input_tokens"]
    values, probs = _distribution(text)
    expected = ast.literal_eval(text)
    assert dict(zip(values.tolist(), probs.tolist(), strict=True)) == pytest.approx(
        {k: v / sum(expected.values()) for k, v in expected.items()}
    )


def _client(rate: float, dist: str, shape: float, scale: float, windows: int) -> ServeGenClient:
    trace = pd.DataFrame(
        {
            "window_start_s": np.arange(windows) * 600,
            "rate": rate,
            "cv": 1.0,
            "dist": dist,
            "shape": shape,
            "scale": scale,
        }
    )
    tok = (np.array([100]), np.array([1.0]), np.array([10]), np.array([1.0]))
    return ServeGenClient("1", trace, {0: tok})


@pytest.mark.parametrize(("dist", "shape"), [("Gamma", 0.5), ("Weibull", 0.8), ("", 0.0)])
def test_arrival_counts_match_the_rate(cfg: FleetConfig, dist: str, shape: float) -> None:
    rate, scale_f = 20.0, 0.05  # 1 req/s after scaling → 600 per window
    from math import gamma

    mean_gap = 1 / rate
    dist_scale = {
        "Gamma": mean_gap / shape if shape else 0,
        "Weibull": mean_gap / gamma(1 + 1 / shape) if shape else 0,
        "": 0,
    }[dist]
    client = _client(rate, dist, shape, dist_scale, windows=72)
    (frame,) = synthesize_servegen(cfg, [client], ServeGenSpec("llama3.1-8b", scale_f, 1))
    assert len(frame) == pytest.approx(72 * 600, rel=0.05)
    offsets = (frame["arrival_time"] - frame["arrival_time"].min()).dt.total_seconds()
    per_window = np.bincount((offsets // 600).astype(int))
    assert per_window.mean() == pytest.approx(600, rel=0.06)


def test_clients_get_a_fixed_region_and_tier_from_the_seed(cfg: FleetConfig) -> None:
    a = assign("60", 7, cfg.region_ids, cfg.tier_ids)
    assert a == assign("60", 7, cfg.region_ids, cfg.tier_ids)
    spread = {assign(str(c), 7, cfg.region_ids, cfg.tier_ids) for c in range(60)}
    assert len(spread) >= 6


def test_local_midnight_shifts_by_region(cfg: FleetConfig) -> None:
    client = _client(1.0, "", 0.0, 0.0, windows=1)
    region, _ = assign("1", 11, cfg.region_ids, cfg.tier_ids)
    (frame,) = synthesize_servegen(cfg, [client], ServeGenSpec("llama3.1-8b", 1.0, 11))
    tz = ZoneInfo(cfg.region(region).timezone)
    first_local = frame["arrival_time"].min().tz_convert(tz)
    assert first_local.hour == 0 and first_local.date() == date(2024, 6, 3)


def test_real_source_borrows_tokens_for_clients_without_a_dataset(
    cfg: FleetConfig, shared_data: Path
) -> None:
    clients = load_source(shared_data / "servegen" / "language" / "m-mid")
    missing = [c for c in clients if not c.tokens and (c.trace["rate"] > 0).any()]
    assert missing, "m-mid has clients without a dataset file"
    donors = [c for c in clients if c.tokens][:3]
    frames = list(
        synthesize_servegen(cfg, [missing[0], *donors], ServeGenSpec("llama3.1-8b", scale=0.01))
    )
    frame = frames[0]
    assert frame["tenant"].iloc[0] == f"client-{missing[0].client}"
    assert (frame["input_tokens"] > 0).all() and (frame["output_tokens"] > 0).all()
    span = frame["arrival_time"].max() - frame["arrival_time"].min()
    assert span.total_seconds() > 0
    assert frame["arrival_time"].min() >= datetime(2024, 6, 3, tzinfo=UTC)
