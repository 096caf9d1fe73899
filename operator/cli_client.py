"""What every reading command of the CLI shares: the cluster options kubectl has
(`--kubeconfig`, `--context`, `-n`/`-A`), a client for that cluster, our objects listed,
and one clear message with exit code 1 when there is no cluster, it cannot be reached, or
it has no Quartermaster CRDs — instead of a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Mapping, Optional

import yaml

from quartermaster.operator.models import GROUP, VERSION, Quota, ResourcePool, ScalingPolicy, SwapPlan

KINDS = (ResourcePool, ScalingPolicy, Quota, SwapPlan)
CRDS_HINT = " (are the CRDs installed? quartermaster crds | kubectl apply -f -)"


def add_cluster_arguments(parser: argparse.ArgumentParser, namespaced: bool = True) -> None:
    parser.add_argument("--kubeconfig", help="as kubectl: default $KUBECONFIG, then ~/.kube/config")
    parser.add_argument("--context", help="the kubeconfig context (default: its current one)")
    if namespaced:
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("-n", "--namespace", help="policies of this namespace (default: the context's)")
        scope.add_argument("-A", "--all-namespaces", action="store_true", help="policies of every namespace")


def namespace(options: argparse.Namespace) -> Optional[str]:
    """The namespace to read namespaced kinds in, as kubectl picks it; None for all."""
    from kubernetes import config

    if options.all_namespaces:
        return None
    if options.namespace:
        return options.namespace
    contexts, current = config.list_kube_config_contexts(config_file=options.kubeconfig)
    if options.context:
        current = next((c for c in contexts if c["name"] == options.context), current)
    return (current.get("context") or {}).get("namespace") or "default"


def api_client(options: argparse.Namespace):
    from kubernetes import config

    return config.new_client_from_config(config_file=options.kubeconfig, context=options.context)


def list_objects(api, namespace: Optional[str]) -> dict[str, list[dict]]:
    """Every object of our kinds (namespaced ones in `namespace`, or in all when None), by plural."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    found = {}
    for kind in KINDS:
        if kind.namespaced and namespace:
            answer = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural)
        else:
            answer = custom.list_cluster_custom_object(GROUP, VERSION, kind.plural)
        found[kind.plural] = answer.get("items") or []
    return found


def number(value) -> Optional[float]:
    """A quantity as a number in its unit (cores, bytes, a count); None when absent or unreadable."""
    from quartermaster.operator.quantities import to_float

    if value is None:
        return None
    try:
        return to_float(value)
    except (ValueError, ArithmeticError):
        return None


def qualified_name(obj: Mapping) -> str:
    """namespace/name, or the name of a cluster-scoped object."""
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def render(table: list[list[str]]) -> str:
    """Rows of cells as kubectl prints a table: left-aligned columns three spaces apart."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)


def dump(data, output: str) -> str:
    """`data` as JSON or YAML text, ending with a newline."""
    if output == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


def answer(error) -> dict:
    """The metav1.Status an ApiException carries ({} when its body is not one)."""
    try:
        status = json.loads(error.body or "{}")
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def cluster_errors() -> tuple[type[Exception], ...]:
    """What reading the cluster raises when there is none, it cannot be reached, or it refuses."""
    from kubernetes.client import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    return ConfigException, ApiException, HTTPError


def explain(error: Exception) -> str:
    """One of `cluster_errors()` in words."""
    from kubernetes.client import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(error, ConfigException):
        return f"no cluster to read: {error}"
    if isinstance(error, ApiException):
        said = answer(error).get("message")
        return (f"the apiserver answered {error.status} {error.reason}{CRDS_HINT if error.status == 404 else ''}"
                + (f": {said}" if said and error.status != 404 else ""))
    return f"the cluster cannot be reached: {error}"


def guarded(command: str, body: Callable[[], int]) -> int:
    """`body()`, or exit code 1 with `quartermaster COMMAND: what is wrong` on stderr when the
    cluster is missing, unreachable or answers with an error."""
    try:
        return body()
    except cluster_errors() as error:
        print(f"quartermaster {command}: {explain(error)}", file=sys.stderr)
        return 1
