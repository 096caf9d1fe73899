"""`quartermaster status`: one table per kind from the objects' status, as kubectl reads
them (the kubeconfig and context kubectl would use), or the objects as JSON or YAML.

`tables(objects)` is pure (objects in, rows out), so what the command shows is tested
without a cluster; `fetch` and `main` do the reading and the printing.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Mapping, Optional

import yaml

from quartermaster.operator.models import GROUP, VERSION, Quota, ResourcePool, ScalingPolicy, SwapPlan

KINDS = (ResourcePool, ScalingPolicy, Quota, SwapPlan)


def _ready(obj: Mapping) -> str:
    condition = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    return "-" if condition is None else f"{condition['status']}/{condition.get('reason', '')}"


def _name(obj: Mapping) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


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
    status = obj.get("status") or {}
    used, limit = (status.get("usage") or {}).get("cpu", "-"), ((obj.get("spec") or {}).get("hard") or {}).get("cpu", "-")
    return [_name(obj), f"{used}/{limit}", _ready(obj)]


def _plan_row(obj: Mapping) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    risk = status.get("risk")
    return [_name(obj), (spec.get("poolRef") or {}).get("name", ""), spec.get("approval", "DryRun"),
            status.get("phase", "Pending"), str(status.get("swapCount", "-")),
            "-" if risk is None else f"{risk:.2f}", status.get("planId") or "-", _ready(obj)]


COLUMNS = {
    ResourcePool.plural: (["POOL", "CPU", "REQUESTED", "USED", "FORECAST", "PRESSURE", "DAYS-LEFT", "READY"], _pool_row),
    ScalingPolicy.plural: (["POLICY", "TARGET", "MODE", "CURRENT → RECOMMENDED", "CONFIDENCE", "READY"], _policy_row),
    Quota.plural: (["QUOTA", "CPU USED/LIMIT", "READY"], _quota_row),
    SwapPlan.plural: (["SWAPPLAN", "POOL", "APPROVAL", "PHASE", "SWAPS", "RISK", "PLAN", "READY"], _plan_row),
}


def tables(objects: Mapping[str, list[Mapping]]) -> dict[str, list[list[str]]]:
    """Per kind's plural: the header row, then one row per object (sorted by name)."""
    return {plural: [header, *[row(o) for o in sorted(objects.get(plural) or [], key=_name)]]
            for plural, (header, row) in COLUMNS.items()}


def render(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)


def fetch(kubeconfig: Optional[str], context: Optional[str], namespace: Optional[str]) -> dict[str, list[dict]]:
    """Every object of our kinds (namespaced ones in `namespace`, or in all when None)."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig, context=context))
    found = {}
    for kind in KINDS:
        if kind.namespaced and namespace:
            answer = api.list_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural)
        else:
            answer = api.list_cluster_custom_object(GROUP, VERSION, kind.plural)
        found[kind.plural] = answer.get("items") or []
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="as kubectl: default $KUBECONFIG, then ~/.kube/config")
    parser.add_argument("--context", help="the kubeconfig context (default: its current one)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="policies of this namespace (default: the context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="policies of every namespace")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def run(options: argparse.Namespace) -> int:
    from kubernetes import config
    from kubernetes.client import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    namespace = None
    if not options.all_namespaces:
        namespace = options.namespace
        if namespace is None:
            try:
                _, current = config.list_kube_config_contexts(config_file=options.kubeconfig)
                namespace = (current.get("context") or {}).get("namespace") or "default"
            except ConfigException as error:
                print(f"quartermaster status: no cluster to read: {error}", file=sys.stderr)
                return 1
    try:
        objects = fetch(options.kubeconfig, options.context, namespace)
    except ConfigException as error:
        print(f"quartermaster status: no cluster to read: {error}", file=sys.stderr)
        return 1
    except ApiException as error:
        hint = " (are the CRDs installed? quartermaster crds | kubectl apply -f -)" if error.status == 404 else ""
        print(f"quartermaster status: the apiserver answered {error.status} {error.reason}{hint}", file=sys.stderr)
        return 1
    except HTTPError as error:
        print(f"quartermaster status: the cluster cannot be reached: {error}", file=sys.stderr)
        return 1
    if options.output == "json":
        print(json.dumps(objects, indent=2))
    elif options.output == "yaml":
        print(yaml.safe_dump(objects, sort_keys=False), end="")
    else:
        print("\n\n".join(render(table) for table in tables(objects).values()))
    return 0
