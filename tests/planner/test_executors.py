"""Executors: desired-state documents, the webhook executor against a real HTTP server on
127.0.0.1 (accepting, failing, timing out, answering twice, refusing), dry run, and the
simulated executor's lead times."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from planner.config.models import RoutingSettings
from planner.executors import SimulatedExecutor, WebhookError, WebhookExecutor, desired_states
from planner.executors.protocol import diff
from planner.ilp.plan import Plan
from planner.ilp.planner import make_plan
from planner.ilp.solve import SolverSettings
from planner.sim.fleet import params_from_config
from tests.planner.ilp_fixtures import T0, tiny_config, tiny_data
from tests.schema_check import check_executor_folder, problems


@pytest.fixture(autouse=True)
def every_written_document_follows_the_schema(tmp_path: Path) -> Iterator[None]:
    """After each test: every document the executor wrote validates and is mode 0644."""
    yield
    check_executor_folder(tmp_path)


class Target:
    """A real HTTP ops target. ``script``: per request, what to do: an int status to answer,
    or ("sleep", seconds, status) to answer late. It applies each Idempotency-Key once."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.seen: list[str] = []  # idempotency keys, one per request received
        self.headers: list[dict[str, str]] = []  # the headers of each request
        self.applied: dict[str, dict[str, Any]] = {}
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                target.seen.append(key)
                target.headers.append(dict(self.headers.items()))
                step = target.script.pop(0) if target.script else 200
                if isinstance(step, tuple):
                    _, seconds, step = step
                    target.applied.setdefault(key, body)  # applied, but the answer is late
                    time.sleep(seconds)
                elif step < 300:
                    target.applied.setdefault(key, body)
                self.send_response(step)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"key": key}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/desired-state"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Target:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def plans() -> list[Plan]:
    cfg = tiny_config()
    first, _ = make_plan(tiny_data(cfg, [(1, "a", "IW-F", 150.0)]), SolverSettings(20, 0.0))
    second, _ = make_plan(
        tiny_data(cfg, [(1, "a", "IW-F", 350.0), (1, "b", "IW-N", 150.0)], minutes_before=30),
        SolverSettings(20, 0.0),
    )
    return [first, second]


@pytest.fixture(scope="module")
def next_hour() -> Plan:
    """The second plan's demand, planned for the hour after the first plan's (``plans``'
    two are for the same hour: the second is a re-plan of it)."""
    cfg = tiny_config()
    rows = [(1, "a", "IW-F", 350.0), (1, "b", "IW-N", 150.0)]
    data = tiny_data(cfg, rows, minutes_before=20, start=T0 + timedelta(hours=1))
    return make_plan(data, SolverSettings(20, 0.0))[0]


def test_desired_state_documents_hold_the_first_hour(plans: list[Plan]) -> None:
    docs = desired_states(plans[1])
    assert set(docs) == {"a", "b"}
    a = docs["a"]
    assert a["plan_id"] == plans[1].plan_id and a["region"] == "a"
    # 350 tokens/s of IW-F in a at 100 per instance: 4 instances on 2 VMs
    assert a["instances"]["m"]["v8"]["on_demand"] == 4
    assert a["vms"]["v8"]["on_demand"] == 2
    for doc in docs.values():
        sums: dict[tuple[str, str], float] = {}
        for w in doc["routing"]:
            sums[(w["model"], w["tier"])] = sums.get((w["model"], w["tier"]), 0) + w["weight"]
        assert all(abs(v - 1) < 1e-6 for v in sums.values())
    changes = diff(desired_states(plans[0])["a"], a)
    assert any("instances 2 → 4" in c for c in changes)


def test_webhook_delivers_with_idempotency_keys(tmp_path: Path, plans: list[Plan]) -> None:
    with Target([200, 200]) as target:
        ex = WebhookExecutor(tmp_path, target.url, timeout_s=5, backoff_s=0.01)
        state = ex.apply(plans[0])
    keys = {f"{plans[0].plan_id}:a", f"{plans[0].plan_id}:b"}
    assert set(target.seen) == keys
    assert set(state.regions) == {"a", "b"}
    applied = json.loads((tmp_path / "applied" / "a.json").read_text())
    assert applied == target.applied[f"{plans[0].plan_id}:a"]


def test_webhook_retries_server_errors_then_succeeds(tmp_path: Path, plans: list[Plan]) -> None:
    with Target([503, 500, 200, 200]) as target:
        ex = WebhookExecutor(tmp_path, target.url, timeout_s=5, backoff_s=0.01)
        ex.apply(plans[0])
    assert [o for _, o in ex.attempts] == ["503", "500", "200", "200"]
    assert len(target.applied) == 2


