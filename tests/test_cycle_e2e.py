"""The control cycle end to end: kwok nodes, a StatefulSet and a Deployment whose usage
follows real traces, the real Prometheus scraping it, and the operator under the chart's
RBAC writing a pool's used and forecast figures; then Prometheus goes away and comes back."""
import json
import re
import urllib.request
from datetime import datetime

import pytest
from kubernetes import client

from conftest import app_workload, wait_for
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.operator.quantities import to_float

NAMESPACE = "e2e-usage"  # the namespace of conftest.USAGE_DRIVES' e2e drives
POOL = "e2e-usage"
CPU_NOW = ('sum(rate(container_cpu_usage_seconds_total{namespace="e2e-usage", container!="", container!="POD"}'
           '[10m]))')


def template(app: str) -> client.V1PodTemplateSpec:
    container = client.V1Container(name="app", image=f"registry.example/{app}:1",
                                   resources=client.V1ResourceRequirements(requests={"cpu": "500m",
                                                                                     "memory": "256Mi"}))
    return client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": app}),
                                    spec=client.V1PodSpec(containers=[container], node_selector={"pool": "usage"}))


@pytest.fixture(scope="module")
def usage_pool(sim_cluster, control_plane, operator_process, kubectl):
    for name in ("e2e-usage-1", "e2e-usage-2"):
        sim_cluster.add_node(name, "8", "32Gi", pods=20, labels={"pool": "usage"})
    control_plane.create_namespace(NAMESPACE, timeout=60)
    with control_plane.api_client() as api:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_stateful_set(NAMESPACE, app_workload("StatefulSet", "api", 2, template("api")))
        apps.create_namespaced_deployment(NAMESPACE, app_workload("Deployment", "web", 2, template("web")))
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": POOL},
        "spec": {"nodeSelector": {"matchLabels": {"pool": "usage"}}, "workloads": {"namespaces": [NAMESPACE]}}}))
    return POOL


def pool_status(kubectl) -> dict:
    return json.loads(kubectl("get", "resourcepool", POOL, "-o", "json").stdout).get("status") or {}


def condition(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def events(kubectl, reason: str) -> list[dict]:
    listing = json.loads(kubectl("get", "events", "-A", "--field-selector",
                                 f"involvedObject.kind=ResourcePool,involvedObject.name={POOL},reason={reason}",
                                 "-o", "json").stdout)
    return listing["items"]


def test_used_equals_prometheus_and_forecast_names_its_tier(usage_pool, kubectl, prometheus):
    def matches_prometheus():
        status = pool_status(kubectl)
        if "metricsTime" not in status or status.get("workloads") != 2:
            return None
        at = datetime.strptime(status["metricsTime"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        result = prometheus.query(CPU_NOW, at=at)
        expected = float(result[0]["value"][1]) if result else None
        used = to_float(status["used"].get("cpu"))
        return expected is not None and abs(used - expected) <= 0.0011 and status

    # `used` is the latest sample of every member workload; once each has the same latest
    # grid time, it equals Prometheus's own sum at that time.
    status = wait_for(matches_prometheus, 120, "status.used.cpu to equal Prometheus's instant query")
    assert to_float(status["used"]["cpu"]) > 0 and to_float(status["used"]["memory"]) > 0
    assert condition(status, "MetricsAvailable")["status"] == "True"
    cpu = next(d for d in status["forecastDetails"] if d["resource"] == "cpu")
    assert cpu["tier"] in ("model", "robust", "default") and cpu["quantile"] == 0.9
    assert to_float(status["forecast"]["cpu"]) == to_float(cpu["peak"])
    header, row = (line.split() for line in kubectl("get", "rpool", POOL).stdout.splitlines()[:2])
    columns = dict(zip(header, row))
    assert columns["USED"] == status["used"]["cpu"] and columns["FORECAST"] == status["forecast"]["cpu"]


def test_prometheus_outage_is_a_condition_and_an_event_and_recovers(usage_pool, kubectl, prometheus,
                                                                    operator_liveness_port):
    wait_for(lambda: condition(pool_status(kubectl), "MetricsAvailable").get("status") == "True", 120,
             "metrics to be available first")
    prometheus.stop()
    try:
        down = wait_for(lambda: (c := condition(pool_status(kubectl), "MetricsAvailable")).get("status") == "False"
                        and c, 60, "MetricsAvailable=False")
        assert down["reason"] == "PrometheusUnreachable" and prometheus.url in down["message"]
        assert wait_for(lambda: events(kubectl, "PrometheusUnreachable"), 30, "an Event")
        with urllib.request.urlopen(f"http://127.0.0.1:{operator_liveness_port}/healthz", timeout=5) as r:
            assert r.status == 200, "the operator stays healthy"
        assert "used" in pool_status(kubectl), "the last good figures stay"
    finally:
        prometheus.start()
    wait_for(lambda: condition(pool_status(kubectl), "MetricsAvailable").get("status") == "True", 90,
             "MetricsAvailable=True again")
    assert len(events(kubectl, "PrometheusUnreachable")) == 1, "one Event per transition"


def test_operator_serves_its_own_metrics(usage_pool, kubectl, operator_metrics_port):
    wait_for(lambda: pool_status(kubectl).get("metricsTime"), 120, "a cycle with usage")

    # the pool's figures are its status as the next cycle reads it back: two nodes of 8 cores
    capacity = re.compile(rf'^quartermaster_pool_capacity\{{pool="{POOL}",resource="cpu"\}} 16\.0$', re.M)

    def scrape_with_capacity() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{operator_metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return text if capacity.search(text) else None

    text = wait_for(scrape_with_capacity, 30, "the pool's capacity metric")
    used = re.search(rf'^quartermaster_pool_used\{{pool="{POOL}",resource="cpu"\}} (\S+)$', text, re.M)
    assert used and float(used.group(1)) > 0, text[-3000:]
    assert re.search(r'^quartermaster_cycle_duration_seconds_count [1-9]', text, re.M), text[:2000]
    assert re.search(r'^quartermaster_cycle_stage_duration_seconds_bucket\{le="[^"]+",stage="forecast"\}', text, re.M)
    assert re.search(r"^quartermaster_workloads_observed [1-9]", text, re.M)
