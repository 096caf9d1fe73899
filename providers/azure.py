"""The Azure node-pool provider: a pool is a VM scale set in one resource group tagged
`quartermaster-dev-node-pool` (see providers/cloud.py for it and the bounds tags), named
by the scale set's name.

`set_desired_size` is a PATCH of the scale set with `sku.capacity` (absolute), a
long-running operation polled through its Azure-AsyncOperation / Location headers until
it Succeeded; one that Failed becomes the typed ProviderError of its error code.
`describe` reads the scale set (its VM size and capacity, its zones as
`<location>-<zone>` as AKS labels nodes, and the spot share: all of it when the VM
profile's priority is Spot, less the priority mix policy's regular share above its base)
and, as `size`, the instances its instance view counts as provisioned or being
provisioned. Prices come from the repository's instance-type table. Credentials come
from azure-identity's DefaultAzureCredential (environment, workload identity, managed
identity, Azure CLI) unless one is passed in. The SDK's own retries are off, so that
`retry_transient` retries and reports; a 429's Retry-After is kept for it.
"""
from __future__ import annotations

import asyncio

from quartermaster.providers.cloud import error_for_status, is_pool, refuse_reshaping, size_bounds
from quartermaster.providers.interface import (
    InstanceType, InsufficientCapacity, NodePool, NotFound, ProviderError, QuotaExceeded, Rejected, Throttled,
    Unauthorized, Unavailable, check_size, require_sdk, table_instance_types)

compute = require_sdk("azure.mgmt.compute", "azure")
identity = require_sdk("azure.identity", "azure")
from azure.core.exceptions import (  # noqa: E402  (after the check that the SDK is there)
    AzureError, ClientAuthenticationError, HttpResponseError)
from azure.mgmt.compute.models import Sku, VirtualMachineScaleSetUpdate  # noqa: E402

# Uniform scale sets on platform images hold at most this many VMs (Azure's documented limit).
LARGEST_SCALE_SET = 1000
FIXED_SPOT_SHARE = "a scale set's spot share is its model's priority and priority mix policy"
IN_SERVICE = {"ProvisioningState/succeeded", "ProvisioningState/creating", "ProvisioningState/updating"}

# Azure Resource Manager and Compute error codes by the kind of failure they are.
ERROR_CODES: dict[type[ProviderError], set[str]] = {
    Throttled: {"TooManyRequests", "SubscriptionRequestsThrottled", "ResourceGroupRequestsThrottled"},
    QuotaExceeded: {"QuotaExceeded"},
    InsufficientCapacity: {"AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest",
                           "OverconstrainedZonalAllocationRequest", "SkuNotAvailable"},
    Unauthorized: {"AuthorizationFailed", "AuthenticationFailed", "InvalidAuthenticationToken",
                   "ExpiredAuthenticationToken", "LinkedAuthorizationFailed"},
    NotFound: {"ResourceNotFound", "NotFound", "ResourceGroupNotFound", "ParentResourceNotFound"},
    Rejected: {"InvalidParameter", "BadRequest", "PropertyChangeNotAllowed", "OperationNotAllowed",
               "InvalidRequestContent"},
    Unavailable: {"InternalExecutionError", "InternalOperationError"},
}


def typed_error(code: str, message: str, status: int | None, retry_after: float | None = None) -> ProviderError:
    """The ProviderError for an Azure error code, else for the HTTP status. Compute words an
    exceeded core quota as OperationNotAllowed, so that code is QuotaExceeded when its
    message says quota."""
    if code == "OperationNotAllowed" and "quota" in message.lower():
        kind: type[ProviderError] = QuotaExceeded
    else:
        kind = next((kind for kind, codes in ERROR_CODES.items() if code in codes), error_for_status(status))
    return kind(f"{code or status}: {message}", retry_after=retry_after)


class ScaleSets:
    def __init__(self, subscription_id: str, resource_group: str, credential=None, base_url: str | None = None,
                 poll_interval: float = 15.0, catalogue: str = "azure", **client_options) -> None:
        """`client_options` go to ComputeManagementClient as they are (e.g. `connection_verify`)."""
        self._resource_group = resource_group
        self._client = compute.ComputeManagementClient(
            credential or identity.DefaultAzureCredential(), subscription_id, base_url=base_url,
            retry_total=0, polling_interval=poll_interval, **client_options)
        self._scale_sets = self._client.virtual_machine_scale_sets
        self._types = table_instance_types(catalogue)

    async def instance_types(self) -> list[InstanceType]:
        return list(self._types)

    async def list_node_pools(self) -> list[NodePool]:
        def tagged() -> list[NodePool]:
            return [self._pool(scale_set) for scale_set in self._scale_sets.list(self._resource_group)
                    if is_pool(scale_set.tags or {})]
        return await _call(tagged)

    async def describe(self, pool: str) -> NodePool:
        return await _call(self._describe, pool)

    async def set_desired_size(self, pool: str, size: int, instance_type: str | None = None,
                               spot_percentage: int | None = None) -> NodePool:
        return await _call(self._resize, pool, size, instance_type, spot_percentage)

    def _describe(self, pool: str) -> NodePool:
        return self._pool(self._scale_sets.get(self._resource_group, pool))

    def _resize(self, pool: str, size: int, instance_type: str | None, spot_percentage: int | None) -> NodePool:
        state = self._describe(pool)
        refuse_reshaping(state, instance_type, spot_percentage, "scale set")
        check_size(state, size)
        update = VirtualMachineScaleSetUpdate(sku=Sku(capacity=size))
        self._scale_sets.begin_update(self._resource_group, pool, update).result()
        return self._describe(pool)

    def _pool(self, scale_set) -> NodePool:
        profile = scale_set.virtual_machine_profile
        mix = scale_set.priority_mix_policy
        spot_percentage, on_demand_base = 0, 0
        if profile is not None and profile.priority == "Spot":
            spot_percentage = 100 - (mix.regular_priority_percentage_above_base or 0) if mix else 100
            on_demand_base = (mix.base_regular_priority_count or 0) if mix else 0
        view = self._scale_sets.get_instance_view(self._resource_group, scale_set.name)
        summary = view.virtual_machine.statuses_summary if view.virtual_machine else None
        zones = tuple(f"{scale_set.location}-{zone}" for zone in scale_set.zones or ()) or (scale_set.location,)
        return NodePool(scale_set.name, scale_set.sku.name, zones,
                        *size_bounds(scale_set.tags or {}, scale_set.name, LARGEST_SCALE_SET),
                        scale_set.sku.capacity, sum(s.count for s in summary or () if s.code in IN_SERVICE),
                        spot_percentage=spot_percentage, on_demand_base=on_demand_base,
                        fixed_spot_share=FIXED_SPOT_SHARE)


async def _call(method, *args):
    """Blocking SDK calls on a thread, their failure as a typed error."""
    try:
        return await asyncio.to_thread(method, *args)
    except ClientAuthenticationError as error:  # a 401, or no credential in the chain
        raise Unauthorized(error.message) from error
    except HttpResponseError as error:
        code, message = (error.error.code or "", error.error.message) if error.error else ("", error.message)
        retry_after = error.response.headers.get("Retry-After", "") if error.response is not None else ""
        raise typed_error(code, message, error.status_code,
                          float(retry_after) if retry_after.isdigit() else None) from error
    except AzureError as error:  # no answer at all: connection refused, timeout
        raise Unavailable(str(error)) from error
