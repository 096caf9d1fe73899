"""The Azure provider through the real azure-mgmt-compute SDK (a fixed bearer token, TLS to a
self-signed certificate it is told to trust) against a local server answering in Azure
Resource Manager's recorded JSON shapes: VM scale set resources and their instance view,
a capacity PATCH answered with an Azure-AsyncOperation header whose operation is
InProgress on the first poll and Succeeded (or Failed, with an `error`) on the second,
and `{"error": {"code", "message"}}` bodies. Not the real Azure."""
from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from quartermaster.providers.azure import ScaleSets
from quartermaster.providers.cloud import MAX_SIZE_LABEL, MIN_SIZE_LABEL, POOL_LABEL
from quartermaster.providers.interface import (
    InsufficientCapacity, NodePoolProvider, NotFound, QuotaExceeded, Rejected, Throttled, Unauthorized, Unavailable,
    Unsupported, retry_transient)
from quartermaster.testbed.processes import free_port
from recorded_cloud import RecordedCloud, Reply, self_signed_certificate, serving

SUBSCRIPTION = "6b1e3f2a-9c4d-4e8f-a1b2-3c4d5e6f7a8b"
GROUP = "MC_qm_cluster_eastus"
SCALE_SETS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets"
OPERATIONS = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/eastus/operations"
NAME = r"([A-Za-z0-9-]+)"
TOKEN = "token-for-the-test"


class FixedToken:
    """A TokenCredential that always has the same token, for a server that checks none."""

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)


def arm_error(status: int, code: str, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {})


def scale_set(name: str, size: str, capacity: int, tags: dict, zones: tuple[str, ...] = (),
              priority: str = "Regular", mix: dict | None = None) -> dict:
    profile = {"osProfile": {"computerNamePrefix": name[:9], "adminUsername": "azureuser",
                             "linuxConfiguration": {"disablePasswordAuthentication": True}},
               "storageProfile": {"osDisk": {"createOption": "FromImage", "caching": "ReadOnly",
                                             "managedDisk": {"storageAccountType": "Premium_LRS"}, "diskSizeGB": 128}},
               "networkProfile": {"networkApiVersion": "2020-11-01"}, "priority": priority}
    if priority == "Spot":
        profile |= {"evictionPolicy": "Delete", "billingProfile": {"maxPrice": -1}}
    return {"name": name, "id": f"{SCALE_SETS}/{name}", "type": "Microsoft.Compute/virtualMachineScaleSets",
            "location": "eastus", "tags": tags, "sku": {"name": size, "tier": "Standard", "capacity": capacity},
            **({"zones": list(zones)} if zones else {}),
            "properties": {"singlePlacementGroup": False, "orchestrationMode": "Flexible" if mix else "Uniform",
                           "upgradePolicy": {"mode": "Manual"}, "virtualMachineProfile": profile,
                           **({"priorityMixPolicy": mix} if mix else {}),
                           "provisioningState": "Succeeded", "platformFaultDomainCount": 1,
                           "uniqueId": "3f6e2a0c-5b7d-4c1e-9f8a-2b3c4d5e6f70",
                           "timeCreated": "2026-11-30T16:12:44.5146372+00:00"}}


def instance_view(**counts: int) -> dict:
    return {"virtualMachine": {"statusesSummary": [{"code": f"ProvisioningState/{state}", "count": count}
                                                   for state, count in counts.items()]},
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                          "displayStatus": "Provisioning succeeded", "time": "2026-12-01T16:00:04.8711234+00:00"}]}


