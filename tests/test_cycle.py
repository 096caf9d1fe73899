"""The control cycle's compute (observe → forecast → decide) against a real Prometheus
backfilled with trace-driven pods; no apiserver: the cluster is a snapshot of objects."""
import math
import time

import numpy as np
import pytest

from conftest import running
from quartermaster.operator.cycle import ControlCycle
from quartermaster.operator.observe import snapshot_from_objects
from quartermaster.operator.prometheus_reader import MetricsUnavailable, PrometheusReader, aligned
from quartermaster.operator.quantities import to_float
from quartermaster.operator.settings import MetricsSettings, OperatorSettings
from quartermaster.operator.workloads import WorkloadKey
from quartermaster.testbed.prometheus import Prometheus
from quartermaster.testbed.traces import TRACES, TraceUsage, workload_from_trace

STEP = 300
END = aligned(time.time() - 900, STEP)  # the backfill's last sample
NAMESPACE = "shop"
WEB_HASH = "5d8f7c9b4"
WEB_PODS = [f"web-{WEB_HASH}-abcde", f"web-{WEB_HASH}-fghij"]
GONE_POD = "web-7f6d5c4b3-zzzzz"  # an earlier ReplicaSet's pod: its samples belong to web too


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    web = TraceUsage(TRACES / "ec2_cpu_utilization_24ae8d.csv", END, peak_cores=4.0)
    db = TraceUsage(TRACES / "rds_cpu_utilization_cc0c53.csv", END, peak_cores=2.0)
    workloads = [workload_from_trace(web, NAMESPACE, pod, END, share=0.5, days=7, step=STEP) for pod in WEB_PODS]
    workloads += [workload_from_trace(db, NAMESPACE, "db-0", END, days=7, step=STEP),
                  workload_from_trace(web, NAMESPACE, GONE_POD, END - 3 * 86400, share=0.5, days=4, step=STEP)]
    yield from running(Prometheus(tmp_path_factory.mktemp("cycle-prometheus"), workloads))


