"""`sageserve evaluate-requests --scenario NAME`: request-level scenarios on the instance model.

Scenarios register in :data:`SCENARIOS` (name → runner); each runner takes the options below
and prints a table, or with ``--json`` one object ``{"scenario": NAME, ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from flows.cli.common import console, emit_json, fail, open_warehouse, settings

if TYPE_CHECKING:
    from flows.routing_results import RoutingResult
    from planner.sim.length import Score

log = logging.getLogger(__name__)


def _routing(ctx: typer.Context, opts: dict[str, Any], as_json: bool) -> None:
    # Imported here: the command line must not load the simulation stack to start.
    from flows.routing import PERF_CSV, RoutingSpec, run_routing

    cfg = settings(ctx).config()
    known = {f.name for f in fields(RoutingSpec)}  # the pool options; None: the spec's default
    spec = RoutingSpec(**{k: v for k, v in opts.items() if k in known and v is not None})
    perf = Path(opts["perf"]) if opts["perf"] else PERF_CSV / "perf_model_4_models.csv"
    con = open_warehouse(ctx)
    with con:
        try:
            result = run_routing(con, cfg, spec, perf)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
    if as_json:
        emit_json(result.to_json())
        return
    _print_predictor(result.predictor)
    _print_routers(result)
    _print_shipping(result.learned)


def _print_predictor(s: Score) -> None:
    """The length predictor's out-of-sample accuracy per bucket, beside its ceiling."""
    title = f"length predictor, out of sample (log loss {s.log_loss:.3f})"
    acc = Table("bucket", "rows", "accuracy", "ceiling", title=title)
    for b, n, a, top in zip(s.bucket, s.rows, s.accuracy, s.ceiling_accuracy, strict=True):
        acc.add_row(b, str(n), f"{a:.3f}", f"{top:.3f}")
    overall = f"{s.overall:.3f} (majority {s.majority_baseline:.3f})"
    acc.add_row("all", str(s.test_rows), overall, f"{s.ceiling:.3f}")
    console.print(acc)


def _print_routers(result: RoutingResult) -> None:
    """Each router's figures, the learned router against each per window, and the bounds."""
    view = Table(
        "router", "e2e_mean_s", "e2e_p95_s", "ttft_p95_s", "vs round-robin",
        title=f"{result.region}/{result.model}: {result.instances} × {result.profile} "
        f"at load {result.load:g} ({result.load_basis}), {result.requests} requests in "
        f"{len(result.per_window)} windows (means over windows)",
    )  # fmt: skip
    rr = result.policies[0].e2e_mean_s
    for p in result.policies:
        figures = (p.e2e_mean_s, p.e2e_p95_s, p.ttft_p95_s)
        view.add_row(p.name, *(f"{x:.3f}" for x in figures), f"{p.e2e_mean_s / rr - 1:+.1%}")
    console.print(view)
    vs = Table("learned vs", "mean", "std", "windows won", title="learned router, per window")
    for other, c in result.comparison.items():
        if isinstance(c, dict):
            vs.add_row(
                other, f"{c['mean_rel_diff']:+.2%}", f"{c['std_rel_diff']:.2%}",
                f"{c['wins']}/{c['windows']}",
            )  # fmt: skip
    console.print(vs)
    bd = result.bounds
    console.print(
        f"bounds (not routers): no contention {bd['no_contention_e2e_mean_s']:.3f} s mean E2E "
        f"(TTFT {bd['no_contention_ttft_mean_s']:.3f} s; round-robin's TTFT "
        f"{bd['round_robin_ttft_mean_s']:.3f} s); heuristic told the true outputs "
        f"{bd['heuristic_true_output_e2e_mean_s']:.3f} s",
        highlight=False,
    )


def _print_shipping(learned: dict[str, Any]) -> None:
    """Whether the policy search's best shipped, or the learned router is its prior."""
    gain, margin = learned["validation_gain"], learned["ship_margin"]
    if gain is None:
        why = "the policy search's best (no validation traces)"
    elif learned["kept_heuristic"]:
        why = f"the heuristic's weights, its prior (validation gain {gain:+.2%} < {margin:.0%})"
    else:
        why = f"the policy search's best (validation gain {gain:+.2%} ≥ {margin:.0%})"
    console.print(f"learned router: {why}; shipping margin {margin:.0%}", highlight=False)


