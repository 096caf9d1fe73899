"""The AWS provider against moto's server on a loopback port: Auto Scaling groups made with
boto3, then described and resized through the provider. Errors that moto does not make
(throttling, access denied) come from a small proxy in front of it that answers one
request in the Auto Scaling API's error shape and forwards the rest."""
from __future__ import annotations

import asyncio
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto.server import ThreadedMotoServer

from quartermaster.providers.aws import POOL_TAG, AutoScalingGroups
from quartermaster.providers.interface import (
    NodePoolProvider, NotFound, Rejected, Throttled, Unauthorized, backoff_delays, retry_transient)
from quartermaster.testbed.processes import free_port
from recorded_cloud import serving

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._port}"
    finally:
        server.stop()


class FailingProxy(ThreadingHTTPServer):
    """Forwards to moto, except that the next `count` requests for `action` get `code`."""

    def __init__(self, upstream_port: int):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream_port, self.action, self.code, self.count, self.failed = upstream_port, "", "", 0, 0

    def fail(self, action: str, code: str, count: int) -> None:
        self.action, self.code, self.count, self.failed = action, code, count, 0


class ProxyHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        proxy = self.server
        if proxy.count and f"Action={proxy.action}".encode() in body:
            proxy.count -= 1
            proxy.failed += 1
            self._answer(400, {"Content-Type": "text/xml"}, (
                '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
                f'<Code>{proxy.code}</Code><Message>injected by the test</Message></Error>'
                '<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>').encode())
            return
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
        upstream.request("POST", self.path, body, dict(self.headers))
        response = upstream.getresponse()
        self._answer(response.status, {"Content-Type": response.getheader("Content-Type", "text/xml")},
                     response.read())
        upstream.close()

    def _answer(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def proxy(moto_url):
    with serving(FailingProxy(int(moto_url.rsplit(":", 1)[1]))) as server:
        yield server


@pytest.fixture(scope="module")
def session():
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


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
    plain = asyncio.run(provider.describe("plain"))  # no policy: the launch template's type, all on-demand
    assert (plain.instance_type, plain.spot_percentage, plain.size) == ("m5.large", 0, 1)


def test_only_tagged_groups_are_node_pools(groups, session, moto_url):
    provider = AutoScalingGroups(session, endpoint_url=moto_url)
    assert sorted(p.name for p in asyncio.run(provider.list_node_pools())) == ["plain", "workers"]


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
    provider = AutoScalingGroups(session, endpoint_url=f"http://127.0.0.1:{proxy.server_port}")
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
    provider = AutoScalingGroups(session, endpoint_url=f"http://127.0.0.1:{proxy.server_port}")
    proxy.fail("DescribeAutoScalingGroups", "AccessDenied", count=5)
    with pytest.raises(Unauthorized, match="AccessDenied"):
        asyncio.run(retry_transient(lambda: provider.describe("workers")))
    assert proxy.failed == 1
