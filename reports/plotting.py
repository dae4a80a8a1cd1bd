"""Shared plotting helpers (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from planner.files import atomic_path, write_text_atomic

__all__ = ["plt", "save", "write_text"]

plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})


def save(fig: Figure, path: Path) -> Path:
    """Write a PNG atomically (temp file in the same folder, then rename)."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


write_text = write_text_atomic
