"""Workload identity: pods grouped by their controller, gone pods matched by name."""
import numpy as np

from quartermaster.operator.observe import by_workload
from quartermaster.operator.prometheus_reader import RangeResult
from quartermaster.operator.workloads import PodResolver, WorkloadKey, owner_of, workload_template


def rs(name):
    return [{"kind": "ReplicaSet", "name": name, "controller": True}]


def test_a_replicasets_pod_belongs_to_its_deployment_and_other_controllers_to_themselves():
    assert owner_of("ns", "web-6f7d8-abcde", {"pod-template-hash": "6f7d8"}, rs("web-6f7d8")) == \
        WorkloadKey("ns", "Deployment", "web")
    assert owner_of("ns", "bare-rs-x1", {}, rs("bare-rs")) == WorkloadKey("ns", "ReplicaSet", "bare-rs"), \
        "a ReplicaSet without a template hash has no Deployment"
    assert owner_of("ns", "db-0", {}, [{"kind": "StatefulSet", "name": "db", "controller": True}]) == \
        WorkloadKey("ns", "StatefulSet", "db")
    assert owner_of("ns", "lonely", {}, [{"kind": "ConfigMap", "name": "x"}]) == WorkloadKey("ns", "Pod", "lonely"), \
        "only the controller reference counts"


def test_gone_pods_are_matched_by_the_names_their_controller_gives_and_no_other():
    web, web_api, db = (WorkloadKey("ns", "Deployment", "web"), WorkloadKey("ns", "Deployment", "web-api"),
                        WorkloadKey("ns", "StatefulSet", "db"))
    resolver = PodResolver({("ns", "web-aaa-bbbbb"): web, ("ns", "web-api-ccc-ddddd"): web_api, ("ns", "db-0"): db})
    assert resolver.workload("ns", "web-old11-zzzzz") == web
    assert resolver.workload("ns", "web-api-old22-yyyyy") == web_api, "not web's, though it starts with web-"
    assert resolver.workload("ns", "db-7") == db
    assert resolver.workload("ns", "db-x") is None and resolver.workload("other", "web-old11-zzzzz") is None


def test_pods_sum_per_workload_and_a_gap_stays_a_gap_only_where_every_pod_has_one():
    web = WorkloadKey("ns", "Deployment", "web")
    resolver = PodResolver({("ns", "web-a-1"): web, ("ns", "web-a-2"): web})
    nan = np.nan
    result = RangeResult([{"namespace": "ns", "pod": "web-a-1"}, {"namespace": "ns", "pod": "web-a-2"},
                          {"namespace": "ns", "pod": "stranger"}], np.arange(3.0),
                         np.array([[1, nan, nan], [2, 3, nan], [9, 9, 9]], dtype=np.float32))
    keys, values = by_workload(result, resolver)
    assert keys == [web]
    np.testing.assert_array_equal(values, [[3, 3, nan]])


def test_owner_labels_from_kube_pod_owner_name_a_gone_pods_workload():
    web = WorkloadKey("ns", "Deployment", "web")
    resolver = PodResolver({("ns", "web-aaa-bbbbb"): web})
    assert resolver.workload("ns", "renamed-x", {"owner_kind": "ReplicaSet", "owner_name": "web-7f7f7"}) == web
    assert resolver.workload("ns", "job-x", {"owner_kind": "Job", "owner_name": "nightly"}) == \
        WorkloadKey("ns", "Job", "nightly")


def test_a_template_has_rolled_out_only_when_every_replica_is_updated_and_ready():
    spec = {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "resources": {
        "requests": {"cpu": "1"}}}]}}}
    done = {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}
    template = workload_template("Deployment", "ns", "web", 3, spec, done)
    assert template.rolled_out and template.containers[0].requests == {"cpu": 1.0}
    assert not workload_template("Deployment", "ns", "web", 4, spec, done).rolled_out, "not yet observed"
    assert not workload_template("Deployment", "ns", "web", 3, spec, {**done, "updatedReplicas": 1}).rolled_out
    assert not workload_template("Deployment", "ns", "web", 3, spec, {**done, "replicas": 3}).rolled_out, \
        "an old pod still runs"
