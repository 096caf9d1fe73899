"""Pool accounting, selectors and quantities: pure functions, known answers."""
import pytest

from quartermaster.operator.accounting import (NODE_POOL_LABEL, NodeRecord, PodRecord, pod_record, pod_requests,
                                               summarise)
from quartermaster.operator.models import LabelSelector, ResourcePoolSpec
from quartermaster.operator.quantities import format_quantity, to_float
from quartermaster.operator.selectors import matches


def container(cpu=None, memory=None, gpu=None):
    requests = {k: v for k, v in {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpu}.items() if v}
    return {"name": "c", "resources": {"requests": requests}}


def test_effective_request_takes_the_larger_of_init_and_running_containers():
    spec = {"containers": [container("250m", "128Mi"), container("250m", "128Mi")],
            "initContainers": [container("1", "64Mi")], "overhead": {"cpu": "100m"}}
    requests = pod_requests(spec)
    assert requests["cpu"] == pytest.approx(1.1)
    assert requests["memory"] == 256 * 2**20
    assert requests["pods"] == 1 and requests["nvidia.com/gpu"] == 0


def test_native_sidecars_run_beside_the_containers_and_under_every_later_init_step():
    # Known answer, worked as k8s.io/component-helpers resource.PodRequests does:
    #   running = app + sidecar = 1 + 0.5 cpu, 256 + 128 Mi;
    #   init steps: setup = 2 cpu, 64Mi; sidecar = 0.5 cpu, 128Mi; migrate = 1.8 + 0.5 cpu, 64 + 128 Mi;
    #   cpu = max(1.5, 2, 0.5, 2.3) + 0.1 overhead = 2.4; memory = max(384, 64, 128, 192) Mi = 384Mi.
    sidecar = {**container("500m", "128Mi"), "restartPolicy": "Always"}
    spec = {"containers": [container("1", "256Mi")],
            "initContainers": [container("2", "64Mi"), sidecar, container("1800m", "64Mi")],
            "overhead": {"cpu": "100m"}}
    requests = pod_requests(spec)
    assert requests["cpu"] == pytest.approx(2.4)
    assert requests["memory"] == 384 * 2**20
    assert requests["pods"] == 1


def test_pod_level_requests_replace_the_containers_for_cpu_and_memory_only():
    spec = {"containers": [container("1", "256Mi", gpu="1")], "resources": {"requests": {"cpu": "3"}},
            "overhead": {"cpu": "100m"}}
    requests = pod_requests(spec)
    assert requests["cpu"] == pytest.approx(3.1)
    assert requests["memory"] == 256 * 2**20 and requests["nvidia.com/gpu"] == 1


def test_finished_pods_hold_nothing():
    spec = {"containers": [container("1")]}
    assert pod_record("ns", "done", {}, spec, {"phase": "Succeeded"}) is None
    assert pod_record("ns", "run", {}, spec, {"phase": "Running"}).requests["cpu"] == 1


@pytest.mark.parametrize("labels, expected", [
    ({"tier": "web", "zone": "a"}, True),
    ({"tier": "web", "zone": "c"}, False),
    ({"tier": "db", "zone": "a"}, False),
    ({"tier": "web", "zone": "a", "spot": "1"}, False),
    ({"zone": "a"}, False),
])
def test_label_selector_semantics(labels, expected):
    selector = LabelSelector.model_validate({
        "matchLabels": {"tier": "web"},
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                             {"key": "spot", "operator": "DoesNotExist"}]})
    assert matches(selector, labels) is expected


def test_empty_selector_matches_everything_and_notin_allows_absent_keys():
    assert matches(None, {}) and matches(LabelSelector(), {"a": "b"})
    not_in = LabelSelector.model_validate({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["x"]}]})
    assert matches(not_in, {}) and not matches(not_in, {"k": "x"})


@pytest.mark.parametrize("resource, amount, text", [
    ("cpu", 16, "16"), ("cpu", 1.5, "1500m"), ("cpu", 0.0, "0"),
    ("memory", 32 * 2**30, "32Gi"), ("memory", 768 * 2**20, "768Mi"), ("memory", 1000, "1000"),
    ("pods", 60, "60"),
])
def test_quantities_format_as_kubernetes_writes_them(resource, amount, text):
    assert format_quantity(resource, amount) == text
    assert to_float(text) == pytest.approx(amount)