def test_webhook_timeout_is_retried_and_the_target_applies_once(
    tmp_path: Path, plans: list[Plan]
) -> None:
    """The first answer comes after our timeout: we retry with the same key, so the target
    receives the document twice, answers twice, and applies it once."""
    with Target([("sleep", 1.5, 200), 200, 200]) as target:
        ex = WebhookExecutor(tmp_path, target.url, timeout_s=0.5, backoff_s=0.01)
        ex.apply(plans[0])
    first = f"{plans[0].plan_id}:a"
    assert target.seen.count(first) == 2
    assert len(target.applied) == 2
    assert ex.attempts[0] == ("a", "error")


def test_webhook_refusal_fails_fast_and_keeps_the_last_applied_state(
    tmp_path: Path, plans: list[Plan]
) -> None:
    with Target([200, 200]) as target:
        WebhookExecutor(tmp_path, target.url, backoff_s=0.01).apply(plans[0])
    before = (tmp_path / "applied" / "a.json").read_text()
    with Target([422]) as target:
        ex = WebhookExecutor(tmp_path, target.url, backoff_s=0.01)
        with pytest.raises(WebhookError, match=r"refused the desired state of a .*HTTP 422") as e:
            ex.apply(plans[1])
    # no retry of a refusal, and region b is still delivered (and reported)
    assert target.seen == [f"{plans[1].plan_id}:a", f"{plans[1].plan_id}:b"]
    assert (tmp_path / "applied" / "a.json").read_text() == before
    assert e.value.state is not None
    assert set(e.value.state.regions) == {"b"} and set(e.value.state.failed) == {"a"}


def test_webhook_gives_up_after_retries_naming_the_region(
    tmp_path: Path, plans: list[Plan]
) -> None:
    with Target([503] * 3) as target:  # then 200s
        ex = WebhookExecutor(tmp_path, target.url, retries=2, backoff_s=0.01)
        with pytest.raises(WebhookError, match=r"of a .*after 3 attempts; last: HTTP 503") as e:
            ex.apply(plans[0])
    # region a: 3 attempts, then region b is tried anyway and accepted on its first
    assert target.seen == [f"{plans[0].plan_id}:a"] * 3 + [f"{plans[0].plan_id}:b"]
    assert not (tmp_path / "applied" / "a.json").exists()
    assert (tmp_path / "applied" / "b.json").exists()
    assert e.value.state is not None and set(e.value.state.failed) == {"a"}
    assert str(e.value).startswith("1 of 2 regions not delivered")


def test_dry_run_prints_the_diff_and_changes_nothing(tmp_path: Path, plans: list[Plan]) -> None:
    with Target([200, 200]) as target:
        WebhookExecutor(tmp_path, target.url).apply(plans[0])
        before = sorted(p.read_text() for p in tmp_path.rglob("*.json"))
        dry = WebhookExecutor(tmp_path, target.url, dry_run=True).apply(plans[1])
        assert len(target.seen) == 2  # nothing sent by the dry run
    assert any("a: m on v8 on_demand instances 2 → 4" in n for n in dry.notes)
    assert sorted(p.read_text() for p in tmp_path.rglob("*.json")) == before


def test_without_a_url_documents_are_written_only(tmp_path: Path, plans: list[Plan]) -> None:
    state = WebhookExecutor(tmp_path).apply(plans[0])
    assert sorted(p.name for p in (tmp_path / "desired").iterdir()) == ["a.json", "b.json"]
    assert not (tmp_path / "applied").exists(), "no target: nothing was accepted"
    assert state.regions == {}
    again = WebhookExecutor(tmp_path).apply(plans[1])  # changes are against the last desired
    assert any("a: m on v8 on_demand instances 2 → 4" in n for n in again.notes)
    assert check_executor_folder(tmp_path) == 2


def test_documents_follow_the_published_schema(tmp_path: Path, plans: list[Plan]) -> None:
    with Target([200, 200, 200, 200]) as target:
        for plan in plans:
            WebhookExecutor(tmp_path, target.url, backoff_s=0.01).apply(plan)
        sent = list(target.applied.values())
    assert len(sent) == 4 and all(problems(doc) == [] for doc in sent)
    assert check_executor_folder(tmp_path) == 4  # desired/ and applied/ for a and b
    actions = [a for doc in sent for a in doc["actions"]]
    assert actions, "the second plan has actions: the schema sees them"
    # the schema is not a rubber stamp: a wrong field, a missing one, a bad count each fail
    doc = sent[0]
    assert problems({**doc, "surprise": 1})
    assert problems({k: v for k, v in doc.items() if k != "routing"})
    some_vm = next(iter(doc["vms"]))
    bad = {**doc, "vms": {some_vm: {"on_demand": -1, "spot": 0}}}
    assert any("minimum" in p for p in problems(bad))
    assert problems({**doc, "hour": "yesterday"})


