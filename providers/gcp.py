"""The GCP node-pool provider: a pool is a zonal managed instance group (MIG) whose instance
template carries the label `quartermaster-dev-node-pool` (see providers/cloud.py for it
and the bounds labels), named by the MIG's name, in one project.

`set_desired_size` is `instanceGroupManagers.resize?size=N` (absolute), a zonal Operation
that is waited on with `zoneOperations.wait` until DONE; an Operation that ends with an
`error` becomes the typed ProviderError of its first error code. The SDK's own
`ExtendedOperation.result()` is not used: it polls through a ZoneOperationsClient made
without the client options, i.e. always at compute.googleapis.com. `describe` reads the
MIG (its zone, `targetSize` as desired, and as `size` the instances not being deleted,
abandoned, stopped or suspended) and its instance template (machine type, labels, and
spot when the template's provisioning model is SPOT or it is preemptible: a MIG is all
spot or none). Prices come from the repository's instance-type table. Credentials come
from google-auth's standard chain (Application Default Credentials, workload identity)
unless passed in. The SDK's own retries are off, so that `retry_transient` retries and
reports.
"""
from __future__ import annotations

import asyncio
import time

from quartermaster.providers.cloud import error_for_status, is_pool, refuse_reshaping, size_bounds
from quartermaster.providers.interface import (
    InstanceType, InsufficientCapacity, NodePool, NotFound, ProviderError, QuotaExceeded, Rejected, Throttled,
    Unauthorized, Unavailable, check_size, require_sdk, table_instance_types)

compute_v1 = require_sdk("google.cloud.compute_v1", "gcp")
import google.auth  # noqa: E402  (after the check that the SDK is there)
from google.api_core.exceptions import GoogleAPICallError  # noqa: E402
from google.auth.exceptions import GoogleAuthError  # noqa: E402
from requests.exceptions import RequestException  # noqa: E402  (the REST transport's)

# A zonal MIG holds at most this many instances (Compute Engine's documented limit).
LARGEST_MIG = 1000
FIXED_SPOT_SHARE = "a managed instance group's instances are all spot or none, as its instance template says"
NOT_IN_SERVICE = {"deleting", "abandoning", "stopping", "suspending"}
DONE = compute_v1.Operation.Status.DONE

