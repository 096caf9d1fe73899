"""The ResourcePool's decide step: figures in, status and Events out (no I/O)."""
import numpy as np

from quartermaster.operator.accounting import NodeRecord, summarise
from quartermaster.operator.observe import custom_object
from quartermaster.operator.resourcepool import ResourceFigures, UsageFigures, decide, parse_spec

NOW = 1_800_000_000.0
STEP = 300


def pool(spec: dict, generation: int = 3):
    return custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ResourcePool",
                        "metadata": {"name": "p", "uid": "u", "generation": generation}, "spec": spec})


def usage(cpu_used, cpu_forecast, missing=()):
    stamps = NOW - STEP * np.arange(287, -1, -1)
    flat = np.full(stamps.size, cpu_used)
    figures = {"cpu": ResourceFigures(used=cpu_used, history=flat, forecast=np.full(6, cpu_forecast), tier="model"),
               "memory": ResourceFigures(used=2**30, history=np.full(stamps.size, 2.0**30),
                                         forecast=np.full(6, 2.0**30), tier="robust")}
    return UsageFigures(figures, stamps, STEP, NOW, tuple(missing))


def decided(spec, figures, previous=None, problem=None, workloads=2):
    p = pool(spec)
    parsed = parse_spec(p)
    summary = summarise(parsed, [NodeRecord("n", {}, {"cpu": 10, "memory": 2**35, "pods": 100})], [], {})
    return decide(p, parsed, summary, workloads, figures, problem, previous or {}, NOW)


def test_the_forecast_with_its_buffer_raises_pressure_and_says_so():
    spec = {"strategy": "Balanced", "pressureThresholds": {"cpu": {"warning": 0.5, "critical": 0.8, "emergency": 0.99}}}
    calm = decided(spec, usage(cpu_used=2.0, cpu_forecast=3.0))
    assert calm.status["pressure"]["cpu"] == "Normal"
    # 7.5 cores forecast + Balanced's 10 % = 8.25 of 10: critical, though only 2 are used now
    busy = decided(spec, usage(cpu_used=2.0, cpu_forecast=7.5), previous=calm.status)
    assert busy.status["pressure"]["cpu"] == "Critical"
    [event] = [e for e in busy.events if e[0] == "PressureChanged"]
    assert "Normal → Critical" in event[1] and "forecast" in event[1] and "82%" in event[1] and event[2]
    assert busy.status["forecast"]["cpu"] == "7500m" and busy.status["used"]["cpu"] == "2"


def test_no_fresh_sample_for_any_member_is_metrics_unavailable():
    status = decided({}, usage(1.0, 1.0, missing=("ns/Deployment/a", "ns/Deployment/b"))).status
    metrics = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "NoSamples")


def test_unavailable_metrics_keep_the_last_figures_for_pressure():
    spec = {"pressureThresholds": {"cpu": {"warning": 0.5, "critical": 0.8, "emergency": 0.99}}}
    before = decided(spec, usage(cpu_used=9.0, cpu_forecast=9.0)).status
    after = decided(spec, None, previous=before, problem=("PrometheusTimeout", "no answer within 30s")).status
    assert "used" not in after and after["pressure"]["cpu"] == "Emergency", "pressure on the last good figures"
    metrics = next(c for c in after["conditions"] if c["type"] == "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusTimeout")


def test_an_invalid_spec_gives_a_condition_naming_the_field_and_no_figures():
    p = pool({"strategy": "Sometimes"}, generation=4)
    message = parse_spec(p)
    decision = decide(p, message, None, 0, None, None, {}, NOW)
    [ready] = decision.status["conditions"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidSpec", 4)
    assert "spec.strategy" in ready["message"] and "capacity" not in decision.status
    assert decision.events == [("InvalidSpec", ready["message"], True)]
    again = decide(p, message, None, 0, None, None, decision.status, NOW)
    assert again.events == [], "an Event per transition, not per cycle"


def test_the_status_fits_the_crd_schema():
    from quartermaster.operator.models import ResourcePoolStatus

    status = decided({}, usage(cpu_used=2.0, cpu_forecast=3.0)).status
    parsed = ResourcePoolStatus.model_validate(status)
    assert parsed.used.cpu == "2" and parsed.forecast_details[0].tier == "model"
    assert {p.resource for p in parsed.capacity_plan} == {"cpu", "memory"}


def test_a_bad_list_item_is_named_as_kubectl_names_it():
    message = parse_spec(pool({"workloads": {"selector": {"matchExpressions": [
        {"key": "a", "operator": "Exists"}, {"key": "b", "operator": "In"}]}}}))
    assert "spec.workloads.selector.matchExpressions[1].values" in message, message
