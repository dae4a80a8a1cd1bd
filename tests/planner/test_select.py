"""Champion / challenger selection on hand-made fold scores."""

from __future__ import annotations

import pandas as pd

from planner.forecast.select import (
    SelectionSettings,
    champion_of,
    choose,
    deployed_scores,
    summary,
)

ORIGINS = [pd.Timestamp("2024-06-10") + pd.Timedelta(days=i) for i in range(5)]
S = SelectionSettings(margin=0.05, min_folds=3, default="ets_theta")


def _folds(table: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (series, forecaster), values in table.items():
        for origin, mase in zip(ORIGINS, values, strict=False):
            rows.append(
                {
                    "series": series,
                    "forecaster": forecaster,
                    "origin": origin,
                    "mase": mase,
                    "scaled_pinball": mase / 2,
                    "in_band": 0.95,
                    "below_p95": 0.95,
                    "conformal": True,
                }
            )
    return pd.DataFrame(rows)


def test_default_champion_keeps_its_place_unless_clearly_beaten() -> None:
    close = _folds(
        {("a", "snaive24"): [1, 1, 1], ("a", "ets_theta"): [0.8] * 3, ("a", "theta"): [0.78] * 3}
    )
    assert champion_of(close, S) == "ets_theta"  # 2.5 % better is within the margin
    clear = _folds(
        {("a", "snaive24"): [1, 1, 1], ("a", "ets_theta"): [0.8] * 3, ("a", "theta"): [0.6] * 3}
    )
    assert champion_of(clear, S) == "theta"


def test_challenger_needs_margin_and_folds() -> None:
    table = {
        ("a", "snaive24"): [1, 1, 1, 1],
        ("a", "ets_theta"): [0.8] * 4,
        ("a", "mstl"): [0.5] * 4,
        ("b", "snaive24"): [1, 1, 1, 1],
        ("b", "ets_theta"): [0.8] * 4,
        ("b", "mstl"): [0.5, 0.5],
        ("c", "snaive24"): [1, 1, 1, 1],
        ("c", "ets_theta"): [0.8] * 4,
        ("c", "theta"): [0.78] * 4,
        ("d", "snaive24"): [0.5] * 4,
        ("d", "ets_theta"): [0.55] * 4,
    }
    for s in ("f", "g"):  # elsewhere mstl and theta are poor: ets_theta stays the champion
        table |= {
            (s, "snaive24"): [1] * 4,
            (s, "ets_theta"): [0.8] * 4,
            (s, "mstl"): [2.0] * 4,
            (s, "theta"): [2.0] * 4,
        }
    folds = _folds(table)
    assert champion_of(folds, S) == "ets_theta"
    chosen = choose(folds, ["a", "b", "c", "d", "e"], S).set_index("series")
    assert chosen.loc["a", "forecaster"] == "mstl"  # 37 % better over 4 folds
    assert chosen.loc["b", "forecaster"] == "ets_theta"  # only 2 shared folds
    assert chosen.loc["c", "forecaster"] == "ets_theta"  # 2.5 % is within the margin
    assert chosen.loc["d", "forecaster"] == "snaive24"  # the baseline is beaten or chosen
    assert "ets_theta" in chosen.loc["d", "reason"]
    assert chosen.loc["e", "reason"] == "no backtest folds"


def test_deployed_scores_use_only_earlier_folds() -> None:
    # mstl is better on the last fold only: a rule that peeked would pick it there.
    folds = _folds(
        {
            ("a", "snaive24"): [1, 1, 1, 1, 1],
            ("a", "ets_theta"): [0.8, 0.8, 0.8, 0.8, 0.8],
            ("a", "mstl"): [0.9, 0.9, 0.9, 0.9, 0.1],
        }
    )
    deployed = deployed_scores(folds, S)
    last = deployed[deployed["origin"] == ORIGINS[-1]].iloc[0]
    assert last["forecaster"] == "ets_theta" and last["mase"] == 0.8
    s = summary(deployed)
    assert s["improvement_vs_snaive24"] > 0.19
