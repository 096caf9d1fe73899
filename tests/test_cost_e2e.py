"""Cost end to end: a StatefulSet whose usage and requests (7 days backfilled, then live
from its pods' specs, as kube-state-metrics would export them) are in the session's
Prometheus; a Quota over its namespace. The Quota's status.cost equals a computation in
this test from the same Prometheus data (within 1 %); a monthly budget under the spend
flips BudgetExceeded with an Event; GET /cost answers with the same figures."""
import json
import math
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import pytest
from kubernetes import client

from conftest import api_call, app_workload, wait_for
from quartermaster.operator.models import GROUP, VERSION

NAMESPACE = "e2e-cost"
QUOTA = "cost-watch"
STEP = 3600  # the operator's default cost resolution
PRICES = {"cpu": 0.031611, "memory": 0.004237 / 2**30}  # OpenCost's defaults per core- and byte-hour


@pytest.fixture(scope="module")
def reader_token(sim_cluster, control_plane, operator_process, kubectl):
    """Runs the StatefulSet `batch` (the pods USAGE_DRIVES backfilled) and a Quota over its
    namespace; returns a token that may read the API."""
    control_plane.create_namespace(NAMESPACE, timeout=60)
    sim_cluster.add_node("e2e-cost-1", "8", "16Gi", pods=20, labels={"pool": "cost"})
    container = client.V1Container(name="app", image="registry.example/batch:1", resources=client.V1ResourceRequirements(
        requests={"cpu": "500m", "memory": "256Mi"}))
    template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "batch"}),
                                        spec=client.V1PodSpec(containers=[container], node_selector={"pool": "cost"}))
    with control_plane.api_client() as api:
        client.AppsV1Api(api).create_namespaced_stateful_set(NAMESPACE, app_workload("StatefulSet", "batch", 2, template))
    apply_quota(kubectl, {})
    kubectl("create", "clusterrole", "cost-reader", "--verb=get", f"--resource=swapplans.{GROUP}")
    kubectl("create", "serviceaccount", "reader", "-n", NAMESPACE)
    kubectl("create", "clusterrolebinding", f"{NAMESPACE}-reader", "--clusterrole=cost-reader",
            f"--serviceaccount={NAMESPACE}:reader")
    return kubectl("create", "token", "reader", "-n", NAMESPACE).stdout.strip()


def apply_quota(kubectl, budget: dict) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": QUOTA},
        "spec": {"scope": {"namespaces": [NAMESPACE]}, **({"budget": budget} if budget else {})}}))


def quota_status(kubectl) -> dict:
    return json.loads(kubectl("get", "quotas.quartermaster.dev", QUOTA, "-o", "json").stdout).get("status") or {}


def condition(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def measured(kubectl) -> dict:
    """The status once cost is known and the live pods' requests are in Prometheus."""
    return wait_for(lambda: (s := quota_status(kubectl)).get("cost") and condition(s, "CostAvailable").get("status")
                    == "True" and s, 120, "the Quota's cost in status")


def range_query(prometheus, promql: str, start: float, end: float) -> dict[str, dict[float, float]]:
    """pod -> time -> value, straight from Prometheus's HTTP API."""
    params = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": STEP})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query_range?{params}", timeout=30) as answer:
        body = json.load(answer)
    return {s["metric"]["pod"]: {float(t): float(v) for t, v in s["values"]} for s in body["data"]["result"]}


def independent_spend(prometheus, start: float, now: float) -> float:
    """Each pod charged max(request, usage) x price for each hourly sample's hour (the last
    only up to `now`), summed, in plain Python."""
    selector = f'namespace="{NAMESPACE}", container!="", container!="POD"'
    usage = {"cpu": f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{selector}}}[10m]))",
             "memory": f"sum by (pod) (container_memory_working_set_bytes{{{selector}}})"}
    requests = {r: f'sum by (pod) (kube_pod_container_resource_requests{{namespace="{NAMESPACE}", resource="{r}"}})'
                for r in ("cpu", "memory")}
    first, last = math.floor(start / STEP) * STEP, math.floor(now / STEP) * STEP
    total = 0.0
    for resource, price in PRICES.items():
        used, asked = (range_query(prometheus, q[resource], first, last) for q in (usage, requests))
        for pod in set(used) | set(asked):
            for t in set(used.get(pod, {})) | set(asked.get(pod, {})):
                hours = max(0.0, min(t + STEP, now) - max(t, start)) / 3600
                total += max(used.get(pod, {}).get(t, 0.0), asked.get(pod, {}).get(t, 0.0)) * price * hours
    return total


