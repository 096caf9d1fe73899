"""ScalingPolicy end to end: a Deployment whose usage follows a trace, a policy that owns an
HPA, and the real HPA controller in kube-controller-manager scaling the Deployment to the
floor the policy sets; a policy on a custom PromQL signal, and one whose query returns
nothing; a second policy on the same target, and a user's HPA, conflict; a Vertical policy
that rolls its Deployment to new requests, one that an OOMKill moves, and one that steps
back while a VerticalPodAutoscaler sets the same requests."""
import json

import pytest
from kubernetes import client

from conftest import app_workload, wait_for
from quartermaster.operator.quantities import to_float
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.testbed.processes import PollTimeout, poll
from quartermaster.testbed.traces import TRACES
from quartermaster.testbed.usage import UsageDrive

NAMESPACE = "e2e-scaling"


def template(name: str) -> client.V1PodTemplateSpec:
    container = client.V1Container(name="app", image=f"registry.example/{name}:1",
                                   resources=client.V1ResourceRequirements(requests={"cpu": "200m"}))
    return client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": name}),
                                    spec=client.V1PodSpec(containers=[container], node_selector={"pool": "scaling"}))


def policy(name: str, target: str, kind: str = "Deployment", **spec) -> str:
    return json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"targetRef": {"kind": kind, "name": target}, "signals": [{"type": "cpu", "target": "10m"}],
                 "minReplicas": 1, "maxReplicas": 4, "scaleUp": {"step": 4, "cooldownSeconds": 0}, **spec}})


@pytest.fixture(scope="module")
def apps(sim_cluster, control_plane, operator_process, usage_exporter, prometheus):
    sim_cluster.add_node("e2e-scaling-1", "16", "64Gi", pods=40, labels={"pool": "scaling"})
    control_plane.create_namespace(NAMESPACE, timeout=60)
    # shop (conftest.USAGE_DRIVES: a week of history) and these: 2.8 cores at the trace's
    # quietest, 10m a replica, far above the maximum of 4 even while a new pod's rate over
    # 10 minutes still reads a small part of its usage
    for app in ("watched", "legacy-too", "sized"):
        usage_exporter.add(UsageDrive(NAMESPACE, {"app": app}, TRACES / "ec2_cpu_utilization_5f5533.csv",
                                      peak_cores=8))
    with control_plane.api_client() as api:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_stateful_set(NAMESPACE, app_workload("StatefulSet", "shop", 1, template("shop")))
        for name in ("legacy", "watched", "legacy-too", "sized", "vpa-sized", "consumer", "idle-consumer"):
            apps.create_namespaced_deployment(NAMESPACE, app_workload("Deployment", name, 1, template(name)))
        yield api


def status(kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "scalingpolicy", "-n", NAMESPACE, name, "-o", "json").stdout).get("status") or {}


def condition(kubectl, name: str, kind: str) -> dict:
    return next((c for c in status(kubectl, name).get("conditions") or [] if c["type"] == kind), {})


def ready(kubectl, name: str) -> dict:
    return condition(kubectl, name, "Ready")


def test_the_hpa_controller_scales_the_target_to_the_policys_floor(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("shop", "shop", "StatefulSet", mode="Predictive",
                                             confidenceThreshold=0.5))
    hpas = client.AutoscalingV2Api(apps)
    hpa = wait_for(lambda: next(iter(hpas.list_namespaced_horizontal_pod_autoscaler(NAMESPACE).items), None),
                   120, "the policy's HPA")
    assert hpa.metadata.name == "shop" and hpa.spec.scale_target_ref.name == "shop"
    assert hpa.metadata.owner_references[0].kind == "ScalingPolicy"
    assert wait_for(lambda: hpas.read_namespaced_horizontal_pod_autoscaler("shop", NAMESPACE).spec.min_replicas == 4,
                    90, "minReplicas raised to the recommendation")
    # the HPA controller, not the operator, moves the Deployment's replicas
    wait_for(lambda: client.AppsV1Api(apps).read_namespaced_stateful_set("shop", NAMESPACE).spec.replicas == 4,
             120, "the HPA controller to scale the StatefulSet to 4")
    final = status(kubectl, "shop")
    assert final["recommendation"]["replicas"] == 4 and "replica" in final["reasoning"]
    assert final["lastAction"]["action"].startswith(f"HPA {NAMESPACE}/shop: minReplicas 4")
    assert next(c for c in final["conditions"] if c["type"] == "Ready")["reason"] == "Recommending", \
        "the forecast, with a week of history, is trusted"
    assert ready(kubectl, "shop")["status"] == "True"


# shop's cpu (conftest.USAGE_DRIVES: a week of history, 2.8 to 8 cores), per pod series
# that the operator sums: the signal of a consumer of shop's work. Every shop pod, not only
# shop-0: the test of shop's own policy scales it to 4, and shop-0 then carries a quarter.
# irate, not rate over 10 minutes: in a whole test session shop's pods start many minutes
# after the backfilled history ends, and for 10 minutes a rate over that gap reads a small
# part of the usage; the last two samples read all of it.
SHOP_CPU = 'irate(container_cpu_usage_seconds_total{namespace="e2e-scaling", pod=~"shop-[0-9]+"}[10m])'


