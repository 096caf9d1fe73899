"""The GCP provider through the real google-cloud-compute SDK (REST transport, anonymous
credentials) against a local server answering in Compute Engine's recorded JSON shapes:
compute#instanceGroupManager in an aggregated list, compute#instanceTemplate, and a resize
as a compute#operation that is RUNNING until zoneOperations.wait has been asked twice,
then DONE, with an `error` when the test says so. Not the real Compute Engine."""
from __future__ import annotations

import asyncio
import itertools

import pytest
from google.auth.credentials import AnonymousCredentials

from quartermaster.providers.cloud import MAX_SIZE_LABEL, MIN_SIZE_LABEL, POOL_LABEL
from quartermaster.providers.gcp import ManagedInstanceGroups
from quartermaster.providers.interface import (
    InsufficientCapacity, NodePoolProvider, NotFound, ProviderError, QuotaExceeded, Rejected, Throttled,
    Unauthorized, Unavailable, Unsupported, backoff_delays, retry_transient)
from quartermaster.testbed.processes import free_port
from recorded_cloud import RecordedCloud, Reply, serving

PROJECT = "qm-test"
API = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
PATH = f"/compute/v1/projects/{PROJECT}"
NAME = r"([a-z0-9-]+)"
ACTIONS = ("none", "creating", "creatingWithoutRetries", "verifying", "recreating", "deleting", "abandoning",
           "restarting", "refreshing", "suspending", "resuming", "stopping", "starting")


def google_error(status: int, reason: str, message: str) -> Reply:
    """An error in the shape Compute Engine's REST API answers with."""
    domain = "usageLimits" if status == 429 else "global"
    return Reply(status, {"error": {"code": status, "message": message,
                                    "errors": [{"message": message, "domain": domain, "reason": reason}]}})


def template(name: str, machine_type: str, labels: dict, provisioning_model: str = "STANDARD",
             region: str | None = None) -> dict:
    scope = f"regions/{region}" if region else "global"
    return {"kind": "compute#instanceTemplate", "id": "6811422316542236791", "name": name,
            "creationTimestamp": "2026-11-30T08:10:02.144-08:00", "selfLink": f"{API}/{scope}/instanceTemplates/{name}",
            **({"region": f"{API}/regions/{region}"} if region else {}),
            "properties": {"machineType": machine_type, "labels": labels,
                           "scheduling": {"onHostMaintenance": "TERMINATE" if provisioning_model == "SPOT"
                                          else "MIGRATE", "automaticRestart": provisioning_model != "SPOT",
                                          "preemptible": False, "provisioningModel": provisioning_model},
                           "disks": [{"boot": True, "autoDelete": True, "type": "PERSISTENT",
                                      "initializeParams": {"sourceImage": "projects/cos-cloud/global/images/family/cos-stable",
                                                           "diskSizeGb": "100"}}],
                           "networkInterfaces": [{"network": f"{API}/global/networks/default"}]}}


def mig(name: str, zone: str | None, template_url: str, target_size: int, **actions: int) -> dict:
    scope = f"zones/{zone}" if zone else "regions/us-central1"
    where = {"zone": f"{API}/zones/{zone}"} if zone else {"region": f"{API}/regions/us-central1"}
    return {"kind": "compute#instanceGroupManager", "id": "4829364811982345678", "name": name, **where,
            "creationTimestamp": "2026-11-30T08:12:44.514-08:00", "baseInstanceName": name,
            "instanceTemplate": template_url, "instanceGroup": f"{API}/{scope}/instanceGroups/{name}",
            "versions": [{"instanceTemplate": template_url, "targetSize": {"calculated": target_size}}],
            "targetSize": target_size, "fingerprint": "Jx4bXHbD2Xw=", "listManagedInstancesResults": "PAGELESS",
            "currentActions": {action: actions.get(action, 0) for action in ACTIONS},
            "status": {"isStable": not any(v for k, v in actions.items() if k != "none"),
                       "versionTarget": {"isReached": True}, "stateful": {"hasStatefulConfig": False}},
            "updatePolicy": {"type": "OPPORTUNISTIC", "minimalAction": "REPLACE", "maxSurge": {"fixed": 1},
                             "maxUnavailable": {"fixed": 1}, "replacementMethod": "SUBSTITUTE"},
            "selfLink": f"{API}/{scope}/instanceGroupManagers/{name}"}


