"""The Prometheus fixture holds the bundled traces under cAdvisor's metric names: 7 days
backfilled for the declared pods, then live usage for the pods that run, scraped from the
usage exporter."""
import time
import urllib.request

import numpy as np
import pytest
from kubernetes import client

from conftest import USAGE_DRIVES, wait_for
from quartermaster.testbed.traces import read_trace
from quartermaster.testbed.usage import UsageDrive

NAMESPACE = "testbed-usage"
NODE = "usage-node"
PROBE = next(d for d in USAGE_DRIVES if d.namespace == NAMESPACE)  # backfilled pod probe-0
STEP = 300


def trace_values(drive: UsageDrive) -> np.ndarray:
    """The drive's trace as fractions of `peak_cores` (it is a CPU-percent trace)."""
    assert "cpu_utilization" in drive.trace.name
    return read_trace(drive.trace)[1] / 100


def backfilled_time(session_start: int, sample: int) -> float:
    """When the trace's sample `sample` was backfilled. The probe's trace spans 14 days
    less one step, so with the session's start in its middle the backfill's first sample
    (7 days before the start) is the trace's first."""
    return session_start - 7 * 86400 + sample * STEP


def test_backfilled_memory_gauge_equals_the_trace(prometheus, usage_exporter):
    sample = 1000
    result = prometheus.query(f'container_memory_working_set_bytes{{namespace="{NAMESPACE}",pod="probe-0"}}',
                    backfilled_time(usage_exporter.session_start, sample))
    assert len(result) == 1 and result[0]["metric"]["container"] == "app"
    expected = PROBE.base_memory + trace_values(PROBE)[sample] * (PROBE.peak_memory - PROBE.base_memory)
    assert abs(float(result[0]["value"][1]) - expected) <= 1


def test_backfilled_cpu_rate_follows_the_trace(prometheus, usage_exporter):
    values = trace_values(PROBE)
    for sample in range(1500, 1512):
        # The window holds this sample and the one before: the counter's increase between
        # them is the usage, linear between the two, integrated.
        result = prometheus.query(
            f'rate(container_cpu_usage_seconds_total{{namespace="{NAMESPACE}",pod="probe-0"}}[6m])',
            backfilled_time(usage_exporter.session_start, sample))
        assert len(result) == 1
        expected = (values[sample - 1] + values[sample]) / 2 * PROBE.peak_cores
        assert abs(float(result[0]["value"][1]) - expected) <= 0.01 * expected, sample


def test_declared_pods_have_seven_days_of_history_split_evenly(prometheus, usage_exporter):
    start = usage_exporter.session_start
    counts = prometheus.query("count_over_time(container_memory_working_set_bytes[8d])", start)
    assert {(s["metric"]["namespace"], s["metric"]["pod"]) for s in counts} == {
        (d.namespace, pod) for d in USAGE_DRIVES for pod in d.backfill_pods}
    assert {int(s["value"][1]) for s in counts} == {7 * 86400 // STEP + 1}
    # The StatefulSet's two pods share its usage evenly (the last sample, at the start, is
    # the trace's middle one: its trace spans 14 days less a step, as the probe's).
    api = next(d for d in USAGE_DRIVES if d.backfill_pods == ("api-0", "api-1"))
    memory = prometheus.query('container_memory_working_set_bytes{namespace="e2e-usage",pod=~"api-.*"}', start)
    workload = api.base_memory + trace_values(api)[7 * 86400 // STEP] * (api.peak_memory - api.base_memory)
    assert [abs(float(s["value"][1]) - workload / 2) <= 1 for s in memory] == [True, True]


@pytest.fixture(scope="module")
def usage_node(sim_cluster, control_plane):
    """A kwok node for the probe pods, and their namespace; both removed afterwards."""
    sim_cluster.add_node(NODE, "8", "16Gi", labels={"pool": "usage-probe"})
    control_plane.create_namespace(NAMESPACE)
    with control_plane.api_client() as api:
        yield client.CoreV1Api(api)
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    control_plane.kubectl("delete", "node", NODE, "--ignore-not-found")


def run_pod(core: client.CoreV1Api, name: str, labels: dict[str, str], node: str = NODE) -> None:
    container = client.V1Container(name="app", image="registry.example/probe:1")
    core.create_namespaced_pod(NAMESPACE, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[container], node_name=node)))


