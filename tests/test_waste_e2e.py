"""Waste findings end to end: StatefulSets `oversized`, `unused` and `spiky` in e2e-waste,
each with a week of usage and requests backfilled in the session's Prometheus
(conftest.USAGE_DRIVES) and running now; a Quota over the namespace. Its status.findings
hold a Rightsizing finding for `oversized` whose recommended requests and monthly saving
equal a computation in this test from the same Prometheus data, an Idle one for `unused`,
and a CostAnomaly for `spiky`, whose last day cost four times its days before; each is
filed as one Event on the Quota (not one a cycle); `quartermaster export --kind finding`
lists them."""
import csv
import io
import json
import math
import re
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from kubernetes import client

from cli_testing import quartermaster
from conftest import app_workload, wait_for
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.operator.quantities import to_float

NAMESPACE = "e2e-waste"
QUOTA = "waste-watch"
STEP = 3600  # the operator's default cost resolution
WEEK = 168
PRICES = {"cpu": 0.031611, "memory": 0.004237 / 2**30}  # OpenCost's defaults per core- and byte-hour
REQUESTS = {"oversized": {"cpu": "2", "memory": "2Gi"}, "unused": {"cpu": "500m", "memory": "256Mi"},
            "spiky": {"cpu": "10m"}}


@pytest.fixture(scope="module")
def quota(sim_cluster, control_plane, operator_process, prometheus, kubectl):
    control_plane.create_namespace(NAMESPACE, timeout=60)
    sim_cluster.add_node("e2e-waste-1", "8", "16Gi", pods=20, labels={"pool": "waste"})
    with control_plane.api_client() as api:
        for app, requests in REQUESTS.items():
            container = client.V1Container(name="app", image=f"registry.example/{app}:1",
                                           resources=client.V1ResourceRequirements(requests=requests))
            template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": app}),
                                                spec=client.V1PodSpec(containers=[container],
                                                                      node_selector={"pool": "waste"}))
            client.AppsV1Api(api).create_namespaced_stateful_set(NAMESPACE,
                                                                 app_workload("StatefulSet", app, 1, template))
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": QUOTA},
        "spec": {"scope": {"namespaces": [NAMESPACE]}}}))
    return QUOTA


def findings(kubectl) -> dict[tuple[str, str], dict]:
    status = json.loads(kubectl("get", "quotas.quartermaster.dev", QUOTA, "-o", "json").stdout).get("status") or {}
    return {(f["kind"], f["workload"]): f for f in status.get("findings") or []}


def series(prometheus, promql: str, end: float) -> dict[float, float]:
    """The query's one series on the hourly grid of the week up to `end`, by time."""
    params = urllib.parse.urlencode({"query": promql, "start": end - (WEEK - 1) * STEP, "end": end, "step": STEP})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query_range?{params}", timeout=30) as answer:
        (found,) = json.load(answer)["data"]["result"]
    return {float(t): float(v) for t, v in found["values"]}


def week(prometheus, promql: str, end: float) -> np.ndarray:
    return np.array(list(series(prometheus, promql, end).values()))


