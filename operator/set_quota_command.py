"""`quartermaster set-quota NAME --cpu 30 --memory 64Gi [--gpu N] [--priority critical]`:
change a Quota's limits or priority class by server-side apply under the field manager
`quartermaster-cli`, sending only the fields given, so every other field keeps its value
and its manager.

When the Quota is kept in Git by Argo CD or Flux (their labels or annotations on it) the
command still applies the change, and warns that the next sync from Git will undo it.
`apply_body` and `gitops_manager` are pure; `run` reads, warns and applies.
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Mapping, Optional

from quartermaster.operator import cli_client
from quartermaster.operator.models import GROUP, VERSION, Quantity, Quota
from quartermaster.planner.priority import PriorityClass

FIELD_MANAGER = "quartermaster-cli"
GPU = "nvidia.com/gpu"


def quantity(text: str) -> str:
    """A non-negative Kubernetes quantity, checked as the CRD's schema will check it."""
    if not re.match(Quantity.PATTERN, text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative Kubernetes quantity (such as 30, 500m, 64Gi)")
    return text


def apply_body(name: str, cpu: Optional[str] = None, memory: Optional[str] = None, gpu: Optional[str] = None,
               priority: Optional[str] = None) -> dict:
    """The server-side apply document: the Quota's name and only the fields given."""
    hard = {key: value for key, value in (("cpu", cpu), ("memory", memory), (GPU, gpu)) if value is not None}
    spec = {**({"hard": hard} if hard else {}), **({"priorityClass": priority} if priority else {})}
    if not spec:
        raise ValueError("nothing to set: give --cpu, --memory, --gpu or --priority")
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": Quota.kind, "metadata": {"name": name}, "spec": spec}


def gitops_manager(obj: Mapping) -> Optional[str]:
    """Which GitOps tool keeps this object in Git, in words, from the marks it leaves; None if none."""
    meta = obj.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    tracking = annotations.get("argocd.argoproj.io/tracking-id")  # "app:group/Kind:namespace/name"
    if tracking or "argocd.argoproj.io/instance" in labels:
        application = (labels.get("argocd.argoproj.io/instance") or (tracking or "").split(":")[0]
                       or labels.get("app.kubernetes.io/instance"))
        return f"Argo CD (application {application})"
    for controller, kind in (("kustomize", "Kustomization"), ("helm", "HelmRelease")):
        name = labels.get(f"{controller}.toolkit.fluxcd.io/name")
        if name:
            namespace = labels.get(f"{controller}.toolkit.fluxcd.io/namespace")
            return f"Flux ({kind} {f'{namespace}/' if namespace else ''}{name})"
    return None


def _changes(body: Mapping) -> str:
    spec = body["spec"]
    changes = [f"spec.hard.{key}={value}" for key, value in (spec.get("hard") or {}).items()]
    return ", ".join(changes + ([f"spec.priorityClass={spec['priorityClass']}"] if "priorityClass" in spec else []))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the Quota's name")
    parser.add_argument("--cpu", type=quantity, help="the hard cpu limit (cores: 30, 2500m)")
    parser.add_argument("--memory", type=quantity, help="the hard memory limit (64Gi)")
    parser.add_argument("--gpu", type=quantity, help=f"the hard {GPU} limit")
    parser.add_argument("--priority", choices=[p.value for p in PriorityClass], help="the priority class")
    cli_client.add_cluster_arguments(parser, namespaced=False)


def run(options: argparse.Namespace) -> int:
    from kubernetes import client
    from kubernetes.client import ApiException

    try:
        body = apply_body(options.name, options.cpu, options.memory, options.gpu, options.priority)
    except ValueError as error:
        print(f"quartermaster set-quota: {error}", file=sys.stderr)
        return 1

    def apply() -> int:
        custom = client.CustomObjectsApi(cli_client.api_client(options))
        try:
            current = custom.get_cluster_custom_object(GROUP, VERSION, Quota.plural, options.name)
        except ApiException as error:
            # A missing object names itself in the answer's details; a missing kind does not.
            if error.status == 404 and (cli_client.answer(error).get("details") or {}).get("name") == options.name:
                print(f"quartermaster set-quota: there is no Quota named {options.name}", file=sys.stderr)
                return 1
            raise
        manager = gitops_manager(current)
        if manager:
            print(f"quartermaster set-quota: warning: Quota {options.name} is kept in Git by {manager}: "
                  "its next sync will undo this change; make it in Git to keep it", file=sys.stderr)
        # force: the fields given are taken over from whoever set them last (kubectl, a GitOps tool).
        custom.patch_cluster_custom_object(GROUP, VERSION, Quota.plural, options.name, body,
                                           field_manager=FIELD_MANAGER, force=True,
                                           _content_type="application/apply-patch+yaml")
        print(f"quota.{GROUP}/{options.name} applied: {_changes(body)}")
        return 0
    return cli_client.guarded("set-quota", apply)