# Compute Engine's error codes, from a REST error's `errors[].reason` or an Operation's
# `error.errors[].code`, by the kind of failure they are.
ERROR_CODES: dict[type[ProviderError], set[str]] = {
    Throttled: {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"},
    QuotaExceeded: {"quotaExceeded", "QUOTA_EXCEEDED"},
    InsufficientCapacity: {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"},
    Unauthorized: {"forbidden", "accessNotConfigured", "authError", "PERMISSIONS_ERROR"},
    NotFound: {"notFound", "RESOURCE_NOT_FOUND"},
    Rejected: {"invalid", "badRequest", "INVALID_FIELD_VALUE", "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE"},
}


def typed_error(codes: list[str], message: str, status: int | None) -> ProviderError:
    """The ProviderError for the first known error code, else for the HTTP status."""
    kind = next((kind for code in codes for kind, known in ERROR_CODES.items() if code in known),
                error_for_status(status))
    return kind(f"{', '.join(codes) or status}: {message}")


class ManagedInstanceGroups:
    def __init__(self, project: str | None = None, credentials=None, api_endpoint: str | None = None,
                 operation_timeout: float = 300.0, poll_interval: float = 1.0, catalogue: str = "gcp") -> None:
        if project is None and credentials is None:  # ADC's project: GOOGLE_CLOUD_PROJECT or the credentials'
            credentials, project = google.auth.default()
        if not project:
            raise ValueError("the gcp provider needs a project: pass project=, or set GOOGLE_CLOUD_PROJECT "
                             "for Application Default Credentials")
        options = {"credentials": credentials, "transport": "rest",
                   "client_options": {"api_endpoint": api_endpoint} if api_endpoint else None}
        self._project = project
        self._groups = compute_v1.InstanceGroupManagersClient(**options)
        self._operations = compute_v1.ZoneOperationsClient(**options)
        self._templates = compute_v1.InstanceTemplatesClient(**options)
        self._region_templates = compute_v1.RegionInstanceTemplatesClient(**options)
        self._operation_timeout, self._poll_interval = operation_timeout, poll_interval
        self._types = table_instance_types(catalogue)

    async def instance_types(self) -> list[InstanceType]:
        return list(self._types)

    async def list_node_pools(self) -> list[NodePool]:
        def labelled() -> list[NodePool]:
            described = [(mig, self._template(mig)) for mig in self._all_groups()]
            return [self._pool(mig, template) for mig, template in described
                    if is_pool(template.properties.labels)]
        return await _call(labelled)

    async def describe(self, pool: str) -> NodePool:
        return await _call(self._describe, pool)

    async def set_desired_size(self, pool: str, size: int, instance_type: str | None = None,
                               spot_percentage: int | None = None) -> NodePool:
        return await _call(self._resize, pool, size, instance_type, spot_percentage)

    def _describe(self, pool: str) -> NodePool:
        mig = self._group(pool)
        return self._pool(mig, self._template(mig))

    def _resize(self, pool: str, size: int, instance_type: str | None, spot_percentage: int | None) -> NodePool:
        mig = self._group(pool)
        state = self._pool(mig, self._template(mig))
        refuse_reshaping(state, instance_type, spot_percentage, "managed instance group")
        check_size(state, size)
        zone = _last(mig.zone)
        operation = self._groups.resize_unary(project=self._project, zone=zone, instance_group_manager=pool,
                                              size=size, retry=None)
        deadline = time.monotonic() + self._operation_timeout
        # zoneOperations.wait answers when the operation is DONE or after up to 2 minutes.
        while operation.status != DONE:
            if time.monotonic() > deadline:
                raise Unavailable(f"node pool {pool}: resize operation {operation.name} not done "
                                  f"after {self._operation_timeout:g}s")
            time.sleep(self._poll_interval)
            operation = self._operations.wait(project=self._project, zone=zone, operation=operation.name,
                                              retry=None)
        if operation.error.errors:
            raise typed_error([e.code for e in operation.error.errors],
                              "; ".join(e.message for e in operation.error.errors),
                              operation.http_error_status_code or None)
        return self._describe(pool)

    def _all_groups(self) -> list:
        """The project's zonal MIGs, from every zone (regional ones have no zone and are not pools)."""
        scopes = self._groups.aggregated_list(project=self._project, retry=None)
        return [mig for _, scope in scopes for mig in scope.instance_group_managers if mig.zone]

    def _group(self, pool: str):
        """The zonal MIG named `pool`, looked for in every zone of the project."""
        found = [mig for mig in self._all_groups() if mig.name == pool]
        if not found:
            raise NotFound(f"no zonal managed instance group named {pool} in project {self._project}")
        if len(found) > 1:
            raise Rejected(f"managed instance groups named {pool} in several zones "
                           f"({', '.join(_last(m.zone) for m in found)}): name node pools uniquely")
        return found[0]

    def _pool(self, mig, template) -> NodePool:
        labels = dict(template.properties.labels)
        scheduling = template.properties.scheduling
        spot = scheduling.provisioning_model == "SPOT" or scheduling.preemptible
        actions = mig.current_actions
        in_service = sum(getattr(actions, field) for field in type(actions).meta.fields
                         if field not in NOT_IN_SERVICE)
        return NodePool(mig.name, _last(template.properties.machine_type), (_last(mig.zone),),
                        *size_bounds(labels, mig.name, LARGEST_MIG), mig.target_size, in_service,
                        spot_percentage=100 if spot else 0, fixed_spot_share=FIXED_SPOT_SHARE)

    def _template(self, mig):
        """The MIG's global or regional instance template (its first version's, when it has versions)."""
        parts = (mig.instance_template or mig.versions[0].instance_template).split("/")
        if "regions" in parts:
            region = parts[parts.index("regions") + 1]
            return self._region_templates.get(project=self._project, region=region,
                                              instance_template=parts[-1], retry=None)
        return self._templates.get(project=self._project, instance_template=parts[-1], retry=None)


def _last(url: str) -> str:
    """A resource's name from its URL (zones and machine types are named by URL)."""
    return url.rsplit("/", 1)[-1]


async def _call(method, *args):
    """Blocking SDK calls on a thread, their failure as a typed error."""
    try:
        return await asyncio.to_thread(method, *args)
    except GoogleAPICallError as error:
        codes = [item.get("reason", "") if isinstance(item, dict) else item.code for item in error.errors]
        raise typed_error([code for code in codes if code], error.message, error.code) from error
    except (RequestException, GoogleAuthError) as error:  # no answer, or no token
        kind = Unauthorized if isinstance(error, GoogleAuthError) else Unavailable
        raise kind(str(error)) from error
