"""Per-instance token throughput derived from SageServe's measured performance profiles.

Source: ``sageserve_perf/perf_model_4_models.csv`` (kjain1810/SageServe). Units differ by row:

* models A and B (Llama2-70B, Bloom-176B): ``prompt_time`` in ms, ``token_time`` in ms per
  decode token, ``tensor_parallel`` as measured;
* models C and D (Llama3.1-8B, Llama3.2-3B): copied from second-valued files, so ``prompt_time``
  is in s, ``token_time`` is the *total* decode time of ``token_size`` tokens in s, and
  ``tensor_parallel`` was doubled.

:func:`normalise_profile` converts every row to ``prefill_ms`` (time to prefill the batch),
``tpot_ms`` (time per output token) and the true tensor-parallel degree.

Throughput at a tier's latency target (:func:`derive_throughput`), at the one request shape the
file varies batch size for (512 prompt tokens, 128 output tokens):

* prefill: ``θ_in = max_b  b·512 / prefill(b)`` over batch sizes with ``prefill(b) ≤ share·TTFT``
  (the other part of the TTFT target is left for queueing), where ``prefill(b)`` is taken as
  ``max(measured(b), b·measured(1))``: prefill is compute-bound, and rows of C/D report a flat
  prefill time for every batch size, which would otherwise promise 30× the compute of the GPU;
* decode: ``θ_out = max_b  b / tpot(b)`` over batch sizes with ``tpot(b) ≤ tier.tpot_ms``.

An instance time-shares prefill and decode, so a stream of ``in`` and ``out`` tokens/s needs
``in/θ_in + out/θ_out`` instances. Hardware without rows (C and D on H100) is estimated from the
median H100/A100 time ratio of A and B at the same tensor-parallel degree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PROFILE_MODELS = {
    "A": "llama2-70b",
    "B": "bloom-176b",
    "C": "llama3.1-8b",
    "D": "llama3.2-3b",
}
HARDWARE = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-80GB"}
SECOND_VALUED = frozenset({"C", "D"})
REF_PROMPT, REF_OUTPUT = 512, 128
PREFILL_SHARE_OF_TTFT = 0.5

_COLUMNS = [
    "model",
    "hardware",
    "prompt_size",
    "batch_size",
    "token_size",
    "prompt_time",
    "token_time",
    "tensor_parallel",
]


def read_profile(path: Path | str) -> pd.DataFrame:
    """Read the raw CSV and check it has the columns this conversion knows."""
    raw = pd.read_csv(path)
    missing = sorted(set(_COLUMNS) - set(raw.columns))
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return normalise_profile(raw[_COLUMNS])


def normalise_profile(raw: pd.DataFrame) -> pd.DataFrame:
    """Convert every row to ms and true tensor-parallel degree (see the module docstring)."""
    df = raw.copy()
    seconds = df["model"].isin(SECOND_VALUED)
    df["prefill_ms"] = np.where(seconds, df["prompt_time"] * 1000.0, df["prompt_time"])
    df["tpot_ms"] = np.where(
        seconds, df["token_time"] * 1000.0 / df["token_size"], df["token_time"]
    )
    df["tensor_parallel"] = np.where(
        seconds, df["tensor_parallel"] // 2, df["tensor_parallel"]
    ).astype(int)
    return df[
        [
            "model",
            "hardware",
            "tensor_parallel",
            "prompt_size",
            "token_size",
            "batch_size",
            "prefill_ms",
            "tpot_ms",
        ]
    ]


def batch_curve(profile: pd.DataFrame, model: str, hardware: str, tp: int) -> pd.DataFrame:
    """Median prefill and tpot per batch size at the reference shape (512 in, 128 out)."""
    sel = profile[
        (profile["model"] == model)
        & (profile["hardware"] == hardware)
        & (profile["tensor_parallel"] == tp)
        & (profile["prompt_size"] == REF_PROMPT)
        & (profile["token_size"] == REF_OUTPUT)
    ]
    if sel.empty:
        return _estimated_curve(profile, model, hardware, tp)
    curve = sel.groupby("batch_size")[["prefill_ms", "tpot_ms"]].median().sort_index()
    single = float(curve["prefill_ms"].iloc[0]) / float(curve.index[0])
    curve["prefill_ms"] = np.maximum(curve["prefill_ms"], curve.index.to_numpy() * single)
    return curve


def _estimated_curve(profile: pd.DataFrame, model: str, hardware: str, tp: int) -> pd.DataFrame:
    """A curve for hardware the file lacks, from the A100 curve and the A/B speed ratio."""
    base_hw = "a100-80gb"
    if hardware == base_hw:
        raise ValueError(f"no profile rows for model {model} on {hardware} with TP {tp}")
    base = batch_curve(profile, model, base_hw, tp)
    ratios = hardware_ratio(profile, hardware, base_hw)
    return base.assign(
        prefill_ms=base["prefill_ms"] * ratios["prefill_ms"],
        tpot_ms=base["tpot_ms"] * ratios["tpot_ms"],
    )


def hardware_ratio(profile: pd.DataFrame, hardware: str, base: str) -> dict[str, float]:
    """Median time ratio hardware/base over every (model, TP, shape, batch) both have."""
    keys = ["model", "tensor_parallel", "prompt_size", "token_size", "batch_size"]
    med = profile.groupby(["hardware", *keys])[["prefill_ms", "tpot_ms"]].median()
    if hardware not in med.index.get_level_values(0):
        raise ValueError(f"no profile rows for hardware {hardware}")
    joined = med.loc[hardware].join(med.loc[base], lsuffix="_hw", rsuffix="_base", how="inner")
    return {
        col: float((joined[f"{col}_hw"] / joined[f"{col}_base"]).median())
        for col in ("prefill_ms", "tpot_ms")
    }


@dataclass(frozen=True)
class DerivedThroughput:
    input_tokens_per_s: float
    output_tokens_per_s: float
    prefill_batch: int
    decode_batch: int
    meets_target: bool  # False when even batch 1 misses the tier's latency target


def derive_throughput(
    curve: pd.DataFrame, ttft_s: float | None, tpot_ms: float | None
) -> DerivedThroughput:
    """Best sustainable throughput of one instance under a tier's latency targets."""
    batches = curve.index.to_numpy()
    prefill = curve["prefill_ms"].to_numpy()
    tpot = curve["tpot_ms"].to_numpy()
    p_ok = (
        prefill <= ttft_s * 1000.0 * PREFILL_SHARE_OF_TTFT
        if ttft_s
        else np.ones_like(batches, bool)
    )
    d_ok = tpot <= tpot_ms if tpot_ms else np.ones_like(batches, bool)
    in_rate = batches * REF_PROMPT / (prefill / 1000.0)
    out_rate = batches / (tpot / 1000.0)
    p_idx = int(np.argmax(np.where(p_ok, in_rate, -1.0))) if p_ok.any() else 0
    d_idx = int(np.argmax(np.where(d_ok, out_rate, -1.0))) if d_ok.any() else 0
    return DerivedThroughput(
        input_tokens_per_s=float(in_rate[p_idx]),
        output_tokens_per_s=float(out_rate[d_idx]),
        prefill_batch=int(batches[p_idx]),
        decode_batch=int(batches[d_idx]),
        meets_target=bool(p_ok.any() and d_ok.any()),
    )


def derive_for_config(
    profile: pd.DataFrame,
    models: dict[str, dict[str, int]],
    hardware_of: dict[str, str],
    tiers: dict[str, tuple[float | None, float | None]],
) -> dict[str, dict[str, dict[str, DerivedThroughput]]]:
    """Throughput per model id → VM type id → tier id.

    ``models`` maps model id to {VM type id: tensor-parallel degree}; ``hardware_of`` maps VM type
    id to a profile hardware name; ``tiers`` maps tier id to (TTFT target s, TPOT cap ms).
    """
    letter_of = {model_id: letter for letter, model_id in PROFILE_MODELS.items()}
    out: dict[str, dict[str, dict[str, DerivedThroughput]]] = {}
    for model_id, placements in models.items():
        letter = letter_of.get(model_id)
        if letter is None:
            raise ValueError(f"model {model_id} has no rows in the performance profile")
        out[model_id] = {}
        for vm_id, tp in placements.items():
            curve = batch_curve(profile, letter, hardware_of[vm_id], tp)
            out[model_id][vm_id] = {
                tier_id: derive_throughput(curve, ttft, tpot)
                for tier_id, (ttft, tpot) in tiers.items()
            }
    return out
