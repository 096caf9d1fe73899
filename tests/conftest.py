"""Session fixtures for the real test bed (quartermaster.testbed): control plane, simulated
cluster, live usage and the Prometheus that scrapes it, and the operator itself running
with only the chart's RBAC."""
from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from moto_aws import CREDENTIALS, REGION, failing_proxy, moto_server
from quartermaster.operator.models import GROUP
from quartermaster.operator.swapplan import APPROVE_ANNOTATION
from quartermaster.testbed.cluster import WRITE_VERBS, ControlPlane, SimulatedCluster
from quartermaster.testbed.operator import install_chart_rbac, render_chart, start_operator
from quartermaster.testbed.processes import REPO, PollTimeout, TestbedError, free_port, poll, testbed_binaries
from quartermaster.testbed.prometheus import Prometheus
from quartermaster.testbed.traces import TRACES
from quartermaster.testbed.usage import UsageDrive, UsageExporter

# A suite started in the background of a script (`make test &`) inherits SIGINT ignored, and
# so would every process it starts: the CLI's tests end a command with Ctrl-C, as a user does.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
OPERATOR_NAMESPACE = "quartermaster-system"
RELEASE = "qm"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}-quartermaster"  # the chart's ServiceAccount


def unavailable(reason: str):
    """In CI a test bed that cannot be built or started fails the run; elsewhere it skips."""
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """poll() until `predicate()` returns something truthy, and return it; fail the test
    naming `what` otherwise."""
    try:
        return poll(predicate, timeout, what, interval)
    except PollTimeout as error:
        message = str(error)
    pytest.fail(message)


@pytest.fixture(scope="session")
def testbed_bin() -> Path:
    try:
        return testbed_binaries()
    except TestbedError as error:
        unavailable(str(error))


def main_resource_writes(writes: list[dict]) -> list[str]:
    """Of audited writes, those to our kinds' main resource ("verb URI"), but for POST
    /swap_request's: a patch of a SwapPlan that sets its approve annotation and nothing else,
    made for a caller the API checked may patch swapplans."""
    def approval(event: dict) -> bool:
        body = event.get("requestObject") or {}
        return (event["verb"] == "patch" and event["objectRef"]["resource"] == "swapplans"
                and body == {"metadata": {"annotations": {APPROVE_ANNOTATION: body.get("metadata", {}).get(
                    "annotations", {}).get(APPROVE_ANNOTATION)}}})
    return [f"{e['verb']} {e['requestURI']}" for e in writes if e["objectRef"].get("apiGroup") == GROUP
            and e["objectRef"].get("subresource") != "status" and not approval(e)]


def api_call(port: int, path: str, token: str | None = None, body: str | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of the session operator's REST API: a GET, or a POST of ``body``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                     data=None if body is None else body.encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def app_workload(kind: str, name: str, replicas: int, template: client.V1PodTemplateSpec):
    """A Deployment or a StatefulSet of `template`'s pods, which carry the label app=name."""
    selector = client.V1LabelSelector(match_labels={"app": name})
    if kind == "StatefulSet":
        return client.V1StatefulSet(metadata=client.V1ObjectMeta(name=name), spec=client.V1StatefulSetSpec(
            replicas=replicas, service_name=name, template=template, selector=selector))
    return client.V1Deployment(metadata=client.V1ObjectMeta(name=name), spec=client.V1DeploymentSpec(
        replicas=replicas, template=template, selector=selector))


def running(server):
    """Start a test-bed server for a fixture: yield it, stop it afterwards. (A start that
    fails stops whatever it had started itself.)"""
    try:
        server.start()
    except TestbedError as error:
        unavailable(str(error))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def control_plane(testbed_bin, tmp_path_factory):
    yield from running(ControlPlane(testbed_bin, tmp_path_factory.mktemp("control-plane")))


@pytest.fixture(scope="session")
def kubectl(control_plane):
    return control_plane.kubectl


@pytest.fixture(scope="session")
def crds_installed(control_plane):
    control_plane.install_crds(REPO / "crds")
    control_plane.install_crds(REPO / "testbed" / "thirdparty_crds")  # before the operator starts: Kopf watches what is served


@pytest.fixture(scope="session")
def sim_cluster(control_plane):
    yield from running(SimulatedCluster(control_plane))


@pytest.fixture(scope="session")
def helm_template(testbed_bin):
    def render(*values: str) -> list[dict]:
        return render_chart(testbed_bin / "helm", RELEASE, OPERATOR_NAMESPACE, *values)
    return render


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane, tmp_path_factory) -> Path:
    """A kubeconfig for the chart's ServiceAccount, with the chart's RBAC applied (and nothing more)."""
    path = tmp_path_factory.mktemp("operator") / "operator.kubeconfig"
    return install_chart_rbac(control_plane, RELEASE, OPERATOR_NAMESPACE, path)


@pytest.fixture(scope="session")
def operator_liveness_port() -> int:
    return free_port()


