"""SwapPlan end to end: a pool with a busy StatefulSet that asks too little and an idle one
that asks too much, a week of their usage in the real Prometheus (conftest.USAGE_DRIVES),
the operator under the chart's RBAC moving requests between them on the pod templates (the
StatefulSet controller rolls the pods), an approval that waits for its planId, and a guard
that rolls a plan back; an operator killed while it executes, and started again."""
import json

import pytest
from kubernetes import client

from conftest import api_call, app_workload, wait_for
from quartermaster.testbed.processes import PollTimeout, poll
from quartermaster.operator.models import GROUP, VERSION

ORIGINAL = {"busy": {"cpu": "200m", "memory": "512Mi"}, "idle": {"cpu": "2", "memory": "512Mi"}}


def template(name: str, requests: dict) -> client.V1PodTemplateSpec:
    container = client.V1Container(name="app", image=f"registry.example/{name}:1",
                                   resources=client.V1ResourceRequirements(requests=dict(requests)))
    return client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": name}),
                                    spec=client.V1PodSpec(containers=[container]))


def add_swap_pool(api, sim_cluster, control_plane, kubectl, name: str) -> None:
    """A namespace, node and pool `name` with `busy` (2 pods, 200m each, using about 3 cores)
    and `idle` (2 pods, 2 cores each, using a tenth of a core); their history is in
    conftest.USAGE_DRIVES."""
    sim_cluster.add_node(f"{name}-1", "16", "32Gi", pods=20, labels={"pool": name})
    control_plane.create_namespace(name, timeout=60)
    for app, requests in ORIGINAL.items():
        workload = app_workload("StatefulSet", app, 2, template(app, requests))
        workload.spec.template.spec.node_selector = {"pool": name}
        client.AppsV1Api(api).create_namespaced_stateful_set(name, workload)
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": name},
        "spec": {"nodeSelector": {"matchLabels": {"pool": name}}, "workloads": {"namespaces": [name]}}}))


@pytest.fixture(scope="module")
def pools(sim_cluster, control_plane, operator_process, prometheus, kubectl):
    """One swap pool per test (`swap-auto`, `swap-manual`, `swap-guard`, `swap-restart`)."""
    with control_plane.api_client() as api:
        for name in ("swap-auto", "swap-manual", "swap-guard", "swap-restart"):
            add_swap_pool(api, sim_cluster, control_plane, kubectl, name)
        yield api


def swap_plan(name: str, approval: str, **spec) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "SwapPlan", "metadata": {"name": name},
                       "spec": {"poolRef": {"name": name}, "approval": approval, "horizonSeconds": 900,
                                "constraints": {"rolloutTimeoutSeconds": 120}, **spec}})


def status(kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "swapplan", name, "-o", "json").stdout).get("status") or {}


def finished(kubectl, name: str, timeout: float) -> dict:
    """The plan's status once it has finished; the test fails with the last status otherwise."""
    last = {}

    def done():
        nonlocal last
        last = status(kubectl, name)
        return last.get("phase") in ("Succeeded", "RolledBack", "Failed") and last

    try:
        return poll(done, timeout, f"{name} to finish")
    except PollTimeout:
        pytest.fail(f"{name} did not finish in {timeout} s; its status: {json.dumps(last, indent=1)}")


def template_requests(api, namespace: str) -> dict:
    return {app: client.AppsV1Api(api).read_namespaced_stateful_set(app, namespace).spec.template.spec.containers[0]
            .resources.requests for app in ORIGINAL}


def planned_requests(plan_status: dict) -> dict:
    return {step["workload"].rsplit("/", 1)[1]: step["after"][0]["requests"]
            for step in plan_status["execution"]["steps"]}


def test_an_auto_plan_moves_cpu_from_the_idle_workload_to_the_busy_one(pools, kubectl):
    kubectl("apply", "-f", "-", input=swap_plan("swap-auto", "Auto"))
    done = finished(kubectl, "swap-auto", 240)
    assert done["phase"] == "Succeeded", done
    cpu = [s for s in done["swaps"] if s["resource"] == "cpu" and s["to"] == "swap-auto/StatefulSet/busy"]
    assert cpu and cpu[0]["from"] == "swap-auto/StatefulSet/idle"
    assert template_requests(pools, "swap-auto") == {**ORIGINAL, **planned_requests(done)}
    busy_cpu = planned_requests(done)["busy"]["cpu"]
    assert busy_cpu != ORIGINAL["busy"]["cpu"], "the busy workload's template carries its new request"
    table = kubectl("get", "swplan", "swap-auto").stdout
    assert "Succeeded" in table and "Auto" in table