def test_summary_counts_only_selected_nodes_and_member_pods():
    nodes = [NodeRecord("n1", {"pool": "p"}, {"cpu": 4, "memory": 8, "pods": 10}),
             NodeRecord("n2", {"pool": "p"}, {"cpu": 4, "memory": 8, "pods": 10}, schedulable=False),
             NodeRecord("n3", {"pool": "q"}, {"cpu": 64, "memory": 8, "pods": 10})]
    pods = [PodRecord("team-a", "a1", {"app": "x"}, "n1", {"cpu": 3.5, "memory": 1, "pods": 1}),
            PodRecord("team-b", "b1", {"app": "x"}, "n1", {"cpu": 1, "memory": 1, "pods": 1}),
            PodRecord("team-a", "a2", {"app": "y"}, None, {"cpu": 1, "memory": 1, "pods": 1})]
    spec = ResourcePoolSpec.model_validate({
        "nodeSelector": {"matchLabels": {"pool": "p"}},
        "workloads": {"namespaceSelector": {"matchLabels": {"team": "a"}}, "selector": {"matchLabels": {"app": "x"}}},
        "pressureThresholds": {"cpu": {"warning": 0.5, "critical": 0.8, "emergency": 0.9}}})
    summary = summarise(spec, nodes, pods, {"team-a": {"team": "a"}, "team-b": {"team": "b"}})
    assert (summary.nodes, summary.members) == (1, 1)
    assert summary.capacity["cpu"] == 4 and summary.requested["cpu"] == 3.5 and summary.free["cpu"] == 0.5


def test_fixed_capacity_replaces_node_capacity_and_free_never_goes_negative():
    spec = ResourcePoolSpec.model_validate({"fixedCapacity": {"cpu": "2", "memory": "1Gi"}})
    pods = [PodRecord("ns", "p", {}, None, {"cpu": 3, "memory": 0, "pods": 1})]
    summary = summarise(spec, [NodeRecord("n", {}, {"cpu": 100})], pods, {})
    assert summary.capacity["cpu"] == 2 and summary.capacity["memory"] == 2**30
    assert summary.free["cpu"] == 0


def test_pods_count_only_where_they_run_or_may_land():
    nodes = [NodeRecord("n1", {"pool": "p", "zone": "a"}, {"cpu": 4}), NodeRecord("n2", {"pool": "q"}, {"cpu": 4})]
    pods = [PodRecord("ns", "on-n1", {}, "n1", {"cpu": 1}),
            PodRecord("ns", "on-n2", {}, "n2", {"cpu": 1}),
            PodRecord("ns", "pending-for-a", {}, None, {"cpu": 1}, node_selector={"zone": "a"}),
            PodRecord("ns", "pending-for-b", {}, None, {"cpu": 1}, node_selector={"zone": "b"}),
            PodRecord("ns", "pending-anywhere", {}, None, {"cpu": 1})]
    spec = ResourcePoolSpec.model_validate({"nodeSelector": {"matchLabels": {"pool": "p"}}})
    summary = summarise(spec, nodes, pods, {})
    assert sorted(p.name for p in summary.member_pods) == ["on-n1", "pending-anywhere", "pending-for-a"]
    fixed = summarise(ResourcePoolSpec.model_validate({"fixedCapacity": {"cpu": "8"}}), nodes, pods, {})
    assert fixed.members == 5, "a fixed-capacity pool has no nodes to place pods on"


def test_a_pending_pod_naming_a_provider_pool_counts_before_the_pool_has_nodes():
    pods = [PodRecord("ns", "for-batch", {}, None, {"cpu": 1}, node_selector={NODE_POOL_LABEL: "batch"}),
            PodRecord("ns", "for-other", {}, None, {"cpu": 1}, node_selector={NODE_POOL_LABEL: "other"})]
    spec = ResourcePoolSpec.model_validate({"providerNodePool": {"provider": "kwok", "name": "batch"}})
    assert [p.name for p in summarise(spec, [], pods, {}).member_pods] == ["for-batch"]


def test_only_unobserved_specs_wake_the_cycle():
    from quartermaster.operator.wake import spec_not_yet_observed

    assert spec_not_yet_observed({"metadata": {"generation": 1}}), "a new pool, no status yet"
    assert spec_not_yet_observed({"metadata": {"generation": 2}, "status": {"observedGeneration": 1}})
    assert not spec_not_yet_observed({"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}), \
        "the reconciler's own status patch"


def test_a_pod_record_keeps_each_containers_requests_and_which_were_oomkilled():
    spec = {"containers": [{"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                           {"name": "proxy"}]}
    status = {"phase": "Running", "containerStatuses": [
        {"name": "app", "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}},
        {"name": "proxy", "lastState": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}
    record = pod_record("ns", "p", {}, spec, status)
    assert record.oom_killed == ("app",)
    assert [(c.name, dict(c.requests)) for c in record.containers] == [("app", {"cpu": 0.25, "memory": 2.0**30}),
                                                                      ("proxy", {})]
