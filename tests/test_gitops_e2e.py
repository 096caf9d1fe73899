"""GitOps: Git owns every spec, applied as Argo CD and Flux apply it (server-side); the
operator writes only status, the objects it owns and the targets its providers act on.

The apiserver's audit log (testbed.cluster.AUDIT_POLICY) records the session operator's
own writes; `kubectl diff --server-side` after the operator has run over examples/ shows
that nothing Git holds has drifted."""
import json
import re
import urllib.request

import pytest
import yaml

from conftest import OPERATOR_USER, main_resource_writes, wait_for
from quartermaster.operator.models import GROUP
from quartermaster.testbed.cluster import WRITE_VERBS
from quartermaster.testbed.processes import REPO

EXAMPLES = REPO / "examples"
OUR_KINDS = ("resourcepools", "quotas", "scalingpolicies", "swapplans")
# What the operator may write, as (API group, resource, subresource): its kinds' status;
# the objects it owns (HPAs, a Quota's ResourceQuotas and LimitRanges, the priority levels'
# PriorityClasses, Events, its leader-election Lease) and the reviews its REST API asks for;
# the targets its providers act on (pod templates, running pods' requests, evictions, and
# the kwok node pools' Nodes).
STATUS = {(GROUP, kind, "status") for kind in OUR_KINDS}
OWNED = {("autoscaling", "horizontalpodautoscalers", ""), ("", "resourcequotas", ""), ("", "limitranges", ""),
         ("scheduling.k8s.io", "priorityclasses", ""),
         ("", "events", ""), ("events.k8s.io", "events", ""), ("coordination.k8s.io", "leases", ""),
         ("authentication.k8s.io", "tokenreviews", ""), ("authorization.k8s.io", "subjectaccessreviews", "")}
POD_TEMPLATES = {("apps", "deployments", ""), ("apps", "statefulsets", "")}
TARGETS = POD_TEMPLATES | {("", "pods", "resize"), ("", "pods", "eviction"), ("", "nodes", "")}
# A SwapPlan approved through the REST API gets its approve annotation (main_resource_writes
# checks that nothing else is written).
APPROVALS = {(GROUP, "swapplans", "")}
# The examples' Deployment that their ScalingPolicy scales (through an HPA it owns).
SCALED = ("team-a", "web")
OUR_EXAMPLES = [doc for path in sorted(EXAMPLES.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
                if doc and doc["apiVersion"].startswith(f"{GROUP}/")]


def applied(kubectl) -> None:
    """examples/ applied as a GitOps tool applies them; a conflict with a field someone
    else took over fails here."""
    result = kubectl("apply", "--server-side", "-f", str(EXAMPLES), check=False)
    assert result.returncode == 0, result.stderr


def cycles(metrics_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(float(re.search(r"^quartermaster_cycle_duration_seconds_count (\S+)$", text, re.M).group(1)))


def run_cycles(metrics_port: int, count: int = 3) -> None:
    start = cycles(metrics_port)
    wait_for(lambda: cycles(metrics_port) >= start + count, 90, f"{count} more control cycles")


def observed_examples(kubectl) -> bool:
    """Whether the operator has written the status of every example of our kinds for its
    current spec."""
    for example in OUR_EXAMPLES:
        meta = example["metadata"]
        found = json.loads(kubectl("get", f"{example['kind'].lower()}.{GROUP}", meta["name"], "-o", "json",
                                   *(["-n", meta["namespace"]] if "namespace" in meta else [])).stdout)
        if (found.get("status") or {}).get("observedGeneration") != found["metadata"]["generation"]:
            return False
    return True


@pytest.fixture(scope="module")
def examples_run(control_plane, sim_cluster, operator_process, operator_metrics_port, kubectl):
    """examples/ applied, the operator's cycles over them, applied again, more cycles;
    afterwards everything but the namespaces (test_crds applies those too) is deleted, so
    that the examples' pods take no room on later tests' nodes."""
    sim_cluster.add_node("gitops-1", "32", "128Gi", pods=110, labels={"pool": "gitops"})
    try:
        applied(kubectl)
        wait_for(lambda: observed_examples(kubectl), 120, "the operator to report on every example")
        # the example policy acts: it owns an HPA for its target, which scales it
        wait_for(lambda: kubectl("get", "hpa", "-n", SCALED[0], SCALED[1], check=False).returncode == 0, 120,
                 "the example ScalingPolicy's HPA")
        run_cycles(operator_metrics_port)
        applied(kubectl)
        run_cycles(operator_metrics_port)
        yield
    finally:
        kubectl("delete", "--ignore-not-found", "--wait=false",
                *(f"--filename={path}" for path in sorted(EXAMPLES.glob("*.yaml")) if path.name != "00-namespaces.yaml"))


def test_applying_examples_again_after_the_operator_ran_changes_nothing(examples_run, kubectl):
    """What Argo CD and Flux would see: no drift, so nothing to fight over."""
    result = kubectl("diff", "--server-side", "-f", str(EXAMPLES), check=False)
    assert result.returncode == 0, f"drift (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    assert not result.stdout


def template_requests_only(patch: dict) -> bool:
    """A pod template patch that sets containers' requests and nothing else."""
    containers = ((patch.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
    return (patch == {"spec": {"template": {"spec": {"containers": containers}}}} and bool(containers)
            and all(set(c) == {"name", "resources"} and set(c["resources"]) == {"requests"} for c in containers))


def test_the_operator_writes_only_status_what_it_owns_and_its_targets(examples_run, control_plane):
    writes = [e for e in control_plane.audit_events()
              if e["user"]["username"] == OPERATOR_USER and e["verb"] in WRITE_VERBS]
    where = [(e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"], e["objectRef"].get("subresource", ""))
             for e in writes]
    assert {(GROUP, "resourcepools", "status"), ("", "events", "")} <= set(where), "the audit saw its writes"
    spec = main_resource_writes(writes)
    assert not spec, "writes to our kinds' main resource:\n" + "\n".join(spec)
    others = [f"{e['verb']} {e['requestURI']}" for e, w in zip(writes, where) if w not in STATUS | OWNED | TARGETS | APPROVALS]
    assert not others, "\n".join(others)
    templates = [e for e, w in zip(writes, where) if w in POD_TEMPLATES]
    assert all(e["verb"] == "patch" and template_requests_only(e["requestObject"]) for e in templates), templates