def month_start(now: float) -> float:
    moment = datetime.fromtimestamp(now, timezone.utc)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def as_of(status: dict) -> float:
    return datetime.strptime(status["cost"]["asOf"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_the_quotas_cost_equals_a_computation_from_the_same_prometheus_data(reader_token, kubectl, prometheus):
    # the live pods' requests come from their specs once they run
    wait_for(lambda: len(prometheus.query(f'kube_pod_container_resource_requests{{namespace="{NAMESPACE}"}}')) == 4,
             90, "both pods' cpu and memory requests scraped")
    status = measured(kubectl)
    now = as_of(status)
    cost = status["cost"]
    assert cost["currency"] == "USD"
    expected_month = independent_spend(prometheus, month_start(now), now)
    expected_today = independent_spend(prometheus, math.floor(now / 86400) * 86400, now)
    assert expected_month > 0
    assert cost["thisMonth"] == pytest.approx(expected_month, rel=0.01)
    assert cost["today"] == pytest.approx(expected_today, rel=0.01, abs=1e-6)
    assert cost["forecastMonth"] >= cost["thisMonth"] and cost["forecastToday"] >= cost["today"]


def test_a_budget_under_the_spend_flips_budget_exceeded_with_an_event(reader_token, kubectl):
    spent = measured(kubectl)["cost"]["thisMonth"]
    apply_quota(kubectl, {"monthly": round(spent / 2, 6)})
    status = wait_for(lambda: condition(s := quota_status(kubectl), "BudgetExceeded").get("status") == "True" and s,
                      60, "BudgetExceeded=True")
    exceeded = condition(status, "BudgetExceeded")
    assert exceeded["reason"] == "OverBudget" and "monthly budget" in exceeded["message"]
    assert condition(status, "BudgetAtRisk")["status"] == "True", "a forecast is never under what is spent"

    def warning():
        events = json.loads(kubectl("get", "events", "-n", "default", "--field-selector",
                                    f"involvedObject.name={QUOTA},reason=OverBudget", "-o", "json").stdout)["items"]
        return [e for e in events if e["type"] == "Warning" and e["involvedObject"]["kind"] == "Quota"]
    wait_for(warning, 30, "a Warning Event OverBudget on the Quota")
    apply_quota(kubectl, {"monthly": round(spent * 1000, 2)})
    wait_for(lambda: condition(quota_status(kubectl), "BudgetExceeded").get("reason") == "WithinBudget", 60,
             "BudgetExceeded=False under a raised budget")


def test_the_cost_endpoint_answers_with_the_same_figures(reader_token, kubectl, operator_api_port):
    assert api_call(operator_api_port, "/cost?window=month")[0] == 401
    status = measured(kubectl)
    code, answer = api_call(operator_api_port, "/cost?window=month&aggregate=namespace", reader_token)
    assert code == 200 and answer["code"] == 200
    namespace = answer["data"][0][NAMESPACE]
    # the endpoint answers from the latest cycle's read, seconds after the status's
    assert namespace["totalCost"] == pytest.approx(status["cost"]["thisMonth"], rel=0.01)
    assert namespace["totalCost"] == pytest.approx(namespace["cpuCost"] + namespace["ramCost"] + namespace["gpuCost"])
    assert namespace["window"]["start"] == datetime.fromtimestamp(month_start(time.time()), timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    _, by_workload = api_call(operator_api_port, "/cost?window=month&aggregate=workload", reader_token)
    batch = by_workload["data"][0][f"{NAMESPACE}/StatefulSet/batch"]
    assert batch["totalCost"] == pytest.approx(namespace["totalCost"], rel=1e-6)
    assert batch["cpuCoreRequestAverage"] > 0
    code, bad = api_call(operator_api_port, "/cost?window=forever", reader_token)
    assert code == 400 and "window" in bad["message"]
    code, bad = api_call(operator_api_port, "/cost?window=today&aggregate=team", reader_token)
    assert code == 400 and "aggregate" in bad["message"]
