"""`quartermaster status`: one table per kind from the objects' status, as kubectl reads
them (the kubeconfig and context kubectl would use), or the objects as JSON or YAML.

`tables(objects)` is pure (objects in, rows out), so what the command shows is tested
without a cluster; `run` does the reading (operator/cli_client.py) and the printing.
"""
from __future__ import annotations

import argparse
from typing import Mapping

from quartermaster.operator import cli_client
from quartermaster.operator.cli_client import qualified_name as _name, render
from quartermaster.operator.models import Quota, ResourcePool, ScalingPolicy, SwapPlan


def _ready(obj: Mapping) -> str:
    condition = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    return "-" if condition is None else f"{condition['status']}/{condition.get('reason', '')}"


def _pool_row(obj: Mapping) -> list[str]:
    status = obj.get("status") or {}

    def cpu(field: str) -> str:
        return (status.get(field) or {}).get("cpu", "-")

    days = [p.get("daysLeft") for p in status.get("capacityPlan") or [] if p.get("daysLeft") is not None]
    pressure = ", ".join(f"{r} {level}" for r, level in sorted((status.get("pressure") or {}).items())) or "-"
    return [_name(obj), cpu("capacity"), cpu("requested"), cpu("used"), cpu("forecast"), pressure,
            f"{min(days):.0f}" if days else "-", _ready(obj)]


def _policy_row(obj: Mapping) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    recommended = status.get("recommendation") or {}
    if recommended.get("replicas") is not None:
        change = f"{status.get('currentReplicas', '-')} → {recommended['replicas']}"
    elif recommended.get("requests"):
        change = ", ".join(f"{r} {v}" for r, v in sorted(recommended["requests"].items())) + " a pod"
    else:
        change = "-"
    confidence = status.get("confidence")
    return [_name(obj), f"{(spec.get('targetRef') or {}).get('kind', '')}/{(spec.get('targetRef') or {}).get('name', '')}",
            spec.get("mode", "Reactive"), change, "-" if confidence is None else f"{confidence:.2f}", _ready(obj)]


def _quota_row(obj: Mapping) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    used, limit = (status.get("usage") or {}).get("cpu", "-"), (spec.get("hard") or {}).get("cpu", "-")
    cost, budget = status.get("cost") or {}, spec.get("budget") or {}

    def spend(spent, limit) -> str:
        return "-" if spent is None else f"{spent:.2f}/{'-' if limit is None else f'{limit:g}'} {cost.get('currency', '')}"
    return [_name(obj), f"{used}/{limit}", spend(cost.get("today"), budget.get("daily")),
            spend(cost.get("thisMonth"), budget.get("monthly")), _ready(obj)]


def _plan_row(obj: Mapping) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    risk = status.get("risk")
    return [_name(obj), (spec.get("poolRef") or {}).get("name", ""), spec.get("approval", "DryRun"),
            status.get("phase", "Pending"), str(status.get("swapCount", "-")),
            "-" if risk is None else f"{risk:.2f}", status.get("planId") or "-", _ready(obj)]


COLUMNS = {
    ResourcePool.plural: (["POOL", "CPU", "REQUESTED", "USED", "FORECAST", "PRESSURE", "DAYS-LEFT", "READY"], _pool_row),
    ScalingPolicy.plural: (["POLICY", "TARGET", "MODE", "CURRENT → RECOMMENDED", "CONFIDENCE", "READY"], _policy_row),
    Quota.plural: (["QUOTA", "CPU USED/LIMIT", "SPENT TODAY/BUDGET", "THIS MONTH/BUDGET", "READY"], _quota_row),
    SwapPlan.plural: (["SWAPPLAN", "POOL", "APPROVAL", "PHASE", "SWAPS", "RISK", "PLAN", "READY"], _plan_row),
}


def tables(objects: Mapping[str, list[Mapping]]) -> dict[str, list[list[str]]]:
    """Per kind's plural: the header row, then one row per object (sorted by name)."""
    return {plural: [header, *[row(o) for o in sorted(objects.get(plural) or [], key=_name)]]
            for plural, (header, row) in COLUMNS.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli_client.add_cluster_arguments(parser)
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def run(options: argparse.Namespace) -> int:
    def show() -> int:
        objects = cli_client.list_objects(cli_client.api_client(options), cli_client.namespace(options))
        if options.output == "table":
            print("\n\n".join(render(table) for table in tables(objects).values()))
        else:
            print(cli_client.dump(objects, options.output), end="")
        return 0
    return cli_client.guarded("status", show)
