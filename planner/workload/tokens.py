"""Empirical token-length distributions from the Azure LLM inference trace 2023.

Source: Azure/AzurePublicDataset ``AzureLLMInferenceTrace_{code,conv}.csv`` (CC-BY-4.0; cite the
Splitwise paper, ISCA 2024). Sampling draws whole rows, so the input/output correlation of the
trace is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

AZURE_FILES = {
    "conversation": "AzureLLMInferenceTrace_conv.csv",
    "code": "AzureLLMInferenceTrace_code.csv",
}


@dataclass(frozen=True)
class TokenSampler:
    """(input, output) token pairs per trace kind, drawn jointly."""

    pairs: dict[str, np.ndarray]  # kind -> int64 array of shape (n, 2)

    @classmethod
    def from_azure(cls, directory: Path | str) -> TokenSampler:
        directory = Path(directory)
        pairs: dict[str, np.ndarray] = {}
        for kind, name in AZURE_FILES.items():
            path = directory / name
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: Azure 2023 trace not found (expected ../shared/data/azure2023)"
                )
            df = pd.read_csv(path, usecols=["ContextTokens", "GeneratedTokens"])
            pairs[kind] = df.to_numpy(dtype=np.int64)
        return cls(pairs)

    def sample(self, kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        rows = self.pairs[kind]
        idx = rng.integers(0, len(rows), size=n)
        picked = rows[idx]
        return picked[:, 0], picked[:, 1]

    def mean(self, kind: str) -> tuple[float, float]:
        rows = self.pairs[kind]
        return float(rows[:, 0].mean()), float(rows[:, 1].mean())
