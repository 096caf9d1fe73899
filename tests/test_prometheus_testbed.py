"""The Prometheus fixture serves the bundled traces under Kubernetes metric names."""
import numpy as np


def test_memory_gauge_equals_the_trace(prometheus):
    workload = prometheus.workloads[0]
    at = float(workload.timestamps[-10])
    result = prometheus.query(
        f'container_memory_working_set_bytes{{namespace="{workload.namespace}",pod="{workload.pod}"}}', at)
    assert len(result) == 1
    assert float(result[0]["value"][1]) == round(float(workload.memory_bytes[-10]))


def test_cpu_rate_follows_the_trace(prometheus):
    workload = next(w for w in prometheus.workloads if "cpu-utilization" in w.pod)
    at = float(workload.timestamps[-100])
    result = prometheus.query(
        f'rate(container_cpu_usage_seconds_total{{namespace="{workload.namespace}",pod="{workload.pod}"}}[16m])', at)
    assert len(result) == 1
    window = (workload.timestamps > at - 16 * 60) & (workload.timestamps <= at)
    expected = float(np.mean(workload.cpu_cores[window]))
    assert abs(float(result[0]["value"][1]) - expected) <= 0.1 * expected + 1e-3


def test_every_trace_is_a_container_with_two_weeks_of_history(prometheus):
    series = prometheus.query("count_over_time(container_memory_working_set_bytes[14d])")
    assert len(series) == len(prometheus.workloads) == 15
    assert {s["metric"]["namespace"] for s in series} == {"team-a", "team-b", "team-c"}
    assert min(float(s["value"][1]) for s in series) > 600  # 30-minute taxi series: 14 days = 672 samples
