"""The config's clock (wall / replay) and the demo's log feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from flows.clock import clock_for, log_end, run_time, start_replay, stop_replay
from flows.feed import feed_until, wait_for_feed
from planner.config import FleetConfig
from planner.workload.synth import SynthSpec, synthesize
from planner.workload.tokens import TokenSampler

REAL = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def replay_cfg(cfg: FleetConfig, tmp_path: Path, **log: object) -> FleetConfig:
    clock = cfg.clock.model_copy(
        update={
            "kind": "replay",
            "speed": 60.0,
            "state": str(tmp_path / "clock.json"),
            "inbox": str(tmp_path / "inbox"),
            "log": cfg.clock.log.model_copy(update={"logs_dir": str(tmp_path / "logs"), **log}),
        }
    )
    return cfg.model_copy(update={"clock": clock})


def test_wall_clock_is_real_time(cfg: FleetConfig) -> None:
    wall = cfg.model_copy(update={"clock": cfg.clock.model_copy(update={"kind": "wall"})})
    assert clock_for(wall).at(REAL) == pd.Timestamp("2026-11-26 03:00")
    assert run_time(wall, "2024-06-17T01:05:00+02:00") == pd.Timestamp("2024-06-16 23:05")


def test_replay_clock_stands_at_the_log_end_until_started(cfg: FleetConfig, tmp_path: Path) -> None:
    c = replay_cfg(cfg, tmp_path)
    assert log_end(c) == pd.Timestamp("2024-06-17 00:00")
    assert clock_for(c).at(REAL) == log_end(c)
    assert run_time(c, None) == log_end(c)


def test_replay_clock_runs_at_its_speed_and_stops_where_it_was(
    cfg: FleetConfig, tmp_path: Path
) -> None:
    c = replay_cfg(cfg, tmp_path)
    start_replay(c, pd.Timestamp("2024-06-17 00:01:38"), REAL)
    clock = clock_for(c)
    assert clock.anchor == pd.Timestamp("2024-06-17 00:00")
    # one real minute is one demo hour at speed 60
    assert clock.at(REAL + timedelta(minutes=2, seconds=30)) == pd.Timestamp("2024-06-17 02:30")
    assert clock.real_seconds(3600) == 60
    # a real instant a millisecond early still reads as the demo minute it stands for
    early = REAL + timedelta(minutes=2, seconds=30) - timedelta(microseconds=1500)
    assert clock.at(early) == pd.Timestamp("2024-06-17 02:30")
    stop_replay(c, REAL + timedelta(minutes=3))
    assert clock_for(c).at(REAL + timedelta(hours=5)) == pd.Timestamp("2024-06-17 03:00")


def test_replay_clock_restarts_at_the_end_of_newer_data(cfg: FleetConfig, tmp_path: Path) -> None:
    c = replay_cfg(cfg, tmp_path)
    clock = start_replay(c, pd.Timestamp("2024-06-17 05:12"), REAL)
    assert clock.anchor == pd.Timestamp("2024-06-17 05:00")
    # a log whose last bulk job spills a minute past its end still starts at the log's end
    assert start_replay(c, pd.Timestamp("2024-06-17 00:01:38"), REAL).anchor == log_end(c)


def test_feed_drops_each_passed_hour_once_continuing_the_log(
    cfg: FleetConfig, tmp_path: Path, shared_data: Path
) -> None:
    """Two days of log (small volume): the feed synthesises day 3 the way a 3-day synthesis
    would, drops one file per complete hour, and a second call writes nothing."""
    start = datetime(2024, 6, 3, tzinfo=UTC)
    c = replay_cfg(cfg, tmp_path, days=2, requests_per_day=5000, start=start.isoformat())
    written = feed_until(c, pd.Timestamp("2024-06-05 02:40"), shared_data.parent)
    assert [p.name for p in written] == ["feed-20240605T00.parquet", "feed-20240605T01.parquet"]
    assert feed_until(c, pd.Timestamp("2024-06-05 02:59"), shared_data.parent) == []
    # an hour that has not ended is never fed (not even the first one after the log)
    fresh = replay_cfg(
        cfg, tmp_path / "fresh", days=2, requests_per_day=5000, start=start.isoformat()
    )
    assert feed_until(fresh, pd.Timestamp("2024-06-05 00:40"), shared_data.parent) == []
    assert wait_for_feed(c, pd.Timestamp("2024-06-05 02:15"), 1.0)
    assert not wait_for_feed(c, pd.Timestamp("2024-06-05 03:15"), 1.0)  # hour 02 not fed
    tokens = TokenSampler.from_azure(shared_data / "azure2023")
    spec = SynthSpec(days=3, seed=7, start=start, requests_per_day=5000)
    full = list(synthesize(cfg, spec, tokens))
    day3 = full[2][1]
    times = pd.to_datetime(day3["arrival_time"], utc=True).dt.tz_localize(None)
    expected = day3[(times >= "2024-06-05 01:00") & (times < "2024-06-05 02:00")]
    got = pd.read_parquet(written[1])
    assert len(got) == len(expected) > 0
    assert list(got["request_id"]) == list(expected["request_id"])
