"""LT-F as a product mode: a named policy of ``sageserve evaluate`` at the config's dials, the
ramp in the desired-state documents, the simulated executor carrying plans out as LT-F, and
config errors naming the key (tiny fleet of tests/planner/ilp_fixtures.py: 100 tokens/s per
instance, 2 instances per VM, VM lead 15 min, load 6 min, plans made 20 min ahead)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from planner.config import DEFAULT_CONFIG, load_config
from planner.config.lt_f import LtfSettings
from planner.executors import SimulatedExecutor, WebhookExecutor
from planner.executors.protocol import AppliedState
from planner.ilp.plan import Plan
from planner.sim.fleet import Fleet, params_from_config
from planner.sim.fluid import Observation
from planner.sim.plan_ramp import PlanRamp
from planner.sim.plans import plan_targets
from planner.sim.scenario import make_policies
from tests.helpers import replay
from tests.planner.ilp_fixtures import tiny_config
from tests.planner.test_config_checks import _problems as config_problems
from tests.planner.test_executors import next_hour, plans
from tests.planner.test_sim import IWF, demand
from tests.schema_check import problems

__all__ = ["next_hour", "plans"]
DIALS = {**LtfSettings().dials(), "target": 0.6, "up": 0.7, "down": 0.4, "cooldown_in_min": 5}


def test_lt_f_is_a_named_policy_at_the_configs_dials_and_holds_the_plans_ramp(
    plans: list[Plan],
) -> None:
    """``make_policies`` (what ``sageserve evaluate`` runs) builds ``lt-f`` at the config's
    dials; replayed on a quiet log, from each purchase (minute 40) to the hand-over it never
    asks for fewer instances per pool than the plan's rise on what it held, up to the plan."""
    p = params_from_config(tiny_config())
    hourly = [plans[0], plans[1], plans[0], plans[1]]  # 2 → 4 → 2 → 4 instances in region a
    d = demand(240, {(0, IWF): 20.0, (1, IWF): 10.0})
    (lt_f,) = make_policies(["lt-f"], p, d, {"forecast": hourly}, DIALS)
    assert isinstance(lt_f, PlanRamp) and lt_f.name == "lt-f"
    assert (lt_f.target, lt_f.up, lt_f.cooldown_in_min, lt_f.release_min) == (0.6, 0.7, 5, 15)
    asked: list[tuple[int, np.ndarray]] = []
    decide = lt_f.decide

    def recorded(obs: Observation) -> Any:
        out = decide(obs)
        asked.append((obs.minute, (out or obs.fleet.targets).instances.sum(axis=2)))
        return out

    lt_f.decide = recorded  # type: ignore[method-assign]
    replay(p, d, lt_f, drain=False)
    counts = [t.instances.sum(axis=2) for t in plan_targets(hourly, p).hourly]
    held = {0: counts[0]}
    for minute, n in asked:
        h, into = divmod(minute, 60)
        if into == 39:
            held[h + 1] = n
        due = h + 1 if into >= 40 else h if into < 15 else None
        if due is not None and 0 < due < len(counts):
            rise = np.maximum(counts[due] - counts[due - 1], 0)
            assert (n >= np.minimum(held[due] + rise, counts[due]) - 1e-9).all(), minute
        assert (n >= 1).all(), minute
    # the quiet log: between ramps the scaler hands the plan's surplus back (can fail too)
    assert min(int(n[0, 0]) for m, n in asked if 30 <= m % 60 < 40) < 4
    assert min(int(n[0, 0]) for m, n in asked if 60 <= m < 75) > held[1][0, 0]  # the rise