def _fairness(ctx: typer.Context, opts: dict[str, Any], as_json: bool) -> None:
    # Imported here: the command line must not load the simulation stack to start.
    from flows.fairness import fairness_scenario

    result = fairness_scenario(settings(ctx).config())
    if as_json:
        emit_json(result)
        return
    head = {k: v for k, v in result.items() if k != "policies"}
    console.print("  ".join(f"{k}={v}" for k, v in head.items()), highlight=False)
    rows = result["policies"]
    table = Table(*map(str, rows[0]), title="fairness: well-behaved tenants under a flood")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(table)


SCENARIOS: dict[str, Callable[[typer.Context, dict[str, Any], bool], None]] = {
    "routing": _routing,
    "fairness": _fairness,
}


# The command's options that do not fit on one line, as typer reads them.
_Load = Annotated[float, typer.Option(min=0.05, max=0.99, help="pool load ρ (see --load-basis)")]
_LoadBasis = Annotated[
    str,
    typer.Option(
        help="what runs at --load: 'peak' (the window's busiest 15 minutes) or 'mean' "
        "(the window's average)"
    ),
]
_TrainRequests = Annotated[
    int, typer.Option(min=100, help="requests per training trace of the learned router")
]
_Windows = Annotated[
    int, typer.Option(min=1, help="held-out evaluation windows of --requests rows each")
]
_PredictorRows = Annotated[
    int, typer.Option(min=100, help="rows (about) the length predictor is fitted on")
]
_SearchRounds = Annotated[
    int, typer.Option(min=1, help="rounds of the learned router's policy search")
]
_SearchPopulation = Annotated[
    int, typer.Option(min=2, help="candidates per round of the policy search")
]
_ServeOn = Annotated[
    str | None, typer.Option(help="routing: a model serving the pool's log (e.g. bloom-176b)")
]
_Kv = Annotated[
    str | None, typer.Option(help="routing: the KV cache, 'paged' (vLLM, default) or 'reserve'")
]
_Prefill = Annotated[
    str | None,
    typer.Option(
        help="routing: the scheduler, 'chunked' (chunked prefill, default) or 'whole' "
        "(vLLM v0's default: whole prompts in prefill-only iterations, decodes paused)"
    ),
]


def evaluate_requests(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="scenario name")] = "routing",
    region: Annotated[str | None, typer.Option(help="pool region (default: busiest)")] = None,
    model: Annotated[str | None, typer.Option(help="pool model (default: busiest)")] = None,
    instances: Annotated[int, typer.Option(min=1, help="instances in the pool")] = 8,
    load: _Load = 0.9,
    load_basis: _LoadBasis = "peak",
    requests: Annotated[int, typer.Option(min=100, help="requests evaluated")] = 20_000,
    train_requests: _TrainRequests = 4_000,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    retrain: Annotated[bool, typer.Option("--retrain", help="ignore a saved policy")] = False,
    windows: _Windows = 1,
    predictor_rows: _PredictorRows = 200_000,
    search_rounds: _SearchRounds = 8,
    search_population: _SearchPopulation = 12,
    perf: Annotated[str | None, typer.Option(help="SageServe perf profile CSV")] = None,
    serve_on: _ServeOn = None,
    kv: _Kv = None,
    prefill: _Prefill = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay a request log through the iteration-level instance model under each policy of a
    scenario (routing: round-robin, jsq, least-tokens, heuristic, learned; fairness: fcfs, vtc,
    fairserve against the no-flood run; the pool options apply to routing)."""
    if scenario not in SCENARIOS:
        fail(f"--scenario: unknown {scenario!r}; choose from {', '.join(SCENARIOS)}", code=2)
    # every option but the scenario's name and the output format, by parameter name
    opts = {k: v for k, v in locals().items() if k not in ("ctx", "scenario", "as_json")}
    SCENARIOS[scenario](ctx, opts, as_json)