def pod(name: str, owner_kind: str, owner: str, labels: dict) -> dict:
    return {"metadata": {"namespace": NAMESPACE, "name": name, "labels": labels,
                         "ownerReferences": [{"kind": owner_kind, "name": owner, "controller": True}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": "Running"}}


def snapshot(strategy: str = "Balanced", policies=()):
    pods = [pod(p, "ReplicaSet", f"web-{WEB_HASH}", {"app": "web", "pod-template-hash": WEB_HASH}) for p in WEB_PODS]
    pods.append(pod("db-0", "StatefulSet", "db", {"app": "db"}))
    pool = {"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ResourcePool",
            "metadata": {"name": "shop", "uid": "uid-shop", "generation": 1},
            "spec": {"nodeSelector": {"matchLabels": {"pool": "shop"}}, "strategy": strategy,
                     "workloads": {"namespaces": [NAMESPACE]}}}
    node = {"metadata": {"name": "n1", "labels": {"pool": "shop"}},
            "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}}}
    return snapshot_from_objects(nodes=[node], pods=pods, namespaces=[{"metadata": {"name": NAMESPACE}}],
                                 pools=[pool], policies=policies)


def scaling_policy(name: str, kind: str, target: str, signals: list, **spec) -> dict:
    return {"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "generation": 1},
            "spec": {"targetRef": {"kind": kind, "name": target}, "signals": signals, "mode": "Predictive",
                     "maxReplicas": 50, "confidenceThreshold": 0.0, **spec}}


def settings(url: str, **metrics) -> OperatorSettings:
    return OperatorSettings(metrics=MetricsSettings(prometheus_url=url, step_seconds=STEP,
                                                    history_seconds=7 * 86400, **metrics))


def condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_used_is_what_prometheus_says_and_forecast_names_its_tier(prometheus):
    result = ControlCycle(settings(prometheus.url)).compute(snapshot(), now=END + 10)
    status = result.pools[0].decision.status
    assert result.workloads == 2 and status["workloads"] == 2
    assert status["metricsTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END))
    expected = prometheus.query(f'sum(rate(container_cpu_usage_seconds_total{{namespace="{NAMESPACE}",'
                                f'container!=""}}[10m]))', at=END)
    assert to_float(status["used"]["cpu"]) == pytest.approx(float(expected[0]["value"][1]), abs=5e-4)
    memory = prometheus.query(f'sum(container_memory_working_set_bytes{{namespace="{NAMESPACE}"}})', at=END)
    assert to_float(status["used"]["memory"]) == pytest.approx(float(memory[0]["value"][1]), abs=2**19)

    cpu = next(d for d in status["forecastDetails"] if d["resource"] == "cpu")
    assert (cpu["tier"], cpu["quantile"], cpu["horizonSeconds"]) == ("model", 0.9, 1800)
    assert to_float(status["forecast"]["cpu"]) == to_float(cpu["peak"]) > 0
    assert condition(status, "MetricsAvailable")["status"] == "True"
    assert {p["resource"] for p in status["capacityPlan"]} == {"cpu", "memory"}
    assert [e[0] for e in result.pools[0].decision.events] == ["Ready", "MetricsAvailable"]


def test_a_gone_pods_history_counts_for_its_deployment(prometheus):
    cycle = ControlCycle(settings(prometheus.url))
    cycle.compute(snapshot(), now=END + 10)
    cpu = cycle.usage.histories["cpu"]
    history = cpu.matrix([WorkloadKey(NAMESPACE, "Deployment", "web")])[0]
    at = END - 5 * 86400  # the gone pod ran beside today's two then
    pods = prometheus.query('rate(container_cpu_usage_seconds_total{pod=~"web-.*"}[10m])', at=at)
    assert len(pods) == 3
    column = int(np.flatnonzero(cpu.timestamps == at)[0])
    assert history[column] == pytest.approx(sum(float(p["value"][1]) for p in pods), rel=1e-4)


def test_the_strategy_sets_the_quantile_and_horizon(prometheus):
    cycle = ControlCycle(settings(prometheus.url))
    status = cycle.compute(snapshot("Conservative"), now=END + 10).pools[0].decision.status
    cpu = next(d for d in status["forecastDetails"] if d["resource"] == "cpu")
    assert (cpu["quantile"], cpu["horizonSeconds"]) == (0.95, 3600)


def test_a_steady_cycle_pulls_only_the_new_samples(prometheus):
    reader = PrometheusReader(settings(prometheus.url).metrics)
    pulls = []
    original = reader.range

    def recording(promql, start, end, step, expected_series=1):
        pulls.append((end - start) / step + 1)
        return original(promql, start, end, step, expected_series)

    reader.range = recording
    cycle = ControlCycle(settings(prometheus.url), reader=reader)
    cycle.compute(snapshot(), now=END + 10)
    cold = list(pulls)
    pulls.clear()
    cycle.compute(snapshot(), now=END + STEP + 10)
    assert cold == [7 * 86400 // STEP] * 2, "one range query per signal, the whole window"
    assert pulls == [cycle.settings.metrics.max_age_steps + 2] * 2, "the new step, and the last few again"


def test_split_range_queries_give_the_same_series(prometheus):
    whole = PrometheusReader(settings(prometheus.url).metrics)
    split = PrometheusReader(settings(prometheus.url, max_points_per_series=97).metrics)
    query = 'sum by (namespace, pod) (container_memory_working_set_bytes{namespace="shop"})'
    a = whole.range(query, END - 86400, END, STEP)
    b = split.range(query, END - 86400, END, STEP)
    order = [b.labels.index(labels) for labels in a.labels]
    np.testing.assert_array_equal(a.values, b.values[order])
    assert np.isnan(a.values).sum() == sum(1 for l in a.labels if l["pod"] == GONE_POD) * a.values.shape[1]


def test_prometheus_down_keeps_the_last_figures_and_says_why_then_recovers(prometheus):
    cycle = ControlCycle(settings(prometheus.url, timeout_seconds=3))
    good = cycle.compute(snapshot(), now=END + 10).pools[0].decision.status
    cycle._written["uid-shop"] = good  # as the report stage records a successful write
    prometheus.stop()
    try:
        down = cycle.compute(snapshot(), now=END + 70).pools[0]
        metrics = condition(down.decision.status, "MetricsAvailable")
        assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusUnreachable")
        assert prometheus.url in metrics["message"] and "last good figures from 60s ago" in metrics["message"]
        assert "Connection refused" in metrics["message"]
        assert "used" not in down.decision.status and "forecast" not in down.decision.status, \
            "the last good figures stay as they are"
        assert [e[0] for e in down.decision.events] == ["PrometheusUnreachable"]
        cycle._written["uid-shop"] = {**good, **down.decision.status}
        again = cycle.compute(snapshot(), now=END + 130).pools[0]
        assert again.decision.events == [], "one Event per transition"
        cycle._written["uid-shop"] = {**good, **again.decision.status}
    finally:
        prometheus.start()
    back = cycle.compute(snapshot(), now=END + 190).pools[0].decision
    assert condition(back.status, "MetricsAvailable")["status"] == "True"
    assert [e[0] for e in back.events] == ["MetricsAvailable"] and "used" in back.status


def test_live_accuracy_is_scored_once_new_samples_arrive(prometheus):
    cycle = ControlCycle(settings(prometheus.url))
    # a cycle a day before the end, then one at the end: the later one scores the earlier one's forecasts
    cycle.compute(snapshot(), now=END - 6 * STEP + 10)
    status = cycle.compute(snapshot(), now=END + 10).pools[0].decision.status
    cpu = next(a for a in status["forecastAccuracy"] if a["resource"] == "cpu")
    assert cpu["samples"] == 6 and 0 <= cpu["coverage"] <= 1 and not math.isnan(cpu["scaledError"])


def test_after_an_outage_the_missed_steps_are_pulled(prometheus):
    cycle = ControlCycle(settings(prometheus.url))
    cycle.compute(snapshot(), now=END - 10 * STEP + 10)
    cycle.usage.reader, reader = None, cycle.usage.reader  # Prometheus "down" for six steps
    cycle.compute(snapshot(), now=END - 4 * STEP + 10)
    cycle.usage.reader = reader
    cycle.compute(snapshot(), now=END + 10)
    cpu = cycle.usage.histories["cpu"].matrix([WorkloadKey(NAMESPACE, "StatefulSet", "db")])[0]
    assert np.isfinite(cpu[-11:]).all(), "no hole where the outage was"


def test_a_slow_prometheus_is_a_timeout():
    import socket

    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        status = ControlCycle(settings(url, timeout_seconds=1)).compute(snapshot(), now=END + 10).pools[0]
    metrics = condition(status.decision.status, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusTimeout")
    assert "no answer within 1s" in metrics["message"] and url in metrics["message"]


def test_a_query_prometheus_refuses_is_a_query_error(prometheus):
    cycle = ControlCycle(settings(prometheus.url, cpu_query="sum(rate(container_cpu_usage_seconds_total[${window}])"))
    metrics = condition(cycle.compute(snapshot(), now=END + 10).pools[0].decision.status, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusQueryError")
    assert "bad_data" in metrics["message"] and "parse error" in metrics["message"]


def test_cycles_between_grid_steps_reuse_the_forecast(prometheus, monkeypatch):
    from quartermaster.operator import cycle as cycle_module

    calls = []
    real = cycle_module.forecast_many_detailed
    monkeypatch.setattr(cycle_module, "forecast_many_detailed", lambda *a: calls.append(1) or real(*a))
    cycle = ControlCycle(settings(prometheus.url))
    first = cycle.compute(snapshot(), now=END - STEP + 10).pools[0].decision.status
    again = cycle.compute(snapshot(), now=END - STEP + 200).pools[0].decision.status
    assert len(calls) == 1 and again["forecast"] == first["forecast"]
    cycle.compute(snapshot(), now=END + 10)
    assert len(calls) == 2, "a new step, a new forecast"


WEB_CPU = f'rate(container_cpu_usage_seconds_total{{namespace="{NAMESPACE}", pod=~"web-{WEB_HASH}-.*"}}[10m])'


def test_a_custom_query_is_pulled_once_a_cycle_summed_and_forecast_with_the_rest(prometheus, monkeypatch):
    from quartermaster.operator import cycle as cycle_module

    forecasts = []
    real = cycle_module.forecast_many_detailed
    monkeypatch.setattr(cycle_module, "forecast_many_detailed", lambda series, *a: forecasts.append(len(series))
                        or real(series, *a))
    reader = PrometheusReader(settings(prometheus.url).metrics)
    pulls = []
    original = reader.range

    def recording(promql, start, end, step, expected_series=1):
        pulls.append((promql, (end - start) / step + 1))
        return original(promql, start, end, step, expected_series)

    reader.range = recording
    # two policies read the same query (one pull), each scaling its own target on it
    signal = [{"type": "promql", "query": WEB_CPU, "target": "250m"}]
    policies = [scaling_policy("web", "Deployment", "web", signal), scaling_policy("db", "StatefulSet", "db", signal)]
    cycle = ControlCycle(settings(prometheus.url), reader=reader)
    result = cycle.compute(snapshot(policies=policies), now=END + 10)
    assert [p for p in pulls if p[0] == WEB_CPU] == [(WEB_CPU, 7 * 86400 // STEP)], "one pull, the whole window"
    assert len(forecasts) == 1 and forecasts[0] == 2 * (2 + 1) + 1, "usage, pool and query rows in one forecast"

    total = cycle.usage.queries.matrix([WEB_CPU])[0]
    expected = prometheus.query(f"sum({WEB_CPU})", at=END)
    assert total[-1] == pytest.approx(float(expected[0]["value"][1]), rel=1e-4), "the query's series summed"
    status = next(o for o in result.policies if o.obj.name == "web").decision.status
    assert condition(status, "MetricsAvailable")["status"] == "True"
    assert status["reasoning"].startswith("promql "), status["reasoning"]
    assert "0.25 per replica" in status["reasoning"]

    pulls.clear()
    cycle.compute(snapshot(policies=policies), now=END + STEP + 10)
    assert [p for p in pulls if p[0] == WEB_CPU] == [(WEB_CPU, cycle.settings.metrics.max_age_steps + 2)], \
        "the new step, and the last few again"


def test_a_custom_query_that_returns_nothing_or_fails_stops_its_policy_only(prometheus):
    nothing, broken = 'sum(queue_messages_ready{queue="absent"})', "sum(rate(x[5m])"
    policies = [scaling_policy("web", "Deployment", "web", [{"type": "queueDepth", "query": nothing, "target": "5"}]),
                scaling_policy("db", "StatefulSet", "db", [{"type": "promql", "query": broken, "target": "5"}])]
    result = ControlCycle(settings(prometheus.url)).compute(snapshot(policies=policies), now=END + 10)
    web, db = (next(o for o in result.policies if o.obj.name == n).decision for n in ("web", "db"))
    empty = condition(web.status, "MetricsAvailable")
    assert (empty["status"], empty["reason"]) == ("False", "QueryReturnedNothing")
    assert f"queueDepth query `{nothing}`: the query returned no series" in empty["message"]
    refused = condition(db.status, "MetricsAvailable")
    assert (refused["status"], refused["reason"]) == ("False", "PrometheusQueryError") and broken in refused["message"]
    assert web.action is None and db.action is None and "recommendation" not in web.status
    assert condition(result.pools[0].decision.status, "MetricsAvailable")["status"] == "True", "usage is read"


def test_the_pools_strategy_sets_its_member_policies_forecast_unless_they_set_it(prometheus):
    policies = [scaling_policy("web", "Deployment", "web", [{"type": "cpu", "target": "500m"}]),
                scaling_policy("db", "StatefulSet", "db", [{"type": "cpu", "target": "500m"}],
                               forecast={"quantile": 0.8})]
    result = ControlCycle(settings(prometheus.url)).compute(snapshot("Conservative", policies), now=END + 10)
    web, db = (next(o for o in result.policies if o.obj.name == n).decision.status for n in ("web", "db"))
    assert web["settings"] == {"quantile": 0.95, "horizonSeconds": 3600, "scaleDownDelaySeconds": 1800,
                               "buffer": 0.2, "source": "quantile, horizonSeconds, scaleDownDelaySeconds, buffer: "
                                                        "ResourcePool shop's Conservative strategy"}
    assert "p95" in web["reasoning"]
    assert (db["settings"]["quantile"], db["settings"]["horizonSeconds"]) == (0.8, 3600)
    assert db["settings"]["source"].startswith("quantile: the policy's own; horizonSeconds")


def test_waste_findings_are_worked_out_again_for_each_grid_the_cost_observer_pulls(prometheus, monkeypatch):
    from quartermaster.operator import cycle as cycle_module
    from quartermaster.operator.cost import CostData
    made = []
    monkeypatch.setattr(cycle_module, "waste_report", lambda cost, live: made.append(cost) or len(made))
    cycle = ControlCycle(settings(prometheus.url))
    cycle.latest_pods = ({("shop", "web-0"): WorkloadKey("shop", "Deployment", "web")}, {})

    def pulled() -> CostData:  # the same hours, pulled afresh (its newest step not settled yet)
        grid = np.ones((1, 3, 2))
        return CostData([("shop", "web-0")], np.array([0.0, 3600.0]), 3600, grid, grid.copy(),
                        np.ones((1, 3)), 3700.0, "USD", frozenset())
    first = pulled()
    assert cycle._waste(first) == 1 and cycle._waste(first) == 1, "the grid kept: worked out once"
    assert cycle._waste(pulled()) == 2, "a grid pulled again, even of the same hours: worked out again"
    cycle.latest_pods = ({**cycle.latest_pods[0], ("shop", "api-0"): WorkloadKey("shop", "Deployment", "api")}, {})
    second = pulled()
    assert cycle._waste(second) == 3 and cycle._waste(second) == 3


def test_the_cost_read_is_timed_as_observe(prometheus):
    """Its Prometheus queries are I/O like the usage pull's, not the decide step's work."""
    # with the REST API on, /cost wants a cost read each cycle
    cycle = ControlCycle(OperatorSettings(metrics=settings(prometheus.url).metrics, api_port=8080))

    def slow_read(*args):
        time.sleep(1.0)
        raise MetricsUnavailable("PrometheusTimeout", "no answer within 1s", prometheus.url)

    cycle.cost.read = slow_read
    timings = cycle.compute(snapshot(), now=END + 10).timings
    assert timings["observe"] >= 1.0 > timings["decide"]