def test_documents_carry_the_ramp_and_follow_the_schema(tmp_path: Path, plans: list[Plan]) -> None:
    ramp = {**LtfSettings().dials(), "lead_min": 20}
    ex = WebhookExecutor(tmp_path, lt_f=ramp)
    path = tmp_path / "desired" / "a.json"
    ex.apply(plans[0])
    first = yaml.safe_load(path.read_text())
    assert first["lt_f"]["pools"]["m"] == {"count": 2, "rise": None}  # no earlier document
    # both plans are for the same hour: a re-plan of it measures no rise against the first
    ex.apply(plans[1])
    assert yaml.safe_load(path.read_text())["lt_f"]["pools"]["m"] == {"count": 4, "rise": None}
    # the first plan's document as the previous hour's: the rise is over its count
    earlier = pd.Timestamp(first["hour"]) - pd.Timedelta(hours=1)
    path.write_text(json.dumps({**first, "hour": earlier.isoformat()}))
    ex.apply(plans[1])
    second = yaml.safe_load(path.read_text())
    assert second["lt_f"]["pools"]["m"] == {"count": 4, "rise": 2}
    ex.apply(plans[1])  # applied again (a retry, a re-run): the same body
    assert yaml.safe_load(path.read_text())["lt_f"] == second["lt_f"]
    # a document from hours ago says nothing about the rise
    path.write_text(json.dumps({**first, "hour": (earlier - pd.Timedelta(hours=3)).isoformat()}))
    ex.apply(plans[1])
    assert yaml.safe_load(path.read_text())["lt_f"]["pools"]["m"]["rise"] is None
    assert second["lt_f"]["hold_until"].endswith(":15:00") and second["lt_f"]["release_min"] == 15
    assert second["lt_f"]["scaler"] == {
        k: v for k, v in ramp.items() if k not in ("lead_min", "release_min")
    }
    assert problems(first) == [] and problems(second) == []
    # the schema is not a rubber stamp for the new section
    bad = {**second, "lt_f": {**second["lt_f"], "pools": {"m": {"count": 4, "rise": -1}}}}
    assert problems(bad)
    assert problems({**second, "lt_f": {**second["lt_f"], "surprise": 1}})
    assert "lt_f" not in WebhookExecutor(tmp_path / "plain").apply(plans[1]).regions.get("a", {})
    assert "lt_f" not in yaml.safe_load((tmp_path / "plain" / "desired" / "a.json").read_text())


def _lt_f_run(
    plans: list[Plan], **config: Any
) -> tuple[list[tuple[int, float]], list[AppliedState]]:
    """``plans`` carried out as LT-F with no traffic observed (tiny config, changed by
    ``config``): (minute, region a's target instances) at each minute, and the states."""
    seen: list[tuple[int, float]] = []

    def quiet(minute: int, fleet: Fleet) -> Observation:
        seen.append((minute, float(fleet.targets.instances[0].sum())))
        idle = np.zeros((2, 1))
        return Observation(minute, np.zeros((2, 1, 3)), idle, idle, fleet)

    ex = SimulatedExecutor(params_from_config(tiny_config(**config)), lt_f=DIALS, observe=quiet)
    return seen, [ex.apply(plan) for plan in plans]


def test_the_simulated_executor_carries_plans_out_as_lt_f(
    plans: list[Plan], next_hour: Plan
) -> None:
    """No traffic observed: region a keeps the first plan's 2 instances until the hand-over
    (minute 15), then the scaler hands it back to 1. The next hour's plan rises from 2 to 4:
    its rise (2) is bought on what the pool holds (1) when the plan arrives (minute 40),
    serves (15 + 6 min) before the hand-over (minute 75) and is held until it, then handed
    back. LT-I (the default) keeps the plan's 4."""
    seen, (first, second) = _lt_f_run([plans[0], next_hour])
    assert first.regions["a"]["instances"]["m"]["v8"]["on_demand"] == 1
    assert all(n >= 2 for m, n in seen if m <= 15)
    assert second.notes == []  # the held count served at the hand-over
    assert [m for m, _ in seen] == list(range(100))
    assert all(n == 3 for m, n in seen if 41 <= m <= 75)  # targets set at 40 seen from 41
    assert second.regions["a"]["instances"]["m"]["v8"]["on_demand"] == 1
    lt_i = SimulatedExecutor(params_from_config(tiny_config()))
    lt_i.apply(plans[0])
    assert lt_i.apply(next_hour).regions["a"]["instances"]["m"]["v8"]["on_demand"] == 4