class FakeCompute:
    """The state behind the recorded-shape server: MIGs by (zone, name), templates by name,
    resize operations and the error the next one is to end with."""

    def __init__(self) -> None:
        pool = {POOL_LABEL: "true"}
        self.templates = {
            "workers-tpl": template("workers-tpl", "n2-standard-4", {**pool, MIN_SIZE_LABEL: "1", MAX_SIZE_LABEL: "6"},
                                    provisioning_model="SPOT"),
            "batch-tpl": template("batch-tpl", "e2-standard-4", pool, region="us-central1"),
            "other-tpl": template("other-tpl", "e2-standard-4", {"team": "data"}),
        }
        self.migs = {
            ("us-central1-a", "workers"): mig("workers", "us-central1-a", f"{API}/global/instanceTemplates/workers-tpl",
                                              2, none=1, creating=1, deleting=1),
            ("us-central1-b", "batch"): mig("batch", "us-central1-b",
                                            f"{API}/regions/us-central1/instanceTemplates/batch-tpl", 0),
            ("us-central1-a", "someone-elses"): mig("someone-elses", "us-central1-a",
                                                    f"{API}/global/instanceTemplates/other-tpl", 1, none=1),
            (None, "regional"): mig("regional", None, f"{API}/global/instanceTemplates/workers-tpl", 3, none=3),
        }
        self.operations: dict[str, dict] = {}
        self.next_error: dict | None = None  # the `error` and HTTP status the next resize ends with
        self.ids = itertools.count(1)

    def routes(self) -> dict:
        return {
            ("GET", f"{PATH}/aggregated/instanceGroupManagers"): self.aggregated,
            ("GET", f"{PATH}/global/instanceTemplates/{NAME}"): lambda request, m: self.template(m[1]),
            ("GET", f"{PATH}/regions/{NAME}/instanceTemplates/{NAME}"): lambda request, m: self.template(m[2]),
            ("POST", f"{PATH}/zones/{NAME}/instanceGroupManagers/{NAME}/resize"): self.resize,
            ("POST", f"{PATH}/zones/{NAME}/operations/{NAME}/wait"): self.wait,
        }

    def aggregated(self, request, match) -> Reply:
        scopes = {f"zones/us-central1-{z}": [] for z in "abc"} | {"regions/us-central1": []}
        for (zone, _), group in self.migs.items():
            scopes[f"zones/{zone}" if zone else "regions/us-central1"].append(group)
        items = {scope: {"instanceGroupManagers": groups} if groups else {"warning": {
            "code": "NO_RESULTS_ON_PAGE", "message": f"There are no results for scope '{scope}' on this page.",
            "data": [{"key": "scope", "value": scope}]}} for scope, groups in scopes.items()}
        return Reply(200, {"kind": "compute#instanceGroupManagerAggregatedList",
                           "id": f"projects/{PROJECT}/aggregated/instanceGroupManagers", "items": items,
                           "selfLink": f"{API}/aggregated/instanceGroupManagers"})

    def template(self, name: str) -> Reply:
        if name not in self.templates:
            return not_found(f"projects/{PROJECT}/global/instanceTemplates/{name}")
        return Reply(200, self.templates[name])

    def resize(self, request, match) -> Reply:
        zone, name = match[1], match[2]
        name_ = f"operation-1764633600000-{next(self.ids):013x}-7a8b9c0d-1e2f3a4b"
        self.operations[name_] = {
            "kind": "compute#operation", "id": "7311234567890123456", "name": name_,
            "zone": f"{API}/zones/{zone}", "operationType": "compute.instanceGroupManagers.resize",
            "targetLink": f"{API}/zones/{zone}/instanceGroupManagers/{name}", "targetId": "4829364811982345678",
            "status": "RUNNING", "user": f"quartermaster@{PROJECT}.iam.gserviceaccount.com", "progress": 0,
            "insertTime": "2026-12-01T16:00:00.000-08:00", "startTime": "2026-12-01T16:00:00.120-08:00",
            "selfLink": f"{API}/zones/{zone}/operations/{name_}",
            # not part of the answer: what DONE applies, and the waits until then
            "_apply": (zone, name, int(request.query["size"][0])), "_waits": 2, "_error": self.next_error}
        self.next_error = None
        return Reply(200, visible(self.operations[name_]))

    def wait(self, request, match) -> Reply:
        operation = self.operations[match[2]]
        operation["_waits"] -= 1
        if operation["_waits"] == 0:
            operation.update(status="DONE", progress=100, endTime="2026-12-01T16:00:04.871-08:00")
            if operation["_error"] is None:
                zone, name, size = operation["_apply"]
                self.migs[zone, name]["targetSize"] = size
            else:
                operation.update(operation["_error"])
        return Reply(200, visible(operation))


