"""A NodePool ScalingPolicy on an AWS Auto Scaling group, end to end: the session's operator
(its --providers file names conftest's moto_aws proxy as the aws provider's endpoint, boto3
finds the credentials in its environment) sizes a group in moto's server for a Deployment's
pending pods, through the control cycle under the chart's RBAC.

How the pool's capacity is observed: a cloud pool's capacity is the Nodes that carry the
label quartermaster.dev/node-pool=<group> (as the group's launch template would have its
kubelet register them). moto's instances never register as Nodes, so the pool has none,
its pods stay Pending, and the size is decided from their demand alone: the nodes that
the pending pods pack onto (first-fit decreasing on an m5.xlarge's 3.92 cores), however
many instances the group has launched; the group's own desired and in-service counts are
what the provider reports it was asked and has launched (Ready Sized once they are the size).

Throttling comes from the proxy in front of moto: answered Throttling a few times, the
resize is retried with backoff within the cycle and goes through, and the policy says
after how many tries; answered Throttling on every try, the policy is Ready=False,
Throttled, with a Warning Event, the operator keeps running and tries again each cycle,
and the group gets its size once AWS answers again.

With instanceTypes and spotPercentage on the ResourcePool, the cheapest fitting type and
the spot share become the group's mixed-instances policy; a launch the group reports failed
for want of spot capacity just now (the proxy answers DescribeScalingActivities in the API's
recorded shape) turns the group all on-demand, with Spot=False, a Warning Event and the
refusal in status.lastSpotRefusal."""

import time

import boto3
import pytest

from conftest import wait_for
from moto_aws import CREDENTIALS, REGION, scaling_activity
from quartermaster.providers.aws import POOL_TAG
from test_nodepool_e2e import (
    POLICY, condition, deployment, events_of, manifest, policy_status, ready_condition, resource_pool)

NAMESPACE = "nodepool-aws"
POOL, GROUP_NAME = "e2e-aws-pool", "e2e-asg"
COOLDOWN = 15  # seconds: the policy's scale-down stabilisation window


@pytest.fixture(scope="module")
def autoscaling(moto_aws):
    """The group, made directly in moto (not through the proxy): m5.xlarge, 0 to 6 instances."""
    session = boto3.Session(**CREDENTIALS, region_name=REGION)
    ec2 = session.client("ec2", endpoint_url=moto_aws.moto_url)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="e2e-nodes",
                               LaunchTemplateData={"ImageId": image, "InstanceType": "m5.xlarge"})
    autoscaling = session.client("autoscaling", endpoint_url=moto_aws.moto_url)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP_NAME, MinSize=0, MaxSize=6, DesiredCapacity=0, AvailabilityZones=[f"{REGION}a"],
        LaunchTemplate={"LaunchTemplateName": "e2e-nodes", "Version": "$Default"},
        Tags=[{"Key": POOL_TAG, "Value": "true", "PropagateAtLaunch": True}])
    return autoscaling


@pytest.fixture(scope="module")
def api(control_plane, operator_process, kubectl, autoscaling):
    with resource_pool(control_plane, kubectl, POOL, NAMESPACE, {"provider": "aws", "name": GROUP_NAME}), \
            control_plane.api_client() as api:
        yield api
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", "--ignore-not-found")


@pytest.fixture(autouse=True)
def injected_answers_cleared(moto_aws):
    """Whatever a test told the proxy to answer is cleared when it ends, passed or failed:
    the session's operator goes on calling AWS through it in the next tests."""
    yield
    moto_aws.fail("", "", 0)


def desired(autoscaling) -> int:
    return autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[GROUP_NAME])["AutoScalingGroups"][0]["DesiredCapacity"]


