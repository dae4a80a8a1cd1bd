"""`sageserve config ...`: validate a configuration, re-derive throughput from the profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import console, emit_json, fail, print_table, settings
from planner.config import config_hash

app = typer.Typer(help="Check the fleet configuration.", no_args_is_help=True)
DEFAULT_PERF = Path("../shared/data/sageserve_perf/perf_model_4_models.csv")


@app.command()
def validate(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Load the configuration and report problems with their key paths (exit 2 if any)."""
    cfg = settings(ctx).config()
    info = {
        "name": cfg.name,
        "config_hash": config_hash(cfg),
        "regions": cfg.region_ids,
        "vm_types": cfg.vm_type_ids,
        "models": cfg.model_ids,
        "tiers": cfg.tier_ids,
    }
    if as_json:
        emit_json(info)
    else:
        console.print(f"configuration {cfg.name!r} is valid (hash {info['config_hash']})")


@app.command()
def throughput(
    ctx: typer.Context,
    perf: Annotated[Path, typer.Option(help="SageServe perf profile CSV")] = DEFAULT_PERF,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Derive per-instance throughput from the measured profiles and compare with the config."""
    # numpy and pandas: imported by this command only, not at every command's start-up
    from planner.config.throughput import HARDWARE, derive_for_config, read_profile

    cfg = settings(ctx).config()
    if not perf.exists():
        fail(f"{perf}: performance profile not found", code=2)
    profile = read_profile(perf)
    hardware_of = {}
    for vm in cfg.vm_types:
        hw = next((k for k, v in HARDWARE.items() if v == vm.gpu), None)
        if hw is None:
            fail(f"vm_types.{vm.id}.gpu: no profile rows for GPU {vm.gpu!r}", code=2)
        hardware_of[vm.id] = hw
    models = {m.id: {g: p.tensor_parallel for g, p in m.vm_types.items()} for m in cfg.models}
    tiers = {t.id: (t.ttft_p95_s, t.tpot_ms) for t in cfg.tiers}
    derived = derive_for_config(profile, models, hardware_of, tiers)
    rows = []
    for model_id, per_vm in derived.items():
        for vm_id, per_tier in per_vm.items():
            for tier_id, d in per_tier.items():
                configured = cfg.model(model_id).vm_types[vm_id].throughput[tier_id]
                rows.append(
                    {
                        "model": model_id,
                        "vm_type": vm_id,
                        "tier": tier_id,
                        "input": round(d.input_tokens_per_s, 1),
                        "output": round(d.output_tokens_per_s, 1),
                        "prefill_batch": d.prefill_batch,
                        "decode_batch": d.decode_batch,
                        "meets_target": d.meets_target,
                        "config_input": configured.input,
                        "config_output": configured.output,
                    }
                )
    if as_json:
        emit_json(rows)
        return
    _print_throughput(rows)


def _print_throughput(rows: list[dict[str, Any]]) -> None:
    print_table(
        ("model", "vm", "tier", "input tok/s", "output tok/s", "batches", "config"),
        (
            (
                r["model"],
                r["vm_type"],
                r["tier"],
                f"{r['input']:.1f}",
                f"{r['output']:.1f}",
                f"{r['prefill_batch']}/{r['decode_batch']}",
                "[green]matches[/]"
                if r["input"] == r["config_input"] and r["output"] == r["config_output"]
                else f"[red]{r['config_input']}/{r['config_output']}[/]",
            )
            for r in rows
        ),
    )
