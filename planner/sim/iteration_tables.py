"""The compiled loop's tables of one instance profile (:class:`~planner.sim.instance_step.Timing`),
made by the profile's own methods, so the loop and the fluid models charge the same seconds.
"""

from __future__ import annotations

import numpy as np

from planner.sim.instance_step import Timing
from planner.sim.profile import InstanceProfile

WATERMARK = 0.01  # vLLM's watermark: share of the KV blocks admissions leave free (paged)


def timing(profile: InstanceProfile, longest: int) -> Timing:
    """The loop's tables of ``profile`` for admitted requests of at most ``longest`` tokens
    (prompt + output; a recomputed prompt stays below it): ``prefill_s`` at every token count
    an iteration can carry and the decode time at every batch size, both by the profile's own
    methods. An iteration carries at most the budget, or one whole prompt beyond it (the
    first of a whole-prefill iteration is always admitted), and never more than a full batch
    of such requests (:mod:`planner.sim.instances`)."""
    batch = np.arange(profile.max_batch + 1, dtype=float)
    most = min(max(profile.token_budget, longest), profile.max_batch * (longest + 1))
    return Timing(
        prefill_s=profile.prefill_s(np.arange(most + 1, dtype=float)),
        decode_ms=profile.decode_base_ms(batch),
        context_tokens=np.asarray(profile.context_tokens, float),
        context_factor=np.asarray(profile.context_factor, float),
        max_batch=int(profile.max_batch),
        token_budget=int(profile.token_budget),
        kv_tokens=float(profile.kv_tokens),
        admit_kv=float(profile.kv_tokens) * (1 - WATERMARK),
        chunked=bool(profile.chunked_prefill),
        paged=bool(profile.kv_paging),
    )
