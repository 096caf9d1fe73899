"""The REST API end to end: the operator's own server, real ServiceAccount tokens from the
control plane, TokenReview and SubjectAccessReview by the real apiserver under the chart's
RBAC; and a property-based run of malformed requests that must never give a 5xx."""
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from kubernetes import client

from conftest import api_call, app_workload, wait_for
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.testbed.traces import TRACES
from quartermaster.testbed.usage import UsageDrive

NAMESPACE = "e2e-api"
ROLES = {"swap-reader": ["get"], "swap-approver": ["get", "patch"]}


@pytest.fixture(scope="module")
def tokens(sim_cluster, control_plane, operator_process, usage_exporter, kubectl):
    """Bearer tokens of three ServiceAccounts: one that may read swapplans, one that may
    also patch them, and one with no role at all."""
    control_plane.create_namespace(NAMESPACE, timeout=60)
    sim_cluster.add_node("e2e-api-1", "8", "16Gi", pods=20, labels={"pool": "api"})
    usage_exporter.add(UsageDrive(NAMESPACE, {"app": "predicted"}, TRACES / "ec2_cpu_utilization_5f5533.csv"))
    with control_plane.api_client() as api:
        container = client.V1Container(name="app", image="registry.example/predicted:1",
                                       resources=client.V1ResourceRequirements(requests={"cpu": "100m"}))
        template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "predicted"}),
                                            spec=client.V1PodSpec(containers=[container], node_selector={"pool": "api"}))
        client.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, app_workload("Deployment", "predicted", 1, template))
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingPolicy", "metadata": {"name": "predicted", "namespace": NAMESPACE},
        "spec": {"targetRef": {"kind": "Deployment", "name": "predicted"}, "signals": [{"type": "cpu"}],
                 "mode": "Vertical", "updateMode": "Off"}}))
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SwapPlan", "metadata": {"name": "api-plan"},
        "spec": {"poolRef": {"name": "no-such-pool"}, "approval": "Manual"}}))
    found = {}
    for role, verbs in ROLES.items():
        kubectl("create", "clusterrole", role, f"--verb={','.join(verbs)}", f"--resource=swapplans.{GROUP}")
    for account, role in (("reader", "swap-reader"), ("approver", "swap-approver"), ("nobody", None)):
        kubectl("create", "serviceaccount", account, "-n", NAMESPACE)
        if role:
            kubectl("create", "clusterrolebinding", f"{NAMESPACE}-{account}", f"--clusterrole={role}",
                    f"--serviceaccount={NAMESPACE}:{account}")
        found[account] = kubectl("create", "token", account, "-n", NAMESPACE).stdout.strip()
    return found


def test_no_token_or_an_unknown_one_is_401(tokens, operator_api_port):
    assert api_call(operator_api_port, "/swap_history?plan=api-plan")[0] == 401
    assert api_call(operator_api_port, "/swap_history?plan=api-plan", token="not-a-token")[0] == 401


def test_a_token_without_the_role_is_403_and_one_with_it_200(tokens, operator_api_port):
    status, body = api_call(operator_api_port, "/swap_history?plan=api-plan", tokens["nobody"])
    assert status == 403 and "system:serviceaccount:e2e-api:nobody" in body["message"]
    # the plan is in the API's view from the first cycle after it was made
    body = wait_for(lambda: (r := api_call(operator_api_port, "/swap_history?plan=api-plan", tokens["reader"]))[0] == 200
                    and r[1], 60, "the plan's history")
    assert body["plan"] == "api-plan" and body["phase"] == "Pending"
    assert api_call(operator_api_port, "/swap_request", tokens["reader"], '{"plan": "api-plan", "approve": "x"}')[0] == 403, \
        "a POST needs patch"


def test_bad_input_is_a_4xx_with_a_message(tokens, operator_api_port):
    status, body = api_call(operator_api_port, "/swap_request", tokens["approver"], "{not json")
    assert status == 400 and "JSON" in body["message"]
    status, body = api_call(operator_api_port, "/swap_request", tokens["approver"], '{"plan": "nope", "approve": "x"}')
    assert status == 404 and "nope" in body["message"]
    status, body = api_call(operator_api_port, "/swap_request", tokens["approver"], '{"plan": "api-plan", "approve": "x"}')
    assert status == 409 and "not the one in status" in body["message"]
    status, body = api_call(operator_api_port, "/prediction?namespace=e2e-api&workload=predicted&resource=gpu",
                        tokens["reader"])
    assert status == 400 and "resource" in body["message"]


def test_a_workloads_forecast(tokens, operator_api_port):
    answer = wait_for(lambda: (r := api_call(operator_api_port, "/prediction?namespace=e2e-api&workload=Deployment/predicted"
                                                            "&resource=cpu", tokens["reader"]))[0] == 200 and r[1],
                      90, "a forecast of the predicted workload")
    assert answer["workload"] == "Deployment/predicted" and "5m" in answer["forecast"]
    assert 0 <= answer["confidence"] <= 1 and set(answer["forecast"]["5m"]) >= {"p50", "p90"}


def test_the_openapi_document_is_served(operator_api_port):
    status, document = api_call(operator_api_port, "/openapi.json")
    assert status == 200 and set(document["paths"]) == {"/prediction", "/swap_history", "/swap_request", "/cost"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/prediction", "/swap_history", "/swap_request", "/cost"]),
       query=st.dictionaries(st.sampled_from(["namespace", "workload", "resource", "plan", "window", "aggregate"]),
                             st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20)),
       body=st.one_of(st.none(), st.text(max_size=40), st.dictionaries(st.text(max_size=8), st.text(max_size=8)).map(json.dumps)))
def test_no_request_gives_a_server_error(tokens, operator_api_port, path, query, body):
    url = path + "?" + urllib.parse.urlencode(query)
    status, answer = api_call(operator_api_port, url, tokens["approver"], body if path == "/swap_request" else None)
    assert status < 500 and "message" in answer or status == 200 or status == 202
