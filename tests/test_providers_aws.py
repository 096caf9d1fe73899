"""The AWS provider against moto's server on a loopback port: Auto Scaling groups made with
boto3, then described and resized through the provider. Errors that moto does not make
(throttling, access denied) come from a small proxy in front of it that answers one
request in the Auto Scaling API's error shape and forwards the rest."""
from __future__ import annotations

import asyncio

import boto3
import pytest

from moto_aws import CREDENTIALS, REGION, failing_proxy, moto_server, scaling_activity
from quartermaster.providers.aws import POOL_TAG, AutoScalingGroups
from quartermaster.providers.interface import (
    NodePoolProvider, NotFound, Rejected, Throttled, Unauthorized, backoff_delays, retry_transient)


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def proxy_server(moto_url):
    with failing_proxy(moto_url) as server:
        yield server


@pytest.fixture
def proxy(proxy_server):
    """The proxy, failing nothing until the test says what."""
    proxy_server.fail("", "", 0)
    return proxy_server


@pytest.fixture(scope="module")
def session():
    return boto3.Session(**CREDENTIALS, region_name=REGION)


@pytest.fixture(scope="module")
def groups(moto_url, session):
    """Two tagged groups (one with a mixed-instances policy) and one untagged."""
    ec2 = session.client("ec2", endpoint_url=moto_url)
    autoscaling = session.client("autoscaling", endpoint_url=moto_url)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="nodes",
                               LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"})
    template = {"LaunchTemplateName": "nodes", "Version": "$Default"}
    tag = [{"Key": POOL_TAG, "Value": "true", "PropagateAtLaunch": True}]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="workers", MinSize=1, MaxSize=6, DesiredCapacity=2, AvailabilityZones=[f"{REGION}a"],
        Tags=tag, MixedInstancesPolicy={
            "LaunchTemplate": {"LaunchTemplateSpecification": template,
                               "Overrides": [{"InstanceType": "m5.xlarge"}, {"InstanceType": "m5.2xlarge"}]},
            "InstancesDistribution": {"OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 25}})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="plain", MinSize=0, MaxSize=3, DesiredCapacity=1, LaunchTemplate=template,
        AvailabilityZones=[f"{REGION}a", f"{REGION}b"], Tags=tag)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="someone-elses", MinSize=0, MaxSize=3, DesiredCapacity=0, LaunchTemplate=template,
        AvailabilityZones=[f"{REGION}a"])
    return autoscaling


def group(autoscaling, name: str) -> dict:
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def test_describe_reads_the_group_and_its_spot_share(groups, session, moto_url):
    provider = AutoScalingGroups(session, endpoint_url=moto_url)
    assert isinstance(provider, NodePoolProvider)
    workers = asyncio.run(provider.describe("workers"))
    assert (workers.instance_type, workers.zones, workers.min_size, workers.max_size) == (
        "m5.xlarge", (f"{REGION}a",), 1, 6)
    in_service = [i for i in group(groups, "workers")["Instances"] if i["LifecycleState"] == "InService"]
    assert (workers.desired_size, workers.size, workers.spot_percentage, workers.on_demand_base) == (
        2, len(in_service), 75, 1)
    assert workers.fixed_spot_share == ""  # the group's mixed-instances policy is the operator's to set
    plain = asyncio.run(provider.describe("plain"))  # no policy: the launch template's type, all on-demand
    assert (plain.instance_type, plain.spot_percentage, plain.size) == ("m5.large", 0, 1)


def test_only_tagged_groups_are_node_pools(groups, session, moto_url):
    provider = AutoScalingGroups(session, endpoint_url=moto_url)
    listed = {p.name for p in asyncio.run(provider.list_node_pools())}
    # moto's servers in one process share one state, so the e2e session's tagged group may be
    # listed too: what matters is that the untagged one is not
    assert {"plain", "workers"} <= listed and "someone-elses" not in listed


def test_set_desired_size_is_absolute_and_idempotent(groups, session, moto_url):
    provider = AutoScalingGroups(session, endpoint_url=moto_url)
    state = asyncio.run(provider.set_desired_size("plain", 3))
    assert (state.desired_size, state.size) == (3, 3)
    instances = {i["InstanceId"] for i in group(groups, "plain")["Instances"]}
    assert group(groups, "plain")["DesiredCapacity"] == 3 and len(instances) == 3
    asyncio.run(provider.set_desired_size("plain", 3))
    assert {i["InstanceId"] for i in group(groups, "plain")["Instances"]} == instances
    assert asyncio.run(provider.set_desired_size("plain", 1)).desired_size == 1
    assert group(groups, "plain")["DesiredCapacity"] == 1


def test_unknown_group_and_out_of_range_size_are_typed_errors(groups, session, moto_url):
    provider = AutoScalingGroups(session, endpoint_url=moto_url)
    with pytest.raises(NotFound, match="no Auto Scaling group named nowhere"):
        asyncio.run(provider.describe("nowhere"))
    with pytest.raises(Rejected, match=r"size 7 is outside \[1, 6\]"):
        asyncio.run(provider.set_desired_size("workers", 7))
    assert group(groups, "workers")["DesiredCapacity"] == 2