def test_simulated_executor_reaches_the_plan_after_lead_times(
    plans: list[Plan], next_hour: Plan
) -> None:
    p = params_from_config(tiny_config())
    ex = SimulatedExecutor(p)
    first = ex.apply(plans[0])
    assert first.regions["a"]["instances"]["m"]["v8"]["on_demand"] == 2
    second = ex.apply(next_hour)  # 2 more VMs in a and b: 15 min + 6 min load < 80 min
    assert second.regions["a"]["instances"]["m"]["v8"]["on_demand"] == 4
    assert second.notes == []
    # VMs that take 90 min to provision cannot serve within the hour: short, and said so
    slow = SimulatedExecutor(params_from_config(tiny_config(**{"vm_types.0.lead_time_min": 90})))
    slow.apply(plans[0])
    partial = slow.apply(next_hour)
    assert partial.regions["a"]["instances"]["m"]["v8"]["on_demand"] == 2
    assert any("a: m on v8 short of the plan" in n for n in partial.notes)


def test_the_simulated_executors_lead_is_the_configs_plan_lead(
    plans: list[Plan], next_hour: Plan
) -> None:
    """LT-I scale-outs start ``planner.plan_lead_min`` before the hour: VMs of 70 min (+ 6 min
    load) made 20 min ahead serve within the hour (76 < 80 min), made 5 min ahead they do
    not (76 > 65 min), and the state says so."""
    slow = {"vm_types.0.lead_time_min": 70}
    results = {}
    for lead in (20, 5):
        cfg = tiny_config(**slow, **{"planner.plan_lead_min": lead})
        ex = SimulatedExecutor(params_from_config(cfg))
        ex.apply(plans[0])
        results[lead] = ex.apply(next_hour)
    assert results[20].regions["a"]["instances"]["m"]["v8"]["on_demand"] == 4
    assert results[20].notes == []
    assert results[5].regions["a"]["instances"]["m"]["v8"]["on_demand"] == 2
    assert any("a: m on v8 short of the plan" in n for n in results[5].notes)


def test_the_simulated_executor_places_each_plan_by_its_hour(
    plans: list[Plan], next_hour: Plan
) -> None:
    """LT-I places plans by hour as LT-F: a plan for the hour just carried out (a retry, a
    re-plan) runs no minute and gives that hour's state and notes again (the shortfall note
    kept), plus a note when it changes the counts (the hour is over: not carried out); a plan
    for an hour already over, or not a whole number of hours after the first, is refused."""
    slow = SimulatedExecutor(params_from_config(tiny_config(**{"vm_types.0.lead_time_min": 90})))
    slow.apply(plans[0])
    partial = slow.apply(next_hour)
    minute = slow.minute
    retry = slow.apply(next_hour)
    assert slow.minute == minute
    assert (retry.regions, retry.notes) == (partial.regions, partial.notes)
    assert any("a: m on v8 short of the plan" in n for n in retry.notes)
    quieter = dataclasses.replace(plans[0], plan_id="quieter", start=next_hour.start)
    replanned = slow.apply(quieter)
    assert replanned.notes[:-1] == partial.notes and slow.minute == minute
    assert (
        "plan quieter re-plans" in replanned.notes[-1] and "not carried out" in replanned.notes[-1]
    )
    with pytest.raises(ValueError, match=r"carries out .* or the hour after it"):
        slow.apply(plans[0])
    half = dataclasses.replace(next_hour, start=next_hour.start + timedelta(minutes=90))
    with pytest.raises(ValueError, match=rf"plan {half.plan_id} starts at .*not a whole number"):
        slow.apply(half)


def test_desired_state_carries_the_admission_policy_per_tier(plans: list[Plan]) -> None:
    from tests.schema_check import problems

    docs = desired_states(plans[1], admission={"IW-F": "fairserve", "NIW": "fcfs"})
    for doc in docs.values():
        assert doc["admission"] == {"IW-F": "fairserve", "NIW": "fcfs"}
        assert problems(doc) == []
    bad = dict(docs["a"], admission={"IW-F": "lottery"})
    assert problems(bad)
    assert "admission" not in desired_states(plans[1])["a"]


