"""The request trace the instance model replays and what it returns per request
(:mod:`planner.sim.instances`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Requests:
    """A trace of single requests (any order; times in seconds from the start)."""

    arrival_s: Array
    prompt: IntArray
    output: IntArray
    tier: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    tenant: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if len(self.prompt) != n or len(self.output) != n:
            raise ValueError("arrival_s, prompt and output must have the same length")
        if n and (np.min(self.prompt) < 1 or np.min(self.output) < 1):
            raise ValueError("every request needs at least one prompt and one output token")
        for name in ("tier", "tenant"):
            if len(getattr(self, name)) == 0:
                object.__setattr__(self, name, np.zeros(n, np.int64))


@dataclass(frozen=True)
class Served:
    """Per request (trace order): the instance (``REJECT`` if turned away), the time of its
    first and last token (inf if never); and the iterations or runs of identical iterations
    simulated, over all instances."""

    instance: IntArray
    arrival_s: Array
    first_token_s: Array
    finish_s: Array
    output: IntArray
    steps: int

    @property
    def ttft_s(self) -> Array:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> Array:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> Array:
        """Mean time per output token after the first (0 for one-token outputs)."""
        with np.errstate(invalid="ignore"):
            return np.where(
                self.output > 1,
                (self.finish_s - self.first_token_s) / np.maximum(self.output - 1, 1),
                0.0,
            )