def test_throttling_is_retried_and_reported(groups, session, proxy):
    provider = AutoScalingGroups(session, endpoint_url=proxy.url)
    proxy.fail("SetDesiredCapacity", "Throttling", count=1)
    with pytest.raises(Throttled, match="Throttling: injected by the test"):
        asyncio.run(provider.set_desired_size("workers", 3))  # botocore itself does not retry
    proxy.fail("SetDesiredCapacity", "Throttling", count=2)
    retries = []
    state = asyncio.run(retry_transient(lambda: provider.set_desired_size("workers", 3),
                                        delays=lambda n: backoff_delays(n, base=0.01),
                                        on_retry=lambda error, wait: retries.append(error.reason)))
    assert retries == ["Throttled", "Throttled"] and proxy.failed == 2
    assert state.desired_size == 3 and group(groups, "workers")["DesiredCapacity"] == 3


def test_access_denied_is_unauthorized_and_not_retried(groups, session, proxy):
    provider = AutoScalingGroups(session, endpoint_url=proxy.url)
    proxy.fail("DescribeAutoScalingGroups", "AccessDenied", count=5)
    with pytest.raises(Unauthorized, match="AccessDenied"):
        asyncio.run(retry_transient(lambda: provider.describe("workers")))
    assert proxy.failed == 1


def test_an_instance_type_and_spot_share_asked_for_become_the_groups_mixed_instances_policy(groups, session,
                                                                                             moto_url):
    provider = AutoScalingGroups(session, endpoint_url=moto_url)
    # a group on a plain launch template gets a mixed-instances policy on that template
    state = asyncio.run(provider.set_desired_size("plain", 2, instance_type="c5.xlarge", spot_percentage=60))
    assert (state.instance_type, state.spot_percentage, state.desired_size) == ("c5.xlarge", 60, 2)
    policy = group(groups, "plain")["MixedInstancesPolicy"]
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateName"] == "nodes"  # the same one
    assert policy["LaunchTemplate"]["Overrides"] == [{"InstanceType": "c5.xlarge"}]
    assert policy["InstancesDistribution"]["OnDemandPercentageAboveBaseCapacity"] == 40
    # None leaves each as it is; the on-demand base is the group's own
    state = asyncio.run(provider.set_desired_size("workers", 2, spot_percentage=0))
    assert (state.instance_type, state.spot_percentage, state.on_demand_base) == ("m5.xlarge", 0, 1)
    assert group(groups, "workers")["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"] == [
        {"InstanceType": "m5.xlarge"}]
    with pytest.raises(Rejected, match="no instance type 'x9.huge'"):
        asyncio.run(provider.set_desired_size("workers", 2, instance_type="x9.huge"))


def test_the_same_shape_asked_again_does_not_update_the_group(groups, session, proxy):
    provider = AutoScalingGroups(session, endpoint_url=proxy.url)
    asyncio.run(provider.set_desired_size("workers", 2, instance_type="m5.2xlarge", spot_percentage=50))
    # any further update would be refused: the same shape again is only a desired capacity
    proxy.fail("UpdateAutoScalingGroup", "AccessDenied", count=5)
    state = asyncio.run(provider.set_desired_size("workers", 3, instance_type="m5.2xlarge", spot_percentage=50))
    assert proxy.failed == 0 and (state.instance_type, state.spot_percentage, state.desired_size) == (
        "m5.2xlarge", 50, 3)
    with pytest.raises(Unauthorized):
        asyncio.run(provider.set_desired_size("workers", 3, spot_percentage=25))


def test_a_launch_that_spot_capacity_failed_is_reported_as_refused(groups, session, proxy):
    provider = AutoScalingGroups(session, endpoint_url=proxy.url)
    asyncio.run(provider.set_desired_size("workers", 2, spot_percentage=50))
    refusal = ("Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available "
               "that matches your request. Launching EC2 instance failed.")
    proxy.answer("DescribeScalingActivities", 200, scaling_activity("workers", "Failed", refusal), count=1)
    state = asyncio.run(provider.describe("workers"))
    assert (state.spot_refused, state.spot_refused_at) == (refusal, 1796590801.5)
    # the latest launch went through, or failed for another reason: nothing refused
    proxy.answer("DescribeScalingActivities", 200, scaling_activity("workers", "Successful", ""), count=1)
    assert asyncio.run(provider.describe("workers")).spot_refused == ""
    other = scaling_activity("workers", "Failed", "The security group 'sg-1' does not exist")
    proxy.answer("DescribeScalingActivities", 200, other, count=1)
    assert asyncio.run(provider.describe("workers")).spot_refused_at is None
    # an all on-demand group is not asked about its activities
    proxy.answer("DescribeScalingActivities", 200, scaling_activity("workers", "Failed", refusal), count=1)
    assert asyncio.run(provider.describe("someone-elses")).spot_refused == "" and proxy.failed == 0
    # a resize reads no activity (its caller reads no refusal): the observation does, once
    proxy.answer("DescribeScalingActivities", 200, scaling_activity("workers", "Successful", ""), count=10)
    asyncio.run(provider.set_desired_size("workers", 3, spot_percentage=50))
    assert proxy.failed == 0
    asyncio.run(provider.describe("workers"))
    assert proxy.failed == 1