# An API denial as the kubernetes client, urllib3 and Kopf log it: "Forbidden", "(403)",
# "status 403", `HTTP/1.1" 403`; not a 403 that is a timestamp's milliseconds
# ("16:39:40,403") or a response's length (`HTTP/1.1" 200 403`).
RBAC_DENIAL = re.compile(r'forbidden|\(403\)|\bstatus\W+403\b|HTTP/1\.1" 403\b', re.IGNORECASE)


@pytest.fixture(scope="session")
def operator_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def operator_api_port() -> int:
    return free_port()


# The kwok node pools the session's operator sizes (its --providers file), for
# test_nodepool_e2e.py; their taint keeps other tests' pods off their nodes.
NODE_POOL, FORECAST_NODE_POOL, SHAPED_NODE_POOL = "e2e-pool", "e2e-forecast-pool", "e2e-shaped-pool"
NODE_POOL_TAINT = {"key": "quartermaster.dev/test", "value": "nodepool-e2e", "effect": "NoSchedule"}
PROVIDERS = {"kwok": {"pools": {
    NODE_POOL: {"instanceType": "m5.xlarge", "minSize": 0, "maxSize": 6, "taints": [NODE_POOL_TAINT]},
    FORECAST_NODE_POOL: {"instanceType": "m5.large", "minSize": 0, "maxSize": 6, "taints": [NODE_POOL_TAINT]},
    SHAPED_NODE_POOL: {"instanceType": "m5.xlarge", "minSize": 0, "maxSize": 8, "taints": [NODE_POOL_TAINT]}}}}


@pytest.fixture(scope="session")
def moto_aws():
    """moto's server and, in front of it, the proxy (moto_aws.FailingProxy) through which
    the session's operator reaches AWS (test_nodepool_aws_e2e.py): `moto_aws.url` is moto's
    own, for the test's set-up and checks, `moto_aws.fail(...)` makes the operator's next
    calls fail."""
    with moto_server() as url, failing_proxy(url) as proxy:
        proxy.moto_url = url
        yield proxy


