"""`quartermaster export`: what the operator knows, as flat rows for reports and spreadsheets.

One row per record, every row with the same columns (COLUMNS, in that order; a column a
record does not have is empty), so a CSV has one header line whatever is in the cluster:

    record          one row per              filled columns
    pool            pool and resource        capacity, requested, used, forecast, free, pressure,
                                             days_left, forecast_quantile, forecast_peak_at,
                                             forecast_confidence, forecast_coverage
    quota           quota and resource       limit, usage, remaining, priority
    cost            quota                    cost_today, cost_month, budget_daily, budget_monthly,
                                             currency, priority
    finding         waste finding of a quota finding (Rightsizing, Idle, CostAnomaly), target (the
                    (status.findings)        workload), monthly_saving, currency, recommended_cpu,
                                             recommended_memory, reasoning (what was found)
    recommendation  ScalingPolicy            target, mode, current_replicas, recommended_replicas,
                                             recommended_cpu, recommended_memory, confidence,
                                             reasoning, last_action, last_action_time
    swap            swap of a SwapPlan (one  pool, phase, plan_id, from, to, resource, amount, risk,
                    row if it has none)      objective_before, objective_after, saving

Amounts are numbers in the resource's unit: cpu in cores, memory in bytes, GPUs and pods
as counts. `rows(objects)` is pure; `run` reads the objects and writes CSV, JSON or YAML.
"""
from __future__ import annotations

import argparse
import csv
import io
from typing import Iterable, Mapping

from quartermaster.operator import cli_client
from quartermaster.operator.cli_client import number
from quartermaster.operator.quantities import RESOURCES

COLUMNS = ("record", "namespace", "name", "resource", "capacity", "requested", "used", "forecast", "free",
           "pressure", "days_left", "forecast_quantile", "forecast_peak_at", "forecast_confidence",
           "forecast_coverage", "limit", "usage", "remaining", "priority", "cost_today", "cost_month",
           "budget_daily", "budget_monthly", "currency", "target", "mode", "current_replicas",
           "recommended_replicas", "recommended_cpu", "recommended_memory", "confidence", "reasoning",
           "last_action", "last_action_time", "pool", "phase", "plan_id", "from", "to", "amount", "risk",
           "objective_before", "objective_after", "saving", "finding", "monthly_saving")
RECORDS = ("pool", "quota", "cost", "finding", "recommendation", "swap")


def _by_resource(entries: Iterable[Mapping]) -> dict[str, Mapping]:
    return {e.get("resource"): e for e in entries or [] if isinstance(e, Mapping)}


def _pool_rows(obj: Mapping) -> list[dict]:
    status = obj.get("status") or {}
    forecasts, plans = _by_resource(status.get("forecastDetails")), _by_resource(status.get("capacityPlan"))
    accuracy = _by_resource(status.get("forecastAccuracy"))
    found = []
    for resource in RESOURCES:
        figures = {field: number((status.get(field) or {}).get(resource))
                   for field in ("capacity", "requested", "used", "forecast", "free")}
        if all(v is None for v in figures.values()):
            continue
        forecast = forecasts.get(resource) or {}
        found.append({
            **figures, "resource": resource, "pressure": (status.get("pressure") or {}).get(resource),
            "days_left": (plans.get(resource) or {}).get("daysLeft"), "forecast_quantile": forecast.get("quantile"),
            "forecast_peak_at": forecast.get("peakAt"), "forecast_confidence": forecast.get("confidence"),
            "forecast_coverage": (accuracy.get(resource) or {}).get("coverage")})
    return found


def _quota_rows(obj: Mapping) -> list[dict]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    limits, usage, remaining = spec.get("hard") or {}, status.get("usage") or {}, status.get("remaining") or {}
    return [{"resource": key, "limit": number(limits.get(key)), "usage": number(usage.get(key)),
             "remaining": number(remaining.get(key)), "priority": spec.get("priorityClass", "normal")}
            for key in dict.fromkeys((*limits, *usage))]