def test_an_oversized_and_an_unused_workload_are_found_with_the_saving_prometheus_data_gives(quota, kubectl,
                                                                                              prometheus):
    oversized, unused = f"{NAMESPACE}/StatefulSet/oversized", f"{NAMESPACE}/StatefulSet/unused"
    found = wait_for(lambda: {("Rightsizing", oversized), ("Idle", unused)} <= set(f := findings(kubectl)) and f,
                     120, "the Quota's findings")
    end = math.floor(time.time() / STEP) * STEP
    selector = f'namespace="{NAMESPACE}", pod="oversized-0", container!="", container!="POD"'
    usage = {"cpu": week(prometheus, f"sum(rate(container_cpu_usage_seconds_total{{{selector}}}[10m]))", end),
             "memory": week(prometheus, f"sum(container_memory_working_set_bytes{{{selector}}})", end)}
    request = {r: to_float(v) for r, v in REQUESTS["oversized"].items()}
    recommended = {r: float(np.quantile(usage[r], 0.95)) * 1.2 for r in usage}
    assert all(recommended[r] < request[r] / 2 for r in usage), "the drive is oversized in both resources"
    saving = sum((np.maximum(request[r], usage[r]) - np.maximum(recommended[r], usage[r])).sum() * PRICES[r]
                 for r in usage) * 730 / WEEK
    rightsizing = found[("Rightsizing", oversized)]
    assert rightsizing["monthlySaving"] == pytest.approx(saving, rel=0.03)
    for resource in usage:
        assert to_float(rightsizing["recommended"][resource]) == pytest.approx(recommended[resource], rel=0.05)
    idle = found[("Idle", unused)]
    whole = (to_float(REQUESTS["unused"]["cpu"]) * PRICES["cpu"] + to_float(REQUESTS["unused"]["memory"])
             * PRICES["memory"]) * 730
    assert idle["monthlySaving"] == pytest.approx(whole, rel=0.01), "charged its requests every hour"
    assert not [k for k in found if k[1] == oversized and k[0] == "Idle"]

    def events(reason: str) -> list[dict]:
        items = json.loads(kubectl("get", "events", "-n", "default", "--field-selector",
                                   f"involvedObject.name={QUOTA},reason={reason}", "-o", "json").stdout)["items"]
        return [e for e in items if e["involvedObject"]["kind"] == "Quota"]
    wait_for(lambda: events("Rightsizing") and events("Idle"), 30, "an Event for each finding")
    time.sleep(12)  # two more cycles at least: no Event again the same day
    assert [e["message"].split(":")[0] for e in events("Rightsizing")] == [oversized]
    assert [e["message"].split(":")[0] for e in events("Idle")] == [unused]


def test_the_export_lists_the_findings(quota, kubectl, control_plane):
    wait_for(lambda: len(findings(kubectl)) >= 2, 120, "the Quota's findings")
    result = quartermaster("export", control_plane.admin_kubeconfig, "--kind", "finding")
    assert result.returncode == 0, result.stderr
    rows = {(r["finding"], r["target"]): r for r in csv.DictReader(io.StringIO(result.stdout)) if r["name"] == QUOTA}
    row = rows[("Rightsizing", f"{NAMESPACE}/StatefulSet/oversized")]
    assert float(row["monthly_saving"]) > 0 and float(row["recommended_cpu"]) < 1 and row["currency"] == "USD"
    assert ("Idle", f"{NAMESPACE}/StatefulSet/unused") in rows


def test_a_day_far_above_the_workloads_own_history_is_a_cost_anomaly(quota, kubectl, prometheus):
    spiky = f"{NAMESPACE}/StatefulSet/spiky"
    found = wait_for(lambda: ("CostAnomaly", spiky) in (f := findings(kubectl)) and f, 120, "spiky's anomaly")
    anomaly = found[("CostAnomaly", spiky)]
    assert "monthlySaving" not in anomaly
    # each day's cost from Prometheus: max(request, usage) of cpu, and memory (it requests none) by usage
    end = math.floor(time.time() / STEP) * STEP
    selector = f'namespace="{NAMESPACE}", pod="spiky-0", container!="", container!="POD"'
    cpu = series(prometheus, f"sum(rate(container_cpu_usage_seconds_total{{{selector}}}[10m]))", end)
    memory = series(prometheus, f"sum(container_memory_working_set_bytes{{{selector}}})", end)
    requested = series(prometheus, f'sum(kube_pod_container_resource_requests{{namespace="{NAMESPACE}", '
                                   f'pod="spiky-0", resource="cpu"}})', end)
    days = np.zeros(7)
    for t, used in cpu.items():
        days[6 - int((end - t) // 86400)] += max(used, requested.get(t, 0.0)) * PRICES["cpu"] + \
            memory.get(t, 0.0) * PRICES["memory"]
    median = float(np.median(days[:-1]))
    assert days[-1] > 3 * median, "the last day's cpu is four times the days' before"
    last, usual = (float(x) for x in re.search(r"last 24 h cost ([0-9.]+), against a median of ([0-9.]+)",
                                                anomaly["message"]).groups())
    assert last == pytest.approx(days[-1], abs=0.01) and usual == pytest.approx(median, abs=0.01)
    events = json.loads(kubectl("get", "events", "-n", "default", "--field-selector",
                                f"involvedObject.name={QUOTA},reason=CostAnomaly", "-o", "json").stdout)["items"]
    assert [e["type"] for e in events if e["message"].startswith(spiky)] == ["Warning"]