def test_desired_state_carries_the_configured_instance_router(
    tmp_path: Path, plans: list[Plan]
) -> None:
    router = RoutingSettings(router="learned", artifact="learned-router").model_dump()
    with Target([200, 200]) as target:
        WebhookExecutor(tmp_path, target.url, backoff_s=0.01, router=router).apply(plans[0])
        sent = list(target.applied.values())
    assert sent and all(
        doc["instance_router"]
        == {"router": "learned", "artifact": "learned-router", "epoch_s": 0.25}
        for doc in sent
    )
    assert all(problems(doc) == [] for doc in sent)
    assert problems({**sent[0], "instance_router": {**router, "router": "random"}})
    assert "instance_router" not in desired_states(plans[0])["a"]


def test_simulated_executor_routes_live_traffic_with_the_learned_artifact(
    tmp_path: Path, plans: list[Plan]
) -> None:
    """The executor loads the artifact the config names and routes the pool's requests with
    it: the same decisions as the trained policy itself, on the instances the fleet runs."""
    import numpy as np

    from planner.sim import learn_router
    from planner.sim.instances import simulate_instances
    from planner.sim.routers import constant_estimate
    from tests.planner.test_routers import _traces, toy

    prof = toy(max_batch=8, kv_tokens=20_000)
    s = learn_router.SearchSettings(rounds=1, population=3, elite=1, seed=5)
    policy = learn_router.learn(_traces(0), prof, 2, 100.0, s)
    learn_router.save(policy, tmp_path / "routers" / "mine.json")
    routing = RoutingSettings(router="learned", artifact="mine", epoch_s=s.epoch_s)
    ex = SimulatedExecutor(
        params_from_config(tiny_config()),
        routing=routing,
        routers_dir=tmp_path / "routers",
        profiles={("m", "v8"): prof},
    )
    ex.apply(plans[0])  # region a serves 2 instances of m on v8
    req = _traces(1)[0].requests
    served = ex.serve("a", "m", "v8", req)
    want = simulate_instances(req, prof, 2, policy.router(prof, constant_estimate(100.0)))
    assert np.isfinite(served.e2e_s).all()
    assert set(np.unique(served.instance)) == {0, 1}
    assert np.array_equal(served.instance, want.instance)
    assert np.array_equal(served.finish_s, want.finish_s)
    # round-robin from the same config section: another spread of the same requests
    rr = SimulatedExecutor(
        ex.p, fleet=ex.fleet, routing=RoutingSettings(), profiles={("m", "v8"): prof}
    ).serve("a", "m", "v8", req)
    assert not np.array_equal(rr.instance, served.instance)


def test_simulated_executor_refuses_a_missing_or_mismatched_artifact(
    tmp_path: Path, plans: list[Plan]
) -> None:
    from planner.sim import learn_router
    from tests.planner.test_routers import _traces, toy

    prof = toy(max_batch=8, kv_tokens=20_000)
    s = learn_router.SearchSettings(rounds=1, population=2, elite=1, seed=1)
    path = learn_router.save(
        learn_router.learn(_traces(0), prof, 2, 100.0, s), tmp_path / "r" / "lr.json"
    )

    def serve(**routing: Any) -> Any:
        ex = SimulatedExecutor(
            params_from_config(tiny_config()),
            routing=RoutingSettings(router="learned", **routing),
            routers_dir=tmp_path / "r",
            profiles={("m", "v8"): prof},
        )
        ex.apply(plans[0])
        return ex.serve("a", "m", "v8", _traces(1)[0].requests)

    with pytest.raises(FileNotFoundError, match=r"absent\.json.*train it first"):
        serve(artifact="absent")
    with pytest.raises(
        ValueError, match=r"routing epoch 0\.25 s, the config's routing\.epoch_s is 1 s"
    ):
        serve(artifact="lr", epoch_s=1.0)
    other = learn_router.save(
        learn_router.learn(_traces(0), toy(max_batch=4), 2, 100.0, s), tmp_path / "r" / "x.json"
    )
    other.write_text(other.read_text().replace('"profile": "toy"', '"profile": "other"'))
    with pytest.raises(ValueError, match="trained for instance profile 'other'"):
        serve(artifact="x")
    v = learn_router.ARTIFACT_VERSION
    path.write_text(path.read_text().replace(f'"version": {v}', '"version": 1'))
    with pytest.raises(ValueError, match=f"artifact version 1, expected {v}"):
        serve(artifact="lr")