def approver_token(kubectl) -> str:
    """A bearer token of a ServiceAccount that may patch swapplans, as an approver's is."""
    kubectl("create", "clusterrole", "swap-plan-approver", "--verb=get,patch", f"--resource=swapplans.{GROUP}")
    kubectl("create", "serviceaccount", "swap-plan-approver", "-n", "default")
    kubectl("create", "clusterrolebinding", "swap-plan-approver", "--clusterrole=swap-plan-approver",
            "--serviceaccount=default:swap-plan-approver")
    return kubectl("create", "token", "swap-plan-approver", "-n", "default").stdout.strip()


def test_a_manual_plan_waits_for_its_plan_id(pools, kubectl, operator_api_port):
    kubectl("apply", "-f", "-", input=swap_plan("swap-manual", "Manual"))
    planned = wait_for(lambda: (s := status(kubectl, "swap-manual")).get("planId") and s.get("swaps") and s,
                       120, "a plan")
    assert planned["phase"] == "Planned"
    kubectl("annotate", "swapplan", "swap-manual", "quartermaster.dev/approve=not-this-plan")
    waiting = wait_for(lambda: "not this one" in next(c for c in status(kubectl, "swap-manual")["conditions"]
                                                      if c["type"] == "Ready")["message"], 60, "a stale approval")
    assert waiting and template_requests(pools, "swap-manual") == ORIGINAL, "nothing moves before approval"
    # approved through the REST API: the operator writes the annotation under the chart's role
    approval = json.dumps({"plan": "swap-manual", "approve": planned["planId"]})
    assert api_call(operator_api_port, "/swap_request", approver_token(kubectl), approval)[0] == 202
    done = finished(kubectl, "swap-manual", 240)
    assert done["phase"] == "Succeeded", done
    assert done["planId"] == planned["planId"]
    assert template_requests(pools, "swap-manual") == {**ORIGINAL, **planned_requests(done)}


def test_a_failing_guard_restores_the_original_requests(pools, kubectl):
    kubectl("apply", "-f", "-", input=swap_plan("swap-guard", "Auto", rollbackGuard={
        "query": 'up{job="no-such-service"}', "windowSeconds": 60}))
    done = finished(kubectl, "swap-guard", 300)
    assert done["phase"] == "RolledBack", done
    assert "no series" in done["execution"]["reason"]
    assert template_requests(pools, "swap-guard") == ORIGINAL
    events = json.loads(kubectl("get", "events", "-A", "--field-selector",
                                "involvedObject.kind=SwapPlan,involvedObject.name=swap-guard", "-o", "json").stdout)
    assert "RolledBack" in {e["reason"] for e in events["items"]}


def test_an_operator_killed_while_executing_finishes_the_plan_without_doubling_a_change(
        pools, kubectl, operator_process):
    kubectl("apply", "-f", "-", input=swap_plan("swap-restart", "Auto"))
    executing = poll(lambda: (s := status(kubectl, "swap-restart")).get("phase") == "Executing" and s, 240,
                     "the plan to start executing", interval=0.05)
    operator_process.popen.kill()  # SIGKILL: no clean-up, as a node failure would do it
    operator_process.popen.wait()
    operator_process.start()
    assert any(step["state"] == "Applying" for step in executing["execution"]["steps"]), "killed mid-step"
    done = finished(kubectl, "swap-restart", 240)
    assert done["phase"] == "Succeeded", done
    assert done["planId"] == executing["planId"], "the same plan carried on, not a new one"
    # each workload at its planned requests exactly: a change applied twice (a delta, or a
    # second step from a forgotten record) would show here
    assert template_requests(pools, "swap-restart") == {**ORIGINAL, **planned_requests(done)}
    applied = [h["phase"] for h in done["history"]]
    assert applied.count("Approved") == 1 and applied[-1] == "Succeeded"