def visible(operation: dict) -> dict:
    return {key: value for key, value in operation.items() if not key.startswith("_")}


def not_found(resource: str) -> Reply:
    return google_error(404, "notFound", f"The resource '{resource}' was not found")


@pytest.fixture
def compute():
    fake = FakeCompute()
    server = RecordedCloud(fake.routes(), lambda request: not_found(request.path))
    with serving(server):
        server.fake = fake
        yield server


@pytest.fixture
def provider(compute):
    return ManagedInstanceGroups(PROJECT, credentials=AnonymousCredentials(), api_endpoint=compute.url,
                                 poll_interval=0.01)


RESIZE = f"{PATH}/zones/us-central1-a/instanceGroupManagers/workers/resize"
WAIT = f"{PATH}/zones/us-central1-a/operations/.*/wait"


def test_describe_reads_the_group_and_its_template(provider):
    assert isinstance(provider, NodePoolProvider)
    workers = asyncio.run(provider.describe("workers"))
    assert (workers.instance_type, workers.zones, workers.min_size, workers.max_size) == (
        "n2-standard-4", ("us-central1-a",), 1, 6)
    # one instance running and one being created are in service; the one being deleted is not
    assert (workers.desired_size, workers.size, workers.spot_percentage) == (2, 2, 100)
    # the operator hears that the share is the template's, so a spot fallback says it cannot be one
    assert workers.fixed_spot_share == ("a managed instance group's instances are all spot or none, as its instance "
                                        "template says")
    batch = asyncio.run(provider.describe("batch"))  # a regional template, standard VMs, no bounds labels
    assert (batch.instance_type, batch.zones, batch.spot_percentage, batch.min_size, batch.max_size) == (
        "e2-standard-4", ("us-central1-b",), 0, 0, 1000)


def test_only_zonal_groups_with_a_labelled_template_are_node_pools(provider):
    assert sorted(p.name for p in asyncio.run(provider.list_node_pools())) == ["batch", "workers"]


def test_resize_sends_the_size_and_waits_for_the_operation(provider, compute):
    state = asyncio.run(provider.set_desired_size("workers", 4))
    assert [r.query["size"] for r in compute.requests("POST", RESIZE)] == [["4"]]
    assert len(compute.requests("POST", WAIT)) == 2  # RUNNING after the first wait, DONE after the second
    assert state.desired_size == 4 and compute.fake.migs["us-central1-a", "workers"]["targetSize"] == 4


def test_another_machine_type_or_spot_share_is_unsupported_and_nothing_is_resized(provider, compute):
    with pytest.raises(Unsupported, match=r"keeps the instance type of its template \(n2-standard-4\); changing "
                                          "it to n2-standard-8 is not supported"):
        asyncio.run(provider.set_desired_size("workers", 4, instance_type="n2-standard-8"))
    with pytest.raises(Unsupported, match=r"keeps the spot share of its template \(100%\)"):
        asyncio.run(provider.set_desired_size("workers", 4, spot_percentage=50))
    assert compute.requests("POST", RESIZE) == []
    # what the group has already is no change: the resize goes through
    state = asyncio.run(provider.set_desired_size("workers", 4, instance_type="n2-standard-4", spot_percentage=100))
    assert state.desired_size == 4


@pytest.mark.parametrize("code, status, kind", [
    ("QUOTA_EXCEEDED", 403, QuotaExceeded),  # the operation's code, not its 403, says what it is
    ("ZONE_RESOURCE_POOL_EXHAUSTED", 503, InsufficientCapacity),
])
def test_a_failed_operation_is_a_typed_error(provider, compute, code, status, kind):
    compute.fake.next_error = {"error": {"errors": [{"code": code, "message": f"{code} in us-central1-a"}]},
                               "httpErrorStatusCode": status, "httpErrorMessage": "FORBIDDEN"}
    with pytest.raises(kind, match=f"{code}: {code} in us-central1-a") as raised:
        asyncio.run(provider.set_desired_size("workers", 5))
    assert raised.value.reason == kind.__name__ and len(compute.requests("POST", WAIT)) == 2
    assert compute.fake.migs["us-central1-a", "workers"]["targetSize"] == 2


