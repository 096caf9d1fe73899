"""The AWS node-pool provider: a pool is an EC2 Auto Scaling group tagged
`quartermaster.dev/node-pool`, named by the group's name.

`set_desired_size` is `set_desired_capacity` (absolute; the same value twice changes
nothing). Asked for an instance type or a spot share the group does not have, it first
gives the group a mixed-instances policy on the group's own launch template, with that
type as its one override and OnDemandPercentageAboveBaseCapacity at 100 − the spot share
(the group's OnDemandBaseCapacity kept, spot by price-capacity-optimized), which the
instances the group launches from then on follow. `describe` reads the group: its instance type from the mixed-instances
policy's first override or else its launch template, its zones, its bounds, its spot
share (100 − OnDemandPercentageAboveBaseCapacity above OnDemandBaseCapacity), and as
`size` the instances Pending or InService. Prices come from the repository's
instance-type table. Credentials come from boto3's standard chain. botocore's own retries
are off, so that a throttled call surfaces as `Throttled` and the operator's
`retry_transient` retries and reports it.

A group refuses spot capacity not in answer to `set_desired_capacity` but later, as a
failed scaling activity ("Could not launch Spot Instances. InsufficientInstanceCapacity
..."): `describe` of a group with a spot share reads its latest activity and reports such
a failure as the pool's `spot_refused`, with the activity's start time.
"""
from __future__ import annotations

import asyncio

from quartermaster.providers.interface import (
    InstanceType, InsufficientCapacity, NodePool, NotFound, ProviderError, QuotaExceeded, Rejected, Throttled,
    Unauthorized, Unavailable, check_size, require_sdk, table_instance_types)

boto3 = require_sdk("boto3", "aws")
from botocore.config import Config  # noqa: E402  (after the check that boto3 is there)
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

POOL_TAG = "quartermaster.dev/node-pool"
IN_SERVICE = {"Pending", "Pending:Wait", "Pending:Proceed", "InService"}
# What a failed launch's status message says when spot capacity was refused.
SPOT_REFUSALS = ("InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded",
                 "capacity-not-available")