def test_a_re_plan_of_the_hour_replaces_it_and_does_not_shift_later_purchases(
    plans: list[Plan], next_hour: Plan
) -> None:
    """A plan for the hour of the last one replaces it: sent again (a retry), the next
    hour's purchase still comes at minute 40 (appended as an hour of its own, it came an
    hour later). A plan for an hour already over is refused."""
    alone, _ = _lt_f_run([plans[0], next_hour])
    again, states = _lt_f_run([plans[0], plans[0], next_hour])
    assert again == alone
    assert [s.plan_id for s in states] == [p.plan_id for p in (plans[0], plans[0], next_hour)]
    assert states[1].notes == []  # a retry changes nothing: nothing to say
    with pytest.raises(ValueError, match="the simulated executor carries out"):
        _lt_f_run([plans[0], next_hour, plans[1]])


def test_a_re_plan_that_raises_the_hour_after_its_purchase_is_bought_at_once(
    plans: list[Plan], next_hour: Plan
) -> None:
    """plans[1] re-plans the first hour 2 → 4 at minute 40 (after that hour's purchase):
    its increase is bought at once on what the pool holds (1), so with the next hour's plan
    (4, no rise over the re-plan) region a holds 3 from minute 40 to the hand-over, as
    without the re-plan; before, the next rise was measured from the 4 never bought and a
    plan asking for more held 1. The re-plan's state says it came late."""
    alone, _ = _lt_f_run([plans[0], next_hour])
    assert plans[1].start == plans[0].start < next_hour.start
    replanned, states = _lt_f_run([plans[0], plans[1], next_hour])
    assert [m for m, _ in replanned] == list(range(100))
    assert all(n == 3 for m, n in replanned if 41 <= m <= 75)
    assert [n for m, n in replanned if m > 40] == [n for m, n in alone if m > 40]
    (late,) = states[1].notes
    assert f"plan {plans[1].plan_id} re-plans" in late and "increase bought at once" in late


def test_a_retry_of_the_hour_returns_its_notes_again(plans: list[Plan], next_hour: Plan) -> None:
    """VMs of 90 min: the next hour's purchase (minute 40) does not serve by the hand-over
    (minute 75), and the state says so; the same plan sent again runs no minute and says it
    again (it used to return no note)."""
    _, states = _lt_f_run([plans[0], next_hour, next_hour], **{"vm_types.0.lead_time_min": 90})
    assert any("a: m below LT-F's hold" in n for n in states[1].notes)
    assert states[2].notes == states[1].notes and states[2].regions == states[1].regions


def _problems(tmp_path: Path, lt_f: dict[str, Any]) -> list[str]:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["lt_f"] = {**data["lt_f"], **lt_f}
    return config_problems(tmp_path, data)


@pytest.mark.parametrize(
    ("lt_f", "key"),
    [
        ({"release_min": 40}, "lt_f.release_min: must be < 40"),
        ({"release_min": -1}, "lt_f.release_min"),
        ({"target": 0}, "lt_f.target"),
        ({"down": 0.96}, "lt_f.down: must be below lt_f.up"),
        ({"cooldown_in_min": 0}, "lt_f.cooldown_in_min"),
        ({"niw_cap": 1.5}, "lt_f.niw_cap"),
        ({"relase_min": 10}, "lt_f.relase_min"),
    ],
)
def test_bad_lt_f_values_name_the_key(tmp_path: Path, lt_f: dict[str, Any], key: str) -> None:
    found = _problems(tmp_path, lt_f)
    assert any(key in line for line in found), found


def test_the_default_config_holds_the_documented_defaults() -> None:
    assert load_config(DEFAULT_CONFIG).lt_f == LtfSettings()