def live_samples(prometheus, exporter, pod: str) -> list[tuple[float, float]]:
    """The pod's counter samples scraped in the last minute, as (time, value); not the
    backfilled ones, which end at the session's start."""
    result = prometheus.query(f'container_cpu_usage_seconds_total{{namespace="{NAMESPACE}",pod="{pod}"}}[1m]')
    samples = [(float(t), float(v)) for t, v in result[0]["values"]] if result else []
    return [(t, v) for t, v in samples if t > exporter.session_start]


def test_a_backfilled_pod_counts_on_from_its_history_as_it_runs(prometheus, usage_exporter, usage_node):
    run_pod(usage_node, "probe-0", {"app": "probe"})
    first = wait_for(lambda: live_samples(prometheus, usage_exporter, "probe-0"), 90, "probe-0's live samples")[-1]
    # No reset between the last backfilled sample and the live ones: the counter carried on.
    resets = prometheus.query(f'resets(container_cpu_usage_seconds_total{{namespace="{NAMESPACE}",pod="probe-0"}}[8d])')
    assert float(resets[0]["value"][1]) == 0
    later = wait_for(lambda: (s := live_samples(prometheus, usage_exporter, "probe-0"))[-1][0] >= first[0] + 15 and s[-1],
                     60, "probe-0's samples 15 s later")
    assert later[1] > first[1]
    # The live part of the trace: 7 days after its first sample at the session's start.
    rate = (later[1] - first[1]) / (later[0] - first[0])
    position = (7 * 86400 + (first[0] + later[0]) / 2 - usage_exporter.session_start) / STEP
    values = trace_values(PROBE)
    expected = float(np.interp(position, np.arange(len(values)), values)) * PROBE.peak_cores
    assert abs(rate - expected) <= 0.02 * expected


def test_a_drive_added_at_runtime_serves_only_its_running_pods(prometheus, usage_exporter, usage_node):
    labels = {"app": "probe-live"}
    usage_exporter.add(UsageDrive(NAMESPACE, labels, PROBE.trace, peak_cores=1))
    run_pod(usage_node, "probe-live", labels)
    run_pod(usage_node, "probe-pending", labels, node="no-such-node")  # stays Pending
    first = wait_for(lambda: live_samples(prometheus, usage_exporter, "probe-live"), 90, "probe-live's samples")[-1]
    time.sleep(11)
    assert live_samples(prometheus, usage_exporter, "probe-live")[-1][1] > first[1]
    assert not live_samples(prometheus, usage_exporter, "probe-pending")
    history = prometheus.query('container_memory_working_set_bytes{pod="probe-live"}', usage_exporter.session_start)
    assert not history, "a drive added at runtime has no backfill"


def test_prometheus_restarts_on_its_port_with_its_data(prometheus, usage_exporter, monkeypatch):
    backfilled = f'container_memory_working_set_bytes{{namespace="{NAMESPACE}",pod="probe-0"}}'
    at = backfilled_time(usage_exporter.session_start, 1000)
    before = prometheus.query(backfilled, at)
    assert before
    port = prometheus.port
    prometheus.stop()
    try:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2)

        def backfill_again():
            raise AssertionError("a restart must not backfill again")

        monkeypatch.setattr(prometheus, "_backfill", backfill_again)
    finally:
        prometheus.start()
    restarted = time.time()
    assert prometheus.port == port and prometheus.query(backfilled, at) == before
    wait_for(lambda: prometheus.query(f'timestamp(up{{job="usage"}}) > {restarted}'), 60, "a scrape after the restart")
