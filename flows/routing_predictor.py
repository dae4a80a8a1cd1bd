"""The routing scenario's length predictor: fitted once per warehouse data and seed, its
out-of-sample score and expected outputs cached as numbers (:mod:`flows.routing`)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner.files import atomic_path
from planner.sim import length

log = logging.getLogger(__name__)

PREDICTOR_CACHE_VERSION = 1  # bump when length.fit or length.score change what they return
_PREDICTOR_COLUMNS = ["arrival_time", "tenant", "model", "tier", "input_tokens", "output_tokens"]


def predictor_key(
    train: pd.DataFrame,
    scored: pd.DataFrame,
    predicted: list[pd.DataFrame],
    seed: int,
    max_iter: int = 100,
) -> str:
    """Hash of everything the length predictor's figures depend on: the rows it is fitted on,
    the rows it is scored on and the rows it predicts (each with every column the fit and the
    score read), the seed, the boosting rounds and :data:`PREDICTOR_CACHE_VERSION`."""
    h = hashlib.sha256(f"v{PREDICTOR_CACHE_VERSION}/seed{seed}/iter{max_iter}".encode())
    for i, df in enumerate([train, scored, *predicted]):
        h.update(f"/{i}:{len(df)}".encode())
        cols = df[_PREDICTOR_COLUMNS]
        h.update(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def predictions(
    train: pd.DataFrame,
    scored: pd.DataFrame,
    predicted: list[pd.DataFrame],
    seed: int,
    cache_dir: Path | None,
    max_iter: int = 100,
) -> tuple[length.Score, list[np.ndarray]]:
    """The length predictor fitted on ``train`` (seed ``seed``): its out-of-sample score on
    ``scored`` and its expected output for each frame of ``predicted``. Stored in
    ``cache_dir/length-<key>.npz`` (:func:`predictor_key`; numbers and the score's JSON, no
    pickled model) and read from there when the key matches, so the ~40-s fit runs once per
    warehouse data and seed; a file that cannot be read is refitted over."""
    key = predictor_key(train, scored, predicted, seed, max_iter)
    path = cache_dir / f"length-{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                score = length.Score(**json.loads(str(z["score"])))
                est = [np.asarray(z[f"est{i}"], float) for i in range(len(predicted))]
            if all(len(e) == len(df) for e, df in zip(est, predicted, strict=True)):
                log.info("length predictor: figures read from %s", path)
                return score, est
        except (OSError, KeyError, ValueError, TypeError) as exc:
            log.warning("%s unreadable (%s): refitting the length predictor", path, exc)
    predictor = length.fit(train, seed=seed, max_iter=max_iter)
    score = length.score(predictor, train, scored)
    est = [predictor.expected_output(df) for df in predicted]
    if path is not None:
        arrays: dict[str, Any] = {f"est{i}": e for i, e in enumerate(est)}
        arrays["score"] = np.array(json.dumps(asdict(score)))
        with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to other names
            np.savez(tmp, **arrays)
    return score, est
