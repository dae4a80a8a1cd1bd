"""Iteration times of one model instance, from SageServe's measured performance profile.

The profile (``sageserve_perf/perf_model_4_models.csv``) is read and converted to ms by
:func:`planner.config.throughput.read_profile` (the units trap of rows C/D is handled there and
only there). From it, per (model, hardware, tensor-parallel degree):

* **prefill**: the time of one prefill iteration as a function of the prompt tokens it processes
  (Σ prompt over the requests admitted together). Knots: the batch-size rows at 512 prompt
  tokens (b·512 tokens, with :func:`batch_curve`'s compute-bound correction) and the prompt-size
  rows at batch 1; median per token count, made non-decreasing; linear between knots and
  proportional (the last knot's ms per token) beyond the last one;
* **decode**: time per output token of a decode iteration as a function of the batch size
  (batch-size rows at 512 prompt tokens, linear between knots), times a context factor: the
  batch-1 time per token at the batch's mean context length over the time at 512 tokens
  (prompt-size rows), so long contexts decode slower;
  Below the first knot (128 tokens) the line through the first two knots is extended down to
  its intercept (the cost of one forward pass, close to the batch-1 decode time: 48.8 vs 45.0
  ms on Llama2-70B/A100), so a short chunk or a few decode tokens are not charged 128 tokens;
* **limits**: at most the largest measured batch runs at once (no extrapolation beyond the
  data), and the batch's KV cache fits in memory: ``kv_tokens = (TP · GPU memory · 0.9 −
  weights) / bytes per token``; a request reserves ``prompt + output`` tokens on admission;
* **token budget** of one iteration (chunked prefill, :mod:`planner.sim.instances`):
  ``TOKEN_BUDGET`` = 512 tokens by default. Chosen from the profile: 512 is the knee of the
  prefill curve, the smallest power of two that keeps ≥ 89 % of the best prefill rate on all
  eight placements (Llama2-70B/A100: 4.03 tokens/ms at 512 vs 4.26 at 1,024, the best), while a
  full iteration stays near 2.8× the batch-1 decode (127 vs 45 ms); 2,048 would gain 4 %
  prefill throughput there (11 % at most, Bloom-176B/A100) for 487-ms iterations, eight times
  the IW-F TPOT target of 60 ms. It is also the budget Sarathi-Serve used for strict latency
  targets and vLLM's first chunked-prefill default. :meth:`InstanceProfile.whole_prefill` is
  the same instance under vLLM v0's default scheduler instead (no chunking, prefill-only
  iterations pausing the decodes, a budget of ``max(context window, 2048)`` tokens).

Hardware without rows (C/D on H100) is scaled from A100 by the A/B time ratio, as
:mod:`planner.config.throughput` does for the throughput figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.config.models import FleetConfig
from planner.config.throughput import (
    HARDWARE,
    PROFILE_MODELS,
    REF_OUTPUT,
    REF_PROMPT,
    batch_curve,
    hardware_ratio,
    read_profile,
)

Array = npt.NDArray[np.float64]

# KV-cache bytes per token: 2 (K and V) × layers × KV heads × head dim × 2 bytes (fp16), from
# each model's published config.json (Llama2-70B: 80 layers, 8 KV heads (GQA), 128; Bloom-176B:
# 70 layers, 112 heads (MHA), 128; Llama3.1-8B: 32, 8, 128; Llama3.2-3B: 28, 8, 128).
KV_BYTES_PER_TOKEN = {
    "A": 2 * 80 * 8 * 128 * 2,
    "B": 2 * 70 * 112 * 128 * 2,
    "C": 2 * 32 * 8 * 128 * 2,
    "D": 2 * 28 * 8 * 128 * 2,
}
# Context window (max_position_embeddings of each model's published config.json; vLLM's
# max_model_len defaults to it and refuses longer requests): Llama-2-70B 4,096, BLOOM-176B
# 2,048, Llama-3.1-8B and Llama-3.2-3B 131,072.
MAX_CONTEXT = {"A": 4096, "B": 2048, "C": 131072, "D": 131072}
GPU_MEMORY_UTILISATION = 0.9  # vLLM's default share of GPU memory for weights + KV cache
# tokens (decodes + prefill chunks) one iteration processes: vLLM's max_num_batched_tokens
# with chunked prefill (module docstring: why 512)
TOKEN_BUDGET = 512
WHOLE_PREFILL_MIN = 2048  # vLLM v0's least max_num_batched_tokens without chunking


@dataclass(frozen=True)
class InstanceProfile:
    """Iteration times and limits of one instance (see the module docstring)."""

    name: str
    prefill_tokens: Array  # knots: prompt tokens processed in one prefill iteration
    prefill_ms: Array  # iteration time at each knot
    decode_batch: Array  # knots: batch sizes
    decode_ms: Array  # time of one decode iteration at each batch size (512-token context)
    context_tokens: Array  # knots: context length
    context_factor: Array  # decode time multiplier at each context length (1 at 512)
    max_batch: int
    kv_tokens: float
    token_budget: int = TOKEN_BUDGET  # tokens one iteration processes (chunked prefill)
    max_context: int = 1 << 30  # prompt + output tokens a request may have (context window)
    # KV cache managed as vLLM's paged cache (allocated as tokens are computed, recompute
    # preemption) rather than reserved for prompt + output at admission: planner.sim.instance_step
    kv_paging: bool = False
    # prompts in chunks beside the decodes (Sarathi-Serve), or whole in prefill-only
    # iterations that pause the decodes (vLLM v0's default scheduler): planner.sim.instances
    chunked_prefill: bool = True

    def whole_prefill(self) -> InstanceProfile:
        """This instance under vLLM v0's default scheduler (chunked prefill off): whole
        prompts, prefill-only iterations first, ``max_num_batched_tokens = max(context
        window, 2048)`` (vLLM's default when chunking is off)."""
        return replace(
            self, chunked_prefill=False, token_budget=max(self.max_context, WHOLE_PREFILL_MIN)
        )

    def prefill_s(self, tokens: npt.ArrayLike) -> Array:
        """Seconds of a forward pass over ``tokens`` tokens (prompt chunks, plus the decode
        tokens of a mixed iteration): linear between knots, the first segment's line below
        the first knot (never below 0), proportional beyond the last."""
        x, y = self.prefill_tokens, self.prefill_ms
        slope = y[-1] / x[-1]
        t = np.asarray(tokens, dtype=float)
        first = (y[1] - y[0]) / (x[1] - x[0]) if len(x) > 1 else 0.0
        below = np.maximum(y[0] - first * (x[0] - t), 0.0)
        ms = np.where(t <= x[-1], np.where(t < x[0], below, np.interp(t, x, y)), t * slope)
        return np.asarray(ms / 1000.0, dtype=float)

    def decode_s(self, batch: npt.ArrayLike, mean_context: npt.ArrayLike) -> Array:
        """Seconds of a decode iteration of ``batch`` requests at ``mean_context`` tokens:
        :meth:`decode_base_ms` × the context factor / 1000 (the compiled reference loop,
        :mod:`planner.sim.instance_step`, computes the same product)."""
        factor = np.interp(
            np.asarray(mean_context, float), self.context_tokens, self.context_factor
        )
        return np.asarray(self.decode_base_ms(batch) * factor / 1000.0, dtype=float)

    def decode_base_ms(self, batch: npt.ArrayLike) -> Array:
        """Milliseconds of a decode iteration of ``batch`` requests at a 512-token context."""
        base = np.interp(np.asarray(batch, float), self.decode_batch, self.decode_ms)
        return np.asarray(base, dtype=float)

    @property
    def prefill_tokens_per_s(self) -> float:
        """Best prefill rate: the best tokens per second of an iteration within the budget."""
        tokens = np.arange(1, self.token_budget + 1, dtype=float)
        return float((tokens / self.prefill_s(tokens)).max())

    @property
    def decode_tokens_per_s(self) -> float:
        """Best decode rate: b / decode time at the largest useful batch (512-token context)."""
        b = np.arange(1, self.max_batch + 1, dtype=float)
        return float((b / self.decode_s(b, np.full_like(b, REF_PROMPT))).max())

    def busy_s(self, prompt: npt.ArrayLike, output: npt.ArrayLike) -> Array:
        """Seconds of one instance at its best rates that a request's tokens take: the unit of
        the pool utilisation ρ = Σ busy_s / (instances × duration)."""
        return np.asarray(
            np.asarray(prompt) / self.prefill_tokens_per_s
            + np.asarray(output) / self.decode_tokens_per_s,
            dtype=float,
        )


def _knots(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Array, Array]:
    """Median y per x, sorted, y made non-decreasing (measurement noise is not a speed-up)."""
    s = pd.Series(np.asarray(y, float)).groupby(np.asarray(x, float)).median().sort_index()
    return s.index.to_numpy(float), np.maximum.accumulate(s.to_numpy(float))


def _prompt_rows(profile: pd.DataFrame, letter: str, hardware: str, tp: int) -> pd.DataFrame:
    """Median prefill and tpot per prompt size at batch 1, 128 output tokens."""

    def rows(hw: str) -> pd.DataFrame:
        sel = profile[
            (profile["model"] == letter)
            & (profile["hardware"] == hw)
            & (profile["tensor_parallel"] == tp)
            & (profile["batch_size"] == 1)
            & (profile["token_size"] == REF_OUTPUT)
        ]
        return sel.groupby("prompt_size")[["prefill_ms", "tpot_ms"]].median().sort_index()

    own = rows(hardware)
    if not own.empty:
        return own
    base = rows("a100-80gb")
    if base.empty:
        raise ValueError(f"no profile rows for model {letter} with TP {tp}")
    ratio = hardware_ratio(profile, hardware, "a100-80gb")
    return base.assign(
        prefill_ms=base["prefill_ms"] * ratio["prefill_ms"],
        tpot_ms=base["tpot_ms"] * ratio["tpot_ms"],
    )


def instance_profile(
    profile: pd.DataFrame,
    letter: str,
    hardware: str,
    tp: int,
    gpu_memory_gb: float,
    weights_gb: float,
) -> InstanceProfile:
    """The :class:`InstanceProfile` of model ``letter`` (A-D) on ``hardware`` at TP ``tp``."""
    curve = batch_curve(profile, letter, hardware, tp)
    prompts = _prompt_rows(profile, letter, hardware, tp)
    b = curve.index.to_numpy(float)
    px, py = _knots(
        np.r_[b * REF_PROMPT, prompts.index.to_numpy(float)],
        np.r_[curve["prefill_ms"].to_numpy(float), prompts["prefill_ms"].to_numpy(float)],
    )
    dx, dy = _knots(b, curve["tpot_ms"].to_numpy(float))
    cx, cy = _knots(prompts.index.to_numpy(float), prompts["tpot_ms"].to_numpy(float))
    cy = cy / float(np.interp(REF_PROMPT, cx, cy))
    kv_gb = tp * gpu_memory_gb * GPU_MEMORY_UTILISATION - weights_gb
    if kv_gb <= 0:
        raise ValueError(f"model {letter} does not fit on {tp} × {gpu_memory_gb} GB")
    return InstanceProfile(
        name=f"{letter}/{hardware}/tp{tp}",
        prefill_tokens=px,
        prefill_ms=py,
        decode_batch=dx,
        decode_ms=dy,
        context_tokens=cx,
        context_factor=cy,
        max_batch=int(b.max()),
        kv_tokens=kv_gb * 1e9 / KV_BYTES_PER_TOKEN[letter],
        max_context=MAX_CONTEXT[letter],
    )


def fit_context(
    prompt: npt.ArrayLike, output: npt.ArrayLike, max_context: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Request sizes as a deployment with a ``max_context``-token window receives them: the
    client keeps the most recent ``max_context − output`` prompt tokens (output first capped
    at half the window). Used to map a trace recorded on long-context models (ServeGen's) onto
    a model with a short window instead of sending requests the server would refuse."""
    out = np.minimum(np.asarray(output, np.int64), max_context // 2)
    inp = np.minimum(np.asarray(prompt, np.int64), max_context - out)
    return np.maximum(inp, 1), np.maximum(out, 1)


def profiles_for_config(
    cfg: FleetConfig, profile_csv: Path | str
) -> dict[tuple[str, str], InstanceProfile]:
    """One :class:`InstanceProfile` per (model id, VM type id) placement of the fleet."""
    profile = read_profile(profile_csv)
    letter_of = {model_id: letter for letter, model_id in PROFILE_MODELS.items()}
    hw_of = {v: k for k, v in HARDWARE.items()}
    out: dict[tuple[str, str], InstanceProfile] = {}
    for m in cfg.model_ids:
        model = cfg.model(m)
        if m not in letter_of:
            raise ValueError(f"model {m} has no rows in the performance profile")
        for g, placement in model.vm_types.items():
            vm = cfg.vm_type(g)
            out[(m, g)] = instance_profile(
                profile,
                letter_of[m],
                hw_of[vm.gpu],
                placement.tensor_parallel,
                vm.gpu_memory_gb,
                model.weights_gb,
            )
    return out