def test_the_groups_desired_capacity_follows_the_policy_and_throttling_is_retried_and_reported(
        api, kubectl, autoscaling, moto_aws, operator_process):
    kubectl("apply", "-f", "-", input=deployment(3, GROUP_NAME, NAMESPACE))
    kubectl("apply", "-f", "-", input=manifest("ScalingPolicy", POLICY, {
        "targetRef": {"kind": "NodePool", "name": POOL}, "signals": [{"type": "cpu"}],
        "minReplicas": 1, "maxReplicas": 6, "scaleDown": {"cooldownSeconds": COOLDOWN}}, NAMESPACE))

    # three pending pods of 1.5 cores, two to an m5.xlarge: two instances
    wait_for(lambda: desired(autoscaling) == 2, 90, "the group's desired capacity at 2")
    status = policy_status(kubectl, NAMESPACE)
    assert status["currentReplicas"] == 0 and status["recommendation"]["replicas"] == 2
    assert "3 pending pods pack onto 2 more nodes → 2" in status["reasoning"]
    assert status["lastAction"]["action"] == f"node pool {GROUP_NAME} (aws): 2 nodes"
    wait_for(lambda: ready_condition(kubectl, NAMESPACE).get("reason") == "Sized", 60, "the policy to say the group is sized")

    # AWS throttles the next two SetDesiredCapacity calls: the cycle retries and gets through
    moto_aws.fail("SetDesiredCapacity", "Throttling", count=2)
    kubectl("apply", "-f", "-", input=deployment(5, GROUP_NAME, NAMESPACE))
    wait_for(lambda: desired(autoscaling) == 3, 90, "the group's desired capacity at 3 despite the throttling")
    assert moto_aws.failed == 2
    retried = wait_for(lambda: events_of(api, NAMESPACE, "ResizedAfterRetries"), 30, "an Event saying it was retried")[0]
    assert retried.type == "Normal"
    assert retried.message == (f"node pool {GROUP_NAME} (aws): 3 nodes, set after 3 tries "
                               "(Throttled retried with backoff)")

    # throttled on every try: Ready=False with a Warning Event, tried again each cycle, no crash
    moto_aws.fail("SetDesiredCapacity", "Throttling", count=10**6)
    kubectl("apply", "-f", "-", input=deployment(7, GROUP_NAME, NAMESPACE))
    throttled = wait_for(lambda: (c := ready_condition(kubectl, NAMESPACE)).get("reason") == "Throttled" and c, 90,
                         "Ready=False, Throttled")
    assert throttled["status"] == "False"
    assert throttled["message"] == (f"aws node pool {GROUP_NAME}: Throttling: injected by the test after 4 tries "
                                    "(Throttled retried with backoff); tried again next cycle")
    warning = wait_for(lambda: events_of(api, NAMESPACE, "Throttled"), 30, "a Throttled Event")[0]
    assert warning.type == "Warning" and "Throttling: injected by the test" in warning.message
    wait_for(lambda: moto_aws.failed >= 12, 60, "three cycles' four tries each")
    assert desired(autoscaling) == 3 and operator_process.running()
    assert policy_status(kubectl, NAMESPACE)["recommendation"]["replicas"] == 4

    # AWS answers again: the next cycle sets the size
    moto_aws.fail("", "", 0)
    wait_for(lambda: desired(autoscaling) == 4, 60, "the group's desired capacity at 4 once AWS answers")
    wait_for(lambda: ready_condition(kubectl, NAMESPACE).get("reason") == "Sized", 60, "the policy Ready again")

    # one pod left: one instance, after the cooldown
    kubectl("apply", "-f", "-", input=deployment(1, GROUP_NAME, NAMESPACE))
    wait_for(lambda: desired(autoscaling) == 1, COOLDOWN + 60, "the group's desired capacity down to 1")
    assert policy_status(kubectl, NAMESPACE)["recommendation"]["replicas"] == 1
    assert len(events_of(api, NAMESPACE, "Throttled")) == 1  # one Event for the transition, not one per cycle


def mixed_instances(autoscaling) -> tuple[list[str], int]:
    """The group's overrides and on-demand percentage above its base (100 without a policy)."""
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP_NAME])["AutoScalingGroups"][0]
    policy = group.get("MixedInstancesPolicy") or {}
    return ([o["InstanceType"] for o in policy.get("LaunchTemplate", {}).get("Overrides", ())],
            policy.get("InstancesDistribution", {}).get("OnDemandPercentageAboveBaseCapacity", 100))


def test_the_cheapest_type_and_a_spot_share_go_to_the_group_and_a_refused_spot_launch_falls_back(
        api, kubectl, autoscaling, moto_aws):
    kubectl("apply", "-f", "-", input=deployment(1, GROUP_NAME, NAMESPACE))
    kubectl("apply", "-f", "-", input=manifest("ScalingPolicy", POLICY, {
        "targetRef": {"kind": "NodePool", "name": POOL}, "signals": [{"type": "cpu"}],
        "minReplicas": 1, "maxReplicas": 6, "scaleDown": {"cooldownSeconds": COOLDOWN}}, NAMESPACE))
    kubectl("apply", "-f", "-", input=manifest("ResourcePool", POOL, {
        "providerNodePool": {"provider": "aws", "name": GROUP_NAME, "instanceTypes": ["m5.xlarge", "c5.xlarge"],
                             "spotPercentage": 50},
        "workloads": {"namespaces": [NAMESPACE]}}))
    # one pending pod of 1.5 cores: one c5.xlarge at (0.066 + 0.170) / 2 beats an m5.xlarge at (0.074 + 0.192) / 2
    wait_for(lambda: mixed_instances(autoscaling) == (["c5.xlarge"], 50), 90,
             "the group's mixed-instances policy: c5.xlarge, half spot")
    assert desired(autoscaling) == 1
    wait_for(lambda: policy_status(kubectl, NAMESPACE)["recommendation"] == {
        "replicas": 1, "instanceType": "c5.xlarge", "spotPercentage": 50, "pricePerHour": 0.118}, 30,
        "the recommendation with the type, the spot share and the price")
    resized = f"node pool {GROUP_NAME} (aws): 1 nodes of c5.xlarge, 50% spot at $0.12/h"
    wait_for(lambda: resized in [e.message for e in events_of(api, NAMESPACE, "ResizedNodePool")], 30,
             "a ResizedNodePool Event with the type, the spot share and the price")

    # the group's latest launch failed for want of spot capacity: on-demand only
    refusal = ("Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available "
               "that matches your request. Launching EC2 instance failed.")
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    moto_aws.answer("DescribeScalingActivities", 200, scaling_activity(GROUP_NAME, "Failed", refusal, now),
                    count=10**6)
    fallback = wait_for(lambda: (c := condition(kubectl, "Spot", NAMESPACE)).get("reason") == "SpotFallback" and c,
                        60, "Spot=False, SpotFallback")
    assert f"spot capacity refused ({refusal}): on-demand only, spot tried again 10 min after it" in fallback["message"]
    assert policy_status(kubectl, NAMESPACE)["lastSpotRefusal"] == {
        "time": now.replace(".000", ""), "cause": f"spot capacity refused ({refusal})"}
    assert wait_for(lambda: events_of(api, NAMESPACE, "SpotFallback"), 30, "a SpotFallback Event")[0].type == "Warning"
    wait_for(lambda: mixed_instances(autoscaling) == (["c5.xlarge"], 100), 60, "the group all on-demand")