# botocore error codes by the kind of failure they are.
ERROR_CODES: dict[type[ProviderError], set[str]] = {
    Throttled: {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ResourceContention"},
    QuotaExceeded: {"LimitExceeded", "ServiceQuotaExceededException", "VcpuLimitExceeded",
                    "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded"},
    InsufficientCapacity: {"InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "InsufficientCapacity"},
    Unauthorized: {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure",
                   "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
                   "SignatureDoesNotMatch"},
    NotFound: {"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"},
    Rejected: {"ValidationError", "InvalidParameterValue", "InvalidParameterCombination"},
}


def typed_error(code: str, message: str, status: int) -> ProviderError:
    """The ProviderError for a botocore error code; an unknown code is Unavailable
    (transient) when the HTTP status says the server failed, else Rejected."""
    kind = next((kind for kind, codes in ERROR_CODES.items() if code in codes),
                Unavailable if status >= 500 else Rejected)
    return kind(f"{code}: {message}")


class AutoScalingGroups:
    def __init__(self, session=None, endpoint_url: str | None = None, region: str | None = None,
                 catalogue: str = "aws") -> None:
        session = session or boto3.Session(region_name=region)
        config = Config(retries={"total_max_attempts": 1})
        self._autoscaling = session.client("autoscaling", endpoint_url=endpoint_url, config=config)
        self._ec2 = session.client("ec2", endpoint_url=endpoint_url, config=config)
        self._types = table_instance_types(catalogue)

    async def instance_types(self) -> list[InstanceType]:
        return list(self._types)

    async def list_node_pools(self) -> list[NodePool]:
        groups = await self._groups(Filters=[{"Name": "tag-key", "Values": [POOL_TAG]}])
        return [await self._pool(group) for group in groups]

    async def describe(self, pool: str) -> NodePool:
        return await self._pool(await self._group(pool))

    async def set_desired_size(self, pool: str, size: int, instance_type: str | None = None,
                               spot_percentage: int | None = None) -> NodePool:
        group = await self._group(pool)
        state = await self._pool(group, refusal=False)  # a spot refusal is the observation's to read
        check_size(state, size)
        if instance_type is not None and instance_type not in {kind.name for kind in self._types}:
            raise Rejected(f"node pool {pool}: no instance type {instance_type!r} in the provider's table")
        shape = (instance_type or state.instance_type,
                 state.spot_percentage if spot_percentage is None else spot_percentage)
        if shape != (state.instance_type, state.spot_percentage):
            await _call(self._autoscaling.update_auto_scaling_group, AutoScalingGroupName=pool,
                        MixedInstancesPolicy=mixed_instances_policy(group, *shape))
        await _call(self._autoscaling.set_desired_capacity, AutoScalingGroupName=pool,
                    DesiredCapacity=size, HonorCooldown=False)
        return await self._pool(await self._group(pool), refusal=False)

    async def _group(self, pool: str) -> dict:
        groups = await self._groups(AutoScalingGroupNames=[pool])
        if not groups:
            raise NotFound(f"no Auto Scaling group named {pool}")
        return groups[0]

    async def _groups(self, **query) -> list[dict]:
        pages = self._autoscaling.get_paginator("describe_auto_scaling_groups").paginate(**query)
        return await _call(lambda: [group for page in pages for group in page["AutoScalingGroups"]])

    async def _pool(self, group: dict, refusal: bool = True) -> NodePool:
        """The group as a NodePool; `refusal`: with its latest spot refusal (one more call, so
        a resize, whose caller reads none, leaves it out)."""
        mixed = group.get("MixedInstancesPolicy") or {}
        distribution = mixed.get("InstancesDistribution") or {}
        on_demand_percentage = distribution.get("OnDemandPercentageAboveBaseCapacity", 100)
        refused, refused_at = await self._spot_refusal(group["AutoScalingGroupName"]) \
            if refusal and on_demand_percentage < 100 else ("", None)
        return NodePool(
            group["AutoScalingGroupName"], await self._instance_type(group), tuple(group["AvailabilityZones"]),
            group["MinSize"], group["MaxSize"], group["DesiredCapacity"],
            sum(i["LifecycleState"] in IN_SERVICE for i in group.get("Instances", ())),
            spot_percentage=100 - on_demand_percentage,
            on_demand_base=distribution.get("OnDemandBaseCapacity", 0), spot_refused=refused,
            spot_refused_at=refused_at)

    async def _spot_refusal(self, name: str) -> tuple[str, float | None]:
        """The group's latest scaling activity, when it is a launch that spot capacity failed."""
        activities = (await _call(self._autoscaling.describe_scaling_activities, AutoScalingGroupName=name,
                                  MaxRecords=1))["Activities"]  # newest first
        latest = activities[0] if activities else {}
        message = latest.get("StatusMessage", "")
        if latest.get("StatusCode") != "Failed" or "Spot" not in message or not any(
                code in message for code in SPOT_REFUSALS):
            return "", None
        return message, latest["StartTime"].timestamp()

    async def _instance_type(self, group: dict) -> str:
        mixed = (group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
        overrides = [o["InstanceType"] for o in mixed.get("Overrides", ()) if "InstanceType" in o]
        if overrides:
            return overrides[0]
        template = mixed.get("LaunchTemplateSpecification") or group.get("LaunchTemplate") or {}
        key = {"LaunchTemplateId": template["LaunchTemplateId"]} if "LaunchTemplateId" in template else {
            "LaunchTemplateName": template.get("LaunchTemplateName", "")}
        versions = await _call(self._ec2.describe_launch_template_versions, **key,
                               Versions=[template.get("Version", "$Default")])
        return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"].get("InstanceType", "")


def mixed_instances_policy(group: dict, instance_type: str, spot_percentage: int) -> dict:
    """The group's mixed-instances policy for nodes of `instance_type`, `spot_percentage`
    of them spot above its on-demand base, on the launch template it already uses."""
    mixed = group.get("MixedInstancesPolicy") or {}
    template = (mixed.get("LaunchTemplate") or {}).get("LaunchTemplateSpecification") or group["LaunchTemplate"]
    # a described template has its id and its name; a request names it by one of them
    key = "LaunchTemplateId" if "LaunchTemplateId" in template else "LaunchTemplateName"
    distribution = mixed.get("InstancesDistribution") or {}
    return {"LaunchTemplate": {"LaunchTemplateSpecification": {key: template[key],
                                                               "Version": template.get("Version", "$Default")},
                               "Overrides": [{"InstanceType": instance_type}]},
            "InstancesDistribution": {"OnDemandBaseCapacity": distribution.get("OnDemandBaseCapacity", 0),
                                      "OnDemandPercentageAboveBaseCapacity": 100 - spot_percentage,
                                      "SpotAllocationStrategy": "price-capacity-optimized"}}


async def _call(method, *args, **kwargs):
    """A blocking boto3 call on a thread, its failure as a typed error."""
    try:
        return await asyncio.to_thread(method, *args, **kwargs)
    except ClientError as error:
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        raise typed_error(details.get("Code", ""), details.get("Message", ""), status) from error
    except BotoCoreError as error:  # no answer at all: connection refused, timeout
        raise Unavailable(str(error)) from error