def test_a_promql_signal_raises_the_hpa_floor(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("consumer", "consumer", mode="Predictive", confidenceThreshold=0.0,
                                             signals=[{"type": "promql", "query": SHOP_CPU, "target": "1"}]))
    hpas = client.AutoscalingV2Api(apps)
    hpa = wait_for(lambda: next((h for h in hpas.list_namespaced_horizontal_pod_autoscaler(NAMESPACE).items
                                 if h.metadata.name == "consumer"), None), 120, "the policy's HPA")
    recommended = status(kubectl, "consumer")
    assert recommended["reasoning"].startswith("promql ") and "1 per replica" in recommended["reasoning"], \
        recommended["reasoning"]
    assert recommended["recommendation"]["replicas"] >= 3, "at least 2.8 cores, 1 a replica"
    assert hpa.spec.scale_target_ref.name == "consumer" and hpa.spec.min_replicas >= 3
    assert condition(kubectl, "consumer", "MetricsAvailable")["status"] == "True"


def test_a_query_that_returns_nothing_stops_its_policy_and_says_which(apps, kubectl):
    absent = 'sum(rabbitmq_queue_messages_ready{queue="absent"})'
    kubectl("apply", "-f", "-", input=policy("idle-consumer", "idle-consumer", mode="Reactive",
                                             signals=[{"type": "queueDepth", "query": absent, "target": "10"}]))
    metrics = wait_for(lambda: (c := condition(kubectl, "idle-consumer", "MetricsAvailable")).get("reason") and c,
                       60, "a MetricsAvailable condition")
    assert (metrics["status"], metrics["reason"]) == ("False", "QueryReturnedNothing")
    assert f"queueDepth query `{absent}`: the query returned no series" in metrics["message"]
    assert condition(kubectl, "idle-consumer", "Ready")["reason"] == "WaitingForMetrics"
    names = [h.metadata.name for h in client.AutoscalingV2Api(apps).list_namespaced_horizontal_pod_autoscaler(
        NAMESPACE).items]
    assert "idle-consumer" not in names and "recommendation" not in status(kubectl, "idle-consumer")


def test_a_second_policy_on_the_same_target_is_a_conflict(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("shop", "shop", "StatefulSet", mode="Predictive",
                                             confidenceThreshold=0.5))
    kubectl("apply", "-f", "-", input=policy("shop-too", "shop", "StatefulSet", mode="Reactive"))
    condition = wait_for(lambda: (c := ready(kubectl, "shop-too")).get("reason") == "Conflict" and c, 60,
                         "a Conflict condition")
    assert condition["status"] == "False" and "ScalingPolicy e2e-scaling/shop" in condition["message"]


def test_a_users_hpa_is_not_taken_over_without_the_adopt_annotation(apps, kubectl):
    client.AutoscalingV2Api(apps).create_namespaced_horizontal_pod_autoscaler(NAMESPACE, client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="users-own"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment",
                                                                  name="legacy"),
            min_replicas=1, max_replicas=3)))
    kubectl("apply", "-f", "-", input=policy("legacy", "legacy", mode="Reactive"))
    condition = wait_for(lambda: (c := ready(kubectl, "legacy")).get("reason") == "Conflict" and c, 60,
                         "a Conflict condition")
    assert "HorizontalPodAutoscaler e2e-scaling/users-own" in condition["message"]
    users = client.AutoscalingV2Api(apps).read_namespaced_horizontal_pod_autoscaler("users-own", NAMESPACE)
    assert users.spec.min_replicas == 1 and users.spec.max_replicas == 3, "left as the user set it"


def test_update_mode_off_recommends_and_touches_nothing(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("watch-only", "watched", mode="Reactive", updateMode="Off"))
    # the recommendation climbs to the maximum as the new pods' 10-minute rate fills in
    recommended = wait_for(lambda: (s := status(kubectl, "watch-only")).get("recommendation", {}).get("replicas")
                           == 4 and s, 90, "a recommendation of 4")
    assert "lastAction" not in recommended
    names = [h.metadata.name for h in client.AutoscalingV2Api(apps).list_namespaced_horizontal_pod_autoscaler(
        NAMESPACE).items]
    assert "watch-only" not in names


def test_below_the_confidence_threshold_nothing_moves_and_the_reason_says_why(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("doubtful", "legacy-too", mode="Predictive", confidenceThreshold=1.0))
    condition = wait_for(lambda: (c := ready(kubectl, "doubtful")).get("reason") == "LowConfidence" and c, 90,
                         "a LowConfidence condition")
    assert "below 1.00" in condition["message"] and "no action" in condition["message"]
    names = [h.metadata.name for h in client.AutoscalingV2Api(apps).list_namespaced_horizontal_pod_autoscaler(
        NAMESPACE).items]
    assert "doubtful" not in names
    assert client.AppsV1Api(apps).read_namespaced_deployment("legacy-too", NAMESPACE).spec.replicas == 1


