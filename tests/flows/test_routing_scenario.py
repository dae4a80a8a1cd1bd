"""`sageserve evaluate-requests --scenario routing` on a small ServeGen-derived warehouse."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from planner.config import load_config
from planner.workload.servegen import ServeGenSpec, load_source, synthesize_servegen

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def servegen_warehouse(
    warehouse: duckdb.DuckDBPyConnection, shared_data: Path, tmp_path: Path
) -> Path:
    cfg = load_config(ROOT / "configs/servegen.yaml")
    clients = load_source(shared_data / "servegen/language/m-mid")
    spec = ServeGenSpec("llama2-70b", 0.0003, 7, date(2024, 6, 3))
    rows = pd.concat(synthesize_servegen(cfg, clients, spec), ignore_index=True)
    rows = rows.sort_values("arrival_time", kind="stable").reset_index(drop=True)
    rows["request_id"] = [f"sg-{i}" for i in range(len(rows))]
    rows["arrival_time"] = rows["arrival_time"].dt.tz_convert("UTC").dt.tz_localize(None)
    warehouse.register("sg", rows)
    warehouse.execute(
        "INSERT INTO requests SELECT request_id, arrival_time, region, model, tier, "
        "input_tokens, output_tokens, tenant, NULL, NULL, 1 FROM sg"
    )
    warehouse.close()
    return tmp_path / "wh.duckdb"


@pytest.mark.slow
def test_routing_scenario_json(servegen_warehouse: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "configs/servegen.yaml").read_text())
    data["paths"]["outputs"] = str(tmp_path / "out")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    args = [
        "--config",
        str(cfg_path),
        "--warehouse",
        str(servegen_warehouse),
        "evaluate-requests",
        "--scenario",
        "routing",
        "--requests",
        "400",
        "--windows",
        "2",
        "--train-requests",
        "300",
        "--predictor-rows",
        "20000",
        "--search-rounds",
        "2",
        "--search-population",
        "4",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["scenario"] == "routing"
    names = [p["name"] for p in out["policies"]]
    assert names == ["round-robin", "jsq", "least-tokens", "heuristic", "learned"]
    for p in out["policies"]:
        assert 0 < p["ttft_p95_s"] <= p["e2e_p95_s"]
        assert p["e2e_mean_s"] > 0
    assert out["instances"] == 8 and out["requests"] == 800
    assert out["profile"] == "A/a100-80gb/tp4"  # the placement's profile (the executor's)
    assert len(out["windows"]) == 2
    assert out["windows"][0]["window"][1] < out["windows"][1]["window"][0]  # consecutive
    for p in out["policies"]:  # the headline figures are the windows' means
        per = [next(q for q in w["policies"] if q["name"] == p["name"]) for w in out["windows"]]
        assert p["e2e_mean_s"] == pytest.approx(sum(q["e2e_mean_s"] for q in per) / 2)
    assert out["learned_vs"]["heuristic"]["windows"] == 2
    # no router beats every request alone on an idle instance
    bounds = out["bounds"]
    assert 0 < bounds["no_contention_e2e_mean_s"] <= min(p["e2e_mean_s"] for p in out["policies"])
    assert bounds["no_contention_ttft_mean_s"] <= bounds["round_robin_ttft_mean_s"]
    assert out["predictor"]["test_rows"] == 800  # scored on the evaluated rows only
    artifact = Path(out["learned"]["artifact"])
    assert artifact.exists()
    # second run loads the saved policy by name (same training hash): same figures
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["policies"] == out["policies"]


def test_unknown_scenario_is_a_clear_error() -> None:
    res = runner.invoke(app, ["evaluate-requests", "--scenario", "nope"])
    assert res.exit_code == 2
    assert "unknown 'nope'" in res.output


def test_learned_router_compared_per_window() -> None:
    from flows.routing import PolicyResult, compare

    def w(rr: float, h: float, learned: float) -> list[PolicyResult]:
        return [
            PolicyResult(n, e, 0, 0, 0, 0)
            for n, e in (("round-robin", rr), ("heuristic", h), ("learned", learned))
        ]

    c = compare([w(10, 8, 7.6), w(10, 8, 8.4), w(20, 10, 9.0)])
    assert c["heuristic"]["per_window"] == pytest.approx([-0.05, 0.05, -0.1])
    assert c["heuristic"]["mean_rel_diff"] == pytest.approx(-0.1 / 3)
    assert c["heuristic"]["std_rel_diff"] == pytest.approx(0.0763762616, rel=1e-6)
    assert c["heuristic"]["wins"] == 2 and c["round-robin"]["wins"] == 3
    assert c["best_heuristic"] == "heuristic"


def _window_rows(rates: list[float], seg_s: float = 900.0) -> tuple[pd.Series, np.ndarray]:
    """``rates[k]`` requests of 1 busy second each, spread evenly over segment k."""
    times, busy = [], []
    for k, n in enumerate(rates):
        m = int(n)
        times += [k * seg_s + seg_s * (i + 0.5) / m for i in range(m)]
        busy += [1.0] * m
    t = pd.Series(pd.to_datetime("2024-06-12") + pd.to_timedelta(np.asarray(times), unit="s"))
    return t, np.asarray(busy)


def test_load_basis_peak_holds_the_busiest_15_minutes_at_the_load() -> None:
    """A window whose second quarter hour carries 3x the first's work: on the 'mean' basis its
    peak runs the pool at 1.5 x the stated load (above capacity at 0.75), on 'peak' the busiest
    quarter hour runs at the load and the others below it."""
    from flows.routing import stretch, window_load

    arrival, busy = _window_rows([100, 300, 100, 100])
    old = stretch(arrival, busy, 8, 0.75, "mean")
    new = stretch(arrival, busy, 8, 0.75, "peak")
    lo, ln = window_load(arrival, old, busy, 8), window_load(arrival, new, busy, 8)
    assert lo["mean"] == pytest.approx(0.75, rel=0.01)
    assert lo["peak_15min"] == pytest.approx(0.75 * 300 / 150, rel=0.02)
    assert ln["peak_15min"] == pytest.approx(0.75, rel=1e-9)
    assert ln["least_busy_15min"] == pytest.approx(0.25, rel=0.02)
    assert ln["mean"] == pytest.approx(0.75 * 150 / 300, rel=0.02)
    # one factor per window: the gaps keep their shape
    assert np.allclose(new / new[-1], old / old[-1])
    # 'mean' is the definition before, bit for bit (its figures reproduce)
    t = (arrival - arrival.iloc[0]).dt.total_seconds().to_numpy(float)
    assert np.array_equal(old, t * float(busy.sum()) / (8 * float(t.max()) * 0.75))
    with pytest.raises(ValueError, match="load basis 'median'"):
        stretch(arrival, busy, 8, 0.75, "median")


def test_length_predictions_cached_by_data_and_seed(tmp_path: Path) -> None:
    """The predictor's figures are stored under a key of its rows and seed: a second call reads
    them (same figures, no refit); another seed or other rows give another key."""
    from flows import routing_predictor as routing
    from planner.sim import length

    rng = np.random.default_rng(0)
    n = 600
    rows = pd.DataFrame(
        {
            "arrival_time": pd.to_datetime("2024-06-12") + pd.to_timedelta(np.arange(n), unit="s"),
            "region": "r",
            "model": "m",
            "tier": rng.choice(["IW-F", "NIW"], n),
            "tenant": rng.choice(["a", "b", "c"], n),
            "input_tokens": rng.integers(10, 2000, n),
            "output_tokens": rng.integers(1, 1500, n),
        }
    )
    train, test = rows.iloc[:400], rows.iloc[400:].reset_index(drop=True)
    first = routing.predictions(train, test, [test, train.iloc[:50]], 0, tmp_path, max_iter=5)
    files = list(tmp_path.glob("length-*.npz"))
    assert len(files) == 1

    def no_fit(*a: object, **k: object) -> object:
        raise AssertionError("the cached figures were refitted")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(length, "fit", no_fit)
        again = routing.predictions(train, test, [test, train.iloc[:50]], 0, tmp_path, max_iter=5)
    assert again[0] == first[0]
    for a, b in zip(again[1], first[1], strict=True):
        assert np.array_equal(a, b)
    # another seed, other rows: other keys (a refit)
    key = routing.predictor_key(train, test, [test, train.iloc[:50]], 0, 5)
    assert files[0].name == f"length-{key}.npz"
    assert routing.predictor_key(train, test, [test, train.iloc[:50]], 1, 5) != key
    assert routing.predictor_key(train, test, [test, train.iloc[:50]], 0, 6) != key
    changed = train.assign(output_tokens=train["output_tokens"] + 1)
    assert routing.predictor_key(changed, test, [test, train.iloc[:50]], 0, 5) != key
    assert routing.predictor_key(train, test, [test, train.iloc[:60]], 0, 5) != key


def test_serve_on_another_model_with_the_paged_cache() -> None:
    """``--serve-on bloom-176b`` on the ServeGen config (no Bloom in its fleet): the default
    configuration's Bloom placement, paged KV by default (the profile's name kept for the
    executor; the training hash tells the KV rules apart), sizes fitted to Bloom's 2,048-token
    window; a model or KV mode that does not exist is a clear error."""
    from flows.routing import PERF_CSV, RoutingSpec, _profile, _requests

    cfg = load_config(ROOT / "configs/servegen.yaml")
    perf = PERF_CSV / "perf_model_4_models.csv"
    if not perf.exists():
        pytest.skip("shared perf profile not present")
    paged = _profile(cfg, "bloom-176b", "paged", perf)
    assert paged.kv_paging and paged.name == "B/a100-80gb/tp8"
    assert paged.max_context == 2048 and paged.kv_tokens < 64 * 2048
    reserve = _profile(cfg, "llama2-70b", "reserve", perf)
    assert not reserve.kv_paging and reserve.name == "A/a100-80gb/tp4"
    from dataclasses import replace

    from planner.sim import learn_router

    settings = learn_router.SearchSettings()
    assert learn_router.train_hash([], reserve, 8, settings) != learn_router.train_hash(
        [], replace(reserve, kv_paging=True), 8, settings
    )
    with pytest.raises(ValueError, match="no-such-model"):
        _profile(cfg, "no-such-model", "paged", perf)
    with pytest.raises(ValueError, match="--kv 'lru'"):
        _profile(cfg, "bloom-176b", "lru", perf)
    rows = pd.DataFrame(
        {
            "arrival_time": pd.date_range("2024-06-03", periods=3, freq="s"),
            "input_tokens": [5000, 100, 10],
            "output_tokens": [100, 3000, 5],
        }
    )
    req, _ = _requests(rows, paged, RoutingSpec(serve_on="bloom-176b"))
    assert req.prompt.tolist() == [1948, 100, 10] and req.output.tolist() == [100, 1024, 5]
    own, _ = _requests(rows, reserve, RoutingSpec())  # the pool's own model: sizes as logged
    assert own.prompt.tolist() == [5000, 100, 10] and own.output.tolist() == [100, 3000, 5]


def test_whole_prefill_scheduler_runs_at_its_own_load() -> None:
    """``--prefill whole``: vLLM v0's scheduler on the same placement (budget max(window,
    2,048)), a training hash of its own; a stated load is each server's own share of its
    sustainable rate, so the whole-prefill server (which sustains less on this mix) gets
    sparser arrivals; an unknown scheduler is an error."""
    from flows.routing import PERF_CSV, RoutingSpec, _profile, _requests
    from planner.sim import learn_router

    perf = PERF_CSV / "perf_model_4_models.csv"
    if not perf.exists():
        pytest.skip("shared perf profile not present")
    cfg = load_config(ROOT / "configs/servegen.yaml")
    chunked = _profile(cfg, "bloom-176b", "paged", perf)
    whole = _profile(cfg, "bloom-176b", "paged", perf, "whole")
    assert chunked.chunked_prefill and chunked.token_budget == 512
    assert not whole.chunked_prefill and whole.token_budget == 2048 and whole.kv_paging
    assert whole.prefill_tokens_per_s > chunked.prefill_tokens_per_s
    settings = learn_router.SearchSettings()
    hashes = {learn_router.train_hash([], p, 8, settings) for p in (chunked, whole)}
    assert len(hashes) == 2
    rows = pd.DataFrame(
        {
            "arrival_time": pd.date_range("2024-06-03", periods=50, freq="7s"),
            "input_tokens": np.arange(50) * 37 % 1900 + 10,
            "output_tokens": np.arange(50) * 11 % 300 + 1,
        }
    )
    spec = RoutingSpec(serve_on="bloom-176b", instances=2)
    (a, wa), (b, wb) = _requests(rows, chunked, spec), _requests(rows, whole, spec)
    for req, work in ((a, wa), (b, wb)):  # a 6-minute window: its mean runs at the load
        assert work.sum() / (2 * req.arrival_s.max()) == pytest.approx(spec.load)
    assert b.arrival_s[-1] > a.arrival_s[-1]
    with pytest.raises(ValueError, match="--prefill 'sarathi'"):
        _profile(cfg, "bloom-176b", "paged", perf, "sarathi")
