"""What an operator needs from one plan, computed once and rendered three ways: the plan page
(HTML, `reports.plan_report`), the hourly run's markdown artifact and its description
(`flows.hourly_plan`), and `sageserve plans show` (rich tables). One view, so the three show
the same numbers.

The view: a headline (cost, gap, SLA risk, data quality), per region × VM type the fleet now →
the plan's first hour with quota and the binding reason, the actions to start before the next
plan (start-by / ready-at, reason), the NIW schedule, routing per hour, and last hour's demand
against its forecast. Every value is formatted with its unit; times are UTC and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd

from planner.ilp.explain import BINDING_MEANING

SEVERITY = ("quota", "lead_time", "capacity", "availability", "none")


def utc(t: Any) -> str:
    """A time as ``YYYY-MM-DD HH:MM UTC`` (the warehouse's times are naive UTC)."""
    if t is None or (isinstance(t, float) and math.isnan(t)) or pd.isna(t):
        return "n/a"
    return f"{pd.Timestamp(t):%Y-%m-%d %H:%M} UTC"


def hhmm(t: Any) -> str:
    return f"{pd.Timestamp(t):%H:%M}"


def dollars(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def rate(x: float) -> str:
    return f"{x:,.0f} tok/s"


def mtokens(tokens_per_s_hours: float) -> str:
    """(tokens/s)·h as millions of tokens."""
    return f"{tokens_per_s_hours * 3600 / 1e6:,.2f} M tok"


def count(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"~{x:,.1f}"


@dataclass
class OperatorView:
    plan_id: str
    title: str
    headline: list[tuple[str, str]]
    fleet: pd.DataFrame
    actions: pd.DataFrame
    niw: pd.DataFrame
    routing: pd.DataFrame
    versus: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def headline_text(self) -> str:
        """The headline on one line (artifact descriptions, page title)."""
        return "; ".join(f"{k}: {v}" for k, v in self.headline)


def _gap(s: dict[str, Any]) -> str:
    gap = s.get("gap")
    plain = "n/a" if gap is None or (isinstance(gap, float) and math.isnan(gap)) else f"{gap:.2%}"
    # the solver's own words (bound source) when it recorded them; a stored plan may not have
    known = s.get("gap_text") and s.get("bound_source", "unknown") != "unknown"
    text = f"{s['gap_text'] if known else plain} (SCIP {s['status']}, {s['solve_seconds']:.1f} s)"
    return text + (f", GREEDY FALLBACK: {s['fallback_reason']}" if s.get("fallback") else "")


def _sla_risk(plan: Any) -> str:
    unmet = plan.unmet[plan.unmet["tokens_per_s"] > 1e-6]
    late = float(plan.niw["late"].sum()) if len(plan.niw) else 0.0
    if unmet.empty and late <= 1e-6:
        return "none: all forecast demand is covered"
    parts = []
    for tier, part in unmet.groupby("tier"):
        worst = part.groupby("hour")["tokens_per_s"].sum()
        parts.append(
            f"{tier} short in {len(worst)} h (worst {rate(worst.max())} at {hhmm(worst.idxmax())})"
        )
    if late > 1e-6:
        parts.append(f"NIW past deadline {mtokens(late)}")
    return "; ".join(parts)


def _quality(quality: dict[str, Any] | None) -> str:
    if not quality:
        return "not checked (plan made outside the hourly flow)"
    if quality["success"]:
        return (
            f"passed ({quality['checked']} expectations on {quality['rows']:,} requests of "
            f"{utc(quality['hour'])})"
        )
    return f"FAILED ({len(quality['failed'])} of {quality['checked']} expectations)"


def headline(
    plan: Any, quality: dict[str, Any] | None, verified: bool | None
) -> list[tuple[str, str]]:
    s = plan.summary()
    first = plan.costs[plan.costs["hour"] == plan.start]["dollars"].sum()
    rows = [
        ("cost", f"{dollars(s['total_cost'])} over {s['hours']} h (next hour {dollars(first)})"),
        ("gap", _gap(s)),
        ("SLA risk", _sla_risk(plan)),
        ("data quality", _quality(quality)),
    ]
    if verified is not None:
        rows.append(("verified", "yes" if verified else "NO: not published"))
    return rows


def _binding(explained: pd.DataFrame | None, region: str, hour: Any) -> tuple[str, str]:
    """The most severe binding family of a region's models in ``hour`` and a short detail."""
    if explained is None or explained.empty:
        return "n/a", ""
    sel = explained[(explained["region"] == region) & (explained["hour"] == hour)]
    if sel.empty:
        return "none", ""
    rank = sel["binding"].map({b: i for i, b in enumerate(SEVERITY)}).fillna(len(SEVERITY))
    top = sel.loc[rank.idxmin()]
    busiest = sel.loc[sel["utilisation"].idxmax()]
    share = f"{busiest['utilisation']:.0%}"
    detail = f"{busiest['model']} at {share} of {count(busiest['instances'])} instances"
    return str(top["binding"]), detail


def fleet_table(
    plan: Any,
    current: dict[tuple[str, str], int],
    quotas: dict[tuple[str, str], int],
    explained: pd.DataFrame | None,
) -> pd.DataFrame:
    """Per region × VM type: VMs now → in the plan's first hour (→ peak over the horizon),
    the quota and why the count is what it is."""
    vms = plan.vms.assign(total=plan.vms["on_demand"] + plan.vms["spot"])
    first = vms[vms["hour"] == plan.start].set_index(["region", "vm_type"])
    peak = vms.groupby(["region", "vm_type"])["total"].max()
    records = []
    for (region, vm_type), row in first.sort_index().iterrows():
        now = int(current.get((region, vm_type), 0))
        target = int(row["total"])
        quota = int(quotas.get((region, vm_type), 0))
        if target == now == 0 and peak[(region, vm_type)] == 0:
            continue
        family, detail = _binding(explained, region, plan.start)
        if quota and target >= quota:
            family = "quota"
        reason = f"{family}: {BINDING_MEANING.get(family, '')}" + (f" ({detail})" if detail else "")
        records.append(
            {
                "region": region,
                "VM type": vm_type,
                "now": now,
                "next hour": target,
                "change": f"{target - now:+d}" if target != now else "0",
                "spot": int(row["spot"]),
                "peak in plan": int(peak[(region, vm_type)]),
                "quota": quota,
                "binding": reason,
            }
        )
    return pd.DataFrame(records)


def _action_reason(a: Any, explained: pd.DataFrame | None) -> str:
    if explained is None or explained.empty:
        return ""
    sel = explained[(explained["region"] == a.region) & (explained["hour"] == a.hour)]
    if a.model:
        sel = sel[sel["model"] == a.model]
    if sel.empty:
        return ""
    busiest = sel.loc[sel["utilisation"].idxmax()]
    load = f"{busiest['model']} load {busiest['load_instances']:,.1f} instances"
    at = f"at {hhmm(a.hour)}"
    if a.kind.startswith(("add", "load")):
        why = f"{load} {at} needs {count(busiest['instances'])}"
        if busiest["binding"] != "none":
            why += f" ({busiest['binding']})"
    else:
        why = f"{load} {at}: {count(busiest['instances'])} instances suffice"
    if float(busiest["unmet_tokens_per_s"]) > 0:
        why += f"; {rate(busiest['unmet_tokens_per_s'])} still unmet"
    return why


def next_actions(plan: Any, explained: pd.DataFrame | None) -> pd.DataFrame:
    """Actions to start before the next hourly plan (start-by within the hour after the plan
    was made): those for the first hour and those that must start early for later hours."""
    cutoff = pd.Timestamp(plan.as_of) + timedelta(hours=1)
    acts = plan.actions[pd.to_datetime(plan.actions["start_by"]) < cutoff]
    records = []
    for a in acts.itertuples():
        records.append(
            {
                "action": a.kind.replace("_", " "),
                "count": int(a.count),
                "region": a.region,
                "VM type": a.vm_type,
                "model": a.model if isinstance(a.model, str) and a.model else "",
                "start by": utc(a.start_by),
                "ready at": utc(a.ready_at),
                "for hour": utc(a.hour),
                "reason": _action_reason(a, explained),
            }
        )
    return pd.DataFrame(
        records,
        columns=[
            "action",
            "count",
            "region",
            "VM type",
            "model",
            "start by",
            "ready at",
            "for hour",
            "reason",
        ],
    )


def niw_table(plan: Any) -> pd.DataFrame:
    if plan.niw.empty:
        return pd.DataFrame()
    niw = plan.niw.groupby("hour")[["served", "backlog", "late"]].sum().reset_index()
    return pd.DataFrame(
        {
            "hour": [utc(h) for h in niw["hour"]],
            "NIW served": [mtokens(x) for x in niw["served"]],
            "backlog after": [mtokens(x) for x in niw["backlog"]],
            "late": [mtokens(x) for x in niw["late"]],
        }
    )


def routing_table(plan: Any) -> pd.DataFrame:
    """Per hour, the demand served away from its source region (local serving is the rest)."""
    r = plan.routing
    cross = r[(r["source_region"] != r["target_region"]) & (r["tokens_per_s"] > 1e-6)]
    local = r[r["source_region"] == r["target_region"]].groupby("hour")["tokens_per_s"].sum()
    records = []
    for hour in plan.hours:
        part = cross[cross["hour"] == hour]
        flows = ", ".join(
            f"{x.source_region}→{x.target_region} {x.model} {x.tier} {x.weight:.0%} "
            f"({rate(x.tokens_per_s)})"
            for x in part.itertuples()
        )
        records.append(
            {
                "hour": utc(hour),
                "served locally": rate(float(local.get(hour, 0.0))),
                "routed to another region": flows or "none",
            }
        )
    return pd.DataFrame(records)


def versus_table(versus: pd.DataFrame | None) -> pd.DataFrame:
    if versus is None or versus.empty:
        return pd.DataFrame()
    out = []
    v: Any  # a row of demand_vs_forecast
    for v in versus.itertuples():
        has = pd.notna(v.forecast_tokens_per_s)
        out.append(
            {
                "tier": v.tier,
                "actual": rate(v.actual_tokens_per_s),
                "forecast": rate(v.forecast_tokens_per_s) if has else "no forecast stored",
                "forecast p95": rate(v.forecast_p95_tokens_per_s) if has else "",
                "actual vs forecast": f"{v.actual_tokens_per_s / v.forecast_tokens_per_s - 1:+.1%}"
                if has and v.forecast_tokens_per_s
                else "",
            }
        )
    return pd.DataFrame(out)


def build_view(
    plan: Any,
    *,
    current: dict[tuple[str, str], int],
    quotas: dict[tuple[str, str], int],
    explained: pd.DataFrame | None = None,
    quality: dict[str, Any] | None = None,
    verified: bool | None = None,
    versus: pd.DataFrame | None = None,
) -> OperatorView:
    s = plan.summary()
    notes = list(plan.notes)
    committed = plan.instances.get("committed")
    if committed is not None and not committed.all():
        first_free = plan.instances.loc[~committed.astype(bool), "hour"].min()
        notes.append(
            f"instances from {utc(first_free)} on are indicative capacity (may be fractional): "
            "they are re-planned every hour before they are used"
        )
    return OperatorView(
        plan_id=s["plan_id"],
        title=f"Plan {s['plan_id']}: {s['hours']} h from {utc(s['start'])} "
        f"(made at {utc(s['as_of'])})",
        headline=headline(plan, quality, verified),
        fleet=fleet_table(plan, current, quotas, explained),
        actions=next_actions(plan, explained),
        niw=niw_table(plan),
        routing=routing_table(plan),
        versus=versus_table(versus),
        notes=notes,
    )


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    cells = frame.astype(str).apply(lambda c: c.str.replace("|", "\\|", regex=False))
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def to_markdown(view: OperatorView, page: str | None, niw_hours: int = 6) -> str:
    """The hourly run's artifact: the page's headline, fleet and next actions, the first
    hours of the NIW schedule, and a link to the full page."""
    lines = [f"# {view.title}", ""]
    if page:
        lines += [f"**[Open the plan page]({page})**", ""]
    lines += [f"- **{k}**: {v}" for k, v in view.headline]
    lines += ["", "## Next hour's actions (start before the next plan)", ""]
    lines += [_md_table(view.actions), "", "## Fleet: now → next hour (VMs)", ""]
    lines += [_md_table(view.fleet), ""]
    if not view.versus.empty:
        lines += ["## Demand in the last hour vs its forecast", "", _md_table(view.versus), ""]
    if not view.niw.empty:
        lines += [f"## NIW schedule (first {niw_hours} h)", "", _md_table(view.niw.head(niw_hours))]
    lines += ["", *[f"> {n}" for n in view.notes]]
    return "\n".join(lines)


def run_markdown(
    view: OperatorView, page: str, quality: dict[str, Any], policy: str, applied: dict[str, Any]
) -> str:
    """The hourly run's artifact: the operator view, the data-quality gate when it failed (and
    what ``policy`` made of it), and what the executor changed."""
    lines = [to_markdown(view, page), ""]
    if not quality["success"]:
        effect = "planning stopped" if policy == "stop" else "planning went ahead (warn)"
        lines += [f"Data-quality gate FAILED, {effect}:", *[f"- {f}" for f in quality["failed"]]]
    lines.append(
        f"executor: {len(applied['changes'])} changes across {len(applied['regions'])} regions"
    )
    return "\n".join(lines)