def _cost_rows(obj: Mapping) -> list[dict]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    cost, budget = status.get("cost") or {}, spec.get("budget") or {}
    if not cost and not budget:
        return []
    return [{"cost_today": cost.get("today"), "cost_month": cost.get("thisMonth"), "budget_daily": budget.get("daily"),
             "budget_monthly": budget.get("monthly"), "currency": budget.get("currency", "USD"),
             "priority": spec.get("priorityClass", "normal")}]


def _finding_rows(obj: Mapping) -> list[dict]:
    return [{"finding": f.get("kind"), "target": f.get("workload"), "monthly_saving": f.get("monthlySaving"),
             "currency": f.get("currency"), "recommended_cpu": number((f.get("recommended") or {}).get("cpu")),
             "recommended_memory": number((f.get("recommended") or {}).get("memory")), "reasoning": f.get("message")}
            for f in (obj.get("status") or {}).get("findings") or []]


def _recommendation_rows(obj: Mapping) -> list[dict]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    recommended, target = status.get("recommendation") or {}, spec.get("targetRef") or {}
    requests = recommended.get("requests") or {}
    return [{"target": f"{target.get('kind')}/{target.get('name')}", "mode": spec.get("mode", "Reactive"),
             "current_replicas": status.get("currentReplicas"), "recommended_replicas": recommended.get("replicas"),
             "recommended_cpu": number(requests.get("cpu")), "recommended_memory": number(requests.get("memory")),
             "confidence": status.get("confidence"), "reasoning": status.get("reasoning"),
             "last_action": (status.get("lastAction") or {}).get("action"),
             "last_action_time": (status.get("lastAction") or {}).get("time")}]


def _swap_rows(obj: Mapping) -> list[dict]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    objective = status.get("objective") or {}
    plan = {"pool": (spec.get("poolRef") or {}).get("name"), "phase": status.get("phase", "Pending"),
            "plan_id": status.get("planId"), "risk": status.get("risk"), "objective_before": objective.get("before"),
            "objective_after": objective.get("after"), "saving": status.get("saving")}
    swaps = [{"from": s.get("from"), "to": s.get("to"), "resource": s.get("resource"),
              "amount": number(s.get("amount"))} for s in status.get("swaps") or []]
    return [{**plan, **swap} for swap in swaps or [{}]]


# record → (the plural of the kind it comes from, its rows from one object)
SOURCES = {"pool": ("resourcepools", _pool_rows), "quota": ("quotas", _quota_rows), "cost": ("quotas", _cost_rows),
           "finding": ("quotas", _finding_rows),
           "recommendation": ("scalingpolicies", _recommendation_rows), "swap": ("swapplans", _swap_rows)}


def rows(objects: Mapping[str, list[Mapping]], records: Iterable[str] = RECORDS) -> list[dict]:
    """Every row of the `records` asked for, each with all of COLUMNS (None where empty),
    in RECORDS' order, objects by name."""
    found = []
    for record in (r for r in RECORDS if r in set(records)):
        plural, rows_of = SOURCES[record]
        for obj in sorted(objects.get(plural) or [], key=cli_client.qualified_name):
            meta = obj.get("metadata") or {}
            for row in rows_of(obj):
                found.append({**dict.fromkeys(COLUMNS), **row, "record": record,
                              "namespace": meta.get("namespace"), "name": meta.get("name")})
    return found


def to_csv(table: Iterable[Mapping]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("csv", "json", "yaml"), default="csv")
    parser.add_argument("--kind", dest="records", action="append", choices=RECORDS,
                        help="only these records (repeat for more; default: all)")
    cli_client.add_cluster_arguments(parser)


def run(options: argparse.Namespace) -> int:
    def export() -> int:
        objects = cli_client.list_objects(cli_client.api_client(options), cli_client.namespace(options))
        table = rows(objects, options.records or RECORDS)
        if options.output == "csv":
            print(to_csv(table), end="")
        else:
            print(cli_client.dump([{k: v for k, v in row.items() if v is not None} for row in table],
                                  options.output), end="")
        return 0
    return cli_client.guarded("export", export)
