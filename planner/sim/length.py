"""Response-length predictor: (input tokens, tenant, model, tier) → output-length bucket.

A gradient-boosted tree classifier (scikit-learn's ``HistGradientBoostingClassifier``, tenant,
model and tier as categorical features) over output-length buckets. The router uses the expected
output ``Σ_k P(bucket k) · mean output of bucket k in training``.

Scoring is out of sample by time: the model is fitted on rows before a cut and scored on rows at
or after it (the routing evaluation trains on rows before its window), so it never sees a row it
is scored on; the score is the accuracy per true bucket and overall, the log loss of the
predicted probabilities (what the router's expected output rests on), and a *ceiling*: the
accuracy of the modal bucket of each tenant × 6-hour window of the scored rows themselves (in
sample, so no predictor from the tenant and the time of day beats it; it shows how much the
features can carry when, as in ServeGen-derived logs, a request's output is drawn independently
of its input given the client and the window).

The hour of day is not a feature: on the ServeGen-derived log it let the trees learn the
training days' per-window mixes (log loss out of sample 0.93 with it, 0.56 without, accuracy
0.743 → 0.752; ``configs/servegen.yaml`` warehouse, 362 k training rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

Array = npt.NDArray[np.float64]
BUCKET_EDGES = (64, 256, 1024)  # output tokens: [1, 64), [64, 256), [256, 1024), [1024, ∞)
CATEGORIES = ("tenant", "model", "tier")


def bucket_of(output: npt.ArrayLike) -> npt.NDArray[np.int64]:
    edges = np.asarray(BUCKET_EDGES)
    return np.asarray(np.searchsorted(edges, np.asarray(output), side="right"), np.int64)


def bucket_names() -> list[str]:
    lo = (1, *BUCKET_EDGES)
    hi = (*BUCKET_EDGES, None)
    return [f"{a}-{b - 1}" if b else f"{a}+" for a, b in zip(lo, hi, strict=True)]


@dataclass
class LengthPredictor:
    """Fitted classifier with its category vocabularies and per-bucket training means."""

    model: HistGradientBoostingClassifier
    vocab: dict[str, list[str]]
    bucket_mean: Array
    seed: int
    trained_rows: int

    def _x(self, rows: pd.DataFrame) -> npt.NDArray[np.float64]:
        cols = [np.log1p(rows["input_tokens"].to_numpy(float))]
        for c in CATEGORIES:
            codes = {v: i for i, v in enumerate(self.vocab[c])}
            vals = rows[c].fillna("").astype(str)
            cols.append(vals.map(codes).fillna(-1).to_numpy(float))  # unseen: missing
        x = np.stack(cols, axis=1)
        x[x == -1] = np.nan
        return x

    def proba(self, rows: pd.DataFrame) -> npt.NDArray[np.float64]:
        p = np.zeros((len(rows), len(self.bucket_mean)))
        p[:, self.model.classes_] = self.model.predict_proba(self._x(rows))
        return p

    def expected_output(self, rows: pd.DataFrame) -> Array:
        return np.asarray(self.proba(rows) @ self.bucket_mean, float)


def fit(rows: pd.DataFrame, seed: int = 0, max_iter: int = 100) -> LengthPredictor:
    """Fit on ``rows`` (columns arrival_time, input_tokens, output_tokens, tenant, model, tier)."""
    if len(rows) == 0:
        raise ValueError("no rows to train the length predictor on")
    vocab = {c: sorted(rows[c].fillna("").astype(str).unique().tolist()) for c in CATEGORIES}
    y = bucket_of(rows["output_tokens"].to_numpy())
    k = len(BUCKET_EDGES) + 1
    out = rows["output_tokens"].to_numpy(float)
    overall = float(out.mean())
    mean = np.array([out[y == b].mean() if (y == b).any() else overall for b in range(k)])
    clf = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=0.1,
        max_leaf_nodes=31,
        categorical_features=[1, 2, 3],
        random_state=seed,
        early_stopping=False,
    )
    pred = LengthPredictor(clf, vocab, mean, seed, len(rows))
    clf.fit(pred._x(rows), y)
    return pred


@dataclass(frozen=True)
class Score:
    bucket: list[str]
    rows: list[int]
    accuracy: list[float]  # per true bucket (recall)
    overall: float
    majority_baseline: float  # accuracy of always predicting the training majority bucket
    train_rows: int
    test_rows: int
    log_loss: float = float("nan")  # of the predicted bucket probabilities
    ceiling: float = float("nan")  # modal bucket per tenant × 6-h window, in sample
    ceiling_accuracy: list[float] = field(default_factory=list)  # the same, per true bucket


def ceiling(rows: pd.DataFrame, window: str = "6h") -> tuple[float, list[float]]:
    """Accuracy (overall, per true bucket) of predicting each row's bucket as the most common
    one of its tenant in its ``window`` of ``rows`` (in sample: an upper bound for features
    that are only the tenant and the time)."""
    y = bucket_of(rows["output_tokens"].to_numpy())
    key = pd.DataFrame(
        {
            "tenant": rows["tenant"].fillna("").astype(str).to_numpy(),
            "w": pd.to_datetime(rows["arrival_time"]).dt.floor(window).to_numpy(),
            "b": y,
        }
    )
    counts = key.groupby(["tenant", "w", "b"]).size().rename("n").reset_index()
    modal = counts.sort_values(["n", "b"], ascending=[False, True]).drop_duplicates(["tenant", "w"])
    yhat = key.merge(modal, on=["tenant", "w"], how="left", suffixes=("", "_m"))["b_m"].to_numpy()
    k = len(BUCKET_EDGES) + 1
    per = [float((yhat[y == b] == b).mean()) if (y == b).any() else float("nan") for b in range(k)]
    return float((yhat == y).mean()), per


def score(pred: LengthPredictor, train: pd.DataFrame, test: pd.DataFrame) -> Score:
    """Accuracy per true bucket on ``test`` (rows the model never saw)."""
    y = bucket_of(test["output_tokens"].to_numpy())
    p = pred.proba(test)
    yhat = np.argmax(p, axis=1)
    top, top_per = ceiling(test)
    k = len(BUCKET_EDGES) + 1
    majority = int(np.bincount(bucket_of(train["output_tokens"].to_numpy()), minlength=k).argmax())
    return Score(
        bucket=bucket_names(),
        rows=[int((y == b).sum()) for b in range(k)],
        accuracy=[
            float((yhat[y == b] == b).mean()) if (y == b).any() else float("nan") for b in range(k)
        ],
        overall=float((yhat == y).mean()),
        majority_baseline=float((y == majority).mean()),
        train_rows=len(train),
        test_rows=len(test),
        log_loss=float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)))),
        ceiling=top,
        ceiling_accuracy=top_per,
    )