@pytest.fixture(scope="session")
def operator_process(crds_installed, control_plane, sim_cluster, operator_kubeconfig, operator_liveness_port,
                     operator_metrics_port, operator_api_port, prometheus, moto_aws, tmp_path_factory):
    """`quartermaster run` as its own process, with only the chart's permissions, reading
    usage from the session's Prometheus at a 15 s resolution over 6 hours of history, and
    sizing the kwok node pools of PROVIDERS and the Auto Scaling groups of `moto_aws`
    (boto3's standard chain finds the credentials in its environment). At the end of the session its log must show no
    RBAC denial and the apiserver's audit log no write of it to our kinds' spec (GitOps
    owns that: test_gitops_e2e.py checks every write it made up to then in detail), an
    approval's annotation aside."""
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    providers = log.with_name("providers.yaml")
    providers.write_text(yaml.safe_dump({**PROVIDERS, "aws": {"endpoint_url": moto_aws.url, "region": REGION}}))
    try:
        process = start_operator(operator_kubeconfig, log, "--resync-seconds=5", "--verbose",
                                 f"--liveness-port={operator_liveness_port}", "--liveness-host=127.0.0.1",
                                 f"--metrics-port={operator_metrics_port}", "--metrics-host=127.0.0.1",
                                 f"--api-port={operator_api_port}", "--api-host=127.0.0.1",
                                 f"--prometheus-url={prometheus.url}", "--prometheus-timeout=5",
                                 "--metrics-step-seconds=15", "--history-seconds=21600",
                                 f"--providers={providers}",
                                 env={"AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                                      "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"]})
    except TestbedError as error:
        pytest.fail(str(error), pytrace=False)
    yield process
    process.stop()
    denials = [line for line in log.read_text(errors="replace").splitlines() if RBAC_DENIAL.search(line)]
    assert not denials, "the operator hit RBAC denials with the chart's role:\n" + "\n".join(denials[:20])
    spec_writes = main_resource_writes([e for e in control_plane.audit_events()
                                        if e["user"]["username"] == OPERATOR_USER and e["verb"] in WRITE_VERBS])
    assert not spec_writes, "the operator wrote our kinds' main resource:\n" + "\n".join(spec_writes[:20])


# The workloads whose usage the session's Prometheus holds, each following a bundled trace
# (see quartermaster.testbed.usage). Pods in `backfill_pods` get 7 days of history before
# Prometheus starts, so a test that needs history for a StatefulSet declares its pods here;
# every drive's Running pods are scraped live from the start. A test that only needs live
# usage can instead call `usage_exporter.add(UsageDrive(...))` at runtime.
USAGE_DRIVES = [
    # e2e: StatefulSet `api` (pods api-0, api-1, label app=api) with history, and a
    # Deployment-like `web` (label app=web), live only, both in namespace e2e-usage.
    UsageDrive("e2e-usage", {"app": "api"}, TRACES / "ec2_cpu_utilization_24ae8d.csv", peak_cores=2,
               backfill_pods=("api-0", "api-1")),
    UsageDrive("e2e-usage", {"app": "web"}, TRACES / "rds_cpu_utilization_cc0c53.csv", peak_cores=2),
    # test_scalingpolicy_e2e.py: StatefulSet `shop` (pod shop-0, label app=shop) in
    # e2e-scaling, with history, so that its forecast is trusted.
    UsageDrive("e2e-scaling", {"app": "shop"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=8,
               backfill_pods=("shop-0",)),
    # test_swapplan_e2e.py: StatefulSets `busy` (about 3 cores) and `idle` (a tenth of a
    # core), two pods each, in each of its namespaces (and test_leadership_e2e.py's swap-ha),
    # with history.
    *(UsageDrive(namespace, {"app": app}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=cores,
                 base_memory=200 * 2**20, peak_memory=300 * 2**20, backfill_pods=(f"{app}-0", f"{app}-1"))
      for namespace in ("swap-auto", "swap-manual", "swap-guard", "swap-restart", "swap-ha")
      for app, cores in (("busy", 8), ("idle", 0.2))),
    # test_cost_e2e.py: StatefulSet `batch` (pods batch-0, batch-1, label app=batch) in
    # e2e-cost, with history, requesting 500m and 256Mi each (its requests backfilled too).
    UsageDrive("e2e-cost", {"app": "batch"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=2,
               backfill_pods=("batch-0", "batch-1"), requests={"cpu": 0.5, "memory": 256 * 2**20}),
    # test_gitops_e2e.py: examples/' Deployment web in team-a, with history, so that the
    # example ScalingPolicy trusts its forecast and acts. Its live pods' names are only known
    # once they run: the backfilled ones stand for earlier pods of the Deployment.
    UsageDrive("team-a", {"app": "web"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=3,
               backfill_pods=("web-5d9c7b8f6d-hist0", "web-5d9c7b8f6d-hist1", "web-5d9c7b8f6d-hist2")),
    # test_nodepool_e2e.py: StatefulSet `steady` (pod steady-0) in nodepool-forecast, with
    # history: about 3 cores, far more than its 100m request.
    UsageDrive("nodepool-forecast", {"app": "steady"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=8,
               backfill_pods=("steady-0",)),
    # test_prometheus_testbed.py: pod probe-0 in testbed-usage, backfilled, later run live.
    UsageDrive("testbed-usage", {"app": "probe"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=4,
               backfill_pods=("probe-0",)),
    # test_budget_e2e.py: StatefulSet `spender` (pod spender-0) in e2e-budget, with history
    # and its 200m request backfilled, so that a Quota over it has spent today from the start.
    UsageDrive("e2e-budget", {"app": "spender"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=8,
               backfill_pods=("spender-0",), requests={"cpu": 0.2}),
    # test_waste_e2e.py: StatefulSets in e2e-waste with a week of history and requests:
    # `oversized` uses at most 0.4 of its 2 cores and 300Mi of its 2Gi; `unused` at most 2m.
    UsageDrive("e2e-waste", {"app": "oversized"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=0.4,
               base_memory=100 * 2**20, peak_memory=300 * 2**20, backfill_pods=("oversized-0",),
               requests={"cpu": 2.0, "memory": 2 * 2**30}),
    UsageDrive("e2e-waste", {"app": "unused"}, TRACES / "ec2_cpu_utilization_5f5533.csv", peak_cores=0.002,
               base_memory=20 * 2**20, peak_memory=30 * 2**20, backfill_pods=("unused-0",),
               requests={"cpu": 0.5, "memory": 256 * 2**20}),
    # and `spiky`, a quarter of a core every day but the last before the session, a whole
    # core then (tests/data/cost_spike.csv, hourly), far over its 10m request: a cost anomaly.
    UsageDrive("e2e-waste", {"app": "spiky"}, Path(__file__).parent / "data" / "cost_spike.csv", peak_cores=1.0,
               base_memory=50 * 2**20, peak_memory=60 * 2**20, backfill_pods=("spiky-0",), requests={"cpu": 0.01}),
]


@pytest.fixture(scope="session")
def usage_exporter(control_plane, tmp_path_factory):
    """The UsageExporter serving USAGE_DRIVES (reading pods with the admin kubeconfig).
    `usage_exporter.add(UsageDrive(namespace, selector, trace, ...))` serves one more
    workload, live only, from the next scrape on; `usage_exporter.session_start` is the
    unix second where the backfill ends and the traces' middle falls."""
    yield from running(UsageExporter(tmp_path_factory.mktemp("usage"), control_plane.admin_kubeconfig, USAGE_DRIVES))


@pytest.fixture(scope="session")
def prometheus(usage_exporter, tmp_path_factory):
    """A real Prometheus backfilled with the history of USAGE_DRIVES' `backfill_pods` and
    scraping `usage_exporter` every 5 s; `prometheus.url`, `prometheus.query(promql, at)`.
    A test may `prometheus.stop()` and then `prometheus.start()` it again: same port, same
    TSDB, no second backfill (restart it in a `finally`, later tests need it)."""
    yield from running(Prometheus(tmp_path_factory.mktemp("prometheus"), usage_exporter.backfill(),
                                  scrape_targets=[usage_exporter.address]))
