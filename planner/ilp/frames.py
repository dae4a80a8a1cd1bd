"""Row access for the plan's frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd


def rows(frame: pd.DataFrame) -> Iterator[Any]:
    """Rows as named tuples. Typed loosely on purpose: pandas-stubs types every field of
    ``itertuples`` as the union of all scalars, which no arithmetic type-checks against."""
    return iter(frame.itertuples(index=False))
