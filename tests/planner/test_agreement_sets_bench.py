"""bench/agreement_sets.py (issue #13): the agreement's summaries over many traces."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.agreement_sets import SETS, errors, run, signed


def _row(trace: str, u: float, tier: str, ref: float, fluid: float, minute: float) -> dict:
    return {
        "trace": trace,
        "utilisation": u,
        "tier": tier,
        "reference_sla": ref,
        "fluid_sla": fluid,
        "minute_sla": minute,
    }


ROWS = [
    _row("a", 0.5, "IW-F", 0.90, 0.905, 0.88),  # fluid +0.5, minute −2
    _row("b", 0.5, "IW-F", 0.80, 0.785, 0.83),  # fluid −1.5, minute +3
    _row("a", 0.95, "IW-N", 0.40, 0.37, 0.40),  # fluid −3, minute 0
    _row("b", 0.95, "IW-N", 0.50, 0.52, 0.51),  # fluid +2, minute +1 (on the line: within)
]


def test_errors_count_rows_within_one_point_and_take_mean_and_largest() -> None:
    e = errors(ROWS)
    assert e["rows"] == 4
    assert e["fluid_within_1_point"] == 1
    assert e["fluid_mean_abs_error_points"] == pytest.approx((0.5 + 1.5 + 3.0 + 2.0) / 4, abs=0.01)
    assert e["fluid_max_abs_error_points"] == pytest.approx(3.0)  # the size of −3, not +2
    assert e["minute_within_1_point"] == 2
    assert e["minute_mean_abs_error_points"] == pytest.approx((2.0 + 3.0 + 0.0 + 1.0) / 4)
    assert e["minute_max_abs_error_points"] == pytest.approx(3.0)


def test_signed_errors_keep_the_sign_per_tier_and_utilisation() -> None:
    got = {(r["tier"], r["utilisation"]): r for r in signed(ROWS)}
    assert set(got) == {("IW-F", 0.5), ("IW-N", 0.95)}
    assert got[("IW-F", 0.5)]["traces"] == 2
    # +0.5 and −1.5 average to −0.5 where the absolute errors average to 1
    assert got[("IW-F", 0.5)]["fluid_signed_points"] == pytest.approx(-0.5)
    assert got[("IW-F", 0.5)]["minute_signed_points"] == pytest.approx(0.5)
    assert got[("IW-N", 0.95)]["fluid_signed_points"] == pytest.approx(-0.5)  # −3 and +2


def test_the_training_traces_share_no_day_or_seed_with_the_test_traces() -> None:
    def days_and_seeds(name: str) -> tuple[set[int], set[int]]:
        return {d for d, _, _ in SETS[name]}, {s for _, s, _ in SETS[name]}

    test_days, test_seeds = days_and_seeds("test")
    train_days, train_seeds = days_and_seeds("training")
    assert not test_days & train_days and not test_seeds & train_seeds
    assert not days_and_seeds("calibration")[0] & test_days  # another day
    assert [len(SETS[s]) for s in ("test", "calibration", "training")] == [3, 1, 11]


def test_an_unknown_set_is_refused_by_name_and_an_empty_list_too() -> None:
    with pytest.raises(SystemExit, match=r"unknown set.*'nope'"):
        run(argparse.Namespace(sets="test,nope"))
    with pytest.raises(SystemExit, match="at least one set"):
        run(argparse.Namespace(sets=" , "))


@pytest.mark.slow
def test_a_set_runs_through_the_reference_and_both_fluids() -> None:
    """A quarter hour of the calibration day on 4 instances: every interactive tier at every
    utilisation, each row's shares in [0, 1], the summaries over exactly those rows."""
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    args = argparse.Namespace(
        sets="calibration", shared=shared, instances=4, hours=0.25, scale=0.02
    )
    out = run(args)
    rows = out["rows"]
    assert {(r["tier"], r["utilisation"]) for r in rows} == {
        (t, u) for t in ("IW-F", "IW-N") for u in (0.5, 0.7, 0.85, 0.95)
    }
    assert all(0.0 <= r[c] <= 1.0 for r in rows for c in ("fluid_sla", "reference_sla"))
    assert len(rows) == 8 and out["sets"]["calibration"]["rows"] == 8
    assert [r["traces"] for r in out["signed"]] == [1] * 8