def test_a_vertical_policy_shows_per_pod_requests(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("sizes", "watched", mode="Vertical", updateMode="Off"))
    recommended = wait_for(lambda: (s := status(kubectl, "sizes")).get("recommendation") and s, 90,
                           "a requests recommendation")
    requests = recommended["recommendation"]["requests"]
    assert set(requests) == {"cpu", "memory"} and "cpu" in recommended["reasoning"]
    assert ready(kubectl, "sizes")["reason"] == "RecommendOnly"


def test_a_vertical_policy_in_auto_mode_rolls_the_pods_to_its_requests(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("rightsize", "sized", mode="Vertical", confidenceThreshold=0.0))
    deployments, pods = client.AppsV1Api(apps), client.CoreV1Api(apps)
    seen = {}  # what the last poll found, for the failure's message

    def rolled_to_recommendation():
        recommended = {c["name"]: c["requests"] for c in
                       (status(kubectl, "rightsize").get("recommendation") or {}).get("containers") or []}
        template = deployments.read_namespaced_deployment("sized", NAMESPACE).spec.template.spec.containers[0]
        running = [p for p in pods.list_namespaced_pod(NAMESPACE, label_selector="app=sized").items
                   if p.metadata.deletion_timestamp is None]
        seen.update(recommended=recommended.get("app"), template=template.resources.requests,
                    pods={p.metadata.name: p.spec.containers[0].resources.requests for p in running})
        return (recommended.get("app") and template.resources.requests == recommended["app"] and running
                and all(p.spec.containers[0].resources.requests == recommended["app"] for p in running)
                and recommended["app"])

    try:
        requests = poll(rolled_to_recommendation, 150, "the pods rolled to the recommended requests")
    except PollTimeout as error:
        pytest.fail(f"{error}; last seen: {seen}")
    assert set(requests) == {"cpu", "memory"}, "memory, which the template did not request, is set too"
    assert status(kubectl, "rightsize")["lastAction"]["action"].startswith(
        f"Deployment {NAMESPACE}/sized pod template: app: cpu")


def test_an_oomkilled_pod_raises_the_memory_recommendation(apps, kubectl):
    kubectl("apply", "-f", "-", input=policy("sizes", "watched", mode="Vertical", updateMode="Off"))
    wait_for(lambda: status(kubectl, "sizes").get("recommendation"), 90, "a requests recommendation")
    core = client.CoreV1Api(apps)
    pod = core.list_namespaced_pod(NAMESPACE, label_selector="app=watched").items[0]
    killed = {"name": "app", "ready": True, "restartCount": 1, "image": pod.spec.containers[0].image, "imageID": "",
              "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
              "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                           "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:00Z"}}}
    core.patch_namespaced_pod_status(pod.metadata.name, NAMESPACE, {"status": {"containerStatuses": [killed]}})
    raised = wait_for(lambda: (s := status(kubectl, "sizes")).get("lastOomKill") and s, 90, "an OOMKill recorded")
    memory = to_float(raised["recommendation"]["requests"]["memory"])
    assert memory >= 1.2 * to_float(raised["lastOomKill"]["podPeak"]) - 2**20
    assert "OOMKilled" in raised["reasoning"]


def test_a_vertical_policy_steps_back_while_a_vpa_sets_the_same_requests(apps, kubectl):
    vpas = client.CustomObjectsApi(apps)
    vpa = {"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler", "metadata": {"name": "users-vpa"},
           "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vpa-sized"},
                    "updatePolicy": {"updateMode": "Recreate"}}}
    vpas.create_namespaced_custom_object("autoscaling.k8s.io", "v1", NAMESPACE, "verticalpodautoscalers", vpa)
    kubectl("apply", "-f", "-", input=policy("vpa-too", "vpa-sized", mode="Vertical", confidenceThreshold=0.0))
    condition = wait_for(lambda: (c := ready(kubectl, "vpa-too")).get("reason") == "Conflict" and c, 60,
                         "a Conflict condition")
    assert "VerticalPodAutoscaler e2e-scaling/users-vpa" in condition["message"] and "cpu" in condition["message"]
    template = client.AppsV1Api(apps).read_namespaced_deployment("vpa-sized", NAMESPACE).spec.template
    assert template.spec.containers[0].resources.requests == {"cpu": "200m"}, "left to the VPA"
    # a VPA that only recommends sets nothing: the policy acts again
    vpas.patch_namespaced_custom_object("autoscaling.k8s.io", "v1", NAMESPACE, "verticalpodautoscalers",
                                        "users-vpa", {"spec": {"updatePolicy": {"updateMode": "Off"}}})
    wait_for(lambda: ready(kubectl, "vpa-too").get("reason") not in (None, "Conflict"), 60,
             "the policy out of Conflict once the VPA only recommends")