def test_rate_limit_is_throttled_and_retried(provider, compute):
    limited = google_error(429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries'")
    compute.fail("POST", RESIZE, limited, count=1)
    with pytest.raises(Throttled, match="rateLimitExceeded: .*Quota exceeded for quota metric"):
        asyncio.run(provider.set_desired_size("workers", 3))  # the SDK itself does not retry
    compute.fail("POST", RESIZE, limited, count=2)
    retries = []
    state = asyncio.run(retry_transient(lambda: provider.set_desired_size("workers", 3),
                                        delays=lambda n: backoff_delays(n, base=0.01),
                                        on_retry=lambda error, wait: retries.append(error.reason)))
    assert retries == ["Throttled", "Throttled"] and len(compute.requests("POST", RESIZE)) == 4
    assert state.desired_size == 3


def test_permission_denied_is_unauthorized_and_not_retried(provider, compute):
    compute.fail("GET", f"{PATH}/aggregated/instanceGroupManagers",
                 google_error(403, "forbidden", "Required 'compute.instanceGroupManagers.list' permission"), count=5)
    with pytest.raises(Unauthorized, match="forbidden: .*compute.instanceGroupManagers.list"):
        asyncio.run(retry_transient(lambda: provider.describe("workers")))
    assert len(compute.requests("GET", f"{PATH}/aggregated/instanceGroupManagers")) == 1


@pytest.mark.parametrize("status, reason, kind", [
    (403, "rateLimitExceeded", Throttled),  # the reason, not the 403, says what it is
    (403, "quotaExceeded", QuotaExceeded),
    (429, "aReasonNotInTheTable", Throttled),  # else the status does
    (503, "backendError", Unavailable),
    (403, "somethingElse", Unauthorized),
    (404, "somethingElse", NotFound),
    (400, "somethingElse", Rejected),
])
def test_an_api_error_is_typed_by_its_reason_else_its_status(provider, compute, status, reason, kind):
    compute.fail("GET", f"{PATH}/aggregated/instanceGroupManagers", google_error(status, reason, "injected"))
    with pytest.raises(ProviderError, match=f"{reason}: .*injected") as raised:
        asyncio.run(provider.list_node_pools())
    assert type(raised.value) is kind


def test_missing_group_or_template_is_not_found_and_out_of_range_is_rejected(provider, compute):
    with pytest.raises(NotFound, match="no zonal managed instance group named nowhere in project qm-test"):
        asyncio.run(provider.describe("nowhere"))
    del compute.fake.templates["batch-tpl"]
    with pytest.raises(NotFound, match="notFound: .*batch-tpl"):  # the API's own 404
        asyncio.run(provider.describe("batch"))
    with pytest.raises(Rejected, match=r"size 7 is outside \[1, 6\]"):
        asyncio.run(provider.set_desired_size("workers", 7))
    assert compute.requests("POST", RESIZE) == []


def test_bad_bounds_labels_are_rejected_by_name(provider, compute):
    compute.fake.templates["workers-tpl"]["properties"]["labels"][MAX_SIZE_LABEL] = "lots"
    with pytest.raises(Rejected, match=f"node pool workers: label {MAX_SIZE_LABEL}='lots' is not a whole number"):
        asyncio.run(provider.describe("workers"))
    compute.fake.templates["workers-tpl"]["properties"]["labels"][MAX_SIZE_LABEL] = "0"
    with pytest.raises(Rejected, match=f"{MIN_SIZE_LABEL} 1 is above {MAX_SIZE_LABEL} 0"):
        asyncio.run(provider.describe("workers"))



def test_credentials_without_a_project_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="the gcp provider needs a project: pass project=, or set GOOGLE_CLOUD_PROJECT"):
        ManagedInstanceGroups(credentials=AnonymousCredentials())


def test_no_answer_is_unavailable():
    nobody = ManagedInstanceGroups(PROJECT, credentials=AnonymousCredentials(),
                                   api_endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable, match="Connection refused"):
        asyncio.run(nobody.describe("workers"))
