"""The perf-profile unit conversion and the throughput derivation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from planner.config import FleetConfig
from planner.config.throughput import (
    batch_curve,
    derive_for_config,
    derive_throughput,
    hardware_ratio,
    normalise_profile,
    read_profile,
)


def _raw(rows: list[tuple[str, str, int, int, int, float, float, int]]) -> pd.DataFrame:
    cols = [
        "model",
        "hardware",
        "prompt_size",
        "batch_size",
        "token_size",
        "prompt_time",
        "token_time",
        "tensor_parallel",
    ]
    return pd.DataFrame(rows, columns=cols)


def test_millisecond_rows_are_kept_and_second_rows_converted() -> None:
    raw = _raw(
        [
            ("A", "a100-80gb", 512, 1, 128, 126.96, 44.99, 4),  # ms, per-token decode
            ("C", "a100-80gb", 512, 1, 128, 0.028, 1.084, 4),  # s, total decode of 128 tokens
            ("D", "a100-80gb", 512, 1, 1024, 0.020, 5.552, 8),
        ]
    )
    out = normalise_profile(raw)
    a, c, d = out.itertuples(index=False)
    assert (a.prefill_ms, a.tpot_ms, a.tensor_parallel) == (126.96, 44.99, 4)
    assert c.prefill_ms == pytest.approx(28.0)
    assert c.tpot_ms == pytest.approx(1084 / 128)  # 8.47 ms per token
    assert c.tensor_parallel == 2  # the copied files doubled it
    assert d.tpot_ms == pytest.approx(5552 / 1024)
    assert d.tensor_parallel == 4


def test_derivation_picks_the_best_batch_within_the_targets() -> None:
    curve = pd.DataFrame(
        {"prefill_ms": [100.0, 250.0, 600.0], "tpot_ms": [40.0, 50.0, 70.0]},
        index=pd.Index([1, 2, 4], name="batch_size"),
    )
    # TTFT 1 s → prefill budget 500 ms: batches 1 and 2 fit; 1 has the better prefill rate.
    # TPOT ≤ 60 ms: batches 1 and 2 fit; 2 has the better decode rate.
    d = derive_throughput(curve, ttft_s=1.0, tpot_ms=60.0)
    assert d.prefill_batch == 1 and d.input_tokens_per_s == pytest.approx(512 / 0.1)
    assert d.decode_batch == 2 and d.output_tokens_per_s == pytest.approx(2 / 0.05)
    assert d.meets_target
    loose = derive_throughput(curve, ttft_s=None, tpot_ms=None)
    assert loose.decode_batch == 4 and loose.output_tokens_per_s == pytest.approx(4 / 0.07)
    impossible = derive_throughput(curve, ttft_s=0.1, tpot_ms=10.0)
    assert not impossible.meets_target


def test_prefill_is_never_faster_than_batch_one_sequentially() -> None:
    raw = _raw(
        [
            ("C", "a100-80gb", 512, 1, 128, 0.028, 1.084, 4),
            ("C", "a100-80gb", 512, 8, 128, 0.047, 1.307, 4),  # flat prefill in the C rows
        ]
    )
    curve = batch_curve(normalise_profile(raw), "C", "a100-80gb", 2)
    assert curve.loc[8, "prefill_ms"] == pytest.approx(8 * 28.0)


def test_default_config_throughput_matches_the_measured_profile(
    cfg: FleetConfig, shared_data: Path
) -> None:
    profile = read_profile(shared_data / "sageserve_perf" / "perf_model_4_models.csv")
    models = {m.id: {g: p.tensor_parallel for g, p in m.vm_types.items()} for m in cfg.models}
    hardware = {"a100x8": "a100-80gb", "h100x8": "h100-80gb"}
    tiers = {t.id: (t.ttft_p95_s, t.tpot_ms) for t in cfg.tiers}
    derived = derive_for_config(profile, models, hardware, tiers)
    for model in cfg.models:
        for vm_id, placement in model.vm_types.items():
            for tier_id, configured in placement.throughput.items():
                d = derived[model.id][vm_id][tier_id]
                assert configured.input == pytest.approx(d.input_tokens_per_s, abs=0.06)
                assert configured.output == pytest.approx(d.output_tokens_per_s, abs=0.06)
                assert d.meets_target


def test_h100_is_faster_than_a100_in_the_profile(shared_data: Path) -> None:
    profile = read_profile(shared_data / "sageserve_perf" / "perf_model_4_models.csv")
    ratio = hardware_ratio(profile, "h100-80gb", "a100-80gb")
    assert 0.3 < ratio["prefill_ms"] < 0.7
    assert 0.5 < ratio["tpot_ms"] < 0.9