class FakeCompute:
    """The state behind the recorded-shape server: scale sets and their instance views by
    name, the capacity operations, and the error the next one is to end with."""

    def __init__(self) -> None:
        pool = {POOL_LABEL: "true"}
        self.scale_sets = {
            "workers": scale_set("workers", "Standard_D4s_v5", 3, {**pool, MIN_SIZE_LABEL: "1", MAX_SIZE_LABEL: "6"},
                                 zones=("1", "2"), priority="Spot",
                                 mix={"baseRegularPriorityCount": 1, "regularPriorityPercentageAboveBase": 25}),
            "batch": scale_set("batch", "Standard_F4s_v2", 0, pool),
            "spot": scale_set("spot", "Standard_E4s_v5", 1, pool, zones=("3",), priority="Spot"),
            "someone-elses": scale_set("someone-elses", "Standard_D4s_v5", 1, {"team": "data"}),
        }
        self.views = {"workers": instance_view(succeeded=2, creating=1, deleting=1), "batch": instance_view(),
                      "spot": instance_view(succeeded=1), "someone-elses": instance_view(succeeded=1)}
        self.operations: dict[str, dict] = {}
        self.next_error: dict | None = None  # the `error` the next capacity operation ends with
        self.ids = itertools.count(1)
        self.url = ""  # the server's, for the polling headers

    def routes(self) -> dict:
        return {
            ("GET", SCALE_SETS): lambda request, m: Reply(200, {"value": list(self.scale_sets.values())}),
            ("GET", f"{SCALE_SETS}/{NAME}"): lambda request, m: self.found(m[1], self.scale_sets),
            ("GET", f"{SCALE_SETS}/{NAME}/instanceView"): lambda request, m: self.found(m[1], self.views),
            ("PATCH", f"{SCALE_SETS}/{NAME}"): self.update,
            ("GET", f"{OPERATIONS}/{NAME}"): self.poll,
        }

    def found(self, name: str, resources: dict) -> Reply:
        if name not in resources:
            return not_found(name)
        return Reply(200, resources[name])

    def update(self, request, match) -> Reply:
        name = match[1]
        if name not in self.scale_sets:
            return not_found(name)
        operation = f"8d1f6c3e-{next(self.ids):04d}-4a5b-9c8d-7e6f5a4b3c2d"
        self.operations[operation] = {"name": name, "capacity": request.body["sku"]["capacity"], "polls": 0,
                                      "error": self.next_error}
        self.next_error = None
        answer = {**self.scale_sets[name], "properties": {**self.scale_sets[name]["properties"],
                                                          "provisioningState": "Updating"}}
        return Reply(200, answer, {"Azure-AsyncOperation": f"{self.url}{OPERATIONS}/{operation}"
                                                           "?p=571046f6-b640-41c1-86f7-f9f044b5adf9&api-version=2026-04-01"})

    def poll(self, request, match) -> Reply:
        operation = self.operations[match[1]]
        operation["polls"] += 1
        body = {"startTime": "2026-12-01T16:00:00.1200000+00:00", "name": match[1], "status": "InProgress"}
        if operation["polls"] < 2:
            return Reply(200, body)
        body["endTime"] = "2026-12-01T16:00:04.8710000+00:00"
        if operation["error"] is not None:
            return Reply(200, {**body, "status": "Failed", "error": operation["error"]})
        self.scale_sets[operation["name"]]["sku"]["capacity"] = operation["capacity"]
        return Reply(200, {**body, "status": "Succeeded"})


def not_found(name: str) -> Reply:
    return arm_error(404, "ResourceNotFound",
                     f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource group "
                     f"'{GROUP}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def arm(certificate):
    fake = FakeCompute()
    server = RecordedCloud(fake.routes(), lambda request: arm_error(404, "NotFound", f"no route {request.path}"))
    with serving(server, tls=certificate):
        fake.url = server.url
        server.fake = fake
        yield server


@pytest.fixture
def provider(arm, certificate):
    return ScaleSets(SUBSCRIPTION, GROUP, credential=FixedToken(), base_url=arm.url, poll_interval=0.01,
                     connection_verify=str(certificate[0]))


def capacity(arm, name: str) -> int:
    return arm.fake.scale_sets[name]["sku"]["capacity"]


def test_describe_reads_the_scale_set_and_its_instances(provider):
    assert isinstance(provider, NodePoolProvider)
    workers = asyncio.run(provider.describe("workers"))
    assert (workers.instance_type, workers.zones, workers.min_size, workers.max_size) == (
        "Standard_D4s_v5", ("eastus-1", "eastus-2"), 1, 6)
    # two provisioned and one being created are in service; the one being deleted is not
    assert (workers.desired_size, workers.size, workers.spot_percentage, workers.on_demand_base) == (3, 3, 75, 1)
    batch = asyncio.run(provider.describe("batch"))  # regular VMs, no zones, no bounds tags
    assert (batch.instance_type, batch.zones, batch.size, batch.spot_percentage, batch.max_size) == (
        "Standard_F4s_v2", ("eastus",), 0, 0, 1000)
    spot = asyncio.run(provider.describe("spot"))  # spot without a priority mix: all spot
    assert (spot.zones, spot.spot_percentage, spot.on_demand_base) == (("eastus-3",), 100, 0)
    # the operator hears that the share is the model's, so a spot fallback says it cannot be one
    assert spot.fixed_spot_share == "a scale set's spot share is its model's priority and priority mix policy"


def test_only_tagged_scale_sets_are_node_pools(provider):
    assert sorted(p.name for p in asyncio.run(provider.list_node_pools())) == ["batch", "spot", "workers"]


def test_resize_patches_the_capacity_and_polls_the_operation(provider, arm):
    state = asyncio.run(provider.set_desired_size("workers", 5))
    patches = arm.requests("PATCH", f"{SCALE_SETS}/workers")
    assert [r.body for r in patches] == [{"sku": {"capacity": 5}}]
    assert patches[0].headers["Authorization"] == f"Bearer {TOKEN}" and patches[0].query["api-version"]
    assert len(arm.requests("GET", f"{OPERATIONS}/.*")) == 2  # InProgress, then Succeeded
    assert state.desired_size == 5 and capacity(arm, "workers") == 5


def test_another_vm_size_or_spot_share_is_unsupported_and_nothing_is_patched(provider, arm):
    with pytest.raises(Unsupported, match=r"a scale set keeps the instance type of its template "
                                          r"\(Standard_D4s_v5\); changing it to Standard_D8s_v5"):
        asyncio.run(provider.set_desired_size("workers", 5, instance_type="Standard_D8s_v5"))
    with pytest.raises(Unsupported, match=r"keeps the spot share of its template \(75%\)"):
        asyncio.run(provider.set_desired_size("workers", 5, spot_percentage=0))
    assert arm.requests("PATCH", f"{SCALE_SETS}/workers") == [] and capacity(arm, "workers") == 3


@pytest.mark.parametrize("code, message, kind", [
    ("AllocationFailed", "Allocation failed. We do not have sufficient capacity for the requested VM size "
                         "in this region.", InsufficientCapacity),
    ("OperationNotAllowed", "Operation could not be completed as it results in exceeding approved "
                            "standardDSv5Family Cores quota.", QuotaExceeded),
])
def test_a_failed_operation_is_a_typed_error(provider, arm, code, message, kind):
    arm.fake.next_error = {"code": code, "message": message}
    with pytest.raises(kind, match=f"{code}: {message[:20]}") as raised:
        asyncio.run(provider.set_desired_size("workers", 4))
    assert raised.value.reason == kind.__name__ and len(arm.requests("GET", f"{OPERATIONS}/.*")) == 2
    assert capacity(arm, "workers") == 3


def test_throttling_is_retried_after_the_wait_azure_asks_for(provider, arm):
    throttled = arm_error(429, "TooManyRequests", "The request is being throttled as the limit has been "
                          "reached for operation type - Write_1Min.", {"Retry-After": "17"})
    arm.fail("PATCH", f"{SCALE_SETS}/workers", throttled, count=1)
    with pytest.raises(Throttled, match="TooManyRequests: The request is being throttled") as raised:
        asyncio.run(provider.set_desired_size("workers", 4))  # the SDK itself does not retry
    assert raised.value.retry_after == 17 and len(arm.requests("PATCH", f"{SCALE_SETS}/workers")) == 1
    arm.fail("PATCH", f"{SCALE_SETS}/workers", throttled, count=2)
    waits = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    state = asyncio.run(retry_transient(lambda: provider.set_desired_size("workers", 4), sleep=sleep))
    assert len(waits) == 2 and min(waits) >= 17 and len(arm.requests("PATCH", f"{SCALE_SETS}/workers")) == 4
    assert state.desired_size == 4 and capacity(arm, "workers") == 4


def test_authorization_failed_is_unauthorized_and_not_retried(provider, arm):
    arm.fail("GET", f"{SCALE_SETS}/workers", arm_error(
        403, "AuthorizationFailed", "The client 'quartermaster' does not have authorization to perform action "
        "'Microsoft.Compute/virtualMachineScaleSets/read'"), count=5)
    with pytest.raises(Unauthorized, match="AuthorizationFailed: .*virtualMachineScaleSets/read"):
        asyncio.run(retry_transient(lambda: provider.describe("workers")))
    assert len(arm.requests("GET", f"{SCALE_SETS}/workers")) == 1


def test_missing_scale_set_is_not_found_and_out_of_range_is_rejected(provider, arm):
    with pytest.raises(NotFound, match="ResourceNotFound: The Resource .*/nowhere' under resource group"):
        asyncio.run(provider.describe("nowhere"))
    with pytest.raises(Rejected, match=r"size 7 is outside \[1, 6\]"):
        asyncio.run(provider.set_desired_size("workers", 7))
    assert arm.requests("PATCH", f"{SCALE_SETS}/workers") == []


def test_no_answer_is_unavailable(certificate):
    nobody = ScaleSets(SUBSCRIPTION, GROUP, credential=FixedToken(), base_url=f"https://127.0.0.1:{free_port()}",
                       connection_verify=str(certificate[0]))
    with pytest.raises(Unavailable, match="Connection refused"):
        asyncio.run(nobody.describe("workers"))


def test_a_credential_chain_without_a_token_is_unauthorized(arm, certificate):
    class NoToken:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the "
                                            "included credentials.")

    provider = ScaleSets(SUBSCRIPTION, GROUP, credential=NoToken(), base_url=arm.url,
                         connection_verify=str(certificate[0]))
    with pytest.raises(Unauthorized, match="failed to retrieve a token"):
        asyncio.run(provider.describe("workers"))
    assert arm.received == []
